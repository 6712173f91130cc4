/*
 * eo_producer.c
 *
 * Test / demo / benchmark Kafka producer for eo_ingest.
 *
 * Produces a deterministic stream of events (optionally with duplicates,
 * malformed values, headers, explicit timestamps, idempotence or
 * transactions with periodic aborts) and writes a manifest of every record
 * the broker acknowledged, so tests can compare what landed in PostgreSQL
 * with what was actually written to Kafka:
 *
 *   partition \t offset \t event_id \t status \t key \t value [\t send_us]
 *
 * status is "committed" or "aborted" (records of aborted transactions).
 * send_us (wall-clock send time in microseconds) is only present with --rate.
 *
 * It can also create a topic or grow its partition count via the Admin API.
 * Run with --help for the full CLI.
 *
 * Build: make test/producer/eo_producer
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define MAX_XPROPS 128
#define METADATA_WAIT_MS 30000
#define ADMIN_TIMEOUT_MS 30000
#define TXN_TIMEOUT_MS 60000

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

enum fmt { FMT_JSON, FMT_TEXT };

static struct {
	const char *brokers;
	const char *topic;
	long long	count;			/* -1: not given */
	unsigned long long start_id;
	int			partition;		/* -1: round-robin over all partitions */
	double		dup_ratio;
	enum fmt	format;
	int			idempotent;
	const char *txid;
	long long	txn_size;
	long long	abort_every;
	int			headers;
	int			have_ts_base;
	long long	ts_base;
	double		rate;
	const char *manifest;
	unsigned long long seed;
	unsigned int salt;
	int			create_topic;	/* 0: no */
	int			add_partitions; /* 0: no */
	long long	bad_every;
	const char *xprops[MAX_XPROPS];
	int			n_xprops;
} opt = {
	.count = -1,
	.start_id = 1,
	.partition = -1,
	.format = FMT_JSON,
	.txn_size = 100,
	.seed = 1,
};

/* ------------------------------------------------------------------------ */
/* Runtime state                                                            */
/* ------------------------------------------------------------------------ */

/* growable byte buffer */
typedef struct
{
	char	   *buf;
	size_t		len;
	size_t		cap;
} sbuf;

static struct {
	FILE	   *mf;				/* manifest */
	int			transactional;
	int			aborting;		/* inside abort of current txn */
	uint64_t   *send_us;		/* per seq (index seq-1), only with --rate */
	sbuf		pending;		/* manifest entries of the open transaction */
	long long	n_pending;
	long long	n_acked;
	long long	n_committed;
	long long	n_aborted;
	long long	n_failed;
	sbuf		line;			/* scratch */
} st;

static const char *progname = "eo_producer";

