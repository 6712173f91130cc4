
# One drain with bisection under Valgrind (memcheck): the postmaster, and so
# every process it forks (launcher, supervisor, pipeline worker), runs under
# valgrind; 2,000 records with bad ones of every kind (malformed JSON, a
# failed cast, 20,000-deep nesting, CHECK violations found by bisection) go
# into a plain target (fast path) and one with a foreign key (SQL path);
# then 600 Avro records (schema registry) with values that do not fit their
# columns and one that does not decode; then change streams: Debezium events
# (plain and wrapped, with bad ones) and an upsert topic.
# Prints the number of Valgrind errors and the first frames of each, and
# fails on any error raised in eo_ingest's code.  Run with the TAP harness:
#
#   EO_SUITES=tapcheck TAP_TESTS_FILES=bench/valgrind_drain.pl PROVE_FLAGS=-v scripts/test.sh

use strict;
use warnings;

use JSON::PP ();
use MIME::Base64 ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use EoAvro;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $node = PostgreSQL::Test::Cluster->new('valgrind');
$node->init;
$node->append_conf('postgresql.conf', <<'EOC');
shared_preload_libraries = 'eo_ingest'
max_worker_processes = 32
log_min_messages = warning
EOC
my $vgdir = $node->basedir . '/valgrind';
mkdir $vgdir;
my $wrapper = $node->basedir . '/postgres-valgrind';
my $postgres = $ENV{PG_BINDIR} . '/postgres';
open(my $fh, '>', $wrapper) or die;
print $fh "#!/bin/sh\nexec valgrind --quiet --trace-children=no --leak-check=no "
  . "--error-markers=VGERR-BEGIN,VGERR-END --num-callers=20 "
  . "--log-file=$vgdir/vg.%p.log $postgres \"\$@\"\n";
close $fh;
chmod 0755, $wrapper;
system('pg_ctl', '-D', $node->data_dir, '-l', $node->logfile, '-p', $wrapper,
	'-w', '-t', '600', 'start') == 0 or die 'pg_ctl start failed';
$node->safe_psql('postgres', 'CREATE EXTENSION eo_ingest');

$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.customers (id integer PRIMARY KEY);
INSERT INTO public.customers SELECT generate_series(0, 9);
CREATE TABLE public.vg_plain (event_id uuid PRIMARY KEY, seq integer CHECK (seq >= 0),
	customer_id integer, amount numeric, note text, created_at timestamptz, doc jsonb);
CREATE TABLE public.vg_fk (LIKE public.vg_plain INCLUDING ALL,
	FOREIGN KEY (customer_id) REFERENCES public.customers);
EOS
$kafka->create_topic('vg', 1);
my @msgs;
my %bad;
for my $i (1 .. 2000)
{
	my $seq = $i % 20 == 0 ? -1 : $i;
	my $v = sprintf('{"event_id":"%08x-0000-4000-8000-000000000000","seq":%d,"customer_id":%d,'
		  . '"amount":"1.00","note":"n%d","created_at":"2024-01-01T00:00:00Z","doc":[%d]}',
		$i, $seq, $i % 10, $i, $i);
	$v = '{"event_id":' if $i % 333 == 0;
	$v =~ s/"seq":\d+/"seq":"x"/ if $i % 250 == 0;
	$v =~ s/"doc":\[\d+\]/'"doc":' . ('[' x 20000) . (']' x 20000)/e if $i % 500 == 0;
	$bad{$i} = 1 if $seq < 0 || $i % 333 == 0 || $i % 250 == 0 || $i % 500 == 0;
	push @msgs, { key => "k$i", value => $v };
}
$kafka->kcat_produce('vg', \@msgs);
my $nbad = keys %bad;

for my $t ('vg_plain', 'vg_fk')
{
	EoTest::create_pipeline($node, name => $t, brokers => $kafka->brokers, topic => 'vg',
		target => "public.$t", batch_size => \'2000', batch_timeout => \'5000');
	EoTest::wait_caught_up($node, $t, 2000, timeout => 900);
	is($node->safe_psql('postgres', "SELECT count(*) FROM public.$t"), 2000 - $nbad,
		"$t: the good records landed");
	is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline = '$t'"),
		$nbad, "$t: $nbad dead letters");
}

# Avro through a schema registry: values converted straight into Datums
# (avro_datum.c) and through text (arrays, jsonb, a varchar too long), with
# records that do not fit their columns or do not decode
my $reg = EoAvro::Registry->new;
$reg->start;
$node->safe_psql('postgres',
	'CREATE TABLE public.vg_avro (event_id uuid PRIMARY KEY, seq smallint, amount numeric(12,2), '
	  . 'note varchar(8), created_at timestamptz, day date, ok boolean, f real, b bytea, tags text[], doc jsonb)');
