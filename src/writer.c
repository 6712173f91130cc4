/*
 * writer.c
 *		The batch writer: collapses duplicates inside a batch, writes the
 *		records into the target with one INSERT ... ON CONFLICT per record
 *		shape, and finds bad records by bisection in subtransactions (the
 *		ledger, ledger.c, stores them as dead letters).
 *
 * All of it runs inside the batch transaction opened by worker.c, on records
 * record.c has decoded already.  While writing, only data errors (SQLSTATE
 * classes 22 and 23, and a value too large for an index) make a dead letter;
 * anything else is rethrown and aborts the batch.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "batch.h"
#include "eo_ingest.h"
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
 * Duplicates inside the batch are found by sorting on the event id.  The
 * sort runs over an array of keys holding the id's first 16 bytes as two
 * integers, so that most comparisons touch neither the record nor the id
 * (a uuid fits whole; ids sharing long prefixes, as sequential ones do, are
 * told apart without a memcmp).  The order is the bytes' (memcmp, then the
 * shorter first): any total order every worker agrees on will do.
 */
typedef struct EoIdKey
{
	uint64		k0;				/* bytes 0-7 of the id, big-endian, zero
								 * padded */
	uint64		k1;				/* bytes 8-15 */
	EoRecord   *rec;
} EoIdKey;

static uint64
eo_id_word(const char *id, int len, int from)
{
	uint64		w = 0;

	for (int i = from; i < from + 8; i++)
		w = (w << 8) | (i < len ? (unsigned char) id[i] : 0);
	return w;
}

/* Same id bytes?  The keys are equal already. */
static int
eo_id_tail_cmp(const EoRecord *ra, const EoRecord *rb)
{
	int			len = Min(ra->event_id_len, rb->event_id_len);
	int			c = len > 16 ? memcmp(ra->event_id + 16, rb->event_id + 16, len - 16) : 0;

	if (c != 0)
		return c;
	if (ra->event_id_len != rb->event_id_len)
		return ra->event_id_len < rb->event_id_len ? -1 : 1;
	return 0;
}

/*
 * By event id; among duplicates keep the first record of each event id
 * ('skip'), or the latest by Kafka timestamp, then offset ('update').
 */
static inline int
eo_cmp_event(const EoIdKey *ka, const EoIdKey *kb, const EoMapping *map)
{
	const EoRecord *ra = ka->rec;
	const EoRecord *rb = kb->rec;
	int			c;

	if (ka->k0 != kb->k0)
		return ka->k0 < kb->k0 ? -1 : 1;
	if (ka->k1 != kb->k1)
		return ka->k1 < kb->k1 ? -1 : 1;
	c = eo_id_tail_cmp(ra, rb);
	if (c != 0)
		return c;
	if (map->update)
	{
		/* latest first */
		if (ra->timestamp != rb->timestamp)
			return ra->timestamp > rb->timestamp ? -1 : 1;
		if (ra->offset != rb->offset)
			return ra->offset > rb->offset ? -1 : 1;
		return ra->partition > rb->partition ? -1 : (ra->partition < rb->partition ? 1 : 0);
	}
	/* batch order: the records are one array */
	return ra < rb ? -1 : (ra > rb ? 1 : 0);
}

/* eo_sort_ids(): a quicksort with the comparison inlined */
#define ST_SORT eo_sort_ids
#define ST_ELEMENT_TYPE EoIdKey
#define ST_COMPARE(a, b, arg) eo_cmp_event(a, b, arg)
#define ST_COMPARE_ARG_TYPE const EoMapping
#define ST_SCOPE static
#define ST_DEFINE
#include "lib/sort_template.h"