static void
die(const char *fmt, ...)
{
	va_list		ap;

	fprintf(stderr, "%s: error: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
usage(FILE *out)
{
	fprintf(out,
			"Usage: %s -b BROKERS -t TOPIC -n COUNT [options]\n"
			"\n"
			"Records:\n"
			"  -b, --brokers BROKERS       bootstrap servers (host:port,...)\n"
			"  -t, --topic TOPIC           topic to produce to\n"
			"  -n, --count COUNT           number of records to produce\n"
			"  -s, --start-id N            first event number (default 1); event numbers\n"
			"                              are START..START+COUNT-1\n"
			"      --salt N                event id is %%08x(salt)-0000-4000-8000-%%012llx(n)\n"
			"                              (default 0)\n"
			"      --partition P           produce everything to partition P (default:\n"
			"                              round-robin, partition = seq %% partition_count)\n"
			"      --dup-ratio F           fraction F of records reuse the number of a random\n"
			"                              earlier record (same event id, duplicates)\n"
			"      --seed N                PRNG seed for --dup-ratio (default 1)\n"
			"      --format json|text      value format (default json)\n"
			"      --bad-every K           every K-th record (seq %% K == 0) gets a malformed\n"
			"                              JSON value (json format only)\n"
			"      --headers               add headers source=eo_producer, seq=<seq>,\n"
			"                              empty=<NULL>\n"
			"      --timestamp-base MS     record seq gets timestamp MS + seq - 1\n"
			"                              (default: current time)\n"
			"      --rate R                pace to R records/s; manifest gets an extra\n"
			"                              last column: wall-clock send time in us\n"
			"\n"
			"Delivery:\n"
			"      --idempotent            enable.idempotence=true\n"
			"      --transactional TXID    transactional producer with transactional.id TXID\n"
			"      --txn-size N            records per transaction (default 100)\n"
			"      --abort-every K         abort every K-th transaction (default 0: never)\n"
			"  -X, --property prop=value   extra librdkafka property (repeatable)\n"
			"\n"
			"Output:\n"
			"      --manifest FILE         manifest file (default stdout); one line per\n"
			"                              acknowledged record:\n"
			"                              partition offset event_id status key value [send_us]\n"
			"\n"
			"Topic administration (then exit unless -n is given):\n"
			"      --create-topic P        create TOPIC with P partitions, replication 1\n"
			"                              (ok if it already exists with P partitions)\n"
			"      --add-partitions TOTAL  grow TOPIC to TOTAL partitions\n"
			"\n"
			"  -h, --help                  this help\n",
			progname);
}

static long long
parse_ll(const char *name, const char *s, long long min, long long max)
{
	char	   *end;
	long long	v;

	errno = 0;
	v = strtoll(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		die("invalid value for %s: \"%s\" (expected integer in [%lld, %lld])",
			name, s, min, max);
	return v;
}

static unsigned long long
parse_ull(const char *name, const char *s)
{
	char	   *end;
	unsigned long long v;

	errno = 0;
	if (s[0] == '-')
		die("invalid value for %s: \"%s\" (expected non-negative integer)", name, s);
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0')
		die("invalid value for %s: \"%s\" (expected non-negative integer)", name, s);
	return v;
}

static double
parse_double(const char *name, const char *s, double min, double max)
{
	char	   *end;
	double		v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
		die("invalid value for %s: \"%s\" (expected number in [%g, %g])",
			name, s, min, max);
	return v;
}

enum {
	OPT_PARTITION = 1000, OPT_DUP_RATIO, OPT_FORMAT, OPT_IDEMPOTENT,
	OPT_TRANSACTIONAL, OPT_TXN_SIZE, OPT_ABORT_EVERY, OPT_HEADERS,
	OPT_TS_BASE, OPT_RATE, OPT_MANIFEST, OPT_SEED, OPT_SALT,
	OPT_CREATE_TOPIC, OPT_ADD_PARTITIONS, OPT_BAD_EVERY
};

static void
parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"brokers", required_argument, NULL, 'b'},
		{"topic", required_argument, NULL, 't'},
		{"count", required_argument, NULL, 'n'},
		{"start-id", required_argument, NULL, 's'},
		{"property", required_argument, NULL, 'X'},
		{"help", no_argument, NULL, 'h'},
		{"partition", required_argument, NULL, OPT_PARTITION},
		{"dup-ratio", required_argument, NULL, OPT_DUP_RATIO},
		{"format", required_argument, NULL, OPT_FORMAT},
		{"idempotent", no_argument, NULL, OPT_IDEMPOTENT},
		{"transactional", required_argument, NULL, OPT_TRANSACTIONAL},
		{"txn-size", required_argument, NULL, OPT_TXN_SIZE},
		{"abort-every", required_argument, NULL, OPT_ABORT_EVERY},
		{"headers", no_argument, NULL, OPT_HEADERS},
		{"timestamp-base", required_argument, NULL, OPT_TS_BASE},
		{"rate", required_argument, NULL, OPT_RATE},
		{"manifest", required_argument, NULL, OPT_MANIFEST},
		{"seed", required_argument, NULL, OPT_SEED},
		{"salt", required_argument, NULL, OPT_SALT},
		{"create-topic", required_argument, NULL, OPT_CREATE_TOPIC},
		{"add-partitions", required_argument, NULL, OPT_ADD_PARTITIONS},
		{"bad-every", required_argument, NULL, OPT_BAD_EVERY},
		{NULL, 0, NULL, 0}
	};
	int			c;

	while ((c = getopt_long(argc, argv, "b:t:n:s:X:h", longopts, NULL)) != -1)
	{
		switch (c)
		{
			case 'b':
				opt.brokers = optarg;
				break;
			case 't':
				opt.topic = optarg;
				break;
			case 'n':
				opt.count = parse_ll("-n", optarg, 0, 1000000000LL);
				break;
			case 's':
				opt.start_id = parse_ull("-s", optarg);
				break;
			case 'X':
				if (opt.n_xprops >= MAX_XPROPS)
					die("too many -X properties (max %d)", MAX_XPROPS);
				if (!strchr(optarg, '=') || optarg[0] == '=')
					die("-X expects prop=value, got \"%s\"", optarg);
				opt.xprops[opt.n_xprops++] = optarg;
				break;
			case 'h':
				usage(stdout);
				exit(0);
			case OPT_PARTITION:
				opt.partition = (int) parse_ll("--partition", optarg, 0, INT32_MAX);
				break;
			case OPT_DUP_RATIO:
				opt.dup_ratio = parse_double("--dup-ratio", optarg, 0.0, 1.0);
				break;
			case OPT_FORMAT:
				if (strcmp(optarg, "json") == 0)
					opt.format = FMT_JSON;
				else if (strcmp(optarg, "text") == 0)
					opt.format = FMT_TEXT;
				else
					die("invalid --format \"%s\" (expected json or text)", optarg);
				break;
			case OPT_IDEMPOTENT:
				opt.idempotent = 1;
				break;
			case OPT_TRANSACTIONAL:
				if (optarg[0] == '\0')
					die("--transactional needs a non-empty transactional id");
				opt.txid = optarg;
				break;
			case OPT_TXN_SIZE:
				opt.txn_size = parse_ll("--txn-size", optarg, 1, 1000000000LL);
				break;
			case OPT_ABORT_EVERY:
				opt.abort_every = parse_ll("--abort-every", optarg, 0, 1000000000LL);
				break;
			case OPT_HEADERS:
				opt.headers = 1;
				break;
			case OPT_TS_BASE:
				opt.ts_base = parse_ll("--timestamp-base", optarg, 0, INT64_MAX / 2);
				opt.have_ts_base = 1;
				break;
			case OPT_RATE:
				opt.rate = parse_double("--rate", optarg, 1e-6, 1e9);
				break;
			case OPT_MANIFEST:
				opt.manifest = optarg;
				break;
			case OPT_SEED:
				opt.seed = parse_ull("--seed", optarg);
				break;
			case OPT_SALT:
				opt.salt = (unsigned int) parse_ll("--salt", optarg, 0, UINT32_MAX);
				break;
			case OPT_CREATE_TOPIC:
				opt.create_topic = (int) parse_ll("--create-topic", optarg, 1, 1000000);
				break;
			case OPT_ADD_PARTITIONS:
				opt.add_partitions = (int) parse_ll("--add-partitions", optarg, 1, 1000000);
				break;
			case OPT_BAD_EVERY:
				opt.bad_every = parse_ll("--bad-every", optarg, 1, 1000000000LL);
				break;
			default:
				usage(stderr);
				exit(2);
		}
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (see --help)", argv[optind]);
	if (!opt.topic)
		die("-t TOPIC is required (see --help)");
	if (!opt.brokers)
	{
		int			mock = 0;

		for (int i = 0; i < opt.n_xprops; i++)
			if (strncmp(opt.xprops[i], "test.mock.num.brokers=", 22) == 0)
				mock = 1;
		if (!mock)
			die("-b BROKERS is required (see --help)");
	}
	if (opt.count < 0 && !opt.create_topic && !opt.add_partitions)
		die("-n COUNT is required (see --help)");
	if (opt.bad_every && opt.format != FMT_JSON)
		die("--bad-every only applies to --format json");
	if (opt.count > 0 && opt.start_id > 0xffffffffffffULL - (unsigned long long) opt.count)
		die("event numbers START..START+COUNT-1 must fit in 48 bits");
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void
sb_reserve(sbuf *b, size_t extra)
{
	if (b->len + extra <= b->cap)
		return;
	size_t		ncap = b->cap ? b->cap * 2 : 4096;

	while (ncap < b->len + extra)
		ncap *= 2;
	b->buf = realloc(b->buf, ncap);
	if (!b->buf)
		die("out of memory (%zu bytes)", ncap);
	b->cap = ncap;
}

static void
sb_add(sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n);
	memcpy(b->buf + b->len, s, n);
	b->len += n;
}

/* append with \t \n \r \\ escaped */
static void
sb_add_escaped(sbuf *b, const char *s, size_t n)
{
	sb_reserve(b, n * 2);
	char	   *o = b->buf + b->len;

	for (size_t i = 0; i < n; i++)
	{
		char		ch = s[i];

		switch (ch)
		{
			case '\t':
				*o++ = '\\';
				*o++ = 't';
				break;
			case '\n':
				*o++ = '\\';
				*o++ = 'n';
				break;
			case '\r':
				*o++ = '\\';
				*o++ = 'r';
				break;
			case '\\':
				*o++ = '\\';
				*o++ = '\\';
				break;
			default:
				*o++ = ch;
		}
	}
	b->len = o - b->buf;
}

static void
sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list		ap;
	int			n;

	sb_reserve(b, 64);
	va_start(ap, fmt);
	n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("vsnprintf failed");
	if ((size_t) n >= b->cap - b->len)
	{
		sb_reserve(b, (size_t) n + 1);
		va_start(ap, fmt);
		vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += n;
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
}

/* splitmix64: small, seedable, good enough for picking duplicates */
static uint64_t prng_state;

static uint64_t
prng_next(void)
{
	uint64_t	z = (prng_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* uniform double in [0, 1) */
static double
prng_double(void)
{
	return (prng_next() >> 11) * (1.0 / 9007199254740992.0);
}

/* ISO-8601 UTC with milliseconds */
static void
format_ts(char *out, size_t outsz, int64_t ms)
{
	time_t		secs = (time_t) (ms / 1000);
	struct tm	tm;

	gmtime_r(&secs, &tm);
	snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (ms % 1000));
}

/* ------------------------------------------------------------------------ */
/* Manifest and delivery reports                                            */
/* ------------------------------------------------------------------------ */

static void
write_manifest(const char *data, size_t len)
{
	if (len && fwrite(data, 1, len, st.mf) != len)
		die("writing manifest %s: %s", opt.manifest ? opt.manifest : "(stdout)",
			strerror(errno));
}

/*
 * Build "partition\toffset\tevent_id\t" into head and
 * "\tkey\tvalue[\tsend_us]\n" into tail for an acknowledged message.
 */
static void
build_entry(const rd_kafka_message_t *m, sbuf *head, sbuf *tail)
{
	intptr_t	seq = (intptr_t) m->_private;

	sb_printf(head, "%" PRId32 "\t%" PRId64 "\t", m->partition, m->offset);
	sb_add_escaped(head, m->key, m->key_len);
	sb_add(head, "\t", 1);

	sb_add(tail, "\t", 1);
	sb_add_escaped(tail, m->key, m->key_len);
	sb_add(tail, "\t", 1);
	sb_add_escaped(tail, m->payload, m->len);
	if (st.send_us)
		sb_printf(tail, "\t%" PRIu64, st.send_us[seq - 1]);
	sb_add(tail, "\n", 1);
}

static void
dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void) rk;
	(void) opaque;

	if (m->err)
	{
		/* purged by an abort: never acknowledged, nothing to record */
		if (st.aborting &&
			(m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
			 m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT))
			return;
		if (st.n_failed < 10)
			fprintf(stderr, "%s: error: delivery of record seq %ld (key %.*s) "
					"to %s [%" PRId32 "] failed: %s\n",
					progname, (long) (intptr_t) m->_private,
					(int) m->key_len, (const char *) m->key,
					rd_kafka_topic_name(m->rkt), m->partition,
					rd_kafka_err2str(m->err));
		else if (st.n_failed == 10)
			fprintf(stderr, "%s: error: further delivery errors not shown\n",
					progname);
		st.n_failed++;
		return;
	}

	st.n_acked++;
	if (st.transactional)
	{
		/* outcome unknown yet: keep "head\0tail\0" until commit/abort */
		sbuf		tail = {0};

		build_entry(m, &st.pending, &tail);
		sb_add(&st.pending, "", 1);
		sb_add(&st.pending, tail.buf, tail.len);
		sb_add(&st.pending, "", 1);
		free(tail.buf);
		st.n_pending++;
	}
	else
	{
		sbuf		tail = {0};

		st.line.len = 0;
		build_entry(m, &st.line, &tail);
		sb_add(&st.line, "committed", 9);
		sb_add(&st.line, tail.buf, tail.len);
		free(tail.buf);
		write_manifest(st.line.buf, st.line.len);
		st.n_committed++;
	}
}

