/*
 * convert.c
 *		From a column value's text to a Datum of the column's type: the
 *		type's input function, with fast paths for the types nearly every
 *		record carries.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "compat.h"
#include "record.h"

/*
 * ISO 8601 timestamps with an explicit zone, the form nearly every producer
 * writes ("2024-05-01T12:34:56.789Z", "2024-05-01 12:34:56+02:00"), without
 * timestamptz_in's general parser, which costs about a tenth of a worker's
 * time.  Exactly YYYY-MM-DD, 'T' or ' ', HH:MM:SS, 1 to 6 fraction digits,
 * then Z or +HH, +HHMM, +HH:MM.  Anything else (no zone, which depends on
 * the TimeZone setting, 24:00, leap seconds, more digits, other spellings)
 * returns false and goes through timestamptz_in, as do invalid dates, so
 * errors are timestamptz_in's own.
 */
static bool
eo_parse_iso_tstz(const char *s, int len, TimestampTz *result)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int			year,
				mon,
				mday,
				hour,
				min,
				sec;
	int64		usec = 0;
	int			off = 0;
	int			p = 19;

#define D(i) ((unsigned) (s[i] - '0') <= 9)
#define N2(i) ((s[i] - '0') * 10 + (s[(i) + 1] - '0'))
	if (len < 20 || !D(0) || !D(1) || !D(2) || !D(3) || s[4] != '-' || !D(5) || !D(6) ||
		s[7] != '-' || !D(8) || !D(9) || (s[10] != 'T' && s[10] != ' ') ||
		!D(11) || !D(12) || s[13] != ':' || !D(14) || !D(15) || s[16] != ':' ||
		!D(17) || !D(18))
		return false;
	year = N2(0) * 100 + N2(2);
	mon = N2(5);
	mday = N2(8);
	hour = N2(11);
	min = N2(14);
	sec = N2(17);
	if (year < 1 || mon < 1 || mon > 12 || mday < 1 || hour > 23 || min > 59 || sec > 59)
		return false;
	if (mday > mdays[mon - 1] &&
		!(mon == 2 && mday == 29 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))))
		return false;
	if (s[p] == '.')
	{
		int			digits = 0;

		p++;
		while (p < len && D(p))
		{
			if (++digits > 6)
				return false;
			usec = usec * 10 + (s[p++] - '0');
		}
		if (digits == 0)
			return false;
		for (; digits < 6; digits++)
			usec *= 10;
	}
	if (p < len && s[p] == 'Z' && p + 1 == len)
		off = 0;
	else if (p < len && (s[p] == '+' || s[p] == '-'))
	{
		int			rest = len - p - 1;
		int			oh,
					om = 0;

		if (rest < 2 || !D(p + 1) || !D(p + 2))
			return false;
		oh = N2(p + 1);
		if (rest == 4 && D(p + 3) && D(p + 4))
			om = N2(p + 3);
		else if (rest == 5 && s[p + 3] == ':' && D(p + 4) && D(p + 5))
			om = N2(p + 4);
		else if (rest != 2)
			return false;
		if (oh > 14 || om > 59)
			return false;
		off = (oh * 60 + om) * 60;
		if (s[p] == '-')
			off = -off;
	}
	else
		return false;
#undef D
#undef N2

	*result = ((int64) (date2j(year, mon, mday) - POSTGRES_EPOCH_JDATE) * SECS_PER_DAY +
			   (hour * 60 + min) * 60 + sec - off) * USECS_PER_SEC + usec;
	return true;
}

/*
 * A uuid in its canonical spelling, 8-4-4-4-12 hex digits, without uuid_in,
 * which calls strtoul for every byte.  Anything else returns false and goes
 * through uuid_in (braces, no hyphens, errors).  Avro strings into uuid
 * columns use it too (avro_datum.c).
 */
