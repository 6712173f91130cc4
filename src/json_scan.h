/*
 * json_scan.h
 *		One pass over a JSON value that captures the mapped fields.
 */
#ifndef EO_JSON_SCAN_H
#define EO_JSON_SCAN_H

#include "record.h"

/* containers nested deeper than this make the record a dead letter */
#define EO_JSON_MAX_NESTING 10000

typedef enum EoJsonScan
{
	EO_JSON_OK,
	EO_JSON_INVALID,			/* not valid JSON (or an escape PostgreSQL
								 * refuses) */
	EO_JSON_TOO_DEEP
} EoJsonScan;

/* a mapping's paths, built once: the json format's state (format_json.c) */
typedef struct EoJsonPlan EoJsonPlan;

extern EoJsonPlan *eo_json_plan(const EoMapping *map);
extern EoJsonScan eo_json_scan(EoFields *f, const char *p, const char *end);
extern EoJsonScan eo_json_scan_source(EoFields *f, const char *p, const char *end,
									  EoSource source);
extern bool eo_json_nesting_within(const char *p, const char *end, int limit);

#endif							/* EO_JSON_SCAN_H */
