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
