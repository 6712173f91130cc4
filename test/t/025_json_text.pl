
# The JSON scanner (src/json_scan.c) reads values as PostgreSQL does: every
# mapped value that lands equals what PostgreSQL's json operators read from
# the same record (strings de-escaped, numbers, literals and containers as
# their text, the last of duplicate keys), and every record it refuses is a
# dead letter whose error is PostgreSQL's own parser's.  The cases put
# escapes, control characters, quotes, multibyte characters and invalid
# escapes at every position of strings around the scanner's 8-byte words,
# escaped and near-miss field names, whitespace around every token, and
# invalid structure of every kind.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('json_text');

my $LONG = 'a_rather_long_field_name';
my (@cases, %dead);
my $n = 0;

# A record with the given fields (name => JSON text, in order); $fate is
# 'ok' (lands, values as PostgreSQL reads them), 'dead' (a dead letter with
# PostgreSQL's error) or 'special' (lands, checked on its own).
sub record
{
	my ($label, $fate, @fields) = @_;
	my $key = sprintf('%03d-%s', $n, $label);
	my $id = sprintf('"00000000-0000-4000-8000-%012d"', $n++);
	my @f = ('"id"', $id);
	while (my ($k, $v) = splice(@fields, 0, 2))
	{
		push @f, $k =~ /^"/ ? $k : "\"$k\"", $v;
	}
	my $json = '{' . join(',', map { "$f[2 * $_]:$f[2 * $_ + 1]" } 0 .. $#f / 2) . '}';
	return raw($key, $fate, $json);
}

sub raw
{
	my ($key, $fate, $json) = @_;
	push @cases, { key => $key, value => $json };
	$dead{$key} = 1 if $fate eq 'dead';
	return $key;
}

# --- strings: an escape or a character at every position of 18 bytes, in
# the mapped note, the mapped path a.b.c and an unmapped field
my @good_escapes = ('\n', '\"', '\\\\', '\/', '\b', '\f', '\r', '\t', '\u00e9', '\u20AC',
	'\uD83D\uDE00', '\u0041', "\xc3\xa9", "\xf0\x9f\x98\x80", "\x7f", '"' x 0);
my $i = 0;
for my $e (@good_escapes)
{
	for my $pos (0 .. 17)
	{
		my $s = '"' . ('x' x $pos) . $e . ('y' x (17 - $pos)) . '"';
		my $where = $i++ % 3;
		record("esc$pos", 'ok',
			$where == 0 ? (note => $s) : $where == 1 ? (a => "{\"b\":{\"c\":$s}}") : (junk => $s),
			$LONG => $s);
	}
}
# plain strings of every length from 0 to 40, and one of 3000 bytes
for my $len (0 .. 40, 3000)
{
	my $s = join('', map { chr(ord('a') + $_ % 26) } 0 .. $len - 1);
	record("len$len", 'ok', note => "\"$s\"", a => "{\"b\":{\"c\":\"$s$s\"}}");
}

# --- strings the scanner must refuse wherever they are: a control
# character, a bad or cut escape at every position
for my $bad ("\x01", "\x1f", "\t", "\n", '\x', '\u12', '\u00g0', '\U0041', '\\')
{
	for my $pos (0 .. 17)
	{
		my $s = '"' . ('x' x $pos) . $bad . ('y' x (17 - $pos)) . '"';
		record("bad$pos", 'dead', ($pos % 2 ? 'note' : 'junk') => $s);
	}
}
# escapes PostgreSQL cannot turn into text: refused in a mapped value,
# passed over (not de-escaped) in an unmapped one
for my $bad ('\u0000', '\ud800', '\udc00', '\ud83dx')
{
	for my $pos (0, 7, 8, 9, 16)
	{
		my $s = '"' . ('x' x $pos) . $bad . '"';
		record("mapped$pos", 'dead', note => $s);
		record("unmapped$pos", 'special', junk => $s, note => '"kept"');
	}
}
# a value cut inside a string, inside an escape, after a backslash
raw('cut1', 'dead', '{"id":"00000000-0000-4000-8000-999999999991","note":"abc');
raw('cut2', 'dead', '{"id":"00000000-0000-4000-8000-999999999992","note":"abc\u00');
raw('cut3', 'dead', '{"id":"00000000-0000-4000-8000-999999999993","note":"abcdefghijklmno\\');
raw('cut4', 'dead', '{"id":"00000000-0000-4000-8000-999999999994","note":"abcdefg');

# --- field names: escaped spellings of mapped names, near misses, names
# with quotes, duplicates (the last counts)
record('name-esc1', 'ok', '"n\u006fte"' => '"by escaped name"');
record('name-esc2', 'ok', '"\u006Eote"' => '"by escaped name 2"');
record('name-esc3', 'ok', '"\u0061"' => '{"\u0062":{"c":"path by escaped names"}}');
record('name-esc4', 'ok', '"a_rather_long_field_nam\u0065"' => '"long by escape"');
record('name-near', 'ok', 'a_rather_long_field_namf' => '"near"', 'a_rather_long_field_nam' => '"near"',
	'a_rather_long_field_names' => '"near"', not => '1', notes => '2', nota => '3');
record('name-quote', 'ok', '"no\"te"' => '"quoted name"', '"note\\\\"' => '"backslash name"');
record('dup', 'ok', note => '"first"', note => '"second"', $LONG => '1', $LONG => '[2]');
record('dup-nested', 'ok', a => '{"b":{"c":"first","c":"second"}}');
record('name-bad-esc', 'dead', '"n\u0000te"' => '"x"');
record('name-bad-esc-unmapped', 'special', note => '"kept"', junk => '{"\u0000":1}');

# --- numbers, literals and containers: their JSON text
my @values = ('0', '-0', '12', '1.5', '-1.5e10', '1E+2', '3e-7', '123456789012345678901234567890',
	'true', 'false', 'null', '[]', '{}', '[1, "a", {"b": null}]', '{"x":[1,2,{"y":"z"}],"w":"\u00e9"}',
	'""', '"\u00e9\n"');
for my $v (@values)
{
	record('value', 'ok', note => $v, obj => $v, a => "{\"b\":{\"c\":$v}}");
}
for my $v ('01', '1.', '-', '.5', '1e', '+1', '1.5.3', '0x10', 'tru', 'nul', 'truex', 'nullx',
	'falsey', '1a', '"a"b', '[1,]', '{"b":1,}', '[1 2]', '{"b" 1}', '{"b":}', '{,}', '{"b":1',
	'[', '}', '1]')
{
	record('bad-value', 'dead', note => $v);
	record('bad-value-unmapped', 'dead', junk => $v);
}

# --- whitespace around every token, and none
raw('ws', 'ok', qq( \t\n\r{ \t\n\r"id" \t\n\r: \t\n\r"00000000-0000-4000-8000-888888888881" \t\n\r, )
	  . qq(\t\n\r"note"\r\n:\r\n"spaced"\n,\n"obj"\t:\t[ 1 , { "x" : null } ]\t,\t"a":{"b" :{ "c" : 5 } } \t\n\r} \t\n\r));
raw('ws-bad', 'dead', qq({"id":"00000000-0000-4000-8000-888888888882",\f"note":"x"}));
raw('after-end', 'dead', qq({"id":"00000000-0000-4000-8000-888888888883","note":"x"} x));
raw('two-objects', 'dead', qq({"id":"00000000-0000-4000-8000-888888888884"}{}));

$kafka->create_topic('jt', 1);
$kafka->kcat_produce('jt', \@cases);

$node->safe_psql('postgres', <<"EOS");
CREATE TABLE public.jt (
	event_id	uuid PRIMARY KEY,
	note		text,
	deep		text,
	long_name	text,
	raw			jsonb,
	body		text
);
CREATE FUNCTION public.jsonb_detail(t text) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE
	d text;
BEGIN
	PERFORM t::jsonb;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN d;
END
\$\$;
EOS
EoTest::create_pipeline($node, name => 'jt', brokers => $kafka->brokers, topic => 'jt',
	target => 'public.jt', event_id => 'id', batch_size => 100,
	columns => qq({"event_id": "id", "note": "note", "deep": "a.b.c", "long_name": "$LONG", )
	  . '"raw": "obj", "body": "$value"}');
EoTest::wait_caught_up($node, 'jt', scalar @cases);

my @special = grep { /unmapped/ && !$dead{$_} } map { $_->{key} } @cases;
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.jt'),
	@cases - keys(%dead), 'every record PostgreSQL reads landed');
is($node->safe_psql('postgres', <<'EOS'), '', 'every landed value is what PostgreSQL reads from the record');
SELECT string_agg(event_id::text, ', ') FROM public.jt
 WHERE position('\u0000' in body) = 0 AND body !~ '\\ud[89ab]|\\udc'
   AND (note IS DISTINCT FROM body::json ->> 'note'
	 OR deep IS DISTINCT FROM body::json #>> '{a,b,c}'
	 OR long_name IS DISTINCT FROM body::json ->> 'a_rather_long_field_name'
	 OR raw IS DISTINCT FROM CASE WHEN json_typeof(body::json -> 'obj') IS DISTINCT FROM 'null'
								  THEN (body::json -> 'obj')::jsonb END)
EOS
is($node->safe_psql('postgres', <<'EOS'), scalar(@special) . '|' . scalar(@special),
SELECT count(*), count(*) FILTER (WHERE note = 'kept') FROM public.jt
 WHERE position('\u0000' in body) > 0 OR body ~ '\\ud[89ab]|\\udc'
EOS
	'escapes PostgreSQL cannot turn into text pass in unmapped values');
ok($node->safe_psql('postgres', 'SELECT count(*) FILTER (WHERE note IS NOT NULL) > 100 AND '
		  . 'count(*) FILTER (WHERE deep IS NOT NULL) > 100 AND count(*) FILTER (WHERE raw IS NOT NULL) > 10 '
		  . 'FROM public.jt') eq 't', 'the cases filled every mapped column');

is($node->safe_psql('postgres', <<'EOS'), join(',', sort keys %dead), 'the refused records are dead letters');
SELECT string_agg(convert_from(key, 'UTF8'), ',' ORDER BY convert_from(key, 'UTF8') COLLATE "C")
  FROM eo_ingest.dead_letters WHERE pipeline = 'jt'
EOS
is($node->safe_psql('postgres', <<'EOS'), '', 'each with PostgreSQL\'s own error and SQLSTATE 22P02');
SELECT string_agg(convert_from(key, 'UTF8') || ': ' || sqlstate || ' ' || error, E'\n')
  FROM eo_ingest.dead_letters WHERE pipeline = 'jt'
   AND (sqlstate <> '22P02'
		OR error IS DISTINCT FROM 'invalid JSON: ' || public.jsonb_detail(convert_from(payload, 'UTF8')))
EOS

$node->stop;
$kafka->stop;
done_testing();
