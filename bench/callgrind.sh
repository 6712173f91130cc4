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
#   --format avro   also drain the same records as Avro (Confluent wire
#                   format, Apicurio Registry, confluent-kafka's
#                   AvroSerializer: bench/avro_topic.sh, as bench/run.sh
#                   --format avro) and count that worker too
#   --batch-size N  the pipeline's batch_size (default: the extension's);
#                   under valgrind librdkafka's threads share one core with
#                   the worker, so batches stay small: a small batch_size
#                   makes them full, which starts the parallel decoder
#   --set 'GUC = V' a line for postgresql.conf, e.g.
#                   --set 'eo_ingest.parallel_decode = off' (repeatable)
#
# Environment: PG_CONFIG (default /usr/lib/postgresql/15/bin/pg_config),
# EO_TEST_USER (eo_test), EO_AVRO_PYTHON (--format avro).  Needs
# test/producer/eo_producer (make producer); --format avro also Java and
# Apicurio Registry (test/registry/apicurio.sh fetch) and confluent-kafka
# (scripts/install-deps.sh installs both).
#
# One cluster (the bench's settings) runs under callgrind, collecting only
# inside eo_worker_main, DoCopy and eo_decoder_main (parallel decode): a
# default pipeline drains the topic into an empty target (with --format avro, then a second pipeline the Avro topic
# into another), then a backend COPYs the distinct rows (first occurrence of
# each id, as bench/run.sh does) into another.  Every drain is checked row
# by row against COPY's table.  Prints the instructions of each worker per
# record, of COPY per row, their ratios (and Avro's against JSON's);
# callgrind_annotate reads the files kept in --out (callgrind.worker,
# callgrind.worker_avro, callgrind.copy).  The decoding (record.c's
# eo_record_decode_batch: the format and the conversion into Datums) is
# also shown apart: its count per record is the same from run to run,
# where the rest moves by a few percent with where batches end (the worker
# closes one when librdkafka's queue is empty, which depends on timing).
# The parallel decoders' instructions (eo_decoder_main) are shown apart.

set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
BUSER="${EO_TEST_USER:-eo_test}"
EVENTS=100000
OUT=""
KEEP=0
FORMAT=json
BATCH=""
SETTINGS=""

die() { echo "callgrind: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
	case "$1" in
		--events) EVENTS="$2"; shift 2 ;;
		--out) OUT="$2"; shift 2 ;;
		--keep) KEEP=1; shift ;;
		--format) FORMAT="$2"; shift 2 ;;
		--batch-size) BATCH=", batch_size => $2"; shift 2 ;;
		--set) SETTINGS="$SETTINGS$2"$'\n'; shift 2 ;;
		-h|--help) sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) die "unknown option $1 (--help)" ;;
	esac
done
[[ "$FORMAT" = json || "$FORMAT" = avro ]] || die "--format must be json or avro"
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
REG_STARTED=0
. "$SRC/bench/avro_topic.sh"

