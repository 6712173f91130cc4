
# Crash loop: two pipelines (one per duplicate policy, one of them with
# synchronous_commit off) ingest a backlog while more records arrive, and are
# interrupted again and again by kill -9 of a pipeline worker (the postmaster
# then reinitializes the whole server) and of the postmaster itself (the node
# is restarted).  Once they have caught up, each target must equal the
# producer's manifest row by row and the exact counters must add up: nothing
# lost, nothing applied twice.

use strict;
use warnings;

use IPC::Run ();
use List::Util qw(shuffle);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $topic = 't011';
my $nparts = 4;
my $backlog = $ENV{EO_CRASH_BACKLOG} // 200_000;
my $live = $ENV{EO_CRASH_LIVE} // 50_000;
my $live_rate = $ENV{EO_CRASH_RATE} // 1_000;
my $worker_kills = 10;
my $postmaster_kills = 5;

srand($ENV{EO_CRASH_SEED} // 11);

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic($topic, $nparts);

# The backlog, all there before the pipelines start.
my $m1 = $kafka->produce(
	topic => $topic,
	count => $backlog,
	start_id => 1,
	dup_ratio => 0.1,
	seed => 1,
	timestamp_base => EoTest::ts_base(0),
	idempotent => 1,
	timeout => 300);

my $node = EoTest::new_node('eo011');
EoTest::create_orders_table($node, 'public.orders_skip');
EoTest::create_orders_table($node, 'public.orders_update');
EoTest::create_pipeline($node,
	name => 'crash_skip',
	brokers => $kafka->brokers,
	topic => $topic,
	target => 'public.orders_skip',
	on_duplicate => 'skip',
	batch_size => \'2000');
# Rows and offsets commit together, so losing the last commits to a crash
# (synchronous_commit off) only means consuming them again.
EoTest::create_pipeline($node,
	name => 'crash_update',
	brokers => $kafka->brokers,
	topic => $topic,
	target => 'public.orders_update',
	on_duplicate => 'update',
	columns => EoTest::update_columns(),
	batch_size => \'5000',
	synchronous_commit => \'false');

# Live traffic during the crashes: transactions of 200 records, every fourth
# aborted, at a steady rate.  Its event numbers overlap the backlog's last
# 1,000 so that newer duplicates of already stored ids arrive mid-crash.
my $live_manifest = $kafka->dir . '/manifest_live.tsv';
my ($p_out, $p_err) = ('', '');
my $producer = IPC::Run::start(
	[
		$EoKafka::PRODUCER, '-b', $kafka->brokers, '-t', $topic,
		'--manifest', $live_manifest,
		'-n', $live, '-s', $backlog - 999,
		'--dup-ratio', '0.1', '--seed', '2',
		'--timestamp-base', EoTest::ts_base(1),
		'--rate', $live_rate,
		'--transactional', 'eo011-live', '--txn-size', '200', '--abort-every', '4'
	],
	'<', \undef, '>', \$p_out, '2>', \$p_err,
	IPC::Run::timeout(600));

sub processed
{
	my ($out, $err) = ('', '');
	EoTest::try_psql($node, 'postgres', <<'EOS', \$out, \$err);
SELECT string_agg((rows_inserted + rows_updated + duplicates_skipped + dead_letters)::text, ' ' ORDER BY name)
  FROM eo_ingest.pipeline_status
EOS
	return $out eq '' ? '?' : $out;
}

my @plan = shuffle(('worker') x $worker_kills, ('postmaster') x $postmaster_kills);
my ($n_worker, $n_postmaster, $orphans) = (0, 0, 0);
my $t0 = time;
for my $what (@plan)
{
	# Let the pipelines get somewhere between two crashes, at a random moment.
	sleep(0.3 + rand(1.7));
	my $progress = processed();
	if ($what eq 'worker')
	{
		my $victim = (qw(crash_skip crash_update))[ int(rand(2)) ];
		my $pid = EoTest::wait_worker($node, $victim, undef, timeout => 60);
		if (!defined $pid)
		{
			fail("worker of $victim found before kill #" . ($n_worker + 1));
			EoTest::diag_status($node);
			last;
		}
		kill 'KILL', $pid;
		$n_worker++;
		note(sprintf('%.1fs: kill -9 worker %d of %s (processed so far: %s)',
			time - $t0, $pid, $victim, $progress));
		# The postmaster reinitializes; wait for the victim's new worker.
		if (!defined EoTest::wait_worker($node, $victim, $pid, timeout => 60))
		{
			fail("worker of $victim back after kill #$n_worker");
			EoTest::diag_status($node);
			last;
		}
	}
	else
	{
		my $r = EoTest::crash_postmaster($node);
		$n_postmaster++;
		$orphans++ if $r->{orphans};
		note(sprintf('%.1fs: kill -9 postmaster with %d children (processed so far: %s)',
			time - $t0, $r->{children}, $progress));
		if (!$r->{started})
		{
			fail("node restarted after postmaster kill #$n_postmaster");
			last;
		}
	}
}
is($n_worker, $worker_kills, "$n_worker workers killed with SIGKILL");
is($n_postmaster, $postmaster_kills, "$n_postmaster postmasters killed with SIGKILL");
is($orphans, 0, 'no child of a killed postmaster outlived it by 10 s');

ok(eval { $producer->finish }, 'live producer finished') or diag("$p_err$@");
my $m2 = EoKafka::read_manifest($live_manifest);
my @manifest = (@$m1, @$m2);
my $committed = EoTest::committed_count(\@manifest);
my $aborted = @manifest - $committed;
is(scalar @manifest, $backlog + $live, 'every record acknowledged');

EoTest::wait_caught_up($node, 'crash_skip', $committed, timeout => 300);
EoTest::wait_caught_up($node, 'crash_update', $committed, timeout => 300);

my $n_skip = EoTest::check_rows($node, 'public.orders_skip', \@manifest, 'skip');
my $n_update = EoTest::check_rows($node, 'public.orders_update', \@manifest, 'update');
EoTest::check_counters($node, 'crash_skip', 'public.orders_skip', $committed);
EoTest::check_counters($node, 'crash_update', 'public.orders_update', $committed);
EoTest::check_offsets($node, 'crash_skip', $kafka, $topic, $nparts);
EoTest::check_offsets($node, 'crash_update', $kafka, $topic, $nparts);
is($node->safe_psql('postgres', 'SELECT count(*) FROM eo_ingest.dead_letters'),
	0, 'no dead letters');

my $summary = sprintf(
	'crash loop: %d records produced (%d committed, %d aborted), %d worker kills, '
	  . '%d postmaster kills in %.0f s; rows checked: %d (skip), %d (update)',
	scalar @manifest, $committed, $aborted, $n_worker, $n_postmaster,
	time - $t0, $n_skip, $n_update);
diag($summary);

$node->stop;
$kafka->stop;
done_testing();
