
# Shared helpers for eo_ingest's end-to-end Perl TAP tests: a PostgreSQL node
# with the extension loaded, pipelines and target tables of the standard
# "orders" shape, polling, and the checks every pipeline test ends with: the
# target compared row by row with the producer's manifest, the exact counters,
# and the stored offsets against the broker's end offsets.
#
#   use EoKafka;
#   use EoTest;
#   my $node = EoTest::new_node('main');             # started, extension created
#   EoTest::create_orders_table($node, 'public.orders');
#   EoTest::create_pipeline($node, name => 'orders', brokers => $kafka->brokers,
#       topic => 'orders', target => 'public.orders');
#   my $m = $kafka->produce(topic => 'orders', count => 1000, dup_ratio => 0.1,
#       timestamp_base => EoTest::ts_base(0));
#   EoTest::wait_caught_up($node, 'orders', EoTest::committed_count($m));
#   EoTest::check_rows($node, 'public.orders', $m, 'skip');
#   EoTest::check_counters($node, 'orders', 'public.orders', EoTest::committed_count($m));
#   EoTest::check_offsets($node, 'orders', $kafka, 'orders');
#
# Every check is one Test::More test (ok/is) that reports the first
# differences with diag and returns true when it passed.  Functions that talk
# to the node take an optional trailing dbname => ... option (default
# 'postgres').
#
# Manifests are the array refs EoKafka::produce returns; pass several runs as
# one list ([ @$m1, @$m2 ]).  The expected content of a target:
#   - only records with status 'committed' count; aborted ones never land;
#   - 'skip': the first processed record of an event id wins.  Within one
#     partition that is the one with the lowest offset; across partitions the
#     processing order is not determined, so the check accepts, for each id,
#     the values of any record that is the first of that id in its partition;
#   - 'update': the latest record wins: highest Kafka timestamp, then offset.
#     Produce with a timestamp base (ts_base) so that timestamps are distinct
#     and increasing with seq, and map created_at from '$timestamp' so that
#     an older record never overwrites a newer row across batches
#     (update_columns); the record's created_at in the JSON value is its Kafka
#     timestamp, which is what the check orders by.

package EoTest;

use strict;
use warnings;

use Carp;
use Digest::MD5 ();
use EoKafka ();
use IPC::Run ();
use JSON::PP ();
use List::Util qw(sum);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Seconds a wait_* helper polls before giving up.
our $TIMEOUT = $ENV{EO_WAIT_TIMEOUT} // $PostgreSQL::Test::Utils::timeout_default;

# The columns of the standard target, in the order check_rows reads them.
our @ORDER_COLUMNS = qw(event_id seq customer_id amount note created_at);

my $json = JSON::PP->new;

sub _db
{
	my %opt = @_;
	return $opt{dbname} // 'postgres';
}

# A started node with eo_ingest preloaded and the extension created in
# 'postgres'.  Options: conf => extra postgresql.conf text, no_extension => 1.
sub new_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	# PostgreSQL::Test::Cluster turns restart_after_crash off; pipelines must
	# come back after a crash, as they do on a production server.
	# log_min_messages stays at its default (warning): that level already
	# writes LOG messages (worker starts, exits, crash recovery), while
	# log_min_messages = log would hide WARNINGs and ERRORs.
	$node->append_conf('postgresql.conf', <<'EOC');
shared_preload_libraries = 'eo_ingest'
max_worker_processes = 32
restart_after_crash = on
log_min_messages = warning
log_error_verbosity = default
log_connections = off
log_disconnections = off
EOC
	$node->append_conf('postgresql.conf', $opt{conf}) if defined $opt{conf};
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION eo_ingest')
	  unless $opt{no_extension};
	return $node;
}

# A target of the standard shape (what the test producer's JSON fills).
sub create_orders_table
{
	my ($node, $table, %opt) = @_;
	$node->safe_psql(_db(%opt), <<"EOS");
CREATE TABLE $table (
	event_id	uuid PRIMARY KEY,
	seq			integer,
	customer_id	integer,
	amount		numeric,
	note		text,
	created_at	timestamptz
);
EOS
	return 1;
}

# The columns mapping for an 'update' pipeline into the standard shape:
# created_at from the Kafka timestamp, which makes "latest wins" hold across
# batches and partitions (an older record never overwrites a newer row).
sub update_columns
{
	return '{"created_at": "$timestamp"}';
}

