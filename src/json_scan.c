/*
 * json_scan.c
 *		The JSON scanner of the json format: one validating pass over a value
 *		that captures the text of the mapped fields and copies nothing else.
 *
 * It keeps its own stack of open containers instead of recursing, so no
 * nesting can exhaust the C stack; nesting beyond EO_JSON_MAX_NESTING is
 * refused (the record becomes a dead letter) before anything recursive, such
 * as jsonb_in, sees the value.  Field names at mapped levels and captured
 * strings with escapes are de-escaped by PostgreSQL's own lexer; invalid
 * JSON returns EO_JSON_INVALID, and the caller asks PostgreSQL's parser for
 * the error message.  Code that hands JSON to a recursive parser itself
 * (PostgreSQL's, jansson's) asks eo_json_nesting_within first.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#include "compat.h"
#include "json_scan.h"

/* frames kept in full: only containers this shallow can be captured */
#define EO_FRAMES (EO_MAX_DEPTH + 2)

typedef struct EoFrame
{
	const char *start;			/* where the container begins */
	int			field_level;	/* the mapped level of the field whose value
								 * it is, or 0 */
	int			level;			/* an object whose fields sit at this mapped
								 * level, or 0 */
} EoFrame;

typedef struct EoScan
{
	const char *p;
	const char *end;
	EoFields   *f;
	EoSource	source;			/* the columns it fills: EO_SRC_JSON or
								 * EO_SRC_ENVELOPE */
	int			depth;
	const char *name[EO_MAX_DEPTH + 1];
	int			namelen[EO_MAX_DEPTH + 1];
	EoFrame		frames[EO_FRAMES];
	/* one bit per open container: set for '[', clear for '{' */
	uint8		arrays[(EO_JSON_MAX_NESTING + 7) / 8];
} EoScan;

static inline void
eo_scan_set_kind(EoScan *s, int depth, char kind)
{
	if (kind == '[')
		s->arrays[depth / 8] |= (uint8) (1 << (depth % 8));
	else
		s->arrays[depth / 8] &= (uint8) ~(1 << (depth % 8));
}

static inline char
eo_scan_kind(const EoScan *s, int depth)
{
	return (s->arrays[depth / 8] & (1 << (depth % 8))) ? '[' : '{';
}

