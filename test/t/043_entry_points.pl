
# Every SQL entry point of every extension version, against this library.
#
# A database may stay at any released version while the newest library is
# loaded (between a package upgrade and ALTER EXTENSION UPDATE).  For every
# version the server offers (pg_available_extension_versions: each install
# script and each version an update path reaches, so later versions join by
# themselves), an unprivileged role calls every function of the extension it
# may execute, first with NULL arguments, then with each kafka_options
# property that makes librdkafka load a library or run a command.  No backend
# may crash ("terminated by signal" in the server log), no library may be
# loaded (its constructor would create a marker file), the server stays up.
#
# Then the worker's own check: a pipeline row holding a code-loading property
# written straight into a 0.1 catalog (0.1 let PUBLIC insert into
# eo_ingest.pipelines), and a pipeline created by a superuser who has since
# lost superuser, both end failed without librdkafka seeing the property.
# The second also shows that the marker detection works: while its owner is
# still a superuser, creating it loads the library.

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use EoTest;

my $node = EoTest::new_node('eo043', no_extension => 1);
my $dir = PostgreSQL::Test::Utils::tempdir;

# Two libraries whose constructors leave a marker file when loaded.
sub marker_lib
{
	my ($name) = @_;
	my $c = "$dir/$name.c";
	open my $fh, '>', $c or die "$c: $!";
	print $fh <<"EOC";
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void
mark(void)
{
	int fd = open("$dir/$name.loaded", O_CREAT | O_WRONLY, 0644);

	if (fd >= 0)
		close(fd);
}

/* what librdkafka calls in a plugin: this one accepts */
int conf_init(void *conf, void **opaque, char *errstr, unsigned long errstr_size);
int
conf_init(void *conf, void **opaque, char *errstr, unsigned long errstr_size)
{
	return 0;
}
EOC
	close $fh;
	my $cc = $ENV{CC} // 'cc';
	system($cc, '-shared', '-fPIC', '-o', "$dir/$name.so", $c) == 0
	  or die "could not compile $c";
	return ("$dir/$name.so", "$dir/$name.loaded");
}
my ($evil, $evil_mark) = marker_lib('evil');
my ($former, $former_mark) = marker_lib('former');

# Each way kafka_options can make librdkafka load code or run a command.
my @attacks = (
	qq({"plugin.library.paths": "$evil"}),
	qq({"security.protocol": "ssl", "ssl.engine.location": "$evil"}),
	qq({"security.protocol": "ssl", "ssl.providers": "$evil"}),
	qq({"security.protocol": "sasl_plaintext", "sasl.mechanisms": "GSSAPI", "sasl.kerberos.kinit.cmd": "touch $evil_mark"}),
	qq({"security.protocol": "sasl_plaintext", "sasl.mechanism": "GSSAPI", "sasl.kerberos.service.name": "x; touch $evil_mark"}),
);

$node->safe_psql('postgres', 'CREATE ROLE eo_nobody LOGIN');

sub psql_as
{
	my ($role, $db, $sql) = @_;
	my ($out, $err) = ('', '');
	local $SIG{PIPE} = 'IGNORE';
	my $ret = $node->psql($db, $sql, stdout => \$out, stderr => \$err,
		on_error_die => 0, extra_params => [ '-U', $role ]);
	return ($ret, $out, $err);
}

sub as_nobody
{
	my ($db, $sql) = @_;
	return psql_as('eo_nobody', $db, "SET client_min_messages = error; $sql");
}

# A literal for an argument the function cannot do without.
sub required_arg
{
	my ($name, $type) = @_;
	return "'127.0.0.1:1'" if $name eq 'brokers';
	return "'public.nobody_orders'" if $type eq 'regclass';
	return "'earliest'" if $name =~ /position$/;
	return "'nobody_$name'" if $name eq 'name';
	return "'x'" if $type eq 'text';
	return 'false' if $type eq 'boolean';
	return '1' if $type =~ /^(integer|bigint|smallint)$/;
	return '{}' if $type =~ /\[\]$/;
	return "NULL::$type";
}

my @versions = split /\n/, $node->safe_psql('postgres',
	"SELECT version FROM pg_available_extension_versions WHERE name = 'eo_ingest' "
	  . "ORDER BY string_to_array(version, '.')::int[]");
cmp_ok(scalar @versions, '>=', 2, 'several extension versions are available: ' . join(', ', @versions));

my $log_start = -s $node->logfile;
for my $v (@versions)
{
	(my $db = "v_$v") =~ s/\W/_/g;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION eo_ingest VERSION '$v'");
	EoTest::create_orders_table($node, 'public.nobody_orders', dbname => $db);
	$node->safe_psql($db, 'ALTER TABLE public.nobody_orders OWNER TO eo_nobody');

	my @fns = split /\n/, $node->safe_psql($db, <<'EOS');
SELECT p.proname || '|' || p.pronargs || '|' || p.pronargdefaults || '|' ||
	   coalesce(array_to_string(p.proargnames[1:p.pronargs], ','), '') || '|' ||
	   coalesce((SELECT string_agg(format_type(t, NULL), ',' ORDER BY i)
				   FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i)), '')
  FROM pg_proc p
 WHERE p.pronamespace = 'eo_ingest'::regnamespace
   AND p.prokind = 'f' AND p.prorettype <> 'trigger'::regtype
   AND has_function_privilege('eo_nobody', p.oid, 'EXECUTE')
 ORDER BY 1
