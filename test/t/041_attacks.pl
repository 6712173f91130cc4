
# Classic attacks by an unprivileged role on another role's pipeline, with a
# real broker and running workers, so the workers' behaviour is exercised:
#   (a) functions and operators named like builtins (lower, now, =, +, ...)
#       in a schema early in search_path: neither the API functions nor the
#       workers may call them (the victim's and the attacker's roles both
#       have search_path = public, pg_catalog);
#   (b) a trigger on the victim's target (impossible without ownership) and a
#       trigger on the attacker's own target that, inside the worker, tries
#       SET ROLE, set_config('role'), SET SESSION AUTHORIZATION, ALTER ROLE,
#       writing the victim's table and eo_ingest's catalog: all refused, and
#       it runs as the attacker, never as a superuser;
#   (c) editing eo_ingest's tables directly, and through its internal C
#       functions: refused;
#   (d) a pipeline into a table the attacker may not insert into: refused.
# Each phase ends with the victim's target compared row by row with the
# producer's manifest (nothing extra, nothing missing) and its exact
# counters.  Then a pipeline into a hash-partitioned target ingests exactly
# once, and the victim purges its dead letters.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('t041v', 2);
$kafka->create_topic('t041a', 1);
$kafka->create_topic('t041p', 3);

my $node = EoTest::new_node('eo041');
my $VICTIM = 'eo_victim';
my $ATT = 'eo_att';
my $MARK = '00000000-0000-0000-0000-00000000a77a';	# the row attacks try to plant

$node->safe_psql('postgres', <<"EOS");
CREATE ROLE $VICTIM LOGIN;
CREATE ROLE $ATT LOGIN;
ALTER ROLE $VICTIM SET search_path = public, pg_catalog;
ALTER ROLE $ATT SET search_path = public, pg_catalog;
GRANT CREATE ON SCHEMA public TO $ATT;
EOS
EoTest::create_orders_table($node, 'public.victim_orders');
EoTest::create_orders_table($node, 'public.att_orders');
$node->safe_psql('postgres', <<"EOS");
ALTER TABLE public.victim_orders OWNER TO $VICTIM;
ALTER TABLE public.att_orders OWNER TO $ATT;
CREATE TABLE public.victim_parted (
	event_id	uuid PRIMARY KEY,
	seq			integer,
	customer_id	integer,
	amount		numeric,
	note		text,
	created_at	timestamptz
) PARTITION BY HASH (event_id);
CREATE TABLE public.victim_parted_0 PARTITION OF public.victim_parted FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE public.victim_parted_1 PARTITION OF public.victim_parted FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE public.victim_parted_2 PARTITION OF public.victim_parted FOR VALUES WITH (MODULUS 3, REMAINDER 2);
ALTER TABLE public.victim_parted OWNER TO $VICTIM;
ALTER TABLE public.victim_parted_0 OWNER TO $VICTIM;
ALTER TABLE public.victim_parted_1 OWNER TO $VICTIM;
ALTER TABLE public.victim_parted_2 OWNER TO $VICTIM;
EOS

# psql as a role; returns (exit code, stdout, stderr).
sub as_role
{
	my ($role, $sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role ]);
	return ($ret, $out, $err);
}

sub as_role_ok
{
	my ($role, $sql, $name) = @_;
	my ($ret, $out, $err) = as_role($role, $sql);
	ok($ret == 0, $name) or diag("exit $ret\n$out$err");
	return $out;
}

sub refused
{
	my ($role, $sql, $re, $name) = @_;
	my ($ret, $out, $err) = as_role($role, $sql);
	ok($ret != 0 && $err =~ $re, "refused: $name")
	  or diag("exit $ret\nstdout: $out\nstderr: $err");
	return;
}

