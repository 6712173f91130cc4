/*
 * dbhold.c
 *		Make way for the database commands that need a database to themselves.
 *
 * DROP DATABASE, ALTER DATABASE ... RENAME TO, ALTER DATABASE ... SET
 * TABLESPACE and CREATE DATABASE ... TEMPLATE refuse to run while another
 * session is connected to the database concerned.  PostgreSQL waits up to
 * 5 s for other sessions to leave and only asks autovacuum to go;
 * TimescaleDB's loader stops its own background workers from a
 * ProcessUtility hook first.  We do the same: the hook "holds" the database
 * (the launcher starts no supervisor there, a starting supervisor or worker
 * leaves at once), sends SIGTERM to its supervisor and workers (a batch being
 * written aborts with its transaction, so exactly once holds), waits for them
 * to be gone, and runs the command.  The hold ends with the transaction:
 * after a commit the launcher is woken so that the workers come back (rename,
 * template copy) or the database's wake-up entry is freed (drop).
 *
 * A database made with CREATE DATABASE ... TEMPLATE holds copies of the
 * original's pipelines and offsets.  Left alone they would consume the same
 * topics a second time into the copy, which nobody asked for: the table
 * eo_ingest.home_database remembers the oid of the database the pipelines
 * belong to (it is not dumped, so a restore takes the restored database's
 * oid), and a supervisor that finds another oid there pauses every pipeline
 * of its database first.
 */
#include "postgres.h"

#include <signal.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "dbhold.h"
#include "eo_ingest.h"

/* More concurrent holds than this are not taken (the command may then wait). */
#define EO_MAX_HOLDS		32
/* How long the command waits for the supervisor and workers to leave. */
#define EO_HOLD_WAIT_MS		20000

typedef struct EoHold
{
	Oid			database;
	pid_t		holder;
} EoHold;

typedef struct EoHolds
{
	EoHold		holds[EO_MAX_HOLDS];
} EoHolds;

/* A hold this backend took, released at the end of its transaction. */
typedef struct EoMyHold
{
	Oid			database;
	bool		drop;
} EoMyHold;

static EoHolds *eo_holds = NULL;
static EoMyHold my_holds[EO_MAX_HOLDS];
static int	n_my_holds = 0;

/* A database this transaction created: its supervisor starts at commit. */
static Oid	my_new_database = InvalidOid;
static bool callbacks_registered = false;

static ProcessUtility_hook_type prev_process_utility = NULL;

bool
eo_database_held(Oid database)
{
	bool		held = false;

	if (eo_holds == NULL)
		return false;
	LWLockAcquire(eo_shared->lock, LW_SHARED);
	for (int i = 0; i < EO_MAX_HOLDS; i++)
		held |= eo_holds->holds[i].database == database;
	LWLockRelease(eo_shared->lock);
	return held;
}

/* Release this backend's holds; after a commit, tell the launcher. */
static void
eo_release_holds(bool committed)
{
	if (n_my_holds == 0 && !OidIsValid(my_new_database))
		return;
	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < EO_MAX_HOLDS; i++)
		if (eo_holds->holds[i].holder == MyProcPid)
			memset(&eo_holds->holds[i], 0, sizeof(EoHold));
	LWLockRelease(eo_shared->lock);

	for (int i = 0; i < n_my_holds; i++)
	{
		if (committed && my_holds[i].drop)
			eo_database_forget(my_holds[i].database, NULL);
		else
			eo_database_wake(my_holds[i].database);
	}
	n_my_holds = 0;

	/* a copy's pipelines get paused now rather than at the next scan */
	if (committed && OidIsValid(my_new_database))
		eo_database_wake(my_new_database);
	my_new_database = InvalidOid;
}

static void
eo_dbhold_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			eo_release_holds(true);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			eo_release_holds(false);
			break;
		default:
			break;
	}
}

/* A backend that dies holding a database must not keep it held. */
static void
eo_dbhold_exit(int code, Datum arg)
{
	eo_release_holds(false);
}

/*
 * SIGTERM to the database's supervisor and workers; returns how many are
 * still there.  Pids are read from the slots the processes fill in
 * themselves and clear on exit, under the lock.
 */
static int
eo_signal_database(Oid database)
{
	pid_t		pids[1024];
	int			n = 0;

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	for (int i = 0; i < EO_MAX_DATABASES; i++)
		if (eo_shared->databases[i].database == database &&
			eo_shared->databases[i].supervisor_pid != 0)
			pids[n++] = eo_shared->databases[i].supervisor_pid;
	for (int i = 0; i < eo_max_workers && n < lengthof(pids); i++)
		if (eo_shared->slots[i].in_use && eo_shared->slots[i].database == database &&
			eo_shared->slots[i].pid != 0)
			pids[n++] = eo_shared->slots[i].pid;
	LWLockRelease(eo_shared->lock);

	for (int i = 0; i < n; i++)
		(void) kill(pids[i], SIGTERM);
	return n;
}

