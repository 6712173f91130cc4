# The multi-insert fast path (src/direct.c) against the INSERT ... ON
# CONFLICT path it replaces:
#  - two pipelines on two topics with the same events write one target at the
#    same time, so their workers race for every event id: each id lands once,
#    no dead letter, and the counters add up (inserted = distinct ids);
#  - a target with an identity column, column defaults (volatile and
#    constant), a domain type and a varchar(n) gets the same rows, defaults
#    and dead letters from both paths (eo_ingest.direct_insert on and off);
#  - 'update' through the fast path: new ids inserted, existing ones updated;
#  - timestamps in every ISO 8601 spelling and uuids in every spelling land
#    as SQL's cast reads them (the worker parses the common forms itself);
#  - decimals and integers in every spelling land as SQL's cast reads them;
#  - the walk over the event id index (which spares probes) skips ids that
#    exist among ids that do not, and does not take a deleted id's entry for
#    a row;
#  - spellings of one uuid in one batch are duplicates of each other.

use strict;
use warnings;

use IPC::Run ();
use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;

my $node = EoTest::new_node('eo013', conf => "eo_ingest.retry_max_delay = '2s'");

# --- two pipelines racing into one target

# Same partition count: the same key lands in the same partition of both.
$kafka->create_topic('race_a', 3);
$kafka->create_topic('race_b', 3);
my %same = (count => 20_000, start_id => 1, dup_ratio => 0.05, seed => 13,
	timestamp_base => EoTest::ts_base(0));
my $ma = $kafka->produce(topic => 'race_a', %same);
my $mb = $kafka->produce(topic => 'race_b', %same);
is_deeply([ sort map { "$_->{partition} $_->{offset} $_->{value}" } @$ma ],
	[ sort map { "$_->{partition} $_->{offset} $_->{value}" } @$mb ],
	'both topics hold the same events');
my $distinct = do { my %h = map { $_->{event_id} => 1 } @$ma; scalar keys %h };

EoTest::create_orders_table($node, 'public.race');
# Both pipelines start in one transaction, so their workers begin together.
$node->safe_psql('postgres', sprintf(<<'EOS', $kafka->brokers, $kafka->brokers));
BEGIN;
SELECT eo_ingest.create_pipeline('race_a', '%s', 'race_a', 'public.race', batch_size => 2000);
SELECT eo_ingest.create_pipeline('race_b', '%s', 'race_b', 'public.race', batch_size => 2000);
COMMIT;
EOS
EoTest::wait_caught_up($node, 'race_a', scalar @$ma);
EoTest::wait_caught_up($node, 'race_b', scalar @$mb);
EoTest::check_rows($node, 'public.race', [ @$ma, @$mb ], 'skip',
	label => 'race: every event id once, row by row');
my ($ins, $skip, $dead, $subx) = split /\|/, $node->safe_psql('postgres', <<'EOS');
SELECT sum(rows_inserted), sum(duplicates_skipped), sum(dead_letters), sum(subtransactions)
  FROM eo_ingest.pipeline_status WHERE name IN ('race_a', 'race_b')
EOS
is($ins, $distinct, "race: rows_inserted of both pipelines = $distinct distinct ids");
is($ins + $skip, @$ma + @$mb, 'race: inserted + skipped = every record of both topics');
is($dead, 0, 'race: no dead letter (a lost race is a duplicate, not an error)');
note("race: $subx subtransactions (two per batch, with decoding, plus one per race: a second fast-path try, then ON CONFLICT)");

# --- defaults, identity, domains and typmods, through both paths

$node->safe_psql('postgres', <<'EOS');
CREATE DOMAIN public.small_int AS integer CHECK (VALUE < 900);
CREATE TABLE public.shaped_template (
	row_no		bigint GENERATED ALWAYS AS IDENTITY,
	event_id	uuid PRIMARY KEY,
	seq			integer NOT NULL,
	customer_id	public.small_int,
	amount		numeric(12, 2),
	note		varchar(11),
	created_at	timestamptz,
	source		text NOT NULL DEFAULT 'kafka',
	loaded_at	timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE public.shaped_direct (LIKE public.shaped_template INCLUDING ALL);
CREATE TABLE public.shaped_sql (LIKE public.shaped_template INCLUDING ALL);
EOS
# customer_id is seq % 1000 in the producer: 900..999 break the domain's
# CHECK; notes are 'event <id>', longer than varchar(11) from id 100000 on.
$kafka->create_topic('shaped', 1);
my $ms = $kafka->produce(topic => 'shaped', count => 3000, start_id => 99_001,
	partition => 0, timestamp_base => EoTest::ts_base(1));

sub shaped_pipeline
{
	my ($name, $table, $direct) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET eo_ingest.direct_insert = $direct");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	EoTest::create_pipeline($node, name => $name, brokers => $kafka->brokers,
		topic => 'shaped', target => $table, batch_size => \'1000');
	EoTest::wait_caught_up($node, $name, scalar @$ms);
	return;
}
shaped_pipeline('shaped_direct', 'public.shaped_direct', 'on');
shaped_pipeline('shaped_sql', 'public.shaped_sql', 'off');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET eo_ingest.direct_insert');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');

