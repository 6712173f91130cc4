# Runs the pgTAP suites in test/pgtap/*.sql against a throwaway cluster with
# eo_ingest in shared_preload_libraries, one subtest per file, so that prove
# counts every pgTAP assertion and fails on any failure, plan mismatch or
# SQL error.

use strict;
use warnings;

use File::Basename;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use TAP::Parser;
use Test::More;

my @files = sort glob(dirname(__FILE__) . '/pgtap/*.sql');
BAIL_OUT('no pgTAP files in test/pgtap') unless @files;

my $node = PostgreSQL::Test::Cluster->new('pgtap');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'eo_ingest'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE eo_pgtap');
$node->safe_psql('eo_pgtap', 'CREATE EXTENSION pgtap; CREATE EXTENSION eo_ingest;');

for my $file (@files)
{
	subtest basename($file) => sub {
		my ($out, $err) = ('', '');
		my $rc = $node->psql('eo_pgtap', slurp_file($file),
			stdout => \$out, stderr => \$err,
			extra_params => [ '-v', 'ON_ERROR_STOP=1' ]);

		my $parser = TAP::Parser->new({ tap => "$out\n" });
		while (my $result = $parser->next)
		{
			if ($result->is_test)
			{
				ok($result->is_ok, $result->description =~ s/^- //r)
				  or diag($result->as_string);
			}
			elsif ($result->is_comment)
			{
				diag($result->as_string);
			}
		}
		ok($parser->tests_run > 0, 'the file ran tests');
		ok($parser->is_good_plan, 'the file ran the tests it planned')
		  or diag(sprintf('planned %s, ran %d', $parser->plan // 'none', $parser->tests_run));
		is($rc, 0, 'psql finished without error') or diag($err);
	};
}

$node->stop;
done_testing();
