/*
 * kafka_sql.c
 *		The SQL-callable functions that hand kafka_options to librdkafka:
 *		_check_kafka_options and _query_offsets, under every C symbol any
 *		shipped install or upgrade script has bound them to.
 *
 * The rule for every C entry point of this library: a database may sit at
 * any released extension version while the newest library is loaded (between
 * a package upgrade and ALTER EXTENSION ... UPDATE), so every symbol that any
 * shipped script ever bound stays exported, and each one is routed to one
 * implementation that is safe under the oldest declaration: it checks its
 * arguments for NULL itself (old scripts declared these functions without
 * STRICT) and applies the newest privilege checks (src/guard.c).  A new
 * result shape gets a new symbol; an old symbol never changes shape.
 *
 *	symbol									bound by
 *	eo_ingest_check_kafka_options			0.1
 *	eo_ingest_guarded_check_kafka_options	0.1--0.2, 0.2
 *	eo_ingest_query_offsets					0.1
 *	eo_ingest_guarded_query_offsets			0.1--0.2, 0.2
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "guard.h"
#include "kafka.h"

PG_FUNCTION_INFO_V1(eo_ingest_check_kafka_options);
PG_FUNCTION_INFO_V1(eo_ingest_guarded_check_kafka_options);
PG_FUNCTION_INFO_V1(eo_ingest_query_offsets);
PG_FUNCTION_INFO_V1(eo_ingest_guarded_query_offsets);

/* _check_kafka_options(options jsonb): NULL for a NULL argument, as if STRICT */
static Datum
eo_check_kafka_options(FunctionCallInfo fcinfo)
{
	Jsonb	   *options;
	char		err[512];
	rd_kafka_conf_t *conf;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	options = PG_GETARG_JSONB_P(0);
	eo_guard_options(options);
	conf = eo_kafka_conf(NULL, options, superuser(), "eo_ingest.check", err, sizeof(err));
	if (conf == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid kafka_options"),
				 errdetail("%s", err),
				 errhint("kafka_options takes librdkafka configuration properties, see librdkafka's CONFIGURATION.md.")));
	rd_kafka_conf_destroy(conf);
	PG_RETURN_VOID();
}

/*
 * _query_offsets(brokers, topic, options, at_position) returns (partition,
 * offset) for each partition: no rows if any argument is NULL, as if STRICT.
 */
static Datum
eo_query_offsets(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *brokers;
	char	   *topic;
	Jsonb	   *options;
	char	   *position;
	char		err[512];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	int32	   *volatile partitions = NULL;
	int64	   *volatile offsets = NULL;
	volatile int n = 0;
	volatile bool ok = false;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			PG_RETURN_VOID();
	brokers = text_to_cstring(PG_GETARG_TEXT_PP(0));
	topic = text_to_cstring(PG_GETARG_TEXT_PP(1));
	options = PG_GETARG_JSONB_P(2);
	position = text_to_cstring(PG_GETARG_TEXT_PP(3));

	eo_guard_options(options);
	conf = eo_kafka_conf(brokers, options, superuser(), "eo_ingest.reset", err, sizeof(err));
	if (conf == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid kafka_options"), errdetail("%s", err)));
	rk = eo_kafka_consumer(conf, err, sizeof(err));
	if (rk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create Kafka client"), errdetail("%s", err)));

	PG_TRY();
	{
		int32	   *found = NULL;

		n = eo_kafka_partitions(rk, topic, &found, err, sizeof(err), EO_KAFKA_TIMEOUT_MS);
		partitions = found;
		if (n > 0)
		{
			offsets = palloc(sizeof(int64) * n);
			ok = eo_kafka_resolve(rk, topic, n, partitions, position, offsets, err, sizeof(err));
		}
	}
	PG_FINALLY();
	{
		eo_kafka_destroy(rk);
	}
	PG_END_TRY();

	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not look up offsets of topic \"%s\"", topic),
				 errdetail("%s", err),
				 errhint("Check that the brokers are reachable and the topic exists.")));

	for (int i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {0};

		values[0] = Int32GetDatum(partitions[i]);
		values[1] = Int64GetDatum(offsets[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

Datum
eo_ingest_check_kafka_options(PG_FUNCTION_ARGS)
{
	return eo_check_kafka_options(fcinfo);
}

Datum
eo_ingest_guarded_check_kafka_options(PG_FUNCTION_ARGS)
{
	return eo_check_kafka_options(fcinfo);
}

Datum
eo_ingest_query_offsets(PG_FUNCTION_ARGS)
{
	return eo_query_offsets(fcinfo);
}

Datum
eo_ingest_guarded_query_offsets(PG_FUNCTION_ARGS)
{
	return eo_query_offsets(fcinfo);
}
