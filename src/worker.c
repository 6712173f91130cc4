/*
 * worker.c
 *		The pipeline worker: consumes its partitions with librdkafka and
 *		commits each batch's rows, dead letters, offsets and counters in one
 *		transaction (eo_worker_batch_xact, the heart of the extension).
 *
 * The worker runs as the pipeline's owner.  Offsets come from
 * eo_ingest.offsets, never from Kafka; every batch first locks this worker's
 * offset rows and checks they still carry its generation and the offsets it
 * expects, so a stale or duplicate worker cannot commit.
 */
#include "postgres.h"

#include <malloc.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "avro_format.h"
#include "eo_ingest.h"
#include "batch.h"
#include "catalog.h"
#include "change.h"
#include "compat.h"
#include "kafka.h"
#include "watermarks.h"

typedef struct EoConfig
{
	char	   *name;
	char	   *brokers;
	char	   *topic;
	Oid			target;
	char	   *event_id;
	char	   *on_duplicate;
	char	   *format;
	Datum		columns;
	bool		columns_null;
	char	   *start_from;
	int			batch_size;
	int			batch_timeout;
	int			nworkers;
	bool		synchronous_commit;
	Jsonb	   *kafka_options;
	bool		enabled;
	int64		config_version;
	bool		has_offsets;	/* any partition stored yet */
	char	   *envelope;		/* NULL before 0.3 */
	char	   *on_truncate;
	bool		owner_superuser;	/* may kafka_options load code? */
	char	   *schema_registry;	/* format avro: registry URLs, or */
	char	   *avro_schema;	/* the inline writer schema */
} EoConfig;

typedef struct EoPart
{
	int32		partition;
	int64		next;			/* committed next offset */
	int64		high_watermark; /* -1 while unknown */
} EoPart;

/* Why the worker gave up on its current setup */
typedef enum EoRestart
{
	EO_RESTART_NONE,
	EO_RESTART_SETUP,			/* configuration or partitions changed */
	EO_RESTART_FAILED			/* wait for a configuration change */
} EoRestart;

static EoWorkerArgs args;
static EoWorkerSlot *slot;
static MemoryContext worker_cxt;
static MemoryContext config_cxt;
static MemoryContext setup_cxt;	/* partitions; outlives config reloads between retries */
static MemoryContext batch_cxt;
static MemoryContext attempt_cxt;

static EoConfig *cfg;
static EoMapping *map;
static EoWriter *writer;
static EoApplier *applier;	/* a change stream's (envelope), or NULL */
static rd_kafka_t *rk;
static rd_kafka_topic_partition_list_t *assignment;
static EoPart *parts;
static int	nparts;
static int	topic_partitions;
static int64 generation;

static EoRecord *recs;
static int	nrecs;

static bool fenced;
static TimestampTz topic_missing_since;
static bool kafka_trouble;

/*
 * Has a broker answered since the worker started or the pipeline was
 * resumed, with these brokers and options (reached_key)?  Until one does,
 * trouble counts against eo_ingest.grace_period from unreachable_since;
 * after that it is an outage, retried for ever.  A new process of a pipeline
 * with stored offsets starts as reached (see eo_track_brokers).
 */
static bool broker_reached;
static char *reached_key;
static TimestampTz unreachable_since;

static SPIPlanPtr fence_plan;
static SPIPlanPtr offsets_plan;
static SPIPlanPtr counters_plan;

static void
eo_destroy_messages(void)
{
	for (int i = 0; i < nrecs; i++)
		rd_kafka_message_destroy(recs[i].msg);
	nrecs = 0;
}

static void
eo_kafka_close(void)
{
	eo_destroy_messages();
	if (assignment != NULL)
	{
		rd_kafka_topic_partition_list_destroy(assignment);
		assignment = NULL;
	}
	if (rk != NULL)
	{
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
		rk = NULL;
	}
}

static void
eo_worker_exit(int code, Datum arg)
{
	eo_kafka_close();
}

/* Error text fit for the log and the status view: no option values in it. */
static void
eo_report(EoState state, const char *fmt,...) pg_attribute_printf(2, 3);

static void
eo_report(EoState state, const char *fmt,...)
{
	char		buf[EO_ERROR_LEN];
	va_list		ap;
	char	   *clean;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	clean = eo_kafka_scrub(cfg ? cfg->kafka_options : NULL, buf);
	eo_slot_set_state(slot, state, clean);
	ereport(state == EO_STATE_FAILED ? WARNING : LOG,
			(errmsg("eo_ingest pipeline \"%s\": %s", cfg && cfg->name ? cfg->name : "?", clean)));
	pfree(clean);
}

static void
eo_begin_xact(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	eo_catalog_pin_search_path();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
eo_commit_xact(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(worker_cxt);
}

/* Abort after a caught error; returns the error, copied into worker_cxt. */
static ErrorData *
eo_abort_xact(void)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(worker_cxt);
	edata = CopyErrorData();
	FlushErrorState();
	HOLD_INTERRUPTS();
	AbortCurrentTransaction();
	RESUME_INTERRUPTS();
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(worker_cxt);
	return edata;
}

static char *
eo_getstr(HeapTuple tup, TupleDesc desc, int col)
{
	char	   *v = SPI_getvalue(tup, desc, col);

	return v ? MemoryContextStrdup(config_cxt, v) : NULL;
}

/*
 * Read the pipeline's row and build its mapping.  Returns false when the
 * pipeline is gone or paused: the worker then exits.
 */
