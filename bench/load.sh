#!/usr/bin/env bash
# Load and connection-limit benchmark for `mailroom serve` (release build),
# driven by bench/loadgen (hold, slowloris and smtp loads). Three phases,
# each on a fresh server with its own config:
#
#   1. hold: BENCH_HOLD [10000] SMTP connections opened (after EHLO) from
#      127.0.0.1-4 and held idle; the server's VmRSS before, while held and
#      after, and RSS per connection.
#   2. throughput under slowloris: BENCH_SESSIONS [2000] concurrent SMTP
#      sessions deliver BENCH_MESSAGES [20000] messages of BENCH_SIZE [2048]
#      bytes, first alone, then while BENCH_SLOW [1000] slowloris sockets
#      (from 127.0.0.2, one byte every 3 s of a command line that never
#      ends, reconnecting when closed) press on the server. command_timeout
#      is BENCH_CMD_TIMEOUT [10] s: every slowloris socket must be closed
#      with 421 about that long after its greeting.
#   3. caps: max_connections = 150, max_connections_per_ip = 100; 120
#      connections from 127.0.0.10 (20 over the per-IP cap), then 80 more
#      from 127.0.0.11 (30 over the total cap). The extra ones get
#      `421 4.7.0`.
#
# Prints one JSON line per load and a summary. Not a test. Needs Linux
# (every 127.0.0.x is loopback) and a hard open-file limit of at least
# BENCH_HOLD + 1000 for the load generator and the server.
#
#   BENCH_MAILROOM_BIN / BENCH_LOADGEN_BIN   use these binaries (no build)
#   CARGO_TARGET_DIR [/var/tmp/mailroom-target]
set -euo pipefail

cd "$(dirname "$0")/.."

HOLD=${BENCH_HOLD:-10000}
SESSIONS=${BENCH_SESSIONS:-2000}
MESSAGES=${BENCH_MESSAGES:-20000}
SIZE=${BENCH_SIZE:-2048}
SLOW=${BENCH_SLOW:-1000}
CMD_TIMEOUT=${BENCH_CMD_TIMEOUT:-10}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/mailroom-target}"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# Raise the open-file limit as far as the hard limit allows (children
# inherit it; serve raises its own to the hard limit as well).
hard=$(ulimit -Hn)
if [[ "$hard" != unlimited ]] && ((hard < HOLD + 1000)); then
    die "hard open-file limit $hard is below BENCH_HOLD + 1000 = $((HOLD + 1000))"
fi
ulimit -n "$hard"
log "open-file limit: $(ulimit -n)"

MAILROOM="${BENCH_MAILROOM_BIN:-$CARGO_TARGET_DIR/release/mailroom}"
LOADGEN="${BENCH_LOADGEN_BIN:-$CARGO_TARGET_DIR/release/mailroom-loadgen}"
if [[ -z "${BENCH_MAILROOM_BIN:-}" || -z "${BENCH_LOADGEN_BIN:-}" ]]; then
    log "building mailroom and mailroom-loadgen (release)"
    cargo build --release -p mailroom -p mailroom-loadgen >&2
fi
[[ -x "$MAILROOM" ]] || die "no binary at $MAILROOM"
[[ -x "$LOADGEN" ]] || die "no binary at $LOADGEN"

WORK=$(mktemp -d /tmp/mailroom-load.XXXXXX)
MAILROOM_PID=""
SLOW_PID=""
cleanup() {
    set +e
    [[ -n "$SLOW_PID" ]] && kill "$SLOW_PID" 2>/dev/null
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME CONFIG-TOML: a fresh data dir with user alice; sets
# MAILROOM_PID and PORT.
start_server() {
    local name=$1 config=$2
    local data="$WORK/$name-data"
    echo "bench-password" | "$MAILROOM" --data-dir "$data" user add alice --password-stdin >/dev/null
    printf '%s\n' "$config" >"$WORK/$name.toml"
    "$MAILROOM" serve --data-dir "$data" --config "$WORK/$name.toml" \
        --hostname mx.example.test --domain example.test \
        --smtp 127.0.0.1:0 --submission off --smtps off --pop3 off --pop3s off \
        2>"$WORK/$name.log" &
    MAILROOM_PID=$!
    for _ in $(seq 300); do
        grep -qx ready "$WORK/$name.log" && break
        kill -0 "$MAILROOM_PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "serve exited"; }
        sleep 0.1
    done
    grep -qx ready "$WORK/$name.log" || die "serve not ready"
    PORT=$(awk '$1 == "listening" && $2 == "smtp" { n = split($3, a, ":"); print a[n]; exit }' "$WORK/$name.log")
    DATA=$data
}

stop_server() {
    if [[ -n "$MAILROOM_PID" ]] && kill -0 "$MAILROOM_PID" 2>/dev/null; then
        kill -TERM "$MAILROOM_PID"
        for _ in $(seq 100); do kill -0 "$MAILROOM_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$MAILROOM_PID" 2>/dev/null || true
        wait "$MAILROOM_PID" 2>/dev/null || true
    fi
    MAILROOM_PID=""
}

json() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2]))' "$1" "$2"; }

echo "mailroom: $("$MAILROOM" --version 2>/dev/null || echo '?'); $(nproc) cores; $(uname -r)"

# --- 1. hold ------------------------------------------------------------------

