
# The schema registry connection: several URLs (the first one down: the
# next answers), https with a test CA and HTTP basic auth; a CA that did not
# sign the registry's certificate fails the pipeline with a clear error; a
# registry that accepts connections but never answers is retried after
# schema.registry.request.timeout.ms, and neither pause_pipeline nor
# pg_ctl stop -m fast waits for it.  The password is in no view, error, log
# line or pg_stat_activity.  (050 covers a wrong URL and a wrong password,
# 051 a registry down for 30 s.)

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use EoAvro;
use EoKafka;
use EoTest;

my $kafka = EoKafka->new;
$kafka->start;
my $node = EoTest::new_node('avro_registry',
	conf => "eo_ingest.retry_max_delay = '2s'");
my $certs = EoKafka::make_certs("$PostgreSQL::Test::Utils::tmp_check/certs");

my $password = 'tls-reg-s3cret-' . int(rand(1_000_000));
my $reg = EoAvro::Registry->new(user => 'carol', password => $password,
	tls_cert => "$certs->{dir}/broker.pem", tls_key => "$certs->{dir}/broker.key");
$reg->start;
like($reg->url, qr/^https:/, 'the test registry serves https');
# a port nothing listens on
my $down = 'http://127.0.0.1:' . PostgreSQL::Test::Cluster::get_free_port();

sub options
{
	my (%o) = @_;
	return '{"schema.registry.user": "carol", "schema.registry.password": "' . $password
	  . '", "schema.registry.ssl.ca.location": "' . ($o{ca} // $certs->{ca}) . '"'
	  . ($o{timeout} ? ", \"schema.registry.request.timeout.ms\": \"$o{timeout}\"" : '') . '}';
}

my $schema = { type => 'record', name => 'reading', fields => [
	{ name => 'id', type => 'int' }, { name => 'v', type => 'string' } ] };
my @records = map { { id => $_, v => "v$_" } } 1 .. 30;
$kafka->create_topic('reg_t', 1);
EoAvro::produce(brokers => $kafka->brokers, topic => 'reg_t', registry => $reg->url,
	registry_auth => "carol:$password", registry_ca => $certs->{ca},
	schema => $schema, records => \@records);

$node->safe_psql('postgres', <<'EOS');
CREATE TABLE public.reg_ok (id integer PRIMARY KEY, v text);
CREATE TABLE public.reg_untrusted (LIKE public.reg_ok INCLUDING ALL);
CREATE TABLE public.reg_hang (LIKE public.reg_ok INCLUDING ALL);
EOS

# ---- failover, https, basic auth ---------------------------------------------
EoTest::create_pipeline($node, name => 'reg_ok', brokers => $kafka->brokers,
	topic => 'reg_t', target => 'public.reg_ok', format => 'avro', event_id => 'id',
	schema_registry => "$down," . $reg->url, kafka_options => options());
EoTest::wait_caught_up($node, 'reg_ok', scalar @records, timeout => 60);
is($node->safe_psql('postgres', "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM public.reg_ok"),
	join(',', map { "$_->{id}=$_->{v}" } @records),
	'the first registry down, the second (https, basic auth) answered: every record landed');
is($node->safe_psql('postgres', "SELECT count(*) FROM eo_ingest.dead_letters"), '0', 'no dead letter');

# ---- a CA that did not sign the registry's certificate: failed ---------------
EoTest::create_pipeline($node, name => 'reg_untrusted', brokers => $kafka->brokers,
	topic => 'reg_t', target => 'public.reg_untrusted', format => 'avro', event_id => 'id',
	schema_registry => $reg->url, kafka_options => options(ca => $certs->{other_ca}));
ok(EoTest::wait_for($node,
		"SELECT state FROM eo_ingest.pipeline_status WHERE name = 'reg_untrusted'", 'failed', 60),
	'untrusted registry certificate: failed');
like($node->safe_psql('postgres', "SELECT last_error FROM eo_ingest.pipeline_status WHERE name = 'reg_untrusted'"),
	qr/schema registry https:\S+ unreachable: .*certificate/i, 'the error names the certificate');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline = 'reg_untrusted'"),
	'0', 'untrusted: no dead letter');

