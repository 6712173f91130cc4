-- What users are told about who may create, see and change a pipeline.
-- Creating needs INSERT (and UPDATE for on_duplicate => 'update') on the
-- target; only the owner, a member of the owning role or a superuser may
-- change a pipeline; everyone sees every pipeline in pipeline_status, but only
-- the owner reads its kafka_options.  The privileges themselves, catalog
-- visibility and every refused direct write: test/pgtap/privileges.sql.
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE regress_eo_alice;
CREATE ROLE regress_eo_bob;
CREATE TABLE perm_orders (event_id uuid PRIMARY KEY, seq int);
CREATE TABLE perm_bob (event_id uuid PRIMARY KEY, seq int);
GRANT INSERT ON perm_orders TO regress_eo_alice;
GRANT SELECT ON perm_orders TO regress_eo_bob;
GRANT INSERT, UPDATE ON perm_bob TO regress_eo_bob;

SET ROLE regress_eo_alice;
SELECT eo_ingest.create_pipeline('perm_alice', '127.0.0.1:1', 'orders', 'perm_orders',
                                 kafka_options => '{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                                                    "sasl.username": "alice", "sasl.password": "s3cret"}',
                                 start => false);
-- update on duplicate needs UPDATE on the target, at create and at alter
SELECT eo_ingest.create_pipeline('perm_alice_upd', '127.0.0.1:1', 'orders', 'perm_orders',
                                 on_duplicate => 'update', start => false);
SELECT eo_ingest.alter_pipeline('perm_alice', on_duplicate => 'update');
-- the owner reads her own options, secrets included
SELECT name, owner, kafka_options FROM eo_ingest.pipelines;
RESET ROLE;

SELECT id AS alice_id FROM eo_ingest.pipelines WHERE name = 'perm_alice' \gset
INSERT INTO eo_ingest.offsets (pipeline_id, partition, next_offset) VALUES (:alice_id, 0, 10);
INSERT INTO eo_ingest.counters (pipeline_id, worker, rows_inserted) VALUES (:alice_id, 0, 5);
INSERT INTO eo_ingest.dead_letters (pipeline_id, pipeline, partition, "offset", key, payload, error, sqlstate)
VALUES (:alice_id, 'perm_alice', 0, 3, NULL, '\x7b7d', 'invalid input syntax for type uuid: ""', '22P02');

SET ROLE regress_eo_bob;
-- no INSERT on the target: no pipeline
SELECT eo_ingest.create_pipeline('perm_bob_bad', '127.0.0.1:1', 'orders', 'perm_orders', start => false);
-- another role's pipeline name is taken even though bob cannot read its row
SELECT eo_ingest.create_pipeline('perm_alice', '127.0.0.1:1', 'orders', 'perm_bob', start => false);
-- bob sees alice's pipeline in the views (what else he may read of the
-- catalog, and which writes PUBLIC lacks, is test/pgtap/privileges.sql's job)
SELECT name, state, topic, target, owner, rows_inserted, dead_letters FROM eo_ingest.pipeline_status;
SELECT kafka_options FROM eo_ingest.pipeline_status;
-- but may not change it: what he is told
SELECT eo_ingest.pause_pipeline('perm_alice');
SELECT eo_ingest.resume_pipeline('perm_alice');
SELECT eo_ingest.alter_pipeline('perm_alice', batch_size => 1);
SELECT eo_ingest.reset_offsets('perm_alice', '{"0": 0}');
SELECT eo_ingest.drop_pipeline('perm_alice');
-- his own pipeline he may create and change
SELECT eo_ingest.create_pipeline('perm_bob', '127.0.0.1:1', 'orders', 'perm_bob', on_duplicate => 'update',
                                 start => false);
SELECT eo_ingest.reset_offsets('perm_bob', '{"0": 1}');
SELECT name, owner FROM eo_ingest.pipelines;
SELECT pipeline, partition, next_offset FROM eo_ingest.partition_progress ORDER BY pipeline;
RESET ROLE;

-- nothing bob tried changed alice's pipeline
SELECT name, enabled, batch_size, config_version FROM eo_ingest.pipelines ORDER BY name;
SELECT partition, next_offset FROM eo_ingest.offsets WHERE pipeline_id = :alice_id;
SELECT worker, rows_inserted FROM eo_ingest.counters WHERE pipeline_id = :alice_id;
SELECT "offset", error FROM eo_ingest.dead_letters WHERE pipeline_id = :alice_id;

-- a member of the owning role may change it
GRANT regress_eo_alice TO regress_eo_bob;
SET ROLE regress_eo_bob;
SELECT eo_ingest.alter_pipeline('perm_alice', batch_size => 7);
SELECT name, batch_size FROM eo_ingest.pipelines ORDER BY name;
RESET ROLE;
REVOKE regress_eo_alice FROM regress_eo_bob;

-- dead letters: bob cannot purge alice's, alice purges her own
SET ROLE regress_eo_bob;
SELECT eo_ingest.purge_dead_letters('perm_alice');
RESET ROLE;
SET ROLE regress_eo_alice;
SELECT eo_ingest.purge_dead_letters('perm_alice', before => '2000-01-01');
SELECT eo_ingest.purge_dead_letters('perm_alice');
SELECT count(*) AS dead_letters FROM eo_ingest.dead_letters;
RESET ROLE;

-- the superuser may change anyone's
SELECT eo_ingest.pause_pipeline('perm_bob');
SELECT eo_ingest.drop_pipeline('perm_alice');
SELECT eo_ingest.drop_pipeline('perm_bob');
SELECT count(*) AS pipelines FROM eo_ingest.pipelines;
SELECT count(*) AS dead_letters FROM eo_ingest.dead_letters;

DROP TABLE perm_orders, perm_bob;
DROP ROLE regress_eo_alice, regress_eo_bob;
