
# Parking (eo_ingest.park_after, src/park.c, src/watcher.c).  With
# park_after = 2 s, idle caught-up workers hand their partitions to the one
# watcher process and destroy their librdkafka consumers (no rdk: thread
# left in the worker).  Pipelines: two on the same topic (a, b), one with
# workers => 2 on a 4-partition topic (c), one over SASL_SSL (s).  While
# parked: a new record is visible within a generous bound (the latency is
# printed); records with duplicates and a transactional producer that
# aborts every third transaction wake the workers, and the targets hold
# exactly what was produced, row by row, with offsets at the topics' ends
# and lag back to 0.  Then the watcher stopped (SIGSTOP: workers must not
# wait on it), terminated (SIGTERM) and killed (-9, a crash restart); a
# parked worker killed -9; alter, pause, resume and drop of a parked
# pipeline; partitions added to a parked topic; the broker stopped while
# parked: lag turns NULL, never a stale 0, and comes back after the restart.
# No password shows in the log.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $PLAIN_PW = 'plain-Pw-39a6e2c1';
my $certs = EoKafka::make_certs("$PostgreSQL::Test::Utils::tmp_check/certs_039");
my $ssl_port = EoKafka::free_port();
my $kafka = EoKafka->new(
	extra_listeners => "SASL_SSL://127.0.0.1:$ssl_port",
	extra_config => EoKafka::sasl_ssl_config($certs, alice => $PLAIN_PW));
$kafka->start;

my $node = EoTest::new_node('parking', conf => <<'EOC');
log_statement = none
eo_ingest.park_after = 2s
eo_ingest.launcher_naptime = 1s
eo_ingest.retry_max_delay = 2s
EOC

$kafka->create_topic('p1', 1);
$kafka->create_topic('p4', 4);
$kafka->create_topic('ps', 1);
EoTest::create_orders_table($node, "public.$_") for qw(a b c s);
EoTest::create_pipeline($node, name => 'a', brokers => $kafka->brokers, topic => 'p1',
	target => 'public.a');
EoTest::create_pipeline($node, name => 'b', brokers => $kafka->brokers, topic => 'p1',
	target => 'public.b');
EoTest::create_pipeline($node, name => 'c', brokers => $kafka->brokers, topic => 'p4',
	target => 'public.c', workers => \'2');
my $sasl = qq({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "alice", )
  . qq("sasl.password": "$PLAIN_PW", "ssl.ca.location": "$certs->{ca}"});
EoTest::create_pipeline($node, name => 's', brokers => "127.0.0.1:$ssl_port", topic => 'ps',
	target => 'public.s', kafka_options => $sasl);

my %topic = (a => 'p1', b => 'p1', c => 'p4', s => 'ps');
my %parts = (p1 => 1, p4 => 4, ps => 1);
my %m = (p1 => [], p4 => [], ps => []);
my $next_id = 1;

sub produce
{
	my ($t, $n, %o) = @_;
	my $m = $kafka->produce(topic => $t, count => $n, start_id => $next_id, %o);
	$next_id += $n + 10;
	push @{ $m{$t} }, @$m;
	return $m;
}

# every pipeline caught up, its target exactly what was produced
sub check_all
{
	my ($label) = @_;
	for my $p (sort keys %topic)
	{
		my $t = $topic{$p};
		my $n = EoTest::committed_count($m{$t});
		EoTest::wait_caught_up($node, $p, $n, timeout => 120);
		EoTest::check_rows($node, "public.$p", $m{$t}, 'skip')
		  or diag("$label: rows of $p differ");
		EoTest::check_counters($node, $p, "public.$p", $n);
		# an aborted transaction moves the end past records that never
		# count as lag: the offsets follow when the watcher sees the end move
		my $end = EoTest::end_offsets($kafka, $t, $parts{$t});
		EoTest::wait_for($node, "SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition) "
			  . "FROM eo_ingest.partition_progress WHERE pipeline = '$p'",
			join(',', map { "$_:$end->{$_}" } sort { $a <=> $b } keys %$end), 30);
		EoTest::check_offsets($node, $p, $kafka, $t, $parts{$t});
	}
}

