/*
 * watermarks.c
 *		The end offsets lag is measured against: from the fetch responses
 *		while the brokers keep answering them, else asked of the brokers.
 *
 * The consumer reads committed records only, so a partition's next offset
 * is at most its last stable offset, which is at most its high watermark.
 * When the high watermark librdkafka kept from the last fetch response
 * equals the next offset, nothing waits, as of the time fetch_clock.c
 * gives: lag 0 without a request.  That is the usual case, idle or
 * trickling, and costs the brokers nothing: the reads of a hundred idle
 * workers were about a seventh of the broker's requests.  It is not used
 * while the worker reports Kafka trouble or librdkafka noted an error.
 *
 * Otherwise (records wait, a transaction is open, the fetches stopped) the
 * worker asks the partitions' leaders for their end offsets (one ListOffsets
 * request per leader, at the consumer's isolation level: for read_committed
 * the last stable offset) about once a second, every EO_WATERMARKS_IDLE_MS
 * while the worker has nothing to do, and stamps the slot with the time of
 * the last answer.  status.c shows lag only while that stamp is recent.  A
 * read that fails is not repeated for a while: during an outage the worker
 * would otherwise spend its time waiting for answers.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/timestamp.h"

#include "kafka.h"
#include "watermarks.h"

#define EO_WATERMARKS_INTERVAL_MS	1000
#define EO_WATERMARKS_IDLE_MS		3000
/*
 * A read waits behind a fetch the broker holds (fetch.wait.max.ms, kafka.c),
 * so while the brokers answer fetches it may take that long.  It is not cut
 * into slices, so the time-out is also how long SIGTERM may wait while no
 * broker answers: 038 failed with 2 s, hence 1 s when the fetches stopped.
 */
#define EO_WATERMARKS_TIMEOUT_MS	EO_KAFKA_HELD_SLICE_MS
#define EO_WATERMARKS_TROUBLE_TIMEOUT_MS	1000
#define EO_WATERMARKS_BACKOFF_MS	3000

static TimestampTz next_read = 0;

static void
eo_watermarks_stamp(EoWorkerSlot *slot, TimestampTz at)
{
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	slot->watermarks_at = at;
	LWLockRelease(eo_shared->lock);
}

/*
 * Every partition's cached high watermark equals its next offset, as of a
 * fetch clock recent enough: stamp the slot with that time.
 */
static bool
eo_watermarks_cached(EoWorkerSlot *slot, rd_kafka_t *rk, const char *topic, int n,
					 const int32 *partitions, const int64 *next, int64 *high_watermarks,
					 TimestampTz since)
{
	if (eo_kafka_error_noted())
		return false;
	for (int i = 0; i < n; i++)
	{
		int64_t		lo,
					hi;

		if (rd_kafka_get_watermark_offsets(rk, topic, partitions[i], &lo, &hi) !=
			RD_KAFKA_RESP_ERR_NO_ERROR || hi != next[i])
			return false;
	}
	for (int i = 0; i < n; i++)
		high_watermarks[i] = next[i];
	eo_watermarks_stamp(slot, since);
	return true;
}

/*
 * Refresh high_watermarks (one per partition, as the caller last knew them)
 * from the cache or, when a read is due, from the brokers; on success stamp
 * the slot.
 */
void
eo_watermarks_read(EoWorkerSlot *slot, rd_kafka_t *rk, const char *topic, int n,
				   const int32 *partitions, const int64 *next, int64 *high_watermarks,
				   bool idle, bool trouble)
{
	TimestampTz now = GetCurrentTimestamp();
	/* the clock first: watermarks read after it are at least as recent */
	TimestampTz since = eo_fetch_clock_since();
	bool		fetching = eo_fetch_clock_fresh(since, now);
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;
	bool		complete = true;

	if (n == 0)
		return;
	if (fetching && !trouble &&
		eo_watermarks_cached(slot, rk, topic, n, partitions, next, high_watermarks, since))
		return;
	if (now < next_read)
		return;

	list = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(list, topic, partitions[i])->offset = RD_KAFKA_OFFSET_END;
	err = rd_kafka_offsets_for_times(rk, list, fetching ? EO_WATERMARKS_TIMEOUT_MS :
									 EO_WATERMARKS_TROUBLE_TIMEOUT_MS);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		for (int i = 0; i < list->cnt; i++)
		{
			rd_kafka_topic_partition_t *p = &list->elems[i];

			if (p->err != RD_KAFKA_RESP_ERR_NO_ERROR || p->offset < 0)
			{
				complete = false;
				continue;
			}
			for (int k = 0; k < n; k++)
				if (partitions[k] == p->partition)
					high_watermarks[k] = p->offset;
		}
	}
	rd_kafka_topic_partition_list_destroy(list);

	if (err == RD_KAFKA_RESP_ERR_NO_ERROR && complete)
	{
		next_read = TimestampTzPlusMilliseconds(now, idle ? EO_WATERMARKS_IDLE_MS :
												EO_WATERMARKS_INTERVAL_MS);
		eo_fetch_clock_prune(now, EO_FETCH_FRESH_MS);
		eo_watermarks_stamp(slot, now);
	}
	else
		next_read = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), EO_WATERMARKS_BACKOFF_MS);
}
