# A pipeline whose target table is dropped loses nothing and resumes by
# itself once the table exists again.  The pipeline follows its target by
# OID and remembers its schema-qualified name (pipelines.target_name,
# refreshed after a rename).  While the table is gone the pipeline is
# 'retrying', saying what it waits for, and stores no offset; when a table of
# the remembered name appears (and the owner may write it), the worker
# switches to it and continues from the stored offsets: every record
# committed after the drop lands in the new table exactly once.
# alter_pipeline(target => ...) on the paused pipeline is the other way out.
# The pipeline is owned by a non-superuser role.

use strict;
use warnings;

use List::Util qw(sum);
use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('recreated',
	conf => "eo_ingest.retry_max_delay = '2s'");

my $TOPIC = 'recreated';
my $NPART = 2;
my $P = 'recreated';
my @all;			# every manifest row produced so far
my $run = 0;

$kafka->create_topic($TOPIC, $NPART);

sub sql { return $node->safe_psql('postgres', shift) }

sub produce
{
	my $count = shift;
	my $m = $kafka->produce(topic => $TOPIC, count => $count,
		start_id => 1 + 10_000 * $run, timestamp_base => EoTest::ts_base($run));
	$run++;
	push @all, @$m;
	return $m;
}

# A producer paced at $rate records/s, running in the background; the
# returned closure waits for it and adds its manifest to @all.
sub produce_background
{
	my ($count, $rate) = @_;
	my $wait = $kafka->produce_start(topic => $TOPIC, count => $count,
		start_id => 1 + 10_000 * $run, timestamp_base => EoTest::ts_base($run),
		rate => $rate, timeout => 120);
	$run++;
	return sub {
		my $m = $wait->();
		push @all, @$m;
		return $m;
	};
}

sub committed { return EoTest::committed_count(\@all) }

sub status
{
	return sql("SELECT state || ': ' || coalesce(last_error, '-') FROM eo_ingest.pipeline_status WHERE name = '$P'");
}

sub wait_retrying { return EoTest::wait_retrying($node, $P, @_) }
sub next_offsets { return EoTest::next_offsets($node, $P) }

sub counters
{
	my ($ins, $upd, $skip, $dead) = split /\|/, sql(
		"SELECT rows_inserted, rows_updated, duplicates_skipped, dead_letters "
		  . "FROM eo_ingest.pipeline_status WHERE name = '$P'");
	return { inserted => $ins, updated => $upd, skipped => $skip, dead => $dead };
}

sub check_stalled { return EoTest::check_stalled($node, $kafka, $P, $TOPIC, $NPART, @_) }

# The manifest rows at or past the given next offsets: what the new table
# must hold once the pipeline caught up.
sub records_after
{
	my $at = shift;
	return [ grep { $_->{offset} >= $at->{ $_->{partition} } } @all ];
}

# Once caught up: the new table holds exactly the records committed after the
# drop, row by row; the counters grew by exactly those; the offsets reached
# the end of the topic; no dead letters.
sub check_resumed
{
	my ($label, $table, $at, $before) = @_;
	EoTest::wait_caught_up($node, $P, committed());
	my $after = records_after($at);
	my $n = EoTest::committed_count($after);
	ok($n > 0, "$label: $n committed records arrived after the drop");
	EoTest::check_rows($node, $table, $after, 'skip',
		label => "$label: $table holds the records committed after the drop, row by row");
	my $c = counters();
	is($c->{inserted} - $before->{inserted}, sql("SELECT count(*) FROM $table"),
		"$label: rows_inserted grew by count(*) of $table");
	is(($c->{inserted} + $c->{skipped} + $c->{dead}) - ($before->{inserted} + $before->{skipped} + $before->{dead}),
		$n, "$label: the counters grew by the $n records committed after the drop");
	EoTest::check_offsets($node, $P, $kafka, $TOPIC, $NPART);
	is(sql('SELECT count(*) FROM eo_ingest.dead_letters'), '0', "$label: no dead letters");
}

sql('CREATE ROLE ingest LOGIN');
EoTest::create_orders_table($node, 'public.events');
sql('GRANT SELECT, INSERT ON public.events TO ingest');
produce(300);
sql(<<"EOS");
SET ROLE ingest;
SELECT eo_ingest.create_pipeline(name => '$P', brokers => '@{[ $kafka->brokers ]}',
	topic => '$TOPIC', target => 'public.events');
EOS
is(sql("SELECT target_name FROM eo_ingest.pipelines WHERE name = '$P'"), 'public.events',
	'create_pipeline remembers the schema-qualified name of the target');
EoTest::wait_caught_up($node, $P, committed());
EoTest::check_rows($node, 'public.events', \@all, 'skip', label => 'before the drop: public.events row by row');

