/*
 * record.c
 *		Decoding a batch's Kafka messages into column values, once per batch
 *		and before the batch transaction locks anything; the table of
 *		formats.
 *
 * The Kafka metadata ($key, $topic, $partition, $offset, $timestamp,
 * $headers) is filled here, the key's fields ($key.<path>) by the key's
 * format, the value by the pipeline's format.  Whatever
 * stops one record from becoming column values (malformed data, a failed
 * cast, a limit, the stack depth of a type's input function: any error that
 * is about the record and not the server) makes that record a dead letter;
 * the rest of the batch goes on.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/int.h"
#include "common/jsonapi.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "compat.h"
#include "json_scan.h"
#include "record.h"

/* The formats: one line each. */
static const EoFormat *const eo_formats[] = {
	&eo_format_json,
	&eo_format_text,
	&eo_format_bytea,
	&eo_format_avro,
};

/*
 * The records decoded last, until their memory context is reset: a retry of
 * the batch does not decode them again.  An envelope decodes records of its
 * own (rows) in another context, once per attempt.
 */
static char *decoded_signature;
static MemoryContext decoded_cxt;
static EoRecord *decoded_recs;
static int	decoded_n;
static int	decoded_subxacts;	/* spent by the parallel decoder: reported once */
static MemoryContext decoded_watched;	/* the last context told to forget
										 * them when reset */

/*
 * Which of a record's sources besides the value a mapping reads, found once
 * per batch: the loops over its columns for them are skipped otherwise.
 */
typedef struct EoDecodeNeeds
{
	bool		meta;			/* $key, $topic, $partition, ... */
	bool		envelope;		/* $op, $source...: a Debezium event's fields */
	bool		epochs;			/* a ts_ms, ts_us or ts_ns into a time column */
} EoDecodeNeeds;

const EoFormat *
eo_format_find(const char *name)
{
	StringInfoData known;

	for (int i = 0; i < lengthof(eo_formats); i++)
		if (strcmp(eo_formats[i]->name, name) == 0)
			return eo_formats[i];
	initStringInfo(&known);
	for (int i = 0; i < lengthof(eo_formats); i++)
		appendStringInfo(&known, "%s%s", i > 0 ? ", " : "", eo_formats[i]->name);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid format \"%s\"", name),
			 errhint("The library knows the formats %s.", known.data)));
	return NULL;				/* keep compiler quiet */
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

static bool
eo_is_time_column(EoColumn *col)
{
	return col->typid == TIMESTAMPTZOID || col->typid == TIMESTAMPOID || col->typid == DATEOID;
}

/* Microseconds since the Unix epoch as timestamptz text. */
static char *
eo_epoch_us_text(int64 us)
{
	TimestampTz ts = us - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	return DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(ts)));
}

static char *
eo_timestamp_text(EoColumn *col, int64 ms)
{
	if (eo_is_time_column(col))
		return eo_epoch_us_text(ms * 1000);
	return psprintf(INT64_FORMAT, ms);
}

/*
 * A Debezium event's fields ($op, $source.lsn, ...) of a JSON event:
 * absent ones are NULL.  (The Avro decoder reads those of Avro events:
 * eo_mapping_nested.)
 */
static bool
eo_record_envelope(EoFields *f, EoRecord *rec)
{
	EoMapping  *map = f->map;
	bool		any = false;

	for (int c = 0; c < map->ncolumns; c++)
		if (map->columns[c].source == EO_SRC_ENVELOPE)
		{
			eo_fields_null(f, c);
			any = true;
		}
	if (!any || rec->envelope == NULL)
		return true;
	if (eo_json_scan_source(f, rec->envelope, rec->envelope + rec->envelope_len,
							EO_SRC_ENVELOPE) != EO_JSON_OK)
		return eo_fields_fail(f, ERRCODE_INVALID_TEXT_REPRESENTATION,
							  "Debezium change event is not valid JSON");
	return true;
}

/*
 * A time since the epoch in a Debezium event (a field named ts_ms, ts_us or
 * ts_ns: EoColumn.epoch_unit) fills a timestamp column with its instant, as
 * $timestamp does: the JSON event's number, or the Avro event's long, which
 * the Avro decoder hands over as text for such a column.
 */
