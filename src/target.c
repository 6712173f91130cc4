/*
 * target.c
 *		A worker following its pipeline's target across DROP TABLE (a table
 *		created again under the remembered name) and RENAME (the new name
 *		remembered).
 *
 * Both run inside the worker's transactions, as the pipeline's owner, and
 * write the pipeline's row through the catalog functions (catalog.c).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "eo_ingest.h"
#include "catalog.h"
#include "compat.h"

/*
 * The worker's way back after its target was dropped: if the pipeline still
 * points at the dropped OID and a table now has the name it remembers, and
 * the owner may write that table as create_pipeline requires, point the
 * pipeline at it, keeping the offsets.  Returns the new target, or
 * InvalidOid when the pipeline's row had already changed (reload it).  Any
 * other outcome is an error that says what the pipeline waits for.  Runs in
 * the worker's transaction, SPI connected, as the owner.
 */
Oid
eo_target_follow(int32 id, Oid dropped)
{
	Oid			argtypes[3] = {INT4OID, REGCLASSOID, TEXTOID};
	Datum		values[3];
	EoPipelineRow row;
	List	   *names;
	Oid			target;
	MemoryContext cxt = CurrentMemoryContext;

	eo_catalog_lock_pipeline(id, GetUserId(), &row);
	if (row.target != dropped || SearchSysCacheExists1(RELOID, ObjectIdGetDatum(dropped)))
		return InvalidOid;
	if (!eo_catalog_knows_names())
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target table with OID %u does not exist", dropped),
				 errhint("After ALTER EXTENSION eo_ingest UPDATE a pipeline follows a table created again under its target's name.")));
	if (row.target_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target table with OID %u was dropped and its name is not known; "
						"point the pipeline at a table with eo_ingest.alter_pipeline(name, target => ...) "
						"or drop it", dropped)));
	names = eo_qualified_name_list(row.target_name);
	target = RangeVarGetRelid(makeRangeVarFromNameList(names), AccessShareLock, true);
	if (!OidIsValid(target))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target table %s (OID %u) was dropped; the pipeline waits, storing no offset, "
						"and resumes from its stored offsets once a table of that name exists again "
						"(or point it at another table with eo_ingest.alter_pipeline(name, target => ...), "
						"or drop it)", row.target_name, dropped)));

	PG_TRY();
	{
		eo_catalog_check_target(target, row.owner, row.update);
		eo_catalog_check_event_id_index(id, target);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* the whole error, detail, hint and context included, said anew */
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		edata->message = psprintf("target table %s was dropped and created again, but the pipeline "
								  "cannot write the new table yet: %s", row.target_name, edata->message);
		ReThrowError(edata);
	}
	PG_END_TRY();

	values[0] = Int32GetDatum(id);
	values[1] = ObjectIdGetDatum(target);
	values[2] = CStringGetTextDatum(eo_catalog_target_name(target));
	if (eo_catalog_execute("UPDATE eo_ingest.pipelines SET target = $2, target_name = $3, "
						   "config_version = config_version + 1 WHERE id = $1",
						   3, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_processed != 1)
		elog(ERROR, "updating eo_ingest.pipelines failed");
	/* the pipeline's other workers restart on the new target too */
	eo_wake_workers_at_commit(id);
	ereport(LOG,
			(errmsg("eo_ingest pipeline \"%s\": target table %s was created again; "
					"switching from OID %u to OID %u and continuing from the stored offsets",
					row.name, row.target_name, dropped, target)));
	return target;
}

/*
 * Remember the target's current name after a rename (same OID); the name is
 * read from the system catalog, not taken from the caller.  *known is the
 * name last remembered, in cxt: the common case, nothing renamed, costs two
 * syscache look-ups.  Runs in the worker's transaction, SPI connected, as
 * the owner.
 */
void
eo_target_refresh_name(int32 id, Oid target, char **known, MemoryContext cxt)
{
	Oid			argtypes[3] = {INT4OID, REGCLASSOID, TEXTOID};
	Datum		values[3];
	char	   *name = eo_catalog_target_name(target);
	char	   *remembered;
	EoPipelineRow row;

	if (name == NULL || (*known != NULL && strcmp(name, *known) == 0) ||
		!eo_catalog_knows_names())
		return;
	values[0] = Int32GetDatum(id);
	if (eo_catalog_execute("SELECT target_name FROM eo_ingest.pipelines WHERE id = $1",
						   1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading eo_ingest.pipelines failed");
	if (SPI_processed != 1)
		return;
	remembered = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (remembered == NULL || strcmp(name, remembered) != 0)
	{
		eo_catalog_lock_pipeline(id, GetUserId(), &row);
		values[1] = ObjectIdGetDatum(target);
		values[2] = CStringGetTextDatum(name);
		if (eo_catalog_execute("UPDATE eo_ingest.pipelines SET target_name = $3 "
							   "WHERE id = $1 AND target = $2",
							   3, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "updating eo_ingest.pipelines failed");
		if (SPI_processed == 1)
			ereport(LOG,
					(errmsg("eo_ingest pipeline \"%s\": target %s is now named %s",
							row.name, remembered ? remembered : "?", name)));
	}
	/* remembered only once stored: a failed transaction tries again */
	if (*known != NULL)
		pfree(*known);
	*known = MemoryContextStrdup(cxt, name);
}
