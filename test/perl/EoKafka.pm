
# A throwaway single-node Apache Kafka broker for eo_ingest's Perl TAP tests,
# in the spirit of PostgreSQL::Test::Cluster.  It drives test/kafka/kafka.sh
# and the project's test producer, and reads topics back with kcat.
#
#   my $kafka = EoKafka->new;            # or EoKafka->new(port => 29092)
#   $kafka->start;
#   $kafka->create_topic('orders', 3);
#   my $manifest = $kafka->produce(topic => 'orders', count => 300, headers => 1);
#   my $msgs = $kafka->kcat_consume('orders');
#   $kafka->restart; $kafka->kill9; $kafka->stop;
#
# new() also takes: port, name, dir, extra_listeners (e.g.
# 'SASL_PLAINTEXT://127.0.0.1:29094'), extra_config (a properties file or a
# hash of broker properties appended to server.properties) and format_args
# (array ref of extra storage-format arguments, e.g. for --add-scram).
#
# TLS and SASL: make_certs() generates a test CA, a broker keystore and an
# unrelated CA; sasl_ssl_config() turns them into the broker properties of a
# SASL_SSL listener with PLAIN users and SCRAM enabled; scram_format_args()
# adds SCRAM users when the storage is formatted (no JVM tool run later):
#
#   # a directory of each test file's own: TAP files run two at a time, and
#   # make-certs writes new keys, which a broker restarted later must match
#   my $certs = EoKafka::make_certs("$tmp_check/certs_NNN");
#   my $port = EoKafka::free_port();
#   my $kafka = EoKafka->new(extra_listeners => "SASL_SSL://127.0.0.1:$port",
#       extra_config => EoKafka::sasl_ssl_config($certs, alice => 'pw1'),
#       format_args => EoKafka::scram_format_args('SCRAM-SHA-512', bob => 'pw2'));
#   # clients: {"security.protocol": "SASL_SSL", "ssl.ca.location": $certs->{ca}, ...}
#
# Every broker started here is stopped when its object goes away or the test
# ends, so a failing test never leaves a JVM behind.

package EoKafka;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path ();
use File::Temp ();
use IO::Socket::INET;
use IPC::Run ();
use Scalar::Util qw(weaken);

our $ROOT = abs_path(dirname(__FILE__) . '/../..');
our $KAFKA_SH = "$ROOT/test/kafka/kafka.sh";
our $PRODUCER = $ENV{EO_PRODUCER} // "$ROOT/test/producer/eo_producer";
our $KCAT = $ENV{KCAT} // 'kcat';

# Seconds allowed for one kafka.sh call, producer run or kcat read.
our $TIMEOUT = $ENV{EO_KAFKA_TIMEOUT} // 180;

my @live;	# weak references to every broker object, for END

sub _log
{
	my $msg = join('', @_);
	chomp $msg;
	# Test::More may not be loaded (e.g. the demo script).
	if (Test::More->can('note')) { Test::More::note($msg); }
	else { print STDERR "$msg\n"; }
}

sub _base_dir
{
	no warnings 'once';
	if (defined $PostgreSQL::Test::Utils::tmp_check
		&& -d $PostgreSQL::Test::Utils::tmp_check)
	{
		return (abs_path($PostgreSQL::Test::Utils::tmp_check), 0);
	}
	return (File::Temp::tempdir('eo_kafka_XXXX', TMPDIR => 1, CLEANUP => 1), 1);
}

sub _port_free
{
	my $port = shift;
	my $s = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => $port,
		Proto => 'tcp',
		Listen => 1,
		ReuseAddr => 1);
	return 0 unless $s;
	close $s;
	return 1;
}

# A port P with P and P+1 (the controller) both free.  Random, so that
# concurrent test runs on one machine rarely collide; start() retries anyway.
# Drawn from /dev/urandom, not rand(): a test that seeds rand() for a
# reproducible workload would otherwise pick the same ports in every run.
sub _pick_port
{
	open(my $fh, '<:raw', '/dev/urandom') or croak "/dev/urandom: $!";
	for (1 .. 200)
	{
		read($fh, my $bytes, 4) == 4 or croak "/dev/urandom: short read";
		# below 32768, where Linux's ephemeral ports (ip_local_port_range
		# 32768-60999) begin: a client connection of a concurrent test
		# could otherwise take the port between this check and the bind
		my $p = 20000 + 2 * (unpack('N', $bytes) % 6000);
		return $p if _port_free($p) && _port_free($p + 1);
	}
	croak 'no free port pair found';
}

