
# Configuration that can never work ends in 'failed' instead of retrying for
# ever: a broker address nobody listens on and a host name that does not
# resolve fail once eo_ingest.grace_period (5 s here) passes without any
# broker answering.  Failed stays failed until resume_pipeline or
# alter_pipeline, which try again (and ingest once the address is right).
# A broker that answered once and then goes away for far longer than the
# grace period is an outage: 'retrying' (also across a server restart), and
# back to 'running' by itself.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $GRACE = 5;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('never_works', conf => <<"EOC");
eo_ingest.launcher_naptime = 2s
eo_ingest.retry_max_delay = 2s
eo_ingest.grace_period = ${GRACE}s
EOC

$kafka->create_topic('nw', 2);
my $m1 = $kafka->produce(topic => 'nw', count => 1000, dup_ratio => 0.1, start_id => 1);
my $n1 = EoTest::committed_count($m1);
EoTest::create_orders_table($node, "public.$_") for qw(refused nohost outage);

sub status
{
	my ($pipeline) = @_;
	my ($state, $err) = split /\|/, $node->safe_psql('postgres',
		"SELECT state, coalesce(last_error, '') FROM eo_ingest.pipeline_status WHERE name = '$pipeline'"), 2;
	return ($state, $err);
}

sub wait_state
{
	my ($pipeline, $state, $timeout) = @_;
	my $t0 = time;
	my $ok = EoTest::wait_for($node,
		"SELECT state FROM eo_ingest.pipeline_status WHERE name = '$pipeline'", $state, $timeout // 90);
	ok($ok, "$pipeline is $state")
	  and note(sprintf('%s %s after %.1f s: %s', $pipeline, $state, time - $t0, (status($pipeline))[1]));
	EoTest::diag_status($node) unless $ok;
	return $ok;
}

# ---- never reachable: nobody listens, or the name does not resolve ----------

my $t0 = time;
EoTest::create_pipeline($node, name => 'refused', brokers => '127.0.0.1:1', topic => 'nw',
	target => 'public.refused');
EoTest::create_pipeline($node, name => 'nohost', brokers => 'no-such-host.invalid:9092',
	topic => 'nw', target => 'public.nohost');
EoTest::create_pipeline($node, name => 'outage', brokers => $kafka->brokers, topic => 'nw',
	target => 'public.outage');

wait_state('refused', 'failed');
my $failed_after = time - $t0;
cmp_ok($failed_after, '>=', $GRACE, "refused failed no sooner than the grace period ($GRACE s)");
my ($state, $err) = status('refused');
like($err, qr/no broker of "127\.0\.0\.1:1" answered in $GRACE s/, 'refused: last_error names the brokers and the wait');
like($err, qr/connect|refused|transport|down/i, 'refused: last_error says the connection failed');
like($err, qr/resume_pipeline/, 'refused: last_error says how to try again');

wait_state('nohost', 'failed');
($state, $err) = status('nohost');
like($err, qr/no-such-host\.invalid/, 'nohost: last_error names the host');
like($err, qr/resolve|transport|down/i, 'nohost: last_error says the name did not resolve');

EoTest::wait_caught_up($node, 'outage', $n1);

sleep 2 * $GRACE;
is((status('refused'))[0], 'failed', 'refused stays failed');
is((status('nohost'))[0], 'failed', 'nohost stays failed');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.refused'), '0', 'refused stored nothing');

# resume without a fix: a new grace period, then failed again
my $last = $node->safe_psql('postgres', "SELECT last_error_at FROM eo_ingest.pipeline_status WHERE name = 'nohost'");
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('nohost')");
ok(EoTest::wait_for($node,
		"SELECT state = 'failed' AND last_error_at > '$last' FROM eo_ingest.pipeline_status WHERE name = 'nohost'",
		't', 90),
	'nohost resumed without a fix tries again and fails again');

# ---- a broker that answered once: an outage is retried for ever -------------

my $t_stop = time;
$kafka->stop;
ok(EoTest::wait_for($node,
		"SELECT state FROM eo_ingest.pipeline_status WHERE name = 'outage'", 'retrying', 60),
	'outage is retrying while the broker is down');
# Halfway, the server restarts: the new worker process has never reached
# the broker itself, but the pipeline has stored offsets, so this is still
# an outage.
my (@states, $restarted);
while (time - $t_stop < 6 * $GRACE)
{
	if (!$restarted && time - $t_stop >= 2 * $GRACE)
	{
		$node->restart;
		$restarted = 1;
	}
	my $st = (status('outage'))[0] // '';
	push @states, $st unless $st eq 'starting' || $st eq '';
	sleep 1;
}
is_deeply([ grep { $_ ne 'retrying' } @states ], [],
	'outage stayed retrying for ' . (6 * $GRACE) . ' s, six grace periods, across a server restart');
note('outage last_error: ' . (status('outage'))[1]);
$kafka->start;

my $m2 = $kafka->produce(topic => 'nw', count => 500, start_id => 100001);
my $n2 = $n1 + EoTest::committed_count($m2);
EoTest::wait_caught_up($node, 'outage', $n2);
EoTest::check_rows($node, 'public.outage', [ @$m1, @$m2 ], 'skip', label => 'outage after the broker came back');
EoTest::check_counters($node, 'outage', 'public.outage', $n2);
EoTest::check_offsets($node, 'outage', $kafka, 'nw', 2);

# ---- fixed address, then resume ---------------------------------------------

$node->safe_psql('postgres',
	"SELECT eo_ingest.alter_pipeline('refused', brokers => '" . $kafka->brokers . "')");
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('refused')");
EoTest::wait_caught_up($node, 'refused', $n2);
EoTest::check_rows($node, 'public.refused', [ @$m1, @$m2 ], 'skip', label => 'refused after the fix');
EoTest::check_counters($node, 'refused', 'public.refused', $n2);
EoTest::check_offsets($node, 'refused', $kafka, 'nw', 2);

ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');

$node->stop;
$kafka->stop;
done_testing();
