/*
 * catalog.h
 *		Writes to eo_ingest's catalog tables, which PUBLIC may only read.
 */
#ifndef EO_CATALOG_H
#define EO_CATALOG_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"

/* a pipeline's row, locked by eo_catalog_lock_pipeline */
typedef struct EoPipelineRow
{
	char	   *name;
	Oid			owner;
	Oid			target;
	char	   *target_name;	/* NULL if unknown */
	bool		enabled;
	bool		update;			/* on_duplicate = 'update' */
} EoPipelineRow;

extern void eo_catalog_run_pinned(void (*fn) (void *arg), void *arg, bool as_catalog);
extern int	eo_catalog_execute(const char *sql, int nargs, Oid *argtypes,
							   Datum *values, const char *nulls,
							   bool read_only, long count);
extern int	eo_catalog_execute_plan(SPIPlanPtr plan, Datum *values,
									const char *nulls, bool read_only,
									long count);
extern int	eo_catalog_execute_pinned_plan(SPIPlanPtr plan, Datum *values,
										   const char *nulls, bool read_only,
										   long count);
extern void eo_catalog_check_target(Oid target, Oid owner, bool update);
extern void eo_catalog_check_event_id_index(int32 id, Oid target);
extern char *eo_catalog_target_name(Oid target);
extern bool eo_catalog_knows_names(void);
extern void eo_catalog_lock_pipeline(int32 id, Oid caller, EoPipelineRow *row);
extern bool eo_catalog_arg_is(FunctionCallInfo fcinfo, int n, const char *value);
extern void eo_catalog_update_config(FunctionCallInfo fcinfo, int nargs, Oid *argtypes,
									 const char *assignments);

/* envelope_sql.c */
extern Oid	eo_catalog_primary_key(Oid target);

/* target.c: a worker following its target across DROP and RENAME */
extern Oid	eo_target_follow(int32 id, Oid dropped);
extern void eo_target_refresh_name(int32 id, Oid target, char **known, MemoryContext cxt);

#endif
