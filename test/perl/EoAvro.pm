# Avro for eo_ingest's Perl TAP tests: schema registries -- Apicurio Registry
# (test/registry/apicurio.sh, a real one through its Confluent-compatible API)
# and the test registry (test/registry/registry.py, which can also hang, serve
# https, ask for basic auth or answer like no registry) -- and a producer that
# serializes with confluent-kafka's AvroSerializer
# (test/registry/avro_produce.py), run by the venv that
# scripts/install-deps.sh makes.
#
#   my $reg = EoAvro::Registry->new(apicurio => 1);   # Apicurio Registry
#   my $reg = EoAvro::Registry->new;            # or new(user => 'u', password => 'p')
#   EoAvro::Registry->new(tls_cert => $pem, tls_key => $key)   # https
#   EoAvro::Registry->new(hang => 1)            # reads requests, never answers
#   $reg->requests                              # how many a hanging one got
#   $reg->start;  $reg->url;  $reg->stop;  $reg->start;   # same port and ids again
#   $reg->latest_id('topic-value');
#   EoAvro::produce(brokers => $kafka->brokers, topic => 't',
#       registry => $reg->url, schema => $schema_json, records => [\%rec, ...]);
#   EoAvro::produce(..., plain => 1)            # plain Avro binary, no header
#   EoAvro::produce(..., registry_ca => $pem)   # an https registry's CA
#   records may be {'$raw_hex' => 'ff00'} for bytes produced as they are.
#   EoAvro::produce(..., schema_id => 3)       # registry down: id registered before
#
# Registries started here are stopped when their object goes away.

package EoAvro;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp ();
use IPC::Run ();
use JSON::PP ();

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $PYTHON = $ENV{EO_AVRO_PYTHON} // '/opt/eo_ingest-venv/bin/python';
our $JSON = JSON::PP->new->canonical->allow_nonref;

sub _tmpfile
{
	my ($text) = @_;
	my $fh = File::Temp->new(SUFFIX => '.avsc');
	print $fh $text;
	close $fh;
	return $fh;
}

# Produces the records; returns how many were produced.
sub produce
{
	my (%o) = @_;
	my $h = produce_start(%o);
	return produce_finish($h);
}

# The same in the background (rate => records per second spreads it out);
# produce_finish waits for it and returns how many were produced.
sub produce_start
{
	my (%o) = @_;
	my $schema = ref $o{schema} ? $JSON->encode($o{schema}) : $o{schema};
	my $sf = _tmpfile($schema);
	my @cmd = ($PYTHON, "$ROOT/test/registry/avro_produce.py",
		'--brokers', $o{brokers}, '--topic', $o{topic}, '--schema', "$sf");
	my $kf;
	if (defined $o{key_schema})
	{
		$kf = _tmpfile(ref $o{key_schema} ? $JSON->encode($o{key_schema}) : $o{key_schema});
		push @cmd, '--key-schema', "$kf";
	}
	push @cmd, '--plain' if $o{plain};
	push @cmd, '--registry', $o{registry} if defined $o{registry};
	push @cmd, '--registry-auth', $o{registry_auth} if defined $o{registry_auth};
	push @cmd, '--registry-ca', $o{registry_ca} if defined $o{registry_ca};
	push @cmd, '--partition', $o{partition} if defined $o{partition};
	push @cmd, '--schema-id', $o{schema_id} if defined $o{schema_id};
	push @cmd, '--rate', $o{rate} if defined $o{rate};
	# records from a file: a scalar would be fed only while the caller pumps
	my $in = _tmpfile(join('', map { $JSON->encode($_) . "\n" } @{ $o{records} }));
	my $h = { out => '', err => '', files => [ $sf, $kf, $in ] };
	$h->{run} = IPC::Run::start(\@cmd, '<', "$in", '>', \$h->{out}, '2>', \$h->{err},
		IPC::Run::timeout(600));
	return $h;
}

sub produce_finish
{
	my ($h) = @_;
	$h->{run}->finish or croak "avro_produce failed: $h->{err}";
	chomp $h->{out};
	return $h->{out};
}

package EoAvro::Registry;

use strict;
use warnings;

use Carp;
use IPC::Run ();
use Time::HiRes qw(usleep);
use EoKafka ();

