
# More pipelines than processes to run them in.  40 pipelines with
# max_worker_processes = 8: the ones that got no worker are 'starting' and
# their last_error says they wait for a background worker slot and that
# max_worker_processes is the setting to raise; dropping the running ones
# lets the waiting ones start by themselves, and they ingest exactly once.
# Then the same with eo_ingest.max_workers as the limit.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $N = 40;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('t036', 1);

my $node = EoTest::new_node('eo036', conf => <<'EOC');
max_worker_processes = 8
max_parallel_workers = 0
eo_ingest.launcher_naptime = 3600
EOC
my $m = $kafka->produce(topic => 't036', count => 300, dup_ratio => 0.05,
	timestamp_base => EoTest::ts_base(0));

for my $i (1 .. $N)
{
	EoTest::create_orders_table($node, "public.o$i");
	EoTest::create_pipeline($node, name => "p$i", brokers => $kafka->brokers,
		topic => 't036', target => "public.o$i", batch_size => \'100');
}

# running and waiting pipelines, as "name" lists
sub states
{
	my ($pattern) = @_;
	my @r = split /\n/, $node->safe_psql('postgres', <<"EOS");
SELECT string_agg(name, ' ' ORDER BY name) FILTER (WHERE state = 'running' AND worker_pid IS NOT NULL),
	   string_agg(name, ' ' ORDER BY name) FILTER (WHERE state = 'starting' AND worker_pid IS NULL
												   AND last_error ~ '$pattern'),
	   count(*) FROM eo_ingest.pipeline_status
EOS
	my ($running, $waiting, $total) = split /\|/, $r[0], -1;
	return ([ split / /, $running ], [ split / /, $waiting ], $total);
}

# Waits until every pipeline is running or waiting for $pattern, with some of
# each when $both, and $want_running of them running if given; returns
# (running, waiting).
sub settle
{
	my ($pattern, $both, $label, $want_running) = @_;
	my ($run, $wait, $total);
	for (1 .. 120)
	{
		($run, $wait, $total) = states($pattern);
		last if @$run + @$wait == $total && (!$both || (@$run > 0 && @$wait > 0))
		  && (!defined $want_running || @$run == $want_running);
		sleep 1;
	}
	is(@$run + @$wait, $total, "$label: every pipeline runs or says what it waits for ("
		  . scalar(@$run) . ' running, ' . scalar(@$wait) . ' waiting)')
	  or EoTest::diag_status($node);
	return ($run, $wait);
}

my ($run, $wait) = settle('waiting for a background worker slot.*raise max_worker_processes', 1,
	"$N pipelines, max_worker_processes = 8");
cmp_ok(scalar(@$wait), '>', 0, 'some pipelines wait for a worker');
my $capacity = @$run;
like($node->safe_psql('postgres', "SELECT last_error FROM eo_ingest.pipeline_status WHERE name = '$wait->[0]'"),
	qr/all max_worker_processes \(8\) are in use/, 'the message names the setting and its value');

# drop the running pipelines, then more, until every pipeline left fits
my @left = @$wait;
$node->safe_psql('postgres', "SELECT eo_ingest.drop_pipeline('$_')") for @$run;
my @drop = splice(@left, 0, @left - $capacity);
$node->safe_psql('postgres', "SELECT eo_ingest.drop_pipeline('$_')") for @drop;
($run, $wait) = settle('waiting', 0, 'after dropping the running pipelines', scalar(@left));
is(scalar(@$run), scalar(@left), 'the pipelines that waited start by themselves: ' . join(' ', @$run));
for my $p (@left)
{
	(my $i = $p) =~ s/^p//;
	EoTest::wait_caught_up($node, $p, EoTest::committed_count($m));
	EoTest::check_rows($node, "public.o$i", $m, 'skip', label => "$p, started late: exactly once");
}

# eo_ingest.max_workers as the limit, with a few more pipelines
for my $i ($N + 1 .. $N + 4)
{
	EoTest::create_orders_table($node, "public.o$i");
	EoTest::create_pipeline($node, name => "p$i", brokers => $kafka->brokers,
		topic => 't036', target => "public.o$i", batch_size => \'100');
}
$node->append_conf('postgresql.conf', "max_worker_processes = 32\neo_ingest.max_workers = 2\n");
$node->restart;
($run, $wait) = settle('waiting for an eo_ingest worker slot.*raise eo_ingest.max_workers', 1,
	'eo_ingest.max_workers = 2');
is(scalar(@$run), 2, 'two pipelines run');
$node->safe_psql('postgres', "SELECT eo_ingest.drop_pipeline('$_')") for @$run;
($run, $wait) = settle('eo_ingest.max_workers', 1, 'after dropping the two', 2);
is(scalar(@$run), 2, 'two of the waiting ones run now');

ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');
$node->stop;
$kafka->teardown;
done_testing();
