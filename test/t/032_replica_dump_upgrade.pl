
# Pipelines across the server's own operations: a streaming standby runs no
# worker and, once promoted after the primary dies mid-ingestion, continues
# from the replicated offsets; fast and immediate shutdowns mid-batch;
# pg_dump/pg_restore of a database with pipelines, offsets, counters and dead
# letters into a new cluster, which carries on without duplicates; ALTER
# EXTENSION ... UPDATE.  Every step ends with the row-by-row check.

use strict;
use warnings;

use JSON::PP ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $CONF = <<'EOC';
shared_preload_libraries = 'eo_ingest'
max_worker_processes = 32
eo_ingest.launcher_naptime = 2s
eo_ingest.retry_max_delay = 4s
EOC

# Small fetches, a small local queue and small batches: the pipeline works
# through a backlog slowly enough for the server to be stopped in the middle.
my $SLOW = '{"queued.max.messages.kbytes": 64, "fetch.message.max.bytes": 16384}';

my $kafka = EoKafka->new;
$kafka->start;
my $brokers = $kafka->brokers;

sub q1
{
	my ($node, $sql, $db) = @_;
	return $node->safe_psql($db // 'postgres', $sql);
}

sub count_of
{
	my ($node, $table) = @_;
	my ($out, $err) = ('', '');
	EoTest::try_psql($node, 'postgres', "SELECT count(*) FROM $table", \$out, \$err);
	return $out =~ /^\d+$/ ? $out : -1;
}

sub wait_count_above
{
	my ($node, $table, $n, $timeout) = @_;
	return EoTest::wait_for($node, "SELECT count(*) > $n FROM $table", 't', $timeout // 60);
}

sub eo_processes
{
	my ($node) = @_;
	my $ps = `ps -o pid=,args= --ppid $node->{_pid}`;
	return grep { /eo_ingest/ } split /\n/, $ps;
}

# ---- (a) streaming standby, primary killed mid-ingestion, promotion ----------

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', $CONF);
$primary->start;
q1($primary, 'CREATE EXTENSION eo_ingest');

$kafka->create_topic('rep', 3);
EoTest::create_orders_table($primary, 'public.rep');
my $m1 = $kafka->produce(topic => 'rep', count => 30000, start_id => 1, dup_ratio => 0.05);
EoTest::create_pipeline($primary, name => 'rep', brokers => $brokers, topic => 'rep',
	target => 'public.rep', batch_size => \'200', kafka_options => $SLOW);
ok(wait_count_above($primary, 'public.rep', 500), 'primary ingests');

$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
$standby->start;
like(q1($standby, 'SHOW shared_preload_libraries'), qr/eo_ingest/, 'the standby preloads eo_ingest too');
ok(wait_count_above($standby, 'public.rep', 3000), 'the standby replays the ingestion');
is(q1($standby, 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is(q1($standby, "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'eo_ingest%'"), 0,
	'no eo_ingest launcher, supervisor or worker in pg_stat_activity on the standby');
is(scalar(eo_processes($standby)), 0, 'no eo_ingest process under the standby postmaster');
cmp_ok(scalar(eo_processes($primary)), '>=', 3, 'the primary has its launcher, supervisor and worker')
  or diag(`ps -o pid=,args= --ppid $primary->{_pid}`);
is(q1($standby, "SELECT state FROM eo_ingest.pipeline_status WHERE name = 'rep'"), 'starting',
	'the standby shows the pipeline without a worker');

my $n_primary = count_of($primary, 'public.rep');
$primary->kill9;
my $n_standby = count_of($standby, 'public.rep');
note("primary killed with $n_primary rows, the standby had $n_standby");
my $total1 = EoTest::committed_count($m1);
my $distinct1 = scalar keys %{ { map { ($_->{event_id} => 1) } @$m1 } };
cmp_ok($n_standby, '<', $distinct1, 'the primary died mid-ingestion');

$standby->promote;
my $t0 = time;
EoTest::wait_caught_up($standby, 'rep', $total1, timeout => 180);
note(sprintf('the promoted standby caught up in %.1f s', time - $t0));
EoTest::check_rows($standby, 'public.rep', $m1, 'skip', label => 'after promotion');
EoTest::check_counters($standby, 'rep', 'public.rep', $total1);
EoTest::check_offsets($standby, 'rep', $kafka, 'rep', 3);
cmp_ok(scalar(eo_processes($standby)), '>=', 3, 'the promoted standby runs the launcher, supervisor and worker');
my $node = $standby;

# ---- (c) fast and immediate shutdown mid-batch ------------------------------

my $m2 = $kafka->produce(topic => 'rep', count => 30000, start_id => 100001, dup_ratio => 0.05);
my $total2 = $total1 + EoTest::committed_count($m2);
my $distinct12 = $distinct1 + scalar keys %{ { map { ($_->{event_id} => 1) } @$m2 } };
for my $mode (qw(fast immediate))
{
	my $n = count_of($node, 'public.rep');
	ok(wait_count_above($node, 'public.rep', $n + 2000), "ingesting before the $mode shutdown");
	$node->stop($mode);
	my $stopped_at = (split /\|/, q1_after_start($node))[0];
	cmp_ok($stopped_at, '<', $distinct12, "$mode shutdown happened mid-ingestion ($stopped_at rows)");
}
EoTest::wait_caught_up($node, 'rep', $total2, timeout => 180);
EoTest::check_rows($node, 'public.rep', [ @$m1, @$m2 ], 'skip', label => 'after fast and immediate shutdowns');
EoTest::check_counters($node, 'rep', 'public.rep', $total2);
EoTest::check_offsets($node, 'rep', $kafka, 'rep', 3);

sub q1_after_start
{
	my ($n) = @_;
	$n->start;
	return q1($n, 'SELECT count(*) FROM public.rep');
}

# ---- (b) pg_dump and restore into a new cluster ----------------------------

# A second pipeline with dead letters.
$kafka->create_topic('dl', 2);
EoTest::create_orders_table($node, 'public.dl');
my $md = $kafka->produce(topic => 'dl', count => 1000, start_id => 200001, bad_every => 10);
EoTest::create_pipeline($node, name => 'dl', brokers => $brokers, topic => 'dl', target => 'public.dl');
EoTest::wait_caught_up($node, 'dl', 1000);

sub dead_expected
{
	my @m = @_;
	return join(',', sort map { "$_->{partition}:$_->{offset}" }
		  grep { !eval { JSON::PP::decode_json($_->{value}) } } @m);
}

sub dead_stored
{
	my ($n, $db) = @_;
	return join(',', sort split /\n/,
		q1($n, "SELECT partition || ':' || \"offset\" FROM eo_ingest.dead_letters WHERE pipeline = 'dl'", $db));
}
is(dead_stored($node), dead_expected(@$md), 'dl: the malformed records are the dead letters');

q1($node, "SELECT eo_ingest.pause_pipeline('rep'); SELECT eo_ingest.pause_pipeline('dl')");
EoTest::wait_for($node, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'eo_ingest worker'", '0', 30);

my %catalog = (
	pipelines => 'SELECT id, name, owner, brokers, topic, target, event_id, on_duplicate, format, columns, '
	  . 'start_from, batch_size, batch_timeout, workers, synchronous_commit, kafka_options, enabled, created_at, target_name '
	  . 'FROM eo_ingest.pipelines ORDER BY id',
	offsets => 'SELECT pipeline_id, partition, next_offset, committed_at FROM eo_ingest.offsets ORDER BY 1, 2',
	counters => 'SELECT pipeline_id, worker, rows_inserted, rows_updated, duplicates_skipped, dead_letters, '
	  . 'batches, last_batch_at FROM eo_ingest.counters ORDER BY 1, 2',
	dead_letters => 'SELECT pipeline_id, pipeline, partition, "offset", key, payload, error, sqlstate, failed_at '
	  . 'FROM eo_ingest.dead_letters ORDER BY 1, 3, 4',
	status => 'SELECT name, state, topic, target, rows_inserted, rows_updated, duplicates_skipped, dead_letters '
	  . 'FROM eo_ingest.pipeline_status ORDER BY name');
my %before = map { ($_ => q1($node, $catalog{$_})) } keys %catalog;

my $dump = $PostgreSQL::Test::Utils::tmp_check . '/eo.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('postgres'), '-f', $dump ],
	'pg_dump of the database with pipelines');

my $restored = EoTest::new_node('restored', no_extension => 1, conf => <<'EOC');
eo_ingest.launcher_naptime = 2s
eo_ingest.retry_max_delay = 4s
EOC
q1($restored, 'CREATE DATABASE shop');
$restored->command_ok([ 'pg_restore', '--exit-on-error', '-d', $restored->connstr('shop'), $dump ],
	'pg_restore into a new database of a new cluster');
for my $t (sort keys %catalog)
{
	is(q1($restored, $catalog{$t}, 'shop'), $before{$t}, "eo_ingest $t restored intact");
}
is(dead_stored($restored, 'shop'), dead_expected(@$md), 'dead letters restored');

# Restart the new cluster, then let it carry on with what was produced since.
$restored->restart;
my $m3 = $kafka->produce(topic => 'rep', count => 3000, start_id => 300001);
my $md2 = $kafka->produce(topic => 'dl', count => 500, start_id => 400001, bad_every => 10);
q1($restored, "SELECT eo_ingest.resume_pipeline('rep'); SELECT eo_ingest.resume_pipeline('dl')", 'shop');
my $total3 = $total2 + EoTest::committed_count($m3);
EoTest::wait_caught_up($restored, 'rep', $total3, dbname => 'shop', timeout => 120);
EoTest::wait_caught_up($restored, 'dl', 1500, dbname => 'shop', timeout => 120);
EoTest::check_rows($restored, 'public.rep', [ @$m1, @$m2, @$m3 ], 'skip', dbname => 'shop',
	label => 'restored cluster continues rep without duplicates');
EoTest::check_counters($restored, 'rep', 'public.rep', $total3, dbname => 'shop');
EoTest::check_offsets($restored, 'rep', $kafka, 'rep', 3, dbname => 'shop');
EoTest::check_rows($restored, 'public.dl', [ @$md, @$md2 ], 'skip', dbname => 'shop',
	label => 'restored cluster continues dl without duplicates');
is(dead_stored($restored, 'shop'), dead_expected(@$md, @$md2), 'dead letters of before and after the restore');

# The identity sequence came along: a new pipeline gets a fresh id.
EoTest::create_orders_table($restored, 'public.extra', dbname => 'shop');
EoTest::create_pipeline($restored, name => 'extra', brokers => $brokers, topic => 'dl',
	target => 'public.extra', dbname => 'shop');
is(q1($restored, "SELECT id > (SELECT max(id) FROM eo_ingest.pipelines WHERE name <> 'extra') "
	  . "FROM eo_ingest.pipelines WHERE name = 'extra'", 'shop'), 't',
	'a pipeline created after the restore gets a new id');
EoTest::wait_caught_up($restored, 'extra', 1500, dbname => 'shop', timeout => 120);
EoTest::check_rows($restored, 'public.extra', [ @$md, @$md2 ], 'skip', dbname => 'shop',
	label => 'the new pipeline ingests');

# ---- (d) ALTER EXTENSION ... UPDATE -------------------------------------------

my ($ret, $out, $err) = $restored->psql('shop', 'ALTER EXTENSION eo_ingest UPDATE');
is($ret, 0, 'ALTER EXTENSION eo_ingest UPDATE works');
is(q1($restored, "SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'eo_ingest') "
	  . "FROM pg_extension WHERE extname = 'eo_ingest'", 'shop'), 't',
	'the extension is at the default version');
is(q1($restored, "SELECT state FROM eo_ingest.pipeline_status WHERE name = 'rep'", 'shop'), 'running',
	'pipelines keep running across ALTER EXTENSION UPDATE');

for my $n ($node, $restored)
{
	ok(!$n->log_contains('TRAP:|terminated by signal|PANIC'), $n->name . ': no crash in the server log');
}

$restored->stop;
$node->stop;
$kafka->stop;
done_testing();
