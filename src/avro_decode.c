/*
 * avro_decode.c
 *		Avro binary, read with its writer schema, into the values of the
 *		mapped columns.
 *
 * One pass over the record: a field that feeds a column becomes a Datum of
 * the column's type where the two types match (avro_datum.c), else it is
 * rendered in the form the column's type reads (its input text, a
 * PostgreSQL array literal for an array column, JSON for json and jsonb);
 * any other field is skipped
 * by its encoded length.  Fields are found by name in the writer's schema,
 * so every schema version of a topic maps alike, and a column with no field
 * in a version gets its DEFAULT.  Any malformed byte makes the record a dead
 * letter with the reason and where it was found.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "avro_format.h"

/*
 * Values nest only as deep as their schema, except through a recursive
 * named type (a linked list, a tree): its data can nest without end, and
 * the walks below recurse.  Deeper values are dead letters.
 */
#define EO_AVRO_MAX_NESTING 1000

typedef enum EoRender
{
	EO_RENDER_TEXT,				/* a column type's input text */
	EO_RENDER_JSON
} EoRender;

typedef struct EoReader
{
	const char *start;
	const char *p;
	const char *end;
	const char *field;			/* the top-level field being read, for errors */
	int			sqlerrcode;
	char	   *error;
} EoReader;

static bool
eo_fail(EoReader *r, const char *msg)
{
	if (r->error == NULL)
		r->error = r->field ?
			psprintf("invalid Avro value in field \"%s\" at byte %d: %s", r->field,
					 (int) (r->p - r->start), msg) :
			psprintf("invalid Avro value at byte %d: %s", (int) (r->p - r->start), msg);
	return false;
}

static bool
eo_too_deep(EoReader *r)
{
	if (r->error == NULL)
		r->sqlerrcode = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
	return eo_fail(r, psprintf("nested more than %d levels deep", EO_AVRO_MAX_NESTING));
}

