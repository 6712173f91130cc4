#!/bin/bash
# Instruction counts of one drain and of COPY, with valgrind --tool=callgrind:
# counts do not depend on the machine's load, so a change to the worker's
# CPU per record can be measured on a busy machine.
#
#   bench/callgrind.sh [options]      as root; the extension must already be
#                                     installed into PG_CONFIG's PostgreSQL
#
# Options:
#   --events N      records in the topic (default 100000; 5 % duplicate ids,
#                   4 partitions, the benchmark's JSON events)
#   --out DIR       where the callgrind files and result.txt go
#                   (default /var/tmp/eo_callgrind.<time>)
#   --keep          leave the work directory in place
#   --batch-size N  the pipeline's batch_size (default: the extension's);
#                   under valgrind librdkafka's threads share one core with
#                   the worker, so batches stay small: a small batch_size
#                   makes them full, which starts the parallel decoder
#   --set 'GUC = V' a line for postgresql.conf, e.g.
#                   --set 'eo_ingest.parallel_decode = off' (repeatable)
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
# EO_TEST_USER (eo_test).  Needs test/producer/eo_producer (make producer).
#
# One cluster (the bench's settings) runs under callgrind, collecting only
# inside eo_worker_main, DoCopy and eo_decoder_main (parallel decode): a
# default pipeline drains the topic into an empty target, then a backend
# COPYs the distinct rows (first occurrence of each id, as bench/run.sh
# does) into another.  Prints the instructions of each, per record and per
# row, and their ratio, and the decoders' apart; callgrind_annotate reads
# the files kept in --out.

set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
BUSER="${EO_TEST_USER:-eo_test}"
EVENTS=100000
OUT=""
KEEP=0
BATCH=""
SETTINGS=""

die() { echo "callgrind: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
	case "$1" in
		--events) EVENTS="$2"; shift 2 ;;
		--out) OUT="$2"; shift 2 ;;
		--keep) KEEP=1; shift ;;
		--batch-size) BATCH=", batch_size => $2"; shift 2 ;;
		--set) SETTINGS="$SETTINGS$2"$'\n'; shift 2 ;;
		-h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) die "unknown option $1 (--help)" ;;
	esac
done
[ "$(id -u)" = 0 ] || die "run as root (the servers run as $BUSER)"
command -v valgrind >/dev/null || die "valgrind is not installed"
PRODUCER="$SRC/test/producer/eo_producer"
[ -x "$PRODUCER" ] || die "no $PRODUCER (make PG_CONFIG=$PG_CONFIG producer)"
PGBIN="$("$PG_CONFIG" --bindir)"
[ -f "$("$PG_CONFIG" --pkglibdir)/eo_ingest.so" ] || die "eo_ingest is not installed into $PG_CONFIG's PostgreSQL"

OUT="${OUT:-/var/tmp/eo_callgrind.$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
WORK="$(mktemp -d /var/tmp/eo_callgrind_work.XXXXXX)"
chmod 755 "$WORK"
mkdir -p "$WORK/cg"
cp "$PRODUCER" "$WORK/eo_producer"
chown -R "$BUSER": "$WORK" "$OUT"
PGDATA="$WORK/pgdata"
KDIR="$WORK/kafka"
PG_STARTED=0
KAFKA_STARTED=0

as_user() { runuser -u "$BUSER" -- "$@"; }
cleanup() {
	local rc=$?
	[ "$PG_STARTED" = 1 ] && as_user "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
	[ "$KAFKA_STARTED" = 1 ] && { as_user "$SRC/test/kafka/kafka.sh" stop "$KDIR" >/dev/null 2>&1 ||
		as_user "$SRC/test/kafka/kafka.sh" kill "$KDIR" >/dev/null 2>&1; }
	[ "$KEEP" = 1 ] || rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
	local p
	for _ in $(seq 200); do
		p=$(( 20000 + RANDOM % 12000 ))  # below the ephemeral ports (32768-)
		if ! ss -Hltn "sport = :$p or sport = :$((p + 1))" | grep -q .; then
			echo "$p"
			return
		fi
	done
	die "no free port"
}

KPORT="$(free_port)"
as_user "$SRC/test/kafka/kafka.sh" start "$KDIR" "$KPORT" >/dev/null
KAFKA_STARTED=1
BROKERS="127.0.0.1:$KPORT"
as_user "$WORK/eo_producer" -b "$BROKERS" -t cg --create-topic 4 >/dev/null
as_user "$WORK/eo_producer" -b "$BROKERS" -t cg -n "$EVENTS" --dup-ratio 0.05 \
	--manifest "$WORK/cg.manifest" >/dev/null 2>&1
