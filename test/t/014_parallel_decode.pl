
# Parallel decode (eo_ingest.parallel_decode): under a backlog a decoder
# process decodes a worker's next batch while the worker writes the current
# one.  The same backlog, with poison records among good ones, is drained
# once with the decoder off and once with it on: the targets match the
# producer's manifest row by row and the dead letters are the same.  The
# decoder exists under the backlog and is gone once the pipeline is idle.
# Ended with pg_terminate_backend mid-drain the worker carries on in-process
# (same pid); kill -9 of the decoder or of the worker mid-drain (the
# postmaster reinitializes) loses and repeats nothing.  And a decoder yields
# its background worker slot to a pipeline that waits for one.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('t014', 2);
$kafka->create_topic('t014k', 2);

my $node = EoTest::new_node('eo014', conf => "eo_ingest.retry_max_delay = '2s'");

sub decoder_pids
{
	my ($out, $err) = ('', '');
	EoTest::try_psql($node, 'postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'eo_ingest decoder' ORDER BY pid",
		\$out, \$err);
	return grep { /^\d+$/ } split /\n/, $out;
}

# Polls for a decoder for up to $secs seconds; returns its pid or undef.
sub wait_decoder
{
	my ($secs) = @_;
	for (1 .. $secs * 20)
	{
		my @p = decoder_pids();
		return $p[0] if @p;
		sleep 0.05;
	}
	return undef;
}

sub pipeline_id
{
	return $node->safe_psql('postgres', "SELECT id FROM eo_ingest.pipelines WHERE name = '$_[0]'");
}

sub set_parallel
{
	$node->safe_psql('postgres', "ALTER SYSTEM SET eo_ingest.parallel_decode = $_[0]");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	sleep 1;
}

# --- the backlog: good records, duplicates, malformed ones, and poison

my $m1 = $kafka->produce(topic => 't014', count => 30_000, start_id => 1, dup_ratio => 0.1,
	bad_every => 499, seed => 14, timestamp_base => EoTest::ts_base(0), timeout => 300);

sub poison_id { return sprintf('0000dead-0000-4000-8000-%012x', shift) }

sub good_json
{
	my ($n, %over) = @_;
	my %v = (event_id => '"' . poison_id($n) . '"', seq => $n, customer_id => 1,
		amount => '"1.00"', note => "\"poison $n\"", created_at => '"2024-01-01T00:00:00.000Z"', %over);
	return '{' . join(',', map { "\"$_\":$v{$_}" } grep { defined $v{$_} }
		  qw(event_id seq customer_id amount note created_at)) . '}';
}
my @poison = (
	[ 'malformed', '{"event_id":"' . poison_id(1) . '","seq":1,' ],
	[ 'not-an-object', '[1,2,3]' ],
	[ 'failed-cast', good_json(2, seq => '"abc"') ],
	[ 'out-of-range', good_json(3, seq => '99999999999') ],
	[ 'bad-uuid', good_json(4, event_id => '"not-a-uuid"') ],
	[ 'bad-timestamp', good_json(5, created_at => '"2024-13-45T00:00:00Z"') ],
	[ 'empty', '' ],
	[ 'invalid-utf8', good_json(10, note => "\"caf\xc3\x28\"") ],
	[ 'no-event-id', good_json(11, event_id => undef) ],
);
for my $p (0, 1)
{
	$kafka->kcat_produce('t014', [ map { { key => $_->[0], value => $_->[1] } } @poison ],
		partition => $p);
}
my $m2 = $kafka->produce(topic => 't014', count => 30_000, start_id => 25_001, dup_ratio => 0.1,
	bad_every => 499, seed => 15, timestamp_base => EoTest::ts_base(1), timeout => 300);
my @manifest = (@$m1, @$m2);
my $committed = EoTest::committed_count(\@manifest) + 2 * @poison;

# --- the same backlog with the decoder off, then on

EoTest::create_orders_table($node, 'public.orders_off');
EoTest::create_orders_table($node, 'public.orders_on');
set_parallel('off');
EoTest::create_pipeline($node, name => 'pd_off', brokers => $kafka->brokers, topic => 't014',
	target => 'public.orders_off', batch_size => \'2000');
EoTest::wait_caught_up($node, 'pd_off', $committed);
is(scalar(decoder_pids()), 0, 'parallel_decode off: no decoder');

set_parallel('on');
EoTest::create_pipeline($node, name => 'pd_on', brokers => $kafka->brokers, topic => 't014',
	target => 'public.orders_on', batch_size => \'2000');
ok(defined wait_decoder(60), 'parallel_decode on: a decoder runs under the backlog');
EoTest::wait_caught_up($node, 'pd_on', $committed);

EoTest::check_rows($node, 'public.orders_off', \@manifest, 'skip');
EoTest::check_rows($node, 'public.orders_on', \@manifest, 'skip');
EoTest::check_counters($node, 'pd_off', 'public.orders_off', $committed);
EoTest::check_counters($node, 'pd_on', 'public.orders_on', $committed);

my $dl_sql = <<'EOS';
SELECT partition, "offset", sqlstate, error, md5(payload), md5(key)
  FROM eo_ingest.dead_letters WHERE pipeline = '%s' ORDER BY partition, "offset"
EOS
my $dl_off = $node->safe_psql('postgres', sprintf($dl_sql, 'pd_off'));
my $dl_on = $node->safe_psql('postgres', sprintf($dl_sql, 'pd_on'));
my $bad = grep { $_->{status} eq 'committed' && !defined EoTest::_record_row($_) } @manifest;
is(scalar(split /\n/, $dl_on), $bad + 2 * @poison,
	"decoder on: $bad malformed records and " . 2 * @poison . ' poison records are dead letters');
