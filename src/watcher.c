/*
 * watcher.c
 *		The watcher: one process per server that watches the partitions of
 *		parked pipelines (park.c) and wakes their workers when anything
 *		arrives there.
 *
 * It connects to no database and writes nothing: the park records in
 * shared memory carry the brokers, the topic, the kafka_options and the
 * committed next offset of each partition.  It keeps one librdkafka
 * consumer per distinct configuration (brokers and kafka_options), built by
 * the workers' own eo_kafka_conf (read_committed, no auto commit, assign
 * only) with small fetches, and assigns each partition once, at the lowest
 * offset any parked worker reads it from.  A worker is woken (its record
 * marked EO_PARK_WOKEN, its latch set) when
 *	- a record arrives at or past its offset;
 *	- the partition's end offset, as the fetch responses tell it, or the
 *	  consumer's position moves off its offset (aborted transactions,
 *	  transaction markers, a topic re-created);
 *	- the topic's partition count changes (one metadata request per
 *	  consumer every EO_WATCH_METADATA_MS);
 *	- its consumer reports any error: the worker handles outages itself.
 * Then the worker sets up as it always does.  Workers whose partitions all
 * end at their offsets, as of a fetch clock (fetch_clock.c) the brokers
 * keep answering, get lag 0 published in their slot, stamped with that
 * clock, as an idle worker would publish it itself; when the fetches stop,
 * the stamp ages and pipeline_status shows lag NULL.
 *
 * The watcher beats in shared memory each round; parked workers set up
 * again when it stops beating or exits (its exit wakes them all).  It exits
 * after EO_WATCH_IDLE_EXIT_MS with nothing to watch; the launcher starts it
 * again when a worker asks to park.
 */
#include "postgres.h"

#include <pthread.h>

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "kafka.h"
#include "park.h"
#include "watermarks.h"

/*
 * How long the broker holds the watcher's fetch.  A record ends it at once,
 * but a partition newly watched is fetched only after the held fetch came
 * back: a record in the first moments of a park waits up to this long.  It
 * costs the broker two fetches a second for each consumer of the watcher
 * (where a hundred idle workers sent fifty).
 */
#define EO_WATCH_FETCH_WAIT			"500"
/*
 * A round at least this often: the heartbeat, and lag vouched for by a
 * fetch clock then at most a round and two fetch waits old.
 */
#define EO_WATCH_ROUND_MS			1000
#define EO_WATCH_IDLE_EXIT_MS		60000
#define EO_WATCH_METADATA_MS		30000
/* a metadata request may wait behind the fetch the broker holds */
#define EO_WATCH_METADATA_TIMEOUT_MS 2000
/* records handled per consumer and round, so that a busy topic starves nothing */
#define EO_WATCH_POLL_MAX			10000

typedef struct EoWatchConsumer
{
	char	   *key;			/* brokers, NUL, kafka_options */
	int			keylen;
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;
	EoFetchClock *clock;
	rd_kafka_topic_partition_list_t *assigned;
	int			nslots;
	bool		dirty;			/* its slots changed: assign again */
	bool		failed;			/* an error came (eo_watch_error_cb) */
	TimestampTz metadata_at;
} EoWatchConsumer;

/* What the watcher watches for one worker slot (same index) */
typedef struct EoWatched
{
	uint64		generation;		/* 0: nothing */
	bool		taken;			/* the record says EO_PARK_WATCHED */
	EoWatchConsumer *consumer;
	char	   *topic;
	int32		topic_partitions;
	int			n;
	int32		partitions[EO_PARK_PARTITIONS];
	int64		offsets[EO_PARK_PARTITIONS];
} EoWatched;

static EoWatched *watched = NULL;
static List *consumers = NIL;
static EoParkRecord *scratch = NULL;

/* consumer->failed is written on librdkafka's threads */
static pthread_mutex_t failed_lock = PTHREAD_MUTEX_INITIALIZER;

