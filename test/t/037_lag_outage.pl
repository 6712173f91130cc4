
# lag through a broker outage.  pipeline_status.lag and partition_progress.lag
# are sampled every 0.2 s while the broker is killed, while it is down, and
# while records produced right after its restart wait; every sample must be
# NULL (unknown) or come from a watermark read at most 5 s old
# (watermarks_at), and once the brokers were asked after the records were
# produced, lag is never below what waits.  During the outage lag turns
# NULL within a few seconds; it is never 0 while records wait.  The same
# while the broker hangs (SIGSTOP): no error, only fetches left unanswered.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('t037', 2);

my $node = EoTest::new_node('eo037');
EoTest::create_orders_table($node, 'public.orders');
EoTest::create_pipeline($node, name => 'lag', brokers => $kafka->brokers,
	topic => 't037', target => 'public.orders', batch_size => \'500');
my @m = @{ $kafka->produce(topic => 't037', count => 2_000, timestamp_base => EoTest::ts_base(0)) };
EoTest::wait_caught_up($node, 'lag', EoTest::committed_count(\@m));
is($node->safe_psql('postgres', <<'EOS'), 't|t', 'caught up: lag 0 from a watermark read just now');
SELECT s.watermarks_at > now() - interval '5 s',
	   (SELECT bool_and(lag = 0 AND watermarks_at > now() - interval '5 s')
		  FROM eo_ingest.partition_progress WHERE pipeline = 'lag')
  FROM eo_ingest.pipeline_status s WHERE name = 'lag'
EOS

# One sample: pipeline lag, its watermarks_at age (s), records waiting
# (produced minus next offsets), the partitions' lags and their watermark
# ages, whether the pipeline's watermarks were read after $since.
my @bad;
my @samples;
sub sample
{
	my ($label, $since) = @_;
	my $produced = scalar @m;
	# what waits is read by a second statement, after the lags: nothing is
	# produced while sampling, so it can only be less than when lag was read
	my $r = $node->safe_psql('postgres', <<"EOS");
SELECT coalesce(s.lag::text, 'NULL'),
	   coalesce(extract(epoch FROM clock_timestamp() - s.watermarks_at)::numeric(10,1)::text, 'NULL'),
	   (SELECT string_agg(coalesce(lag::text, 'NULL'), ',' ORDER BY partition)
		  FROM eo_ingest.partition_progress WHERE pipeline = 'lag'),
	   (SELECT bool_and(lag IS NULL OR watermarks_at > clock_timestamp() - interval '6 s')
		  FROM eo_ingest.partition_progress WHERE pipeline = 'lag'),
	   coalesce(s.watermarks_at > '$since'::timestamptz, false)
  FROM eo_ingest.pipeline_status s WHERE name = 'lag';
SELECT $produced - sum(next_offset) FROM eo_ingest.partition_progress WHERE pipeline = 'lag';
EOS
	my ($first, $waiting) = split /\n/, $r;
	my ($lag, $age, $plags, $pfresh, $after) = split /\|/, $first;
	push @samples, "$label lag=$lag age=$age waiting=$waiting partitions=$plags";
	push @bad, "$label: lag $lag from a read ${age}s old" if $lag ne 'NULL' && ($age eq 'NULL' || $age > 6);
	push @bad, "$label: a partition's lag from a stale read ($plags)" if $pfresh ne 't';
	push @bad, "$label: lag $lag below the $waiting records waiting, from a read after they were produced"
	  if $lag ne 'NULL' && $after eq 't' && $lag < $waiting;
	return ($lag, $waiting, $after);
}

