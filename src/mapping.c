/*
 * mapping.c
 *		From a pipeline's target, format and columns argument to a column
 *		mapping; from a Kafka record to the text of each mapped column.
 *
 * Records are parsed here, outside SQL, so that a malformed value costs a
 * dead letter and not a failed statement.  Casts to the column types happen
 * in the INSERT the writer builds, where a failed cast is found by bisection.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "batch.h"

#define EO_MAX_DEPTH 16

static char **
eo_split_path(const char *src, int *npath)
{
	char	   *copy = pstrdup(src);
	char	  **path = palloc(sizeof(char *) * EO_MAX_DEPTH);
	int			n = 0;
	char	   *p = copy;

	for (;;)
	{
		char	   *dot = strchr(p, '.');

		if (n == EO_MAX_DEPTH)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("JSON path \"%s\" is nested too deeply", src),
					 errdetail("Paths may have at most %d levels.", EO_MAX_DEPTH)));
		if (dot != NULL)
			*dot = '\0';
		path[n++] = p;
		if (dot == NULL)
			break;
		p = dot + 1;
	}
	*npath = n;
	return path;
}

static EoSource
eo_parse_source(const char *src)
{
	if (src[0] != '$')
		return EO_SRC_JSON;
	if (strcmp(src, "$key") == 0)
		return EO_SRC_KEY;
	if (strcmp(src, "$value") == 0)
		return EO_SRC_VALUE;
	if (strcmp(src, "$topic") == 0)
		return EO_SRC_TOPIC;
	if (strcmp(src, "$partition") == 0)
		return EO_SRC_PARTITION;
	if (strcmp(src, "$offset") == 0)
		return EO_SRC_OFFSET;
	if (strcmp(src, "$timestamp") == 0)
		return EO_SRC_TIMESTAMP;
	if (strcmp(src, "$headers") == 0)
		return EO_SRC_HEADERS;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown column source \"%s\"", src),
			 errhint("Sources starting with $ are $key, $value, $topic, $partition, $offset, $timestamp and $headers.")));
	return EO_SRC_JSON;			/* keep compiler quiet */
}