# A deterministic --timestamp-base for producer run $k of a test, so that
# records of later runs are newer than those of earlier ones (each run gets
# 10^7 ms of room: more records than any test produces in one run).
sub ts_base
{
	my $k = shift // 0;
	return 1_700_000_000_000 + $k * 10_000_000;
}

# SELECT eo_ingest.create_pipeline(...) with named arguments; values are
# quoted as literals, except undef (NULL) and booleans/integers passed as
# references to plain strings (\ 'false').
sub create_pipeline
{
	my ($node, %a) = @_;
	my $db = delete $a{dbname} // 'postgres';
	my @args;
	for my $k (sort keys %a)
	{
		my $v = $a{$k};
		my $lit =
			!defined $v ? 'NULL'
		  : ref $v eq 'SCALAR' ? $$v
		  : "'" . ($v =~ s/'/''/gr) . "'";
		push @args, "$k => $lit";
	}
	$node->safe_psql($db,
		'SELECT eo_ingest.create_pipeline(' . join(', ', @args) . ')');
	return 1;
}

# $node->psql that never dies: while the server restarts after a crash psql
# may exit before IPC::Run has written the query to it.  Returns psql's exit
# code, or undef if it could not run.
sub try_psql
{
	my ($node, $db, $sql, $out, $err) = @_;
	local $SIG{PIPE} = 'IGNORE';
	my $ret = eval {
		$node->psql($db, $sql, stdout => $out, stderr => $err, on_error_die => 0);
	};
	$$err .= $@ if $@;
	return $ret;
}

# Polls $sql until it returns $expected (string equality) or $timeout seconds
# pass.  Errors (e.g. while the server restarts after a crash) count as "not
# yet".  Returns true on success; on timeout diags the last result.
sub wait_for
{
	my ($node, $sql, $expected, $timeout, %opt) = @_;
	$timeout //= $TIMEOUT;
	my $deadline = time + $timeout;
	my ($last, $err) = ('', '');
	while (1)
	{
		my ($stdout, $stderr) = ('', '');
		my $ret = try_psql($node, _db(%opt), $sql, \$stdout, \$stderr);
		if (defined $ret && $ret == 0)
		{
			$last = $stdout;
			return 1 if $stdout eq $expected;
		}
		else
		{
			$err = $stderr;
		}
		if (time >= $deadline)
		{
			diag("wait_for timed out after ${timeout}s: $sql\n"
				  . "  expected: $expected\n  last result: $last\n"
				  . ($err ne '' ? "  last error: $err\n" : ''));
			return 0;
		}
		select(undef, undef, undef, 0.2);
	}
}

# Waits until the pipeline is running with lag 0 and has processed exactly
# $expected records (rows_inserted + rows_updated + duplicates_skipped +
# dead_letters).  One ok() test.  On timeout diags pipeline_status and
# partition_progress.
sub wait_caught_up
{
	my ($node, $pipeline, $expected, %opt) = @_;
	my $name = $pipeline =~ s/'/''/gr;
	my $ok = wait_for(
		$node, <<"EOS", "running|0|$expected", $opt{timeout}, %opt);
SELECT state, lag, rows_inserted + rows_updated + duplicates_skipped + dead_letters
  FROM eo_ingest.pipeline_status WHERE name = '$name'
EOS
	ok($ok, "pipeline $pipeline caught up: lag 0 and $expected records processed");
	diag_status($node, %opt) unless $ok;
	return $ok;
}

# Waits until $pipeline is 'retrying' with a last_error matching $pattern
# (a regex, case-insensitive); one ok() test; returns the error.
sub wait_retrying
{
	my ($node, $pipeline, $label, $pattern, %opt) = @_;
	my $name = $pipeline =~ s/'/''/gr;
	my $pat = $pattern =~ s/'/''/gr;
	my $ok = wait_for($node,
		"SELECT state = 'retrying' AND last_error ~* '$pat' FROM eo_ingest.pipeline_status WHERE name = '$name'",
		't', undef, %opt);
	my $err = $node->safe_psql(_db(%opt),
		"SELECT last_error FROM eo_ingest.pipeline_status WHERE name = '$name'");
	ok($ok, "$label: pipeline is retrying: $err");
	diag_status($node, %opt) unless $ok;
	return $err;
}

# For $opt{seconds} (5) nothing of $pipeline moves: offsets, state,
# counters, and with table => T the row count of T, with all_dead_letters => 1
# the number of rows in eo_ingest.dead_letters; and records of $topic wait
# all the while.  Two tests.
sub check_stalled
{
	my ($node, $kafka, $pipeline, $topic, $npart, $label, %opt) = @_;
	my $name = $pipeline =~ s/'/''/gr;
	my $sql = <<"EOS";
SELECT (SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition)
		  FROM eo_ingest.partition_progress WHERE pipeline = '$name'),
	   (SELECT state || ' inserted=' || rows_inserted || ' skipped=' || duplicates_skipped
			   || ' dead=' || dead_letters
		  FROM eo_ingest.pipeline_status WHERE name = '$name')
EOS
	$sql .= ", (SELECT count(*) FROM eo_ingest.dead_letters)" if $opt{all_dead_letters};
	$sql .= ", (SELECT count(*) FROM $opt{table})" if $opt{table};
	my $seconds = $opt{seconds} // 5;
	my $first = $node->safe_psql(_db(%opt), $sql);
	my @moved;
	for (1 .. $seconds)
	{
		sleep 1;
		my $now = $node->safe_psql(_db(%opt), $sql);
		push @moved, $now if $now ne $first;
	}
	is_deeply(\@moved, [], "$label: no offset advanced, nothing written for ${seconds}s ($first)");
	my $end = end_offsets($kafka, $topic, $npart);
	my $next = next_offsets($node, $pipeline, %opt);
	return ok(sum(values %$end) > sum(values %$next),
		"$label: records were waiting all the while (end offsets "
		  . join(',', map { "$_:$end->{$_}" } sort keys %$end) . ')');
}

