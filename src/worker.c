/*
 * worker.c
 *		The pipeline worker: polls its partitions with librdkafka and commits
 *		each batch's rows, dead letters, offsets and counters in one
 *		transaction (eo_batch_step, the heart of the extension).
 *
 * Read top to bottom: the worker's state, the one transaction bracket all
 * its transactions go through, waiting for configuration changes, polling a
 * batch, committing it, and the main loop.  The worker runs as the
 * pipeline's owner.  Offsets come from eo_ingest.offsets, never from Kafka;
 * every batch first fences (ledger.c), so a stale or duplicate worker
 * cannot commit.  Setup (configuration, Kafka connection, claiming
 * partitions) is setup.c.
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "compat.h"
#include "watermarks.h"
#include "worker.h"

/*
 * Without a change announced through shared memory, look at the pipeline's
 * row this often anyway: a safety net for changes made by hand, and the
 * moment an idle worker notices its target was renamed.
 */
#define EO_SAFETY_POLL_MS 30000

/*
 * An idle worker wakes for its housekeeping (worker_idle.c) when its fetch
 * clock moves (fetch_clock.c), once per fetch the broker held: its lag is
 * then vouched for as of one fetch wait ago, and status.c shows a lag for
 * 5 s.  This is how long it sleeps at most, when the clock stopped (an
 * outage, a hung broker): longer than a fetch wait (kafka.c).
 */
#define EO_IDLE_WAKE_MS 3000

/*
 * A poll that finds this many records ready at once is behind: a backlog
 * (eo_decode_ahead), as is one that stops at batch_size or queue_kbytes.
 * With batch_size at its default a batch rarely stops at a limit, as it
 * takes what librdkafka's queue holds; a worker that keeps up polls tens
 * or hundreds.
 */
#define EO_BACKLOG_RECORDS 10000

/* A retrying worker repeats an unchanged status in the log this often */
#define EO_REPEAT_LOG_MS 10000

static EoWorker worker;

static void eo_next_offsets(EoWorker *w);

/* CONTEXT of everything the worker logs: which pipeline, doing what. */
static void
eo_worker_errcontext(void *arg)
{
	EoWorker   *w = (EoWorker *) arg;

	if (w->cfg != NULL && w->cfg->name != NULL)
		errcontext("eo_ingest pipeline \"%s\", worker %d%s%s", w->cfg->name, w->args.worker,
				   w->activity ? ": " : "", w->activity ? w->activity : "");
	else
		errcontext("eo_ingest pipeline %d, worker %d%s%s", w->args.pipeline_id, w->args.worker,
				   w->activity ? ": " : "", w->activity ? w->activity : "");
}

/*
 * Set the worker's state, with error text fit for the log and the status
 * view (no option values in it).  An unchanged retrying status is logged
 * again only every EO_REPEAT_LOG_MS.
 */
void
eo_worker_report(EoWorker *w, EoState state, const char *fmt,...)
{
	char		buf[EO_ERROR_LEN];
	va_list		ap;
	char	   *clean;
	bool		repeat;
	TimestampTz now = GetCurrentTimestamp();

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	clean = eo_kafka_scrub(w->cfg ? w->cfg->kafka_options : NULL, buf);
	repeat = state == EO_STATE_RETRYING && w->slot->state == state &&
		!TimestampDifferenceExceeds(w->logged_at, now, EO_REPEAT_LOG_MS);
	eo_slot_set_state(w->slot, state, clean);
	if (!repeat)
	{
		w->logged_at = now;
		ereport(state == EO_STATE_FAILED ? WARNING : LOG, (errmsg("%s", clean)));
	}
	pfree(clean);
}

/*
 * The one transaction bracket, as PostgreSQL's own workers have it: run
 * step in a transaction, SPI connected, with a snapshot.  On error, with
 * interrupts held, copy the error into worker_cxt for the caller (*error),
 * abort out of any transaction level (an error may escape a
 * subtransaction) and clear the error state.  Statistics and the idle
 * status are reported after the bracket, so that their failure is never
 * taken for the step's.
 */