/* write out the pending entries of a finished transaction */
static void
resolve_pending(const char *status)
{
	const char *p = st.pending.buf;
	const char *end = st.pending.buf + st.pending.len;
	size_t		slen = strlen(status);

	while (p < end)
	{
		size_t		hl = strlen(p);
		const char *tl = p + hl + 1;
		size_t		tlen = strlen(tl);

		write_manifest(p, hl);
		write_manifest(status, slen);
		write_manifest(tl, tlen);
		p = tl + tlen + 1;
	}
	if (strcmp(status, "aborted") == 0)
		st.n_aborted += st.n_pending;
	else
		st.n_committed += st.n_pending;
	st.pending.len = 0;
	st.n_pending = 0;
}

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void) opaque;

	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char		errstr[512];
		rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, errstr, sizeof(errstr));

		die("fatal librdkafka error: %s: %s", rd_kafka_err2name(orig), errstr);
	}
	/* transient errors (broker down etc.) are retried by librdkafka */
	fprintf(stderr, "%s: warning: librdkafka: %s: %s\n", progname,
			rd_kafka_err2name(err), reason);
}

/* ------------------------------------------------------------------------ */
/* Client setup, metadata, admin                                            */
/* ------------------------------------------------------------------------ */

static void
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		die("cannot set librdkafka property %s=%s: %s", name, value, errstr);
}

