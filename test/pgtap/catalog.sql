-- Catalog shape: schema, tables, views, functions, row-level security,
-- privileges of PUBLIC and the extension's configuration tables.
BEGIN;
SELECT plan(141);

SELECT has_schema('eo_ingest');
SELECT is((SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'eo_ingest'),
          'eo_ingest', 'the extension lives in schema eo_ingest');

-- tables, their columns and primary keys
SELECT has_table('eo_ingest', t, 'table eo_ingest.' || t)
  FROM unnest(ARRAY['pipelines', 'offsets', 'counters', 'dead_letters', 'avro_schemas']) AS t;

SELECT has_column('eo_ingest', 'pipelines', c, 'pipelines.' || c)
  FROM unnest(ARRAY['id', 'name', 'owner', 'brokers', 'topic', 'target', 'event_id', 'on_duplicate',
                    'format', 'columns', 'start_from', 'batch_size', 'batch_timeout', 'workers',
                    'synchronous_commit', 'kafka_options', 'enabled', 'target_name',
                    'schema_registry', 'avro_schema', 'envelope', 'on_truncate']) AS c;
SELECT col_is_pk('eo_ingest', 'pipelines', 'id', 'pipelines is keyed by id');
SELECT col_is_unique('eo_ingest', 'pipelines', 'name', 'pipeline names are unique');
SELECT col_type_is('eo_ingest', 'pipelines', 'target', 'regclass', 'pipelines.target is a regclass');
SELECT col_type_is('eo_ingest', 'pipelines', 'owner', 'regrole', 'pipelines.owner is a regrole');
SELECT col_type_is('eo_ingest', 'pipelines', 'target_name', 'text', 'pipelines.target_name is text');
SELECT col_type_is('eo_ingest', 'pipelines', 'kafka_options', 'jsonb', 'pipelines.kafka_options is jsonb');

SELECT has_column('eo_ingest', 'offsets', c, 'offsets.' || c)
  FROM unnest(ARRAY['pipeline_id', 'partition', 'next_offset', 'committed_at']) AS c;
SELECT col_is_pk('eo_ingest', 'offsets', ARRAY['pipeline_id', 'partition'], 'offsets are keyed by pipeline and partition');
SELECT col_type_is('eo_ingest', 'offsets', 'next_offset', 'bigint', 'offsets.next_offset is a bigint');

SELECT has_column('eo_ingest', 'counters', c, 'counters.' || c)
  FROM unnest(ARRAY['pipeline_id', 'worker', 'rows_inserted', 'rows_updated', 'duplicates_skipped',
                    'dead_letters', 'last_batch_at', 'rows_deleted']) AS c;
SELECT col_is_pk('eo_ingest', 'counters', ARRAY['pipeline_id', 'worker'], 'counters are keyed by pipeline and worker');

SELECT has_column('eo_ingest', 'dead_letters', c, 'dead_letters.' || c)
  FROM unnest(ARRAY['pipeline', 'partition', 'offset', 'key', 'payload', 'error', 'sqlstate', 'failed_at']) AS c;
SELECT col_type_is('eo_ingest', 'dead_letters', c, t, format('dead_letters.%s is %s', c, t))
  FROM (VALUES ('pipeline', 'text'), ('partition', 'integer'), ('offset', 'bigint'), ('key', 'bytea'),
               ('payload', 'bytea'), ('error', 'text'), ('sqlstate', 'text'),
               ('failed_at', 'timestamp with time zone')) AS v(c, t);
SELECT col_is_pk('eo_ingest', 'dead_letters', ARRAY['pipeline_id', 'partition', 'offset'],
                 'a record is dead-lettered at most once');

-- every pipeline's rows go with it
SELECT is(count(*)::int, 3, 'offsets, counters and dead_letters cascade from pipelines')
  FROM pg_constraint
 WHERE contype = 'f' AND confrelid = 'eo_ingest.pipelines'::regclass AND confdeltype = 'c'
   AND conrelid IN ('eo_ingest.offsets'::regclass, 'eo_ingest.counters'::regclass, 'eo_ingest.dead_letters'::regclass);

-- views: the fixed columns, in order, first
SELECT has_view('eo_ingest', v, 'view eo_ingest.' || v)
  FROM unnest(ARRAY['pipeline_status', 'partition_progress']) AS v;
SELECT is((SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
            WHERE attrelid = 'eo_ingest.pipeline_status'::regclass AND attnum BETWEEN 1 AND 13),
          ARRAY['name', 'state', 'topic', 'target', 'worker_pid', 'rows_inserted', 'rows_updated',
                'duplicates_skipped', 'dead_letters', 'lag', 'last_batch_at', 'last_error', 'last_error_at'],
          'pipeline_status starts with its fixed columns');
