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
 *
 * Every instruction per byte and per field counts here (the worker's main
 * thread is CPU-bound on this pass): strings are searched sixteen or eight
 * bytes at a time; a field name is looked up in the mapping's tree of paths
 * (json_plan.c) with one hash probe, or, where the last record had the same
 * field there, matched with one or two 8-byte compares.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "port/pg_bitutils.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "compat.h"
#include "json_plan.h"

/* frames kept in full: only containers this shallow can be captured */
#define EO_FRAMES (EO_MAX_DEPTH + 2)

typedef struct EoFrame
{
	const char *start;			/* where the container begins */
	const EoJsonNode *capture;	/* the path whose columns take its text, or
								 * NULL */
	EoJsonNode *node;			/* an object whose fields are looked up
								 * below this path, or NULL */
	EoJsonNode *last;			/* the object's last mapped field so far */
} EoFrame;

typedef struct EoScan
{
	EoFields   *f;
	/* captured values are copied one after another into a chunk */
	char	   *arena;
	size_t		arena_left;
	size_t		arena_chunk;
	EoFrame		frames[EO_FRAMES];
	/* one bit per open container: set for '[', clear for '{' */
	uint8		arrays[(EO_JSON_MAX_NESTING + 7) / 8];
} EoScan;

/* JSON's whitespace */
static const bool eo_ws[256] = {[' '] = true, ['\t'] = true, ['\n'] = true, ['\r'] = true};

/* what ends a run of plain string characters: a quote, a backslash, a control character */
static const bool eo_stop[256] = {
	[0x00] = true, [0x01] = true, [0x02] = true, [0x03] = true, [0x04] = true, [0x05] = true,
	[0x06] = true, [0x07] = true, [0x08] = true, [0x09] = true, [0x0a] = true, [0x0b] = true,
	[0x0c] = true, [0x0d] = true, [0x0e] = true, [0x0f] = true, [0x10] = true, [0x11] = true,
	[0x12] = true, [0x13] = true, [0x14] = true, [0x15] = true, [0x16] = true, [0x17] = true,
	[0x18] = true, [0x19] = true, [0x1a] = true, [0x1b] = true, [0x1c] = true, [0x1d] = true,
	[0x1e] = true, [0x1f] = true, ['"'] = true, ['\\'] = true
};

static const bool eo_xdigit[256] = {
	['0'] = true, ['1'] = true, ['2'] = true, ['3'] = true, ['4'] = true, ['5'] = true,
	['6'] = true, ['7'] = true, ['8'] = true, ['9'] = true, ['a'] = true, ['b'] = true,
	['c'] = true, ['d'] = true, ['e'] = true, ['f'] = true, ['A'] = true, ['B'] = true,
	['C'] = true, ['D'] = true, ['E'] = true, ['F'] = true
};

#define EO_DIGIT(c) ((unsigned) ((c) - '0') <= 9)

static inline const char *
eo_skip_ws(const char *p, const char *end)
{
	while (p < end && eo_ws[(unsigned char) *p])
		p++;
	return p;
}

/* p at c after any whitespace, or NULL if something else comes first */
static pg_attribute_always_inline const char *
eo_scan_expect(const char *p, const char *end, char c)
{
	for (; p < end; p++)
	{
		if (*p == c)
			return p;
		if (!eo_ws[(unsigned char) *p])
			return NULL;
	}
	return NULL;
}

static inline void
eo_scan_set_kind(EoScan *s, int depth, char kind)
{
	if (kind == '[')
		s->arrays[depth / 8] |= (uint8) (1 << (depth % 8));
	else
		s->arrays[depth / 8] &= (uint8) ~(1 << (depth % 8));
}

static inline bool
eo_scan_in_array(const EoScan *s, int depth)
{
	return (s->arrays[depth / 8] & (1 << (depth % 8))) != 0;
}

/*
 * The top bit of each byte of w that ends a run of plain string characters
 * (a quote, a backslash or a control character), by the usual bit trick: a
 * byte below n borrows into its top bit when n is subtracted; bytes of 0x80
 * and above never count.  A borrow can also mark a byte above (more
 * significant than) one that truly counts, never one below: the lowest mark
 * is exact.
 */
