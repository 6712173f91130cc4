/*
 * record.h
 *		A pipeline's column mapping, the records of one batch, and the
 *		interface of the formats that decode a Kafka message into column
 *		values.
 *
 * A record is decoded once per batch, before the batch transaction locks
 * anything: its mapped columns become Datums of the column types (with null
 * flags), or the record becomes a dead letter with the error that stopped
 * it.  Writing (writer.c, direct.c) only reads the decoded values.
 *
 * Adding a format (say 'avro'):
 *	1. a file src/format_avro.c defining
 *		 const EoFormat eo_format_avro = {.name = "avro", .fills = ..., .decode = ...};
 *	   whose decode() fills the value's columns through eo_fields_text(),
 *	   eo_fields_datum() or eo_fields_null(), or returns false after
 *	   eo_fields_fail() (or simply ereports: every error while decoding makes
 *	   the record a dead letter);
 *	2. one line in the table eo_formats[] in record.c (and its declaration
 *	   below);
 *	3. the name in create_pipeline's check of format (eo_ingest.sql).
 * A format that needs per-pipeline state (a schema cache) builds it in
 * prepare(), once per mapping, in the mapping's memory context.  The Kafka
 * key is decoded by a second mapping (EoMapping.key_map, key_format) with the
 * same interface: its columns are those mapped from $key.<path>, and the
 * format sees the key's bytes as its value.  An envelope
 * (debezium, upsert: envelope.c) makes records of its own, one per row
 * (after, before or the key), that decode a part of the value instead of
 * the whole (EoRecord.value).
 */
#ifndef EO_RECORD_H
#define EO_RECORD_H

#include <librdkafka/rdkafka.h>

#include "access/attnum.h"
#include "fmgr.h"

/* JSON paths of the columns argument have at most this many levels */
#define EO_MAX_DEPTH 16

typedef enum EoSource
{
	EO_SRC_JSON,				/* a key or dotted path in the value */
	EO_SRC_KEY,
	EO_SRC_VALUE,
	EO_SRC_TOPIC,
	EO_SRC_PARTITION,
	EO_SRC_OFFSET,
	EO_SRC_TIMESTAMP,
	EO_SRC_HEADERS,
	EO_SRC_ENVELOPE,			/* a path into a Debezium event: $op,
								 * $ts_ms, $source.lsn, ... */
	EO_SRC_KEY_FIELD,			/* $key.<path>: a field of the decoded key */
	EO_SRC_NONE					/* in a key mapping: not filled from the key */
} EoSource;

/* envelope => ...: how a record changes the target (envelope.c, apply.c) */
typedef enum EoEnvelope
{
	EO_ENV_NONE,				/* every record is an event */
	EO_ENV_DEBEZIUM,
	EO_ENV_UPSERT
} EoEnvelope;

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
	bool		is_array;		/* an array type: Avro arrays fill it as an
								 * array literal, not JSON */
	bool		via_text;		/* no array type (an array column): the writer
								 * passes its values as text[] (outfunc) and
								 * the statement casts them */
	char		epoch_unit;		/* a Debezium event's ts_ms, ts_us or ts_ns
								 * into a time column: 'm', 'u' or 'n'; else 0 */
	FmgrInfo	outfunc;
	/* the writer passes values as an array of the column type */
	Oid			arraytype;
	FmgrInfo	infunc;
	Oid			ioparam;
	int32		typmod;
	int16		typlen;
	bool		typbyval;
	char		typalign;
} EoColumn;

struct EoFormat;

typedef struct EoMapping
{
	Oid			target;
	char	   *target_name;	/* qualified, quoted */
	const struct EoFormat *format;
	void	   *format_state;	/* from format->prepare, or NULL */
	bool		update;			/* on_duplicate = 'update' */
	int			ncolumns;
	EoColumn   *columns;
	int			id_column;		/* -1: no deduplication */
	int			ts_column;		/* a column fed from $timestamp, or -1 */
	int			max_depth;		/* of the JSON paths */
	char	   *topic;
	char	   *signature;		/* equal signatures decode equally */
	EoEnvelope	envelope;
	bool		truncate;		/* on_truncate = 'truncate' */
	/*
	 * key_format: the mapping that decodes the Kafka key, or NULL (the key is
	 * only bytes, $key).  Its columns are this mapping's, in the same order:
	 * $key.<path> ones (and, with an envelope, those mapped by field, which
	 * may identify the row) read the key's fields; the others are
	 * EO_SRC_NONE.
	 */
	struct EoMapping *key_map;
	bool		is_key;			/* this mapping decodes the Kafka key */
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
	/* an envelope's row: the format decodes this instead of msg's value */
	bool		value_override;
	const char *value;			/* NULL: no value, only the Kafka metadata */
	size_t		value_len;
	bool		json_strings;	/* json/jsonb columns come as a JSON string
								 * holding the document (Debezium) */
	const char *envelope;		/* the Debezium event the row is from, for
								 * $op, $source...: NULL if none */
	size_t		envelope_len;
	/* decoded once per batch (record.c) */
	bool		decoded_ok;		/* false: a dead letter before any write */
	char	   *shape;			/* per column '1' if it has a value (maybe
								 * NULL), else '0' */
	Datum	   *datums;
	bool	   *nulls;
	char	   *event_id;		/* the id's bytes as its column type, for
								 * in-batch duplicates */
	int			event_id_len;
	/* set by each attempt to write the batch (writer.c) */
	EoRecordStatus status;
	struct EoRecord *next_dup;	/* the next record of this event id, in
								 * winning order (dedup) */
	char	   *error;
	int			sqlerrcode;
} EoRecord;

