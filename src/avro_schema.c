/*
 * avro_schema.c
 *		A writer schema's JSON compiled into the tree the decoder walks.
 *
 * Apache Avro C validates the schema first, so a schema it rejects is
 * refused with its message.  Avro C 1.11 keeps no logical types, though, and
 * its schema walk costs a lookup per field, so the tree the decoder uses is
 * built here from the JSON: named types resolved (recursion included),
 * logical types kept.  A schema nested deeper than any real one is refused
 * first, as the parsers recurse.  Avro C's allocations go to a memory context of their
 * own, so that nothing it keeps escapes PostgreSQL's accounting.
 */
#include "postgres.h"

#include <avro.h>

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "avro_format.h"
#include "json_scan.h"

/* types in types: records in fields, items, values, union branches */
#define EO_AVRO_MAX_DEPTH 64

/*
 * JSON containers in a schema's text.  jansson, Avro C and jsonb_in recurse
 * over it, so a deeper text is refused before they see it; a schema within
 * EO_AVRO_MAX_DEPTH (at most three containers a type, and defaults) is far
 * below this.
 */
#define EO_AVRO_MAX_JSON_NESTING 512

typedef struct EoSchemaBuild
{
	MemoryContext cxt;
	int			nnamed;
	int			maxnamed;
	EoAvroNode **named;
} EoSchemaBuild;

static MemoryContext eo_avro_lib_cxt = NULL;

/* avro_allocator_t: realloc semantics; NULL on failure, never an ereport */
static void *
eo_avro_lib_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	void	   *new;

	if (nsize == 0)
	{
		if (ptr != NULL)
			pfree(ptr);
		return NULL;
	}
	new = MemoryContextAllocExtended(eo_avro_lib_cxt, nsize, MCXT_ALLOC_NO_OOM);
	if (new != NULL && ptr != NULL)
	{
		memcpy(new, ptr, Min(osize, nsize));
		pfree(ptr);
	}
	return new;
}

static void
eo_avro_lib_init(void)
{
	if (eo_avro_lib_cxt != NULL)
		return;
	eo_avro_lib_cxt = AllocSetContextCreate(TopMemoryContext, "eo_ingest Avro C",
											ALLOCSET_SMALL_SIZES);
	avro_set_allocator(eo_avro_lib_alloc, NULL);
}

static void
eo_schema_error(const char *fmt, const char *arg)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid Avro schema"),
			 errdetail(fmt, arg)));
}

static char *
eo_get_string(JsonbContainer *obj, const char *key)
{
	JsonbValue	buf;
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), &buf);

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static JsonbValue *
eo_get(JsonbContainer *obj, const char *key)
{
	return getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
}

static char *
eo_full_name(const char *name, const char *ns)
{
	if (strchr(name, '.') != NULL || ns == NULL || ns[0] == '\0')
		return pstrdup(name);
	return psprintf("%s.%s", ns, name);
}

static EoAvroNode *
eo_find_named(EoSchemaBuild *b, const char *name, const char *ns)
{
	char	   *full = eo_full_name(name, ns);

	for (int i = 0; i < b->nnamed; i++)
		if (strcmp(b->named[i]->name, full) == 0 || strcmp(b->named[i]->name, name) == 0)
			return b->named[i];
	return NULL;
}

static void
eo_add_named(EoSchemaBuild *b, EoAvroNode *node)
{
	if (b->nnamed == b->maxnamed)
	{
		b->maxnamed = Max(8, b->maxnamed * 2);
		b->named = b->named ? repalloc(b->named, sizeof(EoAvroNode *) * b->maxnamed) :
			palloc(sizeof(EoAvroNode *) * b->maxnamed);
	}
	b->named[b->nnamed++] = node;
}

static EoAvroType
eo_primitive(const char *t, bool *ok)
{
	static const struct
	{
		const char *name;
		EoAvroType	type;
	}			prims[] = {
		{"null", EO_AVRO_NULL}, {"boolean", EO_AVRO_BOOLEAN}, {"int", EO_AVRO_INT},
		{"long", EO_AVRO_LONG}, {"float", EO_AVRO_FLOAT}, {"double", EO_AVRO_DOUBLE},
		{"bytes", EO_AVRO_BYTES}, {"string", EO_AVRO_STRING}
	};

	*ok = true;
	for (int i = 0; i < lengthof(prims); i++)
		if (strcmp(t, prims[i].name) == 0)
			return prims[i].type;
	*ok = false;
	return EO_AVRO_NULL;
}