sub worker_pids
{
	my ($p) = @_;
	my $sql = 'SELECT string_agg(s.pid::text, \' \' ORDER BY s.worker) FROM eo_ingest._worker_status() s '
	  . "JOIN eo_ingest.pipelines p ON p.id = s.pipeline_id WHERE p.name = '$p'";
	my ($out, $err) = ('', '');
	EoTest::try_psql($node, 'postgres', $sql, \$out, \$err);
	return grep { /^\d+$/ } split ' ', $out;
}

# librdkafka's threads of a process
sub rdk_threads
{
	my ($pid) = @_;
	my $n = 0;
	for my $f (glob("/proc/$pid/task/*/comm"))
	{
		open(my $fh, '<', $f) or next;
		my $c = <$fh> // '';
		close $fh;
		$n++ if $c =~ /^rdk:/;
	}
	return $n;
}

# the watcher connects to no database: not in pg_stat_activity
sub watcher_pid
{
	my ($pm) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	my @w = grep { $_->[1] =~ /eo_ingest watcher/ } EoTest::_children_of($pm);
	return @w == 1 ? $w[0][0] : undef;
}

sub gone
{
	my ($pid) = @_;
	my $deadline = time + 30;
	sleep 0.1 while kill(0, $pid) && time < $deadline;
	return !kill(0, $pid);
}

# every worker of every pipeline (or of @only) has no librdkafka thread
sub wait_parked
{
	my ($label, @only) = @_;
	@only = sort keys %topic unless @only;
	my $want = 0;
	$want += $_ eq 'c' ? 2 : 1 for @only;
	my $deadline = time + 60;
	my @pids;
	while (time < $deadline)
	{
		@pids = map { worker_pids($_) } @only;
		last if @pids == $want && !grep { rdk_threads($_) > 0 } @pids;
		sleep 0.2;
	}
	my @busy = grep { rdk_threads($_) > 0 } @pids;
	ok(@pids == $want && !@busy, "$label: workers of @only parked (no rdk: threads in @pids)")
	  or EoTest::diag_status($node);
	return @pids;
}

# lag 0 shown while parked, from a fresh watermark
sub check_parked_lag
{
	my ($label) = @_;
	ok(EoTest::wait_for($node, <<'EOS', 't', 20), "$label: parked pipelines show lag 0 from a fresh stamp");
SELECT bool_and(lag = 0 AND watermarks_at > now() - interval '5 s') FROM eo_ingest.pipeline_status
EOS
}

# start: everything ingested, then parked
produce('p1', 300, dup_ratio => 0.1);
produce('p4', 1000, dup_ratio => 0.1);
produce('ps', 200);
check_all('start');
my @parked = wait_parked('start');
is($node->safe_psql('postgres', "SELECT string_agg(DISTINCT query, ',') FROM pg_stat_activity WHERE pid IN ("
	  . join(', ', @parked) . ')'), 'parked', 'pg_stat_activity shows the workers parked');
