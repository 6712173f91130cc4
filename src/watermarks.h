/*
 * watermarks.h
 *		Reading the brokers' end offsets for lag.
 */
#ifndef EO_WATERMARKS_H
#define EO_WATERMARKS_H

#include <librdkafka/rdkafka.h>

#include "eo_ingest.h"

extern void eo_watermarks_read(EoWorkerSlot *slot, rd_kafka_t *rk, const char *topic,
							   int n, const int32 *partitions, int64 *high_watermarks);

#endif							/* EO_WATERMARKS_H */
