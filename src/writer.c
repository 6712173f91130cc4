/*
 * writer.c
 *		The batch writer: collapses duplicates inside a batch, writes the
 *		records into the target with one INSERT ... ON CONFLICT per record
 *		shape, finds bad records by bisection in subtransactions, and stores
 *		them as dead letters.
 *
 * All of it runs inside the batch transaction opened by worker.c.  Only data
 * errors (SQLSTATE classes 22 and 23, and a value too large for an index)
 * make a dead letter; anything else is rethrown and aborts the batch.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "batch.h"
#include "catalog.h"

typedef struct EoPlanEntry
{
	char		shape[NAMEDATALEN * 4];
	SPIPlanPtr	plan;
} EoPlanEntry;

bool
eo_is_data_error(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category == ERRCODE_DATA_EXCEPTION ||
		category == ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION ||
		sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED;
}

EoWriter *
eo_writer_create(EoMapping *map, MemoryContext parent)
{
	EoWriter   *w = palloc0(sizeof(EoWriter));
	HASHCTL		ctl;

	if (map->ncolumns >= (int) sizeof(((EoPlanEntry *) 0)->shape))
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("too many mapped columns (%d)", map->ncolumns)));
	w->map = map;
	w->cxt = AllocSetContextCreate(parent, "eo_ingest plans", ALLOCSET_SMALL_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(((EoPlanEntry *) 0)->shape);
	ctl.entrysize = sizeof(EoPlanEntry);
	ctl.hcxt = w->cxt;
	w->plans = hash_create("eo_ingest plans", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	return w;
}

void
eo_writer_destroy(EoWriter *w)
{
	HASH_SEQ_STATUS seq;
	EoPlanEntry *e;

	hash_seq_init(&seq, w->plans);
	while ((e = hash_seq_search(&seq)) != NULL)
		SPI_freeplan(e->plan);
	MemoryContextDelete(w->cxt);
}

/*
 * Duplicates inside the batch: keep the first record of each event id
 * ('skip'), or the latest by Kafka timestamp, then offset ('update').
 */
static EoMapping *dedup_map;

static int
eo_cmp_event(const void *a, const void *b)
{
	const EoRecord *ra = *(EoRecord *const *) a;
	const EoRecord *rb = *(EoRecord *const *) b;
	int			len = Min(ra->event_id_len, rb->event_id_len);
	int			c = memcmp(ra->event_id, rb->event_id, len);

	if (c != 0)
		return c;
	if (ra->event_id_len != rb->event_id_len)
		return ra->event_id_len < rb->event_id_len ? -1 : 1;
	if (dedup_map->update)
	{
		/* latest first */
		if (ra->timestamp != rb->timestamp)
			return ra->timestamp > rb->timestamp ? -1 : 1;
		if (ra->offset != rb->offset)
			return ra->offset > rb->offset ? -1 : 1;
		return ra->partition > rb->partition ? -1 : (ra->partition < rb->partition ? 1 : 0);
	}
	/* batch order: the pointers are into one array */
	return ra < rb ? -1 : (ra > rb ? 1 : 0);
}

