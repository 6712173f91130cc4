/* eo_ingest--0.1--0.2.sql: the catalog becomes read-only for PUBLIC */

\echo Use "ALTER EXTENSION eo_ingest UPDATE TO '0.2'" to load this file. \quit

/*
 * PUBLIC keeps SELECT (row-level security still shows each role only its
 * own pipelines' rows) and loses every write.  The API functions stay
 * SECURITY INVOKER and validate as the caller; their final writes go through
 * the C functions below (src/catalog.c), which take the caller from
 * GetUserId(), check its rights themselves, and run fixed statements as the
 * bootstrap superuser with search_path pinned to pg_catalog.  The workers
 * write offsets, counters and dead letters the same way.
 */
REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
	ON eo_ingest.pipelines, eo_ingest.offsets, eo_ingest.counters, eo_ingest.dead_letters
	FROM PUBLIC;
REVOKE ALL ON SEQUENCE eo_ingest.pipelines_id_seq FROM PUBLIC;

COMMENT ON TABLE eo_ingest.pipelines IS 'one row per pipeline; read-only, change it through the eo_ingest functions';

/*
 * The target's schema-qualified name, remembered so that a pipeline whose
 * target was dropped can follow a table re-created under the same name (the
 * worker switches to it; src/worker.c).  Set from the OID when a pipeline is
 * created or retargeted, and refreshed by the worker after a rename.  NULL
 * only for a 0.1 pipeline whose target was already gone at the update.
 */
ALTER TABLE eo_ingest.pipelines ADD COLUMN target_name text;
COMMENT ON COLUMN eo_ingest.pipelines.target_name IS 'schema-qualified name of the target, used to follow a re-created table';
UPDATE eo_ingest.pipelines p
   SET target_name = format('%I.%I', n.nspname, c.relname)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.oid OPERATOR(pg_catalog.=) p.target::oid;

CREATE FUNCTION eo_ingest._catalog_insert_pipeline(
	name text, brokers text, topic text, target regclass, event_id text,
	on_duplicate text, format text, columns jsonb, start_from text,
	batch_size integer, batch_timeout integer, workers integer,
	synchronous_commit boolean, kafka_options jsonb, enabled boolean)
RETURNS integer LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_catalog_insert_pipeline';
COMMENT ON FUNCTION eo_ingest._catalog_insert_pipeline IS 'internal: use eo_ingest.create_pipeline';

CREATE FUNCTION eo_ingest._catalog_update_pipeline(
	id integer, enabled boolean, batch_size integer, on_duplicate text,
	kafka_options jsonb, workers integer, synchronous_commit boolean,
	batch_timeout integer, brokers text, target regclass DEFAULT NULL)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_catalog_update_pipeline';
COMMENT ON FUNCTION eo_ingest._catalog_update_pipeline IS 'internal: use eo_ingest.alter_pipeline, pause_pipeline or resume_pipeline';

CREATE FUNCTION eo_ingest._catalog_delete_pipeline(id integer)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_catalog_delete_pipeline';
COMMENT ON FUNCTION eo_ingest._catalog_delete_pipeline IS 'internal: use eo_ingest.drop_pipeline';

CREATE FUNCTION eo_ingest._catalog_set_offsets(id integer, partitions integer[], offsets bigint[], replace boolean)
RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_catalog_set_offsets';
COMMENT ON FUNCTION eo_ingest._catalog_set_offsets IS 'internal: use eo_ingest.reset_offsets';

CREATE FUNCTION eo_ingest._catalog_purge_dead_letters(id integer, before timestamptz)
RETURNS bigint LANGUAGE c AS 'MODULE_PATHNAME', 'eo_ingest_catalog_purge_dead_letters';
COMMENT ON FUNCTION eo_ingest._catalog_purge_dead_letters IS 'internal: use eo_ingest.purge_dead_letters';

/*
 * The functions that hand kafka_options to librdkafka refuse, for
 * non-superusers, the properties that load code or run commands
 * (src/guard.c), and are STRICT: a NULL used to reach the C code.
 */
CREATE OR REPLACE FUNCTION eo_ingest._check_kafka_options(options jsonb)
RETURNS void LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'eo_ingest_guarded_check_kafka_options';

CREATE OR REPLACE FUNCTION eo_ingest._query_offsets(brokers text, topic text, options jsonb,
													at_position text,
													OUT partition integer, OUT "offset" bigint)
RETURNS SETOF record LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'eo_ingest_guarded_query_offsets';

/* Long arguments are quoted in messages only up to 64 characters. */
CREATE FUNCTION eo_ingest._shorten(value text)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN length(value) > 64 THEN left(value, 64) || '...' ELSE value END $$;

