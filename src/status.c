/*
 * status.c
 *		The set-returning functions behind pipeline_status and
 *		partition_progress: what the workers publish in shared memory, and
 *		the pipelines that wait for a worker slot.
 *
 * Every C symbol a shipped script ever bound stays, with its result shape
 * (the rule is in src/kafka_sql.c).  All of them apply today's rule: a lag
 * or high watermark is shown only while the brokers told it less than
 * EO_WATERMARKS_FRESH_MS ago, so that nobody reads 0 while records wait
 * behind an outage; and all of them list the pipelines waiting for a slot.
 *
 *	symbol									bound by
 *	eo_ingest_worker_status					0.1, 0.2
 *	eo_ingest_partition_status				0.1, 0.2
 *	eo_ingest_worker_status_0_3				0.2--0.3, 0.3 (+ watermarks_at)
 *	eo_ingest_partition_status_0_3			0.2--0.3, 0.3 (+ watermarks_at)
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "eo_ingest.h"
#include "slotwait.h"

/* How old a watermark read may be and still count. */
#define EO_WATERMARKS_FRESH_MS	5000

PG_FUNCTION_INFO_V1(eo_ingest_worker_status);
PG_FUNCTION_INFO_V1(eo_ingest_partition_status);
PG_FUNCTION_INFO_V1(eo_ingest_worker_status_0_3);
PG_FUNCTION_INFO_V1(eo_ingest_partition_status_0_3);

static bool
eo_watermarks_fresh(TimestampTz at, TimestampTz now)
{
	return at != 0 && !TimestampDifferenceExceeds(at, now, EO_WATERMARKS_FRESH_MS);
}

/*
 * The materialized result of a status function, or NULL when there is no
 * shared memory to read (the library was not preloaded).  Rows are built
 * with every column; the declared result takes its first natts.
 */
static ReturnSetInfo *
eo_status_start(FunctionCallInfo fcinfo, int natts)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != natts)
		elog(ERROR, "eo_ingest status function declared with %d columns, expected %d",
			 rsinfo->setDesc->natts, natts);
	return eo_shared != NULL ? rsinfo : NULL;
}

static void
eo_worker_rows(FunctionCallInfo fcinfo, int natts)
{
	ReturnSetInfo *rsinfo = eo_status_start(fcinfo, natts);
	TimestampTz now = GetCurrentTimestamp();
	EoWaiting  *waiting;
	int			nwaiting;

	if (rsinfo == NULL)
		return;

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoWorkerSlot *s = &eo_shared->slots[i];
		Datum		values[10];
		bool		nulls[10] = {0};

		if (!s->in_use)
			continue;
		values[0] = ObjectIdGetDatum(s->database);
		values[1] = Int32GetDatum(s->pipeline_id);
		values[2] = Int32GetDatum(s->worker);
		values[3] = Int32GetDatum(s->pid);
		values[4] = CStringGetTextDatum(eo_state_names[s->state]);
		values[5] = Int64GetDatum(s->lag);
		nulls[5] = s->lag < 0 || !eo_watermarks_fresh(s->watermarks_at, now);
		values[6] = CStringGetTextDatum(s->last_error);
		nulls[6] = s->last_error[0] == '\0';
		values[7] = TimestampTzGetDatum(s->last_error_at);
		nulls[7] = s->last_error_at == 0;
		values[8] = TimestampTzGetDatum(s->started_at);
		values[9] = TimestampTzGetDatum(s->watermarks_at);
		nulls[9] = s->watermarks_at == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(eo_shared->lock);

	/* a waiting pipeline is "starting", and says what it waits for */
	nwaiting = eo_waiting_snapshot(InvalidOid, &waiting);
	for (int i = 0; i < nwaiting; i++)
	{
		Datum		values[10];
		bool		nulls[10] = {0};
		char		msg[EO_ERROR_LEN];

		eo_wait_message(&waiting[i], msg, sizeof(msg));
		values[0] = ObjectIdGetDatum(waiting[i].database);
		values[1] = Int32GetDatum(waiting[i].pipeline_id);
		values[2] = Int32GetDatum(waiting[i].worker);
		nulls[3] = true;
		values[4] = CStringGetTextDatum(eo_state_names[EO_STATE_STARTING]);
		nulls[5] = true;
		values[6] = CStringGetTextDatum(msg);
		values[7] = TimestampTzGetDatum(waiting[i].since);
		nulls[8] = true;
		nulls[9] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(waiting);
}

static void
eo_partition_rows(FunctionCallInfo fcinfo, int natts)
{
	ReturnSetInfo *rsinfo = eo_status_start(fcinfo, natts);
	TimestampTz now = GetCurrentTimestamp();

	if (rsinfo == NULL)
		return;

	LWLockAcquire(eo_shared->lock, LW_SHARED);
	for (int i = 0; i < eo_max_workers; i++)
	{
		EoWorkerSlot *s = &eo_shared->slots[i];
		bool		fresh = eo_watermarks_fresh(s->watermarks_at, now);

		if (!s->in_use)
			continue;
		for (int p = 0; p < s->npartitions; p++)
		{
			Datum		values[5];
			bool		nulls[5] = {0};

			values[0] = ObjectIdGetDatum(s->database);
			values[1] = Int32GetDatum(s->pipeline_id);
			values[2] = Int32GetDatum(s->partitions[p]);
			values[3] = Int64GetDatum(s->high_watermarks[p]);
			nulls[3] = s->high_watermarks[p] < 0 || !fresh;
			values[4] = TimestampTzGetDatum(s->watermarks_at);
			nulls[4] = s->watermarks_at == 0;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	LWLockRelease(eo_shared->lock);
}

Datum
eo_ingest_worker_status(PG_FUNCTION_ARGS)
{
	eo_worker_rows(fcinfo, 9);
	PG_RETURN_VOID();
}

Datum
eo_ingest_worker_status_0_3(PG_FUNCTION_ARGS)
{
	eo_worker_rows(fcinfo, 10);
	PG_RETURN_VOID();
}

Datum
eo_ingest_partition_status(PG_FUNCTION_ARGS)
{
	eo_partition_rows(fcinfo, 4);
	PG_RETURN_VOID();
}

Datum
eo_ingest_partition_status_0_3(PG_FUNCTION_ARGS)
{
	eo_partition_rows(fcinfo, 5);
	PG_RETURN_VOID();
}
