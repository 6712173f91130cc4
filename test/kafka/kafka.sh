#!/bin/bash
# Single-node Apache Kafka (KRaft, broker+controller in one JVM) for the
# eo_ingest tests and demo.  The jars come from Maven Central via pom.xml and
# live in a shared, world-readable cache; each broker lives in a directory the
# caller owns.
#
#   kafka.sh fetch
#   kafka.sh start DIR PORT [EXTRA_PROPERTIES_FILE]
#   kafka.sh stop DIR | kill DIR | status DIR
#   kafka.sh restart DIR PORT [EXTRA_PROPERTIES_FILE]
#   kafka.sh create-topic PORT NAME PARTITIONS [CONFIG=VALUE ...]
#   kafka.sh add-partitions PORT NAME N
#   kafka.sh delete-topic PORT NAME
#   kafka.sh add-scram-user PORT NAME PASSWORD [SCRAM-SHA-256|SCRAM-SHA-512]
#   kafka.sh make-certs DIR STOREPASS   (test CA, broker keystore, a second CA)
#   kafka.sh acl PORT ARGS...           (kafka-acls.sh, e.g. --add --allow-principal User:bob ...)
#   kafka.sh wait-ready PORT [SECONDS]
#   kafka.sh wait-topic PORT NAME PARTITIONS   (until metadata shows them)
#   kafka.sh request-counts JMX_PORT    (requests served so far, by kind:
#                                        "Fetch 1234" lines; needs EO_KAFKA_JMX_PORT)
#
# The controller listens on PORT+1.  PLAINTEXT on PORT always stays (the
# harness and inter-broker traffic use it); TLS/SASL tests add listeners with
# EO_KAFKA_EXTRA_LISTENERS="SASL_PLAINTEXT://127.0.0.1:N,SSL://127.0.0.1:M" and
# put their settings (JAAS, keystores, sasl.enabled.mechanisms, ...) in
# EXTRA_PROPERTIES_FILE, which is appended to server.properties on every start
# (later lines override the defaults written here).  DIR/format-args, if
# present, holds extra arguments for the storage format on first start, one a
# line (e.g. --add-scram and SCRAM-SHA-256=[name=alice,password=secret]).
#
# Environment: EO_KAFKA_CACHE (jar cache, default /var/cache/eo_ingest/kafka),
# EO_KAFKA_HEAP (default 512m; 1g with EO_KAFKA_PRODUCTION_JVM),
# EO_KAFKA_JVM_OPTS (extra JVM flags), EO_KAFKA_PRODUCTION_JVM=1 (start the
# broker with the JVM flags of Kafka's own kafka-server-start.sh instead of
# the fast-start ones; the benchmarks set it), EO_KAFKA_JMX_PORT (open JMX,
# unauthenticated, on 127.0.0.1 at this port, for request-counts; bench/idle
# sets it), KCAT (default kcat).

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${EO_KAFKA_CACHE:-/var/cache/eo_ingest/kafka}"
LIBS="$CACHE/libs"
KCAT="${KCAT:-kcat}"
JAVA="${JAVA:-java}"

# Startup dominates test time on small machines: C1 only and the serial
# collector cut broker start by a third and cost nothing a test can notice.
JVM_FAST=(-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
		  -Djava.awt.headless=true -Dfile.encoding=UTF-8)
# What kafka-server-start.sh and kafka-run-class.sh give a broker: a fixed
# 1 GB heap, G1 with 20 ms pause goals, the full JIT.  The serial collector
# with a 128 MB start heap paused the broker 20-90 ms about once a second at
# 10,000 records/s, and C1 alone costs CPU on a long run: fine for tests,
# not for what a benchmark measures.
JVM_PRODUCTION=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
				-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
				-XX:MaxInlineLevel=15 -Djava.awt.headless=true -Dfile.encoding=UTF-8)

die() { echo "kafka.sh: $*" >&2; exit 1; }
. "$HERE/../procs.sh"

pom_sum() {
	sha256sum "$HERE/pom.xml" | cut -d' ' -f1
}

# The stamp records which pom.xml filled the cache, so changing the Kafka
# version in the POM refetches.
jars_present() {
	[ -r "$LIBS/.pom.sha256" ] && [ "$(cat "$LIBS/.pom.sha256")" = "$(pom_sum)" ] &&
		compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null
}