awk -F '\t' -f "$SRC/bench/json_fields.awk" -f "$SRC/bench/manifest2csv.awk" "$WORK/cg.manifest" >"$WORK/cg.csv"
chown "$BUSER": "$WORK/cg.csv"
RECORDS=$(awk -F '\t' '$4 == "committed"' "$WORK/cg.manifest" | wc -l)
ROWS=$(wc -l <"$WORK/cg.csv")

as_user "$PGBIN/initdb" -D "$PGDATA" --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
PGPORT="$(free_port)"
cat >>"$PGDATA/postgresql.conf" <<EOF
port = $PGPORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'eo_ingest'
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 30min
$SETTINGS
EOF
cat >"$WORK/postgres-callgrind" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --quiet --collect-atstart=no \\
	--toggle-collect=eo_worker_main --toggle-collect=DoCopy --toggle-collect=eo_decoder_main \\
	--callgrind-out-file=$WORK/cg/callgrind.out.%p $PGBIN/postgres "\$@"
EOF
chmod 755 "$WORK/postgres-callgrind"
as_user "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/postgres.log" -p "$WORK/postgres-callgrind" \
	-w -t 600 start >/dev/null || { tail -n 20 "$WORK/postgres.log"; die "PostgreSQL did not start"; }
PG_STARTED=1
pq() { as_user "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$WORK" -p "$PGPORT" -d postgres "$@"; }
COLS="event_id uuid PRIMARY KEY, seq integer, customer_id integer, amount numeric, note text, created_at timestamptz"
pq -c "CREATE EXTENSION eo_ingest" -c "CREATE TABLE public.drained ($COLS)" -c "CREATE TABLE public.copied ($COLS)"
pq -c "SELECT eo_ingest.create_pipeline(name => 'cg', brokers => '$BROKERS', topic => 'cg', target => 'public.drained'$BATCH)" >/dev/null
for ((i = 0; ; i++)); do
	n=$(pq -c "SELECT rows_inserted + duplicates_skipped + dead_letters FROM eo_ingest.pipeline_status WHERE name = 'cg'")
	[ "$n" = "$RECORDS" ] && break
	[ "$i" -lt 1800 ] || die "the drain did not finish in an hour ($n of $RECORDS records)"
	sleep 2
done
pq -c "SELECT eo_ingest.drop_pipeline('cg')" >/dev/null
pq -c "COPY public.copied (event_id, seq, customer_id, amount, note, created_at) FROM '$WORK/cg.csv' (FORMAT csv)"
[ "$(pq -c 'SELECT count(*) FROM public.drained')" = "$ROWS" ] || die "the drain landed a wrong number of rows"
# as bench/run.sh checks: a duplicate's seq and created_at are its own
[ "$(pq -c "SELECT count(*) FROM public.drained a FULL JOIN public.copied b USING (event_id)
	WHERE a.event_id IS NULL OR b.event_id IS NULL
	   OR (a.customer_id, a.amount, a.note) IS DISTINCT FROM (b.customer_id, b.amount, b.note)")" = 0 ] ||
	die "the drained rows differ from COPY's"
as_user "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 600 stop >/dev/null
PG_STARTED=0

total() { awk '/^totals:/ { t = $2 } END { print t }' "$1"; }
WFILE="$(grep -l 'eo_worker_main' "$WORK"/cg/callgrind.out.* | head -n 1)"
CFILE="$(grep -l 'DoCopy' "$WORK"/cg/callgrind.out.* | grep -v -x "$WFILE" | head -n 1)"
[ -n "$WFILE" ] && [ -n "$CFILE" ] || die "no callgrind output for the worker or the COPY backend"
cp "$WFILE" "$OUT/callgrind.worker"
cp "$CFILE" "$OUT/callgrind.copy"
W=$(total "$WFILE")
C=$(total "$CFILE")
{
	echo "records $RECORDS, distinct rows $ROWS"
	echo "worker (eo_worker_main): $W instructions, $((W / RECORDS)) per record"
	echo "COPY (DoCopy):            $C instructions, $((C / ROWS)) per row"
	awk -v w="$W" -v c="$C" 'BEGIN { printf "worker / COPY: %.3f\n", w / c }'
	D=0
	for f in $(grep -l 'eo_decoder_main' "$WORK"/cg/callgrind.out.* || true); do
		D=$((D + $(total "$f")))
	done
	echo "parallel decoders (eo_decoder_main): $D instructions, $((D / RECORDS)) per record"
	echo "files: $OUT/callgrind.worker, $OUT/callgrind.copy (callgrind_annotate)"
} | tee "$OUT/result.txt"
