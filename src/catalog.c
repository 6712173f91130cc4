/*
 * catalog.c
 *		The only writer of eo_ingest's catalog tables.
 *
 * PUBLIC may read the catalog (row-level security shows each role its own
 * pipelines) but not write it, as pg_cron does with its job table.  The SQL
 * API validates its arguments in plpgsql, as the caller, and hands the final
 * write to the functions here.  They take the caller from GetUserId() before
 * switching user, check the caller's rights themselves (so calling them
 * directly gains nothing), and only then run fixed statements as the
 * bootstrap superuser, in a security-restricted operation with search_path
 * pinned to pg_catalog, so no function or operator of the caller's can be
 * reached.  No function here runs SQL given by the caller.
 *
 * The pipeline workers run as the pipeline owner and write their offsets,
 * counters and dead letters through eo_catalog_execute*, while the rows for
 * the target, and whatever triggers they fire, stay the owner's.
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "eo_ingest.h"
#include "catalog.h"
#include "guard.h"

PG_FUNCTION_INFO_V1(eo_ingest_catalog_insert_pipeline);
PG_FUNCTION_INFO_V1(eo_ingest_catalog_update_pipeline);
PG_FUNCTION_INFO_V1(eo_ingest_catalog_delete_pipeline);
PG_FUNCTION_INFO_V1(eo_ingest_catalog_set_offsets);
PG_FUNCTION_INFO_V1(eo_ingest_catalog_purge_dead_letters);

/*
 * Run fn(arg) with search_path pinned to pg_catalog, pg_temp until it
 * returns; with as_catalog, also as the bootstrap superuser in a
 * security-restricted operation.  The one way eo_ingest runs its own
 * statements: the target write, whichever path, runs user code (triggers,
 * defaults, CHECK constraints) whose SET must not outlive the statement, and
 * catalog writes must reach no function or operator of the caller's.  The
 * pin is transactional (a GUC nest level), unlike the worker's
 * PGC_S_OVERRIDE, so an error inside undoes it as well.
 */
void
eo_catalog_run_pinned(void (*fn) (void *arg), void *arg, bool as_catalog)
{
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	if (as_catalog)
		SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
							   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		AtEOXact_GUC(false, nestlevel);
		SetUserIdAndSecContext(save_userid, save_sec_context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/* One SPI call for eo_catalog_run_pinned: a statement's text or a plan. */
typedef struct EoSpiCall
{
	const char *sql;
	SPIPlanPtr	plan;
	int			nargs;
	Oid		   *argtypes;
	Datum	   *values;
	const char *nulls;
	bool		read_only;
	long		count;
	int			ret;
} EoSpiCall;

static void
eo_spi_call(void *arg)
{
	EoSpiCall  *c = (EoSpiCall *) arg;

	if (c->plan != NULL)
		c->ret = SPI_execute_plan(c->plan, c->values, c->nulls, c->read_only, c->count);
	else
		c->ret = SPI_execute_with_args(c->sql, c->nargs, c->argtypes, c->values,
									   c->nulls, c->read_only, c->count);
}

static int
eo_catalog_spi(EoSpiCall c, bool as_catalog)
{
	eo_catalog_run_pinned(eo_spi_call, &c, as_catalog);
	return c.ret;
}

/* SPI_execute_with_args on the catalog, as the bootstrap superuser. */
int
eo_catalog_execute(const char *sql, int nargs, Oid *argtypes, Datum *values,
				   const char *nulls, bool read_only, long count)
{
	return eo_catalog_spi((EoSpiCall) {sql, NULL, nargs, argtypes, values, nulls, read_only, count, 0}, true);
}

/* SPI_execute_plan of a fixed catalog statement, as the bootstrap superuser. */
int
eo_catalog_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls,
						bool read_only, long count)
{
	return eo_catalog_spi((EoSpiCall) {NULL, plan, 0, NULL, values, nulls, read_only, count, 0}, true);
}

/*
 * The worker's write into the target: SPI_execute_plan as the pipeline's
 * owner, search_path pinned.
 */
int
eo_catalog_execute_pinned_plan(SPIPlanPtr plan, Datum *values, const char *nulls,
							   bool read_only, long count)
{
	return eo_catalog_spi((EoSpiCall) {NULL, plan, 0, NULL, values, nulls, read_only, count, 0}, false);
}

/* The owner must be allowed to write the target, as the worker will. */
void
eo_catalog_check_target(Oid target, Oid owner, bool update)
{
	char		relkind = get_rel_relkind(target);
	char	   *relname;

	if (relkind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target relation with OID %u does not exist", target)));
	relname = get_rel_name(target);
	if (target < FirstNormalObjectId ||
		get_rel_namespace(target) == get_namespace_oid("eo_ingest", true) ||
		get_rel_namespace(target) == get_namespace_oid("information_schema", true))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" is a system or eo_ingest catalog table", relname),
				 errhint("Pipelines write into your own tables.")));
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" is not a table", relname),
				 errhint("Pipelines write into ordinary or partitioned tables.")));
	if (get_rel_persistence(target) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" is a temporary table", relname),
				 errhint("Temporary tables are visible only to the session that created them.")));
	if (pg_class_aclcheck(target, owner, ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", relname),
				 errhint("The pipeline writes as its owner, who needs INSERT on the target.")));
	if (update && pg_class_aclcheck(target, owner, ACL_UPDATE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", relname),
				 errhint("on_duplicate => 'update' needs UPDATE on the target.")));
}