static inline uint64
eo_special8(uint64 w)
{
	const uint64 ones = UINT64CONST(0x0101010101010101);
	uint64		q = w ^ (ones * '"');
	uint64		b = w ^ (ones * '\\');

	return (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) &
		(ones * 0x80);
}

/*
 * The first byte from p on that ends a run of plain string characters, or
 * end: sixteen bytes at a time where SSE2 is there, then eight, then one.
 */
static pg_attribute_always_inline const char *
eo_scan_plain(const char *p, const char *end)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i bslash = _mm_set1_epi8('\\');
	const __m128i ctl = _mm_set1_epi8(0x1f);

	while (end - p >= 16)
	{
		__m128i		v = _mm_loadu_si128((const __m128i *) p);
		int			m;

		/* a quote, a backslash, or a byte that min(byte, 0x1f) leaves alone */
		m = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
														_mm_cmpeq_epi8(v, bslash)),
										   _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v)));
		if (m != 0)
			return p + pg_rightmost_one_pos32(m);
		p += 16;
	}
#endif
	while (end - p >= 8)
	{
		uint64		w;
		uint64		m;

		memcpy(&w, p, sizeof(w));
		m = eo_special8(w);
		if (m != 0)
		{
#ifdef WORDS_BIGENDIAN
			/* the exact mark is the least significant, the last byte */
			while (!eo_stop[(unsigned char) *p])
				p++;
			return p;
#else
			return p + pg_rightmost_one_pos64(m) / 8;
#endif
		}
		p += 8;
	}
	while (p < end && !eo_stop[(unsigned char) *p])
		p++;
	return p;
}

/*
 * The rest of a string from its first byte that is not a plain character
 * (p, maybe end): its escapes checked, past the closing quote, or NULL if
 * the string is not valid JSON.
 */
static pg_noinline const char *
eo_scan_string_rest(const char *p, const char *end, bool *escaped)
{
	for (;;)
	{
		if (p >= end)
			return NULL;
		if (*p == '"')
			return p + 1;
		if (*p != '\\')
			return NULL;		/* a control character */
		*escaped = true;
		if (++p >= end)
			return NULL;
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
				if (end - p < 5 || !eo_xdigit[(unsigned char) p[1]] ||
					!eo_xdigit[(unsigned char) p[2]] || !eo_xdigit[(unsigned char) p[3]] ||
					!eo_xdigit[(unsigned char) p[4]])
					return NULL;
				p += 4;
				break;
			default:
				return NULL;
		}
		p = eo_scan_plain(p + 1, end);
	}
}

/*
 * At an opening quote: past the closing quote, or NULL if the string is not
 * valid JSON.  *escaped is set if it has a backslash.
 */
static pg_attribute_always_inline const char *
eo_scan_string(const char *p, const char *end, bool *escaped)
{
	p = eo_scan_plain(p + 1, end);
	if (likely(p < end && *p == '"'))
		return p + 1;
	return eo_scan_string_rest(p, end, escaped);
}

/*
 * At a number: past it, or NULL.  What follows it is not looked at: a
 * number runs into a letter, a point or a quote only in text that the
 * structural pass refuses right after (it wants a comma, a bracket, white
 * space or the end).
 */
