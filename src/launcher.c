/*
 * launcher.c
 *		The launcher (one per cluster) and the supervisors (one per database
 *		with pipelines).
 *
 * The launcher connects to no database; it reads pg_database and keeps a
 * supervisor in every database that may hold pipelines.  A supervisor exits
 * when its database lacks the extension, and is started again when a
 * pipeline function commits there or at the next scan.  The supervisor keeps
 * one dynamic worker per enabled pipeline and worker number, as the
 * pipeline's owner, and stops the ones no longer wanted.  The launcher also
 * starts the watcher of parked pipelines when a worker asks for it.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "dbhold.h"
#include "eo_ingest.h"
#include "park.h"
#include "slotwait.h"

typedef struct EoChild
{
	Oid			database;
	BackgroundWorkerHandle *handle;
	uint64		started_seq;
	bool		running;
} EoChild;

typedef struct EoWorkerEntry
{
	EoWorkerArgs args;
	BackgroundWorkerHandle *handle;
	bool		running;
	bool		wanted;
	TimestampTz started_at;
	TimestampTz restart_after;
	int			quick_exits;
} EoWorkerEntry;

/* The fields every eo_ingest background worker shares. */
static void
eo_bgw_init(BackgroundWorker *worker, const char *function, const char *type)
{
	memset(worker, 0, sizeof(BackgroundWorker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, EO_LIBRARY_NAME);
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", type);
}

void
eo_register_launcher(void)
{
	BackgroundWorker worker;

	eo_bgw_init(&worker, "eo_launcher_main", "eo_ingest launcher");
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_name, BGW_MAXLEN, "eo_ingest launcher");
	RegisterBackgroundWorker(&worker);
}

static void
eo_launcher_detach(int code, Datum arg)
{
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	if (eo_shared->launcher_pid == MyProcPid)
	{
		eo_shared->launcher_latch = NULL;
		eo_shared->launcher_pid = 0;
	}
	LWLockRelease(eo_shared->lock);
}

/* Databases that accept connections and are not templates. */
static List *
eo_database_list(void)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext outer = CurrentMemoryContext;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datistemplate)
			continue;
		old = MemoryContextSwitchTo(outer);
		result = lappend_oid(result, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return result;
}

static EoChild *
eo_child_for(List **children, Oid database)
{
	ListCell   *lc;
	EoChild    *child;

	foreach(lc, *children)
	{
		child = (EoChild *) lfirst(lc);
		if (child->database == database)
			return child;
	}
	child = MemoryContextAllocZero(TopMemoryContext, sizeof(EoChild));
	child->database = database;
	*children = lappend(*children, child);
	return child;
}

static void
eo_start_supervisor(EoChild *child)
{
	BackgroundWorker worker;

	/* a DROP, RENAME or template copy of the database is under way */
	if (eo_database_held(child->database))
		return;

	eo_bgw_init(&worker, "eo_supervisor_main", "eo_ingest supervisor");
	snprintf(worker.bgw_name, BGW_MAXLEN, "eo_ingest supervisor for database %u",
			 child->database);
	worker.bgw_main_arg = ObjectIdGetDatum(child->database);
	worker.bgw_notify_pid = MyProcPid;

	child->started_seq = eo_database_wake_seq(child->database);
	if (!RegisterDynamicBackgroundWorker(&worker, &child->handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start eo_ingest supervisor for database %u",
						child->database),
				 errhint("Raise max_worker_processes.")));
		child->handle = NULL;
		child->running = false;
		return;
	}
	child->running = true;
}

static void
eo_child_refresh(EoChild *child)
{
	pid_t		pid;

	if (!child->running || child->handle == NULL)
		return;
	switch (GetBackgroundWorkerPid(child->handle, &pid))
	{
		case BGWH_STARTED:
		case BGWH_NOT_YET_STARTED:
			break;
		case BGWH_STOPPED:
			pfree(child->handle);
			child->handle = NULL;
			child->running = false;
			break;
		case BGWH_POSTMASTER_DIED:
			proc_exit(1);
	}
}

/*
 * The watcher of parked pipelines (watcher.c), started when a worker asks
 * to park and none runs.  Without a background worker slot for it, workers
 * do not park for a while (park.c).
 */
static BackgroundWorkerHandle *watcher_handle = NULL;

static void
eo_launcher_watcher(void)
{
	BackgroundWorker worker;
	pid_t		pid;

	if (watcher_handle != NULL)
	{
		switch (GetBackgroundWorkerPid(watcher_handle, &pid))
		{
			case BGWH_STARTED:
			case BGWH_NOT_YET_STARTED:
				return;
			case BGWH_STOPPED:
				pfree(watcher_handle);
				watcher_handle = NULL;
				break;
			case BGWH_POSTMASTER_DIED:
				proc_exit(1);
		}
	}
	if (!eo_park_watcher_due())
		return;
	eo_bgw_init(&worker, "eo_watcher_main", "eo_ingest watcher");
	/* no database: the park records carry everything it needs */
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	snprintf(worker.bgw_name, BGW_MAXLEN, "eo_ingest watcher");
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &watcher_handle))
	{
		watcher_handle = NULL;
		ereport(LOG,
				(errmsg("could not start the eo_ingest watcher"),
				 errdetail("Idle pipelines keep their own Kafka consumers for a minute."),
				 errhint("Raise max_worker_processes.")));
		eo_park_watcher_unavailable();
	}
}

