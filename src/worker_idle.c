/*
 * worker_idle.c
 *		A pipeline worker's housekeeping between batches: publishing its
 *		progress and lag, and asking the brokers for the topic's metadata.
 *
 * Both run after every batch and after every empty poll, which an idle
 * worker makes each time its fetch clock moves (once per fetch the broker
 * held) or at the latest every EO_IDLE_WAKE_MS; both are cheap while the
 * brokers keep answering the consumer's fetches (fetch_clock.c), which is
 * what lets a hundred idle pipelines cost little.
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "watermarks.h"
#include "worker.h"

/*
 * How often the topic's metadata is asked for: while the worker reports an
 * outage, while it works or the fetches say nothing, and while it is idle
 * and its fetches are answered (then only a topic that grew is news).
 */
#define EO_METADATA_TROUBLE_MS	2000
#define EO_METADATA_MS			10000
#define EO_METADATA_IDLE_MS		30000

/* Publish the progress and the high watermarks (watermarks.c). */
void
eo_worker_publish(EoWorker *w, bool idle)
{
	EoLedger   *l = &w->ledger;
	int			n = Max(l->nparts, 1);
	int32	   *p = palloc(sizeof(int32) * n);
	int64	   *o = palloc(sizeof(int64) * n);
	int64	   *h = palloc(sizeof(int64) * n);

	for (int i = 0; i < l->nparts; i++)
	{
		p[i] = l->parts[i].partition;
		o[i] = l->parts[i].next;
		h[i] = l->parts[i].high_watermark;
	}
	eo_watermarks_read(w->slot, w->rk, w->cfg->topic, l->nparts, p, o, h, idle,
					   w->kafka_trouble);
	for (int i = 0; i < l->nparts; i++)
		l->parts[i].high_watermark = h[i];
	eo_slot_set_progress(w->slot, l->nparts, p, o, h);
	pfree(p);
	pfree(o);
	pfree(h);
}

/*
 * Ask the brokers for the topic's metadata: connection errors never reach
 * consumer_poll, so an outage shows here, and so does a topic that grew.
 */
static EoRestart
eo_check_brokers(EoWorker *w)
{
	char		err[512];
	char		msg[EO_ERROR_LEN];
	int32	   *all = NULL;
	int			n;

	n = eo_kafka_partitions(w->rk, w->cfg->topic, &all, err, sizeof(err), EO_KAFKA_TIMEOUT_MS);
	if (n < 0 && eo_kafka_metadata_error < 0)
	{
		w->kafka_trouble = true;
		if (eo_kafka_health_trouble(&w->health, w->cfg->brokers, err, msg, sizeof(msg)))
		{
			eo_worker_report(w, EO_STATE_FAILED, "%s", msg);
			return EO_RESTART_FAILED;
		}
		eo_worker_report(w, EO_STATE_RETRYING, "%s", msg);
		return EO_RESTART_NONE;
	}
	if (n < 0)
	{
		w->kafka_trouble = true;
		eo_worker_report(w, EO_STATE_RETRYING, "%s", err);
		return EO_RESTART_NONE;
	}
	pfree(all);
	/* the setup logs it (so does the one that ends a park, park.c) */
	if (n > w->topic_partitions)
		return EO_RESTART_SETUP;
	/* the brokers answer: errors noted meanwhile are over */
	(void) eo_kafka_take_error(err, sizeof(err));
	if (w->kafka_trouble)
	{
		w->kafka_trouble = false;
		eo_slot_set_state(w->slot, EO_STATE_RUNNING, NULL);
	}
	return EO_RESTART_NONE;
}

/*
 * The metadata check, when due.  An idle worker whose fetches the brokers
 * answer, with no error noted, has no outage to find: it asks only every
 * EO_METADATA_IDLE_MS, for a topic that grew.  A request may wait behind the
 * fetch the broker holds, so fewer requests are also fewer waits.
 */
EoRestart
eo_worker_check_brokers(EoWorker *w, bool idle)
{
	TimestampTz now = GetCurrentTimestamp();
	int			interval = EO_METADATA_MS;
	EoRestart	r;

	if (!TimestampDifferenceExceeds(w->metadata_at, now, EO_METADATA_TROUBLE_MS))
		return EO_RESTART_NONE;
	if (w->kafka_trouble)
		interval = EO_METADATA_TROUBLE_MS;
	else if (idle && eo_fetch_clock_fresh(eo_fetch_clock_since(), now) &&
			 !eo_kafka_error_noted())
		interval = EO_METADATA_IDLE_MS;
	if (!TimestampDifferenceExceeds(w->metadata_at, now, interval))
		return EO_RESTART_NONE;
	r = eo_check_brokers(w);
	w->metadata_at = GetCurrentTimestamp();
	return r;
}