bool
eo_worker_xact(EoWorker *w, const char *activity, EoWorkerStep step, void *arg,
			   ErrorData **error)
{
	volatile bool ok = true;

	*error = NULL;
	w->activity = activity;
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		/* user code of the last transaction (a domain's CHECK) may have changed it */
		SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, activity);
		step(w, arg);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(w->worker_cxt);
		*error = CopyErrorData();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		RESUME_INTERRUPTS();
		ok = false;
	}
	PG_END_TRY();
	w->activity = NULL;
	MemoryContextSwitchTo(w->worker_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/* eo_worker_xact for a step whose error makes the pipeline retrying */
bool
eo_worker_try_xact(EoWorker *w, const char *activity, EoWorkerStep step, void *arg)
{
	ErrorData  *edata;

	if (eo_worker_xact(w, activity, step, arg, &edata))
		return true;
	eo_worker_report(w, EO_STATE_RETRYING, "%s", edata->message);
	FreeErrorData(edata);
	return false;
}

/* Is the pipeline's row at another version, paused or gone? */
typedef struct EoCheck
{
	bool		changed;
} EoCheck;

static void
eo_check_step(EoWorker *w, void *arg)
{
	Datum		argv[1] = {Int32GetDatum(w->args.pipeline_id)};
	Oid			argt[1] = {INT4OID};
	bool		isnull;

	if (SPI_execute_with_args("SELECT config_version, enabled FROM eo_ingest.pipelines WHERE id = $1",
							  1, argt, argv, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading eo_ingest.pipelines failed");
	if (SPI_processed == 0)
	{
		((EoCheck *) arg)->changed = true;
		return;
	}
	((EoCheck *) arg)->changed =
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) ||
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) !=
		w->setup_version;
	if (!((EoCheck *) arg)->changed && w->cfg != NULL)
		eo_target_refresh_name(w->args.pipeline_id, w->cfg->target, &w->target_name, w->worker_cxt);
}

/*
 * Has the pipeline changed since the setup?  Looked up in a transaction
 * only when a committed change bumped this worker's wake_seq (wakeup.c), or
 * every EO_SAFETY_POLL_MS; otherwise free.  Serves SIGHUP too.
 */
bool
eo_worker_changed(EoWorker *w)
{
	uint64		seq = eo_wakeup_seq(w->slot);
	TimestampTz now = GetCurrentTimestamp();
	EoCheck		check = {false};
	ErrorData  *edata;

	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	if (seq == w->wake_seq && !TimestampDifferenceExceeds(w->checked_at, now, EO_SAFETY_POLL_MS))
		return false;
	w->wake_seq = seq;
	w->checked_at = now;
	if (!eo_worker_xact(w, "checking pipeline", eo_check_step, &check, &edata))
	{
		ereport(LOG, (errmsg("could not check the pipeline: %s", edata->message)));
		FreeErrorData(edata);
	}
	return check.changed;
}

/*
 * Wait ms milliseconds (ms < 0: until the pipeline changes) on the latch,
 * which a committed change of the pipeline sets.  True if it changed.
 */
bool
eo_worker_wait(EoWorker *w, long ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left = EO_SAFETY_POLL_MS;

		CHECK_FOR_INTERRUPTS();
		if (eo_worker_changed(w))
			return true;
		if (ms >= 0)
		{
			left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
			if (left <= 0)
				return false;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(left, EO_SAFETY_POLL_MS), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* A Kafka error delivered through the consumer. */
static EoRestart
eo_consumer_error(EoWorker *w, rd_kafka_message_t *msg)
{
	switch (msg->err)
	{
		case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
		case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
			{
				int			k = eo_ledger_part(&w->ledger, msg->partition);

				eo_worker_report(w, EO_STATE_FAILED,
								 "stored offset " INT64_FORMAT " of partition %d is out of range in topic \"%s\" "
								 "(was the topic deleted and re-created, or the records removed by retention?): %s; "
								 "pause the pipeline and use eo_ingest.reset_offsets",
								 k >= 0 ? w->ledger.parts[k].next : -1, msg->partition, w->cfg->topic,
								 rd_kafka_message_errstr(msg));
				return EO_RESTART_FAILED;
			}
		case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		case RD_KAFKA_RESP_ERR__SSL:
		case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
			eo_worker_report(w, EO_STATE_FAILED, "Kafka refused access: %s", rd_kafka_message_errstr(msg));
			return EO_RESTART_FAILED;
		default:
			w->kafka_trouble = true;
			eo_worker_report(w, EO_STATE_RETRYING, "Kafka: %s", rd_kafka_message_errstr(msg));
			return EO_RESTART_NONE;
	}
}

/*
 * Poll the records the consumer has ready, up to batch_size or queue_kbytes
 * of payload.  The batch closes as soon as the queue is empty: a trickle is
 * committed at once, a backlog (a full queue) still fills whole batches, and
 * batch_timeout bounds a batch whose records keep coming.  With nothing
 * ready, sleep (if wait) on the latch and the queue (kafka_ready.c) until
 * the fetch clock moves or EO_IDLE_WAKE_MS passed, then return an empty
 * batch for eo_run's housekeeping.  The batch's next offsets are taken as
 * the poll leaves the consumer, before any batch is polled ahead.
 */
static EoRestart
eo_poll(EoWorker *w, bool wait)
{
	TimestampTz deadline = 0;
	TimestampTz wake = 0;
	int			cap = w->cfg->batch_size;
	int64		bytes = 0;
	int64		max_bytes = (int64) eo_queue_kbytes * 1024;

	MemoryContextReset(w->batch_cxt);
	w->next = NULL;
	w->full = false;
	w->sent = false;

	/*
	 * The array of records (6.4 MB for 50,000) is kept from batch to batch:
	 * allocated and zeroed for every poll, in pages fresh from the kernel,
	 * it took a tenth of a worker's CPU in the benchmark's profile.  Each
	 * record is zeroed as it arrives.
	 */
	if (w->recs_cap != cap)
	{
		if (w->recs != NULL)
			pfree(w->recs);
		w->recs = MemoryContextAlloc(w->worker_cxt, sizeof(EoRecord) * cap);
		w->recs_cap = cap;
	}
	w->nrecs = 0;
	while (w->nrecs < cap && bytes < max_bytes)
	{
		rd_kafka_message_t *msg;
		EoRecord   *rec;
		int			k;

		/*
		 * Both checks come before the poll, as a message held by no one
		 * would make rd_kafka_destroy wait forever when the worker exits.
		 */
		CHECK_FOR_INTERRUPTS();
		if (!PostmasterIsAlive())
			proc_exit(1);
		msg = rd_kafka_consumer_poll(w->rk, 0);
		if (msg == NULL)
		{
			long		left;
			bool		ready;

			/* nothing more ready: commit what there is, or sleep */
			if (w->nrecs > 0 || !wait)
				break;
			/* in all, however many errors wake the wait; sooner in an outage */
			if (wake == 0)
				wake = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   w->kafka_trouble ? 1000 : EO_IDLE_WAKE_MS);
			left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), wake);
			if (left <= 0)
				break;
			eo_fetch_clock_watch(true);
			ready = eo_kafka_ready_wait(left);
			eo_fetch_clock_watch(false);
			/* SIGTERM set the latch: exit now, not after a watermark read */
			CHECK_FOR_INTERRUPTS();
			if (!ready)
				break;
			continue;
		}
		if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			EoRestart	r = eo_consumer_error(w, msg);

			rd_kafka_message_destroy(msg);
			if (r != EO_RESTART_NONE)
				return r;
			continue;
		}
		k = eo_ledger_part(&w->ledger, msg->partition);
		if (k < 0 || msg->offset < w->ledger.parts[k].next)
		{
			/* redelivery of a record already committed */
			rd_kafka_message_destroy(msg);
			continue;
		}
		if (w->kafka_trouble)
		{
			w->kafka_trouble = false;
			eo_slot_set_state(w->slot, EO_STATE_RUNNING, NULL);
		}
		rec = &w->recs[w->nrecs++];
		memset(rec, 0, sizeof(EoRecord));
		rec->msg = msg;
		rec->partition = msg->partition;
		rec->offset = msg->offset;
		rec->timestamp = rd_kafka_message_timestamp(msg, NULL);
		bytes += msg->len + msg->key_len;
		if (w->nrecs == 1)
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), w->cfg->batch_timeout);
		else if ((w->nrecs & 255) == 0 && GetCurrentTimestamp() >= deadline)
			break;
	}
	w->full = w->nrecs == cap || bytes >= max_bytes || w->nrecs >= EO_BACKLOG_RECORDS;
	eo_next_offsets(w);
	return EO_RESTART_NONE;
}