our $APICURIO_SH = "$EoAvro::ROOT/test/registry/apicurio.sh";

sub new
{
	my ($class, %o) = @_;
	my $self = bless { %o, port => $o{port} // 0 }, $class;
	croak 'Apicurio Registry is a plain http registry without authentication'
	  if $self->{apicurio}
	  && grep { defined $self->{$_} } qw(user tls_cert hang not_a_registry);
	$self->{dir} = File::Temp->newdir();
	return $self;
}

sub url
{
	my ($self) = @_;
	return "http://127.0.0.1:$self->{port}/apis/ccompat/v7" if $self->{apicurio};
	return ($self->{tls_cert} ? 'https' : 'http') . "://127.0.0.1:$self->{port}";
}
sub port { return $_[0]->{port} }

# Apicurio: the first start picks a free port, a restart keeps it (and the
# ids: its storage is a file in the registry's directory).
sub _start_apicurio
{
	my ($self) = @_;
	my $fixed = $self->{port} != 0;
	for (1 .. 5)
	{
		$self->{port} = EoKafka::free_port() unless $fixed;
		my $out = '';
		my $ok = eval {
			IPC::Run::run([ $APICURIO_SH, 'start', "$self->{dir}", $self->{port} ],
				'<', \undef, '>&', \$out, IPC::Run::timeout(300));
		};
		if ($ok)
		{
			$self->{running} = 1;
			return $self;
		}
		# someone took the port between the pick and the start
		next if !$fixed && $out =~ /already in use/;
		croak "apicurio.sh start failed:\n$out" . ($@ // '');
	}
	croak 'apicurio.sh start: no free port';
}

sub start
{
	my ($self) = @_;
	return $self->_start_apicurio if $self->{apicurio};
	my $pf = "$self->{dir}/port";
	unlink $pf;
	my @cmd = ($EoAvro::PYTHON, "$EoAvro::ROOT/test/registry/registry.py",
		'--port', $self->{port}, '--port-file', $pf, '--state', "$self->{dir}/state.json");
	push @cmd, '--user', $self->{user}, '--password', $self->{password}
	  if defined $self->{user};
	push @cmd, '--not-a-registry' if $self->{not_a_registry};
	push @cmd, '--hang' if $self->{hang};
	push @cmd, '--tls-cert', $self->{tls_cert}, '--tls-key', $self->{tls_key}
	  if $self->{tls_cert};
	$self->{h} = IPC::Run::start(\@cmd, '<', \undef, '>', "$self->{dir}/out",
		'2>', "$self->{dir}/err");
	for (1 .. 300)
	{
		if (-s $pf)
		{
			open my $fh, '<', $pf or croak "cannot read $pf: $!";
			$self->{port} = <$fh>;
			close $fh;
			return $self;
		}
		usleep(100_000);
	}
	croak 'the test schema registry did not start';
}

# The id of the latest version of $subject, asked over HTTP.
sub latest_id
{
	my ($self, $subject) = @_;
	my $out = '';
	IPC::Run::run([ $EoAvro::PYTHON, '-c',
		'import json, sys, urllib.request; '
		  . 'print(json.load(urllib.request.urlopen(sys.argv[1]))["id"])',
		$self->url . "/subjects/$subject/versions/latest" ], '>', \$out)
	  or croak "no latest version of $subject";
	chomp $out;
	return $out;
}

# The number of requests a hanging registry has received so far.
sub requests
{
	my ($self) = @_;
	open my $fh, '<', "$self->{dir}/err" or return 0;
	my $n = grep { /^hang GET / } <$fh>;
	close $fh;
	return $n;
}

sub stop
{
	my ($self) = @_;
	if ($self->{apicurio})
	{
		return unless delete $self->{running};
		my $out = '';
		IPC::Run::run([ $APICURIO_SH, 'stop', "$self->{dir}" ], '<', \undef, '>&', \$out)
		  or croak "apicurio.sh stop failed:\n$out";
		return;
	}
	return unless $self->{h};
	$self->{h}->kill_kill;
	delete $self->{h};
}

sub DESTROY
{
	my ($self) = @_;
	local $?;
	$self->stop;
}

1;
