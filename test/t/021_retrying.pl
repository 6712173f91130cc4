
# Batch-level errors: an error that is not about one record (permission
# denied, a column or the table gone, a lock, disk full) never makes a dead
# letter and never skips anything.  The pipeline reports 'retrying' with the
# error, its offsets stay where they are, and once the cause is removed the
# same records land, exactly once.  The pipeline is owned by a non-superuser
# role: its worker writes with that role's rights.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('retrying',
	conf => "eo_ingest.retry_max_delay = '2s'");

my $TOPIC = 'retry';
my $NPART = 2;
my $P = 'retry';		# the pipeline the checks look at
my $TABLE = 'public.events';
my @all;			# every manifest row produced so far
my $run = 0;

$kafka->create_topic($TOPIC, $NPART);

# The standard shape plus cust_ref, which the columns mapping feeds from the
# nested "customer.id": a column the mapping needs by name.
sub create_target
{
	my $table = shift;
	EoTest::create_orders_table($node, $table);
	$node->safe_psql('postgres', <<"EOS");
ALTER TABLE $table ADD COLUMN cust_ref integer;
GRANT SELECT, INSERT ON $table TO ingest;
EOS
}

sub create_pipeline
{
	my ($name, $table) = @_;
	$node->safe_psql('postgres', <<"EOS");
SET ROLE ingest;
SELECT eo_ingest.create_pipeline(name => '$name', brokers => '@{[ $kafka->brokers ]}',
	topic => '$TOPIC', target => '$table', columns => '{"cust_ref": "customer.id"}');
EOS
}

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

sub sql { return $node->safe_psql('postgres', shift) }

sub committed { return EoTest::committed_count(\@all) }

sub wait_retrying { return EoTest::wait_retrying($node, $P, @_) }
sub next_offsets { return EoTest::next_offsets($node, $P) }

sub check_stalled { return EoTest::check_stalled($node, $kafka, $P, $TOPIC, $NPART, @_, all_dead_letters => 1) }

sub no_dead_letters
{
	my $label = shift;
	is(sql('SELECT count(*) FROM eo_ingest.dead_letters'), '0', "$label: no dead letters");
}

# The checks every scenario ends with, once the cause is gone.
sub check_recovered
{
	my ($label, $table) = @_;
	$table //= $TABLE;
	EoTest::wait_caught_up($node, $P, committed());
	EoTest::check_rows($node, $table, \@all, 'skip', label => "$label: $table row by row");
	EoTest::check_counters($node, $P, $table, committed());
	EoTest::check_offsets($node, $P, $kafka, $TOPIC, $NPART);
	no_dead_letters($label);
}

sql(<<'EOS');
CREATE ROLE ingest LOGIN;
CREATE FUNCTION public.disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'could not extend relation: No space left on device (simulated)'
		USING ERRCODE = 'disk_full';
END $$;
EOS
create_target($TABLE);
produce(300);
create_pipeline($P, $TABLE);
EoTest::wait_caught_up($node, $P, committed());
is(sql("SELECT s.owner || ' ' || a.usename FROM eo_ingest.pipeline_status s "
		  . "JOIN pg_stat_activity a ON a.pid = s.worker_pid WHERE s.name = '$P'"),
	'ingest ingest', 'the pipeline is owned by, and its worker runs as, role ingest');

# --- (a) INSERT revoked while events flow
{
	my $wait = produce_background(900, 300);
	sleep 1;
	sql("REVOKE INSERT ON $TABLE FROM ingest");
	my $err = wait_retrying('revoked', 'permission denied');
	like($err, qr/42501/, 'revoked: last_error carries SQLSTATE 42501');
	$wait->();
	check_stalled('revoked', table => $TABLE);
	no_dead_letters('revoked');
	sql("GRANT INSERT ON $TABLE TO ingest");
	check_recovered('revoked');
}

