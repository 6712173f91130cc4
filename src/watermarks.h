/*
 * watermarks.h
 *		The brokers' end offsets for lag (watermarks.c), and how recent the
 *		ones kept from fetch responses are (fetch_clock.c).
 */
#ifndef EO_WATERMARKS_H
#define EO_WATERMARKS_H

#include <librdkafka/rdkafka.h>

#include "eo_ingest.h"

extern void eo_watermarks_read(EoWorkerSlot *slot, rd_kafka_t *rk, const char *topic, int n,
							   const int32 *partitions, const int64 *next,
							   int64 *high_watermarks, bool idle, bool trouble);

/*
 * The fetch responses vouch for the brokers while the fetch clock is at
 * most this old: it runs up to two fetch waits (kafka.c) behind, and
 * status.c shows a lag for 5 s.
 */
#define EO_FETCH_FRESH_MS 4500

typedef struct EoFetchClock EoFetchClock;

extern EoFetchClock *eo_fetch_clock_new(void);
extern bool eo_fetch_clock_attach(rd_kafka_conf_t *conf, EoFetchClock *fc, char *err, size_t errlen);
extern TimestampTz eo_fetch_clock_since(void);
extern TimestampTz eo_fetch_clock_since_of(EoFetchClock *fc);
extern bool eo_fetch_clock_fresh(TimestampTz since, TimestampTz now);
extern void eo_fetch_clock_prune(TimestampTz read_at, int quiet_ms);
extern void eo_fetch_clock_watch(bool on);

#endif							/* EO_WATERMARKS_H */
