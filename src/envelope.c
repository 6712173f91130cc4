/*
 * envelope.c
 *		From one Kafka record of a change stream to the changes it makes:
 *		Debezium change events (op c, r, u, d, t; JSON with or without the
 *		schema/payload wrapper, or any other format, such as Avro) and upsert
 *		topics (the key identifies the row, the value is the row, a null
 *		value deletes it).
 *
 * Each row is a record of its own, decoded into column values by record.c
 * like any record.  A JSON row is the envelope's "after" or "before" object
 * cut out of the value (EoRecord.value); the rows of other formats are read
 * from the whole value by mappings whose paths start at "after" or
 * "before" (EoApplier.after_map, before_map), so the format's own decoder
 * finds them.  A row is identified by the decoded values of the target's
 * primary key: its columns come from the row, and where the row lacks them,
 * from the Kafka key: decoded by key_format, its fields mapped like the
 * row's (by name or path) or by $key.<path>; without key_format, a JSON
 * object key (wrapped or not) of a JSON pipeline.  Any other key is mapped
 * like any column, columns => {"id": "$key"}.  A record that cannot be
 * understood becomes a dead letter.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "change.h"
#include "compat.h"
#include "dbz_decimal.h"
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

static const char *const eo_env_paths[F_COUNT][2] = {
	{"schema", NULL}, {"payload", NULL}, {"op", NULL}, {"before", NULL}, {"after", NULL},
	{"payload", "op"}, {"payload", "before"}, {"payload", "after"}
};

typedef struct EoEnvField
{
	bool		present;
	const char *text;			/* JSON text (op: the string's text); NULL
								 * for JSON null */
	int			len;
} EoEnvField;

/* A scanned event; unwrapped, op, before and after are the payload's. */
typedef struct EoEnvScan
{
	EoEnvField	fields[F_COUNT];
	const char *event;			/* the event, or the wrapper's payload */
	size_t		event_len;
	const EoDbzDecimals *decimals;	/* the wrapper's schema's, or NULL */
	const char *decimals_error; /* why the schema cannot be read */
} EoEnvScan;

/* The rows to decode and the changes made of them, for one batch. */
typedef struct EoEnvPass
{
	EoRecord   *rows;			/* at most two per record, then a key each */
	int			nrows;
	EoChange   *changes;		/* at most two per record */
	int			nchanges;
	const char *event;			/* the Debezium event being read, for
								 * columns mapped from $op, $source... */
	size_t		event_len;
	EoFields	fields;			/* the scan's, over eo_env_mapping */
	MemoryContext scratch;		/* one scan's */
} EoEnvPass;

static EoMapping *eo_env_mapping;

/* The mapping of the envelope's fields, built once per process. */
static EoMapping *
eo_env_map(void)
{
	MemoryContext old;

	if (eo_env_mapping != NULL)
		return eo_env_mapping;
	old = MemoryContextSwitchTo(TopMemoryContext);
	eo_env_mapping = palloc0(sizeof(EoMapping));
	eo_env_mapping->ncolumns = F_COUNT;
	eo_env_mapping->max_depth = 2;
	eo_env_mapping->id_column = -1;
	eo_env_mapping->ts_column = -1;
	eo_env_mapping->columns = palloc0(sizeof(EoColumn) * F_COUNT);
	for (int i = 0; i < F_COUNT; i++)
	{
		EoColumn   *col = &eo_env_mapping->columns[i];

		col->source = EO_SRC_JSON;
		col->npath = eo_env_paths[i][1] != NULL ? 2 : 1;
		col->path = (char **) eo_env_paths[i];
		col->pathlen = palloc(sizeof(int) * 2);
		for (int k = 0; k < col->npath; k++)
			col->pathlen[k] = strlen(eo_env_paths[i][k]);
		/* op as the string's text, the rest as JSON text */
		col->json_raw = i != F_OP && i != F_P_OP;
	}
	MemoryContextSwitchTo(old);
	return eo_env_mapping;
}

static void
eo_env_fail(EoRecord *rec, int sqlerrcode, const char *error)
{
	rec->decoded_ok = false;
	rec->status = EO_REC_DEAD;
	rec->sqlerrcode = sqlerrcode;
	rec->error = pstrdup(error);
}

