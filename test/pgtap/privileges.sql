-- Privileges as unprivileged roles: PUBLIC only reads the catalog (a role
-- sees only its own rows) and changes it through the functions, which let
-- a role change only its own pipelines; everyone sees every pipeline's
-- status but no one else's kafka_options.
BEGIN;
SELECT plan(58);

CREATE ROLE eo_tap_alice;
CREATE ROLE eo_tap_bob;
CREATE TABLE public.tap_alice (event_id uuid PRIMARY KEY, seq int);
CREATE TABLE public.tap_bob (event_id uuid PRIMARY KEY, seq int);
GRANT INSERT, UPDATE ON public.tap_alice TO eo_tap_alice;
GRANT INSERT ON public.tap_bob TO eo_tap_bob;

SET ROLE eo_tap_alice;
SELECT lives_ok($$SELECT eo_ingest.create_pipeline('tap_alice', '127.0.0.1:1', 'orders', 'public.tap_alice',
                    kafka_options => '{"sasl.username": "alice", "sasl.password": "alice-secret"}', start => false)$$,
                'alice creates a pipeline into her table');
SELECT is((SELECT owner::text FROM eo_ingest.pipelines WHERE name = 'tap_alice'), 'eo_tap_alice',
          'the pipeline is owned by its creator');
SELECT is((SELECT kafka_options ->> 'sasl.password' FROM eo_ingest.pipelines WHERE name = 'tap_alice'),
          'alice-secret', 'the owner reads her own kafka_options');
SELECT lives_ok($$SELECT eo_ingest.reset_offsets('tap_alice', '{"0": 10, "1": 20}')$$,
                'alice sets her offsets');
RESET ROLE;
-- what a worker running as alice would have written
INSERT INTO eo_ingest.counters (pipeline_id, worker, rows_inserted)
SELECT id, 0, 30 FROM eo_ingest.pipelines WHERE name = 'tap_alice';
INSERT INTO eo_ingest.dead_letters (pipeline_id, pipeline, partition, "offset", payload, error, sqlstate)
SELECT id, name, 0, 4, '\x00', 'bad', '22P02' FROM eo_ingest.pipelines WHERE name = 'tap_alice';
SELECT id AS alice_id FROM eo_ingest.pipelines WHERE name = 'tap_alice' \gset

SET ROLE eo_tap_bob;
-- reading
SELECT is_empty($$SELECT * FROM eo_ingest.pipelines$$, 'bob sees no row of alice''s in pipelines');
SELECT is_empty($$SELECT * FROM eo_ingest.offsets$$, 'bob sees no row of alice''s in offsets');
SELECT is_empty($$SELECT * FROM eo_ingest.counters$$, 'bob sees no row of alice''s in counters');
SELECT is_empty($$SELECT * FROM eo_ingest.dead_letters$$, 'bob sees no row of alice''s in dead_letters');
SELECT results_eq($$SELECT name, state, topic, rows_inserted FROM eo_ingest.pipeline_status$$,
                  $$VALUES ('tap_alice', 'paused', 'orders', 30::bigint)$$,
                  'bob sees alice''s pipeline in pipeline_status');
SELECT results_eq($$SELECT pipeline, partition, next_offset FROM eo_ingest.partition_progress ORDER BY partition$$,
                  $$VALUES ('tap_alice', 0, 10::bigint), ('tap_alice', 1, 20::bigint)$$,
                  'bob sees alice''s progress in partition_progress');
SELECT throws_ok($$SELECT kafka_options FROM eo_ingest.pipeline_status$$, '42703', NULL,
                 'pipeline_status has no kafka_options for bob to read');
SELECT is_empty($$SELECT 1 FROM eo_ingest.pipeline_status s WHERE s::text LIKE '%alice-secret%'$$,
                'alice''s secret appears nowhere in pipeline_status');
SELECT is_empty($$SELECT 1 FROM eo_ingest.partition_progress s WHERE s::text LIKE '%alice-secret%'$$,
                'alice''s secret appears nowhere in partition_progress');

-- writing alice's rows behind the functions' back
SELECT throws_ok($$UPDATE eo_ingest.pipelines SET enabled = true, batch_size = 1 RETURNING name$$,
                 '42501', 'permission denied for table pipelines', 'bob cannot update alice''s pipeline');
SELECT throws_ok($$DELETE FROM eo_ingest.pipelines RETURNING name$$,
                 '42501', 'permission denied for table pipelines', 'bob cannot delete alice''s pipeline');
SELECT throws_ok($$UPDATE eo_ingest.offsets SET next_offset = 0 RETURNING partition$$,
                 '42501', 'permission denied for table offsets', 'bob cannot move alice''s offsets');
SELECT throws_ok($$DELETE FROM eo_ingest.offsets RETURNING partition$$,
                 '42501', 'permission denied for table offsets', 'bob cannot delete alice''s offsets');