static rd_kafka_t *
make_producer(void)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	char		errstr[512];

	if (!conf)
		die("rd_kafka_conf_new failed");
	if (opt.brokers)
		conf_set(conf, "bootstrap.servers", opt.brokers);
	conf_set(conf, "client.id", "eo_producer");
	conf_set(conf, "linger.ms", "5");
	conf_set(conf, "batch.num.messages", "100000");
	conf_set(conf, "batch.size", "4000000");
	conf_set(conf, "compression.codec", "none");
	conf_set(conf, "queue.buffering.max.messages", "2000000");
	conf_set(conf, "queue.buffering.max.kbytes", "2097152");
	conf_set(conf, "message.timeout.ms", "60000");
	if (opt.idempotent)
		conf_set(conf, "enable.idempotence", "true");
	if (opt.txid)
	{
		conf_set(conf, "transactional.id", opt.txid);
		conf_set(conf, "transaction.timeout.ms", "60000");
	}
	/* user overrides last */
	for (int i = 0; i < opt.n_xprops; i++)
	{
		char	   *kv = strdup(opt.xprops[i]);
		char	   *eq;

		if (!kv)
			die("out of memory");
		eq = strchr(kv, '=');
		*eq = '\0';
		conf_set(conf, kv, eq + 1);
		free(kv);
	}
	rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);

	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk)
	{
		rd_kafka_conf_destroy(conf);
		die("cannot create producer: %s", errstr);
	}
	return rk;
}

