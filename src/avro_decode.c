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
 * (avro_reader.h).  A top-level record goes by the steps of its plan
 * (avro_steps.c), which hand the fields they do not convert themselves to
 * the walk of one field here.
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "avro_reader.h"

void
eo_avro_set_error(EoAvroReader *r, const char *msg)
{
	if (r->error == NULL)
		r->error = r->field ?
			psprintf("invalid Avro value in field \"%s\" at byte %d: %s", r->field,
					 (int) (r->p - r->start), msg) :
			psprintf("invalid Avro value at byte %d: %s", (int) (r->p - r->start), msg);
}

bool
eo_avro_skip(EoAvroReader *r, EoAvroNode *s, int depth)
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
				if (!eo_avro_skip(r, s->children[i], depth + 1))
					return false;
			return true;
		case EO_AVRO_UNION:
			{
				EoAvroNode *b;

				return eo_avro_read_branch(r, s, &b) && eo_avro_skip(r, b, depth + 1);
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
					if (!eo_avro_skip(r, s->children[0], depth + 1))
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

static bool eo_decode_record(EoAvroReader *r, EoFields *f, EoAvroNode *s,
							 int level, const char **parents);

/* Does column c's path, down to level (0-based), name this field? */
bool
eo_avro_path_at(EoColumn *col, int level, const char *name, const char **parents)
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

/*
 * Field i of record s, at level: every column it feeds (fp's, or found by
 * name without a plan), then the record below it if a column's path goes
 * on, else skipped if nothing read it.
 */
bool
eo_avro_decode_field(EoAvroReader *r, EoFields *f, EoAvroNode *s, int i, int level,
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
			if (!eo_avro_path_at(col, level, name, parents))
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
		return eo_avro_skip(r, sub, level + 1);
	}
	return read || eo_avro_skip(r, fs, level + 1);
}

static bool
eo_decode_record(EoAvroReader *r, EoFields *f, EoAvroNode *s, int level, const char **parents)
{
	for (int i = 0; i < s->nchildren; i++)
		if (!eo_avro_decode_field(r, f, s, i, level, parents, NULL))
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
		ok = eo_avro_decode_steps(&r, f, schema, parents);
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
