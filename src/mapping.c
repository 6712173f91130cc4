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
	if (eo_envelope_source(src))
		return EO_SRC_ENVELOPE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown column source \"%s\"", src),
			 errhint("Sources starting with $ are $key, $value, $topic, $partition, $offset, $timestamp and $headers, and with envelope => 'debezium' $op, $ts_ms, $ts_us, $ts_ns, $source, $source.<field> and $transaction.<field>.")));
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
	appendStringInfo(&buf, "%s %d %s", map->format->name, map->id_column, map->topic);
	for (int c = 0; c < map->ncolumns; c++)
	{
		EoColumn   *col = &map->columns[c];

		appendStringInfo(&buf, "|%u %d %d", col->typid, col->typmod, col->source);
		for (int k = 0; k < col->npath; k++)
			appendStringInfo(&buf, " %d:%s", col->pathlen[k], col->path[k]);
	}
	return buf.data;
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
	map->format = eo_format_find(format);
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
		else if (!map->format->by_name || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
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
			else if (col->source == EO_SRC_ENVELOPE)
				col->path = eo_split_path(src + 1, &col->npath);
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
		if ((col->source == EO_SRC_JSON || col->source == EO_SRC_VALUE) &&
			!map->format->fills(col->source))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" is mapped from \"%s\", which format %s does not fill",
							attname, src ? src : attname, format)));
		col->binary = col->typid == BYTEAOID &&
			(col->source == EO_SRC_KEY || col->source == EO_SRC_VALUE);
		col->json_raw = col->typid == JSONOID || col->typid == JSONBOID;
		col->typmod = att->atttypmod;
		col->is_array = OidIsValid(get_element_type(col->typid));
		col->arraytype = get_array_type(col->typid);
		if (!OidIsValid(col->arraytype))
		{
			Oid			outfunc;
			bool		varlena;

			col->via_text = true;
			col->arraytype = TEXTARRAYOID;
			getTypeOutputInfo(col->typid, &outfunc, &varlena);
			fmgr_info(outfunc, &col->outfunc);
		}
		{
			Oid			infunc;

			getTypeInputInfo(col->typid, &infunc, &col->ioparam);
			fmgr_info(infunc, &col->infunc);
		}
		get_typlenbyvalalign(col->typid, &col->typlen, &col->typbyval, &col->typalign);
		if (col->source == EO_SRC_JSON || col->source == EO_SRC_ENVELOPE)
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

	if (map->format->prepare != NULL)
		map->format_state = map->format->prepare(map);
	map->signature = eo_mapping_signature(map);
	relation_close(rel, AccessShareLock);
	return map;
}
