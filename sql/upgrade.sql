-- Extension versions.  0.1 is the first release; 0.2 makes the catalog
-- read-only for PUBLIC; 0.3 is the current version.  Each version has an
-- install script of its own, and a database updated from any earlier version
-- must end up exactly like a fresh install: same objects, definitions,
-- privileges and policies.
-- Dropping the extension drops its pipelines.
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest';
SELECT default_version FROM pg_available_extensions WHERE name = 'eo_ingest';
SELECT source, target, path FROM pg_extension_update_paths('eo_ingest') WHERE path IS NOT NULL ORDER BY 1, 2;
ALTER EXTENSION eo_ingest UPDATE;
ALTER EXTENSION eo_ingest UPDATE TO '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest';

-- the schema is the extension's own and cannot move
ALTER EXTENSION eo_ingest SET SCHEMA public;

-- Everything about the extension's objects, by name: what pg_dump would see.
CREATE TEMP VIEW eo_fingerprint AS
WITH objs AS (
	SELECT d.classid, d.objid FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
	 WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'eo_ingest' AND d.deptype = 'e'
)
SELECT pg_describe_object(o.classid, o.objid, 0) AS object,
	   CASE o.classid
			WHEN 'pg_proc'::regclass THEN
				(SELECT pg_get_functiondef(p.oid) || ' acl=' || coalesce(p.proacl::text, 'default')
				   FROM pg_proc p WHERE p.oid = o.objid)
			WHEN 'pg_class'::regclass THEN
				(SELECT c.relkind::text || ' acl=' || coalesce(c.relacl::text, 'default') || ' rls=' || c.relrowsecurity
						|| coalesce(' ' || obj_description(c.oid, 'pg_class'), '')
						|| CASE WHEN c.relkind = 'v' THEN ' ' || pg_get_viewdef(c.oid) ELSE '' END
				   FROM pg_class c WHERE c.oid = o.objid)
			ELSE '' END AS detail
  FROM objs o
UNION ALL
SELECT a.attrelid::regclass || '.' || a.attname,
	   format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull || ' identity=' || a.attidentity::text
	   || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '') || ' acl=' || coalesce(a.attacl::text, '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE c.relnamespace = 'eo_ingest'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT conrelid::regclass || ' constraint ' || conname, pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'eo_ingest'::regnamespace
UNION ALL
SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'eo_ingest'::regnamespace
UNION ALL
SELECT 'policy ' || polname || ' on ' || polrelid::regclass,
	   polcmd::text || ' ' || polroles::text || ' ' || coalesce(pg_get_expr(polqual, polrelid), '') || ' / '
	   || coalesce(pg_get_expr(polwithcheck, polrelid), '')
  FROM pg_policy WHERE polrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'eo_ingest'::regnamespace)
UNION ALL
SELECT 'config ' || c::regclass, coalesce(cond, '')
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, cond) WHERE e.extname = 'eo_ingest'
UNION ALL
SELECT 'schema eo_ingest', coalesce(nspacl::text, 'default') FROM pg_namespace WHERE nspname = 'eo_ingest';

CREATE TEMP TABLE eo_fresh AS SELECT * FROM eo_fingerprint;
SELECT count(*) > 50 AS fingerprint_has_objects FROM eo_fresh;

-- 0.1 with a pipeline, offsets, counters and a dead letter, then the update
DROP EXTENSION eo_ingest;
CREATE EXTENSION eo_ingest VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest';
CREATE ROLE regress_eo_up;
CREATE TABLE up_orders (event_id uuid PRIMARY KEY);
GRANT INSERT ON up_orders TO regress_eo_up;
SET ROLE regress_eo_up;
SELECT eo_ingest.create_pipeline('up_old', '127.0.0.1:1', 'up', 'up_orders', start => false,
                                 kafka_options => '{"sasl.password": "up-secret"}');
SELECT eo_ingest.reset_offsets('up_old', '{"0": 5, "1": 7}');
-- under 0.1 the owner could still write the catalog directly
INSERT INTO eo_ingest.counters (pipeline_id, worker, rows_inserted)
SELECT id, 0, 12 FROM eo_ingest.pipelines WHERE name = 'up_old';
INSERT INTO eo_ingest.dead_letters (pipeline_id, pipeline, partition, "offset", error, sqlstate)
SELECT id, name, 0, 3, 'bad', '22P02' FROM eo_ingest.pipelines WHERE name = 'up_old';
RESET ROLE;