static bool
eo_may_hold(Oid database)
{
	HeapTuple	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(database));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		return false;
	owner = ((Form_pg_database) GETSTRUCT(tup))->datdba;
	ReleaseSysCache(tup);
	return has_privs_of_role(GetUserId(), owner);
}

/*
 * Hold the database and wait for its supervisor and workers to leave.  Only
 * for the database's owner (or a member, or a superuser): anyone else's
 * command fails its own privilege check, and must not stop pipelines first.
 */
static void
eo_hold_database(const char *dbname, bool drop)
{
	Oid			database = get_database_oid(dbname, true);
	int			free_hold = -1;
	TimestampTz deadline;
	int			left;

	if (!OidIsValid(database) || database == MyDatabaseId || !eo_may_hold(database))
		return;
	if (!callbacks_registered)
	{
		RegisterXactCallback(eo_dbhold_xact_callback, NULL);
		before_shmem_exit(eo_dbhold_exit, (Datum) 0);
		callbacks_registered = true;
	}

	LWLockAcquire(eo_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < EO_MAX_HOLDS && free_hold < 0; i++)
		if (eo_holds->holds[i].database == InvalidOid)
			free_hold = i;
	if (free_hold >= 0 && n_my_holds < EO_MAX_HOLDS)
	{
		eo_holds->holds[free_hold].database = database;
		eo_holds->holds[free_hold].holder = MyProcPid;
		my_holds[n_my_holds].database = database;
		my_holds[n_my_holds].drop = drop;
		n_my_holds++;
	}
	else
		free_hold = -1;
	LWLockRelease(eo_shared->lock);
	if (free_hold < 0)
		return;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), EO_HOLD_WAIT_MS);
	while ((left = eo_signal_database(database)) > 0 &&
		   GetCurrentTimestamp() < deadline)
	{
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 50L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	if (left > 0)
		ereport(WARNING,
				(errmsg("%d eo_ingest processes are still connected to database \"%s\"",
						left, dbname),
				 errdetail("They were asked to exit %d s ago.", EO_HOLD_WAIT_MS / 1000)));
}

/* The database a command needs to itself, or NULL. */
static const char *
eo_exclusive_database(Node *parsetree, bool *drop)
{
	ListCell   *lc;

	*drop = false;
	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			*drop = true;
			return ((DropdbStmt *) parsetree)->dbname;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				return ((RenameStmt *) parsetree)->subname;
			return NULL;
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
					return defGetString(opt);
			}
			return "template1";
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "tablespace") == 0)
					return ((AlterDatabaseStmt *) parsetree)->dbname;
			}
			return NULL;
		default:
			return NULL;
	}
}

static void
eo_dbhold_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				  ProcessUtilityContext context, ParamListInfo params,
				  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	bool		drop;
	const char *dbname = eo_exclusive_database(pstmt->utilityStmt, &drop);

	if (dbname != NULL && eo_shared != NULL && eo_holds != NULL)
		eo_hold_database(dbname, drop);

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);

	if (IsA(pstmt->utilityStmt, CreatedbStmt) && n_my_holds > 0)
		my_new_database = get_database_oid(((CreatedbStmt *) pstmt->utilityStmt)->dbname, true);
}

void
eo_dbhold_init(void)
{
	eo_shmem_add("eo_ingest holds", sizeof(EoHolds), (void **) &eo_holds);
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = eo_dbhold_utility;
}

/*
 * Called by the supervisor in its transaction, SPI connected: pause the
 * pipelines of a database copied from another one.  Catalogs older than 0.3
 * have no home_database table and are left alone.
 */
void
eo_dbhold_check_copy(void)
{
	Oid			nsp = get_namespace_oid(EO_EXTENSION_NAME, true);
	bool		isnull;
	Oid			home;
	char		sql[256];

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("home_database", nsp)))
		return;
	if (SPI_execute("SELECT database FROM eo_ingest.home_database", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading eo_ingest.home_database failed");
	if (SPI_processed == 0)
	{
		snprintf(sql, sizeof(sql), "INSERT INTO eo_ingest.home_database VALUES (%u)", MyDatabaseId);
		if (SPI_execute(sql, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "writing eo_ingest.home_database failed");
		return;
	}
	home = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!isnull && home == MyDatabaseId)
		return;

	if (SPI_execute("UPDATE eo_ingest.pipelines SET enabled = false, config_version = config_version + 1 "
					"WHERE enabled", false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "pausing the pipelines of a copied database failed");
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg_plural("eo_ingest paused %lu pipeline in database \"%s\", a copy of database %u",
							   "eo_ingest paused %lu pipelines in database \"%s\", a copy of database %u",
							   (unsigned long) SPI_processed,
							   (unsigned long) SPI_processed, get_database_name(MyDatabaseId), home),
				 errhint("Resume them with eo_ingest.resume_pipeline once they should consume into this database.")));
	snprintf(sql, sizeof(sql), "UPDATE eo_ingest.home_database SET database = %u", MyDatabaseId);
	if (SPI_execute(sql, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "writing eo_ingest.home_database failed");
	/* the supervisor's read-only query that follows must see the pause */
	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();
}
