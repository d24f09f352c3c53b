#!/usr/bin/env bash
# A PostgreSQL server on loopback for the team-tracking-server tests (Debian's packages).
#
# Installs PostgreSQL when it is missing, starts a private cluster in $PGDATA on
# 127.0.0.1:$PGPORT and makes a role `dlflow` (password `dlflow`) that may create
# databases; the tests create a fresh database per session. Prints the URI to export:
#   export DLFLOW_TEST_POSTGRES_URI=$(bash .ci/postgres.sh)
# Idempotent: a cluster already running there is reused. Stop it with
#   bash .ci/postgres.sh stop    (.ci/test does, for a cluster it started)
set -euo pipefail

PGPORT="${PGPORT:-55432}"
PGDATA="${PGDATA:-/tmp/dlflow-postgres}"

# PostgreSQL refuses to run as root: run the cluster as the `postgres` user then.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
newest_bin() { dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)"; }

if [ "${1:-}" = stop ]; then
    if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && [ -s "$PGDATA/PG_VERSION" ] \
        && as_owner "$(newest_bin)/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
        as_owner "$(newest_bin)/pg_ctl" -D "$PGDATA" -m fast -w stop >&2
    fi
    exit 0
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "postgres: installing Debian's postgresql packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq postgresql >&2
    # Debian's package may start a cluster of its own (`main`, port 5432); only ours below is wanted.
    pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1, $2}' | while read -r version name; do
        $SUDO pg_ctlcluster "$version" "$name" stop >&2 || true
    done
fi
BIN="$(newest_bin)"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    [ "$(id -u)" = 0 ] && chown postgres: "$PGDATA"
    as_owner "$BIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync >/dev/null
fi
if ! as_owner "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    as_owner "$BIN/pg_ctl" -D "$PGDATA" -w -l "$PGDATA/server.log" \
        -o "-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >&2
fi

psql_admin() { "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'dlflow'")" != 1 ]; then
    psql_admin -c "CREATE ROLE dlflow LOGIN CREATEDB PASSWORD 'dlflow'" >&2
fi
echo "postgresql://dlflow:dlflow@127.0.0.1:${PGPORT}/postgres"
