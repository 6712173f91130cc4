/*
 * kafka_ready.c
 *		Sleeping until the consumer has something: the process latch and
 *		librdkafka's consumer queue in one wait.
 *
 * librdkafka can write a byte into a file descriptor when its queue gets an
 * entry while empty (rd_kafka_queue_io_event_enable).  The worker gives it
 * the write end of a pipe and waits on the read end and its latch together
 * (WaitLatchOrSocket), so an idle worker runs no code until a record, a
 * Kafka error, a configuration change or its next housekeeping is due,
 * instead of polling librdkafka in short slices.  The pipe lives as long as
 * the process; each consumer handle is hooked to it in turn.
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

#include "kafka.h"

static int	ready_pipe[2] = {-1, -1};

/*
 * Hook rk's consumer queue to the pipe.  Returns the queue handle, which
 * eo_kafka_ready_disable must release before rk is destroyed, or NULL with
 * err filled.
 */
rd_kafka_queue_t *
eo_kafka_ready_enable(rd_kafka_t *rk, char *err, size_t errlen)
{
	rd_kafka_queue_t *q;

	if (ready_pipe[0] < 0)
	{
		if (pipe(ready_pipe) != 0)
		{
			snprintf(err, errlen, "could not create a pipe: %m");
			return NULL;
		}
		/* neither end may block: librdkafka writes from its own threads */
		if (fcntl(ready_pipe[0], F_SETFL, O_NONBLOCK) != 0 ||
			fcntl(ready_pipe[1], F_SETFL, O_NONBLOCK) != 0 ||
			fcntl(ready_pipe[0], F_SETFD, FD_CLOEXEC) != 0 ||
			fcntl(ready_pipe[1], F_SETFD, FD_CLOEXEC) != 0)
		{
			snprintf(err, errlen, "could not set up a pipe: %m");
			close(ready_pipe[0]);
			close(ready_pipe[1]);
			ready_pipe[0] = ready_pipe[1] = -1;
			return NULL;
		}
	}
	q = rd_kafka_queue_get_consumer(rk);
	if (q == NULL)
	{
		snprintf(err, errlen, "the Kafka handle has no consumer queue");
		return NULL;
	}
	rd_kafka_queue_io_event_enable(q, ready_pipe[1], "r", 1);
	return q;
}

void
eo_kafka_ready_disable(rd_kafka_queue_t *q)
{
	rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
	rd_kafka_queue_destroy(q);
}

/*
 * Sleep until the consumer queue got something (true), or the latch was set
 * or timeout_ms passed (false).  Call it only after a poll found the queue
 * empty: librdkafka writes to the pipe when an entry arrives in an empty
 * queue, so anything that came earlier was either polled or left a byte.
 * Exits if the postmaster dies.
 */
bool
eo_kafka_ready_wait(long timeout_ms)
{
	char		buf[64];
	int			rc;

	rc = WaitLatchOrSocket(MyLatch,
						   WL_LATCH_SET | WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						   ready_pipe[0], timeout_ms, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	if (!(rc & WL_SOCKET_READABLE))
		return false;
	while (read(ready_pipe[0], buf, sizeof(buf)) > 0)
		;
	return true;
}