my @mv;	# everything produced to the victim's topic
my $run = 0;
sub produce_victim
{
	my ($count, %o) = @_;
	my $m = $kafka->produce(topic => 't041v', count => $count, start_id => 1 + 10_000 * $run,
		dup_ratio => 0.1, seed => 4100 + $run, timestamp_base => EoTest::ts_base($run), %o);
	$run++;
	push @mv, @$m;
	return $m;
}

# The victim's table holds exactly what the victim's pipeline consumed, and
# its counters add up.
sub victim_intact
{
	my $label = shift;
	EoTest::wait_caught_up($node, 'victim', EoTest::committed_count(\@mv));
	EoTest::check_rows($node, 'public.victim_orders', \@mv, 'skip', label => "$label: victim_orders");
	EoTest::check_counters($node, 'victim', 'public.victim_orders', EoTest::committed_count(\@mv));
	is($node->safe_psql('postgres',
			"SELECT count(*) FROM public.victim_orders WHERE event_id = '$MARK'"),
		'0', "$label: the attacker's row is not in victim_orders");
	return;
}

# --- the victim's pipeline, with some dead letters
as_role_ok($VICTIM, "SELECT eo_ingest.create_pipeline(name => 'victim', brokers => '"
	  . $kafka->brokers . "', topic => 't041v', target => 'public.victim_orders', batch_size => 200)",
	'the victim creates a pipeline into its own table');
produce_victim(1_000, bad_every => 97);
victim_intact('before the attacks');
my $victim_id = $node->safe_psql('postgres', "SELECT id FROM eo_ingest.pipelines WHERE name = 'victim'");
my $victim_dead = $node->safe_psql('postgres',
	"SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline_id = $victim_id");
cmp_ok($victim_dead, '>', 0, "the victim has $victim_dead dead letters");
my $victim_offsets_sql = "SELECT string_agg(partition || ':' || next_offset, ',' ORDER BY partition)"
  . " FROM eo_ingest.offsets WHERE pipeline_id = $victim_id";

# --- (a) builtins shadowed in public, which both roles search first
my @shadows = (
	[ 'lower', 'text', 'text', 'pg_catalog.lower($1)' ],
	[ 'upper', 'text', 'text', 'pg_catalog.upper($1)' ],
	[ 'btrim', 'text', 'text', 'pg_catalog.btrim($1)' ],
	[ 'length', 'text', 'integer', 'pg_catalog.length($1)' ],
	[ 'left', 'text, integer', 'text', 'pg_catalog.left($1, $2)' ],
	[ 'now', '', 'timestamptz', 'pg_catalog.now()' ],
	[ 'jsonb_typeof', 'jsonb', 'text', 'pg_catalog.jsonb_typeof($1)' ],
	[ 'format', 'text', 'text', 'pg_catalog.format($1)' ],
	[ 'has_table_privilege', 'regclass, text', 'boolean', 'true' ],
	[ 'pg_has_role', 'name, regrole, text', 'boolean', 'true' ],
	[ 'att_texteq', 'text, text', 'boolean', 'pg_catalog.texteq($1, $2)' ],
	[ 'att_textne', 'text, text', 'boolean', 'pg_catalog.textne($1, $2)' ],
	[ 'att_textre', 'text, text', 'boolean', 'pg_catalog.textregexeq($1, $2)' ],
	[ 'att_int4eq', 'integer, integer', 'boolean', 'pg_catalog.int4eq($1, $2)' ],
	[ 'att_int84pl', 'bigint, integer', 'bigint', 'pg_catalog.int84pl($1, $2)' ],
	[ 'att_oideq', 'oid, oid', 'boolean', 'pg_catalog.oideq($1, $2)' ]);
