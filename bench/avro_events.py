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

With --rate R (the freshness phase) the records are read and serialized
first and then produced at R records/s, paced like the test producer's
--rate (record i is due at t0 + i/R; the records due are sent every
millisecond), and each one's created_at is the wall-clock time when it is
sent (milliseconds, as the test producer's JSON has it), so that the
target's commit time minus created_at is the record's produce-to-visible
latency.  created_at is the schema's last field, so a record's bytes are
AvroSerializer's output for it up to that field, followed by the send time
as an Avro long (zigzag varint): serializing each record whole at send time
made this Python loop fall to 7,500 records/s on a loaded machine, where the
C producer of the JSON phase keeps 10,000.  Every 100th record sent is
serialized again by AvroSerializer with its send time afterwards and must
equal the bytes sent.

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


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def avro_long(v):
    """v as Avro binary encodes a long: zigzag, then a base-128 varint."""
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# a stand-in send time while serializing ahead; it is cut off and the real
# one appended (the field is the last one, so its length does not matter)
PLACEHOLDER = EPOCH + datetime.timedelta(milliseconds=1 << 40)
PLACEHOLDER_LONG = avro_long(1 << 40)


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
    deliveries = Deliveries("avro_events")

    # delivery reports for failures only: a Python call per record costs
    # what the paced loop cannot spare
    prod = Producer({"bootstrap.servers": a.brokers, "enable.idempotence": True,
                     "linger.ms": 5, "batch.num.messages": 100000,
                     "batch.size": 4000000, "queue.buffering.max.messages": 2000000,
                     "on_delivery": deliveries.report, "delivery.report.only.error": True})

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

    def send(partition, key, value):
        while True:
            try:
                prod.produce(a.topic, value=value, key=key, partition=partition)
                return
            except BufferError:
                prod.poll(0.1)

    n = 0
    behind = 0.0
    checks = []
    if a.rate > 0:
        # AvroSerializer's bytes without the trailing created_at, before the
        # clock starts
        todo = []
        for partition, key, rec in records():
            rec["created_at"] = PLACEHOLDER
            value = ser(rec, ctx)
            if not value.endswith(PLACEHOLDER_LONG):
                sys.exit("avro_events: created_at is not the last bytes of the serialized record")
            todo.append((partition, key, value[:-len(PLACEHOLDER_LONG)], rec))
        start = time.monotonic()
        while n < len(todo):
            now = time.monotonic()
            due = min(len(todo), int((now - start) * a.rate) + 1)
            if due <= n:
                time.sleep(min((n / a.rate) - (now - start), 0.001))
                continue
            behind = max(behind, now - start - n / a.rate)
            while n < due:
                partition, key, head, rec = todo[n]
                ms = time.time_ns() // 1000000
                value = head + avro_long(ms)
                send(partition, key, value)
                if n % 100 == 0:
                    checks.append((rec, ms, value))
                n += 1
            prod.poll(0)
    else:
        start = time.monotonic()
        for partition, key, rec in records():
            send(partition, key, ser(rec, ctx))
            n += 1
            if n % 10000 == 0:
                prod.poll(0)
    sent = time.monotonic() - start
    deliveries.flush(prod, 120)
    for rec, ms, value in checks:
        rec["created_at"] = EPOCH + datetime.timedelta(milliseconds=ms)
        if ser(rec, ctx) != value:
            sys.exit("avro_events: a record sent differs from AvroSerializer's bytes for it")
    print("%d records in %.1f s" % (n, time.monotonic() - start), file=sys.stderr)
    if a.rate > 0:
        print("%.0f records/s sent (asked %.0f), at most %.1f ms behind schedule; "
              "%d of them equal AvroSerializer's bytes for them"
              % (n / sent if sent > 0 else 0, a.rate, behind * 1000, len(checks)), file=sys.stderr)


if __name__ == "__main__":
    main()