/*
 * Unless the pipeline has no event id, the target needs a unique index on
 * the event id's column alone, as create_pipeline requires.
 */
void
eo_catalog_check_event_id_index(int32 id, Oid target)
{
	Oid			argtypes[2] = {INT4OID, OIDOID};
	Datum		values[2] = {Int32GetDatum(id), ObjectIdGetDatum(target)};
	bool		isnull;

	if (eo_catalog_execute("SELECT p.event_id IS NULL OR EXISTS ("
						   " SELECT FROM pg_index i JOIN pg_attribute a"
						   "   ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
						   "  WHERE i.indrelid = $2 AND i.indisunique AND i.indisvalid"
						   "    AND i.indpred IS NULL AND i.indnkeyatts = 1 AND i.indexprs IS NULL"
						   "    AND a.attname = eo_ingest._event_id_column($2, p.event_id, p.columns)) "
						   "FROM eo_ingest.pipelines p WHERE p.id = $1",
						   2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "reading eo_ingest.pipelines failed");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("target \"%s\" has no unique index on the event id's column", get_rel_name(target)),
				 errdetail("Duplicate events are collapsed on the event id, which needs a unique index on that column alone.")));
}

/* The schema-qualified name a pipeline remembers for its target. */
char *
eo_catalog_target_name(Oid target)
{
	char	   *relname = get_rel_name(target);
	char	   *nspname;

	if (relname == NULL)
		return NULL;
	nspname = get_namespace_name(get_rel_namespace(target));
	if (nspname == NULL)
		return NULL;
	return quote_qualified_identifier(nspname, relname);
}

/*
 * Does the catalog have pipelines.target_name?  This library may run against
 * a 0.1 catalog until ALTER EXTENSION eo_ingest UPDATE.
 */