static void
eo_watch_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	EoWatchConsumer *c = (EoWatchConsumer *) opaque;

	pthread_mutex_lock(&failed_lock);
	c->failed = true;
	pthread_mutex_unlock(&failed_lock);
	SetLatch(MyLatch);
}

static void
eo_watch_consumer_destroy(EoWatchConsumer *c)
{
	/* a queue handle still held would make the destroy wait for ever */
	if (c->queue != NULL)
		eo_kafka_ready_disable(c->queue);
	if (c->rk != NULL)
		eo_kafka_destroy(c->rk);
	if (c->assigned != NULL)
		rd_kafka_topic_partition_list_destroy(c->assigned);
	/* only now: the consumer's threads wrote to it */
	if (c->clock != NULL)
		pfree(c->clock);
	pfree(c->key);
	pfree(c);
}

/* A librdkafka property the watcher sets over the pipeline's. */
static bool
eo_watch_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char		err[256];

	return rd_kafka_conf_set(conf, key, value, err, sizeof(err)) == RD_KAFKA_CONF_OK;
}

/*
 * A consumer for rec's brokers and kafka_options: an existing one, or a new
 * one; NULL if it could not be made (logged, secrets masked).
 */
static EoWatchConsumer *
eo_watch_consumer_for(const EoParkRecord *rec)
{
	const char *brokers = rec->conf;
	Jsonb	   *options = NULL;
	int			keylen = rec->brokers_len + rec->options_len;
	char	   *key = MemoryContextAlloc(TopMemoryContext, Max(keylen, 1));
	EoWatchConsumer *c;
	ListCell   *lc;
	rd_kafka_conf_t *conf;
	char		err[512];

	memcpy(key, rec->conf, rec->brokers_len);
	memcpy(key + rec->brokers_len, rec->conf + rec->brokers_len + rec->topic_len,
		   rec->options_len);
	foreach(lc, consumers)
	{
		c = (EoWatchConsumer *) lfirst(lc);
		if (c->keylen == keylen && memcmp(c->key, key, keylen) == 0)
		{
			pfree(key);
			return c;
		}
	}

	c = MemoryContextAllocZero(TopMemoryContext, sizeof(EoWatchConsumer));
	c->key = key;
	c->keylen = keylen;
	if (rec->options_len > 0)
	{
		/* palloc'd: a Jsonb must be aligned */
		options = palloc(rec->options_len);
		memcpy(options, key + rec->brokers_len, rec->options_len);
	}
	conf = eo_kafka_conf(brokers, options, false, "eo_ingest.watcher", err, sizeof(err));
	if (conf != NULL &&
		(!eo_watch_set(conf, "fetch.wait.max.ms", EO_WATCH_FETCH_WAIT) ||
	/* it only needs to see that something arrived */
		 !eo_watch_set(conf, "queued.max.messages.kbytes", "1024") ||
		 !eo_watch_set(conf, "queued.min.messages", "1000") ||
		 !eo_watch_set(conf, "max.partition.fetch.bytes", "65536")))
	{
		snprintf(err, sizeof(err), "could not set the watcher's fetch sizes");
		rd_kafka_conf_destroy(conf);
		conf = NULL;
	}
	if (conf != NULL)
	{
		rd_kafka_conf_set_error_cb(conf, eo_watch_error_cb);
		rd_kafka_conf_set_opaque(conf, c);
		c->clock = eo_fetch_clock_new();
		if (!eo_fetch_clock_attach(conf, c->clock, err, sizeof(err)))
			rd_kafka_conf_destroy(conf);
		else
			c->rk = eo_kafka_consumer(conf, err, sizeof(err));
	}
	if (c->rk != NULL)
		c->queue = eo_kafka_ready_enable(c->rk, err, sizeof(err));
	if (c->queue == NULL)
	{
		char	   *clean = eo_kafka_scrub(options, err);

		ereport(LOG, (errmsg("eo_ingest watcher could not create a Kafka consumer: %s", clean)));
		pfree(clean);
		if (options != NULL)
			pfree(options);
		eo_watch_consumer_destroy(c);
		return NULL;
	}
	if (options != NULL)
		pfree(options);
	c->metadata_at = GetCurrentTimestamp();
	consumers = lappend(consumers, c);
	return c;
}

