/*
 * guard.h
 *		kafka_options a non-superuser may not set; secrets kept out of the log.
 */
#ifndef EO_GUARD_H
#define EO_GUARD_H

#include "utils/jsonb.h"

extern void eo_guard_init(void);
extern char *eo_guard_code_option(Jsonb *options);
extern void eo_guard_options(Jsonb *options);

#endif