void
eo_launcher_main(Datum arg)
{
	List	   *children = NIL;
	TimestampTz next_scan = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	eo_shared->launcher_latch = MyLatch;
	eo_shared->launcher_pid = MyProcPid;
	LWLockRelease(eo_shared->lock);
	before_shmem_exit(eo_launcher_detach, (Datum) 0);

	ereport(LOG, (errmsg("eo_ingest launcher started")));

	for (;;)
	{
		TimestampTz now;
		ListCell   *lc;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		foreach(lc, children)
			eo_child_refresh((EoChild *) lfirst(lc));

		now = GetCurrentTimestamp();
		if (now >= next_scan)
		{
			List	   *dbs = eo_database_list();

			foreach(lc, dbs)
			{
				EoChild    *child = eo_child_for(&children, lfirst_oid(lc));

				if (!child->running)
					eo_start_supervisor(child);
			}
			list_free(dbs);
			next_scan = TimestampTzPlusMilliseconds(now, eo_launcher_naptime * 1000);
		}

		/* Databases where a pipeline function committed since we last looked */
		for (int i = 0; i < EO_MAX_DATABASES; i++)
		{
			Oid			database;
			uint64		seq;
			EoChild    *child;

			LWLockAcquire(eo_shared->lock, LW_SHARED);
			database = eo_shared->databases[i].database;
			seq = eo_shared->databases[i].wake_seq;
			LWLockRelease(eo_shared->lock);
			if (!OidIsValid(database))
				continue;
			child = eo_child_for(&children, database);
			if (!child->running && seq != child->started_seq)
				eo_start_supervisor(child);
		}
		eo_launcher_watcher();

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* This supervisor's workers, kept in TopMemoryContext */
static List *supervisor_entries = NIL;

/*
 * Whatever ends the supervisor ends its workers too: a database command
 * waiting for the database (dbhold.c) stops the supervisor, and no one
 * else would stop them.
 */
static void
eo_supervisor_detach(int code, Datum arg)
{
	ListCell   *lc;

	foreach(lc, supervisor_entries)
	{
		EoWorkerEntry *e = (EoWorkerEntry *) lfirst(lc);

		if (e->running)
			TerminateBackgroundWorker(e->handle);
	}
	eo_wait_clear_database(MyDatabaseId);
	eo_register_supervisor(MyDatabaseId, false);
}

static void
eo_start_worker(EoWorkerEntry *e)
{
	BackgroundWorker worker;

	eo_bgw_init(&worker, "eo_worker_main", "eo_ingest worker");
	snprintf(worker.bgw_name, BGW_MAXLEN, "eo_ingest worker for pipeline %d/%d",
			 e->args.pipeline_id, e->args.worker);
	worker.bgw_main_arg = Int32GetDatum(e->args.pipeline_id);
	worker.bgw_notify_pid = MyProcPid;
	memcpy(worker.bgw_extra, &e->args, sizeof(EoWorkerArgs));

	e->started_at = GetCurrentTimestamp();
	/* a slot frees when a worker exits: try again at the next round */
	e->restart_after = TimestampTzPlusMilliseconds(e->started_at, 1000);
	if (eo_free_worker_slots() == 0)
	{
		if (eo_wait_note(&e->args, EO_WAIT_MAX_WORKERS))
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("eo_ingest pipeline %d waits for a worker slot", e->args.pipeline_id),
					 errdetail("All eo_ingest.max_workers (%d) slots are in use.", eo_max_workers),
					 errhint("Raise eo_ingest.max_workers, or pause or drop other pipelines.")));
		return;
	}
	if (!RegisterDynamicBackgroundWorker(&worker, &e->handle))
	{
		if (eo_wait_note(&e->args, EO_WAIT_BGWORKER))
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("eo_ingest pipeline %d waits for a background worker slot",
							e->args.pipeline_id),
					 errdetail("All max_worker_processes (%d) slots are in use.", max_worker_processes),
					 errhint("Raise max_worker_processes, or pause or drop other pipelines.")));
		e->handle = NULL;
		return;
	}
	eo_wait_clear(&e->args);
	e->running = true;
}

static void eo_supervisor_read_xact(List **entries, bool *installed);

/*
 * Read the wanted workers; false when the extension is not installed.
 *
 * The supervisor must never hold up its users' commands: it reads two
 * tables of the extension in one transaction, and DROP EXTENSION (or an
 * upgrade) locks the extension's tables one after another, so waiting for
 * the second while holding the first could deadlock with it, and the
 * deadlock detector may pick the user's command as the victim.  So the
 * supervisor's lock waits time out (eo_supervisor_main sets lock_timeout
 * well below deadlock_timeout's default) and a timed-out read is simply
 * tried again at the next wake-up, with every entry kept as it was.
 */
