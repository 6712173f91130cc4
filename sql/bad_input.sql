-- Bad input to every SQL function: NULLs, empty and huge strings, JSON of
-- the wrong shape, unknown librdkafka properties, targets that are not
-- ordinary tables.  Each call ends in a clear error (SQLSTATE, message, and
-- a hint where one helps) or works; none crashes.  Each call runs in a
-- subtransaction that is rolled back, so what works leaves nothing behind.
-- Messages are cut at 120 characters.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	hint text;
BEGIN
	EXECUTE sql;
	RAISE EXCEPTION 'ok' USING ERRCODE = 'EOK00';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	IF st = 'EOK00' THEN
		RETURN 'ok';
	END IF;
	RETURN st || ' ' || left(msg, 120) || CASE WHEN length(msg) > 120 THEN '...' ELSE '' END
		   || CASE WHEN hint <> '' THEN ' [hint]' ELSE '' END;
END
$$;

CREATE TABLE bi_orders (event_id uuid PRIMARY KEY, seq int, note text);
CREATE VIEW bi_view AS SELECT * FROM bi_orders;
CREATE TEMPORARY TABLE bi_temp (event_id uuid PRIMARY KEY);
CREATE FOREIGN DATA WRAPPER bi_fdw;
CREATE SERVER bi_server FOREIGN DATA WRAPPER bi_fdw;
CREATE FOREIGN TABLE bi_foreign (event_id uuid) SERVER bi_server;
-- partitioned by the event id: a unique index on it alone is possible
CREATE TABLE bi_hash (event_id uuid PRIMARY KEY, seq int) PARTITION BY HASH (event_id);
CREATE TABLE bi_hash_0 PARTITION OF bi_hash FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE bi_hash_1 PARTITION OF bi_hash FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE bi_range (event_id bigint PRIMARY KEY, seq int) PARTITION BY RANGE (event_id);
CREATE TABLE bi_range_0 PARTITION OF bi_range FOR VALUES FROM (MINVALUE) TO (1000000);
CREATE TABLE bi_range_1 PARTITION OF bi_range FOR VALUES FROM (1000000) TO (MAXVALUE);
-- partitioned by another column: no unique index on the event id alone can exist
CREATE TABLE bi_by_day (event_id uuid, day date, PRIMARY KEY (event_id, day)) PARTITION BY RANGE (day);
CREATE TABLE bi_by_day_0 PARTITION OF bi_by_day DEFAULT;

-- a pipeline for the functions that take one
SELECT eo_ingest.create_pipeline('bi_hash', '127.0.0.1:1', 't', 'bi_hash', start => false);

