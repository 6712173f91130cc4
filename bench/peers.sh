# bench/peers.sh: the peers bench/run.sh measures beside eo_ingest, on the
# same topic data and the same server (sourced by run.sh after the eo_ingest
# drains; uses its helpers, the COPY reference table and its RES table).
#
#  - Kafka Connect 3.9.1 standalone with the Debezium JDBC sink 3.2.0
#    (test/connect/connect.sh), upsert on event_id: the first connector in a
#    fresh worker JVM, then a second one in the same, now warm, worker.  The
#    sink accepts only values with a Connect schema, so it reads topic
#    bench_env: the same committed records, partition by partition in the
#    same order, as JsonConverter envelopes (manifest2envelope.awk).
#  - The naive baseline: kcat reads topic bench to its end into COPY ...
#    FROM STDIN of a temporary staging table, then INSERT ... SELECT ... ON
#    CONFLICT (event_id) DO NOTHING into the target, in one psql session.
#
# Both are at least once.  Each drain is checked row for row against the COPY
# reference like eo_ingest's (check_rows in run.sh).

CONNECT_SH="$TREE/test/connect/connect.sh"
CONNECT_DIR=""

# peer_result NAME LABEL SECS CPU_S HWM_KB ANON_KB K0 K1 O0 O1: one row of the table
peer_result() {
	local name="$1" label="$2" secs="$3" cpu="$4" rps
	rps=$(calc "$DISTINCT / $secs" 0)
	RUN_NAMES+=("$name"); RUN_LABELS+=("$label")
	RES[$name.secs]=$secs; RES[$name.rps]=$rps; RES[$name.ratio]=$(calc "$rps / $COPY_RPS" 3)
	RES[$name.recps]=$(calc "$RECORDS / $secs" 0)
	RES[$name.wcpu]=$cpu; RES[$name.cpum]=$(calc "$cpu / ($RECORDS / 1000000)" 2)
	RES[$name.kcpu]=$(calc "($8 - $7) / $TCK" 2); RES[$name.ocpu]=$(calc "(${10} - $9) / $TCK" 2)
	RES[$name.hwm]=$5; RES[$name.anon]=$6; RES[$name.start]=0; RES[$name.nproc]=1
	RES[$name.load]="$R_LOAD0/$(cut -d' ' -f1 /proc/loadavg)"
	note "  $secs s, $rps rows/s, ratio to COPY ${RES[$name.ratio]}; CPU s: peer $cpu, Kafka ${RES[$name.kcpu]}, postgres ${RES[$name.ocpu]}"
}

# The end of a drain: the commit time of the last write into the table (and,
# logged, how long after T0 the first row was there: the peer's start-up).
last_commit() {
	local first last
	read -r first last <<<"$(pq -c "SELECT extract(epoch FROM min(pg_xact_commit_timestamp(xmin))),
	                                       extract(epoch FROM max(pg_xact_commit_timestamp(xmin))) FROM public.$1")"
	echo "  $1: first row committed after $(calc "$first - $2" 2) s, last after $(calc "$last - $2" 2) s" >>"$OUT/log"
	echo "$last"
}

# kcat_parts DIR TOPIC [KCAT_OPTION...]: DIR/part.N into partition N of
# TOPIC, a record a line; ENV_END gets the partitions' end offsets as
# connect_at_end compares them (an empty topic starts at offset 0, so a
# partition ends at its line count)
kcat_parts() {
	local p dir="$1" topic="$2"
	shift 2
	ENV_END=""
	for p in "$dir"/part.*; do
		kcat -P -b "$BROKERS" -t "$topic" -p "${p##*.}" -X linger.ms=20 "$@" <"$p"
		ENV_END+="$topic ${p##*.} $(wc -l <"$p")"$'\n'
	done
	ENV_END="$(sort <<<"$ENV_END" | sed '/^$/d')"
}

peers_prepare() {
	step "peers: topic bench_env, the same committed records as Connect JsonConverter envelopes"
	as_user "$PRODUCER" -b "$BROKERS" -t bench_env --create-topic "$PARTITIONS" | tee -a "$OUT/log"
	mkdir -p "$WORK/env"
	awk -F '\t' -v dir="$WORK/env" -f "$SRC/bench/json_fields.awk" -f "$SRC/bench/manifest2envelope.awk" \
		"$WORK/bench.manifest"
	kcat_parts "$WORK/env" bench_env
	note "  $(cat "$WORK"/env/part.* | wc -l) envelopes, average $(awk '{ b += length($0) } END { printf "%d", b / NR }' "$WORK"/env/part.*) bytes"
	rm -rf "$WORK/env"
}