cmd_fetch() {
	mkdir -p "$CACHE" 2>/dev/null || true
	if [ -w "$CACHE" ] && [ ! -s "$CACHE/tools-log4j2-log4j1.properties" ]; then
		write_tools_log4j "$CACHE/tools-log4j2.properties"
		chmod a+r "$CACHE"/tools-log4j2*.properties
	fi
	if jars_present; then
		echo "kafka jars already in $LIBS"
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found (run scripts/install-deps.sh)"
	mkdir -p "$CACHE"
	# Download into a scratch dir and rename, so a half-done fetch is never
	# mistaken for a complete one.
	local tmp="$CACHE/libs.tmp.$$"
	rm -rf "$tmp"
	mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp"
	pom_sum >"$tmp/.pom.sha256"
	rm -rf "$LIBS"
	mv "$tmp" "$LIBS"
	chmod -R a+rX "$CACHE"
	echo "kafka jars fetched into $LIBS"
}

need_jars() {
	jars_present || die "no Kafka jars in $LIBS; run: $0 fetch"
}

# log4j2 configuration for tool invocations: warnings only, to stderr.
write_tools_log4j() {
	cat >"$1" <<'EOF'
status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
EOF
	cat >"${1%.properties}-log4j1.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

tools_log4j() {
	local f="$CACHE/tools-log4j2.properties"
	if [ ! -r "${f%.properties}-log4j1.properties" ]; then
		f="${TMPDIR:-/tmp}/eo_kafka_tools_log4j2.$(id -u).properties"
		[ -s "${f%.properties}-log4j1.properties" ] || write_tools_log4j "$f"
	fi
	echo "$f"
}

run_tool() {
	need_jars
	local l2
	l2="$(tools_log4j)"
	# Kafka 3.x logs through log4j 1 (reload4j), 4.x through log4j2.
	"$JAVA" -Xmx256m "${JVM_FAST[@]}" \
		-Dlog4j2.configurationFile="$l2" \
		-Dlog4j.configuration="file:${l2%.properties}-log4j1.properties" \
		-cp "$LIBS/*" "$@"
}

pid_of() { pid_in "$1/kafka.pid" 'kafka\.Kafka'; }

random_cluster_id() {
	# Kafka's Uuid: 16 random bytes, URL-safe base64, no padding; Kafka
	# rejects ids that start with '-'.
	local id
	while :; do
		id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
		case "$id" in -*) continue ;; esac
		echo "$id"
		return
	done
}

write_config() {
	local dir="$1" port="$2" extra="${3:-}"
	local cport=$((port + 1))
	cat >"$dir/server.properties" <<EOF
# written by test/kafka/kafka.sh; regenerated on every start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport${EO_KAFKA_EXTRA_LISTENERS:+,$EO_KAFKA_EXTRA_LISTENERS}
advertised.listeners=PLAINTEXT://127.0.0.1:$port${EO_KAFKA_EXTRA_LISTENERS:+,$EO_KAFKA_EXTRA_LISTENERS}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
# a killed broker re-registers only once its old session expires (default 9 s)
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
auto.create.topics.enable=false
delete.topic.enable=true
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=-1
log.retention.bytes=-1
EOF
	if [ -n "$extra" ]; then
		[ -r "$extra" ] || die "cannot read $extra"
		{ echo "# from $extra"; cat "$extra"; } >>"$dir/server.properties"
	fi
	cat >"$dir/log4j2.properties" <<EOF
status = error
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.clients.name = org.apache.kafka.clients
logger.clients.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.log.name = kafka.log
logger.log.level = warn
logger.storage.name = org.apache.kafka.storage
logger.storage.level = warn
EOF
	cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.log=WARN
log4j.logger.org.apache.kafka.storage=WARN
log4j.logger.org.apache.zookeeper=WARN
EOF
}

port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Succeeds once the broker returns metadata listing itself.
broker_answers() {
	"$KCAT" -b "127.0.0.1:$1" -L -t __eo_probe -m 2 2>/dev/null | grep -q ' 1 brokers:'
}

cmd_wait_ready() {
	local port="$1" secs="${2:-60}" pid="${3:-}"
	local deadline=$(( $(date +%s) + secs ))
	until broker_answers "$port"; do
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			return 2
		fi
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.2
	done
}

