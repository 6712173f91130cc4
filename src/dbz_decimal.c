/*
 * dbz_decimal.c
 *		Debezium's default decimal.handling.mode=precise in JSON: a NUMERIC
 *		column's value is the base64 of its unscaled big-endian two's
 *		complement integer, and its scale is only in the Kafka Connect schema
 *		of a schema/payload wrapper (org.apache.kafka.connect.data.Decimal,
 *		parameter "scale"), or travels with the value for unconstrained
 *		numerics (io.debezium.data.VariableScaleDecimal, {"scale": s,
 *		"value": "base64"}).  Such fields of a row are rewritten into the
 *		exact number before record.c decodes the row; every other byte of
 *		the row is kept.
 *
 * The schema is the same for every event of a table, so the decimal fields
 * of the last one seen are kept per process and found again by comparing
 * the schema's text; a schema that names neither type is not parsed at all.
 */
#include "postgres.h"

#include "common/base64.h"
#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "compat.h"
#include "dbz_decimal.h"
#include "record.h"

#define EO_VARIABLE_SCALE (-1)

typedef struct EoDbzField
{
	char	   *name;
	int			scale;			/* or EO_VARIABLE_SCALE */
} EoDbzField;

struct EoDbzDecimals
{
	EoDbzField *fields;
	int			nfields;
};

static MemoryContext eo_dbz_cxt;
static char *eo_dbz_schema;		/* the text of the last schema seen */
static int	eo_dbz_schema_len;
static EoDbzDecimals *eo_dbz_last;
static char *eo_dbz_error;		/* why the last schema cannot be read */

/* A JSON object's field as a container, or NULL. */
static JsonbContainer *
eo_dbz_get(JsonbContainer *c, const char *key, JsonbValue *v)
{
	if (c == NULL || !JsonContainerIsObject(c) ||
		getKeyJsonValueFromContainer(c, key, strlen(key), v) == NULL)
		return NULL;
	return v->type == jbvBinary ? v->val.binary.data : NULL;
}

static char *
eo_dbz_get_string(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	if (c == NULL || !JsonContainerIsObject(c) ||
		getKeyJsonValueFromContainer(c, key, strlen(key), &v) == NULL ||
		v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* The decimal fields of a row's struct schema, appended to d. */
static void
eo_dbz_row_schema(JsonbContainer *row, EoDbzDecimals *d)
{
	JsonbValue	v;
	JsonbContainer *fields = eo_dbz_get(row, "fields", &v);
	int			n = fields != NULL && JsonContainerIsArray(fields) ? JsonContainerSize(fields) : 0;

	for (int i = 0; i < n; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(fields, i);
		JsonbContainer *field = elem->type == jbvBinary ? elem->val.binary.data : NULL;
		char	   *name = eo_dbz_get_string(field, "name");
		char	   *fname = eo_dbz_get_string(field, "field");
		int			scale;

		if (name == NULL || fname == NULL)
			continue;
		if (strcmp(name, "io.debezium.data.VariableScaleDecimal") == 0)
			scale = EO_VARIABLE_SCALE;
		else if (strcmp(name, "org.apache.kafka.connect.data.Decimal") == 0)
		{
			char	   *s = eo_dbz_get_string(eo_dbz_get(field, "parameters", &v), "scale");

			/* an unknown scale leaves the field alone: it stays a string */
			if (s == NULL || strspn(s, "0123456789") != strlen(s) || strlen(s) == 0 ||
				strlen(s) > 4)
				continue;
			scale = atoi(s);
		}
		else
			continue;
		d->fields = repalloc(d->fields, sizeof(EoDbzField) * (d->nfields + 1));
		d->fields[d->nfields].name = fname;
		d->fields[d->nfields++].scale = scale;
	}
}

/* Parse the schema (a NUL-terminated string) into eo_dbz_last. */
static void
eo_dbz_parse(void *arg)
{
	EoDbzDecimals *d = palloc0(sizeof(EoDbzDecimals));
	Jsonb	   *jb;
	JsonbValue	v;
	JsonbContainer *fields;

	d->fields = palloc(sizeof(EoDbzField));
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum((char *) arg)));
	fields = eo_dbz_get(&jb->root, "fields", &v);
	for (int i = 0; fields != NULL && JsonContainerIsArray(fields) &&
		 i < (int) JsonContainerSize(fields); i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(fields, i);
		JsonbContainer *field = elem->type == jbvBinary ? elem->val.binary.data : NULL;
		char	   *fname = eo_dbz_get_string(field, "field");

		if (fname != NULL && (strcmp(fname, "before") == 0 || strcmp(fname, "after") == 0))
			eo_dbz_row_schema(field, d);
	}
	eo_dbz_last = d->nfields > 0 ? d : NULL;
}

