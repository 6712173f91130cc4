/*
 * park.c
 *		Parking: a worker whose pipeline is idle and caught up hands the
 *		watching of its partitions to the one watcher process (watcher.c),
 *		destroys its librdkafka consumer and sleeps on its latch.
 *
 * An idle librdkafka consumer costs its process two threads that wake
 * several times a second, and the broker a fetch every fetch.wait.max.ms;
 * a hundred idle pipelines cost more in consumers than in anything else
 * (README, "Idle pipelines").  The watcher serves every parked pipeline with
 * one consumer per distinct Kafka configuration.
 *
 * The watcher writes nothing and commits nothing: it only says "set up
 * again".  Unparking is the worker's normal setup (configuration, offsets
 * from the catalog, the partition claim, a new consumer), so exactly-once
 * rests on the same code as before.  The worker parks only when caught up
 * (nothing polled, lag known 0, no Kafka trouble), with its committed next
 * offsets, and unparks when the watcher wakes it, when its pipeline
 * changes, or when the watcher does not take its record in within
 * EO_PARK_ACK_MS or stops beating: it never waits on a watcher that died.
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "guard.h"
#include "park.h"
#include "watermarks.h"
#include "worker.h"

EoParkShared *eo_park = NULL;
int			eo_park_after = 30000;

void
eo_park_init(void)
{
	eo_shmem_add("eo_ingest parking",
				 add_size(offsetof(EoParkShared, records),
						  mul_size(sizeof(EoParkRecord), eo_max_workers)),
				 (void **) &eo_park);
}

/* The slot is taken or given back: no record (eo_shared->lock held). */
void
eo_park_forget_locked(int slot_index)
{
	eo_park->records[slot_index].state = EO_PARK_NONE;
	if (eo_park->watcher_latch != NULL)
		SetLatch(eo_park->watcher_latch);
}

/* For the launcher: is the watcher wanted and may it be started now? */
bool
eo_park_watcher_due(void)
{
	bool		due;

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	due = eo_park->watcher_wanted && eo_park->watcher_pid == 0 &&
		GetCurrentTimestamp() >= eo_park->unavailable_until;
	LWLockRelease(eo_shared->lock);
	return due;
}

/*
 * For the launcher: the watcher could not be started.  The workers waiting
 * for it set up again at once, and none parks for a minute.
 */
void
eo_park_watcher_unavailable(void)
{
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	eo_park->unavailable_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60000);
	eo_park->watcher_wanted = false;
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoParkRecord *rec = &eo_park->records[i];

		if (rec->state == EO_PARK_ASKED)
		{
			rec->state = EO_PARK_WOKEN;
			if (eo_shared->slots[i].latch != NULL)
				SetLatch(eo_shared->slots[i].latch);
		}
	}
	LWLockRelease(eo_shared->lock);
}

/*
 * Is the worker caught up, as of a watermark read recent enough that the
 * watcher, starting from the committed offsets, cannot miss anything?
 */
static bool
eo_park_caught_up(EoWorker *w, TimestampTz now)
{
	TimestampTz at;

	if (w->kafka_trouble || w->nrecs > 0 || eo_kafka_error_noted())
		return false;
	for (int i = 0; i < w->ledger.nparts; i++)
		if (w->ledger.parts[i].next < 0 ||
			w->ledger.parts[i].high_watermark != w->ledger.parts[i].next)
			return false;
	if (w->ledger.nparts == 0)
		return true;
	LWLockAcquire(eo_shared->lock, LW_SHARED);
	at = w->slot->watermarks_at;
	LWLockRelease(eo_shared->lock);
	return eo_fetch_clock_fresh(at, now);
}

/* The park record, filled in rec; false if it does not fit. */
static bool
eo_park_record(EoWorker *w, EoParkRecord *rec)
{
	Jsonb	   *options = w->cfg->kafka_options;
	int			blen = strlen(w->cfg->brokers) + 1;
	int			tlen = strlen(w->cfg->topic) + 1;
	int			olen = options != NULL ? VARSIZE(options) : 0;

	if (w->ledger.nparts > EO_PARK_PARTITIONS || blen + tlen + olen > EO_PARK_CONF)
		return false;
	/* options that load code stay in the worker, whose owner vouches for them */
	if (options != NULL && eo_guard_code_option(options) != NULL)
		return false;
	memset(rec, 0, offsetof(EoParkRecord, conf));
	rec->topic_partitions = w->topic_partitions;
	rec->npartitions = w->ledger.nparts;
	for (int i = 0; i < w->ledger.nparts; i++)
	{
		rec->partitions[i] = w->ledger.parts[i].partition;
		rec->offsets[i] = w->ledger.parts[i].next;
	}
	rec->brokers_len = blen;
	rec->topic_len = tlen;
	rec->options_len = olen;
	memcpy(rec->conf, w->cfg->brokers, blen);
	memcpy(rec->conf + blen, w->cfg->topic, tlen);
	if (olen > 0)
		memcpy(rec->conf + blen + tlen, options, olen);
	return true;
}

/* Hand the record to the watcher; its generation, or 0 if it cannot be. */
static uint64
eo_park_ask(EoWorker *w, const EoParkRecord *rec)
{
	int			index = w->slot - eo_shared->slots;
	EoParkRecord *dst = &eo_park->records[index];
	uint64		generation = 0;
	Latch	   *latch;

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	if (GetCurrentTimestamp() >= eo_park->unavailable_until)
	{
		memcpy(dst, rec, offsetof(EoParkRecord, conf) + rec->brokers_len +
			   rec->topic_len + rec->options_len);
		generation = ++eo_park->generation;
		dst->generation = generation;
		dst->asked_at = GetCurrentTimestamp();
		dst->state = EO_PARK_ASKED;
		eo_park->watcher_wanted = true;
		latch = eo_park->watcher_latch != NULL ? eo_park->watcher_latch :
			eo_shared->launcher_latch;
		if (latch != NULL)
			SetLatch(latch);
	}
	LWLockRelease(eo_shared->lock);
	return generation;
}