my $cols = 'event_id, seq, customer_id, amount, note, created_at, source';
is($node->safe_psql('postgres', <<"EOS"), '0', 'shaped: both paths wrote the same rows');
SELECT count(*) FROM (
	(SELECT $cols FROM public.shaped_direct EXCEPT ALL SELECT $cols FROM public.shaped_sql)
	UNION ALL
	(SELECT $cols FROM public.shaped_sql EXCEPT ALL SELECT $cols FROM public.shaped_direct)) d
EOS
for my $t ('shaped_direct', 'shaped_sql')
{
	my ($n, $ids, $src, $loaded) = split /\|/, $node->safe_psql('postgres', <<"EOS");
SELECT count(*), count(DISTINCT row_no) = count(*) AND min(row_no) >= 1,
	   bool_and(source = 'kafka'), bool_and(loaded_at > now() - interval '10 minutes')
  FROM public.$t
EOS
	ok($n > 0 && $ids eq 't' && $src eq 't' && $loaded eq 't',
		"$t: $n rows with identity numbers, constant and volatile defaults");
	my $dl = $node->safe_psql('postgres', <<"EOS");
SELECT string_agg(DISTINCT sqlstate, ',' ORDER BY sqlstate), count(*)
  FROM eo_ingest.dead_letters WHERE pipeline = '$t'
EOS
	my ($bad) = $node->safe_psql('postgres', "SELECT dead_letters FROM eo_ingest.pipeline_status WHERE name = '$t'");
	is($n + $bad, scalar @$ms, "$t: rows + dead letters = every record");
	like($dl, qr/^(22001,23514|23514,22001)\|\d+$/, "$t: domain CHECK and varchar(11) overflows are dead letters ($dl)");
	EoTest::check_counters($node, $t, "public.$t", scalar @$ms);
}
is($node->safe_psql('postgres', <<'EOS'), '0', 'shaped: both paths dead-lettered the same records');
SELECT count(*) FROM (
	(SELECT "offset", sqlstate FROM eo_ingest.dead_letters WHERE pipeline = 'shaped_direct'
	 EXCEPT SELECT "offset", sqlstate FROM eo_ingest.dead_letters WHERE pipeline = 'shaped_sql')
	UNION ALL
	(SELECT "offset", sqlstate FROM eo_ingest.dead_letters WHERE pipeline = 'shaped_sql'
	 EXCEPT SELECT "offset", sqlstate FROM eo_ingest.dead_letters WHERE pipeline = 'shaped_direct')) d
EOS

# --- 'update' through the fast path: half the ids again, newer

$kafka->create_topic('upd', 2);
EoTest::create_orders_table($node, 'public.upd');
my $m1 = $kafka->produce(topic => 'upd', count => 4000, start_id => 1, seed => 1,
	timestamp_base => EoTest::ts_base(2));
EoTest::create_pipeline($node, name => 'upd', brokers => $kafka->brokers,
	topic => 'upd', target => 'public.upd', on_duplicate => 'update',
	columns => EoTest::update_columns());
EoTest::wait_caught_up($node, 'upd', scalar @$m1);
my $m2 = $kafka->produce(topic => 'upd', count => 4000, start_id => 2001, seed => 2,
	timestamp_base => EoTest::ts_base(3));
EoTest::wait_caught_up($node, 'upd', @$m1 + @$m2);
EoTest::check_rows($node, 'public.upd', [ @$m1, @$m2 ], 'update',
	label => 'update: latest record of every id, row by row');
my ($ui, $uu) = split /\|/, $node->safe_psql('postgres',
	"SELECT rows_inserted, rows_updated FROM eo_ingest.pipeline_status WHERE name = 'upd'");
ok($uu >= 2000, "update: $ui inserted, $uu updated (the second run's 2,000 old ids at least)");
EoTest::check_counters($node, 'upd', 'public.upd', @$m1 + @$m2);

# --- ISO 8601 timestamps: the worker's own parser (eo_parse_iso_tstz) and
# its fallback to timestamptz_in agree with SQL's cast on every spelling

