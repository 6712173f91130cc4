/*
 * avro_decode.c
 *		Avro binary, read with its writer schema, into the values of the
 *		mapped columns: the walk over one record's fields.
 *
 * One pass over the record: a field that feeds a column becomes a Datum of
 * the column's type where the two types match (avro_datum.c), else it is
 * rendered in the form the column's type reads (avro_render.c); any other
 * field is skipped by its encoded length.  Fields are found by name in the
 * writer's schema, so every schema version of a topic maps alike, and a
 * column with no field in a version gets its DEFAULT.  Any malformed byte
 * makes the record a dead letter with the reason and where it was found
 * (avro_reader.h).
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "avro_reader.h"

static bool
eo_skip(EoAvroReader *r, EoAvroNode *s, int depth)
{
	int64		v;
	const char *d;

	if (depth > EO_AVRO_MAX_NESTING)
		return eo_avro_too_deep(r);
	switch (s->type)
	{
		case EO_AVRO_NULL:
			return true;
		case EO_AVRO_BOOLEAN:
			return eo_avro_read_fixed(r, 1, &d);
		case EO_AVRO_INT:
		case EO_AVRO_LONG:
		case EO_AVRO_ENUM:
			return eo_avro_read_long(r, &v);
		case EO_AVRO_FLOAT:
			return eo_avro_read_fixed(r, 4, &d);
		case EO_AVRO_DOUBLE:
			return eo_avro_read_fixed(r, 8, &d);
		case EO_AVRO_BYTES:
		case EO_AVRO_STRING:
			return eo_avro_read_bytes(r, &d, &v);
		case EO_AVRO_FIXED:
			return eo_avro_read_fixed(r, s->size, &d);
		case EO_AVRO_RECORD:
			for (int i = 0; i < s->nchildren; i++)
				if (!eo_skip(r, s->children[i], depth + 1))
					return false;
			return true;
		case EO_AVRO_UNION:
			{
				EoAvroNode *b;

				return eo_avro_read_branch(r, s, &b) && eo_skip(r, b, depth + 1);
			}
		case EO_AVRO_ARRAY:
		case EO_AVRO_MAP:
			for (;;)
			{
				int64		n;

				if (!eo_avro_read_block(r, &n))
					return false;
				if (n == 0)
					return true;
				while (n-- > 0)
				{
					if (s->type == EO_AVRO_MAP && !eo_avro_read_bytes(r, &d, &v))
						return false;
					if (!eo_skip(r, s->children[0], depth + 1))
						return false;
				}
			}
	}
	return true;
}

/*
 * The value of s for col straight as a Datum, where the Avro type (past any
 * union) and the column type match (avro_datum.c).  Returns false with
 * *failed set for a malformed value, or with *failed clear when the value
 * goes through text instead (the caller reads it again from its start).
 * A null sets *isnull: it goes through text too, for a domain's NOT NULL.
 */
