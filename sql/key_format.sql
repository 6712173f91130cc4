-- key_format and key_avro_schema: their arguments, their errors (with
-- SQLSTATE and hint), and what is stored.  No pipeline here is started.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE kf_t (id integer PRIMARY KEY, v text);

-- unknown and NULL key formats
SELECT eo_ingest.create_pipeline('kf', '127.0.0.1:1', 't', 'kf_t', event_id => NULL, key_format => 'xml', start => false);
\echo :LAST_ERROR_SQLSTATE
SELECT eo_ingest.create_pipeline('kf', '127.0.0.1:1', 't', 'kf_t', event_id => NULL, key_format => NULL, start => false);
\echo :LAST_ERROR_SQLSTATE
-- $key.<path> needs a key decoded into fields
SELECT eo_ingest.create_pipeline('kf', '127.0.0.1:1', 't', 'kf_t', event_id => '$key.id',
                                 columns => '{"id": "$key.id"}', start => false);
\echo :LAST_ERROR_SQLSTATE
SELECT eo_ingest.create_pipeline('kf', '127.0.0.1:1', 't', 'kf_t', event_id => NULL, key_format => 'text',
                                 columns => '{"id": "$key.id"}', start => false);
\echo :LAST_ERROR_SQLSTATE
-- Avro keys: with format avro, a registry or a key schema
SELECT eo_ingest.create_pipeline('kf', '127.0.0.1:1', 't', 'kf_t', event_id => NULL, key_format => 'avro', start => false);
\echo :LAST_ERROR_SQLSTATE
SELECT eo_ingest.create_pipeline('kf', '127.0.0.1:1', 't', 'kf_t', event_id => NULL, format => 'avro', key_format => 'avro',
                                 avro_schema => '{"type": "record", "name": "v", "fields": [{"name": "v", "type": "string"}]}',
                                 start => false);
\echo :LAST_ERROR_SQLSTATE
SELECT eo_ingest.create_pipeline('kf', '127.0.0.1:1', 't', 'kf_t', event_id => NULL, key_format => 'json',
                                 key_avro_schema => '{"type": "record", "name": "k", "fields": []}', start => false);
\echo :LAST_ERROR_SQLSTATE
SELECT eo_ingest.create_pipeline('kf', '127.0.0.1:1', 't', 'kf_t', event_id => NULL, format => 'avro', key_format => 'avro',
                                 schema_registry => 'http://127.0.0.1:1', key_avro_schema => '"string"', start => false);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM eo_ingest.pipelines;

-- what is stored; the default is 'none' (the key is only bytes)
SELECT eo_ingest.create_pipeline('kf_none', '127.0.0.1:1', 't', 'kf_t', event_id => NULL, start => false);
SELECT eo_ingest.create_pipeline('kf_json', '127.0.0.1:1', 't', 'kf_t', event_id => '$key.id', key_format => 'json',
                                 columns => '{"id": "$key.id", "v": "$key.a.b"}', start => false);
SELECT eo_ingest.create_pipeline('kf_avro', '127.0.0.1:1', 't', 'kf_t', event_id => NULL, format => 'avro',
                                 key_format => 'avro', schema_registry => 'http://127.0.0.1:1',
                                 envelope => 'debezium', start => false);
SELECT name, key_format, envelope FROM eo_ingest.pipeline_status ORDER BY name;

-- alter_pipeline: the same checks; a key schema replaces the registry for keys
SELECT eo_ingest.alter_pipeline('kf_json', key_format => 'bytea');
\echo :LAST_ERROR_SQLSTATE
SELECT eo_ingest.alter_pipeline('kf_none', key_format => 'avro');
\echo :LAST_ERROR_SQLSTATE
SELECT eo_ingest.alter_pipeline('kf_avro', key_avro_schema => '{"type": "record", "name": "k", "fields": [{"name": "id", "type": "int"}]}');
SELECT eo_ingest.alter_pipeline('kf_none', key_format => 'text');
SELECT name, key_format, key_avro_schema IS NOT NULL AS key_schema FROM eo_ingest.pipelines ORDER BY name;
SELECT eo_ingest.alter_pipeline('kf_avro', key_format => 'json');
SELECT name, key_format, key_avro_schema IS NOT NULL AS key_schema FROM eo_ingest.pipelines ORDER BY name;

-- the internal writer checks for itself
SELECT eo_ingest._catalog_set_key(NULL, 'json', NULL);
SELECT eo_ingest._catalog_set_key((SELECT id FROM eo_ingest.pipelines WHERE name = 'kf_none'), 'json', '"int"');
SELECT eo_ingest._catalog_set_key((SELECT id FROM eo_ingest.pipelines WHERE name = 'kf_none'), 'yaml', NULL);

SELECT eo_ingest.drop_pipeline(name) FROM eo_ingest.pipelines ORDER BY name;
DROP TABLE kf_t;
