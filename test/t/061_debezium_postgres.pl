
# The real Debezium: a source PostgreSQL cluster (wal_level = logical)
# captured by the Debezium PostgreSQL connector in Kafka Connect standalone
# (test/connect/connect.sh, JsonConverter with schemas: every key and value
# wrapped) into the test broker, applied by eo_ingest with envelope =>
# 'debezium' into a second cluster.  A random workload on the source (inserts,
# updates, deletes, primary key changes, bursts in one transaction, a
# TRUNCATE) runs while the target's worker and postmaster are killed with -9.
# Then each target equals its source row by row (EXCEPT both ways on every
# column), nothing is a dead letter, and every record of the topics is
# counted once.  Tables: a composite primary key with nullable numeric,
# timestamptz, jsonb and unicode text columns; a table without a primary key
# (REPLICA IDENTITY FULL) whose target has one, as the README says, and
# whose target also takes the events' metadata ($op, $ts_ms, $source.txId,
# $source.lsn, $source.ts_us): each row's must be its source row's last
# change (the transaction that wrote it, its commit time).  The connector runs
# with Debezium's default decimal.handling.mode (precise: base64, the scale in
# the schema): items.price is numeric(12,2) (Decimal), nopk.n unconstrained
# numeric (VariableScaleDecimal), both negative, zero and, for n, wider than
# 64 bits with varying scales.

use strict;
use warnings;

use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $connect = "$ENV{TESTDIR}/test/connect/connect.sh";
my $cache = $ENV{EO_CONNECT_CACHE} // '/var/cache/eo_ingest/connect';
plan skip_all => 'no Kafka Connect harness (test/connect/connect.sh) in this tree'
  unless -x $connect;
plan skip_all => "no Debezium PostgreSQL connector in $cache/plugins"
  unless -d "$cache/plugins/debezium-connector-postgres";

my $rounds = $ENV{EO_DBZ_ROUNDS} // 60;

