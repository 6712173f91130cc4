
# Change streams (envelope => 'debezium' | 'upsert'), without Kafka Connect:
# the test writes Debezium-shaped JSON change events (with and without the
# schema/payload wrapper, keys too) and an upsert topic with tombstones
# itself, from a model of the source table.  The workload inserts, updates,
# deletes (each followed by its tombstone), deletes keys that are not there,
# changes primary keys (Debezium's delete + create, and an update whose full
# "before" has the old key) and sends bad envelopes (no op, unknown op, an
# "after" that is not an object, invalid JSON, a row that violates a CHECK).
# Two pipelines apply it, one with two workers and synchronous_commit off,
# while workers and the postmaster are killed with -9.  Each target must then
# equal the model row by row (EXCEPT both ways on every column), the bad
# records must be exactly the dead letters, and the counters must add up;
# replaying the whole topic (reset_offsets) must leave the tables unchanged.
# Truncate events: ignored or applied, per on_truncate; the events' op,
# source.lsn and ts_ms mapped to columns.  An update that changes the key and
# fails on either half (its new row violates a CHECK, its old row is still
# referenced) is a dead letter and neither half is applied, while the rest of
# its batch is.  Debezium's default precise decimals (base64 of the unscaled
# two's complement integer, the scale in the wrapper's schema: Decimal and
# VariableScaleDecimal) land as their exact values, of any length.

use strict;
use warnings;

use JSON::PP ();
use MIME::Base64 ();
use Math::BigInt;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

my $nparts = 3;
my $nchanges = $ENV{EO_CDC_CHANGES} // 12_000;
my $chunks = 6;

