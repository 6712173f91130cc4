/*
 * debezium.c
 *		Debezium change events (op c, r, u, d, t) into the changes of a
 *		batch: JSON events, with or without Kafka Connect's schema/payload
 *		wrapper, and events of any other format, such as Avro.
 *
 * A JSON event is scanned once by json_scan.c for its few fields (op,
 * before, after; a wrapper's schema and payload), and its rows are the
 * "before" and "after" objects cut out of the value, each decoded by
 * record.c like any record (envelope.c).  A wrapper's schema tells the scale
 * of precise decimals (dbz_decimal.c).  The rows of other formats are read
 * from the whole value by mappings whose paths start at "after" or "before"
 * (EoApplier.after_map, before_map), so the format's own decoder finds
 * them.  A record that cannot be understood becomes a dead letter.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "compat.h"
#include "dbz_decimal.h"
#include "envelope.h"
#include "json_scan.h"

/*
 * The fields of a Debezium event that an envelope looks at, found by
 * json_scan.c's one validating pass as the columns of a mapping of their
 * own: the event's, and those of a schema/payload wrapper's payload.
 */
enum
{
	F_SCHEMA,
	F_PAYLOAD,
	F_OP,
	F_BEFORE,
	F_AFTER,
	F_P_OP,
	F_P_BEFORE,
	F_P_AFTER,
	F_COUNT
};

static const char *const eo_dbz_paths[F_COUNT][2] = {
	{"schema", NULL}, {"payload", NULL}, {"op", NULL}, {"before", NULL}, {"after", NULL},
	{"payload", "op"}, {"payload", "before"}, {"payload", "after"}
};

typedef struct EoDbzField
{
	bool		present;
	const char *text;			/* JSON text (op: the string's text); NULL
								 * for JSON null */
	int			len;
} EoDbzField;

/* A scanned event; unwrapped, op, before and after are the payload's. */
typedef struct EoDbzScan
{
	EoDbzField	fields[F_COUNT];
	const char *event;			/* the event, or the wrapper's payload */
	size_t		event_len;
	const EoDbzDecimals *decimals;	/* the wrapper's schema's, or NULL */
	const char *decimals_error; /* why the schema cannot be read */
} EoDbzScan;

static EoMapping *eo_dbz_mapping;

/* The mapping of the envelope's fields, built once per process. */
static EoMapping *
eo_dbz_map(void)
{
	MemoryContext old;

	if (eo_dbz_mapping != NULL)
		return eo_dbz_mapping;
	old = MemoryContextSwitchTo(TopMemoryContext);
	eo_dbz_mapping = palloc0(sizeof(EoMapping));
	eo_dbz_mapping->ncolumns = F_COUNT;
	eo_dbz_mapping->max_depth = 2;
	eo_dbz_mapping->id_column = -1;
	eo_dbz_mapping->ts_column = -1;
	eo_dbz_mapping->columns = palloc0(sizeof(EoColumn) * F_COUNT);
	for (int i = 0; i < F_COUNT; i++)
	{
		EoColumn   *col = &eo_dbz_mapping->columns[i];

		col->source = EO_SRC_JSON;
		col->npath = eo_dbz_paths[i][1] != NULL ? 2 : 1;
		col->path = (char **) eo_dbz_paths[i];
		col->pathlen = palloc(sizeof(int) * 2);
		for (int k = 0; k < col->npath; k++)
			col->pathlen[k] = strlen(eo_dbz_paths[i][k]);
		/* op as the string's text, the rest as JSON text */
		col->json_raw = i != F_OP && i != F_P_OP;
	}
	/* json_scan.c reads the paths of mappings of the json format */
	eo_dbz_mapping->format = &eo_format_json;
	eo_dbz_mapping->format_state = eo_json_plan(eo_dbz_mapping);
	MemoryContextSwitchTo(old);
	return eo_dbz_mapping;
}

/* The scan's fields for p, in the current memory context. */
void
eo_dbz_prepare(EoEnvPass *p)
{
	p->fields.map = eo_dbz_map();
	p->fields.present = palloc(F_COUNT);
	p->fields.text = palloc(sizeof(char *) * F_COUNT);
	p->fields.len = palloc(sizeof(int) * F_COUNT);
	p->fields.isnull = palloc(sizeof(bool) * F_COUNT);
	p->fields.is_datum = palloc(F_COUNT);
	p->fields.datum = palloc(sizeof(Datum) * F_COUNT);
	p->fields.cxt = NULL;
	p->fields.arena = p->fields.arena_end = NULL;
}

