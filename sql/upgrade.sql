-- Extension versions: 0.1 is the first release, so ALTER EXTENSION ... UPDATE
-- has nothing to do yet.  Dropping the extension drops its pipelines.
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest';
SELECT default_version FROM pg_available_extensions WHERE name = 'eo_ingest';
ALTER EXTENSION eo_ingest UPDATE;
ALTER EXTENSION eo_ingest UPDATE TO '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest';

-- the schema is the extension's own and cannot move
ALTER EXTENSION eo_ingest SET SCHEMA public;

-- drop with a pipeline in place, then create afresh
CREATE TABLE up_orders (event_id uuid PRIMARY KEY);
SELECT eo_ingest.create_pipeline('up', '127.0.0.1:1', 'up', 'up_orders', start => false);
DROP EXTENSION eo_ingest;
SELECT count(*) FROM pg_extension WHERE extname = 'eo_ingest';
CREATE EXTENSION eo_ingest;
SELECT count(*) AS pipelines FROM eo_ingest.pipelines;
SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest';
DROP TABLE up_orders;
