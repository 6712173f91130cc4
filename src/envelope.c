/*
 * envelope.c
 *		From one Kafka record of a change stream to the changes it makes:
 *		Debezium change events (read by debezium.c) and upsert topics (the
 *		key identifies the row, the value is the row, a null value deletes
 *		it).
 *
 * Each row is a record of its own, decoded into column values by record.c
 * like any record.  A row is identified by the decoded values of the
 * target's primary key: its columns come from the row, and where the row
 * lacks them, from the Kafka key: decoded by key_format, its fields mapped
 * like the row's (by name or path) or by $key.<path>; without key_format, a
 * JSON object key (wrapped or not) of a JSON pipeline.  Any other key is
 * mapped like any column, columns => {"id": "$key"}.  A record that cannot
 * be understood becomes a dead letter.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/memutils.h"

#include "envelope.h"

/* rec is a dead letter: sqlerrcode, error */
void
eo_env_fail(EoRecord *rec, int sqlerrcode, const char *error)
{
	rec->decoded_ok = false;
	rec->status = EO_REC_DEAD;
	rec->sqlerrcode = sqlerrcode;
	rec->error = pstrdup(error);
}

/* A row of rec to decode: json, a part of its value, or no value at all. */
EoRecord *
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

/* A change of rec, seq its place in the batch; row NULL for a truncate. */
EoChange *
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
	const char *object;
	size_t		object_len;
	char	   *error;
	int			sqlerrcode;

	if (rec->msg->key == NULL)
		return NULL;
	if (format == &eo_format_json)
	{
		if (!eo_dbz_unwrap(p, rec->msg->key, rec->msg->key_len, &object, &object_len,
						   &sqlerrcode, &error))
		{
			if (sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED)
				eo_env_fail(rec, sqlerrcode, psprintf("Kafka key: %s", error));
			return NULL;
		}
		if (object == NULL)
			return NULL;
		return eo_env_row(a, p, rec, object, object_len);
	}
	if (a->map->key_map == NULL || !format->fills(EO_SRC_JSON))
		return NULL;
	return eo_env_row(a, p, rec, rec->msg->key, rec->msg->key_len);
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
	eo_dbz_prepare(&p);
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
			eo_dbz_json(a, &p, rec, i);
		else
			eo_env_upsert(a, &p, rec, i);
	}
	if (a->after_map != NULL)
		subxacts = eo_dbz_decoded(a, &p, recs, n, cxt);
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
