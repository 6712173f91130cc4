/*
 * catalog.h
 *		Writes to eo_ingest's catalog tables, which PUBLIC may only read.
 */
#ifndef EO_CATALOG_H
#define EO_CATALOG_H

#include "postgres.h"

#include "executor/spi.h"

extern int	eo_catalog_execute(const char *sql, int nargs, Oid *argtypes,
							   Datum *values, const char *nulls,
							   bool read_only, long count);
extern int	eo_catalog_execute_plan(SPIPlanPtr plan, Datum *values,
									const char *nulls, bool read_only,
									long count);
extern int	eo_catalog_execute_pinned_plan(SPIPlanPtr plan, Datum *values,
										   const char *nulls, bool read_only,
										   long count);
extern void eo_catalog_pin_search_path(void);
extern int	eo_catalog_pin_begin(void);
extern Oid	eo_catalog_follow_target(int32 id, Oid dropped);
extern void eo_catalog_refresh_target_name(int32 id, Oid target);
extern Oid	eo_catalog_primary_key(Oid target);

#endif