bool
eo_catalog_knows_names(void)
{
	Oid			nsp = get_namespace_oid("eo_ingest", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid("pipelines", nsp) : InvalidOid;

	return OidIsValid(rel) && get_attnum(rel, "target_name") != InvalidAttrNumber;
}

/* Lock a pipeline's row; only a role with the owner's privileges passes. */
void
eo_catalog_lock_pipeline(int32 id, Oid caller, EoPipelineRow *row)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(id);
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;

	if (eo_catalog_execute(eo_catalog_knows_names() ?
						   "SELECT name, owner::oid, target::oid, enabled, target_name, "
						   "on_duplicate = 'update' "
						   "FROM eo_ingest.pipelines WHERE id = $1 FOR UPDATE" :
						   "SELECT name, owner::oid, target::oid, enabled, NULL::text, "
						   "on_duplicate = 'update' "
						   "FROM eo_ingest.pipelines WHERE id = $1 FOR UPDATE",
						   1, &argtype, &arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading eo_ingest.pipelines failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline %d does not exist", id)));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	row->name = SPI_getvalue(tup, desc, 1);
	row->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	row->target = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
	row->enabled = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	row->target_name = SPI_getvalue(tup, desc, 5);
	row->update = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	if (!has_privs_of_role(caller, row->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of pipeline \"%s\"", row->name),
				 errhint("Only the owner of a pipeline, a member of the owning role or a superuser can change it.")));
}

bool
eo_catalog_arg_is(FunctionCallInfo fcinfo, int n, const char *value)
{
	return !PG_ARGISNULL(n) &&
		strcmp(text_to_cstring(PG_GETARG_TEXT_PP(n)), value) == 0;
}

/*
 * The tail of the SQL-callable setters of a pipeline's configuration (0.3):
 * UPDATE eo_ingest.pipelines SET <assignments> of the pipeline whose id is
 * argument 0, the function's first nargs arguments being $1..$nargs (NULL
 * ones NULL), bump config_version, and wake its workers at commit so that
 * they set up again.  The caller has connected SPI and locked the row.
 */
void
eo_catalog_update_config(FunctionCallInfo fcinfo, int nargs, Oid *argtypes,
						 const char *assignments)
{
	Datum		values[FUNC_MAX_ARGS];
	char		nulls[FUNC_MAX_ARGS];

	Assert(nargs <= PG_NARGS());
	for (int i = 0; i < nargs; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	if (eo_catalog_execute(psprintf("UPDATE eo_ingest.pipelines SET %s, "
									"config_version = config_version + 1 WHERE id = $1",
									assignments),
						   nargs, argtypes, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "updating eo_ingest.pipelines failed");
	eo_wake_workers_at_commit(PG_GETARG_INT32(0));
}

static void
eo_catalog_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * _catalog_insert_pipeline(name, brokers, topic, target, event_id,
 * on_duplicate, format, columns, start_from, batch_size, batch_timeout,
 * workers, synchronous_commit, kafka_options, enabled) returns the new id.
 * The owner is always the caller.
 */
Datum
eo_ingest_catalog_insert_pipeline(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Oid			argtypes[17] = {OIDOID, TEXTOID, TEXTOID, TEXTOID, REGCLASSOID,
		TEXTOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID, INT4OID, INT4OID, INT4OID,
	BOOLOID, JSONBOID, BOOLOID, TEXTOID};
	Datum		values[17];
	char		nulls[17];
	bool		isnull;
	int32		id;

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be NULL")));
	eo_catalog_check_target(PG_GETARG_OID(3), caller,
							eo_catalog_arg_is(fcinfo, 5, "update"));
	if (!PG_ARGISNULL(13))
		eo_guard_options(PG_GETARG_JSONB_P(13));

	values[0] = ObjectIdGetDatum(caller);
	nulls[0] = ' ';
	for (int i = 0; i < 15; i++)
	{
		values[i + 1] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i + 1] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[16] = CStringGetTextDatum(eo_catalog_target_name(PG_GETARG_OID(3)));
	nulls[16] = ' ';

	eo_catalog_connect();
	if (eo_catalog_execute("INSERT INTO eo_ingest.pipelines (owner, name, brokers, topic, target, "
						   "event_id, on_duplicate, format, columns, start_from, batch_size, "
						   "batch_timeout, workers, synchronous_commit, kafka_options, enabled, target_name) "
						   "VALUES ($1::regrole, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
						   "$13, $14, $15, $16, $17) RETURNING id",
						   17, argtypes, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "inserting into eo_ingest.pipelines failed");
	id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT32(id);
}

/*
 * _catalog_update_pipeline(id, enabled, batch_size, on_duplicate,
 * kafka_options, workers, synchronous_commit, batch_timeout, brokers,
 * target): NULL keeps a setting.  Every change bumps config_version, which
 * restarts the workers.  A new target keeps the offsets.
 */
Datum
eo_ingest_catalog_update_pipeline(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Oid			argtypes[11] = {INT4OID, BOOLOID, INT4OID, TEXTOID, JSONBOID,
	INT4OID, BOOLOID, INT4OID, TEXTOID, REGCLASSOID, TEXTOID};
	Datum		values[11];
	char		nulls[11];
	EoPipelineRow row;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline id must not be NULL")));
	for (int i = 0; i < 10; i++)
	{
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	values[10] = (Datum) 0;
	nulls[10] = 'n';

	if (!PG_ARGISNULL(4))
		eo_guard_options(PG_GETARG_JSONB_P(4));

	eo_catalog_connect();
	eo_catalog_lock_pipeline(PG_GETARG_INT32(0), caller, &row);
	if (!PG_ARGISNULL(9))
	{
		Oid			target = PG_GETARG_OID(9);

		eo_catalog_check_target(target, row.owner,
								PG_ARGISNULL(3) ? row.update : eo_catalog_arg_is(fcinfo, 3, "update"));
		eo_catalog_check_event_id_index(PG_GETARG_INT32(0), target);
		values[10] = CStringGetTextDatum(eo_catalog_target_name(target));
		nulls[10] = ' ';
	}
	else if (eo_catalog_arg_is(fcinfo, 3, "update"))
		eo_catalog_check_target(row.target, row.owner, true);
	if (eo_catalog_execute("UPDATE eo_ingest.pipelines SET "
						   "enabled = coalesce($2, enabled), "
						   "batch_size = coalesce($3, batch_size), "
						   "on_duplicate = coalesce($4, on_duplicate), "
						   "kafka_options = coalesce($5, kafka_options), "
						   "workers = coalesce($6, workers), "
						   "synchronous_commit = coalesce($7, synchronous_commit), "
						   "batch_timeout = coalesce($8, batch_timeout), "
						   "brokers = coalesce($9, brokers), "
						   "target = coalesce($10, target), "
						   "target_name = coalesce($11, target_name), "
						   "config_version = config_version + 1 "
						   "WHERE id = $1",
						   11, argtypes, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "updating eo_ingest.pipelines failed");
	eo_wake_workers_at_commit(PG_GETARG_INT32(0));
	SPI_finish();
	PG_RETURN_VOID();
}

/* _catalog_delete_pipeline(id): offsets, counters, dead letters go with it. */
Datum
eo_ingest_catalog_delete_pipeline(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Oid			argtype = INT4OID;
	Datum		arg;
	EoPipelineRow row;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline id must not be NULL")));
	arg = PG_GETARG_DATUM(0);
	eo_catalog_connect();
	eo_catalog_lock_pipeline(PG_GETARG_INT32(0), caller, &row);
	if (eo_catalog_execute("DELETE FROM eo_ingest.pipelines WHERE id = $1",
						   1, &argtype, &arg, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "deleting from eo_ingest.pipelines failed");
	eo_wake_workers_at_commit(PG_GETARG_INT32(0));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * _catalog_set_offsets(id, partitions int[], offsets bigint[], replace):
 * stores the next offsets of a paused pipeline; replace drops the other
 * partitions' rows first.
 */
Datum
eo_ingest_catalog_set_offsets(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Oid			argtypes[3] = {INT4OID, INT4ARRAYOID, INT8ARRAYOID};
	Datum		values[3];
	ArrayType  *parts;
	ArrayType  *offs;
	EoPipelineRow row;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("arguments of _catalog_set_offsets must not be NULL")));
	parts = PG_GETARG_ARRAYTYPE_P(1);
	offs = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(parts) > 1 || ARR_NDIM(offs) > 1 ||
		ArrayGetNItems(ARR_NDIM(parts), ARR_DIMS(parts)) !=
		ArrayGetNItems(ARR_NDIM(offs), ARR_DIMS(offs)) ||
		array_contains_nulls(parts) || array_contains_nulls(offs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partitions and offsets must be one-dimensional arrays of the same length without NULLs")));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PointerGetDatum(parts);
	values[2] = PointerGetDatum(offs);

	eo_catalog_connect();
	eo_catalog_lock_pipeline(PG_GETARG_INT32(0), caller, &row);
	if (row.enabled)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" is running", row.name),
				 errhint("Pause it first: SELECT eo_ingest.pause_pipeline('%s');", row.name)));
	if (PG_GETARG_BOOL(3) &&
		eo_catalog_execute("DELETE FROM eo_ingest.offsets WHERE pipeline_id = $1",
						   1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "deleting from eo_ingest.offsets failed");
	if (eo_catalog_execute("INSERT INTO eo_ingest.offsets AS o (pipeline_id, partition, next_offset, committed_at) "
						   "SELECT $1, u.p, u.o, now() FROM unnest($2, $3) AS u(p, o) "
						   "ON CONFLICT (pipeline_id, partition) DO UPDATE "
						   "SET next_offset = excluded.next_offset, committed_at = excluded.committed_at",
						   3, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "writing eo_ingest.offsets failed");
	if (eo_catalog_execute("UPDATE eo_ingest.pipelines SET config_version = config_version + 1 "
						   "WHERE id = $1",
						   1, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "updating eo_ingest.pipelines failed");
	eo_wake_workers_at_commit(PG_GETARG_INT32(0));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * _catalog_purge_dead_letters(id, before): deletes the pipeline's dead
 * letters (those that failed before "before", if given); returns how many.
 */
Datum
eo_ingest_catalog_purge_dead_letters(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Oid			argtypes[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	EoPipelineRow row;
	uint64		n;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline id must not be NULL")));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';

	eo_catalog_connect();
	eo_catalog_lock_pipeline(PG_GETARG_INT32(0), caller, &row);
	if (eo_catalog_execute("DELETE FROM eo_ingest.dead_letters "
						   "WHERE pipeline_id = $1 AND ($2 IS NULL OR failed_at < $2)",
						   2, argtypes, values, nulls, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "deleting from eo_ingest.dead_letters failed");
	n = SPI_processed;
	SPI_finish();
	PG_RETURN_INT64((int64) n);
}
