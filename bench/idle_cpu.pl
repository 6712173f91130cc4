
# Idle cost: 20 pipelines with nothing to ingest (18 running on an empty
# topic, one failed on a missing topic, one retrying on a dead address), and
# the CPU their workers use over 60 s, from /proc/<pid>/stat.  Run through
# the test harness:
#   TAP_TESTS_FILES=bench/idle_cpu.pl EO_SUITES=tapcheck scripts/test.sh

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $N = $ENV{EO_IDLE_PIPELINES} // 20;
my $SECS = $ENV{EO_IDLE_SECONDS} // 60;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('idle', 1);
my $node = EoTest::new_node('idle', conf => "eo_ingest.grace_period = 5s\n");
for my $i (1 .. $N)
{
	EoTest::create_orders_table($node, "public.idle$i");
	my ($brokers, $topic) = ($kafka->brokers, 'idle');
	$topic = 'missing' if $i == 1;
	$brokers = '127.0.0.1:1' if $i == 2;
	EoTest::create_pipeline($node, name => "idle$i", brokers => $brokers, topic => $topic,
		target => "public.idle$i");
}
ok(EoTest::wait_for($node,
		"SELECT count(*) FROM eo_ingest.pipeline_status WHERE state IN ('running', 'failed', 'retrying') AND worker_pid IS NOT NULL",
		$N, 60),
	"$N workers up");
sleep 10;    # the failed one gives up after grace_period

my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK());
my @pids = split /\n/, $node->safe_psql('postgres',
	'SELECT worker_pid FROM eo_ingest.pipeline_status WHERE worker_pid IS NOT NULL');

sub ticks
{
	my $sum = 0;
	for my $pid (@pids)
	{
		open my $fh, '<', "/proc/$pid/stat" or next;
		my @f = split / /, (split /\) /, scalar <$fh>)[1];
		$sum += $f[11] + $f[12];    # utime, stime
	}
	return $sum;
}

my $xacts0 = $node->safe_psql('postgres', 'SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()');
my $t0 = ticks();
sleep $SECS;
my $cpu = (ticks() - $t0) / $hz;
my $xacts = $node->safe_psql('postgres', 'SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()') - $xacts0;
note($node->safe_psql('postgres', 'SELECT state, count(*) FROM eo_ingest.pipeline_status GROUP BY 1 ORDER BY 1'));
note(sprintf('IDLE %d workers, %d s: %.2f CPU s in all (%.2f%% of one core), %d transactions in the database',
	scalar @pids, $SECS, $cpu, 100 * $cpu / $SECS, $xacts));
ok(1, 'measured');

$node->stop;
$kafka->stop;
done_testing();