CREATE OR REPLACE FUNCTION eo_ingest._check_position(arg text, pos text, allow_offsets boolean)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j jsonb;
	k text;
	v jsonb;
BEGIN
	IF pos IS NULL OR pos = '' THEN
		RAISE EXCEPTION '% must not be empty', arg
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use ''earliest'', ''latest'' or a timestamp with time zone.';
	END IF;
	IF pos IN ('earliest', 'latest') THEN
		RETURN;
	END IF;
	IF allow_offsets AND left(pos, 1) = '{' THEN
		BEGIN
			j := pos::jsonb;
		EXCEPTION WHEN invalid_text_representation THEN
			RAISE EXCEPTION '% is not a valid JSON object', arg
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Give per-partition offsets as {"0": 42, "1": 7}.';
		END;
		FOR k, v IN SELECT * FROM jsonb_each(j) LOOP
			IF k !~ '^[0-9]{1,9}$' OR jsonb_typeof(v) <> 'number' OR v::text !~ '^[0-9]{1,18}$' THEN
				RAISE EXCEPTION '% has an invalid entry "%": %', arg, eo_ingest._shorten(k), eo_ingest._shorten(v::text)
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'Give per-partition offsets as {"0": 42, "1": 7}: partition numbers as keys, non-negative offsets as values.';
			END IF;
		END LOOP;
		RETURN;
	END IF;
	BEGIN
		IF NOT isfinite(pos::timestamptz) THEN
			RAISE EXCEPTION 'infinite';
		END IF;
	EXCEPTION WHEN OTHERS THEN
		RAISE EXCEPTION 'invalid % "%"', arg, eo_ingest._shorten(pos)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = CASE WHEN allow_offsets
						 THEN 'Use ''earliest'', ''latest'', a timestamp with time zone or a JSON object of per-partition offsets.'
						 ELSE 'Use ''earliest'', ''latest'' or a timestamp with time zone.' END;
	END;
END
$$;

CREATE OR REPLACE FUNCTION eo_ingest._check_kafka_options_shape(kafka_options jsonb)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k text;
	v jsonb;
BEGIN
	IF kafka_options IS NULL OR jsonb_typeof(kafka_options) <> 'object' THEN
		RAISE EXCEPTION 'kafka_options must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass librdkafka properties as {"security.protocol": "SASL_SSL", ...}.';
	END IF;
	FOR k, v IN SELECT * FROM jsonb_each(kafka_options) LOOP
		IF jsonb_typeof(v) NOT IN ('string', 'number', 'boolean') THEN
			RAISE EXCEPTION 'kafka_options property "%" must be a string, number or boolean', eo_ingest._shorten(k)
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF k IN ('bootstrap.servers', 'metadata.broker.list', 'group.id', 'enable.auto.commit',
				 'enable.auto.offset.store', 'isolation.level', 'auto.offset.reset',
				 'enable.partition.eof') THEN
			RAISE EXCEPTION 'kafka_options property "%" is managed by eo_ingest', eo_ingest._shorten(k)
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Brokers come from the brokers argument; offsets and isolation are fixed for exactly-once delivery.';
		END IF;
	END LOOP;
	PERFORM eo_ingest._check_kafka_options(kafka_options);
END
$$;

/* Row locks need UPDATE, which PUBLIC no longer has: the C functions lock. */
CREATE OR REPLACE FUNCTION eo_ingest._owned_pipeline(pipeline_name text)
RETURNS eo_ingest.pipelines LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p eo_ingest.pipelines;
BEGIN
	IF pipeline_name IS NULL THEN
		RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO p FROM eo_ingest.pipelines WHERE name OPERATOR(pg_catalog.=) pipeline_name;
	IF NOT FOUND AND EXISTS (SELECT FROM eo_ingest.pipeline_status s WHERE s.name OPERATOR(pg_catalog.=) pipeline_name) THEN
		RAISE EXCEPTION 'must be owner of pipeline "%"', eo_ingest._shorten(pipeline_name)
			USING ERRCODE = 'insufficient_privilege',
				  HINT = 'Only the owner of a pipeline, a member of the owning role or a superuser can change it.';
	END IF;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'pipeline "%" does not exist', eo_ingest._shorten(pipeline_name)
			USING ERRCODE = 'undefined_object',
				  HINT = 'See SELECT name FROM eo_ingest.pipeline_status; only the owner of a pipeline can change it.';
	END IF;
	RETURN p;
END
$$;

