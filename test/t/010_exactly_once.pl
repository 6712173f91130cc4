
# Exactly once, end to end: 50,000 events with 10% duplicate event ids over 4
# partitions, part of them in producer transactions of which every third is
# aborted, ingested by two pipelines on the same topic, one per duplicate
# policy.  Each target is compared row by row with the producer's manifest,
# the exact counters must add up to the committed records, and the stored
# offsets must reach each partition's end offset (past the transaction
# markers and aborted records).

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $topic = 't010';
my $nparts = 4;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic($topic, $nparts);

my $node = EoTest::new_node('eo010');
EoTest::create_orders_table($node, 'public.orders_skip');
EoTest::create_orders_table($node, 'public.orders_update');

# Both pipelines run while the records arrive, so they also meet open
# transactions (read_committed stops at the last stable offset).
EoTest::create_pipeline($node,
	name => 'eo_skip',
	brokers => $kafka->brokers,
	topic => $topic,
	target => 'public.orders_skip',
	on_duplicate => 'skip',
	batch_size => \'1000');
EoTest::create_pipeline($node,
	name => 'eo_update',
	brokers => $kafka->brokers,
	topic => $topic,
	target => 'public.orders_update',
	on_duplicate => 'update',
	columns => EoTest::update_columns(),
	batch_size => \'3000');
ok(EoTest::wait_for($node,
	"SELECT string_agg(state, ',' ORDER BY name) FROM eo_ingest.pipeline_status",
	'running,running'), 'both pipelines running');

# Run 1: 30,000 events in transactions of 500, every third aborted.
my $m1 = $kafka->produce(
	topic => $topic,
	count => 30_000,
	start_id => 1,
	dup_ratio => 0.1,
	seed => 10,
	timestamp_base => EoTest::ts_base(0),
	transactional => 'eo010-txn',
	txn_size => 500,
	abort_every => 3,
	timeout => 300);
# Run 2: 20,000 events from an idempotent producer.  Its event numbers
# 28,001..48,000 overlap run 1's last 2,000 on purpose: ids of committed run-1
# records come again (newer, so 'update' must take them), and ids whose only
# run-1 records were aborted land for the first time.
my $m2 = $kafka->produce(
	topic => $topic,
	count => 20_000,
	start_id => 28_001,
	dup_ratio => 0.1,
	seed => 11,
	timestamp_base => EoTest::ts_base(1),
	idempotent => 1,
	timeout => 300);
my @manifest = (@$m1, @$m2);

# The scenario itself: aborted records, duplicates across partitions.
my $committed = EoTest::committed_count(\@manifest);
my $aborted = grep { $_->{status} eq 'aborted' } @manifest;
my (%parts_of, %committed_ids, %aborted_ids);
for my $r (@manifest)
{
	if ($r->{status} eq 'committed')
	{
		$parts_of{ $r->{event_id} }{ $r->{partition} } = 1;
		$committed_ids{ $r->{event_id} }++;
	}
	else
	{
		$aborted_ids{ $r->{event_id} } = 1;
	}
}
my $cross = grep { keys %{ $parts_of{$_} } > 1 } keys %parts_of;
my $only_aborted = grep { !$committed_ids{$_} } keys %aborted_ids;
my $distinct = keys %committed_ids;
is(scalar @manifest, 50_000, 'producer acknowledged 50,000 records');
cmp_ok($aborted, '>=', 9_000, "$aborted records in aborted transactions");
cmp_ok($cross, '>', 500, "$cross committed event ids appear in several partitions");
cmp_ok($only_aborted, '>', 1_000, "$only_aborted event ids appear only in aborted records");
note("events: $committed committed records ($distinct distinct ids), $aborted aborted");

EoTest::wait_caught_up($node, 'eo_skip', $committed);
EoTest::wait_caught_up($node, 'eo_update', $committed);

my $n_skip = EoTest::check_rows($node, 'public.orders_skip', \@manifest, 'skip');
my $n_update = EoTest::check_rows($node, 'public.orders_update', \@manifest, 'update');
note("rows checked: $n_skip (skip), $n_update (update)");

EoTest::check_counters($node, 'eo_skip', 'public.orders_skip', $committed);
EoTest::check_counters($node, 'eo_update', 'public.orders_update', $committed);

# Both policies saw the duplicates: skip skipped them, update applied the
# newer ones (at least the 2,000 overlapping ids of run 2 are newer).
my ($skip_skipped, $upd_updated, $dead) = split /\|/, $node->safe_psql('postgres', <<'EOS');
SELECT (SELECT duplicates_skipped FROM eo_ingest.pipeline_status WHERE name = 'eo_skip'),
	   (SELECT rows_updated FROM eo_ingest.pipeline_status WHERE name = 'eo_update'),
	   (SELECT count(*) FROM eo_ingest.dead_letters)
EOS
is($skip_skipped, $committed - $distinct,
	'skip: every committed record beyond the first of its id was skipped');
cmp_ok($upd_updated, '>=', 1_000, "update: $upd_updated rows updated by newer records");
is($dead, 0, 'no dead letters');

EoTest::check_offsets($node, 'eo_skip', $kafka, $topic, $nparts);
EoTest::check_offsets($node, 'eo_update', $kafka, $topic, $nparts);

$node->stop;
$kafka->stop;
done_testing();