is($dl_on, $dl_off, 'the dead letters are the same with the decoder on and off');

ok(EoTest::wait_for($node,
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'eo_ingest decoder'", '0', 30),
	'the decoder is gone once the pipeline is idle');
my $log = slurp_file($node->logfile);
my $on_id = pipeline_id('pd_on');
my $off_id = pipeline_id('pd_off');
my $decoded = 0;
$decoded += $1 while $log =~ m{decoder for pipeline $on_id/0 exiting after \d+ batches of (\d+) records: no backlog}g;
cmp_ok($decoded, '>=', 2000, "the decoder decoded $decoded records of pd_on, then left for want of a backlog");
unlike($log, qr{decoder for pipeline $off_id/}, 'pd_off never had a decoder');
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no process crashed');

# --- kills mid-drain: a slow target (a statement trigger) keeps the drain long

my $mk = $kafka->produce(topic => 't014k', count => 60_000, start_id => 1, dup_ratio => 0.1,
	seed => 16, timestamp_base => EoTest::ts_base(2), timeout => 300);
EoTest::create_orders_table($node, 'public.orders_kill');
$node->safe_psql('postgres', <<'EOS');
CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END$$;
CREATE TRIGGER slow AFTER INSERT ON public.orders_kill FOR EACH STATEMENT EXECUTE FUNCTION public.slow();
EOS
EoTest::create_pipeline($node, name => 'pd_kill', brokers => $kafka->brokers, topic => 't014k',
	target => 'public.orders_kill', batch_size => \'2000');

my $dec = wait_decoder(60);
ok(defined $dec, 'pd_kill: a decoder runs');
my $wpid = EoTest::worker_pid($node, 'pd_kill');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($dec)");
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM public.orders_kill');
ok(EoTest::wait_for($node, "SELECT count(*) > $before FROM public.orders_kill", 't', 60),
	'after the decoder was terminated the worker goes on');
is(EoTest::worker_pid($node, 'pd_kill'), $wpid, 'the same worker, decoding in-process');

$dec = wait_decoder(60);
ok(defined $dec, 'pd_kill: a decoder again');
kill 'KILL', $dec if defined $dec;
$wpid = EoTest::wait_worker($node, 'pd_kill', $wpid);
ok(defined $wpid, 'kill -9 of the decoder: the server reinitialized and the worker is back');

$dec = wait_decoder(60);
ok(defined $dec, 'pd_kill: a decoder after the crash');
my $lag = $node->safe_psql('postgres', "SELECT lag FROM eo_ingest.pipeline_status WHERE name = 'pd_kill'");
kill 'KILL', $wpid;
note("killed worker $wpid with lag $lag");
ok(defined EoTest::wait_worker($node, 'pd_kill', $wpid), 'kill -9 of the worker: a new worker');

EoTest::wait_caught_up($node, 'pd_kill', EoTest::committed_count($mk), timeout => 600);
EoTest::check_rows($node, 'public.orders_kill', $mk, 'skip');
EoTest::check_counters($node, 'pd_kill', 'public.orders_kill', EoTest::committed_count($mk));

# --- slot shortage: every background worker slot taken, the decoder's last

$node->safe_psql('postgres', "SELECT eo_ingest.drop_pipeline(n) FROM unnest('{pd_off,pd_on,pd_kill}'::text[]) n");
EoTest::create_orders_table($node, 'public.orders_slot1');
EoTest::create_orders_table($node, 'public.orders_slot2');
$node->safe_psql('postgres', <<'EOS');
CREATE TRIGGER slow AFTER INSERT ON public.orders_slot1 FOR EACH STATEMENT EXECUTE FUNCTION public.slow();
EOS
# launcher, supervisor, logical replication launcher, a worker, its decoder
$node->append_conf('postgresql.conf', 'max_worker_processes = 5');
$node->restart;
EoTest::create_pipeline($node, name => 'pd_slot1', brokers => $kafka->brokers, topic => 't014k',
	target => 'public.orders_slot1', batch_size => \'2000');
ok(defined wait_decoder(60), 'pd_slot1: a decoder takes the last slot');
note($node->safe_psql('postgres', 'SELECT string_agg(backend_type, \', \') FROM pg_stat_activity'));
EoTest::create_pipeline($node, name => 'pd_slot2', brokers => $kafka->brokers, topic => 't014',
	target => 'public.orders_slot2', batch_size => \'2000');
ok(EoTest::wait_for($node,
	"SELECT state = 'running' AND worker_pid IS NOT NULL FROM eo_ingest.pipeline_status WHERE name = 'pd_slot2'",
	't', 60), 'pd_slot2 got a slot');
$log = slurp_file($node->logfile);
like($log, qr/eo_ingest pipeline \d+ waits for a background worker slot/, 'pd_slot2 waited for a slot');
like($log, qr/decoder for pipeline \d+\/0 exiting after \d+ batches of \d+ records: a pipeline waits for a background worker slot/,
	'the decoder yielded its slot');
EoTest::wait_caught_up($node, 'pd_slot2', $committed);
EoTest::check_rows($node, 'public.orders_slot2', \@manifest, 'skip');
$log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal (?!9:)/, 'no process crashed, except those killed with kill -9');

$node->stop;
$kafka->stop;
done_testing();
