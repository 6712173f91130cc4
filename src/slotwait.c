/*
 * slotwait.c
 *		Pipelines that wait for a process to run in.
 *
 * A supervisor that cannot start a pipeline's worker (every
 * max_worker_processes slot taken, or every eo_ingest.max_workers slot)
 * notes it here, and tries again every second; pipeline_status shows the
 * note as the pipeline's last_error, naming the setting to raise, until the
 * worker starts or the pipeline is no longer wanted.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"

#include "slotwait.h"

/* More waiting workers than this are retried all the same, but not shown. */
#define EO_MAX_WAITING		1024

typedef struct EoWaitingSet
{
	EoWaiting	waiting[EO_MAX_WAITING];
} EoWaitingSet;

static EoWaitingSet *eo_waiting = NULL;

void
eo_slotwait_init(void)
{
	eo_shmem_add("eo_ingest waiting", sizeof(EoWaitingSet), (void **) &eo_waiting);
}

static EoWaiting *
eo_wait_find(const EoWorkerArgs *args, bool create)
{
	EoWaiting  *free_entry = NULL;

	for (int i = 0; i < EO_MAX_WAITING; i++)
	{
		EoWaiting  *w = &eo_waiting->waiting[i];

		if (w->database == args->database && w->pipeline_id == args->pipeline_id &&
			w->worker == args->worker && w->reason != EO_WAIT_NONE)
			return w;
		if (w->reason == EO_WAIT_NONE && free_entry == NULL)
			free_entry = w;
	}
	return create ? free_entry : NULL;
}

/* Note that a worker waits; true when it did not wait for this before. */
bool
eo_wait_note(const EoWorkerArgs *args, EoWaitReason reason)
{
	EoWaiting  *w;
	bool		fresh = false;

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	w = eo_wait_find(args, true);
	if (w != NULL && w->reason != reason)
	{
		fresh = true;
		w->database = args->database;
		w->pipeline_id = args->pipeline_id;
		w->worker = args->worker;
		w->reason = reason;
		w->since = GetCurrentTimestamp();
	}
	LWLockRelease(eo_shared->lock);
	return fresh;
}

void
eo_wait_clear(const EoWorkerArgs *args)
{
	EoWaiting  *w;

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	w = eo_wait_find(args, false);
	if (w != NULL)
		memset(w, 0, sizeof(EoWaiting));
	LWLockRelease(eo_shared->lock);
}

void
eo_wait_clear_database(Oid database)
{
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < EO_MAX_WAITING; i++)
		if (eo_waiting->waiting[i].database == database)
			memset(&eo_waiting->waiting[i], 0, sizeof(EoWaiting));
	LWLockRelease(eo_shared->lock);
}

/* eo_ingest.max_workers slots no worker holds. */
int
eo_free_worker_slots(void)
{
	int			n = 0;

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	for (int i = 0; i < eo_max_workers; i++)
		n += !eo_shared->slots[i].in_use;
	LWLockRelease(eo_shared->lock);
	return n;
}

/* The waiting workers of one database, palloc'd; the caller holds no lock. */
int
eo_waiting_snapshot(Oid database, EoWaiting **result)
{
	int			n = 0;

	*result = palloc(sizeof(EoWaiting) * EO_MAX_WAITING);
	if (eo_waiting == NULL)
		return 0;
	LWLockAcquire(eo_shared->lock, LW_SHARED);
	for (int i = 0; i < EO_MAX_WAITING; i++)
		if (eo_waiting->waiting[i].reason != EO_WAIT_NONE &&
			(database == InvalidOid || eo_waiting->waiting[i].database == database))
			(*result)[n++] = eo_waiting->waiting[i];
	LWLockRelease(eo_shared->lock);
	return n;
}

void
eo_wait_message(const EoWaiting *w, char *buf, size_t len)
{
	if (w->reason == EO_WAIT_MAX_WORKERS)
		snprintf(buf, len,
				 "waiting for an eo_ingest worker slot: all eo_ingest.max_workers (%d) are in use; "
				 "raise eo_ingest.max_workers (needs a restart) or pause or drop other pipelines",
				 eo_max_workers);
	else
		snprintf(buf, len,
				 "waiting for a background worker slot: all max_worker_processes (%d) are in use; "
				 "raise max_worker_processes (needs a restart) or pause or drop other pipelines",
				 max_worker_processes);
}
