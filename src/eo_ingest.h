/*
 * eo_ingest.h
 *		Declarations shared by the launcher, the supervisors, the pipeline
 *		workers and the SQL-callable functions.
 */
#ifndef EO_INGEST_H
#define EO_INGEST_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#define EO_EXTENSION_NAME	"eo_ingest"
#define EO_LIBRARY_NAME		"eo_ingest"
#define EO_ERROR_LEN		512
#define EO_SLOT_PARTITIONS	256
#define EO_MAX_DATABASES	64

/* GUCs */
extern int	eo_max_workers;
extern int	eo_launcher_naptime;
extern int	eo_retry_max_delay;
extern int	eo_queue_kbytes;
extern bool eo_direct_insert;
extern int	eo_grace_period;
extern bool eo_parallel_decode;

/* Worker states, as shown in pipeline_status.state */
typedef enum EoState
{
	EO_STATE_STARTING = 0,
	EO_STATE_RUNNING,
	EO_STATE_RETRYING,
	EO_STATE_FAILED
} EoState;

extern const char *const eo_state_names[];

/* What a supervisor hands to a pipeline worker in bgw_extra */
typedef struct EoWorkerArgs
{
	Oid			database;
	Oid			owner;
	int32		pipeline_id;
	int32		worker;			/* 0 .. nworkers-1 */
	int32		nworkers;
} EoWorkerArgs;

/* One running pipeline worker, in shared memory */
typedef struct EoWorkerSlot
{
	bool		in_use;
	Oid			database;
	int32		pipeline_id;
	int32		worker;
	pid_t		pid;
	EoState		state;
	int64		lag;			/* -1 while unknown */
	TimestampTz watermarks_at;	/* when the brokers last told the watermarks */
	TimestampTz started_at;
	TimestampTz last_error_at;
	char		last_error[EO_ERROR_LEN];
	int			npartitions;
	int32		partitions[EO_SLOT_PARTITIONS];
	int64		high_watermarks[EO_SLOT_PARTITIONS];
	Latch	   *latch;			/* the worker's, set with wake_seq */
	uint64		wake_seq;		/* bumped when its pipeline's row changes */
} EoWorkerSlot;

/* One database's supervisor and its wake-up counter */
typedef struct EoDatabaseEntry
{
	Oid			database;
	uint64		wake_seq;
	Latch	   *supervisor_latch;
	pid_t		supervisor_pid;
} EoDatabaseEntry;

typedef struct EoShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;
	pid_t		launcher_pid;
	EoDatabaseEntry databases[EO_MAX_DATABASES];
	EoWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} EoShared;

extern EoShared *eo_shared;

/* shmem.c */
extern void eo_shmem_request(void);
extern void eo_shmem_init(void);
extern void eo_shmem_add(const char *name, Size size, void **ptr);
extern EoWorkerSlot *eo_slot_acquire(const EoWorkerArgs *args);
extern void eo_slot_set_state(EoWorkerSlot *slot, EoState state, const char *error);
extern void eo_slot_set_progress(EoWorkerSlot *slot, int n, const int32 *partitions,
								 const int64 *next_offsets, const int64 *high_watermarks);
extern uint64 eo_database_wake_seq(Oid database);
extern void eo_register_supervisor(Oid database, bool attach);
extern void eo_database_wake(Oid database);
extern void eo_database_forget(Oid database, const uint64 *seen_seq);

/* launcher.c */
extern void eo_register_launcher(void);
extern PGDLLEXPORT void eo_launcher_main(Datum arg);
extern PGDLLEXPORT void eo_supervisor_main(Datum arg);

/* worker.c */
extern PGDLLEXPORT void eo_worker_main(Datum arg);

/* wakeup.c */
extern void eo_wake_workers_at_commit(int32 pipeline_id);
extern void eo_wakeup_attach(EoWorkerSlot *slot);
extern uint64 eo_wakeup_seq(EoWorkerSlot *slot);

#endif							/* EO_INGEST_H */