static bool
eo_load_config(void)
{
	Datum		argv[1] = {Int32GetDatum(args.pipeline_id)};
	Oid			argt[1] = {INT4OID};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int			ret;
	EoConfig   *c;
	MemoryContext old;
	EoEnvelope	envelope;

	if (writer != NULL)
	{
		eo_writer_destroy(writer);
		writer = NULL;
	}
	if (applier != NULL)
	{
		eo_apply_destroy(applier);
		applier = NULL;
	}
	MemoryContextReset(config_cxt);
	cfg = NULL;
	map = NULL;

	ret = SPI_execute_with_args("SELECT name, brokers, topic, target::oid, event_id, on_duplicate, format, "
								"columns, start_from, batch_size, batch_timeout, workers, synchronous_commit, "
								"kafka_options, enabled, config_version, "
								"EXISTS (SELECT FROM eo_ingest.offsets o WHERE o.pipeline_id = p.id), "
	/* columns of 0.3, read so that a database still at 0.2 works too */
								"to_jsonb(p) ->> 'schema_registry', to_jsonb(p) ->> 'avro_schema', "
								"to_jsonb(p) ->> 'envelope', to_jsonb(p) ->> 'on_truncate' "
								"FROM eo_ingest.pipelines p WHERE id = $1",
								1, argt, argv, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading eo_ingest.pipelines failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	c = MemoryContextAllocZero(config_cxt, sizeof(EoConfig));
	c->name = eo_getstr(tup, desc, 1);
	c->brokers = eo_getstr(tup, desc, 2);
	c->topic = eo_getstr(tup, desc, 3);
	c->target = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	c->event_id = eo_getstr(tup, desc, 5);
	c->on_duplicate = eo_getstr(tup, desc, 6);
	c->format = eo_getstr(tup, desc, 7);
	c->columns = SPI_getbinval(tup, desc, 8, &c->columns_null);
	old = MemoryContextSwitchTo(config_cxt);
	if (!c->columns_null)
		c->columns = PointerGetDatum(DatumGetJsonbPCopy(c->columns));
	c->kafka_options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 14, &isnull));
	MemoryContextSwitchTo(old);
	c->start_from = eo_getstr(tup, desc, 9);
	c->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 10, &isnull));
	c->batch_timeout = DatumGetInt32(SPI_getbinval(tup, desc, 11, &isnull));
	c->nworkers = DatumGetInt32(SPI_getbinval(tup, desc, 12, &isnull));
	c->synchronous_commit = DatumGetBool(SPI_getbinval(tup, desc, 13, &isnull));
	c->enabled = DatumGetBool(SPI_getbinval(tup, desc, 15, &isnull));
	c->config_version = DatumGetInt64(SPI_getbinval(tup, desc, 16, &isnull));
	c->has_offsets = DatumGetBool(SPI_getbinval(tup, desc, 17, &isnull));
	/* the owner's privileges now, not when the options were stored */
	c->owner_superuser = superuser();
	c->schema_registry = eo_getstr(tup, desc, 18);
	c->avro_schema = eo_getstr(tup, desc, 19);
	c->envelope = eo_getstr(tup, desc, 20);
	c->on_truncate = eo_getstr(tup, desc, 21);
	cfg = c;
	if (!c->enabled)
		return false;

	/*
	 * A dropped target: follow a table created again under the remembered
	 * name (or say what the pipeline waits for), then read the row again.
	 */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(c->target)))
	{
		(void) eo_catalog_follow_target(args.pipeline_id, c->target);
		return eo_load_config();
	}
	eo_catalog_refresh_target_name(args.pipeline_id, c->target);

	SetConfigOption("synchronous_commit", c->synchronous_commit ? "on" : "off",
					PGC_SUSET, PGC_S_SESSION);

	old = MemoryContextSwitchTo(config_cxt);
	envelope = c->envelope == NULL || strcmp(c->envelope, "none") == 0 ? EO_ENV_NONE :
		strcmp(c->envelope, "debezium") == 0 ? EO_ENV_DEBEZIUM : EO_ENV_UPSERT;
	map = eo_mapping_build(c->target, c->format, envelope == EO_ENV_NONE ? c->event_id : NULL,
						   c->on_duplicate, c->columns, c->columns_null, c->topic);
	map->envelope = envelope;
	map->truncate = c->on_truncate != NULL && strcmp(c->on_truncate, "truncate") == 0;
	writer = eo_writer_create(map, config_cxt);
	if (envelope != EO_ENV_NONE)
		applier = eo_apply_create(map, writer);
	MemoryContextSwitchTo(old);
	if (map->format == &eo_format_avro)
		eo_avro_configure(c->schema_registry, c->avro_schema, c->kafka_options);
	return true;
}

/*
 * Run step in a transaction of its own.  On error: abort, report the
 * pipeline as retrying with the error, and return false.
 */