CREATE TEMP TABLE cases (n serial, sql text);
INSERT INTO cases (sql) VALUES
-- create_pipeline: NULLs and empty strings
($$SELECT eo_ingest.create_pipeline(NULL, NULL, NULL, NULL)$$),
($$SELECT eo_ingest.create_pipeline('', '', '', 'bi_orders')$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', NULL)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', '')$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', event_id => '', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', on_duplicate => '', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', format => '', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', start_from => '', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', start_from => NULL, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', batch_size => NULL, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => NULL, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', workers => NULL, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', batch_timeout => NULL, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', synchronous_commit => NULL, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', start => NULL)$$),
-- huge strings
($$SELECT eo_ingest.create_pipeline(repeat('x', 1000000), '127.0.0.1:1', 't', 'bi_orders', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', repeat('x', 1000000), 't', 'bi_orders', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', repeat('h:1,', 250000) || 'h:1', 't', 'bi_orders', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', repeat('x', 1000000), 'bi_orders', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', event_id => repeat('x', 1000000), start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', start_from => repeat('x', 1000000), start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', on_duplicate => repeat('x', 1000000), start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => jsonb_build_object('client.id', repeat('x', 1000000)), start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => jsonb_build_object(repeat('x', 1000000), 'v'), start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => jsonb_build_object(repeat('x', 1000000), 'v'), start => false)$$),
-- columns of the wrong shape
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '[]', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '["note"]', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '42', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '"note"', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => 'null', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '{"note": 1}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '{"note": null}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '{"note": {"a": "b"}}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '{"note": ["a"]}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '{"": "a"}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', columns => '{"note": "$nope"}', start => false)$$),
-- kafka_options of the wrong shape, unknown properties, bad values
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '[]', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '[{"client.id": "x"}]', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '1', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '"client.id=x"', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => 'null', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"client.id": {"a": 1}}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"client.id": ["a"]}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"client.id": null}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"no.such.property": "x"}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"": "x"}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"fetch.wait.max.ms": "soon"}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"fetch.wait.max.ms": 1e100}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"fetch.wait.max.ms": -5}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"check.crcs": "maybe"}', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', kafka_options => '{"group.id": "mine"}', start => false)$$),
-- targets
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'otherdb.public.bi_orders', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'no_such_table', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 0, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_view', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_temp', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_foreign', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'pg_class', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'eo_ingest.pipelines', event_id => NULL, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_by_day', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi_hash2', '127.0.0.1:1', 't', 'bi_hash', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi_range', '127.0.0.1:1', 't', 'bi_range', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi_hash_0', '127.0.0.1:1', 't', 'bi_hash_0', start => false)$$),
-- numbers out of range
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', batch_size => -1, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', batch_size => 2147483647, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', workers => 0, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', batch_timeout => -1, start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', start_from => 'infinity', start => false)$$),
($$SELECT eo_ingest.create_pipeline('bi', '127.0.0.1:1', 't', 'bi_orders', start_from => '{"0": 1}', start => false)$$),
-- the other functions
($$SELECT eo_ingest.pause_pipeline(NULL)$$),
($$SELECT eo_ingest.pause_pipeline('')$$),
($$SELECT eo_ingest.pause_pipeline(repeat('x', 1000000))$$),
($$SELECT eo_ingest.resume_pipeline(NULL)$$),
($$SELECT eo_ingest.resume_pipeline('no_such_pipeline')$$),
($$SELECT eo_ingest.drop_pipeline(NULL)$$),
($$SELECT eo_ingest.drop_pipeline(repeat('x', 1000000))$$),
($$SELECT eo_ingest.alter_pipeline(NULL)$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash')$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', batch_size => 0)$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', on_duplicate => '')$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', workers => 65)$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', batch_timeout => 0)$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', brokers => '')$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', brokers => ' , ')$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', brokers => repeat('x', 1000000))$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', kafka_options => '[]')$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', kafka_options => '{"a": {"b": 1}}')$$),
($$SELECT eo_ingest.alter_pipeline('bi_hash', kafka_options => '{"no.such.property": 1}')$$),
($$SELECT eo_ingest.reset_offsets(NULL, NULL)$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', NULL)$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '')$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', repeat('x', 1000000))$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '{')$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '{"x": 1}')$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '{"0": -1}')$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '{"0": "1"}')$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '{"0": 1.5}')$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '{"0": 99999999999999999999}')$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '{"9999999999": 1}')$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '{"0": {"a": 1}}')$$),
($$SELECT eo_ingest.reset_offsets('bi_hash', '{}')$$),
($$SELECT eo_ingest.purge_dead_letters(NULL)$$),
($$SELECT eo_ingest.purge_dead_letters('')$$),
($$SELECT eo_ingest.purge_dead_letters('bi_hash', NULL)$$),
($$SELECT eo_ingest.purge_dead_letters('bi_hash', 'infinity')$$),
-- the internal functions, which anyone may call
($$SELECT eo_ingest._check_kafka_options(NULL)$$),
($$SELECT eo_ingest._check_kafka_options('[]')$$),
($$SELECT eo_ingest._check_kafka_options('{"no.such.property": 1}')$$),
($$SELECT * FROM eo_ingest._query_offsets(NULL, NULL, NULL, NULL)$$),
($$SELECT * FROM eo_ingest._query_offsets('127.0.0.1:1', 't', '{"no.such.property": 1}', 'latest')$$),
($$SELECT eo_ingest._catalog_insert_pipeline(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)$$),
($$SELECT eo_ingest._catalog_insert_pipeline(NULL, NULL, NULL, 'bi_orders', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)$$),
($$SELECT eo_ingest._catalog_insert_pipeline('bi', 'b', 't', 'bi_view', NULL, 'skip', 'json', NULL, 'earliest', 1, 1, 1, true, '{}', false)$$),
($$SELECT eo_ingest._catalog_insert_pipeline('bi', 'b', 't', 'bi_temp', NULL, 'skip', 'json', NULL, 'earliest', 1, 1, 1, true, '{}', false)$$),
($$SELECT eo_ingest._catalog_insert_pipeline('bi', 'b', 't', 'bi_foreign', NULL, 'skip', 'json', NULL, 'earliest', 1, 1, 1, true, '{}', false)$$),
($$SELECT eo_ingest._catalog_insert_pipeline('bi', 'b', 't', 0, NULL, 'skip', 'json', NULL, 'earliest', 1, 1, 1, true, '{}', false)$$),
($$SELECT eo_ingest._catalog_insert_pipeline('bi', 'b', 't', 'pg_class', NULL, 'skip', 'json', NULL, 'earliest', 1, 1, 1, true, '{}', false)$$),
($$SELECT eo_ingest._catalog_insert_pipeline('bi', 'b', 't', 'eo_ingest.offsets', NULL, 'skip', 'json', NULL, 'earliest', 1, 1, 1, true, '{}', false)$$),
($$SELECT eo_ingest._catalog_insert_pipeline('bi', 'b', 't', 'bi_orders', NULL, 'skip', 'json', NULL, 'earliest', 0, 1, 1, true, '{}', false)$$),
($$SELECT eo_ingest._catalog_insert_pipeline('bi', 'b', 't', 'bi_orders', NULL, 'nope', 'json', NULL, 'earliest', 1, 1, 1, true, '{}', false)$$),
($$SELECT eo_ingest._catalog_update_pipeline(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)$$),
($$SELECT eo_ingest._catalog_update_pipeline(-1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)$$),
($$SELECT eo_ingest._catalog_delete_pipeline(NULL)$$),
($$SELECT eo_ingest._catalog_delete_pipeline(-1)$$),
($$SELECT eo_ingest._catalog_set_offsets(NULL, NULL, NULL, NULL)$$),
($$SELECT eo_ingest._catalog_set_offsets(-1, '{}', '{}', false)$$),
($$SELECT eo_ingest._catalog_purge_dead_letters(NULL, NULL)$$),
($$SELECT eo_ingest._catalog_purge_dead_letters(-1, NULL)$$);

