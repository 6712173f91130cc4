
# Operations on running pipelines: a topic that grows from 2 to 6
# partitions, reset_offsets to 'earliest', 'latest', a timestamp and
# per-partition offsets, alter_pipeline while running, a topic deleted and
# re-created with fewer records (stored offset above the high watermark), and
# a stale worker fenced off.  After each step the target is compared row by
# row with the producer's manifests.

use strict;
use warnings;

use POSIX qw(strftime);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('partitions', conf => <<'EOC');
eo_ingest.launcher_naptime = 2s
eo_ingest.retry_max_delay = 4s
EOC
my $brokers = $kafka->brokers;

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub progress
{
	my ($pipeline) = @_;
	return { map { split /\|/ } split /\n/,
		  q1("SELECT partition, next_offset FROM eo_ingest.partition_progress WHERE pipeline = '$pipeline'") };
}

sub processed
{
	my ($pipeline) = @_;
	return q1("SELECT rows_inserted + rows_updated + duplicates_skipped + dead_letters "
		  . "FROM eo_ingest.pipeline_status WHERE name = '$pipeline'");
}

sub seq_of
{
	my ($r) = @_;
	return $r->{value} =~ /"seq":(\d+)/ ? $1 : die "no seq in $r->{value}";
}

# Pause and wait for the worker to be gone.
sub pause
{
	my ($pipeline) = @_;
	q1("SELECT eo_ingest.pause_pipeline('$pipeline')");
	EoTest::wait_for($node,
		"SELECT state = 'paused' AND worker_pid IS NULL FROM eo_ingest.pipeline_status WHERE name = '$pipeline'",
		't', 30);
}

# ---- (a) the topic grows from 2 to 6 partitions while running ---------------

$kafka->create_topic('grow', 2);
EoTest::create_orders_table($node, 'public.grow');
my $m1 = $kafka->produce(topic => 'grow', count => 2000, start_id => 1);
EoTest::create_pipeline($node, name => 'grow', brokers => $brokers, topic => 'grow',
	target => 'public.grow');
EoTest::wait_caught_up($node, 'grow', 2000);
my $pid = EoTest::worker_pid($node, 'grow');

$kafka->add_partitions('grow', 6);
my $m2 = $kafka->produce(topic => 'grow', count => 3000, start_id => 10001);
is(scalar(grep { $_->{partition} >= 2 } @$m2), 2000, 'the producer wrote to the 4 new partitions');
my $t0 = time;
EoTest::wait_caught_up($node, 'grow', 5000, timeout => 60);
note(sprintf('caught up with 6 partitions %.1f s after the producer finished', time - $t0));
EoTest::check_rows($node, 'public.grow', [ @$m1, @$m2 ], 'skip', label => 'after growing to 6 partitions');
EoTest::check_offsets($node, 'grow', $kafka, 'grow', 6);
is(EoTest::worker_pid($node, 'grow'), $pid, 'the same worker process took the new partitions');
ok($node->log_contains('topic "grow" grew from 2 to 6 partitions'), 'the log says the topic grew');

# ---- (b) reset_offsets -------------------------------------------------------

my ($ret, $out, $err) = $node->psql('postgres', "SELECT eo_ingest.reset_offsets('grow', 'earliest')");
isnt($ret, 0, 'reset_offsets is refused while the pipeline runs');
like($err, qr/pipeline "grow" is running/, 'with an error saying it runs');
like($err, qr/pause_pipeline/, 'and a hint to pause it');

# earliest: everything is read again, and deduplicated.
pause('grow');
q1("SELECT eo_ingest.reset_offsets('grow', 'earliest')");
is_deeply(progress('grow'), { map { ($_ => 0) } 0 .. 5 }, "'earliest' sets every partition to offset 0");
q1("SELECT eo_ingest.resume_pipeline('grow')");
EoTest::wait_caught_up($node, 'grow', 10000);
is(q1("SELECT duplicates_skipped FROM eo_ingest.pipeline_status WHERE name = 'grow'"), 5000,
	'the 5000 records read again were all skipped as duplicates');
EoTest::check_rows($node, 'public.grow', [ @$m1, @$m2 ], 'skip', label => "after reset to 'earliest'");