# { partition => next_offset } of a pipeline, from partition_progress.
sub next_offsets
{
	my ($node, $pipeline, %opt) = @_;
	my $name = $pipeline =~ s/'/''/gr;
	return { map { split /\|/ } split /\n/, $node->safe_psql(_db(%opt),
		"SELECT partition, next_offset FROM eo_ingest.partition_progress WHERE pipeline = '$name'") };
}

# pipeline_status and partition_progress to the test log, for failures.
sub diag_status
{
	my ($node, %opt) = @_;
	my ($out, $err) = ('', '');
	$node->psql(_db(%opt), <<'EOS', stdout => \$out, stderr => \$err);
\pset format aligned
SELECT name, state, worker_pid, rows_inserted, rows_updated, duplicates_skipped,
	   dead_letters, lag, last_error FROM eo_ingest.pipeline_status ORDER BY name;
SELECT * FROM eo_ingest.partition_progress ORDER BY 1, 2;
EOS
	diag("$out$err");
	return;
}

# Number of committed records in a manifest: what a pipeline must process.
sub committed_count
{
	my $manifest = shift;
	return scalar grep { $_->{status} eq 'committed' } @$manifest;
}

# The standard-shape row a committed JSON record would become, as the strings
# check_rows reads back (created_at in UTC with milliseconds, like the JSON).
sub _record_row
{
	my $r = shift;
	my $v;
	# The producer's exact layout, parsed without a JSON decoder: JSON::PP
	# would take most of a test's time on a few hundred thousand records.
	if ($r->{value} =~ m/^\{"event_id":"([0-9a-f-]+)","seq":(\d+),"customer":\{"id":\d+\},"customer_id":(\d+),"amount":"([0-9.]+)","note":"([^"\\]*)","created_at":"([^"\\]+)"\}$/)
	{
		$v = { event_id => $1, seq => $2, customer_id => $3, amount => $4,
			note => $5, created_at => $6 };
	}
	else
	{
		$v = eval { $json->decode($r->{value}) };
		return undef unless ref $v eq 'HASH';
	}
	return {
		event_id => lc $v->{event_id},
		seq => "$v->{seq}",
		customer_id => "$v->{customer_id}",
		amount => "$v->{amount}",
		note => $v->{note},
		created_at => $v->{created_at},
		partition => $r->{partition},
		offset => $r->{offset},
	};
}

