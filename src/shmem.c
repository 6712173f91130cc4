/*
 * shmem.c
 *		Shared memory: worker progress slots, supervisor latches, and the
 *		SQL functions that read them or wake the launcher.
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

EoShared   *eo_shared = NULL;

const char *const eo_state_names[] = {"starting", "running", "retrying", "failed"};

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static EoWorkerSlot *my_slot = NULL;
static bool notify_registered = false;
static bool notify_pending = false;

PG_FUNCTION_INFO_V1(eo_ingest_worker_status);
PG_FUNCTION_INFO_V1(eo_ingest_partition_status);
PG_FUNCTION_INFO_V1(eo_ingest_notify_change);

static Size
eo_shmem_size(void)
{
	return add_size(offsetof(EoShared, slots),
					mul_size(sizeof(EoWorkerSlot), eo_max_workers));
}

static void
eo_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(eo_shmem_size());
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

/* Wake this database's supervisor and the launcher once the change commits. */
static void
eo_notify_xact_callback(XactEvent event, void *arg)
{
	EoDatabaseEntry *e;

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

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	e = eo_database_entry(MyDatabaseId, true);
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
	PG_RETURN_VOID();
}

Datum
eo_ingest_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (eo_shared == NULL)
		PG_RETURN_VOID();

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoWorkerSlot *s = &eo_shared->slots[i];
		Datum		values[9];
		bool		nulls[9] = {0};

		if (!s->in_use)
			continue;
		values[0] = ObjectIdGetDatum(s->database);
		values[1] = Int32GetDatum(s->pipeline_id);
		values[2] = Int32GetDatum(s->worker);
		values[3] = Int32GetDatum(s->pid);
		values[4] = CStringGetTextDatum(eo_state_names[s->state]);
		values[5] = Int64GetDatum(s->lag);
		nulls[5] = s->lag < 0;
		values[6] = CStringGetTextDatum(s->last_error);
		nulls[6] = s->last_error[0] == '\0';
		values[7] = TimestampTzGetDatum(s->last_error_at);
		nulls[7] = s->last_error_at == 0;
		values[8] = TimestampTzGetDatum(s->started_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(eo_shared->lock);
	PG_RETURN_VOID();
}

Datum
eo_ingest_partition_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (eo_shared == NULL)
		PG_RETURN_VOID();

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoWorkerSlot *s = &eo_shared->slots[i];

		if (!s->in_use)
			continue;
		for (int p = 0; p < s->npartitions; p++)
		{
			Datum		values[4];
			bool		nulls[4] = {0};

			values[0] = ObjectIdGetDatum(s->database);
			values[1] = Int32GetDatum(s->pipeline_id);
			values[2] = Int32GetDatum(s->partitions[p]);
			values[3] = Int64GetDatum(s->high_watermarks[p]);
			nulls[3] = s->high_watermarks[p] < 0;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	LWLockRelease(eo_shared->lock);
	PG_RETURN_VOID();
}
