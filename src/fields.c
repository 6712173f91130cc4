/*
 * fields.c
 *		What a format hands back for one record (record.h, EoFields): each
 *		column's text or Datum, or the error that makes the record a dead
 *		letter (eo_fields_text and eo_fields_null are inline, in record.h).
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "compat.h"
#include "record.h"

void
eo_fields_datum(EoFields *f, int c, Datum d, bool isnull)
{
	f->present[c] = 1;
	f->isnull[c] = isnull;
	f->is_datum[c] = true;
	f->datum[c] = d;
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
	else if (!pg_verifymbstr(bytes, len, true))
		return eo_fields_fail(f, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
							  psprintf("%s is not valid in the database encoding", what));
	else
		eo_fields_text(f, c, pnstrdup(bytes, len), len);
	return true;
}
