#!/usr/bin/env bash
# PostgreSQL for the test suite: reuse the one on 127.0.0.1:5432 when it
# answers with trust auth, else install Debian's server and start a private
# cluster. `env` prints YUNGUAN_TEST_POSTGRES_URL, the admin URL tests use to
# create their own throwaway databases.
#
#   scripts/testbed/postgres.sh up|down|status|env
source "$(dirname "$0")/lib.sh"
tb_init postgres

PRIVATE_PORT="${YUNGUAN_PG_PORT:-15432}"
# initdb refuses to run as root and the server user cannot enter /root, so a
# root-run private cluster lives under /var/tmp.
if [[ $(id -u) -eq 0 ]]; then PGDATA_DIR=/var/tmp/yunguan-testbed/postgres; else PGDATA_DIR="$TB_HOME/pgdata"; fi

answers() { # HOST PORT
    command -v psql >/dev/null || return 1
    psql "host=$1 port=$2 user=postgres dbname=postgres connect_timeout=3" -Atqc 'select 1' >/dev/null 2>&1
}

url_for() { echo "postgresql+psycopg://postgres@127.0.0.1:$1/postgres"; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

up() {
    if [[ -z "${YUNGUAN_PG_FORCE_PRIVATE:-}" ]] && tb_port_open 127.0.0.1 5432 && answers 127.0.0.1 5432; then
        tb_log "reusing PostgreSQL on 127.0.0.1:5432"
        echo 5432 >"$TB_HOME/port"
        return 0
    fi
    if answers 127.0.0.1 "$PRIVATE_PORT"; then
        echo "$PRIVATE_PORT" >"$TB_HOME/port"
        return 0
    fi
    tb_apt_install postgresql postgresql-client
    local bin; bin="$(pg_bin)"
    [[ -n "$bin" ]] || tb_die "no PostgreSQL server binaries after install"
    if [[ ! -s "$PGDATA_DIR/PG_VERSION" ]]; then
        mkdir -p "$PGDATA_DIR"
        [[ $(id -u) -eq 0 ]] && chown -R postgres:postgres "$(dirname "$PGDATA_DIR")"
        as_pg "$bin/initdb" -D "$PGDATA_DIR" -U postgres -A trust -E UTF8 >"$TB_HOME/log/initdb.log"
    fi
    mkdir -p "$TB_HOME/log"
    # The server runs as `postgres`; tb_start records the runuser PID, which
    # forwards SIGTERM to it.
    tb_start postgres "$TB_HOME/log/postgres.log" \
        $([[ $(id -u) -eq 0 ]] && echo "runuser -u postgres --") "$bin/postgres" -D "$PGDATA_DIR" \
        -c listen_addresses=127.0.0.1 -c port="$PRIVATE_PORT" -c unix_socket_directories=/tmp \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300
    for _ in $(seq 1 150); do
        answers 127.0.0.1 "$PRIVATE_PORT" && break
        sleep 0.2
    done
    answers 127.0.0.1 "$PRIVATE_PORT" || tb_die "PostgreSQL did not start; see $TB_HOME/log/postgres.log"
    echo "$PRIVATE_PORT" >"$TB_HOME/port"
}

case "${1:-}" in
    up) up ;;
    down) tb_stop postgres 20 ;;
    status)
        port="$(cat "$TB_HOME/port" 2>/dev/null || echo 5432)"
        if answers 127.0.0.1 "$port"; then echo "postgres: up on $port"; else echo "postgres: down"; exit 1; fi ;;
    env) echo "export YUNGUAN_TEST_POSTGRES_URL=$(url_for "$(cat "$TB_HOME/port" 2>/dev/null || echo 5432)")" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
