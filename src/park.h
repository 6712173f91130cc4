/*
 * park.h
 *		Parked pipelines: the records an idle worker hands to the watcher in
 *		shared memory (park.c), and the watcher that keeps an eye on them
 *		(watcher.c).
 */
#ifndef EO_PARK_H
#define EO_PARK_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"

#include "eo_ingest.h"

/* A worker with more partitions, or a longer configuration, does not park */
#define EO_PARK_PARTITIONS	64
#define EO_PARK_CONF		4096

/*
 * A parked worker looks at its record this often: the watcher sets its
 * latch for everything else, so this only finds a watcher gone or stopped
 */
#define EO_PARK_CHECK_MS	5000
/* ... and unparks if the watcher did not take it in this long */
#define EO_PARK_ACK_MS		5000
/* ... or if the watcher's heartbeat is older than this */
#define EO_PARK_HEARTBEAT_MS 10000

typedef enum EoParkState
{
	EO_PARK_NONE = 0,			/* the worker keeps its own consumer */
	EO_PARK_ASKED,				/* parked: waiting for the watcher to take it */
	EO_PARK_WATCHED,			/* the watcher watches its partitions */
	EO_PARK_WOKEN				/* the watcher says: set up again */
} EoParkState;

/*
 * One worker slot's park record (same index as eo_shared->slots).  conf
 * holds the brokers, the topic (both NUL-terminated) and the pipeline's
 * kafka_options (a Jsonb), from which the watcher builds its consumer with
 * the worker's own eo_kafka_conf: it may hold secrets, and is never shown.
 */
typedef struct EoParkRecord
{
	EoParkState state;
	uint64		generation;		/* eo_park->generation when parked */
	pid_t		watcher_pid;	/* the watcher that took it (WATCHED) */
	TimestampTz asked_at;
	int32		topic_partitions;	/* the topic's partition count */
	int			npartitions;
	int32		partitions[EO_PARK_PARTITIONS];
	int64		offsets[EO_PARK_PARTITIONS];	/* committed next offsets */
	int			brokers_len;	/* with their NULs */
	int			topic_len;
	int			options_len;
	char		conf[EO_PARK_CONF];
} EoParkRecord;

typedef struct EoParkShared
{
	uint64		generation;
	bool		watcher_wanted; /* the launcher starts the watcher */
	pid_t		watcher_pid;
	Latch	   *watcher_latch;
	TimestampTz heartbeat;		/* the watcher's last round */
	TimestampTz unavailable_until;	/* the watcher could not be started */
	EoParkRecord records[FLEXIBLE_ARRAY_MEMBER];
} EoParkShared;

extern EoParkShared *eo_park;
extern int	eo_park_after;

/* park.c (the worker's side is declared in worker.h) */
extern void eo_park_init(void);
extern void eo_park_forget_locked(int slot_index);
extern bool eo_park_watcher_due(void);
extern void eo_park_watcher_unavailable(void);

/* watcher.c */
extern PGDLLEXPORT void eo_watcher_main(Datum arg);

#endif							/* EO_PARK_H */