/* The logical type, where the spec allows it on the node's type. */
static void
eo_logical(EoAvroNode *node, JsonbContainer *obj)
{
	char	   *lt = eo_get_string(obj, "logicalType");
	EoAvroType t = node->type;

	if (lt == NULL)
		return;
	if (strcmp(lt, "decimal") == 0 && (t == EO_AVRO_BYTES || t == EO_AVRO_FIXED))
	{
		JsonbValue *s = eo_get(obj, "scale");

		node->logical = EO_AVRO_DECIMAL;
		node->scale = 0;
		if (s != NULL && s->type == jbvNumeric)
			node->scale = DatumGetInt32(DirectFunctionCall1(numeric_int4,
															NumericGetDatum(s->val.numeric)));
		if (node->scale < 0 || node->scale > 1000)
			eo_schema_error("A decimal's scale must be between 0 and 1000, not %s.",
							psprintf("%d", node->scale));
	}
	else if (strcmp(lt, "uuid") == 0 &&
			 (t == EO_AVRO_STRING || (t == EO_AVRO_FIXED && node->size == 16)))
		node->logical = EO_AVRO_UUID;
	else if (strcmp(lt, "date") == 0 && t == EO_AVRO_INT)
		node->logical = EO_AVRO_DATE;
	else if (strcmp(lt, "time-millis") == 0 && t == EO_AVRO_INT)
		node->logical = EO_AVRO_TIME_MILLIS;
	else if (strcmp(lt, "time-micros") == 0 && t == EO_AVRO_LONG)
		node->logical = EO_AVRO_TIME_MICROS;
	else if (strcmp(lt, "timestamp-millis") == 0 && t == EO_AVRO_LONG)
		node->logical = EO_AVRO_TIMESTAMP_MILLIS;
	else if (strcmp(lt, "timestamp-micros") == 0 && t == EO_AVRO_LONG)
		node->logical = EO_AVRO_TIMESTAMP_MICROS;
	else if (strcmp(lt, "local-timestamp-millis") == 0 && t == EO_AVRO_LONG)
		node->logical = EO_AVRO_LOCAL_TIMESTAMP_MILLIS;
	else if (strcmp(lt, "local-timestamp-micros") == 0 && t == EO_AVRO_LONG)
		node->logical = EO_AVRO_LOCAL_TIMESTAMP_MICROS;
}

static EoAvroNode *eo_build(EoSchemaBuild *b, JsonbValue *v, const char *ns, int depth);

static EoAvroNode *
eo_build_object(EoSchemaBuild *b, JsonbContainer *obj, const char *ns, int depth)
{
	JsonbValue *tv = eo_get(obj, "type");
	EoAvroNode *node = palloc0(sizeof(EoAvroNode));
	char	   *t;
	bool		prim;

	if (tv == NULL)
		eo_schema_error("%s", "A schema object has no \"type\".");
	if (tv->type != jbvString)
	{
		/* {"type": {...}} or {"type": [...]}: the inner schema, annotations dropped */
		return eo_build(b, tv, ns, depth + 1);
	}
	t = pnstrdup(tv->val.string.val, tv->val.string.len);
	node->type = eo_primitive(t, &prim);
	if (prim)
	{
		eo_logical(node, obj);
		return node;
	}
	if (strcmp(t, "record") == 0 || strcmp(t, "enum") == 0 || strcmp(t, "fixed") == 0)
	{
		char	   *name = eo_get_string(obj, "name");
		char	   *space = eo_get_string(obj, "namespace");

		if (name == NULL)
			eo_schema_error("A %s has no name.", t);
		if (space == NULL && strchr(name, '.') == NULL)
			space = (char *) ns;
		node->name = eo_full_name(name, space);
		if (strchr(node->name, '.') != NULL)
			space = pnstrdup(node->name, strrchr(node->name, '.') - node->name);
		eo_add_named(b, node);

		if (strcmp(t, "record") == 0)
		{
			JsonbValue *fv = eo_get(obj, "fields");
			JsonbContainer *fields;

			node->type = EO_AVRO_RECORD;
			if (fv == NULL || fv->type != jbvBinary || !JsonContainerIsArray(fv->val.binary.data))
				eo_schema_error("Record \"%s\" has no array of fields.", node->name);
			fields = fv->val.binary.data;
			node->nchildren = JsonContainerSize(fields);
			node->children = palloc0(sizeof(EoAvroNode *) * Max(node->nchildren, 1));
			node->names = palloc0(sizeof(char *) * Max(node->nchildren, 1));
			for (int i = 0; i < node->nchildren; i++)
			{
				JsonbValue *f = getIthJsonbValueFromContainer(fields, i);
				JsonbValue *ft;

				if (f->type != jbvBinary || !JsonContainerIsObject(f->val.binary.data))
					eo_schema_error("A field of record \"%s\" is not an object.", node->name);
				node->names[i] = eo_get_string(f->val.binary.data, "name");
				ft = eo_get(f->val.binary.data, "type");
				if (node->names[i] == NULL || ft == NULL)
					eo_schema_error("A field of record \"%s\" has no name or no type.", node->name);
				node->children[i] = eo_build(b, ft, space, depth + 1);
			}
		}
		else if (strcmp(t, "enum") == 0)
		{
			JsonbValue *sv = eo_get(obj, "symbols");
			JsonbContainer *syms;

			node->type = EO_AVRO_ENUM;
			if (sv == NULL || sv->type != jbvBinary || !JsonContainerIsArray(sv->val.binary.data))
				eo_schema_error("Enum \"%s\" has no array of symbols.", node->name);
			syms = sv->val.binary.data;
			node->nsymbols = JsonContainerSize(syms);
			node->names = palloc0(sizeof(char *) * Max(node->nsymbols, 1));
			for (int i = 0; i < node->nsymbols; i++)
			{
				JsonbValue *s = getIthJsonbValueFromContainer(syms, i);

				if (s->type != jbvString)
					eo_schema_error("A symbol of enum \"%s\" is not a string.", node->name);
				node->names[i] = pnstrdup(s->val.string.val, s->val.string.len);
			}
		}
		else
		{
			JsonbValue *sz = eo_get(obj, "size");

			node->type = EO_AVRO_FIXED;
			if (sz == NULL || sz->type != jbvNumeric)
				eo_schema_error("Fixed \"%s\" has no size.", node->name);
			node->size = DatumGetInt64(DirectFunctionCall1(numeric_int8,
														   NumericGetDatum(sz->val.numeric)));
			eo_logical(node, obj);
		}
		return node;
	}
	if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0)
	{
		JsonbValue *iv = eo_get(obj, t[0] == 'a' ? "items" : "values");

		if (iv == NULL)
			eo_schema_error("An %s has no element type.", t);
		node->type = t[0] == 'a' ? EO_AVRO_ARRAY : EO_AVRO_MAP;
		node->nchildren = 1;
		node->children = palloc(sizeof(EoAvroNode *));
		node->children[0] = eo_build(b, iv, ns, depth + 1);
		return node;
	}
	/* {"type": "SomeNamedType"} */
	{
		EoAvroNode *named = eo_find_named(b, t, ns);

		if (named == NULL)
			eo_schema_error("Unknown type \"%s\".", t);
		return named;
	}
}