my $shadow_sql = '';
for my $s (@shadows)
{
	my ($name, $args, $ret, $call) = @$s;
	my $i = 0;
	my $params = join(', ', map { 'a' . ++$i . " $_" } grep { $_ ne '' } split /,\s*/, $args);
	$shadow_sql .= <<"EOS";
CREATE FUNCTION public.$name($params) RETURNS $ret LANGUAGE plpgsql AS \$f\$
BEGIN
	RAISE WARNING 'eo041 shadow $name called as % (session %)', current_user, session_user;
	BEGIN
		EXECUTE 'ALTER ROLE $ATT SUPERUSER';
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	BEGIN
		EXECUTE 'INSERT INTO public.victim_orders (event_id, seq) VALUES (''$MARK'', -1)';
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	RETURN $call;
END
\$f\$;
EOS
}
$shadow_sql .= <<'EOS';
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.att_texteq);
CREATE OPERATOR public.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = public.att_textne);
CREATE OPERATOR public.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = public.att_textre);
CREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = public.att_int4eq);
CREATE OPERATOR public.+ (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = public.att_int84pl);
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.att_oideq);
EOS
as_role_ok($ATT, $shadow_sql, 'the attacker shadows builtins in public');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proowner = '$ATT'::regrole"),
	scalar(@shadows), 'the shadowing functions exist');

# Every API function, called by the victim (whose search_path puts public
# first), on its own pipeline.
as_role_ok($VICTIM, <<'EOS', 'the victim drives its pipeline through every API function');
SELECT eo_ingest.pause_pipeline('victim');
SELECT eo_ingest.alter_pipeline('victim', batch_size => 150, kafka_options => '{"client.id": "victim"}');
SELECT eo_ingest.reset_offsets('victim', '{"0": 0}');
SELECT eo_ingest.purge_dead_letters('victim', '-infinity');
SELECT eo_ingest.create_pipeline(name => 'victim_tmp', brokers => '127.0.0.1:1', topic => 'x',
	target => 'public.victim_orders', start_from => '2024-01-01 00:00:00+00', start => false,
	columns => '{"note": "note"}', kafka_options => '{"fetch.wait.max.ms": 10}');
SELECT eo_ingest.drop_pipeline('victim_tmp');
SELECT count(*) FROM eo_ingest.pipeline_status;
SELECT count(*) FROM eo_ingest.partition_progress;
EOS
# reset_offsets moved partition 0 back to 0: the victim's pipeline reads it
# again and the event ids absorb it.  Count what it will have processed.
my $p0 = grep { $_->{status} eq 'committed' && $_->{partition} == 0 } @mv;
as_role_ok($VICTIM, "SELECT eo_ingest.resume_pipeline('victim')", 'the victim resumes');
EoTest::wait_caught_up($node, 'victim', EoTest::committed_count(\@mv) + $p0);
EoTest::check_rows($node, 'public.victim_orders', \@mv, 'skip', label => '(a) after re-reading partition 0');
@mv = (@mv, grep { $_->{status} eq 'committed' && $_->{partition} == 0 } @mv);
produce_victim(500);
EoTest::wait_caught_up($node, 'victim', EoTest::committed_count(\@mv));
EoTest::check_rows($node, 'public.victim_orders', \@mv, 'skip', label => '(a) victim_orders');

# --- (b) triggers
refused($ATT, <<'EOS', qr/must be owner of (table|relation) victim_orders|permission denied/,
CREATE FUNCTION public.att_plant() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN RETURN NEW; END $f$;
CREATE TRIGGER att_plant BEFORE INSERT ON public.victim_orders FOR EACH ROW EXECUTE FUNCTION public.att_plant();
EOS
	'a trigger on the victim\'s table');