static bool
eo_read_long(EoReader *r, int64 *out)
{
	uint64		v = 0;
	int			shift = 0;

	for (;;)
	{
		unsigned char b;

		if (r->p >= r->end)
			return eo_fail(r, "truncated: the value ends inside a number");
		if (shift > 63)
			return eo_fail(r, "a variable-length number is longer than 10 bytes");
		b = (unsigned char) *r->p++;
		v |= (uint64) (b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			break;
		shift += 7;
	}
	*out = (int64) (v >> 1) ^ -(int64) (v & 1);
	return true;
}

static bool
eo_read_int(EoReader *r, int64 *out)
{
	if (!eo_read_long(r, out))
		return false;
	if (*out < PG_INT32_MIN || *out > PG_INT32_MAX)
		return eo_fail(r, "an int is out of the 32-bit range");
	return true;
}

static bool
eo_read_bytes(EoReader *r, const char **data, int64 *len)
{
	if (!eo_read_long(r, len))
		return false;
	if (*len < 0)
		return eo_fail(r, "a negative length");
	if (*len > r->end - r->p)
		return eo_fail(r, "truncated: a length runs past the end of the value");
	*data = r->p;
	r->p += *len;
	return true;
}

static bool
eo_read_fixed(EoReader *r, int64 size, const char **data)
{
	if (size > r->end - r->p)
		return eo_fail(r, "truncated: a fixed value runs past the end of the value");
	*data = r->p;
	r->p += size;
	return true;
}

/* A block count of an array or map; a negative one is followed by a size. */
static bool
eo_read_block(EoReader *r, int64 *count)
{
	int64		bytes;

	if (!eo_read_long(r, count))
		return false;
	if (*count < 0)
	{
		if (*count == PG_INT64_MIN)
			return eo_fail(r, "an invalid block count");
		*count = -*count;
		if (!eo_read_long(r, &bytes))
			return false;
	}
	/* each item takes at least one byte unless it is null */
	return true;
}

static bool
eo_union_branch(EoReader *r, EoAvroNode *s, EoAvroNode **branch)
{
	int64		idx;

	if (!eo_read_long(r, &idx))
		return false;
	if (idx < 0 || idx >= s->nchildren)
		return eo_fail(r, psprintf("union branch %lld does not exist (the union has %d)",
								   (long long) idx, s->nchildren));
	*branch = s->children[idx];
	return true;
}

static bool
eo_skip(EoReader *r, EoAvroNode *s, int depth)
{
	int64		v;
	const char *d;

	if (depth > EO_AVRO_MAX_NESTING)
		return eo_too_deep(r);
	switch (s->type)
	{
		case EO_AVRO_NULL:
			return true;
		case EO_AVRO_BOOLEAN:
			return eo_read_fixed(r, 1, &d);
		case EO_AVRO_INT:
		case EO_AVRO_LONG:
		case EO_AVRO_ENUM:
			return eo_read_long(r, &v);
		case EO_AVRO_FLOAT:
			return eo_read_fixed(r, 4, &d);
		case EO_AVRO_DOUBLE:
			return eo_read_fixed(r, 8, &d);
		case EO_AVRO_BYTES:
		case EO_AVRO_STRING:
			return eo_read_bytes(r, &d, &v);
		case EO_AVRO_FIXED:
			return eo_read_fixed(r, s->size, &d);
		case EO_AVRO_RECORD:
			for (int i = 0; i < s->nchildren; i++)
				if (!eo_skip(r, s->children[i], depth + 1))
					return false;
			return true;
		case EO_AVRO_UNION:
			{
				EoAvroNode *b;

				return eo_union_branch(r, s, &b) && eo_skip(r, b, depth + 1);
			}
		case EO_AVRO_ARRAY:
		case EO_AVRO_MAP:
			for (;;)
			{
				int64		n;

				if (!eo_read_block(r, &n))
					return false;
				if (n == 0)
					return true;
				while (n-- > 0)
				{
					if (s->type == EO_AVRO_MAP && !eo_read_bytes(r, &d, &v))
						return false;
					if (!eo_skip(r, s->children[0], depth + 1))
						return false;
				}
			}
	}
	return true;
}

static bool eo_render(EoReader *r, EoAvroNode *s, EoRender mode, bool pg_array,
					  StringInfo out, bool *isnull, int depth);

/* A string's bytes, checked against the database encoding. */
static bool
eo_render_string(EoReader *r, const char *d, int64 len, EoRender mode, StringInfo out)
{
	if (!pg_verifymbstr(d, len, true))
		return eo_fail(r, "a string is not valid in the database encoding");
	if (mode == EO_RENDER_JSON)
		escape_json(out, pnstrdup(d, len));
	else
		appendBinaryStringInfo(out, d, len);
	return true;
}

static void
eo_render_hex(const char *d, int64 len, EoRender mode, StringInfo out)
{
	static const char hex[] = "0123456789abcdef";

	if (mode == EO_RENDER_JSON)
		appendStringInfoString(out, "\"\\\\x");
	else
		appendStringInfoString(out, "\\x");
	for (int64 i = 0; i < len; i++)
	{
		appendStringInfoChar(out, hex[((unsigned char) d[i]) >> 4]);
		appendStringInfoChar(out, hex[((unsigned char) d[i]) & 15]);
	}
	if (mode == EO_RENDER_JSON)
		appendStringInfoChar(out, '"');
}

/* A decimal: big-endian two's complement unscaled value, then the scale. */
static bool
eo_render_decimal(EoReader *r, const char *d, int64 len, int scale, StringInfo out)
{
	int128		v = 0;
	uint128		u;
	char		digits[48];
	int			n = 0;

	if (len > 16)
		return eo_fail(r, "a decimal wider than 128 bits");
	if (len == 0)
		return eo_fail(r, "a decimal with no bytes");
	v = (signed char) d[0];
	for (int64 i = 1; i < len; i++)
		v = v * 256 + (unsigned char) d[i];
	u = v < 0 ? (uint128) (-(v + 1)) + 1 : (uint128) v;
	do
	{
		digits[n++] = '0' + (int) (u % 10);
		u /= 10;
	} while (u > 0);
	while (n <= scale)
		digits[n++] = '0';
	if (v < 0)
		appendStringInfoChar(out, '-');
	for (int i = n - 1; i >= 0; i--)
	{
		appendStringInfoChar(out, digits[i]);
		if (i == scale && scale > 0)
			appendStringInfoChar(out, '.');
	}
	return true;
}

static bool
eo_render_temporal(EoReader *r, EoAvroNode *s, int64 v, EoRender mode, StringInfo out)
{
	char	   *text;
	const char *error;
	Datum		d;

	if ((error = eo_avro_temporal(s, v, &d)) != NULL)
		return eo_fail(r, error);
	switch (s->logical)
	{
		case EO_AVRO_DATE:
			text = DatumGetCString(DirectFunctionCall1(date_out, d));
			break;
		case EO_AVRO_TIME_MILLIS:
		case EO_AVRO_TIME_MICROS:
			text = DatumGetCString(DirectFunctionCall1(time_out, d));
			break;
		case EO_AVRO_TIMESTAMP_MILLIS:
		case EO_AVRO_TIMESTAMP_MICROS:
			text = DatumGetCString(DirectFunctionCall1(timestamptz_out, d));
			break;
		default:
			text = DatumGetCString(DirectFunctionCall1(timestamp_out, d));
			break;
	}
	if (mode == EO_RENDER_JSON)
		escape_json(out, text);
	else
		appendStringInfoString(out, text);
	return true;
}

/* An array element of a PostgreSQL array literal: quoted, or NULL. */
static bool
eo_render_element(EoReader *r, EoAvroNode *s, StringInfo out, int depth)
{
	StringInfoData buf;
	bool		isnull = false;
	bool		nested;

	while (s->type == EO_AVRO_UNION)
	{
		if (!eo_union_branch(r, s, &s))
			return false;
	}
	nested = s->type == EO_AVRO_ARRAY;
	initStringInfo(&buf);
	if (!eo_render(r, s, nested ? EO_RENDER_TEXT : (s->type == EO_AVRO_RECORD ||
													 s->type == EO_AVRO_MAP ?
													 EO_RENDER_JSON : EO_RENDER_TEXT),
				   nested, &buf, &isnull, depth + 1))
		return false;
	if (isnull)
		appendStringInfoString(out, "NULL");
	else if (nested)
		appendBinaryStringInfo(out, buf.data, buf.len);
	else
	{
		appendStringInfoChar(out, '"');
		for (int i = 0; i < buf.len; i++)
		{
			if (buf.data[i] == '"' || buf.data[i] == '\\')
				appendStringInfoChar(out, '\\');
			appendStringInfoChar(out, buf.data[i]);
		}
		appendStringInfoChar(out, '"');
	}
	pfree(buf.data);
	return true;
}

static bool
eo_render_container(EoReader *r, EoAvroNode *s, EoRender mode, bool pg_array,
					StringInfo out, int depth)
{
	bool		first = true;
	bool		literal = s->type == EO_AVRO_ARRAY && mode == EO_RENDER_TEXT && pg_array;

	appendStringInfoChar(out, literal ? '{' : s->type == EO_AVRO_ARRAY ? '[' : '{');
	for (;;)
	{
		int64		n;

		if (!eo_read_block(r, &n))
			return false;
		if (n == 0)
			break;
		while (n-- > 0)
		{
			bool		isnull = false;

			if (!first)
				appendStringInfoChar(out, ',');
			first = false;
			if (s->type == EO_AVRO_MAP)
			{
				const char *k;
				int64		klen;

				if (!eo_read_bytes(r, &k, &klen) ||
					!eo_render_string(r, k, klen, EO_RENDER_JSON, out))
					return false;
				appendStringInfoChar(out, ':');
			}
			if (literal)
			{
				if (!eo_render_element(r, s->children[0], out, depth))
					return false;
				continue;
			}
			if (!eo_render(r, s->children[0], EO_RENDER_JSON, false, out, &isnull, depth + 1))
				return false;
			if (isnull)
				appendStringInfoString(out, "null");
		}
	}
	appendStringInfoChar(out, literal ? '}' : s->type == EO_AVRO_ARRAY ? ']' : '}');
	return true;
}

/*
 * Render one value.  A null (the null type, or a union's null branch) sets
 * *isnull and writes nothing.  Records and maps are JSON in either mode;
 * arrays are a PostgreSQL array literal when pg_array is set in text mode.
 */
static bool
eo_render(EoReader *r, EoAvroNode *s, EoRender mode, bool pg_array,
		  StringInfo out, bool *isnull, int depth)
{
	int64		v;
	const char *d;

	if (depth > EO_AVRO_MAX_NESTING)
		return eo_too_deep(r);
	*isnull = false;
	switch (s->type)
	{
		case EO_AVRO_NULL:
			*isnull = true;
			return true;
		case EO_AVRO_UNION:
			{
				EoAvroNode *b;

				return eo_union_branch(r, s, &b) &&
					eo_render(r, b, mode, pg_array, out, isnull, depth + 1);
			}
		case EO_AVRO_BOOLEAN:
			if (!eo_read_fixed(r, 1, &d))
				return false;
			if (*d != 0 && *d != 1)
				return eo_fail(r, "a boolean byte is neither 0 nor 1");
			appendStringInfoString(out, *d ? "true" : "false");
			return true;
		case EO_AVRO_INT:
		case EO_AVRO_LONG:
			if (!(s->type == EO_AVRO_INT ? eo_read_int(r, &v) : eo_read_long(r, &v)))
				return false;
			if (s->logical != EO_AVRO_PLAIN)
				return eo_render_temporal(r, s, v, mode, out);
			appendStringInfo(out, INT64_FORMAT, v);
			return true;
		case EO_AVRO_FLOAT:
		case EO_AVRO_DOUBLE:
			{
				char	   *text;
				double		f;

				if (!eo_read_fixed(r, s->type == EO_AVRO_FLOAT ? 4 : 8, &d))
					return false;
				if (s->type == EO_AVRO_FLOAT)
				{
					float4		f4;

					memcpy(&f4, d, 4);
					f = f4;
					text = DatumGetCString(DirectFunctionCall1(float4out, Float4GetDatum(f4)));
				}
				else
				{
					memcpy(&f, d, 8);
					text = DatumGetCString(DirectFunctionCall1(float8out, Float8GetDatum(f)));
				}
				if (mode == EO_RENDER_JSON && (isnan(f) || isinf(f)))
					escape_json(out, text);
				else
					appendStringInfoString(out, text);
				return true;
			}
		case EO_AVRO_STRING:
			if (!eo_read_bytes(r, &d, &v))
				return false;
			return eo_render_string(r, d, v, mode, out);
		case EO_AVRO_BYTES:
		case EO_AVRO_FIXED:
			if (!(s->type == EO_AVRO_BYTES ? eo_read_bytes(r, &d, &v) :
				  eo_read_fixed(r, (v = s->size), &d)))
				return false;
			if (s->logical == EO_AVRO_DECIMAL)
				return eo_render_decimal(r, d, v, s->scale, out);
			if (s->logical == EO_AVRO_UUID)
			{
				static const char hex[] = "0123456789abcdef";
				char		u[37];
				int			k = 0;

				for (int i = 0; i < 16; i++)
				{
					if (i == 4 || i == 6 || i == 8 || i == 10)
						u[k++] = '-';
					u[k++] = hex[((unsigned char) d[i]) >> 4];
					u[k++] = hex[((unsigned char) d[i]) & 15];
				}
				u[k] = '\0';
				if (mode == EO_RENDER_JSON)
					escape_json(out, u);
				else
					appendStringInfoString(out, u);
				return true;
			}
			eo_render_hex(d, v, mode, out);
			return true;
		case EO_AVRO_ENUM:
			if (!eo_read_long(r, &v))
				return false;
			if (v < 0 || v >= s->nsymbols)
				return eo_fail(r, psprintf("enum index %lld does not exist (the enum has %d symbols)",
										   (long long) v, s->nsymbols));
			if (mode == EO_RENDER_JSON)
				escape_json(out, s->names[v]);
			else
				appendStringInfoString(out, s->names[v]);
			return true;
		case EO_AVRO_ARRAY:
		case EO_AVRO_MAP:
			return eo_render_container(r, s, mode, pg_array, out, depth);
		case EO_AVRO_RECORD:
			appendStringInfoChar(out, '{');
			for (int i = 0; i < s->nchildren; i++)
			{
				bool		fnull;

				if (i > 0)
					appendStringInfoChar(out, ',');
				escape_json(out, s->names[i]);
				appendStringInfoChar(out, ':');
				if (!eo_render(r, s->children[i], EO_RENDER_JSON, false, out, &fnull, depth + 1))
					return false;
				if (fnull)
					appendStringInfoString(out, "null");
			}
			appendStringInfoChar(out, '}');
			return true;
	}
	return eo_fail(r, "unknown type");
}

/*
 * The value of s for col straight as a Datum, where the Avro type (past any
 * union) and the column type match (avro_datum.c).  Returns false with
 * *failed set for a malformed value, or with *failed clear when the value
 * goes through text instead (the caller reads it again from its start).
 * A null sets *isnull: it goes through text too, for a domain's NOT NULL.
 */
static bool
eo_direct(EoReader *r, EoAvroNode *s, EoColumn *col, Datum *d, bool *isnull,
		  bool *failed)
{
	EoAvroScalar v = {0};
	const char *error;

	*failed = true;
	*isnull = false;
	while (s->type == EO_AVRO_UNION)
	{
		if (!eo_union_branch(r, s, &s))
			return false;
	}
	if (s->type == EO_AVRO_NULL)
	{
		*isnull = true;
		return true;
	}
	if (!eo_avro_direct(s, col->typid))
	{
		*failed = false;
		return false;
	}
	switch (s->type)
	{
		case EO_AVRO_BOOLEAN:
			if (!eo_read_fixed(r, 1, &v.data))
				return false;
			if (*v.data != 0 && *v.data != 1)
				return eo_fail(r, "a boolean byte is neither 0 nor 1");
			v.i = *v.data;
			break;
		case EO_AVRO_INT:
			if (!eo_read_int(r, &v.i))
				return false;
			break;
		case EO_AVRO_LONG:
			if (!eo_read_long(r, &v.i))
				return false;
			break;
		case EO_AVRO_FLOAT:
			{
				float4		f4;

				if (!eo_read_fixed(r, 4, &v.data))
					return false;
				memcpy(&f4, v.data, 4);
				v.f = f4;
				break;
			}
		case EO_AVRO_DOUBLE:
			if (!eo_read_fixed(r, 8, &v.data))
				return false;
			memcpy(&v.f, v.data, 8);
			break;
		case EO_AVRO_STRING:
			if (!eo_read_bytes(r, &v.data, &v.len))
				return false;
			if (!pg_verifymbstr(v.data, v.len, true))
				return eo_fail(r, "a string is not valid in the database encoding");
			break;
		case EO_AVRO_BYTES:
			if (!eo_read_bytes(r, &v.data, &v.len))
				return false;
			break;
		case EO_AVRO_FIXED:
			if (!eo_read_fixed(r, (v.len = s->size), &v.data))
				return false;
			break;
		default:
			elog(ERROR, "Avro type %d has no direct conversion", s->type);
	}
	if (eo_avro_datum(col, s, &v, d, &error))
		return true;
	if (error != NULL)
		return eo_fail(r, error);
	*failed = false;
	return false;
}

/* Does column c's path, down to level (0-based), name this field? */
static bool
eo_path_at(EoColumn *col, int level, const char *name, const char **parents)
{
	/* the first byte first: this runs for every field and column */
	if (col->source != EO_SRC_JSON || col->npath <= level ||
		col->path[level][0] != name[0] || strcmp(col->path[level], name) != 0)
		return false;
	for (int k = 0; k < level; k++)
		if (strcmp(col->path[k], parents[k]) != 0)
			return false;
	return true;
}

static bool
eo_decode_record(EoReader *r, EoMapping *map, EoAvroSink *sink, EoAvroNode *s,
				 int level, const char **parents)
{
	for (int i = 0; i < s->nchildren; i++)
	{
		const char *name = s->names[i];
		EoAvroNode *f = s->children[i];
		const char *start = r->p;
		bool		read = false;
		bool		deeper = false;

		if (level == 0)
			r->field = name;
		for (int c = 0; c < map->ncolumns; c++)
		{
			EoColumn   *col = &map->columns[c];
			StringInfoData buf;
			bool		isnull;

			if (!eo_path_at(col, level, name, parents))
				continue;
			if (col->npath > level + 1)
			{
				deeper = true;
				continue;
			}
			r->p = start;
			read = true;
			if (!col->json_raw && !col->is_array)
			{
				Datum		d;
				bool		failed;

				if (eo_direct(r, f, col, &d, &isnull, &failed))
				{
					if (isnull)
						sink->emit(sink->arg, c, NULL, 0);
					else
						sink->datum(sink->arg, c, d);
					continue;
				}
				if (failed)
					return false;
				r->p = start;
			}
			initStringInfo(&buf);
			if (!eo_render(r, f, col->json_raw ? EO_RENDER_JSON : EO_RENDER_TEXT,
						   col->is_array, &buf, &isnull, level))
				return false;
			sink->emit(sink->arg, c, isnull ? NULL : buf.data, isnull ? 0 : buf.len);
		}
		if (deeper)
		{
			EoAvroNode *sub = f;

			r->p = start;
			if (sub->type == EO_AVRO_UNION && !eo_union_branch(r, sub, &sub))
				return false;
			if (sub->type == EO_AVRO_RECORD)
			{
				parents[level] = name;
				if (!eo_decode_record(r, map, sink, sub, level + 1, parents))
					return false;
			}
			else if (!eo_skip(r, sub, level + 1))
				return false;
		}
		else if (!read && !eo_skip(r, f, level + 1))
			return false;
	}
	return true;
}

/*
 * Hand sink the value of every column mapped from a field of one Avro binary
 * value written with schema.  On a malformed value returns false with
 * *error set.
 */
bool
eo_avro_decode(EoMapping *map, EoAvroSink *sink, EoAvroNode *schema,
			   const char *data, size_t len, int *sqlerrcode, char **error)
{
	EoReader	r = {data, data, data + len, NULL, ERRCODE_INVALID_BINARY_REPRESENTATION, NULL};
	const char *parents[EO_MAX_DEPTH + 1];

	if (schema->type != EO_AVRO_RECORD)
	{
		*error = psprintf("the writer schema is not a record but %s; map the value with columns => '{\"column\": \"$value\"}'",
						  schema->name ? schema->name : "a primitive, array, map or union");
		return false;
	}
	if (!eo_decode_record(&r, map, sink, schema, 0, parents))
	{
		*sqlerrcode = r.sqlerrcode;
		*error = r.error;
		return false;
	}
	if (r.p != r.end)
	{
		*error = psprintf("invalid Avro value: %d bytes left over after the record's last field (at byte %d of %d)",
						  (int) (r.end - r.p), (int) (r.p - r.start), (int) len);
		return false;
	}
	return true;
}
