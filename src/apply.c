/*
 * apply.c
 *		Applies a batch of changes (envelope.c) to the target by its primary
 *		key, inside the batch transaction opened by worker.c.
 *
 * Several changes to one key collapse into the latest (changes to one key
 * share a partition, so batch order is their order): the batch deletes the
 * keys whose latest change is a delete, then inserts or replaces the rows
 * whose latest change is an upsert, with one statement per kind and row
 * shape.  The final state of every key is that of its latest change, so
 * replaying any range of offsets yields the same table.  A truncate event
 * splits the batch: what came before it is applied, then the target is
 * emptied (on_truncate => 'truncate').
 *
 * A change that fails with a data error is found by bisection in
 * subtransactions and its record becomes a dead letter; the key's next older
 * change in the batch then takes its place, as if the bad record had never
 * been sent.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/index.h"
#include "catalog/pg_index.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "change.h"
#include "eo_ingest.h"

/* In the current memory context; statements are kept with w's. */
EoApplier *
eo_apply_create(EoMapping *map, EoWriter *w)
{
	EoApplier  *a = palloc0(sizeof(EoApplier));
	Oid			pk = eo_catalog_primary_key(map->target);
	HeapTuple	tup;
	Form_pg_index index;

	if (!OidIsValid(pk))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("target %s has no primary key", map->target_name),
				 errdetail("A pipeline with an envelope identifies rows by the target's primary key."),
				 errhint("Add a primary key to the target; the pipeline resumes by itself.")));
	/* a statement's key is 'U' and the shape, in the writer's plan table */
	if (map->ncolumns + 1 >= NAMEDATALEN * 4)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("too many mapped columns (%d)", map->ncolumns)));
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for index %u", pk);
	index = (Form_pg_index) GETSTRUCT(tup);
	a->map = map;
	a->writer = w;
	a->nkeys = index->indnkeyatts;
	a->keys = palloc(sizeof(int) * a->nkeys);
	for (int k = 0; k < a->nkeys; k++)
	{
		int			c;

		for (c = 0; c < map->ncolumns; c++)
			if (map->columns[c].attnum == index->indkey.values[k])
				break;
		if (c == map->ncolumns)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("primary key column %s of %s is not mapped",
							quote_identifier(get_attname(map->target, index->indkey.values[k], false)),
							map->target_name),
					 errdetail("A pipeline with an envelope identifies rows by the target's primary key."),
					 errhint("Map every primary key column from the change's row or the Kafka key; a GENERATED ALWAYS identity column cannot be.")));
		a->keys[k] = c;
	}
	ReleaseSysCache(tup);
	if (a->nkeys == 1)
	{
		/* new keys take the multi-insert path, existing ones the UPDATE */
		a->direct_map = palloc(sizeof(EoMapping));
		*a->direct_map = *map;
		a->direct_map->id_column = a->keys[0];
		a->direct_map->update = true;
	}
	if (map->envelope == EO_ENV_DEBEZIUM && map->format != &eo_format_json)
	{
		a->after_map = eo_mapping_nested(map, "after", true);
		a->before_map = eo_mapping_nested(map, "before", false);
	}
	return a;
}

void
eo_apply_destroy(EoApplier *a)
{
	if (a->direct_map != NULL)
		pfree(a->direct_map);
	pfree(a->keys);
	pfree(a);
}

static bool
eo_apply_is_key(EoApplier *a, int c)
{
	for (int k = 0; k < a->nkeys; k++)
		if (a->keys[k] == c)
			return true;
	return false;
}

