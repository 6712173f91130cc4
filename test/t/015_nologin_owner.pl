
# A pipeline owned by a role without LOGIN (a group role that a team's
# members SET ROLE to).  From PostgreSQL 17 the workers connect as it with
# BGWORKER_BYPASS_ROLELOGINCHECK and the pipeline ingests exactly once, as
# that role.  Before 17 no background worker can connect as such a role: the
# server log says why and nothing is stored (README, PostgreSQL versions).

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

is($ret, 0, "PostgreSQL $server: the NOLOGIN role creates a pipeline") or diag($err);
is($node->safe_psql('postgres', "SELECT owner::text FROM eo_ingest.pipelines WHERE name = 'team'"),
	'team', 'the group role owns it');

my $m = $kafka->produce(topic => 't015', count => 1_500, start_id => 1, dup_ratio => 0.1,
	seed => 1501, timestamp_base => EoTest::ts_base(0), bad_every => 97);

if ($server < 170000)
{
	ok($node->wait_for_log(qr/FATAL:  role "team" is not permitted to log in/),
		"PostgreSQL $server: the worker cannot connect as a NOLOGIN owner, and the log says so");
	is($node->safe_psql('postgres', 'SELECT count(*) FROM public.team_orders'), '0',
		'nothing is stored');
	diag('pipeline_status: '
		  . $node->safe_psql('postgres', "SELECT state, last_error FROM eo_ingest.pipeline_status"));
	done_testing();
	exit;
}
EoTest::wait_caught_up($node, 'team', EoTest::committed_count($m));
EoTest::check_rows($node, 'public.team_orders', $m, 'skip');
EoTest::check_counters($node, 'team', 'public.team_orders', EoTest::committed_count($m));
is($node->safe_psql('postgres',
		"SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'eo_ingest worker'"),
	'team', 'the workers run as the NOLOGIN owner, not as a superuser');

done_testing();
