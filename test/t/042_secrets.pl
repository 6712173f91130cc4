
# Secrets in kafka_options never leak: a pipeline with sasl.password,
# ssl.key.password, ssl.keystore.password, sasl.oauthbearer.client.secret and
# a custom key ending in "secret", and errors of every kind around it
# (unknown property, bad values, non-scalar values, a broker that refuses the
# SASL handshake so the worker retries, alter_pipeline and reset_offsets
# failing).  Then no secret value may appear in the server log (which logs
# every statement here: log_statement = all), in error messages, in any
# eo_ingest table or view read by another role, in the owner's views, in
# last_error, or in pg_stat_activity.  Only the owner reads kafka_options.
# Also: options that make librdkafka load code or run commands are refused
# to non-superusers.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
$kafka->create_topic('t042', 2);

my $node = EoTest::new_node('eo042', conf => "eo_ingest.retry_max_delay = '1s'");
my $OWNER = 'eo_sec_owner';
my $OTHER = 'eo_sec_other';
my %SECRET = (
	'sasl.password' => 'Sx-sasl-pw-1111',
	'ssl.key.password' => 'Sx-key-pw-2222',
	'ssl.keystore.password' => 'Sx-ks-pw-3333',
	'sasl.oauthbearer.client.secret' => 'Sx-oauth-4444',
	'my.app.secret' => 'Sx-custom-5555');
my $any_secret = qr/Sx-[a-z-]+-\d{4}/;

$node->safe_psql('postgres', <<"EOS");
CREATE ROLE $OWNER LOGIN;
CREATE ROLE $OTHER LOGIN;
EOS
EoTest::create_orders_table($node, 'public.sec_orders');
EoTest::create_orders_table($node, 'public.other_orders');
$node->safe_psql('postgres', "ALTER TABLE public.sec_orders OWNER TO $OWNER");
$node->safe_psql('postgres', "ALTER TABLE public.other_orders OWNER TO $OTHER");

sub as_role
{
	my ($role, $sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role ]);
	return ($ret, $out, $err);
}

