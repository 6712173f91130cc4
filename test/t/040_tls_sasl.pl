
# TLS and SASL against a real broker: a SASL_SSL listener with certificates
# made for this test (a test CA, the broker's PKCS12 keystore), SCRAM-SHA-512
# and PLAIN users.  Pipelines with the right credentials ingest exactly once,
# row by row; a wrong password (SCRAM and PLAIN) and an untrusted broker
# certificate (the client trusts another CA) end in 'failed' with a clear
# error, and so does a user the topic's ACLs leave out; after alter_pipeline
# fixes the options (or an ACL is added), resume_pipeline ingests.  No password ever shows in the server log,
# pipeline_status, partition_progress or pg_stat_activity.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoKafka;
use EoTest;

# Distinct strings, so that a leak of any of them is found by a plain grep.
my $SCRAM_PW = 'scram-Pw-7f3a91d2';
my $PLAIN_PW = 'plain-Pw-c02e55b8';
my $WRONG_PW = 'wrong-Pw-5d8e12aa';
my @SECRETS = ($SCRAM_PW, $PLAIN_PW, $WRONG_PW);

my $certs = EoKafka::make_certs("$PostgreSQL::Test::Utils::tmp_check/certs_040");
my $ssl_port = EoKafka::free_port();
my $kafka = EoKafka->new(
	extra_listeners => "SASL_SSL://127.0.0.1:$ssl_port",
	extra_config => EoKafka::sasl_ssl_config($certs, alice => $PLAIN_PW),
	format_args => EoKafka::scram_format_args('SCRAM-SHA-512', bob => $SCRAM_PW, carol => $SCRAM_PW));
$kafka->start;
my $ssl_brokers = "127.0.0.1:$ssl_port";

# The test's own statements carry the passwords as typed; statement logging
# (which PostgreSQL::Test::Cluster turns on) would write them, so it is off
# here: what is checked is what eo_ingest itself writes.
my $node = EoTest::new_node('tls_sasl', conf => <<'EOC');
log_statement = none
eo_ingest.launcher_naptime = 2s
eo_ingest.retry_max_delay = 2s
EOC

$kafka->create_topic('tls', 3);
# Once a topic has ACLs, users they do not name are denied (carol).
$kafka->acl(qw(--add --allow-principal User:bob --allow-principal User:alice --operation Read --topic tls));
my $m1 = $kafka->produce(topic => 'tls', count => 2000, dup_ratio => 0.1, start_id => 1);
my $n1 = EoTest::committed_count($m1);

