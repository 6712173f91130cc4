/*
 * setup.c
 *		A pipeline worker's setup: load the pipeline's row and build its
 *		mapping, connect to Kafka, find this worker's partitions, store
 *		start offsets for new ones, claim them and assign them.
 *
 * The worker sets up again whenever the configuration changes: new brokers
 * or kafka_options need a new librdkafka handle, so a newer config_version
 * is never adopted in place.  While no broker answers, the setup keeps its
 * handle and waits for librdkafka to reconnect instead of backing off.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "avro_format.h"
#include "catalog.h"
#include "watermarks.h"
#include "worker.h"

/* How long one metadata request waits for a broker while none answers */
#define EO_SETUP_WAIT_MS 1000

static char *
eo_getstr(EoWorker *w, HeapTuple tup, TupleDesc desc, int col)
{
	char	   *v = SPI_getvalue(tup, desc, col);

	return v ? MemoryContextStrdup(w->config_cxt, v) : NULL;
}

/*
 * Free the configuration, the mapping, the writer and the applier: before
 * a reload, and while the worker is parked (park.c).
 */
void
eo_worker_forget_config(EoWorker *w)
{
	/* cleared first: the error context callback reads cfg */
	w->cfg = NULL;
	w->map = NULL;
	if (w->writer != NULL)
	{
		eo_writer_destroy(w->writer);
		w->writer = NULL;
	}
	if (w->applier != NULL)
	{
		eo_apply_destroy(w->applier);
		w->applier = NULL;
	}
	MemoryContextReset(w->config_cxt);
}

/*
 * Read the pipeline's row and build its mapping.  Returns false when the
 * pipeline is gone or paused: the worker then exits.
 */
static bool
eo_load_config(EoWorker *w)
{
	Datum		argv[1] = {Int32GetDatum(w->args.pipeline_id)};
	Oid			argt[1] = {INT4OID};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int			ret;
	EoConfig   *c;
	MemoryContext old;
	EoEnvelope	envelope;

	eo_worker_forget_config(w);

	ret = SPI_execute_with_args("SELECT name, brokers, topic, target::oid, event_id, on_duplicate, format, "
								"columns, start_from, batch_size, batch_timeout, workers, synchronous_commit, "
								"kafka_options, enabled, config_version, "
								"EXISTS (SELECT FROM eo_ingest.offsets o WHERE o.pipeline_id = p.id), "
	/* columns of 0.3, read so that a database still at 0.2 works too */
								"to_jsonb(p) ->> 'schema_registry', to_jsonb(p) ->> 'avro_schema', "
								"to_jsonb(p) ->> 'envelope', to_jsonb(p) ->> 'on_truncate', "
								"to_jsonb(p) ->> 'key_format', to_jsonb(p) ->> 'key_avro_schema' "
								"FROM eo_ingest.pipelines p WHERE id = $1",
								1, argt, argv, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading eo_ingest.pipelines failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	c = MemoryContextAllocZero(w->config_cxt, sizeof(EoConfig));
	c->name = eo_getstr(w, tup, desc, 1);
	c->brokers = eo_getstr(w, tup, desc, 2);
	c->topic = eo_getstr(w, tup, desc, 3);
	c->target = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	c->event_id = eo_getstr(w, tup, desc, 5);
	c->on_duplicate = eo_getstr(w, tup, desc, 6);
	c->format = eo_getstr(w, tup, desc, 7);
	c->columns = SPI_getbinval(tup, desc, 8, &c->columns_null);
	old = MemoryContextSwitchTo(w->config_cxt);
	if (!c->columns_null)
		c->columns = PointerGetDatum(DatumGetJsonbPCopy(c->columns));
	c->kafka_options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 14, &isnull));
	MemoryContextSwitchTo(old);
	c->start_from = eo_getstr(w, tup, desc, 9);
	c->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 10, &isnull));
	c->batch_timeout = DatumGetInt32(SPI_getbinval(tup, desc, 11, &isnull));
	c->nworkers = DatumGetInt32(SPI_getbinval(tup, desc, 12, &isnull));
	c->synchronous_commit = DatumGetBool(SPI_getbinval(tup, desc, 13, &isnull));
	c->enabled = DatumGetBool(SPI_getbinval(tup, desc, 15, &isnull));
	c->config_version = DatumGetInt64(SPI_getbinval(tup, desc, 16, &isnull));
	c->has_offsets = DatumGetBool(SPI_getbinval(tup, desc, 17, &isnull));
	/* the owner's privileges now, not when the options were stored */
	c->owner_superuser = superuser();
	c->schema_registry = eo_getstr(w, tup, desc, 18);
	c->avro_schema = eo_getstr(w, tup, desc, 19);
	c->envelope = eo_getstr(w, tup, desc, 20);
	c->on_truncate = eo_getstr(w, tup, desc, 21);
	c->key_format = eo_getstr(w, tup, desc, 22);
	if (c->key_format != NULL && strcmp(c->key_format, "none") == 0)
		c->key_format = NULL;
	c->key_avro_schema = eo_getstr(w, tup, desc, 23);
	w->cfg = c;
	if (!c->enabled)
		return false;

	/*
	 * A dropped target: follow a table created again under the remembered
	 * name (or say what the pipeline waits for), then read the row again.
	 */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(c->target)))
	{
		(void) eo_target_follow(w->args.pipeline_id, c->target);
		return eo_load_config(w);
	}
	eo_target_refresh_name(w->args.pipeline_id, c->target, &w->target_name, w->worker_cxt);

	SetConfigOption("synchronous_commit", c->synchronous_commit ? "on" : "off",
					PGC_SUSET, PGC_S_SESSION);

	old = MemoryContextSwitchTo(w->config_cxt);
	envelope = c->envelope == NULL || strcmp(c->envelope, "none") == 0 ? EO_ENV_NONE :
		strcmp(c->envelope, "debezium") == 0 ? EO_ENV_DEBEZIUM : EO_ENV_UPSERT;
	w->map = eo_mapping_build(c->target, c->format, c->key_format,
							  envelope == EO_ENV_NONE ? c->event_id : NULL,
							  c->on_duplicate, c->columns, c->columns_null, c->topic, envelope);
	w->map->truncate = c->on_truncate != NULL && strcmp(c->on_truncate, "truncate") == 0;
	w->writer = eo_writer_create(w->map, w->config_cxt);
	if (envelope != EO_ENV_NONE)
		w->applier = eo_apply_create(w->map, w->writer);
	MemoryContextSwitchTo(old);
	if (w->map->format == &eo_format_avro)
		eo_avro_configure(c->schema_registry, c->avro_schema,
						  c->key_format != NULL && strcmp(c->key_format, "avro") == 0,
						  c->key_avro_schema, c->kafka_options);
	return true;
}