static bool
eo_dbz_is(const EoDbzField *f, char c)
{
	return f->present && f->text != NULL && f->text[0] == c;
}

/*
 * Find the envelope's fields in a JSON object, copied into the current
 * memory context; false, with the error, when it is not one.  A Kafka
 * Connect JsonConverter with schemas.enable wraps every key and value as
 * {"schema": ..., "payload": ...}: then the payload's fields count, and
 * (with decimals) the schema tells the rows' precise decimals.
 */
static bool
eo_dbz_scan(EoEnvPass *p, const char *json, size_t len, bool decimals, EoDbzScan *s,
			int *sqlerrcode, char **error)
{
	EoFields   *f = &p->fields;
	const char *at = json;
	const char *end = json + len;
	MemoryContext cxt = CurrentMemoryContext;
	EoJsonScan	r;

	memset(s, 0, sizeof(EoDbzScan));
	while (at < end && (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r'))
		at++;
	*sqlerrcode = ERRCODE_INVALID_TEXT_REPRESENTATION;
	if (at == end || *at != '{')
	{
		*error = pstrdup("value is not a JSON object");
		return false;
	}
	if (!eo_text_valid(json, len))
	{
		*sqlerrcode = ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
		*error = pstrdup("value is not valid in the database encoding");
		return false;
	}
	MemoryContextSwitchTo(p->scratch);
	memset(f->present, 0, F_COUNT);
	r = eo_json_scan(f, at, end);
	MemoryContextSwitchTo(cxt);
	if (r == EO_JSON_TOO_DEEP)
	{
		*sqlerrcode = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		*error = psprintf("JSON value is nested more than %d levels deep", EO_JSON_MAX_NESTING);
	}
	else if (r == EO_JSON_INVALID)
	{
		/* PostgreSQL's own parser says what is wrong */
		JsonLexContext *lex = eo_json_lexer(json, len, true);
		JsonParseErrorType rc = pg_parse_json(lex, &nullSemAction);

		*error = rc == JSON_SUCCESS ? pstrdup("invalid JSON") :
			psprintf("invalid JSON: %s", json_errdetail(rc, lex));
	}
	if (r != EO_JSON_OK)
	{
		MemoryContextReset(p->scratch);
		return false;
	}
	for (int i = F_PAYLOAD; i < F_COUNT; i++)
	{
		s->fields[i].present = f->present[i];
		if (f->present[i] && !f->isnull[i])
		{
			s->fields[i].text = pnstrdup(f->text[i], f->len[i]);
			s->fields[i].len = f->len[i];
		}
	}
	s->fields[F_SCHEMA].present = f->present[F_SCHEMA];
	if (decimals && f->present[F_SCHEMA] && !f->isnull[F_SCHEMA])
		s->decimals = eo_dbz_decimals(f->text[F_SCHEMA], f->len[F_SCHEMA],
									  &s->decimals_error);
	MemoryContextReset(p->scratch);
	s->event = json;
	s->event_len = len;
	if (s->fields[F_SCHEMA].present && s->fields[F_PAYLOAD].present && !s->fields[F_OP].present &&
		(s->fields[F_PAYLOAD].text == NULL || s->fields[F_PAYLOAD].text[0] == '{'))
	{
		/* only a wrapper's schema tells the scale of precise decimals */
		s->fields[F_OP] = s->fields[F_P_OP];
		s->fields[F_BEFORE] = s->fields[F_P_BEFORE];
		s->fields[F_AFTER] = s->fields[F_P_AFTER];
		s->event = s->fields[F_PAYLOAD].text;
		s->event_len = s->fields[F_PAYLOAD].len;
	}
	else
	{
		s->decimals = NULL;
		s->decimals_error = NULL;
	}
	return true;
}

/*
 * A JSON object, or the payload of a schema/payload wrapper around one
 * (*object NULL for a wrapped null); false, with the error, when json is
 * not a JSON object.  Kafka keys of JSON pipelines are read so.
 */
bool
eo_dbz_unwrap(EoEnvPass *p, const char *json, size_t len, const char **object,
			  size_t *object_len, int *sqlerrcode, char **error)
{
	EoDbzScan	s;

	if (!eo_dbz_scan(p, json, len, false, &s, sqlerrcode, error))
		return false;
	*object = s.event;
	*object_len = s.event_len;
	return true;
}

/*
 * A row's precise decimals (base64) as numbers, by the wrapper's schema;
 * false, with the record a dead letter, if one is not what it says.
 */
static bool
eo_dbz_row_decimals(EoDbzScan *s, EoDbzField *row, EoRecord *rec)
{
	char	   *error;

	if (s->decimals_error != NULL)
	{
		eo_env_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION, s->decimals_error);
		return false;
	}
	if (s->decimals == NULL || !eo_dbz_is(row, '{'))
		return true;
	row->text = eo_dbz_rewrite(s->decimals, row->text, row->len, &row->len, &error);
	if (row->text == NULL)
		eo_env_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION, error);
	return row->text != NULL;
}

