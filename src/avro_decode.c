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

#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "utils/uuid.h"

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
 * What the walk does with each field of a top-level record, worked out
 * once per writer schema and mapping (eo_avro_plan): matching every
 * field's name against every column, for every record, took 9 % of an Avro
 * drain's time, and deciding per value how it converts (the union, the
 * type pair, the typmod) most of the rest of the walk.  Kept in the
 * mapping's format state (eo_avro_prepare), a list by schema node and by
 * the mapping's columns (a copied mapping with other columns shares the
 * state): the nodes stay while the mapping does (setup.c builds both, and
 * the schema cache only grows in between).
 *
 * A step is one of:
 *	- a field no column reads, skipped by its encoded length; an unmapped
 *	  record's fields are steps of their own (the benchmark's customer);
 *	- a field that feeds one column whose value converts without a typmod
 *	  the way eo_direct and avro_datum.c would convert it, possibly in a
 *	  union with null: the conversion straight into the batch's memory
 *	  (EoFields.cxt), without the copy record.c makes of other Datums;
 *	- anything else: the general walk of one field (eo_decode_field).
 * Every step reads the same bytes in the same order as the general walk,
 * so errors name the same field and byte.
 */
typedef enum EoAvroStepKind
{
	EO_STEP_FIELD,				/* the general walk */
	EO_STEP_SKIP,				/* not read by any column (eo_skip) */
	EO_STEP_SKIP_NUMBER,		/* an unread int, long or enum */
	EO_STEP_SKIP_BYTES,			/* an unread string or bytes */
	EO_STEP_SKIP_FIXED,			/* an unread boolean, float, double or fixed */
	EO_STEP_INT4,				/* int into int4 */
	EO_STEP_INT8,				/* int or long into int8 */
	EO_STEP_TEXT,				/* string into text */
	EO_STEP_UUID,				/* string into uuid (canonical spelling) */
	EO_STEP_DECIMAL,			/* bytes or fixed decimal into numeric */
	EO_STEP_TEMPORAL			/* date, time-*, (local-)timestamp-* */
} EoAvroStepKind;

typedef struct EoAvroStep
{
	EoAvroStepKind kind;
	int			field;			/* of the top-level record */
	int			column;			/* converting steps */
	int			depth;			/* EO_STEP_SKIP */
	int64		size;			/* EO_STEP_SKIP_FIXED */
	EoAvroNode *node;			/* the value's schema, past a union */
	EoAvroNode *nullable;		/* a union of null and node, or NULL */
} EoAvroStep;

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
	EoAvroStep *steps;
	int			nsteps;
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

/* A new step of plan (room for them is made by the caller). */
static EoAvroStep *
eo_step(EoAvroPlan *plan, EoAvroStepKind kind, int field, EoAvroNode *node)
{
	EoAvroStep *st = &plan->steps[plan->nsteps++];

	memset(st, 0, sizeof(EoAvroStep));
	st->kind = kind;
	st->field = field;
	st->node = node;
	return st;
}

/* Steps that skip a value of s, in field's name; records field by field. */
#define EO_PLAN_MAX_STEPS 256

static void
eo_plan_skip(EoAvroPlan *plan, int field, EoAvroNode *s, int depth, int *room)
{
	switch (s->type)
	{
		case EO_AVRO_NULL:
			return;
		case EO_AVRO_INT:
		case EO_AVRO_LONG:
		case EO_AVRO_ENUM:
			eo_step(plan, EO_STEP_SKIP_NUMBER, field, s);
			return;
		case EO_AVRO_STRING:
		case EO_AVRO_BYTES:
			eo_step(plan, EO_STEP_SKIP_BYTES, field, s);
			return;
		case EO_AVRO_BOOLEAN:
		case EO_AVRO_FLOAT:
		case EO_AVRO_DOUBLE:
		case EO_AVRO_FIXED:
			eo_step(plan, EO_STEP_SKIP_FIXED, field, s)->size =
				s->type == EO_AVRO_FIXED ? s->size : s->type == EO_AVRO_BOOLEAN ? 1 :
				s->type == EO_AVRO_FLOAT ? 4 : 8;
			return;
		case EO_AVRO_RECORD:
			/* as deep as eo_skip would go, and not without end */
			if (depth < 8 && *room >= s->nchildren)
			{
				*room -= s->nchildren;
				for (int i = 0; i < s->nchildren; i++)
					eo_plan_skip(plan, field, s->children[i], depth + 1, room);
				return;
			}
			break;
		default:
			break;
	}
	eo_step(plan, EO_STEP_SKIP, field, s)->depth = depth;
}