/*
 * Partition count of the topic, or -1 with *err set if the topic does not
 * (yet) exist or the metadata request failed.
 */
static int
partition_count(rd_kafka_t *rk, rd_kafka_topic_t *rkt, rd_kafka_resp_err_t *err)
{
	const struct rd_kafka_metadata *md;
	int			cnt = -1;

	*err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
	if (*err)
		return -1;
	if (md->topic_cnt != 1)
		*err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
	else if (md->topics[0].err)
		*err = md->topics[0].err;
	else if (md->topics[0].partition_cnt <= 0)
		*err = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
	else
		cnt = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	return cnt;
}

/*
 * Wait until the topic exists with a partition count of at least "want"
 * (any count when want <= 0); returns the count.
 */
static int
wait_partition_count(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int want)
{
	uint64_t	deadline = mono_ns() + (uint64_t) METADATA_WAIT_MS * 1000000ULL;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	int			cnt;

	for (;;)
	{
		cnt = partition_count(rk, rkt, &err);
		if (cnt > 0 && (want <= 0 || cnt >= want))
			return cnt;
		if (mono_ns() > deadline)
			break;
		rd_kafka_poll(rk, 200);
	}
	if (cnt > 0)
		die("topic %s has %d partitions after %d ms, expected %d",
			opt.topic, cnt, METADATA_WAIT_MS, want);
	die("cannot get metadata for topic %s within %d ms: %s",
		opt.topic, METADATA_WAIT_MS, rd_kafka_err2str(err));
	return -1;
}

static rd_kafka_AdminOptions_t *
admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op)
{
	rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
	char		errstr[512];

	if (!o)
		die("rd_kafka_AdminOptions_new failed");
	if (rd_kafka_AdminOptions_set_operation_timeout(o, ADMIN_TIMEOUT_MS, errstr, sizeof(errstr)))
		die("cannot set admin operation timeout: %s", errstr);
	if (rd_kafka_AdminOptions_set_request_timeout(o, ADMIN_TIMEOUT_MS * 2, errstr, sizeof(errstr)))
		die("cannot set admin request timeout: %s", errstr);
	return o;
}

static rd_kafka_event_t *
admin_wait(rd_kafka_queue_t *q, const char *what)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS * 2 + 10000);

	if (!ev)
		die("%s: timed out waiting for the result", what);
	if (rd_kafka_event_error(ev))
		die("%s failed: %s", what, rd_kafka_event_error_string(ev));
	return ev;
}

/* the single topic result of a CreateTopics/CreatePartitions request */
static const rd_kafka_topic_result_t *
single_result(const rd_kafka_topic_result_t **res, size_t cnt, const char *what)
{
	if (cnt != 1)
		die("%s: expected 1 topic result, got %zu", what, cnt);
	return res[0];
}

static void
create_topic(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int partitions)
{
	char		errstr[512];
	rd_kafka_NewTopic_t *nt;
	rd_kafka_AdminOptions_t *o;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev;
	const rd_kafka_CreateTopics_result_t *res;
	const rd_kafka_topic_result_t **tres;
	const rd_kafka_topic_result_t *tr;
	size_t		cnt;
	rd_kafka_resp_err_t err;

	nt = rd_kafka_NewTopic_new(opt.topic, partitions, 1, errstr, sizeof(errstr));
	if (!nt)
		die("cannot create topic spec for %s: %s", opt.topic, errstr);
	o = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	q = rd_kafka_queue_new(rk);
	if (!q)
		die("rd_kafka_queue_new failed");

	rd_kafka_CreateTopics(rk, &nt, 1, o, q);
	ev = admin_wait(q, "CreateTopics");
	res = rd_kafka_event_CreateTopics_result(ev);
	if (!res)
		die("CreateTopics: unexpected event %s", rd_kafka_event_name(ev));
	tres = rd_kafka_CreateTopics_result_topics(res, &cnt);
	tr = single_result(tres, cnt, "CreateTopics");
	err = rd_kafka_topic_result_error(tr);

	if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
	{
		int			have = wait_partition_count(rk, rkt, 0);

		if (have != partitions)
			die("topic %s already exists with %d partitions, not %d",
				opt.topic, have, partitions);
		fprintf(stderr, "%s: topic %s already exists with %d partitions\n",
				progname, opt.topic, have);
	}
	else if (err)
		die("cannot create topic %s: %s: %s", opt.topic, rd_kafka_err2name(err),
			rd_kafka_topic_result_error_string(tr) ?
			rd_kafka_topic_result_error_string(tr) : rd_kafka_err2str(err));
	else
	{
		wait_partition_count(rk, rkt, partitions);
		fprintf(stderr, "%s: created topic %s with %d partitions\n",
				progname, opt.topic, partitions);
	}

	rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_NewTopic_destroy(nt);
}