log "phase 1: $HOLD idle connections (EHLO done) from 127.0.0.1-4"
start_server hold "[limits]
max_connections = $((HOLD + 2000))
max_connections_per_ip = $((HOLD / 4 + 500))"
HOLD_JSON=$("$LOADGEN" hold --server "127.0.0.1:$PORT" --connections "$HOLD" \
    --sources 127.0.0.1-4 --ehlo --hold-secs 10 --watch-pid "$MAILROOM_PID")
echo "$HOLD_JSON"
stop_server

# --- 2. throughput with and without slowloris ---------------------------------

SMTP_CONF="[limits]
max_connections = $((SESSIONS + SLOW + 1000))
max_connections_per_ip = $((SESSIONS + 100))
[smtp]
command_timeout = $CMD_TIMEOUT
data_timeout = $CMD_TIMEOUT"
PER_SESSION=$(( (MESSAGES + SESSIONS - 1) / SESSIONS ))

log "phase 2a: $SESSIONS sessions × $PER_SESSION messages of $SIZE bytes, no slowloris"
start_server alone "$SMTP_CONF"
ALONE_JSON=$("$LOADGEN" --threads 2 smtp --server "127.0.0.1:$PORT" --from bench@example.test \
    --to alice@example.test --messages "$MESSAGES" --concurrency "$SESSIONS" \
    --per-session "$PER_SESSION" --size "$SIZE" --watch-pid "$MAILROOM_PID" --watch-interval-ms 0) || true
echo "$ALONE_JSON"
stop_server

log "phase 2b: the same while $SLOW slowloris sockets trickle a byte every 3 s (command_timeout $CMD_TIMEOUT s)"
start_server slow "$SMTP_CONF"
SLOW_SECS=$((CMD_TIMEOUT * 6))
"$LOADGEN" slowloris --server "127.0.0.1:$PORT" --connections "$SLOW" --sources 127.0.0.2 \
    --interval-ms 3000 --duration-secs "$SLOW_SECS" --reconnect >"$WORK/slowloris.json" &
SLOW_PID=$!
sleep 3
BUSY_JSON=$("$LOADGEN" --threads 2 smtp --server "127.0.0.1:$PORT" --from bench@example.test \
    --to alice@example.test --messages "$MESSAGES" --concurrency "$SESSIONS" \
    --per-session "$PER_SESSION" --size "$SIZE" --watch-pid "$MAILROOM_PID" --watch-interval-ms 0) || true
echo "$BUSY_JSON"
log "waiting for the slowloris run to end (${SLOW_SECS}s in all)"
wait "$SLOW_PID" || true
SLOW_PID=""
SLOW_JSON=$(cat "$WORK/slowloris.json")
echo "$SLOW_JSON"
TIMEOUTS=$(grep -c ': timeout$' "$WORK/slow.log" || true)
stop_server

# --- 3. connection caps ---------------------------------------------------------

log "phase 3: max_connections = 150, max_connections_per_ip = 100"
start_server caps "[limits]
max_connections = 150
max_connections_per_ip = 100"
"$LOADGEN" hold --server "127.0.0.1:$PORT" --connections 120 --sources 127.0.0.10 \
    --hold-secs 8 >"$WORK/caps-a.json" &
CAPS_A=$!
sleep 4
CAPS_B_JSON=$("$LOADGEN" hold --server "127.0.0.1:$PORT" --connections 80 --sources 127.0.0.11 --hold-secs 1)
wait "$CAPS_A"
CAPS_A_JSON=$(cat "$WORK/caps-a.json")
echo "$CAPS_A_JSON"
echo "$CAPS_B_JSON"
stop_server

# --- summary ------------------------------------------------------------------

cat <<EOF

summary
  hold:      $(json "$HOLD_JSON" open) of $HOLD connections open; server VmRSS $(json "$HOLD_JSON" server_rss_before_kib) KiB before, $(json "$HOLD_JSON" server_rss_held_kib) KiB held, $(json "$HOLD_JSON" server_rss_after_close_kib) KiB after closing; $(json "$HOLD_JSON" rss_per_connection_kib) KiB per connection
  alone:     $(json "$ALONE_JSON" accepted) messages, $(json "$ALONE_JSON" msgs_per_s) msgs/s, p99 $(json "$ALONE_JSON" p99_ms) ms, errors $(json "$ALONE_JSON" errors)
  slowloris: $(json "$BUSY_JSON" accepted) messages, $(json "$BUSY_JSON" msgs_per_s) msgs/s, p99 $(json "$BUSY_JSON" p99_ms) ms, errors $(json "$BUSY_JSON" errors)
             $(json "$SLOW_JSON" opened) slowloris connections, $(json "$SLOW_JSON" got_421) closed with 421 ($(json "$SLOW_JSON" first_reply)), lifetime min/p50/max $(json "$SLOW_JSON" lifetime_min_s)/$(json "$SLOW_JSON" lifetime_p50_s)/$(json "$SLOW_JSON" lifetime_max_s) s, still open at the end $(json "$SLOW_JSON" still_open); server logged $TIMEOUTS timeouts
  per-IP:    127.0.0.10 $(json "$CAPS_A_JSON" open) open, $(json "$CAPS_A_JSON" refused_421) refused: $(json "$CAPS_A_JSON" first_421)
  total:     127.0.0.11 $(json "$CAPS_B_JSON" open) open, $(json "$CAPS_B_JSON" refused_421) refused: $(json "$CAPS_B_JSON" first_421)
EOF
