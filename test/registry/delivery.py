"""Delivery reports of a confluent-kafka Producer, shared by the scripts that
produce Avro records: test/registry/avro_produce.py (the tests) and
bench/avro_events.py (the benchmark).

    d = Deliveries("avro_produce")
    prod.produce(topic, value=..., on_delivery=d.report)
    ...
    d.flush(prod, 60)       # exits with the first errors unless all arrived
"""
import sys


class Deliveries:
    def __init__(self, who):
        self.who = who
        self.failures = []

    def report(self, err, msg):
        """The on_delivery callback: keeps the error of a failed delivery."""
        if err is not None:
            self.failures.append(str(err))

    def flush(self, prod, timeout):
        """Waits for every record; exits if one was not delivered in time."""
        if prod.flush(timeout) != 0 or self.failures:
            sys.exit("%s: delivery failed: %s" % (self.who, "; ".join(self.failures[:3])))
