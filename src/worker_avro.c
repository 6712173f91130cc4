/*
 * worker_avro.c
 *		A pipeline worker's Avro writer schemas: every schema a batch's
 *		records name is known before the batch transaction begins, so that
 *		asking the schema registry never holds a transaction open.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "avro_format.h"
#include "worker.h"

typedef struct EoAvroIds
{
	int32	   *ids;
	int			n;
} EoAvroIds;

static void
eo_avro_load_step(EoWorker *w, void *arg)
{
	EoAvroIds  *ids = (EoAvroIds *) arg;

	eo_avro_load_catalog(ids->ids, ids->n);
}

static void
eo_avro_store_step(EoWorker *w, void *arg)
{
	eo_avro_store_catalog();
}

/* The pipeline's row changed (paused, altered, dropped): no time to wait. */
static bool
eo_avro_pipeline_changed(void *arg)
{
	EoWorker   *w = (EoWorker *) arg;

	return eo_wakeup_seq(w->slot) != w->wake_seq;
}

/*
 * The catalog table first, then the registry, with no transaction open
 * while it is asked.  An unreachable registry is retried with backoff
 * (nothing is dead-lettered for it); one that is no registry or refuses us
 * fails the pipeline.
 */
EoRestart
eo_worker_avro_schemas(EoWorker *w)
{
	long		delay = 1000;

	while (w->map != NULL && w->map->format == &eo_format_avro)
	{
		MemoryContext old = MemoryContextSwitchTo(w->batch_cxt);
		EoAvroIds	ids;
		EoAvroReady ready = EO_AVRO_RETRY;
		char		err[512] = "";

		ids.n = eo_avro_missing_ids(w->recs, w->nrecs, &ids.ids);
		MemoryContextSwitchTo(old);
		if (ids.n == 0)
			break;
		if (eo_worker_try_xact(w, "reading Avro schemas", eo_avro_load_step, &ids))
		{
			/* the answers' parsing garbage goes with the batch */
			old = MemoryContextSwitchTo(w->batch_cxt);
			ids.n = eo_avro_missing_ids(w->recs, w->nrecs, &ids.ids);
			ready = eo_avro_fetch(ids.ids, ids.n, eo_avro_pipeline_changed, w, err, sizeof(err));
			MemoryContextSwitchTo(old);
			if (ready == EO_AVRO_FAILED)
			{
				eo_worker_report(w, EO_STATE_FAILED, "%s", err);
				return EO_RESTART_FAILED;
			}
			if (eo_worker_try_xact(w, "storing Avro schemas", eo_avro_store_step, NULL) &&
				ready == EO_AVRO_READY)
				break;
			if (ready == EO_AVRO_RETRY && !eo_avro_pipeline_changed(w))
				eo_worker_report(w, EO_STATE_RETRYING, "%s; retrying in %ld ms", err, delay);
		}
		if (eo_worker_wait(w, delay))
			return EO_RESTART_SETUP;
		delay = Min(delay * 2, (long) eo_retry_max_delay);
	}
	return EO_RESTART_NONE;
}