void
eo_writer_dedup(EoWriter *w, EoRecord *recs, int n, EoCounts *counts)
{
	EoRecord  **order;
	int			m = 0;

	if (w->map->id_column < 0)
		return;
	order = palloc(sizeof(EoRecord *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		if (recs[i].status == EO_REC_OK)
			order[m++] = &recs[i];
	dedup_map = w->map;
	qsort(order, m, sizeof(EoRecord *), eo_cmp_event);
	for (int i = 1; i < m; i++)
	{
		if (order[i]->event_id_len == order[i - 1]->event_id_len &&
			memcmp(order[i]->event_id, order[i - 1]->event_id, order[i]->event_id_len) == 0)
		{
			/* order[i - 1] may itself be a duplicate; the group's winner is first */
			order[i]->status = EO_REC_DUPLICATE;
			counts->skipped++;
		}
	}
	pfree(order);
}

/* Build, or find, the statement for records with this shape. */
static SPIPlanPtr
eo_writer_plan(EoWriter *w, const char *shape)
{
	EoMapping  *map = w->map;
	EoPlanEntry *e;
	bool		found;
	StringInfoData sql;
	Oid		   *argtypes;
	int			nargs = 0;
	bool		first;

	e = hash_search(w->plans, shape, HASH_ENTER, &found);
	if (found)
		return e->plan;

	initStringInfo(&sql);
	argtypes = palloc(sizeof(Oid) * map->ncolumns);
	if (map->update && map->id_column >= 0)
		appendStringInfoString(&sql, "WITH w AS (");
	appendStringInfo(&sql, "INSERT INTO %s AS t (", map->target_name);
	first = true;
	for (int c = 0; c < map->ncolumns; c++)
	{
		if (shape[c] != '1')
			continue;
		appendStringInfo(&sql, "%s%s", first ? "" : ", ", map->columns[c].name);
		first = false;
	}
	appendStringInfoString(&sql, ") SELECT * ");
	appendStringInfoString(&sql, " FROM unnest(");
	first = true;
	for (int c = 0; c < map->ncolumns; c++)
	{
		if (shape[c] != '1')
			continue;
		argtypes[nargs] = map->columns[c].arraytype;
		appendStringInfo(&sql, "%s$%d", first ? "" : ", ", nargs + 1);
		nargs++;
		first = false;
	}
	appendStringInfoString(&sql, ") AS u(");
	first = true;
	for (int c = 0; c < map->ncolumns; c++)
	{
		if (shape[c] != '1')
			continue;
		appendStringInfo(&sql, "%sc%d", first ? "" : ", ", c);
		first = false;
	}
	appendStringInfoChar(&sql, ')');

	if (map->id_column >= 0 && !map->update)
		appendStringInfo(&sql, " ON CONFLICT (%s) DO NOTHING",
						 map->columns[map->id_column].name);
	else if (map->id_column >= 0)
	{
		appendStringInfo(&sql, " ON CONFLICT (%s) DO UPDATE SET ",
						 map->columns[map->id_column].name);
		first = true;
		for (int c = 0; c < map->ncolumns; c++)
		{
			if (shape[c] != '1' || c == map->id_column)
				continue;
			appendStringInfo(&sql, "%s%s = excluded.%s", first ? "" : ", ",
							 map->columns[c].name, map->columns[c].name);
			first = false;
		}
		if (first)
			appendStringInfo(&sql, "%s = excluded.%s",
							 map->columns[map->id_column].name,
							 map->columns[map->id_column].name);
		if (map->ts_column >= 0 && shape[map->ts_column] == '1')
			appendStringInfo(&sql, " WHERE t.%s IS NULL OR t.%s <= excluded.%s",
							 map->columns[map->ts_column].name,
							 map->columns[map->ts_column].name,
							 map->columns[map->ts_column].name);
		appendStringInfoString(&sql, " RETURNING (t.xmax = 0) AS inserted) "
							   "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM w");
	}

	e->plan = NULL;
	PG_TRY();
	{
		SPIPlanPtr	plan = SPI_prepare(sql.data, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql.data,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		e->plan = plan;
	}
	PG_CATCH();
	{
		hash_search(w->plans, shape, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pfree(sql.data);
	return e->plan;
}

/* Execute the statement for recs[idx[lo..hi)], all of one shape. */
static void
eo_writer_exec(EoWriter *w, EoRecord *recs, int *idx, int lo, int hi, EoCounts *counts)
{
	EoMapping  *map = w->map;
	EoRecord   *first = &recs[idx[lo]];
	int			nrows = hi - lo;
	SPIPlanPtr	plan = eo_writer_plan(w, first->present_shape);
	Datum	   *args = palloc(sizeof(Datum) * map->ncolumns);
	Datum	   *elems = palloc(sizeof(Datum) * nrows);
	bool	   *enulls = palloc(sizeof(bool) * nrows);
	int			nargs = 0;
	int			ret;

	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];
		int			dims[1] = {nrows};
		int			lbs[1] = {1};

		if (first->present_shape[c] != '1')
			continue;
		for (int r = 0; r < nrows; r++)
		{
			EoRecord   *rec = &recs[idx[lo + r]];
			char	   *v = rec->values[c];

			enulls[r] = rec->nulls[c] || v == NULL;
			if (enulls[r])
				elems[r] = (Datum) 0;
			else if (col->binary)
			{
				bytea	   *b = palloc(VARHDRSZ + rec->lengths[c]);

				SET_VARSIZE(b, VARHDRSZ + rec->lengths[c]);
				memcpy(VARDATA(b), v, rec->lengths[c]);
				elems[r] = PointerGetDatum(b);
			}
			else
			{
				/* input functions want a terminated string; Kafka's bytes are not */
				if (col->source == EO_SRC_KEY || col->source == EO_SRC_VALUE)
					v = pnstrdup(v, rec->lengths[c]);
				elems[r] = InputFunctionCall(&col->infunc, v, col->ioparam, col->typmod);
			}
		}
		args[nargs++] = PointerGetDatum(construct_md_array(elems, enulls, 1, dims, lbs,
														   col->typid, col->typlen,
														   col->typbyval, col->typalign));
	}

	ret = eo_catalog_execute_pinned_plan(plan, args, NULL, false, 0);
	if (map->update && map->id_column >= 0)
	{
		bool		isnull;
		int64		ins,
					upd;

		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "unexpected result %d from the batch statement", ret);
		ins = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		upd = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		counts->inserted += ins;
		counts->updated += upd;
		counts->skipped += nrows - ins - upd;
		SPI_freetuptable(SPI_tuptable);
	}
	else
	{
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "unexpected result %d from the batch statement", ret);
		counts->inserted += SPI_processed;
		counts->skipped += nrows - SPI_processed;
	}
}

/* Execute recs[idx[lo..hi)], one statement per run of equal shapes. */
static void
eo_writer_exec_range(EoWriter *w, EoRecord *recs, int *idx, int lo, int hi, EoCounts *counts)
{
	int			start = lo;

	for (int i = lo + 1; i <= hi; i++)
	{
		if (i == hi || strcmp(recs[idx[i]].present_shape, recs[idx[start]].present_shape) != 0)
		{
			eo_writer_exec(w, recs, idx, start, i, counts);
			start = i;
		}
	}
}

/*
 * Try recs[idx[lo..hi)] in a subtransaction; on a data error, split in two
 * and try each half, down to the single bad record, which becomes a dead
 * letter.  One bad record in n costs about 2 log2(n) subtransactions.
 */
static void
eo_writer_try(EoWriter *w, EoRecord *recs, int *idx, int lo, int hi, EoCounts *counts)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;
	EoCounts	local = {0};

	w->subtransactions++;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		eo_writer_exec_range(w, recs, idx, lo, hi, &local);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();

	if (edata == NULL)
	{
		counts->inserted += local.inserted;
		counts->updated += local.updated;
		counts->skipped += local.skipped;
		return;
	}
	if (!eo_is_data_error(edata->sqlerrcode))
		ReThrowError(edata);
	if (hi - lo == 1)
	{
		EoRecord   *rec = &recs[idx[lo]];

		rec->status = EO_REC_DEAD;
		rec->sqlerrcode = edata->sqlerrcode;
		rec->error = edata->detail ? psprintf("%s: %s", edata->message, edata->detail)
			: pstrdup(edata->message);
		FreeErrorData(edata);
		return;
	}
	FreeErrorData(edata);
	eo_writer_try(w, recs, idx, lo, lo + (hi - lo) / 2, counts);
	eo_writer_try(w, recs, idx, lo + (hi - lo) / 2, hi, counts);
}