static bool
eo_env_is(const EoEnvField *f, char c)
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
eo_env_scan(EoEnvPass *p, const char *json, size_t len, bool decimals, EoEnvScan *s,
			int *sqlerrcode, char **error)
{
	EoFields   *f = &p->fields;
	const char *at = json;
	const char *end = json + len;
	MemoryContext cxt = CurrentMemoryContext;
	EoJsonScan	r;

	memset(s, 0, sizeof(EoEnvScan));
	while (at < end && (*at == ' ' || *at == '\t' || *at == '\n' || *at == '\r'))
		at++;
	*sqlerrcode = ERRCODE_INVALID_TEXT_REPRESENTATION;
	if (at == end || *at != '{')
	{
		*error = pstrdup("value is not a JSON object");
		return false;
	}
	if (!pg_verifymbstr(json, len, true))
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
 * A row's precise decimals (base64) as numbers, by the wrapper's schema;
 * false, with the record a dead letter, if one is not what it says.
 */
static bool
eo_env_decimals(EoEnvScan *s, EoEnvField *row, EoRecord *rec)
{
	char	   *error;

	if (s->decimals_error != NULL)
	{
		eo_env_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION, s->decimals_error);
		return false;
	}
	if (s->decimals == NULL || !eo_env_is(row, '{'))
		return true;
	row->text = eo_dbz_rewrite(s->decimals, row->text, row->len, &row->len, &error);
	if (row->text == NULL)
		eo_env_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION, error);
	return row->text != NULL;
}

/* A row of rec to decode: json, a part of its value, or no value at all. */
static EoRecord *
eo_env_row(EoApplier *a, EoEnvPass *p, EoRecord *rec, const char *json, size_t len)
{
	EoRecord   *row = &p->rows[p->nrows++];

	memset(row, 0, sizeof(EoRecord));
	row->msg = rec->msg;
	row->partition = rec->partition;
	row->offset = rec->offset;
	row->timestamp = rec->timestamp;
	row->value_override = true;
	row->value = json;
	row->value_len = len;
	row->json_strings = a->map->envelope == EO_ENV_DEBEZIUM;
	row->envelope = p->event;
	row->envelope_len = p->event_len;
	return row;
}

static EoChange *
eo_env_change(EoEnvPass *p, EoRecord *rec, EoRecord *row, EoOp op, int seq)
{
	EoChange   *ch = &p->changes[p->nchanges++];

	memset(ch, 0, sizeof(EoChange));
	ch->rec = rec;
	ch->row = row;
	ch->op = op;
	ch->seq = seq;
	return ch;
}

static void
eo_env_debezium(EoApplier *a, EoEnvPass *p, EoRecord *rec, int seq)
{
	rd_kafka_message_t *msg = rec->msg;
	EoEnvScan	s;
	EoEnvField *before;
	EoEnvField *after;
	const char *op;
	char	   *error;
	int			sqlerrcode;

	/* the tombstone that follows a delete, for compaction: nothing to do */
	if (msg->payload == NULL)
		return;
	if (!eo_env_scan(p, msg->payload, msg->len, true, &s, &sqlerrcode, &error))
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
	if (!eo_env_decimals(&s, before, rec) || !eo_env_decimals(&s, after, rec))
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
		if (eo_env_is(before, '{'))
			eo_env_change(p, rec, eo_env_row(a, p, rec, before->text, before->len),
						  EO_OP_DELETE, seq);
		else if (before->text == NULL)
			eo_env_change(p, rec, eo_env_row(a, p, rec, NULL, 0), EO_OP_DELETE, seq);
		else
			eo_env_fail(rec, ERRCODE_INVALID_TEXT_REPRESENTATION,
						"Debezium delete event has a \"before\" that is not a JSON object");
		return;
	}
	if (!eo_env_is(after, '{'))
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
	if (op[0] == 'u' && eo_env_is(before, '{'))
		eo_env_change(p, rec, eo_env_row(a, p, rec, before->text, before->len),
					  EO_OP_DELETE, seq)->if_key_changed = true;
	eo_env_change(p, rec, eo_env_row(a, p, rec, after->text, after->len), EO_OP_UPSERT,
				  seq)->creates = op[0] == 'c' || op[0] == 'r';
}