/* Stop watching slot i. */
static void
eo_watch_drop(int i)
{
	EoWatched  *s = &watched[i];

	if (s->consumer != NULL)
	{
		s->consumer->nslots--;
		s->consumer->dirty = true;
	}
	if (s->topic != NULL)
		pfree(s->topic);
	memset(s, 0, offsetof(EoWatched, partitions));
}

/* Wake slot i's worker (if its record is still the one watched) and drop it. */
static void
eo_watch_wake(int i)
{
	EoParkRecord *rec = &eo_park->records[i];

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	if (rec->generation == watched[i].generation &&
		(rec->state == EO_PARK_ASKED || rec->state == EO_PARK_WATCHED))
	{
		rec->state = EO_PARK_WOKEN;
		if (eo_shared->slots[i].latch != NULL)
			SetLatch(eo_shared->slots[i].latch);
	}
	LWLockRelease(eo_shared->lock);
	eo_watch_drop(i);
}

static void
eo_watch_wake_all(EoWatchConsumer *c)
{
	for (int i = 0; i < eo_max_workers; i++)
		if (watched[i].consumer == c)
			eo_watch_wake(i);
}

/* Take in slot i's new park record. */
static void
eo_watch_take(int i)
{
	EoParkRecord *rec = &eo_park->records[i];
	EoWatched  *s = &watched[i];
	EoWatchConsumer *c;

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	if (rec->state != EO_PARK_ASKED)
	{
		LWLockRelease(eo_shared->lock);
		return;
	}
	memcpy(scratch, rec, offsetof(EoParkRecord, conf) + rec->brokers_len +
		   rec->topic_len + rec->options_len);
	LWLockRelease(eo_shared->lock);

	s->generation = scratch->generation;
	c = eo_watch_consumer_for(scratch);
	if (c == NULL)
	{
		eo_watch_wake(i);
		return;
	}
	s->consumer = c;
	s->topic = MemoryContextStrdup(TopMemoryContext, scratch->conf + scratch->brokers_len);
	s->topic_partitions = scratch->topic_partitions;
	s->n = scratch->npartitions;
	memcpy(s->partitions, scratch->partitions, sizeof(int32) * s->n);
	memcpy(s->offsets, scratch->offsets, sizeof(int64) * s->n);
	c->nslots++;
	c->dirty = true;
}

/* Follow the park records: new ones, withdrawn ones. */
static void
eo_watch_scan(void)
{
	EoParkState *states = palloc(sizeof(EoParkState) * eo_max_workers);
	uint64	   *generations = palloc(sizeof(uint64) * eo_max_workers);

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	for (int i = 0; i < eo_max_workers; i++)
	{
		states[i] = eo_park->records[i].state;
		generations[i] = eo_park->records[i].generation;
	}
	LWLockRelease(eo_shared->lock);
	for (int i = 0; i < eo_max_workers; i++)
	{
		bool		parked = states[i] == EO_PARK_ASKED || states[i] == EO_PARK_WATCHED;

		if (watched[i].generation != 0 && (!parked || generations[i] != watched[i].generation))
			eo_watch_drop(i);
		if (states[i] == EO_PARK_ASKED && watched[i].generation == 0)
			eo_watch_take(i);
	}
	pfree(states);
	pfree(generations);
}

/*
 * Assign each watched partition once, at the lowest offset watched.  The
 * changes are incremental: a partition that stays keeps its fetch, so that
 * a record for it still ends the fetch the broker holds.  (A full assign
 * restarted every partition, and the consumer sent no new fetch before the
 * broker gave back the one it held: parked pipelines were blind for up to a
 * fetch wait each time another one parked.)
 */