# latest: what was produced while paused is skipped.
pause('grow');
my $m3 = $kafka->produce(topic => 'grow', count => 600, start_id => 20001);
q1("SELECT eo_ingest.reset_offsets('grow', 'latest')");
my $end = EoTest::end_offsets($kafka, 'grow', 6);
is_deeply(progress('grow'), $end, "'latest' sets every partition to its end offset");
q1("SELECT eo_ingest.resume_pipeline('grow')");
EoTest::wait_for($node, "SELECT state FROM eo_ingest.pipeline_status WHERE name = 'grow'", 'running', 30);
sleep 3;
is(processed('grow'), 10000, "nothing read after a reset to 'latest'");
EoTest::check_rows($node, 'public.grow', [ @$m1, @$m2 ], 'skip', label => "after reset to 'latest'");

# A timestamp: records of the run below have timestamps T, T+1, ... (T after
# every earlier record); resetting to T+300 re-reads from the record with seq
# 301 in each partition.
pause('grow');
my $T = int(time * 1000) + 60_000;
my $m4 = $kafka->produce(topic => 'grow', count => 600, start_id => 30001, timestamp_base => $T);
my %want;
for my $r (@$m4)
{
	next if seq_of($r) < 301;
	$want{ $r->{partition} } = $r->{offset}
	  if !defined $want{ $r->{partition} } || $r->{offset} < $want{ $r->{partition} };
}
my $ts = $T + 300;
my $ts_text = strftime('%Y-%m-%d %H:%M:%S', gmtime(int($ts / 1000))) . sprintf('.%03d+00', $ts % 1000);
q1("SELECT eo_ingest.reset_offsets('grow', '$ts_text')");
is_deeply(progress('grow'), \%want, "a timestamp ($ts_text) resolves to the first record at or after it");
q1("SELECT eo_ingest.resume_pipeline('grow')");
my @m4_late = grep { seq_of($_) >= 301 } @$m4;
EoTest::wait_caught_up($node, 'grow', 10000 + @m4_late);
EoTest::check_rows($node, 'public.grow', [ @$m1, @$m2, @m4_late ], 'skip',
	label => 'after reset to a timestamp');

# Per-partition offsets: partition 0 goes back to the first record of $m3
# (skipped by 'latest'); the other partitions stay where they are.
pause('grow');
my ($x) = sort { $a <=> $b } map { $_->{offset} } grep { $_->{partition} == 0 } @$m3;
my $before = progress('grow');
q1("SELECT eo_ingest.reset_offsets('grow', '{\"0\": $x}')");
is_deeply(progress('grow'), { %$before, 0 => $x }, "'{\"0\": $x}' moves partition 0 only");
q1("SELECT eo_ingest.resume_pipeline('grow')");
my @reread = grep { $_->{partition} == 0 } @$m3, @$m4;
EoTest::wait_caught_up($node, 'grow', 10000 + @m4_late + @reread);
my @expected_grow = (@$m1, @$m2, @m4_late, @reread);
EoTest::check_rows($node, 'public.grow', \@expected_grow, 'skip',
	label => 'after a per-partition reset');
EoTest::check_offsets($node, 'grow', $kafka, 'grow', 6);

# ---- (e) a stale worker is fenced off ----------------------------------------

$pid = EoTest::worker_pid($node, 'grow');
my $log_pos = -s $node->logfile;
q1("UPDATE eo_ingest.offsets SET generation = generation + 1000 "
	  . "WHERE pipeline_id = (SELECT id FROM eo_ingest.pipelines WHERE name = 'grow')");
my $m5 = $kafka->produce(topic => 'grow', count => 2000, start_id => 60001);
ok($node->wait_for_log(qr/worker 0 was fenced off; exiting/, $log_pos), 'the stale worker refused to commit: fenced off');
my $newpid = EoTest::wait_worker($node, 'grow', $pid, timeout => 30);
ok(defined $newpid, "a new worker ($newpid) replaced the fenced one ($pid)");
my $consumed = 10000 + @m4_late + @reread + 2000;
EoTest::wait_caught_up($node, 'grow', $consumed);
EoTest::check_rows($node, 'public.grow', [ @expected_grow, @$m5 ], 'skip', label => 'after fencing');
EoTest::check_counters($node, 'grow', 'public.grow', $consumed);
EoTest::check_offsets($node, 'grow', $kafka, 'grow', 6);