static EoAvroNode *
eo_build(EoSchemaBuild *b, JsonbValue *v, const char *ns, int depth)
{
	if (depth > EO_AVRO_MAX_DEPTH)
		eo_schema_error("The schema nests deeper than %s levels.",
						psprintf("%d", EO_AVRO_MAX_DEPTH));
	if (v->type == jbvString)
	{
		char	   *t = pnstrdup(v->val.string.val, v->val.string.len);
		bool		prim;
		EoAvroNode *node;

		node = palloc0(sizeof(EoAvroNode));
		node->type = eo_primitive(t, &prim);
		if (prim)
			return node;
		pfree(node);
		node = eo_find_named(b, t, ns);
		if (node == NULL)
			eo_schema_error("Unknown type \"%s\".", t);
		return node;
	}
	if (v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
		return eo_build_object(b, v->val.binary.data, ns, depth);
	if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
	{
		JsonbContainer *arr = v->val.binary.data;
		EoAvroNode *node = palloc0(sizeof(EoAvroNode));

		node->type = EO_AVRO_UNION;
		node->nchildren = JsonContainerSize(arr);
		node->children = palloc0(sizeof(EoAvroNode *) * Max(node->nchildren, 1));
		for (int i = 0; i < node->nchildren; i++)
			node->children[i] = eo_build(b, getIthJsonbValueFromContainer(arr, i), ns, depth + 1);
		return node;
	}
	eo_schema_error("%s", "A schema is a string, an object or an array.");
	return NULL;				/* keep compiler quiet */
}

/*
 * Compile a writer schema; the tree lives in cxt.  Raises an error with
 * ERRCODE_INVALID_PARAMETER_VALUE for a schema that Avro C or this compiler
 * rejects.
 */
EoAvroNode *
eo_avro_compile(const char *json, MemoryContext cxt)
{
	avro_schema_t schema;
	MemoryContext old;
	EoSchemaBuild b = {0};
	Jsonb	   *jb;
	JsonbValue	root;
	EoAvroNode *node;

	eo_avro_lib_init();
	if (!eo_json_nesting_within(json, json + strlen(json), EO_AVRO_MAX_JSON_NESTING))
		eo_schema_error("The schema's JSON nests deeper than %s levels.",
						psprintf("%d", EO_AVRO_MAX_JSON_NESTING));
	if (avro_schema_from_json_length(json, strlen(json), &schema) != 0)
		eo_schema_error("%s", avro_strerror());
	avro_schema_decref(schema);

	old = MemoryContextSwitchTo(cxt);
	b.cxt = cxt;
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	if (JB_ROOT_IS_SCALAR(jb))
		root = *getIthJsonbValueFromContainer(&jb->root, 0);
	else
	{
		root.type = jbvBinary;
		root.val.binary.data = &jb->root;
		root.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
	node = eo_build(&b, &root, NULL, 0);
	MemoryContextSwitchTo(old);
	return node;
}