my @tries = (
	'SET ROLE eo_victim',
	"SELECT pg_catalog.set_config('role', 'eo_victim', false)",
	'SET SESSION AUTHORIZATION eo_victim',
	"ALTER ROLE $ATT SUPERUSER",
	"GRANT $VICTIM TO $ATT",
	"INSERT INTO public.victim_orders (event_id, seq) VALUES ('$MARK', -2)",
	'DELETE FROM public.victim_orders',
	'UPDATE eo_ingest.offsets SET next_offset = 0',
	'DELETE FROM eo_ingest.dead_letters',
	'UPDATE eo_ingest.counters SET rows_inserted = 0',
	"INSERT INTO eo_ingest.pipelines (name, owner, brokers, topic, target) VALUES ('forged_w', '$VICTIM', 'x', 'x', 'public.victim_orders')",
	"SELECT eo_ingest.pause_pipeline('victim')",
	"SELECT eo_ingest.purge_dead_letters('victim')",
	"SELECT eo_ingest._catalog_update_pipeline($victim_id, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
	"SELECT eo_ingest._catalog_set_offsets($victim_id, '{0,1}', '{0,0}', true)",
	"SELECT eo_ingest._catalog_purge_dead_letters($victim_id, NULL)",
	"SELECT eo_ingest._catalog_delete_pipeline($victim_id)",
	"SELECT eo_ingest._catalog_insert_pipeline('forged_c', 'x', 'x', 'public.victim_orders', 'event_id', 'skip', 'json', NULL, 'earliest', 1, 1, 1, true, '{}', true)");
my $tries_sql = join(",\n\t\t", map { "\$q\$$_\$q\$" } @tries);
as_role_ok($ATT, <<"EOS", 'the attacker puts a trigger on its own target');
CREATE TABLE public.att_log (what text, outcome text, cur name, sess name, path text);
CREATE FUNCTION public.att_escalate() RETURNS trigger LANGUAGE plpgsql AS \$f\$
DECLARE
	s text;
BEGIN
	INSERT INTO public.att_log VALUES ('entry', 'entry', current_user, session_user, pg_catalog.current_setting('search_path'));
	PERFORM pg_catalog.set_config('search_path', 'public, pg_catalog', false);
	FOREACH s IN ARRAY ARRAY[
		$tries_sql] LOOP
		BEGIN
			EXECUTE s;
			INSERT INTO public.att_log VALUES (s, 'ok', current_user, session_user, pg_catalog.current_setting('search_path'));
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO public.att_log VALUES (s, SQLSTATE || ' ' || SQLERRM, current_user, session_user, pg_catalog.current_setting('search_path'));
		END;
	END LOOP;
	RETURN NULL;
END
\$f\$;
CREATE TRIGGER att_escalate AFTER INSERT ON public.att_orders FOR EACH STATEMENT EXECUTE FUNCTION public.att_escalate();
SELECT eo_ingest.create_pipeline(name => 'att', brokers => '@{[ $kafka->brokers ]}', topic => 't041a',
	target => 'public.att_orders', batch_size => 50);
EOS
my $ma = $kafka->produce(topic => 't041a', count => 300, seed => 4199, timestamp_base => EoTest::ts_base(50));
EoTest::wait_caught_up($node, 'att', EoTest::committed_count($ma));
EoTest::check_rows($node, 'public.att_orders', $ma, 'skip', label => "(b) the attacker's own pipeline still ingests");
is($node->safe_psql('postgres', "SELECT count(DISTINCT what) FROM public.att_log WHERE what <> 'entry'"), scalar(@tries),
	'the trigger ran inside the worker and tried everything')
  or diag($node->safe_psql('postgres', 'SELECT * FROM public.att_log'));
is($node->safe_psql('postgres', "SELECT string_agg(what || ' => ' || outcome, E'\\n') FROM public.att_log WHERE outcome = 'ok'"),
	'', '(b) every attempt from inside the worker failed');
is($node->safe_psql('postgres', 'SELECT string_agg(DISTINCT cur || \'/\' || sess, \',\') FROM public.att_log'),
	"$ATT/$ATT", '(b) the trigger ran as the attacker, in the attacker\'s session');
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM public.att_log WHERE what = 'entry'"), '>', 1,
	'(b) the trigger fired in several batches');
