/*
 * envelope_sql.c
 *		The SQL-callable side of change streams: storing a pipeline's
 *		envelope and on_truncate, and the target's primary key, which
 *		identifies its rows.
 *
 * _catalog_set_envelope follows catalog.c's rules: the caller's rights are
 * checked from GetUserId() before eo_catalog_execute writes as the
 * extension's owner, with a fixed statement.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "eo_ingest.h"
#include "catalog.h"
#include "compat.h"

PG_FUNCTION_INFO_V1(eo_ingest_catalog_set_envelope);

/* The target's primary key index, or InvalidOid. */
Oid
eo_catalog_primary_key(Oid target)
{
	Relation	rel = try_relation_open(target, AccessShareLock);
	Oid			pk;

	if (rel == NULL)
		return InvalidOid;
	pk = eo_primary_key_index(rel);
	relation_close(rel, AccessShareLock);
	return pk;
}

/*
 * _catalog_set_envelope(id, envelope, on_truncate) (0.3): NULL keeps a
 * setting.  An envelope other than 'none' inserts, updates and deletes rows
 * by the target's primary key, so the owner needs all three privileges and
 * the target a primary key.
 */
Datum
eo_ingest_catalog_set_envelope(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Oid			argtypes[3] = {INT4OID, TEXTOID, TEXTOID};
	EoPipelineRow row;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline id must not be NULL")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	eo_catalog_lock_pipeline(PG_GETARG_INT32(0), caller, &row);
	if (!PG_ARGISNULL(1) && !eo_catalog_arg_is(fcinfo, 1, "none"))
	{
		eo_catalog_check_target(row.target, row.owner, true);
		if (pg_class_aclcheck(row.target, row.owner, ACL_DELETE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", get_rel_name(row.target)),
					 errhint("A pipeline with an envelope deletes rows: its owner needs DELETE on the target.")));
		if (!OidIsValid(eo_catalog_primary_key(row.target)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
					 errmsg("target \"%s\" has no primary key", get_rel_name(row.target)),
					 errdetail("A pipeline with an envelope identifies rows by the target's primary key.")));
	}
	eo_catalog_update_config(fcinfo, 3, argtypes,
							 "envelope = coalesce($2, envelope), on_truncate = coalesce($3, on_truncate)");
	SPI_finish();
	PG_RETURN_VOID();
}