/* The API: the same checks as in 0.1, the writes through the functions above */
CREATE OR REPLACE FUNCTION eo_ingest.create_pipeline(
	name			text,
	brokers			text,
	topic			text,
	target			regclass,
	event_id		text DEFAULT 'event_id',
	on_duplicate	text DEFAULT 'skip',
	format			text DEFAULT 'json',
	columns			jsonb DEFAULT NULL,
	start_from		text DEFAULT 'earliest',
	batch_size		integer DEFAULT 50000,
	kafka_options	jsonb DEFAULT '{}',
	start			boolean DEFAULT true,
	workers			integer DEFAULT 1,
	synchronous_commit boolean DEFAULT true,
	batch_timeout	integer DEFAULT 100)
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
			USING ERRCODE = 'null_value_not_allowed', HINT = 'Use ''json'', ''text'' or ''bytea''.';
	END IF;
	IF format NOT IN ('json', 'text', 'bytea') THEN
		RAISE EXCEPTION 'invalid format "%"', eo_ingest._shorten(format)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''json'', ''text'' or ''bytea''.';
	END IF;
	IF columns IS NOT NULL THEN
		IF jsonb_typeof(columns) <> 'object' THEN
			RAISE EXCEPTION 'columns must be a JSON object' USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Map target columns to sources, e.g. {"customer_id": "customer.id", "raw": "$value"}.';
		END IF;
		FOR k, v IN SELECT * FROM jsonb_each(columns) LOOP
			IF jsonb_typeof(v) <> 'string' OR v #>> '{}' = '' THEN
				RAISE EXCEPTION 'columns entry "%" must be a non-empty string', eo_ingest._shorten(k)
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'Use a JSON key or path such as "customer.id", or one of $key, $value, $topic, $partition, $offset, $timestamp, $headers.';
			END IF;
			src := v #>> '{}';
			IF left(src, 1) = '$' AND src NOT IN ('$key', '$value', '$topic', '$partition', '$offset', '$timestamp', '$headers') THEN
				RAISE EXCEPTION 'columns entry "%" has unknown source "%"', eo_ingest._shorten(k), eo_ingest._shorten(src)
					USING ERRCODE = 'invalid_parameter_value',
						  HINT = 'Sources starting with $ are $key, $value, $topic, $partition, $offset, $timestamp and $headers.';
			END IF;
			IF left(src, 1) <> '$' AND format <> 'json' THEN
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
	IF format <> 'json' AND NOT has_value THEN
		RAISE EXCEPTION 'format "%" needs a column mapped from $value', eo_ingest._shorten(format)
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Add columns => ''{"payload": "$value"}'' naming the column that receives the whole value.';
	END IF;
	IF event_id IS NOT NULL THEN
		IF event_id = '' THEN
			RAISE EXCEPTION 'event_id must not be empty' USING ERRCODE = 'invalid_parameter_value',
				HINT = 'Name the JSON key holding the event id, ''$key'' for the Kafka key, or NULL for no deduplication.';
		END IF;
		IF format <> 'json' AND event_id <> '$key' THEN
			RAISE EXCEPTION 'event_id "%" needs format json', eo_ingest._shorten(event_id)
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'With text or bytea values use event_id => ''$key'' or NULL.';
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

	PERFORM eo_ingest._catalog_insert_pipeline(name, btrim(brokers), topic, target, event_id, on_duplicate,
											   format, columns, start_from, batch_size, batch_timeout,
											   workers, synchronous_commit, kafka_options, start);
	PERFORM eo_ingest._notify_change();
END
$$;