/* The changes one JSON Debezium event makes, into p. */
void
eo_dbz_json(EoApplier *a, EoEnvPass *p, EoRecord *rec, int seq)
{
	rd_kafka_message_t *msg = rec->msg;
	EoDbzScan	s;
	EoDbzField *before;
	EoDbzField *after;
	const char *op;
	char	   *error;
	int			sqlerrcode;

	/* the tombstone that follows a delete, for compaction: nothing to do */
	if (msg->payload == NULL)
		return;
	if (!eo_dbz_scan(p, msg->payload, msg->len, true, &s, &sqlerrcode, &error))
	{
		eo_env_fail(rec, sqlerrcode, error);
		return;
	}
	/* a wrapped tombstone */
	if (s.event == NULL)
		return;
	p->event = s.event;
	p->event_len = s.event_len;
	op = s.fields[F_OP].text;
	before = &s.fields[F_BEFORE];
	after = &s.fields[F_AFTER];
	if (!eo_dbz_row_decimals(&s, before, rec) || !eo_dbz_row_decimals(&s, after, rec))
		return;
	if (!s.fields[F_OP].present)
	{
		eo_env_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION,
					"Debezium change event has no \"op\"");
		return;
	}
	if (op == NULL || strlen(op) != 1 || strchr("crudt", op[0]) == NULL)
	{
		eo_env_fail(rec, ERRCODE_INVALID_PARAMETER_VALUE,
					psprintf("Debezium change event has unknown op \"%.*s\"",
							 op == NULL ? 4 : Min(s.fields[F_OP].len, 40), op == NULL ? "null" : op));
		return;
	}
	if (op[0] == 't')
	{
		eo_env_change(p, rec, NULL, EO_OP_TRUNCATE, seq);
		return;
	}
	if (op[0] == 'd')
	{
		if (eo_dbz_is(before, '{'))
			eo_env_change(p, rec, eo_env_row(a, p, rec, before->text, before->len),
						  EO_OP_DELETE, seq);
		else if (before->text == NULL)
			eo_env_change(p, rec, eo_env_row(a, p, rec, NULL, 0), EO_OP_DELETE, seq);
		else
			eo_env_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION,
						"Debezium delete event has a \"before\" that is not a JSON object");
		return;
	}
	if (!eo_dbz_is(after, '{'))
	{
		eo_env_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION,
					psprintf("Debezium event with op \"%s\" has an \"after\" that is not a JSON object", op));
		return;
	}

	/*
	 * An update that changes the primary key deletes the old row.  Debezium's
	 * PostgreSQL connector sends a delete and a create instead, but "before"
	 * tells it for sources with full row images.
	 */
	if (op[0] == 'u' && eo_dbz_is(before, '{'))
		eo_env_change(p, rec, eo_env_row(a, p, rec, before->text, before->len),
					  EO_OP_DELETE, seq)->if_key_changed = true;
	eo_env_change(p, rec, eo_env_row(a, p, rec, after->text, after->len), EO_OP_UPSERT,
				  seq)->creates = op[0] == 'c' || op[0] == 'r';
}

/* Has a row decoded by a nested mapping any field of its envelope part? */
static bool
eo_dbz_has_fields(EoApplier *a, EoRecord *row)
{
	for (int c = 0; c < a->map->ncolumns; c++)
		if (a->map->columns[c].source == EO_SRC_JSON && row->shape[c] == '1')
			return true;
	return false;
}