sub new
{
	my ($class, %args) = @_;
	my ($base) = _base_dir();
	my $name = $args{name} // 'kafka';
	my $dir = $args{dir}
	  // File::Temp::tempdir("${name}_XXXX", DIR => $base, CLEANUP => 0);
	my $self = bless {
		name => $name,
		dir => $dir,
		port => $args{port} // _pick_port(),
		fixed_port => defined $args{port},
		extra_config => $args{extra_config},
		extra_listeners => $args{extra_listeners},
		owner_pid => $$,
		seq => 0,
	}, $class;
	push @live, $self;
	weaken($live[-1]);

	if (ref $self->{extra_config} eq 'HASH')
	{
		my $file = "$dir/extra.properties";
		open(my $fh, '>', $file) or croak "cannot write $file: $!";
		print $fh "$_=$self->{extra_config}{$_}\n"
		  for sort keys %{ $self->{extra_config} };
		close $fh;
		$self->{extra_config} = $file;
	}
	if ($args{format_args})
	{
		open(my $fh, '>', "$dir/format-args") or croak "cannot write format-args: $!";
		print $fh "$_\n" for @{ $args{format_args} };
		close $fh;
	}
	return $self;
}

sub port { return $_[0]->{port} }
sub dir { return $_[0]->{dir} }
sub brokers { return '127.0.0.1:' . $_[0]->{port} }

sub pid
{
	my $self = shift;
	open(my $fh, '<', "$self->{dir}/kafka.pid") or return undef;
	my $pid = <$fh>;
	close $fh;
	chomp $pid if defined $pid;
	return $pid;
}

sub is_running
{
	my $self = shift;
	return _sh_ok('status', $self->{dir});
}

# Runs kafka.sh; returns (ok, combined output).
sub _sh
{
	my @args = @_;
	my $out = '';
	my $ok = eval {
		IPC::Run::run([ $KAFKA_SH, @args ], '<', \undef, '>&', \$out,
			IPC::Run::timeout($TIMEOUT));
	};
	$out .= "\n$@" if $@;
	return ($ok ? 1 : 0, $out);
}

sub _sh_ok
{
	my ($ok) = _sh(@_);
	return $ok;
}

sub _sh_or_die
{
	my ($ok, $out) = _sh(@_);
	croak "kafka.sh @_ failed:\n$out" unless $ok;
	_log($out);
	return $out;
}

sub _extra
{
	my $self = shift;
	return defined $self->{extra_config} ? ($self->{extra_config}) : ();
}

sub start
{
	my $self = shift;
	local $ENV{EO_KAFKA_EXTRA_LISTENERS} = $self->{extra_listeners}
	  if defined $self->{extra_listeners};
	for my $try (1 .. 5)
	{
		my ($ok, $out) =
		  _sh('start', $self->{dir}, $self->{port}, $self->_extra);
		if ($ok)
		{
			_log($out);
			$self->{running} = 1;
			$self->{started_once} = 1;
			return 1;
		}
		# Someone took the port between the pick and the start (concurrent
		# runs on one machine): pick another unless the caller chose it.  A
		# broker that never ran holds nothing yet, but its first start
		# already formatted storage for the old port: format afresh.
		# kafka.sh shows the log's tail, which may end past the bind error
		my $log = '';
		if (open(my $lf, '<', "$self->{dir}/kafka.log"))
		{
			local $/;
			$log = <$lf> // '';
			close $lf;
		}
		if (($out =~ /already in use/ || $log =~ /Address already in use/)
			&& !$self->{fixed_port}
			&& !$self->{started_once})
		{
			File::Path::rmtree("$self->{dir}/data");
			unlink "$self->{dir}/cluster.id", "$self->{dir}/kafka.log";
			$self->{port} = _pick_port();
			next;
		}
		croak "kafka start failed:\n$out";
	}
	croak 'kafka start failed: no free port';
}

sub stop
{
	my $self = shift;
	_sh_or_die('stop', $self->{dir});
	$self->{running} = 0;
	return 1;
}