my $watcher = watcher_pid();
ok(defined $watcher, 'the watcher runs (' . ($watcher // 'none') . ')');
ok(rdk_threads($watcher) > 0, 'the watcher has librdkafka threads') if defined $watcher;
check_parked_lag('start');

# private memory of a parked worker, for the record
{
	my $kb = 0;
	if (open(my $fh, '<', "/proc/$parked[0]/smaps_rollup"))
	{
		while (<$fh>) { $kb += $1 if /^Private_(?:Clean|Dirty):\s+(\d+) kB/ }
		close $fh;
	}
	note("private memory of a parked worker: $kb kB");
	ok($kb > 0 && $kb < 5 * 1024, 'a parked worker keeps less than 5 MB of private memory');
}

# a new record while parked: visible on both pipelines of p1
{
	my $t0 = time;
	my $m = produce('p1', 1);
	my $id = $m->[0]{event_id};
	my $seen;
	while (time - $t0 < 30)
	{
		last if ($seen = $node->safe_psql('postgres',
			"SELECT (SELECT count(*) FROM public.a WHERE event_id = '$id') + (SELECT count(*) FROM public.b WHERE event_id = '$id')")) == 2;
		sleep 0.005;
	}
	my $lat = time - $t0;
	note(sprintf('a new record on a parked topic visible on both pipelines after %.0f ms (produce included)', $lat * 1000));
	ok($seen == 2 && $lat < 10, 'a record produced while parked is visible within 10 s');
}
check_all('one record');
wait_parked('after one record');

# duplicates, and a transactional producer aborting every third transaction
produce('p4', 2000, dup_ratio => 0.2);
produce('p1', 500, transactional => 'p39', txn_size => 50, abort_every => 3);
check_all('duplicates and aborted transactions while parked');
@parked = wait_parked('after transactions');

# an aborted transaction alone: nothing to write, the offsets still move
produce('p1', 20, transactional => 'p39b', txn_size => 20, abort_every => 1);
check_all('an aborted transaction alone');
wait_parked('after an aborted transaction');

# the watcher stopped: workers must not wait on it
$watcher = watcher_pid();
kill 'STOP', $watcher;
{
	my $t0 = time;
	my $m = produce('p4', 100);
	check_all('watcher stopped');
	note(sprintf('with the watcher stopped, 100 records ingested after %.1f s', time - $t0));
}
kill 'CONT', $watcher;
wait_parked('after SIGCONT');

# the watcher terminated: workers unpark, keep working, park again with a new one
kill 'TERM', $watcher;
ok(gone($watcher), 'the watcher exits on SIGTERM');
produce('p1', 100);
produce('ps', 100);
check_all('watcher terminated');
wait_parked('after SIGTERM');
isnt(watcher_pid(), $watcher, 'a new watcher watches');

# the watcher killed -9: a crash restart; nothing lost or doubled
$watcher = watcher_pid();
kill 'KILL', $watcher;
sleep 1;
produce('p4', 300, dup_ratio => 0.1);
produce('p1', 100);
check_all('watcher killed');
wait_parked('after the watcher was killed');

# a parked worker killed -9
@parked = worker_pids('c');
kill 'KILL', $parked[0];
sleep 1;
produce('p4', 300);
check_all('parked worker killed');
wait_parked('after a parked worker was killed');

# alter, pause, resume, drop parked pipelines
$node->safe_psql('postgres', "SELECT eo_ingest.alter_pipeline('a', batch_size => 777)");
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('b')");
produce('p1', 50);
EoTest::wait_caught_up($node, 'a', EoTest::committed_count($m{p1}));
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('b')");
check_all('alter, pause, resume');
wait_parked('after alter, pause, resume');

# partitions added to a parked topic, records only in a new one: the
# watcher's metadata request (every 30 s) wakes the workers
$kafka->add_partitions('p1', 3);
$parts{p1} = 3;
produce('p1', 200, partition => 2);
check_all('partitions added');
wait_parked('after partitions were added');

# the broker stopped while parked: lag NULL, never a stale 0
$kafka->stop;
ok(EoTest::wait_for($node, 'SELECT bool_and(lag IS NULL) FROM eo_ingest.pipeline_status', 't', 30),
	'broker stopped: lag NULL');
$kafka->start;
produce('p1', 50);
produce('p4', 50);
produce('ps', 50);
check_all('broker restarted');
wait_parked('after the broker restart');
check_parked_lag('after the broker restart');

# a dropped parked pipeline: its worker goes, the others stay parked
my @b = worker_pids('b');
$node->safe_psql('postgres', "SELECT eo_ingest.drop_pipeline('b')");
delete $topic{b};
ok(EoTest::wait_for($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $b[0]", '0', 30),
	'the dropped pipeline\'s worker exits');
produce('p1', 10);
check_all('after drop');

$node->stop;
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$PLAIN_PW\E/, 'the password never shows in the log');
unlike($log, qr/TRAP|server process .* was terminated by signal (?!9)/, 'no assertion or crash other than the kill -9s');

$kafka->teardown;
done_testing();