# kafka_options as a JSON literal for SQL, from a list of pairs
sub options
{
	my @kv = @_;
	my @p;
	while (my ($k, $v) = splice(@kv, 0, 2))
	{
		push @p, "\"$k\": " . ($v =~ /^[\[{]/ ? $v : "\"$v\"");
	}
	return '{' . join(', ', @p) . '}';
}

my @sasl = ('security.protocol' => 'SASL_PLAINTEXT', 'sasl.mechanism' => 'PLAIN',
	'sasl.username' => 'eo-user');
my @librdkafka_secrets = map { ($_ => $SECRET{$_}) } grep { $_ ne 'my.app.secret' } sort keys %SECRET;
# this librdkafka (no OIDC support) refuses sasl.oauthbearer.client.secret:
# that refusal is one more error case, and the pipeline goes without it
my @stored_secrets = map { ($_ => $SECRET{$_}) }
  grep { $_ ne 'my.app.secret' && $_ ne 'sasl.oauthbearer.client.secret' } sort keys %SECRET;
my @errors;	# every error message the owner got

sub failing_call
{
	my ($role, $sql, $re, $name) = @_;
	my ($ret, $out, $err) = as_role($role, $sql);
	ok($ret != 0 && $err =~ $re, $name) or diag("exit $ret\n$out$err");
	unlike($err, $any_secret, "$name: no secret in the error message");
	push @errors, $err;
	return $err;
}

sub create_sql
{
	my ($name, $opts, %extra) = @_;
	my $extra = join('', map { ", $_ => $extra{$_}" } sort keys %extra);
	return "SELECT eo_ingest.create_pipeline(name => '$name', brokers => '" . $kafka->brokers
	  . "', topic => 't042', target => 'public.sec_orders', kafka_options => '$opts'$extra)";
}

# --- errors while creating
failing_call($OWNER, create_sql('sec', options(@sasl, map { ($_ => $SECRET{$_}) } sort keys %SECRET)),
	qr/invalid kafka_options/, 'a custom key ending in "secret" is an unknown property');
failing_call($OWNER, create_sql('sec', options(@sasl, @librdkafka_secrets, 'fetch.wait.max.ms' => 'abc')),
	qr/invalid kafka_options/, 'a bad value next to the secrets');
failing_call($OWNER, create_sql('sec', options(@sasl, @librdkafka_secrets, 'sasl.mechanism' => 'NOPE')),
	qr/invalid kafka_options/, 'a bad SASL mechanism next to the secrets');
failing_call($OWNER, create_sql('sec', options(@sasl, 'sasl.password' => '{"v": "Sx-nested-9999"}')),
	qr/must be a string, number or boolean/, 'a secret given as an object');
failing_call($OWNER, create_sql('sec', options(@sasl, @librdkafka_secrets), batch_size => 0),
	qr/batch_size must be between/, 'an unrelated argument error with secrets in the call');

# --- the pipeline, whose worker cannot authenticate (the broker speaks PLAINTEXT)
failing_call($OWNER, create_sql('sec', options(@sasl, @librdkafka_secrets)),
	qr/invalid kafka_options/, 'sasl.oauthbearer.client.secret, unsupported by this librdkafka');
my ($ret, $out, $err) = as_role($OWNER, create_sql('sec', options(@sasl, @stored_secrets)));
is($ret, 0, 'the owner creates a pipeline with every secret') or diag($err);
ok(EoTest::wait_for($node,
		"SELECT last_error IS NOT NULL FROM eo_ingest.pipeline_status WHERE name = 'sec'", 't', 60),
	'the worker reports an error');
my $last_error = $node->safe_psql('postgres', "SELECT last_error FROM eo_ingest.pipeline_status WHERE name = 'sec'");
failing_call($OWNER, "SELECT eo_ingest.alter_pipeline('sec', kafka_options => '"
	  . options(@sasl, @stored_secrets, 'no.such.property' => 'x') . "')",
	qr/invalid kafka_options/, 'alter_pipeline with an unknown property next to the secrets');
($ret, $out, $err) = as_role($OWNER, "SELECT eo_ingest.pause_pipeline('sec')");
is($ret, 0, 'paused') or diag($err);
failing_call($OWNER, "SET statement_timeout = '60s'; SELECT eo_ingest.reset_offsets('sec', 'latest')",
	qr/ERROR/, 'reset_offsets cannot reach the brokers with these options');
($ret, $out, $err) = as_role($OWNER, "SELECT eo_ingest.resume_pipeline('sec')");
is($ret, 0, 'resumed') or diag($err);
sleep 3;	# let the worker fail a few more times

# --- options that load code or run commands
for my $bad ([ 'plugin.library.paths' => '/tmp/eo042_plugin.so' ],
	[ 'ssl.engine.location' => '/tmp/eo042_engine.so' ],
	[ 'sasl.kerberos.kinit.cmd' => 'touch /tmp/eo042_pwned' ],
	[ 'sasl.kerberos.principal' => 'x; touch /tmp/eo042_pwned' ],
	[ 'sasl.mechanism' => 'GSSAPI' ])
{
	my $opts = options(@$bad);
	failing_call($OTHER, "SELECT eo_ingest._check_kafka_options('$opts')",
		qr/only superusers may/, "$bad->[0] refused to a non-superuser by _check_kafka_options");
	failing_call($OTHER,
		"SELECT * FROM eo_ingest._query_offsets('127.0.0.1:1', 't', '$opts', 'latest')",
		qr/only superusers may/, "$bad->[0] refused to a non-superuser by _query_offsets");
	failing_call($OTHER,
		"SELECT eo_ingest.create_pipeline('other', '127.0.0.1:1', 't', 'public.other_orders', kafka_options => '$opts', start => false)",
		qr/only superusers may/, "$bad->[0] refused to a non-superuser by create_pipeline");
}
$node->safe_psql('postgres', "SELECT eo_ingest.create_pipeline('other', '127.0.0.1:1', 't', 'public.other_orders', start => false)");
$node->safe_psql('postgres', "UPDATE eo_ingest.pipelines SET owner = '$OTHER' WHERE name = 'other'");
my $other_id = $node->safe_psql('postgres', "SELECT id FROM eo_ingest.pipelines WHERE name = 'other'");
failing_call($OTHER,
	"SELECT eo_ingest._catalog_update_pipeline($other_id, NULL, NULL, NULL, '{\"plugin.library.paths\": \"/tmp/eo042.so\"}', NULL, NULL, NULL, NULL)",
	qr/only superusers may/, 'plugin.library.paths refused by the internal update function');
failing_call($OTHER,
	"SELECT eo_ingest._catalog_insert_pipeline('other2', '127.0.0.1:1', 't', 'public.other_orders', 'event_id', 'skip', 'json', NULL, 'earliest', 1, 1, 1, true, '{\"sasl.kerberos.kinit.cmd\": \"touch /tmp/eo042_pwned\"}', true)",
	qr/only superusers may/, 'sasl.kerberos.kinit.cmd refused by the internal insert function');
ok(!-e '/tmp/eo042_pwned', 'no command ran');
($ret, $out, $err) = as_role($OTHER, 'SELECT eo_ingest._check_kafka_options(NULL)');
is($ret, 0, '_check_kafka_options(NULL) is a no-op, not a crash') or diag($err);

# --- who sees what
my $secrets_re = join('|', map { quotemeta } values %SECRET);
my $rels = $node->safe_psql('postgres',
	"SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_class c "
	  . "WHERE c.relnamespace = 'eo_ingest'::regnamespace AND c.relkind IN ('r', 'v')");
for my $rel (split / /, $rels)
{
	my $sql = "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM eo_ingest.$rel t";
	for my $role ($OTHER, $OWNER)
	{
		next if $role eq $OWNER && $rel eq 'pipelines';
		my ($r, $o, $e) = as_role($role, $sql);
		is($r, 0, "$role reads eo_ingest.$rel") or diag($e);
		unlike($o, qr/$secrets_re/, "no secret in eo_ingest.$rel as $role");
	}
}
my ($r, $o, $e) = as_role($OTHER, "SELECT count(*) FROM eo_ingest.pipelines WHERE name = 'sec'");
is($o, '0', 'the other role sees no pipelines row of the owner');
($r, $o, $e) = as_role($OWNER, "SELECT kafka_options ->> 'sasl.password' FROM eo_ingest.pipelines WHERE name = 'sec'");
is($o, $SECRET{'sasl.password'}, 'the owner reads its own kafka_options, secrets included');
isnt($last_error, '', "last_error: $last_error");
unlike($last_error, qr/$secrets_re/, 'no secret in last_error');
for my $role ($OTHER, 'postgres')
{
	($r, $o, $e) = $role eq 'postgres'
	  ? (0, $node->safe_psql('postgres', 'SELECT coalesce(string_agg(a::text, E\'\\n\'), \'\') FROM pg_stat_activity a'), '')
	  : as_role($role, 'SELECT coalesce(string_agg(a::text, E\'\\n\'), \'\') FROM pg_stat_activity a');
	like($o, qr/eo_ingest/, "pg_stat_activity as $role shows eo_ingest's processes");
	unlike($o, qr/$secrets_re/, "no secret in pg_stat_activity as $role");
}
unlike(join("\n", @errors), qr/$secrets_re|Sx-nested/, 'no secret in any error message');

$node->stop;
my $log = slurp_file($node->logfile);
like($log, qr/statement not logged: it calls eo_ingest with kafka_options that may hold secrets/,
	'statements carrying secrets are logged without their text');
my @leaks = $log =~ /([^\n]*(?:$secrets_re|Sx-nested-9999)[^\n]*)/g;
is(scalar(@leaks), 0, 'no secret anywhere in the server log')
  or diag(join("\n", @leaks[ 0 .. ($#leaks < 9 ? $#leaks : 9) ]));
ok($log !~ /TRAP:|terminated by signal|PANIC/, 'no crash in the server log');
$kafka->teardown;
done_testing();
