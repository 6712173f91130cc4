
# A pipeline owned by a role without LOGIN (a group role that a team's
# members SET ROLE to).  From PostgreSQL 17 the workers connect as it with
# BGWORKER_BYPASS_ROLELOGINCHECK and the pipeline ingests exactly once, as
# that role; before 17 no background worker can connect as such a role, so
# create_pipeline refuses it up front instead of leaving a pipeline whose
# workers die at every start.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('t015', 2);

my $node = EoTest::new_node('eo015');
my $server = $node->safe_psql('postgres', 'SHOW server_version_num');
$node->safe_psql('postgres', <<'EOS');
CREATE ROLE team NOLOGIN;
CREATE ROLE alice LOGIN IN ROLE team;
EOS
EoTest::create_orders_table($node, 'public.team_orders');
$node->safe_psql('postgres', 'ALTER TABLE public.team_orders OWNER TO team');

my ($out, $err) = ('', '');
my $ret = $node->psql('postgres', <<"EOS", stdout => \$out, stderr => \$err, extra_params => [ '-U', 'alice' ]);
SET ROLE team;
SELECT eo_ingest.create_pipeline(name => 'team', brokers => '@{[ $kafka->brokers ]}',
                                 topic => 't015', target => 'public.team_orders', batch_size => 100);
EOS

if ($server < 170000)
{
	isnt($ret, 0, "PostgreSQL $server refuses a NOLOGIN owner");
	like($err, qr/pipeline owner "team" cannot log in/, 'the error names the owner');
	like($err, qr/17 and later do not/, 'and says which servers allow it');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM eo_ingest.pipelines'), '0',
		'no pipeline was stored');
	done_testing();
	exit;
}

is($ret, 0, "PostgreSQL $server: the NOLOGIN role creates a pipeline") or diag($err);
is($node->safe_psql('postgres', "SELECT owner::text FROM eo_ingest.pipelines WHERE name = 'team'"),
	'team', 'the group role owns it');

my $m = $kafka->produce(topic => 't015', count => 1_500, start_id => 1, dup_ratio => 0.1,
	seed => 1501, timestamp_base => EoTest::ts_base(0), bad_every => 97);
EoTest::wait_caught_up($node, 'team', EoTest::committed_count($m));
EoTest::check_rows($node, 'public.team_orders', $m, 'skip');
EoTest::check_counters($node, 'team', 'public.team_orders', EoTest::committed_count($m));
is($node->safe_psql('postgres',
		"SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'eo_ingest worker'"),
	'team', 'the workers run as the NOLOGIN owner, not as a superuser');

done_testing();