void
eo_writer_dedup(EoWriter *w, EoRecord *recs, int n, EoCounts *counts)
{
	EoIdKey    *keys;
	EoRecord  **order;
	int			m = 0;

	for (int i = 0; i < n; i++)
	{
		recs[i].status = recs[i].decoded_ok ? EO_REC_OK : EO_REC_DEAD;
		recs[i].next_dup = NULL;
	}
	w->order = NULL;
	w->norder = 0;
	if (w->map->id_column < 0)
		return;
	keys = palloc(sizeof(EoIdKey) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		EoRecord   *rec = &recs[i];

		if (rec->status != EO_REC_OK)
			continue;
		keys[m].k0 = eo_id_word(rec->event_id, rec->event_id_len, 0);
		keys[m].k1 = eo_id_word(rec->event_id, rec->event_id_len, 8);
		keys[m].rec = rec;
		m++;
	}
	eo_sort_ids(keys, m, w->map);
	order = palloc(sizeof(EoRecord *) * Max(m, 1));
	for (int i = 0; i < m; i++)
	{
		order[i] = keys[i].rec;
		if (i > 0 && keys[i].k0 == keys[i - 1].k0 && keys[i].k1 == keys[i - 1].k1 &&
			eo_id_tail_cmp(order[i], order[i - 1]) == 0)
		{
			/* order[i - 1] may itself be a duplicate; the group's winner is first */
			order[i]->status = EO_REC_DUPLICATE;
			order[i - 1]->next_dup = order[i];
			counts->skipped++;
		}
	}
	pfree(keys);
	/* eo_writer_write takes this order: no second sort by event id */
	w->order = order;
	w->norder = m;
}

/* The statement kept for key (a shape, or the applier's), or NULL. */
SPIPlanPtr
eo_writer_plan_find(EoWriter *w, const char *key)
{
	EoPlanEntry *e = hash_search(w->plans, key, HASH_FIND, NULL);

	return e != NULL ? e->plan : NULL;
}

/* Prepare sql and keep it, for the mapping's lifetime, as key's statement. */
SPIPlanPtr
eo_writer_plan_keep(EoWriter *w, const char *key, const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);
	EoPlanEntry *e;

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	e = hash_search(w->plans, key, HASH_ENTER, NULL);
	e->plan = plan;
	return plan;
}

/* Build, or find, the statement for records with this shape. */
static SPIPlanPtr
eo_writer_plan(EoWriter *w, const char *shape)
{
	EoMapping  *map = w->map;
	SPIPlanPtr	plan = eo_writer_plan_find(w, shape);
	StringInfoData sql;
	Oid		   *argtypes;
	int			nargs = 0;
	bool		first;

	if (plan != NULL)
		return plan;

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
	appendStringInfoString(&sql, ") SELECT ");
	first = true;
	for (int c = 0; c < map->ncolumns; c++)
	{
		if (shape[c] != '1')
			continue;
		appendStringInfo(&sql, "%sc%d", first ? "" : ", ", c);
		if (map->columns[c].via_text)
			appendStringInfo(&sql, "::%s", map->columns[c].type);
		first = false;
	}
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

	plan = eo_writer_plan_keep(w, shape, sql.data, nargs, argtypes);
	pfree(sql.data);
	pfree(argtypes);
	return plan;
}

/*
 * One column's values of n rows as the statement's array argument: of the
 * column type, or text[] (the output text) for a column without an array
 * type, which the statement casts.
 */
Datum
eo_writer_column_array(EoColumn *col, Datum *elems, bool *nulls, int n)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	if (!col->via_text)
		return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, col->typid,
												  col->typlen, col->typbyval, col->typalign));
	for (int r = 0; r < n; r++)
		if (!nulls[r])
			elems[r] = CStringGetTextDatum(OutputFunctionCall(&col->outfunc, elems[r]));
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

/* Execute the statement for recs[idx[lo..hi)], all of one shape. */
static void
eo_writer_exec(EoWriter *w, EoRecord *recs, int *idx, int lo, int hi, EoCounts *counts)
{
	EoMapping  *map = w->map;
	EoRecord   *first = &recs[idx[lo]];
	int			nrows = hi - lo;
	SPIPlanPtr	plan = eo_writer_plan(w, first->shape);
	Datum	   *args = palloc(sizeof(Datum) * map->ncolumns);
	Datum	   *elems = palloc(sizeof(Datum) * nrows);
	bool	   *enulls = palloc(sizeof(bool) * nrows);
	int			nargs = 0;
	int			ret;

	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];
		if (first->shape[c] != '1')
			continue;
		for (int r = 0; r < nrows; r++)
		{
			elems[r] = recs[idx[lo + r]].datums[c];
			enulls[r] = recs[idx[lo + r]].nulls[c];
		}
		args[nargs++] = eo_writer_column_array(col, elems, enulls, nrows);
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
eo_writer_exec_sql(EoWriter *w, EoRecord *recs, int *idx, int lo, int hi, EoCounts *counts)
{
	for (int start = lo, end; start < hi; start = end)
	{
		end = eo_shape_run_end(recs, idx, start, hi, w->one_shape);
		eo_writer_exec(w, recs, idx, start, end, counts);
	}
}

