
# Pipeline lifecycle against a real broker: two pipelines on two topics,
# pause (the worker goes away, nothing lands while records arrive), resume
# (catches up exactly once), drop and re-create under the same name (fresh
# offsets: everything is read again and the target's event ids absorb it),
# a pipeline in a second database created without a server restart, and a
# pipeline created paused (start => false).  Every phase ends with the
# target compared row by row with the producer's manifest.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('t012a', 3);
$kafka->create_topic('t012b', 2);
$kafka->create_topic('t012c', 2);

my $node = EoTest::new_node('eo012');
EoTest::create_orders_table($node, 'public.orders_a');
EoTest::create_orders_table($node, 'public.orders_b');

my @ma;	# everything produced to t012a
my @mb;	# ... to t012b
my $ts_run = 0;
sub produce
{
	my ($topic, $list, $count, $start) = @_;
	my $m = $kafka->produce(
		topic => $topic,
		count => $count,
		start_id => $start,
		dup_ratio => 0.1,
		seed => 100 + $ts_run,
		timestamp_base => EoTest::ts_base($ts_run++));
	push @$list, @$m;
	return $m;
}

# Pipeline state, worker pid (or empty), processed count.
sub status
{
	my ($name, $db) = @_;
	return $node->safe_psql($db // 'postgres', <<"EOS");
SELECT state, coalesce(worker_pid::text, ''),
	   rows_inserted + rows_updated + duplicates_skipped + dead_letters
  FROM eo_ingest.pipeline_status WHERE name = '$name'
EOS
}

sub counts
{
	my ($name, $table, $db) = @_;
	return $node->safe_psql($db // 'postgres', <<"EOS");
SELECT (SELECT count(*) FROM $table),
	   (SELECT rows_inserted + rows_updated + duplicates_skipped + dead_letters
		  FROM eo_ingest.pipeline_status WHERE name = '$name'),
	   (SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition)
		  FROM eo_ingest.partition_progress WHERE pipeline = '$name')
EOS
}

# --- two pipelines, two topics, two tables
EoTest::create_pipeline($node, name => 'pa', brokers => $kafka->brokers,
	topic => 't012a', target => 'public.orders_a', batch_size => \'500');
EoTest::create_pipeline($node, name => 'pb', brokers => $kafka->brokers,
	topic => 't012b', target => 'public.orders_b', on_duplicate => 'update',
	columns => EoTest::update_columns());
produce('t012a', \@ma, 6_000, 1);
produce('t012b', \@mb, 4_000, 1);
EoTest::wait_caught_up($node, 'pa', EoTest::committed_count(\@ma));
EoTest::wait_caught_up($node, 'pb', EoTest::committed_count(\@mb));
EoTest::check_rows($node, 'public.orders_a', \@ma, 'skip', label => 'two topics: orders_a');
EoTest::check_rows($node, 'public.orders_b', \@mb, 'update', label => 'two topics: orders_b');
EoTest::check_counters($node, 'pa', 'public.orders_a', EoTest::committed_count(\@ma));
EoTest::check_counters($node, 'pb', 'public.orders_b', EoTest::committed_count(\@mb));

# --- a second database, created while the server runs
$node->safe_psql('postgres', 'CREATE DATABASE db2');
$node->safe_psql('db2', 'CREATE EXTENSION eo_ingest');
EoTest::create_orders_table($node, 'public.orders_c', dbname => 'db2');
# Same name as a pipeline of 'postgres', and the same pipeline id (1) as 'pa':
# pipelines are per database.
EoTest::create_pipeline($node, dbname => 'db2', name => 'pa',
	brokers => $kafka->brokers, topic => 't012c', target => 'public.orders_c');
my @mc;
produce('t012c', \@mc, 3_000, 1);
EoTest::wait_caught_up($node, 'pa', EoTest::committed_count(\@mc), dbname => 'db2');
EoTest::check_rows($node, 'public.orders_c', \@mc, 'skip',
	dbname => 'db2', label => 'second database: orders_c');
EoTest::check_counters($node, 'pa', 'public.orders_c', EoTest::committed_count(\@mc),
	dbname => 'db2');
is($node->safe_psql('postgres', "SELECT topic FROM eo_ingest.pipeline_status WHERE name = 'pa'"),
	't012a', "db2's pipeline does not show in postgres's pipeline_status");

# --- pause: the worker goes away, nothing lands while records arrive.
# Paused in the middle of a backlog, so the worker is stopped mid-batch:
# build the backlog while paused, resume, pause again once it is under way.
my $base = EoTest::committed_count(\@ma);
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('pa')");
ok(EoTest::wait_for($node, "SELECT state FROM eo_ingest.pipeline_status WHERE name = 'pa'",
	'paused', 10), 'pa paused for a backlog');
produce('t012a', \@ma, 20_000, 6_001);
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('pa')");
my ($st, $pid_a, $done);
for (1 .. 600)
{
	($st, $pid_a, $done) = split /\|/, status('pa');
	last if $done > $base + 1_000;
	sleep(0.05);
}
like($pid_a, qr/^\d+$/, "pa has a worker ($pid_a)");
note("pausing pa after $done of " . EoTest::committed_count(\@ma) . ' records');
my $t0 = time;
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('pa')");
my $gone;
while (time - $t0 < 10)
{
	my ($state, $pid) = split /\|/, status('pa');
	if ($state eq 'paused' && $pid eq '' && !kill(0, $pid_a))
	{
		$gone = time - $t0;
		last;
	}
	sleep(0.05);
}
ok(defined $gone && $gone <= 2.0,
	sprintf('pause: worker %d exited and state is paused within 2 s (%s)',
		$pid_a, defined $gone ? sprintf('%.2f s', $gone) : 'not within 10 s'));

my $before = counts('pa', 'public.orders_a');
produce('t012a', \@ma, 3_000, 26_001);
# pb keeps running meanwhile: a pause is per pipeline.
produce('t012b', \@mb, 2_000, 4_001);
EoTest::wait_caught_up($node, 'pb', EoTest::committed_count(\@mb));
sleep(2);
is(counts('pa', 'public.orders_a'), $before,
	'paused: no rows, counters or offsets change while records arrive');
my ($state_a, $wpid_a) = split /\|/, status('pa');
is("$state_a|$wpid_a", 'paused|', 'paused: state paused, no worker');

# --- resume: catches up, exactly once
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('pa')");
EoTest::wait_caught_up($node, 'pa', EoTest::committed_count(\@ma));
EoTest::check_rows($node, 'public.orders_a', \@ma, 'skip', label => 'after resume: orders_a');
EoTest::check_counters($node, 'pa', 'public.orders_a', EoTest::committed_count(\@ma));
EoTest::check_rows($node, 'public.orders_b', \@mb, 'update', label => 'during the pause: orders_b');
EoTest::check_offsets($node, 'pa', $kafka, 't012a', 3);

# --- drop and re-create with the same name: fresh offsets from earliest
my (undef, $pid_drop) = split /\|/, status('pa');
$node->safe_psql('postgres', "SELECT eo_ingest.drop_pipeline('pa')");
ok(EoTest::wait_for($node,
	"SELECT count(*) FROM eo_ingest.pipeline_status WHERE name = 'pa'", '0', 10),
	'drop: pipeline gone from pipeline_status');
is($node->safe_psql('postgres',
	"SELECT (SELECT count(*) FROM eo_ingest.offsets) || ' ' || (SELECT count(*) FROM eo_ingest.counters)"),
	'2 1', "drop: pa's offsets and counters removed, pb's kept");
my $t1 = time;
sleep(0.05) while kill(0, $pid_drop) && time - $t1 < 10;
ok(!kill(0, $pid_drop), sprintf('drop: worker %d exited (%.2f s)', $pid_drop, time - $t1));

EoTest::create_pipeline($node, name => 'pa', brokers => $kafka->brokers,
	topic => 't012a', target => 'public.orders_a', start_from => 'earliest');
my $committed_a = EoTest::committed_count(\@ma);
EoTest::wait_caught_up($node, 'pa', $committed_a);
my ($ins, $skip) = split /\|/, $node->safe_psql('postgres',
	"SELECT rows_inserted, duplicates_skipped FROM eo_ingest.pipeline_status WHERE name = 'pa'");
is("$ins|$skip", "0|$committed_a",
	're-created: every record read again from earliest, all absorbed as duplicates');
EoTest::check_rows($node, 'public.orders_a', \@ma, 'skip', label => 're-created: orders_a unchanged');
EoTest::check_offsets($node, 'pa', $kafka, 't012a', 3);

# --- start => false: created paused
$node->safe_psql('postgres', 'TRUNCATE public.orders_b');
EoTest::create_pipeline($node, name => 'pb_paused', brokers => $kafka->brokers,
	topic => 't012b', target => 'public.orders_b', start => \'false');
# pb writes into orders_b too: stop it so that only pb_paused may fill it.
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('pb')");
sleep(2);
is(status('pb_paused'), 'paused||0', 'start => false: paused, no worker, nothing processed');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.orders_b'), '0',
	'start => false: nothing written');
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('pb_paused')");
EoTest::wait_caught_up($node, 'pb_paused', EoTest::committed_count(\@mb));
EoTest::check_rows($node, 'public.orders_b', \@mb, 'skip',
	label => 'start => false, then resumed: orders_b');