sub options
{
	my (%o) = @_;
	my %opt = (
		'security.protocol' => 'SASL_SSL',
		'sasl.mechanism' => $o{mechanism} // 'SCRAM-SHA-512',
		'sasl.username' => $o{user} // 'bob',
		'sasl.password' => $o{password} // $SCRAM_PW,
		'ssl.ca.location' => $o{ca} // $certs->{ca});
	return '{' . join(', ', map { "\"$_\": \"$opt{$_}\"" } sort keys %opt) . '}';
}

sub status
{
	my ($pipeline) = @_;
	my ($state, $err) = split /\|/, $node->safe_psql('postgres',
		"SELECT state, coalesce(last_error, '') FROM eo_ingest.pipeline_status WHERE name = '$pipeline'"), 2;
	return ($state, $err);
}

sub wait_failed
{
	my ($pipeline) = @_;
	my $t0 = time;
	my $ok = EoTest::wait_for($node,
		"SELECT state FROM eo_ingest.pipeline_status WHERE name = '$pipeline'", 'failed', 90);
	ok($ok, "$pipeline ends failed")
	  and note(sprintf('%s failed after %.1f s', $pipeline, time - $t0));
	EoTest::diag_status($node) unless $ok;
	return $ok;
}

EoTest::create_orders_table($node, "public.$_") for qw(scram plain badpw badplain untrusted denied);

# ---- right credentials: SCRAM-SHA-512 and PLAIN over TLS --------------------

EoTest::create_pipeline($node, name => 'scram', brokers => $ssl_brokers, topic => 'tls',
	target => 'public.scram', kafka_options => options());
EoTest::create_pipeline($node, name => 'plain', brokers => $ssl_brokers, topic => 'tls',
	target => 'public.plain',
	kafka_options => options(mechanism => 'PLAIN', user => 'alice', password => $PLAIN_PW));

# ---- a wrong password and a CA that did not sign the broker's certificate ----

EoTest::create_pipeline($node, name => 'badpw', brokers => $ssl_brokers, topic => 'tls',
	target => 'public.badpw', kafka_options => options(password => $WRONG_PW));
EoTest::create_pipeline($node, name => 'badplain', brokers => $ssl_brokers, topic => 'tls',
	target => 'public.badplain',
	kafka_options => options(mechanism => 'PLAIN', user => 'alice', password => $WRONG_PW));
EoTest::create_pipeline($node, name => 'untrusted', brokers => $ssl_brokers, topic => 'tls',
	target => 'public.untrusted', kafka_options => options(ca => $certs->{other_ca}));
EoTest::create_pipeline($node, name => 'denied', brokers => $ssl_brokers, topic => 'tls',
	target => 'public.denied', kafka_options => options(user => 'carol'));

for my $p (qw(scram plain))
{
	EoTest::wait_caught_up($node, $p, $n1);
	EoTest::check_rows($node, "public.$p", $m1, 'skip', label => "$p over SASL_SSL");
	EoTest::check_counters($node, $p, "public.$p", $n1);
	EoTest::check_offsets($node, $p, $kafka, 'tls', 3);
}

wait_failed('badpw');
my ($state, $err) = status('badpw');
note("badpw: $err");
like($err, qr/authenticat/i, 'badpw: last_error says authentication failed');
like($err, qr/SCRAM-SHA-512|SASL/, 'badpw: last_error names the mechanism');
like($err, qr/resume_pipeline/, 'badpw: last_error says how to try again');
unlike($err, qr/\Q$WRONG_PW\E|\Q$SCRAM_PW\E/, 'badpw: last_error holds no password');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.badpw'), '0', 'badpw stored nothing');

wait_failed('badplain');
($state, $err) = status('badplain');
note("badplain: $err");
like($err, qr/authenticat/i, 'badplain: last_error says authentication failed');
unlike($err, qr/\Q$WRONG_PW\E|\Q$PLAIN_PW\E/, 'badplain: last_error holds no password');

wait_failed('untrusted');
($state, $err) = status('untrusted');
note("untrusted: $err");
like($err, qr/SSL|TLS/, 'untrusted: last_error says the TLS handshake failed');
like($err, qr/certificate/i, 'untrusted: last_error names the certificate');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.untrusted'), '0', 'untrusted stored nothing');

wait_failed('denied');
($state, $err) = status('denied');
note("denied: $err");
like($err, qr/authorization failed/i, 'denied: last_error says the topic is not authorized');
like($err, qr/"tls"/, 'denied: last_error names the topic');

# Failed stays failed: no retry loop behind the user's back.
sleep 5;
is((status('badpw'))[0], 'failed', 'badpw is still failed 5 s later');
is((status('badplain'))[0], 'failed', 'badplain is still failed 5 s later');
is((status('untrusted'))[0], 'failed', 'untrusted is still failed 5 s later');
is((status('denied'))[0], 'failed', 'denied is still failed 5 s later');

# ---- fixed options, then resume ---------------------------------------------

my $m2 = $kafka->produce(topic => 'tls', count => 500, start_id => 100001);
my $n2 = $n1 + EoTest::committed_count($m2);

$node->safe_psql('postgres', "SELECT eo_ingest.alter_pipeline('badpw', kafka_options => '"
	  . options() . "')");
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('badpw')");
$node->safe_psql('postgres', "SELECT eo_ingest.alter_pipeline('badplain', kafka_options => '"
	  . options(mechanism => 'PLAIN', user => 'alice', password => $PLAIN_PW) . "')");
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('badplain')");
$node->safe_psql('postgres', "SELECT eo_ingest.alter_pipeline('untrusted', kafka_options => '"
	  . options() . "')");
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('untrusted')");
$kafka->acl(qw(--add --allow-principal User:carol --operation Read --topic tls));
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('denied')");

for my $p (qw(scram plain badpw badplain untrusted denied))
{
	EoTest::wait_caught_up($node, $p, $n2);
	EoTest::check_rows($node, "public.$p", [ @$m1, @$m2 ], 'skip', label => "$p after the fix");
	EoTest::check_counters($node, $p, "public.$p", $n2);
	EoTest::check_offsets($node, $p, $kafka, 'tls', 3);
}

# ---- no secret anywhere -----------------------------------------------------

my $views = $node->safe_psql('postgres', <<'EOS');
SELECT row_to_json(s)::text FROM eo_ingest.pipeline_status s;
SELECT row_to_json(p)::text FROM eo_ingest.partition_progress p;
SELECT row_to_json(a)::text FROM pg_stat_activity a;
EOS
my $log = slurp_file($node->logfile);
like($log, qr/Kafka refused the connection[^\n]*\n[^\n]*CONTEXT:  eo_ingest pipeline "badpw"/,
	'the server log has the authentication failure');
for my $secret (@SECRETS)
{
	unlike($views, qr/\Q$secret\E/, "no password in pipeline_status, partition_progress, pg_stat_activity");
	unlike($log, qr/\Q$secret\E/, 'no password in the server log');
}
ok(!$node->log_contains('TRAP:|terminated by signal|PANIC'), 'no crash in the server log');

$node->stop;
$kafka->stop;
done_testing();