static bool
eo_try_xact(const char *activity, void (*step) (void *arg), void *arg)
{
	volatile bool ok = true;

	PG_TRY();
	{
		eo_begin_xact(activity);
		step(arg);
		eo_commit_xact();
	}
	PG_CATCH();
	{
		ErrorData  *edata = eo_abort_xact();

		eo_report(EO_STATE_RETRYING, "%s", edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

static void
eo_load_config_step(void *arg)
{
	*(bool *) arg = eo_load_config();
}

/* In a transaction of its own: load the configuration, exiting if paused. */
static bool
eo_load_config_xact(void)
{
	bool		enabled = true;

	if (!eo_try_xact("eo_ingest: loading pipeline", eo_load_config_step, &enabled))
		return false;
	if (!enabled)
	{
		ereport(LOG,
				(errmsg("eo_ingest pipeline %d is paused or dropped; worker exiting",
						args.pipeline_id)));
		proc_exit(0);
	}
	return true;
}

/* Has the pipeline's row changed since we loaded it?  Exits if paused. */
static bool
eo_config_changed(void)
{
	volatile bool changed = false;

	PG_TRY();
	{
		Datum		argv[1] = {Int32GetDatum(args.pipeline_id)};
		Oid			argt[1] = {INT4OID};
		int			ret;

		eo_begin_xact("eo_ingest: checking pipeline");
		ret = SPI_execute_with_args("SELECT config_version, enabled FROM eo_ingest.pipelines WHERE id = $1",
									1, argt, argv, NULL, true, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading eo_ingest.pipelines failed");
		if (SPI_processed == 0)
			changed = true;
		else
		{
			bool		isnull;
			int64		version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
															  SPI_tuptable->tupdesc, 1, &isnull));
			bool		enabled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
															 SPI_tuptable->tupdesc, 2, &isnull));

			changed = !enabled || (cfg != NULL && version != cfg->config_version);
			/* a renamed target: remember its new name */
			if (!changed && cfg != NULL)
				eo_catalog_refresh_target_name(args.pipeline_id, cfg->target);
		}
		eo_commit_xact();
	}
	PG_CATCH();
	{
		ErrorData  *edata = eo_abort_xact();

		ereport(LOG, (errmsg("eo_ingest: could not check pipeline %d: %s",
							 args.pipeline_id, edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return changed;
}

/* Wait ms milliseconds, or less if the pipeline changes.  True if it changed. */
static bool
eo_backoff(long ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (eo_config_changed())
			return true;
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
		if (left <= 0)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(left, 1000L), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

static int
eo_part_index(int32 partition)
{
	for (int i = 0; i < nparts; i++)
		if (parts[i].partition == partition)
			return i;
	return -1;
}

/*
 * Claim this worker's partitions: a new generation, offset rows for
 * partitions seen for the first time, and the stored next offsets.
 */
static void
eo_claim(int n, const int32 *mine, const int64 *start)
{
	Datum	   *pd = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *sd = palloc(sizeof(Datum) * Max(n, 1));
	Datum		argv[4];
	Oid			argt[4] = {INT4OID, INT8OID, INT4ARRAYOID, INT8ARRAYOID};
	int			ret;
	bool		isnull;

	ret = eo_catalog_execute("UPDATE eo_ingest.pipelines SET generation = generation + 1 "
							"WHERE id = $1 RETURNING generation",
							1, argt, (Datum[]) {Int32GetDatum(args.pipeline_id)}, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline %d disappeared", args.pipeline_id)));
	generation = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	for (int i = 0; i < n; i++)
	{
		pd[i] = Int32GetDatum(mine[i]);
		sd[i] = Int64GetDatum(start[i]);
	}
	argv[0] = Int32GetDatum(args.pipeline_id);
	argv[1] = Int64GetDatum(generation);
	argv[2] = PointerGetDatum(construct_array(pd, n, INT4OID, 4, true, TYPALIGN_INT));
	argv[3] = PointerGetDatum(construct_array(sd, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	ret = eo_catalog_execute("INSERT INTO eo_ingest.offsets (pipeline_id, partition, next_offset, generation, committed_at) "
							"SELECT $1, u.p, u.o, $2, now() FROM unnest($3, $4) AS u(p, o) "
							"ON CONFLICT (pipeline_id, partition) DO NOTHING",
							4, argt, argv, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "creating offset rows failed: %s", SPI_result_code_string(ret));

	ret = eo_catalog_execute("UPDATE eo_ingest.offsets SET generation = $2 "
							"WHERE pipeline_id = $1 AND partition = ANY ($3) "
							"RETURNING partition, next_offset",
							3, argt, argv, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING || SPI_processed != (uint64) n)
		elog(ERROR, "claiming offset rows failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		int32		p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		int64		o = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		int			k = eo_part_index(p);

		parts[k].next = o;
	}

	ret = eo_catalog_execute("INSERT INTO eo_ingest.counters (pipeline_id, worker) VALUES ($1, $2) "
							"ON CONFLICT DO NOTHING",
							2, (Oid[]) {INT4OID, INT4OID},
							(Datum[]) {Int32GetDatum(args.pipeline_id), Int32GetDatum(args.worker)},
							NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "creating the counters row failed");
}

/* Stored next offsets of this pipeline's partitions, -1 where none. */
static void
eo_read_offsets(int n, const int32 *mine, int64 *stored)
{
	Datum	   *pd = palloc(sizeof(Datum) * Max(n, 1));
	Datum		argv[2];
	int			ret;

	for (int i = 0; i < n; i++)
	{
		pd[i] = Int32GetDatum(mine[i]);
		stored[i] = -1;
	}
	argv[0] = Int32GetDatum(args.pipeline_id);
	argv[1] = PointerGetDatum(construct_array(pd, n, INT4OID, 4, true, TYPALIGN_INT));
	ret = SPI_execute_with_args("SELECT partition, next_offset FROM eo_ingest.offsets "
								"WHERE pipeline_id = $1 AND partition = ANY ($2)",
								2, (Oid[]) {INT4OID, INT4ARRAYOID}, argv, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading offsets failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		int64		o = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));

		for (int k = 0; k < n; k++)
			if (mine[k] == p)
				stored[k] = o;
	}
}

/* Arguments of the partition steps eo_setup runs in transactions */
typedef struct EoPartStep
{
	int			n;
	int32	   *partitions;
	int64	   *offsets;
} EoPartStep;

static void
eo_read_offsets_step(void *arg)
{
	EoPartStep *step = (EoPartStep *) arg;

	eo_read_offsets(step->n, step->partitions, step->offsets);
}

static void
eo_claim_step(void *arg)
{
	EoPartStep *step = (EoPartStep *) arg;

	eo_claim(step->n, step->partitions, step->offsets);
}

/*
 * No broker answered a metadata request (what says how it failed).
 * Configuration that can never work fails the pipeline: credentials or
 * certificates refused, or no broker reached for eo_ingest.grace_period
 * since the start.  Anything else is reported as retrying.
 */
static EoRestart
eo_broker_trouble(const char *what)
{
	char		kerr[512];
	rd_kafka_resp_err_t code = eo_kafka_take_error(kerr, sizeof(kerr));

	if (eo_kafka_config_error(code))
	{
		eo_report(EO_STATE_FAILED,
				  "Kafka refused the connection: %s; correct kafka_options with eo_ingest.alter_pipeline, "
				  "or call eo_ingest.resume_pipeline to try again", kerr);
		return EO_RESTART_FAILED;
	}
	if (!broker_reached && unreachable_since != 0 &&
		TimestampDifferenceExceeds(unreachable_since, GetCurrentTimestamp(), eo_grace_period))
	{
		eo_report(EO_STATE_FAILED,
				  "no broker of \"%s\" answered in %d s: %s; correct brokers or kafka_options with "
				  "eo_ingest.alter_pipeline, or call eo_ingest.resume_pipeline to try again",
				  cfg->brokers, eo_grace_period / 1000, code != RD_KAFKA_RESP_ERR_NO_ERROR ? kerr : what);
		return EO_RESTART_FAILED;
	}
	if (code != RD_KAFKA_RESP_ERR_NO_ERROR)
		eo_report(EO_STATE_RETRYING, "%s (%s)", what, kerr);
	else
		eo_report(EO_STATE_RETRYING, "%s", what);
	return EO_RESTART_NONE;
}

/* A new grace period whenever the brokers or the Kafka options change. */
static void
eo_track_brokers(void)
{
	MemoryContext old = MemoryContextSwitchTo(worker_cxt);
	char	   *options = JsonbToCString(NULL, &cfg->kafka_options->root,
										 VARSIZE(cfg->kafka_options));
	char	   *key = psprintf("%s %s", cfg->brokers, options);

	pfree(options);
	if (reached_key == NULL || strcmp(key, reached_key) != 0)
	{
		/*
		 * A new worker process (after a crash or a server restart) of a
		 * pipeline that has stored offsets has reached its brokers before:
		 * an outage then is retried for ever, as in the process that saw it
		 * begin.
		 */
		broker_reached = reached_key == NULL && cfg->has_offsets;
		if (reached_key != NULL)
			pfree(reached_key);
		reached_key = key;
		unreachable_since = 0;
	}
	else
		pfree(key);
	if (!broker_reached && unreachable_since == 0)
		unreachable_since = GetCurrentTimestamp();
	MemoryContextSwitchTo(old);
}

/*
 * Connect to Kafka, find this worker's partitions, store start offsets for
 * the new ones, claim them and assign them to the consumer.
 */
static EoRestart
eo_setup(void)
{
	char		err[512];
	char	   *group;
	rd_kafka_conf_t *conf;
	int32	   *all = NULL;
	int32	   *mine;
	int64	   *stored;
	int64	   *start;
	int			n;
	int			nmine = 0;
	int			nmissing = 0;
	int32	   *missing;
	EoPartStep	step;
	rd_kafka_resp_err_t rc;

	eo_kafka_close();
	MemoryContextReset(batch_cxt);
	MemoryContextReset(setup_cxt);
	parts = NULL;
	nparts = 0;
	if (!eo_load_config_xact())
		return EO_RESTART_SETUP;

	eo_track_brokers();
	group = psprintf("eo_ingest.%u.%d", args.database, args.pipeline_id);
	conf = eo_kafka_conf(cfg->brokers, cfg->kafka_options, cfg->owner_superuser, group,
						 err, sizeof(err));
	if (conf == NULL)
	{
		eo_report(EO_STATE_FAILED, "invalid kafka_options: %s", err);
		return EO_RESTART_FAILED;
	}
	rk = eo_kafka_consumer(conf, err, sizeof(err));
	if (rk == NULL)
	{
		eo_report(EO_STATE_FAILED, "could not create Kafka consumer: %s", err);
		return EO_RESTART_FAILED;
	}

	n = eo_kafka_partitions(rk, cfg->topic, &all, err, sizeof(err));
	/* librdkafka's own errors are negative: anything else is a broker's answer */
	if (eo_kafka_metadata_error >= 0)
	{
		broker_reached = true;
		unreachable_since = 0;
	}
	if (n < 0 && eo_kafka_metadata_error == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
	{
		/* a topic that stays missing is a configuration error, not an outage */
		TimestampTz now = GetCurrentTimestamp();

		if (topic_missing_since == 0)
			topic_missing_since = now;
		if (TimestampDifferenceExceeds(topic_missing_since, now, eo_grace_period))
		{
			topic_missing_since = 0;
			eo_report(EO_STATE_FAILED,
					  "topic \"%s\" does not exist (waited %d s); create it, then call eo_ingest.resume_pipeline",
					  cfg->topic, eo_grace_period / 1000);
			return EO_RESTART_FAILED;
		}
	}
	if (n < 0 && eo_kafka_metadata_error == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
	{
		eo_report(EO_STATE_FAILED,
				  "%s; grant the Kafka user READ on the topic, then call eo_ingest.resume_pipeline", err);
		return EO_RESTART_FAILED;
	}
	if (n < 0 && eo_kafka_metadata_error < 0)
	{
		/* nothing is assigned yet: serving the queue loses no record */
		eo_kafka_serve_errors(rk);
		return eo_broker_trouble(err) == EO_RESTART_FAILED ? EO_RESTART_FAILED : EO_RESTART_SETUP;
	}
	if (n < 0)
	{
		eo_report(EO_STATE_RETRYING, "%s", err);
		return EO_RESTART_SETUP;
	}
	topic_missing_since = 0;
	topic_partitions = n;

	MemoryContextSwitchTo(setup_cxt);
	mine = palloc(sizeof(int32) * n);
	stored = palloc(sizeof(int64) * n);
	start = palloc(sizeof(int64) * n);
	missing = palloc(sizeof(int32) * n);
	for (int i = 0; i < n; i++)
		if (all[i] % args.nworkers == args.worker)
			mine[nmine++] = all[i];
	parts = palloc0(sizeof(EoPart) * Max(nmine, 1));
	nparts = nmine;
	for (int i = 0; i < nmine; i++)
	{
		parts[i].partition = mine[i];
		parts[i].high_watermark = -1;
	}
	MemoryContextSwitchTo(worker_cxt);

	if (nmine == 0)
	{
		eo_slot_set_state(slot, EO_STATE_RUNNING, NULL);
		eo_slot_set_progress(slot, 0, NULL, NULL, NULL);
		return EO_RESTART_NONE;
	}

	step.n = nmine;
	step.partitions = mine;
	step.offsets = stored;
	if (!eo_try_xact("eo_ingest: reading offsets", eo_read_offsets_step, &step))
		return EO_RESTART_SETUP;

	for (int i = 0; i < nmine; i++)
		if (stored[i] < 0)
			missing[nmissing++] = mine[i];
	if (nmissing > 0)
	{
		/* a pipeline's first partitions start from start_from; later ones from their beginning */
		int64	   *resolved = palloc(sizeof(int64) * nmissing);

		if (!eo_kafka_resolve(rk, cfg->topic, nmissing, missing,
							  cfg->has_offsets ? "earliest" : cfg->start_from,
							  resolved, err, sizeof(err)))
		{
			eo_report(EO_STATE_RETRYING, "%s", err);
			return EO_RESTART_SETUP;
		}
		for (int i = 0, k = 0; i < nmine; i++)
			start[i] = stored[i] >= 0 ? stored[i] : resolved[k++];
	}
	else
		memcpy(start, stored, sizeof(int64) * nmine);

	step.offsets = start;
	if (!eo_try_xact("eo_ingest: claiming partitions", eo_claim_step, &step))
		return EO_RESTART_SETUP;

	assignment = rd_kafka_topic_partition_list_new(nmine);
	for (int i = 0; i < nmine; i++)
		rd_kafka_topic_partition_list_add(assignment, cfg->topic, parts[i].partition)->offset = parts[i].next;
	rc = rd_kafka_assign(rk, assignment);
	if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		eo_report(EO_STATE_RETRYING, "could not assign partitions: %s", rd_kafka_err2str(rc));
		return EO_RESTART_SETUP;
	}
	eo_slot_set_state(slot, EO_STATE_RUNNING, NULL);
	return EO_RESTART_NONE;
}

/* Lock this worker's offset rows and check nobody else moved them. */
static void
eo_fence(void)
{
	Datum	   *pd = palloc(sizeof(Datum) * nparts);
	Datum		argv[2];
	int			ret;

	if (fence_plan == NULL)
	{
		fence_plan = SPI_prepare("SELECT partition, next_offset, generation FROM eo_ingest.offsets "
								 "WHERE pipeline_id = $1 AND partition = ANY ($2) FOR UPDATE",
								 2, (Oid[]) {INT4OID, INT4ARRAYOID});
		if (fence_plan == NULL || SPI_keepplan(fence_plan) != 0)
			elog(ERROR, "could not prepare the fencing statement");
	}
	for (int i = 0; i < nparts; i++)
		pd[i] = Int32GetDatum(parts[i].partition);
	argv[0] = Int32GetDatum(args.pipeline_id);
	argv[1] = PointerGetDatum(construct_array(pd, nparts, INT4OID, 4, true, TYPALIGN_INT));
	ret = eo_catalog_execute_plan(fence_plan, argv, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "fencing query failed");
	fenced = SPI_processed != (uint64) nparts;
	for (uint64 i = 0; i < SPI_processed && !fenced; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		int			k = eo_part_index(DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull)));

		fenced = k < 0 ||
			DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull)) != parts[k].next ||
			DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull)) != generation;
	}
	if (fenced)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("eo_ingest pipeline \"%s\": offsets were changed by another worker or by reset_offsets",
						cfg->name)));
}