/*
 * Debezium events of a format other than JSON: "after" and "op" (and the
 * event's fields mapped from $op, $source...) are read from every value by
 * a->after_map, "before" from those of updates and deletes by
 * a->before_map, each by the format's own decoder; then the changes are
 * made in record order.  The rows are p->rows (after: one per record, then
 * before), as the multi-insert path finds them.  Returns the subtransactions
 * used.
 */
int
eo_dbz_decoded(EoApplier *a, EoEnvPass *p, EoRecord *recs, int n, MemoryContext cxt)
{
	int			nc = a->map->ncolumns;
	EoRecord   *after = p->rows;
	EoRecord   *before = p->rows + n;
	int		   *bidx = palloc(sizeof(int) * Max(n, 1));
	char	   *ops = palloc0(Max(n, 1));
	int			nbefore = 0;
	int			subxacts;

	memset(after, 0, sizeof(EoRecord) * n);
	for (int i = 0; i < n; i++)
	{
		after[i].msg = recs[i].msg;
		after[i].partition = recs[i].partition;
		after[i].offset = recs[i].offset;
		after[i].timestamp = recs[i].timestamp;
		after[i].json_strings = true;
		/* a tombstone (null value): decoded as no value, then ignored */
		after[i].value_override = recs[i].msg->payload == NULL;
	}
	subxacts = eo_record_decode_batch(a->after_map, after, n, cxt);
	for (int i = 0; i < n; i++)
	{
		EoRecord   *row = &after[i];
		char	   *op;

		bidx[i] = -1;
		if (recs[i].msg->payload == NULL)
			continue;
		if (!row->decoded_ok)
		{
			eo_env_fail(&recs[i], row->sqlerrcode, row->error);
			continue;
		}
		if (row->shape[nc] != '1' || row->nulls[nc])
		{
			eo_env_fail(&recs[i], ERRCODE_INVALID_TEXT_REPRESENTATION,
						"Debezium change event has no \"op\"");
			continue;
		}
		op = TextDatumGetCString(row->datums[nc]);
		row->shape[nc] = '\0';
		if (strlen(op) != 1 || strchr("crudt", op[0]) == NULL)
		{
			eo_env_fail(&recs[i], ERRCODE_INVALID_PARAMETER_VALUE,
						psprintf("Debezium change event has unknown op \"%.40s\"", op));
			continue;
		}
		ops[i] = op[0];
		/* an event field the schema lacks is NULL, as in a JSON event */
		for (int c = 0; c < nc; c++)
			if (a->map->columns[c].source == EO_SRC_ENVELOPE && row->shape[c] == '0')
				row->shape[c] = '1';
		if ((op[0] == 'c' || op[0] == 'r' || op[0] == 'u') && !eo_dbz_has_fields(a, row))
		{
			eo_env_fail(&recs[i], ERRCODE_INVALID_TEXT_REPRESENTATION,
						psprintf("Debezium event with op \"%s\" has no \"after\" row with a mapped field", op));
			continue;
		}
		if (op[0] == 'u' || op[0] == 'd')
		{
			before[nbefore] = after[i];
			before[nbefore].shape = NULL;
			before[nbefore].datums = NULL;
			before[nbefore].nulls = NULL;
			before[nbefore].value_override = false;
			bidx[i] = nbefore++;
		}
	}
	subxacts += eo_record_decode_batch(a->before_map, before, nbefore, cxt);
	p->nrows = n + nbefore;

	for (int i = 0; i < n; i++)
	{
		EoRecord   *rec = &recs[i];

		if (ops[i] == 0 || rec->status == EO_REC_DEAD)
			continue;
		if (ops[i] == 't')
			eo_env_change(p, rec, NULL, EO_OP_TRUNCATE, i);
		else if (ops[i] == 'd')
			eo_env_change(p, rec, &before[bidx[i]], EO_OP_DELETE, i);
		else
		{
			/* "before" of an update tells a change of primary key */
			if (ops[i] == 'u')
				eo_env_change(p, rec, &before[bidx[i]], EO_OP_DELETE, i)->if_key_changed = true;
			eo_env_change(p, rec, &after[i], EO_OP_UPSERT, i)->creates =
				ops[i] == 'c' || ops[i] == 'r';
		}
	}
	return subxacts;
}
