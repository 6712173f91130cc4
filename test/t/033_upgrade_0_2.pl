
# ALTER EXTENSION eo_ingest UPDATE from 0.1 to 0.2, then to the newest
# version, under a running pipeline.
# A non-superuser creates the pipeline under 0.1 (where the catalog was
# writable through row-level security) and it ingests, with dead letters;
# the update makes the catalog read-only for PUBLIC while the worker runs; the
# same pipeline goes on ingesting exactly once, is paused, resumed and reset
# through the API, and its owner purges its dead letters.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('t033', 2);

my $node = EoTest::new_node('eo033', no_extension => 1);
$node->safe_psql('postgres', "CREATE EXTENSION eo_ingest VERSION '0.1'");
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest'"),
	'0.1', 'version 0.1 installed');
$node->safe_psql('postgres', 'CREATE ROLE eo_up LOGIN');
EoTest::create_orders_table($node, 'public.up_orders');
$node->safe_psql('postgres', 'ALTER TABLE public.up_orders OWNER TO eo_up');

sub as_owner
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', 'eo_up' ]);
	return ($ret, $out, $err);
}

my ($ret, $out, $err) = as_owner("SELECT eo_ingest.create_pipeline(name => 'up', brokers => '"
	  . $kafka->brokers . "', topic => 't033', target => 'public.up_orders', batch_size => 200)");
is($ret, 0, 'the owner creates a pipeline under 0.1') or diag($err);

my @m;
my $run = 0;
sub produce
{
	my ($count, %o) = @_;
	my $m = $kafka->produce(topic => 't033', count => $count, start_id => 1 + 10_000 * $run,
		dup_ratio => 0.1, seed => 3300 + $run, timestamp_base => EoTest::ts_base($run), %o);
	$run++;
	push @m, @$m;
	return $m;
}

produce(2_000, bad_every => 101);
EoTest::wait_caught_up($node, 'up', EoTest::committed_count(\@m));
EoTest::check_rows($node, 'public.up_orders', \@m, 'skip', label => 'under 0.1');

# a backlog in flight while the update runs
produce(3_000, bad_every => 97);
($ret, $out, $err) = $node->psql('postgres', "ALTER EXTENSION eo_ingest UPDATE TO '0.2'");
is($ret, 0, 'ALTER EXTENSION eo_ingest UPDATE TO 0.2 under a running pipeline') or diag($err);
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest'"),
	'0.2', 'now at 0.2');
is($node->safe_psql('postgres', <<'EOS'), 'SELECT', 'PUBLIC only reads the catalog');
SELECT string_agg(DISTINCT a.privilege_type, ',')
  FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.relnamespace = 'eo_ingest'::regnamespace AND c.relkind IN ('r', 'S') AND a.grantee = 0
EOS
EoTest::wait_caught_up($node, 'up', EoTest::committed_count(\@m));
EoTest::check_rows($node, 'public.up_orders', \@m, 'skip', label => 'across the update');
EoTest::check_counters($node, 'up', 'public.up_orders', EoTest::committed_count(\@m));

# the owner's writes now go through the API only
($ret, $out, $err) = as_owner('DELETE FROM eo_ingest.dead_letters');
like($err, qr/permission denied for table dead_letters/, 'the owner can no longer DELETE dead letters');
($ret, $out, $err) = as_owner("SELECT eo_ingest.pause_pipeline('up')");
is($ret, 0, 'pause through the API') or diag($err);
produce(1_000);
($ret, $out, $err) = as_owner("SELECT eo_ingest.resume_pipeline('up')");
is($ret, 0, 'resume through the API') or diag($err);
EoTest::wait_caught_up($node, 'up', EoTest::committed_count(\@m));
EoTest::check_rows($node, 'public.up_orders', \@m, 'skip', label => 'after pause and resume');
EoTest::check_counters($node, 'up', 'public.up_orders', EoTest::committed_count(\@m));
EoTest::check_offsets($node, 'up', $kafka, 't033', 2);

# then on to the newest version, again with a backlog in flight
produce(3_000, bad_every => 89);
($ret, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION eo_ingest UPDATE');
is($ret, 0, 'ALTER EXTENSION eo_ingest UPDATE to the default version under a running pipeline')
  or diag($err);
is($node->safe_psql('postgres', "SELECT extversion = default_version FROM pg_extension, pg_available_extensions WHERE extname = 'eo_ingest' AND name = extname"),
	't', 'now at the default version');
($ret, $out, $err) = as_owner("SELECT eo_ingest.pause_pipeline('up')");
is($ret, 0, 'pause through the newest API') or diag($err);
produce(500);
($ret, $out, $err) = as_owner("SELECT eo_ingest.resume_pipeline('up')");
is($ret, 0, 'resume through the newest API') or diag($err);
EoTest::wait_caught_up($node, 'up', EoTest::committed_count(\@m));
EoTest::check_rows($node, 'public.up_orders', \@m, 'skip', label => 'across the update to the default version');
EoTest::check_counters($node, 'up', 'public.up_orders', EoTest::committed_count(\@m));
EoTest::check_offsets($node, 'up', $kafka, 't033', 2);
is($node->safe_psql('postgres',
	"SELECT watermarks_at > now() - interval '10 s' FROM eo_ingest.pipeline_status WHERE name = 'up'"),
	't', 'pipeline_status says when the watermarks were read (0.3)');

my $dead = $node->safe_psql('postgres', 'SELECT count(*) FROM eo_ingest.dead_letters');
cmp_ok($dead, '>', 0, "$dead dead letters from before and after the update");
($ret, $out, $err) = as_owner("SELECT eo_ingest.purge_dead_letters('up')");
is($out, $dead, 'the owner purges them') or diag($err);

ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');
$node->stop;
$kafka->teardown;
done_testing();