SELECT is((SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
            WHERE attrelid = 'eo_ingest.partition_progress'::regclass AND attnum BETWEEN 1 AND 6),
          ARRAY['pipeline', 'partition', 'next_offset', 'high_watermark', 'lag', 'committed_at'],
          'partition_progress starts with its fixed columns');
SELECT col_type_is('eo_ingest', 'pipeline_status', c, t, format('pipeline_status.%s is %s', c, t))
  FROM (VALUES ('name', 'text'), ('state', 'text'), ('worker_pid', 'integer'), ('rows_inserted', 'bigint'),
               ('rows_updated', 'bigint'), ('duplicates_skipped', 'bigint'), ('dead_letters', 'bigint'),
               ('lag', 'bigint'), ('last_batch_at', 'timestamp with time zone'), ('last_error', 'text'),
               ('last_error_at', 'timestamp with time zone'), ('rows_deleted', 'bigint')) AS v(c, t);
SELECT col_type_is('eo_ingest', 'partition_progress', c, t, format('partition_progress.%s is %s', c, t))
  FROM (VALUES ('partition', 'integer'), ('next_offset', 'bigint'), ('high_watermark', 'bigint'),
               ('lag', 'bigint'), ('committed_at', 'timestamp with time zone')) AS v(c, t);
SELECT hasnt_column('eo_ingest', 'pipeline_status', 'kafka_options', 'pipeline_status does not show kafka_options');
SELECT col_type_is('eo_ingest', v, 'watermarks_at', 'timestamp with time zone', v || ' says when the watermarks were read')
  FROM unnest(ARRAY['pipeline_status', 'partition_progress']) AS v;
SELECT ok(has_table_privilege('public', 'eo_ingest.home_database', 'SELECT')
          AND NOT has_table_privilege('public', 'eo_ingest.home_database', 'INSERT, UPDATE, DELETE, TRUNCATE'),
          'PUBLIC reads eo_ingest.home_database and writes nothing there');

-- the SQL interface
SELECT has_function('eo_ingest', f, a, format('eo_ingest.%s(%s)', f, array_to_string(a, ', ')))
  FROM (VALUES ('pause_pipeline', ARRAY['text']), ('resume_pipeline', ARRAY['text']),
               ('drop_pipeline', ARRAY['text']), ('reset_offsets', ARRAY['text', 'text'])) AS v(f, a);
SELECT is((SELECT count(*)::int FROM pg_proc WHERE pronamespace = 'eo_ingest'::regnamespace AND proname = f),
          1, format('eo_ingest.%s has one signature', f))
  FROM unnest(ARRAY['create_pipeline', 'pause_pipeline', 'resume_pipeline', 'drop_pipeline',
                    'alter_pipeline', 'reset_offsets']) AS f;
SELECT is((SELECT (array_agg(format('%s %s', n, format_type(t, NULL)) ORDER BY i))[1:12]
             FROM pg_proc, unnest(proargnames, proargtypes::oid[]) WITH ORDINALITY AS a(n, t, i)
            WHERE oid = 'eo_ingest.create_pipeline'::regproc),
          ARRAY['name text', 'brokers text', 'topic text', 'target regclass', 'event_id text',
                'on_duplicate text', 'format text', 'columns jsonb', 'start_from text', 'batch_size integer',
                'kafka_options jsonb', 'start boolean'],
          'create_pipeline takes the documented arguments in the documented order');
SELECT is((SELECT pronargs - pronargdefaults FROM pg_proc WHERE oid = 'eo_ingest.create_pipeline'::regproc)::int,
          4, 'create_pipeline needs only name, brokers, topic and target');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = f::regproc), a, f || ' argument names')
  FROM (VALUES ('eo_ingest.pause_pipeline', ARRAY['name']), ('eo_ingest.resume_pipeline', ARRAY['name']),
               ('eo_ingest.drop_pipeline', ARRAY['name']),
               ('eo_ingest.reset_offsets', ARRAY['name', 'to_position'])) AS v(f, a);
SELECT is((SELECT proargnames[1] || ' ' || format_type(proargtypes[0], NULL) FROM pg_proc
            WHERE oid = 'eo_ingest.alter_pipeline'::regproc), 'name text', 'alter_pipeline takes the name first');
SELECT is((SELECT pronargs - pronargdefaults FROM pg_proc WHERE oid = 'eo_ingest.alter_pipeline'::regproc)::int,
          1, 'alter_pipeline changes only what it is given');