static bool
eo_direct(EoAvroReader *r, EoAvroNode *s, EoColumn *col, Datum *d, bool *isnull,
		  bool *failed)
{
	EoAvroScalar v = {0};
	const char *error;

	*failed = true;
	*isnull = false;
	while (s->type == EO_AVRO_UNION)
	{
		if (!eo_avro_read_branch(r, s, &s))
			return false;
	}
	if (s->type == EO_AVRO_NULL)
	{
		*isnull = true;
		return true;
	}
	if (!eo_avro_direct(s, col->typid))
	{
		*failed = false;
		return false;
	}
	switch (s->type)
	{
		case EO_AVRO_BOOLEAN:
			if (!eo_avro_read_fixed(r, 1, &v.data))
				return false;
			if (*v.data != 0 && *v.data != 1)
				return eo_avro_fail(r, "a boolean byte is neither 0 nor 1");
			v.i = *v.data;
			break;
		case EO_AVRO_INT:
			if (!eo_avro_read_int(r, &v.i))
				return false;
			break;
		case EO_AVRO_LONG:
			if (!eo_avro_read_long(r, &v.i))
				return false;
			break;
		case EO_AVRO_FLOAT:
			{
				float4		f4;

				if (!eo_avro_read_fixed(r, 4, &v.data))
					return false;
				memcpy(&f4, v.data, 4);
				v.f = f4;
				break;
			}
		case EO_AVRO_DOUBLE:
			if (!eo_avro_read_fixed(r, 8, &v.data))
				return false;
			memcpy(&v.f, v.data, 8);
			break;
		case EO_AVRO_STRING:
			if (!eo_avro_read_bytes(r, &v.data, &v.len))
				return false;
			if (!eo_text_valid(v.data, v.len))
				return eo_avro_fail(r, "a string is not valid in the database encoding");
			break;
		case EO_AVRO_BYTES:
			if (!eo_avro_read_bytes(r, &v.data, &v.len))
				return false;
			break;
		case EO_AVRO_FIXED:
			if (!eo_avro_read_fixed(r, (v.len = s->size), &v.data))
				return false;
			break;
		default:
			elog(ERROR, "Avro type %d has no direct conversion", s->type);
	}
	if (eo_avro_datum(col, s, &v, d, &error))
		return true;
	if (error != NULL)
		return eo_avro_fail(r, error);
	*failed = false;
	return false;
}

/*
 * Which columns each field of a top-level record feeds: worked out once per
 * writer schema and mapping, where matching every field's name against
 * every column, for every record, took 9 % of an Avro drain's time (the
 * loop and strcmp).  Kept in the mapping's format state (eo_avro_prepare),
 * a list by schema node and by the mapping's columns (a copied mapping with
 * other columns shares the state): the nodes stay while the mapping does
 * (setup.c builds both, and the schema cache only grows in between).
 */
typedef struct EoAvroFieldPlan
{
	int			ncols;			/* columns whose path is this field alone */
	int		   *cols;
	bool		deeper;			/* some column's path goes on below it */
} EoAvroFieldPlan;

typedef struct EoAvroPlan
{
	EoAvroNode *record;
	EoColumn   *columns;
	EoAvroFieldPlan *fields;	/* one per field of record */
	struct EoAvroPlan *next;
} EoAvroPlan;

typedef struct EoAvroPlans
{
	MemoryContext cxt;			/* the mapping's */
	EoAvroPlan *head;			/* the last one used first */
} EoAvroPlans;

void *
eo_avro_prepare(EoMapping *map)
{
	EoAvroPlans *plans = palloc0(sizeof(EoAvroPlans));

	plans->cxt = CurrentMemoryContext;
	return plans;
}

/* Does column c's path, down to level (0-based), name this field? */
static bool
eo_path_at(EoColumn *col, int level, const char *name, const char **parents)
{
	/* the first byte first: this runs for every field and column */
	if (col->source != EO_SRC_JSON || col->npath <= level ||
		col->path[level][0] != name[0] || strcmp(col->path[level], name) != 0)
		return false;
	for (int k = 0; k < level; k++)
		if (strcmp(col->path[k], parents[k]) != 0)
			return false;
	return true;
}

/* The plan of the top-level record s for map's columns, made if new. */
static EoAvroPlan *
eo_avro_plan(EoMapping *map, EoAvroNode *s)
{
	EoAvroPlans *plans = map->format_state;
	EoAvroPlan **prev;
	EoAvroPlan *plan;
	MemoryContext old;

	for (prev = &plans->head; (plan = *prev) != NULL; prev = &plan->next)
		if (plan->record == s && plan->columns == map->columns)
		{
			*prev = plan->next;
			break;
		}
	if (plan == NULL)
	{
		old = MemoryContextSwitchTo(plans->cxt);
		plan = palloc0(sizeof(EoAvroPlan));
		plan->record = s;
		plan->columns = map->columns;
		plan->fields = palloc0(sizeof(EoAvroFieldPlan) * Max(s->nchildren, 1));
		for (int i = 0; i < s->nchildren; i++)
		{
			EoAvroFieldPlan *fp = &plan->fields[i];

			fp->cols = palloc(sizeof(int) * Max(map->ncolumns, 1));
			for (int c = 0; c < map->ncolumns; c++)
			{
				if (!eo_path_at(&map->columns[c], 0, s->names[i], NULL))
					continue;
				if (map->columns[c].npath > 1)
					fp->deeper = true;
				else
					fp->cols[fp->ncols++] = c;
			}
		}
		MemoryContextSwitchTo(old);
	}
	plan->next = plans->head;
	plans->head = plan;
	return plan;
}