static void
eo_record_epochs(EoFields *f)
{
	EoMapping  *map = f->map;

	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];
		int64		v;
		char	   *end;

		if (col->epoch_unit == 0 || !f->present[c] || f->isnull[c] || f->is_datum[c])
			continue;
		errno = 0;
		v = strtoi64(f->text[c], &end, 10);
		if (errno != 0 || *end != '\0' || end == f->text[c])
			continue;
		if (col->epoch_unit == 'n')
			v /= 1000;
		/* out of range: the text stays, and its cast fails */
		else if (col->epoch_unit == 'm' && pg_mul_s64_overflow(v, 1000, &v))
			continue;
		end = eo_epoch_us_text(v);
		eo_fields_text(f, c, end, strlen(end));
	}
}

/*
 * The key's fields through the key's mapping (key_format).  A key that
 * cannot be decoded makes the record a dead letter; a record without a key
 * has no key fields (their columns get their DEFAULT).
 */
static bool
eo_record_key(EoFields *f, EoRecord *rec)
{
	EoMapping  *km = f->map->key_map;
	EoFields   *kf = f->key;
	rd_kafka_message_t *msg = rec->msg;

	if (msg->key == NULL)
		return true;
	if (km->format == &eo_format_text && !pg_verifymbstr(msg->key, msg->key_len, true))
		return eo_fields_fail(f, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
							  "key is not valid in the database encoding (key_format text)");
	memset(kf->present, 0, km->ncolumns);
	kf->sqlerrcode = 0;
	kf->error = NULL;
	if (!km->format->decode(kf, km->format_state, msg->key, msg->key_len))
		return eo_fields_fail(f, kf->sqlerrcode,
							  psprintf("cannot decode the key as %s: %s", km->format->name, kf->error));
	for (int c = 0; c < km->ncolumns; c++)
	{
		if (!kf->present[c] || f->map->columns[c].source != EO_SRC_KEY_FIELD)
			continue;
		f->present[c] = 1;
		f->isnull[c] = kf->isnull[c];
		f->is_datum[c] = kf->is_datum[c];
		f->text[c] = kf->text[c];
		f->len[c] = kf->len[c];
		f->datum[c] = kf->datum[c];
	}
	return true;
}

/*
 * The Kafka metadata, the key's fields, the Debezium event's, then the value
 * through the format.
 */
static bool
eo_record_fill(EoFields *f, EoRecord *rec, const EoDecodeNeeds *needs)
{
	EoMapping  *map = f->map;
	rd_kafka_message_t *msg = rec->msg;
	bool		ok = true;

	for (int c = 0; needs->meta && c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];
		char	   *v;

		switch (col->source)
		{
			case EO_SRC_JSON:
			case EO_SRC_VALUE:
			case EO_SRC_ENVELOPE:
			case EO_SRC_KEY_FIELD:
			case EO_SRC_NONE:
				continue;
			case EO_SRC_KEY:
				if (!eo_fields_raw(f, c, msg->key, msg->key_len, "key"))
					return false;
				continue;
			case EO_SRC_TOPIC:
				v = map->topic;
				break;
			case EO_SRC_PARTITION:
				v = psprintf("%d", rec->partition);
				break;
			case EO_SRC_OFFSET:
				v = psprintf(INT64_FORMAT, rec->offset);
				break;
			case EO_SRC_TIMESTAMP:
				if (rec->timestamp < 0)
				{
					eo_fields_null(f, c);
					continue;
				}
				v = eo_timestamp_text(col, rec->timestamp);
				break;
			case EO_SRC_HEADERS:
				v = eo_headers_json(msg);
				break;
			default:
				elog(ERROR, "unknown column source %d", col->source);
		}
		eo_fields_text(f, c, v, strlen(v));
	}
	if (map->key_map != NULL && !eo_record_key(f, rec))
		return false;
	if (needs->envelope && !eo_record_envelope(f, rec))
		return false;
	if (!rec->value_override)
		ok = map->format->decode(f, map->format_state, msg->payload, msg->len);
	else if (rec->value != NULL)
		ok = map->format->decode(f, map->format_state, rec->value, rec->value_len);
	if (ok && needs->epochs)
		eo_record_epochs(f);
	return ok;
}