SELECT n, pg_temp.try(sql) FROM cases ORDER BY n;

-- the internal functions on a real pipeline's id
SELECT id AS hash_id FROM eo_ingest.pipelines WHERE name = 'bi_hash' \gset
SELECT pg_temp.try(format(s, :hash_id)) FROM (VALUES
	($$SELECT eo_ingest._catalog_set_offsets(%s, '{1,2}', '{1}', false)$$),
	($$SELECT eo_ingest._catalog_set_offsets(%s, '{{1}}', '{{1}}', false)$$),
	($$SELECT eo_ingest._catalog_set_offsets(%s, '{1,NULL}', '{1,2}', false)$$),
	($$SELECT eo_ingest._catalog_set_offsets(%s, '{-1}', '{1}', false)$$),
	($$SELECT eo_ingest._catalog_set_offsets(%s, '{1}', '{-1}', false)$$),
	($$SELECT eo_ingest._catalog_set_offsets(%s, '{1,1}', '{1,2}', false)$$),
	($$SELECT eo_ingest._catalog_update_pipeline(%s, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL)$$),
	($$SELECT eo_ingest._catalog_update_pipeline(%s, NULL, NULL, 'nope', NULL, NULL, NULL, NULL, NULL)$$),
	($$SELECT eo_ingest._catalog_purge_dead_letters(%s, 'infinity')$$)) AS c(s);

-- what the calls that worked left behind; nothing half-created
SELECT name, target, batch_size, enabled FROM eo_ingest.pipelines ORDER BY name;
SELECT p.name, o.partition, o.next_offset FROM eo_ingest.offsets o JOIN eo_ingest.pipelines p ON p.id = o.pipeline_id ORDER BY 1, 2;
SELECT eo_ingest.drop_pipeline(name) FROM eo_ingest.pipelines ORDER BY name;
DROP TABLE bi_orders, bi_hash, bi_range, bi_by_day CASCADE;
DROP FOREIGN TABLE bi_foreign;
DROP SERVER bi_server;
DROP FOREIGN DATA WRAPPER bi_fdw;