static void
eo_watch_assign(EoWatchConsumer *c)
{
	rd_kafka_topic_partition_list_t *want = rd_kafka_topic_partition_list_new(0);
	rd_kafka_topic_partition_list_t *add = rd_kafka_topic_partition_list_new(0);
	rd_kafka_topic_partition_list_t *drop = rd_kafka_topic_partition_list_new(0);
	rd_kafka_error_t *error = NULL;

	for (int i = 0; i < eo_max_workers; i++)
	{
		EoWatched  *s = &watched[i];

		if (s->consumer != c)
			continue;
		for (int k = 0; k < s->n; k++)
		{
			rd_kafka_topic_partition_t *p =
				rd_kafka_topic_partition_list_find(want, s->topic, s->partitions[k]);

			if (p == NULL)
				rd_kafka_topic_partition_list_add(want, s->topic, s->partitions[k])->offset =
					s->offsets[k];
			else
				p->offset = Min(p->offset, s->offsets[k]);
		}
	}
	/* gone, or wanted from further back: out (and in again below) */
	for (int i = 0; c->assigned != NULL && i < c->assigned->cnt; i++)
	{
		rd_kafka_topic_partition_t *had = &c->assigned->elems[i];
		rd_kafka_topic_partition_t *p =
			rd_kafka_topic_partition_list_find(want, had->topic, had->partition);

		if (p == NULL || p->offset < had->offset)
			rd_kafka_topic_partition_list_add(drop, had->topic, had->partition);
	}
	for (int i = 0; i < want->cnt; i++)
	{
		rd_kafka_topic_partition_t *p = &want->elems[i];
		rd_kafka_topic_partition_t *had = c->assigned == NULL ? NULL :
			rd_kafka_topic_partition_list_find(c->assigned, p->topic, p->partition);

		if (had == NULL || p->offset < had->offset)
			rd_kafka_topic_partition_list_add(add, p->topic, p->partition)->offset = p->offset;
		else
			p->offset = had->offset;
	}
	if (drop->cnt > 0)
		error = rd_kafka_incremental_unassign(c->rk, drop);
	if (error == NULL && add->cnt > 0)
		error = rd_kafka_incremental_assign(c->rk, add);
	rd_kafka_topic_partition_list_destroy(add);
	rd_kafka_topic_partition_list_destroy(drop);
	if (c->assigned != NULL)
		rd_kafka_topic_partition_list_destroy(c->assigned);
	c->assigned = want;
	c->dirty = false;
	if (error != NULL)
	{
		rd_kafka_error_destroy(error);
		eo_watch_wake_all(c);
	}
}

/* Tell the workers whose records are watched now. */
static void
eo_watch_ack(void)
{
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoParkRecord *rec = &eo_park->records[i];

		if (watched[i].generation == 0 || watched[i].taken ||
			rec->generation != watched[i].generation || rec->state != EO_PARK_ASKED)
			continue;
		rec->state = EO_PARK_WATCHED;
		rec->watcher_pid = MyProcPid;
		watched[i].taken = true;
	}
	LWLockRelease(eo_shared->lock);
}

/* Records that arrived: wake the workers parked at or before them. */
static void
eo_watch_poll(EoWatchConsumer *c)
{
	rd_kafka_message_t *msg;
	bool		failed = false;

	for (int n = 0; n < EO_WATCH_POLL_MAX && (msg = rd_kafka_consumer_poll(c->rk, 0)) != NULL; n++)
	{
		if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
			failed = true;
		else
		{
			const char *topic = rd_kafka_topic_name(msg->rkt);

			for (int i = 0; i < eo_max_workers; i++)
			{
				EoWatched  *s = &watched[i];

				if (s->consumer != c || strcmp(s->topic, topic) != 0)
					continue;
				for (int k = 0; k < s->n; k++)
					if (s->partitions[k] == msg->partition && s->offsets[k] <= msg->offset)
					{
						eo_watch_wake(i);
						break;
					}
			}
		}
		rd_kafka_message_destroy(msg);
	}
	pthread_mutex_lock(&failed_lock);
	failed |= c->failed;
	c->failed = false;
	pthread_mutex_unlock(&failed_lock);
	if (failed)
	{
		ereport(DEBUG1, (errmsg("eo_ingest watcher: Kafka error; waking %d pipeline workers",
								c->nslots)));
		eo_watch_wake_all(c);
	}
}