EoTest::check_counters($node, 'pb_paused', 'public.orders_b', EoTest::committed_count(\@mb));

# --- a batch closes as soon as the consumer has nothing more ready: with an
# hour's batch_timeout and room for 50,000 records, records produced into a
# running pipeline land at once (they would have waited the hour)
$kafka->create_topic('t012d', 1);
EoTest::create_orders_table($node, 'public.orders_d');
EoTest::create_pipeline($node, name => 'trickle', brokers => $kafka->brokers,
	topic => 't012d', target => 'public.orders_d', batch_timeout => \'3600000');
EoTest::wait_for($node, "SELECT state FROM eo_ingest.pipeline_status WHERE name = 'trickle'",
	'running', 60);
my @md;
produce('t012d', \@md, 50, 1);
EoTest::wait_caught_up($node, 'trickle', EoTest::committed_count(\@md), timeout => 60);
EoTest::check_rows($node, 'public.orders_d', \@md, 'skip',
	label => 'batch_timeout of an hour: 50 records landed at once');

# The second database's pipeline ran undisturbed through all of this.
is($node->safe_psql('db2', <<'EOS'),
SELECT state, worker_pid IS NOT NULL, rows_inserted + duplicates_skipped
  FROM eo_ingest.pipeline_status WHERE name = 'pa'
EOS
	'running|t|' . EoTest::committed_count(\@mc), "db2's pipeline still running, nothing re-applied");

$node->stop;
$kafka->stop;
done_testing();