/*
 * Why the parked worker must set up again, or NULL: stay parked.
 * *watcher_failed: because of the watcher.
 */
static const char *
eo_park_check(EoWorker *w, uint64 generation, TimestampTz now, bool *watcher_failed)
{
	EoParkRecord *rec = &eo_park->records[w->slot - eo_shared->slots];
	const char *why = NULL;

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	if (rec->generation != generation || rec->state == EO_PARK_NONE)
		why = "its park record was withdrawn";
	else if (rec->state == EO_PARK_WOKEN)
		why = "the watcher woke it";
	else if (rec->state == EO_PARK_ASKED &&
			 TimestampDifferenceExceeds(rec->asked_at, now, EO_PARK_ACK_MS))
		why = "the watcher did not take it in";
	else if (rec->state == EO_PARK_WATCHED &&
			 (eo_park->watcher_pid != rec->watcher_pid ||
			  TimestampDifferenceExceeds(eo_park->heartbeat, now, EO_PARK_HEARTBEAT_MS)))
		why = "the watcher is gone";
	*watcher_failed = why != NULL && (rec->state == EO_PARK_ASKED || rec->state == EO_PARK_WATCHED);
	LWLockRelease(eo_shared->lock);
	return why;
}

/* Withdraw the record; the watcher drops its partitions. */
static void
eo_park_leave(EoWorker *w, uint64 generation)
{
	EoParkRecord *rec = &eo_park->records[w->slot - eo_shared->slots];

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	if (rec->generation == generation)
	{
		rec->state = EO_PARK_NONE;
		if (eo_park->watcher_latch != NULL)
			SetLatch(eo_park->watcher_latch);
	}
	LWLockRelease(eo_shared->lock);
}

/*
 * After each round of eo_run's housekeeping: park if the pipeline has been
 * idle and caught up for eo_ingest.park_after.  Returns EO_RESTART_NONE if
 * the worker did not park; else, once unparked, EO_RESTART_SETUP (the
 * consumer is gone).
 */
EoRestart
eo_worker_park(EoWorker *w, bool idle)
{
	TimestampTz now = GetCurrentTimestamp();
	EoParkRecord *rec;
	uint64		generation;
	const char *why = NULL;
	bool		watcher_failed = false;
	EoRestart	r;

	if (!idle || eo_park_after <= 0 || !eo_park_caught_up(w, now))
	{
		w->idle_since = 0;
		return EO_RESTART_NONE;
	}
	if (w->idle_since == 0)
		w->idle_since = now;
	if (!TimestampDifferenceExceeds(w->idle_since, now, eo_park_after) || now < w->park_retry_at)
		return EO_RESTART_NONE;

	/*
	 * The topic's partition count as of now: the watcher asks again only
	 * every 30 s, which must not add up with the worker's own 30 s to a
	 * minute before a grown topic is seen.
	 */
	w->metadata_at = 0;
	r = eo_worker_check_brokers(w, true);
	if (r != EO_RESTART_NONE || w->kafka_trouble)
		return r;

	rec = palloc(sizeof(EoParkRecord));
	if (!eo_park_record(w, rec))
	{
		/* too many partitions, too long a configuration: until the next setup */
		w->park_retry_at = DT_NOEND;
		pfree(rec);
		return EO_RESTART_NONE;
	}
	generation = eo_park_ask(w, rec);
	pfree(rec);
	if (generation == 0)
	{
		w->park_retry_at = TimestampTzPlusMilliseconds(now, eo_park_after);
		return EO_RESTART_NONE;
	}

	/*
	 * The consumer's threads and fetches stop; its memory goes back, and so
	 * does the configuration's: the setup that ends the park builds both
	 * again.
	 */
	eo_worker_close(w);
	eo_worker_forget_config(w);
	if (w->recs != NULL)
	{
		pfree(w->recs);
		w->recs = NULL;
		w->recs_cap = 0;
	}
	if (w->ahead.recs != NULL)
	{
		pfree(w->ahead.recs);
		w->ahead.recs = NULL;
		w->ahead.recs_cap = 0;
	}
	/* their kept blocks too: deleted, given back, made anew untouched */
	MemoryContextSwitchTo(w->worker_cxt);
	MemoryContextDelete(w->batch_cxt);
	MemoryContextDelete(w->attempt_cxt);
	MemoryContextDelete(w->ahead.cxt);
	w->next = NULL;
	w->ahead.next = NULL;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
	eo_worker_batch_contexts(w);
	ereport(DEBUG1, (errmsg("eo_ingest worker parked")));

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (eo_worker_changed(w))
			why = "its pipeline changed";
		else if (eo_park_after <= 0)
			why = "eo_ingest.park_after is 0";
		else
			why = eo_park_check(w, generation, GetCurrentTimestamp(), &watcher_failed);
		if (why != NULL)
			break;
		/* pg_stat_activity.query; again after each look at the pipeline's row */
		pgstat_report_activity(STATE_IDLE, "parked");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 EO_PARK_CHECK_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	eo_park_leave(w, generation);
	pgstat_report_activity(STATE_IDLE, NULL);
	ereport(DEBUG1, (errmsg("eo_ingest worker unparked: %s", why)));
	/* a watcher that failed this worker: not again for a while */
	if (watcher_failed)
		w->park_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), eo_park_after);
	w->idle_since = 0;
	return EO_RESTART_SETUP;
}
