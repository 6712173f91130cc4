/*
 * direct.c
 *		The fast insert path: records go into the target with the table
 *		access method's multi-insert, as COPY does, instead of through an
 *		INSERT ... ON CONFLICT statement.
 *
 * Deduplication keeps its ON CONFLICT meaning.  Each record's event id is
 * looked up in the target's unique index with a dirty snapshot first, waiting
 * for any transaction that is still writing the same id, exactly as the
 * executor's pre-check for ON CONFLICT does; records whose id exists are
 * skipped ('skip') or handed back to the SQL path ('update').  The index
 * insertion that follows checks uniqueness again, so a worker of another
 * pipeline that commits the same id in between makes the insertion fail with
 * a unique violation instead of a duplicate: the caller then redoes the
 * records through the SQL path, which settles the race.
 *
 * Only plain tables qualify: no triggers (which includes foreign keys and
 * deferrable constraints), rules, row level security, stored generated
 * columns or partitioning, and the worker's role must hold INSERT on the
 * whole table.  Anything else, and any table whose columns no longer match
 * the mapping, takes the SQL path, which also produces the usual errors.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "access/nbtree.h"
#include "utils/acl.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "batch.h"
#include "compat.h"

/* rows handed to the table access method at once, as COPY's buffer */
#define EO_DIRECT_CHUNK 1000

typedef struct EoDirect
{
	EoMapping  *map;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	int			natts;
	/* the event id's unique index, for the probe (NULL: no deduplication) */
	Relation	idx_rel;
	ScanKey		idx_key;
	IndexScanDesc idx_scan;
	TupleTableSlot *existing;
	SnapshotData dirty;
	FmgrInfo   *idx_cmp;		/* the btree's comparison function */
	bool		have_max;		/* the index has a live or pending entry */
	Datum		max;			/* ... and this is its largest key */
	/* the walk (eo_direct_walk), or NULL */
	IndexScanDesc walk;
	ScanKey		walk_key;		/* >= walk_from */
	bool		walk_valid;		/* walk_from is set */
	Datum		walk_from;		/* the entries from it to walk_at were seen */
	bool		walk_end;		/* there are none from walk_at on */
	Datum		walk_at;		/* else the key of the entry the walk is at */
	int			walk_off;		/* ids left that go straight to the probe */
	int			walk_backoff;	/* walk_off after the next id it loses */
	/* per attribute: the mapped column feeding it or -1, and its default */
	int		   *att_col;
	ExprState **defaults;
	TupleDesc	slot_desc;		/* the slots' (a copy: not reference counted) */
	TupleTableSlot **slots;		/* made as the first chunk needs them */
	BulkInsertState bistate;
	MemoryContext cxt;			/* lives as long as this struct */
	MemoryContext chunk_cxt;	/* reset after every flush */
} EoDirect;

/* Can the target take the fast path at all?  Only cheap catalog checks. */
static bool
eo_direct_eligible(EoMapping *map, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition)
		return false;
	if (rel->trigdesc != NULL || rel->rd_rules != NULL)
		return false;
	if (desc->constr != NULL && desc->constr->has_generated_stored)
		return false;
	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED)
		return false;
	if (pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		return false;
	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];
		Form_pg_attribute att;

		if (col->attnum <= 0 || col->attnum > desc->natts)
			return false;
		att = TupleDescAttr(desc, col->attnum - 1);
		if (att->attisdropped || att->atttypid != col->typid || att->atttypmod != col->typmod)
			return false;
	}
	return true;
}

/*
 * The walk: a second scan of the event id index, forward, that reads keys
 * (and rows only on entries of a batch's id) and spares most probes of a
 * batch's ids, which come sorted.  An id that the walk steps over without meeting
 * an entry of its key has no row and needs no probe.  On entries of its key
 * the walk itself fetches their rows, with the probe's dirty snapshot (the
 * probe's new descent took 4.9 % of an Avro drain's worker, for the ids of
 * earlier batches that come again): a live row is there, dead ones are not,
 * and a row still being written or deleted goes to the probe, which waits.
 * An id that another transaction writes after the walk read its page makes
 * the index insertion fail with a unique violation, as after a probe.
 */
