/*
 * compat.h
 *		Every difference between the supported PostgreSQL majors (15 to 18)
 *		that the code meets, in one place: call sites use these and carry no
 *		#if of their own.
 */
#ifndef EO_COMPAT_H
#define EO_COMPAT_H

#include "postgres.h"

#include "access/genam.h"
#include "common/jsonapi.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "parser/parse_relation.h"
#include "postmaster/bgworker.h"
#include "utils/acl.h"
#include "utils/regproc.h"
#include "utils/relcache.h"
/* 16 moved the varlena macros (VARDATA, SET_VARSIZE, ...) out of postgres.h */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 190000
#error "eo_ingest supports PostgreSQL 15 to 18"
#endif

/*
 * A JSON lexer over len bytes at json, in the given encoding (or the
 * database's), allocated in the current memory context.  17 takes a
 * caller-provided context (NULL: allocate one, as before) and a const input.
 */
static inline JsonLexContext *
eo_json_lexer_in(const char *json, int len, int encoding, bool need_escapes)
{
#if PG_VERSION_NUM >= 170000
	return makeJsonLexContextCstringLen(NULL, json, len, encoding, need_escapes);
#else
	return makeJsonLexContextCstringLen(unconstify(char *, json), len,
										encoding, need_escapes);
#endif
}

static inline JsonLexContext *
eo_json_lexer(const char *json, int len, bool need_escapes)
{
	return eo_json_lexer_in(json, len, GetDatabaseEncoding(), need_escapes);
}

/*
 * JSON semantic-action callbacks return JsonParseErrorType from 16 on:
 * declare them EO_JSON_ACTION and end them with EO_JSON_ACTION_DONE.
 */
#if PG_VERSION_NUM >= 160000
#define EO_JSON_ACTION JsonParseErrorType
#define EO_JSON_ACTION_DONE return JSON_SUCCESS
#else
#define EO_JSON_ACTION void
#define EO_JSON_ACTION_DONE return
#endif

/*
 * The relation's primary key index, or InvalidOid; 17 asks whether a
 * deferrable one will do (not for INSERT ... ON CONFLICT, which needs an
 * immediate one).
 */
static inline Oid
eo_primary_key_index(Relation rel)
{
#if PG_VERSION_NUM >= 170000
	return RelationGetPrimaryKeyIndex(rel, false);
#else
	return RelationGetPrimaryKeyIndex(rel);
#endif
}

/* 18 adds instrumentation (EXPLAIN ANALYZE's index searches); none here */
static inline IndexScanDesc
eo_index_beginscan(Relation heap, Relation index, Snapshot snapshot,
				   int nkeys, int norderbys)
{
#if PG_VERSION_NUM >= 180000
	return index_beginscan(heap, index, snapshot, NULL, nkeys, norderbys);
#else
	return index_beginscan(heap, index, snapshot, nkeys, norderbys);
#endif
}

/*
 * The range table of an executor state that inserts into rte's relation,
 * which is its only entry, with INSERT as the required permission (the
 * executor reads it when it describes a failing row to a user without
 * SELECT).  16 moved permissions from the RangeTblEntry into a separate
 * RTEPermissionInfo list; 18 wants the set of unpruned entries too.
 */
static inline void
eo_init_insert_range_table(EState *estate, RangeTblEntry *rte)
{
#if PG_VERSION_NUM >= 160000
	List	   *perminfos = NIL;
	RTEPermissionInfo *perminfo = addRTEPermissionInfo(&perminfos, rte);

	perminfo->requiredPerms = ACL_INSERT;
#if PG_VERSION_NUM >= 180000
	ExecInitRangeTable(estate, list_make1(rte), perminfos, bms_make_singleton(1));
#else
	ExecInitRangeTable(estate, list_make1(rte), perminfos);
#endif
#else
	rte->requiredPerms = ACL_INSERT;
	ExecInitRangeTable(estate, list_make1(rte));
#endif
}

/* Index entries for a new heap tuple (16 adds summarizing-only updates) */
static inline List *
eo_insert_index_tuples(ResultRelInfo *rri, TupleTableSlot *slot, EState *estate)
{
#if PG_VERSION_NUM >= 160000
	return ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL, false);
#else
	return ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
#endif
}

/* 16 adds soft error reporting; NULL keeps throwing */
static inline List *
eo_qualified_name_list(const char *name)
{
#if PG_VERSION_NUM >= 160000
	return stringToQualifiedNameList(name, NULL);
#else
	return stringToQualifiedNameList(name);
#endif
}

/*
 * Flags for a worker's connection as a pipeline's owner.  From 17 on the
 * owner may be a NOLOGIN role (a group role owning the pipelines): the
 * worker is not a login.  Before 17 the connection fails for such an owner.
 */
#if PG_VERSION_NUM >= 170000
#define EO_BGW_OWNER_CONNECT_FLAGS	BGWORKER_BYPASS_ROLELOGINCHECK
#else
#define EO_BGW_OWNER_CONNECT_FLAGS	0
#endif

#endif							/* EO_COMPAT_H */