static void
eo_store_progress(const int64 *next, const EoCounts *counts, int nrows)
{
	Datum	   *pd = palloc(sizeof(Datum) * nparts);
	Datum	   *od = palloc(sizeof(Datum) * nparts);
	int			m = 0;
	int			ret;

	if (offsets_plan == NULL)
	{
		offsets_plan = SPI_prepare("UPDATE eo_ingest.offsets o SET next_offset = u.n, committed_at = now() "
								   "FROM unnest($2, $3) AS u(p, n) "
								   "WHERE o.pipeline_id = $1 AND o.partition = u.p",
								   3, (Oid[]) {INT4OID, INT4ARRAYOID, INT8ARRAYOID});
		counters_plan = SPI_prepare("UPDATE eo_ingest.counters SET rows_inserted = rows_inserted + $3, "
									"rows_updated = rows_updated + $4, duplicates_skipped = duplicates_skipped + $5, "
									"dead_letters = dead_letters + $6, batches = batches + 1, "
									"subtransactions = subtransactions + $7, last_batch_at = now() "
									"WHERE pipeline_id = $1 AND worker = $2",
									7, (Oid[]) {INT4OID, INT4OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID});
		if (offsets_plan == NULL || counters_plan == NULL ||
			SPI_keepplan(offsets_plan) != 0 || SPI_keepplan(counters_plan) != 0)
			elog(ERROR, "could not prepare the progress statements");
	}

	for (int i = 0; i < nparts; i++)
	{
		if (next[i] == parts[i].next)
			continue;
		pd[m] = Int32GetDatum(parts[i].partition);
		od[m] = Int64GetDatum(next[i]);
		m++;
	}
	if (m > 0)
	{
		Datum		argv[3];

		argv[0] = Int32GetDatum(args.pipeline_id);
		argv[1] = PointerGetDatum(construct_array(pd, m, INT4OID, 4, true, TYPALIGN_INT));
		argv[2] = PointerGetDatum(construct_array(od, m, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		ret = eo_catalog_execute_plan(offsets_plan, argv, NULL, false, 0);
		if (ret != SPI_OK_UPDATE || SPI_processed != (uint64) m)
			elog(ERROR, "storing offsets failed");
	}
	if (nrows > 0)
	{
		Datum		argv[7];

		argv[0] = Int32GetDatum(args.pipeline_id);
		argv[1] = Int32GetDatum(args.worker);
		argv[2] = Int64GetDatum(counts->inserted);
		argv[3] = Int64GetDatum(counts->updated);
		argv[4] = Int64GetDatum(counts->skipped);
		argv[5] = Int64GetDatum(counts->dead);
		argv[6] = Int64GetDatum(writer->subtransactions);
		ret = eo_catalog_execute_plan(counters_plan, argv, NULL, false, 0);
		if (ret != SPI_OK_UPDATE || SPI_processed != 1)
			elog(ERROR, "updating counters failed");
	}
	if (counts->deleted > 0)
	{
		/* only change streams delete, and they need a 0.3 catalog */
		Oid			types[3] = {INT4OID, INT4OID, INT8OID};
		Datum		argv[3];

		argv[0] = Int32GetDatum(args.pipeline_id);
		argv[1] = Int32GetDatum(args.worker);
		argv[2] = Int64GetDatum(counts->deleted);
		ret = eo_catalog_execute("UPDATE eo_ingest.counters SET rows_deleted = rows_deleted + $3 "
								 "WHERE pipeline_id = $1 AND worker = $2",
								 3, types, argv, NULL, false, 0);
		if (ret != SPI_OK_UPDATE || SPI_processed != 1)
			elog(ERROR, "updating counters failed");
	}
}

/*
 * The batch transaction.  Rows, dead letters, offsets and counters commit
 * together or not at all.  Returns false, with the error, when the batch
 * must be retried; a fenced worker exits.
 */
static bool
eo_worker_batch_xact(const int64 *next, ErrorData **error)
{
	volatile bool ok = true;

	MemoryContextReset(attempt_cxt);
	PG_TRY();
	{
		EoCounts	counts = {0};

		eo_begin_xact("eo_ingest: writing a batch");
		/*
		 * Before the fence locks anything: records once per batch (a retry
		 * reuses them); a change stream's rows once per attempt.
		 */
		if (applier != NULL)
			writer->subtransactions = eo_envelope_decode(applier, recs, nrecs, attempt_cxt);
		else
			writer->subtransactions = eo_record_decode_batch(map, recs, nrecs, batch_cxt);
		if (SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "SET CONSTRAINTS failed");
		eo_fence();

		MemoryContextSwitchTo(attempt_cxt);
		if (applier != NULL)
		{
			applier->subtransactions = 0;
			eo_apply_batch(applier, recs, nrecs, &counts);
			writer->subtransactions += applier->subtransactions;
		}
		else
		{
			eo_writer_dedup(writer, recs, nrecs, &counts);
			eo_writer_write(writer, recs, nrecs, &counts);
		}
		eo_writer_dead_letters(writer, args.pipeline_id, cfg->name, recs, nrecs);
		eo_store_progress(next, &counts, nrecs);
		eo_commit_xact();
	}
	PG_CATCH();
	{
		*error = eo_abort_xact();
		ok = false;
	}
	PG_END_TRY();

	if (!ok && fenced)
	{
		ereport(LOG,
				(errmsg("eo_ingest pipeline \"%s\": worker %d was fenced off; exiting",
						cfg->name, args.worker)));
		proc_exit(0);
	}
	return ok;
}

static void
eo_publish(void)
{
	int32	   *p = palloc(sizeof(int32) * Max(nparts, 1));
	int64	   *o = palloc(sizeof(int64) * Max(nparts, 1));
	int64	   *h = palloc(sizeof(int64) * Max(nparts, 1));

	for (int i = 0; i < nparts; i++)
	{
		p[i] = parts[i].partition;
		o[i] = parts[i].next;
		h[i] = parts[i].high_watermark;
	}
	eo_watermarks_read(slot, rk, cfg->topic, nparts, p, h);
	for (int i = 0; i < nparts; i++)
		parts[i].high_watermark = h[i];
	eo_slot_set_progress(slot, nparts, p, o, h);
	pfree(p);
	pfree(o);
	pfree(h);
}

/* A Kafka error delivered through the consumer. */
static EoRestart
eo_kafka_error(rd_kafka_message_t *msg)
{
	rd_kafka_resp_err_t err = msg->err;

	switch (err)
	{
		case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
		case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
			{
				int			k = eo_part_index(msg->partition);

				eo_report(EO_STATE_FAILED,
						  "stored offset " INT64_FORMAT " of partition %d is out of range in topic \"%s\" "
						  "(was the topic deleted and re-created, or the records removed by retention?): %s; "
						  "pause the pipeline and use eo_ingest.reset_offsets",
						  k >= 0 ? parts[k].next : -1, msg->partition, cfg->topic,
						  rd_kafka_message_errstr(msg));
				return EO_RESTART_FAILED;
			}
		case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		case RD_KAFKA_RESP_ERR__SSL:
		case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
			eo_report(EO_STATE_FAILED, "Kafka refused access: %s", rd_kafka_message_errstr(msg));
			return EO_RESTART_FAILED;
		default:
			kafka_trouble = true;
			eo_report(EO_STATE_RETRYING, "Kafka: %s", rd_kafka_message_errstr(msg));
			return EO_RESTART_NONE;
	}
}

/* Poll up to batch_size records or until batch_timeout passes. */
static EoRestart
eo_poll(void)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cfg->batch_timeout);
	int			cap = cfg->batch_size;
	/* a batch holds at most eo_ingest.queue_kbytes of payload, however many records */
	int64		bytes = 0;
	int64		max_bytes = (int64) eo_queue_kbytes * 1024;

	MemoryContextReset(batch_cxt);
	recs = MemoryContextAllocZero(batch_cxt, sizeof(EoRecord) * cap);
	nrecs = 0;
	while (nrecs < cap && bytes < max_bytes)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		rd_kafka_message_t *msg;
		int			k;

		if (left <= 0)
			break;
		/*
		 * No latch wait here: watch the postmaster, never outlive it.  Both
		 * checks come before the poll, as a message held by no one would
		 * make rd_kafka_destroy wait forever when the worker exits.
		 */
		CHECK_FOR_INTERRUPTS();
		if (!PostmasterIsAlive())
			proc_exit(1);
		msg = rd_kafka_consumer_poll(rk, Min(left, 100));
		if (msg == NULL)
			continue;
		if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			EoRestart	r = eo_kafka_error(msg);

			rd_kafka_message_destroy(msg);
			if (r != EO_RESTART_NONE)
				return r;
			continue;
		}
		k = eo_part_index(msg->partition);
		if (k < 0 || msg->offset < parts[k].next)
		{
			/* redelivery of a record already committed */
			rd_kafka_message_destroy(msg);
			continue;
		}
		if (kafka_trouble)
		{
			kafka_trouble = false;
			eo_slot_set_state(slot, EO_STATE_RUNNING, NULL);
		}
		recs[nrecs].msg = msg;
		recs[nrecs].partition = msg->partition;
		recs[nrecs].offset = msg->offset;
		recs[nrecs].timestamp = rd_kafka_message_timestamp(msg, NULL);
		nrecs++;
		bytes += msg->len + msg->key_len;
	}
	return EO_RESTART_NONE;
}