#define EO_WALK_STEPS 16		/* entries the walk steps over for one id */
#define EO_WALK_MAX_OFF 1024

static void
eo_direct_walk_init(EoDirect *d, Relation ir)
{
	AttrNumber	idatt = d->map->columns[d->map->id_column].attnum;
	Oid			typid = TupleDescAttr(RelationGetDescr(d->rel), idatt - 1)->atttypid;
	Oid			geop;

	/* the index must keep the column's own values for the comparisons */
	if (TupleDescAttr(RelationGetDescr(ir), 0)->atttypid != typid)
		return;
	geop = get_opfamily_member(ir->rd_opfamily[0], ir->rd_opcintype[0],
							   ir->rd_opcintype[0], BTGreaterEqualStrategyNumber);
	if (!OidIsValid(geop))
		return;
	d->walk_key = palloc0(sizeof(ScanKeyData));
	ScanKeyEntryInitialize(d->walk_key, 0, 1, BTGreaterEqualStrategyNumber, InvalidOid,
						   ir->rd_indcollation[0], get_opcode(geop), (Datum) 0);
	d->walk = eo_index_beginscan(d->rel, ir, &d->dirty, 1, 0);
	d->walk->xs_want_itup = true;
	d->walk_backoff = 1;
}

static int
eo_direct_cmp(EoDirect *d, Datum a, Datum b)
{
	return DatumGetInt32(FunctionCall2Coll(d->idx_cmp, d->idx_rel->rd_indcollation[0], a, b));
}

/* The walk's next entry. */
static void
eo_direct_walk_next(EoDirect *d)
{
	bool		isnull;

	if (index_getnext_tid(d->walk, ForwardScanDirection) == NULL)
	{
		d->walk_end = true;
		return;
	}
	d->walk_at = index_getattr(d->walk->xs_itup, 1, d->walk->xs_itupdesc, &isnull);
	/* >= never matches a NULL */
	Assert(!isnull);
}

static void
eo_direct_walk_start(EoDirect *d, Datum id)
{
	d->walk_key->sk_argument = id;
	index_rescan(d->walk, d->walk_key, 1, NULL, 0);
	d->walk_valid = true;
	d->walk_from = id;
	d->walk_end = false;
	eo_direct_walk_next(d);
}

typedef enum EoWalkAnswer
{
	EO_WALK_NO_ROW,
	EO_WALK_ROW,
	EO_WALK_PROBE				/* ask eo_direct_exists */
} EoWalkAnswer;

/*
 * The walk stands on the first entry of id: is any of their rows live?  The
 * walk moves on past dead ones (the batch's next ids are greater).
 */
static EoWalkAnswer
eo_direct_walk_rows(EoDirect *d, Datum id)
{
	while (!d->walk_end && eo_direct_cmp(d, d->walk_at, id) == 0)
	{
		if (index_fetch_heap(d->walk, d->existing))
		{
			bool		settled = !TransactionIdIsValid(d->dirty.xmin) &&
				!TransactionIdIsValid(d->dirty.xmax);

			ExecClearTuple(d->existing);
			return settled ? EO_WALK_ROW : EO_WALK_PROBE;
		}
		eo_direct_walk_next(d);
	}
	return EO_WALK_NO_ROW;
}

/*
 * Has this id a row?  EO_WALK_NO_ROW and EO_WALK_ROW are sure answers; an id
 * behind the walk, or too far ahead of it (an old id among new ones, ids
 * spread thinly over the index), goes to the probe, and so do the next few
 * (twice as many after each such id in a row): starting the walk again
 * costs a descent and the reading of a leaf page, more than a probe.
 */
