#!/bin/bash
# Apicurio Registry 3 (a real schema registry with a Confluent-compatible
# API) for the eo_ingest tests and benchmark.  Its runnable distribution (the
# Quarkus application: a runner jar and lib/) is the "all" tar.gz that
# Apicurio publishes to Maven Central beside io.apicurio:apicurio-registry-app;
# nothing is built.  It is unpacked into a shared, world-readable cache; each
# registry lives in a directory the caller owns, with its storage (an H2
# database file), so a registry stopped and started again on the same
# directory still knows the ids it gave out.
#
#   apicurio.sh fetch
#   apicurio.sh start DIR PORT     (listens on 127.0.0.1:PORT only)
#   apicurio.sh stop DIR | kill DIR
#   apicurio.sh url PORT           (the Confluent-compatible API's base URL)
#
# The Confluent-compatible API is under /apis/ccompat/v7; schema ids there
# are Apicurio's content ids (apicurio.ccompat.legacy-id-mode.enabled=false,
# its default), which GET /schemas/ids/{id} answers.  No rules (compatibility,
# validity) are configured, like Confluent's registry with compatibility NONE.
# Authentication stays off (Apicurio's needs an OpenID Connect server), so
# tests that need basic auth, TLS, a hanging or a wrong registry use
# test/registry/registry.py.  Logs: DIR/registry.log.
#
# Environment: EO_APICURIO_CACHE (default /var/cache/eo_ingest/apicurio),
# EO_APICURIO_HEAP (default 256m), EO_APICURIO_START_TIMEOUT (120 s), JAVA.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${EO_APICURIO_CACHE:-/var/cache/eo_ingest/apicurio}"
VERSION=3.0.9
APP="$CACHE/app-$VERSION"
RUNNER="$APP/apicurio-registry-app-$VERSION-runner.jar"
JAVA="${JAVA:-java}"

die() { echo "apicurio.sh: $*" >&2; exit 1; }
. "$HERE/../procs.sh"

cmd_fetch() {
	if [ -r "$RUNNER" ] && [ -r "$APP/.complete" ]; then
		echo "apicurio registry $VERSION already in $APP"
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found (run scripts/install-deps.sh)"
	mkdir -p "$CACHE"
	# unpack into a scratch dir and rename, so a half-done fetch is never
	# mistaken for a complete one
	tmp="$CACHE/fetch.tmp.$$"
	trap 'rm -rf "$tmp"' EXIT
	rm -rf "$tmp"
	mkdir -p "$tmp/app"
	# Plugin 2.8's get with transitive=false fetches the file alone; copy and
	# later versions of get read the artifact's descriptor, whose parent POM
	# (io.apicurio:apicurio-registry:$VERSION) Maven Central does not serve.
	# A repository of its own, so the file's path is known.  (3.0.x: the last
	# line built for Java 17; 3.3's classes need Java 21, which Debian 12 lacks.)
	mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$tmp/m2" \
		org.apache.maven.plugins:maven-dependency-plugin:2.8:get -Dtransitive=false \
		-Dartifact="io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all"
	tar -C "$tmp/app" -xzf "$tmp/m2/io/apicurio/apicurio-registry-app/$VERSION/apicurio-registry-app-$VERSION-all.tar.gz"
	[ -r "$tmp/app/apicurio-registry-app-$VERSION-runner.jar" ] ||
		die "no runner jar in apicurio-registry-app-$VERSION-all.tar.gz"
	touch "$tmp/app/.complete"
	rm -rf "$APP"
	mv "$tmp/app" "$APP"
	rm -rf "$tmp"
	chmod -R a+rX "$CACHE"
	echo "apicurio registry $VERSION fetched into $APP"
}

pid_of() { pid_in "$1/registry.pid" apicurio-registry-app; }

cmd_url() {
	echo "http://127.0.0.1:$1/apis/ccompat/v7"
}

answers() {
	curl -fsS -o /dev/null --max-time 2 "$(cmd_url "$1")/subjects" 2>/dev/null
}

cmd_start() {
	[ $# -ge 2 ] || die "usage: start DIR PORT"
	local dir="$1" port="$2" t0 pid
	[ -r "$RUNNER" ] || die "no Apicurio Registry in $APP; run: $0 fetch"
	t0="$(now)"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if pid="$(pid_of "$dir")"; then
		die "registry in $dir already running (pid $pid)"
	fi
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port $port on 127.0.0.1 is already in use"
	# Quarkus reads -D system properties over the packaged configuration.
	# OpenID Connect is off by default; its server URL is pointed at the
	# loopback all the same, so nothing is ever looked up elsewhere.
	setsid "$JAVA" -Xms64m -Xmx"${EO_APICURIO_HEAP:-256m}" \
		-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
		-Djava.awt.headless=true -Dfile.encoding=UTF-8 \
		-Djava.io.tmpdir="$dir" \
		-Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
		-Dquarkus.oidc.tenant-enabled=false \
		-Dquarkus.oidc.auth-server-url=http://127.0.0.1:1/none \
		-Dquarkus.http.access-log.enabled=false \
		-Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
		-Dapicurio.datasource.url="jdbc:h2:file:$dir/registry;DB_CLOSE_ON_EXIT=FALSE" \
		-Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
		-Dapicurio.import.work-dir="$dir" -Dapicurio.storage.snapshot.location="$dir" \
		-jar "$RUNNER" >>"$dir/registry.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/registry.pid"
	wait_up "$pid" "${EO_APICURIO_START_TIMEOUT:-120}" "$dir/registry.log" \
		"registry on port $port" answers "$port"
	echo "apicurio registry ready at $(cmd_url "$port") (pid $pid, $(elapsed "$t0")s)"
}

# cmd_end stop|kill DIR: SIGTERM (SIGKILL after 30 s) or SIGKILL
cmd_end() {
	local how="$1" dir="${2:-}" pid
	[ -n "$dir" ] || die "usage: $how DIR"
	if pid="$(pid_of "$dir")"; then
		if [ "$how" = stop ]; then stop_pid "$pid" 30 registry; else kill_pid "$pid" registry; fi
	fi
	rm -f "$dir/registry.pid"
	echo "registry in $dir ended ($how)"
}

[ $# -ge 1 ] || die "usage: $0 fetch|start|stop|kill|url ..."
cmd="$1"
shift
case "$cmd" in
	fetch) cmd_fetch ;;
	start) cmd_start "$@" ;;
	stop | kill) cmd_end "$cmd" "$@" ;;
	url) cmd_url "$@" ;;
	*) die "unknown command $cmd" ;;
esac
