/*
 * shmem.c
 *		Shared memory: worker progress slots, supervisor latches, and the
 *		SQL function that wakes the launcher (status.c reads the slots).
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "eo_ingest.h"
#include "park.h"

EoShared   *eo_shared = NULL;

const char *const eo_state_names[] = {"starting", "running", "retrying", "failed"};

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static EoWorkerSlot *my_slot = NULL;
static bool notify_registered = false;
static bool notify_pending = false;

PG_FUNCTION_INFO_V1(eo_ingest_notify_change);

static Size
eo_shmem_size(void)
{
	return add_size(offsetof(EoShared, slots),
					mul_size(sizeof(EoWorkerSlot), eo_max_workers));
}

/*
 * Shared structs of other modules (dbhold.c, slotwait.c), registered from
 * _PG_init and set up, zeroed, with eo_ingest's own; they share its lock.
 */
typedef struct EoShmemPart
{
	const char *name;
	Size		size;
	void	  **ptr;
} EoShmemPart;

static EoShmemPart eo_shmem_parts[4];
static int	eo_shmem_nparts = 0;

void
eo_shmem_add(const char *name, Size size, void **ptr)
{
	if (eo_shmem_nparts >= lengthof(eo_shmem_parts))
		elog(ERROR, "too many eo_ingest shared memory parts");
	eo_shmem_parts[eo_shmem_nparts].name = name;
	eo_shmem_parts[eo_shmem_nparts].size = size;
	eo_shmem_parts[eo_shmem_nparts].ptr = ptr;
	eo_shmem_nparts++;
}

static void
eo_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(eo_shmem_size());
	for (int i = 0; i < eo_shmem_nparts; i++)
		RequestAddinShmemSpace(eo_shmem_parts[i].size);
	RequestNamedLWLockTranche("eo_ingest", 1);
}

static void
eo_shmem_startup_hook(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	eo_shared = ShmemInitStruct("eo_ingest", eo_shmem_size(), &found);
	if (!found)
	{
		memset(eo_shared, 0, eo_shmem_size());
		eo_shared->lock = &(GetNamedLWLockTranche("eo_ingest"))->lock;
	}
	for (int i = 0; i < eo_shmem_nparts; i++)
	{
		*eo_shmem_parts[i].ptr = ShmemInitStruct(eo_shmem_parts[i].name,
												 eo_shmem_parts[i].size, &found);
		if (!found)
			memset(*eo_shmem_parts[i].ptr, 0, eo_shmem_parts[i].size);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
eo_shmem_request(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = eo_shmem_request_hook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = eo_shmem_startup_hook;
}

static void
eo_slot_release(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	my_slot->in_use = false;
	my_slot->pid = 0;
	eo_park_forget_locked(my_slot - eo_shared->slots);
	LWLockRelease(eo_shared->lock);
	my_slot = NULL;
}

/* Claim a progress slot for this worker; released at process exit. */
EoWorkerSlot *
eo_slot_acquire(const EoWorkerArgs *args)
{
	EoWorkerSlot *slot = NULL;

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < eo_max_workers; i++)
	{
		if (!eo_shared->slots[i].in_use)
		{
			slot = &eo_shared->slots[i];
			break;
		}
	}
	if (slot != NULL)
	{
		memset(slot, 0, sizeof(EoWorkerSlot));
		slot->in_use = true;
		slot->database = args->database;
		slot->pipeline_id = args->pipeline_id;
		slot->worker = args->worker;
		slot->pid = MyProcPid;
		slot->state = EO_STATE_STARTING;
		slot->lag = -1;
		slot->started_at = GetCurrentTimestamp();
		eo_park_forget_locked(slot - eo_shared->slots);
	}
	LWLockRelease(eo_shared->lock);

	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no free eo_ingest worker slot"),
				 errhint("Raise eo_ingest.max_workers and restart the server.")));
	my_slot = slot;
	before_shmem_exit(eo_slot_release, (Datum) 0);
	return slot;
}

void
eo_slot_set_state(EoWorkerSlot *slot, EoState state, const char *error)
{
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	slot->state = state;
	if (error != NULL)
	{
		strlcpy(slot->last_error, error, EO_ERROR_LEN);
		slot->last_error_at = GetCurrentTimestamp();
	}
	LWLockRelease(eo_shared->lock);
}