static EoWalkAnswer
eo_direct_walk(EoDirect *d, Datum id)
{
	/* the scan keeps memory between calls (btree's copy of a page) */
	MemoryContext old;
	bool		lost = false;
	EoWalkAnswer answer = EO_WALK_PROBE;

	if (d->walk_off > 0)
	{
		d->walk_off--;
		return EO_WALK_PROBE;
	}
	old = MemoryContextSwitchTo(d->cxt);
	if (!d->walk_valid)
		eo_direct_walk_start(d, id);
	else if (eo_direct_cmp(d, id, d->walk_from) < 0)
		lost = true;
	else
	{
		int			steps = 0;

		while (!d->walk_end && eo_direct_cmp(d, d->walk_at, id) < 0)
		{
			if (++steps > EO_WALK_STEPS)
			{
				lost = true;
				break;
			}
			eo_direct_walk_next(d);
		}
		if (!lost)
			d->walk_backoff = 1;
	}
	if (lost)
	{
		d->walk_valid = false;
		d->walk_off = d->walk_backoff;
		d->walk_backoff = Min(d->walk_backoff * 2, EO_WALK_MAX_OFF);
	}
	else
		answer = eo_direct_walk_rows(d, id);
	MemoryContextSwitchTo(old);
	return answer;
}

/* Find the unique btree index on the event id column and prepare its probe. */
static bool
eo_direct_probe_init(EoDirect *d)
{
	ResultRelInfo *rri = d->rri;
	AttrNumber	idatt = d->map->columns[d->map->id_column].attnum;

	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		Relation	ir = rri->ri_IndexRelationDescs[i];
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];
		Oid			eqop;

		if (!ii->ii_Unique || ii->ii_NullsNotDistinct || ii->ii_NumIndexKeyAttrs != 1 ||
			ii->ii_IndexAttrNumbers[0] != idatt || ii->ii_Expressions != NIL ||
			ii->ii_Predicate != NIL || ir->rd_rel->relam != BTREE_AM_OID ||
			!ir->rd_index->indisvalid || !ir->rd_index->indimmediate)
			continue;
		eqop = get_opfamily_member(ir->rd_opfamily[0], ir->rd_opcintype[0],
								   ir->rd_opcintype[0], BTEqualStrategyNumber);
		if (!OidIsValid(eqop))
			continue;
		d->idx_rel = ir;
		d->idx_cmp = index_getprocinfo(ir, 1, BTORDER_PROC);
		d->idx_key = palloc0(sizeof(ScanKeyData));
		ScanKeyEntryInitialize(d->idx_key, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   ir->rd_indcollation[0], get_opcode(eqop), (Datum) 0);
		InitDirtySnapshot(d->dirty);
		d->existing = table_slot_create(d->rel, NULL);
		d->idx_scan = eo_index_beginscan(d->rel, ir, &d->dirty, 1, 0);
		eo_direct_walk_init(d, ir);
		return true;
	}
	return false;
}

/*
 * The largest event id in the index whose row is live or still being
 * written, or none.  Ids above it need no probe: no row can have them (event
 * ids that grow over time, such as UUIDv7, ULIDs or sequence numbers, mostly
 * are); one that another transaction writes meanwhile makes the index
 * insertion fail with a unique violation, as after a probe.  Looked up for
 * every chunk, so that "meanwhile" is one chunk's time, not a batch's.
 */
static void
eo_direct_find_max(EoDirect *d)
{
	MemoryContext old = MemoryContextSwitchTo(d->cxt);
	AttrNumber	idatt = d->map->columns[d->map->id_column].attnum;
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(d->rel), idatt - 1);
	IndexScanDesc scan = eo_index_beginscan(d->rel, d->idx_rel, &d->dirty, 0, 0);

	if (d->have_max && !att->attbyval)
		pfree(DatumGetPointer(d->max));
	d->have_max = false;
	index_rescan(scan, NULL, 0, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, d->existing))
	{
		bool		isnull;
		Datum		v = slot_getattr(d->existing, idatt, &isnull);

		if (!isnull)
		{
			d->max = datumCopy(v, att->attbyval, att->attlen);
			d->have_max = true;
		}
	}
	ExecClearTuple(d->existing);
	index_endscan(scan);
	MemoryContextSwitchTo(old);
}