EOS
	cmp_ok(scalar @fns, '>', 5, "$v: eo_nobody may execute " . scalar(@fns) . ' functions');

	my ($nulls, $attacked) = (0, 0);
	for my $f (@fns)
	{
		my ($name, $nargs, $ndefaults, $argnames, $argtypes) = split /\|/, $f, -1;
		my @names = split /,/, $argnames, -1;
		my @types = split /,/, $argtypes, -1;

		# every argument NULL
		my $call = "eo_ingest.$name(" . join(', ', map { "NULL::$_" } @types) . ')';
		as_nobody($db, "SELECT $call");
		$nulls++;

		# each code-loading property in each jsonb argument
		for my $j (grep { $types[$_] eq 'jsonb' } 0 .. $#types)
		{
			for my $attack (@attacks)
			{
				# the arguments without defaults, then the jsonb one
				my $required = $nargs - $ndefaults;
				my @a = map {
					$_ == $j ? "'$attack'::jsonb" : required_arg($names[$_] // '', $types[$_])
				} 0 .. $required - 1;
				if ($j >= $required)
				{
					next if ($names[$j] // '') eq '';
					push @a, "\"$names[$j]\" => '$attack'::jsonb";
				}
				my ($ret, $out, $err) = as_nobody($db, "SELECT eo_ingest.$name(" . join(', ', @a) . ')');
				$attacked++;
				# the functions that hand options to librdkafka refuse them
				isnt($ret, 0, "$v: $name refuses eo_nobody's $attack")
				  if $name =~ /^(_check_kafka_options|_query_offsets|create_pipeline|_catalog_insert_pipeline)$/;
			}
		}
		is($node->safe_psql('postgres', 'SELECT 1'), '1', "$v: server up after $name");
	}
	cmp_ok($attacked, '>=', scalar(@attacks) * 2,
		"$v: $nulls functions called with NULLs, $attacked calls with code-loading options");
	ok(!-e $evil_mark, "$v: no library loaded and no command run for eo_nobody");

	# 0.1's catalog let PUBLIC insert pipeline rows directly: the worker,
	# running as eo_nobody, must refuse the stored option itself.
	my ($ret) = as_nobody($db,
		"INSERT INTO eo_ingest.pipelines (name, brokers, topic, target, kafka_options) "
		  . "VALUES ('direct', '127.0.0.1:1', 't', 'public.nobody_orders', "
		  . "'{\"plugin.library.paths\": \"$evil\"}')");
	if ($v eq '0.1')
	{
		is($ret, 0, '0.1: eo_nobody inserts a pipeline row with plugin.library.paths directly');
		$node->safe_psql($db, 'SELECT eo_ingest._notify_change()');
		ok(EoTest::wait_for($node,
			"SELECT state || ': ' || (last_error ~ 'only a superuser may set it') FROM eo_ingest.pipeline_status WHERE name = 'direct'",
			'failed: true', undef, dbname => $db),
			'0.1: the worker refuses the stored option (failed, says why)');
		ok(!-e $evil_mark, '0.1: the worker loaded no library');
		$node->safe_psql($db, "DELETE FROM eo_ingest.pipelines WHERE name = 'direct'");
	}
	else
	{
		isnt($ret, 0, "$v: eo_nobody may not insert pipeline rows directly");
	}
}

# A superuser's pipeline may load a library, until its owner is no superuser.
my $last = $versions[-1];
(my $lastdb = "v_$last") =~ s/\W/_/g;
$node->safe_psql('postgres', 'CREATE ROLE eo_formersu LOGIN SUPERUSER');
EoTest::create_orders_table($node, 'public.former_orders', dbname => $lastdb);
$node->safe_psql($lastdb, 'ALTER TABLE public.former_orders OWNER TO eo_formersu');
my ($ret, $out, $err) = psql_as('eo_formersu', $lastdb,
	"SELECT eo_ingest.create_pipeline(name => 'former', brokers => '127.0.0.1:1', topic => 't', "
	  . "target => 'public.former_orders', start => false, "
	  . "kafka_options => '{\"plugin.library.paths\": \"$former\"}')");
ok(-e $former_mark, 'a superuser\'s kafka_options load the library (the marker detection works)')
  or diag($err);
unlink $former_mark;
$node->safe_psql('postgres', 'ALTER ROLE eo_formersu NOSUPERUSER');
($ret, $out, $err) = psql_as('eo_formersu', $lastdb, "SELECT eo_ingest.resume_pipeline('former')");
is($ret, 0, 'the former superuser resumes the pipeline') or diag($err);
ok(EoTest::wait_for($node,
	"SELECT state || ': ' || (last_error ~ 'plugin.library.paths.*only a superuser may set it') FROM eo_ingest.pipeline_status WHERE name = 'former'",
	'failed: true', undef, dbname => $lastdb),
	'the worker of an owner who lost superuser refuses the option (failed, says why)');
ok(!-e $former_mark, 'the worker loaded no library');

my $log = slurp_file($node->logfile, $log_start);
unlike($log, qr/terminated by signal/, 'no backend crashed');
unlike($log, qr/server process .* was terminated/, 'the postmaster restarted nothing');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server up');

$node->stop;
done_testing();