SELECT throws_ok($$UPDATE eo_ingest.counters SET rows_inserted = 0 RETURNING worker$$,
                 '42501', 'permission denied for table counters', 'bob cannot reset alice''s counters');
SELECT throws_ok($$DELETE FROM eo_ingest.dead_letters RETURNING "offset"$$,
                 '42501', 'permission denied for table dead_letters', 'bob cannot delete alice''s dead letters');
SELECT throws_ok(format($$INSERT INTO eo_ingest.offsets (pipeline_id, partition, next_offset) VALUES (%s, 2, 0)$$, :alice_id),
                 '42501', 'permission denied for table offsets',
                 'bob cannot add offsets to alice''s pipeline');
SELECT throws_ok(format($$INSERT INTO eo_ingest.counters (pipeline_id, worker) VALUES (%s, 1)$$, :alice_id),
                 '42501', 'permission denied for table counters',
                 'bob cannot add counters to alice''s pipeline');
SELECT throws_ok(format($$INSERT INTO eo_ingest.dead_letters (pipeline_id, pipeline, partition, "offset", error, sqlstate)
                          VALUES (%s, 'tap_alice', 0, 5, 'forged', '22000')$$, :alice_id),
                 '42501', 'permission denied for table dead_letters',
                 'bob cannot add dead letters to alice''s pipeline');
SELECT throws_ok($$INSERT INTO eo_ingest.pipelines (name, owner, brokers, topic, target)
                   VALUES ('tap_forged', 'eo_tap_alice', '127.0.0.1:1', 'orders', 'public.tap_bob')$$,
                 '42501', 'permission denied for table pipelines',
                 'bob cannot insert a pipeline row owned by alice');
SELECT throws_ok($$UPDATE eo_ingest.pipelines SET owner = 'eo_tap_bob'$$, '42501', NULL,
                 'bob cannot update the owner column');
SELECT throws_ok($$TRUNCATE eo_ingest.offsets$$, '42501', NULL, 'bob cannot truncate offsets');
SELECT throws_ok($$TRUNCATE eo_ingest.dead_letters$$, '42501', NULL, 'bob cannot truncate dead_letters');

-- through the functions
SELECT throws_ok($$SELECT eo_ingest.pause_pipeline('tap_alice')$$, '42501',
                 'must be owner of pipeline "tap_alice"', 'bob cannot pause alice''s pipeline');
SELECT throws_ok($$SELECT eo_ingest.resume_pipeline('tap_alice')$$, '42501',
                 'must be owner of pipeline "tap_alice"', 'bob cannot resume alice''s pipeline');
SELECT throws_ok($$SELECT eo_ingest.alter_pipeline('tap_alice', kafka_options => '{}')$$, '42501',
                 'must be owner of pipeline "tap_alice"', 'bob cannot alter alice''s pipeline');
SELECT throws_ok($$SELECT eo_ingest.reset_offsets('tap_alice', '{"0": 0}')$$, '42501',
                 'must be owner of pipeline "tap_alice"', 'bob cannot reset alice''s offsets');
SELECT throws_ok($$SELECT eo_ingest.drop_pipeline('tap_alice')$$, '42501',
                 'must be owner of pipeline "tap_alice"', 'bob cannot drop alice''s pipeline');
SELECT throws_ok($$SELECT eo_ingest.create_pipeline('tap_bob_x', '127.0.0.1:1', 'orders', 'public.tap_alice', start => false)$$,
                 '42501', 'permission denied for table public.tap_alice',
                 'bob cannot create a pipeline into a table he may not insert into');
SELECT throws_ok($$SELECT eo_ingest.create_pipeline('tap_bob_u', '127.0.0.1:1', 'orders', 'public.tap_bob',
                    on_duplicate => 'update', start => false)$$,
                 '42501', 'permission denied for table public.tap_bob',
                 'on_duplicate => update needs UPDATE on the target');

SELECT throws_ok($$SELECT eo_ingest.purge_dead_letters('tap_alice')$$, '42501',
                 'must be owner of pipeline "tap_alice"', 'bob cannot purge alice''s dead letters');
SELECT throws_ok($$INSERT INTO eo_ingest.pipelines (name, brokers, topic, target)
                   VALUES ('tap_bob_own', '127.0.0.1:1', 'orders', 'public.tap_bob')$$,
                 '42501', 'permission denied for table pipelines',
                 'bob cannot insert even his own pipeline row directly');

-- through the internal C functions, which check the caller themselves
SELECT throws_ok(format($$SELECT eo_ingest._catalog_update_pipeline(%s, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL)$$, :alice_id),
                 '42501', 'must be owner of pipeline "tap_alice"', 'bob cannot update alice''s row through the C function');
SELECT throws_ok(format($$SELECT eo_ingest._catalog_delete_pipeline(%s)$$, :alice_id),
                 '42501', 'must be owner of pipeline "tap_alice"', 'bob cannot delete alice''s row through the C function');
SELECT throws_ok(format($$SELECT eo_ingest._catalog_set_offsets(%s, '{0}', '{0}', true)$$, :alice_id),
                 '42501', 'must be owner of pipeline "tap_alice"', 'bob cannot move alice''s offsets through the C function');