/* The statement text for kind 'D' (delete by key), 'T' or 'U' + shape. */
static char *
eo_apply_sql(EoApplier *a, const char *key, int *nargs, Oid *argtypes)
{
	EoMapping  *map = a->map;
	StringInfoData sql;
	const char *shape = key + 1;
	bool		first = true;

	initStringInfo(&sql);
	*nargs = 0;
	if (key[0] == 'T')
	{
		appendStringInfo(&sql, "DELETE FROM %s", map->target_name);
		return sql.data;
	}
	if (key[0] == 'D')
	{
		appendStringInfo(&sql, "DELETE FROM %s AS t USING unnest(", map->target_name);
		for (int k = 0; k < a->nkeys; k++)
		{
			argtypes[k] = map->columns[a->keys[k]].arraytype;
			appendStringInfo(&sql, "%s$%d", k ? ", " : "", k + 1);
		}
		appendStringInfoString(&sql, ") AS u(");
		for (int k = 0; k < a->nkeys; k++)
			appendStringInfo(&sql, "%sk%d", k ? ", " : "", k);
		appendStringInfoString(&sql, ") WHERE ");
		for (int k = 0; k < a->nkeys; k++)
		{
			EoColumn   *col = &map->columns[a->keys[k]];

			appendStringInfo(&sql, "%st.%s = u.k%d", k ? " AND " : "", col->name, k);
			if (col->via_text)
				appendStringInfo(&sql, "::%s", col->type);
		}
		*nargs = a->nkeys;
		return sql.data;
	}

	appendStringInfo(&sql, "WITH w AS (INSERT INTO %s AS t (", map->target_name);
	for (int c = 0; c < map->ncolumns; c++)
		if (shape[c] == '1')
		{
			appendStringInfo(&sql, "%s%s", first ? "" : ", ", map->columns[c].name);
			first = false;
		}
	appendStringInfoString(&sql, ") SELECT ");
	first = true;
	for (int c = 0; c < map->ncolumns; c++)
		if (shape[c] == '1')
		{
			/* array columns without an array type travel as text[] */
			appendStringInfo(&sql, "%sc%d", first ? "" : ", ", c);
			if (map->columns[c].via_text)
				appendStringInfo(&sql, "::%s", map->columns[c].type);
			first = false;
		}
	appendStringInfoString(&sql, " FROM unnest(");
	for (int c = 0; c < map->ncolumns; c++)
		if (shape[c] == '1')
		{
			argtypes[*nargs] = map->columns[c].arraytype;
			appendStringInfo(&sql, "%s$%d", *nargs ? ", " : "", *nargs + 1);
			(*nargs)++;
		}
	appendStringInfoString(&sql, ") AS u(");
	first = true;
	for (int c = 0; c < map->ncolumns; c++)
		if (shape[c] == '1')
		{
			appendStringInfo(&sql, "%sc%d", first ? "" : ", ", c);
			first = false;
		}
	appendStringInfoString(&sql, ") ON CONFLICT (");
	for (int k = 0; k < a->nkeys; k++)
		appendStringInfo(&sql, "%s%s", k ? ", " : "", map->columns[a->keys[k]].name);
	appendStringInfoString(&sql, ") DO UPDATE SET ");
	first = true;
	for (int c = 0; c < map->ncolumns; c++)
		if (shape[c] == '1' && !eo_apply_is_key(a, c))
		{
			appendStringInfo(&sql, "%s%s = excluded.%s", first ? "" : ", ",
							 map->columns[c].name, map->columns[c].name);
			first = false;
		}
	if (first)
		appendStringInfo(&sql, "%s = excluded.%s", map->columns[a->keys[0]].name,
						 map->columns[a->keys[0]].name);
	appendStringInfoString(&sql, " RETURNING (t.xmax = 0) AS inserted) "
						   "SELECT count(*) FILTER (WHERE inserted), "
						   "count(*) FILTER (WHERE NOT inserted) FROM w");
	return sql.data;
}

static SPIPlanPtr
eo_apply_plan(EoApplier *a, const char *key)
{
	SPIPlanPtr	plan = eo_writer_plan_find(a->writer, key);
	Oid		   *argtypes;
	int			nargs;
	char	   *sql;

	if (plan != NULL)
		return plan;
	argtypes = palloc(sizeof(Oid) * (a->map->ncolumns + 1));
	sql = eo_apply_sql(a, key, &nargs, argtypes);
	plan = eo_writer_plan_keep(a->writer, key, sql, nargs, argtypes);
	pfree(sql);
	pfree(argtypes);
	return plan;
}

/* Execute changes[lo..hi), all of one plan key. */
static void
eo_apply_exec(EoApplier *a, EoChange **chs, int lo, int hi, EoCounts *counts)
{
	EoMapping  *map = a->map;
	const char *key = chs[lo]->plan;
	SPIPlanPtr	plan = eo_apply_plan(a, key);
	int			nrows = hi - lo;
	Datum	   *args = palloc(sizeof(Datum) * (map->ncolumns + 1));
	Datum	   *elems = palloc(sizeof(Datum) * nrows);
	bool	   *enulls = palloc(sizeof(bool) * nrows);
	int			nargs = 0;
	int			ret;

	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];

		if (key[0] == 'D' ? !eo_apply_is_key(a, c) : key[c + 1] != '1')
			continue;
		for (int r = 0; r < nrows; r++)
		{
			elems[r] = chs[lo + r]->row->datums[c];
			enulls[r] = chs[lo + r]->row->nulls[c];
		}
		args[nargs++] = eo_writer_column_array(col, elems, enulls, nrows);
	}
	if (key[0] == 'D')
	{
		/* the delete names the key columns in the primary key's order */
		Datum	   *ordered = palloc(sizeof(Datum) * a->nkeys);
		int			m = 0;

		for (int k = 0; k < a->nkeys; k++)
		{
			m = 0;
			for (int c = 0; c < a->keys[k]; c++)
				if (eo_apply_is_key(a, c))
					m++;
			ordered[k] = args[m];
		}
		args = ordered;
	}
	ret = eo_catalog_execute_pinned_plan(plan, args, NULL, false, 0);
	if (key[0] == 'D')
	{
		if (ret != SPI_OK_DELETE)
			elog(ERROR, "unexpected result %d from the delete statement", ret);
		counts->deleted += SPI_processed;
		counts->skipped += nrows - SPI_processed;
		return;
	}
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "unexpected result %d from the upsert statement", ret);
	{
		bool		isnull;

		counts->inserted += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 1, &isnull));
		counts->updated += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
}

