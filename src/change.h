/*
 * change.h
 *		Change streams: what an envelope (Debezium, upsert) makes of a Kafka
 *		record, and the applier that carries a batch of changes out by the
 *		target's primary key.
 */
#ifndef EO_CHANGE_H
#define EO_CHANGE_H

#include "batch.h"

typedef enum EoOp
{
	EO_OP_UPSERT,				/* insert the row, or replace its columns */
	EO_OP_DELETE,				/* delete the row with this key */
	EO_OP_TRUNCATE				/* empty the target (on_truncate) */
} EoOp;

typedef struct EoChange
{
	EoRecord   *rec;			/* the Kafka record: status, dead letter */
	EoRecord   *row;			/* the column values (new row, or old key),
								 * decoded by record.c */
	EoOp		op;
	bool		if_key_changed; /* the delete of an update's old key: only
								 * if the next change has another key */
	bool		creates;		/* op c or r: most likely a key no row has */
	const char *plan;			/* its statement: "D", "T", or "U" + shape */
	int			seq;			/* position in the batch: later wins */
	char	   *ident;			/* the primary key's values, encoded */
	int			identlen;
	struct EoChange *older;		/* the next older change of the same key */
	bool		applied;
} EoChange;

typedef struct EoApplier
{
	EoMapping  *map;
	EoWriter   *writer;			/* keeps the statements: 'D', 'T', 'U' + shape */
	int			nkeys;
	int		   *keys;			/* mapping columns of the primary key */
	EoMapping  *direct_map;		/* map with the primary key as event id, for
								 * the multi-insert path; NULL: composite key */
	int64		subtransactions;
	/*
	 * Debezium events of a format other than JSON: the mappings that read
	 * "after" (and "op", one column more) and "before" out of the whole value.
	 */
	EoMapping  *after_map;
	EoMapping  *before_map;
	/* the batch's changes, from eo_envelope_decode, in the attempt's memory */
	EoChange   *changes;
	int			nchanges;
	EoRecord   *rows;			/* the array every change's row is in */
} EoApplier;

/* envelope.c */
extern int	eo_envelope_decode(EoApplier *a, EoRecord *recs, int n, MemoryContext cxt);

/* apply.c */
extern EoApplier *eo_apply_create(EoMapping *map, EoWriter *w);
extern void eo_apply_destroy(EoApplier *a);
extern void eo_apply_batch(EoApplier *a, EoRecord *recs, int n, EoCounts *counts);

#endif							/* EO_CHANGE_H */
