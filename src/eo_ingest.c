/*
 * eo_ingest.c
 *		Module entry point: GUCs, shared memory hooks and the launcher.
 *
 * The extension only works when preloaded: the launcher is a static
 * background worker and the progress slots live in shared memory.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "dbhold.h"
#include "eo_ingest.h"
#include "guard.h"
#include "park.h"
#include "slotwait.h"

PG_MODULE_MAGIC;

int			eo_max_workers = 32;
int			eo_launcher_naptime = 60;
int			eo_retry_max_delay = 30000;
int			eo_queue_kbytes = 32768;
bool		eo_direct_insert = true;
int			eo_grace_period = 60000;
bool		eo_parallel_decode = true;

void		_PG_init(void);

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eo_ingest must be loaded via shared_preload_libraries"),
				 errhint("Add eo_ingest to shared_preload_libraries in postgresql.conf and restart the server.")));

	DefineCustomIntVariable("eo_ingest.max_workers",
							"Maximum number of pipeline workers in the whole cluster.",
							"Each running pipeline uses one worker per partition group; "
							"max_worker_processes must leave room for them.",
							&eo_max_workers,
							32, 1, 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eo_ingest.launcher_naptime",
							"Time between scans for databases with new pipelines.",
							"Changes made through the eo_ingest functions wake the launcher at once; "
							"the scan only catches pipelines restored from a dump.",
							&eo_launcher_naptime,
							60, 1, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eo_ingest.retry_max_delay",
							"Longest wait between two attempts at a failing batch.",
							NULL,
							&eo_retry_max_delay,
							30000, 100, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eo_ingest.queue_kbytes",
							"Memory each worker's Kafka consumer may use for prefetched messages.",
							"Sets librdkafka's queued.max.messages.kbytes unless a pipeline's kafka_options does.",
							&eo_queue_kbytes,
							32768, 1024, 2097151,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("eo_ingest.direct_insert",
							 "Write rows with the table's multi-insert instead of INSERT ... ON CONFLICT.",
							 "Targets with triggers, rules, row level security, generated columns or "
							 "partitions always use INSERT ... ON CONFLICT.",
							 &eo_direct_insert,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("eo_ingest.grace_period",
							"How long a pipeline retries a missing topic or brokers it never reached before it fails.",
							"Counted from the worker's start, resume or change of brokers or kafka_options; "
							"brokers that answered once and then went away are retried for ever.",
							&eo_grace_period,
							60000, 100, 86400000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("eo_ingest.park_after",
							"How long a pipeline must be idle and caught up before its worker parks.",
							"A parked worker closes its Kafka consumer and leaves the watching of its "
							"partitions to the one eo_ingest watcher process; 0 never parks.",
							&eo_park_after,
							30000, 0, 86400000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("eo_ingest.parallel_decode",
							 "Decode a worker's next batch in a second process while it writes the current one.",
							 "Only under a backlog, for json, text and bytea without an envelope or $headers; "
							 "the decoder takes a background worker slot and yields it to any waiting pipeline.",
							 &eo_parallel_decode,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("eo_ingest");

	eo_guard_init();
	eo_shmem_request();
	eo_dbhold_init();
	eo_slotwait_init();
	eo_park_init();
	eo_register_launcher();
}
