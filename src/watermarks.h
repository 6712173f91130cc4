/*
 * watermarks.h
 *		Reading the brokers' end offsets for lag.
 */
#ifndef EO_WATERMARKS_H
#define EO_WATERMARKS_H

#include <librdkafka/rdkafka.h>

#include "eo_ingest.h"

/*
 * An idle worker reads them this often (a busy one once a second): with the
 * half second a read may wait behind a fetch, within the 5 s status.c shows
 * a lag for.
 */
#define EO_WATERMARKS_IDLE_MS 3000

extern void eo_watermarks_read(EoWorkerSlot *slot, rd_kafka_t *rk, const char *topic,
							   int n, const int32 *partitions, int64 *high_watermarks,
							   bool idle);

#endif							/* EO_WATERMARKS_H */
