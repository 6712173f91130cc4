#!/bin/bash
# bench/idle_broker.sh: what idle consumers cost the broker, without
# eo_ingest: a throwaway broker (Kafka's own JVM settings, JMX on the
# loopback) with N topics of one partition and one record each, measured
# alone, then with idle kcat consumers for each fetch.wait.max.ms in WAITS,
# then alone again.  Per window: the broker's CPU (utime+stime, % of one
# core), the requests it served per second by kind (kafka.sh
# request-counts), its busiest threads, and the kcat processes' own CPU.
#
#   bench/idle_broker.sh                       as root; the tree must have
#                                              test/producer/eo_producer built
#   N=100 SECS=60 SETTLE=30 WAITS="1000 2000 5000" MODE=each|group
#
# MODE=each: N kcat consumers of one topic each (as N pipelines have);
# MODE=group: one kcat consumer subscribed to all N topics (what one consumer
# serving N pipelines would ask of the broker; it adds group heartbeats).
set -euo pipefail
T="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="$(mktemp -d "${EO_TEST_DIR:-/var/tmp}/eo_idle_broker.XXXXXX")"
N=${N:-100}
SECS=${SECS:-60}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$(( 20000 + (RANDOM % 12000) ))
		if ! port_busy "$p" && ! port_busy $((p + 1)); then echo "$p"; return; fi
	done
	echo "no free port" >&2; exit 1
}
PORT=${PORT:-$(free_port)}
JMX=${JMX:-$(free_port)}
chown "${EO_TEST_USER:-eo_test}": "$D"
as() { runuser -u "${EO_TEST_USER:-eo_test}" -- env HOME=/tmp "$@"; }
TCK=$(getconf CLK_TCK)
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/$1/stat; }
threads() { for f in /proc/$1/task/*/stat; do awk '{ c = $0; sub(/^[^(]*\(/, "", c); sub(/\) [^)]*$/, "", c); gsub(/ /, "_", c); sub(/^.*\) /, ""); print c, $12 + $13 }' $f; done | awk '{ t[$1] += $2 } END { for (c in t) print c, t[c] }'; }
measure() {
	local label=$1 t0 t1 k0 k1
	as $T/test/kafka/kafka.sh request-counts $JMX > $D/r0
	threads $KP > $D/th0; k0=$(ticks $KP); t0=$(date +%s.%N)
	sleep $SECS
	k1=$(ticks $KP); t1=$(date +%s.%N); threads $KP > $D/th1
	as $T/test/kafka/kafka.sh request-counts $JMX > $D/r1
	awk -v a=$t0 -v b=$t1 -v k0=$k0 -v k1=$k1 -v tck=$TCK -v l="$label" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN { printf "%s: broker %.2f %% of one core over %.1f s (load %s)\n", l, (k1-k0)/tck/(b-a)*100, b-a, load }'
	awk -v s=$SECS 'NR==FNR { a[$1]=$2; next } { d=($2-a[$1])/s; if (d > 0.005) printf "  req %s %.2f/s\n", $1, d }' $D/r0 $D/r1
	awk -v s=$SECS -v tck=$TCK 'NR==FNR { a[$1]=$2; next } { d=($2-a[$1])/tck/s*100; if (d >= 0.05) printf "  thr %-16s %.2f %%\n", $1, d }' $D/th0 $D/th1 | sort -k3,3nr | head -12
}
cleanup() {
	for p in $(cat $D/kcat.pids 2>/dev/null); do kill $p 2>/dev/null || true; done
	as $T/test/kafka/kafka.sh stop $D/kafka >/dev/null 2>&1 || true
	rm -rf "$D"
}
trap cleanup EXIT
as env EO_KAFKA_PRODUCTION_JVM=1 EO_KAFKA_JMX_PORT=$JMX $T/test/kafka/kafka.sh start $D/kafka $PORT
KP=$(cat $D/kafka/kafka.pid)
for i in $(seq 1 $N); do
	$T/test/producer/eo_producer -b 127.0.0.1:$PORT -t x$i --create-topic 1 >/dev/null
	$T/test/producer/eo_producer -b 127.0.0.1:$PORT -t x$i -n 1 -s $i --manifest /dev/null >/dev/null 2>&1
done
sleep ${SETTLE:-30}
measure "alone, $N topics"
clients() { local t=0 p; for p in $(cat $D/kcat.pids); do t=$((t + $(ticks $p))); done; echo $t; }
for w in ${WAITS:-1000 2000 5000}; do
	: > $D/kcat.pids
	if [ "${MODE:-each}" = each ]; then
		for i in $(seq 1 $N); do
			kcat -C -q -b 127.0.0.1:$PORT -t x$i -p 0 -o end -u -X fetch.wait.max.ms=$w -X isolation.level=read_committed >/dev/null 2>&1 &
			echo $! >> $D/kcat.pids
		done
		what="$N kcat consumers, one topic each"
	else
		kcat -C -q -b 127.0.0.1:$PORT -G g$w -o end -u -X fetch.wait.max.ms=$w -X isolation.level=read_committed $(seq -f 'x%g' 1 $N) >/dev/null 2>&1 &
		echo $! >> $D/kcat.pids
		what="1 kcat consumer (group, subscribed) of all $N topics"
	fi
	sleep 20
	c0=$(clients); s0=$(date +%s.%N)
	measure "$what, fetch.wait.max.ms $w"
	c1=$(clients); s1=$(date +%s.%N)
	awk -v a=$c0 -v b=$c1 -v tck=$TCK -v s0=$s0 -v s1=$s1 'BEGIN { printf "  the kcat processes: %.2f %% of one core\n", (b-a)/tck/(s1-s0)*100 }'
	for p in $(cat $D/kcat.pids); do kill $p 2>/dev/null || true; done
	sleep 5
done
sleep 10
measure "alone again, $N topics"