my $aschema = { type => 'record', name => 'vg', fields => [
	{ name => 'event_id', type => { type => 'string', logicalType => 'uuid' } },
	{ name => 'seq', type => 'int' },
	{ name => 'amount', type => { type => 'bytes', logicalType => 'decimal', precision => 12, scale => 2 } },
	{ name => 'note', type => [ 'null', 'string' ] },
	{ name => 'created_at', type => { type => 'long', logicalType => 'timestamp-micros' } },
	{ name => 'day', type => { type => 'int', logicalType => 'date' } },
	{ name => 'ok', type => 'boolean' },
	{ name => 'f', type => 'float' },
	{ name => 'b', type => 'bytes' },
	{ name => 'tags', type => { type => 'array', items => 'string' } },
	{ name => 'doc', type => { type => 'map', values => 'long' } } ] };
my (@arecs, $abad);
for my $i (1 .. 600)
{
	my $r = { event_id => sprintf('%08x-0000-4000-8000-000000000001', $i), seq => $i,
		amount => sprintf('%d.%02d', $i, $i % 100), note => $i % 3 ? "n$i" : undef,
		created_at => '2024-01-01T00:00:00.123456+00:00', day => '1969-07-20', ok => JSON::PP::true,
		f => $i / 4, b => sprintf('%04x', $i), tags => [ "t$i", '' ], doc => { k => $i } };
	if ($i % 50 == 0) { $r->{seq} = 40000; $abad++ }
	elsif ($i % 70 == 0) { $r->{note} = 'too long for eight'; $abad++ }
	push @arecs, $r;
}
$kafka->create_topic('vg_avro', 1);
EoAvro::produce(brokers => $kafka->brokers, topic => 'vg_avro', registry => $reg->url,
	schema => $aschema, records => [ @arecs, { '$raw_hex' => '000000000102' } ]);
$abad++;
EoTest::create_pipeline($node, name => 'vg_avro', brokers => $kafka->brokers, topic => 'vg_avro',
	target => 'public.vg_avro', format => 'avro', schema_registry => $reg->url,
	batch_size => \'1000', batch_timeout => \'5000');
EoTest::wait_caught_up($node, 'vg_avro', scalar(@arecs) + 1, timeout => 900);
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.vg_avro'), scalar(@arecs) + 1 - $abad,
	'vg_avro: the good records landed');
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline = 'vg_avro'"),
	$abad, "vg_avro: $abad dead letters");
$reg->stop;

# Change streams (envelope.c, debezium.c, apply.c): Debezium events, plain
# and in the schema/payload wrapper with a precise decimal; creates, updates,
# key changes, deletes with their tombstones, and events that are dead
# letters; then an upsert topic with deletes
$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.vg_dbz (id integer PRIMARY KEY, v text, n numeric(10,2));
CREATE TABLE public.vg_ups (id integer PRIMARY KEY, v text);
EOS
my $js = JSON::PP->new->canonical;
my $row_schema = [ { type => 'int32', field => 'id' }, { type => 'string', optional => JSON::PP::true, field => 'v' },
	{ type => 'bytes', optional => JSON::PP::true, name => 'org.apache.kafka.connect.data.Decimal',
	  parameters => { scale => '2' }, field => 'n' } ];
my $dschema = { type => 'struct', name => 'vg.Envelope', fields => [
	(map { { type => 'struct', optional => JSON::PP::true, field => $_, fields => $row_schema } } qw(before after)),
	{ type => 'string', field => 'op' } ] };
