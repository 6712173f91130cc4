#!/usr/bin/env python3
"""Produce Avro records for eo_ingest's tests with a real client's serializer.

Reads JSON lines on stdin, one record each, and produces them to a topic with
confluent-kafka's Producer.  Values are serialized by confluent-kafka's
AvroSerializer (the Confluent wire format: magic byte 0, 4-byte schema id,
Avro binary) against --registry, or with fastavro's schemaless writer as plain
Avro binary (--plain).  A line {"$raw_hex": "..."} produces those bytes as the
value unchanged (for malformed records); --schema-id N writes the wire
format by hand with that id and fastavro's body, for when the registry is
down (the id must have been registered before); {"$key": ..., "$value": ...} gives a
key too (serialized with --key-schema when given, by the registry's
AvroSerializer or, with --plain, as plain Avro binary; else as UTF-8 text),
"$value": null a tombstone, and "$key_hex": "..." a key of those bytes as
they are (for malformed keys).

JSON cannot spell every Avro value, so values are converted by the schema:
bytes and fixed from hex strings, float and double also from the strings
NaN, Infinity and -Infinity, decimal from a decimal string, date from
YYYY-MM-DD, time-* from HH:MM:SS[.ffffff], timestamp-* from ISO 8601 with an
offset, local-timestamp-* from ISO 8601 without one.
"""
import argparse
import datetime
import decimal
import io
import json
import sys
import time

import fastavro
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from delivery import Deliveries


def convert(schema, value, named):
    if value is None:
        return None
    if isinstance(schema, str):
        if schema in named:
            return convert(named[schema], value, named)
        if schema in ("bytes", "fixed"):
            return bytes.fromhex(value)
        if schema in ("float", "double") and isinstance(value, str):
            return float(value)     # NaN, Infinity, -Infinity, -0.0
        return value
    if isinstance(schema, list):
        for branch in schema:
            if branch == "null":
                continue
            try:
                return convert(branch, value, named)
            except (ValueError, TypeError, AttributeError, decimal.InvalidOperation):
                continue
        return value
    t = schema.get("type")
    if "name" in schema and t in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
    lt = schema.get("logicalType")
    if lt == "decimal":
        return decimal.Decimal(value)
    if lt == "date":
        return datetime.date.fromisoformat(value)
    if lt in ("time-millis", "time-micros"):
        return datetime.time.fromisoformat(value)
    if lt in ("timestamp-millis", "timestamp-micros"):
        d = datetime.datetime.fromisoformat(value)
        if d.tzinfo is None:
            raise ValueError("timestamp without an offset")
        return d
    if lt in ("local-timestamp-millis", "local-timestamp-micros"):
        return datetime.datetime.fromisoformat(value)
    if t == "record":
        return {f["name"]: convert(f["type"], value.get(f["name"]), named)
                for f in schema["fields"] if f["name"] in value}
    if t == "array":
        return [convert(schema["items"], v, named) for v in value]
    if t == "map":
        return {k: convert(schema["values"], v, named) for k, v in value.items()}
    if t in ("bytes", "fixed"):
        return bytes.fromhex(value)
    if isinstance(t, (dict, list)):
        return convert(t, value, named)
    return value


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--schema", required=True, help="file with the value schema")
    p.add_argument("--key-schema", help="file with the key schema")
    p.add_argument("--registry")
    p.add_argument("--registry-auth", help="user:password")
    p.add_argument("--registry-ca", help="CA file of an https registry")
    p.add_argument("--plain", action="store_true")
    p.add_argument("--partition", type=int)
    p.add_argument("--schema-id", type=int)
    p.add_argument("--rate", type=float, help="records per second (default: as fast as possible)")
    a = p.parse_args()

    with open(a.schema) as f:
        schema_text = f.read()
    schema = json.loads(schema_text)
    key_schema = None
    key_text = None
    if a.key_schema:
        with open(a.key_schema) as f:
            key_text = f.read()
        key_schema = json.loads(key_text)

    ser = kser = None
    if not a.plain and a.schema_id is None:
        conf = {"url": a.registry}
        if a.registry_auth:
            conf["basic.auth.user.info"] = a.registry_auth
        if a.registry_ca:
            conf["ssl.ca.location"] = a.registry_ca
        client = SchemaRegistryClient(conf)
        ser = AvroSerializer(client, schema_text)
        if key_text:
            kser = AvroSerializer(client, key_text)
    parsed = fastavro.parse_schema(schema)
    kparsed = fastavro.parse_schema(key_schema) if key_schema else None

    prod = Producer({"bootstrap.servers": a.brokers, "enable.idempotence": True,
                     "linger.ms": 5})
    deliveries = Deliveries("avro_produce")
    n = 0
    start = time.monotonic()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        key = None
        raw_key = None
        if isinstance(rec, dict) and "$key_hex" in rec:
            raw_key = bytes.fromhex(rec.pop("$key_hex"))
        if isinstance(rec, dict) and "$raw_hex" in rec:
            value = bytes.fromhex(rec["$raw_hex"])
        else:
            if isinstance(rec, dict) and "$value" in rec:
                key, rec = rec.get("$key"), rec["$value"]
            obj = convert(schema, rec, {})
            if obj is None:
                value = None
            elif a.plain or a.schema_id is not None:
                buf = io.BytesIO()
                if a.schema_id is not None:
                    buf.write(b"\0" + a.schema_id.to_bytes(4, "big"))
                fastavro.schemaless_writer(buf, parsed, obj)
                value = buf.getvalue()
            else:
                value = ser(obj, SerializationContext(a.topic, MessageField.VALUE))
            if key is not None:
                if kser is not None:
                    key = kser(convert(key_schema, key, {}),
                               SerializationContext(a.topic, MessageField.KEY))
                elif kparsed is not None:
                    buf = io.BytesIO()
                    fastavro.schemaless_writer(buf, kparsed, convert(key_schema, key, {}))
                    key = buf.getvalue()
                else:
                    key = str(key).encode()
        if raw_key is not None:
            key = raw_key
        kw = {} if a.partition is None else {"partition": a.partition}
        prod.produce(a.topic, value=value, key=key, on_delivery=deliveries.report, **kw)
        prod.poll(0)
        n += 1
        if a.rate:
            ahead = start + n / a.rate - time.monotonic()
            if ahead > 0:
                prod.poll(ahead)
    deliveries.flush(prod, 60)
    print(n)


if __name__ == "__main__":
    main()