SELECT throws_ok(format($$SELECT eo_ingest._catalog_purge_dead_letters(%s, NULL)$$, :alice_id),
                 '42501', 'must be owner of pipeline "tap_alice"', 'bob cannot purge alice''s dead letters through the C function');
SELECT throws_ok($$SELECT eo_ingest._catalog_insert_pipeline('tap_bob_c', '127.0.0.1:1', 'orders', 'public.tap_alice', 'event_id',
                   'skip', 'json', NULL, 'earliest', 100, 100, 1, true, '{}', false)$$,
                 '42501', 'permission denied for table tap_alice',
                 'bob cannot create a pipeline into alice''s table through the C function');
SELECT throws_ok($$SELECT eo_ingest._catalog_insert_pipeline('tap_bob_c', '127.0.0.1:1', 'orders', 'public.tap_bob', 'event_id',
                   'update', 'json', NULL, 'earliest', 100, 100, 1, true, '{}', false)$$,
                 '42501', 'permission denied for table tap_bob',
                 'the C function checks UPDATE for on_duplicate => update');

-- his own pipeline
SELECT lives_ok($$SELECT eo_ingest.create_pipeline('tap_bob', '127.0.0.1:1', 'orders', 'public.tap_bob', start => false)$$,
                'bob creates a pipeline into his own table');
SELECT results_eq($$SELECT name, owner::text FROM eo_ingest.pipelines$$, $$VALUES ('tap_bob', 'eo_tap_bob')$$,
                  'bob sees exactly his own pipeline row');
SELECT is(eo_ingest.purge_dead_letters('tap_bob'), 0::bigint, 'bob purges his own (empty) dead letters');
SELECT lives_ok($$SELECT eo_ingest._catalog_insert_pipeline('tap_bob_c', '127.0.0.1:1', 'orders', 'public.tap_bob', 'event_id',
                  'skip', 'json', NULL, 'earliest', 100, 100, 1, true, '{}', false)$$,
                'the C function inserts a pipeline into bob''s own table');
SELECT is((SELECT owner::text FROM eo_ingest.pipelines WHERE name = 'tap_bob_c'), 'eo_tap_bob',
          'the C function makes the caller the owner');
SELECT lives_ok($$SELECT eo_ingest.drop_pipeline('tap_bob_c')$$, 'bob drops it');
SELECT lives_ok($$SELECT eo_ingest.drop_pipeline('tap_bob')$$, 'bob drops his own pipeline');
RESET ROLE;

-- nothing bob did touched alice's rows
SELECT results_eq(format($$SELECT enabled, batch_size, config_version FROM eo_ingest.pipelines WHERE id = %s$$, :alice_id),
                  $$VALUES (false, 200000, 2::bigint)$$, 'alice''s pipeline is unchanged');
SELECT results_eq(format($$SELECT partition, next_offset FROM eo_ingest.offsets WHERE pipeline_id = %s ORDER BY 1$$, :alice_id),
                  $$VALUES (0, 10::bigint), (1, 20::bigint)$$, 'alice''s offsets are unchanged');
SELECT results_eq(format($$SELECT count(*)::int FROM eo_ingest.dead_letters WHERE pipeline_id = %s$$, :alice_id),
                  $$VALUES (1)$$, 'alice''s dead letter is still there');
SELECT results_eq(format($$SELECT worker, rows_inserted FROM eo_ingest.counters WHERE pipeline_id = %s$$, :alice_id),
                  $$VALUES (0, 30::bigint)$$, 'alice''s counters are unchanged');

SET ROLE eo_tap_alice;
SELECT is(eo_ingest.purge_dead_letters('tap_alice', '-infinity'), 0::bigint,
          'purge_dead_letters with before keeps newer dead letters');
SELECT is(eo_ingest.purge_dead_letters('tap_alice'), 1::bigint, 'alice purges her own dead letters');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM eo_ingest.dead_letters), 0, 'her dead letters are gone');

-- PUBLIC reads the catalog and writes none of it
SELECT is(ARRAY(SELECT DISTINCT a.privilege_type::text
                  FROM pg_class c, aclexplode(c.relacl) a
                 WHERE c.relnamespace = 'eo_ingest'::regnamespace AND c.relkind IN ('r', 'S', 'p')
                   AND a.grantee = 0),
          ARRAY['SELECT'], 'PUBLIC has only SELECT on the catalog tables');
SELECT is_empty($$SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid, aclexplode(a.attacl) x
                   WHERE c.relnamespace = 'eo_ingest'::regnamespace AND x.grantee = 0$$,
                'PUBLIC has no column privileges on the catalog tables');
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                   WHERE p.pronamespace = 'eo_ingest'::regnamespace AND p.prosecdef$$,
                'no function is SECURITY DEFINER: the writes go through C functions that check the caller');

SELECT * FROM finish();
ROLLBACK;
