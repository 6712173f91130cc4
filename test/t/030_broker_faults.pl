
# Broker faults: the broker stopped for a minute while a pipeline works
# through a backlog, killed with SIGKILL while the pipeline is idle and while
# it ingests, a pipeline pointed at a dead address and one pointed at a topic
# that does not exist.  Each pipeline must say what is wrong (state
# 'retrying' or 'failed' with last_error), recover by itself once the broker
# is back, and in the end hold exactly the producer's committed records, row
# by row.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $OUTAGE = $ENV{EO_OUTAGE_SECONDS} // 60;

# ---- helpers ----------------------------------------------------------------

# Waits until $sql returns 't'; returns the seconds waited, undef on timeout.
sub wait_secs
{
	my ($node, $sql, $timeout) = @_;
	my $t0 = time;
	while (time - $t0 < ($timeout // 120))
	{
		my ($out, $err) = ('', '');
		my $ret = EoTest::try_psql($node, 'postgres', $sql, \$out, \$err);
		return time - $t0 if defined $ret && $ret == 0 && $out eq 't';
		sleep 0.5;
	}
	return undef;
}

sub status
{
	my ($node, $pipeline) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT state, coalesce(last_error, ''), coalesce(worker_pid, 0), rows_inserted, "
		  . "rows_updated, duplicates_skipped, dead_letters, coalesce(lag, -1) "
		  . "FROM eo_ingest.pipeline_status WHERE name = '$pipeline'");
	my %s;
	@s{qw(state last_error worker_pid inserted updated skipped dead lag)} =
	  split /\|/, $out, 8;
	return \%s;
}

# Running, lag 0 and exactly $n records processed.
sub caught_up_sql
{
	my ($pipeline, $n) = @_;
	return "SELECT state = 'running' AND lag = 0 AND "
	  . "rows_inserted + rows_updated + duplicates_skipped + dead_letters = $n "
	  . "FROM eo_ingest.pipeline_status WHERE name = '$pipeline'";
}

sub retrying_sql
{
	my ($pipeline) = @_;
	return "SELECT state = 'retrying' AND last_error <> '' "
	  . "FROM eo_ingest.pipeline_status WHERE name = '$pipeline'";
}

# ---- setup ----------------------------------------------------------------

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('broker_faults', conf => <<'EOC');
eo_ingest.launcher_naptime = 2s
eo_ingest.retry_max_delay = 4s
EOC
my $brokers = $kafka->brokers;

$kafka->create_topic('bf', 3);
EoTest::create_orders_table($node, $_)
  for qw(public.bf public.badaddr public.notopic);

# A pipeline that cannot reach any broker, and one whose topic is missing:
# both stay around during the whole test, next to the healthy one.
EoTest::create_pipeline($node, name => 'badaddr', brokers => '127.0.0.1:1',
	topic => 'bf', target => 'public.badaddr');
EoTest::create_pipeline($node, name => 'notopic', brokers => $brokers,
	topic => 'no_such_topic', target => 'public.notopic');

# ---- 1. clean stop for a minute while ingesting a backlog -------------------

my $m1 = $kafka->produce(topic => 'bf', count => 60000, start_id => 1);

# Small fetches and a small local queue, so the worker depends on the broker
# all along instead of draining a prefetched copy of the whole backlog.
EoTest::create_pipeline($node, name => 'bf', brokers => $brokers, topic => 'bf',
	target => 'public.bf', batch_size => \'200',
	kafka_options => '{"queued.max.messages.kbytes": 64, "fetch.message.max.bytes": 16384}');
ok(defined wait_secs($node, "SELECT rows_inserted > 500 FROM eo_ingest.pipeline_status WHERE name = 'bf'", 60),
	'pipeline bf started ingesting the backlog');

my $t_stop = time;
$kafka->stop;
my $at_stop = status($node, 'bf');
note(sprintf('broker stopped in %.1f s; %d of 60000 rows in', time - $t_stop, $at_stop->{inserted}));
cmp_ok($at_stop->{inserted}, '<', 60000, 'the broker went away mid-backlog');

my $waited = wait_secs($node, retrying_sql('bf'), $OUTAGE);
ok(defined $waited, 'bf is retrying while the broker is down')
  and note(sprintf('bf retrying %.1f s after the stop: %s', time - $t_stop,
	status($node, 'bf')->{last_error}));
my $rows_down = $node->safe_psql('postgres', 'SELECT count(*) FROM public.bf');

# What the two broken pipelines say meanwhile.
my $bad = status($node, 'badaddr');
note("badaddr: state $bad->{state}, last_error: $bad->{last_error}");
like($bad->{state}, qr/^(retrying|failed)$/, 'a pipeline with an unreachable broker is retrying or failed');
like($bad->{last_error}, qr/transport|connect|timed out|brokers? .*down/i,
	'its last_error says the brokers cannot be reached');
is($bad->{inserted}, 0, 'it stored nothing');

sleep 1 while time - $t_stop < $OUTAGE;
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.bf'),
	$rows_down, 'nothing was stored while the broker was down');
