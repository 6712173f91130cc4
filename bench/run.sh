#!/bin/bash
# eo_ingest benchmark: throughput against PostgreSQL's own COPY, worker CPU
# and memory, and freshness (produce-to-visible latency), all in one run on a
# throwaway Kafka broker and a throwaway PostgreSQL 15 cluster.
#
#   bench/run.sh [options]            as root (installs dependencies, builds
#                                     and installs the extension first)
#
# Options:
#   --events N          events preloaded into the topic (default 1000000)
#   --dup-ratio F       fraction of duplicate event ids (default 0.05)
#   --rate R            freshness phase: events/s (default 10000)
#   --fresh-seconds S   freshness phase: seconds of steady production (60; 0 = skip)
#   --workers LIST      extra runs with workers => N, comma separated (default 2,4)
#   --no-perf           skip the profiling run (perf record on the worker)
#   --no-warmup         no untimed warm-up: by default an eo_ingest drain
#                       reads each drain topic once before COPY, and a
#                       freshness warm-up runs before the first freshness
#                       phase (see "warm-up")
#   --repeat N          N rounds of COPY and every drain, one after the other;
#                       the fastest of each counts (default 1; the machine is
#                       shared and noisy)
#   --batch-size N      create every pipeline with batch_size => N (default:
#                       the extension's default)
#   --pipeline-args S   appended to every create_pipeline call, e.g.
#                       ", kafka_options => '{\"queued.min.messages\": \"500000\"}'"
#   --format avro       also drain the same events as Avro (Confluent wire
#                       format, Apicurio Registry), next to the JSON drain,
#                       and measure freshness on an Avro topic after the
#                       JSON one; the profiling run then profiles the Avro drain
#   --case 'LABEL=ARGS' also drain with ARGS appended to create_pipeline
#                       (e.g. --case 'batch 100k=, batch_size => 100000'),
#                       or with a server setting for that drain only
#                       (--case 'no decoder=SET eo_ingest.parallel_decode = off'),
#                       measured in the same rounds; may be given several times
#   --sql-path          also drain with eo_ingest.direct_insert = off (the
#                       INSERT ... ON CONFLICT path), for comparison
#   --no-peers          skip the peers (Kafka Connect + Debezium JDBC sink,
#                       fresh and warm worker; kcat -> COPY -> INSERT ON CONFLICT)
#   --connect-tasks N   the JDBC sink's tasks.max (default 1)
#   --connect-batch N   the JDBC sink's batch.size and max.poll.records (10000)
#   --connect-props F   extra JDBC sink properties appended from file F
#   --many-partitions P also drain the same events from a P-partition topic
#                       with workers => 4 (compare with workers => 4 on 4)
#   --idle N            idle-cost mode: N pipelines, one record each, then
#                       CPU and memory over --idle-seconds (see bench/idle.sh)
#   --idle-seconds S    idle mode: measuring window (default 60)
#   --idle-settle S     idle mode: wait S s once all pipelines run (default 10)
#   --idle-baseline S   idle mode: then pause every pipeline and measure the
#                       broker alone, same topics, no consumers, over S s
#                       (default: --idle-seconds; 0 = skip)
#   --perf-seconds S    length of the perf recording (default 20)
#   --perf-fresh        also perf record the worker through each freshness
#                       phase (profile/fresh-*.txt, profile/fresh_avro-*.txt)
#   --fresh-split       freshness topics with LogAppendTime, the Kafka timestamp
#                       mapped to a column: latency split at the broker's append
#   --backlog N         memory check only: N events backlog, sample the worker's
#                       memory while it drains (see bench/memory.sh)
#   --memory-seconds S  memory check: stop sampling after S seconds (default 120)
#   --change-stream N   change-stream mode: N Debezium change events (20 %
#                       creates, 70 % updates, 10 % deletes) applied by eo_ingest
#                       and by the Debezium JDBC sink, against an insert-only
#                       drain of --events (see bench/cs_mode.sh)
#   --cs-keys K         change-stream mode: keys (default 200000)
#   --out DIR           where results go (default /var/tmp/eo_bench-results.<time>)
#   --keep              leave the servers running and the work dir in place
#   --no-build          use the installed extension (skip install-deps and build)
#   --worktree          build the working tree as it is (default: the committed HEAD)
#   --system-install    also `make install` into the system PostgreSQL (the
#                       servers always run from a private copy, see below)
#
# Environment: EO_TEST_USER (eo_test), EO_BENCH_TIMEOUT (seconds per drain, 1800).
#
# Every measurement uses the same server settings (see write_pg_conf).  Output:
# a table and one machine-readable line starting with "BENCH {".

set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGBIN=/usr/lib/postgresql/15/bin
PG_CONFIG="${PG_CONFIG:-$PGBIN/pg_config}"
BUSER="${EO_TEST_USER:-eo_test}"
DRAIN_TIMEOUT="${EO_BENCH_TIMEOUT:-1800}"

EVENTS=1000000
DUP=0.05
RATE=10000
FRESH_SECS=60
WARMUP=1
WORKERS_LIST=2,4
PERF=1
PERF_SECS=20
PERF_FRESH=0
FRESH_SPLIT=0
BACKLOG=0
MEM_SECS=120
CHANGE_STREAM=0
CS_KEYS=200000
OUT=""
KEEP=0
BUILD=1
WORKTREE=0
SYSTEM_INSTALL=0
PEERS=1
CONNECT_TASKS=1
CONNECT_BATCH=10000
CONNECT_PROPS=""
MANY_PARTS=0
IDLE=0
IDLE_SECS=60
IDLE_SETTLE=10
PARTITIONS=4
EXTRA_CASES=()

die() { echo "bench: $*" >&2; exit 1; }
# the help: lines 2 to the end of the comment block above (no line count to keep)
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
	case "$1" in
		--events) EVENTS="$2"; shift 2 ;;
		--dup-ratio) DUP="$2"; shift 2 ;;
		--rate) RATE="$2"; shift 2 ;;
		--fresh-seconds) FRESH_SECS="$2"; shift 2 ;;
		--workers) WORKERS_LIST="$2"; shift 2 ;;
		--no-perf) PERF=0; shift ;;
		--format) FORMAT="$2"; shift 2 ;;
		--case) [[ "$2" == *=* ]] || die "--case takes LABEL=ARGS"; EXTRA_CASES+=("$2"); shift 2 ;;
		--sql-path) SQLPATH=1; shift ;;
		--no-peers) PEERS=0; shift ;;
		--no-warmup) WARMUP=0; shift ;;
		--connect-tasks) CONNECT_TASKS="$2"; shift 2 ;;
		--connect-batch) CONNECT_BATCH="$2"; shift 2 ;;
		--connect-props) CONNECT_PROPS="$(realpath "$2")"; shift 2 ;;
		--many-partitions) MANY_PARTS="$2"; shift 2 ;;
		--idle) IDLE="$2"; shift 2 ;;
		--idle-seconds) IDLE_SECS="$2"; shift 2 ;;
		--idle-settle) IDLE_SETTLE="$2"; shift 2 ;;
		--idle-baseline) IDLE_BASE="$2"; shift 2 ;;
		--repeat) REPEAT="$2"; shift 2 ;;
		--batch-size) BATCH_ARG=", batch_size => $2"; shift 2 ;;
		--pipeline-args) EXTRA_ARGS="$2"; shift 2 ;;
		--perf-seconds) PERF_SECS="$2"; shift 2 ;;
		--perf-fresh) PERF_FRESH=1; shift ;;
		--fresh-split) FRESH_SPLIT=1; shift ;;
		--backlog) BACKLOG="$2"; shift 2 ;;
		--memory-seconds) MEM_SECS="$2"; shift 2 ;;
		--change-stream) CHANGE_STREAM="$2"; shift 2 ;;
		--cs-keys) CS_KEYS="$2"; shift 2 ;;
		--out) OUT="$2"; shift 2 ;;
		--keep) KEEP=1; shift ;;
		--no-build) BUILD=0; shift ;;
		--worktree) WORKTREE=1; shift ;;
		--system-install) SYSTEM_INSTALL=1; shift ;;
		-h|--help) usage 0 ;;
		*) echo "bench: unknown option $1" >&2; usage 1 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (servers run as $BUSER)"