/* The source the columns argument gives a column, or NULL. */
static char *
eo_mapped_source(Jsonb *columns, const char *attname)
{
	JsonbValue	key;
	JsonbValue *v;

	if (columns == NULL)
		return NULL;
	key.type = jbvString;
	key.val.string.val = (char *) attname;
	key.val.string.len = strlen(attname);
	v = findJsonbValueFromContainer(&columns->root, JB_FOBJECT, &key);
	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("columns entry \"%s\" must be a string", attname)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

EoMapping *
eo_mapping_build(Oid target, const char *format, const char *event_id,
				 const char *on_duplicate, Datum columns_datum, bool columns_null,
				 const char *topic)
{
	EoMapping  *map = palloc0(sizeof(EoMapping));
	Jsonb	   *columns = columns_null ? NULL : DatumGetJsonbP(columns_datum);
	Relation	rel;
	TupleDesc	desc;
	int			nmapped = 0;

	rel = try_relation_open(target, AccessShareLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("target table with OID %u does not exist", target),
				 errhint("The pipeline resumes from its stored offsets once a table of the same name exists again, or once eo_ingest.alter_pipeline(name, target => ...) points it at another table.")));
	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" is not a table", RelationGetRelationName(rel))));

	map->target = target;
	map->target_name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												  RelationGetRelationName(rel));
	map->format = strcmp(format, "text") == 0 ? EO_FORMAT_TEXT :
		strcmp(format, "bytea") == 0 ? EO_FORMAT_BYTEA : EO_FORMAT_JSON;
	map->update = strcmp(on_duplicate, "update") == 0;
	map->topic = pstrdup(topic);
	map->id_column = -1;
	map->ts_column = -1;

	desc = RelationGetDescr(rel);
	map->columns = palloc0(sizeof(EoColumn) * desc->natts);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		char	   *attname = NameStr(att->attname);
		char	   *src;
		EoColumn   *col;

		if (att->attisdropped || att->attgenerated != '\0')
			continue;
		src = eo_mapped_source(columns, attname);
		if (src != NULL)
			nmapped++;
		else if (map->format != EO_FORMAT_JSON || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			continue;

		col = &map->columns[map->ncolumns++];
		col->name = pstrdup(quote_identifier(attname));
		col->attnum = att->attnum;
		col->typid = att->atttypid;
		col->type = format_type_with_typemod(att->atttypid, att->atttypmod);
		if (src != NULL)
		{
			col->source = eo_parse_source(src);
			if (col->source == EO_SRC_JSON)
				col->path = eo_split_path(src, &col->npath);
		}
		else
		{
			col->source = EO_SRC_JSON;
			col->npath = 1;
			col->path = palloc(sizeof(char *));
			col->path[0] = pstrdup(attname);
		}
		col->pathlen = palloc(sizeof(int) * Max(col->npath, 1));
		for (int k = 0; k < col->npath; k++)
			col->pathlen[k] = strlen(col->path[k]);
		if (col->source == EO_SRC_JSON && map->format != EO_FORMAT_JSON)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" is mapped from a JSON path but the format is %s", attname, format)));
		col->binary = col->typid == BYTEAOID &&
			(col->source == EO_SRC_KEY || col->source == EO_SRC_VALUE);
		col->json_raw = col->typid == JSONOID || col->typid == JSONBOID;
		col->typmod = att->atttypmod;
		col->arraytype = get_array_type(col->typid);
		if (!OidIsValid(col->arraytype))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" has type %s, which has no array type", attname, col->type)));
		{
			Oid			infunc;

			getTypeInputInfo(col->typid, &infunc, &col->ioparam);
			fmgr_info(infunc, &col->infunc);
		}
		get_typlenbyvalalign(col->typid, &col->typlen, &col->typbyval, &col->typalign);
		if (col->source == EO_SRC_JSON)
			map->max_depth = Max(map->max_depth, col->npath);
		if (col->source == EO_SRC_TIMESTAMP && map->ts_column < 0)
			map->ts_column = map->ncolumns - 1;
	}

	if (columns != NULL && nmapped != (int) JB_ROOT_COUNT(columns))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("a column named in the columns mapping does not exist in \"%s\"",
						RelationGetRelationName(rel))));

	if (event_id != NULL)
	{
		int			npath = 0;
		char	  **path = NULL;
		EoSource	want = eo_parse_source(event_id);

		if (want == EO_SRC_JSON)
			path = eo_split_path(event_id, &npath);
		for (int c = 0; c < map->ncolumns && map->id_column < 0; c++)
		{
			EoColumn   *col = &map->columns[c];
			bool		match = col->source == want;

			if (match && want == EO_SRC_JSON)
			{
				match = col->npath == npath;
				for (int k = 0; match && k < npath; k++)
					match = strcmp(col->path[k], path[k]) == 0;
			}
			if (match)
				map->id_column = c;
		}
		if (map->id_column < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("target \"%s\" has no column for event_id \"%s\"",
							RelationGetRelationName(rel), event_id)));
	}
	if (map->ncolumns == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("no column of \"%s\" is mapped", RelationGetRelationName(rel))));

	relation_close(rel, AccessShareLock);
	return map;
}

/* JSON extraction: one pass over the value, capturing the mapped paths. */
typedef struct EoJsonState
{
	EoMapping  *map;
	EoRecord   *rec;
	JsonLexContext *lex;
	int			array_depth;
	char	   *path[EO_MAX_DEPTH + 1];
	char	   *start[EO_MAX_DEPTH + 1];
	char	   *scalar[EO_MAX_DEPTH + 1];
	JsonTokenType scalar_type[EO_MAX_DEPTH + 1];
} EoJsonState;

static void
eo_json_array_start(void *state)
{
	((EoJsonState *) state)->array_depth++;
}

static void
eo_json_array_end(void *state)
{
	((EoJsonState *) state)->array_depth--;
}

