#!/bin/bash
# A throwaway eo_ingest demo: a Kafka broker and a PostgreSQL 15 cluster in
# /var/tmp/eo_ingest-demo, a topic "orders" with 10,000 sample events, and a
# pipeline that ingests them into public.orders.
#
#   scripts/demo.sh          set everything up and ingest (as root: installs
#                            dependencies, builds and installs first)
#   scripts/demo.sh stop     stop both servers and delete the demo directory
#
# Environment: EO_DEMO_DIR (default /var/tmp/eo_ingest-demo), EO_DEMO_PG_PORT
# (5499), EO_DEMO_KAFKA_PORT (9092; the controller uses the next port),
# EO_DEMO_EVENTS (10000), EO_TEST_USER (eo_test).

set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
PGBIN=/usr/lib/postgresql/15/bin
DEMO="${EO_DEMO_DIR:-/var/tmp/eo_ingest-demo}"
PGPORT_DEMO="${EO_DEMO_PG_PORT:-5499}"
KPORT="${EO_DEMO_KAFKA_PORT:-9092}"
EVENTS="${EO_DEMO_EVENTS:-10000}"
DEMO_USER="${EO_TEST_USER:-eo_test}"
T_START=$(date +%s)

step() { printf '\n=== %s (%ds)\n' "$*" $(( $(date +%s) - T_START )); }
die() { echo "demo.sh: $*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
	RUN_USER="$DEMO_USER"
	as_user() {
		runuser -u "$DEMO_USER" -- env \
			HOME="$(getent passwd "$DEMO_USER" | cut -d: -f6)" USER="$DEMO_USER" \
			PATH="$PGBIN:/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 \
			${EO_KAFKA_CACHE:+EO_KAFKA_CACHE="$EO_KAFKA_CACHE"} "$@"
	}
else
	RUN_USER="$(id -un)"
	as_user() { env PATH="$PGBIN:$PATH" "$@"; }
fi

# The scripts used at run time live in the build copy when root built one.
tree() {
	if [ -d "$DEMO/build" ]; then echo "$DEMO/build"; else echo "$SRC"; fi
}

psql_demo() {
	as_user "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT_DEMO" \
		-U "$RUN_USER" -d postgres "$@"
}

stop_demo() {
	if [ -f "$DEMO/pgdata/postmaster.pid" ]; then
		as_user "$PGBIN/pg_ctl" -D "$DEMO/pgdata" -m fast -w stop || true
	fi
	if [ -d "$DEMO/kafka" ]; then
		as_user "$(tree)/test/kafka/kafka.sh" stop "$DEMO/kafka" || true
	fi
	rm -rf "$DEMO"
}

if [ "${1:-}" = stop ]; then
	stop_demo
	echo "demo stopped and $DEMO removed"
	exit 0
fi
[ $# -eq 0 ] || die "usage: demo.sh [stop]"

if [ -e "$DEMO" ]; then
	step "removing the previous demo in $DEMO"
	stop_demo
fi

if [ "$(id -u)" -eq 0 ]; then
	step "installing dependencies"
	"$SRC/scripts/install-deps.sh"
	if ! id -u "$DEMO_USER" >/dev/null 2>&1; then
		useradd --create-home --shell /bin/bash "$DEMO_USER"
	fi
	mkdir -p "$DEMO/build"
	tar -C "$SRC" -cf - \
		--exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude='tmp_check*' --exclude=./results --exclude=./log \
		--exclude=./test/producer/eo_producer . |
		tar -C "$DEMO/build" -xf -
	chown -R "$DEMO_USER": "$DEMO"
	step "building as $DEMO_USER"
	as_user make -C "$DEMO/build" -j2 PG_CONFIG="$PG_CONFIG" all producer >"$DEMO/build.log" 2>&1 ||
		{ tail -n 40 "$DEMO/build.log"; die "build failed (see $DEMO/build.log)"; }
	step "installing"
	make -C "$DEMO/build" PG_CONFIG="$PG_CONFIG" install >>"$DEMO/build.log" 2>&1 ||
		{ tail -n 40 "$DEMO/build.log"; die "make install failed"; }
else
	mkdir -p "$DEMO"
	step "building in place (not root: dependencies and install assumed)"
	make -C "$SRC" -j2 PG_CONFIG="$PG_CONFIG" >"$DEMO/build.log" 2>&1 ||
		{ tail -n 40 "$DEMO/build.log"; die "build failed (see $DEMO/build.log)"; }
fi

TREE="$(tree)"
PRODUCER="$TREE/test/producer/eo_producer"
BROKERS="127.0.0.1:$KPORT"

step "starting Kafka on $BROKERS"
as_user "$TREE/test/kafka/kafka.sh" start "$DEMO/kafka" "$KPORT"

step "starting PostgreSQL 15 on 127.0.0.1:$PGPORT_DEMO"
as_user "$PGBIN/initdb" -D "$DEMO/pgdata" --auth=trust --encoding=UTF8 \
	--locale=C.UTF-8 -U "$RUN_USER" >"$DEMO/initdb.log" 2>&1 ||
	{ cat "$DEMO/initdb.log"; die "initdb failed"; }
cat >>"$DEMO/pgdata/postgresql.conf" <<EOF

# eo_ingest demo
listen_addresses = '127.0.0.1'
port = $PGPORT_DEMO
unix_socket_directories = '$DEMO'
shared_preload_libraries = 'eo_ingest'
EOF
as_user "$PGBIN/pg_ctl" -D "$DEMO/pgdata" -l "$DEMO/postgres.log" -w start >/dev/null ||
	{ tail -n 30 "$DEMO/postgres.log"; die "PostgreSQL did not start"; }

step "producing $EVENTS events to topic orders (4 partitions)"
as_user "$PRODUCER" -b "$BROKERS" -t orders --create-topic 4
as_user "$PRODUCER" -b "$BROKERS" -t orders -n "$EVENTS" --headers \
	--manifest "$DEMO/orders.manifest"

step "creating the extension, the table and the pipeline"
psql_demo <<EOF
CREATE EXTENSION eo_ingest;
CREATE TABLE public.orders (
	event_id    uuid PRIMARY KEY,
	seq         int,
	customer_id int,
	amount      numeric,
	note        text,
	created_at  timestamptz
);
SELECT eo_ingest.create_pipeline(name => 'orders', brokers => '$BROKERS',
                                 topic => 'orders', target => 'public.orders');
EOF

step "waiting for the pipeline to catch up"
t0=$(date +%s)
while :; do
	row="$(psql_demo -At -F ' ' -c \
		"SELECT state, coalesce(lag::text, 'unknown') FROM eo_ingest.pipeline_status WHERE name = 'orders'")"
	state="${row%% *}"
	lag="${row#* }"
	[ "$lag" = 0 ] && break
	if [ "$state" = failed ]; then
		psql_demo -c "SELECT last_error, last_error_at FROM eo_ingest.pipeline_status WHERE name = 'orders'"
		die "pipeline failed"
	fi
	[ $(( $(date +%s) - t0 )) -lt 120 ] ||
		die "pipeline did not catch up within 120 s (state $state, lag $lag); see $DEMO/postgres.log"
	printf '  state %s, lag %s\n' "$state" "$lag"
	sleep 1
done
echo "caught up in $(( $(date +%s) - t0 )) s"

step "result"
psql_demo -P pager=off <<'EOF'
\x auto
SELECT * FROM eo_ingest.pipeline_status;
SELECT * FROM eo_ingest.partition_progress ORDER BY partition;
SELECT count(*) AS rows_in_orders FROM public.orders;
EOF

cat <<EOF

The demo is running.
  Connect:  psql -h 127.0.0.1 -p $PGPORT_DEMO -U $RUN_USER postgres
  Produce more:
            $PRODUCER -b $BROKERS -t orders -n 1000 -s $((EVENTS + 1))
  Logs:     $DEMO/postgres.log  $DEMO/kafka/kafka.log
  Stop:     scripts/demo.sh stop
EOF