/*
 * The next offset of each partition after this batch: past its last record,
 * and past whatever the consumer skipped (aborted transactions, transaction
 * markers, compacted gaps), which librdkafka reports as its position.
 */
static bool
eo_next_offsets(int64 *next)
{
	bool		moved = false;
	rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(assignment);

	for (int i = 0; i < nparts; i++)
		next[i] = parts[i].next;
	for (int r = 0; r < nrecs; r++)
	{
		int			k = eo_part_index(recs[r].partition);

		next[k] = Max(next[k], recs[r].offset + 1);
	}
	if (rd_kafka_position(rk, pos) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		for (int i = 0; i < pos->cnt; i++)
		{
			int			k = eo_part_index(pos->elems[i].partition);

			if (k >= 0 && pos->elems[i].offset >= 0)
				next[k] = Max(next[k], pos->elems[i].offset);
		}
	}
	rd_kafka_topic_partition_list_destroy(pos);
	for (int i = 0; i < nparts; i++)
		moved |= next[i] != parts[i].next;
	return moved;
}

typedef struct EoAvroIds
{
	int32	   *ids;
	int			n;
} EoAvroIds;

static void
eo_avro_load_step(void *arg)
{
	EoAvroIds  *ids = (EoAvroIds *) arg;

	eo_avro_load_catalog(ids->ids, ids->n);
}

