# bench/memory_mode.sh: the worker's memory while it drains a large backlog
# (sourced by bench/run.sh for --backlog N, after the servers started;
# bench/memory.sh is the short form).  One pipeline with default settings;
# the worker's RssAnon, VmRSS, RssShmem and VmHWM sampled every 0.5 s for up
# to --memory-seconds; pass/fail on peak RssAnon < 200 MB.

memory_backlog() {
	local t0 t1 el pids row p anon rss shm h rate anon_mb hwm_mb verdict
	local peak_anon=0 peak_rss=0 hwm=0 samples=0 lag=-1 done_recs=0
	step "producing a backlog of $BACKLOG events (4 partitions, dup ratio $DUP)"
	as_user "$PRODUCER" -b "$BROKERS" -t backlog --create-topic 4 | tee -a "$OUT/log"
	as_user "$PRODUCER" -b "$BROKERS" -t backlog -n "$BACKLOG" --dup-ratio "$DUP" \
		--manifest /dev/null 2>&1 | tee -a "$OUT/log"
	step "draining with default settings; sampling the worker's memory every 0.5 s for up to ${MEM_SECS}s"
	pids=""
	pq -c "CREATE TABLE public.backlog ($TABLE_COLS)"
	t0=$(now)
	pq -c "SELECT eo_ingest.create_pipeline(name => 'backlog', brokers => '$BROKERS', topic => 'backlog', target => 'public.backlog')" >/dev/null
	echo "elapsed_s rss_kb rss_anon_kb rss_shmem_kb records_done lag" >"$OUT/memory.samples"
	while :; do
		t1=$(now)
		el=$(calc "$t1 - $t0" 1)
		awk -v e="$el" -v m="$MEM_SECS" 'BEGIN { exit !(e > m) }' && break
		[ -z "$pids" ] && pids="$(worker_pids backlog)"
		row="$(pq -c "SELECT coalesce(lag, -1), rows_inserted + duplicates_skipped + dead_letters FROM eo_ingest.pipeline_status WHERE name = 'backlog'")"
		read -r lag done_recs <<<"$row"
		for p in $pids; do
			anon=$(status_kb "$p" RssAnon); rss=$(status_kb "$p" VmRSS); shm=$(status_kb "$p" RssShmem)
			h=$(status_kb "$p" VmHWM)
			[ "${anon:-0}" -gt "$peak_anon" ] && peak_anon=$anon
			[ "${rss:-0}" -gt "$peak_rss" ] && peak_rss=$rss
			[ "${h:-0}" -gt "$hwm" ] && hwm=$h
			echo "$el $rss $anon $shm $done_recs $lag" >>"$OUT/memory.samples"
			samples=$((samples + 1))
		done
		[ "$lag" = 0 ] && [ "$done_recs" -ge "$BACKLOG" ] && break
		sleep 0.5
	done
	rate=$(calc "$done_recs / ($(now) - $t0)" 0)
	anon_mb=$(calc "$peak_anon / 1024" 1)
	hwm_mb=$(calc "$hwm / 1024" 1)
	verdict=$(awk -v a="$peak_anon" 'BEGIN { print (a < 200 * 1024) ? "PASS" : "FAIL" }')
	step "memory check result"
	{
		echo "backlog ${BACKLOG} events; drained $done_recs records in $el s ($rate records/s), lag at end $lag"
		echo "worker pid $pids, $samples samples (every 0.5 s): $OUT/memory.samples"
		echo "peak RssAnon (private memory) ${anon_mb} MB  -> $verdict (target < 200 MB)"
		echo "peak VmHWM ${hwm_mb} MB (includes the shared buffers the worker touched)"
		printf 'BENCH {"mode":"memory","backlog":%s,"records_done":%s,"seconds":%s,"records_per_s":%s,"peak_rss_anon_kb":%s,"peak_vmhwm_kb":%s,"peak_rss_kb":%s,"target_kb":204800,"pass":%s}\n' \
			"$BACKLOG" "$done_recs" "$el" "$rate" "$peak_anon" "$hwm" "$peak_rss" \
			"$([ "$verdict" = PASS ] && echo true || echo false)"
	} | tee -a "$OUT/log" "$OUT/result.txt"
}