static void
add_partitions(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int total)
{
	char		errstr[512];
	rd_kafka_NewPartitions_t *np;
	rd_kafka_AdminOptions_t *o;
	rd_kafka_queue_t *q;
	rd_kafka_event_t *ev;
	const rd_kafka_CreatePartitions_result_t *res;
	const rd_kafka_topic_result_t **tres;
	const rd_kafka_topic_result_t *tr;
	size_t		cnt;
	rd_kafka_resp_err_t err;
	rd_kafka_resp_err_t merr;
	int			have;

	np = rd_kafka_NewPartitions_new(opt.topic, total, errstr, sizeof(errstr));
	if (!np)
		die("cannot create partitions spec for %s: %s", opt.topic, errstr);
	o = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS);
	q = rd_kafka_queue_new(rk);
	if (!q)
		die("rd_kafka_queue_new failed");

	rd_kafka_CreatePartitions(rk, &np, 1, o, q);
	ev = admin_wait(q, "CreatePartitions");
	res = rd_kafka_event_CreatePartitions_result(ev);
	if (!res)
		die("CreatePartitions: unexpected event %s", rd_kafka_event_name(ev));
	tres = rd_kafka_CreatePartitions_result_topics(res, &cnt);
	tr = single_result(tres, cnt, "CreatePartitions");
	err = rd_kafka_topic_result_error(tr);
	if (err == RD_KAFKA_RESP_ERR_INVALID_PARTITIONS)
	{
		/* the broker refuses a no-op: fine if the count already matches */
		have = partition_count(rk, rkt, &merr);
		if (have == total)
		{
			fprintf(stderr, "%s: topic %s already has %d partitions\n",
					progname, opt.topic, have);
			goto done;
		}
	}
	if (err)
		die("cannot grow topic %s to %d partitions: %s: %s", opt.topic, total,
			rd_kafka_err2name(err),
			rd_kafka_topic_result_error_string(tr) ?
			rd_kafka_topic_result_error_string(tr) : rd_kafka_err2str(err));

	wait_partition_count(rk, rkt, total);
	fprintf(stderr, "%s: topic %s now has %d partitions\n",
			progname, opt.topic, total);

done:

	rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_AdminOptions_destroy(o);
	rd_kafka_NewPartitions_destroy(np);
}

/* ------------------------------------------------------------------------ */
/* Transactions                                                             */
/* ------------------------------------------------------------------------ */

static void
txn_check(rd_kafka_error_t *error, const char *what)
{
	if (!error)
		return;
	fprintf(stderr, "%s: error: %s failed: %s: %s%s%s\n", progname, what,
			rd_kafka_error_name(error), rd_kafka_error_string(error),
			rd_kafka_error_is_fatal(error) ? " (fatal)" : "",
			rd_kafka_error_txn_requires_abort(error) ? " (transaction requires abort)" : "");
	rd_kafka_error_destroy(error);
	exit(1);
}

/* wait for all outstanding delivery reports */
static void
flush_all(rd_kafka_t *rk)
{
	rd_kafka_resp_err_t err;

	/* bounded by message.timeout.ms: undeliverable records fail their DR */
	while ((err = rd_kafka_flush(rk, 10000)) == RD_KAFKA_RESP_ERR__TIMED_OUT)
		fprintf(stderr, "%s: waiting for %d outstanding records...\n",
				progname, rd_kafka_outq_len(rk));
	if (err)
		die("flush failed: %s", rd_kafka_err2str(err));
	if (st.n_failed)
		die("%lld records could not be delivered", st.n_failed);
}

