/*
 * worker.h
 *		A pipeline worker's state, shared by the main loop (worker.c), its
 *		setup (setup.c), its housekeeping (worker_idle.c), its Avro
 *		schemas (worker_avro.c) and its parking (park.c).
 */
#ifndef EO_WORKER_H
#define EO_WORKER_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "eo_ingest.h"
#include "batch.h"
#include "change.h"
#include "kafka.h"
#include "ledger.h"

/* The pipeline's row, as the worker last loaded it */
typedef struct EoConfig
{
	char	   *name;
	char	   *brokers;
	char	   *topic;
	Oid			target;
	char	   *event_id;
	char	   *on_duplicate;
	char	   *format;
	Datum		columns;
	bool		columns_null;
	char	   *start_from;
	int			batch_size;
	int			batch_timeout;
	int			nworkers;
	bool		synchronous_commit;
	Jsonb	   *kafka_options;
	bool		enabled;
	int64		config_version;
	bool		has_offsets;	/* any partition stored yet */
	char	   *envelope;		/* NULL before 0.3 */
	char	   *on_truncate;
	bool		owner_superuser;	/* may kafka_options load code? */
	char	   *schema_registry;	/* format avro: registry URLs, or */
	char	   *avro_schema;	/* the inline writer schema */
	char	   *key_format;		/* NULL: the key is not decoded */
	char	   *key_avro_schema;	/* key_format avro: plain Avro keys' schema */
} EoConfig;

/* What the worker does after its setup or its main loop returns */
typedef enum EoRestart
{
	EO_RESTART_NONE,			/* carry on */
	EO_RESTART_SETUP,			/* configuration or partitions changed: at once */
	EO_RESTART_RETRY,			/* a database error: after a backoff */
	EO_RESTART_FAILED			/* wait for a configuration change */
} EoRestart;

typedef struct EoWorker
{
	EoWorkerArgs args;
	EoWorkerSlot *slot;

	MemoryContext worker_cxt;	/* the process's life */
	MemoryContext config_cxt;	/* cfg, map, writer, applier: reset on each
								 * load */
	MemoryContext setup_cxt;	/* partitions: outlive reloads between retries */
	MemoryContext batch_cxt;	/* the polled batch */
	MemoryContext attempt_cxt;	/* one attempt at the batch transaction */

	EoConfig   *cfg;
	EoMapping  *map;
	EoWriter   *writer;
	EoApplier  *applier;		/* a change stream's (envelope), or NULL */
	int64		setup_version;	/* config_version the Kafka setup was made for */
	char	   *target_name;	/* as last stored in the catalog, in worker_cxt */

	rd_kafka_t *rk;
	rd_kafka_queue_t *ready;	/* rk's consumer queue, hooked to the wait */
	rd_kafka_topic_partition_list_t *assignment;
	int			topic_partitions;
	EoKafkaHealth health;
	TimestampTz topic_missing_since;
	bool		kafka_trouble;	/* an outage is being reported */
	TimestampTz metadata_at;	/* the topic's metadata last asked for */

	EoLedger	ledger;
	EoRecord   *recs;			/* in worker_cxt, kept from batch to batch */
	int			nrecs;
	int			recs_cap;		/* recs has room for this many */
	int64	   *next;			/* each partition's next offset after the
								 * batch, as its poll left the consumer */
	bool		full;			/* the poll stopped at a limit, or found
								 * many records ready: a backlog */
	bool		sent;			/* the batch went to the parallel decoder */
	/*
	 * The batch polled ahead of this one while the decoder decodes it
	 * (decoder.c): the fields above and batch_cxt trade places with these
	 * (eo_batch_swap).
	 */
	struct
	{
		MemoryContext cxt;
		EoRecord   *recs;
		int			nrecs;
		int			recs_cap;
		int64	   *next;
		bool		full;
		bool		sent;
	}			ahead;

	uint64		wake_seq;		/* slot->wake_seq when last checked */
	TimestampTz checked_at;		/* last look at the pipeline's row */
	const char *activity;		/* what the worker does, for errcontext */
	TimestampTz logged_at;		/* last status written to the log */
	TimestampTz idle_since;		/* idle and caught up since (park.c) */
	TimestampTz park_retry_at;	/* do not park before */
} EoWorker;

typedef void (*EoWorkerStep) (EoWorker *w, void *arg);

/* decoder.c */
extern void eo_batch_swap(EoWorker *w);
extern void eo_decoder_backlog(EoWorker *w);
extern bool eo_decoder_usable(EoWorker *w);
extern bool eo_decoder_send(EoWorker *w);
extern void eo_decoder_collect(EoWorker *w);
extern void eo_decoder_stop(void);

/* worker.c */
extern bool eo_worker_xact(EoWorker *w, const char *activity, EoWorkerStep step,
						   void *arg, ErrorData **error);
extern bool eo_worker_try_xact(EoWorker *w, const char *activity, EoWorkerStep step,
							   void *arg);
extern void eo_worker_report(EoWorker *w, EoState state, const char *fmt,...) pg_attribute_printf(3, 4);
extern bool eo_worker_changed(EoWorker *w);
extern bool eo_worker_wait(EoWorker *w, long ms);
extern void eo_worker_batch_contexts(EoWorker *w);

/* worker_idle.c */
extern void eo_worker_publish(EoWorker *w, bool idle);
extern EoRestart eo_worker_check_brokers(EoWorker *w, bool idle);

/* park.c */
extern EoRestart eo_worker_park(EoWorker *w, bool idle);

/* worker_avro.c */
extern EoRestart eo_worker_avro_schemas(EoWorker *w);

/* setup.c */
extern void eo_worker_forget_config(EoWorker *w);
extern bool eo_worker_load_config(EoWorker *w);
extern EoRestart eo_worker_setup(EoWorker *w);
extern void eo_worker_close(EoWorker *w);

#endif
