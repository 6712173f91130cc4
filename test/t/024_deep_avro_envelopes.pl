
# Deep records in the other formats and envelopes (023 covers json, text and
# bytea): each makes exactly its own record a dead letter with its SQLSTATE
# and a precise error, while every other record of the same batch lands.
#   Avro: a recursive schema (a linked list) whose data nests 100,000 nodes
#     deep, mapped to a jsonb column (a plain target: the multi-insert path)
#     and unmapped (a target with a foreign key: INSERT ... ON CONFLICT);
#     400 nodes still land whole.
#   Avro schemas: a registry schema nested 20,000 deep makes the records
#     with its id dead letters; an inline one is refused by create_pipeline.
#   Debezium: "after", "before", "source" and the key nested 100,000 deep.
#   Upsert: the value and the key nested that deep.
#   key_format json: a key nested that deep, read for $key.<path> columns and
#     event ids, or only carried along.

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use JSON::PP ();
use PostgreSQL::Test::Utils;
use Test::More;
use EoAvro;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('deep_avro_env',
	conf => "eo_ingest.retry_max_delay = '2s'");

# ---- Avro: a recursive schema ------------------------------------------------

my $reg = EoAvro::Registry->new;
# A schema nested 100,000 deep, as a registry would hold it: its state file.
my $deep_schema = ('{"type": "array", "items": ' x 20_000) . '"int"' . ('}' x 20_000);
{
	open my $fh, '>', "$reg->{dir}/state.json" or die $!;
	print $fh JSON::PP->new->encode({ schemas => { 1 => $deep_schema }, subjects => {} });
	close $fh;
}
$reg->start;

my $schema = {
	type => 'record', name => 'Top', fields => [
		{ name => 'id', type => 'int' },
		{ name => 'node', type => {
			type => 'record', name => 'Node', fields => [
				{ name => 'value', type => 'int' },
				{ name => 'next', type => [ 'null', 'Node' ] } ] } } ] };

sub list_of { my ($n) = @_; my $l; $l = { value => $_, next => $l } for reverse 1 .. $n; return $l }
# the same list as jsonb prints it
sub list_json
{
	my ($n) = @_;
	my $j = 'null';
	$j = "{\"next\": $j, \"value\": $_}" for reverse 1 .. $n;
	return $j;
}
sub zigzag_hex
{
	my ($v) = @_;
	my $u = $v >= 0 ? 2 * $v : -2 * $v - 1;
	my $hex = '';
	do { my $b = $u & 0x7f; $u >>= 7; $hex .= sprintf('%02x', $b | ($u ? 0x80 : 0)) } while ($u);
	return $hex;
}

$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.av_ids (id integer PRIMARY KEY);
INSERT INTO public.av_ids SELECT generate_series(1, 1002);
CREATE TABLE public.av_mapped (id integer PRIMARY KEY, node jsonb);
CREATE TABLE public.av_unmapped (id integer PRIMARY KEY REFERENCES public.av_ids);
EOS
$kafka->create_topic('deep_avro', 1);

# The producer registers the schema (id 2: id 1 is the deep one).
my @avro = map { { id => $_, node => list_of(1 + $_ % 4) } } 1 .. 40;
EoAvro::produce(brokers => $kafka->brokers, topic => 'deep_avro', registry => $reg->url,
	schema => $schema, records => [ @avro[ 0 .. 19 ] ]);
my $sid = $reg->latest_id('deep_avro-value');
is($sid, 2, 'the test schema has id 2');
my $hdr = '00' . sprintf('%08x', $sid);
# 100,000 nodes: value 0, the union's "Node" branch; the last one ends in null.
my $deep_hex = $hdr . zigzag_hex(1001) . ('0002' x 100_000) . '0000';
my $within_hex = $hdr . zigzag_hex(1002) . join('', map { zigzag_hex($_) . '02' } 1 .. 399)
  . zigzag_hex(400) . '00';
my $deep_schema_hex = '00' . sprintf('%08x', 1) . '00';
EoAvro::produce(brokers => $kafka->brokers, topic => 'deep_avro', registry => $reg->url,
	schema => $schema, records => [ { '$raw_hex' => $deep_hex }, { '$raw_hex' => $within_hex },
		{ '$raw_hex' => $deep_schema_hex }, @avro[ 20 .. 39 ] ]);
