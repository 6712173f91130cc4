/*
 * envelope.h
 *		One batch's pass of a change-stream envelope: the rows to decode and
 *		the changes made of them (envelope.c), which the reading of Debezium
 *		events (debezium.c) adds to.
 */
#ifndef EO_ENVELOPE_H
#define EO_ENVELOPE_H

#include "change.h"

typedef struct EoEnvPass
{
	EoRecord   *rows;			/* at most two per record, then a key each */
	int			nrows;
	EoChange   *changes;		/* at most two per record */
	int			nchanges;
	const char *event;			/* the Debezium event being read, for
								 * columns mapped from $op, $source... */
	size_t		event_len;
	EoFields	fields;			/* debezium.c's scan of JSON events */
	MemoryContext scratch;		/* one scan's */
} EoEnvPass;

/* envelope.c */
extern void eo_env_fail(EoRecord *rec, int sqlerrcode, const char *error);
extern EoRecord *eo_env_row(EoApplier *a, EoEnvPass *p, EoRecord *rec,
							const char *json, size_t len);
extern EoChange *eo_env_change(EoEnvPass *p, EoRecord *rec, EoRecord *row, EoOp op, int seq);

/* debezium.c */
extern void eo_dbz_prepare(EoEnvPass *p);
extern bool eo_dbz_unwrap(EoEnvPass *p, const char *json, size_t len, const char **object,
						  size_t *object_len, int *sqlerrcode, char **error);
extern void eo_dbz_json(EoApplier *a, EoEnvPass *p, EoRecord *rec, int seq);
extern int	eo_dbz_decoded(EoApplier *a, EoEnvPass *p, EoRecord *recs, int n,
						   MemoryContext cxt);

#endif							/* EO_ENVELOPE_H */