static void
eo_avro_store_step(void *arg)
{
	eo_avro_store_catalog();
}

/*
 * Avro: know every writer schema of the batch before its transaction
 * begins.  The catalog table first, then the registry, with no transaction
 * open while it is asked.  An unreachable registry is retried with backoff
 * (nothing is dead-lettered for it); one that is no registry or refuses us
 * fails the pipeline.
 */
static EoRestart
eo_avro_prepare(void)
{
	long		delay = 1000;

	while (map != NULL && map->format == &eo_format_avro)
	{
		MemoryContext old = MemoryContextSwitchTo(batch_cxt);
		EoAvroIds	ids;
		EoAvroReady ready = EO_AVRO_RETRY;
		char		err[512] = "";

		ids.n = eo_avro_missing_ids(recs, nrecs, &ids.ids);
		MemoryContextSwitchTo(old);
		if (ids.n == 0)
			break;
		if (eo_try_xact("eo_ingest: reading Avro schemas", eo_avro_load_step, &ids))
		{
			/* the answers' parsing garbage goes with the batch */
			old = MemoryContextSwitchTo(batch_cxt);
			ids.n = eo_avro_missing_ids(recs, nrecs, &ids.ids);
			ready = eo_avro_fetch(ids.ids, ids.n, err, sizeof(err));
			MemoryContextSwitchTo(old);
			if (ready == EO_AVRO_FAILED)
			{
				eo_report(EO_STATE_FAILED, "%s", err);
				return EO_RESTART_FAILED;
			}
			if (eo_try_xact("eo_ingest: storing Avro schemas", eo_avro_store_step, NULL) &&
				ready == EO_AVRO_READY)
				break;
			if (ready == EO_AVRO_RETRY)
				eo_report(EO_STATE_RETRYING, "%s; retrying in %ld ms", err, delay);
		}
		if (eo_backoff(delay))
			return EO_RESTART_SETUP;
		delay = Min(delay * 2, (long) eo_retry_max_delay);
	}
	return EO_RESTART_NONE;
}