/*
 * The next offset of each partition after this batch (w->next): past its
 * last record, and past whatever the consumer skipped (aborted
 * transactions, transaction markers, compacted gaps), which librdkafka
 * reports as its position.  Taken right after the batch's poll: a batch
 * polled ahead moves the position on.
 */
static void
eo_next_offsets(EoWorker *w)
{
	EoLedger   *l = &w->ledger;
	int64	   *next = MemoryContextAlloc(w->batch_cxt, sizeof(int64) * Max(l->nparts, 1));
	rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(w->assignment);

	for (int i = 0; i < l->nparts; i++)
		next[i] = l->parts[i].next;
	for (int r = 0; r < w->nrecs; r++)
	{
		int			k = eo_ledger_part(l, w->recs[r].partition);

		next[k] = Max(next[k], w->recs[r].offset + 1);
	}
	if (rd_kafka_position(w->rk, pos) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		for (int i = 0; i < pos->cnt; i++)
		{
			int			k = eo_ledger_part(l, pos->elems[i].partition);

			if (k >= 0 && pos->elems[i].offset >= 0)
				next[k] = Max(next[k], pos->elems[i].offset);
		}
	}
	rd_kafka_topic_partition_list_destroy(pos);
	w->next = next;
}

/*
 * The batch transaction.  Rows, dead letters, offsets and counters commit
 * together or not at all.
 */
