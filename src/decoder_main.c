/*
 * decoder_main.c
 *		The parallel decoder process (decoder.h): decodes the batches its
 *		pipeline worker sends, as the worker would, and answers with the
 *		results.
 *
 * It connects as the pipeline's owner to its database, builds the
 * pipeline's mapping from its row (the worker checks the signature), then
 * loops: receive a batch, decode it in a transaction, send the results.  It
 * exits when its worker goes (the queue detaches), after
 * EO_DECODER_LINGER_MS without a batch, and as soon as any eo_ingest worker
 * waits for a background worker slot: a decoder is only an accelerator and
 * must never keep a pipeline from running.  An error ends it; the worker
 * then decodes in-process.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "catalog.h"
#include "compat.h"
#include "decoder.h"
#include "record.h"
#include "slotwait.h"

/* How long a decoder waits for a batch before it exits */
#define EO_DECODER_LINGER_MS	5000

static EoDecoderArgs dargs;

typedef struct EoDecoderLoad
{
	MemoryContext cxt;
	EoMapping  *map;
} EoDecoderLoad;

/* The pipeline's mapping, built as setup.c builds the worker's. */
static void
eo_decoder_mapping_step(void *arg)
{
	EoDecoderLoad *load = arg;
	MemoryContext old;
	Datum		argv[1] = {Int32GetDatum(dargs.worker.pipeline_id)};
	Oid			argt[1] = {INT4OID};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	bool		columns_null;
	Datum		columns;
	char	   *key_format;
	char	   *envelope;

	if (SPI_execute_with_args("SELECT target::oid, format, to_jsonb(p) ->> 'key_format', event_id, "
							  "on_duplicate, columns, topic, to_jsonb(p) ->> 'envelope' "
							  "FROM eo_ingest.pipelines p WHERE id = $1 AND enabled",
							  1, argt, argv, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading eo_ingest.pipelines failed");
	if (SPI_processed == 0)
		proc_exit(0);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	key_format = SPI_getvalue(tup, desc, 3);
	envelope = SPI_getvalue(tup, desc, 8);
	/* only plain formats are decoded here (decoder.c checks it too) */
	if (envelope != NULL && strcmp(envelope, "none") != 0)
		proc_exit(0);
	if (key_format != NULL && strcmp(key_format, "none") == 0)
		key_format = NULL;
	columns = SPI_getbinval(tup, desc, 6, &columns_null);
	/* not in SPI's context, which SPI_finish deletes */
	old = MemoryContextSwitchTo(load->cxt);
	load->map = eo_mapping_build(DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull)),
							SPI_getvalue(tup, desc, 2), key_format, SPI_getvalue(tup, desc, 4),
							SPI_getvalue(tup, desc, 5), columns, columns_null,
							SPI_getvalue(tup, desc, 7), EO_ENV_NONE);
	MemoryContextSwitchTo(old);
}

static EoMapping *
eo_decoder_mapping(MemoryContext cxt)
{
	EoDecoderLoad load = {cxt, NULL};

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	eo_catalog_run_pinned(eo_decoder_mapping_step, &load, false);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return load.map;
}

/* The raw records of a batch message: recs[i].msg point into data. */
static EoRecord *
eo_decoder_unpack(const char *data, Size len, int *n)
{
	EoDecMsgHead head;
	const char *p = data + sizeof(EoDecMsgHead);
	const char *end = data + len;
	EoRecord   *recs;
	rd_kafka_message_t *msgs;

	if (len < sizeof(EoDecMsgHead))
		elog(ERROR, "eo_ingest decoder: short message");
	memcpy(&head, data, sizeof(head));
	if (head.magic != EO_DEC_BATCH || head.n < 0)
		elog(ERROR, "eo_ingest decoder: unexpected message");
	recs = palloc0(sizeof(EoRecord) * Max(head.n, 1));
	msgs = palloc0(sizeof(rd_kafka_message_t) * Max(head.n, 1));
	for (int i = 0; i < head.n; i++)
	{
		EoDecRaw	raw;

		if (end - p < (ssize_t) sizeof(EoDecRaw))
			elog(ERROR, "eo_ingest decoder: truncated batch");
		memcpy(&raw, p, sizeof(raw));
		p += sizeof(raw);
		if (raw.key_len > end - p || raw.value_len > end - p - Max(raw.key_len, 0))
			elog(ERROR, "eo_ingest decoder: truncated batch");
		msgs[i].partition = raw.partition;
		msgs[i].offset = raw.offset;
		if (raw.key_len >= 0)
		{
			msgs[i].key = (void *) p;
			msgs[i].key_len = raw.key_len;
			p += raw.key_len;
		}
		if (raw.value_len >= 0)
		{
			msgs[i].payload = (void *) p;
			msgs[i].len = raw.value_len;
			p += raw.value_len;
		}
		recs[i].msg = &msgs[i];
		recs[i].partition = raw.partition;
		recs[i].offset = raw.offset;
		recs[i].timestamp = raw.timestamp;
	}
	*n = head.n;
	return recs;
}

