#!/bin/bash
# Kafka Connect standalone (one worker JVM) with Debezium connector plugins,
# for the benchmark's peers (bench/peers.sh) and the change-stream tests.  The
# jars come from Maven Central via pom.xml and live in a shared,
# world-readable cache; each worker lives in a directory the caller owns.
#
#   connect.sh fetch
#   connect.sh start DIR BROKERS REST_PORT [CONNECTOR.properties ...]
#   connect.sh put DIR NAME CONNECTOR.properties   (create or reconfigure)
#   connect.sh wait-running DIR NAME [SECONDS]     (connector and every task)
#   connect.sh status DIR NAME                     (the REST status as JSON)
#   connect.sh offsets DIR NAME                    (a sink's committed offsets:
#                                                   "topic partition offset" lines)
#   connect.sh delete DIR NAME
#   connect.sh pid DIR
#   connect.sh stop DIR | kill DIR
#
# plugin.path is <cache>/plugins: one directory per connector, unpacked from
# its "plugin" tar.gz (PLUGINS below), so each gets its own class loader.
# Connector files are Java properties (name=..., connector.class=...); `put`
# sends them to the worker's REST API, `start` hands them to ConnectStandalone.
# The worker reads committed records only (consumer isolation.level
# read_committed, like librdkafka's default) and keeps its source offsets in
# DIR/offsets.  WORKER_EXTRA_PROPERTIES (a file), if set, is appended to the
# worker configuration on start.  Logs: DIR/connect.log.
#
# Environment: EO_CONNECT_CACHE (default /var/cache/eo_ingest/connect),
# EO_CONNECT_HEAP (default 1g), EO_CONNECT_JVM_OPTS (extra JVM flags), JAVA.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${EO_CONNECT_CACHE:-/var/cache/eo_ingest/connect}"
LIBS="$CACHE/libs"
PLUGDIR="$CACHE/plugins"
JAVA="${JAVA:-java}"

# Connector plugins: Maven coordinates of the "plugin" tar.gz classifier.
# 3.2.x: the last Debezium line built for Kafka 3.9 on Java 17.
PLUGINS=(
	io.debezium:debezium-connector-jdbc:3.2.0.Final
	io.debezium:debezium-connector-postgres:3.2.0.Final
)

die() { echo "connect.sh: $*" >&2; exit 1; }
. "$HERE/../procs.sh"

# The stamp records which pom.xml and plugin list filled the cache, so
# changing a version refetches.
stamp() {
	{ cat "$HERE/pom.xml"; printf '%s\n' "${PLUGINS[@]}"; } | sha256sum | cut -d' ' -f1
}

jars_present() {
	[ -r "$CACHE/.stamp" ] && [ "$(cat "$CACHE/.stamp")" = "$(stamp)" ] &&
		compgen -G "$LIBS/connect-runtime-*.jar" >/dev/null
}

cmd_fetch() {
	if jars_present; then
		echo "connect jars already in $CACHE"
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found (run scripts/install-deps.sh)"
	mkdir -p "$CACHE"
	# Everything goes into a scratch dir first and is renamed at the end, so
	# a half-done fetch is never mistaken for a complete one.
	local tmp="$CACHE/fetch.tmp.$$" coord a
	rm -rf "$tmp"
	mkdir -p "$tmp/plugins" "$tmp/tgz"
	mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp/libs"
	for coord in "${PLUGINS[@]}"; do
		mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy \
			-Dartifact="$coord:tar.gz:plugin" -DoutputDirectory="$tmp/tgz"
		a="${coord#*:}"
		a="${a%%:*}"
		mkdir -p "$tmp/plugins/$a"
		# the tarball holds one top-level directory named after the artifact
		tar -xzf "$tmp/tgz/$a-${coord##*:}-plugin.tar.gz" -C "$tmp/plugins/$a" --strip-components=1
	done
	rm -rf "$tmp/tgz" "$LIBS" "$PLUGDIR"
	mv "$tmp/libs" "$LIBS"
	mv "$tmp/plugins" "$PLUGDIR"
	rmdir "$tmp"
	stamp >"$CACHE/.stamp"
	chmod -R a+rX "$CACHE"
	echo "connect jars fetched into $LIBS, plugins into $PLUGDIR ($(ls "$PLUGDIR" | tr '\n' ' '))"
}