static bool
eo_direct_above_max(EoDirect *d, Datum id)
{
	return !d->have_max || eo_direct_cmp(d, id, d->max) > 0;
}

/*
 * Is there a row with this event id, committed or being written?  Waits for
 * a transaction still writing one, then looks again, as ON CONFLICT does.
 */
static bool
eo_direct_exists(EoDirect *d, Datum id)
{
	/*
	 * The index scan keeps memory between calls (btree's list of entries to
	 * mark dead, for one), so it must not run in the chunk context.
	 */
	MemoryContext old = MemoryContextSwitchTo(d->cxt);

	for (;;)
	{
		bool		found = false;
		TransactionId xwait = InvalidTransactionId;
		uint32		token = 0;
		ItemPointerData tid;

		d->idx_key->sk_argument = id;
		index_rescan(d->idx_scan, d->idx_key, 1, NULL, 0);
		while (index_getnext_slot(d->idx_scan, ForwardScanDirection, d->existing))
		{
			xwait = TransactionIdIsValid(d->dirty.xmin) ? d->dirty.xmin : d->dirty.xmax;
			token = d->dirty.speculativeToken;
			tid = d->existing->tts_tid;
			found = true;
			break;
		}
		ExecClearTuple(d->existing);
		if (!found || !TransactionIdIsValid(xwait))
		{
			MemoryContextSwitchTo(old);
			return found;
		}
		if (token != 0)
			SpeculativeInsertionWait(d->dirty.xmin, token);
		else
			XactLockTableWait(xwait, d->rel, &tid, XLTW_InsertIndex);
	}
}

/* Is there a row with this event id?  The walk, where it can tell, else the probe. */
static bool
eo_direct_present(EoDirect *d, Datum id)
{
	if (d->walk != NULL)
	{
		EoWalkAnswer answer = eo_direct_walk(d, id);

		if (answer != EO_WALK_PROBE)
			return answer == EO_WALK_ROW;
	}
	return eo_direct_exists(d, id);
}

static EoDirect *
eo_direct_begin(EoMapping *map)
{
	EoDirect   *d;
	Relation	rel;
	RangeTblEntry *rte;

	rel = try_table_open(map->target, RowExclusiveLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target table %s (OID %u) does not exist", map->target_name, map->target),
				 errhint("The pipeline resumes from its stored offsets once a table of the same name exists again, or once eo_ingest.alter_pipeline(name, target => ...) points it at another table.")));
	if (!eo_direct_eligible(map, rel))
	{
		table_close(rel, RowExclusiveLock);
		return NULL;
	}

	d = palloc0(sizeof(EoDirect));
	d->map = map;
	d->cxt = CurrentMemoryContext;
	d->estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = map->target;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	eo_init_insert_range_table(d->estate, rte);
	d->rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(d->estate, d->rri, 1);
	/* the range table holds its own reference now */
	table_close(rel, NoLock);
	d->rel = d->rri->ri_RelationDesc;
	ExecOpenIndices(d->rri, false);
	d->natts = RelationGetDescr(d->rel)->natts;

	if (map->id_column >= 0 && !eo_direct_probe_init(d))
	{
		ExecCloseResultRelations(d->estate);
		ExecCloseRangeTableRelations(d->estate);
		FreeExecutorState(d->estate);
		return NULL;
	}

	d->att_col = palloc(sizeof(int) * d->natts);
	d->defaults = palloc0(sizeof(ExprState *) * d->natts);
	for (int a = 0; a < d->natts; a++)
		d->att_col[a] = -1;
	for (int c = 0; c < map->ncolumns; c++)
		d->att_col[map->columns[c].attnum - 1] = c;
	/*
	 * The relation's own descriptor would be pinned by every slot, and the
	 * resource owner's array of a thousand pins of one descriptor costs as
	 * much as writing a few thousand rows: a private copy is not pinned.
	 */
	d->slot_desc = CreateTupleDescCopy(RelationGetDescr(d->rel));
	d->slots = palloc0(sizeof(TupleTableSlot *) * EO_DIRECT_CHUNK);
	d->bistate = GetBulkInsertState();
	d->chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "eo_ingest direct chunk",
										 ALLOCSET_DEFAULT_SIZES);
	return d;
}

