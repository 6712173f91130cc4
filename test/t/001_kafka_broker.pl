
# The test broker itself: what the producer says it wrote is what a consumer
# reads back, and it stays so across a clean restart and a kill -9.  Every
# other TAP test builds on this harness.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoKafka;

# A SASL listener beside the plain one, to check that Debian's librdkafka
# authenticates against this broker version (SCRAM broke with Kafka 4.x).
my $sasl_port = EoKafka::free_port();
my $kafka = EoKafka->new(
	extra_listeners => "SASL_PLAINTEXT://127.0.0.1:$sasl_port",
	extra_config => {
		'sasl.enabled.mechanisms' => 'PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
		'listener.name.sasl_plaintext.plain.sasl.jaas.config' =>
		  'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";',
		map {
			("listener.name.sasl_plaintext.$_.sasl.jaas.config" =>
				  'org.apache.kafka.common.security.scram.ScramLoginModule required;')
		} qw(scram-sha-256 scram-sha-512)
	});
$kafka->start;
ok($kafka->is_running, 'broker started on ' . $kafka->brokers);

$kafka->create_topic('t001', 3);

my $manifest = $kafka->produce(
	topic => 't001',
	count => 300,
	headers => 1,
	timestamp_base => 1_700_000_000_000);
is(scalar @$manifest, 300, 'producer acknowledged 300 records');
is(scalar(grep { $_->{status} eq 'committed' } @$manifest),
	300, 'all of them committed');

my %parts;
$parts{ $_->{partition} }++ for @$manifest;
is_deeply([ sort keys %parts ], [ 0, 1, 2 ], 'records spread over 3 partitions');

my %seen_ids;
$seen_ids{ $_->{event_id} }++ for @$manifest;
is(scalar keys %seen_ids, 300, 'event ids are distinct');

sub by_position
{
	my $rows = shift;
	return [ map { [ $_->{partition}, $_->{offset}, $_->{key}, $_->{value} ] }
		  sort { $a->{partition} <=> $b->{partition} || $a->{offset} <=> $b->{offset} }
		  @$rows ];
}

my $expected = by_position($manifest);

sub check_topic
{
	my ($label) = @_;
	my $msgs = $kafka->kcat_consume('t001');
	is(scalar @$msgs, 300, "$label: 300 records read back");
	is_deeply(by_position($msgs), $expected,
		"$label: partition, offset, key and value match the manifest");
	is(scalar(grep { ($_->{headers} // '') =~ /(^|,)source=eo_producer(,|$)/ } @$msgs),
		300, "$label: every record carries the producer's headers");
	return $msgs;
}

my $first = check_topic('fresh broker');

my ($m0) = grep { $_->{partition} == 0 && $_->{offset} == 0 } @$first;
like($m0->{value}, qr/"event_id":"\Q$m0->{key}\E"/, 'key is the JSON event_id');
is(scalar(grep { $_->{timestamp} >= 1_700_000_000_000 && $_->{timestamp} < 1_700_000_000_300 } @$first),
	300, 'timestamps follow --timestamp-base');

# Per-partition reads see the same records.
my $p1 = $kafka->kcat_consume('t001', 1);
is_deeply(by_position($p1), [ grep { $_->[0] == 1 } @$expected ],
	'partition 1 alone reads back its records');

$kafka->restart;
ok($kafka->is_running, 'broker restarted cleanly');
is_deeply($kafka->kcat_consume('t001'), $first, 'identical after clean restart');

$kafka->kill9;
ok(!$kafka->is_running, 'broker killed with SIGKILL');
$kafka->start;
ok($kafka->is_running, 'broker started after SIGKILL');
is_deeply($kafka->kcat_consume('t001'), $first, 'identical after kill -9');

# Topic administration used by the pipeline tests.
$kafka->add_partitions('t001', 5);
my $more = $kafka->produce(topic => 't001', count => 10, start_id => 1001);
is(scalar(grep { $_->{partition} >= 3 } @$more) > 0, 1,
	'new partitions receive records');
$kafka->delete_topic('t001');
$kafka->create_topic('t001', 1);
is_deeply($kafka->kcat_consume('t001'), [], 'a deleted and re-created topic starts empty');
$kafka->produce(topic => 't001', count => 10);

# SASL: the same records read through an authenticated listener.
$kafka->add_scram_user('bob', 'bob-secret', 'SCRAM-SHA-512');
$kafka->add_scram_user('carol', 'carol-secret', 'SCRAM-SHA-256');
for my $auth ([ 'PLAIN', 'alice', 'alice-secret' ],
	[ 'SCRAM-SHA-512', 'bob', 'bob-secret' ],
	[ 'SCRAM-SHA-256', 'carol', 'carol-secret' ])
{
	my $msgs = $kafka->kcat_consume(
		't001', undef, undef,
		brokers => "127.0.0.1:$sasl_port",
		properties => {
			'security.protocol' => 'SASL_PLAINTEXT',
			'sasl.mechanisms' => $auth->[0],
			'sasl.username' => $auth->[1],
			'sasl.password' => $auth->[2]
		});
	is(scalar @$msgs, 10, "SASL $auth->[0] consumer reads the topic");
}
my $bad = eval {
	$kafka->kcat_consume(
		't001', undef, undef,
		timeout => 20,
		brokers => "127.0.0.1:$sasl_port",
		properties => {
			'security.protocol' => 'SASL_PLAINTEXT',
			'sasl.mechanisms' => 'SCRAM-SHA-256',
			'sasl.username' => 'carol',
			'sasl.password' => 'wrong'
		});
};
ok(!defined $bad || !@$bad, 'a wrong SCRAM password reads nothing');

$kafka->stop;
ok(!$kafka->is_running, 'broker stopped');

done_testing();