is(status($node, 'bf')->{state}, 'retrying', "bf still retrying after ${OUTAGE} s");
$kafka->start;
my $t_start = time;

$waited = wait_secs($node, caught_up_sql('bf', 60000), 180);
ok(defined $waited, 'bf caught up after the broker came back')
  and note(sprintf('bf caught up %.1f s after the start', time - $t_start));
EoTest::check_rows($node, 'public.bf', $m1, 'skip', label => 'after a one-minute clean stop');
EoTest::check_counters($node, 'bf', 'public.bf', 60000);

# ---- 2. kill -9 while the pipeline is idle ----------------------------------

$t_stop = time;
$kafka->kill9;
$waited = wait_secs($node, retrying_sql('bf'), $OUTAGE);
ok(defined $waited, 'an idle pipeline notices the killed broker: retrying')
  and note(sprintf('idle bf retrying %.1f s after kill -9: %s', time - $t_stop,
	status($node, 'bf')->{last_error}));
sleep 1 while time - $t_stop < $OUTAGE / 2;
$kafka->start;
$t_start = time;
ok(defined wait_secs($node, "SELECT state = 'running' FROM eo_ingest.pipeline_status WHERE name = 'bf'", 120),
	'the idle pipeline is running again without new records')
  and note(sprintf('running again %.1f s after the start', time - $t_start));

# ---- 3. kill -9 while ingesting ---------------------------------------------

my $m2 = $kafka->produce(topic => 'bf', count => 40000, start_id => 100001, dup_ratio => 0.1);
my $total = 60000 + EoTest::committed_count($m2);
ok(defined wait_secs($node,
		"SELECT rows_inserted + duplicates_skipped > 65000 FROM eo_ingest.pipeline_status WHERE name = 'bf'", 60),
	'bf ingests the second backlog');
$t_stop = time;
$kafka->kill9;
$at_stop = status($node, 'bf');
cmp_ok($at_stop->{inserted} + $at_stop->{skipped}, '<', $total, 'the broker died mid-backlog');
$waited = wait_secs($node, retrying_sql('bf'), 60);
ok(defined $waited, 'bf retrying after kill -9 mid-backlog')
  and note(sprintf('retrying %.1f s after kill -9', time - $t_stop));
sleep 1 while time - $t_stop < 20;
$kafka->start;
$t_start = time;
$waited = wait_secs($node, caught_up_sql('bf', $total), 180);
ok(defined $waited, 'bf caught up after kill -9 and start')
  and note(sprintf('caught up %.1f s after the start', time - $t_start));
EoTest::check_rows($node, 'public.bf', [ @$m1, @$m2 ], 'skip', label => 'after kill -9 of the broker');
EoTest::check_counters($node, 'bf', 'public.bf', $total);
EoTest::check_offsets($node, 'bf', $kafka, 'bf', 3);
is(status($node, 'bf')->{state}, 'running', 'bf is running');

# The topic-less pipeline has had minutes to give up.
my $notopic = status($node, 'notopic');
note("notopic at the end: state $notopic->{state}, last_error: $notopic->{last_error}");
like($notopic->{state}, qr/^(retrying|failed)$/, 'a pipeline on a missing topic is retrying or failed');
like($notopic->{last_error}, qr/no_such_topic/, 'its last_error names the missing topic');
like($notopic->{last_error}, qr/unknown topic|not available|does not exist/i,
	'its last_error says the topic is unknown');
is($notopic->{state}, 'failed', 'a missing topic ends failed after the grace period');


# ---- 4. the missing topic appears -----------------------------------------

$kafka->create_topic('no_such_topic', 2);
my $m3 = $kafka->produce(topic => 'no_such_topic', count => 500, start_id => 500001);
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('notopic')");
ok(defined wait_secs($node, caught_up_sql('notopic', 500), 120),
	'notopic ingests once the topic exists and the pipeline is resumed');
EoTest::check_rows($node, 'public.notopic', $m3, 'skip', label => 'topic created late');

$bad = status($node, 'badaddr');
like($bad->{state}, qr/^(retrying|failed)$/, 'badaddr still retrying or failed at the end');
note("badaddr at the end: state $bad->{state}, last_error: $bad->{last_error}");

ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');

$node->stop;
$kafka->stop;
done_testing();