/* eo_direct_write's arguments and result, for eo_catalog_run_pinned */
typedef struct EoDirectCall
{
	EoWriter   *w;
	EoRecord   *recs;
	int		   *idx;
	int			lo;
	int			hi;
	EoCounts   *counts;
	int		   *existing;
	int		   *nexisting;
	bool		ok;
} EoDirectCall;

static void
eo_direct_call(void *arg)
{
	EoDirectCall *c = (EoDirectCall *) arg;

	c->ok = eo_direct_write(c->w->map, c->recs, c->idx, c->lo, c->hi, c->w->one_shape,
							c->counts, c->existing, c->nexisting);
}

/* eo_direct_write with search_path pinned, as eo_catalog_execute_pinned_plan */
static bool
eo_writer_direct(EoWriter *w, EoRecord *recs, int *idx, int lo, int hi,
				 EoCounts *counts, int *existing, int *nexisting)
{
	EoDirectCall c = {w, recs, idx, lo, hi, counts, existing, nexisting, false};

	eo_catalog_run_pinned(eo_direct_call, &c, false);
	return c.ok;
}

/* One try of eo_writer_try: recs[idx[lo..hi)] */
typedef struct EoTry
{
	EoWriter   *w;
	EoRecord   *recs;
	int		   *idx;
	int			lo;
	int			hi;
	int			fast_tries;		/* fast path tries left; 0: SQL path only */
	bool		direct;			/* the fast path took the records */
	EoCounts	counts;
	MemoryContext cxt;			/* freed after the try */
} EoTry;

/*
 * Write the try's records: with the fast path (direct.c) where the target
 * allows it, else with INSERT ... ON CONFLICT.
 */