static void
end_transaction(rd_kafka_t *rk, int abort)
{
	rd_kafka_error_t *error;

	/* get every DR (partition/offset) of this transaction first */
	flush_all(rk);

	for (int attempt = 1;; attempt++)
	{
		if (abort)
		{
			st.aborting = 1;
			error = rd_kafka_abort_transaction(rk, TXN_TIMEOUT_MS);
			st.aborting = 0;
		}
		else
			error = rd_kafka_commit_transaction(rk, TXN_TIMEOUT_MS);
		if (error && rd_kafka_error_is_retriable(error) && attempt < 5)
		{
			fprintf(stderr, "%s: warning: %s failed, retrying: %s\n", progname,
					abort ? "abort_transaction" : "commit_transaction",
					rd_kafka_error_string(error));
			rd_kafka_error_destroy(error);
			continue;
		}
		txn_check(error, abort ? "abort_transaction" : "commit_transaction");
		break;
	}
	if (st.n_failed)
		die("%lld records could not be delivered", st.n_failed);
	resolve_pending(abort ? "aborted" : "committed");
}

/* ------------------------------------------------------------------------ */
/* Producing                                                                */
/* ------------------------------------------------------------------------ */

static void
build_value(sbuf *v, unsigned long long n, long long seq, int64_t ts_ms,
			const char *event_id)
{
	char		tsbuf[96];

	v->len = 0;
	if (opt.format == FMT_TEXT)
	{
		sb_printf(v, "event %llu seq %lld", n, seq);
		return;
	}
	if (opt.bad_every && seq % opt.bad_every == 0)
	{
		/* truncated object: not valid JSON */
		sb_printf(v, "{\"event_id\":\"%s\",\"seq\":%lld,\"customer\":{\"id\":%llu,",
				  event_id, seq, n % 1000);
		return;
	}
	format_ts(tsbuf, sizeof(tsbuf), ts_ms);
	sb_printf(v,
			  "{\"event_id\":\"%s\",\"seq\":%lld,\"customer\":{\"id\":%llu},"
			  "\"customer_id\":%llu,\"amount\":\"%llu.%02llu\","
			  "\"note\":\"event %llu\",\"created_at\":\"%s\"}",
			  event_id, seq, n % 1000, n % 1000,
			  (n % 100000) / 100, n % 100, n, tsbuf);
}

