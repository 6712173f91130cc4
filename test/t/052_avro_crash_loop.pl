
# The crash loop on an Avro topic: records serialized by AvroSerializer
# (with duplicates of earlier events) are produced while the pipeline's
# worker and the postmaster are killed with kill -9 again and again.  At the
# end every event is in the target exactly once with its values, and the
# counters account for every record exactly once: no record was lost or
# counted twice across the crashes, and none was dead-lettered.  The
# registry is Apicurio Registry (test/registry/apicurio.sh).

use strict;
use warnings;

use List::Util qw(shuffle);
use PostgreSQL::Test::Utils;
use Test::More;
use EoAvro;
use EoKafka;
use EoTest;

my $worker_kills = 4;
my $postmaster_kills = 2;

my $kafka = EoKafka->new;
$kafka->start;
my $reg = EoAvro::Registry->new(apicurio => 1);
$reg->start;
my $node = EoTest::new_node('avro_crash', conf => "eo_ingest.retry_max_delay = '2s'");

$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.av_crash (
	event_id	uuid PRIMARY KEY,
	seq			integer NOT NULL,
	amount		numeric(12,2),
	at			timestamptz,
	tags		text[]
);
EOS
my $schema = { type => 'record', name => 'order', fields => [
	{ name => 'event_id', type => { type => 'string', logicalType => 'uuid' } },
	{ name => 'seq', type => 'int' },
	{ name => 'amount', type => [ 'null', { type => 'bytes', logicalType => 'decimal', precision => 12, scale => 2 } ] },
	{ name => 'at', type => { type => 'long', logicalType => 'timestamp-micros' } },
	{ name => 'tags', type => { type => 'array', items => 'string' } } ] };

# 10,000 events and 1,000 duplicates of earlier ones, identical to them
my (@records, %want);
for my $k (1 .. 10_000)
{
	my $r = {
		event_id => sprintf('d0000000-0000-4000-8000-%012d', $k),
		seq => $k,
		amount => $k % 7 ? sprintf('%d.%02d', $k, $k % 100) : undef,
		at => sprintf('2024-01-01T00:00:%02d.%06d+00:00', $k % 60, $k),
		tags => [ "t$k", 'x' x ($k % 3) ] };
	push @records, $r;
	push @records, $records[ int(rand(@records)) ] if $k % 10 == 0;
	$want{ $r->{event_id} } = join('|', $k, $r->{amount} // '', "{t$k," . ('x' x ($k % 3) || '""') . '}');
}

$kafka->create_topic('av_crash', 3);
EoTest::create_pipeline($node,
	name => 'av_crash', brokers => $kafka->brokers, topic => 'av_crash',
	target => 'public.av_crash', format => 'avro', schema_registry => $reg->url,
	batch_size => \'500');
my $producer = EoAvro::produce_start(brokers => $kafka->brokers, topic => 'av_crash',
	registry => $reg->url, schema => $schema, records => \@records, rate => 400);

my ($n_worker, $n_postmaster) = (0, 0);
for my $what (shuffle(('worker') x $worker_kills, ('postmaster') x $postmaster_kills))
{
	sleep(1 + rand(3));
	if ($what eq 'worker')
	{
		my $pid = EoTest::wait_worker($node, 'av_crash', undef, timeout => 60);
		last unless defined $pid;
		kill 'KILL', $pid;
		$n_worker++;
		last unless defined EoTest::wait_worker($node, 'av_crash', $pid, timeout => 60);
	}
	else
	{
		my ($pm) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
		my @kids = grep { /\d/ } split ' ', `ps -o pid= --ppid $pm`;
		kill 'KILL', $pm;
		$node->kill9;
		$n_postmaster++;
		# the server starts again once the orphans let go of shared memory
		my $deadline = time + 20;
		sleep(0.1) while grep({ kill 0, $_ } @kids) && time < $deadline;
		kill 'KILL', grep { kill 0, $_ } @kids;
		my $started = 0;
		for (1 .. 40)
		{
			last if ($started = $node->start(fail_ok => 1));
			sleep(0.5);
		}
		last unless $started;
	}
}
is($n_worker, $worker_kills, "$n_worker workers killed with SIGKILL");
is($n_postmaster, $postmaster_kills, "$n_postmaster postmasters killed with SIGKILL");
is(EoAvro::produce_finish($producer), scalar @records, 'every record produced');

EoTest::wait_caught_up($node, 'av_crash', scalar @records, timeout => 300);
my %got = map { my ($id, $rest) = split /\|/, $_, 2; ($id => $rest) } split /\n/,
  $node->safe_psql('postgres', 'SELECT event_id, seq, amount, tags FROM public.av_crash');
is_deeply(\%got, \%want, 'every event exactly once with its values (' . scalar(keys %got) . ' rows)');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM public.av_crash c WHERE c.at <> '2024-01-01T00:00:00+00:00'::timestamptz
		   + make_interval(secs => c.seq % 60) + make_interval(secs => c.seq / 1000000.0)"),
	0, 'every timestamp-micros exact');
is($node->safe_psql('postgres',
		"SELECT rows_inserted || ' ' || duplicates_skipped || ' ' || dead_letters FROM eo_ingest.pipeline_status"),
	scalar(keys %want) . ' ' . (scalar(@records) - scalar(keys %want)) . ' 0',
	'counters: each record counted once, as inserted or duplicate; no dead letter');

done_testing();
