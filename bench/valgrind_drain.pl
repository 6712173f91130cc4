
# One drain with bisection under Valgrind (memcheck): the postmaster, and so
# every process it forks (launcher, supervisor, pipeline worker), runs under
# valgrind; 2,000 records with bad ones of every kind (malformed JSON, a
# failed cast, 20,000-deep nesting, CHECK violations found by bisection) go
# into a plain target (fast path) and one with a foreign key (SQL path).
# Prints the number of Valgrind errors and the first frames of each.  Run
# with the TAP harness:
#
#   EO_SUITES=tapcheck TAP_TESTS_FILES=bench/valgrind_drain.pl PROVE_FLAGS=-v scripts/test.sh

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
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

system('pg_ctl', '-D', $node->data_dir, '-m', 'fast', '-w', '-t', '600', 'stop');
my ($files, $errors, $report) = (0, 0, '');
for my $f (glob "$vgdir/vg.*.log")
{
	$files++;
	my $log = slurp_file($f);
	while ($log =~ /VGERR-BEGIN\n(.*?)VGERR-END/sg)
	{
		$errors++;
		my @lines = grep { /^==\d+== / } split /\n/, $1;
		$report .= join("\n", @lines[ 0 .. ($#lines < 8 ? $#lines : 8) ]) . "\n\n";
	}
}
diag("VALGRIND processes $files errors $errors\n$report");
unlike(slurp_file($node->logfile), qr/terminated by signal/, 'no crashed process');

$kafka->stop;
done_testing();