ALTER EXTENSION eo_ingest UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest';

-- the same as a fresh install
(SELECT 'only fresh' AS side, * FROM eo_fresh EXCEPT SELECT 'only fresh', * FROM eo_fingerprint)
UNION ALL
(SELECT 'only updated', * FROM eo_fingerprint EXCEPT SELECT 'only updated', * FROM eo_fresh)
ORDER BY 1, 2;

-- the 0.1 pipeline kept everything (and remembers its target's name), and its
-- owner now works through the functions only
SELECT name, owner, enabled, kafka_options, target, target_name FROM eo_ingest.pipelines;
SELECT partition, next_offset FROM eo_ingest.offsets ORDER BY 1;
SELECT worker, rows_inserted FROM eo_ingest.counters;
SELECT "offset", error FROM eo_ingest.dead_letters;
SET ROLE regress_eo_up;
INSERT INTO eo_ingest.counters (pipeline_id, worker) SELECT id, 1 FROM eo_ingest.pipelines;
DELETE FROM eo_ingest.dead_letters;
SELECT eo_ingest.reset_offsets('up_old', '{"1": 9}');
SELECT eo_ingest.alter_pipeline('up_old', batch_size => 5);
SELECT eo_ingest.purge_dead_letters('up_old');
SELECT name, batch_size, config_version FROM eo_ingest.pipelines;
SELECT partition, next_offset FROM eo_ingest.offsets ORDER BY 1;
SELECT eo_ingest.drop_pipeline('up_old');
RESET ROLE;

-- Every version installed afresh equals 0.1 updated to it (a version with an
-- install script of its own checks that script; one without checks nothing
-- new), and each updated to the default equals a fresh install.
CREATE TEMP TABLE eo_version_diffs (version text, side text, object text, detail text);
DO $$
DECLARE
	v text;
BEGIN
	FOR v IN SELECT version FROM pg_available_extension_versions
			  WHERE name = 'eo_ingest' AND version <> '0.1'
			  ORDER BY string_to_array(version, '.')::int[] LOOP
		DROP EXTENSION IF EXISTS eo_ingest;
		EXECUTE format('CREATE EXTENSION eo_ingest VERSION %L', v);
		CREATE TEMP TABLE eo_v AS SELECT * FROM eo_fingerprint;
		ALTER EXTENSION eo_ingest UPDATE;
		INSERT INTO eo_version_diffs SELECT v || ' updated to the default', 'only fresh', *
		  FROM (SELECT * FROM eo_fresh EXCEPT SELECT * FROM eo_fingerprint) d;
		INSERT INTO eo_version_diffs SELECT v || ' updated to the default', 'only updated', *
		  FROM (SELECT * FROM eo_fingerprint EXCEPT SELECT * FROM eo_fresh) d;
		DROP EXTENSION eo_ingest;
		CREATE EXTENSION eo_ingest VERSION '0.1';
		EXECUTE format('ALTER EXTENSION eo_ingest UPDATE TO %L', v);
		INSERT INTO eo_version_diffs SELECT v, 'only fresh', *
		  FROM (SELECT * FROM eo_v EXCEPT SELECT * FROM eo_fingerprint) d;
		INSERT INTO eo_version_diffs SELECT v, 'only updated', *
		  FROM (SELECT * FROM eo_fingerprint EXCEPT SELECT * FROM eo_v) d;
		DROP TABLE eo_v;
	END LOOP;
	DROP EXTENSION eo_ingest;
	CREATE EXTENSION eo_ingest;
END
$$;
SELECT * FROM eo_version_diffs ORDER BY 1, 2, 3;

-- drop with a pipeline in place, then create afresh
SELECT eo_ingest.create_pipeline('up', '127.0.0.1:1', 'up', 'up_orders', start => false);
DROP EXTENSION eo_ingest;
SELECT count(*) FROM pg_extension WHERE extname = 'eo_ingest';
CREATE EXTENSION eo_ingest;
SELECT count(*) AS pipelines FROM eo_ingest.pipelines;
SELECT extversion FROM pg_extension WHERE extname = 'eo_ingest';
DROP TABLE up_orders;
DROP ROLE regress_eo_up;
