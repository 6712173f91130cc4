/*
 * avro_reader.h
 *		A cursor over one Avro binary value, shared by the record walk
 *		(avro_decode.c) and the rendering of values as text (avro_render.c):
 *		variable-length numbers, lengths, fixed sizes, array and map blocks
 *		and union branches, each checked against the end of the value.
 *
 * A malformed byte sets the reader's error, with the top-level field and
 * the byte where it was found, and makes every read return false; the
 * record becomes a dead letter with that error.  The reads are inline
 * (always: they run for every field of every record), the error out of
 * line.
 */
#ifndef EO_AVRO_READER_H
#define EO_AVRO_READER_H

#include "avro_format.h"

/*
 * Values nest only as deep as their schema, except through a recursive
 * named type (a linked list, a tree): its data can nest without end, and
 * the walks recurse.  Deeper values are dead letters.
 */
#define EO_AVRO_MAX_NESTING 1000

typedef struct EoAvroReader
{
	const char *start;
	const char *p;
	const char *end;
	const char *field;			/* the top-level field being read, for errors */
	int			sqlerrcode;
	char	   *error;
} EoAvroReader;

/* avro_decode.c: sets the error (out of line: the reads stay small) */
extern void eo_avro_set_error(EoAvroReader *r, const char *msg);

static inline bool
eo_avro_fail(EoAvroReader *r, const char *msg)
{
	eo_avro_set_error(r, msg);
	return false;
}

static inline bool
eo_avro_too_deep(EoAvroReader *r)
{
	if (r->error == NULL)
		r->sqlerrcode = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
	return eo_avro_fail(r, psprintf("nested more than %d levels deep", EO_AVRO_MAX_NESTING));
}

static pg_attribute_always_inline bool
eo_avro_read_long(EoAvroReader *r, int64 *out)
{
	uint64		v = 0;
	int			shift = 0;
	unsigned char b;

	if (likely(r->end - r->p >= 10))
	{
		/* all ten bytes a long may take are there: no check per byte */
		do
		{
			b = (unsigned char) *r->p++;
			v |= (uint64) (b & 0x7f) << shift;
			shift += 7;
		} while ((b & 0x80) != 0 && shift < 70);
		if ((b & 0x80) != 0)
			return eo_avro_fail(r, "a variable-length number is longer than 10 bytes");
		*out = (int64) (v >> 1) ^ -(int64) (v & 1);
		return true;
	}
	for (;;)
	{
		if (r->p >= r->end)
			return eo_avro_fail(r, "truncated: the value ends inside a number");
		if (shift > 63)
			return eo_avro_fail(r, "a variable-length number is longer than 10 bytes");
		b = (unsigned char) *r->p++;
		v |= (uint64) (b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			break;
		shift += 7;
	}
	*out = (int64) (v >> 1) ^ -(int64) (v & 1);
	return true;
}

static pg_attribute_always_inline bool
eo_avro_read_int(EoAvroReader *r, int64 *out)
{
	if (!eo_avro_read_long(r, out))
		return false;
	if (*out < PG_INT32_MIN || *out > PG_INT32_MAX)
		return eo_avro_fail(r, "an int is out of the 32-bit range");
	return true;
}

static pg_attribute_always_inline bool
eo_avro_read_bytes(EoAvroReader *r, const char **data, int64 *len)
{
	if (!eo_avro_read_long(r, len))
		return false;
	if (*len < 0)
		return eo_avro_fail(r, "a negative length");
	if (*len > r->end - r->p)
		return eo_avro_fail(r, "truncated: a length runs past the end of the value");
	*data = r->p;
	r->p += *len;
	return true;
}

static pg_attribute_always_inline bool
eo_avro_read_fixed(EoAvroReader *r, int64 size, const char **data)
{
	if (size > r->end - r->p)
		return eo_avro_fail(r, "truncated: a fixed value runs past the end of the value");
	*data = r->p;
	r->p += size;
	return true;
}

/* A block count of an array or map; a negative one is followed by a size. */
static inline bool
eo_avro_read_block(EoAvroReader *r, int64 *count)
{
	int64		bytes;

	if (!eo_avro_read_long(r, count))
		return false;
	if (*count < 0)
	{
		if (*count == PG_INT64_MIN)
			return eo_avro_fail(r, "an invalid block count");
		*count = -*count;
		if (!eo_avro_read_long(r, &bytes))
			return false;
	}
	/* each item takes at least one byte unless it is null */
	return true;
}

static inline bool
eo_avro_read_branch(EoAvroReader *r, EoAvroNode *s, EoAvroNode **branch)
{
	int64		idx;

	if (!eo_avro_read_long(r, &idx))
		return false;
	if (idx < 0 || idx >= s->nchildren)
		return eo_avro_fail(r, psprintf("union branch %lld does not exist (the union has %d)",
										(long long) idx, s->nchildren));
	*branch = s->children[idx];
	return true;
}

/*
 * avro_decode.c: the general walk.  Which columns a field of a top-level
 * record feeds, worked out once (avro_steps.c), or NULL: found by name.
 */
typedef struct EoAvroFieldPlan
{
	int			ncols;			/* columns whose path is this field alone */
	int		   *cols;
	bool		deeper;			/* some column's path goes on below it */
} EoAvroFieldPlan;

extern bool eo_avro_skip(EoAvroReader *r, EoAvroNode *s, int depth);
extern bool eo_avro_path_at(EoColumn *col, int level, const char *name, const char **parents);
extern bool eo_avro_decode_field(EoAvroReader *r, EoFields *f, EoAvroNode *s, int i, int level,
								 const char **parents, const EoAvroFieldPlan *fp);

/* avro_steps.c: a top-level record by its plan */
extern bool eo_avro_decode_steps(EoAvroReader *r, EoFields *f, EoAvroNode *s,
								 const char **parents);

/*
 * avro_render.c: one value as the text a column type reads.  A null (the
 * null type, or a union's null branch) sets *isnull and writes nothing.
 */
typedef enum EoAvroRender
{
	EO_RENDER_TEXT,				/* a column type's input text */
	EO_RENDER_JSON
} EoAvroRender;

extern bool eo_avro_render(EoAvroReader *r, EoAvroNode *s, EoAvroRender mode, bool pg_array,
						   StringInfo out, bool *isnull, int depth);

#endif							/* EO_AVRO_READER_H */
