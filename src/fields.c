/*
 * fields.c
 *		What a format hands back for one record (record.h, EoFields): each
 *		column's text or Datum, or the error that makes the record a dead
 *		letter (eo_fields_text and eo_fields_null are inline, in record.h).
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "compat.h"
#include "record.h"

/* eo_fields_alloc when the block is used up: a new one, or n alone if large */
void *
eo_fields_alloc_block(EoFields *f, Size n)
{
	const Size	block = 8192;

	if (n > block / 8)
		return MemoryContextAlloc(f->cxt, n);
	f->arena = MemoryContextAlloc(f->cxt, block);
	f->arena_end = f->arena + block;
	f->arena += n;
	return f->arena - n;
}

/*
 * Is s valid text in the database encoding (pg_verifymbstr)?  Bytes 0x01 to
 * 0x7f are ASCII in every server encoding, so text of only those is valid:
 * that is checked 16 (SSE2) or 8 bytes at a time, and anything else asks
 * pg_verifymbstr.
 */
bool
eo_text_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;
	bool		ascii = true;

#ifdef __SSE2__
	if (len >= 16)
	{
		const __m128i zero = _mm_setzero_si128();
		__m128i		bad = zero;

		/* a set top bit, or a NUL byte; the last block may overlap */
		for (; end - p > 16; p += 16)
		{
			__m128i		v = _mm_loadu_si128((const __m128i *) p);

			bad = _mm_or_si128(bad, _mm_or_si128(v, _mm_cmpeq_epi8(v, zero)));
		}
		{
			__m128i		v = _mm_loadu_si128((const __m128i *) (end - 16));

			bad = _mm_or_si128(bad, _mm_or_si128(v, _mm_cmpeq_epi8(v, zero)));
		}
		ascii = _mm_movemask_epi8(bad) == 0;
		p = end;
	}
#endif
	for (; ascii && end - p >= 8; p += 8)
	{
		const uint64 ones = UINT64CONST(0x0101010101010101);
		uint64		w;

		memcpy(&w, p, sizeof(w));
		/* a set top bit, or a zero byte (which borrows into its top bit) */
		ascii = ((w | ((w - ones) & ~w)) & (ones * 0x80)) == 0;
	}
	for (; ascii && p < end; p++)
		ascii = *p != 0 && *p < 0x80;
	return ascii || pg_verifymbstr(s, len, true);
}

bool
eo_fields_fail(EoFields *f, int sqlerrcode, const char *error)
{
	f->sqlerrcode = sqlerrcode;
	f->error = pstrdup(error);
	return false;
}

/*
 * Bytes taken whole (the key, a text or bytea value): a bytea column gets
 * them as they are, any other column as text in the database encoding.
 */
bool
eo_fields_raw(EoFields *f, int c, const char *bytes, size_t len, const char *what)
{
	if (bytes == NULL)
		eo_fields_null(f, c);
	else if (f->map->columns[c].binary)
	{
		bytea	   *b = palloc(VARHDRSZ + len);

		SET_VARSIZE(b, VARHDRSZ + len);
		memcpy(VARDATA(b), bytes, len);
		eo_fields_datum(f, c, PointerGetDatum(b), false);
	}
	else if (!eo_text_valid(bytes, len))
		return eo_fields_fail(f, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
							  psprintf("%s is not valid in the database encoding", what));
	else
		eo_fields_text(f, c, pnstrdup(bytes, len), len);
	return true;
}
