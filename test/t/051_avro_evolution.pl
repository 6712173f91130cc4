
# Avro schema evolution and registry outages.  A topic's producers move
# through three schema versions mid-stream (a field added with a default, a
# field removed, fields reordered) with a kill -9 of the worker between
# versions: every row lands exactly once with each version's fields, and
# columns no version fills get their DEFAULT.  Then the registry is down
# for 30 s while records of a schema id the pipeline has not seen arrive:
# the pipeline is retrying, nothing is dead-lettered, and it catches up by
# itself when the registry is back.  A server restart needs no registry for
# ids already seen (they are in eo_ingest.avro_schemas).  The registry is
# Apicurio Registry (test/registry/apicurio.sh) through its
# Confluent-compatible API, stopped and started again on its own storage.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoAvro;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $reg = EoAvro::Registry->new(apicurio => 1);
$reg->start;
my $node = EoTest::new_node('avro_evolution', conf => "eo_ingest.retry_max_delay = '2s'");

$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.av_evo (
	event_id	uuid PRIMARY KEY,
	version		integer NOT NULL,
	a			integer,
	b			text DEFAULT 'no b',
	c			numeric DEFAULT -1,
	d			text DEFAULT 'never'
);
EOS

my @v = (
	{ type => 'record', name => 'evo', fields => [
		{ name => 'event_id', type => 'string' }, { name => 'version', type => 'int' },
		{ name => 'a', type => 'int' }, { name => 'b', type => 'string' } ] },
	# v2: c added with a default
	{ type => 'record', name => 'evo', fields => [
		{ name => 'event_id', type => 'string' }, { name => 'version', type => 'int' },
		{ name => 'a', type => 'int' }, { name => 'b', type => 'string' },
		{ name => 'c', type => [ 'null', { type => 'bytes', logicalType => 'decimal', precision => 10, scale => 3 } ], default => undef } ] },
	# v3: b removed, fields reordered
	{ type => 'record', name => 'evo', fields => [
		{ name => 'c', type => [ 'null', { type => 'bytes', logicalType => 'decimal', precision => 10, scale => 3 } ], default => undef },
		{ name => 'a', type => 'int' }, { name => 'version', type => 'int' },
		{ name => 'event_id', type => 'string' } ] },
);

my $n = 200;
my %want;		# event_id -> "version|a|b|c|d"
sub batch
{
	my ($ver, $from, $d) = @_;
	my @r;
	for my $k ($from .. $from + $n - 1)
	{
		my $id = sprintf('c0000000-0000-4000-8000-%012d', $k);
		my %r = (event_id => $id, version => $ver, a => $k);
		$r{b} = "b$k" if $ver < 3;
		$r{c} = sprintf('%d.%03d', $k, $k % 1000) if $ver > 1;
		$r{d} = $d if $ver > 3;
		push @r, \%r;
		# d: the DEFAULT while no version has it, then the value (NULL prints as '')
		$want{$id} = join('|', $ver, $k, $r{b} // 'no b', $r{c} // '-1',
			$ver > 3 ? $d // '' : 'never');
	}
	return \@r;
}

sub produce
{
	my ($ver, $from, %o) = @_;
	return EoAvro::produce(brokers => $kafka->brokers, topic => 'av_evo', registry => $reg->url,
		schema => $v[ $ver - 1 ], records => batch($ver, $from), %o);
}

sub check_rows
{
	my ($label) = @_;
	my %got = map { my ($id, $rest) = split /\|/, $_, 2; ($id => $rest) } split /\n/,
	  $node->safe_psql('postgres',
		"SELECT event_id, version, a, b, c, d FROM public.av_evo ORDER BY event_id");
	is_deeply(\%got, \%want, "$label: every row exactly once, with its version's fields ("
		  . scalar(keys %got) . ' rows)');
}

$kafka->create_topic('av_evo', 2);
EoTest::create_pipeline($node,
	name => 'av_evo', brokers => $kafka->brokers, topic => 'av_evo',
	target => 'public.av_evo', format => 'avro', schema_registry => $reg->url);

my $total = 0;
for my $ver (1 .. 3)
{
	produce($ver, $total);
	$total += $n;
	EoTest::wait_caught_up($node, 'av_evo', $total);
	check_rows("after version $ver");
	my $pid = EoTest::worker_pid($node, 'av_evo');
	ok(defined $pid && kill('KILL', $pid), "kill -9 of the worker after version $ver");
	ok(defined EoTest::wait_worker($node, 'av_evo', $pid), 'a new worker is back');
}
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.avro_schemas"), 3,
	'three writer schemas cached in eo_ingest.avro_schemas');
is($node->safe_psql('postgres', "SELECT dead_letters FROM eo_ingest.pipeline_status"), 0,
	'no dead letter across the three versions');

# --- the registry down for 30 s while a schema id never seen arrives
# v4 is registered first (the producer needs the registry to get an id);
# its records are then written with that id while the registry is down.
my $v4 = { %{ $v[2] }, fields => [ @{ $v[2]{fields} },
	{ name => 'd', type => [ 'null', 'string' ], default => undef } ] };
push @v, $v4;
produce(4, $total);
$total += $n;
EoTest::wait_caught_up($node, 'av_evo', $total);
my $v5 = { %$v4, fields => [ @{ $v4->{fields} }, { name => 'e', type => 'long', default => 0 } ] };
push @v, $v5;
# register v5 through a record of another topic, so av_evo's pipeline never saw its id
$kafka->create_topic('av_other', 1);
EoAvro::produce(brokers => $kafka->brokers, topic => 'av_other', registry => $reg->url,
	schema => $v5, records => [ { event_id => 'x', version => 5, a => 0, c => undef, d => undef, e => 1 } ]);
my $id5 = $reg->latest_id('av_other-value');
ok(defined $id5, "v5 registered as schema id $id5");

$reg->stop;
my $down_at = time;
my $recs = batch(5, $total, 'dd');
EoAvro::produce(brokers => $kafka->brokers, topic => 'av_evo', schema => $v5,
	schema_id => $id5, records => $recs);
$total += $n;
EoTest::wait_retrying($node, 'av_evo', 'registry down', 'schema registry .* unreachable');
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters"), 0,
	'registry down: nothing dead-lettered');
sleep(1) while time < $down_at + 30;
is($node->safe_psql('postgres', "SELECT state FROM eo_ingest.pipeline_status"), 'retrying',
	'still retrying after 30 s');
$reg->start;
EoTest::wait_caught_up($node, 'av_evo', $total);
check_rows('after the registry came back');
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters"), 0,
	'no dead letter after the outage');

# --- a restart with the registry down: ids seen come from the catalog table
$reg->stop;
$node->restart;
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('av_evo')");
$node->safe_psql('postgres', "SELECT eo_ingest.reset_offsets('av_evo', 'earliest')");
$node->safe_psql('postgres', "TRUNCATE public.av_evo");
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('av_evo')");
ok(EoTest::wait_for($node, "SELECT count(*) FROM public.av_evo", $total),
	'a replay after a restart with the registry down: every row, schemas from eo_ingest.avro_schemas');
check_rows('after the replay');

done_testing();
