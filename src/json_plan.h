/*
 * json_plan.h
 *		A mapping's JSON paths as a tree (json_plan.c builds it once per
 *		mapping, as the json format's state) and the lookups the scanner
 *		(json_scan.c) makes in it for every field name.
 */
#ifndef EO_JSON_PLAN_H
#define EO_JSON_PLAN_H

#include "json_scan.h"

/*
 * A path of the mapping: the columns read from exactly this path, and the
 * fields below it that some column's path goes on to.
 */
typedef struct EoJsonNode
{
	const char *name;			/* the last field name of the path */
	int			namelen;
	uint64		prefix;			/* its first 8 bytes, zero-padded */
	/*
	 * The name's bytes after the first 8 (all of a shorter one) with its
	 * closing quote, zero-padded, for names under 16 bytes; and which of
	 * those 8 bytes count
	 */
	uint64		quoted;
	uint64		quoted_mask;
	bool		plain;			/* the name is its own JSON text: no quote,
								 * backslash or control character */
	bool		names;			/* an object here is at a mapped level: its
								 * field names are de-escaped (and must be
								 * valid for PostgreSQL) */
	int			ncols;
	int		   *cols;			/* ascending */
	bool	   *raw;			/* each one's json_raw: it keeps JSON text */
	int			mask;			/* children has mask + 1 slots; -1: none */
	struct EoJsonNode **children;	/* open addressing by eo_name_hash */

	/*
	 * The order of the last record's fields, which the next record most
	 * likely repeats: the mapped field an object here began with, and the
	 * one that came after this field.  The scan keeps them.
	 */
	struct EoJsonNode *first_hint;
	struct EoJsonNode *next_hint;
} EoJsonNode;

struct EoJsonPlan
{
	EoJsonNode *json;			/* the value's fields (EO_SRC_JSON) */
	EoJsonNode *envelope;		/* the Debezium event's (EO_SRC_ENVELOPE) */
};

/*
 * The first min(len, 8) bytes of name, zero-padded, as a word in memory
 * order; avail bytes can be read from name.
 */
static inline uint64
eo_name_word(const char *name, int len, size_t avail)
{
	uint64		w = 0;
	int			n = Min(len, 8);

	if (avail < 8)
		memcpy(&w, name, n);
	else if (n > 0)
	{
		memcpy(&w, name, sizeof(w));
#ifdef WORDS_BIGENDIAN
		w &= ~UINT64CONST(0) << (64 - 8 * n);
#else
		w &= ~UINT64CONST(0) >> (64 - 8 * n);
#endif
	}
	return w;
}

static inline uint32
eo_name_hash(uint64 word, int len)
{
	return (uint32) ((word * UINT64CONST(0x9E3779B97F4A7C15)) >> 32) ^ (uint32) len;
}

/* The field name of len bytes (avail readable) below n, or NULL. */
static inline EoJsonNode *
eo_plan_child(const EoJsonNode *n, const char *name, int len, size_t avail)
{
	uint64		w;
	uint32		h;

	if (n->mask < 0)
		return NULL;
	w = eo_name_word(name, len, avail);
	h = eo_name_hash(w, len) & n->mask;
	for (;;)
	{
		EoJsonNode *c = n->children[h];

		if (c == NULL)
			return NULL;
		if (c->prefix == w && c->namelen == len &&
			(len <= 8 || memcmp(c->name + 8, name + 8, len - 8) == 0))
			return c;
		h = (h + 1) & n->mask;
	}
}

/*
 * Is the string at q (past its opening quote, end the value's end) exactly
 * the plain name of h?  Then it is that name's JSON text: no scan needed.
 */
static inline bool
eo_hint_matches(const EoJsonNode *h, const char *q, const char *end)
{
	uint64		w;

	if (h == NULL || end - q < 8 || end - q <= h->namelen)
		return false;
	memcpy(&w, q, sizeof(w));
	if (h->namelen < 8)
		return (w & h->quoted_mask) == h->quoted;
	if (w != h->prefix)
		return false;
	if (h->namelen < 16 && end - q >= 16)
	{
		memcpy(&w, q + 8, sizeof(w));
		return (w & h->quoted_mask) == h->quoted;
	}
	return q[h->namelen] == '"' && memcmp(q + 8, h->name + 8, h->namelen - 8) == 0;
}

#endif							/* EO_JSON_PLAN_H */