static void
eo_batch_step(EoWorker *w, void *arg)
{
	const int64 *next = (const int64 *) arg;
	EoCounts	counts = {0};

	/*
	 * Before the fence locks anything: records once per batch (a retry
	 * reuses them); a change stream's rows once per attempt.
	 */
	if (w->applier != NULL)
		w->writer->subtransactions = eo_envelope_decode(w->applier, w->recs, w->nrecs,
														w->attempt_cxt);
	else
		w->writer->subtransactions = eo_record_decode_batch(w->map, w->recs, w->nrecs,
															w->batch_cxt);
	/* SET CONSTRAINTS ALL IMMEDIATE, without parsing it every batch */
	AfterTriggerSetState(makeNode(ConstraintsSetStmt));
	eo_ledger_fence(&w->ledger, w->cfg->name);
	eo_target_refresh_name(w->args.pipeline_id, w->cfg->target, &w->target_name, w->worker_cxt);

	MemoryContextSwitchTo(w->attempt_cxt);
	if (w->applier != NULL)
	{
		w->applier->subtransactions = 0;
		eo_apply_batch(w->applier, w->recs, w->nrecs, &counts);
		w->writer->subtransactions += w->applier->subtransactions;
	}
	else
	{
		eo_writer_dedup(w->writer, w->recs, w->nrecs, &counts);
		eo_writer_write(w->writer, w->recs, w->nrecs, &counts);
	}
	eo_ledger_dead_letters(&w->ledger, w->cfg->name, w->recs, w->nrecs);
	eo_ledger_store(&w->ledger, next, &counts, w->writer->subtransactions, w->nrecs);
}

/*
 * Commit the polled batch, retrying with backoff until it lands.  Before a
 * retry the mapping is built again (the target may have changed), but a
 * newer configuration means a new setup: it is never adopted here.
 */
