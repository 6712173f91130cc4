/*
 * ledger.c
 *		The batch ledger: every write of a worker's transactions to
 *		eo_ingest.* — claiming partitions (a new generation), fencing
 *		(locking this worker's offset rows and checking nobody moved them),
 *		storing the dead letters, the next offsets and the counters.
 *
 * Offsets come from eo_ingest.offsets, never from Kafka: a batch's rows and
 * its offsets commit in one transaction, so a stale or duplicate worker that
 * fails the fence can never commit.  All statements run through
 * eo_catalog_execute*, as the bootstrap superuser, on fixed text.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "catalog.h"
#include "ledger.h"

/* Index of partition in l->parts, -1 if not ours. */
int
eo_ledger_part(const EoLedger *l, int32 partition)
{
	for (int i = 0; i < l->nparts; i++)
		if (l->parts[i].partition == partition)
			return i;
	return -1;
}

/* A one-dimensional array of n elements of elemtype; nulls may be NULL */
static Datum
eo_array(Datum *elems, bool *nulls, int n, Oid elemtype)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, elemtype,
											  typlen, typbyval, typalign));
}

static Datum
eo_int4_array(const int32 *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int32GetDatum(v[i]);
	return eo_array(d, NULL, n, INT4OID);
}

static Datum
eo_int8_array(const int64 *v, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(v[i]);
	return eo_array(d, NULL, n, INT8OID);
}

static Datum
eo_ledger_partitions(const EoLedger *l)
{
	int32	   *p = palloc(sizeof(int32) * Max(l->nparts, 1));

	for (int i = 0; i < l->nparts; i++)
		p[i] = l->parts[i].partition;
	return eo_int4_array(p, l->nparts);
}

static int64
eo_int8_at(uint64 row, int col)
{
	bool		isnull;

	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull));
}

static int32
eo_int4_at(uint64 row, int col)
{
	bool		isnull;

	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull));
}

