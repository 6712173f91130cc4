# Sourced by bench/run.sh and bench/callgrind.sh: the benchmark's records once
# more as Avro in the Confluent wire format, against a throwaway Apicurio
# Registry (test/registry/apicurio.sh), serialized by confluent-kafka's
# AvroSerializer (bench/avro_events.py reads the test producer's manifest:
# same partitions, keys, order and values as the JSON topic).
#
# The caller defines as_user (run a command as the servers' user) and stops
# the registry in its cleanup (avro_registry_stop) if it started it.
# EO_AVRO_PYTHON: a Python with confluent-kafka (default the venv that
# scripts/install-deps.sh makes).

AVRO_PYTHON="${EO_AVRO_PYTHON:-/opt/eo_ingest-venv/bin/python}"

# avro_registry_url PORT: the registry's Confluent-compatible base URL
avro_registry_url() {
	"$(dirname "${BASH_SOURCE[0]}")/../test/registry/apicurio.sh" url "$1"
}

# avro_registry_start TREE DIR PORT: starts the registry (DIR: its storage and log)
avro_registry_start() {
	as_user "$1/test/registry/apicurio.sh" start "$2" "$3"
}

# avro_registry_stop TREE DIR
avro_registry_stop() {
	as_user "$1/test/registry/apicurio.sh" stop "$2" >/dev/null 2>&1 || true
}

# avro_topic TREE PRODUCER BROKERS TOPIC PARTITIONS MANIFEST REGISTRY_URL:
# creates TOPIC and fills it with the manifest's committed records as Avro
avro_topic() {
	as_user "$2" -b "$3" -t "$4" --create-topic "$5"
	as_user "$AVRO_PYTHON" "$1/bench/avro_events.py" --manifest "$6" \
		--brokers "$3" --topic "$4" --registry "$7" 2>&1
}
