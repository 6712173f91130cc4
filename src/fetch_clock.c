/*
 * fetch_clock.c
 *		When the brokers last answered the worker's fetches: how recent the
 *		high watermarks librdkafka keeps from fetch responses are.
 *
 * Every fetch response carries the high watermark of each partition
 * fetched, which librdkafka keeps (rd_kafka_get_watermark_offsets), but not
 * its age: during an outage it stays what it was.  librdkafka's interceptors
 * tell, on its broker threads, when a fetch request went out to a broker and
 * when its answer (or failure) came.  A broker thread sends its next fetch
 * only after it has handled the previous answer, so once a fetch is sent,
 * the watermarks of the previous answer are in place, and they are at least
 * as recent as the previous request's sending: the broker computed them
 * after it received that request.
 *
 * eo_fetch_clock_since() is the oldest of those times over the brokers the
 * consumer fetches from.  A broker whose last fetch failed, or that does not
 * answer, keeps it old: during an outage or with a hung broker the clock
 * stops.  A broker the consumer no longer fetches from (a partition's leader
 * moved) keeps it old too, until the worker has read the end offsets from
 * the brokers and calls eo_fetch_clock_prune().
 *
 * An idle worker sleeps until the clock moves (eo_fetch_clock_watch): its
 * lag is then vouched for as of a newer time, and it wakes to publish that,
 * once per fetch the broker held, rather than on a timer of its own.
 *
 * The callbacks run on librdkafka's threads: plain C and a mutex, no
 * PostgreSQL calls but SetLatch.  A worker has one consumer at a time and
 * one clock, which creating a consumer starts anew; the watcher (watcher.c)
 * has a clock of its own for each of its consumers (eo_fetch_clock_new).
 */
#include "postgres.h"

#include <pthread.h>
#include <time.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "watermarks.h"

/* Kafka protocol's ApiKey of Fetch */
#define EO_API_FETCH 1

/* The brokers one worker fetches from; beyond this the clock says nothing */
#define EO_CLOCK_BROKERS 32

typedef struct EoBrokerClock
{
	int32		broker;
	bool		in_flight;		/* a fetch is sent and not answered */
	bool		answered;		/* the last fetch sent was answered */
	TimestampTz sent;			/* when the last fetch was sent */
	TimestampTz as_of;			/* when the last handled answer's request was
								 * sent; 0 before the first */
} EoBrokerClock;

struct EoFetchClock
{
	EoBrokerClock clocks[EO_CLOCK_BROKERS];
	int			nclocks;
	bool		overflow;
	/* the process sleeps until the clock passes watched_since (eo_fetch_clock_watch) */
	bool		watching;
	TimestampTz watched_since;
};

/* one lock for every clock of the process: they are touched briefly */
static pthread_mutex_t clock_lock = PTHREAD_MUTEX_INITIALIZER;
/* the worker's */
static EoFetchClock worker_clock;

/* GetCurrentTimestamp without PostgreSQL: safe on librdkafka's threads */
static TimestampTz
eo_clock_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (TimestampTz) (ts.tv_sec -
						  ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) *
		USECS_PER_SEC + ts.tv_nsec / 1000;
}

/* The broker's clock, added if new; NULL when the table is full. */
static EoBrokerClock *
eo_clock_of(EoFetchClock *fc, int32 broker)
{
	for (int i = 0; i < fc->nclocks; i++)
		if (fc->clocks[i].broker == broker)
			return &fc->clocks[i];
	if (fc->nclocks == EO_CLOCK_BROKERS)
	{
		fc->overflow = true;
		return NULL;
	}
	memset(&fc->clocks[fc->nclocks], 0, sizeof(EoBrokerClock));
	fc->clocks[fc->nclocks].broker = broker;
	return &fc->clocks[fc->nclocks++];
}

/* eo_fetch_clock_since, with clock_lock held */
static TimestampTz
eo_clock_since_locked(EoFetchClock *fc)
{
	TimestampTz since = 0;

	if (fc->overflow)
		return 0;
	for (int i = 0; i < fc->nclocks; i++)
	{
		EoBrokerClock *c = &fc->clocks[i];

		if (c->as_of == 0 || (!c->in_flight && !c->answered))
			return 0;
		if (since == 0 || c->as_of < since)
			since = c->as_of;
	}
	return since;
}

/* A fetch request went out to the broker (sent), or its answer came (ok or not). */
static void
eo_clock_fetch(EoFetchClock *fc, int32 broker, bool sent, bool ok)
{
	EoBrokerClock *c;
	bool		wake = false;

	pthread_mutex_lock(&clock_lock);
	c = eo_clock_of(fc, broker);
	if (c != NULL && sent)
	{
		/* the previous answer is handled: its watermarks are in place */
		if (c->answered)
			c->as_of = c->sent;
		c->sent = eo_clock_now();
		c->in_flight = true;
		c->answered = false;
		if (fc->watching && eo_clock_since_locked(fc) > fc->watched_since)
		{
			fc->watching = false;
			wake = true;
		}
	}
	else if (c != NULL)
	{
		c->in_flight = false;
		c->answered = ok;
	}
	pthread_mutex_unlock(&clock_lock);
	if (wake)
		SetLatch(MyLatch);
}

