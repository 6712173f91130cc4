/* eo_ingest--0.2--0.3.sql */

\echo Use "ALTER EXTENSION eo_ingest UPDATE TO '0.3'" to load this file. \quit

/* pause_pipeline and resume_pipeline */
CREATE FUNCTION eo_ingest._set_enabled(name text, enabled boolean)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p eo_ingest.pipelines := eo_ingest._owned_pipeline(name);
BEGIN
	PERFORM eo_ingest._catalog_update_pipeline(p.id, enabled, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	PERFORM eo_ingest._notify_change();
END
$$;

CREATE OR REPLACE FUNCTION eo_ingest.pause_pipeline(name text)
RETURNS void LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT eo_ingest._set_enabled(name, false) $$;

CREATE OR REPLACE FUNCTION eo_ingest.resume_pipeline(name text)
RETURNS void LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT eo_ingest._set_enabled(name, true) $$;

/* Avro values (format => 'avro') with a Confluent Schema Registry or an inline writer schema */

-- the registry URLs or the inline schema of an Avro pipeline
ALTER TABLE eo_ingest.pipelines
	ADD COLUMN schema_registry text,
	ADD COLUMN avro_schema text,
	DROP CONSTRAINT pipelines_format_check,
	ADD CONSTRAINT pipelines_format_check CHECK (format IN ('json', 'avro', 'text', 'bytea'));

-- Writer schemas by id, per registry: replay, restart, failover and
-- restore never need the registry for an id already seen.
CREATE TABLE eo_ingest.avro_schemas (
	registry	text NOT NULL,
	id			integer NOT NULL,
	schema		text NOT NULL,
	fetched_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (registry, id)
);
COMMENT ON TABLE eo_ingest.avro_schemas IS 'Avro writer schemas fetched from schema registries, by registry (the pipeline''s schema_registry) and id';
SELECT pg_catalog.pg_extension_config_dump('eo_ingest.avro_schemas', '');
REVOKE ALL ON eo_ingest.avro_schemas FROM PUBLIC;
GRANT SELECT ON eo_ingest.avro_schemas TO PUBLIC;
-- a role sees the schemas of the registries its own pipelines use
ALTER TABLE eo_ingest.avro_schemas ENABLE ROW LEVEL SECURITY;
CREATE POLICY avro_schemas_owner ON eo_ingest.avro_schemas
	USING (EXISTS (SELECT FROM eo_ingest.pipelines p WHERE p.schema_registry OPERATOR(pg_catalog.=) registry));

CREATE FUNCTION eo_ingest._check_avro_schema(schema text)
RETURNS void LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'eo_ingest_check_avro_schema';
COMMENT ON FUNCTION eo_ingest._check_avro_schema IS 'internal: raises an error for an Avro schema eo_ingest cannot read';

CREATE FUNCTION eo_ingest._catalog_set_avro(id integer, schema_registry text, avro_schema text)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_catalog_set_avro';
COMMENT ON FUNCTION eo_ingest._catalog_set_avro IS 'internal: use eo_ingest.create_pipeline or alter_pipeline';

CREATE FUNCTION eo_ingest._check_avro(format text, schema_registry text, avro_schema text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	url text;
BEGIN
	IF format <> 'avro' THEN
		IF schema_registry IS NOT NULL OR avro_schema IS NOT NULL THEN
			RAISE EXCEPTION 'schema_registry and avro_schema need format ''avro'''
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		RETURN;
	END IF;
	IF schema_registry IS NOT NULL AND avro_schema IS NOT NULL THEN
		RAISE EXCEPTION 'format ''avro'' takes schema_registry or avro_schema, not both'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'With a registry each record names its writer schema; avro_schema is for plain Avro binary without one.';
	END IF;
	IF schema_registry IS NULL AND avro_schema IS NULL THEN
		RAISE EXCEPTION 'format ''avro'' needs either schema_registry or avro_schema'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Give schema_registry => ''http://host:8081'' for the Confluent wire format, or avro_schema => the writer schema (JSON) for plain Avro binary.';
	END IF;
	IF schema_registry IS NOT NULL THEN
		IF btrim(schema_registry) = '' OR length(schema_registry) > 10000 THEN
			RAISE EXCEPTION 'schema_registry must be a comma-separated list of URLs'
				USING ERRCODE = 'invalid_parameter_value', HINT = 'For example ''http://registry1:8081,http://registry2:8081''.';
		END IF;
		FOR url IN SELECT btrim(u) FROM regexp_split_to_table(schema_registry, ',') u LOOP
			IF url !~ '^https?://[^/@\s]+(/\S*)?$' THEN
				RAISE EXCEPTION 'invalid schema_registry URL "%"', eo_ingest._shorten(url)
					USING ERRCODE = 'invalid_parameter_value',
						  DETAIL = 'Each URL starts with http:// or https:// and carries no user name or password.',
						  HINT = 'Put credentials in kafka_options as schema.registry.user and schema.registry.password.';
			END IF;
		END LOOP;
	END IF;
	IF avro_schema IS NOT NULL THEN
		PERFORM eo_ingest._check_avro_schema(avro_schema);
	END IF;
END
$$;

/* Change streams: envelope, on_truncate, rows_deleted */
ALTER TABLE eo_ingest.pipelines
	ADD COLUMN envelope text NOT NULL DEFAULT 'none'
		CHECK (envelope IN ('none', 'debezium', 'upsert')),
	ADD COLUMN on_truncate text NOT NULL DEFAULT 'ignore'
		CHECK (on_truncate IN ('ignore', 'truncate'));
ALTER TABLE eo_ingest.counters ADD COLUMN rows_deleted bigint NOT NULL DEFAULT 0;

CREATE FUNCTION eo_ingest._catalog_set_envelope(id integer, envelope text, on_truncate text)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_catalog_set_envelope';
COMMENT ON FUNCTION eo_ingest._catalog_set_envelope IS 'internal: use eo_ingest.create_pipeline or alter_pipeline';

/* Key decoding: key_format, key_avro_schema */
ALTER TABLE eo_ingest.pipelines
	ADD COLUMN key_format text NOT NULL DEFAULT 'none'
		CHECK (key_format IN ('none', 'json', 'avro', 'text', 'bytea')),
	ADD COLUMN key_avro_schema text;

/*
 * key_format and key_avro_schema (0.3), with the $key.<path> sources of
 * columns and event_id that need a key decoded into fields.
 */
CREATE FUNCTION eo_ingest._catalog_set_key(id integer, key_format text, key_avro_schema text)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_catalog_set_key';
COMMENT ON FUNCTION eo_ingest._catalog_set_key IS 'internal: use eo_ingest.create_pipeline or alter_pipeline';

CREATE FUNCTION eo_ingest._check_key(format text, key_format text, schema_registry text,
									 key_avro_schema text, columns jsonb, event_id text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	src text;
	detail text;
BEGIN
	IF key_format IS NULL THEN
		RAISE EXCEPTION 'key_format must not be NULL'
			USING ERRCODE = 'null_value_not_allowed',
				  HINT = 'Use ''none'' (the key is only bytes, $key), ''json'', ''avro'', ''text'' or ''bytea''.';
	END IF;
	IF key_format NOT IN ('none', 'json', 'avro', 'text', 'bytea') THEN
		RAISE EXCEPTION 'invalid key_format "%"', eo_ingest._shorten(key_format)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''none'' (the key is only bytes, $key), ''json'', ''avro'', ''text'' or ''bytea''.';
	END IF;
	IF key_format = 'avro' AND format <> 'avro' THEN
		RAISE EXCEPTION 'key_format ''avro'' needs format ''avro'''
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Avro keys use the pipeline''s schema registry; with values of another format use key_format ''json'', ''text'' or ''bytea''.';
	END IF;
	IF key_avro_schema IS NOT NULL AND key_format <> 'avro' THEN
		RAISE EXCEPTION 'key_avro_schema needs key_format ''avro'''
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF key_format = 'avro' AND key_avro_schema IS NULL AND schema_registry IS NULL THEN
		RAISE EXCEPTION 'key_format ''avro'' needs schema_registry or key_avro_schema'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'With schema_registry, keys are in the Confluent wire format; key_avro_schema => the key''s writer schema (JSON) reads plain Avro binary keys.';
	END IF;
	IF key_avro_schema IS NOT NULL THEN
		BEGIN
			PERFORM eo_ingest._check_avro_schema(key_avro_schema);
		EXCEPTION WHEN invalid_parameter_value THEN
			GET STACKED DIAGNOSTICS src = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
			RAISE EXCEPTION 'invalid key_avro_schema'
				USING ERRCODE = 'invalid_parameter_value', DETAIL = src || coalesce(': ' || nullif(detail, ''), '.'),
					  HINT = 'key_avro_schema is the writer schema (Avro JSON) of a record with the key''s fields.';
		END;
	END IF;
	IF key_format IN ('json', 'avro') THEN
		RETURN;
	END IF;
	FOR src IN SELECT v FROM jsonb_each_text(coalesce(columns, '{}')) AS e(k, v) UNION ALL SELECT event_id LOOP
		IF src LIKE '$key.%' THEN
			RAISE EXCEPTION '"%" reads a field of the key, but key_format is %', eo_ingest._shorten(src), key_format
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Set key_format => ''json'' or ''avro'' to decode the key into fields.';
		END IF;
	END LOOP;
END
$$;

/*
 * envelope and on_truncate (0.3).  With an envelope the pipeline inserts,
 * updates and deletes rows by the target's primary key.
 */
CREATE FUNCTION eo_ingest._check_envelope(target regclass, envelope text, on_truncate text, format text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF envelope IS NOT NULL AND envelope NOT IN ('none', 'debezium', 'upsert') THEN
		RAISE EXCEPTION 'invalid envelope "%"', eo_ingest._shorten(envelope)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''none'' (every record is an event), ''debezium'' (Debezium change events) or ''upsert'' (the key identifies the row, a null value deletes it).';
	END IF;
	IF on_truncate IS NOT NULL AND on_truncate NOT IN ('ignore', 'truncate') THEN
		RAISE EXCEPTION 'invalid on_truncate "%"', eo_ingest._shorten(on_truncate)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''ignore'' (a truncate event changes nothing) or ''truncate'' (it empties the target).';
	END IF;
	IF envelope = 'debezium' AND format NOT IN ('json', 'avro') THEN
		RAISE EXCEPTION 'envelope "debezium" needs format json or avro'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Debezium writes change events with Kafka Connect''s JsonConverter or a Confluent AvroConverter.';
	END IF;
	IF envelope IN ('debezium', 'upsert') THEN
		IF NOT has_table_privilege(target, 'UPDATE') OR NOT has_table_privilege(target, 'DELETE') THEN
			RAISE EXCEPTION 'permission denied for table %', target
				USING ERRCODE = 'insufficient_privilege',
					  HINT = format('envelope => %L inserts, updates and deletes rows: it needs INSERT, UPDATE and DELETE on the target.', envelope);
		END IF;
		IF NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = target AND i.indisprimary) THEN
			RAISE EXCEPTION 'target % has no primary key', target
				USING ERRCODE = 'invalid_table_definition',
					  DETAIL = 'With an envelope, rows are identified by the target''s primary key.',
					  HINT = format('ALTER TABLE %s ADD PRIMARY KEY (...);', target);
		END IF;
	END IF;
END
$$;

DROP FUNCTION eo_ingest.create_pipeline(text, text, text, regclass, text, text, text, jsonb, text, integer,
										jsonb, boolean, integer, boolean, integer);
CREATE FUNCTION eo_ingest.create_pipeline(
	name			text,
	brokers			text,
	topic			text,
	target			regclass,
	event_id		text DEFAULT 'event_id',
	on_duplicate	text DEFAULT 'skip',
	format			text DEFAULT 'json',
	columns			jsonb DEFAULT NULL,
	start_from		text DEFAULT 'earliest',
	batch_size		integer DEFAULT 200000,
	kafka_options	jsonb DEFAULT '{}',
	start			boolean DEFAULT true,
	workers			integer DEFAULT 1,
	synchronous_commit boolean DEFAULT true,
	batch_timeout	integer DEFAULT 100,
	schema_registry	text DEFAULT NULL,
	avro_schema		text DEFAULT NULL,
	envelope		text DEFAULT 'none',
	on_truncate		text DEFAULT 'ignore',
	key_format		text DEFAULT 'none',
	key_avro_schema	text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rel record;
	k text;
	v jsonb;
	id_col name;
	src text;
	has_value boolean := false;
	is_avro boolean := format = 'avro';
	new_id integer;
BEGIN
	IF name IS NULL OR name = '' THEN
		RAISE EXCEPTION 'name must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF length(name) > 63 OR name !~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' THEN
		RAISE EXCEPTION 'invalid pipeline name "%"', eo_ingest._shorten(name)
			USING ERRCODE = 'invalid_name',
				  HINT = 'Use up to 63 letters, digits, underscores, dots or dashes.';
	END IF;
	IF EXISTS (SELECT FROM eo_ingest.pipeline_status s WHERE s.name OPERATOR(pg_catalog.=) create_pipeline.name) THEN
		RAISE EXCEPTION 'pipeline "%" already exists', eo_ingest._shorten(name)
			USING ERRCODE = 'duplicate_object',
				  HINT = 'Drop it first with eo_ingest.drop_pipeline, or choose another name.';
	END IF;
	IF brokers IS NULL OR btrim(brokers) = '' THEN
		RAISE EXCEPTION 'brokers must not be empty' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Give a comma-separated list of host:port, e.g. ''127.0.0.1:9092''.';
	END IF;
	IF length(brokers) > 10000 THEN
		RAISE EXCEPTION 'brokers is too long' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('brokers has %s characters; at most 10000 are accepted.', length(brokers)),
			HINT = 'A few bootstrap brokers are enough: the client learns the others from them.';
	END IF;
	IF brokers !~ '^\s*[^,\s]+(\s*,\s*[^,\s]+)*\s*$' THEN
		RAISE EXCEPTION 'invalid brokers "%"', eo_ingest._shorten(brokers) USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Give a comma-separated list of host:port, e.g. ''127.0.0.1:9092''.';
	END IF;
	IF topic IS NULL OR topic = '' THEN
		RAISE EXCEPTION 'topic must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF length(topic) > 249 OR topic !~ '^[A-Za-z0-9._-]+$' OR topic IN ('.', '..') THEN
		RAISE EXCEPTION 'invalid topic name "%"', eo_ingest._shorten(topic) USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Kafka topic names use up to 249 letters, digits, dots, underscores and dashes.';
	END IF;
	IF target IS NULL THEN
		RAISE EXCEPTION 'target must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT c.relkind, c.relpersistence, c.relnamespace INTO rel FROM pg_class c WHERE c.oid = target;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'target relation with OID % does not exist', target::oid
			USING ERRCODE = 'undefined_table';
	END IF;
	IF rel.relnamespace IN ('pg_catalog'::regnamespace, 'eo_ingest'::regnamespace, 'information_schema'::regnamespace)
	   OR target::oid < 16384 THEN
		RAISE EXCEPTION 'target % is a system or eo_ingest catalog table', target
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Pipelines write into your own tables.';
	END IF;
	IF rel.relkind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION 'target "%" is not a table', target
			USING ERRCODE = 'wrong_object_type',
				  DETAIL = format('%s is a %s.', target,
						CASE rel.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
							 WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' ELSE 'relation of another kind' END),
				  HINT = 'Pipelines write into ordinary or partitioned tables.';
	END IF;
	IF rel.relpersistence = 't' THEN
		RAISE EXCEPTION 'target "%" is a temporary table', target
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Temporary tables are visible only to the session that created them.';
	END IF;
	IF NOT has_table_privilege(target, 'INSERT') THEN
		RAISE EXCEPTION 'permission denied for table %', target
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'The pipeline writes as its owner, who needs INSERT on the target.';
	END IF;
	IF on_duplicate IS NULL THEN
		RAISE EXCEPTION 'on_duplicate must not be NULL'
			USING ERRCODE = 'null_value_not_allowed', HINT = 'Use ''skip'' (first wins) or ''update'' (latest wins).';
	END IF;
	IF on_duplicate NOT IN ('skip', 'update') THEN
		RAISE EXCEPTION 'invalid on_duplicate "%"', eo_ingest._shorten(on_duplicate)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''skip'' (first wins) or ''update'' (latest wins).';
	END IF;
	IF on_duplicate = 'update' AND NOT has_table_privilege(target, 'UPDATE') THEN
		RAISE EXCEPTION 'permission denied for table %', target
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'on_duplicate => ''update'' needs UPDATE on the target.';
	END IF;
	IF format IS NULL THEN
		RAISE EXCEPTION 'format must not be NULL'
			USING ERRCODE = 'null_value_not_allowed', HINT = 'Use ''json'', ''avro'', ''text'' or ''bytea''.';
	END IF;
	IF format NOT IN ('json', 'avro', 'text', 'bytea') THEN
		RAISE EXCEPTION 'invalid format "%"', eo_ingest._shorten(format)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''json'', ''avro'', ''text'' or ''bytea''.';
	END IF;
	PERFORM eo_ingest._check_avro(format, schema_registry, avro_schema);
	IF columns IS NOT NULL THEN
		IF jsonb_typeof(columns) <> 'object' THEN
			RAISE EXCEPTION 'columns must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Map target columns to sources, e.g. {"customer_id": "customer.id", "raw": "$value"}.';
		END IF;
		FOR k, v IN SELECT * FROM jsonb_each(columns) LOOP
			IF jsonb_typeof(v) <> 'string' OR v #>> '{}' = '' THEN
				RAISE EXCEPTION 'columns entry "%" must be a non-empty string', eo_ingest._shorten(k)
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'Use a JSON key or path such as "customer.id", or one of $key, $key.<path>, $value, $topic, $partition, $offset, $timestamp, $headers.';
			END IF;
			src := v #>> '{}';
			IF src IN ('$op', '$ts_ms', '$ts_us', '$ts_ns', '$source', '$transaction')
			   OR src ~ '^\$(source|transaction)\..' THEN
				-- a Debezium event's own fields
				IF envelope IS DISTINCT FROM 'debezium' THEN
					RAISE EXCEPTION 'columns entry "%" maps "%", a field of Debezium change events, but the envelope is %',
									eo_ingest._shorten(k), eo_ingest._shorten(src), eo_ingest._shorten(envelope)
						USING ERRCODE = 'invalid_parameter_value',
							  HINT = 'Only envelope => ''debezium'' fills columns from $op, $ts_ms, $source and $transaction.';
				END IF;
			ELSIF left(src, 1) = '$' AND src NOT IN ('$key', '$value', '$topic', '$partition', '$offset', '$timestamp', '$headers')
			   AND src !~ '^\$key\.[^.]' THEN
				RAISE EXCEPTION 'columns entry "%" has unknown source "%"', eo_ingest._shorten(k), eo_ingest._shorten(src)
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'Sources starting with $ are $key, $key.<path> (with key_format json or avro), $value, $topic, $partition, $offset, $timestamp and $headers; with envelope => ''debezium'' also $op, $ts_ms, $ts_us, $ts_ns, $source, $transaction and their fields ($source.lsn).';
			END IF;
			IF left(src, 1) <> '$' AND format NOT IN ('json', 'avro') THEN
				RAISE EXCEPTION 'columns entry "%" is a JSON path but the format is %', eo_ingest._shorten(k), eo_ingest._shorten(format)
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'With text or bytea values, map columns from $key, $value, $topic, $partition, $offset, $timestamp or $headers.';
			END IF;
			IF src = '$value' THEN has_value := true; END IF;
			IF NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = target AND a.attname = k::name
							AND a.attnum > 0 AND NOT a.attisdropped) THEN
				RAISE EXCEPTION 'columns entry "%": target % has no such column', eo_ingest._shorten(k), target
					USING ERRCODE = 'undefined_column';
			END IF;
			IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = target AND a.attname = k::name
						AND a.attgenerated <> '') THEN
				RAISE EXCEPTION 'columns entry "%": column % of target % is generated', eo_ingest._shorten(k), quote_ident(k), target
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'Generated columns are computed by PostgreSQL; leave them out of columns.';
			END IF;
		END LOOP;
	END IF;
	PERFORM eo_ingest._check_key(format, key_format, schema_registry, key_avro_schema, columns, event_id);
	IF format NOT IN ('json', 'avro') AND NOT has_value THEN
		RAISE EXCEPTION 'format "%" needs a column mapped from $value', eo_ingest._shorten(format)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Add columns => ''{"payload": "$value"}'' naming the column that receives the whole value.';
	END IF;
	IF envelope IS NULL OR on_truncate IS NULL THEN
		RAISE EXCEPTION '% must not be NULL', CASE WHEN envelope IS NULL THEN 'envelope' ELSE 'on_truncate' END
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM eo_ingest._check_envelope(target, envelope, on_truncate, format);
	IF envelope <> 'none' THEN
		-- rows are identified by the primary key, not by an event id
		event_id := NULL;
	END IF;
	IF event_id IS NOT NULL THEN
		IF event_id = '' THEN
			RAISE EXCEPTION 'event_id must not be empty' USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Name the JSON key holding the event id, ''$key'' for the Kafka key, or NULL for no deduplication.';
		END IF;
		IF format NOT IN ('json', 'avro') AND event_id <> '$key' AND event_id NOT LIKE '$key.%' THEN
			RAISE EXCEPTION 'event_id "%" needs format json or avro', eo_ingest._shorten(event_id)
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'With text or bytea values use event_id => ''$key'', a field of a decoded key (''$key.id''), or NULL.';
		END IF;
		id_col := eo_ingest._event_id_column(target, event_id, columns);
		IF id_col IS NULL THEN
			RAISE EXCEPTION 'target % has no column for event_id "%"', target, eo_ingest._shorten(event_id)
				USING ERRCODE = 'undefined_column',
					  HINT = CASE WHEN event_id = '$key'
							 THEN 'Map a column to the Kafka key with columns => ''{"event_id": "$key"}''.'
							 ELSE format('Add a column named %I, or map one with columns => ''{"my_column": "%s"}''.',
										 eo_ingest._shorten(event_id), eo_ingest._shorten(event_id)) END;
		END IF;
		IF NOT EXISTS (
			SELECT FROM pg_index i
			 WHERE i.indrelid = target AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
			   AND i.indnkeyatts = 1 AND i.indexprs IS NULL
			   AND i.indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = target AND attname = id_col)) THEN
			RAISE EXCEPTION 'target % has no unique index on column %', target, quote_ident(id_col)
				USING ERRCODE = 'invalid_table_definition',
					  DETAIL = 'Duplicate events are collapsed on the event id, which needs a unique index on that column alone.',
					  HINT = format('CREATE UNIQUE INDEX ON %s (%I);', target, id_col);
		END IF;
	END IF;
	PERFORM eo_ingest._check_position('start_from', start_from, false);
	IF start_from NOT IN ('earliest', 'latest') THEN
		-- the worker parses this with its own TimeZone: store the instant, in ISO 8601
		start_from := to_json(start_from::timestamptz) #>> '{}';
	END IF;
	PERFORM eo_ingest._check_batch_size(batch_size);
	IF workers IS NULL OR workers < 1 OR workers > 64 THEN
		RAISE EXCEPTION 'workers must be between 1 and 64' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF batch_timeout IS NULL OR batch_timeout < 1 OR batch_timeout > 3600000 THEN
		RAISE EXCEPTION 'batch_timeout must be between 1 and 3600000 milliseconds' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF start IS NULL THEN
		RAISE EXCEPTION 'start must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF synchronous_commit IS NULL THEN
		RAISE EXCEPTION 'synchronous_commit must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	PERFORM eo_ingest._check_kafka_options_shape(kafka_options);

	new_id := eo_ingest._catalog_insert_pipeline(name, btrim(brokers), topic, target, event_id, on_duplicate,
												 format, columns, start_from, batch_size, batch_timeout,
												 workers, synchronous_commit, kafka_options, start);
	IF is_avro THEN
		PERFORM eo_ingest._catalog_set_avro(new_id, btrim(schema_registry), avro_schema);
	END IF;
	IF envelope <> 'none' OR on_truncate <> 'ignore' THEN
		PERFORM eo_ingest._catalog_set_envelope(new_id, envelope, on_truncate);
	END IF;
	IF key_format <> 'none' THEN
		PERFORM eo_ingest._catalog_set_key(new_id, key_format, key_avro_schema);
	END IF;
	PERFORM eo_ingest._notify_change();
END
$$;

DROP FUNCTION eo_ingest.alter_pipeline(text, integer, text, jsonb, integer, boolean, integer, text, regclass);
CREATE FUNCTION eo_ingest.alter_pipeline(
	name			text,
	batch_size		integer DEFAULT NULL,
	on_duplicate	text DEFAULT NULL,
	kafka_options	jsonb DEFAULT NULL,
	workers			integer DEFAULT NULL,
	synchronous_commit boolean DEFAULT NULL,
	batch_timeout	integer DEFAULT NULL,
	brokers			text DEFAULT NULL,
	target			regclass DEFAULT NULL,
	schema_registry	text DEFAULT NULL,
	avro_schema		text DEFAULT NULL,
	envelope		text DEFAULT NULL,
	on_truncate		text DEFAULT NULL,
	key_format		text DEFAULT NULL,
	key_avro_schema	text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p eo_ingest.pipelines := eo_ingest._owned_pipeline(name);
	new_key_format text := coalesce(key_format, p.key_format);
	new_key_schema text := coalesce(key_avro_schema,
								   CASE WHEN new_key_format = 'avro' THEN p.key_avro_schema END);
BEGIN
	IF batch_size IS NOT NULL THEN
		PERFORM eo_ingest._check_batch_size(batch_size);
	END IF;
	IF on_duplicate IS NOT NULL AND on_duplicate NOT IN ('skip', 'update') THEN
		RAISE EXCEPTION 'invalid on_duplicate "%"', eo_ingest._shorten(on_duplicate)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''skip'' (first wins) or ''update'' (latest wins).';
	END IF;
	IF target IS NOT NULL THEN
		PERFORM eo_ingest._check_target(target, p.owner, coalesce(on_duplicate, p.on_duplicate),
										p.format, p.event_id, p.columns);
	ELSIF on_duplicate = 'update' AND NOT has_table_privilege(p.target, 'UPDATE') THEN
		RAISE EXCEPTION 'permission denied for table %', p.target
			USING ERRCODE = 'insufficient_privilege', HINT = 'on_duplicate => ''update'' needs UPDATE on the target.';
	END IF;
	IF target IS NOT NULL OR envelope IS NOT NULL OR on_truncate IS NOT NULL THEN
		PERFORM eo_ingest._check_envelope(coalesce(alter_pipeline.target, p.target),
										  coalesce(alter_pipeline.envelope, p.envelope),
										  alter_pipeline.on_truncate, p.format);
	END IF;
	IF kafka_options IS NOT NULL THEN
		PERFORM eo_ingest._check_kafka_options_shape(kafka_options);
	END IF;
	IF schema_registry IS NOT NULL OR avro_schema IS NOT NULL THEN
		IF p.format <> 'avro' THEN
			RAISE EXCEPTION 'pipeline "%" has format %, not avro', eo_ingest._shorten(name), p.format
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'schema_registry and avro_schema apply to format ''avro'' only.';
		END IF;
		-- one replaces the other: a registry and an inline schema exclude each other
		PERFORM eo_ingest._check_avro('avro', schema_registry, avro_schema);
	END IF;
	IF key_format IS NOT NULL OR key_avro_schema IS NOT NULL OR avro_schema IS NOT NULL THEN
		PERFORM eo_ingest._check_key(p.format, new_key_format,
									 CASE WHEN avro_schema IS NULL THEN coalesce(schema_registry, p.schema_registry) END,
									 new_key_schema, p.columns, p.event_id);
	END IF;
	IF workers IS NOT NULL AND (workers < 1 OR workers > 64) THEN
		RAISE EXCEPTION 'workers must be between 1 and 64' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF batch_timeout IS NOT NULL AND (batch_timeout < 1 OR batch_timeout > 3600000) THEN
		RAISE EXCEPTION 'batch_timeout must be between 1 and 3600000 milliseconds' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF brokers IS NOT NULL AND btrim(brokers) = '' THEN
		RAISE EXCEPTION 'brokers must not be empty' USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Give a comma-separated list of host:port, e.g. ''127.0.0.1:9092''.';
	END IF;
	IF length(brokers) > 10000 THEN
		RAISE EXCEPTION 'brokers is too long' USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('brokers has %s characters; at most 10000 are accepted.', length(brokers)),
			HINT = 'A few bootstrap brokers are enough: the client learns the others from them.';
	END IF;
	IF brokers !~ '^\s*[^,\s]+(\s*,\s*[^,\s]+)*\s*$' THEN
		RAISE EXCEPTION 'invalid brokers "%"', eo_ingest._shorten(brokers) USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Give a comma-separated list of host:port, e.g. ''127.0.0.1:9092''.';
	END IF;
	PERFORM eo_ingest._catalog_update_pipeline(p.id, NULL, alter_pipeline.batch_size, alter_pipeline.on_duplicate,
											   alter_pipeline.kafka_options, alter_pipeline.workers,
											   alter_pipeline.synchronous_commit, alter_pipeline.batch_timeout,
											   btrim(alter_pipeline.brokers), alter_pipeline.target);
	IF schema_registry IS NOT NULL OR avro_schema IS NOT NULL THEN
		PERFORM eo_ingest._catalog_set_avro(p.id, btrim(alter_pipeline.schema_registry),
											alter_pipeline.avro_schema);
	END IF;
	IF envelope IS NOT NULL OR on_truncate IS NOT NULL THEN
		PERFORM eo_ingest._catalog_set_envelope(p.id, envelope, on_truncate);
	END IF;
	IF key_format IS NOT NULL OR key_avro_schema IS NOT NULL THEN
		PERFORM eo_ingest._catalog_set_key(p.id, new_key_format, new_key_schema);
	END IF;
	PERFORM eo_ingest._notify_change();
END
$$;

/*
 * Where this database's pipelines belong.  Not dumped: a restore records the
 * restored database; a database copied with CREATE DATABASE ... TEMPLATE
 * finds its original's oid here, and its supervisor pauses the copied
 * pipelines instead of consuming the same topics a second time.
 */
CREATE TABLE eo_ingest.home_database (database oid NOT NULL);
INSERT INTO eo_ingest.home_database SELECT oid FROM pg_catalog.pg_database
 WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database();
COMMENT ON TABLE eo_ingest.home_database IS 'internal: the database these pipelines belong to';
ALTER TABLE eo_ingest.home_database ENABLE ROW LEVEL SECURITY;
CREATE POLICY home_database_read ON eo_ingest.home_database FOR SELECT USING (true);
REVOKE ALL ON eo_ingest.home_database FROM PUBLIC;
GRANT SELECT ON eo_ingest.home_database TO PUBLIC;

/*
 * Lag is shown only while the brokers told the watermarks recently, and
 * watermarks_at says when.  The 0.1 result shapes stay bound to their old
 * C symbols; the new shapes have new ones.
 */
DROP VIEW eo_ingest.pipeline_status;
DROP VIEW eo_ingest.partition_progress;
DROP FUNCTION eo_ingest._worker_status();
DROP FUNCTION eo_ingest._partition_status();

CREATE FUNCTION eo_ingest._worker_status(
	OUT database oid, OUT pipeline_id integer, OUT worker integer, OUT pid integer,
	OUT state text, OUT lag bigint, OUT last_error text, OUT last_error_at timestamptz,
	OUT started_at timestamptz, OUT watermarks_at timestamptz)
RETURNS SETOF record LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_worker_status_0_3';

CREATE FUNCTION eo_ingest._partition_status(
	OUT database oid, OUT pipeline_id integer, OUT partition integer,
	OUT high_watermark bigint, OUT watermarks_at timestamptz)
RETURNS SETOF record LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_partition_status_0_3';

CREATE VIEW eo_ingest.pipeline_status AS
SELECT p.name,
	   CASE WHEN NOT p.enabled THEN 'paused'
			ELSE coalesce(w.state, 'starting') END AS state,
	   p.topic,
	   p.target,
	   w.pid AS worker_pid,
	   coalesce(c.rows_inserted, 0) AS rows_inserted,
	   coalesce(c.rows_updated, 0) AS rows_updated,
	   coalesce(c.duplicates_skipped, 0) AS duplicates_skipped,
	   coalesce(c.dead_letters, 0) AS dead_letters,
	   CASE WHEN p.enabled THEN w.lag END AS lag,
	   c.last_batch_at,
	   w.last_error,
	   w.last_error_at,
	   p.owner,
	   p.brokers,
	   p.event_id,
	   p.on_duplicate,
	   p.format,
	   p.batch_size,
	   p.workers,
	   p.synchronous_commit,
	   p.created_at,
	   coalesce(c.batches, 0) AS batches,
	   coalesce(c.subtransactions, 0) AS subtransactions,
	   CASE WHEN p.enabled THEN w.watermarks_at END AS watermarks_at,
	   coalesce(c.rows_deleted, 0) AS rows_deleted,
	   p.envelope,
	   p.on_truncate,
	   p.key_format
  FROM eo_ingest.pipelines p
  LEFT JOIN (SELECT pipeline_id, sum(rows_inserted)::bigint AS rows_inserted,
					sum(rows_updated)::bigint AS rows_updated,
					sum(duplicates_skipped)::bigint AS duplicates_skipped,
					sum(dead_letters)::bigint AS dead_letters,
					max(last_batch_at) AS last_batch_at,
					sum(batches)::bigint AS batches,
					sum(subtransactions)::bigint AS subtransactions,
					sum(rows_deleted)::bigint AS rows_deleted
			   FROM eo_ingest.counters GROUP BY pipeline_id) c ON c.pipeline_id = p.id
  LEFT JOIN (SELECT s.pipeline_id,
					CASE WHEN bool_or(s.state = 'failed') THEN 'failed'
						 WHEN bool_or(s.state = 'retrying') THEN 'retrying'
						 WHEN bool_or(s.state = 'starting') THEN 'starting'
						 ELSE min(s.state) END AS state,
					min(s.pid) AS pid,
					CASE WHEN bool_and(s.lag IS NOT NULL) THEN sum(s.lag)::bigint END AS lag,
					(array_agg(s.last_error ORDER BY s.last_error_at DESC NULLS LAST))[1] AS last_error,
					max(s.last_error_at) AS last_error_at,
					CASE WHEN bool_and(s.watermarks_at IS NOT NULL) THEN min(s.watermarks_at) END AS watermarks_at
			   FROM eo_ingest._worker_status() s
			  WHERE s.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  GROUP BY s.pipeline_id) w ON w.pipeline_id = p.id;

CREATE VIEW eo_ingest.partition_progress AS
SELECT p.name AS pipeline,
	   o.partition,
	   o.next_offset,
	   h.high_watermark,
	   CASE WHEN p.enabled AND h.high_watermark IS NOT NULL
			THEN greatest(h.high_watermark - o.next_offset, 0) END AS lag,
	   o.committed_at,
	   h.watermarks_at
  FROM eo_ingest.offsets o
  JOIN eo_ingest.pipelines p ON p.id = o.pipeline_id
  LEFT JOIN eo_ingest._partition_status() h
	ON h.pipeline_id = o.pipeline_id AND h.partition = o.partition
   AND h.database = (SELECT oid FROM pg_database WHERE datname = current_database());

GRANT SELECT ON eo_ingest.pipeline_status, eo_ingest.partition_progress TO PUBLIC;

-- Batches of up to 200,000 records by default (0.2: 50,000).  On a backlog a
-- batch then takes what librdkafka's queue holds (eo_ingest.queue_kbytes of
-- payload, about 175,000 of the benchmark's 183-byte records) instead of a
-- quarter of it: measured with bench/run.sh (1M records, rounds of COPY and
-- each drain), the worker waited half as long for a core and the drain ran
-- 0.93-1.07 x COPY (median of each round against its own COPY) against
-- 0.87-0.98 x.  Memory stays bounded by queue_kbytes; a trickle still
-- commits at once.  Pipelines that exist keep the batch_size they have.
ALTER TABLE eo_ingest.pipelines ALTER COLUMN batch_size SET DEFAULT 200000;
