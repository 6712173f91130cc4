/*
 * format_raw.c
 *		format => 'text' and format => 'bytea': the whole value fills the
 *		column mapped from $value.  The two decode alike; the column's type
 *		decides: a bytea column takes the bytes as they are, any other the
 *		text, which must be valid in the database encoding.
 */
#include "postgres.h"

#include "record.h"

static bool
eo_raw_fills(EoSource source)
{
	return source == EO_SRC_VALUE;
}

static bool
eo_raw_decode(EoFields *f, void *state, const char *value, size_t len)
{
	for (int c = 0; c < f->map->ncolumns; c++)
		if (f->map->columns[c].source == EO_SRC_VALUE &&
			!eo_fields_raw(f, c, value, len, "value"))
			return false;
	return true;
}

const EoFormat eo_format_text = {
	.name = "text",
	.fills = eo_raw_fills,
	.decode = eo_raw_decode,
};

const EoFormat eo_format_bytea = {
	.name = "bytea",
	.fills = eo_raw_fills,
	.decode = eo_raw_decode,
};
