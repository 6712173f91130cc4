/*
 * wakeup.c
 *		Waking pipeline workers when their pipeline's row changes.
 *
 * The functions that change a pipeline name it (eo_wake_workers_at_commit);
 * when the transaction commits, a callback bumps wake_seq in each of that
 * pipeline's worker slots and sets the worker's latch.  A worker compares
 * wake_seq with the value it saw last and reads its pipeline's row only when
 * it moved, so idle workers run no transaction to notice changes.  A
 * transaction that names no pipeline (_notify_change alone, as an older
 * install script calls it after writing the catalog itself) wakes every
 * worker of the database.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/latch.h"

#include "eo_ingest.h"

/* More changed pipelines than this in one transaction wake the database's workers */
#define EO_WAKE_MAX 8

static bool wake_registered = false;
static int32 wake_pipelines[EO_WAKE_MAX];
static int	wake_npipelines = 0;
static bool wake_unnamed = false;	/* a change of some pipeline of the database */
static bool wake_all = false;	/* too many pipelines named */

static void
eo_wake_reset(void)
{
	wake_npipelines = 0;
	wake_unnamed = false;
	wake_all = false;
}

static void
eo_wake_xact_callback(XactEvent event, void *arg)
{
	if (wake_npipelines == 0 && !wake_unnamed && !wake_all)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		eo_wake_reset();
		return;
	}
	if (event != XACT_EVENT_COMMIT)
		return;

	wake_all |= wake_npipelines == 0;
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoWorkerSlot *s = &eo_shared->slots[i];
		bool		mine = wake_all;

		if (!s->in_use || s->database != MyDatabaseId)
			continue;
		for (int k = 0; k < wake_npipelines && !mine; k++)
			mine = wake_pipelines[k] == s->pipeline_id;
		if (!mine)
			continue;
		s->wake_seq++;
		if (s->latch != NULL)
			SetLatch(s->latch);
	}
	LWLockRelease(eo_shared->lock);
	eo_wake_reset();
}

/*
 * Wake the workers of pipeline_id once this transaction commits; 0: of the
 * pipelines named in it, or of every pipeline of the database if none is.
 */
void
eo_wake_workers_at_commit(int32 pipeline_id)
{
	if (eo_shared == NULL)
		return;
	if (!wake_registered)
	{
		RegisterXactCallback(eo_wake_xact_callback, NULL);
		wake_registered = true;
	}
	if (pipeline_id == 0)
		wake_unnamed = true;
	else if (wake_npipelines == EO_WAKE_MAX)
		wake_all = true;
	else
		wake_pipelines[wake_npipelines++] = pipeline_id;
}

/* This process is the slot's worker: wake its latch. */
void
eo_wakeup_attach(EoWorkerSlot *slot)
{
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	slot->latch = MyLatch;
	slot->wake_seq = 0;
	LWLockRelease(eo_shared->lock);
}

/* How often the slot's pipeline changed since its worker started. */
uint64
eo_wakeup_seq(EoWorkerSlot *slot)
{
	uint64		seq;

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	seq = slot->wake_seq;
	LWLockRelease(eo_shared->lock);
	return seq;
}