pid_of() { pid_in "$1/connect.pid" ConnectStandalone; }

rest_url() {
	[ -r "$1/rest.url" ] || die "no worker in $1"
	cat "$1/rest.url"
}

write_config() {
	local dir="$1" brokers="$2" port="$3"
	cat >"$dir/worker.properties" <<EOF
# written by test/connect/connect.sh; regenerated on every start
bootstrap.servers=$brokers
listeners=http://127.0.0.1:$port
plugin.path=$PLUGDIR
# The default (hybrid_warn) also scans every plugin jar by reflection: more
# than a minute of start-up on a busy 2-core machine.  The connectors have
# ServiceLoader manifests (only a few Debezium transforms lack them).
plugin.discovery=service_load
offset.storage.file.filename=$dir/offsets
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
consumer.isolation.level=read_committed
EOF
	if [ -n "${WORKER_EXTRA_PROPERTIES:-}" ]; then
		{ echo "# from $WORKER_EXTRA_PROPERTIES"; cat "$WORKER_EXTRA_PROPERTIES"; } >>"$dir/worker.properties"
	fi
	cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.reflections=ERROR
log4j.logger.org.apache.kafka.connect.runtime.isolation=WARN
log4j.logger.org.hibernate=WARN
log4j.logger.com.mchange=WARN
EOF
}

rest_answers() {
	curl -sf -o /dev/null "$1/"
}

cmd_start() {
	[ $# -ge 3 ] || die "usage: start DIR BROKERS REST_PORT [CONNECTOR.properties ...]"
	local dir="$1" brokers="$2" port="$3" t0 pid
	shift 3
	jars_present || die "no Connect jars in $CACHE; run: $0 fetch"
	t0="$(now)"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if pid="$(pid_of "$dir")"; then
		die "worker in $dir already running (pid $pid)"
	fi
	write_config "$dir" "$brokers" "$port"
	echo "http://127.0.0.1:$port" >"$dir/rest.url"
	# Kafka's own start scripts' JVM flags (kafka-run-class.sh): the worker
	# is measured, so it gets the server compiler and G1 like in production.
	setsid "$JAVA" -Xms256m -Xmx"${EO_CONNECT_HEAP:-1g}" -server -XX:+UseG1GC \
		-XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
		-XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
		${EO_CONNECT_JVM_OPTS:-} \
		-Dlog4j.configuration="file:$dir/log4j.properties" \
		-cp "$LIBS/*" org.apache.kafka.connect.cli.ConnectStandalone \
		"$dir/worker.properties" "$@" >>"$dir/connect.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/connect.pid"
	wait_up "$pid" "${EO_CONNECT_START_TIMEOUT:-120}" "$dir/connect.log" \
		"worker REST on port $port" rest_answers "http://127.0.0.1:$port"
	echo "connect worker ready on http://127.0.0.1:$port (pid $pid, $(elapsed "$t0")s)"
}

# Java properties (key=value lines, # comments) -> a JSON object of strings.
props_json() {
	jq -R -s '[split("\n")[] | select(test("^\\s*(#|$)") | not)
	           | capture("^\\s*(?<key>[^=]+?)\\s*=\\s*(?<value>.*)$")] | from_entries' "$1"
}