my %avro_poison = (
	20 => [ pack('H*', $deep_hex), '54000',
		qr/invalid Avro value in field "node" at byte \d+: nested more than 1000 levels deep/ ],
	22 => [ pack('H*', $deep_schema_hex), '22023',
		qr/schema id 1: invalid Avro schema: The schema's JSON nests deeper than 512 levels/ ],
);

for my $t ('av_mapped', 'av_unmapped')
{
	EoTest::create_pipeline($node, name => $t, brokers => $kafka->brokers,
		topic => 'deep_avro', target => "public.$t", format => 'avro',
		schema_registry => $reg->url, event_id => 'id', batch_size => \'10000',
		batch_timeout => \'2000');
	EoTest::wait_caught_up($node, $t, 43, timeout => 90);
	EoTest::check_dead_letters($node, $t, \%avro_poison);
}
is($node->safe_psql('postgres', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM public.av_unmapped'),
	join(',', 1 .. 40, 1002), 'av_unmapped: every other record landed');
is($node->safe_psql('postgres', 'SELECT string_agg(id || \'=\' || coalesce(node::text, \'\'), \',\' ORDER BY id) FROM public.av_mapped'),
	join(',', map { "$_=" . list_json(1 + $_ % 4) } 1 .. 40) . ',1002=' . list_json(400),
	'av_mapped: every other record landed with its list, 400 nodes deep too');

# An inline schema nested that deep, or deeper than 64 types, is refused.
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT eo_ingest.create_pipeline(name => 'inline_deep', brokers => '" . $kafka->brokers
	  . "', topic => 'deep_avro', target => 'public.av_unmapped', format => 'avro', event_id => 'id', "
	  . "avro_schema => '$deep_schema')");
like($err, qr/invalid Avro schema.*\n.*The schema's JSON nests deeper than 512 levels/,
	'an inline schema nested 20,000 deep is refused by create_pipeline');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT eo_ingest.create_pipeline(name => 'inline_deep', brokers => '" . $kafka->brokers
	  . "', topic => 'deep_avro', target => 'public.av_unmapped', format => 'avro', event_id => 'id', "
	  . "avro_schema => '{\"type\": \"record\", \"name\": \"r\", \"fields\": [{\"name\": \"id\", \"type\": "
	  . ('{"type": "array", "items": ' x 100) . '"int"' . ('}' x 100) . "}]}')");
like($err, qr/The schema nests deeper than 64 levels/,
	'an inline schema of 100 nested arrays is refused by create_pipeline');

# ---- Debezium and upsert ---------------------------------------------------------

$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.dbz (id integer PRIMARY KEY, v text, doc jsonb);
CREATE TABLE public.ups (id integer PRIMARY KEY, v text, doc jsonb);
EOS

sub dbz_event
{
	my ($op, $before, $after, $source) = @_;
	return "{\"op\": \"$op\", \"before\": $before, \"after\": $after, \"source\": "
	  . ($source // '{"connector": "postgresql", "lsn": 1}') . '}';
}
my (@dbz, %dbz_poison, %dbz_rows);
sub dbz_good
{
	for (1 .. 10)
	{
		my $id = @dbz + 1;
		push @dbz, { key => "{\"id\": $id}", value => dbz_event('c', 'null', "{\"id\": $id, \"v\": \"r$id\"}") };
		$dbz_rows{$id} = "r$id";
	}
}
my $too_deep = qr/JSON value is nested more than 10000 levels deep/;
for my $poison (
	[ '{"id": 0}', dbz_event('c', 'null', '{"id": 9001, "v": "x", "doc": ' . EoTest::deep_object(100_000) . '}') ],
	[ '{"id": 0}', dbz_event('c', 'null', '{"id": 9002, "v": "x", "junk": ' . EoTest::deep_array(200_000) . '}') ],
	[ '{"id": 0}', dbz_event('u', '{"id": 9003, "junk": ' . EoTest::deep_object(100_000) . '}', '{"id": 9003, "v": "x"}') ],
	[ '{"id": 0}', dbz_event('c', 'null', '{"id": 9004, "v": "x"}', EoTest::deep_array(200_000)) ],
	[ '{"id": ' . EoTest::deep_array(200_000) . '}', dbz_event('d', 'null', 'null') ])
{
	dbz_good();
	$dbz_poison{ scalar @dbz } = [ $poison->[1], '54000',
		$poison->[0] =~ /^\{"id": 0/ ? $too_deep : qr/Kafka key: $too_deep/ ];
	push @dbz, { key => $poison->[0], value => $poison->[1] };
}
# nested 5000 deep: well within the limit, the document lands whole
push @dbz, { key => '{"id": 5000}', value => dbz_event('c', 'null', '{"id": 5000, "v": "deep", "doc": ' . EoTest::deep_object(5000) . '}') };
dbz_good();
$kafka->create_topic('deep_dbz', 1);
$kafka->kcat_produce('deep_dbz', \@dbz);

my (@ups, %ups_poison, %ups_rows);
for my $i (1 .. 60)
{
	if ($i % 12 == 0)
	{
		my $k = $i / 12;
		my ($key, $value, $pattern) =
			$k == 1 ? ("{\"id\": $i}", '{"v": "x", "doc": ' . EoTest::deep_array(200_000) . '}', $too_deep)
		  : $k == 2 ? ("{\"id\": $i}", '{"v": "x", "junk": ' . EoTest::deep_object(100_000) . '}', $too_deep)
		  : $k == 3 ? ("{\"id\": $i, \"junk\": " . EoTest::deep_object(100_000) . '}', '{"v": "x"}', qr/Kafka key: $too_deep/)
		  : ("{\"id\": $i}", '{"v": "shallow", "doc": ' . EoTest::deep_array(500) . '}', undef);
		$ups_poison{ scalar @ups } = [ $value, '54000', $pattern ] if $pattern;
		$ups_rows{$i} = 'shallow' unless $pattern;
		push @ups, { key => $key, value => $value };
		next;
	}
	push @ups, { key => "{\"id\": $i}", value => "{\"v\": \"u$i\"}" };
	$ups_rows{$i} = "u$i";
}
$kafka->create_topic('deep_ups', 1);
$kafka->kcat_produce('deep_ups', \@ups);

# key_format json without an envelope: the key is decoded like a value
my (@kj, %kj_poison, %kj_rows);
for my $i (1 .. 40)
{
	my $key = "{\"id\": $i, \"r\": \"k$i\"}";
	my $value = "{\"v\": $i}";
	if ($i % 10 == 0)
	{
		$key = $i == 10 ? EoTest::deep_object(100_000)
		  : $i == 20 ? "{\"id\": $i, \"r\": \"k$i\", \"junk\": " . EoTest::deep_array(200_000) . '}'
		  : $i == 30 ? "{\"id\": $i, \"r\": " . EoTest::deep_object(100_000) . '}'
		  : "{\"id\": $i, \"r\": \"k$i\", \"doc\": " . EoTest::deep_array(500) . '}';
		$kj_poison{ scalar @kj } = [ $value, '54000', qr/key.*$too_deep/ ] if $i < 40;
	}
	$kj_rows{$i} = "k$i" unless $i % 10 == 0 && $i < 40;
	push @kj, { key => $key, value => $value };
}
$kafka->create_topic('deep_kj', 1);
$kafka->kcat_produce('deep_kj', \@kj);
$node->safe_psql('postgres', 'CREATE TABLE public.kj (id integer PRIMARY KEY, v text, r text)');
EoTest::create_pipeline($node, name => 'kj', brokers => $kafka->brokers,
	topic => 'deep_kj', target => 'public.kj', key_format => 'json', event_id => '$key.id',
	columns => '{"id": "$key.id", "r": "$key.r", "v": "v"}',
	batch_size => \'10000', batch_timeout => \'2000');
EoTest::wait_caught_up($node, 'kj', scalar @kj, timeout => 90);
is($node->safe_psql('postgres', "SELECT string_agg(id || '=' || r, ',' ORDER BY id) FROM public.kj"),
	join(',', map { "$_=$kj_rows{$_}" } sort { $a <=> $b } keys %kj_rows),
	'kj: every record with a shallow key landed');
EoTest::check_dead_letters($node, 'kj', \%kj_poison);

EoTest::create_pipeline($node, name => 'dbz', brokers => $kafka->brokers,
	topic => 'deep_dbz', target => 'public.dbz', envelope => 'debezium',
	batch_size => \'10000', batch_timeout => \'2000');
EoTest::create_pipeline($node, name => 'ups', brokers => $kafka->brokers,
	topic => 'deep_ups', target => 'public.ups', envelope => 'upsert',
	batch_size => \'10000', batch_timeout => \'2000');
$dbz_rows{5000} = 'deep';
for my $c ([ 'dbz', \@dbz, \%dbz_poison, \%dbz_rows ], [ 'ups', \@ups, \%ups_poison, \%ups_rows ])
{
	my ($pipe, $msgs, $poison, $rows) = @$c;
	EoTest::wait_caught_up($node, $pipe, scalar @$msgs, timeout => 90);
	is($node->safe_psql('postgres', "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM public.$pipe"),
		join(',', map { "$_=$rows->{$_}" } sort { $a <=> $b } keys %$rows),
		"$pipe: every other change applied");
	EoTest::check_dead_letters($node, $pipe, $poison);
}
is($node->safe_psql('postgres', 'SELECT md5(doc::text) FROM public.dbz WHERE id = 5000'),
	md5_hex(EoTest::deep_object(5000)), 'dbz: a document 5000 deep landed whole');
is($node->safe_psql('postgres', 'SELECT doc::text FROM public.ups WHERE id = 48'),
	EoTest::deep_array(500) =~ s/\]\[/], [/gr, 'ups: a document 500 deep landed whole');

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was fenced off|stack depth limit exceeded/,
	'server log: no crashed process, no fenced worker, no stack overflow');

$node->stop;
$kafka->stop;
done_testing();
