/*
 * mapping.c
 *		From a pipeline's target, format and columns argument to a column
 *		mapping: which target column each part of a record fills, and how.
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "record.h"

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

/*
 * A Debezium event's own fields, named by $ and their path in the event:
 * op and ts_ms as they are, source and transaction whole or by dotted path.
 */
static bool
eo_envelope_source(const char *src)
{
	static const char *const whole[] = {"$op", "$ts_ms", "$ts_us", "$ts_ns", "$source", "$transaction"};
	static const char *const nested[] = {"$source.", "$transaction."};

	for (int i = 0; i < lengthof(whole); i++)
		if (strcmp(src, whole[i]) == 0)
			return true;
	for (int i = 0; i < lengthof(nested); i++)
		if (strncmp(src, nested[i], strlen(nested[i])) == 0 && src[strlen(nested[i])] != '\0')
			return true;
	return false;
}

/* $key.<path>: the path inside the key, else NULL */
static const char *
eo_key_path(const char *src)
{
	return strncmp(src, "$key.", 5) == 0 && src[5] != '\0' ? src + 5 : NULL;
}

static EoSource
eo_parse_source(const char *src)
{
	if (src[0] != '$')
		return EO_SRC_JSON;
	if (eo_key_path(src) != NULL)
		return EO_SRC_KEY_FIELD;
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
	if (eo_envelope_source(src))
		return EO_SRC_ENVELOPE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown column source \"%s\"", src),
			 errhint("Sources starting with $ are $key, $key.<path>, $value, $topic, $partition, $offset, $timestamp and $headers, and with envelope => 'debezium' $op, $ts_ms, $ts_us, $ts_ns, $source, $source.<field> and $transaction.<field>.")));
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

/*
 * Everything that decoding depends on: a batch decoded for one mapping is
 * reused by a retry whose rebuilt mapping has the same signature.
 */
static char *
eo_mapping_signature(EoMapping *map)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s %s %d %s", map->format->name,
					 map->key_map ? map->key_map->format->name : "-", map->id_column, map->topic);
	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];

		appendStringInfo(&buf, "|%u %d %d", col->typid, col->typmod, col->source);
		for (int k = 0; k < col->npath; k++)
			appendStringInfo(&buf, " %d:%s", col->pathlen[k], col->path[k]);
	}
	return buf.data;
}

/* How values of the column's type are read, written and passed. */
static void
eo_column_type(EoColumn *col, Oid typid, int32 typmod)
{
	Oid			infunc;

	col->typid = typid;
	col->typmod = typmod;
	col->type = format_type_with_typemod(typid, typmod);
	col->binary = typid == BYTEAOID &&
		(col->source == EO_SRC_KEY || col->source == EO_SRC_VALUE);
	col->json_raw = typid == JSONOID || typid == JSONBOID;
	col->is_array = OidIsValid(get_element_type(typid));
	col->arraytype = get_array_type(typid);
	if (!OidIsValid(col->arraytype))
	{
		Oid			outfunc;
		bool		varlena;

		col->via_text = true;
		col->arraytype = TEXTARRAYOID;
		getTypeOutputInfo(typid, &outfunc, &varlena);
		fmgr_info(outfunc, &col->outfunc);
	}
	getTypeInputInfo(typid, &infunc, &col->ioparam);
	fmgr_info(infunc, &col->infunc);
	get_typlenbyvalalign(typid, &col->typlen, &col->typbyval, &col->typalign);
}

/*
 * A Debezium event's time since the epoch (a field named ts_ms, ts_us or
 * ts_ns) into a timestamp or date column: the unit, which record.c turns
 * into the instant, as for $timestamp; else 0.
 */
static char
eo_epoch_unit(EoColumn *col)
{
	const char *name;
	size_t		len;

	if (col->source != EO_SRC_ENVELOPE ||
		(col->typid != TIMESTAMPTZOID && col->typid != TIMESTAMPOID && col->typid != DATEOID))
		return 0;
	name = col->path[col->npath - 1];
	len = strlen(name);
	if (len < 5 || strncmp(name + len - 5, "ts_", 3) != 0)
		return 0;
	if (strcmp(name + len - 2, "ms") == 0 || strcmp(name + len - 2, "us") == 0 ||
		strcmp(name + len - 2, "ns") == 0)
		return name[len - 2];
	return 0;
}

/* A column read from path (already split), within a mapping of format. */
static void
eo_column_path(EoColumn *col, char **path, int npath)
{
	col->path = path;
	col->npath = npath;
	col->pathlen = palloc(sizeof(int) * Max(npath, 1));
	for (int k = 0; k < npath; k++)
		col->pathlen[k] = strlen(path[k]);
}

/*
 * The mapping that decodes the Kafka key with key_format: map's columns, the
 * $key.<path> ones read from the key's fields.  With an envelope the columns
 * mapped by field read the key's field of the same path too, so that a
 * primary key column the row lacks (a tombstone, a delete) can come from
 * the key.
 */
static EoMapping *
eo_mapping_key(EoMapping *map, const char *key_format)
{
	EoMapping  *k = palloc(sizeof(EoMapping));

	*k = *map;
	k->format = eo_format_find(key_format);
	k->format_state = NULL;
	k->is_key = true;
	k->key_map = NULL;
	k->id_column = -1;
	k->ts_column = -1;
	k->max_depth = 0;
	k->columns = palloc(sizeof(EoColumn) * Max(map->ncolumns, 1));
	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &k->columns[c];

		*col = map->columns[c];
		if (col->source == EO_SRC_KEY_FIELD ||
			(col->source == EO_SRC_JSON && map->envelope != EO_ENV_NONE &&
			 k->format->fills(EO_SRC_JSON)))
			col->source = EO_SRC_JSON;
		else
			col->source = EO_SRC_NONE;
		if (col->source == EO_SRC_JSON)
			k->max_depth = Max(k->max_depth, col->npath);
	}
	if (k->format->prepare != NULL)
		k->format_state = k->format->prepare(k);
	k->signature = psprintf("key %s", eo_mapping_signature(k));
	return k;
}

