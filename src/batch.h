/*
 * batch.h
 *		A pipeline's column mapping, the records of one batch, and the batch
 *		writer that stores them.
 */
#ifndef EO_BATCH_H
#define EO_BATCH_H

#include <librdkafka/rdkafka.h>

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/hsearch.h"

typedef enum EoSource
{
	EO_SRC_JSON,				/* a key or dotted path in the JSON value */
	EO_SRC_KEY,
	EO_SRC_VALUE,
	EO_SRC_TOPIC,
	EO_SRC_PARTITION,
	EO_SRC_OFFSET,
	EO_SRC_TIMESTAMP,
	EO_SRC_HEADERS
} EoSource;

typedef enum EoFormat
{
	EO_FORMAT_JSON,
	EO_FORMAT_TEXT,
	EO_FORMAT_BYTEA
} EoFormat;

typedef struct EoColumn
{
	char	   *name;			/* quoted column name */
	AttrNumber	attnum;
	char	   *type;			/* qualified type name with typmod */
	Oid			typid;
	EoSource	source;
	int			npath;
	char	  **path;
	int		   *pathlen;		/* strlen of each path element */
	bool		binary;			/* raw bytes into a bytea column */
	bool		json_raw;		/* json/jsonb column: keep the JSON text */
	/* values are converted in C and passed as an array of the column type */
	Oid			arraytype;
	FmgrInfo	infunc;
	Oid			ioparam;
	int32		typmod;
	int16		typlen;
	bool		typbyval;
	char		typalign;
} EoColumn;

typedef struct EoMapping
{
	Oid			target;
	char	   *target_name;	/* qualified, quoted */
	EoFormat	format;
	bool		update;			/* on_duplicate = 'update' */
	int			ncolumns;
	EoColumn   *columns;
	int			id_column;		/* -1: no deduplication */
	int			ts_column;		/* a column fed from $timestamp, or -1 */
	int			max_depth;
	char	   *topic;
} EoMapping;

typedef enum EoRecordStatus
{
	EO_REC_OK,
	EO_REC_DUPLICATE,
	EO_REC_DEAD
} EoRecordStatus;

typedef struct EoRecord
{
	rd_kafka_message_t *msg;
	int32		partition;
	int64		offset;
	int64		timestamp;		/* ms since the Unix epoch, -1 if none */
	char	   *present;		/* per column: 1 if it has a value (maybe NULL) */
	char	   *present_shape;	/* the same as a string of '0' and '1' */
	char	  **values;
	int		   *lengths;
	bool	   *nulls;
	char	   *event_id;		/* points into values or the key */
	int			event_id_len;
	EoRecordStatus status;
	struct EoRecord *next_dup;	/* the next record of this event id, in
								 * winning order (dedup) */
	char	   *error;
	int			sqlerrcode;
} EoRecord;

typedef struct EoCounts
{
	int64		inserted;
	int64		updated;
	int64		skipped;
	int64		dead;
} EoCounts;

typedef struct EoWriter
{
	EoMapping  *map;
	MemoryContext cxt;			/* lives as long as the mapping */
	HTAB	   *plans;			/* shape string -> SPIPlanPtr */
	/* the batch's records in event id order, from eo_writer_dedup */
	EoRecord  **order;
	int			norder;
	int64		subtransactions;	/* for tests of the bisection cost */
} EoWriter;

/* mapping.c */
extern EoMapping *eo_mapping_build(Oid target, const char *format, const char *event_id,
								   const char *on_duplicate, Datum columns, bool columns_null,
								   const char *topic);
extern void eo_record_parse(EoMapping *map, EoRecord *rec);

/* writer.c */
extern Datum eo_record_datum(EoColumn *col, EoRecord *rec, int c, bool *isnull);
extern int	eo_shape_run_end(EoRecord *recs, const int *idx, int start, int hi);
extern EoWriter *eo_writer_create(EoMapping *map, MemoryContext parent);
extern void eo_writer_destroy(EoWriter *w);
extern void eo_writer_dedup(EoWriter *w, EoRecord *recs, int n, EoCounts *counts);
extern void eo_writer_write(EoWriter *w, EoRecord *recs, int n, EoCounts *counts);
extern void eo_writer_dead_letters(EoWriter *w, int32 pipeline_id, const char *pipeline,
								   EoRecord *recs, int n);
extern bool eo_is_data_error(int sqlerrcode);

/* direct.c */
extern bool eo_direct_write(EoWriter *w, EoRecord *recs, int *idx, int lo, int hi,
							EoCounts *counts, int *existing, int *nexisting);

#endif							/* EO_BATCH_H */