# ---- a registry that never answers --------------------------------------------
my $hang = EoAvro::Registry->new(hang => 1);
$hang->start;
EoTest::create_pipeline($node, name => 'reg_hang', brokers => $kafka->brokers,
	topic => 'reg_t', target => 'public.reg_hang', format => 'avro', event_id => 'id',
	schema_registry => $hang->url, kafka_options => options(timeout => 1000));
EoTest::wait_retrying($node, 'reg_hang', 'hanging registry', 'timed out after');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM eo_ingest.dead_letters WHERE pipeline = 'reg_hang'")
	  . $node->safe_psql('postgres', 'SELECT count(*) FROM public.reg_hang'),
	'00', 'hanging registry: no dead letter, no row');

# With a 10-minute timeout the worker sits in a request: pause and stop
# must not wait for it.
# (counted before the step that leads to the request, which may come at once)
sub wait_request
{
	my ($label, $seen) = @_;
	my $deadline = time + 60;
	sleep 0.1 while $hang->requests == $seen && time < $deadline;
	ok($hang->requests > $seen, "$label: the worker is waiting for the registry");
}
my $status_sql = "SELECT state || ':' || coalesce(worker_pid::text, 'none') "
  . "FROM eo_ingest.pipeline_status WHERE name = 'reg_hang'";
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('reg_hang')");
ok(EoTest::wait_for($node, $status_sql, 'paused:none', 60), 'paused to change the timeout');
$node->safe_psql('postgres', "SELECT eo_ingest.alter_pipeline('reg_hang', kafka_options => '"
	  . options(timeout => 600000) . "')");
my $before = $hang->requests;
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('reg_hang')");
wait_request('resumed with a 600 s timeout', $before);
my $t0 = time;
$node->safe_psql('postgres', "SELECT eo_ingest.pause_pipeline('reg_hang')");
ok(EoTest::wait_for($node, $status_sql, 'paused:none', 30),
	'pause_pipeline: the worker left the hanging request and exited');
my $paused_in = time - $t0;
cmp_ok($paused_in, '<', 5, sprintf('paused in %.1f s (the request timeout is 600 s)', $paused_in));

$before = $hang->requests;
$node->safe_psql('postgres', "SELECT eo_ingest.resume_pipeline('reg_hang')");
wait_request('after resume_pipeline', $before);

# ---- the password is nowhere ----------------------------------------------------
$node->safe_psql('postgres', 'CREATE ROLE peeker LOGIN');
# (the catalog table eo_ingest.pipelines holds it, for its owner only)
my $seen = $node->safe_psql('postgres', 'SELECT * FROM eo_ingest.pipelines',
	extra_params => [ '-U', 'peeker' ]);
for my $sql ('SELECT * FROM eo_ingest.pipeline_status', 'SELECT * FROM pg_stat_activity',
	'SELECT * FROM eo_ingest.avro_schemas', 'SELECT * FROM eo_ingest.dead_letters')
{
	$seen .= $node->safe_psql('postgres', $sql, extra_params => [ '-U', 'peeker' ]) . "\n";
	$seen .= $node->safe_psql('postgres', $sql) . "\n";
}
unlike($seen, qr/\Q$password\E/,
	'the registry password is in no view, last_error or pg_stat_activity row (peeker and superuser)');
like($seen, qr/reg_untrusted/, 'the views were read');

$t0 = time;
$node->stop('fast');
my $stopped_in = time - $t0;
cmp_ok($stopped_in, '<', 10,
	sprintf('pg_ctl stop -m fast took %.1f s with a worker in a 600 s registry request', $stopped_in));
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$password\E/, 'the registry password is in no log line');
unlike($log, qr/terminated by signal/, 'no process crashed');

$hang->stop;
$reg->stop;
$kafka->stop;
done_testing();