CREATE OR REPLACE FUNCTION eo_ingest.pause_pipeline(name text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p eo_ingest.pipelines := eo_ingest._owned_pipeline(name);
BEGIN
	PERFORM eo_ingest._catalog_update_pipeline(p.id, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	PERFORM eo_ingest._notify_change();
END
$$;

CREATE OR REPLACE FUNCTION eo_ingest.resume_pipeline(name text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p eo_ingest.pipelines := eo_ingest._owned_pipeline(name);
BEGIN
	PERFORM eo_ingest._catalog_update_pipeline(p.id, true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	PERFORM eo_ingest._notify_change();
END
$$;

CREATE OR REPLACE FUNCTION eo_ingest.drop_pipeline(name text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p eo_ingest.pipelines := eo_ingest._owned_pipeline(name);
BEGIN
	PERFORM eo_ingest._catalog_delete_pipeline(p.id);
	PERFORM eo_ingest._notify_change();
END
$$;

/*
 * A pipeline's target can change without losing its offsets.  The new
 * target gets the checks create_pipeline makes, for the pipeline's owner.
 */
CREATE FUNCTION eo_ingest._check_target(target regclass, owner regrole, on_duplicate text,
										format text, event_id text, columns jsonb)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	rel record;
	k text;
	id_col name;
BEGIN
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
				  HINT = 'Pipelines write into ordinary or partitioned tables.';
	END IF;
	IF rel.relpersistence = 't' THEN
		RAISE EXCEPTION 'target "%" is a temporary table', target
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'Temporary tables are visible only to the session that created them.';
	END IF;
	IF NOT has_table_privilege(owner, target, 'INSERT') THEN
		RAISE EXCEPTION 'permission denied for table %', target
			USING ERRCODE = 'insufficient_privilege',
				  HINT = format('The pipeline writes as its owner, %s, who needs INSERT on the target.', owner);
	END IF;
	IF on_duplicate = 'update' AND NOT has_table_privilege(owner, target, 'UPDATE') THEN
		RAISE EXCEPTION 'permission denied for table %', target
			USING ERRCODE = 'insufficient_privilege',
				  HINT = format('on_duplicate => ''update'' needs UPDATE on the target for the owner, %s.', owner);
	END IF;
	FOR k IN SELECT jsonb_object_keys(coalesce(columns, '{}')) LOOP
		IF NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = target AND a.attname = k::name
						AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') THEN
			RAISE EXCEPTION 'columns entry "%": target % has no such column', eo_ingest._shorten(k), target
				USING ERRCODE = 'undefined_column',
					  HINT = 'The pipeline''s columns mapping must fit the new target.';
		END IF;
	END LOOP;
	IF event_id IS NOT NULL THEN
		id_col := eo_ingest._event_id_column(target, event_id, columns);
		IF id_col IS NULL THEN
			RAISE EXCEPTION 'target % has no column for event_id "%"', target, eo_ingest._shorten(event_id)
				USING ERRCODE = 'undefined_column';
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
END
$$;

DROP FUNCTION eo_ingest.alter_pipeline(text, integer, text, jsonb, integer, boolean, integer, text);
CREATE FUNCTION eo_ingest.alter_pipeline(
	name			text,
	batch_size		integer DEFAULT NULL,
	on_duplicate	text DEFAULT NULL,
	kafka_options	jsonb DEFAULT NULL,
	workers			integer DEFAULT NULL,
	synchronous_commit boolean DEFAULT NULL,
	batch_timeout	integer DEFAULT NULL,
	brokers			text DEFAULT NULL,
	target			regclass DEFAULT NULL)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p eo_ingest.pipelines := eo_ingest._owned_pipeline(name);
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
	IF kafka_options IS NOT NULL THEN
		PERFORM eo_ingest._check_kafka_options_shape(kafka_options);
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
	PERFORM eo_ingest._notify_change();
END
$$;

CREATE OR REPLACE FUNCTION eo_ingest.reset_offsets(name text, to_position text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p eo_ingest.pipelines := eo_ingest._owned_pipeline(name);
	parts integer[];
	offs bigint[];
BEGIN
	IF p.enabled THEN
		RAISE EXCEPTION 'pipeline "%" is running', eo_ingest._shorten(name)
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = format('Pause it first: SELECT eo_ingest.pause_pipeline(%L);', name);
	END IF;
	PERFORM eo_ingest._check_position('to_position', to_position, true);
	IF left(to_position, 1) = '{' THEN
		SELECT coalesce(array_agg(e.key::integer), '{}'), coalesce(array_agg(e.value::bigint), '{}')
		  INTO parts, offs FROM jsonb_each_text(to_position::jsonb) AS e;
		PERFORM eo_ingest._catalog_set_offsets(p.id, parts, offs, false);
	ELSE
		SELECT coalesce(array_agg(q.partition), '{}'), coalesce(array_agg(q."offset"), '{}')
		  INTO parts, offs FROM eo_ingest._query_offsets(p.brokers, p.topic, p.kafka_options, to_position) q;
		PERFORM eo_ingest._catalog_set_offsets(p.id, parts, offs, true);
	END IF;
	PERFORM eo_ingest._notify_change();
END
$$;

CREATE FUNCTION eo_ingest.purge_dead_letters(name text, before timestamptz DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p eo_ingest.pipelines := eo_ingest._owned_pipeline(name);
BEGIN
	RETURN eo_ingest._catalog_purge_dead_letters(p.id, before);
END
$$;
COMMENT ON FUNCTION eo_ingest.purge_dead_letters IS 'deletes a pipeline''s dead letters (those that failed before "before", if given); returns how many';

-- Batches of 50,000 records by default: measured with bench/run.sh, a commit
-- per 10,000 records spent a fifth of a drain waiting for WAL flushes (0.51 x
-- COPY's rows/s, against 0.69 x with 50,000).  A batch also closes at
-- eo_ingest.queue_kbytes of payload and after batch_timeout, so memory and
-- freshness do not depend on it.
ALTER TABLE eo_ingest.pipelines ALTER COLUMN batch_size SET DEFAULT 50000;