void
eo_slot_set_progress(EoWorkerSlot *slot, int n, const int32 *partitions,
					 const int64 *next_offsets, const int64 *high_watermarks)
{
	int64		lag = 0;

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	slot->npartitions = Min(n, EO_SLOT_PARTITIONS);
	for (int i = 0; i < n; i++)
	{
		if (i < EO_SLOT_PARTITIONS)
		{
			slot->partitions[i] = partitions[i];
			slot->high_watermarks[i] = high_watermarks[i];
		}
		if (lag >= 0 && high_watermarks[i] >= 0)
			lag += Max(high_watermarks[i] - next_offsets[i], 0);
		else
			lag = -1;
	}
	slot->lag = lag;
	LWLockRelease(eo_shared->lock);
}

static EoDatabaseEntry *
eo_database_entry(Oid database, bool create)
{
	EoDatabaseEntry *free_entry = NULL;

	for (int i = 0; i < EO_MAX_DATABASES; i++)
	{
		EoDatabaseEntry *e = &eo_shared->databases[i];

		if (e->database == database)
			return e;
		if (e->database == InvalidOid && free_entry == NULL)
			free_entry = e;
	}
	if (create && free_entry != NULL)
	{
		memset(free_entry, 0, sizeof(EoDatabaseEntry));
		free_entry->database = database;

		/*
		 * Entries are freed and taken again: a fresh one must not start at a
		 * sequence number the launcher may have seen for an earlier entry of
		 * the same database, or a wake-up would look already served.
		 */
		free_entry->wake_seq = (uint64) GetCurrentTimestamp();
	}
	return create ? free_entry : NULL;
}

uint64
eo_database_wake_seq(Oid database)
{
	EoDatabaseEntry *e;
	uint64		seq = 0;

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	e = eo_database_entry(database, false);
	if (e != NULL)
		seq = e->wake_seq;
	LWLockRelease(eo_shared->lock);
	return seq;
}

/* A supervisor announces (or withdraws) the latch that wakes it. */
void
eo_register_supervisor(Oid database, bool attach)
{
	EoDatabaseEntry *e;

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	e = eo_database_entry(database, attach);
	if (e != NULL)
	{
		e->supervisor_latch = attach ? MyLatch : NULL;
		e->supervisor_pid = attach ? MyProcPid : 0;
	}
	LWLockRelease(eo_shared->lock);
}

/* Wake this database's supervisor and the launcher now. */
void
eo_database_wake(Oid database)
{
	EoDatabaseEntry *e;

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	e = eo_database_entry(database, true);
	if (e != NULL)
	{
		e->wake_seq++;
		if (e->supervisor_latch != NULL)
			SetLatch(e->supervisor_latch);
	}
	if (eo_shared->launcher_latch != NULL)
		SetLatch(eo_shared->launcher_latch);
	LWLockRelease(eo_shared->lock);
}

/*
 * Free a database's entry: the database was dropped (seen_seq NULL), or its
 * supervisor left because the extension is not there, and no wake-up came
 * since it looked (the wake-up sequence is still *seen_seq).
 */
void
eo_database_forget(Oid database, const uint64 *seen_seq)
{
	EoDatabaseEntry *e;

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	e = eo_database_entry(database, false);
	if (e != NULL && (seen_seq == NULL || e->wake_seq == *seen_seq))
		memset(e, 0, sizeof(EoDatabaseEntry));
	LWLockRelease(eo_shared->lock);
}

/* Wake this database's supervisor and the launcher once the change commits. */
static void
eo_notify_xact_callback(XactEvent event, void *arg)
{
	if (!notify_pending)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		notify_pending = false;
		return;
	}
	if (event != XACT_EVENT_COMMIT)
		return;
	notify_pending = false;
	eo_database_wake(MyDatabaseId);
}

Datum
eo_ingest_notify_change(PG_FUNCTION_ARGS)
{
	if (eo_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("eo_ingest must be loaded via shared_preload_libraries")));
	if (!notify_registered)
	{
		RegisterXactCallback(eo_notify_xact_callback, NULL);
		notify_registered = true;
	}
	notify_pending = true;
	eo_wake_workers_at_commit(0);
	PG_RETURN_VOID();
}
