# bench/cs_mode.sh: the change-stream mode of bench/run.sh (--change-stream
# N; sourced after the servers started).  In one run:
#
#  1. the insert-only drain: --events plain events (topic bench, the test
#     producer) into the usual table by a default pipeline, the reference;
#  2. topic cs: N Debezium-shaped change events of --cs-keys keys (20 %
#     creates, 70 % updates, 10 % deletes each followed by its tombstone;
#     bench/cs_gen.pl), JsonConverter with schemas for keys and values, as
#     the Debezium JDBC sink requires, 4 partitions by key;
#  3. eo_ingest: a default pipeline with envelope => 'debezium' into
#     cs_eo (id int PRIMARY KEY, qty int, name text, price numeric(10,2),
#     updated_at timestamptz);
#  4. the Debezium JDBC sink 3.2.0.Final in Kafka Connect standalone (fresh
#     worker, test/connect/connect.sh) applying the same topic into an
#     identical table: insert.mode=upsert, delete.enabled=true,
#     primary.key.mode=record_key, use.reduction.buffer=true, batch.size
#     and the worker's max.poll.records --connect-batch (skipped with
#     --no-peers);
#     With --sql-path, also with eo_ingest.direct_insert = off (every
#     upsert through INSERT ... ON CONFLICT, for comparison), and both ways
#     an initial snapshot (topic cs_snap: one op r per key, all new keys,
#     which the multi-insert path takes);
#  5. with perf, a second eo_ingest drain of topic cs under perf record.
#
# Each target is compared row by row with the model's final state (COPY of
# cs_gen.pl's expected.csv, EXCEPT both ways on every column).  Reported:
# changes applied per second (changes = records less tombstones), the ratio
# to the insert-only drain's records per second, and to the JDBC sink's
# changes per second.

. "$SRC/bench/peers.sh"

CS_COLS="id integer PRIMARY KEY, qty integer, name text, price numeric(10,2), updated_at timestamptz"

# cs_check TABLE [EXPECTED]: equal to the expected final state on every column
cs_check() {
	local d e="${2:-cs_expected}"
	d="$(pq -c "SELECT (SELECT count(*) FROM (SELECT * FROM public.$1 EXCEPT ALL SELECT * FROM public.$e) a)
	               || ' ' || (SELECT count(*) FROM (SELECT * FROM public.$e EXCEPT ALL SELECT * FROM public.$1) b)")"
	[ "$d" = "0 0" ] || die "$1: rows extra/missing against the expected final state: $d"
	note "  $1: equals the expected final state row by row ($(pq -c "SELECT count(*) FROM public.$e") rows)"
}

# cs_produce DIR TOPIC: DIR/part.* into TOPIC, DIR/expected.csv into table
# TOPIC_expected; CS_END gets the partitions' end offsets
cs_produce() {
	as_user "$PRODUCER" -b "$BROKERS" -t "$2" --create-topic "$PARTITIONS" | tee -a "$OUT/log"
	kcat_parts "$1" "$2" -K $'\t' -Z
	CS_END="$ENV_END"
	note "  average record $(awk -F '\t' '{ b += length($0) } END { printf "%d", b / NR }' "$1"/part.*) bytes (key and value)"
	chown -R "$BUSER": "$1"
	pq -c "CREATE TABLE public.${2}_expected ($CS_COLS)"
	pq -c "COPY public.${2}_expected FROM '$1/expected.csv' (FORMAT csv)"
}

# cs_snapshot: the initial snapshot of --cs-keys rows, multi-insert path and SQL path
cs_snapshot() {
	local stats n
	step "change stream: an initial snapshot of $CS_KEYS rows (op r) to topic cs_snap"
	mkdir -p "$WORK/snap"
	stats="$(perl "$SRC/bench/cs_gen.pl" 0 "$CS_KEYS" "$PARTITIONS" "$WORK/snap" snapshot)"
	cs_produce "$WORK/snap" cs_snap
	step "change stream: snapshot, multi-insert path (defaults)"
	TABLE_COLS="$CS_COLS" drain snap_direct cs_snap "$CS_KEYS" "$CS_KEYS" ", envelope => 'debezium'"
	cs_check snap_direct cs_snap_expected
	finish_drain snap_direct
	CS_SNAP_D=$R_SECS; CS_SNAP_DCPU=$R_WCPU
	step "change stream: snapshot, eo_ingest.direct_insert = off"
	pq -c "ALTER SYSTEM SET eo_ingest.direct_insert = off" -c "SELECT pg_reload_conf()" >/dev/null
	TABLE_COLS="$CS_COLS" drain snap_sql cs_snap "$CS_KEYS" "$CS_KEYS" ", envelope => 'debezium'"
	pq -c "ALTER SYSTEM RESET eo_ingest.direct_insert" -c "SELECT pg_reload_conf()" >/dev/null
	cs_check snap_sql cs_snap_expected
	finish_drain snap_sql
	CS_SNAP_S=$R_SECS; CS_SNAP_SCPU=$R_WCPU
	note "  multi-insert path $CS_SNAP_D s (worker CPU $CS_SNAP_DCPU s), SQL path $CS_SNAP_S s (worker CPU $CS_SNAP_SCPU s)"
}

