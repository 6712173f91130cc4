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
	   CASE WHEN p.enabled THEN w.watermarks_at END AS watermarks_at
  FROM eo_ingest.pipelines p
  LEFT JOIN (SELECT pipeline_id, sum(rows_inserted)::bigint AS rows_inserted,
					sum(rows_updated)::bigint AS rows_updated,
					sum(duplicates_skipped)::bigint AS duplicates_skipped,
					sum(dead_letters)::bigint AS dead_letters,
					max(last_batch_at) AS last_batch_at,
					sum(batches)::bigint AS batches,
					sum(subtransactions)::bigint AS subtransactions
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
