/*
 * avro_steps.c
 *		The walk over a top-level Avro record by a plan worked out once per
 *		writer schema and mapping: per field a step that skips it, converts
 *		it straight into a Datum in the batch's memory, or hands it to the
 *		general walk of avro_decode.c.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/uuid.h"

#include "avro_reader.h"

/*
 * What the walk does with each field of a top-level record, worked out
 * once per writer schema and mapping (eo_avro_plan): matching every
 * field's name against every column, for every record, took 9 % of an Avro
 * drain's time, and deciding for every value how it converts (the union,
 * the pair of types, the typmod) was most of what the walk still cost
 * (bench/callgrind.sh --format avro).  Kept in the
 * mapping's format state (eo_avro_prepare), a list by schema node and by
 * the mapping's columns (a copied mapping with other columns shares the
 * state): the nodes stay while the mapping does (setup.c builds both, and
 * the schema cache only grows in between).
 *
 * A step is one of:
 *	- a field no column reads, skipped by its encoded length; an unmapped
 *	  record's fields are steps of their own (the benchmark's customer);
 *	- a field that feeds one column whose value converts without a typmod
 *	  the way the general walk (eo_direct, avro_datum.c) converts it, in a
 *	  union with null or not: the conversion straight into the batch's memory
 *	  (EoFields.cxt), without the copy record.c makes of other Datums;
 *	- anything else: the general walk of one field (eo_avro_decode_field).
 * Every step reads the same bytes in the same order as the general walk,
 * so errors name the same field and byte.
 */
typedef enum EoAvroStepKind
{
	EO_STEP_FIELD,				/* the general walk */
	EO_STEP_SKIP,				/* not read by any column (eo_avro_skip) */
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
	EoColumn   *value_of;		/* the columns reads_value is of */
	bool		reads_value;
} EoAvroPlans;

void *
eo_avro_prepare(EoMapping *map)
{
	EoAvroPlans *plans = palloc0(sizeof(EoAvroPlans));

	plans->cxt = CurrentMemoryContext;
	return plans;
}

/* Does a column of map take the value's bytes ($value)? */
bool
eo_avro_reads_value(EoMapping *map)
{
	EoAvroPlans *plans = map->format_state;
	bool		reads = false;

	if (plans != NULL && plans->value_of == map->columns)
		return plans->reads_value;
	for (int c = 0; c < map->ncolumns; c++)
		reads |= map->columns[c].source == EO_SRC_VALUE;
	if (plans != NULL)
	{
		plans->value_of = map->columns;
		plans->reads_value = reads;
	}
	return reads;
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
				if (!eo_avro_path_at(&map->columns[c], 0, s->names[i], NULL))
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

/*
 * n bytes for a converted value: cut from the batch's memory (kept without
 * a copy), or, for fields without one, in the current memory context.
 */
static inline void *
eo_step_alloc(EoFields *f, Size n)
{
	return f->cxt != NULL ? eo_fields_alloc(f, n) : palloc(n);
}

/*
 * A converting step's value (past its union, if any) into *d (eo_step_alloc).
 * Returns false with *failed set for a malformed value, or with *failed
 * clear when the general walk takes the field instead (a uuid in another
 * spelling, a decimal wider than 15 digits).
 */
static inline bool
eo_step_value(EoAvroReader *r, const EoAvroStep *st, EoFields *f, Datum *d, bool *failed)
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
				t = eo_step_alloc(f, VARHDRSZ + v);
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
				/* hex digits and hyphens are valid text; else the general walk checks */
				u = eo_step_alloc(f, sizeof(pg_uuid_t));
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
			*failed = eo_avro_decimal(data, v, s->scale, eo_step_alloc(f, EO_AVRO_NUMERIC_MAX), d);
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

/* A top-level record s by the steps of its plan for f's mapping. */
bool
eo_avro_decode_steps(EoAvroReader *r, EoFields *f, EoAvroNode *s, const char **parents)
{
	const EoAvroPlan *plan = eo_avro_plan(f->map, s);
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
				if (!eo_avro_decode_field(r, f, s, st->field, 0, parents, &plan->fields[st->field]))
					return false;
				continue;
			case EO_STEP_SKIP:
				if (!eo_avro_skip(r, st->node, st->depth))
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
		if (eo_step_value(r, st, f, &d, &failed))
		{
			eo_fields_datum_as(f, st->column, d, false, kind);
			continue;
		}
		if (failed)
			return false;
		r->p = start;
		if (!eo_avro_decode_field(r, f, s, st->field, 0, parents, &plan->fields[st->field]))
			return false;
	}
	return true;
}