/*
 * What a format hands back for one record: per column, text that record.c
 * converts with the column type's input function, or a ready Datum.
 */
typedef struct EoFields
{
	EoMapping  *map;
	char	   *present;
	const char **text;
	int		   *len;
	bool	   *isnull;
	char	   *is_datum;		/* 0: text; EO_DATUM: a Datum, which
								 * record.c copies into the batch's memory;
								 * EO_DATUM_KEPT: one allocated in cxt */
	Datum	   *datum;
	MemoryContext cxt;			/* where the decoded record's values live, or
								 * NULL: no EO_DATUM_KEPT */
	char	   *arena;			/* the free part of a block of cxt that */
	char	   *arena_end;		/* eo_fields_alloc cuts values from */
	int			sqlerrcode;		/* set by eo_fields_fail */
	char	   *error;
	struct EoFields *key;		/* the key's fields (map->key_map), or NULL */
} EoFields;

#define EO_DATUM 1
#define EO_DATUM_KEPT 2

typedef struct EoFormat
{
	const char *name;			/* format => 'name' */
	/* can the value of this format fill a column fed from source? */
	bool		(*fills) (EoSource source);
	/* do target columns not in the columns argument take same-named fields? */
	bool		by_name;
	/* per-pipeline state, built once per mapping; may be NULL */
	void	   *(*prepare) (EoMapping *map);
	/*
	 * Fill fields from the message's value (which may be NULL, a
	 * tombstone).  Returns false after eo_fields_fail for a bad record.
	 */
	bool		(*decode) (EoFields *fields, void *state, const char *value, size_t len);
} EoFormat;

/* the formats (one file each), registered in record.c */
extern const EoFormat eo_format_json;
extern const EoFormat eo_format_text;
extern const EoFormat eo_format_bytea;
extern const EoFormat eo_format_avro;

/*
 * A column's text, NUL-terminated, living until the record is decoded; and
 * a column's NULL.  Inline: the JSON scanner calls them for every captured
 * value.
 */
static inline void
eo_fields_text(EoFields *f, int c, const char *text, int len)
{
	f->present[c] = 1;
	f->isnull[c] = false;
	f->is_datum[c] = false;
	f->text[c] = text;
	f->len[c] = len;
}

static inline void
eo_fields_null(EoFields *f, int c)
{
	f->present[c] = 1;
	f->isnull[c] = true;
	f->is_datum[c] = false;
	f->text[c] = NULL;
}

/*
 * A column's Datum, of the column type: copied into the batch's memory
 * unless kept (EO_DATUM_KEPT: it was allocated in f->cxt, or is by value).
 */
static inline void
eo_fields_datum_as(EoFields *f, int c, Datum d, bool isnull, char kind)
{
	f->present[c] = 1;
	f->isnull[c] = isnull;
	f->is_datum[c] = kind;
	f->datum[c] = d;
}

static inline void
eo_fields_datum(EoFields *f, int c, Datum d, bool isnull)
{
	eo_fields_datum_as(f, c, d, isnull, EO_DATUM);
}

/* fields.c */
extern void *eo_fields_alloc_block(EoFields *f, Size n);

/*
 * n bytes in f->cxt (not NULL) for a value handed over as EO_DATUM_KEPT:
 * cut from blocks of 8 kB, freed with the batch's memory, never one by
 * one (a palloc for each of a record's values cost more than converting
 * most of them).
 */
static inline void *
eo_fields_alloc(EoFields *f, Size n)
{
	void	   *p = f->arena;

	n = MAXALIGN(n);
	if (unlikely(n > (Size) (f->arena_end - f->arena)))
		return eo_fields_alloc_block(f, n);
	f->arena += n;
	return p;
}

extern bool eo_text_valid(const char *s, size_t len);
extern bool eo_fields_raw(EoFields *f, int c, const char *bytes, size_t len, const char *what);
extern bool eo_fields_fail(EoFields *f, int sqlerrcode, const char *error);

/* record.c */
extern const EoFormat *eo_format_find(const char *name);
extern int	eo_record_decode_batch(EoMapping *map, EoRecord *recs, int n,
								   MemoryContext cxt);
extern void eo_record_decoded_by(EoMapping *map, EoRecord *recs, int n, MemoryContext cxt,
								 int subxacts);
extern void eo_record_event_id(EoMapping *map, EoRecord *rec, MemoryContext cxt);
extern char *eo_error_text(ErrorData *edata);
extern ErrorData *eo_subxact_run(void (*fn) (void *arg), void *arg);
extern bool eo_record_error_is_records(int sqlerrcode);
extern int	eo_shape_run_end(EoRecord *recs, const int *idx, int start, int hi,
							 bool one_shape);

/* convert.c */
extern Datum eo_text_datum(EoColumn *col, const char *text, int len, bool isnull,
						   MemoryContext cxt);
struct pg_uuid_t;
extern bool eo_parse_uuid(const char *s, int len, struct pg_uuid_t *uuid);
/* the most bytes eo_numeric_short writes for ndigits digits */
#define EO_NUMERIC_SHORT_MAX(ndigits) (VARHDRSZ + sizeof(uint16) + (ndigits) * sizeof(int16))
extern bool eo_numeric_short(bool neg, const int16 *digit, int ndigits, int weight, int dscale,
							 void *buf);

/* mapping.c */
extern EoMapping *eo_mapping_build(Oid target, const char *format, const char *key_format,
								   const char *event_id, const char *on_duplicate,
								   Datum columns, bool columns_null, const char *topic,
								   EoEnvelope envelope);
extern EoMapping *eo_mapping_nested(EoMapping *map, const char *field, bool op);

#endif							/* EO_RECORD_H */