/*
 * A copy of map whose field-mapped columns read under the top-level field
 * "field" (a Debezium change event's "after" or "before"), whose columns
 * mapped from the event's own fields ($op, $source.lsn) read those at their
 * path, and, with op, one more text column that reads the top-level field
 * "op": how an envelope reads the rows of a format other than JSON, whose
 * rows cannot be cut out of the value.
 */
EoMapping *
eo_mapping_nested(EoMapping *map, const char *field, bool op)
{
	EoMapping  *m = palloc(sizeof(EoMapping));

	*m = *map;
	m->columns = palloc0(sizeof(EoColumn) * (map->ncolumns + 1));
	m->id_column = -1;
	m->max_depth = 1;
	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &m->columns[c];
		char	  **path;

		*col = map->columns[c];
		if (col->source == EO_SRC_ENVELOPE)
		{
			/* $op, $source.lsn...: the field of that path in the event */
			col->source = EO_SRC_JSON;
			m->max_depth = Max(m->max_depth, col->npath);
			continue;
		}
		if (col->source != EO_SRC_JSON)
			continue;
		if (col->npath >= EO_MAX_DEPTH)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column %s is mapped from a path nested too deeply for a change event", col->name),
					 errdetail("Paths may have at most %d levels below \"%s\".", EO_MAX_DEPTH - 1, field)));
		path = palloc(sizeof(char *) * (col->npath + 1));
		path[0] = pstrdup(field);
		memcpy(path + 1, col->path, sizeof(char *) * col->npath);
		eo_column_path(col, path, col->npath + 1);
		m->max_depth = Max(m->max_depth, col->npath);
	}
	if (op)
	{
		EoColumn   *col = &m->columns[m->ncolumns++];
		char	  **path = palloc(sizeof(char *));

		path[0] = pstrdup("op");
		col->name = pstrdup("op");
		col->source = EO_SRC_JSON;
		eo_column_path(col, path, 1);
		eo_column_type(col, TEXTOID, -1);
	}
	if (m->format->prepare != NULL)
		m->format_state = m->format->prepare(m);
	m->signature = psprintf("%s %s", field, eo_mapping_signature(m));
	return m;
}

EoMapping *
eo_mapping_build(Oid target, const char *format, const char *key_format,
				 const char *event_id, const char *on_duplicate,
				 Datum columns_datum, bool columns_null, const char *topic,
				 EoEnvelope envelope)
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
	map->format = eo_format_find(format);
	map->update = strcmp(on_duplicate, "update") == 0;
	map->topic = pstrdup(topic);
	map->envelope = envelope;
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
		else if (!map->format->by_name || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			continue;

		col = &map->columns[map->ncolumns++];
		col->name = pstrdup(quote_identifier(attname));
		col->attnum = att->attnum;
		if (src != NULL)
		{
			int			npath = 0;
			char	  **path = NULL;

			col->source = eo_parse_source(src);
			if (col->source == EO_SRC_JSON)
				path = eo_split_path(src, &npath);
			else if (col->source == EO_SRC_ENVELOPE)
				path = eo_split_path(src + 1, &npath);
			else if (col->source == EO_SRC_KEY_FIELD)
			{
				const EoFormat *kf = key_format ? eo_format_find(key_format) : NULL;

				if (kf == NULL || !kf->fills(EO_SRC_JSON))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("column \"%s\" is mapped from \"%s\", but the key is not decoded into fields",
									attname, src),
							 errhint("Set key_format => 'json' or 'avro'.")));
				path = eo_split_path(eo_key_path(src), &npath);
			}
			eo_column_path(col, path, npath);
		}
		else
		{
			char	  **path = palloc(sizeof(char *));

			path[0] = pstrdup(attname);
			col->source = EO_SRC_JSON;
			eo_column_path(col, path, 1);
		}
		if ((col->source == EO_SRC_JSON || col->source == EO_SRC_VALUE) &&
			!map->format->fills(col->source))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" is mapped from \"%s\", which format %s does not fill",
							attname, src ? src : attname, format)));
		eo_column_type(col, att->atttypid, att->atttypmod);
		col->epoch_unit = eo_epoch_unit(col);
		if (col->source == EO_SRC_JSON || col->source == EO_SRC_ENVELOPE ||
			col->source == EO_SRC_KEY_FIELD)
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
		else if (want == EO_SRC_KEY_FIELD)
			path = eo_split_path(eo_key_path(event_id), &npath);
		for (int c = 0; c < map->ncolumns && map->id_column < 0; c++)
		{
			EoColumn   *col = &map->columns[c];
			bool		match = col->source == want;

			if (match && (want == EO_SRC_JSON || want == EO_SRC_KEY_FIELD))
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

	if (map->format->prepare != NULL)
		map->format_state = map->format->prepare(map);
	if (key_format != NULL)
		map->key_map = eo_mapping_key(map, key_format);
	map->signature = eo_mapping_signature(map);
	relation_close(rel, AccessShareLock);
	return map;
}