static void
eo_json_field_start(void *state, char *fname, bool isnull)
{
	EoJsonState *s = (EoJsonState *) state;
	int			level = s->lex->lex_level;

	if (s->array_depth > 0 || level > s->map->max_depth)
		return;
	s->path[level] = fname;
	s->start[level] = s->lex->token_start;
	s->scalar[level] = NULL;
}

static void
eo_json_scalar(void *state, char *token, JsonTokenType tokentype)
{
	EoJsonState *s = (EoJsonState *) state;
	int			level = s->lex->lex_level;

	if (s->array_depth > 0 || level > s->map->max_depth || level == 0)
		return;
	s->scalar[level] = token;
	s->scalar_type[level] = tokentype;
}

static void
eo_json_field_end(void *state, char *fname, bool isnull)
{
	EoJsonState *s = (EoJsonState *) state;
	int			level = s->lex->lex_level;
	EoMapping  *map = s->map;
	EoRecord   *rec = s->rec;

	if (s->array_depth > 0 || level > map->max_depth)
		return;

	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];
		bool		match;

		if (col->source != EO_SRC_JSON || col->npath != level)
			continue;
		match = true;
		for (int k = 0; match && k < level; k++)
			match = strcmp(col->path[k], s->path[k + 1]) == 0;
		if (!match)
			continue;

		rec->present[c] = 1;
		rec->nulls[c] = false;
		if (isnull)
		{
			rec->nulls[c] = true;
			rec->values[c] = NULL;
		}
		else if (s->scalar[level] != NULL && !col->json_raw)
		{
			rec->values[c] = s->scalar[level];
			rec->lengths[c] = strlen(s->scalar[level]);
		}
		else
		{
			int			len = s->lex->prev_token_terminator - s->start[level];

			rec->values[c] = pnstrdup(s->start[level], len);
			rec->lengths[c] = len;
		}
	}
}

static void
eo_record_fail(EoRecord *rec, int sqlerrcode, const char *error)
{
	rec->status = EO_REC_DEAD;
	rec->sqlerrcode = sqlerrcode;
	rec->error = pstrdup(error);
}

static char *
eo_headers_json(rd_kafka_message_t *msg)
{
	rd_kafka_headers_t *hdrs = NULL;
	StringInfoData buf;
	size_t		idx = 0;
	const char *name;
	const void *value;
	size_t		size;
	bool		first = true;

	if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || hdrs == NULL)
		return pstrdup("{}");
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	while (rd_kafka_header_get_all(hdrs, idx++, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		if (!first)
			appendStringInfoChar(&buf, ',');
		first = false;
		escape_json(&buf, name);
		appendStringInfoChar(&buf, ':');
		if (value == NULL)
			appendStringInfoString(&buf, "null");
		else if (pg_verifymbstr(value, size, true))
		{
			char	   *v = pnstrdup(value, size);

			escape_json(&buf, v);
		}
		else
			appendStringInfoString(&buf, "null");
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static char *
eo_timestamp_text(EoColumn *col, int64 ms)
{
	if (col->typid == TIMESTAMPTZOID || col->typid == TIMESTAMPOID || col->typid == DATEOID)
	{
		TimestampTz ts = (ms - ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000)) * 1000;

		return DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(ts)));
	}
	return psprintf(INT64_FORMAT, ms);
}

/*
 * The fast path for JSON values: one validating pass that captures the
 * mapped fields without copying anything else.  It gives up (returns false)
 * on anything unusual: invalid JSON, escaped field names, deep nesting.  The
 * caller then runs PostgreSQL's own parser, which produces the same values
 * or the error message for the dead letter.
 */
#define EO_FAST_MAX_NESTING 64

typedef struct EoScan
{
	const char *p;
	const char *end;
	EoMapping  *map;
	EoRecord   *rec;
	const char *name[EO_MAX_DEPTH + 1];
	int			namelen[EO_MAX_DEPTH + 1];
} EoScan;