static inline const char *
eo_scan_number(const char *p, const char *e)
{
	if (p < e && *p == '-')
		p++;
	if (p >= e || !EO_DIGIT(*p))
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < e && EO_DIGIT(*p))
			p++;
	if (p < e && *p == '.')
	{
		p++;
		if (p >= e || !EO_DIGIT(*p))
			return NULL;
		while (p < e && EO_DIGIT(*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || !EO_DIGIT(*p))
			return NULL;
		while (p < e && EO_DIGIT(*p))
			p++;
	}
	return p;
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
 * A captured value as a NUL-terminated copy (valid JSON text holds no NUL
 * byte), from a chunk shared by the record's captured values: one palloc
 * per record instead of one per value.
 */
static inline char *
eo_scan_copy(EoScan *s, const char *start, int len)
{
	char	   *v;

	if ((size_t) len + 1 > s->arena_left)
	{
		s->arena_left = Max((size_t) len + 1, s->arena_chunk);
		s->arena = palloc(s->arena_left);
	}
	v = s->arena;
	s->arena += len + 1;
	s->arena_left -= len + 1;
	memcpy(v, start, len);
	v[len] = '\0';
	return v;
}

/*
 * Store the value from start to end (kind 's'tring, 'n'ull, or anything
 * else kept as JSON text) into every column read from path n.
 */
static pg_noinline bool
eo_scan_capture_all(EoScan *s, const EoJsonNode *n, const char *start, const char *end,
					char kind, bool escaped)
{
	EoFields   *f = s->f;
	int			len = end - start;

	for (int i = 0; i < n->ncols; i++)
	{
		int			c = n->cols[i];

		if (kind == 'n')
			eo_fields_null(f, c);
		else if (kind == 's' && !n->raw[i] && escaped)
		{
			char	   *v = eo_unescape(start, len);

			if (v == NULL)
				return false;
			eo_fields_text(f, c, v, strlen(v));
		}
		else if (kind == 's' && !n->raw[i])
			eo_fields_text(f, c, eo_scan_copy(s, start + 1, len - 2), len - 2);
		else
			eo_fields_text(f, c, eo_scan_copy(s, start, len), len);
	}
	return true;
}

/* The same, written out for the usual path read by one column. */
static pg_attribute_always_inline bool
eo_scan_capture(EoScan *s, const EoJsonNode *n, const char *start, const char *end,
				char kind, bool escaped)
{
	int			len = end - start;

	if (n->ncols != 1 || escaped)
		return eo_scan_capture_all(s, n, start, end, kind, escaped);
	if (kind == 'n')
		eo_fields_null(s->f, n->cols[0]);
	else if (kind == 's' && !n->raw[0])
		eo_fields_text(s->f, n->cols[0], eo_scan_copy(s, start + 1, len - 2), len - 2);
	else
		eo_fields_text(s->f, n->cols[0], eo_scan_copy(s, start, len), len);
	return true;
}

static EoJsonScan eo_scan_run(EoScan *s, EoJsonNode *root, const char *p,
							  const char *end);

/*
 * Scan the JSON value in p .. end (an object: the caller checked the first
 * character) and hand the mapped fields' text to f, whose mapping has the
 * json format.
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
	const EoJsonPlan *plan = f->map->format_state;
	EoScan		scan;			/* about 1.7 kB: no allocation per value */

	if (f->map->format != &eo_format_json || plan == NULL)
		elog(ERROR, "JSON scan of a mapping without the json format's plan");
	Assert(source == EO_SRC_JSON || source == EO_SRC_ENVELOPE);
	scan.f = f;
	scan.arena = NULL;
	scan.arena_left = 0;
	scan.arena_chunk = Min((size_t) (end - p) + 16, 1024);
	return eo_scan_run(&scan, source == EO_SRC_JSON ? plan->json : plan->envelope, p, end);
}