# For each event id, the list of acceptable rows under $policy (see the
# header).  Records whose value is not a JSON object are left out (they are
# dead letters, checked elsewhere).
sub expected_rows
{
	my ($manifest, $policy) = @_;
	croak "unknown policy $policy" unless $policy =~ /^(skip|update)$/;
	my %cand;
	my @recs = sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} }
	  grep { defined }
	  map { _record_row($_) }
	  grep { $_->{status} eq 'committed' } @$manifest;
	if ($policy eq 'skip')
	{
		my %seen;	# "partition id" already had its first record
		for my $r (@recs)
		{
			next if $seen{"$r->{partition} $r->{event_id}"}++;
			push @{ $cand{ $r->{event_id} } }, $r;
		}
	}
	else
	{
		for my $r (@recs)
		{
			my $cur = $cand{ $r->{event_id} };
			if (!$cur
				|| ($r->{created_at} cmp $cur->[0]{created_at}
					|| $r->{offset} <=> $cur->[0]{offset}) > 0)
			{
				$cand{ $r->{event_id} } = [$r];
			}
		}
	}
	return \%cand;
}

# The standard-shape rows of $table, keyed by event id.
sub fetch_rows
{
	my ($node, $table, %opt) = @_;
	my $out = $node->safe_psql(_db(%opt), <<"EOS");
\\pset null '<NULL>'
SET TimeZone = 'UTC';
SELECT event_id, seq, customer_id, amount, note,
	   to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  FROM $table
EOS
	my %rows;
	for my $line (split /\n/, $out)
	{
		my %r;
		@r{@ORDER_COLUMNS} = split /\|/, $line, -1;
		croak "duplicate event_id $r{event_id} in $table" if $rows{ $r{event_id} };
		$rows{ $r{event_id} } = \%r;
	}
	return \%rows;
}