static inline void
eo_scan_ws(EoScan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* At an opening quote; on success p is past the closing quote. */
static bool
eo_scan_string(EoScan *s, bool *escaped)
{
	const char *p = s->p + 1;

	*escaped = false;
	while (p < s->end)
	{
		unsigned char c = (unsigned char) *p;

		if (c == '"')
		{
			s->p = p + 1;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\')
		{
			*escaped = true;
			if (++p >= s->end)
				return false;
			switch (*p)
			{
				case '"':
				case '\\':
				case '/':
				case 'b':
				case 'f':
				case 'n':
				case 'r':
				case 't':
					break;
				case 'u':
					for (int i = 0; i < 4; i++)
						if (++p >= s->end || !isxdigit((unsigned char) *p))
							return false;
					break;
				default:
					return false;
			}
		}
		p++;
	}
	return false;
}

static bool
eo_scan_number(EoScan *s)
{
	const char *p = s->p;
	const char *e = s->end;

	if (p < e && *p == '-')
		p++;
	if (p >= e || !isdigit((unsigned char) *p))
		return false;
	if (*p == '0')
		p++;
	else
		while (p < e && isdigit((unsigned char) *p))
			p++;
	if (p < e && *p == '.')
	{
		p++;
		if (p >= e || !isdigit((unsigned char) *p))
			return false;
		while (p < e && isdigit((unsigned char) *p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || !isdigit((unsigned char) *p))
			return false;
		while (p < e && isdigit((unsigned char) *p))
			p++;
	}
	/* a number runs into the next structural character or whitespace */
	if (p < e && (isalnum((unsigned char) *p) || *p == '.' || *p == '"'))
		return false;
	s->p = p;
	return true;
}

static bool
eo_scan_literal(EoScan *s, const char *word, int len)
{
	if (s->end - s->p < len || memcmp(s->p, word, len) != 0)
		return false;
	if (s->end - s->p > len && isalnum((unsigned char) s->p[len]))
		return false;
	s->p += len;
	return true;
}

/* De-escape one JSON string token with PostgreSQL's lexer. */
static char *
eo_unescape(const char *start, int len)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen((char *) start, len,
													   GetDatabaseEncoding(), true);

	if (json_lex(lex) != JSON_SUCCESS || lex->strval == NULL)
		return NULL;
	return lex->strval->data;
}

static bool eo_scan_value(EoScan *s, int level, int nesting, bool capture);

/* Do the field names down to this level spell the start of col's path? */
static bool
eo_scan_path_matches(EoScan *s, EoColumn *col, int level)
{
	for (int k = 0; k < level; k++)
		if (col->pathlen[k] != s->namelen[k + 1] ||
			memcmp(col->path[k], s->name[k + 1], s->namelen[k + 1]) != 0)
			return false;
	return true;
}

/* Store a captured field value into every column mapped from this path. */
static bool
eo_scan_capture(EoScan *s, int level, const char *start, char kind, bool escaped)
{
	EoMapping  *map = s->map;
	EoRecord   *rec = s->rec;

	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];
		int			len = s->p - start;

		if (col->source != EO_SRC_JSON || col->npath != level ||
			!eo_scan_path_matches(s, col, level))
			continue;

		rec->present[c] = 1;
		rec->nulls[c] = kind == 'n';
		rec->values[c] = NULL;
		if (kind == 'n')
			continue;
		if (kind == 's' && !col->json_raw)
		{
			if (escaped)
			{
				rec->values[c] = eo_unescape(start, len);
				if (rec->values[c] == NULL)
					return false;
				rec->lengths[c] = strlen(rec->values[c]);
				continue;
			}
			start++;
			len -= 2;
		}
		rec->values[c] = palloc(len + 1);
		memcpy(rec->values[c], start, len);
		rec->values[c][len] = '\0';
		rec->lengths[c] = len;
	}
	return true;
}

/* Does any column's path continue below this field? */
static bool
eo_scan_descend(EoScan *s, int level)
{
	EoMapping  *map = s->map;

	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];

		if (col->source == EO_SRC_JSON && col->npath > level &&
			eo_scan_path_matches(s, col, level))
			return true;
	}
	return false;
}