static EoJsonScan
eo_scan_run(EoScan *s, EoJsonNode *root, const char *p, const char *end)
{
	EoJsonNode *node = NULL;	/* the innermost object's fields' */
	EoJsonNode *field = NULL;	/* the path of the value next, if mapped */
	EoJsonNode *last = NULL;	/* node's last mapped field so far */
	bool		in_array = false;	/* the innermost container is an array */
	int			depth = 0;
	const char *start;
	const char *name;
	bool		escaped;
	char		kind;

	/*
	 * Whitespace is looked for only where the expected character is not
	 * there: compact JSON, the usual kind, costs no test for it.
	 */
value:
	if (p >= end)
		return EO_JSON_INVALID;
	start = p;
	kind = *p;
	escaped = false;
	switch (kind)
	{
		case ' ':
		case '\t':
		case '\n':
		case '\r':
			p++;
			goto value;
		case '{':
		case '[':
			if (depth == EO_JSON_MAX_NESTING)
				return EO_JSON_TOO_DEEP;
			eo_scan_set_kind(s, depth, kind);
			in_array = kind == '[';
			node = NULL;
			if (depth > 0 && depth <= EO_FRAMES)
				s->frames[depth - 1].last = last;
			last = NULL;
			if (depth < EO_FRAMES)
			{
				EoFrame    *fr = &s->frames[depth];

				fr->start = p;
				fr->capture = field != NULL && field->ncols > 0 ? field : NULL;
				if (!in_array)
					node = depth == 0 ? root : field != NULL && field->mask >= 0 ? field : NULL;
				fr->node = node;
			}
			depth++;
			p = eo_skip_ws(p + 1, end);
			if (p < end && *p == (in_array ? ']' : '}'))
			{
				p++;
				goto closed;
			}
			if (in_array)
			{
				field = NULL;
				goto value;
			}
			goto name;
		case '"':
			p = eo_scan_string(p, end, &escaped);
			kind = 's';
			break;
		case 't':
			p = end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
			break;
		case 'f':
			p = end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
			break;
		case 'n':
			p = end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
			break;
		default:
			p = eo_scan_number(p, end);
			break;
	}
	if (p == NULL)
		return EO_JSON_INVALID;
	if (field != NULL && field->ncols > 0 &&
		!eo_scan_capture(s, field, start, p, kind, escaped))
		return EO_JSON_INVALID;

	/* after a value: close containers, or go on to the next element */
after:
	if (depth == 0)
		return eo_skip_ws(p, end) == end ? EO_JSON_OK : EO_JSON_INVALID;
	if (p >= end)
		return EO_JSON_INVALID;
	if (*p == ',')
	{
		p++;
		if (in_array)
		{
			field = NULL;
			goto value;
		}
		goto name;
	}
	if (*p != (in_array ? ']' : '}'))
	{
		if (!eo_ws[(unsigned char) *p])
			return EO_JSON_INVALID;
		p++;
		goto after;
	}
	p++;
closed:
	depth--;
	if (depth < EO_FRAMES && s->frames[depth].capture != NULL &&
		!eo_scan_capture(s, s->frames[depth].capture, s->frames[depth].start, p, 'c', false))
		return EO_JSON_INVALID;
	if (depth > 0)
	{
		in_array = eo_scan_in_array(s, depth - 1);
		node = depth - 1 < EO_FRAMES ? s->frames[depth - 1].node : NULL;
		last = depth - 1 < EO_FRAMES ? s->frames[depth - 1].last : NULL;
	}
	goto after;

	/* at a field name in the innermost object; then its colon */
name:
	if ((p = eo_scan_expect(p, end, '"')) == NULL)
		return EO_JSON_INVALID;
	name = p;
	if (node != NULL && node->names)
	{
		EoJsonNode **hint = last != NULL ? &last->next_hint : &node->first_hint;

		/* the field that came here in the last record, most likely */
		if (eo_hint_matches(*hint, p + 1, end))
		{
			field = last = *hint;
			p += field->namelen + 2;
			goto colon;
		}
		escaped = false;
		p = eo_scan_string(p, end, &escaped);
		if (p == NULL)
			return EO_JSON_INVALID;
		if (escaped)
		{
			char	   *v = eo_unescape(name, p - name);

			if (v == NULL)
				return EO_JSON_INVALID;
			field = eo_plan_child(node, v, strlen(v), strlen(v) + 1);
		}
		else
			field = eo_plan_child(node, name + 1, p - name - 2, end - name - 1);
		if (field != NULL)
		{
			if (field->plain)
				*hint = field;
			last = field;
		}
	}
	else
	{
		escaped = false;
		p = eo_scan_string(p, end, &escaped);
		if (p == NULL)
			return EO_JSON_INVALID;
		field = NULL;
	}
colon:
	if ((p = eo_scan_expect(p, end, ':')) == NULL)
		return EO_JSON_INVALID;
	p++;
	goto value;
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
