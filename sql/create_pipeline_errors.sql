-- Every argument error of eo_ingest.create_pipeline, with its message, and
-- proof that nothing is left half-created.  Brokers point at a closed port and
-- no pipeline here is started.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE cpe_orders (event_id uuid PRIMARY KEY, seq int, amount numeric, note text, raw bytea);
CREATE TABLE cpe_noindex (event_id uuid, seq int);
CREATE TABLE cpe_multi (event_id uuid, seq int, UNIQUE (event_id, seq));
CREATE TABLE cpe_partial (event_id uuid, seq int);
CREATE UNIQUE INDEX ON cpe_partial (event_id) WHERE seq > 0;
CREATE TABLE cpe_gen (event_id uuid PRIMARY KEY, seq int, twice int GENERATED ALWAYS AS (seq * 2) STORED);
CREATE VIEW cpe_view AS SELECT * FROM cpe_orders;
CREATE MATERIALIZED VIEW cpe_matview AS SELECT * FROM cpe_orders;
CREATE SEQUENCE cpe_seq;
CREATE TEMPORARY TABLE cpe_temp (event_id uuid PRIMARY KEY);
CREATE FOREIGN DATA WRAPPER cpe_fdw;
CREATE SERVER cpe_server FOREIGN DATA WRAPPER cpe_fdw;
CREATE FOREIGN TABLE cpe_foreign (event_id uuid) SERVER cpe_server;

-- name
SELECT eo_ingest.create_pipeline(NULL, '127.0.0.1:1', 't', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('', '127.0.0.1:1', 't', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('bad name', '127.0.0.1:1', 't', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('-dash', '127.0.0.1:1', 't', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline(repeat('n', 64), '127.0.0.1:1', 't', 'cpe_orders', start => false);

-- brokers
SELECT eo_ingest.create_pipeline('cpe', NULL, 't', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('cpe', '', 't', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('cpe', '   ', 't', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1,,127.0.0.1:2', 't', 'cpe_orders', start => false);

-- topic
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', NULL, 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', '', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 'has space', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', '..', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', repeat('t', 250), 'cpe_orders', start => false);

-- target
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_missing', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_view', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_matview', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_seq', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_foreign', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_temp', start => false);

-- event_id and the unique index it needs
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_noindex', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_multi', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_partial', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', event_id => 'id', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', event_id => '', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', event_id => '$key', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', event_id => 'seq', start => false);

-- on_duplicate and format
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', on_duplicate => 'merge', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', on_duplicate => NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', format => 'avro', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', format => NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', format => 'text', event_id => NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', format => 'bytea', event_id => NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', format => 'text',
                                 columns => '{"note": "$value"}', start => false);

-- columns
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', columns => '["seq"]', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', columns => '"seq"', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', columns => '{"seq": 1}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', columns => '{"seq": ""}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', columns => '{"seq": {"a": 1}}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', columns => '{"seq": "$offsets"}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', columns => '{"nope": "seq"}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_gen', columns => '{"twice": "seq"}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', format => 'text', event_id => NULL,
                                 columns => '{"note": "$value", "seq": "seq"}', start => false);

-- start_from
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', start_from => 'yesterday-ish', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', start_from => '', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', start_from => NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', start_from => '{"0": 1}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', start_from => 'infinity', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', start_from => '2024-02-30', start => false);

-- batch_size, workers, batch_timeout
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', batch_size => 0, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', batch_size => 1000001, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', batch_size => NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', workers => 0, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', workers => 65, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', workers => NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', batch_timeout => 0, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', batch_timeout => 3600001, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', batch_timeout => NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', start => NULL);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', synchronous_commit => NULL, start => false);

-- kafka_options
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', kafka_options => NULL, start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', kafka_options => '[]', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders',
                                 kafka_options => '{"fetch.min.bytes": {"x": 1}}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders',
                                 kafka_options => '{"fetch.min.bytes": null}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders',
                                 kafka_options => '{"group.id": "mine"}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders',
                                 kafka_options => '{"bootstrap.servers": "10.0.0.1:9092"}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders',
                                 kafka_options => '{"isolation.level": "read_uncommitted"}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders',
                                 kafka_options => '{"enable.auto.commit": true}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders',
                                 kafka_options => '{"fetch.min.byte": 1}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders',
                                 kafka_options => '{"fetch.min.bytes": "lots"}', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders',
                                 kafka_options => '{"security.protocol": "carrier_pigeon"}', start => false);

-- none of the above left anything behind
SELECT count(*) AS pipelines FROM eo_ingest.pipelines;
SELECT count(*) AS offsets FROM eo_ingest.offsets;
SELECT count(*) AS counters FROM eo_ingest.counters;

-- a name that is taken
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:1', 't', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('cpe', '127.0.0.1:2', 'u', 'cpe_orders', start => false);
SELECT name, topic, brokers FROM eo_ingest.pipelines;
SELECT eo_ingest.drop_pipeline('cpe');

-- an error inside a transaction rolls everything back, even earlier pipelines
BEGIN;
SELECT eo_ingest.create_pipeline('cpe_a', '127.0.0.1:1', 't', 'cpe_orders', start => false);
SELECT eo_ingest.create_pipeline('cpe_b', '127.0.0.1:1', 't', 'cpe_noindex', start => false);
ROLLBACK;
SELECT count(*) AS pipelines FROM eo_ingest.pipelines;

DROP FOREIGN TABLE cpe_foreign;
DROP SERVER cpe_server;
DROP FOREIGN DATA WRAPPER cpe_fdw;
DROP SEQUENCE cpe_seq;
DROP MATERIALIZED VIEW cpe_matview;
DROP VIEW cpe_view;
DROP TABLE cpe_orders, cpe_noindex, cpe_multi, cpe_partial, cpe_gen, cpe_temp;