/* eo_direct_write's arguments and result, for eo_catalog_run_pinned */
typedef struct EoApplyDirect
{
	EoApplier  *a;
	int		   *idx;
	int			n;
	EoCounts   *counts;
	int		   *existing;
	int			nexisting;
	bool		ok;
} EoApplyDirect;

static void
eo_apply_direct_call(void *arg)
{
	EoApplyDirect *d = arg;

	d->ok = eo_direct_write(d->a->direct_map, d->a->rows, d->idx, 0, d->n, false, d->counts,
							d->existing, &d->nexisting);
}

/*
 * Upsert changes[lo..hi) (one plan key, so one shape, and one change per
 * key).  With a single-column primary key, creates and snapshot reads (op c
 * and r, whose keys most likely no row has) go to the multi-insert path
 * (direct.c, which probes the key's index as for an event id and hands back
 * the keys that exist); those and every other change take INSERT ... ON
 * CONFLICT DO UPDATE.  (Updates skip the probe: their rows mostly exist, and
 * probing them first measured slower.)  Returns whether the multi-insert
 * path wrote anything.
 */
static bool
eo_apply_upsert(EoApplier *a, EoChange **chs, int lo, int hi, bool sql_only, EoCounts *counts)
{
	EoApplyDirect d = {a, NULL, 0, counts, NULL, 0, false};
	EoChange  **rest;
	int			nrest = 0;
	int			e = 0;

	if (!sql_only && eo_direct_insert && a->direct_map != NULL)
	{
		d.idx = palloc(sizeof(int) * (hi - lo));
		d.existing = palloc(sizeof(int) * (hi - lo));
		for (int r = lo; r < hi; r++)
			if (chs[r]->creates)
				d.idx[d.n++] = chs[r]->row - a->rows;
	}
	if (d.n > 0)
		eo_catalog_run_pinned(eo_apply_direct_call, &d, false);
	if (!d.ok)
	{
		eo_apply_exec(a, chs, lo, hi, counts);
		return false;
	}
	/* the rest in key order: existing[] is a subsequence of idx[] */
	rest = palloc(sizeof(EoChange *) * (hi - lo));
	for (int r = lo; r < hi; r++)
	{
		if (!chs[r]->creates)
			rest[nrest++] = chs[r];
		else if (e < d.nexisting && chs[r]->row - a->rows == d.existing[e])
		{
			rest[nrest++] = chs[r];
			e++;
		}
	}
	if (nrest > 0)
		eo_apply_exec(a, rest, 0, nrest, counts);
	return true;
}

typedef struct EoApplyTry
{
	EoApplier  *a;
	EoChange  **chs;
	int			lo;
	int			hi;
	bool		sql_only;
	bool		direct;			/* the multi-insert path wrote some */
	EoCounts	counts;
} EoApplyTry;

static void
eo_apply_exec_try(void *arg)
{
	EoApplyTry *t = arg;

	if (t->chs[t->lo]->plan[0] == 'U')
		t->direct = eo_apply_upsert(t->a, t->chs, t->lo, t->hi, t->sql_only, &t->counts);
	else
		eo_apply_exec(t->a, t->chs, t->lo, t->hi, &t->counts);
}

/*
 * Try changes[lo..hi) (one plan key) in a subtransaction; on a data error
 * split them down to the bad change, whose record becomes a dead letter.
 */
