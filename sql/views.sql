-- pipeline_status, partition_progress and dead_letters over a paused
-- pipeline, with counters, offsets and dead letters written as a worker would
-- write them (no worker runs here).
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE vw_orders (event_id uuid PRIMARY KEY, seq int);
SELECT eo_ingest.create_pipeline('vw', '127.0.0.1:1', 'vw_topic', 'vw_orders', workers => 2, start => false);
SELECT id AS vw_id FROM eo_ingest.pipelines WHERE name = 'vw' \gset

-- the fixed columns, in order, lead each view
SELECT attnum, attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'eo_ingest.pipeline_status'::regclass AND attnum BETWEEN 1 AND 13
 ORDER BY attnum;
SELECT attnum, attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'eo_ingest.partition_progress'::regclass AND attnum BETWEEN 1 AND 6
 ORDER BY attnum;

-- a new pipeline: zero counters, no offsets, lag unknown
SELECT name, state, rows_inserted, rows_updated, duplicates_skipped, dead_letters, lag, last_batch_at,
       last_error, batches
  FROM eo_ingest.pipeline_status;
SELECT count(*) FROM eo_ingest.partition_progress;

-- counters add up over the pipeline's workers; last_batch_at is the latest
INSERT INTO eo_ingest.counters (pipeline_id, worker, rows_inserted, rows_updated, duplicates_skipped,
                                dead_letters, batches, subtransactions, last_batch_at)
VALUES (:vw_id, 0, 100, 3, 7, 1, 4, 2, '2024-05-01 10:00:00+00'),
       (:vw_id, 1, 50, 0, 2, 1, 3, 0, '2024-05-01 10:00:05+00');
SELECT name, state, rows_inserted, rows_updated, duplicates_skipped, dead_letters, lag,
       last_batch_at AT TIME ZONE 'UTC' AS last_batch_utc, batches, subtransactions
  FROM eo_ingest.pipeline_status;

-- offsets show per partition; a paused pipeline has no lag
INSERT INTO eo_ingest.offsets (pipeline_id, partition, next_offset, committed_at)
VALUES (:vw_id, 0, 120, '2024-05-01 10:00:00+00'), (:vw_id, 1, 45, NULL);
SELECT pipeline, partition, next_offset, high_watermark, lag, committed_at AT TIME ZONE 'UTC' AS committed_utc
  FROM eo_ingest.partition_progress ORDER BY partition;

-- dead letters keep key and payload as bytea, with the error and its SQLSTATE
INSERT INTO eo_ingest.dead_letters (pipeline_id, pipeline, partition, "offset", key, payload, error, sqlstate)
VALUES (:vw_id, 'vw', 0, 17, 'k1', convert_to('{"event_id": "nope"}', 'UTF8'),
        'invalid input syntax for type uuid: "nope"', '22P02'),
       (:vw_id, 'vw', 1, 3, NULL, '\x00ff', 'invalid byte sequence for encoding "UTF8": 0x00', '22021');
SELECT pipeline, partition, "offset", key, convert_from(payload, 'SQL_ASCII') AS payload_text, error, sqlstate,
       pg_typeof(key) AS key_type, pg_typeof(payload) AS payload_type
  FROM eo_ingest.dead_letters WHERE "offset" = 17;
SELECT pipeline, partition, "offset", key, payload, sqlstate FROM eo_ingest.dead_letters ORDER BY partition;

-- dropping the pipeline takes its offsets, counters and dead letters along
SELECT eo_ingest.drop_pipeline('vw');
SELECT (SELECT count(*) FROM eo_ingest.offsets) AS offsets,
       (SELECT count(*) FROM eo_ingest.counters) AS counters,
       (SELECT count(*) FROM eo_ingest.dead_letters) AS dead_letters,
       (SELECT count(*) FROM eo_ingest.pipeline_status) AS status;

DROP TABLE vw_orders;