is($node->safe_psql('postgres', "SELECT string_agg(DISTINCT path, ',') FROM public.att_log WHERE what = 'entry'"),
	'pg_catalog, pg_temp', '(b) what the trigger SETs does not outlive its statement: search_path is pinned again on entry');
like($node->safe_psql('postgres', "SELECT outcome FROM public.att_log WHERE what = 'SET ROLE eo_victim'"),
	qr/^42501 permission denied to set role/, '(b) SET ROLE from the trigger: permission denied');
like($node->safe_psql('postgres', "SELECT outcome FROM public.att_log WHERE what LIKE 'UPDATE eo_ingest.offsets%'"),
	qr/^42501 permission denied for table offsets/, '(b) catalog writes from the trigger: permission denied');
produce_victim(300);
victim_intact('(b)');

# --- (c) the catalog, directly and through the internal functions
refused($ATT, "INSERT INTO eo_ingest.pipelines (name, owner, brokers, topic, target) VALUES ('forged', '$VICTIM', 'x', 'x', 'public.att_orders')",
	qr/permission denied for table pipelines/, 'a pipelines row owned by the victim');
refused($ATT, "INSERT INTO eo_ingest.pipelines (name, brokers, topic, target) VALUES ('forged', 'x', 'x', 'public.victim_orders')",
	qr/permission denied for table pipelines/, "a pipelines row of the attacker's targeting the victim's table");
refused($ATT, "UPDATE eo_ingest.pipelines SET target = 'public.victim_orders'",
	qr/permission denied for table pipelines/, "retargeting the attacker's own pipeline to the victim's table");
refused($ATT, 'UPDATE eo_ingest.offsets SET next_offset = 0',
	qr/permission denied for table offsets/, "moving the victim's offsets");
refused($ATT, "INSERT INTO eo_ingest.offsets (pipeline_id, partition, next_offset) VALUES ($victim_id, 5, 0)",
	qr/permission denied for table offsets/, "adding offsets to the victim's pipeline");
refused($ATT, 'DELETE FROM eo_ingest.dead_letters',
	qr/permission denied for table dead_letters/, "deleting the victim's dead letters");
refused($ATT, 'TRUNCATE eo_ingest.dead_letters',
	qr/permission denied for table dead_letters/, 'truncating dead_letters');
refused($ATT, "SELECT eo_ingest.purge_dead_letters('victim')",
	qr/must be owner of pipeline "victim"/, "purging the victim's dead letters");
refused($ATT, "SELECT eo_ingest._catalog_purge_dead_letters($victim_id, NULL)",
	qr/must be owner of pipeline "victim"/, "purging the victim's dead letters through the C function");
refused($ATT, "SELECT eo_ingest._catalog_set_offsets($victim_id, '{0,1}', '{0,0}', true)",
	qr/must be owner of pipeline "victim"/, "moving the victim's offsets through the C function");
refused($ATT, "SELECT eo_ingest._catalog_update_pipeline($victim_id, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
	qr/must be owner of pipeline "victim"/, 'pausing the victim\'s pipeline through the C function');
refused($ATT, "SELECT eo_ingest._catalog_delete_pipeline($victim_id)",
	qr/must be owner of pipeline "victim"/, 'dropping the victim\'s pipeline through the C function');
refused($ATT, "SELECT eo_ingest.reset_offsets('victim', '{\"0\": 0}')",
	qr/must be owner of pipeline "victim"/, "reset_offsets on the victim's pipeline");
refused($ATT, "SELECT eo_ingest.drop_pipeline('victim')",
	qr/must be owner of pipeline "victim"/, "drop_pipeline on the victim's pipeline");
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline_id = $victim_id"),
	$victim_dead, "(c) the victim's dead letters are all there");
is($node->safe_psql('postgres', "SELECT enabled FROM eo_ingest.pipelines WHERE id = $victim_id"),
	't', "(c) the victim's pipeline is still enabled");
produce_victim(300);
victim_intact('(c)');

