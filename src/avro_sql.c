/*
 * avro_sql.c
 *		The SQL-callable functions of the Avro format: checking an inline
 *		writer schema, and storing a pipeline's registry or schema.
 *
 * _catalog_set_avro follows catalog.c's rules: the caller's rights are
 * checked from GetUserId() before eo_catalog_execute writes as the
 * extension's owner, with a fixed statement.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "eo_ingest.h"
#include "avro_format.h"
#include "catalog.h"

PG_FUNCTION_INFO_V1(eo_ingest_check_avro_schema);
PG_FUNCTION_INFO_V1(eo_ingest_catalog_set_avro);

/* _check_avro_schema(schema text), STRICT: an error if eo_ingest cannot read it */
Datum
eo_ingest_check_avro_schema(PG_FUNCTION_ARGS)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "eo_ingest Avro check",
											  ALLOCSET_SMALL_SIZES);
	EoAvroNode *root = eo_avro_compile(text_to_cstring(PG_GETARG_TEXT_PP(0)), cxt);

	if (root->type != EO_AVRO_RECORD)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("avro_schema must be a record schema"),
				 errhint("Table columns are filled from the fields of a record.")));
	MemoryContextDelete(cxt);
	PG_RETURN_VOID();
}

/*
 * _catalog_set_avro(id, schema_registry, avro_schema): one of the two, the
 * other is cleared.  Only the pipeline's owner (or a member) may.
 */
Datum
eo_ingest_catalog_set_avro(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Oid			argtypes[3] = {INT4OID, TEXTOID, TEXTOID};
	Datum		id = PG_GETARG_DATUM(0);
	bool		isnull;
	Oid			owner;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline id must not be NULL")));
	if (PG_ARGISNULL(1) == PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("give either schema_registry or avro_schema")));
	if (!PG_ARGISNULL(2))
		DirectFunctionCall1(eo_ingest_check_avro_schema, PG_GETARG_DATUM(2));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (eo_catalog_execute("SELECT owner::oid FROM eo_ingest.pipelines "
						   "WHERE id = $1 AND format = 'avro' FOR UPDATE",
						   1, argtypes, &id, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading eo_ingest.pipelines failed");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("Avro pipeline %d does not exist", PG_GETARG_INT32(0))));
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!has_privs_of_role(caller, owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of pipeline %d", PG_GETARG_INT32(0)),
				 errhint("Only the owner of a pipeline, a member of the owning role or a superuser can change it.")));
	eo_catalog_update_config(fcinfo, 3, argtypes, "schema_registry = $2, avro_schema = $3");
	SPI_finish();
	PG_RETURN_VOID();
}
