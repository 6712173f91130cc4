/*
 * format_json.c
 *		format => 'json': the value is a JSON object; each mapped path (a
 *		top-level key named like the column, or the columns argument's
 *		dotted path) fills its column, $value the whole text.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "compat.h"
#include "json_scan.h"
#include "record.h"

static bool
eo_json_fills(EoSource source)
{
	return source == EO_SRC_JSON || source == EO_SRC_VALUE;
}

/* The error message of PostgreSQL's own parser for a value we refused. */
static char *
eo_json_error(const char *value, size_t len)
{
	JsonLexContext *lex = eo_json_lexer(value, len, true);
	JsonParseErrorType rc = pg_parse_json(lex, &nullSemAction);

	if (rc == JSON_SUCCESS)
		elog(ERROR, "the JSON scanner refused a value that PostgreSQL's parser accepts");
	return psprintf("invalid JSON: %s", json_errdetail(rc, lex));
}

/* The paths of map's columns, for the scanner: once per mapping. */
static void *
eo_json_prepare(EoMapping *map)
{
	return eo_json_plan(map);
}

static bool
eo_json_decode(EoFields *f, void *state, const char *value, size_t len)
{
	const char *p = value;
	const char *end = value + len;

	if (value == NULL)
		return eo_fields_fail(f, ERRCODE_NULL_VALUE_NOT_ALLOWED, "record has no value (tombstone)");
	if (!eo_text_valid(value, len))
		return eo_fields_fail(f, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
							  "value is not valid in the database encoding");
	for (int c = 0; c < f->map->ncolumns; c++)
		if (f->map->columns[c].source == EO_SRC_VALUE &&
			!eo_fields_raw(f, c, value, len, "value"))
			return false;

	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p == end || *p != '{')
		return eo_fields_fail(f, ERRCODE_INVALID_TEXT_REPRESENTATION,
							  p == end ? "value is empty, not a JSON object" : "value is not a JSON object");
	switch (eo_json_scan(f, p, end))
	{
		case EO_JSON_OK:
			return true;
		case EO_JSON_TOO_DEEP:
			return eo_fields_fail(f, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
								  psprintf("JSON value is nested more than %d levels deep",
										   EO_JSON_MAX_NESTING));
		case EO_JSON_INVALID:
			break;
	}
	return eo_fields_fail(f, ERRCODE_INVALID_TEXT_REPRESENTATION, eo_json_error(value, len));
}

const EoFormat eo_format_json = {
	.name = "json",
	.fills = eo_json_fills,
	.by_name = true,
	.prepare = eo_json_prepare,
	.decode = eo_json_decode,
};
