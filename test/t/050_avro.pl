
# format => 'avro' with a schema registry: records serialized by
# confluent-kafka's AvroSerializer land value by value as SQL's cast of the
# same value would store them (every primitive, logical type, union, enum,
# array -- also of logical types into timestamptz[], numeric(p,s)[], uuid[],
# date[] and timestamp[] -- map and nested record); each kind of bad record
# becomes exactly one dead letter with a precise error; plain Avro with an
# inline schema works; a URL that is no registry fails the pipeline without a
# dead letter; the registry password appears in no view, error or log line.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoAvro;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $password = 'reg-s3cret-pw';
my $reg = EoAvro::Registry->new(user => 'alice', password => $password);
$reg->start;
my $node = EoTest::new_node('avro', conf => "eo_ingest.retry_max_delay = '2s'");

my $opts = qq({"schema.registry.user": "alice", "schema.registry.password": "$password"});

# --- every type: [column, PostgreSQL type, Avro type]
my @cols = (
	[ 'i', 'integer', 'int' ],
	[ 'small', 'smallint', 'int' ],
	[ 'l', 'bigint', 'long' ],
	[ 'f', 'real', 'float' ],
	[ 'd', 'double precision', 'double' ],
	[ 'b', 'boolean', 'boolean' ],
	[ 's', 'text', 'string' ],
	[ 'byt', 'bytea', 'bytes' ],
	[ 'fx', 'bytea', { type => 'fixed', name => 'four', size => 4 } ],
	[ 'dcm', 'numeric', { type => 'bytes', logicalType => 'decimal', precision => 30, scale => 4 } ],
	[ 'decf', 'numeric(12,2)', { type => 'fixed', name => 'money', size => 8, logicalType => 'decimal', precision => 12, scale => 2 } ],
	[ 'dt', 'date', { type => 'int', logicalType => 'date' } ],
	[ 'tm', 'time', { type => 'int', logicalType => 'time-millis' } ],
	[ 'tu', 'time', { type => 'long', logicalType => 'time-micros' } ],
	[ 'tsm', 'timestamptz', { type => 'long', logicalType => 'timestamp-millis' } ],
	[ 'tsu', 'timestamptz', { type => 'long', logicalType => 'timestamp-micros' } ],
	[ 'ltm', 'timestamp', { type => 'long', logicalType => 'local-timestamp-millis' } ],
	[ 'ltu', 'timestamp', { type => 'long', logicalType => 'local-timestamp-micros' } ],
	[ 'un', 'text', [ 'null', 'string' ] ],
	[ 'ul', 'bigint', [ 'long', 'null' ] ],
	[ 'ud', 'timestamptz', [ 'null', { type => 'long', logicalType => 'timestamp-micros' } ] ],
	[ 'en', 'text', { type => 'enum', name => 'suit', symbols => [qw(hearts spades)] } ],
	[ 'enpg', 'public.color', { type => 'enum', name => 'color', symbols => [qw(red green blue)] } ],
	[ 'ai', 'integer[]', { type => 'array', items => [ 'null', 'int' ] } ],
	[ 'ast', 'text[]', { type => 'array', items => 'string' } ],
	[ 'aj', 'jsonb', { type => 'array', items => 'string' } ],
	[ 'mp', 'jsonb', { type => 'map', values => 'long' } ],
	[ 'rec', 'jsonb', { type => 'record', name => 'inner', fields => [
		{ name => 'x', type => 'int' }, { name => 'y', type => [ 'null', 'string' ] } ] } ],
	# typmods, other integer widths and the edges of the direct conversions
	[ 'li', 'integer', 'long' ],
	[ 'ln', 'numeric(21,1)', 'long' ],
	[ 'ui', 'smallint', [ 'null', 'int' ] ],
	[ 'vc', 'varchar(5)', 'string' ],
	[ 'us', 'uuid', 'string' ],
	[ 'uf', 'uuid', { type => 'fixed', name => 'u16', size => 16, logicalType => 'uuid' } ],
	[ 'dneg', 'numeric(6,-2)', { type => 'bytes', logicalType => 'decimal', precision => 12, scale => 2 } ],
	[ 'd3', 'numeric(8,3)', { type => 'bytes', logicalType => 'decimal', precision => 5, scale => 1 } ],
	[ 'fn', 'real', [ 'null', 'float' ] ],
	[ 'dn', 'double precision', 'double' ],
	[ 'tp', 'time(2)', { type => 'long', logicalType => 'time-micros' } ],
	[ 'tsp', 'timestamptz(0)', { type => 'long', logicalType => 'timestamp-micros' } ],
	[ 'ltp', 'timestamp(1)', { type => 'long', logicalType => 'local-timestamp-millis' } ],
	# scale 60: more digits than 128 bits hold, through text (a text column;
	# a numeric one for values wider than 64 bits)
	[ 'dwt', 'text', { type => 'bytes', logicalType => 'decimal', precision => 80, scale => 60 } ],
	[ 'dwn', 'numeric', { type => 'bytes', logicalType => 'decimal', precision => 80, scale => 60 } ],
	# arrays of logical types into arrays of their column types
	[ 'ats', 'timestamptz[]', { type => 'array', items => [ 'null', { type => 'long', logicalType => 'timestamp-micros' } ] } ],
	[ 'adc', 'numeric(10,2)[]', { type => 'array', items => { type => 'bytes', logicalType => 'decimal', precision => 10, scale => 2 } } ],
	[ 'auu', 'uuid[]', { type => 'array', items => { type => 'string', logicalType => 'uuid' } } ],
	[ 'adt', 'date[]', { type => 'array', items => { type => 'int', logicalType => 'date' } } ],
	[ 'alt', 'timestamp[]', { type => 'array', items => { type => 'long', logicalType => 'local-timestamp-millis' } } ],
);
# the unscaled value $u at scale 60, as numeric prints it
sub scale60
{
	my ($u) = @_;
	my $neg = $u =~ s/^-//;
	$u = ('0' x (61 - length $u)) . $u if length $u <= 60;
	substr($u, -60, 0) = '.';
	return ($neg ? '-' : '') . $u;
}
my $schema = {
	type => 'record', name => 'all_types', namespace => 'eo.test',
	fields => [
		{ name => 'event_id', type => { type => 'string', logicalType => 'uuid' } },
		{ name => 'ignored', type => { type => 'map', values => { type => 'array', items => 'double' } } },
		map { { name => $_->[0], type => $_->[2] } } @cols ] };

