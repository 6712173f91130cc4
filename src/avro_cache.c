/*
 * avro_cache.c
 *		A pipeline worker's writer schemas by id, the catalog table that
 *		keeps them (eo_ingest.avro_schemas), and the Avro decoder entry: from
 *		a Kafka value in the Confluent wire format (or plain Avro binary with
 *		the pipeline's inline schema) to the record's column values.
 *
 * Before each batch transaction the worker asks which schema ids its batch
 * uses that this process has not compiled yet, reads them from the catalog
 * table in a short transaction, fetches the rest from the registry with no
 * transaction open, and stores what it fetched.  Replays, restarts, failover
 * and restores therefore need the registry only for ids never seen.  The
 * batch transaction itself never waits on the network.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "avro_format.h"
#include "catalog.h"
#include "kafka.h"

#define EO_AVRO_PREFIX "schema.registry."

typedef struct EoSchemaEntry
{
	int32		id;				/* hash key */
	EoAvroNode *root;			/* NULL: unusable, see error */
	char	   *error;
	char	   *pending;		/* fetched text, not yet compiled and stored */
} EoSchemaEntry;

static MemoryContext eo_cache_cxt = NULL;	/* entries; reset on a new registry */
static MemoryContext eo_conf_cxt = NULL;	/* registry settings, inline schema */
static HTAB *eo_schemas = NULL;
static EoSchemaEntry *eo_last_entry[2];	/* of the last value, of the last key */
static char *eo_registry = NULL;	/* identity of the cached ids */
static EoRegistryConf eo_conf;
static EoAvroNode *eo_inline = NULL;
static bool eo_key_wire = false;	/* Avro keys in the Confluent wire format */
static EoAvroNode *eo_key_inline = NULL;	/* key_avro_schema */

static const char *const eo_registry_options[] = {
	"user", "password", "ssl.ca.location", "ssl.certificate.location",
	"ssl.key.location", "ssl.key.password",
	"ssl.endpoint.identification.algorithm", "request.timeout.ms"
};

/*
 * Is key a schema registry setting carried in kafka_options?  *known says
 * whether eo_ingest knows it (an unknown one is an error, like a misspelled
 * librdkafka property).
 */
bool
eo_avro_registry_option(const char *key, bool *known)
{
	if (pg_strncasecmp(key, EO_AVRO_PREFIX, strlen(EO_AVRO_PREFIX)) != 0)
		return false;
	*known = false;
	for (int i = 0; i < lengthof(eo_registry_options); i++)
		if (strcmp(key + strlen(EO_AVRO_PREFIX), eo_registry_options[i]) == 0)
			*known = true;
	return true;
}

static char *
eo_option(Jsonb *options, const char *name)
{
	char	   *key = psprintf(EO_AVRO_PREFIX "%s", name);
	JsonbValue *v;

	if (options == NULL || !JB_ROOT_IS_OBJECT(options))
		return NULL;
	v = getKeyJsonValueFromContainer(&options->root, key, strlen(key), NULL);
	if (v == NULL)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return NULL;
}

