
# Record-level errors: every poison record of a batch lands in
# eo_ingest.dead_letters exactly once, with its partition, offset, key, the
# exact bytes of its value, the error and its SQLSTATE, while every good
# record of the same batch lands in the target.  And the bisection that finds
# a bad record costs about 2 log2(n) subtransactions, not n.  Both insert
# paths are checked: INSERT ... ON CONFLICT (a target with a foreign key) and
# the multi-insert fast path (plain targets, and the bisection run).

use strict;
use warnings;

use IPC::Run ();
use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('dead_letters',
	conf => "eo_ingest.retry_max_delay = '2s'");

# Raw records through kcat: the test producer writes only well-formed values.
sub kcat_produce { return $kafka->kcat_produce(@_) }

sub poison_id { return sprintf('0000dead-0000-4000-8000-%012x', shift) }

sub good_json
{
	my ($n, %over) = @_;
	my %v = (
		event_id => '"' . poison_id($n) . '"',
		seq => $n,
		customer_id => $n % 1000,
		amount => '"1.00"',
		note => "\"poison $n\"",
		created_at => '"2024-01-01T00:00:00.000Z"',
		%over);
	return '{' . join(',', map { "\"$_\":$v{$_}" } grep { defined $v{$_} }
		  qw(event_id seq customer_id amount note created_at)) . '}';
}

# Random letters and digits: pglz cannot shrink them below the btree limit.
my $big = join('', map { ('a' .. 'z', 'A' .. 'Z', 0 .. 9)[ int(rand(62)) ] } 1 .. 4000);

# key => [value, expected SQLSTATE, error pattern]
my @poison = (
	[ 'malformed', '{"event_id":"' . poison_id(1) . '","seq":1,"customer_id":', '22P02', qr/invalid JSON/ ],
	[ 'not-an-object', '[1,2,3]', '22P02', qr/not a JSON object/ ],
	[ 'failed-cast', good_json(2, seq => '"abc"'), '22P02', qr/invalid input syntax for type integer/ ],
	[ 'out-of-range', good_json(3, seq => '99999999999'), '22003', qr/out of range/ ],
	[ 'bad-uuid', good_json(4, event_id => '"not-a-uuid"'), '22P02', qr/uuid/ ],
	[ 'bad-timestamp', good_json(5, created_at => '"2024-13-45T00:00:00Z"'), '22008', qr/out of range|date\/time/ ],
	[ 'not-null', good_json(6, seq => 'null'), '23502', qr/null value in column "seq"/ ],
	[ 'check', good_json(7, amount => '"-1.00"'), '23514', qr/check constraint/ ],
	[ 'foreign-key', good_json(8, customer_id => 5000), '23503', qr/foreign key/ ],
	[ 'oversized', good_json(9, note => "\"$big\""), '54000', qr/index row/ ],
	[ 'empty', '', '22P02', qr/empty/ ],
	[ 'invalid-utf8', good_json(10, note => "\"caf\xc3\x28\""), '22021', qr/encoding/ ],
	[ 'no-event-id', good_json(11, event_id => undef), '23502', qr/event id/ ],
);
my @tombstone = ([ 'tombstone', undef, '22004', qr/tombstone/ ]);

# --- the target: constraints that good records satisfy and poison breaks

# dl_orders has a foreign key, hence a trigger: its rows go through INSERT
# ... ON CONFLICT.  dl_plain has the same columns and constraints but no
# foreign key: its rows go through the multi-insert fast path (direct.c),
# where the foreign-key record is a good one.
$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.customers (id integer PRIMARY KEY);
INSERT INTO public.customers SELECT generate_series(0, 999);
CREATE TABLE public.dl_orders (
	event_id	uuid PRIMARY KEY,
	seq			integer NOT NULL,
	customer_id	integer REFERENCES public.customers,
	amount		numeric CHECK (amount >= 0),
	note		text,
	created_at	timestamptz
);
CREATE INDEX ON public.dl_orders (note);
CREATE TABLE public.dl_plain (LIKE public.dl_orders INCLUDING ALL);
EOS
EoTest::create_orders_table($node, 'public.bisect');
# A failed cast is found while decoding, before the write; a check constraint
# fails only in the write, which bisection must search.
$node->safe_psql('postgres', 'ALTER TABLE public.bisect ADD CHECK (seq >= 0)');

# --- one batch of good and poison records, all written before the pipeline