/*
 * The decimal fields of the rows ("before", "after") of a Debezium event
 * with this Connect schema (len bytes, then a NUL), or NULL if none, or if
 * the schema cannot be read: then with *error.  The schema is parsed in a
 * subtransaction: one that jsonb refuses (a number out of numeric's range)
 * makes its records dead letters and must not abort the batch.
 */
const EoDbzDecimals *
eo_dbz_decimals(const char *schema, int len, const char **error)
{
	MemoryContext old;
	ErrorData  *edata;

	if (eo_dbz_schema == NULL || len != eo_dbz_schema_len ||
		memcmp(schema, eo_dbz_schema, len) != 0)
	{
		/* both logical names end so */
		if (strstr(schema, "Decimal\"") == NULL)
		{
			*error = NULL;
			return NULL;
		}
		if (eo_dbz_cxt == NULL)
			eo_dbz_cxt = AllocSetContextCreate(TopMemoryContext, "eo_ingest Debezium decimals",
											   ALLOCSET_SMALL_SIZES);
		MemoryContextReset(eo_dbz_cxt);
		eo_dbz_schema = NULL;
		eo_dbz_last = NULL;
		eo_dbz_error = NULL;
		old = MemoryContextSwitchTo(eo_dbz_cxt);
		edata = eo_subxact_run(eo_dbz_parse, unconstify(char *, schema));
		if (edata != NULL && !eo_record_error_is_records(edata->sqlerrcode))
			ReThrowError(edata);
		if (edata != NULL)
			eo_dbz_error = psprintf("Debezium schema: %s", eo_error_text(edata));
		eo_dbz_schema = pnstrdup(schema, len);
		eo_dbz_schema_len = len;
		MemoryContextSwitchTo(old);
	}
	*error = eo_dbz_error;
	return eo_dbz_last;
}

/*
 * The big-endian two's complement integer d[0..len) divided by 10^scale,
 * exactly, as a number's text; up to EO_DECIMAL_MAX_BYTES long (callers check).
 */
void
eo_decimal_text(const unsigned char *d, int len, int scale, StringInfo out)
{
	unsigned char *mag = palloc(Max(len, 1));
	bool		negative = len > 0 && (d[0] & 0x80);
	StringInfoData digits;
	int			nz = 0;
	int			ndigits;

	memcpy(mag, d, len);
	/* the magnitude of a negative value: invert and add one */
	if (negative)
	{
		int			carry = 1;

		for (int i = len - 1; i >= 0; i--)
		{
			int			b = (unsigned char) ~mag[i] + carry;

			mag[i] = b & 0xff;
			carry = b >> 8;
		}
	}
	/* base 10^9 digits, least significant first, by long division */
	initStringInfo(&digits);
	while (nz < len && mag[nz] == 0)
		nz++;
	while (nz < len)
	{
		uint64		rem = 0;
		char		chunk[10];

		CHECK_FOR_INTERRUPTS();

		for (int i = nz; i < len; i++)
		{
			uint64		cur = rem * 256 + mag[i];

			mag[i] = cur / 1000000000;
			rem = cur % 1000000000;
		}
		while (nz < len && mag[nz] == 0)
			nz++;
		snprintf(chunk, sizeof(chunk), nz < len ? "%09u" : "%u", (unsigned) rem);
		/* reversed, so that the whole string is reversed once at the end */
		for (int k = strlen(chunk) - 1; k >= 0; k--)
			appendStringInfoChar(&digits, chunk[k]);
	}
	if (digits.len == 0)
		appendStringInfoChar(&digits, '0');
	while (digits.len <= scale)
		appendStringInfoChar(&digits, '0');
	ndigits = digits.len;
	if (negative)
		appendStringInfoChar(out, '-');
	for (int i = ndigits - 1; i >= 0; i--)
	{
		appendStringInfoChar(out, digits.data[i]);
		if (i == scale && scale > 0)
			appendStringInfoChar(out, '.');
	}
	pfree(digits.data);
	pfree(mag);
}

/*
 * base64 text at s[0..len) as a number of this scale; false if not base64 or
 * longer than EO_DECIMAL_MAX_BYTES
 */
static bool
eo_dbz_render(const char *s, int len, int scale, StringInfo out)
{
	int			max = pg_b64_dec_len(len);
	unsigned char *bytes;
	int			n;

	if (max > EO_DECIMAL_MAX_BYTES + 3)
		return false;
	bytes = palloc(Max(max, 1));
	n = pg_b64_decode(s, len, (void *) bytes, max);
	if (n <= 0 || n > EO_DECIMAL_MAX_BYTES)
		return false;
	eo_decimal_text(bytes, n, scale, out);
	pfree(bytes);
	return true;
}

