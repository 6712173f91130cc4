-- format => 'avro': its arguments, their errors, and what is stored.
-- Brokers point at a closed port and no pipeline here is started.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE TABLE av_orders (event_id uuid PRIMARY KEY, seq int, amount numeric);

-- a registry or an inline schema, not both, not neither
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false);
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    schema_registry => 'http://127.0.0.1:1', avro_schema => '{"type": "record", "name": "r", "fields": []}');
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', start => false,
    schema_registry => 'http://127.0.0.1:1');

-- registry URLs: http(s), no credentials
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    schema_registry => 'ftp://registry:8081');
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    schema_registry => 'http://user:pw@registry:8081');
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    schema_registry => 'http://r1:8081,');
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    schema_registry => ' ');

-- registry settings live in kafka_options under schema.registry.
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    schema_registry => 'http://127.0.0.1:1', kafka_options => '{"schema.registry.pasword": "x"}');

-- inline schemas: valid Avro, a record
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    avro_schema => '{"type": "record"');
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    avro_schema => '{"type": "record", "name": "r", "fields": [{"name": "a", "type": "nosuchtype"}]}');
SELECT eo_ingest.create_pipeline('av', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    avro_schema => '"string"');
SELECT count(*) AS pipelines_left_behind FROM eo_ingest.pipelines;

-- good ones
SELECT eo_ingest.create_pipeline('av_reg', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    schema_registry => 'http://r1:8081, https://r2:8081/base/',
    kafka_options => '{"schema.registry.user": "u", "schema.registry.password": "pw",
                       "schema.registry.request.timeout.ms": 2000}');
SELECT eo_ingest.create_pipeline('av_inline', '127.0.0.1:1', 't', 'av_orders', format => 'avro', start => false,
    columns => '{"amount": "money.amount"}',
    avro_schema => '{"type": "record", "name": "r", "fields": [{"name": "event_id", "type": "string"},
                     {"name": "money", "type": {"type": "record", "name": "m", "fields": [
                       {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}}]}}]}');
SELECT name, format, schema_registry, avro_schema IS NOT NULL AS inline FROM eo_ingest.pipelines ORDER BY name;
SELECT name, format FROM eo_ingest.pipeline_status ORDER BY name;

-- alter: one replaces the other; not for other formats
SELECT eo_ingest.alter_pipeline('av_reg', avro_schema => '{"type": "record", "name": "r", "fields": []}');
SELECT eo_ingest.alter_pipeline('av_inline', schema_registry => 'http://r3:8081');
SELECT name, schema_registry, avro_schema FROM eo_ingest.pipelines ORDER BY name;
SELECT eo_ingest.create_pipeline('av_json', '127.0.0.1:1', 't', 'av_orders', start => false);
SELECT eo_ingest.alter_pipeline('av_json', schema_registry => 'http://r3:8081');

SELECT eo_ingest.drop_pipeline(name) FROM eo_ingest.pipelines;
DROP TABLE av_orders;