# Samples for $secs s from $t0: the first time lag was NULL, or undef; it
# must be NULL from 7 s on.  With $down_at (the server's clock when the
# broker stopped answering), a lag shown must be as of before it: nothing
# can vouch for a later moment.
sub lag_turns_null
{
	my ($label, $t0, $secs, $down_at) = @_;
	my $null_at;
	while (time - $t0 < $secs)
	{
		my ($lag, $waiting, $after) =
		  sample(sprintf('%s +%.1fs', $label, time - $t0), $down_at // '-infinity');
		$null_at //= time - $t0 if $lag eq 'NULL';
		push @bad, sprintf('%s +%.1fs: lag %s, not NULL', $label, time - $t0, $lag)
		  if time - $t0 > 7 && $lag ne 'NULL';
		push @bad, sprintf('%s +%.1fs: lag %s as of after the broker stopped answering', $label,
			time - $t0, $lag)
		  if defined $down_at && $lag ne 'NULL' && $after eq 't';
		sleep 0.2;
	}
	return $null_at;
}

my $t_kill = time;
$kafka->kill9;
my $null_at = lag_turns_null('outage', $t_kill, 12);
ok(defined $null_at, 'lag turns NULL during the outage'
	  . (defined $null_at ? sprintf(' (after %.1f s)', $null_at) : ''));

$kafka->restart;
push @m, @{ $kafka->produce(topic => 't037', count => 5_000, start_id => 2_001,
	timestamp_base => EoTest::ts_base(1)) };
my $since = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
my $t_restart = time;
while (time - $t_restart < 60)
{
	my ($lag, $waiting) = sample(sprintf('after restart +%.1fs', time - $t_restart), $since);
	last if $lag eq '0' && $waiting == 0;
	sleep 0.2;
}
EoTest::wait_caught_up($node, 'lag', EoTest::committed_count(\@m));

# a backlog with the broker up (produced while the pipeline is paused, so
# that it waits whatever the machine's speed): lag is read while it drains
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('lag')");
EoTest::wait_for($node, "SELECT worker_pid IS NULL FROM eo_ingest.pipeline_status WHERE name = 'lag'", 't');
push @m, @{ $kafka->produce(topic => 't037', count => 100_000, start_id => 7_001,
	timestamp_base => EoTest::ts_base(2)) };
$since = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('lag')");
my $positive = 0;
my $t_backlog = time;
while (time - $t_backlog < 60)
{
	my ($lag, $waiting) = sample(sprintf('backlog +%.1fs', time - $t_backlog), $since);
	$positive++ if $lag ne 'NULL' && $lag > 0;
	last if $lag eq '0' && $waiting == 0;
	sleep 0.2;
}
ok($positive > 0, "lag was read while the backlog drained ($positive samples above 0)");
is_deeply(\@bad, [], 'every lag sample is NULL or from a fresh read, and not below what waits once read after it')
  or diag(join("\n", @samples));
note(join("\n", @samples));

EoTest::wait_caught_up($node, 'lag', EoTest::committed_count(\@m));
EoTest::check_rows($node, 'public.orders', \@m, 'skip', label => 'exactly once across the outage');

# a hung broker (SIGSTOP): its connections stay open and nothing fails, but
# it answers no fetch.  An idle worker takes lag 0 from its fetch responses
# (src/fetch_clock.c) only while they keep coming, and as of when they were
# asked for: lag must turn NULL, and every sample meanwhile be NULL or as of
# a moment before the broker hung.
ok(EoTest::wait_for($node, "SELECT lag = 0 FROM eo_ingest.pipeline_status WHERE name = 'lag'", 't'),
	'idle before the broker hangs: lag 0');
my $kpid = $kafka->pid;
my $hung_at = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
kill 'STOP', $kpid;
my $hung_null_at = lag_turns_null('hung', time, 10, $hung_at);
kill 'CONT', $kpid;
ok(defined $hung_null_at, 'lag turns NULL while the broker hangs'
	  . (defined $hung_null_at ? sprintf(' (after %.1f s)', $hung_null_at) : ''));
EoTest::wait_for($node, "SELECT lag = 0 FROM eo_ingest.pipeline_status WHERE name = 'lag'", 't');
is_deeply(\@bad, [], 'every lag sample while the broker hung is NULL or from a fresh read')
  or diag(join("\n", @samples));

# a paused pipeline has no worker: lag unknown
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('lag')");
is($node->safe_psql('postgres', <<'EOS'), '0|0', 'paused: lag NULL in both views');
SELECT (SELECT count(lag) FROM eo_ingest.pipeline_status WHERE name = 'lag'),
	   (SELECT count(lag) FROM eo_ingest.partition_progress WHERE pipeline = 'lag')
EOS

ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');
$node->stop;
$kafka->teardown;
done_testing();