/* The converting step of a field of type f into col, or EO_STEP_FIELD. */
static EoAvroStepKind
eo_plan_kind(EoAvroNode *f, EoColumn *col, EoAvroNode **node, EoAvroNode **nullable)
{
	*node = f;
	*nullable = NULL;
	if (f->type == EO_AVRO_UNION && f->nchildren == 2)
	{
		int			nulls = (f->children[0]->type == EO_AVRO_NULL) +
			(f->children[1]->type == EO_AVRO_NULL);

		if (nulls != 1)
			return EO_STEP_FIELD;
		*nullable = f;
		*node = f->children[f->children[0]->type == EO_AVRO_NULL ? 1 : 0];
	}
	f = *node;
	if (col->json_raw || col->is_array || f->type == EO_AVRO_UNION ||
		!eo_avro_direct(f, col->typid))
		return EO_STEP_FIELD;
	switch (f->type)
	{
		case EO_AVRO_INT:
		case EO_AVRO_LONG:
			if (f->logical != EO_AVRO_PLAIN)
				return col->typmod < 0 ? EO_STEP_TEMPORAL : EO_STEP_FIELD;
			if (col->typid == INT8OID)
				return EO_STEP_INT8;
			return col->typid == INT4OID && f->type == EO_AVRO_INT ? EO_STEP_INT4 : EO_STEP_FIELD;
		case EO_AVRO_STRING:
			if (col->typid == UUIDOID)
				return EO_STEP_UUID;
			return col->typid == TEXTOID ? EO_STEP_TEXT : EO_STEP_FIELD;
		case EO_AVRO_BYTES:
		case EO_AVRO_FIXED:
			return f->logical == EO_AVRO_DECIMAL && col->typmod < 0 ? EO_STEP_DECIMAL : EO_STEP_FIELD;
		default:
			return EO_STEP_FIELD;
	}
}

/* The steps of plan's record. */
static void
eo_plan_steps(EoAvroPlan *plan, EoMapping *map)
{
	EoAvroNode *s = plan->record;
	int			room = EO_PLAN_MAX_STEPS;

	plan->steps = palloc(sizeof(EoAvroStep) * (s->nchildren + EO_PLAN_MAX_STEPS));
	for (int i = 0; i < s->nchildren; i++)
	{
		EoAvroFieldPlan *fp = &plan->fields[i];
		EoAvroNode *node;
		EoAvroNode *nullable;
		EoAvroStepKind kind;
		EoAvroStep *st;

		if (fp->ncols == 0 && !fp->deeper)
		{
			eo_plan_skip(plan, i, s->children[i], 1, &room);
			continue;
		}
		kind = fp->ncols == 1 && !fp->deeper ?
			eo_plan_kind(s->children[i], &map->columns[fp->cols[0]], &node, &nullable) :
			EO_STEP_FIELD;
		if (kind == EO_STEP_FIELD)
		{
			eo_step(plan, EO_STEP_FIELD, i, s->children[i]);
			continue;
		}
		st = eo_step(plan, kind, i, node);
		st->nullable = nullable;
		st->column = fp->cols[0];
	}
}

/* The plan of the top-level record s for map's columns, made if new. */
static EoAvroPlan *
eo_avro_plan(EoMapping *map, EoAvroNode *s)
{
	EoAvroPlans *plans = map->format_state;
	EoAvroPlan **prev;
	EoAvroPlan *plan;
	MemoryContext old;

	if ((plan = plans->head) != NULL && plan->record == s && plan->columns == map->columns)
		return plan;
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
		eo_plan_steps(plan, map);
		MemoryContextSwitchTo(old);
	}
	plan->next = plans->head;
	plans->head = plan;
	return plan;
}

