
# The database commands that need a database to themselves, run while a
# pipeline drains a backlog there, without WITH (FORCE):
#   - ALTER DATABASE ... RENAME TO (alone and inside a transaction block):
#     the workers leave, come back in the renamed database and continue
#     exactly once;
#   - CREATE DATABASE copy TEMPLATE userdb: the original continues exactly
#     once; the copy's pipelines are paused (they would consume the same
#     topic a second time), and once resumed continue from the copied
#     offsets, exactly once in the copy too;
#   - DROP DATABASE: the supervisor and workers are gone and their slots free.
# Then 70 databases in turn get a pipeline and are dropped, with the
# launcher's periodic scan off: each must get its supervisor from the
# wake-up alone, which needs the wake-up entries of dropped databases freed
# (there are 64).

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('t035', 2);

my $node = EoTest::new_node('eo035', conf => "eo_ingest.launcher_naptime = 3600\n");
$node->safe_psql('postgres', 'CREATE DATABASE userdb');
$node->safe_psql('userdb', 'CREATE EXTENSION eo_ingest');
EoTest::create_orders_table($node, 'public.orders', dbname => 'userdb');
EoTest::create_pipeline($node, dbname => 'userdb', name => 'p', brokers => $kafka->brokers,
	topic => 't035', target => 'public.orders', batch_size => \'500');

my @m;
my $run = 0;
sub produce
{
	my ($count) = @_;
	push @m, @{ $kafka->produce(topic => 't035', count => $count, start_id => scalar(@m) + 1,
		dup_ratio => 0.05, seed => 50 + $run, timestamp_base => EoTest::ts_base($run++)) };
	return;
}

# eo_ingest processes connected to $db, as pg_stat_activity lists them
sub eo_processes
{
	my ($db) = @_;
	return $node->safe_psql('postgres', <<"EOS");
SELECT count(*) FROM pg_stat_activity
 WHERE datname = '$db' AND backend_type IN ('eo_ingest supervisor', 'eo_ingest worker')
EOS
}

# A backlog for the pipeline of $db, and a wait until it drains: the command
# that follows runs while batches are being written.
sub backlog
{
	my ($db, $count) = @_;
	$node->safe_psql($db, "SELECT eo_ingest.pause_pipeline('p')");
	EoTest::wait_for($node, "SELECT worker_pid IS NULL FROM eo_ingest.pipeline_status WHERE name = 'p'",
		't', undef, dbname => $db);
	my $before = $node->safe_psql($db, 'SELECT count(*) FROM public.orders');
	produce($count);
	$node->safe_psql($db, "SELECT eo_ingest.resume_pipeline('p')");
	ok(EoTest::wait_for($node, "SELECT count(*) > $before FROM public.orders", 't', undef, dbname => $db),
		"$db: the backlog of $count records drains");
	return;
}

sub run_timed
{
	my ($db, $sql) = @_;
	my $t0 = time;
	my ($ret, $out, $err) = $node->psql($db, $sql);
	my $secs = sprintf('%.1f', time - $t0);
	is($ret, 0, "$sql succeeds while the pipeline drains (${secs}s)") or diag($err);
	return $secs;
}

sub check_pipeline
{
	my ($db, $label) = @_;
	EoTest::wait_caught_up($node, 'p', EoTest::committed_count(\@m), dbname => $db);
	EoTest::check_rows($node, 'public.orders', \@m, 'skip', label => $label, dbname => $db);
	EoTest::check_counters($node, 'p', 'public.orders', EoTest::committed_count(\@m), dbname => $db);
	return;
}

produce(2_000);
check_pipeline('userdb', 'before any command');

# --- ALTER DATABASE ... RENAME TO
backlog('userdb', 100_000);
my $total = EoTest::committed_count(\@m);
my $landed = $node->safe_psql('userdb', 'SELECT count(*) FROM public.orders');
cmp_ok($landed, '<', $total - 1000, "rename: the backlog is still draining ($landed of $total rows)");
run_timed('postgres', 'ALTER DATABASE userdb RENAME TO renamed');
check_pipeline('renamed', 'after RENAME: exactly once');

backlog('renamed', 20_000);
run_timed('postgres', "BEGIN; ALTER DATABASE renamed RENAME TO userdb; SELECT pg_sleep(1); COMMIT");
check_pipeline('userdb', 'after RENAME inside a transaction block: exactly once');

# --- CREATE DATABASE ... TEMPLATE
backlog('userdb', 30_000);
run_timed('postgres', 'CREATE DATABASE copy TEMPLATE userdb');
check_pipeline('userdb', 'the original after CREATE DATABASE TEMPLATE: exactly once');

# the copy's first supervisor (started when CREATE DATABASE commits) pauses it
ok(EoTest::wait_for($node, "SELECT state FROM eo_ingest.pipeline_status WHERE name = 'p'",
	'paused', 30, dbname => 'copy'), 'the copied pipeline is paused');
my $copied = $node->safe_psql('copy', 'SELECT count(*) FROM public.orders');
sleep 3;
is($node->safe_psql('copy', 'SELECT count(*) FROM public.orders'), $copied,
	"nothing lands in the copy while it is paused ($copied rows)");
ok($node->log_contains('paused 1 pipeline in database "copy"'), 'the server log says why');
produce(3_000);
$node->safe_psql('copy', "SELECT eo_ingest.resume_pipeline('p')");
check_pipeline('copy', 'the copy, resumed: continues from the copied offsets exactly once');
check_pipeline('userdb', 'the original, next to the resumed copy: exactly once');

# --- DROP DATABASE (the copy's pipeline is running, userdb's drains)
isnt(eo_processes('copy'), '0', 'the copy has a supervisor and a worker before DROP');
run_timed('postgres', 'DROP DATABASE copy');
backlog('userdb', 30_000);
run_timed('postgres', 'DROP DATABASE userdb');
is(eo_processes('userdb') . '/' . eo_processes('copy'), '0/0', 'no eo_ingest process is left in the dropped databases');
is($node->safe_psql('postgres', 'SELECT count(*) FROM eo_ingest._worker_status()'), '0',
	'their worker slots are free');
ok(!$node->log_contains('is being accessed by other users'), 'no command waited for other users');

# --- 70 databases in turn: each is woken promptly
$node->safe_psql('postgres', 'CREATE DATABASE tpl');
$node->safe_psql('tpl', 'CREATE EXTENSION eo_ingest');
EoTest::create_orders_table($node, 'public.orders', dbname => 'tpl');
my @slow;
for my $i (1 .. 70)
{
	my $db = "db$i";
	$node->safe_psql('postgres', "CREATE DATABASE $db TEMPLATE tpl");
	EoTest::create_pipeline($node, dbname => $db, name => 'p', brokers => $kafka->brokers,
		topic => 't035', target => 'public.orders', start => \'false');
	my $t0 = time;
	my $ok = EoTest::wait_for($node,
		"SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'eo_ingest supervisor'",
		'1', 10);
	push @slow, "$db: " . sprintf('%.1f', time - $t0) . 's' unless $ok;
	$node->safe_psql('postgres', "DROP DATABASE $db");
}
is_deeply(\@slow, [], '70 databases, one after the other: each got its supervisor within 10 s of its first pipeline');

ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');
$node->stop;
$kafka->teardown;
done_testing();
