#!/bin/bash
# Builds eo_ingest and runs every test suite on every supported PostgreSQL
# major (scripts/pg-versions.sh): pg_regress (installcheck), pgTAP
# (pgtapcheck) and the Perl TAP end-to-end tests against a real Kafka broker
# (tapcheck); then, once, the release tarball (distcheck: make dist, PGXN's
# META.json validator, the tarball builds on every major) and the Debian
# package (debcheck: built with pg_buildext, installed with dpkg -i,
# installcheck against the installed files).
#
# As root (CI, a fresh Debian 12 machine): installs the dependencies, copies
# the source tree to $EO_TEST_DIR/pg<major> (default base
# /var/tmp/eo_ingest-test) owned by the unprivileged user eo_test (initdb
# refuses root), builds there as eo_test, installs as root and runs the suites
# as eo_test.
# As any other user: assumes the dependencies are installed and runs in place
# (one major only, no debcheck).
#
# Environment:
#   EO_PG_VERSIONS  majors to test, default "15 18"; the slow TAP files
#                   (TAP_SLOW_TESTS in the Makefile) run on the first only
#   PG_CONFIG       test only the major of this pg_config (a private copy made
#                   by scripts/private-pg.sh lets several runs share a machine)
#   PG_CONFIG_<major>  the pg_config to use for that major
#   EO_SUITES       default "installcheck pgtapcheck tapcheck distcheck debcheck"
#   EO_TAP_JOBS     TAP files run at a time (default 2)
#   EO_TEST_DIR, EO_TEST_USER (default eo_test), PROVE_FLAGS, TAP_TESTS_FILES

set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$SRC/scripts/pg-versions.sh"
TEST_USER="${EO_TEST_USER:-eo_test}"
SUITES=(${EO_SUITES:-installcheck pgtapcheck tapcheck distcheck debcheck})
T_START=$(date +%s)

if [ -n "${PG_CONFIG:-}" ] && [ -z "${EO_PG_VERSIONS:-}" ]; then
	major="$(eo_pg_major "$PG_CONFIG")"
	VERSIONS=("$major")
	printf -v "PG_CONFIG_$major" '%s' "$PG_CONFIG"
else
	VERSIONS=(${EO_PG_VERSIONS:-$EO_PG_VERSIONS_DEFAULT})
fi

step() { printf '\n=== %s (%ds)\n' "$*" $(( $(date +%s) - T_START )); }

passed=()
failed=()
record() { # record PASS|FAIL NAME T0
	local entry="$2 ($(( $(date +%s) - $3 ))s)"
	if [ "$1" = PASS ]; then passed+=("$entry"); else failed+=("$entry"); fi
}

copy_tree() { # copy_tree DIR: the source tree without build products
	rm -rf "$1"
	mkdir -p "$1"
	tar -C "$SRC" -cf - \
		--exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude='tmp_check*' --exclude=./results --exclude=./log \
		--exclude='regression.diffs' --exclude='regression.out' \
		--exclude=./test/producer/eo_producer --exclude='./build-*' \
		--exclude=./debian/.debhelper --exclude='./debian/postgresql-*' \
		. | tar -C "$1" -xf -
	chown -R "$TEST_USER": "$1"
}

show_failure() { # show_failure DIR SUITE
	if [ "$2" = installcheck ] && [ -f "$1/regression.diffs" ]; then
		echo "--- regression.diffs (first 200 lines)"
		head -n 200 "$1/regression.diffs"
	fi
	if [ "$2" = tapcheck ] || [ "$2" = pgtapcheck ]; then
		for f in "$1"/tmp_check/log/regress_log_*; do
			[ -f "$f" ] || continue
			echo "--- tail of $f"
			tail -n 60 "$f"
		done
	fi
}