static void
eo_apply_try(EoApplier *a, EoChange **chs, int lo, int hi, bool sql_only, EoCounts *counts)
{
	EoApplyTry	t = {a, chs, lo, hi, sql_only, false, {0}};
	ErrorData  *edata;

	a->subtransactions++;
	edata = eo_subxact_run(eo_apply_exec_try, &t);
	if (edata == NULL)
	{
		counts->inserted += t.counts.inserted;
		counts->updated += t.counts.updated;
		counts->deleted += t.counts.deleted;
		counts->skipped += t.counts.skipped;
		for (int i = lo; i < hi; i++)
			chs[i]->applied = true;
		return;
	}
	if (!eo_is_data_error(edata->sqlerrcode))
		ReThrowError(edata);
	if (t.direct && edata->sqlerrcode == ERRCODE_UNIQUE_VIOLATION)
	{
		/*
		 * Another transaction wrote one of these keys between the probe and
		 * the insertion (or another unique index refused a row): ON CONFLICT
		 * settles which.
		 */
		FreeErrorData(edata);
		eo_apply_try(a, chs, lo, hi, true, counts);
		return;
	}
	if (hi - lo == 1)
	{
		EoRecord   *rec = chs[lo]->rec;

		rec->status = EO_REC_DEAD;
		rec->sqlerrcode = edata->sqlerrcode;
		rec->error = eo_error_text(edata);
		FreeErrorData(edata);
		return;
	}
	FreeErrorData(edata);
	eo_apply_try(a, chs, lo, lo + (hi - lo) / 2, sql_only, counts);
	eo_apply_try(a, chs, lo + (hi - lo) / 2, hi, sql_only, counts);
}

/* By key, then latest first. */
static int
eo_cmp_ident(const void *pa, const void *pb)
{
	const EoChange *a = *(EoChange *const *) pa;
	const EoChange *b = *(EoChange *const *) pb;
	int			c = memcmp(a->ident, b->ident, Min(a->identlen, b->identlen));

	if (c != 0)
		return c;
	if (a->identlen != b->identlen)
		return a->identlen < b->identlen ? -1 : 1;
	return b->seq - a->seq;
}

/* By kind (deletes first), then shape, then key: locks go in key order. */
static int
eo_cmp_plan(const void *pa, const void *pb)
{
	const EoChange *a = *(EoChange *const *) pa;
	const EoChange *b = *(EoChange *const *) pb;
	int			c;

	if (a->op != b->op)
		return a->op == EO_OP_DELETE ? -1 : 1;
	c = strcmp(a->plan, b->plan);
	if (c != 0)
		return c;
	return eo_cmp_ident(pa, pb);
}

/* Apply changes chs[0..n) (no truncate among them), latest per key. */
static void
eo_apply_segment(EoApplier *a, EoChange **chs, int n, EoCounts *counts)
{
	EoChange  **todo = palloc(sizeof(EoChange *) * Max(n, 1));
	int			ntodo = 0;

	qsort(chs, n, sizeof(EoChange *), eo_cmp_ident);
	for (int i = 0; i < n; i++)
	{
		bool		same = i > 0 && chs[i]->identlen == chs[i - 1]->identlen &&
			memcmp(chs[i]->ident, chs[i - 1]->ident, chs[i]->identlen) == 0;

		if (same)
			chs[i - 1]->older = chs[i];
		else
			todo[ntodo++] = chs[i];
	}

	while (ntodo > 0)
	{
		int			m = 0;

		/* a record whose other change failed is a dead letter already */
		for (int i = 0; i < ntodo; i++)
		{
			EoChange   *ch = todo[i];

			while (ch != NULL && ch->rec->status == EO_REC_DEAD)
				ch = ch->older;
			if (ch != NULL)
				todo[m++] = ch;
		}
		ntodo = m;
		qsort(todo, ntodo, sizeof(EoChange *), eo_cmp_plan);
		for (int start = 0, end; start < ntodo; start = end)
		{
			for (end = start + 1; end < ntodo; end++)
				if (strcmp(todo[end]->plan, todo[start]->plan) != 0)
					break;
			eo_apply_try(a, todo, start, end, false, counts);
		}
		/* the next older change of a key whose latest one failed */
		m = 0;
		for (int i = 0; i < ntodo; i++)
			if (!todo[i]->applied && todo[i]->older != NULL)
				todo[m++] = todo[i]->older;
		ntodo = m;
	}
	for (int i = 0; i < n; i++)
		if (!chs[i]->applied && chs[i]->rec->status != EO_REC_DEAD)
			counts->skipped++;
	pfree(todo);
}

static void
eo_apply_truncate(EoApplier *a, EoCounts *counts)
{
	int			ret = eo_catalog_execute_pinned_plan(eo_apply_plan(a, "T"), NULL, NULL, false, 0);

	if (ret != SPI_OK_DELETE)
		elog(ERROR, "unexpected result %d from the truncate statement", ret);
	counts->deleted += SPI_processed;
}