/* Publish lag 0 as of since in slot i, as its worker would. */
static void
eo_watch_vouch(int i, TimestampTz since)
{
	EoWatched  *s = &watched[i];
	EoParkRecord *rec = &eo_park->records[i];
	EoWorkerSlot *slot = &eo_shared->slots[i];

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	if (rec->generation == s->generation && rec->state == EO_PARK_WATCHED &&
		since > slot->watermarks_at)
	{
		slot->npartitions = s->n;
		for (int k = 0; k < s->n; k++)
		{
			slot->partitions[k] = s->partitions[k];
			slot->high_watermarks[k] = s->offsets[k];
		}
		slot->lag = 0;
		slot->watermarks_at = since;
	}
	LWLockRelease(eo_shared->lock);
}

/*
 * Compare each watched partition's end offset (from the fetch responses)
 * and the consumer's position with the worker's offset: wake the worker if
 * either moved off it, else vouch for its lag while the fetches are
 * answered.
 */
static void
eo_watch_check(EoWatchConsumer *c, TimestampTz now)
{
	TimestampTz since = eo_fetch_clock_since_of(c->clock);
	bool		fresh = eo_fetch_clock_fresh(since, now);
	rd_kafka_topic_partition_list_t *pos = NULL;

	if (c->assigned != NULL && c->assigned->cnt > 0)
	{
		pos = rd_kafka_topic_partition_list_copy(c->assigned);
		if (rd_kafka_position(c->rk, pos) != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			rd_kafka_topic_partition_list_destroy(pos);
			pos = NULL;
		}
	}
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoWatched  *s = &watched[i];
		bool		known = s->n > 0;
		bool		moved = false;

		if (s->consumer != c)
			continue;
		for (int k = 0; k < s->n && !moved; k++)
		{
			int64_t		lo,
						hi;
			rd_kafka_topic_partition_t *p;

			if (rd_kafka_get_watermark_offsets(c->rk, s->topic, s->partitions[k], &lo, &hi) !=
				RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0)
				known = false;
			else if (hi > s->offsets[k])
				moved = true;
			else if (hi < s->offsets[k])
				known = false;	/* not fetched since it was assigned; an end
								 * below the offset fails the fetch */
			p = pos ? rd_kafka_topic_partition_list_find(pos, s->topic, s->partitions[k]) : NULL;
			if (p != NULL && p->offset > s->offsets[k])
				moved = true;
		}
		if (moved)
			eo_watch_wake(i);
		else if (known && fresh && s->taken)
			eo_watch_vouch(i, since);
	}
	if (pos != NULL)
		rd_kafka_topic_partition_list_destroy(pos);
}

/* Every EO_WATCH_METADATA_MS, one request: did a watched topic change? */
static void
eo_watch_metadata(EoWatchConsumer *c, TimestampTz now)
{
	const struct rd_kafka_metadata *md = NULL;

	if (!TimestampDifferenceExceeds(c->metadata_at, now, EO_WATCH_METADATA_MS))
		return;
	c->metadata_at = now;
	if (rd_kafka_metadata(c->rk, 1, NULL, &md, EO_WATCH_METADATA_TIMEOUT_MS) !=
		RD_KAFKA_RESP_ERR_NO_ERROR)
		return;					/* the fetch clock and the error callback tell outages */
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoWatched  *s = &watched[i];
		int			count = -1;

		if (s->consumer != c)
			continue;
		for (int t = 0; t < md->topic_cnt; t++)
			if (strcmp(md->topics[t].topic, s->topic) == 0 &&
				md->topics[t].err == RD_KAFKA_RESP_ERR_NO_ERROR)
				count = md->topics[t].partition_cnt;
		if (count != s->topic_partitions)
			eo_watch_wake(i);
	}
	rd_kafka_metadata_destroy(md);
}

