#!/bin/bash
# Makes a private, relocated copy of the Debian PostgreSQL 15 installation
# under DIR, so that several builds of eo_ingest can be installed and tested
# side by side on one machine (make install writes into the copy only).
#
#   scripts/private-pg.sh /opt/pg-a
#   PG_CONFIG=/opt/pg-a/usr/lib/postgresql/15/bin/pg_config \
#       EO_TEST_DIR=/var/tmp/eo-a scripts/test.sh
#
# PostgreSQL finds its share and lib directories relative to its binaries,
# so the copy keeps Debian's layout below DIR.
set -euo pipefail
DIR="${1:?usage: $0 DIR}"
mkdir -p "$DIR/usr/lib/postgresql" "$DIR/usr/share/postgresql" \
	"$DIR/usr/include" "$DIR/usr/lib"
rm -rf "$DIR/usr/lib/postgresql/15" "$DIR/usr/share/postgresql/15"
cp -a /usr/lib/postgresql/15 "$DIR/usr/lib/postgresql/"
cp -a /usr/share/postgresql/15 "$DIR/usr/share/postgresql/"
ln -sfn /usr/include/postgresql "$DIR/usr/include/postgresql"
ln -sfn /usr/lib/x86_64-linux-gnu "$DIR/usr/lib/x86_64-linux-gnu"
echo "PG_CONFIG=$DIR/usr/lib/postgresql/15/bin/pg_config"
