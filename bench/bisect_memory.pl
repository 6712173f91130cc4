
# Bisection memory: one batch of 50,000 records of which 5 % (every 20th) fail
# a CHECK constraint while being written, so the writer bisects down to 2,500
# scattered records.  Samples the worker's memory (/proc/PID/status) every
# 50 ms while it drains and reports the peak RssAnon (private memory) and
# VmHWM.  Run with the TAP harness:
#
#   EO_SUITES=tapcheck TAP_TESTS_FILES=bench/bisect_memory.pl scripts/test.sh
#   (PROVE_FLAGS=-v to see the figures)

use strict;
use warnings;

use Time::HiRes qw(time sleep);
use Test::More;
use EoKafka;
use EoTest;

my $n = $ENV{EO_BISECT_RECORDS} // 50_000;
my $every = $ENV{EO_BISECT_EVERY} // 20;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('bisect_memory');
EoTest::create_orders_table($node, 'public.bm');
$node->safe_psql('postgres', 'ALTER TABLE public.bm ADD CHECK (seq >= 0)');

$kafka->create_topic('bm', 1);
my @msgs;
my $bad = 0;
for my $i (1 .. $n)
{
	my $seq = $i % $every == 0 ? -1 : $i;
	$bad++ if $seq < 0;
	push @msgs, { key => "k$i", value => sprintf(
		'{"event_id":"%08x-0000-4000-8000-000000000000","seq":%d,"customer_id":1,'
		  . '"amount":"1.00","note":"n","created_at":"2024-01-01T00:00:00Z"}', $i, $seq) };
}
$kafka->kcat_produce('bm', \@msgs);

EoTest::create_pipeline($node, name => 'bm', brokers => $kafka->brokers, topic => 'bm',
	target => 'public.bm', batch_size => \"$n", batch_timeout => \'10000');
my $pid = EoTest::wait_worker($node, 'bm');
my ($rss, $hwm, $done) = (0, 0, 0);
my $start = time;
while (!$done && time - $start < 900)
{
	for (1 .. 10)
	{
		open(my $fh, '<', "/proc/$pid/status") or last;
		while (<$fh>)
		{
			$rss = $1 if /^RssAnon:\s+(\d+)/ && $1 > $rss;
			$hwm = $1 if /^VmHWM:\s+(\d+)/;
		}
		close $fh;
		sleep 0.05;
	}
	$done = $node->safe_psql('postgres',
		"SELECT lag = 0 AND dead_letters = $bad AND rows_inserted = $n - $bad "
		  . "FROM eo_ingest.pipeline_status WHERE name = 'bm'") eq 't';
}
ok($done, "drained $n records, $bad dead letters");
is($node->safe_psql('postgres', 'SELECT count(*), count(*) FILTER (WHERE seq < 0) FROM public.bm'),
	($n - $bad) . '|0', 'every good record landed, no bad one');
my $subx = $node->safe_psql('postgres',
	"SELECT subtransactions FROM eo_ingest.pipeline_status WHERE name = 'bm'");
diag(sprintf('BISECT records %d bad %d seconds %.1f subtransactions %s peak RssAnon %d kB VmHWM %d kB',
		$n, $bad, time - $start, $subx, $rss, $hwm));

$node->stop;
$kafka->stop;
done_testing();