static bool
eo_decode_record(EoAvroReader *r, EoMapping *map, EoAvroSink *sink, EoAvroNode *s,
				 int level, const char **parents)
{
	EoAvroPlan *plan = level == 0 && map->format_state != NULL ? eo_avro_plan(map, s) : NULL;

	for (int i = 0; i < s->nchildren; i++)
	{
		const char *name = s->names[i];
		EoAvroNode *f = s->children[i];
		const char *start = r->p;
		bool		read = false;
		bool		deeper = plan != NULL && plan->fields[i].deeper;
		int			ncand = plan != NULL ? plan->fields[i].ncols : map->ncolumns;

		if (level == 0)
			r->field = name;
		for (int k = 0; k < ncand; k++)
		{
			int			c = plan != NULL ? plan->fields[i].cols[k] : k;
			EoColumn   *col = &map->columns[c];
			StringInfoData buf;
			bool		isnull;

			if (plan == NULL)
			{
				if (!eo_path_at(col, level, name, parents))
					continue;
				if (col->npath > level + 1)
				{
					deeper = true;
					continue;
				}
			}
			r->p = start;
			read = true;
			if (!col->json_raw && !col->is_array)
			{
				Datum		d;
				bool		failed;

				if (eo_direct(r, f, col, &d, &isnull, &failed))
				{
					if (isnull)
						sink->emit(sink->arg, c, NULL, 0);
					else
						sink->datum(sink->arg, c, d);
					continue;
				}
				if (failed)
					return false;
				r->p = start;
			}
			initStringInfo(&buf);
			if (!eo_avro_render(r, f, col->json_raw ? EO_RENDER_JSON : EO_RENDER_TEXT,
								col->is_array, &buf, &isnull, level))
				return false;
			sink->emit(sink->arg, c, isnull ? NULL : buf.data, isnull ? 0 : buf.len);
		}
		if (deeper)
		{
			EoAvroNode *sub = f;

			r->p = start;
			if (sub->type == EO_AVRO_UNION && !eo_avro_read_branch(r, sub, &sub))
				return false;
			if (sub->type == EO_AVRO_RECORD)
			{
				parents[level] = name;
				if (!eo_decode_record(r, map, sink, sub, level + 1, parents))
					return false;
			}
			else if (!eo_skip(r, sub, level + 1))
				return false;
		}
		else if (!read && !eo_skip(r, f, level + 1))
			return false;
	}
	return true;
}

/*
 * Hand sink the value of every column mapped from a field of one Avro binary
 * value written with schema.  On a malformed value returns false with
 * *error set.
 */
bool
eo_avro_decode(EoMapping *map, EoAvroSink *sink, EoAvroNode *schema,
			   const char *data, size_t len, int *sqlerrcode, char **error)
{
	EoAvroReader r = {data, data, data + len, NULL, ERRCODE_INVALID_BINARY_REPRESENTATION, NULL};
	const char *parents[EO_MAX_DEPTH + 1];

	if (schema->type != EO_AVRO_RECORD)
	{
		*error = psprintf("the writer schema is not a record but %s; map the value with columns => '{\"column\": \"$value\"}'",
						  schema->name ? schema->name : "a primitive, array, map or union");
		return false;
	}
	if (!eo_decode_record(&r, map, sink, schema, 0, parents))
	{
		*sqlerrcode = r.sqlerrcode;
		*error = r.error;
		return false;
	}
	if (r.p != r.end)
	{
		*error = psprintf("invalid Avro value: %d bytes left over after the record's last field (at byte %d of %d)",
						  (int) (r.end - r.p), (int) (r.p - r.start), (int) len);
		return false;
	}
	return true;
}
