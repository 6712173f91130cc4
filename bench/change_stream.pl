
# Change-stream drain against the insert-only drain, in one run: a topic of
# Debezium-shaped change events (JSON without the schema wrapper; 20 %
# a change to a random key: a create if it is absent, else 7 updates for
# each delete, about 70 % updates and 10 % deletes at the defaults) applied with
# envelope => 'debezium', and the same number of plain events from the test
# producer inserted by an envelope => 'none' pipeline.  Prints changes per
# second, events per second and their ratio, and checks the applied table
# against the model (row count and a checksum).  Runs as a TAP script:
#
#   EO_SUITES=tapcheck TAP_TESTS_FILES=bench/change_stream.pl scripts/test.sh
#
# Environment (when run directly with prove): EO_CS_CHANGES (default 600000), EO_CS_KEYS (200000),
# EO_CS_PARTITIONS (4).

use strict;
use warnings;

use JSON::PP ();
use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $n = $ENV{EO_CS_CHANGES} // 600_000;
my $nkeys = $ENV{EO_CS_KEYS} // 200_000;
my $nparts = $ENV{EO_CS_PARTITIONS} // 4;
srand(7);

my $json = JSON::PP->new->canonical;
my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('cs', $nparts);
$kafka->create_topic('ins', $nparts);

# the change stream, from a model: key => qty
my %state;
my @msgs = map { [] } 1 .. $nparts;
my $lsn = 0;
for my $i (1 .. $n)
{
	my $r = rand();
	my $id = 1 + int(rand($nkeys));
	my $after;
	my $op = !exists $state{$id} ? 'c' : $r < 0.125 ? 'd' : 'u';
	if ($op ne 'd')
	{
		$state{$id} = int(rand(1000));
		$after = { id => $id, qty => $state{$id}, name => "item $id", price => sprintf('%.2f', rand(1000)),
			updated_at => '2024-05-01T12:34:56.789Z' };
	}
	else
	{
		delete $state{$id};
	}
	my $v = $json->encode({ op => $op, before => $op eq 'd' ? { id => $id } : undef, after => $after,
		source => { lsn => $lsn++, table => 'items' }, ts_ms => 1_700_000_000_000 + $i });
	push @{ $msgs[ $id % $nparts ] }, { key => "{\"id\":$id}", value => $v };
}
$kafka->kcat_produce('cs', $msgs[$_], partition => $_) for 0 .. $nparts - 1;
my $m = $kafka->produce(topic => 'ins', count => $n, start_id => 1, seed => 1, timeout => 600);

my $node = EoTest::new_node('cs');
$node->safe_psql('postgres', <<'EOS');
CREATE TABLE items (id integer PRIMARY KEY, qty integer, name text, price numeric, updated_at timestamptz);
EOS
EoTest::create_orders_table($node, 'public.orders');

sub drain
{
	my ($name, $expected) = @_;
	ok(EoTest::wait_for($node,
		"SELECT state, lag, rows_inserted + rows_updated + rows_deleted + duplicates_skipped + dead_letters "
		  . "FROM eo_ingest.pipeline_status WHERE name = '$name'",
		"running|0|$expected", 1800), "$name drained $expected records");
	return $node->safe_psql('postgres',
		"SELECT extract(epoch FROM last_batch_at - created_at) FROM eo_ingest.pipeline_status WHERE name = '$name'");
}

EoTest::create_pipeline($node, name => 'ins', brokers => $kafka->brokers, topic => 'ins',
	target => 'public.orders');
my $t_ins = drain('ins', EoTest::committed_count($m));
EoTest::create_pipeline($node, name => 'cs', brokers => $kafka->brokers, topic => 'cs',
	target => 'public.items', envelope => 'debezium');
my $t_cs = drain('cs', $n);

my $sum = 0;
$sum += $_ for values %state;
my $want = scalar(keys %state) . "|$sum";
is($node->safe_psql('postgres', 'SELECT count(*), coalesce(sum(qty), 0) FROM items'), $want,
	'the applied table has the model\'s rows (count and sum of qty)');
my $counters = $node->safe_psql('postgres',
	"SELECT rows_inserted || ' inserted, ' || rows_updated || ' updated, ' || rows_deleted || ' deleted, ' "
	  . "|| duplicates_skipped || ' collapsed or absent, ' || batches || ' batches' FROM eo_ingest.pipeline_status WHERE name = 'cs'");
diag(sprintf('change stream: %d changes of %d keys in %.2f s = %.0f changes/s (%s)',
	$n, $nkeys, $t_cs, $n / $t_cs, $counters));
diag(sprintf('insert-only:   %d events in %.2f s = %.0f events/s', $n, $t_ins, $n / $t_ins));
diag(sprintf('ratio change stream / insert-only: %.2f', $t_ins / $t_cs));

$node->stop;
$kafka->stop;
done_testing();
