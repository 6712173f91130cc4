/*
 * watermarks.c
 *		The end offsets lag is measured against, asked of the brokers.
 *
 * librdkafka's cached watermarks (rd_kafka_get_watermark_offsets) come with
 * fetch responses and say nothing of their age: during an outage they stay
 * what they were, and lag read 0 while records waited.  Instead the worker
 * asks the partitions' leaders for their end offsets (one ListOffsets
 * request per leader, the consumer's isolation level: for read_committed
 * the last stable offset) about once a second, or every
 * EO_WATERMARKS_IDLE_MS while the worker has nothing to do (each read is a
 * request for the broker, and the reads of a hundred idle workers were about
 * a third of its requests), and stamps the slot with the time of the last
 * answer.  status.c shows lag only while that stamp is recent.  A read that fails is not repeated for a while: during an outage
 * the worker would otherwise spend its time waiting for answers.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/timestamp.h"

#include "watermarks.h"

#define EO_WATERMARKS_INTERVAL_MS	1000
/*
 * A read may wait behind a fetch the broker holds (fetch.wait.max.ms,
 * kafka.c, half of this).  It is not cut into slices, so this is also how
 * long SIGTERM may wait while no broker answers: 038 failed with 2 s.
 */
#define EO_WATERMARKS_TIMEOUT_MS	1000
#define EO_WATERMARKS_BACKOFF_MS	3000

static TimestampTz next_read = 0;

/*
 * Refresh high_watermarks (one per partition, as the caller last knew them)
 * when a read is due; on success stamp the slot.
 */
void
eo_watermarks_read(EoWorkerSlot *slot, rd_kafka_t *rk, const char *topic,
				   int n, const int32 *partitions, int64 *high_watermarks, bool idle)
{
	TimestampTz now = GetCurrentTimestamp();
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;
	bool		complete = true;

	if (n == 0 || now < next_read)
		return;

	list = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(list, topic, partitions[i])->offset = RD_KAFKA_OFFSET_END;
	err = rd_kafka_offsets_for_times(rk, list, EO_WATERMARKS_TIMEOUT_MS);
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
		LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
		slot->watermarks_at = now;
		LWLockRelease(eo_shared->lock);
	}
	else
		next_read = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), EO_WATERMARKS_BACKOFF_MS);
}