/* Commit the polled batch, retrying with backoff until it lands. */
static EoRestart
eo_commit_batch(void)
{
	int64	   *next = MemoryContextAlloc(batch_cxt, sizeof(int64) * Max(nparts, 1));
	long		delay = 1000;
	EoRestart	r;

	if (!eo_next_offsets(next) && nrecs == 0)
		return EO_RESTART_NONE;
	r = eo_avro_prepare();
	if (r != EO_RESTART_NONE)
		return r;

	for (;;)
	{
		ErrorData  *edata = NULL;

		/* no writer: the last reload failed, and reported why */
		if (writer != NULL)
		{
			if (eo_worker_batch_xact(next, &edata))
				break;
			eo_report(EO_STATE_RETRYING, "%s (SQLSTATE %s); retrying the batch in %ld ms",
					  edata->message, unpack_sql_state(edata->sqlerrcode), delay);
			FreeErrorData(edata);
		}
		if (eo_backoff(delay))
			return EO_RESTART_SETUP;
		delay = Min(delay * 2, (long) eo_retry_max_delay);

		/* the target may have changed: rebuild the mapping before trying again */
		(void) eo_load_config_xact();
	}

	for (int i = 0; i < nparts; i++)
		parts[i].next = next[i];
	eo_destroy_messages();
	if (!kafka_trouble)
		eo_slot_set_state(slot, EO_STATE_RUNNING, NULL);
	return EO_RESTART_NONE;
}