static EoRestart
eo_commit_batch(EoWorker *w)
{
	int64	   *next = w->next;
	long		delay = 1000;
	EoRestart	r;
	bool		moved = false;

	/*
	 * A batch polled ahead took its offsets before the one before it
	 * committed: a partition it has no record of may still hold the older
	 * offset.  Offsets never go back.
	 */
	for (int i = 0; i < w->ledger.nparts; i++)
	{
		next[i] = Max(next[i], w->ledger.parts[i].next);
		moved |= next[i] != w->ledger.parts[i].next;
	}
	if (!moved && w->nrecs == 0)
		return EO_RESTART_NONE;
	/* Avro: every writer schema of the batch, before its transaction */
	r = eo_worker_avro_schemas(w);
	if (r != EO_RESTART_NONE)
		return r;

	for (;;)
	{
		ErrorData  *edata;

		/* no writer: the last reload failed, and reported why */
		if (w->writer != NULL)
		{
			MemoryContextReset(w->attempt_cxt);
			if (eo_worker_xact(w, "writing a batch", eo_batch_step, next, &edata))
				break;
			if (w->ledger.fenced)
			{
				ereport(LOG, (errmsg("worker %d was fenced off; exiting", w->args.worker)));
				proc_exit(0);
			}
			eo_worker_report(w, EO_STATE_RETRYING, "%s (SQLSTATE %s); retrying the batch in %ld ms",
							 edata->message, unpack_sql_state(edata->sqlerrcode), delay);
			FreeErrorData(edata);
		}
		if (eo_worker_wait(w, delay))
			return EO_RESTART_SETUP;
		delay = Min(delay * 2, (long) eo_retry_max_delay);
		if (eo_worker_load_config(w) && w->cfg->config_version != w->setup_version)
			return EO_RESTART_SETUP;
	}

	for (int i = 0; i < w->ledger.nparts; i++)
		w->ledger.parts[i].next = next[i];
	for (int i = 0; i < w->nrecs; i++)
		rd_kafka_message_destroy(w->recs[i].msg);
	w->nrecs = 0;
	if (!w->kafka_trouble)
		eo_slot_set_state(w->slot, EO_STATE_RUNNING, NULL);
	return EO_RESTART_NONE;
}

/*
 * The parallel decoder (decoder.c), under a backlog: take the current
 * batch's results if it was sent, then poll the next batch at once (never
 * waiting) and send it, to be decoded while this one is written.  A batch
 * whose results never came is decoded in-process by eo_batch_step.
 */
static EoRestart
eo_decode_ahead(EoWorker *w)
{
	EoRestart	r;

	if (w->sent)
		eo_decoder_collect(w);
	eo_decoder_backlog(w);
	if (!w->full || !eo_decoder_usable(w))
		return EO_RESTART_NONE;
	eo_batch_swap(w);
	r = eo_poll(w, false);
	if (r == EO_RESTART_NONE && w->nrecs > 0)
		w->sent = eo_decoder_send(w);
	eo_batch_swap(w);
	return r;
}

static EoRestart
eo_run(EoWorker *w)
{
	bool		idle = false;

	w->metadata_at = GetCurrentTimestamp();
	for (;;)
	{
		EoRestart	r;

		CHECK_FOR_INTERRUPTS();
		if (eo_worker_changed(w))
			return EO_RESTART_SETUP;
		r = eo_worker_check_brokers(w, idle);
		if (r != EO_RESTART_NONE)
			return r;

		if (w->ledger.nparts == 0)
		{
			/* nothing assigned: only errors wait in the queue */
			eo_kafka_serve_errors(w->rk);
			r = eo_worker_park(w, true);
			if (r != EO_RESTART_NONE)
				return r;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 2000L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}

		if (w->ahead.nrecs > 0)
		{
			eo_batch_swap(w);
			r = EO_RESTART_NONE;
		}
		else
			r = eo_poll(w, true);
		idle = w->nrecs == 0;
		if (r == EO_RESTART_NONE)
			r = eo_decode_ahead(w);
		if (r == EO_RESTART_NONE)
			r = eo_commit_batch(w);
		if (r != EO_RESTART_NONE)
			return r;
		eo_worker_publish(w, idle);
		r = eo_worker_park(w, idle);
		if (r != EO_RESTART_NONE)
			return r;
	}
}

