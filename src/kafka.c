/*
 * kafka.c
 *		librdkafka configuration, metadata and offset look-ups, connection
 *		health and the grace period.
 *
 * Nothing here raises an error while a librdkafka handle is alive without
 * destroying it first; the worker gets error strings, not ereports, so that
 * it can report "retrying" and keep its handle.  The only exception is
 * CHECK_FOR_INTERRUPTS between the short slices every blocking look-up is cut
 * into: SIGTERM and query cancel must not wait for a broker that is down, and
 * callers destroy their handle on the way out (the worker's exit hook, the
 * SQL function's PG_FINALLY).
 */
#include "postgres.h"

#include <pthread.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "eo_ingest.h"
#include "guard.h"
#include "kafka.h"
#include "watermarks.h"

bool
eo_kafka_secret_key(const char *key)
{
	size_t		len = strlen(key);

	if (len >= 8 && pg_strcasecmp(key + len - 8, "password") == 0)
		return true;
	if (len >= 6 && pg_strcasecmp(key + len - 6, "secret") == 0)
		return true;
	return pg_strcasecmp(key, "sasl.oauthbearer.config") == 0 ||
		pg_strcasecmp(key, "ssl.key.pem") == 0;
}

/*
 * Authentication and TLS failures: the broker answered and refused these
 * credentials or certificates, which trying again will not change.
 */
bool
eo_kafka_config_error(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
		err == RD_KAFKA_RESP_ERR__SSL ||
		err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
		err == RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM ||
		err == RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE;
}

/*
 * The most telling client-level error librdkafka reported since the last
 * eo_kafka_take_error: refused credentials or certificates first, then
 * anything else.  The callback may run on a librdkafka thread: plain C and a
 * mutex, no PostgreSQL calls.
 */
static pthread_mutex_t eo_error_lock = PTHREAD_MUTEX_INITIALIZER;
static rd_kafka_resp_err_t eo_error_code = RD_KAFKA_RESP_ERR_NO_ERROR;
static char eo_error_text[512];

static void
eo_note_error(rd_kafka_resp_err_t err, const char *reason)
{
	pthread_mutex_lock(&eo_error_lock);
	if (eo_error_code == RD_KAFKA_RESP_ERR_NO_ERROR ||
		(eo_kafka_config_error(err) && !eo_kafka_config_error(eo_error_code)))
	{
		eo_error_code = err;
		snprintf(eo_error_text, sizeof(eo_error_text), "%s",
				 reason ? reason : rd_kafka_err2str(err));
	}
	pthread_mutex_unlock(&eo_error_lock);
}

/*
 * Also sets the process latch: a worker waiting for its brokers reacts at
 * once.  SetLatch is the one PostgreSQL call safe on any thread.
 */
static void
eo_kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	eo_note_error((rd_kafka_resp_err_t) err, reason);
	SetLatch(MyLatch);
}

/* Returns and forgets the noted error; RD_KAFKA_RESP_ERR_NO_ERROR if none. */
rd_kafka_resp_err_t
eo_kafka_take_error(char *err, size_t errlen)
{
	rd_kafka_resp_err_t code;

	pthread_mutex_lock(&eo_error_lock);
	code = eo_error_code;
	snprintf(err, errlen, "%s", code != RD_KAFKA_RESP_ERR_NO_ERROR ? eo_error_text : "");
	eo_error_code = RD_KAFKA_RESP_ERR_NO_ERROR;
	pthread_mutex_unlock(&eo_error_lock);
	return code;
}

/* Is an error noted that eo_kafka_take_error has not taken yet? */
bool
eo_kafka_error_noted(void)
{
	bool		noted;

	pthread_mutex_lock(&eo_error_lock);
	noted = eo_error_code != RD_KAFKA_RESP_ERR_NO_ERROR;
	pthread_mutex_unlock(&eo_error_lock);
	return noted;
}

/*
 * Serve the consumer's queue so that queued errors reach the callback.  Only
 * for a consumer with nothing assigned: any record polled here is dropped.
 */