static EoRecord *shape_recs;

static int
eo_cmp_shape(const void *a, const void *b)
{
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	EoRecord   *ra = &shape_recs[ia];
	EoRecord   *rb = &shape_recs[ib];
	int			c = strcmp(ra->present_shape, rb->present_shape);

	if (c != 0)
		return c;
	/* event id order: workers sharing a target lock keys in one order, no deadlocks */
	if (ra->event_id != NULL && rb->event_id != NULL)
	{
		c = memcmp(ra->event_id, rb->event_id, Min(ra->event_id_len, rb->event_id_len));
		if (c != 0)
			return c;
		if (ra->event_id_len != rb->event_id_len)
			return ra->event_id_len < rb->event_id_len ? -1 : 1;
	}
	return ia - ib;
}

void
eo_writer_write(EoWriter *w, EoRecord *recs, int n, EoCounts *counts)
{
	int		   *idx = palloc(sizeof(int) * Max(n, 1));
	int			m = 0;

	for (int i = 0; i < n; i++)
	{
		if (recs[i].status != EO_REC_OK)
			continue;
		recs[i].present_shape = palloc(w->map->ncolumns + 1);
		for (int c = 0; c < w->map->ncolumns; c++)
			recs[i].present_shape[c] = recs[i].present[c] ? '1' : '0';
		recs[i].present_shape[w->map->ncolumns] = '\0';
		idx[m++] = i;
	}
	shape_recs = recs;
	qsort(idx, m, sizeof(int), eo_cmp_shape);
	if (m > 0)
		eo_writer_try(w, recs, idx, 0, m, counts);
	for (int i = 0; i < n; i++)
		if (recs[i].status == EO_REC_DEAD)
			counts->dead++;
	pfree(idx);
}