# jdbc_connector NAME TOPIC PROPERTY...: the sink's configuration (Debezium
# defaults otherwise) upserting TOPIC into public.NAME, the properties given,
# then those of --connect-props.  batch.size 10,000 with the worker's
# consumer.max.poll.records to match (the sink flushes at the end of every
# put(), so a batch is at most one poll): with the defaults (500 and 500) a
# commit per 500 rows held the sink to ~1,800 rows/s on this machine.
jdbc_connector() {
	cat <<EOF
name=$1
connector.class=io.debezium.connector.jdbc.JdbcSinkConnector
tasks.max=$CONNECT_TASKS
topics=$2
connection.url=jdbc:postgresql://127.0.0.1:$PGPORT/postgres?reWriteBatchedInserts=true
connection.username=$BUSER
connection.password=unused
insert.mode=upsert
collection.name.format=public.$1
schema.evolution=none
use.reduction.buffer=true
batch.size=$CONNECT_BATCH
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=true
EOF
	shift 2
	printf '%s\n' "$@"
	[ -z "$CONNECT_PROPS" ] || cat "$CONNECT_PROPS"
}

# true once the connector's committed offsets reach the end of every partition
connect_at_end() {
	[ "$(as_user "$CONNECT_SH" offsets "$CONNECT_DIR" "$1" 2>/dev/null | sort)" = "$ENV_END" ]
}

# connect_start WHAT: a Kafka Connect standalone worker in $WORK/connect,
# offsets flushed every second, so that the end of a drain shows promptly
connect_start() {
	local port t0
	CONNECT_DIR="$WORK/connect"
	mkdir -p "$CONNECT_DIR"
	chown "$BUSER": "$CONNECT_DIR"
	port="$(free_port)"
	step "$1: Kafka Connect standalone (REST port $port), Debezium JDBC sink, tasks.max=$CONNECT_TASKS"
	printf 'offset.flush.interval.ms=1000\nconsumer.max.poll.records=%s\n' "$CONNECT_BATCH" \
		>"$CONNECT_DIR/extra.properties"
	t0=$(now)
	as_user env WORKER_EXTRA_PROPERTIES="$CONNECT_DIR/extra.properties" \
		"$CONNECT_SH" start "$CONNECT_DIR" "$BROKERS" "$port" | tee -a "$OUT/log"
	note "  worker JVM up in $(calc "$(now) - $t0" 1) s"
}

connect_stop() {
	as_user "$CONNECT_SH" stop "$CONNECT_DIR" >>"$OUT/log"
	cp "$CONNECT_DIR/connect.log" "$OUT/" 2>/dev/null || true
}

# connect_run NAME TOPIC PROPERTY...: one connector (jdbc_connector's
# arguments) applying TOPIC, whose end offsets are in ENV_END, into a new
# table public.NAME ($TABLE_COLS); deleted once done.  Sets C_SECS (from its
# creation to the commit of its last row), C_T1 and C_FIRST (the commits of
# its last and first rows, epoch s), C_CPU (the worker JVM's CPU s), C_HWM and C_ANON (the JVM's
# VmHWM and RssAnon, kB), and C_K0 C_K1 C_O0 C_O1 (CPU ticks of Kafka and of
# the other postgres processes before and after).
connect_run() {
	local name="$1" t0 t1 jpid c0 c1
	pq -c "CREATE TABLE public.$name ($TABLE_COLS)"
	pq -c "CHECKPOINT"
	jdbc_connector "$@" >"$CONNECT_DIR/$name.properties"
	chown "$BUSER": "$CONNECT_DIR/$name.properties"
	jpid="$(as_user "$CONNECT_SH" pid "$CONNECT_DIR")"
	c0=$(cpu_ticks "$jpid"); C_K0=$(cpu_ticks "$KAFKA_PID"); C_O0=$(cpu_ticks $(pg_other_pids))
	R_LOAD0=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(now)
	as_user "$CONNECT_SH" put "$CONNECT_DIR" "$name" "$CONNECT_DIR/$name.properties" >>"$OUT/log"
	as_user "$CONNECT_SH" wait-running "$CONNECT_DIR" "$name" 120 >>"$OUT/log"
	# Done when the connector's committed offsets reach the end of every
	# partition: the sink commits offsets only after flushing its writes.
	# (Polling the REST API costs the server nothing; a count(*) every half
	# second would compete with the sink for the two cores.)
	while ! connect_at_end "$name"; do
		awk -v a="$t0" -v b="$(now)" -v m="$DRAIN_TIMEOUT" 'BEGIN { exit !(b - a > m) }' &&
			die "connector $name did not drain within ${DRAIN_TIMEOUT}s"
		as_user "$CONNECT_SH" status "$CONNECT_DIR" "$name" | grep -q FAILED &&
			die "connector $name failed: $(as_user "$CONNECT_SH" status "$CONNECT_DIR" "$name")"
		sleep 0.5
	done
	c1=$(cpu_ticks "$jpid"); C_K1=$(cpu_ticks "$KAFKA_PID"); C_O1=$(cpu_ticks $(pg_other_pids))
	t1="$(last_commit "$name" "$t0")"
	C_FIRST="$(pq -c "SELECT extract(epoch FROM min(pg_xact_commit_timestamp(xmin))) FROM public.$name")"
	C_T1=$t1
	C_SECS=$(calc "$t1 - $t0")
	C_CPU=$(calc "($c1 - $c0) / $TCK" 2)
	C_HWM=$(status_kb "$jpid" VmHWM)
	C_ANON=$(status_kb "$jpid" RssAnon)
	as_user "$CONNECT_SH" delete "$CONNECT_DIR" "$name" >>"$OUT/log"
}