# odd ids wrapped, n as the base64 of its unscaled value; even ones plain
sub dbz
{
	my ($op, $before, $after) = @_;
	my $wrap = ($after // $before)->{id} % 2;
	for my $r (grep { defined && exists $_->{n} } $before, $after)
	{
		$r->{n} = $wrap ? MIME::Base64::encode_base64(pack('n', $r->{n}), '') : sprintf('%.2f', $r->{n} / 100);
	}
	my $e = { op => $op, before => $before, after => $after };
	return $js->encode($wrap ? { schema => $dschema, payload => $e } : $e);
}
my @dbz;
push @dbz, map { { key => "{\"id\":$_}", value => dbz('c', undef, { id => $_, v => "c$_", n => $_ }) } } 1 .. 300;
push @dbz, map { { key => "{\"id\":$_}", value => dbz('u', { id => $_ }, { id => $_, v => "u$_", n => 2 * $_ }) } } 1 .. 100;
push @dbz, map { { key => "{\"id\":$_}", value => dbz('u', { id => $_ }, { id => 1000 + $_, v => "k$_" }) } } 1 .. 10;
push @dbz, map { ({ key => "{\"id\":$_}", value => dbz('d', { id => $_ }, undef) }, { key => "{\"id\":$_}", value => '' }) }
  101 .. 150;
my @dbz_bad = ('{"op":"x","before":null,"after":{"id":1}}', '{"op":', '{"op":"c","before":null,"after":"nope"}',
	$js->encode({ schema => $dschema, payload => { op => 'c', before => undef, after => { id => 7, n => '*' } } }));
push @dbz, map { { key => '{"id":7}', value => $_ } } @dbz_bad;
$kafka->create_topic('vg_dbz', 1);
$kafka->kcat_produce('vg_dbz', \@dbz, empty_is_null => 1);
my @ups = map { { key => "{\"id\":$_}", value => $_ % 10 ? "{\"v\":\"u$_\"}" : '{"v":' } } 1 .. 200;
push @ups, map { { key => "{\"id\":$_}", value => '' } } grep { $_ % 7 == 0 } 1 .. 200;
$kafka->create_topic('vg_ups', 1);
$kafka->kcat_produce('vg_ups', \@ups, empty_is_null => 1);
for my $p ([ 'vg_dbz', 'debezium', scalar @dbz ], [ 'vg_ups', 'upsert', scalar @ups ])
{
	EoTest::create_pipeline($node, name => $p->[0], brokers => $kafka->brokers, topic => $p->[0],
		target => "public.$p->[0]", envelope => $p->[1], batch_size => \'1000', batch_timeout => \'5000');
	ok(EoTest::wait_for($node, "SELECT state, lag FROM eo_ingest.pipeline_status WHERE name = '$p->[0]'",
			'running|0', 900), "$p->[0]: caught up");
}
# the sum of cents over ids $lo .. $hi, times $k, as numeric prints it
sub cents { my ($k, $lo, $hi) = @_; my $c = $k * ($lo + $hi) * ($hi - $lo + 1) / 2; return sprintf('%d.%02d', $c / 100, $c % 100) }
is($node->safe_psql('postgres', "SELECT left(v, 1), count(*), sum(n) FROM public.vg_dbz GROUP BY 1 ORDER BY 1"),
	'c|150|' . cents(1, 151, 300) . "\nk|10|\nu|90|" . cents(2, 11, 100), 'vg_dbz: the rows of the changes');
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline = 'vg_dbz'"),
	scalar @dbz_bad, 'vg_dbz: the bad events are dead letters');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.vg_ups'),
	scalar(grep { $_ % 10 && $_ % 7 } 1 .. 200), 'vg_ups: the rows of the upserts, less the deletes');
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline = 'vg_ups'"),
	20, 'vg_ups: the bad values are dead letters');

system('pg_ctl', '-D', $node->data_dir, '-m', 'fast', '-w', '-t', '600', 'stop');
# An error is eo_ingest's when the innermost frame that is PostgreSQL's or
# eo_ingest's (below it: libc, Valgrind's wrappers) is eo_ingest's: those are
# printed whole and fail the run.  The others are counted, and those with an
# eo_ingest caller further up too (a commit by the worker that writes WAL
# pages with uninitialised padding, which a server built without USE_VALGRIND
# reports), and printed by their first frames.
my $eo_frame = qr/eo_ingest\.so|: (?:eo_\w+|_PG_init) \(/;
my ($files, $errors, $ours, $through, $report) = (0, 0, 0, 0, '');
for my $f (glob "$vgdir/vg.*.log")
{
	$files++;
	my $log = slurp_file($f);
	while ($log =~ /VGERR-BEGIN\n(.*?)VGERR-END/sg)
	{
		$errors++;
		my @lines = grep { /^==\d+== / } split /\n/, $1;
		my ($first) = grep { m{/bin/postgres\)} || /$eo_frame/ } @lines;
		my $mine = defined $first && $first =~ $eo_frame;
		$ours++ if $mine;
		$through++ if !$mine && grep { /$eo_frame/ } @lines;
		$report .= ($mine ? "[raised in eo_ingest]\n" : '')
		  . join("\n", @lines[ 0 .. ($mine || $#lines < 8 ? $#lines : 8) ]) . "\n\n";
	}
}
diag("VALGRIND processes $files errors $errors: raised in eo_ingest $ours, "
	  . "in PostgreSQL under an eo_ingest caller $through\n$report");
is($ours, 0, 'no Valgrind error raised in eo_ingest code');
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no crashed process');

$kafka->stop;
done_testing();