static rd_kafka_resp_err_t
eo_clock_sent(rd_kafka_t *rk, int sockfd, const char *brokername, int32_t brokerid,
			  int16_t ApiKey, int16_t ApiVersion, int32_t CorrId, size_t size,
			  void *ic_opaque)
{
	if (ApiKey == EO_API_FETCH)
		eo_clock_fetch((EoFetchClock *) ic_opaque, brokerid, true, false);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t
eo_clock_received(rd_kafka_t *rk, int sockfd, const char *brokername, int32_t brokerid,
				  int16_t ApiKey, int16_t ApiVersion, int32_t CorrId, size_t size,
				  int64_t rtt, rd_kafka_resp_err_t err, void *ic_opaque)
{
	if (ApiKey == EO_API_FETCH)
		eo_clock_fetch((EoFetchClock *) ic_opaque, brokerid, false, err == RD_KAFKA_RESP_ERR_NO_ERROR);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* rd_kafka_new calls it: a new consumer, a new clock */
static rd_kafka_resp_err_t
eo_clock_on_new(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *ic_opaque,
				char *errstr, size_t errstr_size)
{
	EoFetchClock *fc = (EoFetchClock *) ic_opaque;
	rd_kafka_resp_err_t err;

	pthread_mutex_lock(&clock_lock);
	fc->nclocks = 0;
	fc->overflow = false;
	fc->watching = false;
	pthread_mutex_unlock(&clock_lock);
	err = rd_kafka_interceptor_add_on_request_sent(rk, "eo_ingest.fetch_clock",
												   eo_clock_sent, fc);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		err = rd_kafka_interceptor_add_on_response_received(rk, "eo_ingest.fetch_clock",
															 eo_clock_received, fc);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(errstr, errstr_size, "could not add the fetch clock: %s", rd_kafka_err2str(err));
	return err;
}

/*
 * A clock of its own for a consumer of the watcher, zeroed, in
 * TopMemoryContext; the consumer must be destroyed before it is freed.
 */
EoFetchClock *
eo_fetch_clock_new(void)
{
	return MemoryContextAllocZero(TopMemoryContext, sizeof(EoFetchClock));
}

/* Time the fetches of the consumer conf will create, on fc (NULL: the worker's). */
bool
eo_fetch_clock_attach(rd_kafka_conf_t *conf, EoFetchClock *fc, char *err, size_t errlen)
{
	rd_kafka_resp_err_t rc = rd_kafka_conf_interceptor_add_on_new(conf, "eo_ingest.fetch_clock",
																  eo_clock_on_new,
																  fc ? fc : &worker_clock);

	if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(err, errlen, "could not add the fetch clock: %s", rd_kafka_err2str(rc));
		return false;
	}
	return true;
}

/*
 * The time every broker fetched from has answered since (see above), or 0:
 * no answer yet, a failed fetch, or too many brokers.  A fetch a broker
 * holds (or never answers) leaves it at the answer before: the caller judges
 * its age.
 */
TimestampTz
eo_fetch_clock_since_of(EoFetchClock *fc)
{
	TimestampTz since;

	pthread_mutex_lock(&clock_lock);
	since = eo_clock_since_locked(fc);
	pthread_mutex_unlock(&clock_lock);
	return since;
}

TimestampTz
eo_fetch_clock_since(void)
{
	return eo_fetch_clock_since_of(&worker_clock);
}

/*
 * on: set the process latch as soon as the clock moves past where it is now
 * (once); off: not any more.  An idle worker watches while it sleeps.
 */
void
eo_fetch_clock_watch(bool on)
{
	pthread_mutex_lock(&clock_lock);
	worker_clock.watching = on;
	if (on)
		worker_clock.watched_since = eo_clock_since_locked(&worker_clock);
	pthread_mutex_unlock(&clock_lock);
}

/* Has every broker fetched from answered since EO_FETCH_FRESH_MS before now? */
bool
eo_fetch_clock_fresh(TimestampTz since, TimestampTz now)
{
	return since != 0 && now - since <= (int64) EO_FETCH_FRESH_MS * 1000;
}

/*
 * The brokers answered the worker's end offset read that began at read_at:
 * forget those no fetch went to in the quiet_ms before it (their partitions
 * moved, or they failed and others lead now), so that they stop holding the
 * clock back.
 */
void
eo_fetch_clock_prune(TimestampTz read_at, int quiet_ms)
{
	EoFetchClock *fc = &worker_clock;
	int			kept = 0;

	pthread_mutex_lock(&clock_lock);
	for (int i = 0; i < fc->nclocks; i++)
	{
		EoBrokerClock *c = &fc->clocks[i];

		if (!c->in_flight && read_at - c->sent > (int64) quiet_ms * 1000)
			continue;
		fc->clocks[kept++] = *c;
	}
	fc->nclocks = kept;
	pthread_mutex_unlock(&clock_lock);
}