$kafka->create_topic('dl', 1);
my @good;
my $run = 0;
sub good_run
{
	my $m = $kafka->produce(topic => 'dl', count => 300, partition => 0,
		start_id => 1 + 1000 * $run, timestamp_base => EoTest::ts_base($run));
	$run++;
	push @good, @$m;
}
good_run();
kcat_produce('dl', [ map { { key => $_->[0], value => $_->[1] } } @poison ]);
# A good record with the event id of the 'check' poison record, later in the
# same batch: the poison record must not hide it (it was the dedup winner).
kcat_produce('dl', [ { key => 'good-dup-of-check', value => good_json(7) } ]);
good_run();
kcat_produce('dl', [ { key => 'tombstone', value => '' } ], empty_is_null => 1);
good_run();

my %sent = map { $_->[0] => $_ } @poison, @tombstone;
my $msgs = $kafka->kcat_consume('dl');
my %at;		# poison key => the record as read back
for my $m (@$msgs)
{
	$at{ $m->{key} } = $m if defined $m->{key} && $sent{ $m->{key} };
}
is(scalar @$msgs, scalar(@good) + keys(%sent) + 1, 'topic holds every good and poison record');
is_deeply([ map { $at{ $_->[0] } ? $at{ $_->[0] }{value} : 'missing' } @poison, @tombstone ],
	[ map { $_->[1] } @poison, @tombstone ],
	'poison records read back byte for byte (empty value empty, tombstone NULL)');

my $total = scalar(@good) + keys(%sent) + 1;
my %fk = map { $_->[0] => 1 } grep { $_->[0] eq 'foreign-key' } @poison;
for my $case (['dl', 'public.dl_orders', {}], ['dl_plain', 'public.dl_plain', \%fk])
{
	my ($pipe, $table, $good_here) = @$case;
	EoTest::create_pipeline($node, name => $pipe, brokers => $kafka->brokers,
		topic => 'dl', target => $table, batch_size => \'10000',
		batch_timeout => \'2000');
	EoTest::wait_caught_up($node, $pipe, $total);

	my $fk_id = poison_id(8);
	my $dup_id = poison_id(7);
	EoTest::check_rows($node, "(SELECT * FROM $table WHERE event_id NOT IN ('$fk_id', '$dup_id')) t",
		\@good, 'skip', label => "$pipe: every good record landed, row by row");
	is($node->safe_psql('postgres', "SELECT seq, amount, note FROM $table WHERE event_id = '$dup_id'"),
		'7|1.00|poison 7', "$pipe: the good duplicate of a poison record landed");
	is($node->safe_psql('postgres', "SELECT count(*) FROM $table WHERE event_id = '$fk_id'"),
		$good_here->{'foreign-key'} ? 1 : 0,
		"$pipe: the foreign-key record " . ($good_here->{'foreign-key'} ? 'landed' : 'did not land'));
	EoTest::check_counters($node, $pipe, $table, $total);
	EoTest::check_offsets($node, $pipe, $kafka, 'dl', 1);
	note("$pipe batches: "
		  . $node->safe_psql('postgres', "SELECT batches FROM eo_ingest.pipeline_status WHERE name = '$pipe'"));

	# Each poison record: exactly one dead letter at its offset, same key
	# and bytes, an error saying why and a data-error SQLSTATE.
	my %dl;
	for my $line (split /\n/, $node->safe_psql('postgres', <<"EOS"))
SELECT pipeline, partition, "offset", encode(key, 'hex'),
	   coalesce(encode(payload, 'hex'), '<NULL>'), sqlstate,
	   replace(error, E'\\n', ' ')
  FROM eo_ingest.dead_letters WHERE pipeline = '$pipe' ORDER BY "offset"
EOS
	{
		my ($p, $part, $off, $key, $payload, $state, $error) = split /\|/, $line, 7;
		$key = pack('H*', $key);
		$dl{$key}{n}++;
		$dl{$key}{row} = { pipeline => $p, partition => $part, offset => $off,
			payload => $payload, sqlstate => $state, error => $error };
	}
	my @expect = grep { !$good_here->{ $_->[0] } } @poison, @tombstone;
	is_deeply([ sort keys %dl ], [ sort map { $_->[0] } @expect ],
		"$pipe: dead letters are exactly the poison records");
	for my $p (@expect)
	{
		my ($key, $value, $state, $pattern) = @$p;
		my $d = $dl{$key} or next;
		my $r = $d->{row};
		is($d->{n}, 1, "$pipe $key: one dead letter");
		is_deeply([ $r->{pipeline}, $r->{partition}, $r->{offset} ],
			[ $pipe, 0, $at{$key}{offset} ], "$pipe $key: pipeline, partition and offset");
		is($r->{payload}, defined $value ? unpack('H*', $value) : '<NULL>',
			"$pipe $key: payload is the bytes sent");
		is($r->{sqlstate}, $state, "$pipe $key: SQLSTATE $state");
		like($r->{error}, $pattern, "$pipe $key: error says why ($r->{error})");
		ok($r->{sqlstate} =~ /^(22|23)...$|^54000$/, "$pipe $key: a data-error class");
	}
	is($node->safe_psql('postgres', "SELECT dead_letters FROM eo_ingest.pipeline_status WHERE name = '$pipe'"),
		scalar @expect, "$pipe: pipeline_status counts the dead letters");
}

