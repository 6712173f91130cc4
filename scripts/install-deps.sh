#!/bin/bash
# Installs everything eo_ingest needs to build, test and demo on Debian 12,
# then fetches the Kafka broker jars and Kafka Connect with the Debezium
# connector plugins (test/connect: the benchmark's peers).  Run as root; safe to run again (a second
# run touches neither apt nor Maven when everything is already there).

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(
	postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
	librdkafka-dev kcat
	libavro-dev libcurl4-openssl-dev python3-venv
	libipc-run-perl libtap-parser-sourcehandler-pgtap-perl
	make gcc openssl procps
	maven openjdk-17-jre-headless
	curl jq
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

"$HERE/../test/kafka/kafka.sh" fetch
"$HERE/../test/connect/connect.sh" fetch