static void
eo_direct_end(EoDirect *d)
{
	if (d->idx_scan != NULL)
		index_endscan(d->idx_scan);
	if (d->walk != NULL)
		index_endscan(d->walk);
	if (d->existing != NULL)
		ExecDropSingleTupleTableSlot(d->existing);
	for (int i = 0; i < EO_DIRECT_CHUNK && d->slots[i] != NULL; i++)
		ExecDropSingleTupleTableSlot(d->slots[i]);
	FreeBulkInsertState(d->bistate);
	ExecCloseResultRelations(d->estate);
	ExecCloseRangeTableRelations(d->estate);
	FreeExecutorState(d->estate);
	MemoryContextDelete(d->chunk_cxt);
}

/*
 * Can the fast path take this shape?  Not when a left-out column of a domain
 * type has no default (the domain's constraints apply to its NULL).  With
 * prepare, also prepare the defaults of the attributes the shape leaves out.
 */
static bool
eo_direct_shape(EoDirect *d, const char *shape, bool prepare)
{
	TupleDesc	desc = RelationGetDescr(d->rel);

	for (int a = 0; a < d->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		int			c = d->att_col[a];
		Node	   *def;

		if (prepare)
			d->defaults[a] = NULL;
		if (att->attisdropped || (c >= 0 && shape[c] == '1'))
			continue;
		def = build_column_default(d->rel, a + 1);
		if (def == NULL && get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
			return false;
		if (def != NULL && prepare)
			d->defaults[a] = ExecPrepareExpr((Expr *) def, d->estate);
	}
	return true;
}

/* Insert the buffered rows and their index entries. */
static void
eo_direct_flush(EoDirect *d, int n, EoCounts *counts)
{
	ExprContext *econtext = GetPerTupleExprContext(d->estate);

	if (n == 0)
		return;
	table_multi_insert(d->rel, d->slots, n, GetCurrentCommandId(true), 0, d->bistate);
	for (int i = 0; i < n; i++)
	{
		if (d->rri->ri_NumIndices > 0)
		{
			List	   *recheck;

			recheck = eo_insert_index_tuples(d->rri, d->slots[i], d->estate);
			/* deferrable unique indexes come with triggers, so never here */
			Assert(recheck == NIL);
			list_free(recheck);
		}
		ExecClearTuple(d->slots[i]);
		ResetExprContext(econtext);
	}
	counts->inserted += n;
	MemoryContextReset(d->chunk_cxt);

	/*
	 * Hand the WAL written so far to the WAL writer, as an asynchronous
	 * commit does: it flushes it (wal_writer_flush_after at a time) while the
	 * batch goes on, and the commit's own flush, which still waits for all
	 * of it, finds little left to do.
	 */
	XLogSetAsyncXactLSN(GetXLogInsertRecPtr());
}

/* Write recs[idx[lo..hi)], all of one shape that eo_direct_shape accepted. */
static void
eo_direct_group(EoDirect *d, EoRecord *recs, int *idx, int lo, int hi,
				EoCounts *counts, int *existing, int *nexisting)
{
	EoMapping  *map = d->map;
	TupleDesc	desc = RelationGetDescr(d->rel);
	const char *shape = recs[idx[lo]].shape;
	ExprContext *econtext = GetPerTupleExprContext(d->estate);
	bool		check = desc->constr != NULL &&
		(desc->constr->has_not_null || desc->constr->num_check > 0);
	int			nbuf = 0;
	MemoryContext old;

	if (!eo_direct_shape(d, shape, true))
		elog(ERROR, "a record shape lost its fast path while being written");
	if (d->idx_rel != NULL)
		eo_direct_find_max(d);

	old = MemoryContextSwitchTo(d->chunk_cxt);
	for (int r = lo; r < hi; r++)
	{
		EoRecord   *rec = &recs[idx[r]];
		TupleTableSlot *slot;

		CHECK_FOR_INTERRUPTS();
		if (d->slots[nbuf] == NULL)
		{
			MemoryContextSwitchTo(d->cxt);
			d->slots[nbuf] = MakeSingleTupleTableSlot(d->slot_desc,
													  table_slot_callbacks(d->rel));
			MemoryContextSwitchTo(d->chunk_cxt);
		}
		slot = d->slots[nbuf];
		ExecClearTuple(slot);
		for (int a = 0; a < d->natts; a++)
		{
			int			c = d->att_col[a];

			if (c >= 0 && shape[c] == '1')
			{
				slot->tts_values[a] = rec->datums[c];
				slot->tts_isnull[a] = rec->nulls[c];
			}
			else if (d->defaults[a] != NULL)
				slot->tts_values[a] = ExecEvalExpr(d->defaults[a], econtext,
												   &slot->tts_isnull[a]);
			else
			{
				slot->tts_values[a] = (Datum) 0;
				slot->tts_isnull[a] = true;
			}
		}
		ExecStoreVirtualTuple(slot);
		if (check)
			ExecConstraints(d->rri, slot, d->estate);

		if (d->idx_rel != NULL)
		{
			AttrNumber	ida = map->columns[map->id_column].attnum - 1;

			if (!slot->tts_isnull[ida] &&
				!eo_direct_above_max(d, slot->tts_values[ida]) &&
				eo_direct_present(d, slot->tts_values[ida]))
			{
				ExecClearTuple(slot);
				if (map->update)
					existing[(*nexisting)++] = idx[r];
				else
					counts->skipped++;
				continue;
			}
		}
		if (++nbuf == EO_DIRECT_CHUNK)
		{
			eo_direct_flush(d, nbuf, counts);
			nbuf = 0;
			/*
			 * The largest id again for the next chunk: another worker of
			 * the pipeline writes the same range of ids meanwhile, and an id
			 * of its that this batch skipped probing for would end in a
			 * unique violation, which sends the whole batch through the
			 * SQL path, instead of a wait for that worker's commit.
			 */
			if (d->idx_rel != NULL)
				eo_direct_find_max(d);
		}
	}
	eo_direct_flush(d, nbuf, counts);
	MemoryContextSwitchTo(old);
}

/*
 * Write recs[idx[lo..hi)], sorted by shape, with the fast path (one_shape:
 * the caller knows they all have one shape, so no run of shapes is looked
 * for: that walk reads every record in event id order, that is all over the
 * batch's memory, and took 3.5 % of an Avro drain's time, twice the work of
 * the whole shape check in batch order).  Returns
 * false, having written nothing, when the target needs the SQL path.  With
 * on_duplicate 'update', the records whose event id exists are not written
 * but returned in existing[0..*nexisting), for the SQL path's UPDATE.
 */
bool
eo_direct_write(EoMapping *map, EoRecord *recs, int *idx, int lo, int hi,
				bool one_shape, EoCounts *counts, int *existing, int *nexisting)
{
	EoDirect   *d = eo_direct_begin(map);

	*nexisting = 0;
	if (d == NULL)
		return false;
	/* every shape must qualify before anything is written */
	for (int start = lo, end; start < hi; start = end)
	{
		end = eo_shape_run_end(recs, idx, start, hi, one_shape);
		if (!eo_direct_shape(d, recs[idx[start]].shape, false))
		{
			eo_direct_end(d);
			return false;
		}
	}
	for (int start = lo, end; start < hi; start = end)
	{
		end = eo_shape_run_end(recs, idx, start, hi, one_shape);
		eo_direct_group(d, recs, idx, start, end, counts, existing, nexisting);
	}
	eo_direct_end(d);
	return true;
}