void
eo_kafka_serve_errors(rd_kafka_t *rk)
{
	rd_kafka_message_t *msg;

	while ((msg = rd_kafka_consumer_poll(rk, 0)) != NULL)
	{
		if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
			eo_note_error(msg->err, rd_kafka_message_errstr(msg));
		rd_kafka_message_destroy(msg);
	}
}

/*
 * Close a consumer without leaving its group: eo_ingest only assigns
 * partitions and never commits to Kafka, so there is nothing to hand over,
 * and a consumer close waits for a coordinator that may be down, stalling a
 * fast shutdown.
 */
void
eo_kafka_destroy(rd_kafka_t *rk)
{
	rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

/*
 * Connection health.  Until a broker answers, trouble counts against
 * eo_ingest.grace_period from unreachable_since; after that it is an
 * outage, retried for ever.  A new process of a pipeline with stored
 * offsets starts as reached: an outage across a server restart stays one.
 */
void
eo_kafka_health_track(EoKafkaHealth *h, const char *brokers, Jsonb *options,
					  bool has_offsets, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	char	   *text = JsonbToCString(NULL, &options->root, VARSIZE(options));
	char	   *key = psprintf("%s %s", brokers, text);

	pfree(text);
	if (h->key == NULL || strcmp(key, h->key) != 0)
	{
		/* new brokers or options: a new grace period */
		h->reached = h->key == NULL && has_offsets;
		if (h->key != NULL)
			pfree(h->key);
		h->key = key;
		h->unreachable_since = 0;
	}
	else
		pfree(key);
	if (!h->reached && h->unreachable_since == 0)
		h->unreachable_since = GetCurrentTimestamp();
	MemoryContextSwitchTo(old);
}

/* A broker answered (eo_kafka_metadata_error was a broker's answer). */
void
eo_kafka_health_reached(EoKafkaHealth *h)
{
	h->reached = true;
	h->unreachable_since = 0;
}

/* A resumed pipeline gets a new grace period. */
void
eo_kafka_health_reset(EoKafkaHealth *h)
{
	h->reached = false;
	h->unreachable_since = 0;
}

/*
 * No broker answered (what says how it failed).  Fills msg with what to
 * report; returns true when the pipeline must fail: credentials or
 * certificates refused, or no broker reached in eo_ingest.grace_period since
 * the start.  Anything else is an outage to wait out.
 */
bool
eo_kafka_health_trouble(EoKafkaHealth *h, const char *brokers, const char *what,
						char *msg, size_t msglen)
{
	char		kerr[512];
	rd_kafka_resp_err_t code = eo_kafka_take_error(kerr, sizeof(kerr));

	if (eo_kafka_config_error(code))
	{
		snprintf(msg, msglen,
				 "Kafka refused the connection: %s; correct kafka_options with eo_ingest.alter_pipeline, "
				 "or call eo_ingest.resume_pipeline to try again", kerr);
		return true;
	}
	if (!h->reached && h->unreachable_since != 0 &&
		TimestampDifferenceExceeds(h->unreachable_since, GetCurrentTimestamp(), eo_grace_period))
	{
		snprintf(msg, msglen,
				 "no broker of \"%s\" answered in %d s: %s; correct brokers or kafka_options with "
				 "eo_ingest.alter_pipeline, or call eo_ingest.resume_pipeline to try again",
				 brokers, eo_grace_period / 1000, code != RD_KAFKA_RESP_ERR_NO_ERROR ? kerr : what);
		return true;
	}
	if (code != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(msg, msglen, "%s (%s)", what, kerr);
	else
		snprintf(msg, msglen, "%s", what);
	return false;
}

static char *
eo_jsonb_scalar_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			return NULL;
	}
}

/*
 * msg with every secret option value masked: librdkafka's error text is not
 * ours, and it must not carry a password into the log or the status view.
 * Values under four characters are left alone: masking them would garble
 * the message and hide nothing worth hiding.
 */