void
eo_writer_dead_letters(EoWriter *w, int32 pipeline_id, const char *pipeline,
					   EoRecord *recs, int n)
{
	static SPIPlanPtr plan = NULL;
	Datum	   *parts,
			   *offs,
			   *keys,
			   *payloads,
			   *errors,
			   *states;
	bool	   *keynulls,
			   *paynulls;
	int			m = 0;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		args[8];
	int			ret;

	for (int i = 0; i < n; i++)
		if (recs[i].status == EO_REC_DEAD)
			m++;
	if (m == 0)
		return;

	if (plan == NULL)
	{
		Oid			types[8] = {INT4OID, TEXTOID, INT4ARRAYOID, INT8ARRAYOID,
		BYTEAARRAYOID, BYTEAARRAYOID, TEXTARRAYOID, TEXTARRAYOID};

		plan = SPI_prepare("INSERT INTO eo_ingest.dead_letters AS d "
						   "(pipeline_id, pipeline, partition, \"offset\", key, payload, error, sqlstate) "
						   "SELECT $1, $2, u.* FROM unnest($3, $4, $5, $6, $7, $8) AS u "
						   "ON CONFLICT (pipeline_id, partition, \"offset\") DO UPDATE "
						   "SET error = excluded.error, sqlstate = excluded.sqlstate, failed_at = excluded.failed_at",
						   8, types);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the dead letter statement: %s",
				 SPI_result_code_string(SPI_result));
	}

	parts = palloc(sizeof(Datum) * m);
	offs = palloc(sizeof(Datum) * m);
	keys = palloc(sizeof(Datum) * m);
	payloads = palloc(sizeof(Datum) * m);
	errors = palloc(sizeof(Datum) * m);
	states = palloc(sizeof(Datum) * m);
	keynulls = palloc(sizeof(bool) * m);
	paynulls = palloc(sizeof(bool) * m);
	m = 0;
	for (int i = 0; i < n; i++)
	{
		EoRecord   *rec = &recs[i];
		bytea	   *b;

		if (rec->status != EO_REC_DEAD)
			continue;
		parts[m] = Int32GetDatum(rec->partition);
		offs[m] = Int64GetDatum(rec->offset);
		keynulls[m] = rec->msg->key == NULL;
		if (!keynulls[m])
		{
			b = palloc(VARHDRSZ + rec->msg->key_len);
			SET_VARSIZE(b, VARHDRSZ + rec->msg->key_len);
			memcpy(VARDATA(b), rec->msg->key, rec->msg->key_len);
			keys[m] = PointerGetDatum(b);
		}
		paynulls[m] = rec->msg->payload == NULL;
		if (!paynulls[m])
		{
			b = palloc(VARHDRSZ + rec->msg->len);
			SET_VARSIZE(b, VARHDRSZ + rec->msg->len);
			memcpy(VARDATA(b), rec->msg->payload, rec->msg->len);
			payloads[m] = PointerGetDatum(b);
		}
		errors[m] = CStringGetTextDatum(rec->error ? rec->error : "unknown error");
		states[m] = CStringGetTextDatum(unpack_sql_state(rec->sqlerrcode));
		m++;
	}
	dims[0] = m;
	args[0] = Int32GetDatum(pipeline_id);
	args[1] = CStringGetTextDatum(pipeline);
	args[2] = PointerGetDatum(construct_array(parts, m, INT4OID, 4, true, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(offs, m, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[4] = PointerGetDatum(construct_md_array(keys, keynulls, 1, dims, lbs, BYTEAOID, -1, false, TYPALIGN_INT));
	args[5] = PointerGetDatum(construct_md_array(payloads, paynulls, 1, dims, lbs, BYTEAOID, -1, false, TYPALIGN_INT));
	args[6] = PointerGetDatum(construct_array(errors, m, TEXTOID, -1, false, TYPALIGN_INT));
	args[7] = PointerGetDatum(construct_array(states, m, TEXTOID, -1, false, TYPALIGN_INT));
	ret = eo_catalog_execute_plan(plan, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "storing dead letters failed: %s", SPI_result_code_string(ret));
}