static bool
eo_supervisor_read(List **entries)
{
	bool		installed = true;
	ListCell   *lc;
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		eo_supervisor_read_xact(entries, &installed);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			PG_RE_THROW();
		FlushErrorState();
		AbortCurrentTransaction();
		foreach(lc, *entries)
			((EoWorkerEntry *) lfirst(lc))->wanted = ((EoWorkerEntry *) lfirst(lc))->running;
		ereport(DEBUG1, (errmsg("eo_ingest supervisor: %s; reading again later", edata->message)));
		FreeErrorData(edata);
		pgstat_report_activity(STATE_IDLE, NULL);
		return true;
	}
	PG_END_TRY();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return installed;
}

static void
eo_supervisor_read_xact(List **entries, bool *installed)
{
	ListCell   *lc;

	foreach(lc, *entries)
		((EoWorkerEntry *) lfirst(lc))->wanted = false;

	PushActiveSnapshot(GetTransactionSnapshot());
	*installed = OidIsValid(get_extension_oid(EO_EXTENSION_NAME, true));
	if (*installed)
	{
		int			ret;

		pgstat_report_activity(STATE_RUNNING, "reading eo_ingest.pipelines");
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		eo_dbhold_check_copy();
		ret = SPI_execute("SELECT id, owner::oid, workers FROM eo_ingest.pipelines WHERE enabled",
						  true, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading eo_ingest.pipelines failed: %d", ret);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			int32		id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
			Oid			owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
			int32		nworkers = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));

			for (int w = 0; w < nworkers; w++)
			{
				EoWorkerEntry *found = NULL;

				foreach(lc, *entries)
				{
					EoWorkerEntry *e = (EoWorkerEntry *) lfirst(lc);

					if (e->args.pipeline_id == id && e->args.worker == w &&
						e->args.nworkers == nworkers && e->args.owner == owner)
					{
						found = e;
						break;
					}
				}
				if (found == NULL)
				{
					/* the list outlives SPI_finish, which frees SPI's context */
					MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

					found = palloc0(sizeof(EoWorkerEntry));
					found->args.database = MyDatabaseId;
					found->args.owner = owner;
					found->args.pipeline_id = id;
					found->args.worker = w;
					found->args.nworkers = nworkers;
					*entries = lappend(*entries, found);
					MemoryContextSwitchTo(old);
				}
				found->wanted = true;
			}
		}
		SPI_finish();
	}
	PopActiveSnapshot();
}

static void
eo_supervisor_reconcile(List **entries)
{
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();

	foreach(lc, *entries)
	{
		EoWorkerEntry *e = (EoWorkerEntry *) lfirst(lc);
		pid_t		pid;

		if (e->running)
		{
			switch (GetBackgroundWorkerPid(e->handle, &pid))
			{
				case BGWH_STARTED:
				case BGWH_NOT_YET_STARTED:
					break;
				case BGWH_STOPPED:
					pfree(e->handle);
					e->handle = NULL;
					e->running = false;
					/* a worker that keeps dying quickly is restarted ever more slowly */
					if (TimestampDifferenceExceeds(e->started_at, now, 30000))
						e->quick_exits = 0;
					else if (eo_free_worker_slots() > 0)
						e->quick_exits = Min(e->quick_exits + 1, 5);
					/* else it found no eo_ingest slot: eo_start_worker notes the wait */
					e->restart_after = TimestampTzPlusMilliseconds(now, 1000L << e->quick_exits);
					break;
				case BGWH_POSTMASTER_DIED:
					proc_exit(1);
			}
		}
		if (!e->wanted && e->running)
			TerminateBackgroundWorker(e->handle);
	}

	foreach(lc, *entries)
	{
		EoWorkerEntry *e = (EoWorkerEntry *) lfirst(lc);

		if (e->wanted && !e->running && now >= e->restart_after)
			eo_start_worker(e);
		else if (!e->wanted && !e->running)
		{
			eo_wait_clear(&e->args);
			*entries = foreach_delete_current(*entries, lc);
			pfree(e);
		}
	}
}

void
eo_supervisor_main(Datum arg)
{
	Oid			database = DatumGetObjectId(arg);
	List	  **entries = &supervisor_entries;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(database, InvalidOid, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/* never hold up users' commands: see eo_supervisor_read */
	SetConfigOption("lock_timeout", "50", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("eo_ingest supervisor");

	eo_register_supervisor(database, true);
	before_shmem_exit(eo_supervisor_detach, (Datum) 0);
	/* after registering: a command that holds the database now sees us */
	if (eo_database_held(database))
		proc_exit(0);

	for (;;)
	{
		uint64		seen_seq;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		seen_seq = eo_database_wake_seq(database);
		if (!eo_supervisor_read(entries))
		{
			/* no extension: free the wake-up entry unless a wake-up came since */
			eo_database_forget(database, &seen_seq);
			proc_exit(0);
		}
		eo_supervisor_reconcile(entries);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
