-- pause_pipeline, resume_pipeline, drop_pipeline, alter_pipeline and
-- reset_offsets: their argument errors and their effect on the catalog.
-- Brokers point at a closed port; no pipeline here is ever started.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE fn_orders (event_id uuid PRIMARY KEY, seq int, note text);
SELECT eo_ingest.create_pipeline('fn', '127.0.0.1:1', 'fn_topic', 'fn_orders', start => false);
SELECT name, state, topic, target, worker_pid, lag, last_error FROM eo_ingest.pipeline_status;

-- NULL and unknown names
SELECT eo_ingest.pause_pipeline(NULL);
SELECT eo_ingest.resume_pipeline(NULL);
SELECT eo_ingest.drop_pipeline(NULL);
SELECT eo_ingest.alter_pipeline(NULL, batch_size => 10);
SELECT eo_ingest.reset_offsets(NULL, 'earliest');
SELECT eo_ingest.pause_pipeline('fn_missing');
SELECT eo_ingest.resume_pipeline('fn_missing');
SELECT eo_ingest.drop_pipeline('fn_missing');
SELECT eo_ingest.alter_pipeline('fn_missing', batch_size => 10);
SELECT eo_ingest.reset_offsets('fn_missing', 'earliest');
-- names are case sensitive and never folded
SELECT eo_ingest.pause_pipeline('FN');

-- pause and resume flip enabled and bump config_version; pausing twice is fine
SELECT eo_ingest.resume_pipeline('fn');
SELECT enabled, config_version FROM eo_ingest.pipelines WHERE name = 'fn';
-- a running pipeline's offsets cannot be reset
\set VERBOSITY terse
SELECT eo_ingest.reset_offsets('fn', 'earliest');
\set VERBOSITY default
SELECT eo_ingest.reset_offsets('fn', '{"0": 5}');
SELECT eo_ingest.pause_pipeline('fn');
SELECT eo_ingest.pause_pipeline('fn');
SELECT enabled, config_version FROM eo_ingest.pipelines WHERE name = 'fn';
SELECT name, state, lag FROM eo_ingest.pipeline_status;

-- reset_offsets: the position's shape
SELECT eo_ingest.reset_offsets('fn', NULL);
SELECT eo_ingest.reset_offsets('fn', '');
SELECT eo_ingest.reset_offsets('fn', 'newest');
SELECT eo_ingest.reset_offsets('fn', '[0, 5]');
SELECT eo_ingest.reset_offsets('fn', '{"0": 5');
SELECT eo_ingest.reset_offsets('fn', '{"x": 5}');
SELECT eo_ingest.reset_offsets('fn', '{"-1": 5}');
SELECT eo_ingest.reset_offsets('fn', '{"0": -5}');
SELECT eo_ingest.reset_offsets('fn', '{"0": 1.5}');
SELECT eo_ingest.reset_offsets('fn', '{"0": "5"}');
SELECT eo_ingest.reset_offsets('fn', '{"0": null}');
SELECT eo_ingest.reset_offsets('fn', '{"0": 1e3}');
SELECT eo_ingest.reset_offsets('fn', '{"0": 1234567890123456789}');
SELECT eo_ingest.reset_offsets('fn', 'infinity');
SELECT count(*) AS offsets FROM eo_ingest.offsets;

-- per-partition offsets on a paused pipeline land in partition_progress
SELECT eo_ingest.reset_offsets('fn', '{"0": 42, "1": 7, "2": 0}');
SELECT pipeline, partition, next_offset, high_watermark, lag, committed_at IS NOT NULL AS committed
  FROM eo_ingest.partition_progress ORDER BY partition;
-- a second reset overwrites the named partitions only
SELECT eo_ingest.reset_offsets('fn', '{"1": 100}');
SELECT partition, next_offset FROM eo_ingest.partition_progress ORDER BY partition;
SELECT eo_ingest.reset_offsets('fn', '{}');
SELECT partition, next_offset FROM eo_ingest.partition_progress ORDER BY partition;