my $kafka = EoKafka->new;
$kafka->start;
my $rest_port = $kafka->free_port;
# seeded after the broker and Connect picked their ports (see 060)
srand($ENV{EO_DBZ_SEED} // 51);
$kafka->create_topic('dbz.public.items', 1);
$kafka->create_topic('dbz.public.nopk', 1);

my $items_ddl = <<'EOS';
CREATE TABLE items (
	a		integer,
	b		text,
	qty		integer NOT NULL,
	price	numeric(12,2),
	at		timestamptz,
	doc		jsonb,
	note	text,
	PRIMARY KEY (a, b)
);
EOS

my $src = PostgreSQL::Test::Cluster->new('src061');
$src->init(allows_streaming => 'logical');
$src->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'\ntrack_commit_timestamp = on\n");
$src->append_conf('pg_hba.conf',
	"host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n");
$src->start;
$src->safe_psql('postgres', $items_ddl . <<'EOS');
CREATE TABLE nopk (id integer NOT NULL, v text, n numeric);
ALTER TABLE nopk REPLICA IDENTITY FULL;
CREATE FUNCTION rnd_note() RETURNS text LANGUAGE sql AS
$$ SELECT (ARRAY['plain', 'élève 😀', e'line\nbreak', 'quote " and \\', '', NULL, '日本語'])[1 + floor(random() * 7)::int] $$;
CREATE FUNCTION rnd_b() RETURNS text LANGUAGE sql AS
$$ SELECT (ARRAY['x', 'y', '日本', 'café'])[1 + floor(random() * 4)::int] $$;
CREATE FUNCTION rnd_price() RETURNS numeric LANGUAGE sql AS
$$ SELECT CASE WHEN random() < 0.2 THEN NULL WHEN random() < 0.1 THEN 0
			   ELSE round(((random() - 0.3) * 100000)::numeric, 2) END $$;
CREATE FUNCTION rnd_n() RETURNS numeric LANGUAGE sql AS
$$ SELECT CASE WHEN random() < 0.1 THEN 0
			   ELSE round(((random() - 0.5) * 10 ^ floor(random() * 40))::numeric, floor(random() * 12)::int) END $$;
CREATE FUNCTION rnd_at() RETURNS timestamptz LANGUAGE sql AS
$$ SELECT CASE WHEN random() < 0.2 THEN NULL ELSE now() - random() * interval '3000 days' END $$;
CREATE FUNCTION rnd_doc() RETURNS jsonb LANGUAGE sql AS
$$ SELECT CASE WHEN random() < 0.3 THEN NULL
			   ELSE jsonb_build_object('n', floor(random() * 100)::int, 'tags', jsonb_build_array('p', 'é'), 'ok', random() < 0.5) END $$;
INSERT INTO items SELECT g, rnd_b(), floor(random() * 1000)::int, rnd_price(), rnd_at(), rnd_doc(), rnd_note()
  FROM generate_series(1, 300) g ON CONFLICT DO NOTHING;
INSERT INTO nopk SELECT g, md5(g::text), rnd_n() FROM generate_series(1, 50) g;
EOS
my $snap_xmin = $src->safe_psql('postgres', 'SELECT DISTINCT xmin FROM nopk');

my $node = EoTest::new_node('eo061');
$node->safe_psql('postgres', $items_ddl . <<'EOS');
CREATE TABLE nopk (id integer PRIMARY KEY, v text, n numeric,
				   op text, event_at timestamptz, tx bigint, lsn bigint, committed_at timestamptz);
EOS
EoTest::create_pipeline($node,
	name => 'items', brokers => $kafka->brokers, topic => 'dbz.public.items',
	target => 'public.items', envelope => 'debezium', on_truncate => 'truncate',
	batch_size => \'200');
EoTest::create_pipeline($node,
	name => 'nopk', brokers => $kafka->brokers, topic => 'dbz.public.nopk',
	target => 'public.nopk', envelope => 'debezium', batch_size => \'50',
	columns => '{"op": "$op", "event_at": "$ts_ms", "tx": "$source.txId", "lsn": "$source.lsn", '
	  . '"committed_at": "$source.ts_us"}');

# ---- Kafka Connect with the Debezium PostgreSQL connector ------------------

my $cdir = $kafka->dir . '/connect';
my $user = getpwuid($<);
my $props = "$cdir.src.properties";
open(my $fh, '>', $props) or die "cannot write $props: $!";
print $fh <<"EOP";
name=src061
connector.class=io.debezium.connector.postgresql.PostgresConnector
tasks.max=1
database.hostname=127.0.0.1
database.port=@{[ $src->port ]}
database.user=$user
database.password=unused
database.dbname=postgres
topic.prefix=dbz
plugin.name=pgoutput
slot.name=eo061
publication.name=eo061
publication.autocreate.mode=filtered
table.include.list=public.items,public.nopk
skipped.operations=none
snapshot.mode=initial
EOP
close($fh);

sub connect_sh
{
	my @args = @_;
	my ($out, $err) = ('', '');
	my $ok = IPC::Run::run([ $connect, @args ], '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout(300));
	note("connect.sh @args: $out$err");
	return $ok;
}
END { connect_sh('kill', $cdir) if defined $cdir && -d $cdir }

ok(connect_sh('start', $cdir, $kafka->brokers, $rest_port), 'Kafka Connect worker started')
  or BAIL_OUT('no Kafka Connect worker');
ok(connect_sh('put', $cdir, 'src061', $props), 'Debezium PostgreSQL connector configured');
ok(connect_sh('wait-running', $cdir, 'src061', 300), 'Debezium PostgreSQL connector running')
  or diag(slurp_file("$cdir/connect.log"));

# ---- the workload, with crashes of the target ------------------------------

my @ops = (
	# inserts
	"INSERT INTO items SELECT floor(random() * 600)::int, rnd_b(), floor(random() * 1000)::int, rnd_price(), rnd_at(), rnd_doc(), rnd_note() FROM generate_series(1, 1 + floor(random() * 5)::int) ON CONFLICT DO NOTHING",
	"INSERT INTO nopk SELECT coalesce(max(abs(id)), 0) + 1, md5(random()::text), rnd_n() FROM nopk",
	# updates
	"UPDATE items SET qty = floor(random() * 1000)::int, price = rnd_price(), at = rnd_at(), doc = rnd_doc(), note = rnd_note() WHERE (a, b) IN (SELECT a, b FROM items ORDER BY random() LIMIT 3)",
	"UPDATE items SET note = rnd_note() WHERE (a, b) IN (SELECT a, b FROM items ORDER BY random() LIMIT 1)",
	"UPDATE nopk SET v = md5(random()::text), n = CASE WHEN random() < 0.3 THEN NULL ELSE n + 1 END WHERE id IN (SELECT id FROM nopk ORDER BY random() LIMIT 2)",
	# deletes
	"DELETE FROM items WHERE (a, b) IN (SELECT a, b FROM items ORDER BY random() LIMIT 2)",
	"DELETE FROM nopk WHERE id IN (SELECT id FROM nopk ORDER BY random() LIMIT 1)",
	# primary key changes (Debezium: delete, tombstone, create); for nopk an
	# update whose full "before" has the old id
	"UPDATE items i SET a = i.a + 1000 FROM (SELECT a, b FROM items o WHERE NOT EXISTS (SELECT FROM items n WHERE n.a = o.a + 1000 AND n.b = o.b) ORDER BY random() LIMIT 1) s WHERE i.a = s.a AND i.b = s.b",
	"UPDATE nopk SET id = -id WHERE id IN (SELECT id FROM nopk ORDER BY random() LIMIT 1) RETURNING 'flip'",
	# a burst: every row in one transaction
	"UPDATE items SET qty = qty + 1",
);
my @weights = (6, 2, 6, 3, 3, 3, 1, 2, 1, 1);
my @bag = map { ($_) x $weights[$_] } 0 .. $#ops;

my %kills = (10 => 'worker', 20 => 'postmaster', 35 => 'worker', 45 => 'postmaster', 55 => 'worker');
my $t0 = time;
my $truncated = 0;
my $flips = 0;					# nopk updates of the id: two changes each
for my $round (1 .. $rounds)
{
	my $sql = "BEGIN;\n";
	$sql .= $ops[ $bag[ int(rand(@bag)) ] ] . ";\n" for 1 .. 1 + int(rand(8));
	$sql .= "COMMIT;\n";
	$flips += () = $src->safe_psql('postgres', $sql) =~ /^flip$/mg;
	if ($round == int($rounds / 2))
	{
		$truncated = $src->safe_psql('postgres',
			'BEGIN; LOCK items; SELECT count(*) FROM items; TRUNCATE items; COMMIT;');
		note("source: TRUNCATE items ($truncated rows)");
	}
	my $what = $kills{$round} // next;
	if ($what eq 'worker')
	{
		my $victim = (qw(items nopk))[ int(rand(2)) ];
		my $pid = EoTest::wait_worker($node, $victim, undef, timeout => 60);
		ok(defined $pid && kill('KILL', $pid), "round $round: kill -9 worker of $victim");
		ok(defined EoTest::wait_worker($node, $victim, $pid, timeout => 60), "$victim has a new worker");
	}
	else
	{
		my $r = EoTest::crash_postmaster($node);
		ok($r->{started} && !$r->{orphans}, "round $round: kill -9 postmaster and restart");
	}
	sleep(rand(0.5));
}
note(sprintf('workload: %d rounds in %.0f s', $rounds, time - $t0));

# ---- each target equals its source ------------------------------------------

# Rows of the target missing from the source and of the source missing from
# the target, every column compared ("extra/missing").
# items.price as text: its scale must arrive too (numeric's = ignores it).
# nopk.n by value: the connector itself sends an unconstrained numeric
# without the trailing zeros of its fraction (12.500 as 12.5).
my %cols = (items => 'a, b, qty, price::text AS price, at, doc, note', nopk => 'id, v, n');

sub diff_counts
{
	my ($table) = @_;
	my $c = $cols{$table};
	my $rows = $src->safe_psql('postgres', "SELECT coalesce(json_agg(t), '[]') FROM (SELECT $c FROM $table) t");
	my ($out, $err) = ('', '');
	EoTest::try_psql($node, 'postgres', <<"EOS", \$out, \$err);
SET client_min_messages = warning;
DROP TABLE IF EXISTS source_rows;
CREATE TABLE source_rows AS SELECT $c FROM $table WITH NO DATA;
INSERT INTO source_rows SELECT * FROM json_populate_recordset(NULL::source_rows, \$J\$$rows\$J\$);
SELECT (SELECT count(*) FROM (SELECT $c FROM $table EXCEPT ALL SELECT * FROM source_rows) x) || '/' ||
	   (SELECT count(*) FROM (SELECT * FROM source_rows EXCEPT ALL SELECT $c FROM $table) y) || '/' ||
	   (SELECT count(*) FROM source_rows);
EOS
	return $out;
}

for my $table (qw(items nopk))
{
	my $deadline = time + 300;
	my $d;
	while (1)
	{
		$d = diff_counts($table);
		last if $d =~ m{^0/0/} || time > $deadline;
		sleep(2);
	}
	my ($extra, $missing, $n) = split m{/}, $d;
	is("$extra extra, $missing missing", '0 extra, 0 missing',
		"$table: the target equals the source's " . ($n // '?') . ' rows on every column');
	EoTest::diag_status($node) unless $d =~ m{^0/0/};

	# Every record of the topic counted once, none a dead letter; the
	# truncate event adds the rows it removed instead of itself, an update
	# of nopk's id counts a delete and an insert.
	my $end = EoTest::end_offsets($kafka, "dbz.public.$table", 1)->{0};
	my $expected = $table eq 'items' ? $end - 1 + $truncated : $end + $flips;
	ok(EoTest::wait_for($node,
		"SELECT lag, rows_inserted + rows_updated + rows_deleted + duplicates_skipped + dead_letters, dead_letters "
		  . "FROM eo_ingest.pipeline_status WHERE name = '$table'",
		"0|$expected|0", 60),
		"$table: the topic's $end records counted once, no dead letter ($expected counted)");
}

# The metadata of nopk's rows: a row read by the snapshot has op r (its
# source.txId is the snapshot's) and its source row was not written since the
# initial load; any other has op c or u, the transaction that
# last wrote its source row and that transaction's commit time to the
# microsecond; the event's own time is no earlier; and source LSNs grow with
# the transactions (one session wrote them all).
my $meta = $src->safe_psql('postgres',
	"SELECT coalesce(json_agg(json_build_object('id', id, 'tx', xmin::text::bigint, "
	  . "'committed_at', pg_xact_commit_timestamp(xmin))), '[]') FROM nopk");
my ($out, $err) = ('', '');
EoTest::try_psql($node, 'postgres', <<"EOS", \$out, \$err);
SET client_min_messages = warning;
CREATE TEMP TABLE src_meta AS
	SELECT * FROM json_to_recordset(\$J\$$meta\$J\$) AS m(id integer, tx bigint, committed_at timestamptz);
SELECT count(*) FILTER (WHERE m.id IS NULL),
	   count(*) FILTER (WHERE t.op = 'r' AND m.tx = $snap_xmin AND t.committed_at IS NOT NULL),
	   count(*) FILTER (WHERE t.op IN ('c', 'u') AND t.tx = m.tx AND t.committed_at = m.committed_at
						AND t.event_at >= date_trunc('milliseconds', t.committed_at)
						AND t.event_at < t.committed_at + interval '10 minutes' AND t.lsn > 0),
	   count(*),
	   (SELECT count(*) FROM nopk x JOIN nopk y ON x.tx < y.tx AND x.lsn >= y.lsn WHERE x.op <> 'r' AND y.op <> 'r')
  FROM nopk t LEFT JOIN src_meta m USING (id);
EOS
my ($unmatched, $snap, $changed, $all, $disorder) = split /\|/, $out;
ok(defined $all && $unmatched == 0 && $snap + $changed == $all && $changed > 0 && $disorder == 0,
	"nopk: \$op, \$ts_ms and \$source fields of every row are its source row's last change "
	  . "($snap snapshot reads, $changed changes of $all rows, $disorder out of LSN order)")
  or diag("$out$err\n" . $node->safe_psql('postgres', 'SELECT id, op, event_at, tx, lsn, committed_at FROM nopk ORDER BY id LIMIT 10'));

my $counters = $node->safe_psql('postgres',
	"SELECT rows_inserted || ' inserted, ' || rows_updated || ' updated, ' || rows_deleted || ' deleted, ' || duplicates_skipped || ' skipped' FROM eo_ingest.pipeline_status WHERE name = 'items'");
diag("items: $counters");

connect_sh('stop', $cdir);
$node->stop;
$src->stop;
$kafka->stop;
done_testing();