/*
 * Debezium sends json and jsonb columns (io.debezium.data.Json) as a JSON
 * string holding the document: the column gets the document.
 */
static void
eo_record_json_string(const char **text, int *len)
{
	JsonLexContext *lex;

	if (*text == NULL || *len == 0 || (*text)[0] != '"')
		return;
	lex = eo_json_lexer(*text, *len, true);
	if (json_lex(lex) != JSON_SUCCESS || lex->strval == NULL)
		return;
	*text = lex->strval->data;
	*len = lex->strval->len;
}

/*
 * The event id's bytes, compared to find duplicates inside the batch: those
 * of its Datum (a uuid's 16 bytes, not its 36 characters of text), so that
 * an id that came as text and one that came as a Datum (Avro schema
 * versions with different types) compare alike.
 */
void
eo_record_event_id(EoMapping *map, EoRecord *rec, MemoryContext cxt)
{
	int			c = map->id_column;
	EoColumn   *col = &map->columns[c];
	Datum		d = rec->datums[c];

	if (col->typbyval)
	{
		rec->event_id = MemoryContextAlloc(cxt, sizeof(Datum));
		memcpy(rec->event_id, &d, sizeof(Datum));
		rec->event_id_len = sizeof(Datum);
	}
	else if (col->typlen == -1)
	{
		struct varlena *v = (struct varlena *) DatumGetPointer(d);

		if (VARATT_IS_EXTENDED(v) && !VARATT_IS_SHORT(v))
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			v = pg_detoast_datum_packed(v);
			MemoryContextSwitchTo(old);
		}
		rec->event_id = VARDATA_ANY(v);
		rec->event_id_len = VARSIZE_ANY_EXHDR(v);
	}
	else if (col->typlen == -2)
	{
		rec->event_id = DatumGetPointer(d);
		rec->event_id_len = strlen(rec->event_id);
	}
	else
	{
		rec->event_id = DatumGetPointer(d);
		rec->event_id_len = col->typlen;
	}
}

/*
 * Decode rec into column values in cxt; the current memory context is
 * scratch space.  An error the format reports marks the record dead; one
 * raised (by an input function) propagates to eo_record_decode_batch.
 */
static void
eo_record_decode(EoFields *f, const EoDecodeNeeds *needs, EoRecord *rec, MemoryContext cxt)
{
	EoMapping  *map = f->map;
	int			n = map->ncolumns;
	bool		ok;

	memset(f->present, 0, n);
	f->sqlerrcode = 0;
	f->error = NULL;
	rec->decoded_ok = false;
	rec->error = NULL;
	ok = eo_record_fill(f, rec, needs);
	if (ok && map->id_column >= 0 &&
		(!f->present[map->id_column] || f->isnull[map->id_column]))
		ok = eo_fields_fail(f, ERRCODE_NOT_NULL_VIOLATION, "record has no event id");
	if (!ok)
	{
		rec->sqlerrcode = f->sqlerrcode;
		rec->error = MemoryContextStrdup(cxt, f->error);
		return;
	}

	/* one chunk: the datums, then the nulls and the shape */
	rec->datums = MemoryContextAlloc(cxt, sizeof(Datum) * n + n + n + 1);
	rec->nulls = (bool *) (rec->datums + n);
	rec->shape = (char *) (rec->nulls + n);
	rec->shape[n] = '\0';
	for (int c = 0; c < n; c++)
	{
		EoColumn   *col = &map->columns[c];
		Datum		d;

		rec->shape[c] = f->present[c] ? '1' : '0';
		rec->datums[c] = (Datum) 0;
		rec->nulls[c] = true;
		if (!f->present[c])
			continue;
		if (f->is_datum[c])
		{
			if (f->isnull[c])
				continue;
			d = f->datum[c];
			if (!col->typbyval && f->is_datum[c] != EO_DATUM_KEPT)
			{
				MemoryContext old = MemoryContextSwitchTo(cxt);

				d = datumCopy(d, col->typbyval, col->typlen);
				MemoryContextSwitchTo(old);
			}
		}
		else
		{
			if (rec->json_strings && col->json_raw && !f->isnull[c])
				eo_record_json_string(&f->text[c], &f->len[c]);
			d = eo_text_datum(col, f->text[c], f->len[c], f->isnull[c], cxt);
			if (f->isnull[c])
				continue;
		}
		rec->datums[c] = d;
		rec->nulls[c] = false;
	}
	if (map->id_column >= 0)
		eo_record_event_id(map, rec, cxt);
	rec->decoded_ok = true;
}