static void
eo_env_upsert(EoApplier *a, EoEnvPass *p, EoRecord *rec, int seq)
{
	EoRecord   *row;

	if (rec->msg->key == NULL)
	{
		eo_env_fail(rec, ERRCODE_NOT_NULL_VIOLATION,
					"record of an upsert topic has no key");
		return;
	}
	if (rec->msg->payload == NULL)
	{
		eo_env_change(p, rec, eo_env_row(a, p, rec, NULL, 0), EO_OP_DELETE, seq);
		return;
	}
	/* the value is the row, in any format */
	row = eo_env_row(a, p, rec, NULL, 0);
	row->value_override = false;
	eo_env_change(p, rec, row, EO_OP_UPSERT, seq);
}

/*
 * The key of a record as a row, decoded by the key's mapping (key_format)
 * or, without one, if it is a JSON object of a JSON pipeline.  A JSON key
 * may be wrapped; one nested too deeply to look into makes the record a dead
 * letter.
 */
static EoRecord *
eo_env_key_row(EoApplier *a, EoEnvPass *p, EoRecord *rec)
{
	const EoFormat *format = a->map->key_map ? a->map->key_map->format : a->map->format;
	EoEnvScan	s;
	char	   *error;
	int			sqlerrcode;

	if (rec->msg->key == NULL)
		return NULL;
	if (format == &eo_format_json)
	{
		if (!eo_env_scan(p, rec->msg->key, rec->msg->key_len, false, &s, &sqlerrcode, &error))
		{
			if (sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED)
				eo_env_fail(rec, sqlerrcode, psprintf("Kafka key: %s", error));
			return NULL;
		}
		if (s.event == NULL)
			return NULL;
		return eo_env_row(a, p, rec, s.event, s.event_len);
	}
	if (a->map->key_map == NULL || !format->fills(EO_SRC_JSON))
		return NULL;
	return eo_env_row(a, p, rec, rec->msg->key, rec->msg->key_len);
}

/* Has a row decoded by a nested mapping any field of its envelope part? */
static bool
eo_env_has_fields(EoApplier *a, EoRecord *row)
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
static int
eo_env_debezium_decoded(EoApplier *a, EoEnvPass *p, EoRecord *recs, int n, MemoryContext cxt)
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
		if ((op[0] == 'c' || op[0] == 'r' || op[0] == 'u') && !eo_env_has_fields(a, row))
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

/* A decoded key column's bytes, compared to find changes of one key. */
static void
eo_env_datum_bytes(EoColumn *col, const Datum *dp, const char **src, int32 *len)
{
	Datum		d = *dp;

	if (col->typbyval)
	{
		*src = (const char *) dp;
		*len = sizeof(Datum);
	}
	else if (col->typlen == -1)
	{
		*src = VARDATA_ANY(DatumGetPointer(d));
		*len = VARSIZE_ANY_EXHDR(DatumGetPointer(d));
	}
	else if (col->typlen == -2)
	{
		*src = DatumGetCString(d);
		*len = strlen(*src);
	}
	else
	{
		*src = DatumGetPointer(d);
		*len = col->typlen;
	}
}

/*
 * The row's primary key from its decoded values, encoded for comparison;
 * columns the row lacks come from the key row, if any.  Returns the mapping
 * column that has no value, or -1.
 */
static int
eo_env_ident(EoApplier *a, EoChange *ch, EoRecord *keyrow)
{
	EoRecord   *row = ch->row;
	StringInfoData buf;

	initStringInfo(&buf);
	for (int k = 0; k < a->nkeys; k++)
	{
		int			c = a->keys[k];
		const char *src;
		int32		len;

		if ((row->shape[c] != '1' || row->nulls[c]) && keyrow != NULL &&
			keyrow->decoded_ok && keyrow->shape[c] == '1' && !keyrow->nulls[c])
		{
			row->shape[c] = '1';
			row->nulls[c] = false;
			row->datums[c] = keyrow->datums[c];
		}
		if (row->shape[c] != '1' || row->nulls[c])
		{
			pfree(buf.data);
			return c;
		}
		eo_env_datum_bytes(&a->map->columns[c], &row->datums[c], &src, &len);
		appendBinaryStringInfo(&buf, (char *) &len, sizeof(len));
		appendBinaryStringInfo(&buf, src, len);
	}
	ch->ident = buf.data;
	ch->identlen = buf.len;
	return -1;
}

static bool
eo_env_same_key(const EoChange *x, const EoChange *y)
{
	return x->identlen == y->identlen && memcmp(x->ident, y->ident, x->identlen) == 0;
}