# --- (d) a pipeline into a table the attacker may not insert into
refused($ATT, "SELECT eo_ingest.create_pipeline(name => 'att_steal', brokers => '@{[ $kafka->brokers ]}', topic => 't041v', target => 'public.victim_orders')",
	qr/permission denied for table/, "a pipeline into the victim's table");
refused($ATT, "SELECT eo_ingest._catalog_insert_pipeline('att_steal', '@{[ $kafka->brokers ]}', 't041v', 'public.victim_orders', 'event_id', 'skip', 'json', NULL, 'earliest', 100, 100, 1, true, '{}', true)",
	qr/permission denied for table victim_orders/, "a pipeline into the victim's table through the C function");
$node->safe_psql('postgres', "GRANT SELECT, INSERT ON public.victim_orders TO $ATT");
refused($ATT, "SELECT eo_ingest.create_pipeline(name => 'att_upd', brokers => '@{[ $kafka->brokers ]}', topic => 't041v', target => 'public.victim_orders', on_duplicate => 'update', start => false)",
	qr/permission denied for table/, 'on_duplicate => update with INSERT but no UPDATE');
$node->safe_psql('postgres', "REVOKE SELECT, INSERT ON public.victim_orders FROM $ATT");
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.pipelines WHERE name LIKE 'att_%' OR name LIKE 'forged%'"),
	'0', '(d) no pipeline was created');
produce_victim(300);
victim_intact('(d)');

# --- after all that
is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$ATT'"), 'f',
	'the attacker is no superuser');
is($node->safe_psql('postgres', "SELECT pg_has_role('$ATT', '$VICTIM', 'MEMBER')"), 'f',
	'the attacker is no member of the victim');
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.pipelines"), '2',
	'only the victim\'s and the attacker\'s pipelines exist');
my $server_log = slurp_file($node->logfile);
my @called = $server_log =~ /(WARNING:\s+eo041 shadow [^\n]*)/g;
is(scalar(@called), 0, '(a) no shadowing function or operator was ever called')
  or diag(join("\n", @called[ 0 .. ($#called < 9 ? $#called : 9) ]));

# --- a partitioned target (hash on the event id) ingests exactly once
as_role_ok($VICTIM, "SELECT eo_ingest.create_pipeline(name => 'parted', brokers => '"
	  . $kafka->brokers . "', topic => 't041p', target => 'public.victim_parted', batch_size => 300)",
	'the victim creates a pipeline into a hash-partitioned table');
my $mp = $kafka->produce(topic => 't041p', count => 3_000, dup_ratio => 0.2, seed => 4150,
	timestamp_base => EoTest::ts_base(60));
EoTest::wait_caught_up($node, 'parted', EoTest::committed_count($mp));
EoTest::check_rows($node, 'public.victim_parted', $mp, 'skip', label => 'partitioned target');
EoTest::check_counters($node, 'parted', 'public.victim_parted', EoTest::committed_count($mp));
is($node->safe_psql('postgres', 'SELECT count(DISTINCT tableoid) FROM public.victim_parted'), '3',
	'rows landed in all three partitions');

# --- the victim purges its dead letters, which it can no longer DELETE
refused($VICTIM, 'DELETE FROM eo_ingest.dead_letters',
	qr/permission denied for table dead_letters/, 'the owner cannot DELETE dead letters directly');
is(as_role_ok($VICTIM, "SELECT eo_ingest.purge_dead_letters('victim', '-infinity')", 'purge with an old cutoff'),
	'0', 'purge_dead_letters with before keeps newer dead letters');
is(as_role_ok($VICTIM, "SELECT eo_ingest.purge_dead_letters('victim')", 'purge everything'),
	$victim_dead, 'purge_dead_letters returns how many it deleted');
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline_id = $victim_id"),
	'0', "the victim's dead letters are gone");

ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');
$node->stop;
$kafka->teardown;
done_testing();
