#!/bin/bash
# The Debian package, end to end: builds postgresql-<major>-eo-ingest with
# pg_buildext (dpkg-buildpackage) from a copy of the tree, installs it with
# dpkg -i, checks that the installed files are the package's (dpkg -V), runs
# installcheck (pg_regress) against them as USER, then removes the package.
# Run as root:  scripts/debcheck.sh WORKDIR USER
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:?usage: $0 WORKDIR USER}"
USER_="${2:?usage: $0 WORKDIR USER}"

rm -rf "$WORK"
mkdir -p "$WORK/src"
tar -C "$SRC" -cf - \
	--exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
	--exclude='tmp_check*' --exclude=./results --exclude=./log \
	--exclude='regression.*' --exclude=./test/producer/eo_producer \
	--exclude='./build-*' --exclude=./debian/.debhelper \
	--exclude='./debian/postgresql-*' . | tar -C "$WORK/src" -xf -

cd "$WORK/src"
# the suites need Kafka and a running server: debcheck tests the installed
# package instead of dh_pgxs_test
DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b
cd "$WORK"
ls -l ./*.deb

majors="$(cd "$WORK/src" && pg_buildext supported-versions)"
status=0
for v in $majors; do
	pkg="postgresql-$v-eo-ingest"
	deb="$(ls "$WORK"/"${pkg}"_*.deb)"
	dpkg -i "$deb"
	dpkg -L "$pkg" | grep -E 'eo_ingest(\.so|\.control|--.*\.sql)$'
	dpkg -V "$pkg"

	# installcheck against the installed files, from a tree without any build
	# product of its own
	rm -rf "$WORK/check-$v"
	cp -a "$WORK/src" "$WORK/check-$v"
	chown -R "$USER_": "$WORK/check-$v"
	if ! runuser -u "$USER_" -- env -i HOME="$WORK/check-$v" LANG=C.UTF-8 \
		PATH="/usr/lib/postgresql/$v/bin:/usr/bin:/bin" \
		make -C "$WORK/check-$v" installcheck PG_CONFIG="/usr/lib/postgresql/$v/bin/pg_config"; then
		head -n 200 "$WORK/check-$v/regression.diffs" 2>/dev/null || true
		status=1
	fi
	dpkg -r "$pkg"
done
exit "$status"
