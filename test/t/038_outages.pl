
# Broker outages, seen from outside.  Five times the broker is killed with
# -9, stays down for 2 to 45 seconds and comes back; then 100 records are
# produced, and they must be committed within 2 s of being in Kafka (the
# worst of the five counts), however long the outage was.  During outages
# the worker must stop within 2 s when asked: pg_terminate_backend (twice,
# once while it polls, once while its new process waits for the brokers in
# its setup), pg_ctl stop -m fast, and a query of the brokers cancelled by
# statement_timeout.  In the end the target holds exactly the producer's
# records, row by row.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $TOPIC = 'outages';
my $P = 'outages';
my $BOUND = $ENV{EO_RESUME_BOUND} // 2.0;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic($TOPIC, 2);
my $node = EoTest::new_node('outages', conf => "eo_ingest.launcher_naptime = 1s\n");
EoTest::create_orders_table($node, 'public.outages');
EoTest::create_orders_table($node, 'public.paused');

my @all;
my $next_id = 1;

sub produce
{
	my ($n) = @_;
	my $m = $kafka->produce(topic => $TOPIC, count => $n, start_id => $next_id);
	$next_id += $n;
	push @all, @$m;
	return $m;
}

sub committed { return EoTest::committed_count(\@all) }

sub rows { return $node->safe_psql('postgres', 'SELECT count(*) FROM public.outages') }

# Seconds until the process is gone, or undef after 30 s.
sub gone_after
{
	my ($pid, $t0) = @_;
	while (time - $t0 < 30)
	{
		return time - $t0 unless kill 0, $pid;
		sleep 0.02;
	}
	return undef;
}

sub terminate_worker
{
	my ($label) = @_;
	my $pid = EoTest::wait_worker($node, $P);
	my $t0 = time;
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	my $secs = gone_after($pid, $t0);
	ok(defined $secs && $secs < 2, "pg_terminate_backend of the worker $label: gone within 2 s")
	  and note(sprintf('worker %d %s: gone %.2f s after pg_terminate_backend', $pid, $label, $secs));
}

produce(500);
EoTest::create_pipeline($node, name => $P, brokers => $kafka->brokers, topic => $TOPIC,
	target => 'public.outages');
EoTest::wait_caught_up($node, $P, committed());

# A paused pipeline, for reset_offsets during an outage.
EoTest::create_pipeline($node, name => 'paused', brokers => $kafka->brokers, topic => $TOPIC,
	target => 'public.paused');
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('paused')");

my @outages = (5, 2, 20, 10, 45);
my $worst = 0;
for my $i (0 .. $#outages)
{
	my $secs = $outages[$i];
	my $t_kill = time;
	$kafka->kill9;

	if ($i == 0)
	{
		# the worker polls its consumer, then its new process waits for the
		# brokers in its setup
		sleep 2;
		terminate_worker('while it polls');
		EoTest::wait_worker($node, $P);
		sleep 1.5;
		terminate_worker('in its setup');
	}
	elsif ($i == 2)
	{
		my $t0 = time;
		my ($ret, $out, $err) = $node->psql('postgres',
			"SET statement_timeout = '500ms'; SELECT eo_ingest.reset_offsets('paused', 'latest')");
		my $took = time - $t0;
		like($err, qr/statement timeout/, 'reset_offsets with the broker down is cancelled by statement_timeout');
		cmp_ok($took, '<', 2, 'and returns within 2 s')
		  and note(sprintf('reset_offsets cancelled after %.2f s', $took));
	}
	elsif ($i == 4)
	{
		sleep 3;
		my $t0 = time;
		$node->stop('fast');
		my $took = time - $t0;
		cmp_ok($took, '<', 2, 'pg_ctl stop -m fast with the broker down finishes within 2 s')
		  and note(sprintf('pg_ctl stop -m fast took %.2f s', $took));
		$node->start;
	}

	sleep 0.2 while time - $t_kill < $secs;
	my $before = rows();
	$kafka->start;
	produce(100);
	my $t0 = time;
	my $want = $before + 100;
	sleep 0.05 while rows() < $want && time - $t0 < 120;
	my $took = time - $t0;
	$worst = $took if $took > $worst;
	note(sprintf('outage %d (%d s): 100 new records committed %.2f s after they were in Kafka', $i + 1,
		$secs, $took));
	is(rows(), $want, "outage of $secs s: the 100 new records landed");
}
cmp_ok($worst, '<', $BOUND, "after each of 5 outages the new records were committed within $BOUND s")
  and note(sprintf('worst of 5: %.2f s', $worst));

EoTest::wait_caught_up($node, $P, committed());
EoTest::check_rows($node, 'public.outages', \@all, 'skip', label => 'after five outages');
EoTest::check_counters($node, $P, 'public.outages', committed());
EoTest::check_offsets($node, $P, $kafka, $TOPIC, 2);
ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');

$node->stop;
$kafka->stop;
done_testing();