static int
eo_dbz_field(const EoDbzDecimals *d, const char *name)
{
	for (int i = 0; i < d->nfields; i++)
		if (strcmp(d->fields[i].name, name) == 0)
			return i;
	return -1;
}

static inline JsonTokenType
eo_dbz_lex(JsonLexContext *lex)
{
	if (json_lex(lex) != JSON_SUCCESS)
		return JSON_TOKEN_INVALID;
	return lex->token_type;
}

/*
 * A VariableScaleDecimal's object {"scale": s, "value": "base64"}, from
 * past its '{' to its '}'.
 */
static bool
eo_dbz_variable(JsonLexContext *lex, StringInfo out)
{
	char	   *value = NULL;
	int			scale = -1;
	JsonTokenType t;

	while ((t = eo_dbz_lex(lex)) == JSON_TOKEN_STRING)
	{
		char	   *key = pstrdup(lex->strval->data);

		if (eo_dbz_lex(lex) != JSON_TOKEN_COLON)
			return false;
		t = eo_dbz_lex(lex);
		if (strcmp(key, "value") == 0 && t == JSON_TOKEN_STRING)
			value = pstrdup(lex->strval->data);
		else if (strcmp(key, "scale") == 0 && t == JSON_TOKEN_NUMBER &&
				 lex->token_terminator - lex->token_start <= 4 &&
				 strspn(lex->token_start, "0123456789") >= lex->token_terminator - lex->token_start)
			scale = atoi(lex->token_start);
		else
			return false;
		if ((t = eo_dbz_lex(lex)) != JSON_TOKEN_COMMA)
			break;
	}
	return t == JSON_TOKEN_OBJECT_END && value != NULL && scale >= 0 &&
		eo_dbz_render(value, strlen(value), scale, out);
}

/*
 * The row object json[0..len) with its decimal fields as numbers, or NULL
 * with *error when one is not what its schema says.
 */
char *
eo_dbz_rewrite(const EoDbzDecimals *d, const char *json, int len, int *newlen,
			   char **error)
{
	JsonLexContext *lex = eo_json_lexer(json, len, true);
	StringInfoData out;
	const char *copied = json;
	int			depth = 0;
	bool		key_next = false;
	char	   *key = NULL;
	JsonTokenType t;

	initStringInfo(&out);
	while ((t = eo_dbz_lex(lex)) != JSON_TOKEN_END)
	{
		int			i;
		const char *start = lex->token_start;

		if (t == JSON_TOKEN_INVALID)
		{
			*error = pstrdup("invalid JSON");
			return NULL;
		}
		if (t == JSON_TOKEN_OBJECT_START || t == JSON_TOKEN_ARRAY_START)
		{
			key_next = t == JSON_TOKEN_OBJECT_START && depth == 0;
			depth++;
			if (depth != 2 || key == NULL || (i = eo_dbz_field(d, key)) < 0 ||
				d->fields[i].scale != EO_VARIABLE_SCALE || t != JSON_TOKEN_OBJECT_START)
				continue;
			appendBinaryStringInfo(&out, copied, start - copied);
			if (!eo_dbz_variable(lex, &out))
			{
				*error = psprintf("Debezium field \"%s\" is not a VariableScaleDecimal {\"scale\": s, \"value\": \"base64\"}", key);
				return NULL;
			}
			copied = lex->token_terminator;
			depth--;
		}
		else if (t == JSON_TOKEN_OBJECT_END || t == JSON_TOKEN_ARRAY_END)
			depth--;
		else if (depth == 1 && t == JSON_TOKEN_COMMA)
			key_next = true;
		else if (depth == 1 && key_next && t == JSON_TOKEN_STRING)
		{
			key = pstrdup(lex->strval->data);
			key_next = false;
		}
		else if (depth == 1 && t == JSON_TOKEN_STRING && key != NULL &&
				 (i = eo_dbz_field(d, key)) >= 0 && d->fields[i].scale != EO_VARIABLE_SCALE)
		{
			appendBinaryStringInfo(&out, copied, start - copied);
			if (!eo_dbz_render(lex->strval->data, strlen(lex->strval->data),
							   d->fields[i].scale, &out))
			{
				*error = psprintf("Debezium Decimal field \"%s\" is not base64 of at most %d bytes",
								  key, EO_DECIMAL_MAX_BYTES);
				return NULL;
			}
			copied = lex->token_terminator;
		}
	}
	appendBinaryStringInfo(&out, copied, json + len - copied);
	*newlen = out.len;
	return out.data;
}