cs_jdbc() {
	local name=cs_jdbc
	connect_start "change stream"
	ENV_END="$CS_END"
	TABLE_COLS="$CS_COLS" connect_run "$name" cs delete.enabled=true primary.key.mode=record_key \
		key.converter=org.apache.kafka.connect.json.JsonConverter key.converter.schemas.enable=true
	cs_check "$name"
	CS_J_SECS=$C_SECS
	CS_J_SECS_FIRST=$(calc "$C_T1 - $C_FIRST")
	CS_J_CPU=$C_CPU
	CS_J_KCPU=$(calc "($C_K1 - $C_K0) / $TCK" 2)
	CS_J_OCPU=$(calc "($C_O1 - $C_O0) / $TCK" 2)
	CS_J_ANON=$C_ANON
	connect_stop
	note "  $CS_J_SECS s from the connector's creation ($CS_J_SECS_FIRST s from its first row), $(calc "$CS_CHANGES / $CS_J_SECS" 0) changes/s"
	note "  CPU s: Connect JVM $CS_J_CPU, Kafka $CS_J_KCPU, postgres $CS_J_OCPU; JVM RssAnon $CS_J_ANON kB"
}

change_stream() {
	local stats p ins_rps cs_cps j_cps
	# 1. the insert-only reference
	step "change stream: producing $EVENTS plain events to topic bench (insert-only reference)"
	as_user "$PRODUCER" -b "$BROKERS" -t bench --create-topic "$PARTITIONS" | tee -a "$OUT/log"
	as_user "$PRODUCER" -b "$BROKERS" -t bench -n "$EVENTS" --dup-ratio "$DUP" \
		--manifest "$WORK/bench.manifest" 2>&1 | tee -a "$OUT/log"
	RECORDS=$(awk -F '\t' '$4 == "committed"' "$WORK/bench.manifest" | wc -l)
	DISTINCT=$(awk -F '\t' '$4 == "committed" && !seen[$3]++' "$WORK/bench.manifest" | wc -l)
	step "change stream: insert-only drain (defaults)"
	drain drain_default bench "$RECORDS" "$DISTINCT" ""
	finish_drain drain_default
	CS_I_SECS=$R_SECS
	ins_rps=$(calc "$RECORDS / $R_SECS" 0)
	note "  $RECORDS records in $R_SECS s: $ins_rps records/s; worker CPU $R_WCPU s"

	# 2. the change stream
	step "change stream: $CHANGE_STREAM changes of $CS_KEYS keys to topic cs ($PARTITIONS partitions)"
	mkdir -p "$WORK/cs"
	stats="$(perl "$SRC/bench/cs_gen.pl" "$CHANGE_STREAM" "$CS_KEYS" "$PARTITIONS" "$WORK/cs")"
	note "  $stats"
	read -r _ CS_CHANGES _ CS_RECORDS _ CS_CREATES _ CS_UPDATES _ CS_DELETES _ CS_ROWS <<<"$stats"
	cs_produce "$WORK/cs" cs

	# 3. eo_ingest
	step "change stream: eo_ingest, envelope => 'debezium' (defaults)"
	TABLE_COLS="$CS_COLS" drain cs_eo cs "$CS_RECORDS" "$CS_ROWS" ", envelope => 'debezium'"
	cs_check cs_eo
	CS_E_SECS=$R_SECS; CS_E_WCPU=$R_WCPU; CS_E_ANON=$R_ANON
	CS_E_STATUS="$(pq -c "SELECT rows_inserted || ' inserted, ' || rows_updated || ' updated, ' || rows_deleted || ' deleted, '
	                             || duplicates_skipped || ' skipped, ' || dead_letters || ' dead, ' || batches || ' batches'
	                        FROM eo_ingest.pipeline_status WHERE name = 'cs_eo'")"
	finish_drain cs_eo
	cs_cps=$(calc "$CS_CHANGES / $CS_E_SECS" 0)
	note "  $CS_CHANGES changes in $CS_E_SECS s: $cs_cps changes/s; worker CPU $CS_E_WCPU s; $CS_E_STATUS"

	CS_S_SECS=""
	if [ "${SQLPATH:-0}" = 1 ]; then
		step "change stream: eo_ingest with eo_ingest.direct_insert = off"
		pq -c "ALTER SYSTEM SET eo_ingest.direct_insert = off" -c "SELECT pg_reload_conf()" >/dev/null
		TABLE_COLS="$CS_COLS" drain cs_sql cs "$CS_RECORDS" "$CS_ROWS" ", envelope => 'debezium'"
		pq -c "ALTER SYSTEM RESET eo_ingest.direct_insert" -c "SELECT pg_reload_conf()" >/dev/null
		cs_check cs_sql
		finish_drain cs_sql
		CS_S_SECS=$R_SECS; CS_S_WCPU=$R_WCPU
		note "  $CS_CHANGES changes in $CS_S_SECS s: $(calc "$CS_CHANGES / $CS_S_SECS" 0) changes/s; worker CPU $CS_S_WCPU s"
	fi
	local cs_end="$CS_END"
	[ "${SQLPATH:-0}" = 1 ] && cs_snapshot
	CS_END="$cs_end"

	# 4. the JDBC sink
	j_cps=""
	if [ "$PEERS" = 1 ]; then
		cs_jdbc
		j_cps=$(calc "$CS_CHANGES / $CS_J_SECS" 0)
	fi

	# 5. profile
	if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
		step "change stream: perf record -p <worker> for ${PERF_SECS}s during an eo_ingest drain of topic cs"
		mkdir -p "$OUT/profile"
		PROFILE_OUT="$OUT/profile" TABLE_COLS="$CS_COLS" drain cs_perf cs "$CS_RECORDS" "$CS_ROWS" ", envelope => 'debezium'"
		wait "$PERF_PID" 2>/dev/null || true
		PERF_PID=""
		finish_drain cs_perf
		perf_reports "$OUT/profile"
	fi

	step "results"
	{
		echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "change stream: $CS_CHANGES changes ($CS_CREATES creates, $CS_UPDATES updates, $CS_DELETES deletes + as many tombstones) of $CS_KEYS keys, $PARTITIONS partitions, $CS_ROWS rows at the end"
		printf '%-44s %9s %10s %10s\n' run seconds "changes/s" "records/s"
		printf '%-44s %9s %10s %10s\n' "eo_ingest, insert-only drain (reference)" "$CS_I_SECS" - "$ins_rps"
		printf '%-44s %9s %10s %10s\n' "eo_ingest, envelope => 'debezium'" "$CS_E_SECS" "$cs_cps" "$(calc "$CS_RECORDS / $CS_E_SECS" 0)"
		[ -n "$CS_S_SECS" ] && printf '%-44s %9s %10s %10s\n' "eo_ingest, debezium, direct_insert = off" "$CS_S_SECS" \
			"$(calc "$CS_CHANGES / $CS_S_SECS" 0)" "$(calc "$CS_RECORDS / $CS_S_SECS" 0)"
		[ -n "$j_cps" ] && printf '%-44s %9s %10s %10s\n' "Connect + Debezium JDBC sink (fresh worker)" "$CS_J_SECS" "$j_cps" "$(calc "$CS_RECORDS / $CS_J_SECS" 0)"
		echo
		echo "eo_ingest changes/s / insert-only records/s: $(calc "$cs_cps / $ins_rps" 2)"
		[ -n "$j_cps" ] && echo "eo_ingest changes/s / JDBC sink changes/s: $(calc "$cs_cps / $j_cps" 2) (JDBC sink from its first row: $(calc "$CS_CHANGES / $CS_J_SECS_FIRST" 0) changes/s)"
		echo "eo_ingest: $CS_E_STATUS; worker CPU $CS_E_WCPU s, peak RssAnon $CS_E_ANON kB"
		[ -n "$CS_S_SECS" ] && echo "eo_ingest, direct_insert = off: worker CPU $CS_S_WCPU s"
		[ -n "$CS_S_SECS" ] && echo "initial snapshot of $CS_KEYS rows (op r): multi-insert path $CS_SNAP_D s ($(calc "$CS_KEYS / $CS_SNAP_D" 0) rows/s, worker CPU $CS_SNAP_DCPU s), SQL path $CS_SNAP_S s ($(calc "$CS_KEYS / $CS_SNAP_S" 0) rows/s, worker CPU $CS_SNAP_SCPU s)"
		[ -n "$j_cps" ] && echo "JDBC sink: Connect JVM CPU $CS_J_CPU s, postgres CPU $CS_J_OCPU s, JVM RssAnon $CS_J_ANON kB"
		profile_summary "$OUT/profile"
		json="{\"changes\":$CS_CHANGES,\"records\":$CS_RECORDS,\"keys\":$CS_KEYS,\"insert_only_records_per_s\":$ins_rps,"
		json+="\"eo_ingest\":{\"seconds\":$CS_E_SECS,\"changes_per_s\":$cs_cps,\"worker_cpu_s\":$CS_E_WCPU}"
		[ -n "$j_cps" ] && json+=",\"jdbc_sink\":{\"seconds\":$CS_J_SECS,\"changes_per_s\":$j_cps,\"jvm_cpu_s\":$CS_J_CPU}"
		json+="}"
		echo
		echo "BENCH_CS $json"
	} | tee -a "$OUT/log" "$OUT/result.txt"
	echo "results in $OUT"
}
