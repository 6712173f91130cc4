
# Records that cannot become column values are dead letters, whatever the
# error: a JSON value nested 200,000 arrays or 100,000 objects deep, in a
# mapped or an unmapped field, makes exactly its own record a dead letter
# (with partition, offset, error and SQLSTATE) while every other record of
# the same batch lands.  For every format (json; text and bytea feeding a
# jsonb column from $value) and on both insert paths: the multi-insert fast
# path (plain targets) and INSERT ... ON CONFLICT (targets with a foreign key).

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('deep_records',
	conf => "eo_ingest.retry_max_delay = '2s'");

sub poison_id { return sprintf('0000deed-0000-4000-8000-%012x', shift) }

sub json_record
{
	my ($n, %extra) = @_;
	return '{"event_id":"' . poison_id($n) . "\",\"seq\":$n,\"customer_id\":" . ($n % 1000)
	  . ',"amount":"1.00","note":"deep ' . $n . '","created_at":"2024-01-01T00:00:00.000Z"'
	  . join('', map { ",\"$_\":$extra{$_}" } sort keys %extra) . '}';
}

$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.customers (id integer PRIMARY KEY);
INSERT INTO public.customers SELECT generate_series(0, 999);
CREATE TABLE public.deep_plain (
	event_id	uuid PRIMARY KEY,
	seq			integer,
	customer_id	integer,
	amount		numeric,
	note		text,
	created_at	timestamptz,
	doc			jsonb
);
CREATE TABLE public.deep_fk (LIKE public.deep_plain INCLUDING ALL,
	FOREIGN KEY (customer_id) REFERENCES public.customers);
CREATE TABLE public.raw_keys (k text PRIMARY KEY);
CREATE TABLE public.raw_plain (k text PRIMARY KEY, v jsonb, b bytea);
CREATE TABLE public.raw_fk (k text PRIMARY KEY REFERENCES public.raw_keys, v jsonb, b bytea);
EOS

# --- json: good records from the producer around five deep ones

$kafka->create_topic('deep_json', 1);
my @good;
my $run = 0;
sub good_run
{
	my $m = $kafka->produce(topic => 'deep_json', count => 200, partition => 0,
		start_id => 1 + 1000 * $run, timestamp_base => EoTest::ts_base($run));
	$run++;
	push @good, @$m;
}
# key => [value, SQLSTATE, error pattern]
my %json_poison = (
	'mapped-array' => [ json_record(1, doc => EoTest::deep_array(200_000)), '54000', qr/nested more than 10000 levels/ ],
	'mapped-object' => [ json_record(2, doc => EoTest::deep_object(100_000)), '54000', qr/nested more than 10000 levels/ ],
	'unmapped-array' => [ json_record(3, junk => EoTest::deep_array(200_000)), '54000', qr/nested more than 10000 levels/ ],
	'unmapped-object' => [ json_record(4, junk => EoTest::deep_object(100_000)), '54000', qr/nested more than 10000 levels/ ],
	'text-column-array' => [ json_record(5, note => EoTest::deep_array(200_000)), '54000', qr/nested more than 10000 levels/ ],
);
# Shallower nesting is fine, and its value is kept exactly.
my %json_extra = (
	'nested-doc' => [ json_record(6, doc => EoTest::deep_array(50)), 6, EoTest::deep_array(50) ],
	'nested-junk' => [ json_record(7, junk => EoTest::deep_object(500)), 7, undef ],
);
good_run();
for my $k (sort keys %json_poison)
{
	$kafka->kcat_produce('deep_json', [ { key => $k, value => $json_poison{$k}[0] } ]);
	good_run();
}
$kafka->kcat_produce('deep_json', [ map { { key => $_, value => $json_extra{$_}[0] } } sort keys %json_extra ]);
good_run();

# --- text and bytea: $value into a jsonb column (jsonb_in recurses)