cmd_put() {
	[ $# -eq 3 ] || die "usage: put DIR NAME CONNECTOR.properties"
	local url out
	url="$(rest_url "$1")"
	[ -r "$3" ] || die "cannot read $3"
	out="$(props_json "$3" | curl -sS -X PUT -H 'Content-Type: application/json' \
		--data-binary @- -w '\n%{http_code}' "$url/connectors/$2/config")"
	case "${out##*$'\n'}" in
		200|201) echo "connector $2 configured" ;;
		*) die "PUT connector $2: ${out%$'\n'*}" ;;
	esac
}

cmd_status() {
	[ $# -eq 2 ] || die "usage: status DIR NAME"
	curl -sf "$(rest_url "$1")/connectors/$2/status"
}

# KIP-875's offsets endpoint: for a sink, its consumer group's committed
# offsets (the next record to read), which Connect commits only after the
# task flushed what came before.
cmd_offsets() {
	[ $# -eq 2 ] || die "usage: offsets DIR NAME"
	curl -sf "$(rest_url "$1")/connectors/$2/offsets" |
		jq -r '.offsets[] | "\(.partition.kafka_topic) \(.partition.kafka_partition) \(.offset.kafka_offset)"'
}

cmd_wait_running() {
	[ $# -ge 2 ] || die "usage: wait-running DIR NAME [SECONDS]"
	local dir="$1" name="$2" secs="${3:-120}" st deadline
	deadline=$(( $(date +%s) + secs ))
	while :; do
		st="$(cmd_status "$dir" "$name" 2>/dev/null || true)"
		if [ -n "$st" ]; then
			if echo "$st" | jq -e '[.connector.state] + [.tasks[].state] | any(. == "FAILED")' >/dev/null; then
				echo "$st" | jq -r '.connector.trace // empty, .tasks[].trace // empty' | head -n 30 >&2
				die "connector $name failed"
			fi
			if echo "$st" | jq -e '.connector.state == "RUNNING" and (.tasks | length > 0)
			                       and all(.tasks[]; .state == "RUNNING")' >/dev/null; then
				echo "connector $name running"
				return 0
			fi
		fi
		[ "$(date +%s)" -lt "$deadline" ] || die "connector $name not running after ${secs}s: ${st:-no status}"
		sleep 0.2
	done
}

cmd_delete() {
	[ $# -eq 2 ] || die "usage: delete DIR NAME"
	curl -sf -X DELETE "$(rest_url "$1")/connectors/$2" >/dev/null ||
		die "DELETE connector $2 failed"
	echo "connector $2 deleted"
}

cmd_stop() {
	[ $# -eq 1 ] || die "usage: stop DIR"
	local dir="$1" pid
	if ! pid="$(pid_of "$dir")"; then
		rm -f "$dir/connect.pid"
		echo "connect worker in $dir not running"
		return 0
	fi
	stop_pid "$pid" "${EO_CONNECT_STOP_TIMEOUT:-60}" worker
	rm -f "$dir/connect.pid"
	echo "connect worker in $dir stopped"
}

cmd_kill() {
	[ $# -eq 1 ] || die "usage: kill DIR"
	local dir="$1" pid
	if pid="$(pid_of "$dir")"; then
		kill_pid "$pid" worker
	fi
	rm -f "$dir/connect.pid"
	echo "connect worker in $dir killed"
}

sub="${1:-}"
[ -n "$sub" ] || die "usage: connect.sh fetch|start|put|wait-running|status|offsets|delete|pid|stop|kill ..."
shift
case "$sub" in
	fetch) cmd_fetch ;;
	start) cmd_start "$@" ;;
	put) cmd_put "$@" ;;
	wait-running) cmd_wait_running "$@" ;;
	status) cmd_status "$@" ;;
	offsets) cmd_offsets "$@" ;;
	delete) cmd_delete "$@" ;;
	pid)
		[ $# -eq 1 ] || die "usage: pid DIR"
		pid_of "$1" || die "no worker running in $1"
		;;
	stop) cmd_stop "$@" ;;
	kill) cmd_kill "$@" ;;
	*) die "unknown subcommand $sub" ;;
esac
