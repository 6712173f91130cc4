/*
 * avro_render.c
 *		An Avro value rendered in the form its column's type reads: the
 *		type's input text, a PostgreSQL array literal for an array column,
 *		JSON for json and jsonb (and for records and maps in any column).
 *
 * This is the path of every field that avro_datum.c does not convert
 * straight into a Datum: the text goes through the column type's input
 * function (convert.c), so that errors and rounding are the type's own.
 * Logical types print as PostgreSQL prints them (decimals exactly, dates
 * and times by their output functions, uuids in canonical form).
 */
#include "postgres.h"

#include <math.h>

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "avro_reader.h"
#include "dbz_decimal.h"

/* A string's bytes, checked against the database encoding. */
static bool
eo_render_string(EoAvroReader *r, const char *d, int64 len, EoAvroRender mode, StringInfo out)
{
	if (!eo_text_valid(d, len))
		return eo_avro_fail(r, "a string is not valid in the database encoding");
	if (mode == EO_RENDER_JSON)
		escape_json(out, pnstrdup(d, len));
	else
		appendBinaryStringInfo(out, d, len);
	return true;
}

static void
eo_render_hex(const char *d, int64 len, EoAvroRender mode, StringInfo out)
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

/*
 * A decimal: big-endian two's complement unscaled value, then the scale
 * (dbz_decimal.c writes the digits, of any scale and up to 64 kB).
 */
static bool
eo_render_decimal(EoAvroReader *r, const char *d, int64 len, int scale, StringInfo out)
{
	if (len > EO_DECIMAL_MAX_BYTES)
		return eo_avro_fail(r, "a decimal longer than 65536 bytes");
	if (len == 0)
		return eo_avro_fail(r, "a decimal with no bytes");
	eo_decimal_text((const unsigned char *) d, len, scale, out);
	return true;
}

static bool
eo_render_temporal(EoAvroReader *r, EoAvroNode *s, int64 v, EoAvroRender mode, StringInfo out)
{
	char	   *text;
	const char *error;
	Datum		d;

	if ((error = eo_avro_temporal(s, v, &d)) != NULL)
		return eo_avro_fail(r, error);
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
eo_render_element(EoAvroReader *r, EoAvroNode *s, StringInfo out, int depth)
{
	StringInfoData buf;
	bool		isnull = false;
	bool		nested;

	while (s->type == EO_AVRO_UNION)
	{
		if (!eo_avro_read_branch(r, s, &s))
			return false;
	}
	nested = s->type == EO_AVRO_ARRAY;
	initStringInfo(&buf);
	if (!eo_avro_render(r, s, nested ? EO_RENDER_TEXT : (s->type == EO_AVRO_RECORD ||
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
eo_render_container(EoAvroReader *r, EoAvroNode *s, EoAvroRender mode, bool pg_array,
					StringInfo out, int depth)
{
	bool		first = true;
	bool		literal = s->type == EO_AVRO_ARRAY && mode == EO_RENDER_TEXT && pg_array;

	appendStringInfoChar(out, literal ? '{' : s->type == EO_AVRO_ARRAY ? '[' : '{');
	for (;;)
	{
		int64		n;

		if (!eo_avro_read_block(r, &n))
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

				if (!eo_avro_read_bytes(r, &k, &klen) ||
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
			if (!eo_avro_render(r, s->children[0], EO_RENDER_JSON, false, out, &isnull, depth + 1))
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
bool
eo_avro_render(EoAvroReader *r, EoAvroNode *s, EoAvroRender mode, bool pg_array,
			   StringInfo out, bool *isnull, int depth)
{
	int64		v;
	const char *d;

	if (depth > EO_AVRO_MAX_NESTING)
		return eo_avro_too_deep(r);
	*isnull = false;
	switch (s->type)
	{
		case EO_AVRO_NULL:
			*isnull = true;
			return true;
		case EO_AVRO_UNION:
			{
				EoAvroNode *b;

				return eo_avro_read_branch(r, s, &b) &&
					eo_avro_render(r, b, mode, pg_array, out, isnull, depth + 1);
			}
		case EO_AVRO_BOOLEAN:
			if (!eo_avro_read_fixed(r, 1, &d))
				return false;
			if (*d != 0 && *d != 1)
				return eo_avro_fail(r, "a boolean byte is neither 0 nor 1");
			appendStringInfoString(out, *d ? "true" : "false");
			return true;
		case EO_AVRO_INT:
		case EO_AVRO_LONG:
			if (!(s->type == EO_AVRO_INT ? eo_avro_read_int(r, &v) : eo_avro_read_long(r, &v)))
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

				if (!eo_avro_read_fixed(r, s->type == EO_AVRO_FLOAT ? 4 : 8, &d))
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
			if (!eo_avro_read_bytes(r, &d, &v))
				return false;
			return eo_render_string(r, d, v, mode, out);
		case EO_AVRO_BYTES:
		case EO_AVRO_FIXED:
			if (!(s->type == EO_AVRO_BYTES ? eo_avro_read_bytes(r, &d, &v) :
				  eo_avro_read_fixed(r, (v = s->size), &d)))
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
			if (!eo_avro_read_long(r, &v))
				return false;
			if (v < 0 || v >= s->nsymbols)
				return eo_avro_fail(r, psprintf("enum index %lld does not exist (the enum has %d symbols)",
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
				if (!eo_avro_render(r, s->children[i], EO_RENDER_JSON, false, out, &fnull, depth + 1))
					return false;
				if (fnull)
					appendStringInfoString(out, "null");
			}
			appendStringInfoChar(out, '}');
			return true;
	}
	return eo_avro_fail(r, "unknown type");
}
