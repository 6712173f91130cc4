# bench/idle_mode.sh: what idle pipelines cost (sourced by bench/run.sh for
# --idle N, after the servers started; bench/idle.sh is the short form).
#
# N topics with one partition and one record each, N pipelines (defaults)
# that ingest it, then nothing: over --idle-seconds, the CPU of every
# PostgreSQL process (postmaster and all its children) and of the broker
# (utime+stime from /proc/PID/stat), context switches of the workers (how
# often they wake), and each worker's private memory (Private_Clean +
# Private_Dirty from /proc/PID/smaps_rollup).  Finally one new record on a
# few of the pipelines: how long until it is visible (commit timestamp minus
# the record's produce time), since idling must not cost freshness.  The
# broker's share is broken down by its threads (Java names them; Linux keeps
# 15 characters) and by the requests it served (its own RequestMetrics, read
# over JMX).  Last, --idle-baseline: every pipeline paused, the broker alone
# with the same topics, for what it costs without any consumer.

# "pid ticks" (utime+stime) of the given processes, read by one awk so that
# a snapshot of a hundred processes takes milliseconds, not a fork per pid
# (the window must be the same for all); the comm field may hold spaces, so
# the fields are counted after its closing parenthesis.
ticks_by_pid() {
	local p files=()
	for p in "$@"; do [ -r "/proc/$p/stat" ] && files+=("/proc/$p/stat"); done
	[ ${#files[@]} -gt 0 ] || return 0
	awk '{ split(FILENAME, f, "/"); sub(/^.*\) /, ""); print f[3], $12 + $13 }' "${files[@]}" 2>/dev/null || true
}

# ticks spent between two "pid ticks" lists, of the processes in the
# optional third argument (space separated) or of all; a process new in the
# second list counts whole, one gone from it is not counted
ticks_between() {
	awk -v only="${3:-}" 'BEGIN { n = split(only, o, " "); for (i = 1; i <= n; i++) want[o[i]] = 1 }
		NR == FNR { a[$1] = $2; next }
		n == 0 || ($1 in want) { d += $2 - ($1 in a ? a[$1] : 0) }
		END { print d + 0 }' "$1" "$2"
}

# "name ticks" summed over the threads of the given processes, by thread
# name (postgres for a worker's own thread, rdk:... for librdkafka's)
ticks_by_thread() {
	local p files=()
	for p in "$@"; do files+=(/proc/"$p"/task/*/stat); done
	awk '{ c = $0; sub(/^[^(]*\(/, "", c); sub(/\) [^)]*$/, "", c); gsub(/ /, "_", c)
	       sub(/^.*\) /, ""); t[c] += $12 + $13; n[c]++ }
	     END { for (c in t) print c, t[c], n[c] }' "${files[@]}" 2>/dev/null || true
}

# the busiest thread names between two ticks_by_thread lists, as
# "name x.x %, ..." (% of one core over secs)
top_threads() {
	awk -v tck="$TCK" -v s="$3" -v top="${4:-8}" 'NR == FNR { a[$1] = $2; next }
		{ d[$1] = ($2 - a[$1]) / tck / s * 100 }
		END { for (k = 0; k < top; k++) { m = ""; for (c in d) if (m == "" || d[c] > d[m]) m = c
		        if (m == "" || d[m] < 0.05) break; printf "%s%s %.1f %%", (k ? ", " : ""), m, d[m]; delete d[m] } }' "$1" "$2"
}

# % of one core the JVM's JIT compiler threads took between two
# ticks_by_thread lists: warm-up, which a broker running for days is done with
jit_pct() {
	awk -v tck="$TCK" -v s="$3" 'NR == FNR { a[$1] = $2; next }
		$1 ~ /Compiler/ { d += $2 - a[$1] } END { printf "%.1f", d / tck / s * 100 }' "$1" "$2"
}

# the broker's request counts (kafka.sh request-counts), or nothing
request_counts() {
	[ -n "${JMXPORT:-}" ] && as_user "$TREE/test/kafka/kafka.sh" request-counts "$JMXPORT" 2>>"$OUT/log" || true
}

# requests per second by kind between two request_counts lists, busiest
# first, as "Kind r/s, ..."
request_rates() {
	awk -v s="$3" 'NR == FNR { a[$1] = $2; next }
		{ d = ($2 - a[$1]) / s; if (d > 0.005) printf "%s %.2f\n", $1, d }' "$1" "$2" |
		sort -k2,2nr | awk '{ printf "%s%s %s/s", (NR > 1 ? ", " : ""), $1, $2 } END { if (NR == 0) printf "none counted" }'
}

ctxt_switches() {
	local p files=()
	for p in "$@"; do [ -r "/proc/$p/status" ] && files+=("/proc/$p/status"); done
	awk '$1 ~ /^(non)?voluntary_ctxt_switches:$/ { t += $2 } END { print t + 0 }' "${files[@]}" /dev/null 2>/dev/null
}

private_kb() {
	awk '$1 == "Private_Clean:" || $1 == "Private_Dirty:" { s += $2 } END { print s + 0 }' \
		"/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}

idle_pipelines() {
	local i name t0 t1 n pids wpids npids c0 c1 secs pg_pct k_pct w_pct wake p
	local mem_tot=0 mem_max=0 mem_pg=0 v fresh="" lat lat_max=0 want threads kthreads kreqs
	local base_pct bsecs base_threads="" base_reqs="" kjit base_jit=""
	step "idle: $IDLE topics (1 partition, 1 record each) and $IDLE pipelines"
	for ((i = 1; i <= IDLE; i++)); do
		name=$(printf 'idle_%03d' "$i")
		as_user "$PRODUCER" -b "$BROKERS" -t "$name" --create-topic 1 >/dev/null 2>>"$OUT/log"
		as_user "$PRODUCER" -b "$BROKERS" -t "$name" -n 1 -s "$i" --manifest /dev/null >/dev/null 2>&1
		echo "CREATE TABLE public.$name ($TABLE_COLS, ingested_at timestamptz DEFAULT clock_timestamp());
		      SELECT eo_ingest.create_pipeline(name => '$name', brokers => '$BROKERS', topic => '$name',
		             target => 'public.$name'${BATCH_ARG:-}${EXTRA_ARGS:-});"
	done | pq >/dev/null
	t0=$(now)
	while :; do
		n="$(pq -c "SELECT count(*) FROM eo_ingest.pipeline_status WHERE name LIKE 'idle\_%' AND state = 'running' AND rows_inserted = 1")"
		[ "$n" = "$IDLE" ] && break
		awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 600) }' &&
			die "idle: only $n of $IDLE pipelines running with their record after 600 s"
		sleep 1
	done
	note "  all $IDLE pipelines running with their record after $(calc "$(now) - $t0" 1) s; settling $IDLE_SETTLE s"
	sleep "$IDLE_SETTLE"

	pids="$(pg_other_pids)"
	wpids="$(pq -c "SELECT s.pid FROM eo_ingest._worker_status() s WHERE s.pid IS NOT NULL" | tr '\n' ' ')"
	npids=$(echo $wpids | wc -w)
	[ "$npids" -ge "$IDLE" ] || die "idle: $npids worker processes for $IDLE pipelines"
	step "idle: measuring for ${IDLE_SECS}s ($(echo $pids | wc -w) postgres processes, $npids workers)"
	request_counts >"$WORK/idle.r0"
	t0=$(now)
	ticks_by_pid $pids "$KAFKA_PID" >"$WORK/idle.t0"
	ticks_by_thread $wpids >"$WORK/idle.th0"
	ticks_by_thread "$KAFKA_PID" >"$WORK/idle.k0"
	c0=$(ctxt_switches $wpids)
	sleep "$IDLE_SECS"
	pids="$(pg_other_pids)"
	t1=$(now)
	ticks_by_pid $pids "$KAFKA_PID" >"$WORK/idle.t1"
	ticks_by_thread $wpids >"$WORK/idle.th1"
	ticks_by_thread "$KAFKA_PID" >"$WORK/idle.k1"
	c1=$(ctxt_switches $wpids)
	request_counts >"$WORK/idle.r1"
	secs=$(calc "$t1 - $t0" 2)
	kthreads="$(top_threads "$WORK/idle.k0" "$WORK/idle.k1" "$secs")"
	kjit=$(jit_pct "$WORK/idle.k0" "$WORK/idle.k1" "$secs")
	kreqs="$(request_rates "$WORK/idle.r0" "$WORK/idle.r1" "$secs")"
	pg_pct=$(calc "$(ticks_between "$WORK/idle.t0" "$WORK/idle.t1" "$(echo $pids)") / $TCK / $secs * 100" 1)
	w_pct=$(calc "$(ticks_between "$WORK/idle.t0" "$WORK/idle.t1" "$wpids") / $TCK / $secs * 100" 1)
	k_pct=$(calc "$(ticks_between "$WORK/idle.t0" "$WORK/idle.t1" "$KAFKA_PID") / $TCK / $secs * 100" 1)
	wake=$(calc "($c1 - $c0) / $npids / $secs" 1)
	threads=$(awk -v n="$npids" -v tck="$TCK" -v s="$secs" 'NR == FNR { a[$1] = $2; next }
		{ all += $3; out = out sprintf("%s%s %.1f %%", out == "" ? "" : ", ", $1, ($2 - a[$1]) / tck / s * 100) }
		END { printf "%.1f per worker; CPU by thread, %% of one core: %s", all / n, out }' \
		"$WORK/idle.th0" "$WORK/idle.th1")
	for p in $wpids; do
		v=$(private_kb "$p")
		mem_tot=$((mem_tot + v))
		[ "$v" -gt "$mem_max" ] && mem_max=$v
	done
	for p in $(pg_other_pids); do mem_pg=$((mem_pg + $(private_kb "$p"))); done

	step "idle: one new record on each of 5 pipelines, time until visible"
	for i in $(seq 1 $(( (IDLE + 4) / 5 )) "$IDLE" | head -n 5); do
		name=$(printf 'idle_%03d' "$i")
		as_user "$PRODUCER" -b "$BROKERS" -t "$name" -n 1 -s $((IDLE + i)) --manifest /dev/null >/dev/null 2>&1
		t0=$(now)
		while [ "$(pq -c "SELECT count(*) FROM public.$name")" != 2 ]; do
			awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 30) }' && die "idle: new record on $name not visible after 30 s"
			sleep 0.05
		done
		lat="$(pq -c "SELECT round((extract(epoch FROM pg_xact_commit_timestamp(xmin) - created_at) * 1000)::numeric, 1)
		               FROM public.$name WHERE seq = 1 ORDER BY created_at DESC LIMIT 1")"
		fresh+="${fresh:+, }$name $lat ms"
		awk "BEGIN { exit !($lat > $lat_max) }" && lat_max=$lat
	done

	want=$(pq -c "SELECT count(*) FROM eo_ingest.pipeline_status WHERE name LIKE 'idle\_%' AND rows_inserted = 2")

	base_pct=-1
	if [ "$IDLE_BASE" -gt 0 ]; then
		step "idle: every pipeline paused; the broker alone (same topics, no consumers) for ${IDLE_BASE}s"
		pq -c "SELECT eo_ingest.pause_pipeline(name) FROM eo_ingest.pipelines WHERE name LIKE 'idle\_%'" >/dev/null
		t0=$(now)
		until [ "$(pq -c "SELECT count(*) FROM eo_ingest._worker_status() WHERE pid IS NOT NULL")" = 0 ]; do
			awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 120) }' && die "idle: workers still running 120 s after pausing"
			sleep 1
		done
		sleep 10
		request_counts >"$WORK/idle.r0"
		t0=$(now)
		ticks_by_pid "$KAFKA_PID" >"$WORK/idle.t0"
		ticks_by_thread "$KAFKA_PID" >"$WORK/idle.k0"
		sleep "$IDLE_BASE"
		t1=$(now)
		ticks_by_pid "$KAFKA_PID" >"$WORK/idle.t1"
		ticks_by_thread "$KAFKA_PID" >"$WORK/idle.k1"
		request_counts >"$WORK/idle.r1"
		bsecs=$(calc "$t1 - $t0" 2)
		base_pct=$(calc "$(ticks_between "$WORK/idle.t0" "$WORK/idle.t1") / $TCK / $bsecs * 100" 1)
		base_threads="$(top_threads "$WORK/idle.k0" "$WORK/idle.k1" "$bsecs")"
		base_jit=$(jit_pct "$WORK/idle.k0" "$WORK/idle.k1" "$bsecs")
		base_reqs="$(request_rates "$WORK/idle.r0" "$WORK/idle.r1" "$bsecs")"
	fi

	step "idle cost result"
	{
		echo "machine: $(nproc) cores; $IDLE idle pipelines (one record each, then nothing); settled ${IDLE_SETTLE} s, window ${secs} s; load $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "CPU, % of one core: PostgreSQL (all processes) $pg_pct, of which workers $w_pct; broker $k_pct; total $(calc "$pg_pct + $k_pct" 1)"
		echo "  without the broker's JIT compiler threads ($kjit): broker $(calc "$k_pct - $kjit" 1), total $(calc "$pg_pct + $k_pct - $kjit" 1)"
		echo "broker threads, % of one core: $kthreads"
		echo "broker requests served: $kreqs"
		[ "$IDLE_BASE" -gt 0 ] &&
			echo "the broker alone (pipelines paused, same topics, no consumers; ${bsecs} s, load $(cut -d' ' -f1-3 /proc/loadavg)): $base_pct % (JIT compiler threads $base_jit); threads: $base_threads; requests: $base_reqs"
		echo "worker wake-ups (context switches) per worker per second: $wake"
		echo "worker threads: $threads"
		echo "private memory (Private_Clean+Private_Dirty): workers total $(calc "$mem_tot / 1024" 1) MB, per worker mean $(calc "$mem_tot / $npids / 1024" 2) MB, max $(calc "$mem_max / 1024" 2) MB; all PostgreSQL processes $(calc "$mem_pg / 1024" 1) MB"
		echo "a new record after idling, produce -> visible: $fresh (max $lat_max ms); $want pipelines show 2 rows"
		printf 'BENCH {"mode":"idle","pipelines":%s,"seconds":%s,"pg_cpu_pct":%s,"worker_cpu_pct":%s,"kafka_cpu_pct":%s,"kafka_jit_cpu_pct":%s,"kafka_alone_cpu_pct":%s,"worker_wakeups_per_s":%s,"worker_private_kb_total":%s,"worker_private_kb_mean":%s,"worker_private_kb_max":%s,"pg_private_kb_total":%s,"new_record_visible_max_ms":%s}\n' \
			"$IDLE" "$secs" "$pg_pct" "$w_pct" "$k_pct" "$kjit" "$base_pct" "$wake" "$mem_tot" "$((mem_tot / npids))" "$mem_max" "$mem_pg" "$lat_max"
	} | tee -a "$OUT/log" "$OUT/result.txt"
}