# --- the target dropped while records keep arriving, then created again
my $oid = sql("SELECT 'public.events'::regclass::oid");
my ($at, $before);
{
	my $wait = produce_background(900, 300);
	sleep 1;
	sql('DROP TABLE public.events');
	my $err = wait_retrying('dropped', 'public\.events.*was dropped');
	like($err, qr/exists again/, 'dropped: last_error says the pipeline resumes once the table exists again');
	like($err, qr/alter_pipeline/, 'dropped: last_error names alter_pipeline as the other way out');
	# DROP TABLE waited for any batch in flight: what is stored now is
	# what landed in the dropped table, and nothing commits after it
	$at = next_offsets();
	$before = counters();
	note('stored offsets at the drop: ' . join(',', map { "$_:$at->{$_}" } sort keys %$at));
	$wait->();
	check_stalled('dropped');
	ok(sum(values %$at) < sum(values %{ EoTest::end_offsets($kafka, $TOPIC, $NPART) }),
		'dropped: records were produced after the drop');

	# A table of that name the owner may not write yet: still retrying, and
	# last_error says why.
	EoTest::create_orders_table($node, 'public.events');
	$err = wait_retrying('re-created without grant', 'created again.*permission denied');
	check_stalled('re-created without grant', table => 'public.events');
	is(sql("SELECT target::oid FROM eo_ingest.pipelines WHERE name = '$P'"), $oid,
		're-created without grant: the pipeline still points at the dropped OID');

	# The owner may write it: the pipeline resumes by itself.
	sql('GRANT SELECT, INSERT ON public.events TO ingest');
	check_resumed('re-created', 'public.events', $at, $before);
	my $new = sql("SELECT 'public.events'::regclass::oid");
	isnt($new, $oid, 're-created: the new table has a new OID');
	is(sql("SELECT target::oid || ' ' || target_name FROM eo_ingest.pipelines WHERE name = '$P'"),
		"$new public.events", 're-created: the pipeline now points at the new table');
	like(slurp_file($node->logfile),
		qr/pipeline "$P": target table public\.events was created again; switching from OID $oid to OID $new/,
		're-created: the switch is in the server log');
}

# --- a rename is followed (same OID) and remembered; a table created under
# the old name is another table; alter_pipeline(target => ...) on the paused
# pipeline points it elsewhere without losing offsets
{
	sql('ALTER TABLE public.events RENAME TO events_v2');
	ok(EoTest::wait_for($node,
			"SELECT target_name FROM eo_ingest.pipelines WHERE name = '$P'", 'public.events_v2'),
		'renamed: the worker remembers the new name');
	produce(200);
	# the renamed table still holds what landed since the first drop
	check_resumed('renamed', 'public.events_v2', $at, $before);

	sql('DROP TABLE public.events_v2');
	produce(200);
	wait_retrying('renamed, then dropped', 'public\.events_v2.*was dropped');
	$at = next_offsets();
	$before = counters();
	EoTest::create_orders_table($node, 'public.events');
	sql('GRANT SELECT, INSERT ON public.events TO ingest');
	check_stalled('table of the old name', table => 'public.events');

	sql("SET ROLE ingest; SELECT eo_ingest.pause_pipeline('$P')");
	EoTest::wait_for($node, "SELECT state FROM eo_ingest.pipeline_status WHERE name = '$P'", 'paused');
	produce(200);
	sql("SET ROLE ingest; SELECT eo_ingest.alter_pipeline('$P', target => 'public.events')");
	is(sql("SELECT target::text || ' ' || target_name FROM eo_ingest.pipelines WHERE name = '$P'"),
		'events public.events', 'alter_pipeline(target => ...): the pipeline points at public.events');
	is_deeply(next_offsets(), $at, 'alter_pipeline(target => ...): the offsets stayed');
	sql("SET ROLE ingest; SELECT eo_ingest.resume_pipeline('$P')");
	check_resumed('altered', 'public.events', $at, $before);
}

# --- two workers notice the drop at once: one switches the pipeline, the
# other follows the switch; the table re-created in one transaction with its
# grant
{
	$P = 'recreated2';
	EoTest::create_orders_table($node, 'public.events2');
	sql('GRANT SELECT, INSERT ON public.events2 TO ingest');
	sql(<<"EOS");
SET ROLE ingest;
SELECT eo_ingest.create_pipeline(name => '$P', brokers => '@{[ $kafka->brokers ]}',
	topic => '$TOPIC', target => 'public.events2', workers => 2);
EOS
	EoTest::wait_caught_up($node, $P, committed());
	my $old = sql("SELECT 'public.events2'::regclass::oid");
	my $wait = produce_background(600, 300);
	sleep 1;
	sql('DROP TABLE public.events2');
	wait_retrying('two workers, dropped', 'public\.events2.*was dropped');
	$at = next_offsets();
	$before = counters();
	$wait->();
	sql(<<'EOS');
BEGIN;
CREATE TABLE public.events2 (event_id uuid PRIMARY KEY, seq integer, customer_id integer,
	amount numeric, note text, created_at timestamptz);
GRANT SELECT, INSERT ON public.events2 TO ingest;
COMMIT;
EOS
	check_resumed('two workers, re-created', 'public.events2', $at, $before);
	my @switches = slurp_file($node->logfile) =~ /pipeline "$P": target table public\.events2 was created again; switching from OID $old /g;
	is(scalar @switches, 1, 'two workers, re-created: one worker switched the pipeline, once');
}

my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was fenced off/,
	'server log: no crashed process, no fenced worker');

$node->stop;
$kafka->stop;
done_testing();