/*
 * Errors about the server rather than the record abort the batch even while
 * decoding: out of memory or disk (class 53), a cancel or shutdown (57), an
 * I/O error (58).
 */
bool
eo_record_error_is_records(int sqlerrcode)
{
	int			category = ERRCODE_TO_CATEGORY(sqlerrcode);

	return category != ERRCODE_INSUFFICIENT_RESOURCES &&
		category != ERRCODE_OPERATOR_INTERVENTION &&
		category != ERRCODE_SYSTEM_ERROR;
}

/* "message: detail", the error a dead letter keeps */
char *
eo_error_text(ErrorData *edata)
{
	return edata->detail ? psprintf("%s: %s", edata->message, edata->detail)
		: pstrdup(edata->message);
}

static void
eo_decoded_forget(void *arg)
{
	if (decoded_cxt == (MemoryContext) arg)
	{
		decoded_signature = NULL;
		decoded_cxt = NULL;
	}
	if (decoded_watched == (MemoryContext) arg)
		decoded_watched = NULL;
}

/* forget the decoded records when cxt is reset */
static void
eo_decoded_watch(MemoryContext cxt)
{
	MemoryContextCallback *cb;

	if (decoded_watched == cxt)
		return;
	cb = MemoryContextAllocZero(cxt, sizeof(MemoryContextCallback));
	cb->func = eo_decoded_forget;
	cb->arg = cxt;
	MemoryContextRegisterResetCallback(cxt, cb);
	decoded_watched = cxt;
}

/*
 * Run fn(arg) in a subtransaction.  Returns NULL if it succeeded; else the
 * subtransaction is rolled back and its error returned, copied into the
 * caller's memory context.
 */
ErrorData *
eo_subxact_run(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}

typedef struct EoDecodeRun
{
	EoFields	f;
	EoDecodeNeeds needs;
	EoRecord   *recs;
	int			next;			/* the record being decoded */
	int			n;
	MemoryContext cxt;			/* the batch's */
	MemoryContext scratch;		/* one record's */
} EoDecodeRun;

static void
eo_decode_run(void *arg)
{
	EoDecodeRun *run = arg;
	MemoryContext old = MemoryContextSwitchTo(run->scratch);

	for (; run->next < run->n; run->next++)
	{
		CHECK_FOR_INTERRUPTS();
		eo_record_decode(&run->f, &run->needs, &run->recs[run->next], run->cxt);
		MemoryContextReset(run->scratch);
	}
	MemoryContextSwitchTo(old);
}

/* input functions and domain checks are user code: pin search_path */
static void
eo_decode_run_pinned(void *arg)
{
	eo_catalog_run_pinned(eo_decode_run, arg, false);
}

/*
 * Decode recs[0..n) into cxt, the batch's memory context, unless these
 * records were decoded already for an equal mapping (a retry).  All are
 * decoded in one subtransaction; an error raised while decoding one ends it,
 * makes that record a dead letter and decoding goes on after it in a new
 * subtransaction.  Returns the number of subtransactions used.
 */