/* One decoded record, as EoDecDone describes it. */
static void
eo_decoder_pack(StringInfo buf, EoMapping *map, EoRecord *rec)
{
	int			start = buf->len;
	int			nc = map->ncolumns;
	EoDecDone	done = {0};
	Datum	   *datums;

	done.ok = rec->decoded_ok;
	done.sqlerrcode = rec->sqlerrcode;
	appendBinaryStringInfo(buf, (char *) &done, sizeof(done));
	while (buf->len - start < EO_DEC_DONE_HEAD)
		appendStringInfoChar(buf, '\0');
	if (!rec->decoded_ok)
		appendBinaryStringInfo(buf, rec->error, strlen(rec->error) + 1);
	else
	{
		int			at = buf->len;

		appendBinaryStringInfo(buf, (char *) rec->datums, sizeof(Datum) * nc);
		appendBinaryStringInfo(buf, (char *) rec->nulls, nc);
		appendBinaryStringInfo(buf, rec->shape, nc + 1);
		for (int c = 0; c < nc; c++)
		{
			EoColumn   *col = &map->columns[c];
			Pointer		v;
			Size		size;

			if (rec->nulls[c] || col->typbyval)
				continue;
			v = DatumGetPointer(rec->datums[c]);
			if (col->typlen == -1)
			{
				if (VARATT_IS_EXTENDED(v) && !VARATT_IS_SHORT(v))
					v = (Pointer) pg_detoast_datum_packed((struct varlena *) v);
				size = VARSIZE_ANY(v);
			}
			else if (col->typlen == -2)
				size = strlen(v) + 1;
			else
				size = col->typlen;
			while ((buf->len - start) % MAXIMUM_ALIGNOF != 0)
				appendStringInfoChar(buf, '\0');
			/* buf->data may move: write the offset through the copy */
			datums = (Datum *) (buf->data + at);
			datums[c] = (Datum) (buf->len - start);
			appendBinaryStringInfo(buf, v, size);
		}
	}
	while ((buf->len - start) % MAXIMUM_ALIGNOF != 0)
		appendStringInfoChar(buf, '\0');
	done.size = buf->len - start;
	memcpy(buf->data + start, &done, sizeof(done));
}

/* Is any eo_ingest worker waiting for a background worker slot? */
static bool
eo_decoder_should_yield(void)
{
	EoWaiting  *waiting;
	int			n = eo_waiting_snapshot(InvalidOid, &waiting);
	bool		yield = false;

	for (int i = 0; i < n; i++)
		yield |= waiting[i].reason == EO_WAIT_BGWORKER;
	pfree(waiting);
	return yield;
}

void
eo_decoder_main(Datum main_arg)
{
	dsm_segment *seg;
	char	   *base;
	shm_mq_handle *in;
	shm_mq_handle *out;
	MemoryContext map_cxt;
	MemoryContext batch_cxt;
	EoMapping  *map;
	TimestampTz last = GetCurrentTimestamp();
	int64		batches = 0;
	int64		records = 0;
	const char *why = "its worker left";

	memcpy(&dargs, MyBgworkerEntry->bgw_extra, sizeof(EoDecoderArgs));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach((dsm_handle) dargs.handle);
	if (seg == NULL)
		proc_exit(0);
	base = dsm_segment_address(seg);
	shm_mq_set_receiver((shm_mq *) base, MyProc);
	shm_mq_set_sender((shm_mq *) (base + EO_DEC_QUEUE_IN), MyProc);
	in = shm_mq_attach((shm_mq *) base, seg, NULL);
	out = shm_mq_attach((shm_mq *) (base + EO_DEC_QUEUE_IN), seg, NULL);

	BackgroundWorkerInitializeConnectionByOid(dargs.worker.database, dargs.worker.owner,
											  EO_BGW_OWNER_CONNECT_FLAGS);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("eo_ingest decoder");

	map_cxt = AllocSetContextCreate(TopMemoryContext, "eo_ingest decoder mapping",
									ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "eo_ingest decoder batch",
									  1024 * 1024, 1024 * 1024, 8 * 1024 * 1024);
	map = eo_decoder_mapping(map_cxt);
	{
		StringInfoData hello;
		uint32		magic = EO_DEC_HELLO;

		initStringInfo(&hello);
		appendBinaryStringInfo(&hello, (char *) &magic, sizeof(magic));
		appendStringInfoString(&hello, map->signature);
		if (shm_mq_send(out, hello.len + 1, hello.data, false, true) != SHM_MQ_SUCCESS)
			proc_exit(0);
		pfree(hello.data);
	}

	for (;;)
	{
		Size		len;
		void	   *data;
		shm_mq_result res;
		EoRecord   *recs;
		int			n;
		EoDecMsgHead head = {EO_DEC_DONE, 0, 0};
		StringInfoData buf;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		res = shm_mq_receive(in, &len, &data, true);
		if (res == SHM_MQ_DETACHED)
			break;
		if (res == SHM_MQ_WOULD_BLOCK)
		{
			long		left = EO_DECODER_LINGER_MS -
				TimestampDifferenceMilliseconds(last, GetCurrentTimestamp());

			if (left <= 0)
			{
				why = "no backlog";
				break;
			}
			if (eo_decoder_should_yield())
			{
				why = "a pipeline waits for a background worker slot";
				break;
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(left, 1000L), PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
			continue;
		}

		MemoryContextReset(batch_cxt);
		old = MemoryContextSwitchTo(batch_cxt);
		recs = eo_decoder_unpack(data, len, &n);
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "decoding a batch");
		head.subxacts = eo_record_decode_batch(map, recs, n, batch_cxt);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(batch_cxt);

		head.n = n;
		initStringInfo(&buf);
		appendBinaryStringInfo(&buf, (char *) &head, sizeof(head));
		for (int i = 0; i < n; i++)
			eo_decoder_pack(&buf, map, &recs[i]);
		pgstat_report_activity(STATE_IDLE, NULL);
		if (shm_mq_send(out, buf.len, buf.data, false, true) != SHM_MQ_SUCCESS)
			break;
		MemoryContextSwitchTo(old);
		last = GetCurrentTimestamp();
		batches++;
		records += n;
	}
	ereport(LOG,
			(errmsg("eo_ingest decoder for pipeline %d/%d exiting after " INT64_FORMAT " batches of " INT64_FORMAT " records: %s",
					dargs.worker.pipeline_id, dargs.worker.worker, batches, records, why)));
	proc_exit(0);
}