static bool eo_decode_record(EoAvroReader *r, EoFields *f, EoAvroNode *s,
							 int level, const char **parents);

/*
 * Field i of record s, at level: every column it feeds (fp's, or found by
 * name without a plan), then the record below it if a column's path goes
 * on, else skipped if nothing read it.
 */
static bool
eo_decode_field(EoAvroReader *r, EoFields *f, EoAvroNode *s, int i, int level,
				const char **parents, const EoAvroFieldPlan *fp)
{
	EoMapping  *map = f->map;
	const char *name = s->names[i];
	EoAvroNode *fs = s->children[i];
	const char *start = r->p;
	bool		read = false;
	bool		deeper = fp != NULL && fp->deeper;
	int			ncand = fp != NULL ? fp->ncols : map->ncolumns;

	if (level == 0)
		r->field = name;
	for (int k = 0; k < ncand; k++)
	{
		int			c = fp != NULL ? fp->cols[k] : k;
		EoColumn   *col = &map->columns[c];
		StringInfoData buf;
		bool		isnull;

		if (fp == NULL)
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

			if (eo_direct(r, fs, col, &d, &isnull, &failed))
			{
				if (isnull)
					eo_fields_null(f, c);
				else
					eo_fields_datum(f, c, d, false);
				continue;
			}
			if (failed)
				return false;
			r->p = start;
		}
		initStringInfo(&buf);
		if (!eo_avro_render(r, fs, col->json_raw ? EO_RENDER_JSON : EO_RENDER_TEXT,
							col->is_array, &buf, &isnull, level))
			return false;
		if (isnull)
			eo_fields_null(f, c);
		else
			eo_fields_text(f, c, buf.data, buf.len);
	}
	if (deeper)
	{
		EoAvroNode *sub = fs;

		r->p = start;
		if (sub->type == EO_AVRO_UNION && !eo_avro_read_branch(r, sub, &sub))
			return false;
		if (sub->type == EO_AVRO_RECORD)
		{
			parents[level] = name;
			return eo_decode_record(r, f, sub, level + 1, parents);
		}
		return eo_skip(r, sub, level + 1);
	}
	return read || eo_skip(r, fs, level + 1);
}

/*
 * A converting step's value (past its union, if any) into *d, allocated in
 * cxt.  Returns false with *failed set for a malformed value, or with
 * *failed clear when the general walk takes the field instead (a uuid in
 * another spelling, a decimal wider than 64 bits).
 */
static inline bool
eo_step_value(EoAvroReader *r, const EoAvroStep *st, MemoryContext cxt, Datum *d,
			  bool *failed)
{
	EoAvroNode *s = st->node;
	int64		v;
	const char *data;
	const char *error;

	*failed = true;
	switch (st->kind)
	{
		case EO_STEP_INT4:
			if (!eo_avro_read_int(r, &v))
				return false;
			*d = Int32GetDatum((int32) v);
			return true;
		case EO_STEP_INT8:
			if (s->type == EO_AVRO_INT ? !eo_avro_read_int(r, &v) : !eo_avro_read_long(r, &v))
				return false;
			*d = Int64GetDatum(v);
			return true;
		case EO_STEP_TEXT:
			{
				text	   *t;

				if (!eo_avro_read_bytes(r, &data, &v))
					return false;
				if (!eo_text_valid(data, v))
					return eo_avro_fail(r, "a string is not valid in the database encoding");
				t = MemoryContextAlloc(cxt, VARHDRSZ + v);
				SET_VARSIZE(t, VARHDRSZ + v);
				memcpy(VARDATA(t), data, v);
				*d = PointerGetDatum(t);
				return true;
			}
		case EO_STEP_UUID:
			{
				pg_uuid_t  *u;

				if (!eo_avro_read_bytes(r, &data, &v))
					return false;
				if (!eo_text_valid(data, v))
					return eo_avro_fail(r, "a string is not valid in the database encoding");
				u = MemoryContextAlloc(cxt, sizeof(pg_uuid_t));
				*failed = eo_parse_uuid(data, (int) v, u);
				*d = UUIDPGetDatum(u);
				return *failed;
			}
		case EO_STEP_DECIMAL:
			if (s->type == EO_AVRO_FIXED)
			{
				if (!eo_avro_read_fixed(r, (v = s->size), &data))
					return false;
			}
			else if (!eo_avro_read_bytes(r, &data, &v))
				return false;
			*failed = eo_avro_decimal(data, v, s->scale, cxt, d);
			return *failed;
		case EO_STEP_TEMPORAL:
			if (s->type == EO_AVRO_INT ? !eo_avro_read_int(r, &v) : !eo_avro_read_long(r, &v))
				return false;
			if ((error = eo_avro_temporal(s, v, d)) != NULL)
				return eo_avro_fail(r, error);
			return true;
		default:
			elog(ERROR, "Avro step %d converts nothing", st->kind);
	}
	return false;
}