static void
eo_load_config_step(EoWorker *w, void *arg)
{
	*(bool *) arg = eo_load_config(w);
}

/*
 * Load the configuration in a transaction of its own, exiting if the
 * pipeline is paused or gone.  False, reported as retrying, if it failed.
 */
bool
eo_worker_load_config(EoWorker *w)
{
	bool		enabled = true;

	if (!eo_worker_try_xact(w, "loading pipeline", eo_load_config_step, &enabled))
		return false;
	if (!enabled)
	{
		ereport(LOG,
				(errmsg("eo_ingest pipeline %d is paused or dropped; worker exiting",
						w->args.pipeline_id)));
		proc_exit(0);
	}
	return true;
}

void
eo_worker_close(EoWorker *w)
{
	/* the decoder may hold a batch polled ahead: it is polled again */
	eo_decoder_stop();
	for (int i = 0; i < w->nrecs; i++)
		rd_kafka_message_destroy(w->recs[i].msg);
	w->nrecs = 0;
	for (int i = 0; i < w->ahead.nrecs; i++)
		rd_kafka_message_destroy(w->ahead.recs[i].msg);
	w->ahead.nrecs = 0;
	if (w->assignment != NULL)
	{
		rd_kafka_topic_partition_list_destroy(w->assignment);
		w->assignment = NULL;
	}
	/* a queue handle still held would make the destroy wait for ever */
	if (w->ready != NULL)
	{
		eo_kafka_ready_disable(w->ready);
		w->ready = NULL;
	}
	if (w->rk != NULL)
	{
		eo_kafka_destroy(w->rk);
		w->rk = NULL;
	}
}