static void
eo_writer_exec_range(void *arg)
{
	EoTry	   *t = arg;
	MemoryContext old = MemoryContextSwitchTo(t->cxt);
	int		   *existing;
	int			nexisting = 0;

	if (t->fast_tries == 0 || !eo_direct_insert)
		eo_writer_exec_sql(t->w, t->recs, t->idx, t->lo, t->hi, &t->counts);
	else
	{
		existing = palloc(sizeof(int) * (t->hi - t->lo));
		t->direct = true;
		if (!eo_writer_direct(t->w, t->recs, t->idx, t->lo, t->hi, &t->counts,
							  existing, &nexisting))
		{
			t->direct = false;
			eo_writer_exec_sql(t->w, t->recs, t->idx, t->lo, t->hi, &t->counts);
		}
		/* 'update': the records whose event id exists take the UPDATE */
		else if (nexisting > 0)
			eo_writer_exec_sql(t->w, t->recs, existing, 0, nexisting, &t->counts);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Fast path tries of a range before the SQL path takes it: a unique
 * violation on the fast path is mostly another worker of the pipeline that
 * committed one of the range's event ids while it was written, and a second
 * try finds that row by its probe and skips the record.
 */
#define EO_FAST_TRIES 2

/*
 * Try recs[idx[lo..hi)] in a subtransaction; on a data error, split in two
 * and try each half, down to the single bad record, which becomes a dead
 * letter.  One bad record in n costs about 2 log2(n) subtransactions.
 */
static void
eo_writer_try(EoWriter *w, EoRecord *recs, int *idx, int lo, int hi, int fast_tries,
			  EoCounts *counts)
{
	EoTry		t = {w, recs, idx, lo, hi, fast_tries, false, {0}, NULL};
	ErrorData  *edata;

	/*
	 * What one try allocates (the statement's arrays, the fast path's state)
	 * is freed before the halves are tried: a batch with many scattered bad
	 * records holds one try's memory at a time, not every level's.
	 */
	t.cxt = AllocSetContextCreate(CurrentMemoryContext, "eo_ingest write try",
								  ALLOCSET_DEFAULT_SIZES);
	w->subtransactions++;
	edata = eo_subxact_run(eo_writer_exec_range, &t);
	MemoryContextDelete(t.cxt);

	if (edata == NULL)
	{
		counts->inserted += t.counts.inserted;
		counts->updated += t.counts.updated;
		counts->skipped += t.counts.skipped;
		return;
	}
	if (!eo_is_data_error(edata->sqlerrcode))
		ReThrowError(edata);
	if (t.direct && edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION)
	{
		/*
		 * Another transaction committed one of these event ids between the
		 * fast path's probe and its insertion (or another unique index
		 * refused a row): the fast path once more, then ON CONFLICT, which
		 * settles which.
		 */
		FreeErrorData(edata);
		eo_writer_try(w, recs, idx, lo, hi, fast_tries - 1, counts);
		return;
	}
	if (hi - lo == 1)
	{
		EoRecord   *rec = &recs[idx[lo]];

		rec->status = EO_REC_DEAD;
		rec->sqlerrcode = edata->sqlerrcode;
		rec->error = eo_error_text(edata);
		FreeErrorData(edata);
		return;
	}
	FreeErrorData(edata);
	eo_writer_try(w, recs, idx, lo, lo + (hi - lo) / 2, fast_tries, counts);
	eo_writer_try(w, recs, idx, lo + (hi - lo) / 2, hi, fast_tries, counts);
}

typedef struct EoShapeSort
{
	EoRecord   *recs;
	int		   *rank;
} EoShapeSort;

/* By shape, then by rank (event id order, or batch order without ids). */
static int
eo_cmp_shape(const void *a, const void *b, void *arg)
{
	const EoShapeSort *sort = arg;
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	int			c = strcmp(sort->recs[ia].shape, sort->recs[ib].shape);

	if (c != 0)
		return c;
	return sort->rank[ia] - sort->rank[ib];
}

/*
 * Write every record still OK, finding dead letters by bisection.
 */
void
eo_writer_write(EoWriter *w, EoRecord *recs, int n, EoCounts *counts)
{
	int		   *idx = palloc(sizeof(int) * Max(n, 1));
	int		   *byrank = palloc(sizeof(int) * Max(n, 1));
	int		   *rank = palloc(sizeof(int) * Max(n, 1));
	bool	   *todo = palloc(sizeof(bool) * Max(n, 1));
	int			nranked = 0;

	/*
	 * Rows go in event id order (workers sharing a target then lock keys in
	 * one order, without deadlocks, and the index is filled in order), one
	 * run per shape: eo_writer_dedup has sorted them by event id already.
	 */
	if (w->order != NULL)
		for (int k = 0; k < w->norder; k++)
			byrank[nranked++] = w->order[k] - recs;
	else
		for (int i = 0; i < n; i++)
			byrank[nranked++] = i;
	for (int k = 0; k < nranked; k++)
		rank[byrank[k]] = k;
	for (int i = 0; i < n; i++)
		todo[i] = recs[i].status == EO_REC_OK;

	for (;;)
	{
		int			m = 0;
		const char *shape = NULL;

		/*
		 * One shape?  Asked in batch order, in which the records and their
		 * shapes lie in memory, not in event id order.
		 */
		w->one_shape = true;
		for (int i = 0; i < n && w->one_shape; i++)
		{
			if (!todo[i])
				continue;
			if (shape == NULL)
				shape = recs[i].shape;
			else if (memcmp(recs[i].shape, shape, w->map->ncolumns) != 0)
				w->one_shape = false;
		}
		for (int k = 0; k < nranked; k++)
		{
			int			i = byrank[k];

			if (!todo[i])
				continue;
			todo[i] = false;
			idx[m++] = i;
		}
		if (m == 0)
			break;
		if (!w->one_shape)
		{
			EoShapeSort sort = {recs, rank};

			qsort_arg(idx, m, sizeof(int), eo_cmp_shape, &sort);
		}
		eo_writer_try(w, recs, idx, 0, m, EO_FAST_TRIES, counts);

		/*
		 * A record that became a dead letter while it was the winner of its
		 * event id's duplicates hands the win to the next one (the next in
		 * batch order for 'skip', the next latest for 'update'), written in
		 * another round: a poison record never hides a good duplicate.
		 */
		for (int k = 0; k < m; k++)
		{
			EoRecord   *rec = &recs[idx[k]];

			if (rec->status == EO_REC_DEAD && rec->next_dup != NULL)
			{
				rec->next_dup->status = EO_REC_OK;
				counts->skipped--;
				todo[rec->next_dup - recs] = true;
			}
		}
	}
	w->one_shape = false;
	for (int i = 0; i < n; i++)
		if (recs[i].status == EO_REC_DEAD)
			counts->dead++;
	pfree(idx);
	pfree(byrank);
	pfree(rank);
	pfree(todo);
}