static inline void
eo_scan_ws(EoScan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/*
 * Does any of the eight bytes of w end a run of plain string characters (a
 * quote, a backslash or a control character)?  The usual bit trick: a byte
 * below n borrows into its top bit when n is subtracted; bytes of 0x80 and
 * above never count.
 */
static inline bool
eo_scan_special8(uint64 w)
{
	const uint64 ones = UINT64CONST(0x0101010101010101);
	uint64		q = w ^ (ones * '"');
	uint64		b = w ^ (ones * '\\');

	return ((((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) &
			(ones * 0x80)) != 0;
}

/* At an opening quote; on success p is past the closing quote. */
static bool
eo_scan_string(EoScan *s, bool *escaped)
{
	const char *p = s->p + 1;

	*escaped = false;
	for (;;)
	{
		unsigned char c;

		/* most strings are plain characters: eight at a time */
		while (s->end - p >= 8)
		{
			uint64		w;

			memcpy(&w, p, sizeof(w));
			if (eo_scan_special8(w))
				break;
			p += 8;
		}
		while (p < s->end && (c = (unsigned char) *p) != '"' && c != '\\' && c >= 0x20)
			p++;
		if (p >= s->end)
			return false;
		c = (unsigned char) *p;
		if (c == '"')
		{
			s->p = p + 1;
			return true;
		}
		if (c < 0x20)
			return false;
		/* a backslash */
		*escaped = true;
		if (++p >= s->end)
			return false;
		switch (*p)
		{
			case '"':
			case '\\':
			case '/':
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				break;
			case 'u':
				for (int i = 0; i < 4; i++)
					if (++p >= s->end || !isxdigit((unsigned char) *p))
						return false;
				break;
			default:
				return false;
		}
		p++;
	}
}

static bool
eo_scan_number(EoScan *s)
{
	const char *p = s->p;
	const char *e = s->end;

	if (p < e && *p == '-')
		p++;
	if (p >= e || !isdigit((unsigned char) *p))
		return false;
	if (*p == '0')
		p++;
	else
		while (p < e && isdigit((unsigned char) *p))
			p++;
	if (p < e && *p == '.')
	{
		p++;
		if (p >= e || !isdigit((unsigned char) *p))
			return false;
		while (p < e && isdigit((unsigned char) *p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || !isdigit((unsigned char) *p))
			return false;
		while (p < e && isdigit((unsigned char) *p))
			p++;
	}
	/* a number runs into the next structural character or whitespace */
	if (p < e && (isalnum((unsigned char) *p) || *p == '.' || *p == '"'))
		return false;
	s->p = p;
	return true;
}

static bool
eo_scan_literal(EoScan *s, const char *word, int len)
{
	if (s->end - s->p < len || memcmp(s->p, word, len) != 0)
		return false;
	if (s->end - s->p > len && isalnum((unsigned char) s->p[len]))
		return false;
	s->p += len;
	return true;
}

/* De-escape one JSON string token with PostgreSQL's lexer; NULL if refused. */
static char *
eo_unescape(const char *start, int len)
{
	JsonLexContext *lex = eo_json_lexer(start, len, true);

	if (json_lex(lex) != JSON_SUCCESS || lex->strval == NULL)
		return NULL;
	return lex->strval->data;
}

/*
 * A captured value as a NUL-terminated copy: pnstrdup without its strlen
 * (the value was validated, and valid JSON text holds no NUL byte).
 */
static char *
eo_scan_copy(const char *start, int len)
{
	char	   *v = palloc(len + 1);

	memcpy(v, start, len);
	v[len] = '\0';
	return v;
}

/* Do the field names down to this level spell the start of col's path? */
static inline bool
eo_scan_path_matches(EoScan *s, const EoColumn *col, int level)
{
	for (int k = 0; k < level; k++)
		if (col->pathlen[k] != s->namelen[k + 1] ||
			memcmp(col->path[k], s->name[k + 1], s->namelen[k + 1]) != 0)
			return false;
	return true;
}

/* Does any column's path continue below this field? */
static bool
eo_scan_descend(EoScan *s, int level)
{
	const EoMapping *map = s->f->map;

	for (int c = 0; c < map->ncolumns; c++)
	{
		const EoColumn *col = &map->columns[c];

		if (col->source == s->source && col->npath > level &&
			eo_scan_path_matches(s, col, level))
			return true;
	}
	return false;
}

/*
 * Store the value that runs from start to p (kind 's'tring, 'n'ull, or
 * anything else kept as JSON text) into every column mapped from the path of
 * the field at this level.
 */
static bool
eo_scan_capture(EoScan *s, int level, const char *start, char kind, bool escaped)
{
	const EoMapping *map = s->f->map;
	int			len = s->p - start;

	for (int c = 0; c < map->ncolumns; c++)
	{
		const EoColumn *col = &map->columns[c];

		if (col->source != s->source || col->npath != level ||
			!eo_scan_path_matches(s, col, level))
			continue;
		if (kind == 'n')
			eo_fields_null(s->f, c);
		else if (kind == 's' && !col->json_raw && escaped)
		{
			char	   *v = eo_unescape(start, len);

			if (v == NULL)
				return false;
			eo_fields_text(s->f, c, v, strlen(v));
		}
		else if (kind == 's' && !col->json_raw)
			eo_fields_text(s->f, c, eo_scan_copy(start + 1, len - 2), len - 2);
		else
			eo_fields_text(s->f, c, eo_scan_copy(start, len), len);
	}
	return true;
}

/* At a field name in the innermost object; p ends past the colon. */
static bool
eo_scan_field(EoScan *s, int *field_level)
{
	const char *name = s->p;
	bool		escaped;
	int			level = s->depth <= EO_FRAMES ? s->frames[s->depth - 1].level : 0;

	*field_level = 0;
	if (s->p >= s->end || *s->p != '"' || !eo_scan_string(s, &escaped))
		return false;
	if (level > 0 && level <= s->f->map->max_depth)
	{
		if (escaped)
		{
			char	   *v = eo_unescape(name, s->p - name);

			if (v == NULL)
				return false;
			s->name[level] = v;
			s->namelen[level] = strlen(v);
		}
		else
		{
			s->name[level] = name + 1;
			s->namelen[level] = s->p - name - 2;
		}
		*field_level = level;
	}
	eo_scan_ws(s);
	if (s->p >= s->end || *s->p != ':')
		return false;
	s->p++;
	return true;
}

/* At '{' or '['; field_level as for the value this container is. */
static EoJsonScan
eo_scan_open(EoScan *s, int field_level)
{
	char		kind = *s->p;

	if (s->depth == EO_JSON_MAX_NESTING)
		return EO_JSON_TOO_DEEP;
	eo_scan_set_kind(s, s->depth, kind);
	if (s->depth < EO_FRAMES)
	{
		EoFrame    *fr = &s->frames[s->depth];

		fr->start = s->p;
		fr->field_level = field_level;
		if (kind != '{')
			fr->level = 0;
		else if (s->depth == 0)
			fr->level = 1;
		else
			fr->level = field_level > 0 && eo_scan_descend(s, field_level) ? field_level + 1 : 0;
	}
	s->depth++;
	s->p++;
	return EO_JSON_OK;
}

static EoJsonScan eo_scan_run(EoScan *s);

/*
 * Scan the JSON value in p .. end (an object: the caller checked the first
 * character) and hand the mapped fields' text to f.
 */
EoJsonScan
eo_json_scan(EoFields *f, const char *p, const char *end)
{
	return eo_json_scan_source(f, p, end, EO_SRC_JSON);
}

/* The same for the columns fed from source's paths. */
EoJsonScan
eo_json_scan_source(EoFields *f, const char *p, const char *end, EoSource source)
{
	EoScan		scan;			/* about 1.6 kB: no allocation per value */
	EoScan	   *s = &scan;

	s->source = source;
	s->p = p;
	s->end = end;
	s->f = f;
	s->depth = 0;
	return eo_scan_run(s);
}

static EoJsonScan
eo_scan_run(EoScan *s)
{
	int			field_level = 0;

	for (;;)
	{
		const char *start;
		char		kind;
		bool		escaped = false;
		bool		closed = false;

		/* a value is next */
		eo_scan_ws(s);
		if (s->p >= s->end)
			return EO_JSON_INVALID;
		start = s->p;
		kind = *s->p;
		switch (kind)
		{
			case '{':
			case '[':
				{
					EoJsonScan	r = eo_scan_open(s, field_level);

					if (r != EO_JSON_OK)
						return r;
					eo_scan_ws(s);
					if (s->p < s->end && *s->p == (kind == '{' ? '}' : ']'))
					{
						s->p++;
						closed = true;
						break;
					}
					if (kind == '[')
					{
						field_level = 0;
						continue;
					}
					eo_scan_ws(s);
					if (!eo_scan_field(s, &field_level))
						return EO_JSON_INVALID;
					continue;
				}
			case '"':
				if (!eo_scan_string(s, &escaped))
					return EO_JSON_INVALID;
				break;
			case 't':
				if (!eo_scan_literal(s, "true", 4))
					return EO_JSON_INVALID;
				break;
			case 'f':
				if (!eo_scan_literal(s, "false", 5))
					return EO_JSON_INVALID;
				break;
			case 'n':
				if (!eo_scan_literal(s, "null", 4))
					return EO_JSON_INVALID;
				break;
			default:
				if (!eo_scan_number(s))
					return EO_JSON_INVALID;
				break;
		}
		if (!closed && field_level > 0 &&
			!eo_scan_capture(s, field_level, start, kind == '"' ? 's' : kind, escaped))
			return EO_JSON_INVALID;

		/* after a value: close containers, or go on to the next element */
		for (;;)
		{
			char		open;

			if (closed)
			{
				s->depth--;
				if (s->depth < EO_FRAMES && s->frames[s->depth].field_level > 0 &&
					!eo_scan_capture(s, s->frames[s->depth].field_level,
									 s->frames[s->depth].start, 'c', false))
					return EO_JSON_INVALID;
				closed = false;
			}
			eo_scan_ws(s);
			if (s->depth == 0)
				return s->p == s->end ? EO_JSON_OK : EO_JSON_INVALID;
			if (s->p >= s->end)
				return EO_JSON_INVALID;
			open = eo_scan_kind(s, s->depth - 1);
			if (*s->p == (open == '{' ? '}' : ']'))
			{
				s->p++;
				closed = true;
				continue;
			}
			if (*s->p != ',')
				return EO_JSON_INVALID;
			s->p++;
			eo_scan_ws(s);
			if (open == '[')
				field_level = 0;
			else if (!eo_scan_field(s, &field_level))
				return EO_JSON_INVALID;
			break;
		}
	}
}

/*
 * Does the JSON text in p .. end nest at most limit containers deep?  It
 * counts brackets outside strings without validating: a recursive parser
 * stops at the first invalid token, and up to there the count is its depth.
 */
bool
eo_json_nesting_within(const char *p, const char *end, int limit)
{
	int			depth = 0;
	bool		in_string = false;

	for (; p < end; p++)
	{
		if (in_string)
		{
			if (*p == '\\')
				p++;
			else if (*p == '"')
				in_string = false;
		}
		else if (*p == '"')
			in_string = true;
		else if (*p == '{' || *p == '[')
		{
			if (++depth > limit)
				return false;
		}
		else if (*p == '}' || *p == ']')
			depth--;
	}
	return true;
}