static void
produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
			const char *key, size_t keylen, const sbuf *value,
			int64_t ts_ms, long long seq)
{
	rd_kafka_resp_err_t err;
	char		seqbuf[24];

	snprintf(seqbuf, sizeof(seqbuf), "%lld", seq);
	for (;;)
	{
		if (opt.headers)
			err = rd_kafka_producev(rk,
									RD_KAFKA_V_RKT(rkt),
									RD_KAFKA_V_PARTITION(partition),
									RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
									RD_KAFKA_V_KEY(key, keylen),
									RD_KAFKA_V_VALUE(value->buf, value->len),
									RD_KAFKA_V_TIMESTAMP(ts_ms),
									RD_KAFKA_V_HEADER("source", "eo_producer", -1),
									RD_KAFKA_V_HEADER("seq", seqbuf, -1),
									RD_KAFKA_V_HEADER("empty", NULL, 0),
									RD_KAFKA_V_OPAQUE((void *) (intptr_t) seq),
									RD_KAFKA_V_END);
		else
			err = rd_kafka_producev(rk,
									RD_KAFKA_V_RKT(rkt),
									RD_KAFKA_V_PARTITION(partition),
									RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
									RD_KAFKA_V_KEY(key, keylen),
									RD_KAFKA_V_VALUE(value->buf, value->len),
									RD_KAFKA_V_TIMESTAMP(ts_ms),
									RD_KAFKA_V_OPAQUE((void *) (intptr_t) seq),
									RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		/* local queue full: serve delivery reports and retry */
		rd_kafka_poll(rk, 100);
	}
	if (err)
		die("cannot produce record seq %lld to %s [%" PRId32 "]: %s",
			seq, opt.topic, partition, rd_kafka_err2str(err));
}

int
main(int argc, char **argv)
{
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	int			nparts;
	unsigned long long *nums = NULL;
	long long	n_dups = 0;
	long long	txn_no = 0;
	int			txn_abort = 0;
	sbuf		value = {0};
	uint64_t	t0,
				t1;
	double		secs;

	parse_args(argc, argv);
	prng_state = opt.seed;

	rk = make_producer();
	rkt = rd_kafka_topic_new(rk, opt.topic, NULL);
	if (!rkt)
		die("cannot create topic handle for %s: %s", opt.topic,
			rd_kafka_err2str(rd_kafka_last_error()));

	if (opt.create_topic)
		create_topic(rk, rkt, opt.create_topic);
	if (opt.add_partitions)
		add_partitions(rk, rkt, opt.add_partitions);
	if (opt.count < 0)
	{
		rd_kafka_topic_destroy(rkt);
		rd_kafka_destroy(rk);
		return 0;
	}

	/* manifest */
	if (opt.manifest && strcmp(opt.manifest, "-") != 0)
	{
		st.mf = fopen(opt.manifest, "w");
		if (!st.mf)
			die("cannot open manifest %s: %s", opt.manifest, strerror(errno));
	}
	else
	{
		st.mf = stdout;
		opt.manifest = NULL;
	}
	if (setvbuf(st.mf, NULL, _IOFBF, 1 << 20) != 0)
		die("setvbuf failed");

	nparts = wait_partition_count(rk, rkt, 0);
	if (opt.partition >= nparts)
		die("--partition %d out of range: topic %s has %d partitions",
			opt.partition, opt.topic, nparts);

	if (opt.dup_ratio > 0 && opt.count > 0)
	{
		nums = malloc(sizeof(*nums) * (size_t) opt.count);
		if (!nums)
			die("out of memory for %lld event numbers", opt.count);
	}
	if (opt.rate > 0 && opt.count > 0)
	{
		st.send_us = calloc((size_t) opt.count, sizeof(*st.send_us));
		if (!st.send_us)
			die("out of memory for %lld send times", opt.count);
	}

	if (opt.txid)
	{
		st.transactional = 1;
		txn_check(rd_kafka_init_transactions(rk, TXN_TIMEOUT_MS), "init_transactions");
	}

	t0 = mono_ns();
	for (long long seq = 1; seq <= opt.count; seq++)
	{
		unsigned long long n = opt.start_id + (unsigned long long) (seq - 1);
		char		key[64];
		int			keylen;
		int64_t		ts_ms;
		int32_t		partition;

		if (nums)
		{
			if (seq > 1 && prng_double() < opt.dup_ratio)
			{
				n = nums[prng_next() % (uint64_t) (seq - 1)];
				n_dups++;
			}
			nums[seq - 1] = n;
		}
		keylen = snprintf(key, sizeof(key), "%08x-0000-4000-8000-%012llx", opt.salt, n);

		if (st.transactional && (seq - 1) % opt.txn_size == 0)
		{
			txn_no++;
			txn_abort = opt.abort_every > 0 && txn_no % opt.abort_every == 0;
			txn_check(rd_kafka_begin_transaction(rk), "begin_transaction");
		}

		if (opt.rate > 0)
		{
			uint64_t	target = t0 + (uint64_t) ((double) (seq - 1) * 1e9 / opt.rate);
			uint64_t	now;

			rd_kafka_poll(rk, 0);
			while ((now = mono_ns()) < target)
			{
				struct timespec ts;
				uint64_t	wait = target - now;

				/* keep serving delivery reports while waiting */
				if (wait > 10000000ULL)
					wait = 10000000ULL;
				ts.tv_sec = wait / 1000000000ULL;
				ts.tv_nsec = wait % 1000000000ULL;
				nanosleep(&ts, NULL);
				rd_kafka_poll(rk, 0);
			}
		}

		ts_ms = opt.have_ts_base ? opt.ts_base + (seq - 1) : (int64_t) (wall_us() / 1000);
		build_value(&value, n, seq, ts_ms, key);
		partition = opt.partition >= 0 ? opt.partition : (int32_t) (seq % nparts);
		if (st.send_us)
			st.send_us[seq - 1] = wall_us();
		produce_one(rk, rkt, partition, key, (size_t) keylen, &value, ts_ms, seq);

		if ((seq & 1023) == 0)
			rd_kafka_poll(rk, 0);
		if (st.n_failed)
			die("%lld records could not be delivered", st.n_failed);

		if (st.transactional && (seq % opt.txn_size == 0 || seq == opt.count))
			end_transaction(rk, txn_abort);
	}

	flush_all(rk);
	if (st.n_pending)
		die("internal error: %lld manifest entries left pending", st.n_pending);
	t1 = mono_ns();
	secs = (double) (t1 - t0) / 1e9;

	if (fflush(st.mf) != 0 || ferror(st.mf))
		die("writing manifest %s: %s", opt.manifest ? opt.manifest : "(stdout)",
			strerror(errno));
	if (st.mf != stdout && fclose(st.mf) != 0)
		die("closing manifest %s: %s", opt.manifest, strerror(errno));

	if (st.n_acked != opt.count)
		die("only %lld of %lld records were acknowledged", st.n_acked, opt.count);

	fprintf(stderr, "produced %lld records (%lld committed, %lld aborted) in %.3f s\n",
			st.n_acked, st.n_committed, st.n_aborted, secs);
	fprintf(stderr, "%s: %.0f records/s, %lld duplicates, %lld transactions, "
			"%d partitions\n", progname, secs > 0 ? (double) st.n_acked / secs : 0.0,
			n_dups, txn_no, opt.partition >= 0 ? 1 : nparts);

	free(nums);
	free(st.send_us);
	free(st.pending.buf);
	free(st.line.buf);
	free(value.buf);
	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	return 0;
}