# Each record: Avro input values (as avro_produce.py reads them) and the SQL
# expression each column must equal.
my @records = (
	{
		i => 2147483647, small => -32768, l => 9223372036854775807, f => 1.5, d => 0.1,
		b => JSON::PP::true, s => q(quote " back \ tab	é €), byt => '00ff10', fx => 'deadbeef',
		dcm => '12345678901234567890.1234', decf => '-0.01', dt => '2024-02-29',
		tm => '23:59:59.999', tu => '00:00:00.000001',
		tsm => '2024-02-29T12:34:56.789+00:00', tsu => '1969-12-31T23:59:59.999999+00:00',
		ltm => '2024-02-29T12:34:56.789', ltu => '1900-01-01T00:00:00.000001',
		un => 'a string', ul => -1, ud => '2038-01-19T03:14:08.123456+00:00',
		en => 'spades', enpg => 'blue', ai => [ 1, undef, -3 ], ast => [ 'a"b', 'c\\d', '', 'NULL' ],
		aj => [ 'x', 'y' ], mp => { k1 => 1, k2 => -2 }, rec => { x => 7, y => 'why' },
	},
	{
		i => -2147483648, small => 32767, l => -9223372036854775807 - 1, f => '-0.0', d => -1e308,
		b => JSON::PP::false, s => '', byt => '', fx => '00000000',
		dcm => '-0.0001', decf => '1234567890.12', dt => '1970-01-01',
		tm => '00:00:00', tu => '12:00:00.5',
		tsm => '1970-01-01T00:00:00+00:00', tsu => '2024-06-30T23:59:59.5+02:00',
		ltm => '1970-01-01T00:00:00', ltu => '2099-12-31T23:59:59.999999',
		un => undef, ul => undef, ud => undef,
		en => 'hearts', enpg => 'red', ai => [], ast => [], aj => [], mp => {}, rec => { x => -1, y => undef },
	},
	{
		i => 0, small => 0, l => 0, f => 3.4028234663852886e38, d => 5e-324,
		b => JSON::PP::true, s => "\xF0\x9F\x98\x80 emoji", byt => '5c78', fx => '01020304',
		dcm => '0.0000', decf => '0.00', dt => '0001-01-01',
		tm => '12:34:56.789', tu => '23:59:59.999999',
		tsm => '2262-04-11T23:47:16.854+00:00', tsu => '0001-01-01T00:00:00+00:00',
		ltm => '2000-01-01T00:00:00.001', ltu => '1970-01-01T00:00:00',
		un => 'null', ul => 42, ud => '1970-01-01T00:00:00+00:00',
		en => 'spades', enpg => 'green', ai => [undef], ast => ['{x}'], aj => ['"q"'],
		mp => { 'a"b' => 3 }, rec => { x => 0, y => '' },
	},
	{
		i => 1, small => 1, l => 1, f => 'NaN', d => 'Infinity', b => JSON::PP::false, s => 'x',
		byt => 'ff', fx => 'ffffffff', dcm => '-99999999999999999999999999.9999', decf => '-9999999999.99',
		dt => '9999-12-31', tm => '00:00:00.001', tu => '23:59:59.999999',
		tsm => '1969-12-31T23:59:59.999+00:00', tsu => '9999-12-31T23:59:59.999999+00:00',
		ltm => '9999-12-31T23:59:59.999', ltu => '0001-01-01T00:00:00',
		un => '', ul => -9223372036854775807 - 1, ud => '1900-01-01T00:00:00.000001+00:00',
		en => 'hearts', enpg => 'blue', ai => [ 2147483647 ], ast => [''], aj => [], mp => {}, rec => { x => 1, y => 'z' },
	},
);
# the columns added for the direct conversions, per record
my @direct = (
	{ li => 2147483647, ln => 9223372036854775807, ui => -32768, vc => 'abcde', us => 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
	  uf => '00112233445566778899aabbccddeeff', dneg => '-99999949.99', d3 => '-1.5', fn => '-Infinity', dn => 'NaN',
	  tp => '12:34:56.785', tsp => '1969-12-31T23:59:59.5+00:00', ltp => '1899-12-31T23:59:59.95',
	  dwt => scale60('1'), dwn => scale60('-100000000000000000007') },
	{ li => -2147483648, ln => -1, ui => undef, vc => '', us => '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
	  uf => '00000000000000000000000000000000', dneg => '0.01', d3 => '0.0', fn => undef, dn => '-Infinity',
	  tp => '23:59:59.999999', tsp => '9999-12-31T23:59:59.4+00:00', ltp => '2024-02-29T12:34:56.789',
	  dwt => scale60('0'), dwn => scale60('170141183460469231731687303715884105727') },
	{ li => 0, ln => 0, ui => 32767, vc => 'é€xyz', us => 'a0eebc999c0b4ef8bb6d6bb9bd380a11',
	  uf => 'ffffffffffffffffffffffffffffffff', dneg => '149.99', d3 => '9999.9', fn => 1.17549435e-38, dn => -0.5,
	  tp => '00:00:00', tsp => '1970-01-01T00:00:00.499999+00:00', ltp => '1970-01-01T00:00:00.05',
	  dwt => scale60('-170141183460469231731687303715884105727'), dwn => scale60('9223372036854775808') },
	{ li => 7, ln => 123, ui => 0, vc => 'abcde   ', us => '00000000-0000-0000-0000-000000000000',
	  uf => 'a0eebc999c0b4ef8bb6d6bb9bd380a11', dneg => '-50.00', d3 => '-0.1', fn => 'Infinity', dn => 1e-310,
	  tp => '00:00:00.005', tsp => '0001-01-01T00:00:00.5+00:00', ltp => '0001-01-01T00:00:00',
	  # wider than 128 bits: 80 and 75 digits
	  dwt => scale60('-' . ('9' x 80)), dwn => scale60('-' . ('9' x 75)) },
);
# the arrays of logical types, per record
my @arrays = (
	{ ats => [ '2024-02-29T12:34:56.789012+00:00', undef, '1969-12-31T23:59:59.999999+00:00' ],
	  adc => [ '12.34', '-0.01', '99999999.99' ], auu => [ 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' ],
	  adt => [ '2024-02-29', '0001-01-01' ], alt => [ '2024-02-29T12:34:56.789', '1900-01-01T00:00:00' ] },
	{ ats => [], adc => [], auu => [], adt => [], alt => [] },
	{ ats => [undef], adc => [ '0.00' ],
	  auu => [ '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff' ],
	  adt => [ '1970-01-01', '9999-12-31' ], alt => [ '9999-12-31T23:59:59.999' ] },
	{ ats => [ '0001-01-01T00:00:00+00:00' ], adc => [ '-99999999.99', '0.10' ],
	  auu => [ '00112233-4455-6677-8899-aabbccddeeff' ], adt => [ '1969-12-31' ], alt => [ '1970-01-01T00:00:00' ] },
);
for my $k (0 .. $#records)
{
	$records[$k]{$_} = $direct[$k]{$_} for keys %{ $direct[$k] };
	$records[$k]{$_} = $arrays[$k]{$_} for keys %{ $arrays[$k] };
}
$_->{ignored} = { list => [ 1.5, -2.5 ] } for @records;

sub lit { my $v = shift; return defined $v ? "'" . ($v =~ s/'/''/gr) . "'" : 'NULL' }

# the SQL expression that column $c of record $r must equal
sub expected_sql
{
	my ($c, $type, $v) = @_;
	return "NULL::$type" unless defined $v;
	return lit('\\x' . $v) . '::bytea' if $type eq 'bytea';
	return lit($v ? 'true' : 'false') . '::boolean' if $type eq 'boolean';
	if (ref $v eq 'ARRAY' && $type ne 'jsonb')
	{
		my $elem = $type =~ s/\[\]$//r;
		return "ARRAY[" . join(',', map { defined $_ ? lit($_) : 'NULL' } @$v) . "]::$type"
		  if @$v;
		return "'{}'::$type";
	}
	return lit($EoAvro::JSON->encode($v)) . '::jsonb' if ref $v;
	if (($type eq 'real' || $type eq 'double precision') && $v =~ /^-?(NaN|Infinity|0\.0)$/)
	{
		return lit($v) . "::$type";
	}
	if ($type eq 'real' || $type eq 'double precision')
	{
		# Avro float is IEEE single: what SQL stores for the same literal
		return lit(sprintf('%.17g', $v)) . "::$type";
	}
	return lit($v =~ s/^([0-9a-f]{8})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{4})([0-9a-f]{12})$/$1-$2-$3-$4-$5/r) . "::$type"
	  if $c eq 'uf';
	return lit($v) . "::$type";
}

$node->safe_psql('postgres', "CREATE TYPE public.color AS ENUM ('red', 'green', 'blue')");
$node->safe_psql('postgres',
	    "CREATE TABLE public.av_types (event_id uuid PRIMARY KEY, "
	  . join(', ', map { "$_->[0] $_->[1]" } @cols)
	  . ", rec_x integer, rec_y text, missing text DEFAULT 'dflt')");

my @ids;
for my $k (0 .. $#records)
{
	my $id = sprintf('a0000000-0000-4000-8000-%012d', $k);
	push @ids, $id;
	$records[$k]{event_id} = $id;
}

$kafka->create_topic('avro_types', 1);
EoTest::create_pipeline($node,
	name => 'avro_types', brokers => $kafka->brokers, topic => 'avro_types',
	target => 'public.av_types', format => 'avro', schema_registry => $reg->url,
	kafka_options => $opts, batch_size => \'1000',
	columns => '{"rec_x": "rec.x", "rec_y": "rec.y"}');
is($node->safe_psql('postgres', "SELECT format FROM eo_ingest.pipeline_status WHERE name = 'avro_types'"),
	'avro', 'pipeline_status shows the format');

EoAvro::produce(brokers => $kafka->brokers, topic => 'avro_types', registry => $reg->url,
	registry_auth => "alice:$password", schema => $schema, records => \@records);
EoTest::wait_caught_up($node, 'avro_types', scalar @records);

# expected values, cast by SQL from the same literals, into a table of the same shape
$node->safe_psql('postgres', 'CREATE TABLE public.av_expected (LIKE public.av_types)');
for my $k (0 .. $#records)
{
	my $r = $records[$k];
	my @vals = (lit($r->{event_id}) . '::uuid',
		(map { expected_sql($_->[0], $_->[1], $r->{ $_->[0] }) } @cols),
		defined $r->{rec}{x} ? $r->{rec}{x} : 'NULL', lit($r->{rec}{y}) . '::text', "'dflt'");
	my $sql = 'INSERT INTO public.av_expected VALUES (' . join(', ', @vals) . ')';
	# JSON::PP's text made the statement a character string; psql needs the
	# UTF-8 bytes the test's strings hold
	utf8::downgrade($sql);
	$node->safe_psql('postgres', $sql);
}
for my $col ((map { $_->[0] } @cols), 'rec_x', 'rec_y', 'missing')
{
	my $diff = $node->safe_psql('postgres', <<"EOS");
SELECT string_agg(e.event_id || ': got ' || coalesce(t.${col}::text, 'NULL') || ', want ' || coalesce(e.${col}::text, 'NULL'), '; ')
  FROM public.av_expected e LEFT JOIN public.av_types t USING (event_id)
 WHERE t.$col IS DISTINCT FROM e.$col OR t.${col}::text IS DISTINCT FROM e.${col}::text
EOS
	is($diff, '', "column $col equals SQL's cast of the same value (and its text)");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.av_types'), scalar @records,
	'one row per record');

# --- bad records: one dead letter each, with a precise error
my $id = $node->safe_psql('postgres', 'SELECT max(id) FROM eo_ingest.avro_schemas');
ok($id > 0, "the writer schema is cached in eo_ingest.avro_schemas (id $id)");
my $hdr = sprintf('00%08x', $id);
my @bad = (
	[ '01' . substr($hdr, 2) . '02', qr/magic byte 0x00/, 'bad magic byte' ],
	[ '0000', qr/fewer than the 5/, 'shorter than the header' ],
	[ $hdr . '4861', qr/truncated/, 'truncated body' ],
	[ '000001869f' . '02', qr/schema id 99999 is not in the schema registry/, 'unknown schema id' ],
);
my @good_after = ({ %{ $records[0] }, event_id => 'a0000000-0000-4000-8000-000000000100' });
# values that do not fit their column: [field, value, error], one dead letter each
my @misfits = (
	[ 'small', 40000, qr/^22003 .*smallint/ ],
	[ 'li', 2147483648, qr/^22003 .*integer/ ],
	[ 'vc', 'abcdef', qr/^22001 .*character varying\(5\)/ ],
	[ 'dneg', '100000000.00', qr/^22003 numeric field overflow/ ],
);
my @too_small = map {
	{ %{ $records[1] }, event_id => sprintf('a0000000-0000-4000-8000-%012d', 101 + $_), $misfits[$_][0] => $misfits[$_][1] }
} 0 .. $#misfits;
EoAvro::produce(brokers => $kafka->brokers, topic => 'avro_types', registry => $reg->url,
	registry_auth => "alice:$password", schema => $schema,
	records => [ (map { { '$raw_hex' => $_->[0] } } @bad), @too_small, @good_after ]);
EoTest::wait_caught_up($node, 'avro_types', scalar(@records) + scalar(@bad) + scalar(@misfits) + 1);
for my $k (0 .. $#bad)
{
	my $off = scalar(@records) + $k;
	my $row = $node->safe_psql('postgres',
		"SELECT sqlstate || ' ' || error FROM eo_ingest.dead_letters WHERE pipeline = 'avro_types' AND \"offset\" = $off");
	like($row, $bad[$k][1], "$bad[$k][2]: one dead letter ($row)");
}
for my $k (0 .. $#misfits)
{
	my $row = $node->safe_psql('postgres',
		"SELECT sqlstate || ' ' || error FROM eo_ingest.dead_letters WHERE pipeline = 'avro_types' AND \"offset\" = "
		  . (scalar(@records) + scalar(@bad) + $k));
	like($row, $misfits[$k][2], "$misfits[$k][0] => $misfits[$k][1] does not fit its column: one dead letter ($row)");
}
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline = 'avro_types'"),
	scalar(@bad) + scalar(@misfits), 'exactly one dead letter per bad record');
is($node->safe_psql('postgres', "SELECT count(*) FROM public.av_types WHERE event_id = '$good_after[0]{event_id}'"),
	1, 'the good record after the bad ones landed');

# --- plain Avro binary with an inline writer schema
$node->safe_psql('postgres', 'CREATE TABLE public.av_plain (event_id uuid PRIMARY KEY, i integer, s text)');
$kafka->create_topic('avro_plain', 1);
my $plain = { type => 'record', name => 'p', fields => [
	{ name => 's', type => 'string' }, { name => 'event_id', type => 'string' }, { name => 'i', type => 'int' } ] };
EoTest::create_pipeline($node,
	name => 'avro_plain', brokers => $kafka->brokers, topic => 'avro_plain',
	target => 'public.av_plain', format => 'avro', avro_schema => $EoAvro::JSON->encode($plain));
EoAvro::produce(brokers => $kafka->brokers, topic => 'avro_plain', plain => 1, schema => $plain,
	records => [ map { { event_id => sprintf('b0000000-0000-4000-8000-%012d', $_), i => $_, s => "s$_" } } 1 .. 50 ]);
EoTest::wait_caught_up($node, 'avro_plain', 50);
is($node->safe_psql('postgres', "SELECT count(*), sum(i), count(*) FILTER (WHERE s = 's' || i) FROM public.av_plain"),
	'50|1275|50', 'plain Avro with an inline schema: every row, every value');

# --- a URL that is no schema registry: failed, nothing dead-lettered
my $web = EoAvro::Registry->new(not_a_registry => 1);
$web->start;
$node->safe_psql('postgres', 'CREATE TABLE public.av_wrong (event_id uuid PRIMARY KEY, i integer)');
EoTest::create_pipeline($node,
	name => 'avro_wrong', brokers => $kafka->brokers, topic => 'avro_types',
	target => 'public.av_wrong', format => 'avro', schema_registry => $web->url);
ok(EoTest::wait_for($node,
		"SELECT state FROM eo_ingest.pipeline_status WHERE name = 'avro_wrong'", 'failed'),
	'wrong registry URL: the pipeline is failed');
like($node->safe_psql('postgres', "SELECT last_error FROM eo_ingest.pipeline_status WHERE name = 'avro_wrong'"),
	qr/does not answer like a Confluent Schema Registry \(HTTP 404/, 'with a clear error');
is($node->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline = 'avro_wrong') || '/' || (SELECT count(*) FROM public.av_wrong)"),
	'0/0', 'wrong registry URL: no dead letter, no row');

# fixing the URL resumes the pipeline from where it stood
$node->safe_psql('postgres', "SELECT eo_ingest.alter_pipeline('avro_wrong', schema_registry => '" . $reg->url
	  . "', kafka_options => '$opts')");
EoTest::wait_caught_up($node, 'avro_wrong', scalar(@records) + scalar(@bad) + scalar(@misfits) + 1);
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.av_wrong'),
	scalar(@records) + scalar(@misfits) + 1, 'after alter_pipeline(schema_registry => ...) every good record landed');

# --- wrong password: failed, and the password is nowhere
$node->safe_psql('postgres', 'CREATE TABLE public.av_pw (event_id uuid PRIMARY KEY)');
EoTest::create_pipeline($node,
	name => 'avro_pw', brokers => $kafka->brokers, topic => 'avro_types',
	target => 'public.av_pw', format => 'avro', schema_registry => $reg->url,
	kafka_options => qq({"schema.registry.user": "alice", "schema.registry.password": "wrong-$password"}));
ok(EoTest::wait_for($node,
		"SELECT state FROM eo_ingest.pipeline_status WHERE name = 'avro_pw'", 'failed'),
	'wrong registry password: failed');
like($node->safe_psql('postgres', "SELECT last_error FROM eo_ingest.pipeline_status WHERE name = 'avro_pw'"),
	qr/refused the credentials \(HTTP 401\)/, 'with a clear error');

$node->safe_psql('postgres', 'CREATE ROLE peeker LOGIN');
my $seen = '';
for my $sql ('SELECT * FROM eo_ingest.pipeline_status', 'SELECT * FROM eo_ingest.pipelines',
	'SELECT query FROM pg_stat_activity', 'SELECT * FROM eo_ingest.avro_schemas')
{
	$seen .= $node->safe_psql('postgres', $sql, extra_params => [ '-U', 'peeker' ]) . "\n";
}
unlike($seen, qr/\Q$password\E/, 'the registry password is in no view another role can read');
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$password\E/, 'the registry password is in no log line');

done_testing();