-- functions run with a pinned search_path
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                   WHERE p.pronamespace = 'eo_ingest'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
                     AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')$$,
                'every SQL and PL/pgSQL function pins its search_path');
SELECT is_empty($$SELECT p.oid::regprocedure::text FROM pg_proc p
                   WHERE p.pronamespace = 'eo_ingest'::regnamespace AND p.prosecdef
                     AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')$$,
                'every SECURITY DEFINER function pins its search_path');
SELECT is_empty($$SELECT p.oid::regprocedure::text, c FROM pg_proc p, unnest(p.proconfig) c
                   WHERE p.pronamespace = 'eo_ingest'::regnamespace AND c LIKE 'search\_path=%'
                     AND c NOT IN ('search_path=pg_catalog, pg_temp', 'search_path=pg_catalog,pg_temp')$$,
                'pinned search_paths hold only pg_catalog and pg_temp, in that order');

-- row-level security on every table, and no write by PUBLIC that bypasses it
SELECT is_empty($$SELECT relname FROM pg_class WHERE relnamespace = 'eo_ingest'::regnamespace
                   AND relkind IN ('r', 'p') AND NOT relrowsecurity$$,
                'row-level security is enabled on every eo_ingest table');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = ('eo_ingest.' || t)::regclass),
          'row-level security on ' || t)
  FROM unnest(ARRAY['pipelines', 'offsets', 'counters', 'dead_letters']) AS t;
SELECT is((SELECT count(*)::int FROM pg_policy WHERE polrelid = ('eo_ingest.' || t)::regclass),
          1, t || ' has its policy')
  FROM unnest(ARRAY['pipelines', 'offsets', 'counters', 'dead_letters']) AS t;
SELECT is_empty($$SELECT c.relname, a.privilege_type
                    FROM pg_class c, aclexplode(c.relacl) a
                   WHERE c.relnamespace = 'eo_ingest'::regnamespace AND a.grantee = 0
                     AND a.privilege_type NOT IN ('SELECT', 'USAGE')
                     AND (NOT c.relrowsecurity OR c.relkind NOT IN ('r', 'p')
                          OR a.privilege_type IN ('TRUNCATE', 'REFERENCES', 'TRIGGER'))$$,
                'PUBLIC writes only to tables under row-level security, and never truncates');
SELECT is_empty($$SELECT c.relname, at.attname
                    FROM pg_class c JOIN pg_attribute at ON at.attrelid = c.oid, aclexplode(at.attacl) a
                   WHERE c.oid = 'eo_ingest.pipelines'::regclass AND a.grantee = 0
                     AND a.privilege_type = 'UPDATE' AND at.attname IN ('id', 'name', 'owner', 'target', 'created_at')$$,
                'PUBLIC cannot update a pipeline''s id, name, owner or target');
SELECT ok(NOT has_table_privilege('public', 'eo_ingest.pipelines', 'UPDATE'),
          'PUBLIC has no table-wide UPDATE on pipelines');
SELECT ok(NOT has_table_privilege('public', 'eo_ingest.' || t, 'TRUNCATE'), 'PUBLIC cannot truncate ' || t)
  FROM unnest(ARRAY['pipelines', 'offsets', 'counters', 'dead_letters', 'avro_schemas']) AS t;
SELECT is_empty($$SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'eo_ingest'::regnamespace
                   AND c.relkind IN ('v', 'm') AND (has_table_privilege('public', c.oid, 'INSERT')
                        OR has_table_privilege('public', c.oid, 'UPDATE') OR has_table_privilege('public', c.oid, 'DELETE'))$$,
                'PUBLIC cannot write through the views');
SELECT ok(has_table_privilege('public', 'eo_ingest.' || v, 'SELECT'), 'PUBLIC reads ' || v)
  FROM unnest(ARRAY['pipeline_status', 'partition_progress']) AS v;
SELECT ok(NOT has_schema_privilege('public', 'eo_ingest', 'CREATE'), 'PUBLIC cannot create objects in eo_ingest');

-- pg_dump keeps pipelines, offsets, counters and dead letters
SELECT ok((SELECT ('eo_ingest.' || t)::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'eo_ingest'),
          t || ' is an extension configuration table')
  FROM unnest(ARRAY['pipelines', 'offsets', 'counters', 'dead_letters', 'avro_schemas']) AS t;
SELECT ok((SELECT 'eo_ingest.pipelines_id_seq'::regclass = ANY (extconfig) FROM pg_extension WHERE extname = 'eo_ingest'),
          'the pipeline id sequence is dumped too');

SELECT * FROM finish();
ROLLBACK;
