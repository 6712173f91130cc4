# Process helpers for the harness's server scripts (test/kafka/kafka.sh,
# test/connect/connect.sh, test/registry/apicurio.sh), sourced by them.
# Each server lives in a directory of its own, its pid in a file there.

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# pid_in FILE PATTERN: the pid in FILE while that process lives and its
# command line matches PATTERN (grep -E), so that a recycled pid is not taken
# for the server's.
pid_in() {
	local pid
	[ -r "$1" ] || return 1
	pid="$(cat "$1")"
	[ -n "$pid" ] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE "$2" || return 1
	echo "$pid"
}

# wait_exit PID SECS: true once PID is gone, false if it still runs after SECS.
wait_exit() {
	local pid="$1" secs="$2" i
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# stop_pid PID SECS WHAT: SIGTERM, and SIGKILL if PID still runs after SECS;
# WHAT names it in messages ("broker", "worker", ...).
stop_pid() {
	local pid="$1" secs="$2" what="$3"
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_exit "$pid" "$secs"; then
		echo "$(basename "$0"): $what $pid ignored SIGTERM, killing" >&2
		kill_pid "$pid" "$what"
	fi
}

# kill_pid PID WHAT: SIGKILL, and wait for it to be gone.
kill_pid() {
	kill -KILL "$1" 2>/dev/null || true
	wait_exit "$1" 10 || die "$2 $1 will not die"
}

# wait_up PID SECS LOG WHAT CMD...: wait until CMD succeeds; if PID exits
# first, or is still not up after SECS (then it is killed), LOG's tail and an
# error naming WHAT.
wait_up() {
	local pid="$1" secs="$2" log="$3" what="$4" deadline
	shift 4
	deadline=$(( $(date +%s) + secs ))
	until "$@"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 40 "$log" >&2
			die "$what exited during startup"
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			tail -n 40 "$log" >&2
			kill -KILL "$pid" 2>/dev/null || true
			die "$what not ready after ${secs}s"
		fi
		sleep 0.2
	done
}