[[ "$EVENTS" =~ ^[0-9]+$ && "$EVENTS" -gt 0 ]] || die "--events must be a positive integer"
[[ "$BACKLOG" =~ ^[0-9]+$ ]] || die "--backlog must be an integer"
[[ "$CHANGE_STREAM" =~ ^[0-9]+$ && "$CS_KEYS" =~ ^[1-9][0-9]*$ ]] ||
	die "--change-stream and --cs-keys must be integers"
[[ "$MANY_PARTS" =~ ^[0-9]+$ ]] || die "--many-partitions must be an integer"
IDLE_BASE="${IDLE_BASE:-$IDLE_SECS}"
[[ "$IDLE" =~ ^[0-9]+$ && "$IDLE_SECS" =~ ^[1-9][0-9]*$ && "$IDLE_SETTLE" =~ ^[0-9]+$ &&
	"$IDLE_BASE" =~ ^[0-9]+$ ]] ||
	die "--idle, --idle-seconds, --idle-settle and --idle-baseline must be integers"
[[ "$CONNECT_TASKS" =~ ^[1-9][0-9]*$ && "$CONNECT_BATCH" =~ ^[1-9][0-9]*$ ]] ||
	die "--connect-tasks and --connect-batch must be positive integers"
REPEAT="${REPEAT:-1}"
FORMAT="${FORMAT:-json}"
[[ "$FORMAT" = json || "$FORMAT" = avro ]] || die "--format must be json or avro"
. "$SRC/bench/avro_topic.sh"
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive integer"

T_START=$(date +%s)
OUT="${OUT:-/var/tmp/eo_bench-results.$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
step() { printf '\n=== %s (%ds)\n' "$*" $(( $(date +%s) - T_START )) | tee -a "$OUT/log"; }
note() { echo "$*" | tee -a "$OUT/log"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }

as_user() {
	runuser -u "$BUSER" -- env \
		HOME="$(getent passwd "$BUSER" | cut -d: -f6)" USER="$BUSER" \
		PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 \
		${EO_KAFKA_CACHE:+EO_KAFKA_CACHE="$EO_KAFKA_CACHE"} "$@"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A free port (and the next one, for Kafka's controller) from a random start.
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$(( 20000 + (RANDOM % 12000) ))  # below the ephemeral ports (32768-)
		if ! port_busy "$p" && ! port_busy $((p + 1)); then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# ---------------------------------------------------------------- setup
if ! id -u "$BUSER" >/dev/null 2>&1; then
	useradd --create-home --shell /bin/bash "$BUSER"
fi
if [ "$BUILD" = 1 ]; then
	step "installing dependencies"
	"$SRC/scripts/install-deps.sh" 2>&1 | tee -a "$OUT/log"
fi

WORK="$(mktemp -d /var/tmp/eo_bench.XXXXXX)"
chmod 755 "$WORK"
KDIR="$WORK/kafka"
PGI="$WORK/pg"
PGDATA="$WORK/pgdata"
KAFKA_STARTED=0
PG_STARTED=0
PERF_PID=""

cleanup() {
	local rc=$?
	if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID" 2>/dev/null || true; fi
	cp "$WORK/postgres.log" "$OUT/" 2>/dev/null || true
	cp "$KDIR/kafka.log" "$OUT/" 2>/dev/null || true
	if [ "$KEEP" = 1 ]; then
		echo "bench: --keep: servers left running in $WORK (PG socket $WORK, port ${PGPORT:-?}; Kafka ${KPORT:-?})"
		exit "$rc"
	fi
	if [ "$PG_STARTED" = 1 ]; then
		as_user "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [ -n "${CONNECT_DIR:-}" ]; then
		as_user "$TREE/test/connect/connect.sh" kill "$CONNECT_DIR" >/dev/null 2>&1 || true
	fi
	if [ "${REG_STARTED:-0}" = 1 ]; then
		avro_registry_stop "$TREE" "$WORK/registry"
	fi
	if [ "$KAFKA_STARTED" = 1 ]; then
		as_user "$TREE/test/kafka/kafka.sh" stop "$KDIR" >/dev/null 2>&1 ||
			as_user "$TREE/test/kafka/kafka.sh" kill "$KDIR" >/dev/null 2>&1 || true
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TREE="$SRC"
if [ "$BUILD" = 1 ]; then
	step "building (copy in $WORK/build, as $BUSER) and installing"
	mkdir -p "$WORK/build"
	if [ "$WORKTREE" = 1 ] || ! git -C "$SRC" rev-parse --verify -q HEAD >/dev/null 2>&1; then
		tar -C "$SRC" -cf - \
			--exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
			--exclude='tmp_check*' --exclude=./results --exclude=./log \
			--exclude=./test/producer/eo_producer . |
			tar -C "$WORK/build" -xf -
		note "source: working tree of $SRC"
	else
		git -C "$SRC" archive HEAD | tar -C "$WORK/build" -xf -
		note "source: $(git -C "$SRC" log -1 --format='%h %s' HEAD)"
	fi
	chown -R "$BUSER": "$WORK"
	as_user make -C "$WORK/build" -j2 PG_CONFIG="$PG_CONFIG" all producer >"$OUT/build.log" 2>&1 ||
		{ tail -n 40 "$OUT/build.log"; die "build failed (see $OUT/build.log)"; }
	# The servers run from a private copy of the PostgreSQL installation
	# (PostgreSQL finds its lib and share directories relative to its binary)
	# with the extension installed into it, so nobody's `make install` into
	# the shared tree can swap the library under a running benchmark.
	mkdir -p "$PGI/usr/lib/postgresql" "$PGI/usr/share/postgresql"
	tar -C /usr/lib/postgresql -cf - --exclude=./15/lib/bitcode ./15 | tar -C "$PGI/usr/lib/postgresql" -xf -
	cp -a /usr/share/postgresql/15 "$PGI/usr/share/postgresql/"
	make -C "$WORK/build" PG_CONFIG="$PG_CONFIG" DESTDIR="$PGI" install >>"$OUT/build.log" 2>&1 ||
		{ tail -n 40 "$OUT/build.log"; die "make install (private copy) failed"; }
	if [ "$SYSTEM_INSTALL" = 1 ]; then
		make -C "$WORK/build" PG_CONFIG="$PG_CONFIG" install >>"$OUT/build.log" 2>&1 ||
			{ tail -n 40 "$OUT/build.log"; die "make install failed"; }
	fi
	chown -R "$BUSER": "$WORK"
	PGBIN="$PGI/usr/lib/postgresql/15/bin"
	TREE="$WORK/build"
else
	chown -R "$BUSER": "$WORK"
	[ -x "$TREE/test/producer/eo_producer" ] || die "no $TREE/test/producer/eo_producer (drop --no-build)"
fi
PRODUCER="$TREE/test/producer/eo_producer"

KPORT="$(free_port)"
BROKERS="127.0.0.1:$KPORT"
step "starting Kafka on $BROKERS"
# the broker as Kafka's own start script runs it (G1, full JIT), not as tests do
# (idle mode also opens JMX on the loopback: the broker counts the requests it serves)
JMXPORT=""
[ "$IDLE" -gt 0 ] && JMXPORT="$(free_port)"
as_user env EO_KAFKA_PRODUCTION_JVM=1 ${JMXPORT:+EO_KAFKA_JMX_PORT="$JMXPORT"} \
	"$TREE/test/kafka/kafka.sh" start "$KDIR" "$KPORT" | tee -a "$OUT/log"
KAFKA_STARTED=1
KAFKA_PID="$(cat "$KDIR/kafka.pid")"

PGPORT=$(free_port)
step "starting PostgreSQL 15 on port $PGPORT"
as_user "$PGBIN/initdb" -D "$PGDATA" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
	-U "$BUSER" >"$OUT/initdb.log" 2>&1 || { cat "$OUT/initdb.log"; die "initdb failed"; }
# Idle mode needs a worker slot per pipeline; the other settings stay.
MAXW=32
[ "$IDLE" -gt 0 ] && MAXW=$((IDLE + 16))
write_pg_conf() {
	cat <<EOF

# eo_ingest benchmark: the same settings for every measurement
# (TCP on the loopback only for the JDBC sink: the others use the socket)
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$WORK'
shared_preload_libraries = 'eo_ingest'
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 30min
max_worker_processes = $MAXW
eo_ingest.max_workers = $MAXW
# commit timestamps: "visible at" for the freshness measurement
track_commit_timestamp = on
EOF
}
write_pg_conf >>"$PGDATA/postgresql.conf"
write_pg_conf >"$OUT/postgresql.bench.conf"
as_user "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/postgres.log" -w start >/dev/null ||
	{ tail -n 30 "$WORK/postgres.log"; die "PostgreSQL did not start"; }
PG_STARTED=1
PM_PID="$(head -n 1 "$PGDATA/postmaster.pid")"
LIBSO="$(awk '$6 ~ /eo_ingest\.so$/ { print $6; exit }' "/proc/$PM_PID/maps")"
note "postmaster $PM_PID runs $PGBIN/postgres with ${LIBSO:-no eo_ingest.so loaded}"
[ -n "$LIBSO" ] || die "eo_ingest.so is not loaded by the postmaster"

pq() {
	as_user "$PGBIN/psql" -X -q -At -F ' ' -v ON_ERROR_STOP=1 -h "$WORK" -p "$PGPORT" -d postgres "$@"
}
pq -c "CREATE EXTENSION eo_ingest"

TABLE_COLS="event_id uuid PRIMARY KEY, seq int, customer_id int, amount numeric, note text, created_at timestamptz"

# ---------------------------------------------------------------- /proc helpers
TCK=$(getconf CLK_TCK)
# utime+stime in ticks of the given pids (0 for gone ones)
cpu_ticks() {
	local t=0 p s
	for p in "$@"; do
		s="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
		s="${s##*) }"
		# after "pid (comm) ": state is field 1, utime field 12, stime field 13
		t=$(( t + $(echo "$s" | awk '{ print $12 + $13 }') ))
	done
	echo "$t"
}
status_kb() { awk -v k="$2:" '$1 == k { print $2; exit }' "/proc/$1/status" 2>/dev/null || echo 0; }
# every postgres process except the given worker pids
pg_other_pids() {
	local p
	echo "$PM_PID"
	for p in $(pgrep -P "$PM_PID"); do
		case " $* " in *" $p "*) ;; *) echo "$p" ;; esac
	done
}

# pids of the pipeline's workers
worker_pids() {
	pq -c "SELECT s.pid FROM eo_ingest._worker_status() s JOIN eo_ingest.pipelines p ON p.id = s.pipeline_id
	        WHERE p.name = '$1' AND s.pid IS NOT NULL AND s.database = (SELECT oid FROM pg_database WHERE datname = current_database())" |
		tr '\n' ' '
}

# ---------------------------------------------------------------- drain one pipeline
# drain NAME TOPIC EXPECTED_RECORDS EXPECTED_ROWS [create_pipeline extra args]
# Creates table public.NAME and the pipeline, polls until lag = 0 and the
# counters account for every record, checks count(*), and sets R_* results.
drain() {
	local name="$1" topic="$2" want_recs="$3" want_rows="$4" extra="${5:-}"
	local t0 t1 tl tw="" pids row state lag done_recs p k0 o0 k1 o1 c v allpids="" dpids decpids=""
	local -A dcpu=()
	local peak_anon=0 peak_hwm=0 perf_started=0
	local -A wcpu=() wmain=() wrq=()
	local ms rq

	pq -c "CREATE TABLE public.$name ($TABLE_COLS)"
	pq -c "CHECKPOINT"
	k0=$(cpu_ticks "$KAFKA_PID")
	o0=$(cpu_ticks $(pg_other_pids))
	R_LOAD0=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(now)
	pq -c "SELECT eo_ingest.create_pipeline(name => '$name', brokers => '$BROKERS', topic => '$topic',
	        target => 'public.$name'${BATCH_ARG:-}${EXTRA_ARGS:-}$extra)" >/dev/null
	while :; do
		row="$(pq -c "SELECT state, coalesce(lag, -1), rows_inserted + rows_updated + rows_deleted + duplicates_skipped + dead_letters,
		                     (SELECT coalesce(string_agg(s.pid::text, ','), '-') FROM eo_ingest._worker_status() s
		                       WHERE s.pipeline_id = (SELECT id FROM eo_ingest.pipelines WHERE name = '$name')
		                         AND s.pid IS NOT NULL
		                         AND s.database = (SELECT oid FROM pg_database WHERE datname = current_database())),
		                     (SELECT coalesce(string_agg(a.pid::text, ','), '-') FROM pg_stat_activity a
		                       WHERE a.backend_type = 'eo_ingest decoder' AND a.datname = current_database())
		              FROM eo_ingest.pipeline_status WHERE name = '$name'")"
		t1=$(now)
		read -r state lag done_recs pids dpids <<<"$row"
		pids="${pids//-/}"
		pids="${pids//,/ }"
		dpids="${dpids//-/}"
		# parallel decoders (eo_ingest.parallel_decode): their CPU is the
		# pipeline's too, kept apart from the workers' main threads
		for p in ${dpids//,/ }; do
			c=$(cpu_ticks "$p")
			[ "$c" -gt "${dcpu[$p]:-0}" ] && dcpu[$p]=$c
			case " $decpids " in *" $p "*) ;; *) decpids="$decpids $p" ;; esac
		done
		[ -n "$pids" ] && [ -z "$tw" ] && tw=$t1
		# Workers may restart (retries, fencing): keep the last CPU reading and
		# the peak memory of every worker process seen.
		for p in $pids; do
			c=$(cpu_ticks "$p")
			[ "$c" -gt "${wcpu[$p]:-0}" ] && wcpu[$p]=$c
			# the main thread's time on a core and waiting for one (ns)
			read -r ms rq <<<"$(cut -d' ' -f1,2 "/proc/$p/schedstat" 2>/dev/null)"
			[ "${ms:-0}" -gt "${wmain[$p]:-0}" ] && { wmain[$p]=$ms; wrq[$p]=${rq:-0}; }
			v=$(status_kb "$p" RssAnon); [ "${v:-0}" -gt "$peak_anon" ] && peak_anon=$v
			v=$(status_kb "$p" VmHWM); [ "${v:-0}" -gt "$peak_hwm" ] && peak_hwm=$v
			case " $allpids " in *" $p "*) ;; *) allpids="$allpids $p" ;; esac
		done
		if [ -n "${PROFILE_OUT:-}" ] && [ "$perf_started" = 0 ] && [ -n "$pids" ]; then
			perf_started=1
			set -- $pids
			perf record -F 250 --call-graph dwarf,8192 -p "$1" -o "$PROFILE_OUT/perf.data" -- sleep "$PERF_SECS" \
				>"$PROFILE_OUT/perf-record.log" 2>&1 &
			PERF_PID=$!
		fi
		[ "$state" = failed ] && die "pipeline $name failed: $(pq -c "SELECT last_error FROM eo_ingest.pipeline_status WHERE name = '$name'")"
		if [ "$lag" = 0 ] && [ "$done_recs" -ge "$want_recs" ]; then
			break
		fi
		if awk -v a="$t0" -v b="$t1" -v m="$DRAIN_TIMEOUT" 'BEGIN { exit !(b - a > m) }'; then
			die "pipeline $name did not drain within ${DRAIN_TIMEOUT}s (state $state, lag $lag, $done_recs/$want_recs records)"
		fi
		# Quickly until the worker is up (its start time), then seldom: each
		# poll forks psql and a backend, which take a core from the drain
		# being measured (its end is the last commit's timestamp anyway).
		if [ -z "$tw" ]; then sleep 0.05; else sleep 0.5; fi
	done
	k1=$(cpu_ticks "$KAFKA_PID")
	o1=$(cpu_ticks $(pg_other_pids $allpids $decpids))
	c=0
	for p in $allpids; do c=$((c + wcpu[$p])); done
	R_DCPU=0
	for p in $decpids; do R_DCPU=$((R_DCPU + dcpu[$p])); c=$((c + dcpu[$p])); done
	R_DCPU=$(calc "$R_DCPU / $TCK" 2)
	R_NDEC=$(echo $decpids | wc -w)
	R_MAIN=0; R_RQ=0
	for p in $allpids; do
		R_MAIN=$(calc "$R_MAIN + ${wmain[$p]:-0} / 1e9" 2); R_RQ=$(calc "$R_RQ + ${wrq[$p]:-0} / 1e9" 2)
	done
	R_LOAD1=$(cut -d' ' -f1 /proc/loadavg)
	# The drain ends when its last batch committed (the commit timestamp of
	# the counters rows each batch updates; same clock), not when this loop,
	# polling every 0.2 s or so, noticed it.
	tl="$(pq -c "SELECT extract(epoch FROM max(pg_xact_commit_timestamp(c.xmin)))
	              FROM eo_ingest.counters c JOIN eo_ingest.pipelines p ON p.id = c.pipeline_id
	             WHERE p.name = '$name'")"
	if [ -n "$tl" ] && awk -v a="$tl" -v b="$t1" -v z="$t0" 'BEGIN { exit !(a <= b && a > z) }'; then
		t1=$tl
	fi
	R_SECS=$(calc "$t1 - $t0")
	R_START=$(calc "${tw:-$t1} - $t0")
	R_WCPU=$(calc "$c / $TCK" 2)
	R_KCPU=$(calc "($k1 - $k0) / $TCK" 2)
	R_OCPU=$(calc "($o1 - $o0) / $TCK" 2)
	R_HWM=$peak_hwm
	R_ANON=$peak_anon
	R_PIDS="$allpids"
	R_NPIDS=$(echo $allpids | wc -w)
	R_ROWS="$(pq -c "SELECT count(*) FROM public.$name")"
	[ "$R_ROWS" = "$want_rows" ] || die "pipeline $name: count(*) = $R_ROWS, expected $want_rows"
	R_STATUS="$(pq -c "SELECT rows_inserted, duplicates_skipped, dead_letters, batches FROM eo_ingest.pipeline_status WHERE name = '$name'")"
}