# --- (b) a column the mapping needs is dropped, then added again
{
	sql("ALTER TABLE $TABLE DROP COLUMN cust_ref");
	my $m = produce(200);
	my $err = wait_retrying('column dropped', 'cust_ref|column');
	check_stalled('column dropped', table => $TABLE);
	sql("ALTER TABLE $TABLE ADD COLUMN cust_ref integer");
	check_recovered('column re-added');
	# The records that waited were written through the new column.
	my %want = map { lc $_->{event_id} => ($_->{value} =~ /"customer":\{"id":(\d+)\}/)[0] } @$m;
	my %got = map { split /\|/ } split /\n/,
	  sql("SELECT event_id, coalesce(cust_ref::text, 'NULL') FROM $TABLE WHERE cust_ref IS NOT NULL");
	is_deeply(\%got, \%want, 'column re-added: the records that waited filled cust_ref, nothing else did');
}

# --- (e) a trigger fails the batch with disk_full (SQLSTATE 53100)
{
	sql("CREATE TRIGGER disk_full BEFORE INSERT ON $TABLE FOR EACH ROW EXECUTE FUNCTION public.disk_full()");
	produce(200);
	my $err = wait_retrying('disk full', 'No space left on device');
	like($err, qr/53100/, 'disk full: last_error carries SQLSTATE 53100');
	check_stalled('disk full', table => $TABLE);
	sql("DROP TRIGGER disk_full ON $TABLE");
	check_recovered('trigger dropped');
}

# --- (d) a lock held on the target: the worker waits, nothing is lost
{
	my $locker = $node->background_psql('postgres');
	$locker->query_safe("BEGIN; LOCK TABLE $TABLE IN ACCESS EXCLUSIVE MODE");
	produce(300);
	check_stalled('locked', seconds => 18);
	note('state while locked: '
		  . sql("SELECT state || coalesce(' ' || last_error, '') FROM eo_ingest.pipeline_status WHERE name = '$P'"));
	$locker->query_safe('COMMIT');
	$locker->quit;
	check_recovered('lock released');
}

# --- (c) the target renamed (followed by OID, its new name remembered), then
# dropped; a table created under its old name is another table (a table
# re-created under the remembered name is 022_target_recreated.pl)
{
	my $oid = sql("SELECT '$TABLE'::regclass::oid");
	sql("ALTER TABLE $TABLE RENAME TO events_renamed");
	$TABLE = 'public.events_renamed';
	produce(200);
	check_recovered('renamed');
	note('after the rename: ' . sql("SELECT 'target ' || target || ', last_error: ' || coalesce(last_error, '-') "
		  . "FROM eo_ingest.pipeline_status WHERE name = '$P'"));
	ok(EoTest::wait_for($node, "SELECT target_name FROM eo_ingest.pipelines WHERE name = '$P'",
			'public.events_renamed'),
		'renamed: the pipeline remembers the new name');

	sql("DROP TABLE $TABLE");
	produce(200);
	# the cached statement may fail first with the relation's name; then the
	# configuration, reloaded for the retry, says what the pipeline waits for
	wait_retrying('dropped', "events_renamed.*\\m$oid\\M.*was dropped.*exists again");
	check_stalled('dropped');

	# A table of the old name is another relation: the pipeline waits for its own.
	create_target('public.events');
	sleep 5;
	is(sql("SELECT state FROM eo_ingest.pipeline_status WHERE name = '$P'"), 'retrying',
		'old name re-created: the pipeline still waits for public.events_renamed');
	like(sql("SELECT last_error FROM eo_ingest.pipeline_status WHERE name = '$P'"),
		qr/events_renamed \(OID $oid\) was dropped/,
		'old name re-created: last_error still says public.events_renamed is gone');
	no_dead_letters('dropped');

	# The way out: a new pipeline on the new table reads the topic from the start.
	sql("SET ROLE ingest; SELECT eo_ingest.drop_pipeline('$P')");
	$P = 'retry2';
	$TABLE = 'public.events';
	create_pipeline($P, $TABLE);
	check_recovered('new pipeline on the re-created table');
}

# A crash would restart every backend and hide behind the recovery; a worker
# fenced off here (one worker, no reset_offsets) would mean it lost track of
# its own offsets.
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was fenced off/,
	'server log: no crashed process, no fenced worker');

$node->stop;
$kafka->stop;
done_testing();