static EoRestart
eo_run(void)
{
	TimestampTz last_config = GetCurrentTimestamp();
	TimestampTz last_metadata = last_config;

	for (;;)
	{
		TimestampTz now;
		EoRestart	r;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(last_config, now, 1000))
		{
			last_config = now;
			if (eo_config_changed())
				return EO_RESTART_SETUP;
		}
		if (TimestampDifferenceExceeds(last_metadata, now, kafka_trouble ? 2000 : 10000))
		{
			char		err[512];
			int32	   *all = NULL;
			int			n;

			last_metadata = now;
			n = eo_kafka_partitions(rk, cfg->topic, &all, err, sizeof(err));
			if (n < 0 && eo_kafka_metadata_error < 0)
			{
				/* connection errors never reach consumer_poll: an outage shows here */
				kafka_trouble = true;
				if (eo_broker_trouble(err) == EO_RESTART_FAILED)
					return EO_RESTART_FAILED;
			}
			else if (n < 0)
			{
				kafka_trouble = true;
				eo_report(EO_STATE_RETRYING, "%s", err);
			}
			else if (n > topic_partitions)
			{
				ereport(LOG,
						(errmsg("eo_ingest pipeline \"%s\": topic \"%s\" grew from %d to %d partitions",
								cfg->name, cfg->topic, topic_partitions, n)));
				return EO_RESTART_SETUP;
			}
			if (n >= 0)
			{
				char		stale[8];

				/* the brokers answer: errors noted meanwhile are over */
				(void) eo_kafka_take_error(stale, sizeof(stale));
			}
			if (n > 0 && kafka_trouble)
			{
				kafka_trouble = false;
				eo_slot_set_state(slot, EO_STATE_RUNNING, NULL);
			}
			if (all != NULL)
				pfree(all);
		}

		if (nparts == 0)
		{
			/* nothing assigned: only errors wait in the queue */
			eo_kafka_serve_errors(rk);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}

		r = eo_poll();
		if (r != EO_RESTART_NONE)
			return r;
		r = eo_commit_batch();
		if (r != EO_RESTART_NONE)
			return r;
		eo_publish();
	}
}

void
eo_worker_main(Datum main_arg)
{
	long		delay = 1000;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(EoWorkerArgs));

	/*
	 * Batches allocate and free the same large arrays over and over: keep
	 * them in the heap instead of mapping and faulting in fresh pages each
	 * time.  Memory stays bounded by the batch size and the Kafka queue.
	 */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.database, args.owner,
											  EO_BGW_OWNER_CONNECT_FLAGS);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("eo_ingest worker");

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "eo_ingest worker", ALLOCSET_DEFAULT_SIZES);
	config_cxt = AllocSetContextCreate(worker_cxt, "eo_ingest config", ALLOCSET_DEFAULT_SIZES);
	setup_cxt = AllocSetContextCreate(worker_cxt, "eo_ingest setup", ALLOCSET_SMALL_SIZES);
	/* large kept blocks: a batch's memory is reused, not returned to the kernel */
	batch_cxt = AllocSetContextCreate(worker_cxt, "eo_ingest batch",
									  1024 * 1024, 1024 * 1024, 8 * 1024 * 1024);
	/* not under batch_cxt: eo_poll resets that, which would delete this one */
	attempt_cxt = AllocSetContextCreate(worker_cxt, "eo_ingest attempt",
										8 * 1024 * 1024, 1024 * 1024, 8 * 1024 * 1024);
	MemoryContextSwitchTo(worker_cxt);

	slot = eo_slot_acquire(&args);
	before_shmem_exit(eo_worker_exit, (Datum) 0);

	for (;;)
	{
		EoRestart	r = eo_setup();

		if (r == EO_RESTART_NONE)
		{
			delay = 1000;
			r = eo_run();
		}
		eo_kafka_close();
		if (r == EO_RESTART_FAILED)
		{
			/* stay failed until the pipeline is altered, resumed or reset */
			while (!eo_backoff(60000))
				;
			delay = 1000;
			/* a resumed pipeline gets a new grace period */
			broker_reached = false;
			unreachable_since = 0;
		}
		else if (r == EO_RESTART_SETUP && slot->state == EO_STATE_RETRYING)
		{
			(void) eo_backoff(delay);
			delay = Min(delay * 2, (long) eo_retry_max_delay);
		}
	}
}
