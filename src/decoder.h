/*
 * decoder.h
 *		The parallel decoder: a second process that decodes a pipeline
 *		worker's next batch while the worker writes the current one
 *		(eo_ingest.parallel_decode).
 *
 * The worker (decoder.c) starts one under a backlog and hands it a batch's
 * raw records through a DSM segment with two shm_mq queues; the decoder
 * (decoder_main.c) decodes them with eo_record_decode_batch for a mapping it
 * builds itself from the pipeline's row, and answers with each record's
 * result laid out so that the worker points its Datums into the received
 * buffer.  Decoding is pure: whenever the decoder is missing, busy
 * elsewhere, of another mapping or gone, the worker decodes in-process and
 * nothing else changes.  Offsets and rows never pass through the decoder.
 */
#ifndef EO_DECODER_H
#define EO_DECODER_H

#include "eo_ingest.h"

/* the rings of the two queues: a batch larger than one still passes */
#define EO_DEC_QUEUE_IN		(4 * 1024 * 1024)	/* raw records */
#define EO_DEC_QUEUE_OUT	(8 * 1024 * 1024)	/* decoded records */

#define EO_DEC_HELLO	0x454f4448	/* the decoder's mapping signature */
#define EO_DEC_BATCH	0x454f4442	/* raw records */
#define EO_DEC_DONE		0x454f4444	/* decoded records */

/* What the worker hands its decoder in bgw_extra */
typedef struct EoDecoderArgs
{
	EoWorkerArgs worker;
	uint32		handle;			/* the DSM segment's */
	pid_t		worker_pid;
} EoDecoderArgs;

/* A message's first bytes: EO_DEC_BATCH or EO_DEC_DONE, n records */
typedef struct EoDecMsgHead
{
	uint32		magic;
	int32		n;
	int64		subxacts;		/* EO_DEC_DONE: decoding's subtransactions */
} EoDecMsgHead;

/* Each raw record, followed by its key's bytes then its value's */
typedef struct EoDecRaw
{
	int32		partition;
	int32		key_len;		/* -1: no key */
	int64		offset;
	int64		timestamp;
	int64		value_len;		/* -1: no value */
} EoDecRaw;

/*
 * Each decoded record, MAXALIGNed, size bytes in all.  If ok: Datum[n],
 * bool nulls[n], shape (n + 1 bytes), then each by-reference value
 * MAXALIGNed, its Datum holding its offset from this header.  Else the
 * error text.
 */
typedef struct EoDecDone
{
	uint32		size;
	int32		sqlerrcode;
	bool		ok;
} EoDecDone;

#define EO_DEC_DONE_HEAD	MAXALIGN(sizeof(EoDecDone))

/* decoder_main.c */
extern PGDLLEXPORT void eo_decoder_main(Datum arg);

#endif							/* EO_DECODER_H */