-- a reset that cannot reach the brokers changes nothing (the detail names
-- librdkafka's error, which varies: terse)
\set VERBOSITY terse
SELECT eo_ingest.reset_offsets('fn', 'earliest');
\set VERBOSITY default
SELECT partition, next_offset FROM eo_ingest.partition_progress ORDER BY partition;

-- alter_pipeline: each argument's errors, then a change that sticks
SELECT eo_ingest.alter_pipeline('fn', batch_size => 0);
SELECT eo_ingest.alter_pipeline('fn', batch_size => 1000001);
SELECT eo_ingest.alter_pipeline('fn', on_duplicate => 'merge');
SELECT eo_ingest.alter_pipeline('fn', kafka_options => '[]');
SELECT eo_ingest.alter_pipeline('fn', kafka_options => '{"a": [1]}');
SELECT eo_ingest.alter_pipeline('fn', kafka_options => '{"group.id": "g"}');
SELECT eo_ingest.alter_pipeline('fn', kafka_options => '{"no.such.property": 1}');
SELECT eo_ingest.alter_pipeline('fn', kafka_options => '{"fetch.max.bytes": "many"}');
SELECT eo_ingest.alter_pipeline('fn', workers => 0);
SELECT eo_ingest.alter_pipeline('fn', workers => 65);
SELECT eo_ingest.alter_pipeline('fn', batch_timeout => 0);
SELECT eo_ingest.alter_pipeline('fn', batch_timeout => 3600001);
SELECT eo_ingest.alter_pipeline('fn', brokers => '');
SELECT eo_ingest.alter_pipeline('fn', brokers => ' ');
SELECT eo_ingest.alter_pipeline('fn', brokers => 'a:1,,b:2');
SELECT batch_size, on_duplicate, kafka_options, workers, synchronous_commit, batch_timeout, brokers,
       enabled, config_version
  FROM eo_ingest.pipelines WHERE name = 'fn';
SELECT eo_ingest.alter_pipeline('fn', batch_size => 500, on_duplicate => 'update',
                                kafka_options => '{"fetch.min.bytes": 1024, "client.rack": "r1"}',
                                workers => 3, synchronous_commit => false, batch_timeout => 250,
                                brokers => ' 127.0.0.1:2 , 127.0.0.1:3 ');
SELECT batch_size, on_duplicate, kafka_options, workers, synchronous_commit, batch_timeout, brokers,
       enabled, config_version
  FROM eo_ingest.pipelines WHERE name = 'fn';
-- arguments left NULL keep their value
SELECT eo_ingest.alter_pipeline('fn', workers => 2);
SELECT batch_size, on_duplicate, workers, synchronous_commit, batch_timeout, brokers
  FROM eo_ingest.pipelines WHERE name = 'fn';
SELECT name, on_duplicate, batch_size, workers, synchronous_commit FROM eo_ingest.pipeline_status;

-- alter_pipeline(target => ...): the checks create_pipeline makes, for the
-- owner; the offsets stay, the remembered name follows
SELECT target, target_name FROM eo_ingest.pipelines WHERE name = 'fn';
CREATE TABLE fn_noindex (event_id uuid, seq int);
CREATE TABLE fn_noid (id uuid PRIMARY KEY, seq int);
CREATE VIEW fn_view AS SELECT * FROM fn_orders;
CREATE TEMP TABLE fn_temp (event_id uuid PRIMARY KEY);
CREATE SCHEMA "fn Schema";
CREATE TABLE "fn Schema"."fn Orders" (event_id uuid PRIMARY KEY, seq int, note text);
SELECT eo_ingest.alter_pipeline('fn', target => 'fn_nonexistent');
SELECT eo_ingest.alter_pipeline('fn', target => 'fn_view');
SELECT eo_ingest.alter_pipeline('fn', target => 'fn_temp');
SELECT eo_ingest.alter_pipeline('fn', target => 'pg_class');
SELECT eo_ingest.alter_pipeline('fn', target => 'eo_ingest.offsets');
SELECT eo_ingest.alter_pipeline('fn', target => 'fn_noindex');
SELECT eo_ingest.alter_pipeline('fn', target => 'fn_noid');
SELECT eo_ingest.alter_pipeline('fn', target => 12345);
-- the internal function checks the index itself
SELECT eo_ingest._catalog_update_pipeline(id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'fn_noindex')
  FROM eo_ingest.pipelines WHERE name = 'fn';
SELECT target, target_name, config_version FROM eo_ingest.pipelines WHERE name = 'fn';
SELECT eo_ingest.alter_pipeline('fn', target => '"fn Schema"."fn Orders"');
SELECT target, target_name, config_version FROM eo_ingest.pipelines WHERE name = 'fn';
SELECT name, target FROM eo_ingest.pipeline_status;
SELECT partition, next_offset FROM eo_ingest.partition_progress ORDER BY partition;
-- the owner needs INSERT on the new target, and UPDATE for on_duplicate 'update'
CREATE ROLE regress_fn_owner;
GRANT INSERT ON fn_orders, "fn Schema"."fn Orders" TO regress_fn_owner;
GRANT USAGE ON SCHEMA "fn Schema" TO regress_fn_owner;
CREATE TABLE fn_other (event_id uuid PRIMARY KEY, seq int);
SET ROLE regress_fn_owner;
SELECT eo_ingest.create_pipeline('fn_owned', '127.0.0.1:1', 'fn_topic', 'fn_orders', start => false);
SELECT eo_ingest.alter_pipeline('fn_owned', target => 'fn_other');
SELECT eo_ingest.alter_pipeline('fn_owned', target => '"fn Schema"."fn Orders"', on_duplicate => 'update');
-- the same checks in the internal function, called directly
SELECT eo_ingest._catalog_update_pipeline(id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'fn_other')
  FROM eo_ingest.pipelines WHERE name = 'fn_owned';
SELECT eo_ingest.alter_pipeline('fn_owned', target => '"fn Schema"."fn Orders"');
RESET ROLE;
-- a superuser altering another role's pipeline: the owner's rights count
SELECT eo_ingest.alter_pipeline('fn_owned', target => 'fn_other');
SELECT name, owner, target, target_name FROM eo_ingest.pipelines WHERE name = 'fn_owned';
SELECT eo_ingest.drop_pipeline('fn_owned');
DROP TABLE fn_other, fn_noindex, fn_noid;
DROP VIEW fn_view;
REVOKE ALL ON fn_orders FROM regress_fn_owner;
REVOKE ALL ON "fn Schema"."fn Orders" FROM regress_fn_owner;
REVOKE ALL ON SCHEMA "fn Schema" FROM regress_fn_owner;
DROP ROLE regress_fn_owner;

-- drop removes the pipeline with its offsets and counters
SELECT eo_ingest.drop_pipeline('fn');
SELECT eo_ingest.drop_pipeline('fn');
SELECT count(*) AS pipelines FROM eo_ingest.pipelines;
SELECT count(*) AS offsets FROM eo_ingest.offsets;
SELECT count(*) AS partitions FROM eo_ingest.partition_progress;

DROP TABLE fn_orders;
DROP SCHEMA "fn Schema" CASCADE;
