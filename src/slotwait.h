/*
 * slotwait.h
 *		Pipelines waiting for a process to run in, as pipeline_status shows
 *		them.
 */
#ifndef EO_SLOTWAIT_H
#define EO_SLOTWAIT_H

#include "eo_ingest.h"

typedef enum EoWaitReason
{
	EO_WAIT_NONE = 0,
	EO_WAIT_BGWORKER,			/* max_worker_processes are all taken */
	EO_WAIT_MAX_WORKERS			/* eo_ingest.max_workers slots are all taken */
} EoWaitReason;

typedef struct EoWaiting
{
	Oid			database;
	int32		pipeline_id;
	int32		worker;
	EoWaitReason reason;
	TimestampTz since;
} EoWaiting;

extern void eo_slotwait_init(void);
extern bool eo_wait_note(const EoWorkerArgs *args, EoWaitReason reason);
extern void eo_wait_clear(const EoWorkerArgs *args);
extern void eo_wait_clear_database(Oid database);
extern int	eo_free_worker_slots(void);
extern int	eo_waiting_snapshot(Oid database, EoWaiting **result);
extern void eo_wait_message(const EoWaiting *w, char *buf, size_t len);

#endif							/* EO_SLOTWAIT_H */