finish_drain() {
	pq -c "SELECT eo_ingest.drop_pipeline('$1')" >/dev/null
	pq -c "DROP TABLE public.$1"
}

# perf_reports DIR [NAME]: the reports of DIR/perf.data (DIR/NAME.data):
# flat.txt (by dso and symbol), children.txt (inclusive, by symbol),
# callers.txt (bottom-up: who calls the hottest functions), topdown.txt
# (top-down from the batch transaction), each NAME-*.txt with NAME
perf_reports() {
	local d="$1/${2:-perf}.data" o="$1/${2:+$2-}"
	perf report -i "$d" --stdio --no-children -g none \
		--sort dso,symbol --percent-limit 0.5 2>/dev/null |
		grep -v '^$' >"${o}flat.txt" || true
	perf report -i "$d" --stdio --children -g none \
		--sort symbol --percent-limit 0.7 2>/dev/null |
		grep -v '^$' >"${o}children.txt" || true
	perf report -i "$d" --stdio --no-children --sort symbol \
		-g callee,1,callee,function,percent --percent-limit 2 2>/dev/null \
		>"${o}callers.txt" || true
	perf report -i "$d" --stdio --children --sort symbol \
		-g caller,2,caller,function,percent --percent-limit 40 2>/dev/null \
		>"${o}topdown.txt" || true
}

# profile_summary DIR: the flat and inclusive profiles of perf_reports DIR,
# for the results
profile_summary() {
	[ -s "$1/flat.txt" ] || return 0
	echo
	echo "worker profile (perf, ${PERF_SECS}s, flat by dso/symbol; more in $1):"
	grep -v '^#' "$1/flat.txt" | awk '{ printf "  %7s  %-18s %s\n", $1, $2, $4 }' | head -n 40 || true
	if [ -s "$1/children.txt" ]; then
		echo
		echo "inclusive (children) by symbol, >= 1% (unnamed addresses, i.e. static functions of the stripped postgres, left out):"
		grep -v '^#' "$1/children.txt" | awk '$1 + 0 >= 1 && $4 !~ /^0x/ { printf "  %7s %7s  %s\n", $1, $2, $4 }' | head -n 60 || true
	fi
}

# ---------------------------------------------------------------- memory mode
if [ "$BACKLOG" -gt 0 ]; then
	. "$SRC/bench/memory_mode.sh"
	memory_backlog
	exit 0
fi

# ---------------------------------------------------------------- idle mode
if [ "$IDLE" -gt 0 ]; then
	. "$SRC/bench/idle_mode.sh"
	idle_pipelines
	exit 0
fi

# ---------------------------------------------------------------- change-stream mode
if [ "$CHANGE_STREAM" -gt 0 ]; then
	. "$SRC/bench/cs_mode.sh"
	change_stream
	exit 0
fi

# ---------------------------------------------------------------- preload
step "producing $EVENTS events to topic bench ($PARTITIONS partitions, dup ratio $DUP)"
as_user "$PRODUCER" -b "$BROKERS" -t bench --create-topic "$PARTITIONS" | tee -a "$OUT/log"
as_user "$PRODUCER" -b "$BROKERS" -t bench -n "$EVENTS" --dup-ratio "$DUP" \
	--manifest "$WORK/bench.manifest" 2>&1 | tee -a "$OUT/log"

# The CSV for COPY: the distinct committed records, first occurrence per id.
awk -F '\t' -f "$SRC/bench/json_fields.awk" -f "$SRC/bench/manifest2csv.awk" "$WORK/bench.manifest" >"$WORK/bench.csv"
chown "$BUSER": "$WORK/bench.csv"
RECORDS=$(awk -F '\t' '$4 == "committed"' "$WORK/bench.manifest" | wc -l)
DISTINCT=$(wc -l <"$WORK/bench.csv")
AVG_BYTES=$(awk -F '\t' '$4 == "committed" { n++; b += length($6) } END { printf "%d", b / n }' "$WORK/bench.manifest")
note "records $RECORDS committed, $DISTINCT distinct event ids, average value $AVG_BYTES bytes"
if [ "$FORMAT" = avro ]; then
	step "the same records as Avro into topic bench_avro (Apicurio Registry, confluent-kafka's AvroSerializer)"
	REG_PORT="$(free_port)"
	REG_URL="$(avro_registry_url "$REG_PORT")"
	REG_STARTED=1
	avro_registry_start "$TREE" "$WORK/registry" "$REG_PORT" | tee -a "$OUT/log"
	avro_topic "$TREE" "$PRODUCER" "$BROKERS" bench_avro "$PARTITIONS" "$WORK/bench.manifest" "$REG_URL" |
		tee -a "$OUT/log"
	AVRO_ARGS=", format => 'avro', schema_registry => '$REG_URL'"
fi

# ---------------------------------------------------------------- warm-up
# The broker is a fresh JVM: the first reads of a topic compile its fetch
# path (JIT) while they are served.  Without a warm-up the first drain of a
# run, whichever it was, paid for that: on a quiet machine the broker spent
# 1.9 CPU s serving it against 0.4 s once warm, and the worker waited for a
# core meanwhile (defaults 5.28 s when first, 0.777 x COPY's 4.10 s; 4.43 to
# 4.84 s in five drains on the same broker afterwards).  One read by kcat was
# not enough (the next drain's broker still spent 1.7 s: kcat fetches
# differently), so an untimed eo_ingest drain of each topic, into a scratch
# table, warms it the way the measured drains read it.  The peers are
# measured warm too.
# warm_broker TOPIC [CREATE_PIPELINE_EXTRA]
warm_broker() {
	local t="$1" extra="${2:-}" k0 t0
	[ "$WARMUP" = 1 ] || { note "broker warm-up skipped (--no-warmup): the first drain pays the broker's JIT"; return 0; }
	step "warm-up: an untimed drain of topic $t"
	k0=$(cpu_ticks "$KAFKA_PID"); t0=$(now)
	drain warmup "$t" "$RECORDS" "$DISTINCT" "$extra"
	finish_drain warmup
	note "  $(calc "$(now) - $t0" 2) s, broker CPU $(calc "($(cpu_ticks "$KAFKA_PID") - $k0) / $TCK" 2) s"
}
warm_broker bench
[ -n "${AVRO_ARGS:-}" ] && warm_broker bench_avro "$AVRO_ARGS"