my $json = JSON::PP->new->utf8->canonical;
my $kafka = EoKafka->new;
$kafka->start;
# seeded only now: a seed before the broker picks its port gave every run of
# this file the same port, and concurrent runs met on one broker
srand($ENV{EO_CDC_SEED} // 50);
$kafka->create_topic('t060_dbz', $nparts);
$kafka->create_topic('t060_upsert', 2);
$kafka->create_topic('t060_trunc', 1);
$kafka->create_topic('t060_pk', 1);
$kafka->create_topic('t060_dec', 1);

my $node = EoTest::new_node('eo060');
$node->safe_psql('postgres', <<'EOS');
CREATE TABLE items_a (
	a		integer,
	b		text,
	qty		integer NOT NULL CHECK (qty >= 0),
	price	numeric(10,2),
	at		timestamptz,
	doc		jsonb,
	note	text,
	PRIMARY KEY (a, b)
);
CREATE TABLE items_b (LIKE items_a INCLUDING ALL);
CREATE TABLE kv (id integer PRIMARY KEY, v text, n numeric);
CREATE TABLE trunc_ignore (id integer PRIMARY KEY, v text, op text, lsn bigint, at timestamptz);
CREATE TABLE trunc_apply (LIKE trunc_ignore INCLUDING ALL);
CREATE TABLE pkchg (id integer PRIMARY KEY, v text CHECK (v <> 'bad'));
CREATE TABLE pkref (id integer REFERENCES pkchg);
CREATE TABLE dec (id integer PRIMARY KEY, d0 numeric, d2 numeric(12,2), d10 numeric, v numeric, n text);
EOS

# ---- the Debezium workload, from a model of the source table -------------

my @bs = ('x', 'y', "\x{65e5}\x{672c}", "caf\x{e9}");
my @notes = ('plain', "\x{e9}l\x{e8}ve \x{1F600}", "line\nbreak", 'quote " and \\', '');
my %state;						# "a\tb" => row
my @msgs = map { [] } 1 .. $nparts;	# per partition: { key, value }
my @bad;						# payloads of the expected dead letters
my @maybe;						# [ payload, key, i ]: a row violating a CHECK
my %touched;					# key => the last change to it
my $changes = 0;				# what the counters must add up to
my $lsn = 1000;

sub part_of { return unpack('%32C*', join("\t", @{ $_[0] })) % $nparts }
sub key_id { return join("\t", @{ $_[0] }) }

sub rand_row
{
	my ($k) = @_;
	return {
		a => $k->[0] + 0,
		b => $k->[1],
		qty => int(rand(1000)),
		price => rand() < 0.2 ? undef : sprintf('%.2f', rand(10000)),
		at => rand() < 0.2 ? undef
		: sprintf('2024-%02d-%02dT%02d:%02d:%02d.%03d%s', 1 + int(rand(12)), 1 + int(rand(28)),
			int(rand(24)), int(rand(60)), int(rand(60)), int(rand(1000)),
			(rand() < 0.5 ? 'Z' : '+02:00')),
		doc => rand() < 0.3 ? undef : { n => int(rand(10)), tags => [ 'p', "\x{e9}" ] },
		note => rand() < 0.2 ? undef : $notes[ int(rand(@notes)) ],
	};
}

sub wrap
{
	my ($payload) = @_;
	return $payload if rand() < 0.5;
	return { schema => { type => 'struct', optional => JSON::PP::false }, payload => $payload };
}

# One record into the key's partition; $value undef is a tombstone.
sub emit
{
	my ($k, $value, $raw) = @_;
	my $key = $json->encode(wrap({ a => $k->[0] + 0, b => $k->[1] }));
	my $v = defined $raw ? $raw : defined $value ? $json->encode($value) : '';
	push @{ $msgs[ part_of($k) ] }, { key => $key, value => $v };
	return $v;
}

sub event
{
	my ($op, $before, $after) = @_;
	return wrap({
		op => $op, before => $before, after => $after, ts_ms => 1_700_000_000_000 + $lsn,
		source => { connector => 'postgresql', lsn => $lsn++, table => 'items' } });
}

sub rand_key { return [ 1 + int(rand(60)), $bs[ int(rand(@bs)) ] ] }

# a key absent from the model, in partition $part if given
sub free_key
{
	my ($part) = @_;
	for (1 .. 1000)
	{
		my $k = rand_key();
		next if exists $state{ key_id($k) };
		return $k if !defined $part || part_of($k) == $part;
	}
	return undef;
}

for my $i (1 .. $nchanges)
{
	my $k = rand_key();
	my $id = key_id($k);
	my $old = $state{$id};
	my $r = rand();
	my $prev = $touched{$id};

	$touched{$id} = $i;
	if (!defined $old)
	{
		if ($r < 0.85)
		{
			my $row = rand_row($k);
			emit($k, event($i < $nchanges / 10 ? 'r' : 'c', undef, $row));
			$state{$id} = $row;
		}
		else
		{
			# a delete of a row that is not there: no error, counted
			emit($k, event('d', undef, undef));
			emit($k, undef);
			$changes++;
		}
		$changes++;
	}
	elsif ($r < 0.60)
	{
		my $row = rand_row($k);
		emit($k, event('u', rand() < 0.5 ? undef : $old, $row));
		$state{$id} = $row;
		$changes++;
	}
	elsif ($r < 0.75)
	{
		emit($k, event('d', rand() < 0.5 ? { a => $k->[0] + 0, b => $k->[1] } : $old, undef));
		emit($k, undef);
		delete $state{$id};
		$changes += 2;
	}
	elsif ($r < 0.85)
	{
		# Debezium's primary key change: delete, tombstone, create
		my $nk = free_key() // next;
		my $row = rand_row($nk);
		$touched{ key_id($nk) } = $i;
		emit($k, event('d', $old, undef));
		emit($k, undef);
		emit($nk, event('c', undef, $row));
		delete $state{$id};
		$state{ key_id($nk) } = $row;
		$changes += 3;
	}
	elsif ($r < 0.93)
	{
		# an update whose full "before" has the old key: one record, two
		# changes (delete the old key, insert the new); same partition, as
		# both keys' other changes must stay in order
		my $nk = free_key(part_of($k)) // next;
		my $row = rand_row($nk);
		$touched{ key_id($nk) } = $i;
		emit($nk, event('u', $old, $row));
		delete $state{$id};
		$state{ key_id($nk) } = $row;
		$changes += 2;
	}
	else
	{
		# A malformed envelope is always a dead letter.  A row that violates
		# a constraint is one when it is its key's latest change in its
		# batch; a later change of the key in the same batch supersedes it.
		my $kind = int(rand(5));
		my $v =
			$kind == 0 ? emit($k, { before => undef, after => rand_row($k), source => {} })
		  : $kind == 1 ? emit($k, event('x', undef, rand_row($k)))
		  : $kind == 2 ? emit($k, event('u', undef, [ 1, 2 ]))
		  : $kind == 3 ? emit($k, undef, '{"op": "u", "after": {"a": ' . $k->[0] . ', oops')
		  :              emit($k, event('u', undef, { %{ rand_row($k) }, qty => -1 }));
		if ($kind < 4)
		{
			push @bad, $v;
			$touched{$id} = $prev;
		}
		else
		{
			push @maybe, [ $v, $id, $i ];
		}
		$changes++;
	}
}
# a CHECK violation that no later change of its key follows must die
push @bad, map { $_->[0] } grep { $touched{ $_->[1] } == $_->[2] } @maybe;
my @optional = map { $_->[0] } grep { $touched{ $_->[1] } != $_->[2] } @maybe;
my $nmsgs = 0;
$nmsgs += @$_ for @msgs;
note("Debezium workload: $nmsgs records, $changes changes, "
	  . scalar(keys %state) . ' rows at the end, ' . scalar(@bad) . ' bad records');

# the first chunk of each partition before the pipelines start, the rest
# between crashes
sub produce_chunk
{
	my ($c) = @_;
	for my $p (0 .. $nparts - 1)
	{
		my $all = $msgs[$p];
		my $per = int((@$all + $chunks - 1) / $chunks);
		my @slice = grep { defined } @$all[ $c * $per .. ($c + 1) * $per - 1 ];
		$kafka->kcat_produce('t060_dbz', \@slice, partition => $p, empty_is_null => 1)
		  if @slice;
	}
}
produce_chunk(0);

EoTest::create_pipeline($node,
	name => 'dbz_a', brokers => $kafka->brokers, topic => 't060_dbz',
	target => 'public.items_a', envelope => 'debezium', batch_size => \'100');
EoTest::create_pipeline($node,
	name => 'dbz_b', brokers => $kafka->brokers, topic => 't060_dbz',
	target => 'public.items_b', envelope => 'debezium', batch_size => \'700',
	workers => \'2', synchronous_commit => \'false');

# ---- crashes while the rest arrives ----------------------------------------

my @plan = ('worker', 'worker', 'postmaster', 'worker', 'postmaster');
for my $c (1 .. $chunks - 1)
{
	produce_chunk($c);
	sleep(0.2 + rand(1.0));
	my $what = $plan[ $c - 1 ];
	if ($what eq 'worker')
	{
		my $victim = (qw(dbz_a dbz_b))[ int(rand(2)) ];
		my $pid = EoTest::wait_worker($node, $victim, undef, timeout => 60);
		ok(defined $pid && kill('KILL', $pid), "kill -9 worker of $victim (chunk $c)");
		ok(defined EoTest::wait_worker($node, $victim, $pid, timeout => 60),
			"$victim has a new worker");
	}
	else
	{
		my $r = EoTest::crash_postmaster($node);
		ok($r->{started} && !$r->{orphans}, "kill -9 postmaster and restart (chunk $c)");
	}
}

# ---- the check ---------------------------------------------------------------

sub processed_sql
{
	my ($name) = @_;
	return "SELECT state, lag, rows_inserted + rows_updated + rows_deleted + duplicates_skipped + dead_letters "
	  . "FROM eo_ingest.pipeline_status WHERE name = '$name'";
}

sub check_table { return EoTest::check_table_rows($node, @_) }

# The dead letters are the records of @$bad, and some of @$optional.
sub check_dead_letters
{
	my ($name, $bad, $optional) = @_;
	# payloads hold no newline: JSON escapes it
	my @dead = split /\n/, $node->safe_psql('postgres',
		"SELECT convert_from(payload, 'UTF8') FROM eo_ingest.dead_letters WHERE pipeline = '$name'");
	my %left;
	$left{$_}++ for @dead;
	my @missing = grep { $left{$_}-- <= 0 } @$bad;
	for my $v (@{ $optional // [] })
	{
		$left{$v}-- if $left{$v};
	}
	my @other = grep { $left{$_} > 0 } keys %left;
	my $ok = is(scalar(@missing) . ' missing, ' . scalar(@other) . ' unexpected', '0 missing, 0 unexpected',
		"$name: " . scalar(@dead) . ' dead letters: the ' . scalar(@$bad) . ' bad records'
		  . ($optional ? ' and some of ' . scalar(@$optional) . ' superseded invalid rows' : ''));
	diag("missing: $missing[0]") if @missing;
	diag("unexpected: $other[0]") if @other;
	return $ok;
}

for my $name (qw(dbz_a dbz_b))
{
	ok(EoTest::wait_for($node, processed_sql($name), "running|0|$changes", 300),
		"$name caught up: $changes changes counted")
	  or EoTest::diag_status($node);
	EoTest::check_offsets($node, $name, $kafka, 't060_dbz', $nparts);
	check_dead_letters($name, \@bad, \@optional);
}
check_table('items_a', \%state, 'dbz_a');
check_table('items_b', \%state, 'dbz_b');
my ($ins, $upd, $del) = split /\|/, $node->safe_psql('postgres',
	"SELECT rows_inserted, rows_updated, rows_deleted FROM eo_ingest.pipeline_status WHERE name = 'dbz_a'");
note("dbz_a: $ins inserted, $upd updated, $del deleted");
ok($ins - $del == scalar(keys %state), "dbz_a: inserted $ins - deleted $del = rows in the table");

# Replaying every offset yields the same table.
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('dbz_a')");
$node->safe_psql('postgres', "SELECT eo_ingest.reset_offsets('dbz_a', 'earliest')");
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('dbz_a')");
ok(EoTest::wait_for($node, processed_sql('dbz_a'), 'running|0|' . 2 * $changes, 300),
	'dbz_a replayed the whole topic');
check_table('items_a', \%state, 'dbz_a after replay');

# ---- an upsert topic: text keys, tombstones, a row without its key --------

my %kv;
my @kv_bad;
my @kv_maybe;
my %kv_touched;
my @kvmsgs = ([], []);
my $kv_changes = 0;
for my $i (1 .. 3000)
{
	my $id = 1 + int(rand(200));
	my $r = rand();
	my ($value, $raw);
	my $prev = $kv_touched{$id};
	$kv_touched{$id} = $i;
	if ($r < 0.2)
	{
		delete $kv{$id};
	}
	elsif ($r < 0.97)
	{
		my $row = { id => $id, v => "v$i \x{e9}", n => rand() < 0.2 ? undef : sprintf('%.3f', rand(100)) };
		$kv{$id} = $row;
		# the key identifies the row: the value may leave the id out
		my %val = %$row;
		delete $val{id} if rand() < 0.3;
		$value = \%val;
	}
	else
	{
		if (rand() < 0.5)
		{
			$raw = '{"v": "broken';
			push @kv_bad, $raw;
			$kv_touched{$id} = $prev;
		}
		else
		{
			$raw = '{"id": ' . $id . ', "n": "not a number"}';
			push @kv_maybe, [ $raw, $id, $i ];
		}
	}
	my $v = defined $raw ? $raw : defined $value ? $json->encode($value) : '';
	push @{ $kvmsgs[ $id % 2 ] }, { key => $id, value => $v };
	$kv_changes++;
}
push @kv_bad, map { $_->[0] } grep { $kv_touched{ $_->[1] } == $_->[2] } @kv_maybe;
my @kv_optional = map { $_->[0] } grep { $kv_touched{ $_->[1] } != $_->[2] } @kv_maybe;
$kafka->kcat_produce('t060_upsert', $kvmsgs[$_], partition => $_, empty_is_null => 1) for 0 .. 1;
EoTest::create_pipeline($node,
	name => 'kv', brokers => $kafka->brokers, topic => 't060_upsert',
	target => 'public.kv', envelope => 'upsert', batch_size => \'250',
	columns => '{"id": "$key"}');
my $kv_pid = EoTest::wait_worker($node, 'kv', undef, timeout => 60);
kill 'KILL', $kv_pid if defined $kv_pid;
ok(EoTest::wait_for($node, processed_sql('kv'), "running|0|$kv_changes", 300),
	"kv caught up: $kv_changes changes counted")
  or EoTest::diag_status($node);
check_table('kv', \%kv, 'upsert');
check_dead_letters('kv', \@kv_bad, \@kv_optional);

# ---- truncate events ---------------------------------------------------------

my @tmsgs;
push @tmsgs, { key => "{\"id\":$_}", value => $json->encode(event('c', undef, { id => $_, v => "r$_" })) }
  for 1 .. 10;
push @tmsgs, { key => '', value => $json->encode(event('t', undef, undef)) };
push @tmsgs, { key => "{\"id\":$_}", value => $json->encode(event('c', undef, { id => $_, v => "s$_" })) }
  for 11 .. 12;
push @tmsgs, { key => '{"id":11}', value => $json->encode(event('d', { id => 11 }, undef)) };
push @tmsgs, { key => '{"id":3}', value => $json->encode(event('u', undef, { id => 3, v => 'late' })) };
$kafka->kcat_produce('t060_trunc', \@tmsgs, partition => 0, empty_is_null => 1);
# the last event of each key that stays: its op, source.lsn and ts_ms
my %meta;
for my $m (@tmsgs)
{
	my $e = $json->decode($m->{value});
	$e = $e->{payload} if exists $e->{payload};
	next if $e->{op} eq 't';
	my $id = ($e->{after} // $e->{before})->{id};
	$meta{$id} = "$e->{op}:$e->{source}{lsn}:$e->{ts_ms}";
}
delete $meta{11};
EoTest::create_pipeline($node,
	name => 'trunc_ignore', brokers => $kafka->brokers, topic => 't060_trunc',
	target => 'public.trunc_ignore', envelope => 'debezium',
	columns => '{"op": "$op", "lsn": "$source.lsn", "at": "$ts_ms"}');
EoTest::create_pipeline($node,
	name => 'trunc_apply', brokers => $kafka->brokers, topic => 't060_trunc',
	target => 'public.trunc_apply', envelope => 'debezium', on_truncate => 'truncate');
for my $name (qw(trunc_ignore trunc_apply))
{
	ok(EoTest::wait_for($node,
		"SELECT state, lag FROM eo_ingest.pipeline_status WHERE name = '$name'", 'running|0', 120),
		"$name caught up");
}
is($node->safe_psql('postgres', "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM trunc_ignore"),
	join(',', map { "$_=" . ($_ == 3 ? 'late' : "r$_") } 1 .. 10) . ',12=s12',
	'on_truncate ignore: the truncate event changes nothing');
is($node->safe_psql('postgres', "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM trunc_apply"),
	'3=late,12=s12', 'on_truncate truncate: rows before the event are gone, later ones applied');
is($node->safe_psql('postgres',
	"SELECT string_agg(id || '=' || op || ':' || lsn || ':' || (extract(epoch FROM at) * 1000)::bigint, ',' ORDER BY id) FROM trunc_ignore"),
	join(',', map { "$_=$meta{$_}" } sort { $a <=> $b } keys %meta),
	'$op, $source.lsn and $ts_ms (as timestamptz) of each row\'s last event');
# 11 is inserted and deleted, or never inserted if both land in one batch
my ($t_ins, $t_del) = split /\|/, $node->safe_psql('postgres',
	"SELECT rows_inserted, rows_deleted FROM eo_ingest.pipeline_status WHERE name = 'trunc_apply'");
ok($t_del >= 10 && $t_ins - $t_del == 2,
	"trunc_apply: $t_ins inserted - $t_del deleted (10 of them by the truncate) = 2 rows");

# ---- key changes that fail on one half ---------------------------------------

sub pk_event
{
	my ($op, $before, $after) = @_;
	my $k = $after // $before;
	return { key => "{\"id\":$k->{id}}", value => $json->encode(event($op, $before, $after)) };
}
$kafka->kcat_produce('t060_pk', [ map { pk_event('c', undef, { id => $_, v => "r$_" }) } 1 .. 6 ],
	partition => 0);
EoTest::create_pipeline($node,
	name => 'pkchg', brokers => $kafka->brokers, topic => 't060_pk',
	target => 'public.pkchg', envelope => 'debezium');
ok(EoTest::wait_for($node, processed_sql('pkchg'), 'running|0|6', 120), 'pkchg: first rows applied');
$node->safe_psql('postgres', 'INSERT INTO pkref VALUES (5)');
my @pkbad = (
	pk_event('u', { id => 1, v => 'r1' }, { id => 10, v => 'bad' }),	# new row fails its CHECK
	pk_event('u', { id => 5, v => 'r5' }, { id => 50, v => 'ok50' }),	# old row still referenced
);
# one batch: the bad key changes among good ones
$kafka->kcat_produce('t060_pk', [
	pk_event('u', { id => 2, v => 'r2' }, { id => 20, v => 'ok20' }),
	$pkbad[0],
	pk_event('u', undef, { id => 6, v => 's6' }),
	$pkbad[1],
	pk_event('c', undef, { id => 7, v => 'r7' }) ], partition => 0);
ok(EoTest::wait_for($node, processed_sql('pkchg'), 'running|0|12', 120),
	'pkchg: every record counted (a key change twice, a dead letter once)');
is($node->safe_psql('postgres', "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM pkchg"),
	'1=r1,3=r3,4=r4,5=r5,6=s6,7=r7,20=ok20',
	'a key change that fails on either half leaves its old row and adds no new one; the rest applies');
check_dead_letters('pkchg', [ map { $_->{value} } @pkbad ]);

# ---- precise decimals ----------------------------------------------------------

# base64 of the big-endian two's complement bytes of an integer's text
sub b64_int
{
	my $n = Math::BigInt->new($_[0]);
	my $len = 1;
	$len++ while $n < -Math::BigInt->new(2)->bpow(8 * $len - 1)
	  || $n >= Math::BigInt->new(2)->bpow(8 * $len - 1);
	$n += Math::BigInt->new(2)->bpow(8 * $len) if $n < 0;
	my $hex = substr($n->as_hex, 2);
	$hex = ('0' x (2 * $len - length($hex))) . $hex;
	return MIME::Base64::encode_base64(pack('H*', $hex), '');
}

# the exact text of unscaled * 10^-scale
sub scaled
{
	my ($u, $scale) = @_;
	my $neg = $u =~ s/^-//;
	$u = ('0' x ($scale + 1 - length($u))) . $u if length($u) <= $scale;
	substr($u, -$scale, 0) = '.' if $scale > 0;
	return ($neg ? '-' : '') . $u;
}

my $decimal = sub {
	my ($f, $scale) = @_;
	return { type => 'bytes', optional => JSON::PP::true, name => 'org.apache.kafka.connect.data.Decimal',
		version => 1, parameters => { scale => "$scale", 'connect.decimal.precision' => '40' }, field => $f };
};
my $row_schema = { type => 'struct', optional => JSON::PP::true, name => 'dbz.public.dec.Value', fields => [
	{ type => 'int32', optional => JSON::PP::false, field => 'id' },
	$decimal->('d0', 0), $decimal->('d2', 2), $decimal->('d10', 10),
	{ type => 'struct', optional => JSON::PP::true, name => 'io.debezium.data.VariableScaleDecimal', version => 1,
	  fields => [ { type => 'int32', optional => JSON::PP::false, field => 'scale' },
				  { type => 'bytes', optional => JSON::PP::false, field => 'value' } ], field => 'v' },
	{ type => 'string', optional => JSON::PP::true, field => 'n' } ] };
my $dec_schema = { type => 'struct', optional => JSON::PP::false, name => 'dbz.public.dec.Envelope', fields => [
	{ %$row_schema, field => 'before' }, { %$row_schema, field => 'after' },
	{ type => 'string', optional => JSON::PP::false, field => 'op' } ] };
my $big = '98765432109876543210987654321098765432109876543210123';
# id => [d0, d2, d10 unscaled; v as [unscaled, scale]], undef for null
my %dec = (
	1 => [ '0', '0', '0', [ '0', 0 ] ],
	2 => [ '123', '12345', '12345678901', [ '-5', 3 ] ],
	3 => [ '-1', '-12345', '-1', [ '-128', 0 ] ],
	4 => [ '128', '-129', '255', [ '32768', 1 ] ],
	5 => [ $big, '-9999999999', "-$big", [ "-$big", 20 ] ],
	6 => [ '9223372036854775808', '-922337203685', '18446744073709551616', [ '340282366920938463463374607431768211456', 38 ] ],
	7 => [ undef, undef, undef, undef ],
);
my @scales = (0, 2, 10);
sub dec_row
{
	my ($id, $r) = @_;
	my %row = (id => $id, n => 'x');
	$row{ ('d0', 'd2', 'd10')[$_] } = defined $r->[$_] ? b64_int($r->[$_]) : undef for 0 .. 2;
	$row{v} = defined $r->[3] ? { scale => $r->[3][1], value => b64_int($r->[3][0]) } : undef;
	return \%row;
}
my @decmsgs = map {
	{ key => "{\"id\":$_}", value => $json->encode({ schema => $dec_schema,
		payload => { op => 'c', before => undef, after => dec_row($_, $dec{$_}) } }) }
} sort keys %dec;
# an update's before and after both decoded; then the new value counts
push @decmsgs, { key => '{"id":8}', value => $json->encode({ schema => $dec_schema,
	payload => { op => 'u', before => dec_row(8, [ '1', '1', '1', [ '1', 1 ] ]),
		after => dec_row(8, [ '-42', '4200', '7', [ '1', 9 ] ]) } }) };
$dec{8} = [ '-42', '4200', '7', [ '1', 9 ] ];
# without the wrapper there is no scale: numbers in strings land as before
push @decmsgs, { key => '{"id":9}', value => $json->encode({ op => 'c', before => undef,
	after => { id => 9, d0 => '17', d2 => '1.50', d10 => '0.25', v => '-3.125', n => 'AQI=' } }) };
# not base64, too long, a VariableScaleDecimal without its scale: dead letters
my @decbad = map { $json->encode({ schema => $dec_schema, payload => { op => 'c', before => undef, after => $_ } }) }
  ({ id => 10, d0 => '*not base64*', d2 => undef, d10 => undef, v => undef, n => 'x' },
   { id => 11, d0 => undef, d2 => undef, d10 => undef, v => { value => 'AQ==' }, n => 'x' },
   # longer than 65536 bytes: refused before its quadratic printing
   { id => 13, d0 => MIME::Base64::encode_base64("\x01" x 70000, ''), d2 => undef, d10 => undef, v => undef, n => 'x' });
# a schema jsonb refuses (a number beyond numeric's range) only kills its record
push @decbad, '{"schema":{"name":"org.apache.kafka.connect.data.Decimal","n":1e1000000},'
  . '"payload":{"op":"c","before":null,"after":{"id":12,"d0":"AQ=="}}}';
push @decmsgs, map { { key => '{"id":10}', value => $_ } } @decbad;
$kafka->kcat_produce('t060_dec', \@decmsgs, partition => 0);
EoTest::create_pipeline($node,
	name => 'dec', brokers => $kafka->brokers, topic => 't060_dec',
	target => 'public.dec', envelope => 'debezium');
ok(EoTest::wait_for($node, processed_sql('dec'), 'running|0|' . scalar(@decmsgs), 120),
	'dec: every record counted');
my @want;
for my $id (sort { $a <=> $b } keys %dec)
{
	my $r = $dec{$id};
	my @v = map { defined $r->[$_] ? scaled($r->[$_], $scales[$_]) : '' } 0 .. 2;
	push @want, join('|', $id, @v, defined $r->[3] ? scaled(@{ $r->[3] }) : '', 'x');
}
push @want, '9|17|1.50|0.25|-3.125|AQI=';
is($node->safe_psql('postgres', "SELECT id, d0, d2, d10, v, n FROM dec ORDER BY id"), join("\n", @want),
	'precise decimals (scale 0, 2, 10, variable; negative, zero, wider than 128 bits) land exactly');
check_dead_letters('dec', \@decbad);

$node->stop;
$kafka->stop;
done_testing();