/*
 * The batch's and the attempt's contexts, made anew (park.c deletes them to
 * give their kept blocks back).
 */
void
eo_worker_batch_contexts(EoWorker *w)
{
	/* large kept blocks: a batch's memory is reused, not returned to the kernel */
	w->batch_cxt = AllocSetContextCreate(w->worker_cxt, "eo_ingest batch",
										 1024 * 1024, 1024 * 1024, 8 * 1024 * 1024);
	/* not under batch_cxt: eo_poll resets that, which would delete this one */
	w->attempt_cxt = AllocSetContextCreate(w->worker_cxt, "eo_ingest attempt",
										   8 * 1024 * 1024, 1024 * 1024, 8 * 1024 * 1024);
	/* the batch polled ahead while the decoder decodes it (decoder.c) */
	w->ahead.cxt = AllocSetContextCreate(w->worker_cxt, "eo_ingest batch ahead",
										 1024 * 1024, 1024 * 1024, 8 * 1024 * 1024);
}

static void
eo_worker_exit(int code, Datum arg)
{
	eo_worker_close(&worker);
}

void
eo_worker_main(Datum main_arg)
{
	EoWorker   *w = &worker;
	ErrorContextCallback errcb;
	long		delay = 1000;

	memcpy(&w->args, MyBgworkerEntry->bgw_extra, sizeof(EoWorkerArgs));
	w->ledger.pipeline_id = w->args.pipeline_id;
	w->ledger.worker = w->args.worker;
	w->setup_version = -1;

#ifdef __GLIBC__

	/*
	 * Batches allocate and free the same large arrays over and over: keep
	 * them in the heap instead of mapping and faulting in fresh pages each
	 * time.  Memory stays bounded by the batch size and the Kafka queue.
	 * glibc only, and for the whole process, librdkafka's threads included:
	 * measured with bench/run.sh (1M records, six drains each way on the
	 * shared 2-core machine), worker CPU 5.68 s per million records with it
	 * against 6.21 without (medians 5.54 and 6.19), the same peak private
	 * memory (160 - 167 MB).
	 */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);
#endif

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(w->args.database, w->args.owner,
											  EO_BGW_OWNER_CONNECT_FLAGS);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("eo_ingest worker");

	w->worker_cxt = AllocSetContextCreate(TopMemoryContext, "eo_ingest worker", ALLOCSET_DEFAULT_SIZES);
	w->config_cxt = AllocSetContextCreate(w->worker_cxt, "eo_ingest config", ALLOCSET_DEFAULT_SIZES);
	w->setup_cxt = AllocSetContextCreate(w->worker_cxt, "eo_ingest setup", ALLOCSET_SMALL_SIZES);
	eo_worker_batch_contexts(w);
	MemoryContextSwitchTo(w->worker_cxt);

	errcb.callback = eo_worker_errcontext;
	errcb.arg = w;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	w->slot = eo_slot_acquire(&w->args);
	eo_wakeup_attach(w->slot);
	w->wake_seq = eo_wakeup_seq(w->slot);
	w->checked_at = GetCurrentTimestamp();
	before_shmem_exit(eo_worker_exit, (Datum) 0);

	for (;;)
	{
		EoRestart	r = eo_worker_setup(w);

		if (r == EO_RESTART_NONE)
		{
			delay = 1000;
			r = eo_run(w);
		}
		eo_worker_close(w);
		if (r == EO_RESTART_FAILED)
		{
			/* stay failed until the pipeline is altered, resumed or reset */
			(void) eo_worker_wait(w, -1);
			delay = 1000;
			eo_kafka_health_reset(&w->health);
		}
		else if (r == EO_RESTART_RETRY)
		{
			(void) eo_worker_wait(w, delay);
			delay = Min(delay * 2, (long) eo_retry_max_delay);
		}
	}
}
