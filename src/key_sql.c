/*
 * key_sql.c
 *		The SQL-callable side of key decoding: storing a pipeline's
 *		key_format and key_avro_schema.
 *
 * _catalog_set_key follows catalog.c's rules: the caller's rights are
 * checked from GetUserId() before eo_catalog_execute writes as the
 * extension's owner, with a fixed statement.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "eo_ingest.h"
#include "avro_format.h"
#include "catalog.h"

PG_FUNCTION_INFO_V1(eo_ingest_catalog_set_key);

/*
 * _catalog_set_key(id, key_format, key_avro_schema) (0.3): both stored as
 * given; key_avro_schema only with key_format 'avro'.  Only the pipeline's
 * owner (or a member) may.
 */
Datum
eo_ingest_catalog_set_key(PG_FUNCTION_ARGS)
{
	Oid			caller = GetUserId();
	Oid			argtypes[3] = {INT4OID, TEXTOID, TEXTOID};
	EoPipelineRow row;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", PG_ARGISNULL(0) ? "pipeline id" : "key_format")));
	if (!eo_catalog_arg_is(fcinfo, 1, "none") && !eo_catalog_arg_is(fcinfo, 1, "json") &&
		!eo_catalog_arg_is(fcinfo, 1, "avro") && !eo_catalog_arg_is(fcinfo, 1, "text") &&
		!eo_catalog_arg_is(fcinfo, 1, "bytea"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid key_format"),
				 errhint("Use 'none', 'json', 'avro', 'text' or 'bytea'.")));
	if (!PG_ARGISNULL(2) && !eo_catalog_arg_is(fcinfo, 1, "avro"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key_avro_schema needs key_format 'avro'")));
	if (!PG_ARGISNULL(2))
		DirectFunctionCall1(eo_ingest_check_avro_schema, PG_GETARG_DATUM(2));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	eo_catalog_lock_pipeline(PG_GETARG_INT32(0), caller, &row);
	eo_catalog_update_config(fcinfo, 3, argtypes, "key_format = $2, key_avro_schema = $3");
	SPI_finish();
	PG_RETURN_VOID();
}
