
# key_format: the Kafka key decoded like the value, so that event_id and
# columns read its fields ($key.<path>), for key_format json, avro (registry
# and inline key schema), text and bytea; every key that cannot be decoded
# is exactly one dead letter.  Change streams in Avro as Debezium's
# AvroConverter writes them (key and value through the registry): a
# Debezium-shaped topic (snapshot, create, update, delete, primary key
# changes both ways, tombstones, bad events; $op, $source.lsn and $ts_ms of
# each row's last event in columns) and an upsert topic with
# tombstones, applied while the worker is killed with -9; each target must
# equal the expected final state row by row (EXCEPT both ways).  Avro
# records are serialized by confluent-kafka's AvroSerializer against Apicurio
# Registry (test/registry/apicurio.sh), whose Confluent-compatible API
# registers the <topic>-key and <topic>-value subjects.

use strict;
use warnings;

use Encode ();
use POSIX ();
use JSON::PP ();
use PostgreSQL::Test::Utils;
use Test::More;
use EoAvro;
use EoKafka;
use EoTest;

srand($ENV{EO_AVROKEY_SEED} // 53);
my $json = JSON::PP->new->utf8->canonical;

my $kafka = EoKafka->new;
$kafka->start;
my $reg = EoAvro::Registry->new(apicurio => 1);
$reg->start;
my $node = EoTest::new_node('avrokey');
my $brokers = $kafka->brokers;
my $registry = $reg->url;

$kafka->create_topic($_, 1) for qw(t054_json t054_reg t054_plain t054_raw t054_dbz t054_ups);
$node->safe_psql('postgres', <<'EOS');
CREATE TABLE kj (id integer PRIMARY KEY, region text, v text, k bytea);
CREATE TABLE ka (id bigint PRIMARY KEY, tenant text, v text);
CREATE TABLE kp (id integer PRIMARY KEY, v text);
CREATE TABLE kt (k bytea PRIMARY KEY, v text);
CREATE TABLE kb (LIKE kt INCLUDING ALL);
CREATE TABLE items (id integer PRIMARY KEY, name text, qty integer, op text, lsn bigint, at timestamptz);
CREATE TABLE prices (sku text PRIMARY KEY, name text, price double precision);
EOS

sub dead_letters
{
	my ($name) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(\"offset\" || ': ' || error, E'\\n' ORDER BY \"offset\") "
		  . "FROM eo_ingest.dead_letters WHERE pipeline = '$name'");
}

# Waits until every record of the pipeline is counted (deletes too).
sub wait_processed
{
	my ($name, $n) = @_;
	ok( EoTest::wait_for($node,
			"SELECT state, lag, rows_inserted + rows_updated + rows_deleted + duplicates_skipped + dead_letters "
			  . "FROM eo_ingest.pipeline_status WHERE name = '$name'",
			"running|0|$n", 120),
		"$name: all $n records processed");
}

sub check_table { return EoTest::check_table_rows($node, @_) }

# ---- key_format json: $key.<path> into event_id and columns ------------------

$kafka->kcat_produce('t054_json', [
	{ key => '{"id": 1, "where": {"region": "eu"}}', value => '{"v": "a"}' },
	{ key => '{"id": 2, "where": {"region": "us"}}', value => '{"v": "b"}' },
	{ key => '{"id": 1, "where": {"region": "xx"}}', value => '{"v": "dup"}' },
	{ key => '{"id": 3}', value => '{"v": "c"}' },
	{ key => '{"id": 4,', value => '{"v": "bad1"}' },
	{ key => '[1, 2]', value => '{"v": "bad2"}' },
	{ key => '{"where": {"region": "eu"}}', value => '{"v": "bad3"}' } ]);
EoTest::create_pipeline($node, name => 'kj', brokers => $brokers, topic => 't054_json',
	target => 'public.kj', key_format => 'json', event_id => '$key.id',
	columns => '{"id": "$key.id", "region": "$key.where.region", "v": "v", "k": "$key"}');
EoTest::wait_caught_up($node, 'kj', 7);
is($node->safe_psql('postgres', q{SELECT string_agg(id || ' ' || coalesce(region, '-') || ' ' || v || ' ' || convert_from(k, 'UTF8'), E'\n' ORDER BY id) FROM kj}),
	qq{1 eu a {"id": 1, "where": {"region": "eu"}}\n2 us b {"id": 2, "where": {"region": "us"}}\n3 - c {"id": 3}},
	'key_format json: event id and columns from key fields, the duplicate skipped, $key still the bytes');
like(dead_letters('kj'),
	qr/\A4: cannot decode the key as json: invalid JSON: .*\n5: cannot decode the key as json: value is not a JSON object\n6: record has no event id\z/,
	'key_format json: each bad key is one dead letter');
is($node->safe_psql('postgres', "SELECT key_format FROM eo_ingest.pipeline_status WHERE name = 'kj'"),
	'json', 'pipeline_status shows the key format');

# ---- key_format avro with the registry (Confluent wire format) ---------------

my $kschema = { type => 'record', name => 'k', namespace => 't054', fields => [
	{ name => 'id', type => 'long' },
	{ name => 'tenant', type => { type => 'record', name => 'tenant', fields => [ { name => 'name', type => 'string' } ] } } ] };
my $vschema = { type => 'record', name => 'v', namespace => 't054', fields => [ { name => 'v', type => 'string' } ] };
EoAvro::produce(brokers => $brokers, topic => 't054_reg', registry => $registry,
	schema => $vschema, key_schema => $kschema, records => [
		{ '$key' => { id => 10, tenant => { name => 'acme' } }, '$value' => { v => 'x' } },
		{ '$key' => { id => 11, tenant => { name => "caf\x{e9} \x{20ac}" } }, '$value' => { v => 'y' } },
		{ '$key' => { id => 10, tenant => { name => 'other' } }, '$value' => { v => 'dup' } } ]);
my $kid = $reg->latest_id('t054_reg-key');
EoAvro::produce(brokers => $brokers, topic => 't054_reg', registry => $registry,
	schema => $vschema, records => [
		{ '$key_hex' => '01' . sprintf('%08x', $kid) . '14', '$value' => { v => 'bad1' } },
		{ '$key_hex' => '00' . sprintf('%08x', $kid) . '14', '$value' => { v => 'bad2' } },
		{ '$key_hex' => '00000f423f' . '1402', '$value' => { v => 'bad3' } } ]);
EoTest::create_pipeline($node, name => 'ka', brokers => $brokers, topic => 't054_reg',
	target => 'public.ka', format => 'avro', schema_registry => $registry,
	key_format => 'avro', event_id => '$key.id',
	columns => '{"id": "$key.id", "tenant": "$key.tenant.name"}');
EoTest::wait_caught_up($node, 'ka', 6);
is($node->safe_psql('postgres', q{SELECT string_agg(id || ' ' || tenant || ' ' || v, E'\n' ORDER BY id) FROM ka}),
	Encode::encode_utf8("10 acme x\n11 caf\x{e9} \x{20ac} y"), 'key_format avro (registry): event id and nested columns from the key');
like(dead_letters('ka'),
	qr/\A3: cannot decode the key as avro: key starts with byte 0x01, not the Confluent wire format's magic byte 0x00\n4: cannot decode the key as avro: invalid Avro value in field "tenant" at byte 1: truncated[^\n]*\n5: cannot decode the key as avro: [^\n]*999999[^\n]*\z/,
	'key_format avro (registry): bad magic byte, truncated key and unknown schema id are one dead letter each');

# ---- key_format avro with key_avro_schema (plain Avro binary keys) -----------

my $pk = { type => 'record', name => 'pk', fields => [ { name => 'id', type => 'int' } ] };
EoAvro::produce(brokers => $brokers, topic => 't054_plain', plain => 1,
	schema => $vschema, key_schema => $pk, records => [
		{ '$key' => { id => 7 }, '$value' => { v => 'seven' } },
		{ '$key' => { id => 8 }, '$value' => { v => 'eight' } },
		{ '$key_hex' => 'ff', '$value' => { v => 'bad1' } },
		{ '$key_hex' => '1000', '$value' => { v => 'bad2' } } ]);
EoTest::create_pipeline($node, name => 'kp', brokers => $brokers, topic => 't054_plain',
	target => 'public.kp', format => 'avro', avro_schema => $json->encode($vschema),
	key_format => 'avro', key_avro_schema => $json->encode($pk), event_id => '$key.id',
	columns => '{"id": "$key.id"}');
EoTest::wait_caught_up($node, 'kp', 4);
is($node->safe_psql('postgres', q{SELECT string_agg(id || ' ' || v, ',' ORDER BY id) FROM kp}),
	'7 seven,8 eight', 'key_format avro (key_avro_schema): plain Avro keys');
like(dead_letters('kp'),
	qr/\A2: cannot decode the key as avro: invalid Avro value in field "id" at byte 1: truncated[^\n]*\n3: cannot decode the key as avro: invalid Avro value: 1 bytes left over[^\n]*\z/,
	'key_format avro (key_avro_schema): truncated key and key with bytes left over are one dead letter each');

# ---- key_format text and bytea: the same keys, into bytea columns ------------

$kafka->kcat_produce('t054_raw', [
	{ key => "h\xc3\xa9", value => '{"v": "utf8"}' },
	{ key => "\xff\xfe", value => '{"v": "binary"}' } ]);
for my $kf (qw(text bytea))
{
	my $t = $kf eq 'text' ? 'kt' : 'kb';
	EoTest::create_pipeline($node, name => $t, brokers => $brokers, topic => 't054_raw',
		target => "public.$t", key_format => $kf, event_id => '$key', columns => '{"k": "$key"}');
	EoTest::wait_caught_up($node, $t, 2);
}
is($node->safe_psql('postgres', q{SELECT string_agg(encode(k, 'hex') || ' ' || v, ',' ORDER BY v) FROM kt}),
	'68c3a9 utf8', 'key_format text: a valid key stored');
like(dead_letters('kt'), qr/\A1: key is not valid in the database encoding \(key_format text\)\z/,
	'key_format text: a key that is not text is one dead letter');
is($node->safe_psql('postgres', q{SELECT string_agg(encode(k, 'hex') || ' ' || v, ',' ORDER BY v) FROM kb}),
	'fffe binary,68c3a9 utf8', 'key_format bytea: any key bytes stored');

# ---- Debezium in Avro (AvroConverter: key and value through the registry) ----

my $row = { type => 'record', name => 'Value', fields => [
	{ name => 'id', type => 'int' }, { name => 'name', type => [ 'null', 'string' ], default => undef },
	{ name => 'qty', type => 'int' } ] };
my $dbz = { type => 'record', name => 'Envelope', namespace => 'dbz.public.items', fields => [
	{ name => 'before', type => [ 'null', $row ], default => undef },
	{ name => 'after', type => [ 'null', 'Value' ], default => undef },
	{ name => 'source', type => { type => 'record', name => 'Source', namespace => 'io.debezium.connector.postgresql',
		fields => [ { name => 'version', type => 'string' }, { name => 'lsn', type => [ 'null', 'long' ] },
			{ name => 'ts_ms', type => 'long' } ] } },
	{ name => 'op', type => 'string' },
	{ name => 'ts_ms', type => [ 'null', 'long' ], default => undef } ] };
# the metadata of each row's last event: $op, $source.lsn, $ts_ms
my %meta;
my $dkey = { type => 'record', name => 'Key', namespace => 'dbz.public.items',
	fields => [ { name => 'id', type => 'int' } ] };
my $lsn = 1000;
sub ev
{
	my ($op, $id, $before, $after) = @_;
	my $ts = 1_700_000_000_000 + 7 * ++$lsn;
	$meta{ $after->{id} } = { op => $op, lsn => $lsn,
		at => POSIX::strftime('%Y-%m-%d %H:%M:%S', gmtime(int($ts / 1000))) . sprintf('.%03d+00', $ts % 1000) }
	  if $after;
	return { '$key' => { id => $id }, '$value' => { before => $before, after => $after, op => $op,
		source => { version => '3.2.0', lsn => $lsn, ts_ms => $ts - 5 }, ts_ms => $ts } };
}
sub r { my ($id, $name, $qty) = @_; return { id => $id, name => $name, qty => $qty } }
sub rm { my $r = r(@_); return { %$r, %{ $meta{ $r->{id} } } } }
my @dbz = (
	ev('r', 1, undef, r(1, 'a', 1)),
	ev('r', 2, undef, r(2, 'b', 2)),
	ev('c', 3, undef, r(3, 'c', 3)),
	ev('u', 1, r(1, 'a', 1), r(1, 'a2', 10)),
	ev('d', 2, r(2, 'b', 2), undef), { '$key' => { id => 2 }, '$value' => undef },
	# a primary key change as the PostgreSQL connector writes it
	ev('d', 3, r(3, 'c', 3), undef), { '$key' => { id => 3 }, '$value' => undef },
	ev('c', 30, undef, r(30, 'c', 3)),
	# and as an update whose full "before" has the old key
	ev('u', 11, r(1, 'a2', 10), r(11, 'a3', 11)),
	ev('c', 4, undef, r(4, 'd', 4)),
	ev('u', 4, undef, r(4, undef, 5)),
	ev('d', 5, undef, undef),
	ev('c', 6, undef, r(6, 'e', 6)),
	ev('d', 6, undef, undef), { '$key' => { id => 6 }, '$value' => undef },
	ev('x', 7, undef, r(7, 'bad op', 7)),
	ev('c', 8, undef, undef));
EoAvro::produce(brokers => $brokers, topic => 't054_dbz', registry => $registry,
	schema => $dbz, key_schema => $dkey, records => \@dbz);
EoTest::create_pipeline($node, name => 'dbz', brokers => $brokers, topic => 't054_dbz',
	target => 'public.items', format => 'avro', schema_registry => $registry,
	key_format => 'avro', envelope => 'debezium', batch_size => \'4',
	columns => '{"op": "$op", "lsn": "$source.lsn", "at": "$ts_ms"}');
wait_processed('dbz', scalar(@dbz) + 1);
check_table('items', { 11 => rm(11, 'a3', 11), 30 => rm(30, 'c', 3), 4 => rm(4, undef, 5) },
	'Avro Debezium: c/r/u/d, key changes, tombstones; $op, $source.lsn, $ts_ms of the last event');
like(dead_letters('dbz'),
	qr/\A16: Debezium change event has unknown op "x"\n17: Debezium event with op "c" has no "after" row with a mapped field\z/,
	'Avro Debezium: an unknown op and a create without "after" are one dead letter each');

# ---- an Avro upsert topic with tombstones, the worker killed mid-stream ------

my $ukey = { type => 'record', name => 'sku', fields => [ { name => 'sku', type => 'string' } ] };
my $uval = { type => 'record', name => 'price', fields => [
	{ name => 'name', type => 'string' }, { name => 'price', type => 'double' } ] };
my (%state, @ups);
for my $i (1 .. 1500)
{
	my $sku = sprintf('sku-%03d', int(rand(150)));
	if (rand() < 0.2)
	{
		push @ups, { '$key' => { sku => $sku }, '$value' => undef };
		delete $state{$sku};
		next;
	}
	my $v = { name => "item $i \x{20ac}", price => int(rand(100000)) / 100 };
	push @ups, { '$key' => { sku => $sku }, '$value' => $v };
	$state{$sku} = { sku => $sku, %$v };
}
EoTest::create_pipeline($node, name => 'ups', brokers => $brokers, topic => 't054_ups',
	target => 'public.prices', format => 'avro', schema_registry => $registry,
	key_format => 'avro', envelope => 'upsert', columns => '{"sku": "$key.sku"}',
	batch_size => \'50');
my $h = EoAvro::produce_start(brokers => $brokers, topic => 't054_ups', registry => $registry,
	schema => $uval, key_schema => $ukey, records => \@ups, rate => 600);
ok(EoTest::wait_for($node, "SELECT count(*) > 0 FROM prices", 't', 60), 'upsert: rows arrive');
my $pid = EoTest::wait_worker($node, 'ups', undef, timeout => 60);
ok(defined $pid && kill('KILL', $pid), 'upsert: kill -9 the worker mid-stream');
ok(defined EoTest::wait_worker($node, 'ups', $pid, timeout => 60), 'upsert: a new worker');
is(EoAvro::produce_finish($h), scalar(@ups), 'upsert: every record produced');
wait_processed('ups', scalar(@ups));
check_table('prices', \%state, 'Avro upsert after kill -9');
is(dead_letters('ups'), '', 'upsert: no dead letter');

done_testing();
