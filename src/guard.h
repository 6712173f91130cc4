/*
 * guard.h
 *		kafka_options a non-superuser may not set; secrets kept out of the log.
 */
#ifndef EO_GUARD_H
#define EO_GUARD_H

extern void eo_guard_init(void);

#endif