$kafka->create_topic('deep_raw', 1);
my %raw_poison = (
	'raw-array' => [ EoTest::deep_array(200_000), '54001', qr/stack depth limit exceeded/ ],
	'raw-object' => [ EoTest::deep_object(100_000), '54001', qr/stack depth limit exceeded/ ],
);
my @raw_good;
my $i = 0;
sub raw_run
{
	my @m = map { { key => 'r-' . $i++, value => '{"i":' . $i . '}' } } 1 .. 100;
	$kafka->kcat_produce('deep_raw', \@m);
	push @raw_good, @m;
}
raw_run();
for my $k (sort keys %raw_poison)
{
	$kafka->kcat_produce('deep_raw', [ { key => $k, value => $raw_poison{$k}[0] } ]);
	raw_run();
}
$node->safe_psql('postgres',
	'INSERT INTO public.raw_keys VALUES '
	  . join(',', map { "('$_')" } (map { $_->{key} } @raw_good), sort keys %raw_poison));

# Offsets of the poison records, as read back.
my %at;
for my $topic ('deep_json', 'deep_raw')
{
	for my $m (@{ $kafka->kcat_consume($topic) })
	{
		$at{ $m->{key} } = $m->{offset}
		  if defined $m->{key} && ($json_poison{ $m->{key} } || $raw_poison{ $m->{key} });
	}
}
is(scalar keys %at, keys(%json_poison) + keys(%raw_poison), 'every deep record is in Kafka');

# offset => [ value, SQLSTATE, error pattern, key ], as EoTest::check_dead_letters takes them
sub by_offset
{
	my ($poison) = @_;
	return { map { $at{$_} => [ @{ $poison->{$_} }, $_ ] } keys %$poison };
}

my $json_total = @good + keys(%json_poison) + keys(%json_extra);
for my $case ([ 'deep_plain', 'public.deep_plain' ], [ 'deep_fk', 'public.deep_fk' ])
{
	my ($pipe, $table) = @$case;
	EoTest::create_pipeline($node, name => $pipe, brokers => $kafka->brokers,
		topic => 'deep_json', target => $table, batch_size => \'10000',
		batch_timeout => \'3000');
	EoTest::wait_caught_up($node, $pipe, $json_total, timeout => 90);
	EoTest::check_rows($node,
		"(SELECT * FROM $table WHERE event_id::text NOT LIKE '0000deed-%') t",
		\@good, 'skip', label => "$pipe: every good record landed, row by row");
	for my $k (sort keys %json_extra)
	{
		my ($value, $n, $doc) = @{ $json_extra{$k} };
		is($node->safe_psql('postgres',
				"SELECT seq || ':' || coalesce(doc::text, '<NULL>') FROM $table WHERE event_id = '"
				  . poison_id($n) . "'"),
			"$n:" . ($doc // '<NULL>') =~ s/\]\[/], [/gr,
			"$pipe $k: landed with its value");
	}
	EoTest::check_counters($node, $pipe, $table, $json_total);
	EoTest::check_offsets($node, $pipe, $kafka, 'deep_json', 1);
	EoTest::check_dead_letters($node, $pipe, by_offset(\%json_poison));
}

my $raw_total = @raw_good + keys(%raw_poison);
for my $format ('text', 'bytea')
{
	for my $table ('raw_plain', 'raw_fk')
	{
		my $pipe = "${format}_$table";
		$node->safe_psql('postgres', "TRUNCATE public.$table");
		EoTest::create_pipeline($node, name => $pipe, brokers => $kafka->brokers,
			topic => 'deep_raw', target => "public.$table", format => $format,
			event_id => '$key', columns => \q('{"k": "$key", "v": "$value", "b": "$value"}'),
			batch_size => \'10000', batch_timeout => \'3000');
		EoTest::wait_caught_up($node, $pipe, $raw_total, timeout => 90);
		is($node->safe_psql('postgres',
				"SELECT string_agg(k || '=' || v::text || '=' || convert_from(b, 'UTF8'), ',' ORDER BY k COLLATE \"C\") FROM public.$table"),
			join(',', map { "$_->{key}=" . ($_->{value} =~ s/:/: /r) . "=$_->{value}" }
				sort { $a->{key} cmp $b->{key} } @raw_good),
			"$pipe: every good record landed, row by row");
		EoTest::check_counters($node, $pipe, "public.$table", $raw_total);
		EoTest::check_offsets($node, $pipe, $kafka, 'deep_raw', 1);
		EoTest::check_dead_letters($node, $pipe, by_offset(\%raw_poison));
		$node->safe_psql('postgres', "SELECT eo_ingest.drop_pipeline('$pipe')");
	}
}

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was fenced off/,
	'server log: no crashed process, no fenced worker');

$node->stop;
$kafka->stop;
done_testing();