/*
 * The topic's partitions.  While no broker answers, wait here with the
 * handle, which reconnects by itself (one attempt a second at most, see
 * eo_kafka_conf): the first answer ends the wait.  The wait ends too when
 * the grace period of brokers never reached runs out, or the pipeline
 * changes.
 */
static EoRestart
eo_setup_partitions(EoWorker *w, int32 **all, int *n)
{
	EoConfig   *cfg = w->cfg;
	char		err[512];
	char		msg[EO_ERROR_LEN];

	for (;;)
	{
		TimestampTz start = GetCurrentTimestamp();
		long		left;

		*n = eo_kafka_partitions(w->rk, cfg->topic, all, err, sizeof(err), EO_SETUP_WAIT_MS);
		/* librdkafka's own errors are negative: anything else is a broker's answer */
		if (eo_kafka_metadata_error >= 0)
			eo_kafka_health_reached(&w->health);
		if (*n >= 0)
		{
			w->topic_missing_since = 0;
			return EO_RESTART_NONE;
		}
		if (eo_kafka_metadata_error == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
		{
			/* a topic that stays missing is a configuration error, not an outage */
			if (w->topic_missing_since == 0)
				w->topic_missing_since = start;
			if (TimestampDifferenceExceeds(w->topic_missing_since, start, eo_grace_period))
			{
				w->topic_missing_since = 0;
				eo_worker_report(w, EO_STATE_FAILED,
								 "topic \"%s\" does not exist (waited %d s); create it, then call eo_ingest.resume_pipeline",
								 cfg->topic, eo_grace_period / 1000);
				return EO_RESTART_FAILED;
			}
		}
		if (eo_kafka_metadata_error == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
		{
			eo_worker_report(w, EO_STATE_FAILED,
							 "%s; grant the Kafka user READ on the topic, then call eo_ingest.resume_pipeline", err);
			return EO_RESTART_FAILED;
		}
		if (eo_kafka_metadata_error >= 0)
		{
			eo_worker_report(w, EO_STATE_RETRYING, "%s", err);
			return EO_RESTART_RETRY;
		}

		/* nothing is assigned yet: serving the queue loses no record */
		eo_kafka_serve_errors(w->rk);
		if (eo_kafka_health_trouble(&w->health, cfg->brokers, err, msg, sizeof(msg)))
		{
			eo_worker_report(w, EO_STATE_FAILED, "%s", msg);
			return EO_RESTART_FAILED;
		}
		eo_worker_report(w, EO_STATE_RETRYING, "%s", msg);
		if (eo_worker_changed(w))
			return EO_RESTART_SETUP;
		/* a look-up that failed at once: wait out the rest of the second */
		left = EO_SETUP_WAIT_MS - TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
		if (left > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 left, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/* Arguments of the ledger steps the setup runs in transactions */
typedef struct EoPartStep
{
	int			n;
	int32	   *partitions;
	int64	   *offsets;
} EoPartStep;

static void
eo_read_offsets_step(EoWorker *w, void *arg)
{
	EoPartStep *step = (EoPartStep *) arg;

	eo_ledger_read_offsets(&w->ledger, step->n, step->partitions, step->offsets);
}

static void
eo_claim_step(EoWorker *w, void *arg)
{
	eo_ledger_claim(&w->ledger, ((EoPartStep *) arg)->offsets);
}

EoRestart
eo_worker_setup(EoWorker *w)
{
	EoLedger   *l = &w->ledger;
	EoConfig   *cfg;
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
	EoRestart	r;
	rd_kafka_resp_err_t rc;

	eo_worker_close(w);
	MemoryContextReset(w->batch_cxt);
	MemoryContextReset(w->ahead.cxt);
	MemoryContextReset(w->setup_cxt);
	l->parts = NULL;
	l->nparts = 0;
	if (!eo_worker_load_config(w))
		return EO_RESTART_RETRY;
	cfg = w->cfg;
	w->setup_version = cfg->config_version;
	/* a new configuration may fit in a park record (park.c) */
	if (w->park_retry_at == DT_NOEND)
		w->park_retry_at = 0;
	w->idle_since = 0;

	eo_kafka_health_track(&w->health, cfg->brokers, cfg->kafka_options, cfg->has_offsets,
						  w->worker_cxt);
	group = psprintf("eo_ingest.%u.%d", w->args.database, w->args.pipeline_id);
	conf = eo_kafka_conf(cfg->brokers, cfg->kafka_options, cfg->owner_superuser, group,
						 err, sizeof(err));
	if (conf == NULL)
	{
		eo_worker_report(w, EO_STATE_FAILED, "invalid kafka_options: %s", err);
		return EO_RESTART_FAILED;
	}
	if (!eo_fetch_clock_attach(conf, NULL, err, sizeof(err)))
	{
		rd_kafka_conf_destroy(conf);
		eo_worker_report(w, EO_STATE_FAILED, "could not create Kafka consumer: %s", err);
		return EO_RESTART_FAILED;
	}
	w->rk = eo_kafka_consumer(conf, err, sizeof(err));
	if (w->rk == NULL)
	{
		eo_worker_report(w, EO_STATE_FAILED, "could not create Kafka consumer: %s", err);
		return EO_RESTART_FAILED;
	}
	w->ready = eo_kafka_ready_enable(w->rk, err, sizeof(err));
	if (w->ready == NULL)
	{
		eo_worker_report(w, EO_STATE_RETRYING, "%s", err);
		return EO_RESTART_RETRY;
	}
	r = eo_setup_partitions(w, &all, &n);
	if (r != EO_RESTART_NONE)
		return r;
	if (w->topic_partitions > 0 && n > w->topic_partitions)
		ereport(LOG,
				(errmsg("topic \"%s\" grew from %d to %d partitions",
						cfg->topic, w->topic_partitions, n)));
	w->topic_partitions = n;

	MemoryContextSwitchTo(w->setup_cxt);
	mine = palloc(sizeof(int32) * n);
	stored = palloc(sizeof(int64) * n);
	start = palloc(sizeof(int64) * n);
	missing = palloc(sizeof(int32) * n);
	for (int i = 0; i < n; i++)
		if (all[i] % w->args.nworkers == w->args.worker)
			mine[nmine++] = all[i];
	l->parts = palloc0(sizeof(EoPart) * Max(nmine, 1));
	l->nparts = nmine;
	for (int i = 0; i < nmine; i++)
	{
		l->parts[i].partition = mine[i];
		l->parts[i].high_watermark = -1;
	}
	MemoryContextSwitchTo(w->worker_cxt);

	if (nmine == 0)
	{
		eo_slot_set_state(w->slot, EO_STATE_RUNNING, NULL);
		eo_slot_set_progress(w->slot, 0, NULL, NULL, NULL);
		return EO_RESTART_NONE;
	}

	step.n = nmine;
	step.partitions = mine;
	step.offsets = stored;
	if (!eo_worker_try_xact(w, "reading offsets", eo_read_offsets_step, &step))
		return EO_RESTART_RETRY;

	for (int i = 0; i < nmine; i++)
		if (stored[i] < 0)
			missing[nmissing++] = mine[i];
	if (nmissing > 0)
	{
		/* a pipeline's first partitions start from start_from; later ones from their beginning */
		int64	   *resolved = palloc(sizeof(int64) * nmissing);

		if (!eo_kafka_resolve(w->rk, cfg->topic, nmissing, missing,
							  cfg->has_offsets ? "earliest" : cfg->start_from,
							  resolved, err, sizeof(err)))
		{
			eo_worker_report(w, EO_STATE_RETRYING, "%s", err);
			return EO_RESTART_RETRY;
		}
		for (int i = 0, k = 0; i < nmine; i++)
			start[i] = stored[i] >= 0 ? stored[i] : resolved[k++];
	}
	else
		memcpy(start, stored, sizeof(int64) * nmine);

	step.offsets = start;
	if (!eo_worker_try_xact(w, "claiming partitions", eo_claim_step, &step))
		return EO_RESTART_RETRY;

	w->assignment = rd_kafka_topic_partition_list_new(nmine);
	for (int i = 0; i < nmine; i++)
		rd_kafka_topic_partition_list_add(w->assignment, cfg->topic,
										  l->parts[i].partition)->offset = l->parts[i].next;
	rc = rd_kafka_assign(w->rk, w->assignment);
	if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		eo_worker_report(w, EO_STATE_RETRYING, "could not assign partitions: %s", rd_kafka_err2str(rc));
		return EO_RESTART_RETRY;
	}
	eo_slot_set_state(w->slot, EO_STATE_RUNNING, NULL);
	return EO_RESTART_NONE;
}