char *
eo_kafka_scrub(Jsonb *options, const char *msg)
{
	char	   *out = pstrdup(msg);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		secret = false;

	if (options == NULL || !JB_ROOT_IS_OBJECT(options))
		return out;
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *key = pnstrdup(v.val.string.val, v.val.string.len);

			secret = eo_kafka_secret_key(key);
			pfree(key);
		}
		else if (tok == WJB_VALUE && secret)
		{
			char	   *value = eo_jsonb_scalar_text(&v);
			size_t		from = 0;
			char	   *hit;

			if (value == NULL)
				continue;
			while (strlen(value) >= 4 && (hit = strstr(out + from, value)) != NULL)
			{
				char	   *masked = psprintf("%.*s********%s", (int) (hit - out), out,
											  hit + strlen(value));

				from = (hit - out) + 8;
				pfree(out);
				out = masked;
			}
			pfree(value);
		}
	}
	return out;
}

static bool
eo_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
			char *err, size_t errlen)
{
	char		rkerr[512];

	if (rd_kafka_conf_set(conf, key, value, rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK)
	{
		if (eo_kafka_secret_key(key))
			snprintf(err, errlen, "invalid value for Kafka property \"%s\"", key);
		else
			snprintf(err, errlen, "%s", rkerr);
		return false;
	}
	return true;
}

/*
 * Build a consumer configuration: the user's options first, then the
 * settings exactly-once depends on, which the user may not override.
 * Options that load code or run commands (src/guard.c) pass only when the
 * caller vouches that the role they belong to is a superuser.  Returns NULL
 * and fills err on failure.
 */
rd_kafka_conf_t *
eo_kafka_conf(const char *brokers, Jsonb *options, bool may_load_code,
			  const char *group_id, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf;
	char		queue_kb[32];
	bool		queue_set = false;
	bool		wait_set = false;
	bool		min_set = false;
	bool		reconnect_set = false;
	bool		partition_fetch_set = false;
	char	   *code;

	if (!may_load_code && (code = eo_guard_code_option(options)) != NULL)
	{
		snprintf(err, errlen, "%s loads code or runs commands in the database server: only a superuser may set it",
				 code);
		return NULL;
	}
	conf = rd_kafka_conf_new();

	if (options != NULL && JB_ROOT_IS_OBJECT(options))
	{
		JsonbIterator *it = JsonbIteratorInit(&options->root);
		JsonbValue	v;
		JsonbIteratorToken tok;
		char	   *key = NULL;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			bool		known;

			if (tok == WJB_KEY)
				key = pnstrdup(v.val.string.val, v.val.string.len);
			else if (tok == WJB_VALUE && key != NULL && eo_avro_registry_option(key, &known))
			{
				/* the schema registry's settings, not librdkafka's */
				if (!known)
				{
					snprintf(err, errlen, "unknown schema registry property \"%s\"", key);
					rd_kafka_conf_destroy(conf);
					return NULL;
				}
			}
			else if (tok == WJB_VALUE && key != NULL)
			{
				char	   *value = eo_jsonb_scalar_text(&v);

				if (value == NULL)
				{
					snprintf(err, errlen, "Kafka property \"%s\" must be a string, number or boolean", key);
					rd_kafka_conf_destroy(conf);
					return NULL;
				}
				if (!eo_conf_set(conf, key, value, err, errlen))
				{
					rd_kafka_conf_destroy(conf);
					return NULL;
				}
				if (strcmp(key, "queued.max.messages.kbytes") == 0)
					queue_set = true;
				if (strcmp(key, "fetch.wait.max.ms") == 0)
					wait_set = true;
				if (strcmp(key, "queued.min.messages") == 0)
					min_set = true;
				if (strcmp(key, "reconnect.backoff.max.ms") == 0)
					reconnect_set = true;
				if (strcmp(key, "max.partition.fetch.bytes") == 0)
					partition_fetch_set = true;
			}
		}
	}

	snprintf(queue_kb, sizeof(queue_kb), "%d", eo_queue_kbytes);
	if ((brokers != NULL && !eo_conf_set(conf, "bootstrap.servers", brokers, err, errlen)) ||
		!eo_conf_set(conf, "group.id", group_id, err, errlen) ||
		!eo_conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
		!eo_conf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
		!eo_conf_set(conf, "isolation.level", "read_committed", err, errlen) ||
		!eo_conf_set(conf, "auto.offset.reset", "error", err, errlen) ||
		!eo_conf_set(conf, "enable.partition.eof", "false", err, errlen) ||
		(!queue_set && !eo_conf_set(conf, "queued.max.messages.kbytes", queue_kb, err, errlen)) ||
		/*
		 * How long a broker holds a fetch that finds no records.  A record
		 * that arrives meanwhile answers it at once (fetch.min.bytes is 1),
		 * so this costs no freshness; what it costs is that requests behind
		 * the fetch on the same connection (watermark reads, metadata
		 * reads) wait for it.  At 50 ms an idle worker had a fetch answered
		 * 20 times a second; fetches were most of what idle pipelines cost
		 * the broker (bench/idle.sh).  Idle workers take their lag from the
		 * fetch responses (watermarks.c, fetch_clock.c), which vouch for it
		 * one to two waits old, and wake to publish it as each answer comes:
		 * 2 s keeps it under status.c's 5 s.
		 */
		(!wait_set && !eo_conf_set(conf, "fetch.wait.max.ms", "2000", err, errlen)) ||

		/*
		 * librdkafka 2.0 stops fetching a partition for a whole second once
		 * its queue holds queued.min.messages records or queue_kbytes of
		 * payload.  The default count, 100,000 small records, is less than a
		 * second of a worker's work, so a draining worker sat idle waiting
		 * (0.68 x COPY's rows/s against 0.79 x with 200,000, bench/run.sh).
		 * The count still bounds the queue's per-message overhead (about
		 * 250 bytes each) when records are tiny.
		 */
		(!min_set && !eo_conf_set(conf, "queued.min.messages", "200000", err, errlen)) ||

		/*
		 * One fetch response holds up to this much of every partition the
		 * worker reads, and librdkafka hands none of it to the worker before
		 * all of it has arrived.  With librdkafka's 1 MB and 16 partitions
		 * per worker, responses of 16 MB left the worker waiting between
		 * them: 64 partitions with workers => 4 drained at 0.66-0.72 x the
		 * 4-partition figure, and at 0.89 x with 256 kB (bench/run.sh
		 * --many-partitions 64).  A larger record is still fetched whole:
		 * librdkafka grows the size for it.
		 */
		(!partition_fetch_set && !eo_conf_set(conf, "max.partition.fetch.bytes", "262144", err, errlen)) ||

		/*
		 * librdkafka backs off reconnecting up to 10 s by default, so after
		 * a long outage records waited that long after the broker was back.
		 * One attempt a second per broker is what Kafka's Java clients do.
		 */
		(!reconnect_set && !eo_conf_set(conf, "reconnect.backoff.max.ms", "1000", err, errlen)))
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	/* without it, broker errors only reach librdkafka's log, never the worker */
	rd_kafka_conf_set_error_cb(conf, eo_kafka_error_cb);
	return conf;
}

