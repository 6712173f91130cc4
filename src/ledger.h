/*
 * ledger.h
 *		A worker's rows in eo_ingest.offsets, eo_ingest.counters and
 *		eo_ingest.dead_letters, and its pipeline's generation: what each
 *		batch transaction writes besides the target's rows.
 */
#ifndef EO_LEDGER_H
#define EO_LEDGER_H

#include "postgres.h"

#include "executor/spi.h"

#include "batch.h"

typedef struct EoPart
{
	int32		partition;
	int64		next;			/* committed next offset */
	int64		high_watermark; /* -1 while unknown */
} EoPart;

typedef struct EoLedger
{
	int32		pipeline_id;
	int32		worker;
	int64		generation;		/* ours, from the last claim */
	int			nparts;
	EoPart	   *parts;
	bool		fenced;			/* the last fence found another owner */
	SPIPlanPtr	fence_plan;
	SPIPlanPtr	offsets_plan;
	SPIPlanPtr	counters_plan;
	SPIPlanPtr	dead_letters_plan;
} EoLedger;

extern int	eo_ledger_part(const EoLedger *l, int32 partition);
extern void eo_ledger_read_offsets(const EoLedger *l, int n, const int32 *partitions,
								   int64 *stored);
extern void eo_ledger_claim(EoLedger *l, const int64 *start);
extern void eo_ledger_fence(EoLedger *l, const char *pipeline);
extern void eo_ledger_dead_letters(EoLedger *l, const char *pipeline, EoRecord *recs, int n);
extern void eo_ledger_store(EoLedger *l, const int64 *next, const EoCounts *counts,
							int64 subtransactions, int nrecords);

#endif