my @stamps = ('2024-02-29T23:59:59.999999Z', '2023-11-14 22:13:20+05:30',
	'2023-11-14T22:13:20-0800', '1999-12-31T23:59:59.5Z', '2000-01-01T00:00:00Z',
	'0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '2024-01-01T00:00:00.1234567Z',
	'2024-01-01T12:00:00', '2024-01-01T24:00:00Z', '2024-01-01T23:59:60Z',
	'2024-01-01T00:00:00+14', '2024-01-01T00:00:00.000001+00:00', '2024-01-01T00:00:00-00:00',
	'2024-01-01t00:00:00z', ' 2024-01-01T00:00:00Z', '2024-06-30T10:00:00+05:45',
	'2023-02-29T00:00:00Z', '2024-13-01T00:00:00Z', '2024-04-31T00:00:00Z',
	'2024-01-01T00:00:00+2', '2024-01-01T00:00:00.Z', '1900-02-29T00:00:00Z',
	'2000-02-29T00:00:00Z', 'yesterday', '2024-01-01T00:00:00+15:00');
# Spellings of one type, each in its own record (the text in "note" and in
# the column $column): those SQL's cast accepts land and equal the cast,
# the others are dead letters.
sub check_spellings
{
	my ($name, $type, $column, @texts) = @_;
	$kafka->create_topic($name, 1);
	EoTest::create_orders_table($node, "public.$name");
	$kafka->kcat_produce($name, [ map {
		my %f = (event_id => sprintf('00000000-0000-4000-8000-0000%08d', $_),
			note => $texts[$_], $column => $texts[$_]);
		{ key => "k$_", value => sprintf('{"seq":%d,%s}', $_,
			join(',', map { "\"$_\":\"$f{$_}\"" } sort keys %f)) }
	} 0 .. $#texts ]);
	EoTest::create_pipeline($node, name => $name, brokers => $kafka->brokers,
		topic => $name, target => "public.$name");
	EoTest::wait_caught_up($node, $name, scalar @texts);
	my (@ok, @bad);
	for my $i (0 .. $#texts)
	{
		my ($ret) = $node->psql('postgres', "SELECT '$texts[$i]'::$type");
		push @{ $ret == 0 ? \@ok : \@bad }, $i;
	}
	is($node->safe_psql('postgres', "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM public.$name"),
		join(',', @ok), "$name: the spellings SQL accepts landed");
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM public.$name WHERE $column IS DISTINCT FROM note::$type"),
		'0', "$name: every stored value equals SQL's cast of the same text");
	is($node->safe_psql('postgres',
			"SELECT string_agg(substr(convert_from(key, 'UTF8'), 2), ',' ORDER BY \"offset\") "
			  . "FROM eo_ingest.dead_letters WHERE pipeline = '$name'"),
		join(',', @bad), "$name: the spellings SQL refuses are dead letters");
	return;
}
check_spellings('stamps', 'timestamptz', 'created_at', @stamps);

# --- plain decimals and integers: the worker's own conversions
# (eo_parse_plain_numeric, pg_strtoint32) and their fallback to the input
# functions agree with SQL's cast, to the display scale

my @decimals = ('12.50', '-0.00', '0', '-0', '007.10', '123456789012345678',
	'1234567890123456789', '-12345678901234567.8', '0.00000000000000001',
	'0.000000000000000001', '99999999999999999.99', '-9.99', '1.', '.5', '+1', '1e3',
	' 1', '1 ', 'NaN', 'Infinity', '1.2.3', '-', '', '--1', '1-', '0.10');
check_spellings('decimals', 'numeric', 'amount', @decimals);
is($node->safe_psql('postgres',
		"SELECT count(*) FROM public.decimals WHERE amount::text IS DISTINCT FROM note::numeric::text"),
	'0', 'decimals: every stored value shows as SQL\'s cast shows it (same scale)');
my @integers = ('42', '-2147483648', '2147483647', '2147483648', ' 7 ', '+5', '0x1F',
	'1_000', '12abc', '', '-', '00012');
check_spellings('integers', 'integer', 'customer_id', @integers);

# --- the walk (direct.c): ids already in the target, interleaved with the
# topic's (every third record's), some deleted again (dead index entries of
# the same key), and others far below and above them all: the existing ids
# are skipped, the deleted ones land, nothing else changes

$kafka->create_topic('walk', 4);
my $mw = $kafka->produce(topic => 'walk', count => 6000, start_id => 500_001, dup_ratio => 0,
	seed => 17, timestamp_base => EoTest::ts_base(0));
EoTest::create_orders_table($node, 'public.walk');
my (@pre, @gone);
for my $i (0 .. $#$mw)
{
	push @pre, $mw->[$i]{event_id} if $i % 3 == 0;
	push @gone, $mw->[$i]{event_id} if $i % 3 != 0 && $i % 7 == 0;
}
$node->safe_psql('postgres', sprintf(<<'EOS', join(',', map { "'$_'" } @pre), join(',', map { "'$_'" } @gone)));
INSERT INTO public.walk (event_id, seq) SELECT unnest(ARRAY[%s]::uuid[]), -1;
INSERT INTO public.walk (event_id, seq) SELECT unnest(ARRAY[%s]::uuid[]), -2;
DELETE FROM public.walk WHERE seq = -2;
INSERT INTO public.walk (event_id, seq)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, -3 FROM generate_series(1, 3000) g
UNION ALL
SELECT ('ffffffff-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, -3 FROM generate_series(1, 3000) g;
EOS
EoTest::create_pipeline($node, name => 'walk', brokers => $kafka->brokers, topic => 'walk',
	target => 'public.walk', batch_size => 1000);
EoTest::wait_caught_up($node, 'walk', scalar @$mw);
is($node->safe_psql('postgres',
		"SELECT rows_inserted, duplicates_skipped, dead_letters FROM eo_ingest.pipeline_status WHERE name = 'walk'"),
	(@$mw - @pre) . '|' . scalar(@pre) . '|0', 'walk: the ids in the target skipped, the others inserted');
is($node->safe_psql('postgres', 'SELECT count(*) FILTER (WHERE seq = -1), count(*) FILTER (WHERE seq = -3), '
		  . 'count(*) FILTER (WHERE seq >= 0), count(DISTINCT event_id) FROM public.walk'),
	scalar(@pre) . '|6000|' . (@$mw - @pre) . '|' . (@$mw + 6000), 'walk: the rows there stayed, one row per id');
is($node->safe_psql('postgres', sprintf('SELECT count(*) FROM public.walk WHERE seq >= 0 AND event_id = ANY (ARRAY[%s]::uuid[])',
			join(',', map { "'$_'" } @gone))),
	scalar(@gone), 'walk: the deleted ids landed again');
# An existing id that the walk missed would still be skipped, by the unique
# index and the retries, at the cost of subtransactions: none here.
my ($wb, $wsub) = split /\|/, $node->safe_psql('postgres',
	"SELECT batches, subtransactions FROM eo_ingest.pipeline_status WHERE name = 'walk'");
ok($wsub <= 2 * $wb, "walk: $wsub subtransactions in $wb batches, no retry");

# --- uuid spellings: the worker's own parser (canonical form) and uuid_in

my @uuids = ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12',
	'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13}', 'a0eebc999c0b4ef8bb6d6bb9bd380a14',
	'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a15', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380g16',
	'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a177',
	'a0eebc99x9c0b-4ef8-bb6d-6bb9bd380a18', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd38 a19');
check_spellings('uuids', 'uuid', 'event_id', @uuids);

# --- one event id spelled four ways in one batch: duplicates of each other
# (the batch collapses ids by their uuid value, not their text), so with
# 'update' the latest record wins and nothing is left for the statement
# that cannot update one row twice

my @spell = ('c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'C0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
	'{c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', 'c0eebc999c0b4ef8bb6d6bb9bd380a11');
$kafka->create_topic('spelled', 1);
EoTest::create_orders_table($node, 'public.spelled');
$kafka->kcat_produce('spelled', [ map {
	{ key => "s$_", value => sprintf('{"event_id":"%s","seq":%d}', $spell[$_], $_) }
} 0 .. $#spell ]);
EoTest::create_pipeline($node, name => 'spelled', brokers => $kafka->brokers,
	topic => 'spelled', target => 'public.spelled', on_duplicate => 'update');
EoTest::wait_caught_up($node, 'spelled', scalar @spell);
is($node->safe_psql('postgres', "SELECT count(*), max(seq) FROM public.spelled"),
	'1|' . $#spell, "spelled: one row, from the latest of the id's spellings");
is($node->safe_psql('postgres',
		"SELECT rows_inserted + rows_updated, duplicates_skipped, dead_letters "
		  . "FROM eo_ingest.pipeline_status WHERE name = 'spelled'"),
	'1|' . $#spell . '|0', 'spelled: the other spellings counted as duplicates');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was fenced off/, 'server log: no crashed process, no fenced worker');

$node->stop;
$kafka->stop;
done_testing();