/*
 * librdkafka before 2.3.1 busy-waits through the last fraction of a
 * millisecond before each of its timers: its threads wait in whole
 * milliseconds, rounded down, then poll the clock until the timer is due
 * (librdkafka issue 4684).  In an idle worker that spinning was over half of
 * its CPU.  A timer slack lets the kernel end those waits up to this much
 * later, after the timer rather than before it.  Threads inherit the slack
 * of the thread that starts them, so it is set around rd_kafka_new only and
 * applies to librdkafka's threads, not to the worker's own waits.  Only
 * timeouts are delayed (librdkafka's once-a-second housekeeping); a record,
 * a socket or a wake-up still wakes a thread at once.
 */
#define EO_KAFKA_TIMER_SLACK_NS 2000000

/* Consumes conf in every case. */
rd_kafka_t *
eo_kafka_consumer(rd_kafka_conf_t *conf, char *err, size_t errlen)
{
	rd_kafka_t *rk;
	char		stale[8];
#ifdef PR_SET_TIMERSLACK
	int			slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
#endif

	/* errors noted for an earlier handle say nothing about this one */
	(void) eo_kafka_take_error(stale, sizeof(stale));
#ifdef PR_SET_TIMERSLACK
	(void) prctl(PR_SET_TIMERSLACK, EO_KAFKA_TIMER_SLACK_NS, 0, 0, 0);
#endif
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
#ifdef PR_SET_TIMERSLACK
	if (slack > 0)
		(void) prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0);