/*
 * On the way out, even by an error: wake every parked worker, since no one
 * watches for them now, then destroy the consumers.
 */
static void
eo_watcher_detach(int code, Datum arg)
{
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	if (eo_park->watcher_pid == MyProcPid)
	{
		eo_park->watcher_pid = 0;
		eo_park->watcher_latch = NULL;
	}
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoParkRecord *rec = &eo_park->records[i];

		if (rec->state == EO_PARK_ASKED || rec->state == EO_PARK_WATCHED)
		{
			rec->state = EO_PARK_WOKEN;
			if (eo_shared->slots[i].latch != NULL)
				SetLatch(eo_shared->slots[i].latch);
		}
	}
	LWLockRelease(eo_shared->lock);
	while (consumers != NIL)
	{
		EoWatchConsumer *c = (EoWatchConsumer *) linitial(consumers);

		consumers = list_delete_first(consumers);
		eo_watch_consumer_destroy(c);
	}
}

/* Nothing watched for long enough, nothing asked: leave. */
static bool
eo_watcher_may_exit(void)
{
	bool		asked = false;

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < eo_max_workers && !asked; i++)
		asked = eo_park->records[i].state == EO_PARK_ASKED;
	if (!asked)
	{
		eo_park->watcher_wanted = false;
		eo_park->watcher_pid = 0;
		eo_park->watcher_latch = NULL;
	}
	LWLockRelease(eo_shared->lock);
	return !asked;
}

void
eo_watcher_main(Datum arg)
{
	TimestampTz idle_since = GetCurrentTimestamp();

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	watched = MemoryContextAllocZero(TopMemoryContext, sizeof(EoWatched) * eo_max_workers);
	scratch = MemoryContextAlloc(TopMemoryContext, sizeof(EoParkRecord));

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	if (eo_park->watcher_pid != 0)
	{
		LWLockRelease(eo_shared->lock);
		proc_exit(0);
	}
	eo_park->watcher_pid = MyProcPid;
	eo_park->watcher_latch = MyLatch;
	eo_park->heartbeat = GetCurrentTimestamp();
	LWLockRelease(eo_shared->lock);
	before_shmem_exit(eo_watcher_detach, (Datum) 0);
	ereport(LOG, (errmsg("eo_ingest watcher started")));

	for (;;)
	{
		TimestampTz now;
		ListCell   *lc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		now = GetCurrentTimestamp();
		LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
		eo_park->heartbeat = now;
		LWLockRelease(eo_shared->lock);

		eo_watch_scan();
		foreach(lc, consumers)
		{
			EoWatchConsumer *c = (EoWatchConsumer *) lfirst(lc);

			eo_watch_poll(c);
			eo_watch_check(c, now);
			eo_watch_metadata(c, now);
		}
		foreach(lc, consumers)
		{
			EoWatchConsumer *c = (EoWatchConsumer *) lfirst(lc);

			if (c->nslots == 0)
			{
				consumers = foreach_delete_current(consumers, lc);
				eo_watch_consumer_destroy(c);
			}
			else if (c->dirty)
				eo_watch_assign(c);
		}
		eo_watch_ack();

		if (consumers != NIL)
			idle_since = now;
		else if (TimestampDifferenceExceeds(idle_since, now, EO_WATCH_IDLE_EXIT_MS) &&
				 eo_watcher_may_exit())
			proc_exit(0);

		/* wake when a record or an error comes, a park record changes, or a round is due */
		if (consumers == NIL)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 EO_WATCH_ROUND_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		else
			(void) eo_kafka_ready_wait(EO_WATCH_ROUND_MS);
	}
}
