# Producer manifest -> the same committed records as Kafka Connect
# JsonConverter envelopes ({"schema": ..., "payload": ...}), one file per
# partition (DIR/part.P, in offset order), for sinks that accept only values
# with a Connect schema (the Debezium JDBC sink).  The payload holds the
# target's six columns; the semantic types make the sink bind event_id as
# uuid, amount as numeric and created_at as timestamptz.
# Usage: awk -F '\t' -v dir=DIR -f json_fields.awk -f manifest2envelope.awk MANIFEST

BEGIN {
	schema = "{\"type\":\"struct\",\"name\":\"bench.Event\",\"optional\":false,\"fields\":[" \
		"{\"field\":\"event_id\",\"type\":\"string\",\"optional\":false,\"name\":\"io.debezium.data.Uuid\"}," \
		"{\"field\":\"seq\",\"type\":\"int32\",\"optional\":false}," \
		"{\"field\":\"customer_id\",\"type\":\"int32\",\"optional\":false}," \
		"{\"field\":\"amount\",\"type\":\"bytes\",\"optional\":false,\"name\":\"org.apache.kafka.connect.data.Decimal\",\"parameters\":{\"scale\":\"2\"}}," \
		"{\"field\":\"note\",\"type\":\"string\",\"optional\":false}," \
		"{\"field\":\"created_at\",\"type\":\"string\",\"optional\":false,\"name\":\"io.debezium.time.ZonedTimestamp\"}]}"
}
$4 == "committed" {
	v = $6
	# JsonConverter reads a Decimal from a JSON number as well as from base64
	printf "{\"schema\":%s,\"payload\":{\"event_id\":\"%s\",\"seq\":%s,\"customer_id\":%s,\"amount\":%s,\"note\":\"%s\",\"created_at\":\"%s\"}}\n",
		schema, jstr(v, "event_id"), jnum(v, "seq"), jnum(v, "customer_id"), jstr(v, "amount"),
		jstr(v, "note"), jstr(v, "created_at") >(dir "/part." $1)
}