cmd_start() {
	[ $# -ge 2 ] || die "usage: start DIR PORT [EXTRA_PROPERTIES_FILE]"
	local dir="$1" port="$2" extra="${3:-}" t0 pid rc=0
	need_jars
	t0="$(now)"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if pid="$(pid_of "$dir")"; then
		die "broker in $dir already running (pid $pid)"
	fi
	local p
	for p in "$port" $((port + 1)); do
		port_busy "$p" && die "port $p on 127.0.0.1 is already in use"
	done
	write_config "$dir" "$port" "$extra"
	if [ ! -f "$dir/data/meta.properties" ]; then
		mkdir -p "$dir/data"
		local cid
		cid="$(random_cluster_id)"
		echo "$cid" >"$dir/cluster.id"
		local fargs=()
		if [ -r "$dir/format-args" ]; then
			mapfile -t fargs <"$dir/format-args"
		fi
		run_tool kafka.tools.StorageTool format --ignore-formatted \
			-t "$cid" -c "$dir/server.properties" ${fargs[@]+"${fargs[@]}"} \
			>"$dir/format.log" 2>&1 ||
			{ cat "$dir/format.log" >&2; die "storage format failed in $dir"; }
	fi
	# setsid: the broker must not share the caller's terminal signals; it is
	# stopped explicitly.
	local jvm=(-Xms128m -Xmx"${EO_KAFKA_HEAP:-512m}" "${JVM_FAST[@]}")
	if [ "${EO_KAFKA_PRODUCTION_JVM:-0}" = 1 ]; then
		jvm=(-Xms"${EO_KAFKA_HEAP:-1g}" -Xmx"${EO_KAFKA_HEAP:-1g}" "${JVM_PRODUCTION[@]}")
	fi
	if [ -n "${EO_KAFKA_JMX_PORT:-}" ]; then
		# what kafka-run-class.sh opens with JMX_PORT, bound to the loopback
		jvm+=(-Dcom.sun.management.jmxremote -Dcom.sun.management.jmxremote.host=127.0.0.1
			  -Dcom.sun.management.jmxremote.port="$EO_KAFKA_JMX_PORT"
			  -Dcom.sun.management.jmxremote.rmi.port="$EO_KAFKA_JMX_PORT"
			  -Dcom.sun.management.jmxremote.authenticate=false
			  -Dcom.sun.management.jmxremote.ssl=false -Djava.rmi.server.hostname=127.0.0.1)
	fi
	setsid "$JAVA" "${jvm[@]}" \
		${EO_KAFKA_JVM_OPTS:-} \
		-Dlog4j2.configurationFile="$dir/log4j2.properties" \
		-Dlog4j.configuration="file:$dir/log4j.properties" \
		-Dkafka.logs.dir="$dir/logs" \
		-cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
		>>"$dir/kafka.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/kafka.pid"
	cmd_wait_ready "$port" "${EO_KAFKA_START_TIMEOUT:-60}" "$pid" || rc=$?
	if [ "$rc" -ne 0 ]; then
		tail -n 40 "$dir/kafka.log" >&2
		[ "$rc" -eq 2 ] && die "broker in $dir exited during startup"
		kill -KILL "$pid" 2>/dev/null || true
		die "broker on port $port not ready after ${EO_KAFKA_START_TIMEOUT:-60}s"
	fi
	echo "kafka ready on 127.0.0.1:$port (pid $pid, $(elapsed "$t0")s)"
}

cmd_stop() {
	[ $# -ge 1 ] || die "usage: stop DIR"
	local dir="$1" pid
	if ! pid="$(pid_of "$dir")"; then
		rm -f "$dir/kafka.pid"
		echo "kafka in $dir not running"
		return 0
	fi
	stop_pid "$pid" "${EO_KAFKA_STOP_TIMEOUT:-60}" broker
	rm -f "$dir/kafka.pid"
	echo "kafka in $dir stopped"
}

cmd_kill() {
	[ $# -ge 1 ] || die "usage: kill DIR"
	local dir="$1" pid
	if ! pid="$(pid_of "$dir")"; then
		rm -f "$dir/kafka.pid"
		echo "kafka in $dir not running"
		return 0
	fi
	kill_pid "$pid" broker
	rm -f "$dir/kafka.pid"
	echo "kafka in $dir killed"
}

cmd_status() {
	local pid
	if pid="$(pid_of "$1")"; then
		echo "running (pid $pid)"
	else
		echo "not running"
		return 3
	fi
}

# Prints the partition count of a topic as the broker reports it, or nothing.
partition_count() {
	"$KCAT" -b "127.0.0.1:$1" -L -t "$2" -m 5 2>/dev/null |
		awk -v t="\"$2\"" '$1 == "topic" && $2 == t && $0 !~ /Broker:/ { print $4; exit }'
}

wait_partitions() {
	local port="$1" topic="$2" want="$3" i
	for ((i = 0; i < 150; i++)); do
		[ "$(partition_count "$port" "$topic")" = "$want" ] && return 0
		sleep 0.2
	done
	die "topic $topic does not show $want partitions"
}

cmd_create_topic() {
	[ $# -ge 3 ] || die "usage: create-topic PORT NAME PARTITIONS [CONFIG=VALUE ...]"
	local port="$1" name="$2" parts="$3" c
	shift 3
	local cfg=()
	for c in "$@"; do cfg+=(--config "$c"); done
	run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
		--create --topic "$name" --partitions "$parts" --replication-factor 1 \
		${cfg[@]+"${cfg[@]}"} >/dev/null
	wait_partitions "$port" "$name" "$parts"
	echo "created topic $name with $parts partitions"
}

cmd_add_partitions() {
	[ $# -eq 3 ] || die "usage: add-partitions PORT NAME N"
	local port="$1" name="$2" n="$3"
	run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
		--alter --topic "$name" --partitions "$n" >/dev/null
	wait_partitions "$port" "$name" "$n"
	echo "topic $name now has $n partitions"
}

cmd_delete_topic() {
	[ $# -eq 2 ] || die "usage: delete-topic PORT NAME"
	local port="$1" name="$2" i
	run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
		--delete --topic "$name" >/dev/null
	for ((i = 0; i < 150; i++)); do
		[ -z "$(partition_count "$port" "$name")" ] && { echo "deleted topic $name"; return 0; }
		sleep 0.2
	done
	die "topic $name still listed after delete"
}

cmd_add_scram_user() {
	[ $# -ge 3 ] || die "usage: add-scram-user PORT NAME PASSWORD [SCRAM-SHA-256|SCRAM-SHA-512]"
	local port="$1" name="$2" password="$3" mech="${4:-SCRAM-SHA-256}"
	run_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$port" \
		--alter --entity-type users --entity-name "$name" \
		--add-config "$mech=[iterations=4096,password=$password]" >/dev/null
	echo "added $mech user $name"
}

# Certificates for a TLS listener, made fresh for each test: a test CA
# (ca.pem, the file librdkafka clients get as ssl.ca.location), the broker's
# key and certificate for 127.0.0.1/localhost signed by it in a PKCS12
# keystore (broker.p12, password STOREPASS), and a second, unrelated CA
# (other-ca.pem) for clients that must not trust the broker.
cmd_make_certs() {
	[ $# -eq 2 ] || die "usage: make-certs DIR STOREPASS"
	local dir="$1" pass="$2"
	command -v openssl >/dev/null || die "openssl not found"
	mkdir -p "$dir"
	(
		cd "$dir"
		umask 077
		openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=eo_ingest test CA" \
			-keyout ca.key -out ca.pem
		openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=eo_ingest other CA" \
			-keyout other-ca.key -out other-ca.pem
		openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
			-keyout broker.key -out broker.csr
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >broker.ext
		openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-days 7 -extfile broker.ext -out broker.pem
		openssl pkcs12 -export -name broker -in broker.pem -inkey broker.key \
			-certfile ca.pem -passout "pass:$pass" -out broker.p12
		chmod a+r ca.pem other-ca.pem
	) >"$dir/make-certs.log" 2>&1 || { cat "$dir/make-certs.log" >&2; die "make-certs failed in $dir"; }
	echo "certificates in $dir"
}

# The broker's own count of the requests it served (RequestMetrics
# RequestsPerSec, summed over API versions), one "Kind count" a line.
cmd_request_counts() {
	[ $# -eq 1 ] || die "usage: request-counts JMX_PORT"
	run_tool org.apache.kafka.tools.JmxTool --one-time true --report-format properties \
		--jmx-url "service:jmx:rmi:///jndi/rmi://127.0.0.1:$1/jmxrmi" \
		--object-name 'kafka.network:type=RequestMetrics,name=RequestsPerSec,*' --attributes Count |
		awk '{ n = split($0, kv, ","); for (i = 1; i <= n; i++) if (match(kv[i], /request=[A-Za-z]+/)) {
		         r = substr(kv[i], RSTART + 8, RLENGTH - 8); v = $0; sub(/^.*=/, "", v); c[r] += v } }
		     END { for (r in c) print r, c[r] }' | sort
}

sub="${1:-}"
[ -n "$sub" ] || die "usage: kafka.sh fetch|start|stop|kill|restart|status|create-topic|add-partitions|delete-topic|wait-ready ..."
shift
case "$sub" in
	fetch) cmd_fetch ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	kill) cmd_kill "$@" ;;
	restart)
		[ $# -ge 2 ] || die "usage: restart DIR PORT [EXTRA_PROPERTIES_FILE]"
		cmd_stop "$1"
		cmd_start "$@"
		;;
	status) cmd_status "$@" ;;
	wait-ready) cmd_wait_ready "$@" ;;
	wait-topic)
		[ $# -eq 3 ] || die "usage: wait-topic PORT NAME PARTITIONS"
		wait_partitions "$@"
		;;
	create-topic) cmd_create_topic "$@" ;;
	add-partitions) cmd_add_partitions "$@" ;;
	delete-topic) cmd_delete_topic "$@" ;;
	add-scram-user) cmd_add_scram_user "$@" ;;
	make-certs) cmd_make_certs "$@" ;;
	request-counts) cmd_request_counts "$@" ;;
	acl)
		[ $# -ge 2 ] || die "usage: acl PORT ARGS..."
		port="$1"
		shift
		run_tool kafka.admin.AclCommand --bootstrap-server "127.0.0.1:$port" "$@" >/dev/null
		echo "acl $*"
		;;
	*) die "unknown subcommand $sub" ;;
esac