# ---- (c) alter_pipeline while running ------------------------------------------

$kafka->create_topic('alt', 2);
EoTest::create_orders_table($node, 'public.alt');
my $ma = $kafka->produce(topic => 'alt', count => 1000, start_id => 1, timestamp_base => EoTest::ts_base(1));
EoTest::create_pipeline($node, name => 'alt', brokers => $brokers, topic => 'alt',
	target => 'public.alt', columns => EoTest::update_columns());
EoTest::wait_caught_up($node, 'alt', 1000);
my $mb = $kafka->produce(topic => 'alt', count => 300, start_id => 1, timestamp_base => EoTest::ts_base(2));
EoTest::wait_caught_up($node, 'alt', 1300);
EoTest::check_rows($node, 'public.alt', [ @$ma, @$mb ], 'skip', label => "'skip': the first record wins");

my $batches = q1("SELECT batches FROM eo_ingest.pipeline_status WHERE name = 'alt'");
q1("SELECT eo_ingest.alter_pipeline('alt', batch_size => 50, on_duplicate => 'update')");
is(q1("SELECT on_duplicate || ' ' || batch_size FROM eo_ingest.pipeline_status WHERE name = 'alt'"),
	'update 50', 'pipeline_status shows the altered settings');
sleep 2;
my $mc = $kafka->produce(topic => 'alt', count => 1000, start_id => 1, timestamp_base => EoTest::ts_base(3));
EoTest::wait_caught_up($node, 'alt', 2300);
is(q1("SELECT rows_updated FROM eo_ingest.pipeline_status WHERE name = 'alt'"), 1000,
	"after alter_pipeline(on_duplicate => 'update') the 1000 repeated events updated their rows");
EoTest::check_rows($node, 'public.alt', [ @$ma, @$mb, @$mc ], 'update', label => "'update' after alter: the latest record wins");
my $nb = q1("SELECT batches FROM eo_ingest.pipeline_status WHERE name = 'alt'") - $batches;
cmp_ok($nb, '>=', 20, "1000 records took $nb batches: batch_size 50 is in effect");

# ---- (d) topic deleted and re-created with fewer records ---------------------

$kafka->create_topic('rec', 1);
EoTest::create_orders_table($node, 'public.rec');
my $mr1 = $kafka->produce(topic => 'rec', count => 300, start_id => 40001);
EoTest::create_pipeline($node, name => 'rec', brokers => $brokers, topic => 'rec',
	target => 'public.rec');
EoTest::wait_caught_up($node, 'rec', 300);
$kafka->delete_topic('rec');
$kafka->create_topic('rec', 1);
my $mr2 = $kafka->produce(topic => 'rec', count => 50, start_id => 50001);
$t0 = time;
ok(EoTest::wait_for($node, "SELECT state FROM eo_ingest.pipeline_status WHERE name = 'rec'", 'failed', 90),
	'a pipeline whose stored offset is past the re-created topic ends failed');
note(sprintf('failed %.1f s after the new records were produced', time - $t0));
my $error = q1("SELECT last_error FROM eo_ingest.pipeline_status WHERE name = 'rec'");
note("last_error: $error");
like($error, qr/out of range/, 'last_error says the offset is out of range');
like($error, qr/reset_offsets/, 'last_error says how to reset');
is_deeply(progress('rec'), { 0 => 300 }, 'the stored offset did not move');
EoTest::check_rows($node, 'public.rec', $mr1, 'skip', label => 'nothing of the new topic was skipped into the target');
sleep 2;
is(q1("SELECT state FROM eo_ingest.pipeline_status WHERE name = 'rec'"), 'failed', 'it stays failed');

pause('rec');
q1("SELECT eo_ingest.reset_offsets('rec', 'earliest')");
q1("SELECT eo_ingest.resume_pipeline('rec')");
EoTest::wait_caught_up($node, 'rec', 350);
EoTest::check_rows($node, 'public.rec', [ @$mr1, @$mr2 ], 'skip', label => 'after reset to earliest of the new topic');

ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');

$node->stop;
$kafka->stop;
done_testing();