if [ "$(id -u)" -eq 0 ]; then
	step "installing dependencies"
	"$SRC/scripts/install-deps.sh"

	if ! id -u "$TEST_USER" >/dev/null 2>&1; then
		step "creating user $TEST_USER"
		useradd --create-home --shell /bin/bash "$TEST_USER"
	fi
	BASE="${EO_TEST_DIR:-/var/tmp/eo_ingest-test}"

	as_user() { # as_user BINDIR COMMAND...
		local bindir="$1"
		shift
		runuser -u "$TEST_USER" -- env -i \
			HOME="$(getent passwd "$TEST_USER" | cut -d: -f6)" USER="$TEST_USER" \
			PATH="$bindir:/usr/local/bin:/usr/bin:/bin" \
			LANG=C.UTF-8 \
			${CI:+CI="$CI"} \
			${EO_KAFKA_CACHE:+EO_KAFKA_CACHE="$EO_KAFKA_CACHE"} \
			${PROVE_FLAGS:+PROVE_FLAGS="$PROVE_FLAGS"} \
			${EO_TAP_JOBS:+EO_TAP_JOBS="$EO_TAP_JOBS"} \
			${TAP_TESTS_FILES:+TAP_TESTS_FILES="$TAP_TESTS_FILES"} \
			${EO_TAP_SLOW:+EO_TAP_SLOW="$EO_TAP_SLOW"} \
			"$@"
	}
else
	BASE=""
	as_user() { local bindir="$1"; shift; env PATH="$bindir:$PATH" "$@"; }
fi

first=1
for v in "${VERSIONS[@]}"; do
	pgc="$(eo_pg_config "$v")"
	bindir="$("$pgc" --bindir)"
	# the slow chaos tests once, on the first major
	if [ "$first" -eq 1 ]; then unset EO_TAP_SLOW; else export EO_TAP_SLOW=skip; fi
	first=0

	t0=$(date +%s)
	if [ -n "$BASE" ]; then
		DIR="$BASE/pg$v"
		step "PostgreSQL $v: copying the source tree to $DIR"
		copy_tree "$DIR"
		step "PostgreSQL $v: building as $TEST_USER"
		if ! as_user "$bindir" make -C "$DIR" -j2 PG_CONFIG="$pgc" ||
			! { step "PostgreSQL $v: installing as root"; make -C "$DIR" PG_CONFIG="$pgc" install; }; then
			record FAIL "$v build; no suite ran on $v" "$t0"
			continue
		fi
	else
		DIR="$SRC"
		step "PostgreSQL $v: building in place (not root: dependencies assumed installed)"
		make -C "$DIR" clean PG_CONFIG="$pgc" >/dev/null
		if ! make -C "$DIR" -j2 PG_CONFIG="$pgc"; then
			record FAIL "$v build; no suite ran on $v" "$t0"
			continue
		fi
		if [ -w "$("$pgc" --pkglibdir)" ] && [ -w "$("$pgc" --sharedir)/extension" ]; then
			make -C "$DIR" PG_CONFIG="$pgc" install
		else
			echo "not root: skipping make install; the suites use the installed copy"
		fi
	fi

	for suite in "${SUITES[@]}"; do
		case "$suite" in distcheck | debcheck) continue ;; esac
		step "PostgreSQL $v: make $suite"
		t0=$(date +%s)
		if as_user "$bindir" make -C "$DIR" PG_CONFIG="$pgc" "$suite"; then
			record PASS "$v $suite" "$t0"
		else
			record FAIL "$v $suite" "$t0"
			show_failure "$DIR" "$suite"
		fi
	done
done

for suite in "${SUITES[@]}"; do
	[ "$suite" = distcheck ] || continue
	t0=$(date +%s)
	step "distcheck: make dist, META.json, the tarball builds"
	pgcs=()
	for v in "${VERSIONS[@]}"; do pgcs+=("$(eo_pg_config "$v")"); done
	if "$SRC/scripts/distcheck.sh" "${BASE:-$SRC/tmp_check}/dist" "${pgcs[@]}"; then
		record PASS distcheck "$t0"
	else
		record FAIL distcheck "$t0"
	fi
done

for suite in "${SUITES[@]}"; do
	[ "$suite" = debcheck ] || continue
	t0=$(date +%s)
	if [ -z "$BASE" ]; then
		step "debcheck: skipped (needs root for dpkg -i)"
		continue
	fi
	step "debcheck: building, installing and testing the Debian package"
	if "$SRC/scripts/debcheck.sh" "$BASE/deb" "$TEST_USER"; then
		record PASS debcheck "$t0"
	else
		record FAIL debcheck "$t0"
	fi
done

step "summary"
for s in ${passed[@]+"${passed[@]}"}; do echo "PASS  $s"; done
for s in ${failed[@]+"${failed[@]}"}; do echo "FAIL  $s"; done
echo "suites: ${#passed[@]} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