# ---------------------------------------------------------------- 1. COPY
step "reference: COPY of the $DISTINCT distinct rows from $WORK/bench.csv"
pq -c "CREATE TABLE public.copy_ref ($TABLE_COLS)"
pq -c "CHECKPOINT"
# the backend's CPU is read from /proc around the COPY, like the worker's
copy_once() {
	read -r C_SECS C_C0 C_C1 <<<"$(pq <<EOF
SELECT pg_backend_pid() AS pid \gset
\\set c0 \`cut -d' ' -f14,15 /proc/:pid/stat | tr ' ' +\`
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
COPY public.$1 (event_id, seq, customer_id, amount, note, created_at) FROM '$WORK/bench.csv' (FORMAT csv);
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3) AS secs \gset
\\set c1 \`cut -d' ' -f14,15 /proc/:pid/stat | tr ' ' +\`
SELECT :secs, :c0, :c1;
EOF
)"
}
# copy_try I: COPY try I (the first loads copy_ref, the drains' row-by-row
# reference; later ones a scratch table); the fastest try is the reference
declare -a COPY_ROUND=()
copy_try() {
	local t=copy_ref
	if [ "$1" -gt 1 ]; then
		t=copy_try
		pq -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS public.copy_try" -c "CREATE TABLE public.copy_try ($TABLE_COLS)"
		pq -c "CHECKPOINT"
	fi
	copy_once "$t"
	[ "$REPEAT" -gt 1 ] && note "  COPY try $1: $C_SECS s"
	COPY_ROUND[$1]=$C_SECS
	if [ "$1" = 1 ] || awk "BEGIN { exit !($C_SECS < $COPY_SECS) }"; then
		COPY_SECS=$C_SECS; COPY_C0=$C_C0; COPY_C1=$C_C1
	fi
}
copy_try 1
COPY_ROWS=$(pq -c "SELECT count(*) FROM public.copy_ref")
[ "$COPY_ROWS" = "$DISTINCT" ] || die "COPY loaded $COPY_ROWS rows, expected $DISTINCT"

# ---------------------------------------------------------------- 2./3. drains
declare -a RUN_NAMES=() RUN_LABELS=()
declare -A RES=()
R_VARS="R_SECS R_WCPU R_KCPU R_OCPU R_HWM R_ANON R_START R_STATUS R_NPIDS R_LOAD0 R_LOAD1 R_MAIN R_RQ R_DCPU R_NDEC"
# check_rows TABLE: row by row against the COPY reference (same distinct ids;
# a duplicate carries the same event number, so customer_id, amount and note
# agree, but its seq and created_at are its own and either copy may win)
check_rows() {
	mism="$(pq -c "SELECT count(*) FROM public.$1 a FULL JOIN public.copy_ref b USING (event_id)
	                WHERE a.event_id IS NULL OR b.event_id IS NULL
	                   OR (a.customer_id, a.amount, a.note) IS DISTINCT FROM (b.customer_id, b.amount, b.note)")"
	[ "$mism" = 0 ] || die "$1: $mism rows differ from the COPY reference"
}
# The cases (add_case NAME LABEL CREATE_PIPELINE_EXTRA TOPIC WORKERS) are
# measured in rounds: with --repeat N, N rounds of COPY and then each case
# once, so that every method samples the same stretches of a noisy machine
# (back to back, COPY alone varied from 3.3 to 4.0 s on a quiet machine);
# each method's fastest try counts.
declare -a CASES=()
add_case() { CASES+=("$1"$'\x1f'"$2"$'\x1f'"$3"$'\x1f'"$4"$'\x1f'"$5"); }
declare -A BEST=() ROUND_RATIOS=()
# try_case NAME LABEL EXTRA TOPIC WORKERS ROUND
try_case() {
	local name="$1" label="$2" extra="$3" topic="$4" nwork="$5" round="$6" v
	if [ "$REPEAT" -gt 1 ]; then step "eo_ingest drain: $label (round $round)"; else step "eo_ingest drain: $label"; fi
	local guc=""
	[ "$name" = drain_sql ] && extra="SET eo_ingest.direct_insert = off"
	# a server setting for this drain only (--case 'LABEL=SET name = value')
	if [[ "$extra" =~ ^SET\ +([a-z_.]+)\ *=\ *(.+)$ ]]; then
		guc="${BASH_REMATCH[1]}"
		pq -c "ALTER SYSTEM SET $guc = ${BASH_REMATCH[2]}" -c "SELECT pg_reload_conf()" >/dev/null
		extra=""
	fi
	NWORK=$nwork drain "$name" "$topic" "$RECORDS" "$DISTINCT" "$extra"
	[ -n "$guc" ] && pq -c "ALTER SYSTEM RESET $guc" -c "SELECT pg_reload_conf()" >/dev/null
	check_rows "$name"
	finish_drain "$name"
	[ "$REPEAT" -gt 1 ] && note "  try $round: $R_SECS s"
	# this round's COPY time over this try's: its ratio in rows/s
	ROUND_RATIOS[$name]+="$(calc "${COPY_ROUND[$round]} / $R_SECS" 3) "
	if [ -z "${BEST[$name.R_SECS]:-}" ] || awk "BEGIN { exit !($R_SECS < ${BEST[$name.R_SECS]}) }"; then
		for v in $R_VARS; do BEST[$name.$v]="${!v}"; done
		BEST[$name.mism]=$mism
	fi
}
# report_case NAME LABEL: the fastest try of NAME, against the fastest COPY
report_case() {
	local name="$1" label="$2" v rps cpu_m mism="${BEST[$1.mism]}"
	for v in $R_VARS; do printf -v "$v" '%s' "${BEST[$name.$v]}"; done
	rps=$(calc "$DISTINCT / $R_SECS" 0)
	cpu_m=$(calc "$R_WCPU / ($RECORDS / 1000000)" 2)
	RUN_NAMES+=("$name"); RUN_LABELS+=("$label")
	RES[$name.secs]=$R_SECS; RES[$name.rps]=$rps; RES[$name.ratio]=$(calc "$rps / $COPY_RPS" 3)
	RES[$name.recps]=$(calc "$RECORDS / $R_SECS" 0)
	RES[$name.wcpu]=$R_WCPU; RES[$name.cpum]=$cpu_m; RES[$name.kcpu]=$R_KCPU; RES[$name.ocpu]=$R_OCPU
	RES[$name.hwm]=$R_HWM; RES[$name.anon]=$R_ANON; RES[$name.start]=$R_START; RES[$name.mism]=$mism
	note "$label: $R_SECS s (worker up after $R_START s), $rps rows/s, ratio to COPY ${RES[$name.ratio]}"
	# each round against its own COPY: the median says how much the best-of
	# figures owe to one lucky try of either
	RES[$name.rmed]=$(printf '%s\n' ${ROUND_RATIOS[$name]} | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
	[ "$REPEAT" -gt 1 ] && note "  per round against that round's COPY: ${ROUND_RATIOS[$name]}(median ${RES[$name.rmed]})"
	note "  CPU s: worker(s) $R_WCPU (main thread $R_MAIN, and $R_RQ s waiting for a core; parallel decoders $R_DCPU in $R_NDEC processes), Kafka $R_KCPU, other postgres $R_OCPU; peak VmHWM $R_HWM kB, peak RssAnon $R_ANON kB"
	RES[$name.dcpu]=$R_DCPU; RES[$name.ndec]=$R_NDEC
	RES[$name.main]=$R_MAIN; RES[$name.rq]=$R_RQ
	note "  status (inserted skipped dead batches): $R_STATUS; rows differing from COPY: $mism"
	note "  worker processes seen: $R_NPIDS; load average before/after: $R_LOAD0 / $R_LOAD1"
	RES[$name.nproc]=$R_NPIDS; RES[$name.load]="$R_LOAD0/$R_LOAD1"
}
add_case drain_default "eo_ingest, defaults" "" bench 1
[ "$FORMAT" = avro ] && add_case drain_avro "format => 'avro' (schema registry)" "$AVRO_ARGS" bench_avro 1
[ "${SQLPATH:-0}" = 1 ] && add_case drain_sql "direct_insert = off (INSERT ... ON CONFLICT)" "" bench 1
add_case drain_async "synchronous_commit => false" ", synchronous_commit => false" bench 1
for ((i = 0; i < ${#EXTRA_CASES[@]}; i++)); do
	add_case "drain_case$((i + 1))" "${EXTRA_CASES[$i]%%=*}" "${EXTRA_CASES[$i]#*=}" bench 1
done
IFS=',' read -r -a WLIST <<<"$WORKERS_LIST"
for w in "${WLIST[@]}"; do
	[ -n "$w" ] || continue
	add_case "drain_w$w" "workers => $w" ", workers => $w" bench "$w"
done
if [ "$MANY_PARTS" -gt 0 ]; then
	step "the same events into topic bench_many ($MANY_PARTS partitions)"
	as_user "$PRODUCER" -b "$BROKERS" -t bench_many --create-topic "$MANY_PARTS" | tee -a "$OUT/log"
	as_user "$PRODUCER" -b "$BROKERS" -t bench_many -n "$EVENTS" --dup-ratio "$DUP" \
		--manifest "$WORK/many.manifest" 2>&1 | tee -a "$OUT/log"
	[ "$(awk -F '\t' '$4 == "committed"' "$WORK/many.manifest" | wc -l)" = "$RECORDS" ] ||
		die "bench_many: committed records differ from topic bench"
	warm_broker bench_many ", workers => 4"
	add_case "drain_p$MANY_PARTS" "workers => 4, $MANY_PARTS partitions" ", workers => 4" bench_many 4
fi
for ((round = 1; round <= REPEAT; round++)); do
	[ "$round" -gt 1 ] && { step "COPY (round $round)"; copy_try "$round"; }
	for c in "${CASES[@]}"; do
		IFS=$'\x1f' read -r c_name c_label c_extra c_topic c_nwork <<<"$c"
		try_case "$c_name" "$c_label" "$c_extra" "$c_topic" "$c_nwork" "$round"
	done
done
pq -c "DROP TABLE IF EXISTS public.copy_try"
COPY_CPU=$(calc "($COPY_C1 - $COPY_C0) / $TCK" 2)
COPY_CPUM=$(calc "$COPY_CPU / ($DISTINCT / 1000000)" 2)
COPY_RPS=$(calc "$DISTINCT / $COPY_SECS" 0)
step "throughput: the fastest try of each against the fastest COPY"
note "COPY: $COPY_SECS s, $COPY_RPS rows/s; backend CPU $COPY_CPU s ($COPY_CPUM s per million rows)"
for c in "${CASES[@]}"; do
	IFS=$'\x1f' read -r c_name c_label c_extra c_topic c_nwork <<<"$c"
	report_case "$c_name" "$c_label"
done
if [ "$PEERS" = 1 ]; then
	. "$SRC/bench/peers.sh"
	peers_prepare
	run_connect
	run_kcat_baseline
fi

# ---------------------------------------------------------------- profile
PROFILE_TXT=""
if [ "$PERF" = 1 ]; then
	if command -v perf >/dev/null; then
		step "profiling: perf record -p <worker> for ${PERF_SECS}s during a default drain ($FORMAT)"
		mkdir -p "$OUT/profile"
		if [ "$FORMAT" = avro ]; then
			PROFILE_OUT="$OUT/profile" NWORK=1 drain drain_perf bench_avro "$RECORDS" "$DISTINCT" "$AVRO_ARGS"
		else
			PROFILE_OUT="$OUT/profile" NWORK=1 drain drain_perf bench "$RECORDS" "$DISTINCT" ""
		fi
		wait "$PERF_PID" 2>/dev/null || true
		PERF_PID=""
		note "  (with perf attached) $R_SECS s; worker CPU $R_WCPU s, Kafka $R_KCPU s, other postgres $R_OCPU s"
		finish_drain drain_perf
		if [ -s "$OUT/profile/perf.data" ]; then
			perf_reports "$OUT/profile"
			PROFILE_TXT="$OUT/profile/flat.txt"
		else
			note "  perf recorded nothing; see $OUT/profile/perf-record.log"
		fi
	else
		note "perf not installed (apt-get install linux-perf); no profile"
	fi
fi

# ---------------------------------------------------------------- 4. freshness
# fresh_phase NAME LABEL EXTRA PRODUCE: a running pipeline (defaults plus
# EXTRA) on a new 4-partition topic NAME into table public.NAME, while the
# shell function PRODUCE sends RATE records/s for FRESH_SECS; then latency
# per row (ingested_at or the commit time, minus created_at = produce time)
# as p50/p99/max, the batches, the worker's and the broker's CPU, kept in
# FR[NAME.*] and reported under LABEL.  --fresh-split: the topic stamps
# records with the broker's append time (LogAppendTime), mapped to column
# appended_at (one clock: same machine).  --perf-fresh: perf records the
# worker for FRESH_SECS from the start of production.
declare -a FRESH_NAMES=()
declare -A FR=()
fresh_phase() {
	local name="$1" label="$2" extra="$3" produce="$4" t0 row lag done_recs fpids fw0 fw1 fk0 fk1 h p
	local rows p50 p99 max c50 c99 cmax wcpu load0 load1 nb avg gaps slow a50 a99 ac50 ac99
	local cols="" map=""
	step "freshness, $label: $RATE events/s for ${FRESH_SECS}s into topic $name, pipeline running (defaults)"
	if [ "$FRESH_SPLIT" = 1 ]; then
		as_user "$TREE/test/kafka/kafka.sh" create-topic "$KPORT" "$name" 4 message.timestamp.type=LogAppendTime |
			tee -a "$OUT/log"
		cols=", appended_at timestamptz"
		map=", columns => '{\"appended_at\": \"\$timestamp\"}'"
	else
		as_user "$PRODUCER" -b "$BROKERS" -t "$name" --create-topic 4 | tee -a "$OUT/log"
	fi
	pq -c "CREATE TABLE public.$name ($TABLE_COLS$cols, ingested_at timestamptz DEFAULT clock_timestamp())"
	pq -c "SELECT eo_ingest.create_pipeline(name => '$name', brokers => '$BROKERS', topic => '$name', target => 'public.$name'$extra$map)" >/dev/null
	for ((i = 0; i < 300; i++)); do
		[ "$(pq -c "SELECT state = 'running' AND lag = 0 FROM eo_ingest.pipeline_status WHERE name = '$name'")" = t ] && break
		sleep 0.1
	done
	fpids="$(worker_pids "$name")"
	if [ "$PERF_FRESH" = 1 ] && ! command -v perf >/dev/null; then
		note "  perf not installed (apt-get install linux-perf); no profile of the phase"
	elif [ "$PERF_FRESH" = 1 ]; then
		mkdir -p "$OUT/profile"
		set -- $fpids
		perf record -F 499 --call-graph dwarf,8192 -p "$1" -o "$OUT/profile/$name.data" -- sleep "$FRESH_SECS" \
			>"$OUT/profile/$name-record.log" 2>&1 &
		PERF_PID=$!
	fi
	fw0=$(cpu_ticks $fpids); fk0=$(cpu_ticks "$KAFKA_PID")
	load0=$(cut -d' ' -f1 /proc/loadavg)
	"$produce" "$name"
	load1=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(now)
	while :; do
		row="$(pq -c "SELECT coalesce(lag, -1), rows_inserted + duplicates_skipped + dead_letters FROM eo_ingest.pipeline_status WHERE name = '$name'")"
		read -r lag done_recs <<<"$row"
		[ "$lag" = 0 ] && [ "$done_recs" -ge "$FREC" ] && break
		awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 120) }' &&
			die "freshness pipeline $name did not catch up (lag $lag, $done_recs/$FREC)"
		sleep 0.2
	done
	fw1=$(cpu_ticks $fpids); fk1=$(cpu_ticks "$KAFKA_PID")
	FR[$name.hwm]=0
	for p in $fpids; do h=$(status_kb "$p" VmHWM); [ "${h:-0}" -gt "${FR[$name.hwm]}" ] && FR[$name.hwm]=$h; done
	read -r rows p50 p99 max c50 c99 cmax <<<"$(pq -c "
		SELECT count(*),
		       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY i)::numeric, 1),
		       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY i)::numeric, 1),
		       round(max(i)::numeric, 1),
		       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY c)::numeric, 1),
		       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY c)::numeric, 1),
		       round(max(c)::numeric, 1)
		  FROM (SELECT extract(epoch FROM ingested_at - created_at) * 1000 AS i,
		               extract(epoch FROM pg_xact_commit_timestamp(xmin) - created_at) * 1000 AS c
		          FROM public.$name) s")"
	[ "$rows" = "$FDIST" ] || die "freshness $name: $rows rows, expected $FDIST"
	# second by second (of created_at): rows and the worst produce -> visible,
	# to tell a stall from a steady lag
	pq -c "SELECT to_char(date_trunc('second', created_at), 'HH24:MI:SS'), count(*),
	              round(max(extract(epoch FROM pg_xact_commit_timestamp(xmin) - created_at)) * 1000)
	         FROM public.$name GROUP BY 1 ORDER BY 1" >"$OUT/$name.seconds.txt"
	# One line per batch (a batch is one transaction: one xmin), in commit
	# order: rows, commit time, the wait of its oldest and of its newest
	# record, the time since the previous commit (ms).  Where the p99 comes
	# from: many slow batches (queueing) or a few long gaps (stalls).
	printf 'rows\tcommitted\toldest_ms\tnewest_ms\tgap_ms\n' >"$OUT/${name}_batches.tsv"
	pq -F $'\t' -c "SELECT b.n_rows, to_char(b.committed, 'HH24:MI:SS.US'), b.oldest_ms, b.newest_ms,
	                       coalesce(round((extract(epoch FROM b.committed - lag(b.committed) OVER (ORDER BY b.committed)) * 1000)::numeric, 1), 0)
	         FROM (SELECT count(*) AS n_rows, pg_xact_commit_timestamp(xmin) AS committed,
	                      round((extract(epoch FROM pg_xact_commit_timestamp(xmin) - min(created_at)) * 1000)::numeric, 1) AS oldest_ms,
	                      round((extract(epoch FROM pg_xact_commit_timestamp(xmin) - max(created_at)) * 1000)::numeric, 1) AS newest_ms
	                 FROM public.$name GROUP BY xmin) b ORDER BY b.committed" >>"$OUT/${name}_batches.tsv"
	read -r nb avg gaps slow <<<"$(awk -F '\t' 'NR > 1 { n++; r += $1; if ($5 > 100) g++; if ($3 > 100) s++ }
		END { printf "%d %.1f %d %d", n, n ? r / n : 0, g, s }' "$OUT/${name}_batches.tsv")"
	if [ -n "$cols" ]; then
		read -r a50 a99 ac50 ac99 <<<"$(pq -c "
			SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY a)::numeric, 1),
			       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY a)::numeric, 1),
			       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY c)::numeric, 1),
			       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY c)::numeric, 1)
			  FROM (SELECT extract(epoch FROM appended_at - created_at) * 1000 AS a,
			               extract(epoch FROM pg_xact_commit_timestamp(xmin) - appended_at) * 1000 AS c
			          FROM public.$name) s")"
		FR[$name.a50]=$a50; FR[$name.a99]=$a99; FR[$name.ac50]=$ac50; FR[$name.ac99]=$ac99
	fi
	wcpu=$(calc "($fw1 - $fw0) / $TCK" 2)
	FR[$name.rows]=$rows; FR[$name.p50]=$p50; FR[$name.p99]=$p99; FR[$name.max]=$max
	FR[$name.c50]=$c50; FR[$name.c99]=$c99; FR[$name.cmax]=$cmax
	FR[$name.cpum]=$(calc "$wcpu / ($FREC / 1000000)" 2)
	FR[$name.kcpu]=$(calc "($fk1 - $fk0) / $TCK" 2)
	FR[$name.batches]=$nb; FR[$name.load]="$load0/$load1"
	FR[$name.label]=$label
	FRESH_NAMES+=("$name")
	note "  $rows rows; latency insert-time p50 $p50 ms p99 $p99 ms max $max ms; commit-time p50 $c50 ms p99 $c99 ms max $cmax ms"
	if [ -n "$cols" ]; then
		note "  split at the broker's append: produce -> append p50 $a50 ms p99 $a99 ms; append -> commit p50 $ac50 ms p99 $ac99 ms"
	fi
	note "  worker CPU $wcpu s (${FR[$name.cpum]} s per million records), Kafka CPU ${FR[$name.kcpu]} s; load average before/after producing $load0 / $load1"
	note "  $nb batches ($avg rows each); $gaps gaps over 100 ms between commits; $slow batches with a record older than 100 ms (${name}_batches.tsv)"
	if [ -n "$PERF_PID" ]; then
		wait "$PERF_PID" 2>/dev/null || true
		PERF_PID=""
		if [ -s "$OUT/profile/$name.data" ]; then
			perf_reports "$OUT/profile" "$name"
			note "  perf of the worker over ${FRESH_SECS}s: $OUT/profile/$name-flat.txt, $name-children.txt"
		else
			note "  perf recorded nothing; see $OUT/profile/$name-record.log"
		fi
	fi
}
# the test producer's JSON; its manifest is the Avro phase's input
fresh_json() {
	as_user "$PRODUCER" -b "$BROKERS" -t "$1" -n "$FN" -s $((EVENTS + 1)) --rate "$RATE" \
		--manifest "$WORK/fresh.manifest" 2>&1 | tee -a "$OUT/log" "$WORK/$1.producer"
	FR[$1.sent]=$(awk '/ records\/s, / { print $2 }' "$WORK/$1.producer")
	FREC=$(awk -F '\t' '$4 == "committed"' "$WORK/fresh.manifest" | wc -l)
	FDIST=$(awk -F '\t' '$4 == "committed" && !seen[$3]++' "$WORK/fresh.manifest" | wc -l)
}
# the same records (partition, key, order, values) as Avro, at the same rate,
# each stamped with its own produce time
fresh_avro() {
	as_user "$AVRO_PYTHON" "$TREE/bench/avro_events.py" --manifest "$WORK/fresh.manifest" \
		--brokers "$BROKERS" --topic "$1" --registry "$REG_URL" --rate "$RATE" 2>&1 |
		tee -a "$OUT/log" "$WORK/$1.producer"
	FR[$1.sent]=$(awk '/ records\/s sent / { print $1 }' "$WORK/$1.producer")
}
# fresh_warmup: untimed, before the first freshness phase, RATE events/s for
# up to 10 s into a pipeline of its own.  The preload sent large batches;
# records paced at RATE take the broker's produce path in small ones, which
# its JIT compiled during whichever phase ran first: the JSON phase's broker
# spent 22.6 CPU s against the Avro phase's 12.0 (stop 11), so JSON's p99
# measured the broker's warm-up as much as the worker.
fresh_warmup() {
	local secs=$(( FRESH_SECS < 10 ? FRESH_SECS : 10 )) i
	[ "$WARMUP" = 1 ] || return 0
	step "warm-up: $RATE events/s for ${secs}s into topic fresh_warmup, pipeline running (untimed)"
	as_user "$PRODUCER" -b "$BROKERS" -t fresh_warmup --create-topic 4 | tee -a "$OUT/log"
	pq -c "CREATE TABLE public.fresh_warmup ($TABLE_COLS)"
	pq -c "SELECT eo_ingest.create_pipeline(name => 'fresh_warmup', brokers => '$BROKERS', topic => 'fresh_warmup', target => 'public.fresh_warmup')" >/dev/null
	as_user "$PRODUCER" -b "$BROKERS" -t fresh_warmup -n $(( RATE * secs )) --rate "$RATE" \
		--manifest /dev/null >/dev/null 2>&1 || die "warm-up: the producer failed"
	for ((i = 0; i < 600; i++)); do
		[ "$(pq -c "SELECT lag = 0 FROM eo_ingest.pipeline_status WHERE name = 'fresh_warmup'")" = t ] && break
		sleep 0.1
	done
	finish_drain fresh_warmup
}
if [ "$FRESH_SECS" -gt 0 ]; then
	FN=$(( RATE * FRESH_SECS ))
	fresh_warmup
	fresh_phase fresh JSON "" fresh_json
	if [ "$FORMAT" = avro ]; then
		fresh_phase fresh_avro "Avro (schema registry)" "$AVRO_ARGS" fresh_avro
		# row by row: the same ids as the JSON phase, and the same values (a
		# duplicate carries its first event's number, so customer_id, amount
		# and note agree whichever copy won; seq and created_at are its own)
		mism="$(pq -c "SELECT count(*) FROM public.fresh_avro a FULL JOIN public.fresh j USING (event_id)
		                WHERE a.event_id IS NULL OR j.event_id IS NULL
		                   OR (a.customer_id, a.amount, a.note) IS DISTINCT FROM (j.customer_id, j.amount, j.note)")"
		[ "$mism" = 0 ] || die "freshness: $mism rows of fresh_avro differ from the JSON phase's"
		note "  fresh_avro equals fresh row by row (event_id, customer_id, amount, note)"
		finish_drain fresh_avro
	fi
	finish_drain fresh
fi

# ---------------------------------------------------------------- report
step "results"
{
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo); $(uname -r)"
	echo "events: $RECORDS records ($DISTINCT distinct ids, dup ratio $DUP, 4 partitions, avg value $AVG_BYTES bytes)"
	echo
	printf '%-46s %8s %9s %7s %11s %9s %8s %8s %9s %5s %9s\n' run seconds rows/s vs_COPY "wCPU s/Mrec" "kafka s" "pg oth s" "VmHWM MB" "Anon MB" procs load
	printf '%-46s %8s %9s %7s %11s %9s %8s %8s %9s %5s %9s\n' "PostgreSQL COPY (reference)" "$COPY_SECS" "$COPY_RPS" 1.000 "$COPY_CPUM" - - - - - -
	for i in "${!RUN_NAMES[@]}"; do
		n=${RUN_NAMES[$i]}
		printf '%-46s %8s %9s %7s %11s %9s %8s %8s %9s %5s %9s\n' "${RUN_LABELS[$i]}" "${RES[$n.secs]}" "${RES[$n.rps]}" \
			"${RES[$n.ratio]}" "${RES[$n.cpum]}" "${RES[$n.kcpu]}" "${RES[$n.ocpu]}" \
			"$(calc "${RES[$n.hwm]} / 1024" 1)" "$(calc "${RES[$n.anon]} / 1024" 1)" "${RES[$n.nproc]}" "${RES[$n.load]}"
	done
	echo
	echo "worker main threads (decoding and writing; their librdkafka threads and parallel decoders are in wCPU), against COPY's backend $COPY_CPU CPU s:"
	for i in "${!RUN_NAMES[@]}"; do
		n=${RUN_NAMES[$i]}
		if [ -n "${RES[$n.main]:-}" ]; then
			printf '  %-44s %6s s on a core, %6s s waiting for one; parallel decoders %s s (%s processes)\n' \
				"${RUN_LABELS[$i]}" "${RES[$n.main]}" "${RES[$n.rq]}" "${RES[$n.dcpu]:-0}" "${RES[$n.ndec]:-0}"
		fi
	done
	if [ "$REPEAT" -gt 1 ]; then
		echo
		echo "each round against that round's COPY (rows/s ratio), and the median:"
		for i in "${!RUN_NAMES[@]}"; do
			n=${RUN_NAMES[$i]}
			# the peers run once, outside the rounds
			[ -n "${ROUND_RATIOS[$n]:-}" ] || continue
			printf '  %-44s %s (median %s)\n' "${RUN_LABELS[$i]}" "${ROUND_RATIOS[$n]}" "${RES[$n.rmed]}"
		done
	fi
	echo
	echo "| method | rows/s | vs COPY |"
	echo "|---|---|---|"
	echo "| server-side COPY of the distinct rows (reference) | $COPY_RPS | 1.00 |"
	for i in "${!RUN_NAMES[@]}"; do
		n=${RUN_NAMES[$i]}
		echo "| ${RUN_LABELS[$i]} | ${RES[$n.rps]} | $(calc "${RES[$n.ratio]}" 2) |"
	done
	for n in "${FRESH_NAMES[@]}"; do
		echo
		echo "freshness, ${FR[$n.label]} ($RATE events/s asked, ${FR[$n.sent]:-?}/s sent, for ${FRESH_SECS}s, ${FR[$n.rows]} rows): produce -> row inserted p50 ${FR[$n.p50]} ms, p99 ${FR[$n.p99]} ms (max ${FR[$n.max]});"
		echo "                                          produce -> commit (visible) p50 ${FR[$n.c50]} ms, p99 ${FR[$n.c99]} ms (max ${FR[$n.cmax]});"
		echo "                                          worker CPU ${FR[$n.cpum]} s per million records, broker CPU ${FR[$n.kcpu]} s; ${FR[$n.batches]} batches; load ${FR[$n.load]}"
		if [ -n "${FR[$n.a50]:-}" ]; then
			echo "                                          produce -> broker append p50 ${FR[$n.a50]} ms, p99 ${FR[$n.a99]} ms; append -> commit p50 ${FR[$n.ac50]} ms, p99 ${FR[$n.ac99]} ms"
		fi
	done
	echo
	echo "seconds: create_pipeline until lag = 0 and every record accounted for (worker start-up included);"
	echo "rows/s: distinct rows landed per second; wCPU: worker utime+stime per million Kafka records"
	echo "        (for COPY: the backend's CPU per million rows; this ratio holds even on a busy machine);"
	echo "kafka s / pg oth s: CPU seconds of the broker / of the other postgres processes during the drain;"
	echo "VmHWM: worker peak RSS, including shared buffers it touched; Anon: peak private memory (RssAnon, sampled);"
	echo "procs: worker processes seen (more than 'workers' = restarts); load: 1-min load average before/after."
	if [ -n "$PROFILE_TXT" ]; then
		profile_summary "$OUT/profile"
	fi
	json="{\"events\":$RECORDS,\"distinct\":$DISTINCT,\"dup_ratio\":$DUP,\"partitions\":4,\"cores\":$(nproc),"
	json+="\"copy\":{\"seconds\":$COPY_SECS,\"rows_per_s\":$COPY_RPS,\"backend_cpu_s\":$COPY_CPU,\"cpu_s_per_mrow\":$COPY_CPUM}"
	for n in "${RUN_NAMES[@]}"; do
		json+=",\"${n#drain_}\":{\"seconds\":${RES[$n.secs]},\"rows_per_s\":${RES[$n.rps]},\"records_per_s\":${RES[$n.recps]},\"ratio_to_copy\":${RES[$n.ratio]},\"round_ratio_median\":${RES[$n.rmed]:-null},"
		json+="\"worker_cpu_s\":${RES[$n.wcpu]},\"worker_cpu_s_per_mrow\":${RES[$n.cpum]},\"kafka_cpu_s\":${RES[$n.kcpu]},\"pg_other_cpu_s\":${RES[$n.ocpu]},"
		json+="\"worker_main_thread_cpu_s\":${RES[$n.main]:-null},\"worker_main_thread_runqueue_s\":${RES[$n.rq]:-null},\"decoder_cpu_s\":${RES[$n.dcpu]:-0},\"decoders\":${RES[$n.ndec]:-0},"
		json+="\"peak_vmhwm_kb\":${RES[$n.hwm]},\"peak_rss_anon_kb\":${RES[$n.anon]},\"worker_start_s\":${RES[$n.start]},"
		json+="\"worker_processes\":${RES[$n.nproc]},\"loadavg\":\"${RES[$n.load]}\"}"
	done
	for n in "${FRESH_NAMES[@]}"; do
		json+=$(printf ',"%s":{"rate":%s,"sent_per_s":%s,"seconds":%s,"rows":%s,"p50_ms":%s,"p99_ms":%s,"max_ms":%s,"commit_p50_ms":%s,"commit_p99_ms":%s,"commit_max_ms":%s,"worker_cpu_s_per_mrow":%s,"kafka_cpu_s":%s,"batches":%s,"peak_vmhwm_kb":%s,"loadavg":"%s"' \
			"$n" "$RATE" "${FR[$n.sent]:-null}" "$FRESH_SECS" "${FR[$n.rows]}" "${FR[$n.p50]}" "${FR[$n.p99]}" "${FR[$n.max]}" \
			"${FR[$n.c50]}" "${FR[$n.c99]}" "${FR[$n.cmax]}" "${FR[$n.cpum]}" "${FR[$n.kcpu]}" "${FR[$n.batches]}" "${FR[$n.hwm]}" "${FR[$n.load]}")
		if [ -n "${FR[$n.a50]:-}" ]; then
			json+=$(printf ',"append_p50_ms":%s,"append_p99_ms":%s,"append_to_commit_p50_ms":%s,"append_to_commit_p99_ms":%s' \
				"${FR[$n.a50]}" "${FR[$n.a99]}" "${FR[$n.ac50]}" "${FR[$n.ac99]}")
		fi
		json+="}"
	done
	json+="}"
	echo
	echo "BENCH $json"
} | tee -a "$OUT/log" "$OUT/result.txt"
echo "results in $OUT"
