/*
 * avro_datum.c
 *		A primitive Avro value straight into a Datum of its column's type,
 *		where the two types match, without rendering it as text for the
 *		type's input function; and the temporal logical types as PostgreSQL
 *		values, which the text rendering (avro_render.c) prints.
 *
 * A direct value must equal what the input function makes of the value's
 * text, bit for bit.  Whatever the input function would refuse or change
 * (an int too large for smallint, a string longer than varchar(n), a uuid
 * string in another spelling, a decimal wider than 64 bits) is not
 * converted here but handed back to the text path, so that the error, or
 * the rounding, is the input function's own.  Typmods are applied by the
 * same functions SQL's casts call (numeric, varchar, *_scale).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/float.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "avro_format.h"

/* Can a value of s (not a union) go straight into a column of type typid? */
bool
eo_avro_direct(const EoAvroNode *s, Oid typid)
{
	switch (s->type)
	{
		case EO_AVRO_BOOLEAN:
			return typid == BOOLOID;
		case EO_AVRO_INT:
		case EO_AVRO_LONG:
			switch (s->logical)
			{
				case EO_AVRO_PLAIN:
					return typid == INT2OID || typid == INT4OID || typid == INT8OID ||
						typid == NUMERICOID;
				case EO_AVRO_DATE:
					return typid == DATEOID;
				case EO_AVRO_TIME_MILLIS:
				case EO_AVRO_TIME_MICROS:
					return typid == TIMEOID;
				case EO_AVRO_TIMESTAMP_MILLIS:
				case EO_AVRO_TIMESTAMP_MICROS:
					return typid == TIMESTAMPTZOID;
				case EO_AVRO_LOCAL_TIMESTAMP_MILLIS:
				case EO_AVRO_LOCAL_TIMESTAMP_MICROS:
					return typid == TIMESTAMPOID;
				default:
					return false;
			}
		case EO_AVRO_FLOAT:
			return typid == FLOAT4OID;
		case EO_AVRO_DOUBLE:
			return typid == FLOAT8OID;
		case EO_AVRO_STRING:
			return typid == TEXTOID || typid == VARCHAROID || typid == UUIDOID;
		case EO_AVRO_BYTES:
		case EO_AVRO_FIXED:
			if (s->logical == EO_AVRO_DECIMAL)
				return typid == NUMERICOID;
			if (s->logical == EO_AVRO_UUID)
				return typid == UUIDOID;
			return typid == BYTEAOID;
		default:
			return false;
	}
}

/*
 * A temporal logical value (days, milliseconds or microseconds) as the
 * PostgreSQL value of its type: date, time, timestamptz or timestamp.
 * Returns NULL, or why the value is out of the type's range.
 */
