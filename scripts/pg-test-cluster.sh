#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests of the PostgreSQL store, run
# without systemd: initdb + pg_ctl on a loopback port, trust auth.
#
#   scripts/pg-test-cluster.sh start     install (root, Debian) / init / start;
#                                        prints the URL of the test database
#   scripts/pg-test-cluster.sh stop      stops it (data kept for the next start)
#   scripts/pg-test-cluster.sh restart   fast restart (the reconnect test uses it)
#   scripts/pg-test-cluster.sh url       prints the URL
#   scripts/pg-test-cluster.sh clean     stops it and removes its data
#
# Only the URL goes to stdout, so a caller can do
#   export MAILROOM_TEST_PG="$(scripts/pg-test-cluster.sh start)"
#
# Environment:
#   MAILROOM_PG_DIR    cluster directory (default /var/tmp/mailroom-pg)
#   MAILROOM_PG_PORT   port on 127.0.0.1 (default 55432)
#   MAILROOM_PG_OPTS   extra server options, e.g. "-c fsync=off" for speed
#   MAILROOM_SKIP_APT  never install packages
#
# As root the server runs as the `postgres` user (PostgreSQL refuses root);
# otherwise as the calling user. Trust authentication on loopback only: a
# test cluster, never a production one.
set -euo pipefail

dir="${MAILROOM_PG_DIR:-/var/tmp/mailroom-pg}"
port="${MAILROOM_PG_PORT:-55432}"
db="mailroom_test"
url="postgres://postgres@127.0.0.1:${port}/${db}"

log() { printf '== pg-test-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            echo "$d"
            return 0
        fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir)"
        if [[ -x "$d/initdb" ]]; then
            echo "$d"
            return 0
        fi
    fi
    return 1
}

install_postgres() {
    [[ -n "${MAILROOM_SKIP_APT:-}" ]] && die "PostgreSQL is not installed (MAILROOM_SKIP_APT set)"
    [[ "$(id -u)" -eq 0 ]] || die "PostgreSQL is not installed; run: sudo apt-get install postgresql"
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the package from starting its own cluster while it installs.
    local own_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local ok=1
    apt-get update -qq >&2 || ok=""
    if [[ -n "$ok" ]]; then
        apt-get install -y -qq --no-install-recommends postgresql >&2 || ok=""
    fi
    if [[ -n "$own_policy" ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    [[ -n "$ok" ]] || die "apt-get failed installing postgresql"
}

# Runs a command as the cluster's owner.
as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

bindir=""
need_bindir() {
    if ! bindir="$(find_bindir)"; then
        install_postgres
        bindir="$(find_bindir)" || die "no initdb found after installing postgresql"
    fi
}

running() {
    [[ -f "$dir/PG_VERSION" ]] && as_owner "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1
}

psql_admin() {
    as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

start() {
    need_bindir
    if [[ ! -f "$dir/PG_VERSION" ]]; then
        log "initialising $dir"
        mkdir -p "$dir"
        chmod 700 "$dir"
        if [[ "$(id -u)" -eq 0 ]]; then
            chown postgres:postgres "$dir"
        fi
        as_owner "$bindir/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 \
            --no-locale >"$dir.initdb.log" 2>&1 ||
            { cat "$dir.initdb.log" >&2; die "initdb failed"; }
    fi
    if running; then
        log "already running on 127.0.0.1:$port"
    else
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is taken by another program; set MAILROOM_PG_PORT"
        fi
        # The socket lives in the cluster directory: no clash with a system
        # PostgreSQL's /var/run/postgresql, and no write access needed there.
        as_owner "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 ${MAILROOM_PG_OPTS:-}" start >&2 ||
            { tail -n 20 "$dir/server.log" >&2 || true; die "pg_ctl start failed"; }
    fi
    if [[ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]]; then
        psql_admin -c "CREATE DATABASE $db" >&2
    fi
    # Databases the conformance tests create (mr_t_*) and did not drop
    # because a test failed: nothing runs now, so they can go.
    local stale
    stale="$(psql_admin -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'mr\_t\_%'")"
    for name in $stale; do
        psql_admin -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >&2 || true
    done
    echo "$url"
}

stop() {
    need_bindir
    if running; then
        as_owner "$bindir/pg_ctl" -D "$dir" -m fast -w stop >&2
    else
        log "not running"
    fi
}

restart() {
    need_bindir
    running || die "not running; use start"
    # pg_ctl restart reuses the options of the last start (postmaster.opts).
    as_owner "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -m fast -w -t 60 restart >&2
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) restart ;;
    url) echo "$url" ;;
    clean)
        stop
        rm -rf "$dir" "$dir.initdb.log"
        ;;
    *)
        echo "usage: $0 start|stop|restart|url|clean" >&2
        exit 2
        ;;
esac