as_user() {
	runuser -u "$BUSER" -- env HOME="$(getent passwd "$BUSER" | cut -d: -f6)" USER="$BUSER" \
		LANG=C.UTF-8 "$@"
}
cleanup() {
	local rc=$?
	[ "$PG_STARTED" = 1 ] && as_user "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1
	[ "$REG_STARTED" = 1 ] && avro_registry_stop "$SRC" "$WORK/registry"
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
if [ "$FORMAT" = avro ]; then
	REG_PORT="$(free_port)"
	REG_URL="$(avro_registry_url "$REG_PORT")"
	REG_STARTED=1
	avro_registry_start "$SRC" "$WORK/registry" "$REG_PORT" >/dev/null
	avro_topic "$SRC" "$WORK/eo_producer" "$BROKERS" cg_avro 4 "$WORK/cg.manifest" "$REG_URL" >"$WORK/avro_topic.log" ||
		{ cat "$WORK/avro_topic.log"; die "the Avro topic could not be filled"; }
fi

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
pq -c "CREATE EXTENSION eo_ingest" -c "CREATE TABLE public.copied ($COLS)"
# drain PIPELINE TOPIC TARGET [CREATE_PIPELINE_EXTRA]: sets WPID, the worker's pid
drain() {
	local n i p
	pq -c "CREATE TABLE public.$3 ($COLS)"
	pq -c "SELECT eo_ingest.create_pipeline(name => '$1', brokers => '$BROKERS', topic => '$2', target => 'public.$3'$BATCH${4:-})" >/dev/null
	WPID=""
	for ((i = 0; ; i++)); do
		IFS='|' read -r n p < <(pq -c "SELECT rows_inserted + duplicates_skipped + dead_letters, worker_pid
			FROM eo_ingest.pipeline_status WHERE name = '$1'")
		[ -n "$p" ] && WPID="$p"
		[ "$n" = "$RECORDS" ] && break
		[ "$i" -lt 1800 ] || die "the drain of $2 did not finish in an hour ($n of $RECORDS records)"
		sleep 2
	done
	[ -n "$WPID" ] || die "no worker pid for pipeline $1"
	pq -c "SELECT eo_ingest.drop_pipeline('$1')" >/dev/null
	# callgrind writes the worker's counts when it exits
	for ((i = 0; i < 300; i++)); do
		grep -q '^totals:' "$WORK/cg/callgrind.out.$WPID" 2>/dev/null && return 0
		sleep 1
	done
	die "no callgrind output of worker $WPID (pipeline $1)"
}
drain cg cg drained
WFILE="$WORK/cg/callgrind.out.$WPID"
if [ "$FORMAT" = avro ]; then
	drain cg_avro cg_avro drained_avro ", format => 'avro', schema_registry => '$REG_URL'"
	AFILE="$WORK/cg/callgrind.out.$WPID"
fi
pq -c "COPY public.copied (event_id, seq, customer_id, amount, note, created_at) FROM '$WORK/cg.csv' (FORMAT csv)"
for t in drained ${AFILE:+drained_avro}; do
	[ "$(pq -c "SELECT count(*) FROM public.$t")" = "$ROWS" ] || die "$t: the drain landed a wrong number of rows"
	# as bench/run.sh checks: a duplicate's seq and created_at are its own
	[ "$(pq -c "SELECT count(*) FROM public.$t a FULL JOIN public.copied b USING (event_id)
		WHERE a.event_id IS NULL OR b.event_id IS NULL
		   OR (a.customer_id, a.amount, a.note) IS DISTINCT FROM (b.customer_id, b.amount, b.note)")" = 0 ] ||
		die "$t: the drained rows differ from COPY's"
done
as_user "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 600 stop >/dev/null
PG_STARTED=0

total() { awk '/^totals:/ { t = $2 } END { print t }' "$1"; }
# the instructions of fn and what it calls (callgrind_annotate --inclusive)
inclusive() {
	callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
		awk -v fn="$2" '$3 ~ (":" fn "$") && !done { gsub(",", "", $1); print $1; done = 1 }'
}
CFILE="$(grep -l 'DoCopy' "$WORK"/cg/callgrind.out.* | grep -v -x -e "$WFILE" -e "${AFILE:-$WFILE}" | head -n 1)"
[ -n "$CFILE" ] || die "no callgrind output for the COPY backend"
cp "$WFILE" "$OUT/callgrind.worker"
cp "$CFILE" "$OUT/callgrind.copy"
W=$(total "$WFILE")
C=$(total "$CFILE")
{
	echo "records $RECORDS, distinct rows $ROWS"
	echo "worker (eo_worker_main): $W instructions, $((W / RECORDS)) per record"
	WD=$(inclusive "$WFILE" eo_record_decode_batch)
	echo "  decoding (eo_record_decode_batch): $((WD / RECORDS)) per record"
	if [ -n "${AFILE:-}" ]; then
		cp "$AFILE" "$OUT/callgrind.worker_avro"
		A=$(total "$AFILE")
		AD=$(inclusive "$AFILE" eo_record_decode_batch)
		echo "Avro worker:              $A instructions, $((A / RECORDS)) per record"
		echo "  decoding (eo_record_decode_batch): $((AD / RECORDS)) per record"
	fi
	echo "COPY (DoCopy):            $C instructions, $((C / ROWS)) per row"
	awk -v w="$W" -v c="$C" 'BEGIN { printf "worker / COPY: %.3f\n", w / c }'
	if [ -n "${AFILE:-}" ]; then
		awk -v a="$A" -v c="$C" 'BEGIN { printf "Avro worker / COPY: %.3f\n", a / c }'
		awk -v a="$A" -v w="$W" 'BEGIN { printf "Avro worker / JSON worker: %.3f\n", a / w }'
		awk -v a="$AD" -v w="$WD" 'BEGIN { printf "Avro decoding / JSON decoding: %.3f\n", a / w }'
	fi
	D=0
	for f in $(grep -l 'eo_decoder_main' "$WORK"/cg/callgrind.out.* || true); do
		D=$((D + $(total "$f")))
	done
	echo "parallel decoders (eo_decoder_main): $D instructions, $((D / RECORDS)) per record"
	echo "files: $OUT/callgrind.worker${AFILE:+, $OUT/callgrind.worker_avro}, $OUT/callgrind.copy (callgrind_annotate)"
} | tee "$OUT/result.txt"
