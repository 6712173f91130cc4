-- create_pipeline: the accepted shapes of each argument, and what is stored.
-- Brokers point at a closed port; no pipeline here is started.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE cp_orders (event_id uuid PRIMARY KEY, seq int, customer_id int, note text,
                        kkey text, raw bytea, topic text, part int, off bigint,
                        doubled int GENERATED ALWAYS AS (seq * 2) STORED);
CREATE TABLE cp_log (seq int, note text);
CREATE TABLE cp_parted (event_id uuid, day date, seq int, PRIMARY KEY (event_id))
  PARTITION BY HASH (event_id);
CREATE TABLE cp_parted_0 PARTITION OF cp_parted FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE cp_parted_1 PARTITION OF cp_parted FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE SCHEMA "Cp Schema";
CREATE TABLE "Cp Schema"."Odd Table" ("Event Id" text UNIQUE, v int);

-- defaults
SELECT eo_ingest.create_pipeline('cp_defaults', '127.0.0.1:1', 'orders', 'cp_orders', start => false);
-- event_id NULL needs no unique index
SELECT eo_ingest.create_pipeline('cp_log', '127.0.0.1:1', 'log', 'cp_log', event_id => NULL, start => false);
-- a partitioned target whose primary key is the event id
SELECT eo_ingest.create_pipeline('cp_parted', '127.0.0.1:1', 'parted', 'cp_parted', start => false);
-- quoted names, a mapped event id column, named arguments in any order
SELECT eo_ingest.create_pipeline(target => '"Cp Schema"."Odd Table"', topic => 'odd.topic-1',
                                 brokers => ' 127.0.0.1:1 ,127.0.0.1:2 ', name => 'cp.odd-name_1',
                                 event_id => 'id', columns => '{"Event Id": "id", "v": "a.b.c"}',
                                 start => false);
-- the Kafka key as event id, every $ source, update on duplicate; with two
-- columns mapped from the key, the first in column order holds the event id
SELECT eo_ingest.create_pipeline('cp_key', '127.0.0.1:1', 'keyed', 'cp_orders', event_id => '$key',
                                 on_duplicate => 'update',
                                 columns => '{"event_id": "$key", "customer_id": "customer.id", "kkey": "$key",
                                              "topic": "$topic", "part": "$partition", "off": "$offset",
                                              "note": "$timestamp", "raw": "$headers"}',
                                 start => false);
-- text and bytea values land whole in the column mapped from $value
SELECT eo_ingest.create_pipeline('cp_text', '127.0.0.1:1', 'lines', 'cp_log', format => 'text',
                                 event_id => NULL, columns => '{"note": "$value"}', start => false);
SELECT eo_ingest.create_pipeline('cp_bytea', '127.0.0.1:1', 'blobs', 'cp_orders', format => 'bytea',
                                 event_id => '$key', columns => '{"event_id": "$key", "raw": "$value"}',
                                 start => false);
-- every start_from form; a timestamp is stored as the instant it names
SET TimeZone = 'America/New_York';
SELECT eo_ingest.create_pipeline('cp_latest', '127.0.0.1:1', 'orders', 'cp_orders', start_from => 'latest', start => false);
SELECT eo_ingest.create_pipeline('cp_ts', '127.0.0.1:1', 'orders', 'cp_orders',
                                 start_from => '2024-03-01 12:00', start => false);
SELECT eo_ingest.create_pipeline('cp_ts_utc', '127.0.0.1:1', 'orders', 'cp_orders',
                                 start_from => '2024-03-01T17:00:00Z', start => false);
RESET TimeZone;
SELECT name, start_from, start_from::timestamptz AT TIME ZONE 'UTC' AS utc
  FROM eo_ingest.pipelines WHERE name LIKE 'cp_ts%' ORDER BY name;
-- the remaining knobs at their bounds
SELECT eo_ingest.create_pipeline('cp_bounds_lo', '127.0.0.1:1', 'orders', 'cp_orders', batch_size => 1,
                                 workers => 1, batch_timeout => 1, synchronous_commit => false, start => false);
SELECT eo_ingest.create_pipeline('cp_bounds_hi', '127.0.0.1:1', 'orders', 'cp_orders', batch_size => 1000000,
                                 workers => 64, batch_timeout => 3600000,
                                 kafka_options => '{"fetch.wait.max.ms": 50, "check.crcs": true, "client.id": "cp"}',
                                 start => false);
SELECT eo_ingest.create_pipeline(repeat('n', 63), '127.0.0.1:1', repeat('t', 249), 'cp_orders', start => false);
SELECT length(name), length(topic) FROM eo_ingest.pipelines WHERE name LIKE 'nnn%';
SELECT eo_ingest.drop_pipeline(repeat('n', 63));

SELECT name, owner = current_user::regrole AS mine, brokers, topic, target, event_id, on_duplicate, format, columns, start_from,
       batch_size, batch_timeout, workers, synchronous_commit, kafka_options, enabled, config_version
  FROM eo_ingest.pipelines WHERE name NOT LIKE 'cp_ts%' ORDER BY name;
SELECT name, state, topic, target, worker_pid, rows_inserted, rows_updated, duplicates_skipped,
       dead_letters, lag, last_batch_at, last_error, last_error_at
  FROM eo_ingest.pipeline_status ORDER BY name;
-- a paused pipeline has no offsets until it first runs
SELECT count(*) FROM eo_ingest.partition_progress;

SELECT eo_ingest.drop_pipeline(name) FROM eo_ingest.pipelines ORDER BY name;
SELECT count(*) AS pipelines FROM eo_ingest.pipelines;
DROP TABLE cp_orders, cp_log, cp_parted;
DROP SCHEMA "Cp Schema" CASCADE;
