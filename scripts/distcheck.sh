#!/bin/bash
# The release tarball and its PGXN metadata: make dist from the committed
# tree, META.json accepted by PGXN's validator (pgxn_meta, install-deps.sh
# builds it), the versions in META.json, eo_ingest.control and
# debian/changelog agreeing, and the unpacked tarball building against every
# pg_config given (so that it ships every file a build needs).
#   scripts/distcheck.sh WORKDIR PG_CONFIG...
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:?usage: $0 WORKDIR PG_CONFIG...}"
shift
PGXN_META="${PGXN_META:-/opt/eo_ingest/tools/bin/pgxn_meta}"
fail() { echo "distcheck: $*" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK"
zip="$(make -s -C "$SRC" dist DISTDIR="$WORK" PG_CONFIG="${1:-pg_config}" | tail -n 1)"
[ -f "$zip" ] || fail "make dist wrote no $zip"
unzip -q "$zip" -d "$WORK"
top="$WORK/$(basename "$zip" .zip)"
[ -d "$top" ] || fail "$zip does not unpack into $(basename "$top")/"
for f in META.json Makefile eo_ingest.control README.md src/compat.h debian/control; do
	[ -f "$top/$f" ] || fail "$f missing from $zip"
done
[ ! -e "$top/.ci" ] || fail ".ci is in $zip"

(cd "$top" && "$PGXN_META" META.json) || fail "PGXN's validator rejects META.json"

meta_version="$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["version"]); assert m["provides"]["eo_ingest"]["version"] == m["version"], "provides.eo_ingest.version differs"' "$top/META.json")"
ext_version="$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$top/eo_ingest.control")"
deb_version="$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)"
echo "META.json $meta_version, eo_ingest.control $ext_version, debian/changelog $deb_version"
[ "$meta_version" = "$ext_version.0" ] || [ "$meta_version" = "$ext_version" ] ||
	fail "META.json version $meta_version is not default_version $ext_version"
[ "$deb_version" = "$ext_version" ] || fail "debian/changelog version $deb_version is not $ext_version"
[ -f "$top/eo_ingest--$ext_version.sql" ] || grep -q "eo_ingest--$ext_version.sql" "$top/Makefile" ||
	ls "$top"/eo_ingest--*--"$ext_version".sql >/dev/null 2>&1 ||
	fail "no script installs or updates to version $ext_version"

for pgc in "$@"; do
	echo "distcheck: building the unpacked tarball against $("$pgc" --version)"
	rm -rf "$WORK/build"
	cp -a "$top" "$WORK/build"
	make -s -C "$WORK/build" -j2 PG_CONFIG="$pgc" >/dev/null
	[ -f "$WORK/build/eo_ingest.so" ] || fail "no eo_ingest.so from the tarball"
done
echo "distcheck: $(basename "$zip") OK"
