/*
 * batch.h
 *		The batch writer, which stores a batch's decoded records in the
 *		target (its dead letters are stored by the ledger, ledger.h).
 */
#ifndef EO_BATCH_H
#define EO_BATCH_H

#include "executor/spi.h"
#include "utils/hsearch.h"

#include "record.h"

typedef struct EoCounts
{
	int64		inserted;
	int64		updated;
	int64		skipped;
	int64		dead;
	int64		deleted;
} EoCounts;

typedef struct EoWriter
{
	EoMapping  *map;
	MemoryContext cxt;			/* lives as long as the mapping */
	HTAB	   *plans;			/* shape string (or the applier's key) ->
								 * SPIPlanPtr */
	/* the batch's records in event id order, from eo_writer_dedup */
	EoRecord  **order;
	int			norder;
	/* every record of eo_writer_write's current round has one shape */
	bool		one_shape;
	int64		subtransactions;	/* for tests of the bisection cost */
} EoWriter;

/* writer.c */
extern EoWriter *eo_writer_create(EoMapping *map, MemoryContext parent);
extern void eo_writer_destroy(EoWriter *w);
extern void eo_writer_dedup(EoWriter *w, EoRecord *recs, int n, EoCounts *counts);
extern void eo_writer_write(EoWriter *w, EoRecord *recs, int n, EoCounts *counts);
extern bool eo_is_data_error(int sqlerrcode);
extern SPIPlanPtr eo_writer_plan_find(EoWriter *w, const char *key);
extern SPIPlanPtr eo_writer_plan_keep(EoWriter *w, const char *key, const char *sql,
									  int nargs, Oid *argtypes);
extern Datum eo_writer_column_array(EoColumn *col, Datum *elems, bool *nulls, int n);

/* direct.c */
extern bool eo_direct_write(EoMapping *map, EoRecord *recs, int *idx, int lo, int hi,
							bool one_shape, EoCounts *counts, int *existing, int *nexisting);

#endif							/* EO_BATCH_H */