/* At '{'; level is the depth of this object's fields (1 for the top). */
static bool
eo_scan_object(EoScan *s, int level, int nesting, bool capture)
{
	s->p++;
	eo_scan_ws(s);
	if (s->p < s->end && *s->p == '}')
	{
		s->p++;
		return true;
	}
	for (;;)
	{
		const char *name;
		bool		escaped;
		bool		here = capture && level <= s->map->max_depth;

		eo_scan_ws(s);
		if (s->p >= s->end || *s->p != '"')
			return false;
		name = s->p;
		if (!eo_scan_string(s, &escaped))
			return false;
		if (here)
		{
			if (escaped)
				return false;
			s->name[level] = name + 1;
			s->namelen[level] = s->p - name - 2;
		}
		eo_scan_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return false;
		s->p++;
		eo_scan_ws(s);
		if (!eo_scan_value(s, here ? level : 0, nesting, here))
			return false;
		eo_scan_ws(s);
		if (s->p >= s->end)
			return false;
		if (*s->p == '}')
		{
			s->p++;
			return true;
		}
		if (*s->p != ',')
			return false;
		s->p++;
	}
}

static bool
eo_scan_array(EoScan *s, int nesting)
{
	s->p++;
	eo_scan_ws(s);
	if (s->p < s->end && *s->p == ']')
	{
		s->p++;
		return true;
	}
	for (;;)
	{
		eo_scan_ws(s);
		if (!eo_scan_value(s, 0, nesting, false))
			return false;
		eo_scan_ws(s);
		if (s->p >= s->end)
			return false;
		if (*s->p == ']')
		{
			s->p++;
			return true;
		}
		if (*s->p != ',')
			return false;
		s->p++;
	}
}

/*
 * A value; when capture is set it is the value of the field named
 * s->name[level], whose path may be mapped.
 */
static bool
eo_scan_value(EoScan *s, int level, int nesting, bool capture)
{
	const char *start = s->p;
	char		kind;
	bool		escaped = false;

	if (s->p >= s->end || nesting > EO_FAST_MAX_NESTING)
		return false;
	switch (*s->p)
	{
		case '{':
			kind = 'o';
			if (!eo_scan_object(s, level + 1, nesting + 1,
								capture && eo_scan_descend(s, level)))
				return false;
			break;
		case '[':
			kind = 'a';
			if (!eo_scan_array(s, nesting + 1))
				return false;
			break;
		case '"':
			kind = 's';
			if (!eo_scan_string(s, &escaped))
				return false;
			break;
		case 't':
			kind = 'b';
			if (!eo_scan_literal(s, "true", 4))
				return false;
			break;
		case 'f':
			kind = 'b';
			if (!eo_scan_literal(s, "false", 5))
				return false;
			break;
		case 'n':
			kind = 'n';
			if (!eo_scan_literal(s, "null", 4))
				return false;
			break;
		default:
			kind = 'd';
			if (!eo_scan_number(s))
				return false;
			break;
	}
	if (capture && level > 0)
		return eo_scan_capture(s, level, start, kind, escaped);
	return true;
}

static bool
eo_json_fast(EoMapping *map, EoRecord *rec, const char *p, const char *end)
{
	EoScan		s;

	s.p = p;
	s.end = end;
	s.map = map;
	s.rec = rec;
	if (!eo_scan_object(&s, 1, 1, true))
		return false;
	eo_scan_ws(&s);
	return s.p == end;
}