int
eo_record_decode_batch(EoMapping *map, EoRecord *recs, int n, MemoryContext cxt)
{
	EoDecodeRun run;
	int			subxacts = 0;
	int			nc = Max(map->ncolumns, 1);

	if (decoded_signature != NULL && decoded_cxt == cxt && decoded_recs == recs &&
		decoded_n == n && strcmp(decoded_signature, map->signature) == 0)
	{
		subxacts = decoded_subxacts;
		decoded_subxacts = 0;
		return subxacts;
	}
	eo_decoded_watch(cxt);
	decoded_signature = NULL;

	memset(&run.needs, 0, sizeof(run.needs));
	for (int c = 0; c < map->ncolumns; c++)
	{
		EoSource	src = map->columns[c].source;

		if (src == EO_SRC_ENVELOPE)
			run.needs.envelope = true;
		else if (src != EO_SRC_JSON && src != EO_SRC_VALUE && src != EO_SRC_KEY_FIELD &&
				 src != EO_SRC_NONE)
			run.needs.meta = true;
		if (map->columns[c].epoch_unit != 0)
			run.needs.epochs = true;
	}
	run.f.map = map;
	run.f.present = MemoryContextAlloc(cxt, nc);
	run.f.text = MemoryContextAlloc(cxt, sizeof(char *) * nc);
	run.f.len = MemoryContextAlloc(cxt, sizeof(int) * nc);
	run.f.isnull = MemoryContextAlloc(cxt, sizeof(bool) * nc);
	run.f.is_datum = MemoryContextAlloc(cxt, nc);
	run.f.datum = MemoryContextAlloc(cxt, sizeof(Datum) * nc);
	run.f.cxt = cxt;
	run.f.arena = run.f.arena_end = NULL;
	run.f.key = NULL;
	if (map->key_map != NULL)
	{
		EoFields   *kf = MemoryContextAllocZero(cxt, sizeof(EoFields));

		kf->map = map->key_map;
		kf->present = MemoryContextAlloc(cxt, nc);
		kf->text = MemoryContextAlloc(cxt, sizeof(char *) * nc);
		kf->len = MemoryContextAlloc(cxt, sizeof(int) * nc);
		kf->isnull = MemoryContextAlloc(cxt, sizeof(bool) * nc);
		kf->is_datum = MemoryContextAlloc(cxt, nc);
		kf->datum = MemoryContextAlloc(cxt, sizeof(Datum) * nc);
		kf->cxt = cxt;
		kf->arena = kf->arena_end = NULL;
		run.f.key = kf;
	}
	run.recs = recs;
	run.next = 0;
	run.n = n;
	run.cxt = cxt;
	run.scratch = AllocSetContextCreate(cxt, "eo_ingest decode", ALLOCSET_DEFAULT_SIZES);

	while (run.next < n)
	{
		ErrorData  *edata;
		EoRecord   *rec;
		MemoryContext old;

		subxacts++;
		edata = eo_subxact_run(eo_decode_run_pinned, &run);
		if (edata == NULL)
			break;
		/* the record whose decoding raised the error */
		rec = &recs[run.next];
		if (!eo_record_error_is_records(edata->sqlerrcode))
			ReThrowError(edata);
		rec->decoded_ok = false;
		rec->sqlerrcode = edata->sqlerrcode;
		old = MemoryContextSwitchTo(cxt);
		rec->error = eo_error_text(edata);
		MemoryContextSwitchTo(old);
		FreeErrorData(edata);
		MemoryContextReset(run.scratch);
		run.next++;
	}
	MemoryContextDelete(run.scratch);
	eo_record_decoded_by(map, recs, n, cxt, 0);
	return subxacts;
}

/*
 * Remember that recs[0..n) were decoded into cxt for map, here or by the
 * parallel decoder (decoder.c), which spent subxacts subtransactions on
 * them: eo_record_decode_batch then returns at once, with subxacts the
 * first time.
 */
void
eo_record_decoded_by(EoMapping *map, EoRecord *recs, int n, MemoryContext cxt, int subxacts)
{
	eo_decoded_watch(cxt);
	decoded_signature = MemoryContextStrdup(cxt, map->signature);
	decoded_cxt = cxt;
	decoded_recs = recs;
	decoded_n = n;
	decoded_subxacts = subxacts;
}

/*
 * The end of the run of records of recs[idx[start]]'s shape, at most hi;
 * hi at once when the caller knows they have one shape (one_shape).
 */
int
eo_shape_run_end(EoRecord *recs, const int *idx, int start, int hi, bool one_shape)
{
	int			end = start + 1;

	if (one_shape)
		return hi;

	while (end < hi && strcmp(recs[idx[end]].shape, recs[idx[start]].shape) == 0)
		end++;
	return end;
}
