-- envelope and on_truncate: the argument errors of create_pipeline and
-- alter_pipeline, and what a change-stream pipeline stores.  No pipeline here
-- is started.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE env_items (a int, b text, qty int, PRIMARY KEY (a, b));
CREATE TABLE env_nopk (id int UNIQUE, v text);
CREATE ROLE env_writer;
CREATE TABLE env_nodelete (id int PRIMARY KEY, v text);
GRANT INSERT, UPDATE ON env_nodelete TO env_writer;

SELECT eo_ingest.create_pipeline('env', '127.0.0.1:1', 't', 'env_items', envelope => 'maxwell', start => false);
SELECT eo_ingest.create_pipeline('env', '127.0.0.1:1', 't', 'env_items', envelope => NULL, start => false);
SELECT eo_ingest.create_pipeline('env', '127.0.0.1:1', 't', 'env_items', envelope => 'debezium',
                                 on_truncate => 'drop', start => false);
SELECT eo_ingest.create_pipeline('env', '127.0.0.1:1', 't', 'env_items', envelope => 'debezium',
                                 format => 'text', columns => '{"b": "$value"}', start => false);
SELECT eo_ingest.create_pipeline('env', '127.0.0.1:1', 't', 'env_nopk', envelope => 'upsert', start => false);
SET ROLE env_writer;
SELECT eo_ingest.create_pipeline('env', '127.0.0.1:1', 't', 'env_nodelete', envelope => 'upsert', start => false);
RESET ROLE;
SELECT count(*) AS pipelines FROM eo_ingest.pipelines;

-- event_id is not needed (nor stored) with an envelope: rows are identified
-- by the primary key
SELECT eo_ingest.create_pipeline('env', '127.0.0.1:1', 't', 'env_items', envelope => 'debezium',
                                 on_truncate => 'truncate', start => false);
SELECT eo_ingest.create_pipeline('env_kv', '127.0.0.1:1', 't', 'env_nodelete', envelope => 'upsert',
                                 format => 'text', columns => '{"id": "$key", "v": "$value"}', start => false);
SELECT name, event_id, envelope, on_truncate FROM eo_ingest.pipelines ORDER BY name;
SELECT name, envelope, on_truncate, rows_deleted FROM eo_ingest.pipeline_status ORDER BY name;

-- alter_pipeline
SELECT eo_ingest.alter_pipeline('env', envelope => 'csv');
SELECT eo_ingest.alter_pipeline('env', on_truncate => 'maybe');
SELECT eo_ingest.alter_pipeline('env', target => 'env_nopk');
SELECT eo_ingest.alter_pipeline('env', on_truncate => 'ignore');
SELECT eo_ingest.alter_pipeline('env_kv', envelope => 'none');
SELECT name, envelope, on_truncate FROM eo_ingest.pipelines ORDER BY name;

-- columns from a Debezium event's own fields: only with envelope => 'debezium'
CREATE TABLE env_meta (id int PRIMARY KEY, op text, lsn bigint, at timestamptz, src jsonb);
SELECT eo_ingest.create_pipeline('env_meta', '127.0.0.1:1', 't', 'env_meta', event_id => 'id',
                                 columns => '{"op": "$op"}', start => false);
SELECT eo_ingest.create_pipeline('env_meta', '127.0.0.1:1', 't', 'env_meta', envelope => 'upsert',
                                 columns => '{"lsn": "$source.lsn"}', start => false);
SELECT eo_ingest.create_pipeline('env_meta', '127.0.0.1:1', 't', 'env_meta', envelope => 'debezium',
                                 columns => '{"lsn": "$sources.lsn"}', start => false);
SELECT eo_ingest.create_pipeline('env_meta', '127.0.0.1:1', 't', 'env_meta', envelope => 'debezium',
                                 columns => '{"lsn": "$source."}', start => false);
SELECT eo_ingest.create_pipeline('env_meta', '127.0.0.1:1', 't', 'env_meta', envelope => 'debezium',
                                 columns => '{"op": "$op", "lsn": "$source.lsn", "at": "$source.ts_ms", "src": "$source"}',
                                 start => false);
SELECT name, envelope, columns FROM eo_ingest.pipelines WHERE name = 'env_meta';
SELECT eo_ingest.drop_pipeline('env_meta');
DROP TABLE env_meta;

-- the catalog function checks for itself
SELECT eo_ingest._catalog_set_envelope(NULL, 'upsert', NULL);
SELECT id AS env_id FROM eo_ingest.pipelines WHERE name = 'env' \gset
SET ROLE env_writer;
SELECT eo_ingest._catalog_set_envelope(:env_id, 'none', NULL);
RESET ROLE;

SELECT eo_ingest.drop_pipeline('env');
SELECT eo_ingest.drop_pipeline('env_kv');
DROP TABLE env_items, env_nopk, env_nodelete;
DROP ROLE env_writer;