sub kill9
{
	my $self = shift;
	_sh_or_die('kill', $self->{dir});
	$self->{running} = 0;
	return 1;
}

sub restart
{
	my $self = shift;
	$self->stop;
	return $self->start;
}

# Topic administration goes through the test producer's Admin API when it is
# built (milliseconds), else through Kafka's TopicCommand (a JVM start).
sub _producer_admin
{
	my ($self, @args) = @_;
	return 0 unless -x $PRODUCER;
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run([ $PRODUCER, '-b', $self->brokers, @args ],
			'<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout($TIMEOUT));
	};
	croak "eo_producer @args failed:\n$err$out" . ($@ // '') unless $ok;
	return 1;
}

sub create_topic
{
	my ($self, $topic, $partitions, %config) = @_;
	$partitions //= 1;
	if (!%config
		&& $self->_producer_admin('-t', $topic, '--create-topic', $partitions))
	{
		_sh_or_die('wait-topic', $self->{port}, $topic, $partitions);
		return 1;
	}
	_sh_or_die('create-topic', $self->{port}, $topic, $partitions,
		map { "$_=$config{$_}" } sort keys %config);
	return 1;
}

sub add_partitions
{
	my ($self, $topic, $n) = @_;
	if ($self->_producer_admin('-t', $topic, '--add-partitions', $n))
	{
		_sh_or_die('wait-topic', $self->{port}, $topic, $n);
		return 1;
	}
	_sh_or_die('add-partitions', $self->{port}, $topic, $n);
	return 1;
}

sub add_scram_user
{
	my ($self, $name, $password, $mechanism) = @_;
	_sh_or_die('add-scram-user', $self->{port}, $name, $password,
		$mechanism // 'SCRAM-SHA-256');
	return 1;
}

# A free TCP port on 127.0.0.1, e.g. for an extra SASL or TLS listener.
sub free_port
{
	for (1 .. 200)
	{
		my $p = 20000 + int(rand(20000));
		return $p if _port_free($p);
	}
	croak 'no free port found';
}

# Runs Kafka's ACL tool against this broker's PLAINTEXT listener, e.g.
# acl(qw(--add --allow-principal User:bob --operation Read --topic t)).  The
# broker needs an authorizer (sasl_ssl_config sets one).
sub acl
{
	my ($self, @args) = @_;
	_sh_or_die('acl', $self->{port}, @args);
	return 1;
}

# Certificates made by kafka.sh make-certs in $dir: returns a hash of paths
# (ca, other_ca, keystore) and the keystore password (storepass).
sub make_certs
{
	my ($dir, $storepass) = @_;
	$storepass //= 'eo-store-' . int(rand(1_000_000));
	_sh_or_die('make-certs', $dir, $storepass);
	return {
		dir => $dir,
		ca => "$dir/ca.pem",
		other_ca => "$dir/other-ca.pem",
		keystore => "$dir/broker.p12",
		storepass => $storepass,
	};
}

# Broker properties for a SASL_SSL listener (named by extra_listeners
# "SASL_SSL://..."): the keystore from make_certs, PLAIN users given as
# name => password, and SCRAM-SHA-256/512 enabled (users from
# scram_format_args or add_scram_user).  No client certificates.  An
# authorizer too, which allows everything on resources without ACLs, and
# everything to the PLAINTEXT listener (User:ANONYMOUS) the harness uses.
sub sasl_ssl_config
{
	my ($certs, %plain_users) = @_;
	my $l = 'listener.name.sasl_ssl';
	my $users = join(' ', map { "user_$_=\"$plain_users{$_}\"" } sort keys %plain_users);
	return {
		'authorizer.class.name' => 'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
		'allow.everyone.if.no.acl.found' => 'true',
		'super.users' => 'User:ANONYMOUS',
		'sasl.enabled.mechanisms' => 'PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
		"$l.plain.sasl.jaas.config" =>
		  "org.apache.kafka.common.security.plain.PlainLoginModule required $users;",
		(map {
			("$l.$_.sasl.jaas.config" =>
				  'org.apache.kafka.common.security.scram.ScramLoginModule required;')
		} qw(scram-sha-256 scram-sha-512)),
		"$l.ssl.keystore.type" => 'PKCS12',
		"$l.ssl.keystore.location" => $certs->{keystore},
		"$l.ssl.keystore.password" => $certs->{storepass},
		"$l.ssl.key.password" => $certs->{storepass},
		"$l.ssl.client.auth" => 'none',
	};
}

# format_args that create SCRAM users with the storage: mechanism, then
# name => password pairs.
sub scram_format_args
{
	my ($mechanism, %users) = @_;
	return [ map { ('--add-scram', "$mechanism=[name=$_,password=$users{$_}]") }
		  sort keys %users ];
}

sub delete_topic
{
	my ($self, $topic) = @_;
	_sh_or_die('delete-topic', $self->{port}, $topic);
	return 1;
}

# The eo_producer command for produce() and produce_start(), and the
# manifest file it writes.
sub _produce_cmd
{
	my ($self, %a) = @_;
	croak 'produce: topic required' unless defined $a{topic};
	croak "producer $PRODUCER not built (make test/producer/eo_producer)"
	  unless -x $PRODUCER;

	my $manifest = sprintf('%s/manifest_%d_%s.tsv',
		$self->{dir}, ++$self->{seq}, $a{topic} =~ s/[^\w.-]/_/gr);
	my @cmd = ($PRODUCER, '-b', $self->brokers, '-t', $a{topic},
		'--manifest', $manifest);
	push @cmd, '-n', $a{count} if defined $a{count};

	my %valued = (
		start_id => '--start-id',
		salt => '--salt',
		partition => '--partition',
		dup_ratio => '--dup-ratio',
		seed => '--seed',
		format => '--format',
		bad_every => '--bad-every',
		timestamp_base => '--timestamp-base',
		rate => '--rate',
		transactional => '--transactional',
		txn_size => '--txn-size',
		abort_every => '--abort-every',
		create_topic => '--create-topic');
	for my $k (sort keys %valued)
	{
		push @cmd, $valued{$k}, $a{$k} if defined $a{$k};
	}
	push @cmd, '--headers' if $a{headers};
	push @cmd, '--idempotent' if $a{idempotent};
	for my $p (sort keys %{ $a{properties} // {} })
	{
		push @cmd, '-X', "$p=$a{properties}{$p}";
	}
	push @cmd, @{ $a{args} } if $a{args};
	return ($manifest, @cmd);
}

# Runs test/producer/eo_producer against this broker and returns its manifest
# as an array ref of hashes {partition, offset, event_id, status, key, value
# [, send_us]}, in manifest order.  Options map to the CLI flags:
#   topic, count, start_id, salt, partition, dup_ratio, seed, format,
#   bad_every, headers, timestamp_base, rate, idempotent, transactional,
#   txn_size, abort_every, create_topic, properties => { prop => value },
#   args => [ extra raw flags ].
sub produce
{
	my ($self, %a) = @_;
	my ($manifest, @cmd) = $self->_produce_cmd(%a);
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout($a{timeout} // $TIMEOUT));
	};
	croak "eo_producer failed (@cmd):\n$err$out" . ($@ // '') unless $ok;
	_log($err) if $err ne '';
	return read_manifest($manifest);
}

# produce() in the background (e.g. with rate => N): returns a closure that
# waits for the producer and returns its manifest.
sub produce_start
{
	my ($self, %a) = @_;
	my ($manifest, @cmd) = $self->_produce_cmd(%a);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($a{timeout} // $TIMEOUT));
	return sub {
		$h->finish or croak "eo_producer failed (@cmd):\n$err$out";
		_log($err) if $err ne '';
		return read_manifest($manifest);
	};
}

# The producer escapes tab, newline, carriage return and backslash in keys and
# values.
my %UNESCAPE = (t => "\t", n => "\n", r => "\r", '\\' => '\\');

sub _unescape
{
	my $s = shift;
	$s =~ s/\\([tnr\\])/$UNESCAPE{$1}/g;
	return $s;
}

sub read_manifest
{
	my $file = shift;
	my @rows;
	open(my $fh, '<', $file) or croak "cannot open manifest $file: $!";
	while (my $line = <$fh>)
	{
		chomp $line;
		next if $line eq '';
		my @f = split(/\t/, $line, -1);
		croak "bad manifest line in $file: $line" if @f < 6;
		my %r;
		@r{qw(partition offset event_id status key value)} = @f[ 0 .. 5 ];
		$r{$_} = _unescape($r{$_}) for qw(key value);
		$r{send_us} = $f[6] if @f > 6;
		push @rows, \%r;
	}
	close $fh;
	return \@rows;
}

# Reads a topic back with kcat (read_committed, from the beginning, until the
# end of the partitions).  $partition undef = all partitions; $count undef =
# everything.  Returns an array ref of hashes {partition, offset, timestamp,
# key, value, headers} in kcat's order (per partition ascending offsets);
# key/value are undef for NULL, headers is kcat's "n=v,n=v" text.
# Raw records through kcat -P, for values the test producer does not write
# (malformed JSON, odd timestamps): $msgs is [ { key => K, value => V }, ... ],
# all to partition $opt{partition} (0).  Multi-character delimiters that no
# payload contains keep every byte as is; empty_is_null => 1 turns an empty
# value into a NULL one (a tombstone).
my $KD = '<<<KEY>>>';
my $MD = '<<<EOM>>>';

sub kcat_produce
{
	my ($self, $topic, $msgs, %opt) = @_;
	my $in = join('', map { "$_->{key}$KD$_->{value}$MD" } @$msgs);
	my @cmd = ($KCAT, '-P', '-b', $self->brokers, '-t', $topic,
		'-p', $opt{partition} // 0, '-K', $KD, '-D', $MD);
	push @cmd, '-Z' if $opt{empty_is_null};
	my ($out, $err) = ('', '');
	IPC::Run::run(\@cmd, '<', \$in, '>', \$out, '2>', \$err,
		IPC::Run::timeout($TIMEOUT))
	  or croak "kcat -P failed (@cmd):\n$err";
	return;
}

sub kcat_consume
{
	my ($self, $topic, $partition, $count, %opt) = @_;
	my @cmd = ($KCAT, '-C', '-b', $self->brokers, '-t', $topic,
		'-o', $opt{offset} // 'beginning', '-e', '-q',
		'-X', 'isolation.level=' . ($opt{isolation} // 'read_committed'),
		'-f', "%p %o %T %K %S\n%k%s\n%h\n");
	push @cmd, '-p', $partition if defined $partition;
	push @cmd, '-c', $count if defined $count;
	# -X prop=value pairs, e.g. for SASL: brokers => '127.0.0.1:N' overrides.
	$cmd[3] = $opt{brokers} if defined $opt{brokers};
	for my $p (sort keys %{ $opt{properties} // {} })
	{
		push @cmd, '-X', "$p=$opt{properties}{$p}";
	}

	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run(\@cmd, '<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout($opt{timeout} // $TIMEOUT));
	};
	croak "kcat failed (@cmd):\n$err" . ($@ // '') unless $ok;

	my @msgs;
	my $pos = 0;
	while ($pos < length $out)
	{
		my $nl = index($out, "\n", $pos);
		croak "kcat output truncated at $pos" if $nl < 0;
		my ($p, $o, $ts, $kl, $vl) =
		  split / /, substr($out, $pos, $nl - $pos);
		croak 'kcat output unparsable: ' . substr($out, $pos, 80)
		  unless defined $vl;
		$pos = $nl + 1;
		my %m = (partition => $p, offset => $o, timestamp => $ts);
		if ($kl >= 0) { $m{key} = substr($out, $pos, $kl); $pos += $kl; }
		if ($vl >= 0) { $m{value} = substr($out, $pos, $vl); $pos += $vl; }
		croak "kcat output misaligned at $pos" if substr($out, $pos, 1) ne "\n";
		$pos++;
		$nl = index($out, "\n", $pos);
		croak "kcat output truncated at $pos" if $nl < 0;
		$m{headers} = substr($out, $pos, $nl - $pos);
		$pos = $nl + 1;
		push @msgs, \%m;
	}
	return \@msgs;
}

sub teardown
{
	my $self = shift;
	return if !$self->{running} || $self->{owner_pid} != $$;
	_sh('stop', $self->{dir});
	$self->{running} = 0;
}

sub DESTROY
{
	my $self = shift;
	local ($?, $@, $!);
	$self->teardown;
}

END
{
	local ($?, $@, $!);
	for my $k (@live)
	{
		$k->teardown if defined $k;
	}
}

1;