bool
eo_parse_uuid(const char *s, int len, pg_uuid_t *uuid)
{
	/* a hex digit's value plus one; 0 for anything else */
	static const int8 hex[256] = {
		['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7,
		['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14,
		['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15,
		['F'] = 16
	};
	int			bad = 0;

	if (len != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
		return false;

	/*
	 * Byte i from the two digits at p, written out for the 16 fixed places:
	 * bad goes negative at the first character that is not a hex digit.
	 */
#define BYTE(i, p) \
	do { \
		int			hi = hex[(unsigned char) s[p]] - 1; \
		int			lo = hex[(unsigned char) s[(p) + 1]] - 1; \
		bad |= hi | lo; \
		uuid->data[i] = (uint8) ((hi << 4) | lo); \
	} while (0)
	BYTE(0, 0);
	BYTE(1, 2);
	BYTE(2, 4);
	BYTE(3, 6);
	BYTE(4, 9);
	BYTE(5, 11);
	BYTE(6, 14);
	BYTE(7, 16);
	BYTE(8, 19);
	BYTE(9, 21);
	BYTE(10, 24);
	BYTE(11, 26);
	BYTE(12, 28);
	BYTE(13, 30);
	BYTE(14, 32);
	BYTE(15, 34);
#undef BYTE
	return bad >= 0;
}

/*
 * numeric's on-disk short format (numeric.c keeps these to itself; the
 * format is fixed, pg_upgrade carries it from release to release): a 2-byte
 * header with the sign, the display scale and the weight, then base-10000
 * digits.
 */
#define EO_NUMERIC_SHORT		0x8000
#define EO_NUMERIC_SHORT_NEG	0x2000
#define EO_NUMERIC_DSCALE_SHIFT 7
#define EO_NUMERIC_WEIGHT_NEG	0x0040
#define EO_NUMERIC_WEIGHT_MASK	0x003F

/*
 * A numeric of base-10000 digits (most significant first, weight that of
 * the first) and display scale dscale, into buf (EO_NUMERIC_SHORT_MAX
 * bytes), as numeric.c's make_result writes it: without leading or
 * trailing zero digits, zero without any and of weight 0.  The short
 * header holds a weight of -64 to 63 and a display scale up to 63, which
 * the callers' values keep to.  Returns false for a minus zero (numeric_in's
 * to judge).  avro_datum.c builds its decimals with it too.
 */
bool
eo_numeric_short(bool neg, const int16 *digit, int ndigits, int weight, int dscale, void *buf)
{
	int			first = 0;
	uint16	   *header;
	struct varlena *num = buf;

	Assert(dscale >= 0 && dscale <= 63);
	while (first < ndigits && digit[first] == 0)
	{
		first++;
		weight--;
	}
	while (ndigits > first && digit[ndigits - 1] == 0)
		ndigits--;
	ndigits -= first;
	if (ndigits == 0)
	{
		if (neg)
			return false;
		weight = 0;
	}
	Assert(weight >= -64 && weight <= 63);
	SET_VARSIZE(num, EO_NUMERIC_SHORT_MAX(ndigits));
	header = (uint16 *) VARDATA(num);
	*header = EO_NUMERIC_SHORT | (neg ? EO_NUMERIC_SHORT_NEG : 0) |
		(dscale << EO_NUMERIC_DSCALE_SHIFT) | (weight < 0 ? EO_NUMERIC_WEIGHT_NEG : 0) |
		(weight & EO_NUMERIC_WEIGHT_MASK);
	memcpy(header + 1, digit + first, ndigits * sizeof(int16));
	return true;
}

/*
 * A plain decimal ("-12.50": an optional minus, digits, optionally a point
 * and digits; at most 18 digits in all) as numeric, in cxt, without
 * numeric_in, whose checks for NaN and the infinities alone cost more than
 * this.  The result is numeric_in's, byte for byte: the value and display
 * scale that int64_div_fast_to_numeric makes of the digits (an assertion
 * build compares the two), written the way its make_result writes a value
 * of this size, without its working space.  Anything else (exponents,
 * blanks, a plus sign, a minus zero, more digits) returns false and goes
 * through numeric_in.
 */
static bool
eo_parse_plain_numeric(const char *s, int len, MemoryContext cxt, Datum *result)
{
	int16		digit[12];
	int			ndigits = 0;
	int			weight;
	int			p = 0;
	int			ni = 0;
	int			nf = 0;
	int			group = 0;
	int			k = 0;
	bool		neg = false;
	void	   *num;

	if (p < len && s[p] == '-')
	{
		neg = true;
		p++;
	}
	/* the integer digits, in groups of four from the point */
	for (; p < len && (unsigned) (s[p] - '0') <= 9; p++, ni++)
		;
	if (ni == 0 || ni > 18)
		return false;
	for (int i = p - ni; i < p; i++)
	{
		group = group * 10 + (s[i] - '0');
		if (++k == (ndigits == 0 && ni % 4 != 0 ? ni % 4 : 4))
		{
			digit[ndigits++] = group;
			group = 0;
			k = 0;
		}
	}
	weight = ndigits - 1;
	if (p < len && s[p] == '.')
	{
		for (p++; p < len && (unsigned) (s[p] - '0') <= 9; p++, nf++)
		{
			if (ni + nf == 18)
				return false;
			group = group * 10 + (s[p] - '0');
			if (++k == 4)
			{
				digit[ndigits++] = group;
				group = 0;
				k = 0;
			}
		}
		if (nf == 0)
			return false;
		if (k > 0)
		{
			for (; k < 4; k++)
				group *= 10;
			digit[ndigits++] = group;
		}
	}
	if (p != len)
		return false;

	num = MemoryContextAlloc(cxt, EO_NUMERIC_SHORT_MAX(ndigits));
	if (!eo_numeric_short(neg, digit, ndigits, weight, nf, num))
	{
		pfree(num);
		return false;
	}
	*result = PointerGetDatum(num);

#ifdef USE_ASSERT_CHECKING
	{
		int64		v = 0;

		for (int i = 0; i < len; i++)
			if (s[i] >= '0' && s[i] <= '9')
				v = v * 10 + (s[i] - '0');
		Assert(datumIsEqual(*result,
							NumericGetDatum(int64_div_fast_to_numeric(neg ? -v : v, nf)),
							false, -1));
	}
#endif
	return true;
}

/*
 * text (NUL-terminated, len bytes) converted to col's type, the result in
 * cxt: the fast paths build it there, the input function's result (made in
 * the current memory context, with whatever it leaves behind) is copied.  A
 * NULL still goes through the input function when that is not strict: a
 * domain's NOT NULL raises the error, a NULL that passes stays NULL.
 */
Datum
eo_text_datum(EoColumn *col, const char *text, int len, bool isnull, MemoryContext cxt)
{
	Datum		d;
	MemoryContext old;

	if (isnull)
	{
		if (col->infunc.fn_strict)
			return (Datum) 0;
		return InputFunctionCall(&col->infunc, NULL, col->ioparam, col->typmod);
	}
	if (col->typid == TIMESTAMPTZOID)
	{
		TimestampTz ts;

		if (eo_parse_iso_tstz(text, len, &ts))
			return TimestampTzGetDatum(ts);
	}
	else if (col->typid == TEXTOID)
	{
		struct varlena *t = MemoryContextAlloc(cxt, VARHDRSZ + len);

		SET_VARSIZE(t, VARHDRSZ + len);
		memcpy(VARDATA(t), text, len);
		return PointerGetDatum(t);
	}
	else if (col->typid == INT4OID)
	{
		/* a minus and at most 9 digits cannot overflow: the rest goes to pg_strtoint32 */
		int			p = len > 0 && text[0] == '-';
		int32		v = 0;

		if (len > p && len - p <= 9)
		{
			for (; p < len && (unsigned) (text[p] - '0') <= 9; p++)
				v = v * 10 + (text[p] - '0');
			if (p == len)
				return Int32GetDatum(text[0] == '-' ? -v : v);
		}
		return Int32GetDatum(pg_strtoint32(text));
	}
	else if (col->typid == NUMERICOID && col->typmod < 0)
	{
		if (eo_parse_plain_numeric(text, len, cxt, &d))
			return d;
	}
	else if (col->typid == UUIDOID)
	{
		pg_uuid_t  *u = MemoryContextAlloc(cxt, sizeof(pg_uuid_t));

		if (eo_parse_uuid(text, len, u))
			return UUIDPGetDatum(u);
		pfree(u);
	}
	d = InputFunctionCall(&col->infunc, unconstify(char *, text), col->ioparam, col->typmod);
	old = MemoryContextSwitchTo(cxt);
	d = datumCopy(d, col->typbyval, col->typlen);
	MemoryContextSwitchTo(old);
	return d;
}