# --- bisection cost: 10,000 records, one check violation in the middle

$kafka->create_topic('bisect', 1);
my @bgood = @{ $kafka->produce(topic => 'bisect', count => 5000, partition => 0,
		start_id => 100_001, timestamp_base => EoTest::ts_base(10)) };
kcat_produce('bisect', [ { key => 'bisect-bad', value => good_json(20, seq => '-1') } ]);
push @bgood, @{ $kafka->produce(topic => 'bisect', count => 4999, partition => 0,
		start_id => 105_001, timestamp_base => EoTest::ts_base(11)) };

# A pipeline NAME on topic NAME into public.NAME, with room for the whole
# topic in one batch: the good records land, the counters add up, and the
# dead letters come back as partition:offset:key:sqlstate.
sub one_batch_dead_letters
{
	my ($name, $good, $total, $label) = @_;
	EoTest::create_pipeline($node, name => $name, brokers => $kafka->brokers,
		topic => $name, target => "public.$name", batch_size => \'10000',
		batch_timeout => \'2000');
	EoTest::wait_caught_up($node, $name, $total);
	EoTest::check_rows($node, "public.$name", $good, 'skip', label => $label);
	EoTest::check_counters($node, $name, "public.$name", $total);
	return $node->safe_psql('postgres',
		"SELECT partition || ':' || \"offset\" || ':' || convert_from(key, 'UTF8') || ':' || sqlstate "
		  . "FROM eo_ingest.dead_letters WHERE pipeline = '$name' ORDER BY \"offset\"");
}

is(one_batch_dead_letters('bisect', \@bgood, 10_000, 'bisect: the 9,999 good records landed'),
	'0:5000:bisect-bad:23514', 'bisect: the one dead letter is the bad record at offset 5000');
my ($batches, $subx) = split /\|/, $node->safe_psql('postgres',
	"SELECT batches, subtransactions FROM eo_ingest.pipeline_status WHERE name = 'bisect'");
# Per batch one to decode and one try, then two per halving down to one
# record: 2 * ceil(log2 10000) = 28.
ok($subx >= 3 && $subx <= 28 + 2 * $batches,
	"bisect: $subx subtransactions in $batches batch(es), at most " . (28 + 2 * $batches));

# --- a deferred constraint is checked in the batch, not at its commit: the
# worker sets every constraint immediate, so the bad record is found by the
# bisection and dead-lettered (checked at commit, the whole batch would fail
# there and be retried for ever)

$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.deferred (LIKE public.dl_orders INCLUDING ALL);
ALTER TABLE public.deferred ADD FOREIGN KEY (customer_id) REFERENCES public.customers
	DEFERRABLE INITIALLY DEFERRED;
EOS
$kafka->create_topic('deferred', 1);
my @dgood = @{ $kafka->produce(topic => 'deferred', count => 20, partition => 0,
		start_id => 200_001, timestamp_base => EoTest::ts_base(12)) };
kcat_produce('deferred', [ { key => 'deferred-fk', value => good_json(30, customer_id => 5000) } ]);
is(one_batch_dead_letters('deferred', \@dgood, 21, 'deferred foreign key: the 20 good records landed'),
	'0:20:deferred-fk:23503', 'deferred foreign key: the bad record is a dead letter');

# A crash would restart every backend and hide behind the recovery; a worker
# fenced off here (one worker, no reset_offsets) would mean it lost track of
# its own offsets.
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was fenced off/,
	'server log: no crashed process, no fenced worker');

$node->stop;
$kafka->stop;
done_testing();