sub _fmt_row
{
	my $r = shift;
	my $s = join(' ', map { "$_=" . ($r->{$_} // 'NULL') } @ORDER_COLUMNS[ 1 .. $#ORDER_COLUMNS ]);
	$s .= " (partition $r->{partition} offset $r->{offset})" if defined $r->{offset};
	return $s;
}

# Compares $table with the manifest under $policy: the same set of event ids
# (no missing, no extra rows) and every row's values equal to an acceptable
# record.  One ok() test; diags up to 10 differences of each kind.
# Returns the number of rows checked on success, 0 otherwise.
sub check_rows
{
	my ($node, $table, $manifest, $policy, %opt) = @_;
	my $cand = expected_rows($manifest, $policy);
	my $rows = fetch_rows($node, $table, %opt);
	my (@missing, @extra, @wrong);

	for my $id (sort keys %$cand)
	{
		my $row = $rows->{$id};
		if (!$row)
		{
			push @missing, $id;
			next;
		}
		my $match = grep {
			my $c = $_;
			!grep { $row->{$_} ne $c->{$_} } @ORDER_COLUMNS
		} @{ $cand->{$id} };
		push @wrong, $id unless $match;
	}
	@extra = sort grep { !$cand->{$_} } keys %$rows;

	my $label = $opt{label} // "$table matches the manifest ($policy)";
	my $n = scalar keys %$cand;
	my $ok = ok(!@missing && !@extra && !@wrong,
		"$label: " . scalar(keys %$rows) . " rows, $n expected");
	if (!$ok)
	{
		diag(scalar(@missing) . ' missing, ' . scalar(@extra) . ' extra, '
			  . scalar(@wrong) . ' with wrong values');
		diag("missing $_") for @missing[ 0 .. ($#missing < 9 ? $#missing : 9) ];
		diag("extra $_: " . _fmt_row($rows->{$_}))
		  for @extra[ 0 .. ($#extra < 9 ? $#extra : 9) ];
		for my $id (@wrong[ 0 .. ($#wrong < 9 ? $#wrong : 9) ])
		{
			diag("wrong $id:\n    row:      " . _fmt_row($rows->{$id})
				  . join('', map { "\n    expected: " . _fmt_row($_) } @{ $cand->{$id} }));
		}
	}
	return $ok ? $n : 0;
}

# Table $table equals the rows of %$rows (row hashes keyed by column name) on
# every column, both ways (EXCEPT ALL), through a scratch table "expected"
# made LIKE $table; shows up to 5 differing rows of each side on failure.
sub check_table_rows
{
	my ($node, $table, $rows, $label) = @_;
	my $doc = JSON::PP->new->utf8->canonical->encode([ values %$rows ]);
	$node->safe_psql('postgres',
		"SET client_min_messages = warning; DROP TABLE IF EXISTS expected; CREATE TABLE expected (LIKE $table);"
		  . "INSERT INTO expected SELECT * FROM jsonb_populate_recordset(NULL::expected, \$J\$$doc\$J\$)");
	my $extra = $node->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT * FROM $table EXCEPT ALL SELECT * FROM expected) x");
	my $missing = $node->safe_psql('postgres',
		"SELECT count(*) FROM (SELECT * FROM expected EXCEPT ALL SELECT * FROM $table) x");
	my $n = $node->safe_psql('postgres', "SELECT count(*) FROM $table");
	my $ok = Test::More::is("$extra extra, $missing missing", '0 extra, 0 missing',
		"$label: $table equals the expected " . scalar(keys %$rows) . " rows ($n) on every column");
	Test::More::diag($node->safe_psql('postgres',
		"(SELECT 'extra', * FROM $table EXCEPT ALL SELECT 'extra', * FROM expected LIMIT 5) UNION ALL "
		  . "(SELECT 'missing', * FROM expected EXCEPT ALL SELECT 'missing', * FROM $table LIMIT 5)"))
	  unless $ok;
	return $ok;
}

# The exact counters of $pipeline against its target and the number of
# committed records it consumed: rows_inserted == count(*) of the target (when
# the pipeline is the target's only writer and nothing was deleted) and
# inserted + updated + skipped + dead letters == $consumed.  Two ok() tests.
sub check_counters
{
	my ($node, $pipeline, $table, $consumed, %opt) = @_;
	my $name = $pipeline =~ s/'/''/gr;
	my ($ins, $upd, $skip, $dead, $count) = split /\|/, $node->safe_psql(_db(%opt), <<"EOS");
SELECT rows_inserted, rows_updated, duplicates_skipped, dead_letters,
	   (SELECT count(*) FROM $table)
  FROM eo_ingest.pipeline_status WHERE name = '$name'
EOS
	my $ok = is($ins, $count, "$pipeline: rows_inserted equals count(*) of $table");
	$ok &= is($ins + $upd + $skip + $dead, $consumed,
		"$pipeline: inserted $ins + updated $upd + skipped $skip + dead letters $dead"
		  . " equals $consumed committed records");
	return $ok;
}

# JSON text nested $n levels deep, for records too deep for a recursive
# parser: $n arrays ([[...]]) or $n objects ({"a": {"a": ... 1}}).
sub deep_array
{
	my ($n) = @_;
	return ('[' x $n) . (']' x $n);
}

sub deep_object
{
	my ($n) = @_;
	return ('{"a": ' x $n) . '1' . ('}' x $n);
}

# The dead letters of $pipeline, whose topic has one partition, are exactly
# the records of %$expected, offset => [ payload, SQLSTATE, error pattern,
# optional name for the test labels ]: one dead letter each, in partition 0,
# with its payload, that SQLSTATE and an error matching the pattern.
sub check_dead_letters
{
	my ($node, $pipeline, $expected, %opt) = @_;
	my $name = $pipeline =~ s/'/''/gr;
	my %dl;
	for my $line (split /\n/, $node->safe_psql(_db(%opt), <<"EOS"))
SELECT "offset", partition, md5(payload), sqlstate, replace(error, E'\\n', ' ')
  FROM eo_ingest.dead_letters WHERE pipeline = '$name' ORDER BY "offset"
EOS
	{
		my ($off, @row) = split /\|/, $line, 5;
		push @{ $dl{$off} }, \@row;
	}
	my $ok = is_deeply([ sort { $a <=> $b } keys %dl ], [ sort { $a <=> $b } keys %$expected ],
		"$pipeline: dead letters are exactly the expected records");
	for my $off (sort { $a <=> $b } keys %$expected)
	{
		my ($payload, $state, $pattern, $what) = @{ $expected->{$off} };
		my $label = "$pipeline " . ($what // "offset $off");
		my $rows = $dl{$off} or next;
		my ($part, $md5, $st, $err) = @{ $rows->[0] };
		$ok &= is(scalar @$rows, 1, "$label: one dead letter");
		$ok &= is_deeply([ $part, $md5 ], [ 0, Digest::MD5::md5_hex($payload) ],
			"$label: partition and payload");
		$ok &= is($st, $state, "$label: SQLSTATE $state");
		$ok &= like($err, $pattern, "$label: error says why");
	}
	return $ok;
}

# The end offset (next offset to be written, including transaction markers)
# of every partition of $topic, as a hash partition => offset, from kcat -Q.
sub end_offsets
{
	my ($kafka, $topic, $npart) = @_;
	my @cmd = ($EoKafka::KCAT, '-b', $kafka->brokers, '-Q',
		map { ('-t', "$topic:$_:-1") } 0 .. $npart - 1);
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout(60))
	  or croak "kcat -Q failed (@cmd):\n$err";
	my %end;
	while ($out =~ /^\Q$topic\E \[(\d+)\] offset (-?\d+)$/mg)
	{
		$end{$1} = $2;
	}
	croak "kcat -Q returned " . scalar(keys %end) . " of $npart partitions:\n$out"
	  unless keys %end == $npart;
	return \%end;
}

# partition_progress.next_offset of $pipeline equals the end offset of every
# partition of $topic (so the pipeline stored progress past the transaction
# markers and aborted records too).  One is_deeply test.
sub check_offsets
{
	my ($node, $pipeline, $kafka, $topic, $npart, %opt) = @_;
	my $end = end_offsets($kafka, $topic, $npart);
	my $name = $pipeline =~ s/'/''/gr;
	my %stored = map { split /\|/ } split /\n/, $node->safe_psql(_db(%opt),
		"SELECT partition, next_offset FROM eo_ingest.partition_progress WHERE pipeline = '$name'");
	return is_deeply(\%stored, $end,
		"$pipeline: next_offset of each partition equals the end offset of $topic ("
		  . join(', ', map { "$_:$end->{$_}" } sort { $a <=> $b } keys %$end) . ')');
}

# The pid of the pipeline's worker, or undef while it has none.
sub worker_pid
{
	my ($node, $pipeline, %opt) = @_;
	my $name = $pipeline =~ s/'/''/gr;
	my ($out, $err) = ('', '');
	try_psql($node, _db(%opt),
		"SELECT worker_pid FROM eo_ingest.pipeline_status WHERE name = '$name'",
		\$out, \$err);
	return $out =~ /^(\d+)$/ ? $1 : undef;
}

# Waits for the pipeline to have a worker whose pid differs from $old (undef:
# any worker) and returns its pid, or undef on timeout.
sub wait_worker
{
	my ($node, $pipeline, $old, %opt) = @_;
	my $deadline = time + ($opt{timeout} // $TIMEOUT);
	while (time < $deadline)
	{
		my $pid = worker_pid($node, $pipeline, %opt);
		return $pid if defined $pid && (!defined $old || $pid != $old);
		select(undef, undef, undef, 0.1);
	}
	diag("no new worker for pipeline $pipeline");
	return undef;
}

# Children of the postmaster with pid $ppid, as [ pid, args ].
sub _children_of
{
	my $ppid = shift;
	my $out = `ps -o pid=,args= --ppid $ppid`;
	return map { [ split ' ', $_, 2 ] } grep { /\S/ } split /\n/, $out;
}

# kill -9 of the node's postmaster, then a restart.  Its children must not
# outlive it (a new postmaster cannot start while they hold the old shared
# memory): any still running after 10 s is diagnosed, counted and killed.
# Returns { started => bool, children => n, orphans => n }.
sub crash_postmaster
{
	my ($node) = @_;
	my ($pm) = split /\n/, PostgreSQL::Test::Utils::slurp_file($node->data_dir . '/postmaster.pid');
	my @kids = _children_of($pm);
	my %r = (children => scalar @kids, orphans => 0, started => 0);
	# The pid file names the running postmaster even if Cluster.pm lost
	# track of it; kill9 then makes Cluster.pm forget it.
	kill 'KILL', $pm;
	$node->kill9;
	my $deadline = time + 10;
	my @left;
	do
	{
		select(undef, undef, undef, 0.1);
		@left = grep { kill 0, $_->[0] } @kids;
	} while (@left && time < $deadline);
	if (@left)
	{
		$r{orphans} = @left;
		diag("still running 10 s after the postmaster died:\n"
			  . join('', map { "  $_->[0] $_->[1]\n" } @left));
		kill 'KILL', map { $_->[0] } @left;
		select(undef, undef, undef, 0.5);
	}
	for (1 .. 20)
	{
		last if ($r{started} = $node->start(fail_ok => 1));
		select(undef, undef, undef, 0.5);
	}
	return \%r;
}

1;
