# eo_ingest: PGXS build, regression, pgTAP and Perl TAP suites

EXTENSION = eo_ingest
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(srcdir)/eo_ingest.control)
MODULE_big = eo_ingest
# eo_ingest.sql is the current version's install script; older versions'
# install scripts and every upgrade script are kept as released
DATA_built = eo_ingest--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(wildcard eo_ingest--*.sql))
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-cast-function-type
SHLIB_LINK = -lrdkafka -lavro -lcurl

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=$(srcdir)/test/regress.conf --load-extension=eo_ingest

EXTRA_CLEAN = test/producer/eo_producer tmp_check tmp_check_regress results regression.diffs regression.out

# no JIT bitcode: it would need clang on every build machine
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

eo_ingest--$(EXTVERSION).sql: eo_ingest.sql eo_ingest.control
	sed '1s|.*|/* eo_ingest--$(EXTVERSION).sql: generated from eo_ingest.sql by make */|' $< > $@

# the test producer is built by the targets that use it, not by `make all`
producer: test/producer/eo_producer

test/producer/eo_producer: test/producer/eo_producer.c
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lrdkafka

PG_BINDIR := $(shell $(PG_CONFIG) --bindir)
PROVE ?= prove

# pgTAP: catalog shape and privileges, run against a throwaway cluster
pgtapcheck:
	rm -rf '$(CURDIR)'/tmp_check/t_pgtap_runner_pgtap_data
	TESTDIR='$(CURDIR)' PG_BINDIR=$(PG_BINDIR) PATH="$(PG_BINDIR):$$PATH" PG_REGRESS=$(pgxsdir)/src/test/regress/pg_regress \
	$(PROVE) $(or $(PROVE_FLAGS),-v) -I $(pgxsdir)/src/test/perl -I test/perl test/pgtap_runner.pl

# Perl TAP end-to-end tests against a real Kafka broker
tapcheck: test/producer/eo_producer
	rm -rf '$(CURDIR)'/tmp_check
	TESTDIR='$(CURDIR)' PG_BINDIR=$(PG_BINDIR) PATH="$(PG_BINDIR):$$PATH" PG_REGRESS=$(pgxsdir)/src/test/regress/pg_regress \
	$(PROVE) $(PROVE_FLAGS) -I $(pgxsdir)/src/test/perl -I test/perl $(or $(TAP_TESTS_FILES),test/t/*.pl)

check-all: installcheck pgtapcheck tapcheck

.PHONY: producer pgtapcheck tapcheck check-all