# connect_drain NAME LABEL: one connector draining bench_env into public.NAME
connect_drain() {
	local name="$1" n
	connect_run "$name" bench_env primary.key.mode=record_value primary.key.fields=event_id
	n="$(pq -c "SELECT count(*) FROM public.$name")"
	[ "$n" = "$DISTINCT" ] || die "connector $name: count(*) = $n, expected $DISTINCT"
	check_rows "$name"
	peer_result "$name" "$2" "$C_SECS" "$C_CPU" "$C_HWM" "$C_ANON" "$C_K0" "$C_K1" "$C_O0" "$C_O1"
	pq -c "DROP TABLE public.$name"
}

run_connect() {
	connect_start peers
	step "peers: Debezium JDBC sink, first connector in the fresh worker"
	connect_drain jdbc_fresh "Connect + Debezium JDBC sink, fresh worker"
	step "peers: Debezium JDBC sink, second connector in the same (warm) worker"
	connect_drain jdbc_warm "Connect + Debezium JDBC sink, warm worker"
	connect_stop
}

run_kcat_baseline() {
	local t0 t1 k0 k1 o0 o1 n cpu
	step "peers: kcat -> COPY into a staging table -> INSERT ... ON CONFLICT DO NOTHING"
	pq -c "CREATE TABLE public.kcat_copy ($TABLE_COLS)"
	pq -c "CHECKPOINT"
	k0=$(cpu_ticks "$KAFKA_PID"); o0=$(cpu_ticks $(pg_other_pids))
	R_LOAD0=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(now)
	# kcat reads committed records only (librdkafka's isolation.level
	# default); the JSON has no tabs or newlines, and \x01/\x02 as CSV quote
	# and delimiter keep COPY from interpreting anything in it.
	as_user bash -c "set -o pipefail
		kcat -C -b '$BROKERS' -t bench -o beginning -e -q -f '%s\n' |
		'$PGBIN/psql' -X -q -v ON_ERROR_STOP=1 -h '$WORK' -p '$PGPORT' -d postgres \
			-c 'CREATE TEMP TABLE staging (doc jsonb)' \
			-c \"COPY staging FROM STDIN (FORMAT csv, QUOTE e'\\\\x01', DELIMITER e'\\\\x02')\" \
			-c \"INSERT INTO public.kcat_copy (event_id, seq, customer_id, amount, note, created_at)
			    SELECT (doc->>'event_id')::uuid, (doc->>'seq')::int, (doc->>'customer_id')::int,
			           (doc->>'amount')::numeric, doc->>'note', (doc->>'created_at')::timestamptz
			      FROM staging ON CONFLICT (event_id) DO NOTHING\"
		times >'$WORK/kcat.times'" >>"$OUT/log" 2>&1 ||
		die "kcat baseline failed (see $OUT/log)"
	k1=$(cpu_ticks "$KAFKA_PID"); o1=$(cpu_ticks $(pg_other_pids))
	t1="$(last_commit kcat_copy "$t0")"
	n="$(pq -c "SELECT count(*) FROM public.kcat_copy")"
	[ "$n" = "$DISTINCT" ] || die "kcat baseline: count(*) = $n, expected $DISTINCT"
	check_rows kcat_copy
	# the clients' CPU (kcat and psql): the second line of bash's `times`
	cpu="$(awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%.2f", n }' \
		"$WORK/kcat.times")"
	peer_result kcat_copy "kcat -> COPY staging -> INSERT ON CONFLICT" "$(calc "$t1 - $t0")" "$cpu" 0 0 \
		"$k0" "$k1" "$o0" "$o1"
	pq -c "DROP TABLE public.kcat_copy"
}
