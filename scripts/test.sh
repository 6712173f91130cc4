#!/bin/bash
# Builds eo_ingest and runs every test suite: pg_regress (installcheck),
# pgTAP (pgtapcheck) and the Perl TAP end-to-end tests against a real Kafka
# broker (tapcheck).
#
# As root (CI, a fresh Debian 12 machine): installs the dependencies, copies
# the source tree to $EO_TEST_DIR (default /var/tmp/eo_ingest-test) owned by
# the unprivileged user eo_test (initdb refuses root), builds there as eo_test,
# installs as root and runs the suites as eo_test.
# As any other user: assumes the dependencies are installed and runs in place.
#
# Environment: PG_CONFIG (a private copy made by scripts/private-pg.sh lets
# several runs share a machine), EO_TEST_DIR, EO_TEST_USER (default eo_test), EO_SUITES (default
# "installcheck pgtapcheck tapcheck"), PROVE_FLAGS, TAP_TESTS_FILES.

set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
PG_BINDIR="$("$PG_CONFIG" --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)"
TEST_USER="${EO_TEST_USER:-eo_test}"
SUITES=(${EO_SUITES:-installcheck pgtapcheck tapcheck})
T_START=$(date +%s)

step() { printf '\n=== %s (%ds)\n' "$*" $(( $(date +%s) - T_START )); }
build_failed() {
	step "summary"
	echo "FAIL  build; no suite ran"
	echo "suites: 0 passed, ${#SUITES[@]} failed"
	exit 1
}

if [ "$(id -u)" -eq 0 ]; then
	step "installing dependencies"
	"$SRC/scripts/install-deps.sh"

	if ! id -u "$TEST_USER" >/dev/null 2>&1; then
		step "creating user $TEST_USER"
		useradd --create-home --shell /bin/bash "$TEST_USER"
	fi

	DIR="${EO_TEST_DIR:-/var/tmp/eo_ingest-test}"
	step "copying the source tree to $DIR"
	rm -rf "$DIR"
	mkdir -p "$DIR"
	tar -C "$SRC" -cf - \
		--exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude='tmp_check*' --exclude=./results --exclude=./log \
		--exclude='regression.diffs' --exclude='regression.out' \
		--exclude=./test/producer/eo_producer . |
		tar -C "$DIR" -xf -
	chown -R "$TEST_USER": "$DIR"

	as_user() {
		runuser -u "$TEST_USER" -- env -i \
			HOME="$(getent passwd "$TEST_USER" | cut -d: -f6)" USER="$TEST_USER" \
			PATH="$PG_BINDIR:/usr/local/bin:/usr/bin:/bin" \
			LANG=C.UTF-8 \
			${CI:+CI="$CI"} \
			${EO_KAFKA_CACHE:+EO_KAFKA_CACHE="$EO_KAFKA_CACHE"} \
			${PROVE_FLAGS:+PROVE_FLAGS="$PROVE_FLAGS"} \
			${TAP_TESTS_FILES:+TAP_TESTS_FILES="$TAP_TESTS_FILES"} \
			"$@"
	}

	step "building as $TEST_USER"
	as_user make -C "$DIR" -j2 PG_CONFIG="$PG_CONFIG" || build_failed

	step "installing as root"
	make -C "$DIR" PG_CONFIG="$PG_CONFIG" install || build_failed
else
	DIR="$SRC"
	as_user() { env PATH="$PG_BINDIR:$PATH" "$@"; }

	step "building in place (not root: dependencies assumed installed)"
	make -C "$DIR" -j2 PG_CONFIG="$PG_CONFIG" || build_failed
	if [ -w "$("$PG_CONFIG" --pkglibdir)" ] && [ -w "$("$PG_CONFIG" --sharedir)/extension" ]; then
		make -C "$DIR" PG_CONFIG="$PG_CONFIG" install
	else
		echo "not root: skipping make install; the suites use the installed copy"
	fi
fi

passed=()
failed=()
for suite in "${SUITES[@]}"; do
	step "make $suite"
	t0=$(date +%s)
	if as_user make -C "$DIR" PG_CONFIG="$PG_CONFIG" "$suite"; then
		passed+=("$suite ($(( $(date +%s) - t0 ))s)")
	else
		failed+=("$suite ($(( $(date +%s) - t0 ))s)")
		if [ "$suite" = installcheck ] && [ -f "$DIR/regression.diffs" ]; then
			echo "--- regression.diffs (first 200 lines)"
			head -n 200 "$DIR/regression.diffs"
		fi
		if [ "$suite" = tapcheck ] || [ "$suite" = pgtapcheck ]; then
			for f in "$DIR"/tmp_check/log/regress_log_*; do
				[ -f "$f" ] || continue
				echo "--- tail of $f"
				tail -n 60 "$f"
			done
		fi
	fi
done

step "summary"
for s in ${passed[@]+"${passed[@]}"}; do echo "PASS  $s"; done
for s in ${failed[@]+"${failed[@]}"}; do echo "FAIL  $s"; done
echo "suites: ${#passed[@]} passed, ${#failed[@]} failed"
[ "${#failed[@]}" -eq 0 ]
