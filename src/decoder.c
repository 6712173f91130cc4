/*
 * decoder.c
 *		A pipeline worker's side of the parallel decoder (decoder.h):
 *		starting it under a backlog, sending it a batch's raw records,
 *		taking its results into the batch's records.
 *
 * Any failure (no slot, no DSM segment, the decoder gone, a mapping of
 * another signature, a malformed answer) stops the decoder and leaves the
 * batch undecoded: eo_batch_step then decodes it in-process, as it does
 * with the decoder off.  After a failure the worker does not start another
 * decoder for EO_DECODER_BACKOFF_MS.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "decoder.h"
#include "slotwait.h"
#include "worker.h"

/* Batches smaller than this are decoded in-process: not worth a process */
#define EO_DECODER_MIN_RECORDS	1000

#define EO_DECODER_BACKOFF_MS	10000

typedef struct EoDecoder
{
	dsm_segment *seg;
	BackgroundWorkerHandle *handle;
	shm_mq_handle *in;			/* raw records, to the decoder */
	shm_mq_handle *out;			/* decoded records, from it */
	char	   *signature;		/* its mapping's, once it said hello */
} EoDecoder;

static EoDecoder dec;
static TimestampTz backoff_until;

void
eo_decoder_stop(void)
{
	if (dec.handle != NULL)
	{
		TerminateBackgroundWorker(dec.handle);
		pfree(dec.handle);
	}
	if (dec.in != NULL)
		shm_mq_detach(dec.in);
	if (dec.out != NULL)
		shm_mq_detach(dec.out);
	if (dec.seg != NULL)
		dsm_detach(dec.seg);
	if (dec.signature != NULL)
		pfree(dec.signature);
	memset(&dec, 0, sizeof(dec));
}

static void
eo_decoder_fail(void)
{
	eo_decoder_stop();
	backoff_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), EO_DECODER_BACKOFF_MS);
}

/*
 * Can a decoder decode this worker's records?  Plain formats only: Avro
 * needs writer schemas fetched outside transactions, an envelope decodes
 * per attempt, and $headers reads librdkafka's message itself.
 */
static bool
eo_decoder_eligible(EoWorker *w)
{
	EoMapping  *map = w->map;

	if (!eo_parallel_decode || map == NULL || w->writer == NULL || w->applier != NULL ||
		map->envelope != EO_ENV_NONE || map->format == &eo_format_avro ||
		(map->key_map != NULL && map->key_map->format == &eo_format_avro))
		return false;
	for (int c = 0; c < map->ncolumns; c++)
		if (map->columns[c].source == EO_SRC_HEADERS)
			return false;
	return true;
}

static void
eo_decoder_start(EoWorker *w)
{
	BackgroundWorker bgw;
	EoDecoderArgs args;
	char	   *base;
	shm_mq	   *in;
	shm_mq	   *out;
	MemoryContext old = MemoryContextSwitchTo(w->worker_cxt);

	dec.seg = dsm_create(EO_DEC_QUEUE_IN + EO_DEC_QUEUE_OUT, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (dec.seg == NULL)
	{
		MemoryContextSwitchTo(old);
		eo_decoder_fail();
		return;
	}
	dsm_pin_mapping(dec.seg);
	base = dsm_segment_address(dec.seg);
	in = shm_mq_create(base, EO_DEC_QUEUE_IN);
	shm_mq_set_sender(in, MyProc);
	out = shm_mq_create(base + EO_DEC_QUEUE_IN, EO_DEC_QUEUE_OUT);
	shm_mq_set_receiver(out, MyProc);

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, EO_LIBRARY_NAME);
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "eo_decoder_main");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "eo_ingest decoder");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "eo_ingest decoder for pipeline %d/%d",
			 w->args.pipeline_id, w->args.worker);
	bgw.bgw_notify_pid = MyProcPid;
	memset(&args, 0, sizeof(args));
	args.worker = w->args;
	args.handle = dsm_segment_handle(dec.seg);
	args.worker_pid = MyProcPid;
	memcpy(bgw.bgw_extra, &args, sizeof(args));
	if (!RegisterDynamicBackgroundWorker(&bgw, &dec.handle))
	{
		dec.handle = NULL;
		MemoryContextSwitchTo(old);
		eo_decoder_fail();
		return;
	}
	dec.in = shm_mq_attach(in, dec.seg, dec.handle);
	dec.out = shm_mq_attach(out, dec.seg, dec.handle);
	MemoryContextSwitchTo(old);
}

