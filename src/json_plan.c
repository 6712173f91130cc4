/*
 * json_plan.c
 *		The tree of a mapping's JSON paths, built once per mapping (the json
 *		format's state, format_json.c's prepare): each node holds the columns
 *		read from exactly its path and an open-addressed table of the field
 *		names below it, so that the scanner (json_scan.c) looks a field name
 *		up with one hash probe instead of comparing it with every column's
 *		path.
 */
#include "postgres.h"

#include "json_plan.h"

/*
 * The node of the path that cols (of ncols columns, all of whose paths
 * start with it) share down to level, whose last name is name.
 */
static EoJsonNode *
eo_plan_node(const EoMapping *map, const int *cols, int ncols, int level,
			 const char *name, int namelen)
{
	EoJsonNode *n = palloc0(sizeof(EoJsonNode));
	int		   *sub;
	int			nchildren = 0;
	int			size = 1;

	n->name = name;
	n->namelen = namelen;
	n->prefix = eo_name_word(name, namelen, namelen);
	n->plain = true;
	for (int i = 0; i < namelen; i++)
		if (name[i] == '"' || name[i] == '\\' || (unsigned char) name[i] < 0x20)
			n->plain = false;
	if (namelen < 16)
	{
		int			off = namelen < 8 ? 0 : 8;
		char		buf[8] = {0};

		memcpy(buf, name + off, namelen - off);
		buf[namelen - off] = '"';
		memcpy(&n->quoted, buf, sizeof(n->quoted));
		memset(buf, 0xff, namelen - off + 1);
		memcpy(&n->quoted_mask, buf, sizeof(n->quoted_mask));
	}
	n->names = level + 1 <= map->max_depth;
	n->cols = palloc(sizeof(int) * Max(ncols, 1));
	n->raw = palloc(sizeof(bool) * Max(ncols, 1));
	n->mask = -1;
	for (int i = 0; i < ncols; i++)
		if (level > 0 && map->columns[cols[i]].npath == level)
		{
			n->raw[n->ncols] = map->columns[cols[i]].json_raw;
			n->cols[n->ncols++] = cols[i];
		}
		else if (map->columns[cols[i]].npath > level)
			nchildren++;
	if (nchildren == 0)
		return n;
	while (size < 2 * nchildren)
		size *= 2;
	n->mask = size - 1;
	n->children = palloc0(sizeof(EoJsonNode *) * size);
	sub = palloc(sizeof(int) * ncols);

	/* one child per distinct name at this level, for the columns below it */
	for (int i = 0; i < ncols; i++)
	{
		const EoColumn *col = &map->columns[cols[i]];
		const char *cname;
		int			clen;
		int			nsub = 0;
		uint32		h;

		if (col->npath <= level)
			continue;
		cname = col->path[level];
		clen = col->pathlen[level];
		if (eo_plan_child(n, cname, clen, clen) != NULL)
			continue;
		for (int j = i; j < ncols; j++)
		{
			const EoColumn *other = &map->columns[cols[j]];

			if (other->npath > level && other->pathlen[level] == clen &&
				memcmp(other->path[level], cname, clen) == 0)
				sub[nsub++] = cols[j];
		}
		h = eo_name_hash(eo_name_word(cname, clen, clen), clen) & n->mask;
		while (n->children[h] != NULL)
			h = (h + 1) & n->mask;
		n->children[h] = eo_plan_node(map, sub, nsub, level + 1, cname, clen);
	}
	pfree(sub);
	return n;
}

static EoJsonNode *
eo_plan_root(const EoMapping *map, EoSource source)
{
	int		   *cols = palloc(sizeof(int) * Max(map->ncolumns, 1));
	int			ncols = 0;
	EoJsonNode *root;

	for (int c = 0; c < map->ncolumns; c++)
		if (map->columns[c].source == source)
			cols[ncols++] = c;
	root = eo_plan_node(map, cols, ncols, 0, "", 0);
	pfree(cols);
	return root;
}

/*
 * The paths of map's columns fed from the value's fields and from a
 * Debezium event's, in the current memory context: built once per mapping
 * (the json format's state).
 */
EoJsonPlan *
eo_json_plan(const EoMapping *map)
{
	EoJsonPlan *plan = palloc(sizeof(EoJsonPlan));

	plan->json = eo_plan_root(map, EO_SRC_JSON);
	plan->envelope = eo_plan_root(map, EO_SRC_ENVELOPE);
	return plan;
}
