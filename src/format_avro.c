/*
 * format_avro.c
 *		format => 'avro': Avro records in the Confluent wire format (with a
 *		schema registry) or plain Avro binary (with an inline writer
 *		schema).  Fields fill the columns of the same name or the dotted paths
 *		of the columns argument; $value gives the raw bytes.  The decoding is
 *		in avro_decode.c (avro_render.c, avro_datum.c), the schemas by id in
 *		avro_cache.c, which the worker fills before the batch transaction
 *		(eo_avro_missing_ids and friends).
 */
#include "postgres.h"

#include "avro_format.h"
#include "record.h"

static bool
eo_avro_fills(EoSource source)
{
	return source == EO_SRC_JSON || source == EO_SRC_VALUE;
}

static bool
eo_avro_decode_fields(EoFields *f, void *state, const char *value, size_t len)
{
	int			sqlerrcode;
	char	   *error = NULL;

	if (eo_avro_reads_value(f->map))
		for (int c = 0; c < f->map->ncolumns; c++)
			if (f->map->columns[c].source == EO_SRC_VALUE &&
				!eo_fields_raw(f, c, value, len, "value"))
				return false;
	if (!eo_avro_value(f, value, len, &sqlerrcode, &error))
		return eo_fields_fail(f, sqlerrcode, error);
	return true;
}

const EoFormat eo_format_avro = {
	.name = "avro",
	.fills = eo_avro_fills,
	.by_name = true,
	.prepare = eo_avro_prepare,
	.decode = eo_avro_decode_fields,
};