/* Stored next offsets of the given partitions, -1 where none. */
void
eo_ledger_read_offsets(const EoLedger *l, int n, const int32 *partitions, int64 *stored)
{
	Datum		argv[2];

	for (int i = 0; i < n; i++)
		stored[i] = -1;
	argv[0] = Int32GetDatum(l->pipeline_id);
	argv[1] = eo_int4_array(partitions, n);
	if (SPI_execute_with_args("SELECT partition, next_offset FROM eo_ingest.offsets "
							  "WHERE pipeline_id = $1 AND partition = ANY ($2)",
							  2, (Oid[]) {INT4OID, INT4ARRAYOID}, argv, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading offsets failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		int32		p = eo_int4_at(i, 1);

		for (int k = 0; k < n; k++)
			if (partitions[k] == p)
				stored[k] = eo_int8_at(i, 2);
	}
}

/*
 * Claim l->parts: a new generation, offset rows starting at start[] for
 * partitions seen for the first time, and the stored next offsets read
 * back into l->parts.
 */
void
eo_ledger_claim(EoLedger *l, const int64 *start)
{
	Datum		argv[4];
	Oid			argt[4] = {INT4OID, INT8OID, INT4ARRAYOID, INT8ARRAYOID};
	int			ret;

	ret = eo_catalog_execute("UPDATE eo_ingest.pipelines SET generation = generation + 1 "
							 "WHERE id = $1 RETURNING generation",
							 1, argt, (Datum[]) {Int32GetDatum(l->pipeline_id)}, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline %d disappeared", l->pipeline_id)));
	l->generation = eo_int8_at(0, 1);

	argv[0] = Int32GetDatum(l->pipeline_id);
	argv[1] = Int64GetDatum(l->generation);
	argv[2] = eo_ledger_partitions(l);
	argv[3] = eo_int8_array(start, l->nparts);
	ret = eo_catalog_execute("INSERT INTO eo_ingest.offsets (pipeline_id, partition, next_offset, generation, committed_at) "
							 "SELECT $1, u.p, u.o, $2, now() FROM unnest($3, $4) AS u(p, o) "
							 "ON CONFLICT (pipeline_id, partition) DO NOTHING",
							 4, argt, argv, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "creating offset rows failed: %s", SPI_result_code_string(ret));

	ret = eo_catalog_execute("UPDATE eo_ingest.offsets SET generation = $2 "
							 "WHERE pipeline_id = $1 AND partition = ANY ($3) "
							 "RETURNING partition, next_offset",
							 3, argt, argv, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING || SPI_processed != (uint64) l->nparts)
		elog(ERROR, "claiming offset rows failed");
	for (uint64 i = 0; i < SPI_processed; i++)
		l->parts[eo_ledger_part(l, eo_int4_at(i, 1))].next = eo_int8_at(i, 2);

	ret = eo_catalog_execute("INSERT INTO eo_ingest.counters (pipeline_id, worker) VALUES ($1, $2) "
							 "ON CONFLICT DO NOTHING",
							 2, (Oid[]) {INT4OID, INT4OID},
							 (Datum[]) {Int32GetDatum(l->pipeline_id), Int32GetDatum(l->worker)},
							 NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "creating the counters row failed");
}

static SPIPlanPtr
eo_ledger_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare a ledger statement: %s", SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * Lock this worker's offset rows and check they still carry its generation
 * and the offsets it expects; raises a serialization failure, with
 * l->fenced set, when another worker or reset_offsets moved them.
 */
void
eo_ledger_fence(EoLedger *l, const char *pipeline)
{
	Datum		argv[2];

	if (l->fence_plan == NULL)
		l->fence_plan = eo_ledger_prepare("SELECT partition, next_offset, generation FROM eo_ingest.offsets "
										  "WHERE pipeline_id = $1 AND partition = ANY ($2) FOR UPDATE",
										  2, (Oid[]) {INT4OID, INT4ARRAYOID});
	argv[0] = Int32GetDatum(l->pipeline_id);
	argv[1] = eo_ledger_partitions(l);
	if (eo_catalog_execute_plan(l->fence_plan, argv, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "fencing query failed");
	l->fenced = SPI_processed != (uint64) l->nparts;
	for (uint64 i = 0; i < SPI_processed && !l->fenced; i++)
	{
		int			k = eo_ledger_part(l, eo_int4_at(i, 1));

		l->fenced = k < 0 ||
			eo_int8_at(i, 2) != l->parts[k].next ||
			eo_int8_at(i, 3) != l->generation;
	}
	if (l->fenced)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("eo_ingest pipeline \"%s\": offsets were changed by another worker or by reset_offsets",
						pipeline)));
}

/* Store the next offsets that moved, and add the batch to the counters. */
void
eo_ledger_store(EoLedger *l, const int64 *next, const EoCounts *counts,
				int64 subtransactions, int nrecords)
{
	int32	   *p = palloc(sizeof(int32) * Max(l->nparts, 1));
	int64	   *o = palloc(sizeof(int64) * Max(l->nparts, 1));
	int			m = 0;

	/*
	 * Each partition's offset picked from the arrays by its position, not
	 * joined with unnest: a hash join set up and torn down in every batch
	 * was a tenth of a worker's CPU at 10,000 records/s in small batches.
	 */
	if (l->offsets_plan == NULL)
		l->offsets_plan = eo_ledger_prepare("UPDATE eo_ingest.offsets SET next_offset = ($3)[array_position($2, partition)], "
											"committed_at = now() "
											"WHERE pipeline_id = $1 AND partition = ANY ($2)",
											3, (Oid[]) {INT4OID, INT4ARRAYOID, INT8ARRAYOID});
	if (l->counters_plan == NULL)
		l->counters_plan = eo_ledger_prepare("UPDATE eo_ingest.counters SET rows_inserted = rows_inserted + $3, "
											 "rows_updated = rows_updated + $4, duplicates_skipped = duplicates_skipped + $5, "
											 "dead_letters = dead_letters + $6, batches = batches + 1, "
											 "subtransactions = subtransactions + $7, last_batch_at = now() "
											 "WHERE pipeline_id = $1 AND worker = $2",
											 7, (Oid[]) {INT4OID, INT4OID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID});

	for (int i = 0; i < l->nparts; i++)
	{
		if (next[i] == l->parts[i].next)
			continue;
		p[m] = l->parts[i].partition;
		o[m] = next[i];
		m++;
	}
	if (m > 0)
	{
		Datum		argv[3];

		argv[0] = Int32GetDatum(l->pipeline_id);
		argv[1] = eo_int4_array(p, m);
		argv[2] = eo_int8_array(o, m);
		if (eo_catalog_execute_plan(l->offsets_plan, argv, NULL, false, 0) != SPI_OK_UPDATE ||
			SPI_processed != (uint64) m)
			elog(ERROR, "storing offsets failed");
	}
	if (nrecords > 0)
	{
		Datum		argv[7];

		argv[0] = Int32GetDatum(l->pipeline_id);
		argv[1] = Int32GetDatum(l->worker);
		argv[2] = Int64GetDatum(counts->inserted);
		argv[3] = Int64GetDatum(counts->updated);
		argv[4] = Int64GetDatum(counts->skipped);
		argv[5] = Int64GetDatum(counts->dead);
		argv[6] = Int64GetDatum(subtransactions);
		if (eo_catalog_execute_plan(l->counters_plan, argv, NULL, false, 0) != SPI_OK_UPDATE ||
			SPI_processed != 1)
			elog(ERROR, "updating counters failed");
	}
	if (counts->deleted > 0)
	{
		/* only change streams delete, and they need a 0.3 catalog */
		Datum		argv[3];

		argv[0] = Int32GetDatum(l->pipeline_id);
		argv[1] = Int32GetDatum(l->worker);
		argv[2] = Int64GetDatum(counts->deleted);
		if (eo_catalog_execute("UPDATE eo_ingest.counters SET rows_deleted = rows_deleted + $3 "
							   "WHERE pipeline_id = $1 AND worker = $2",
							   3, (Oid[]) {INT4OID, INT4OID, INT8OID}, argv, NULL, false, 0) != SPI_OK_UPDATE ||
			SPI_processed != 1)
			elog(ERROR, "updating counters failed");
	}
}

static Datum
eo_bytea(const char *data, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return PointerGetDatum(b);
}

/*
 * Store the batch's dead records in eo_ingest.dead_letters; a record there
 * already (the pipeline was rewound) gets the new error.
 */
void
eo_ledger_dead_letters(EoLedger *l, const char *pipeline, EoRecord *recs, int n)
{
	Datum	   *parts,
			   *offs,
			   *keys,
			   *payloads,
			   *errors,
			   *states;
	bool	   *keynulls,
			   *paynulls;
	int			m = 0;
	Datum		args[8];
	int			ret;

	for (int i = 0; i < n; i++)
		if (recs[i].status == EO_REC_DEAD)
			m++;
	if (m == 0)
		return;

	if (l->dead_letters_plan == NULL)
	{
		Oid			types[8] = {INT4OID, TEXTOID, INT4ARRAYOID, INT8ARRAYOID,
		BYTEAARRAYOID, BYTEAARRAYOID, TEXTARRAYOID, TEXTARRAYOID};

		l->dead_letters_plan = eo_ledger_prepare("INSERT INTO eo_ingest.dead_letters AS d "
												 "(pipeline_id, pipeline, partition, \"offset\", key, payload, error, sqlstate) "
												 "SELECT $1, $2, u.* FROM unnest($3, $4, $5, $6, $7, $8) AS u "
												 "ON CONFLICT (pipeline_id, partition, \"offset\") DO UPDATE "
												 "SET error = excluded.error, sqlstate = excluded.sqlstate, failed_at = excluded.failed_at",
												 8, types);
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

		if (rec->status != EO_REC_DEAD)
			continue;
		parts[m] = Int32GetDatum(rec->partition);
		offs[m] = Int64GetDatum(rec->offset);
		keynulls[m] = rec->msg->key == NULL;
		if (!keynulls[m])
			keys[m] = eo_bytea(rec->msg->key, rec->msg->key_len);
		paynulls[m] = rec->msg->payload == NULL;
		if (!paynulls[m])
			payloads[m] = eo_bytea(rec->msg->payload, rec->msg->len);
		errors[m] = CStringGetTextDatum(rec->error ? rec->error : "unknown error");
		states[m] = CStringGetTextDatum(unpack_sql_state(rec->sqlerrcode));
		m++;
	}
	args[0] = Int32GetDatum(l->pipeline_id);
	args[1] = CStringGetTextDatum(pipeline);
	args[2] = eo_array(parts, NULL, m, INT4OID);
	args[3] = eo_array(offs, NULL, m, INT8OID);
	args[4] = eo_array(keys, keynulls, m, BYTEAOID);
	args[5] = eo_array(payloads, paynulls, m, BYTEAOID);
	args[6] = eo_array(errors, NULL, m, TEXTOID);
	args[7] = eo_array(states, NULL, m, TEXTOID);
	ret = eo_catalog_execute_plan(l->dead_letters_plan, args, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "storing dead letters failed: %s", SPI_result_code_string(ret));
}