/*
 * The changes recs[0..n) make, into a->changes, in cxt (the attempt's
 * memory: a retry makes them again).  Every row is decoded by record.c in
 * one pass; the Kafka keys only for changes whose row lacks a primary key
 * column.  A record that cannot be understood is a dead letter.  Returns the
 * number of subtransactions decoding used.
 */
int
eo_envelope_decode(EoApplier *a, EoRecord *recs, int n, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	EoEnvPass	p;
	EoRecord  **keyrow = palloc0(sizeof(EoRecord *) * Max(n, 1));
	int			nrows;
	int			subxacts;
	int			m = 0;

	p.rows = palloc(sizeof(EoRecord) * 3 * Max(n, 1));
	p.nrows = 0;
	p.changes = palloc(sizeof(EoChange) * 2 * Max(n, 1));
	p.nchanges = 0;
	p.fields.map = eo_env_map();
	p.fields.present = palloc(F_COUNT);
	p.fields.text = palloc(sizeof(char *) * F_COUNT);
	p.fields.len = palloc(sizeof(int) * F_COUNT);
	p.fields.isnull = palloc(sizeof(bool) * F_COUNT);
	p.fields.is_datum = palloc(sizeof(bool) * F_COUNT);
	p.fields.datum = palloc(sizeof(Datum) * F_COUNT);
	p.scratch = AllocSetContextCreate(cxt, "eo_ingest envelope", ALLOCSET_SMALL_SIZES);
	for (int i = 0; i < n; i++)
	{
		EoRecord   *rec = &recs[i];

		rec->decoded_ok = true;
		rec->status = EO_REC_OK;
		rec->next_dup = NULL;
		rec->error = NULL;
		p.event = NULL;
		if (a->after_map != NULL)
			continue;
		if (a->map->envelope == EO_ENV_DEBEZIUM)
			eo_env_debezium(a, &p, rec, i);
		else
			eo_env_upsert(a, &p, rec, i);
	}
	if (a->after_map != NULL)
		subxacts = eo_env_debezium_decoded(a, &p, recs, n, cxt);
	else
		subxacts = eo_record_decode_batch(a->map, p.rows, p.nrows, cxt);

	/* the Kafka keys of the rows that lack a primary key column */
	p.event = NULL;
	nrows = p.nrows;
	for (int i = 0; i < p.nchanges; i++)
	{
		EoChange   *ch = &p.changes[i];

		if (ch->op == EO_OP_TRUNCATE || !ch->row->decoded_ok || ch->rec->status == EO_REC_DEAD ||
			ch->if_key_changed || keyrow[ch->seq] != NULL || eo_env_ident(a, ch, NULL) < 0)
			continue;
		keyrow[ch->seq] = eo_env_key_row(a, &p, ch->rec);
	}
	if (p.nrows > nrows)
		subxacts += eo_record_decode_batch(a->map->key_map ? a->map->key_map : a->map,
										   p.rows + nrows, p.nrows - nrows, cxt);

	for (int i = 0; i < p.nchanges; i++)
	{
		EoChange   *ch = &p.changes[i];
		int			missing;

		if (ch->op == EO_OP_TRUNCATE || ch->rec->status == EO_REC_DEAD)
			continue;
		if (!ch->row->decoded_ok)
		{
			/* an update's unreadable "before" only cannot tell a key change */
			if (!ch->if_key_changed)
				eo_env_fail(ch->rec, ch->row->sqlerrcode, ch->row->error);
			continue;
		}
		if (ch->ident != NULL)
			continue;
		missing = eo_env_ident(a, ch, ch->if_key_changed ? NULL : keyrow[ch->seq]);
		if (missing >= 0 && !ch->if_key_changed)
			eo_env_fail(ch->rec, ERRCODE_NOT_NULL_VIOLATION,
						psprintf("change has no value for primary key column %s",
								 a->map->columns[missing].name));
	}

	/* keep the changes of live records, and an old key's delete if it differs */
	for (int i = 0; i < p.nchanges; i++)
	{
		EoChange   *ch = &p.changes[i];

		if (ch->rec->status == EO_REC_DEAD)
			continue;
		if (ch->if_key_changed &&
			(ch->ident == NULL || !ch->row->decoded_ok || eo_env_same_key(ch, ch + 1)))
			continue;
		p.changes[m++] = *ch;
	}
	MemoryContextDelete(p.scratch);
	a->changes = p.changes;
	a->nchanges = m;
	a->rows = p.rows;
	MemoryContextSwitchTo(old);
	return subxacts;
}