/* A top-level record by its plan's steps. */
static bool
eo_decode_steps(EoAvroReader *r, EoFields *f, EoAvroNode *s, const EoAvroPlan *plan,
				const char **parents)
{
	MemoryContext cxt = f->cxt != NULL ? f->cxt : CurrentMemoryContext;
	char		kind = f->cxt != NULL ? EO_DATUM_KEPT : EO_DATUM;

	for (int k = 0; k < plan->nsteps; k++)
	{
		const EoAvroStep *st = &plan->steps[k];
		const char *start = r->p;
		int64		v;
		const char *data;
		Datum		d;
		bool		failed;

		r->field = s->names[st->field];
		switch (st->kind)
		{
			case EO_STEP_FIELD:
				if (!eo_decode_field(r, f, s, st->field, 0, parents, &plan->fields[st->field]))
					return false;
				continue;
			case EO_STEP_SKIP:
				if (!eo_skip(r, st->node, st->depth))
					return false;
				continue;
			case EO_STEP_SKIP_NUMBER:
				if (!eo_avro_read_long(r, &v))
					return false;
				continue;
			case EO_STEP_SKIP_BYTES:
				if (!eo_avro_read_bytes(r, &data, &v))
					return false;
				continue;
			case EO_STEP_SKIP_FIXED:
				if (!eo_avro_read_fixed(r, st->size, &data))
					return false;
				continue;
			default:
				break;
		}
		if (st->nullable != NULL)
		{
			EoAvroNode *b;

			if (!eo_avro_read_branch(r, st->nullable, &b))
				return false;
			if (b->type == EO_AVRO_NULL)
			{
				eo_fields_null(f, st->column);
				continue;
			}
		}
		if (eo_step_value(r, st, cxt, &d, &failed))
		{
			eo_fields_datum_as(f, st->column, d, false, kind);
			continue;
		}
		if (failed)
			return false;
		r->p = start;
		if (!eo_decode_field(r, f, s, st->field, 0, parents, &plan->fields[st->field]))
			return false;
	}
	return true;
}

static bool
eo_decode_record(EoAvroReader *r, EoFields *f, EoAvroNode *s, int level, const char **parents)
{
	for (int i = 0; i < s->nchildren; i++)
		if (!eo_decode_field(r, f, s, i, level, parents, NULL))
			return false;
	return true;
}

/*
 * Fill f with the value of every column mapped from a field of one Avro
 * binary value written with schema.  On a malformed value returns false
 * with *error set.
 */
bool
eo_avro_decode(EoFields *f, EoAvroNode *schema, const char *data, size_t len,
			   int *sqlerrcode, char **error)
{
	EoAvroReader r = {data, data, data + len, NULL, ERRCODE_INVALID_BINARY_REPRESENTATION, NULL};
	const char *parents[EO_MAX_DEPTH + 1];
	bool		ok;

	if (schema->type != EO_AVRO_RECORD)
	{
		*error = psprintf("the writer schema is not a record but %s; map the value with columns => '{\"column\": \"$value\"}'",
						  schema->name ? schema->name : "a primitive, array, map or union");
		return false;
	}
	if (f->map->format_state != NULL)
		ok = eo_decode_steps(&r, f, schema, eo_avro_plan(f->map, schema), parents);
	else
		ok = eo_decode_record(&r, f, schema, 0, parents);
	if (!ok)
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