/* Fill rec's column values from its Kafka message; a bad record is marked dead. */
void
eo_record_parse(EoMapping *map, EoRecord *rec)
{
	rd_kafka_message_t *msg = rec->msg;
	int			n = map->ncolumns;
	const char *key = msg->key;
	const char *value = msg->payload;

	rec->present = palloc0(n);
	rec->values = palloc0(sizeof(char *) * n);
	rec->lengths = palloc0(sizeof(int) * n);
	rec->nulls = palloc0(sizeof(bool) * n);
	rec->status = EO_REC_OK;

	for (int c = 0; c < n; c++)
	{
		EoColumn   *col = &map->columns[c];
		const char *raw = NULL;
		size_t		rawlen = 0;

		switch (col->source)
		{
			case EO_SRC_JSON:
				continue;
			case EO_SRC_KEY:
			case EO_SRC_VALUE:
				raw = col->source == EO_SRC_KEY ? key : value;
				rawlen = col->source == EO_SRC_KEY ? msg->key_len : msg->len;
				if (raw == NULL)
					rec->nulls[c] = true;
				else if (!col->binary && !pg_verifymbstr(raw, rawlen, true))
				{
					eo_record_fail(rec, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
								   col->source == EO_SRC_KEY ?
								   "key is not valid in the database encoding" :
								   "value is not valid in the database encoding");
					return;
				}
				else
				{
					rec->values[c] = (char *) raw;
					rec->lengths[c] = rawlen;
				}
				break;
			case EO_SRC_TOPIC:
				rec->values[c] = map->topic;
				break;
			case EO_SRC_PARTITION:
				rec->values[c] = psprintf("%d", rec->partition);
				break;
			case EO_SRC_OFFSET:
				rec->values[c] = psprintf(INT64_FORMAT, rec->offset);
				break;
			case EO_SRC_TIMESTAMP:
				if (rec->timestamp < 0)
					rec->nulls[c] = true;
				else
					rec->values[c] = eo_timestamp_text(col, rec->timestamp);
				break;
			case EO_SRC_HEADERS:
				rec->values[c] = eo_headers_json(msg);
				break;
		}
		if (rec->values[c] != NULL && col->source != EO_SRC_KEY && col->source != EO_SRC_VALUE)
			rec->lengths[c] = strlen(rec->values[c]);
		rec->present[c] = 1;
	}

	if (map->format == EO_FORMAT_JSON)
	{
		EoJsonState state;
		JsonSemAction sem;
		JsonParseErrorType rc;
		const char *p = value;
		const char *end = value + msg->len;

		if (value == NULL)
		{
			eo_record_fail(rec, ERRCODE_NULL_VALUE_NOT_ALLOWED, "record has no value (tombstone)");
			return;
		}
		if (!pg_verifymbstr(value, msg->len, true))
		{
			eo_record_fail(rec, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
						   "value is not valid in the database encoding");
			return;
		}
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			p++;
		if (p == end || *p != '{')
		{
			eo_record_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION,
						   p == end ? "value is empty, not a JSON object" : "value is not a JSON object");
			return;
		}

		if (eo_json_fast(map, rec, p, end))
			goto done;
		for (int c = 0; c < n; c++)
			if (map->columns[c].source == EO_SRC_JSON)
			{
				rec->present[c] = 0;
				rec->nulls[c] = false;
				rec->values[c] = NULL;
			}

		memset(&state, 0, sizeof(state));
		memset(&sem, 0, sizeof(sem));
		state.map = map;
		state.rec = rec;
		state.lex = makeJsonLexContextCstringLen((char *) value, msg->len, GetDatabaseEncoding(), true);
		sem.semstate = &state;
		sem.array_start = eo_json_array_start;
		sem.array_end = eo_json_array_end;
		sem.object_field_start = eo_json_field_start;
		sem.object_field_end = eo_json_field_end;
		sem.scalar = eo_json_scalar;
		rc = pg_parse_json(state.lex, &sem);
		if (rc != JSON_SUCCESS)
		{
			eo_record_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION,
						   psprintf("invalid JSON: %s", json_errdetail(rc, state.lex)));
			return;
		}
	}

done:
	if (map->id_column >= 0)
	{
		int			c = map->id_column;

		if (!rec->present[c] || rec->nulls[c])
		{
			eo_record_fail(rec, ERRCODE_NOT_NULL_VIOLATION, "record has no event id");
			return;
		}
		rec->event_id = rec->values[c];
		rec->event_id_len = rec->lengths[c];
	}
}