#endif
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

rd_kafka_resp_err_t eo_kafka_metadata_error = RD_KAFKA_RESP_ERR_NO_ERROR;

/*
 * Blocking look-ups run in slices of EO_KAFKA_SLICE_MS, EO_KAFKA_TIMEOUT_MS
 * in all.  A look-up stops early when an interrupt is pending, frees what it
 * holds and only then serves it: rd_kafka_destroy in the exit hook must not
 * find a topic handle still referenced.
 */
static TimestampTz
eo_kafka_deadline(void)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), EO_KAFKA_TIMEOUT_MS);
}

/*
 * A slice ends the wait, and the next one sends the request again.  While
 * the brokers answer this process's fetches (fetch_clock.c), a request waits
 * at most behind the fetch its broker holds, on the same connection: one
 * slice of EO_KAFKA_HELD_SLICE_MS covers that (250 ms slices sent an idle
 * worker's metadata request eight times over).  Otherwise short slices, so
 * that an interrupt is served soon while no broker answers.
 */
static int
eo_kafka_slice_ms(void)
{
	return eo_fetch_clock_fresh(eo_fetch_clock_since(), GetCurrentTimestamp()) ?
		EO_KAFKA_HELD_SLICE_MS : EO_KAFKA_SLICE_MS;
}

static bool
eo_kafka_again(rd_kafka_resp_err_t rc, TimestampTz deadline)
{
	if (rc != RD_KAFKA_RESP_ERR__TIMED_OUT && rc != RD_KAFKA_RESP_ERR__TRANSPORT)
		return false;
	if (INTERRUPTS_PENDING_CONDITION() && INTERRUPTS_CAN_BE_PROCESSED())
		return false;
	return GetCurrentTimestamp() < deadline;
}

/* The high and low watermarks of one partition, in slices. */
static rd_kafka_resp_err_t
eo_kafka_watermarks(rd_kafka_t *rk, const char *topic, int32 partition,
					int64_t *lo, int64_t *hi)
{
	TimestampTz deadline = eo_kafka_deadline();
	rd_kafka_resp_err_t rc;

	do
		rc = rd_kafka_query_watermark_offsets(rk, topic, partition, lo, hi,
											  eo_kafka_slice_ms());
	while (eo_kafka_again(rc, deadline));
	return rc;
}

/*
 * The topic's partitions, sorted; -1 and err on failure (no answer within
 * timeout_ms, or an error), with the reason in eo_kafka_metadata_error.
 */
