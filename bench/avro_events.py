#!/usr/bin/env python3
"""The benchmark's events once more, as Avro with a schema registry.

Reads the test producer's manifest (partition, offset, event_id, status, key,
JSON value; see test/producer/README) and produces every committed record
again to --topic: the same partition, the same key, in the same order, its
value the same fields as Avro in the Confluent wire format, serialized by
confluent-kafka's AvroSerializer against --registry (the schema is registered
there under the subject TOPIC-value).  So topic bench_avro holds exactly the
ids, duplicates and values of topic bench, and the rows of both drains equal
the COPY reference row by row.

Field types: event_id string (logical uuid), seq and customer_id int,
customer a record {id int} (not mapped, skipped by the decoder), amount
bytes (decimal, scale 2), note string, created_at long (timestamp-millis).
Prints "N records in S s" on stderr.
"""
import argparse
import datetime
import decimal
import json
import os
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "registry"))
from delivery import Deliveries  # noqa: E402

SCHEMA = {
    "type": "record", "name": "bench_event", "namespace": "eo.bench",
    "fields": [
        {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "seq", "type": "int"},
        {"name": "customer", "type": {"type": "record", "name": "customer",
                                      "fields": [{"name": "id", "type": "int"}]}},
        {"name": "customer_id", "type": "int"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                    "precision": 12, "scale": 2}},
        {"name": "note", "type": "string"},
        {"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def unescape(s):
    if "\\" not in s:
        return s
    return (s.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r")
            .replace("\\\\", "\\"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--manifest", required=True)
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--registry", required=True)
    a = p.parse_args()

    ser = AvroSerializer(SchemaRegistryClient({"url": a.registry}), json.dumps(SCHEMA))
    ctx = SerializationContext(a.topic, MessageField.VALUE)
    prod = Producer({"bootstrap.servers": a.brokers, "enable.idempotence": True,
                     "linger.ms": 5, "batch.num.messages": 100000,
                     "batch.size": 4000000, "queue.buffering.max.messages": 2000000})
    deliveries = Deliveries("avro_events")
    n = 0
    start = time.monotonic()
    with open(a.manifest) as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 6 or cols[3] != "committed":
                continue
            v = json.loads(unescape(cols[5]))
            rec = {
                "event_id": v["event_id"],
                "seq": v["seq"],
                "customer": {"id": v["customer"]["id"]},
                "customer_id": v["customer_id"],
                "amount": decimal.Decimal(v["amount"]),
                "note": v["note"],
                "created_at": datetime.datetime.fromisoformat(v["created_at"]),
            }
            while True:
                try:
                    prod.produce(a.topic, value=ser(rec, ctx), key=unescape(cols[4]).encode(),
                                 partition=int(cols[0]), on_delivery=deliveries.report)
                    break
                except BufferError:
                    prod.poll(0.1)
            n += 1
            if n % 10000 == 0:
                prod.poll(0)
    deliveries.flush(prod, 120)
    print("%d records in %.1f s" % (n, time.monotonic() - start), file=sys.stderr)


if __name__ == "__main__":
    main()