/* One attempt at a segment, for eo_subxact_run. */
typedef struct EoSegmentTry
{
	EoApplier  *a;
	EoChange  **chs;
	int			n;
	EoCounts	counts;
	EoRecord  **torn;			/* records with one change applied, the
								 * other dead */
	int			ntorn;
} EoSegmentTry;

static void
eo_apply_segment_try(void *arg)
{
	EoSegmentTry *t = arg;

	eo_apply_segment(t->a, t->chs, t->n, &t->counts);
	for (int i = 0; i < t->n; i++)
		if (t->chs[i]->applied && t->chs[i]->rec->status == EO_REC_DEAD)
			t->torn[t->ntorn++] = t->chs[i]->rec;
	if (t->ntorn > 0)
		elog(ERROR, "a change was applied without the other change of its record");
}

/*
 * Apply a segment so that a record's changes (an update that changes the
 * key: delete the old key, insert the new) are applied together or not at
 * all.  The segment runs in a subtransaction; when one change of a record
 * was applied and the other became a dead letter, the segment is rolled
 * back and applied again with that record dead from the start, as if it
 * had never been sent.  Changes that died only in the rolled-back attempt
 * are tried again: they may have failed because of the torn record.
 */
static void
eo_apply_segment_atomic(EoApplier *a, EoChange **chs, int n, EoCounts *counts)
{
	bool	   *was_dead = palloc(sizeof(bool) * Max(a->nchanges, 1));
	EoSegmentTry t = {a, chs, n, {0}, palloc(sizeof(EoRecord *) * Max(n, 1)), 0};

	for (;;)
	{
		ErrorData  *edata;

		for (int i = 0; i < n; i++)
		{
			chs[i]->applied = false;
			chs[i]->older = NULL;
		}
		/* applying sorts chs: remember by change */
		for (int i = 0; i < n; i++)
			was_dead[chs[i] - a->changes] = chs[i]->rec->status == EO_REC_DEAD;
		memset(&t.counts, 0, sizeof(EoCounts));
		t.ntorn = 0;
		a->subtransactions++;
		edata = eo_subxact_run(eo_apply_segment_try, &t);
		if (edata == NULL)
			break;
		if (t.ntorn == 0)
			ReThrowError(edata);
		FreeErrorData(edata);
		for (int i = 0; i < n; i++)
		{
			EoRecord   *rec = chs[i]->rec;
			bool		torn = false;

			if (was_dead[chs[i] - a->changes] || rec->status != EO_REC_DEAD)
				continue;
			for (int k = 0; k < t.ntorn && !torn; k++)
				torn = t.torn[k] == rec;
			if (!torn)
			{
				rec->status = EO_REC_OK;
				rec->error = NULL;
				rec->sqlerrcode = 0;
			}
		}
	}
	counts->inserted += t.counts.inserted;
	counts->updated += t.counts.updated;
	counts->deleted += t.counts.deleted;
	counts->skipped += t.counts.skipped;
	pfree(was_dead);
	pfree(t.torn);
}

/*
 * Apply a batch of a change stream, whose changes eo_envelope_decode made
 * (a->changes): the changes between truncate events, latest per key.  Bad
 * records end EO_REC_DEAD.
 */
void
eo_apply_batch(EoApplier *a, EoRecord *recs, int n, EoCounts *counts)
{
	int			nch = a->nchanges;
	EoChange  **chs = palloc(sizeof(EoChange *) * Max(nch, 1));
	bool	   *changed = palloc0(sizeof(bool) * Max(n, 1));
	int			start = 0;

	for (int i = 0; i < nch; i++)
	{
		EoChange   *ch = &a->changes[i];

		chs[i] = ch;
		changed[ch->seq] = true;
		if (ch->op == EO_OP_UPSERT)
			ch->plan = psprintf("U%s", ch->row->shape);
		else
			ch->plan = ch->op == EO_OP_DELETE ? "D" : "T";
	}
	for (int i = 0; i <= nch; i++)
	{
		if (i < nch && chs[i]->op != EO_OP_TRUNCATE)
			continue;
		eo_apply_segment_atomic(a, chs + start, i - start, counts);
		if (i < nch && a->map->truncate)
			eo_apply_truncate(a, counts);
		else if (i < nch)
			counts->skipped++;
		start = i + 1;
	}
	for (int i = 0; i < n; i++)
	{
		if (recs[i].status == EO_REC_DEAD)
			counts->dead++;
		else if (!changed[i])
			counts->skipped++;	/* the tombstone that follows a delete */
	}
}