/* The current batch and the one polled ahead trade places. */
void
eo_batch_swap(EoWorker *w)
{
	MemoryContext cxt = w->batch_cxt;
	EoRecord   *recs = w->recs;
	int			nrecs = w->nrecs;
	int			cap = w->recs_cap;
	int64	   *next = w->next;
	bool		full = w->full;
	bool		sent = w->sent;

	w->batch_cxt = w->ahead.cxt;
	w->recs = w->ahead.recs;
	w->nrecs = w->ahead.nrecs;
	w->recs_cap = w->ahead.recs_cap;
	w->next = w->ahead.next;
	w->full = w->ahead.full;
	w->sent = w->ahead.sent;
	w->ahead.cxt = cxt;
	w->ahead.recs = recs;
	w->ahead.nrecs = nrecs;
	w->ahead.recs_cap = cap;
	w->ahead.next = next;
	w->ahead.full = full;
	w->ahead.sent = sent;
}

/*
 * After the current batch is polled: a backlog (EoWorker.full) of at least
 * EO_DECODER_MIN_RECORDS starts a decoder unless one runs, the last one
 * failed lately, or any eo_ingest worker waits for a background worker slot
 * (the decoder would take it).  Without a backlog the decoder exits by
 * itself (decoder_main.c).
 */
void
eo_decoder_backlog(EoWorker *w)
{
	EoWaiting  *waiting;
	int			n;
	bool		slots_wanted = false;

	if (dec.seg != NULL || !w->full || w->nrecs < EO_DECODER_MIN_RECORDS ||
		!eo_decoder_eligible(w) || GetCurrentTimestamp() < backoff_until)
		return;
	n = eo_waiting_snapshot(InvalidOid, &waiting);
	for (int i = 0; i < n; i++)
		slots_wanted |= waiting[i].reason == EO_WAIT_BGWORKER;
	pfree(waiting);
	if (!slots_wanted)
		eo_decoder_start(w);
}

/* Is the decoder up, with the worker's mapping? */
bool
eo_decoder_usable(EoWorker *w)
{
	pid_t		pid;

	if (dec.seg == NULL)
		return false;
	if (!eo_decoder_eligible(w))
	{
		eo_decoder_stop();
		return false;
	}
	if (dec.signature == NULL)
	{
		Size		len;
		void	   *data;
		uint32		magic;
		shm_mq_result res = shm_mq_receive(dec.out, &len, &data, true);

		if (res == SHM_MQ_WOULD_BLOCK)
			return false;
		if (res != SHM_MQ_SUCCESS || len <= sizeof(magic))
		{
			eo_decoder_fail();
			return false;
		}
		memcpy(&magic, data, sizeof(magic));
		if (magic != EO_DEC_HELLO || ((char *) data)[len - 1] != '\0')
		{
			eo_decoder_fail();
			return false;
		}
		dec.signature = MemoryContextStrdup(w->worker_cxt, (char *) data + sizeof(magic));
	}
	if (strcmp(dec.signature, w->map->signature) != 0)
	{
		ereport(LOG,
				(errmsg("eo_ingest decoder of pipeline %d built another mapping; decoding in the worker",
						w->args.pipeline_id)));
		eo_decoder_fail();
		return false;
	}
	if (GetBackgroundWorkerPid(dec.handle, &pid) == BGWH_STOPPED)
	{
		/* it lingered without a batch and left */
		eo_decoder_stop();
		return false;
	}
	return true;
}

