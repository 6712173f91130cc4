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

With --rate R (the freshness phase) the records are read first and then
produced at R records/s, paced like the test producer's --rate (record i is
due at t0 + i/R; the records due are sent every millisecond), and each one's
created_at is the wall-clock time when it is serialized (milliseconds, as the
test producer's JSON has it), so that the target's commit time minus
created_at is the record's produce-to-visible latency.

Field types: event_id string (logical uuid), seq and customer_id int,
customer a record {id int} (not mapped, skipped by the decoder), amount
bytes (decimal, scale 2), note string, created_at long (timestamp-millis).
Prints "N records in S s" on stderr (with --rate also the rate reached and
how far the producer fell behind its schedule at most).
"""
import argparse
import datetime
import decimal
import json
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

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
    p.add_argument("--rate", type=float, default=0.0)
    a = p.parse_args()

    ser = AvroSerializer(SchemaRegistryClient({"url": a.registry}), json.dumps(SCHEMA))
    ctx = SerializationContext(a.topic, MessageField.VALUE)
    prod = Producer({"bootstrap.servers": a.brokers, "enable.idempotence": True,
                     "linger.ms": 5, "batch.num.messages": 100000,
                     "batch.size": 4000000, "queue.buffering.max.messages": 2000000})
    failures = []

    def report(err, msg):
        if err is not None:
            failures.append(str(err))

    def records():
        with open(a.manifest) as f:
            for line in f:
                cols = line.rstrip("\n").split("\t")
                if len(cols) < 6 or cols[3] != "committed":
                    continue
                v = json.loads(unescape(cols[5]))
                yield int(cols[0]), unescape(cols[4]).encode(), {
                    "event_id": v["event_id"],
                    "seq": v["seq"],
                    "customer": {"id": v["customer"]["id"]},
                    "customer_id": v["customer_id"],
                    "amount": decimal.Decimal(v["amount"]),
                    "note": v["note"],
                    "created_at": datetime.datetime.fromisoformat(v["created_at"]),
                }

    def send(partition, key, rec):
        while True:
            try:
                prod.produce(a.topic, value=ser(rec, ctx), key=key,
                             partition=partition, on_delivery=report)
                return
            except BufferError:
                prod.poll(0.1)

    n = 0
    behind = 0.0
    if a.rate > 0:
        # parsed before the clock starts: only serializing and sending are paced
        todo = list(records())
        start = time.monotonic()
        while n < len(todo):
            now = time.monotonic()
            due = min(len(todo), int((now - start) * a.rate) + 1)
            if due <= n:
                time.sleep(min((n / a.rate) - (now - start), 0.001))
                continue
            behind = max(behind, now - start - n / a.rate)
            while n < due:
                partition, key, rec = todo[n]
                rec["created_at"] = datetime.datetime.now(datetime.timezone.utc)
                send(partition, key, rec)
                n += 1
            prod.poll(0)
    else:
        start = time.monotonic()
        for partition, key, rec in records():
            send(partition, key, rec)
            n += 1
            if n % 10000 == 0:
                prod.poll(0)
    sent = time.monotonic() - start
    if prod.flush(120) != 0 or failures:
        sys.exit("avro_events: delivery failed: %s" % "; ".join(failures[:3]))
    print("%d records in %.1f s" % (n, time.monotonic() - start), file=sys.stderr)
    if a.rate > 0:
        print("%.0f records/s sent (asked %.0f), at most %.1f ms behind schedule"
              % (n / sent if sent > 0 else 0, a.rate, behind * 1000), file=sys.stderr)


if __name__ == "__main__":
    main()