int
eo_kafka_partitions(rd_kafka_t *rk, const char *topic, int32 **partitions,
					char *err, size_t errlen, int timeout_ms)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t rc;
	int			n = -1;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);

	if (rkt == NULL)
	{
		snprintf(err, errlen, "could not create topic handle: %s",
				 rd_kafka_err2str(rd_kafka_last_error()));
		return -1;
	}
	do
		rc = rd_kafka_metadata(rk, 0, rkt, &md, eo_kafka_slice_ms());
	while (eo_kafka_again(rc, deadline));
	eo_kafka_metadata_error = rc != RD_KAFKA_RESP_ERR_NO_ERROR ? rc :
		(md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN);
	if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(err, errlen, "could not read metadata of topic \"%s\": %s",
				 topic, rd_kafka_err2str(rc));
	else if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(err, errlen, "topic \"%s\" is not available: %s", topic,
				 md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "no metadata");
	else
	{
		const rd_kafka_metadata_topic_t *t = &md->topics[0];

		n = t->partition_cnt;
		*partitions = palloc(sizeof(int32) * Max(n, 1));
		for (int i = 0; i < n; i++)
			(*partitions)[i] = t->partitions[i].id;
		/* metadata order is not guaranteed */
		for (int i = 1; i < n; i++)
			for (int j = i; j > 0 && (*partitions)[j - 1] > (*partitions)[j]; j--)
			{
				int32		tmp = (*partitions)[j];

				(*partitions)[j] = (*partitions)[j - 1];
				(*partitions)[j - 1] = tmp;
			}
		if (n == 0)
		{
			snprintf(err, errlen, "topic \"%s\" has no partitions", topic);
			n = -1;
		}
	}
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	CHECK_FOR_INTERRUPTS();
	return n;
}

/*
 * Concrete offsets for 'earliest', 'latest' or a timestamp: the offset
 * ingestion starts from.  'latest' is the high watermark; a timestamp with no
 * later record also resolves to the high watermark.
 */
bool
eo_kafka_resolve(rd_kafka_t *rk, const char *topic, int n, const int32 *partitions,
				 const char *position, int64 *offsets, char *err, size_t errlen)
{
	bool		earliest = strcmp(position, "earliest") == 0;
	bool		latest = strcmp(position, "latest") == 0;

	if (earliest || latest)
	{
		for (int i = 0; i < n; i++)
		{
			int64_t		lo,
						hi;
			rd_kafka_resp_err_t rc;

			rc = eo_kafka_watermarks(rk, topic, partitions[i], &lo, &hi);
			CHECK_FOR_INTERRUPTS();
			if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				snprintf(err, errlen, "could not read offsets of topic \"%s\" partition %d: %s",
						 topic, partitions[i], rd_kafka_err2str(rc));
				return false;
			}
			offsets[i] = earliest ? lo : hi;
		}
		return true;
	}
	else
	{
		TimestampTz ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
																 CStringGetDatum(position),
																 ObjectIdGetDatum(InvalidOid),
																 Int32GetDatum(-1)));
		int64		ms = (ts / 1000) + ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000);
		rd_kafka_topic_partition_list_t *list = NULL;
		rd_kafka_resp_err_t rc;
		bool		ok = true;
		TimestampTz deadline = eo_kafka_deadline();

		do
		{
			/* a fresh list each slice: a timed-out call may have written it */
			if (list != NULL)
				rd_kafka_topic_partition_list_destroy(list);
			list = rd_kafka_topic_partition_list_new(n);
			for (int i = 0; i < n; i++)
				rd_kafka_topic_partition_list_add(list, topic, partitions[i])->offset = ms;
			rc = rd_kafka_offsets_for_times(rk, list, eo_kafka_slice_ms());
		} while (eo_kafka_again(rc, deadline));
		if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			snprintf(err, errlen, "could not look up offsets for time in topic \"%s\": %s",
					 topic, rd_kafka_err2str(rc));
			ok = false;
		}
		for (int i = 0; ok && i < n; i++)
		{
			rd_kafka_topic_partition_t *p = &list->elems[i];

			if (p->err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				snprintf(err, errlen, "could not look up offsets for time in topic \"%s\" partition %d: %s",
						 topic, p->partition, rd_kafka_err2str(p->err));
				ok = false;
			}
			else if (p->offset >= 0)
				offsets[i] = p->offset;
			else
			{
				int64_t		lo,
							hi;

				rc = eo_kafka_watermarks(rk, topic, p->partition, &lo, &hi);
				if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
				{
					snprintf(err, errlen, "could not read offsets of topic \"%s\" partition %d: %s",
							 topic, p->partition, rd_kafka_err2str(rc));
					ok = false;
				}
				offsets[i] = hi;
			}
		}
		rd_kafka_topic_partition_list_destroy(list);
		CHECK_FOR_INTERRUPTS();
		return ok;
	}
}