const char *
eo_avro_temporal(const EoAvroNode *s, int64 v, Datum *d)
{
	int64		us = v;

	switch (s->logical)
	{
		case EO_AVRO_DATE:
			us = v + (UNIX_EPOCH_JDATE - POSTGRES_EPOCH_JDATE);
			if (!IS_VALID_DATE(us))
				return "date out of range";
			*d = DateADTGetDatum((DateADT) us);
			return NULL;
		case EO_AVRO_TIME_MILLIS:
		case EO_AVRO_TIME_MICROS:
			if (s->logical == EO_AVRO_TIME_MILLIS)
				us = v * 1000;
			if (us < 0 || us > USECS_PER_DAY)
				return "time of day out of range";
			*d = TimeADTGetDatum(us);
			return NULL;
		default:
			if ((s->logical == EO_AVRO_TIMESTAMP_MILLIS ||
				 s->logical == EO_AVRO_LOCAL_TIMESTAMP_MILLIS) &&
				pg_mul_s64_overflow(v, 1000, &us))
				return "timestamp out of range";
			if (pg_sub_s64_overflow(us, (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY, &us) ||
				!IS_VALID_TIMESTAMP(us))
				return "timestamp out of range";
			*d = TimestampGetDatum(us);
			return NULL;
	}
}

/* An integer for a column of type typid, or false if it does not fit. */
static bool
eo_avro_integer(EoColumn *col, int64 v, Datum *d)
{
	switch (col->typid)
	{
		case INT2OID:
			if (v < PG_INT16_MIN || v > PG_INT16_MAX)
				return false;
			*d = Int16GetDatum((int16) v);
			return true;
		case INT4OID:
			if (v < PG_INT32_MIN || v > PG_INT32_MAX)
				return false;
			*d = Int32GetDatum((int32) v);
			return true;
		case INT8OID:
			*d = Int64GetDatum(v);
			return true;
		default:
			*d = NumericGetDatum(int64_to_numeric(v));
			if (col->typmod >= 0)
				*d = DirectFunctionCall2(numeric, *d, Int32GetDatum(col->typmod));
			return true;
	}
}

/* A decimal's big-endian two's complement bytes as an integer, if 1 to 8. */
static inline bool
eo_decimal_int64(const char *data, int64 len, int64 *v)
{
	uint64		u;

	if (len < 1 || len > 8)
		return false;
	u = (uint64) (int64) (signed char) data[0];
	for (int64 i = 1; i < len; i++)
		u = (u << 8) | (unsigned char) data[i];
	*v = (int64) u;
	return true;
}

/*
 * A decimal (the unscaled value's bytes and the schema's scale, kept as
 * the numeric's display scale as numeric_in keeps the digits after the
 * point) into buf, EO_AVRO_NUMERIC_MAX bytes: its base-10000 digits,
 * written by convert.c's eo_numeric_short, without
 * int64_div_fast_to_numeric's arithmetic on a NumericVar (a tenth of an
 * Avro record's decoding), which gives the same bytes (an assertion build
 * compares them).  Returns false for one of more than 15 digits or no
 * bytes, or a scale above 63.
 */
bool
eo_avro_decimal(const char *data, int64 len, int scale, void *buf, Datum *d)
{
	static const uint64 pow10[] = {1, 10, 100, 1000};
	int64		v;
	uint64		a;
	int16		digit[5];
	int			n = 0;
	int			pad = (4 - scale % 4) % 4;

	if (!eo_decimal_int64(data, len, &v) || scale < 0 || scale > 63)
		return false;
	a = v < 0 ? -(uint64) v : (uint64) v;
	if (a >= UINT64CONST(1000000000000000))
		return false;
	/* whole base-10000 digits after the point, least significant first */
	for (a *= pow10[pad]; a > 0; a /= 10000)
		digit[n++] = (int16) (a % 10000);
	for (int i = 0; i < n / 2; i++)
	{
		int16		t = digit[i];

		digit[i] = digit[n - 1 - i];
		digit[n - 1 - i] = t;
	}
	/* v is not zero if negative: no minus zero */
	(void) eo_numeric_short(v < 0, digit, n, n - 1 - (scale + pad) / 4, scale, buf);
	*d = PointerGetDatum(buf);
#if defined(USE_ASSERT_CHECKING) || defined(EO_CHECK_NUMERIC)
	{
		Numeric		check = int64_div_fast_to_numeric(v, scale);

		if (VARSIZE(check) != VARSIZE(buf) || memcmp(check, buf, VARSIZE(check)) != 0)
			elog(ERROR, "numeric of " INT64_FORMAT " scale %d differs from int64_div_fast_to_numeric's",
				 v, scale);
	}
#endif
	return true;
}

/* A decimal for a numeric column; wider than 64 bits goes through text. */
static bool
eo_avro_numeric(EoColumn *col, const EoAvroNode *s, const char *data, int64 len, Datum *d)
{
	int64		v;

	if (!eo_avro_decimal(data, len, s->scale, palloc(EO_AVRO_NUMERIC_MAX), d))
	{
		if (!eo_decimal_int64(data, len, &v))
			return false;
		*d = NumericGetDatum(int64_div_fast_to_numeric(v, s->scale));
	}
	if (col->typmod >= 0)
		*d = DirectFunctionCall2(numeric, *d, Int32GetDatum(col->typmod));
	return true;
}

/* A string for a text, varchar or uuid column. */
static bool
eo_avro_string(EoColumn *col, const char *data, int64 len, Datum *d)
{
	if (col->typid == UUIDOID)
	{
		pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));

		if (!eo_parse_uuid(data, (int) len, u))
			return false;
		*d = UUIDPGetDatum(u);
		return true;
	}
	/* varchar(n): a longer string is cut (trailing blanks) or refused */
	if (col->typid == VARCHAROID && col->typmod >= (int32) VARHDRSZ &&
		len > col->typmod - (int32) VARHDRSZ &&
		pg_mbstrlen_with_len(data, (int) len) > col->typmod - (int32) VARHDRSZ)
		return false;
	*d = PointerGetDatum(cstring_to_text_with_len(data, (int) len));
	return true;
}

/*
 * The value v of type s (eo_avro_direct(s, col->typid) holds) as col's
 * Datum.  Returns false either with *error set (the value is malformed) or
 * with *error NULL: then the value goes through text.
 */
bool
eo_avro_datum(EoColumn *col, const EoAvroNode *s, const EoAvroScalar *v, Datum *d,
			  const char **error)
{
	*error = NULL;
	switch (s->type)
	{
		case EO_AVRO_BOOLEAN:
			*d = BoolGetDatum(v->i != 0);
			return true;
		case EO_AVRO_INT:
		case EO_AVRO_LONG:
			if (s->logical == EO_AVRO_PLAIN)
				return eo_avro_integer(col, v->i, d);
			if ((*error = eo_avro_temporal(s, v->i, d)) != NULL)
				return false;
			if (col->typmod < 0)
				return true;
			/* time(p), timestamp(p): rounded as the casts round */
			if (col->typid == TIMEOID)
				*d = DirectFunctionCall2(time_scale, *d, Int32GetDatum(col->typmod));
			else if (col->typid == TIMESTAMPTZOID)
				*d = DirectFunctionCall2(timestamptz_scale, *d, Int32GetDatum(col->typmod));
			else if (col->typid == TIMESTAMPOID)
				*d = DirectFunctionCall2(timestamp_scale, *d, Int32GetDatum(col->typmod));
			return true;
		case EO_AVRO_FLOAT:
			/* every NaN is the one float4in makes */
			*d = Float4GetDatum(isnan(v->f) ? get_float4_nan() : (float4) v->f);
			return true;
		case EO_AVRO_DOUBLE:
			*d = Float8GetDatum(isnan(v->f) ? get_float8_nan() : v->f);
			return true;
		case EO_AVRO_STRING:
			return eo_avro_string(col, v->data, v->len, d);
		case EO_AVRO_BYTES:
		case EO_AVRO_FIXED:
			if (s->logical == EO_AVRO_DECIMAL)
				return eo_avro_numeric(col, s, v->data, v->len, d);
			if (s->logical == EO_AVRO_UUID)
			{
				pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));

				memcpy(u->data, v->data, UUID_LEN);
				*d = UUIDPGetDatum(u);
				return true;
			}
			{
				bytea	   *b = palloc(VARHDRSZ + v->len);

				SET_VARSIZE(b, VARHDRSZ + v->len);
				memcpy(VARDATA(b), v->data, v->len);
				*d = PointerGetDatum(b);
			}
			return true;
		default:
			return false;
	}
}