static void
eo_cache_reset(const char *registry)
{
	HASHCTL		ctl = {0};

	if (eo_cache_cxt == NULL)
		eo_cache_cxt = AllocSetContextCreate(TopMemoryContext, "eo_ingest Avro schemas",
											 ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(eo_cache_cxt);
	eo_last_entry[0] = eo_last_entry[1] = NULL;
	ctl.keysize = sizeof(int32);
	ctl.entrysize = sizeof(EoSchemaEntry);
	ctl.hcxt = eo_cache_cxt;
	eo_schemas = hash_create("eo_ingest Avro schemas", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	eo_registry = registry ? MemoryContextStrdup(eo_cache_cxt, registry) : NULL;
}

/*
 * Take a (re)loaded configuration.  Cached schemas stay while the registry
 * stays the same: ids are the registry's.  With key_avro, keys are Avro
 * too: plain Avro binary of key_schema if given, else in the wire format.
 */
void
eo_avro_configure(const char *registry, const char *inline_schema, bool key_avro,
				  const char *key_schema, Jsonb *options)
{
	MemoryContext old;
	char	   *timeout;
	char	   *algo;

	if (eo_conf_cxt == NULL)
		eo_conf_cxt = AllocSetContextCreate(TopMemoryContext, "eo_ingest Avro settings",
											ALLOCSET_SMALL_SIZES);
	MemoryContextReset(eo_conf_cxt);
	memset(&eo_conf, 0, sizeof(eo_conf));
	eo_inline = NULL;
	eo_key_inline = NULL;
	eo_key_wire = key_avro && key_schema == NULL && registry != NULL;
	if (eo_schemas == NULL || registry == NULL || eo_registry == NULL ||
		strcmp(registry, eo_registry) != 0)
		eo_cache_reset(registry);

	old = MemoryContextSwitchTo(eo_conf_cxt);
	if (registry != NULL)
	{
		char	   *list = pstrdup(registry);
		char	   *tok;
		char	   *save = NULL;

		eo_conf.urls = palloc(sizeof(char *) * (strlen(list) / 2 + 1));
		for (tok = strtok_r(list, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save))
			eo_conf.urls[eo_conf.nurls++] = tok;
	}
	eo_conf.user = eo_option(options, "user");
	eo_conf.password = eo_option(options, "password");
	eo_conf.ca_location = eo_option(options, "ssl.ca.location");
	eo_conf.cert_location = eo_option(options, "ssl.certificate.location");
	eo_conf.key_location = eo_option(options, "ssl.key.location");
	eo_conf.key_password = eo_option(options, "ssl.key.password");
	algo = eo_option(options, "ssl.endpoint.identification.algorithm");
	eo_conf.verify_host = algo == NULL || pg_strcasecmp(algo, "none") != 0;
	timeout = eo_option(options, "request.timeout.ms");
	eo_conf.timeout_ms = timeout ? strtol(timeout, NULL, 10) : 10000;
	if (eo_conf.timeout_ms <= 0)
		eo_conf.timeout_ms = 10000;
	if (inline_schema != NULL)
		eo_inline = eo_avro_compile(inline_schema, eo_conf_cxt);
	if (key_avro && key_schema != NULL)
		eo_key_inline = eo_avro_compile(key_schema, eo_conf_cxt);
	MemoryContextSwitchTo(old);
}

/* The schema id of a value or key in the Confluent wire format, if it has one. */
static bool
eo_wire_id(const void *data, size_t len, int32 *id)
{
	const unsigned char *p = data;

	if (p == NULL || len < 5 || p[0] != 0)
		return false;
	*id = (int32) (((uint32) p[1] << 24) | ((uint32) p[2] << 16) |
				   ((uint32) p[3] << 8) | (uint32) p[4]);
	return true;
}

/* The distinct ids of recs that this process has no entry for. */
int
eo_avro_missing_ids(EoRecord *recs, int n, int32 **ids)
{
	int			nids = 0;
	int32		known[2] = {0, 0};	/* the last id found, of values and keys */
	bool		any[2] = {false, false};

	*ids = NULL;
	if (eo_conf.nurls == 0)
		return 0;
	for (int i = 0; i < n * 2; i++)
	{
		rd_kafka_message_t *msg = recs[i / 2].msg;
		int32		id;
		bool		seen = false;

		/* the value's id, then the key's */
		if (i % 2 == 0 ? !eo_wire_id(msg->payload, msg->len, &id) :
			(!eo_key_wire || !eo_wire_id(msg->key, msg->key_len, &id)))
			continue;
		if (any[i % 2] && known[i % 2] == id)
			continue;
		if (hash_search(eo_schemas, &id, HASH_FIND, NULL) != NULL)
		{
			known[i % 2] = id;
			any[i % 2] = true;
			continue;
		}
		for (int k = 0; k < nids && !seen; k++)
			seen = (*ids)[k] == id;
		if (seen)
			continue;
		if (*ids == NULL)
			*ids = palloc(sizeof(int32) * n * 2);
		(*ids)[nids++] = id;
	}
	return nids;
}

/*
 * Compile an entry's schema in a subtransaction: a schema the registry
 * holds but we cannot read makes its records dead letters, and must not
 * abort the caller's transaction.
 */
static void
eo_entry_compile(EoSchemaEntry *e, const char *text)
{
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(old);
	PG_TRY();
	{
		e->root = eo_avro_compile(text, eo_cache_cxt);
		e->error = NULL;
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		e->root = NULL;
		e->error = MemoryContextStrdup(eo_cache_cxt,
									   psprintf("schema id %d: %s: %s", e->id, edata->message,
												edata->detail ? edata->detail : ""));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	CurrentResourceOwner = owner;
}

/* In a transaction: compile the ids the catalog table already holds. */
void
eo_avro_load_catalog(const int32 *ids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	Oid			argtypes[2] = {TEXTOID, INT4ARRAYOID};
	Datum		args[2];
	int			ret;
	SPITupleTable *tab;
	uint64		nrows;

	if (n == 0 || eo_registry == NULL)
		return;
	for (int i = 0; i < n; i++)
		elems[i] = Int32GetDatum(ids[i]);
	args[0] = CStringGetTextDatum(eo_registry);
	args[1] = PointerGetDatum(construct_array(elems, n, INT4OID, 4, true, TYPALIGN_INT));
	ret = SPI_execute_with_args("SELECT id, schema FROM eo_ingest.avro_schemas "
								"WHERE registry = $1 AND id = ANY ($2)",
								2, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading eo_ingest.avro_schemas failed: %s", SPI_result_code_string(ret));
	tab = SPI_tuptable;
	nrows = SPI_processed;
	for (uint64 i = 0; i < nrows; i++)
	{
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(tab->vals[i], tab->tupdesc, 1, &isnull));
		char	   *text = SPI_getvalue(tab->vals[i], tab->tupdesc, 2);
		EoSchemaEntry *e = hash_search(eo_schemas, &id, HASH_ENTER, NULL);

		e->pending = NULL;
		eo_entry_compile(e, text);
	}
}

/*
 * With no transaction open: fetch the ids still unknown from the registry.
 * EO_AVRO_RETRY when it cannot be reached or abandon(abandon_arg) said to
 * give up (err says why; what was fetched is kept), EO_AVRO_FAILED when it
 * is no registry or refuses us.
 */
EoAvroReady
eo_avro_fetch(const int32 *ids, int n, bool (*abandon) (void *arg), void *abandon_arg,
			  char *err, size_t errlen)
{
	eo_conf.abandon = abandon;
	eo_conf.abandon_arg = abandon_arg;
	for (int i = 0; i < n; i++)
	{
		int32		id = ids[i];
		EoSchemaEntry *e = hash_search(eo_schemas, &id, HASH_FIND, NULL);
		char	   *text = NULL;
		char		why[512];

		if (e != NULL)
			continue;
		switch (eo_registry_fetch(&eo_conf, id, &text, why, sizeof(why)))
		{
			case EO_REGISTRY_FOUND:
				e = hash_search(eo_schemas, &id, HASH_ENTER, NULL);
				e->root = NULL;
				e->error = NULL;
				e->pending = MemoryContextStrdup(eo_cache_cxt, text);
				break;
			case EO_REGISTRY_UNKNOWN_ID:
				e = hash_search(eo_schemas, &id, HASH_ENTER, NULL);
				e->root = NULL;
				e->pending = NULL;
				e->error = MemoryContextStrdup(eo_cache_cxt, why);
				break;
			case EO_REGISTRY_UNREACHABLE:
				snprintf(err, errlen, "%s", why);
				return EO_AVRO_RETRY;
			case EO_REGISTRY_BROKEN:
				snprintf(err, errlen, "%s", why);
				return EO_AVRO_FAILED;
		}
	}
	return EO_AVRO_READY;
}

/* In a transaction: compile what was fetched and keep it in the catalog. */
void
eo_avro_store_catalog(void)
{
	HASH_SEQ_STATUS seq;
	EoSchemaEntry *e;

	hash_seq_init(&seq, eo_schemas);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		Oid			argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
		Datum		args[3];

		if (e->pending == NULL)
			continue;
		eo_entry_compile(e, e->pending);
		if (e->root != NULL)
		{
			args[0] = CStringGetTextDatum(eo_registry);
			args[1] = Int32GetDatum(e->id);
			args[2] = CStringGetTextDatum(e->pending);
			if (eo_catalog_execute("INSERT INTO eo_ingest.avro_schemas (registry, id, schema) "
								   "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
								   3, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "inserting into eo_ingest.avro_schemas failed");
		}
		pfree(e->pending);
		e->pending = NULL;
	}
}

/*
 * Decode one Kafka value (or key, for the key's mapping) into sink.  A value
 * that cannot be decoded returns false with the SQLSTATE and reason of its
 * dead letter.
 */
bool
eo_avro_value(EoFields *f, const char *data, size_t len, int *sqlerrcode, char **error)
{
	EoMapping  *map = f->map;
	EoAvroNode *schema = map->is_key ? eo_key_inline : eo_inline;
	bool		wire = map->is_key ? eo_key_wire : eo_conf.nurls > 0;
	const char *what = map->is_key ? "key" : "value";

	*sqlerrcode = ERRCODE_INVALID_BINARY_REPRESENTATION;
	if (data == NULL)
	{
		*sqlerrcode = ERRCODE_NULL_VALUE_NOT_ALLOWED;
		*error = pstrdup("record has no value (tombstone)");
		return false;
	}
	if (wire)
	{
		const unsigned char *p = (const unsigned char *) data;
		int32		id;
		EoSchemaEntry *e;

		if (len < 5)
		{
			*error = psprintf("%s has %d bytes, fewer than the 5 of the Confluent wire format header",
							  what, (int) len);
			return false;
		}
		if (p[0] != 0)
		{
			*error = psprintf("%s starts with byte 0x%02x, not the Confluent wire format's magic byte 0x00",
							  what, p[0]);
			return false;
		}
		id = (int32) (((uint32) p[1] << 24) | ((uint32) p[2] << 16) |
					  ((uint32) p[3] << 8) | (uint32) p[4]);
		/* the records of a topic nearly all have the schema of the one before */
		e = eo_last_entry[map->is_key];
		if (e == NULL || e->id != id)
			e = eo_last_entry[map->is_key] = hash_search(eo_schemas, &id, HASH_FIND, NULL);
		/* not a dead letter: the batch is retried after fetching */
		if (e == NULL || e->pending != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("Avro schema id %d was not fetched before the batch", id)));
		if (e->root == NULL)
		{
			*sqlerrcode = ERRCODE_INVALID_PARAMETER_VALUE;
			*error = pstrdup(e->error);
			return false;
		}
		schema = e->root;
		data += 5;
		len -= 5;
	}
	if (schema == NULL)
		elog(ERROR, "Avro pipeline has neither a schema registry nor a %s schema", what);
	return eo_avro_decode(f, schema, data, len, sqlerrcode, error);
}