/* Send the current batch's raw records to the decoder; false if not sent. */
bool
eo_decoder_send(EoWorker *w)
{
	int			n = w->nrecs;
	shm_mq_iovec *iov = MemoryContextAlloc(w->batch_cxt, sizeof(shm_mq_iovec) * (1 + 3 * n));
	EoDecRaw   *raws = MemoryContextAlloc(w->batch_cxt, sizeof(EoDecRaw) * Max(n, 1));
	EoDecMsgHead head = {EO_DEC_BATCH, n, 0};
	int			k = 0;

	iov[k].data = (const char *) &head;
	iov[k++].len = sizeof(head);
	for (int i = 0; i < n; i++)
	{
		rd_kafka_message_t *msg = w->recs[i].msg;
		EoDecRaw   *raw = &raws[i];

		raw->partition = w->recs[i].partition;
		raw->offset = w->recs[i].offset;
		raw->timestamp = w->recs[i].timestamp;
		raw->key_len = msg->key != NULL ? (int32) msg->key_len : -1;
		raw->value_len = msg->payload != NULL ? (int64) msg->len : -1;
		iov[k].data = (const char *) raw;
		iov[k++].len = sizeof(EoDecRaw);
		if (msg->key != NULL && msg->key_len > 0)
		{
			iov[k].data = msg->key;
			iov[k++].len = msg->key_len;
		}
		if (msg->payload != NULL && msg->len > 0)
		{
			iov[k].data = msg->payload;
			iov[k++].len = msg->len;
		}
	}
	if (shm_mq_sendv(dec.in, iov, k, false, true) != SHM_MQ_SUCCESS)
	{
		eo_decoder_stop();
		return false;
	}
	return true;
}

/* One decoded record from the block at p (size bytes at most); false if malformed */
static bool
eo_decoder_take(EoMapping *map, EoRecord *rec, char *p, Size left, MemoryContext cxt,
				Size *size)
{
	EoDecDone	done;
	int			nc = map->ncolumns;

	if (left < EO_DEC_DONE_HEAD)
		return false;
	memcpy(&done, p, sizeof(done));
	if (done.size > left || done.size < EO_DEC_DONE_HEAD || done.size % MAXIMUM_ALIGNOF != 0)
		return false;
	*size = done.size;
	rec->decoded_ok = done.ok;
	rec->sqlerrcode = done.sqlerrcode;
	rec->error = NULL;
	if (!done.ok)
	{
		rec->error = p + EO_DEC_DONE_HEAD;
		return memchr(rec->error, '\0', done.size - EO_DEC_DONE_HEAD) != NULL;
	}
	if (EO_DEC_DONE_HEAD + (sizeof(Datum) + 2) * nc + 1 > done.size)
		return false;
	rec->datums = (Datum *) (p + EO_DEC_DONE_HEAD);
	rec->nulls = (bool *) (rec->datums + nc);
	rec->shape = (char *) (rec->nulls + nc);
	for (int c = 0; c < nc; c++)
	{
		if (rec->nulls[c] || map->columns[c].typbyval)
			continue;
		if (rec->datums[c] >= done.size)
			return false;
		rec->datums[c] = PointerGetDatum(p + rec->datums[c]);
	}
	if (map->id_column >= 0)
		eo_record_event_id(map, rec, cxt);
	return true;
}

/*
 * Take the decoder's results for the current batch, which was sent to it,
 * into its records; they then count as decoded (eo_record_decoded_by).  On
 * any failure the records stay undecoded.
 */
void
eo_decoder_collect(EoWorker *w)
{
	Size		len;
	void	   *data;
	char	   *buf;
	EoDecMsgHead head;
	Size		pos = sizeof(EoDecMsgHead);

	w->sent = false;
	if (dec.out == NULL)
		return;
	if (shm_mq_receive(dec.out, &len, &data, false) != SHM_MQ_SUCCESS ||
		len < sizeof(EoDecMsgHead))
	{
		eo_decoder_fail();
		return;
	}
	memcpy(&head, data, sizeof(head));
	if (head.magic != EO_DEC_DONE || head.n != w->nrecs)
	{
		eo_decoder_fail();
		return;
	}
	/* the mapping was built again (a retry) and differs: decode here */
	if (w->map == NULL || strcmp(dec.signature, w->map->signature) != 0)
		return;
	/* one copy, out of the ring: the Datums point into it */
	buf = MemoryContextAllocHuge(w->batch_cxt, len);
	memcpy(buf, data, len);
	for (int i = 0; i < w->nrecs; i++)
	{
		Size		size;

		if (!eo_decoder_take(w->map, &w->recs[i], buf + pos, len - pos, w->batch_cxt, &size))
		{
			ereport(LOG,
					(errmsg("eo_ingest decoder of pipeline %d sent a malformed batch; decoding in the worker",
							w->args.pipeline_id)));
			eo_decoder_fail();
			return;
		}
		pos += size;
	}
	eo_record_decoded_by(w->map, w->recs, w->nrecs, w->batch_cxt, (int) head.subxacts);
}
