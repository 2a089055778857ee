#!/usr/bin/env bash
# SMTP intake on PostgreSQL: the same load into `mailroom serve` (release
# build) on the embedded engine (maildir:), on one node over PostgreSQL, and
# on two nodes over one PostgreSQL database with the load split between
# them, in one run. Prints accepted messages/s (every 250 comes after the
# message is committed to the recipient's maildrop, so accepted = delivered;
# the script counts the stored messages to be sure) and the CPU time the
# nodes and the database server spent per message. Not a test. See
# bench/README.md.
#
# Environment knobs (defaults in brackets):
#   BENCH_MESSAGES [5000]   per timed round
#   BENCH_CONCURRENCY [20]  SMTP sessions at once (split across two nodes)
#   BENCH_SIZE [2048]       message size in octets
#   BENCH_PER_SESSION [1]   messages per SMTP session
#   BENCH_ROUNDS [3]        timed rounds per set-up; the median is reported
#   BENCH_PG_URL            a PostgreSQL URL whose role may CREATE DATABASE
#                           [scripts/pg-test-cluster.sh's cluster, started
#                           if it is not running]
#   BENCH_MAILROOM_BIN, BENCH_LOADGEN_BIN  use these binaries, no build
#   BENCH_KEEP=1            keep the work directory (logs)
#   CARGO_TARGET_DIR        [/var/tmp/mailroom-target]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

MESSAGES=${BENCH_MESSAGES:-5000}
CONCURRENCY=${BENCH_CONCURRENCY:-20}
SIZE=${BENCH_SIZE:-2048}
PER_SESSION=${BENCH_PER_SESSION:-1}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=200
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/mailroom-target}"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }

command -v psql >/dev/null 2>&1 || die "psql missing (apt-get install postgresql-client)"

# --- binaries -----------------------------------------------------------------

MAILROOM="${BENCH_MAILROOM_BIN:-$CARGO_TARGET_DIR/release/mailroom}"
LOADGEN="${BENCH_LOADGEN_BIN:-$CARGO_TARGET_DIR/release/mailroom-loadgen}"
build=()
[[ -z "${BENCH_MAILROOM_BIN:-}" ]] && build+=(-p mailroom)
[[ -z "${BENCH_LOADGEN_BIN:-}" ]] && build+=(-p mailroom-loadgen)
if ((${#build[@]})); then
    log "building ${build[*]} (release)"
    cargo build --release "${build[@]}" >&2
fi
[[ -x "$MAILROOM" ]] || die "no mailroom binary at $MAILROOM"
[[ -x "$LOADGEN" ]] || die "no loadgen binary at $LOADGEN"
MAILROOM_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
[[ -n "$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]] && MAILROOM_REV="$MAILROOM_REV+dirty"
[[ -n "${BENCH_MAILROOM_BIN:-}" ]] && MAILROOM_REV="binary $BENCH_MAILROOM_BIN"

WORK=$(mktemp -d /tmp/mailroom-pg-bench.XXXXXX)
# Private copies: another build into the shared target dir must not swap a
# binary in the middle of the run.
mkdir "$WORK/bin"
cp "$MAILROOM" "$WORK/bin/mailroom"
cp "$LOADGEN" "$WORK/bin/mailroom-loadgen"
MAILROOM="$WORK/bin/mailroom"
LOADGEN="$WORK/bin/mailroom-loadgen"

# --- PostgreSQL ---------------------------------------------------------------

if [[ -n "${BENCH_PG_URL:-}" ]]; then
    PG_URL=$BENCH_PG_URL
else
    # `start` also drops other runs' leftover test databases, so it is only
    # called when the cluster is down (others may be testing on it).
    PG_URL=$(bash scripts/pg-test-cluster.sh url)
    if ! psql "$PG_URL" -XtAqc 'SELECT 1' >/dev/null 2>&1; then
        log "starting the private PostgreSQL cluster (scripts/pg-test-cluster.sh)"
        PG_URL=$(bash scripts/pg-test-cluster.sh start)
    fi
fi
psql "$PG_URL" -XtAqc 'SELECT 1' >/dev/null || die "cannot connect to $PG_URL"
PG_BASE=${PG_URL%/*}
PG_VERSION=$(psql "$PG_URL" -XtAqc 'SHOW server_version' | cut -d' ' -f1)
PG_SETTINGS=$(psql "$PG_URL" -XtAqc "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'commit_delay')")
# The server's processes, for CPU time: the postmaster and its children
# (backends, WAL writer, checkpointer), when it runs on this machine.
PG_DATA=$(psql "$PG_URL" -XtAqc 'SHOW data_directory' 2>/dev/null || true)
PG_PID=$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)
[[ -n "$PG_PID" ]] && ! kill -0 "$PG_PID" 2>/dev/null && PG_PID=""

DATABASES=()
NODE_PIDS=()

stop_nodes() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${NODE_PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    NODE_PIDS=()
}

cleanup() {
    set +e
    stop_nodes
    for db in "${DATABASES[@]}"; do
        psql "$PG_URL" -Xqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    done
    if [[ -n "${BENCH_KEEP:-}" ]]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A fresh database named mr_bench_$1_PID (not mr_t_*: the cluster script
# drops those at its next start); prints its URL.
new_database() {
    local name="mr_bench_$1_$$"
    psql "$PG_URL" -Xqc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1
    psql "$PG_URL" -Xqc "CREATE DATABASE $name" >/dev/null
    DATABASES+=("$name")
    echo "$PG_BASE/$name"
}

# --- nodes --------------------------------------------------------------------

printf '[limits]\nmax_connections = 200\nmax_connections_per_ip = 100\n' >"$WORK/mailroom.toml"

# Starts a node: $1 tag, $2 data dir, $3 store URL. Appends its PID to
# NODE_PIDS and sets NODE_ADDR to its SMTP address.
start_node() {
    local tag=$1 data=$2 store=$3 logf="$WORK/$1.log" pid
    "$MAILROOM" serve --data-dir "$data" --store "$store" --config "$WORK/mailroom.toml" \
        --hostname "$tag.example.test" --domain example.test \
        --smtp 127.0.0.1:0 --submission off --smtps off --pop3 off --pop3s off \
        2>"$logf" &
    pid=$!
    NODE_PIDS+=("$pid")
    for _ in $(seq 300); do
        grep -qx ready "$logf" && break
        kill -0 "$pid" 2>/dev/null || { cat "$logf" >&2; die "$tag: mailroom serve exited"; }
        sleep 0.1
    done
    grep -qx ready "$logf" || { cat "$logf" >&2; die "$tag: mailroom serve not ready"; }
    NODE_ADDR=$(awk '$1 == "listening" && $2 == "smtp" { print $3; exit }' "$logf")
}

add_user() {
    echo "bench-password" | "$MAILROOM" --data-dir "$1" --store "$2" user add alice --password-stdin >/dev/null
}

# CPU seconds (utime + stime, including reaped children) of the PIDs given.
cpu_of() {
    local tck pid total=0
    tck=$(getconf CLK_TCK)
    for pid in "$@"; do
        [[ -r "/proc/$pid/stat" ]] || continue
        # Fields after the command name: utime stime cutime cstime are 14-17.
        total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 + $14 + $15 }')))
    done
    awk -v t="$total" -v h="$tck" 'BEGIN { printf "%.3f", t / h }'
}
pg_pids() { [[ -n "$PG_PID" ]] && { echo "$PG_PID"; pgrep -P "$PG_PID" || true; }; }
pg_cpu() { if [[ -n "$PG_PID" ]]; then cpu_of $(pg_pids); else echo 0; fi; }

RESULTS="$WORK/results"
: >"$RESULTS"

# Runs one load of $2 messages over $3 sessions against each address in
# ADDRS at once (each address gets $2 / #ADDRS messages and $3 / #ADDRS
# sessions). $1 tags the result line: "TAG rate seconds node_cpu pg_cpu".
run_load() {
    local tag=$1 total=$2 conc=$3 n=${#ADDRS[@]} i start end node0 node1 pg0 pg1 pids=() failed=""
    local each=$((total / n)) conc_each=$(((conc + n - 1) / n))
    node0=$(cpu_of "${NODE_PIDS[@]}")
    pg0=$(pg_cpu)
    start=$(now)
    for i in "${!ADDRS[@]}"; do
        "$LOADGEN" smtp --server "${ADDRS[$i]}" --from bench@example.test --to alice@example.test \
            --messages "$each" --concurrency "$conc_each" --size "$SIZE" --per-session "$PER_SESSION" \
            >"$WORK/load.$i.json" 2>"$WORK/load.$i.err" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || failed="$failed $i"
    done
    end=$(now)
    node1=$(cpu_of "${NODE_PIDS[@]}")
    pg1=$(pg_cpu)
    for i in "${!ADDRS[@]}"; do
        if [[ -n "$failed" ]] || grep -q '"errors":[1-9]' "$WORK/load.$i.json"; then
            cat "$WORK/load.$i.json" "$WORK/load.$i.err" >&2
            die "$tag: the load against ${ADDRS[$i]} failed"
        fi
        log "$tag node $i: $(cat "$WORK/load.$i.json")"
    done
    awk -v tag="$tag" -v n="$((each * n))" -v s="$start" -v e="$end" \
        -v c0="$node0" -v c1="$node1" -v p0="$pg0" -v p1="$pg1" \
        'BEGIN { d = e - s; printf "%s %.1f %.3f %.3f %.3f\n", tag, n / d, d, c1 - c0, p1 - p0 }' >>"$RESULTS"
    LOADED=$((LOADED + each * n))
}

# Counts the stored messages of set-up $1 and compares with what was sent.
check_stored() {
    local tag=$1 got=$2
    [[ "$got" -eq "$LOADED" ]] || die "$tag: $got messages stored, $LOADED accepted"
    log "$tag: all $got accepted messages stored"
}

# Runs the warm-up and the timed rounds of set-up $1 against ADDRS.
rounds() {
    local tag=$1 r
    LOADED=0
    run_load "$tag-warmup" "$WARMUP" "$CONCURRENCY"
    for r in $(seq "$ROUNDS"); do
        run_load "$tag" "$MESSAGES" "$CONCURRENCY"
    done
}

pg_count() { psql "$1" -XtAqc "SELECT count(*) FROM messages WHERE username = 'alice'"; }

# --- set-ups ------------------------------------------------------------------

log "embedded engine (maildir:)"
DATA="$WORK/embedded"
add_user "$DATA" maildir:
start_node embedded "$DATA" maildir:
ADDRS=("$NODE_ADDR")
rounds embedded
stop_nodes
check_stored embedded "$(find "$DATA/mail/alice/new" -type f | wc -l)"

log "one node on PostgreSQL"
DB1=$(new_database 1n)
add_user "$WORK/pg1" "$DB1"
start_node pg1 "$WORK/pg1" "$DB1"
ADDRS=("$NODE_ADDR")
rounds pg1
stop_nodes
check_stored pg1 "$(pg_count "$DB1")"

log "two nodes on PostgreSQL"
DB2=$(new_database 2n)
add_user "$WORK/pg2a" "$DB2"
start_node pg2a "$WORK/pg2a" "$DB2"
A=$NODE_ADDR
start_node pg2b "$WORK/pg2b" "$DB2"
ADDRS=("$A" "$NODE_ADDR")
rounds pg2
stop_nodes
check_stored pg2 "$(pg_count "$DB2")"

# --- report -------------------------------------------------------------------

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v tag="$1" -v c="$2" '$1 == tag { print $c }' "$RESULTS"; }
per_msg() { awk -v t="$1" -v n="$MESSAGES" 'BEGIN { printf "%.2f", t * 1000 / n }'; }

echo
echo "SMTP intake by storage engine: $MESSAGES messages x $SIZE bytes per round, $CONCURRENCY sessions" \
    "($PER_SESSION message(s) each), median of $ROUNDS rounds; mailroom $MAILROOM_REV," \
    "PostgreSQL $PG_VERSION ($PG_SETTINGS), $(nproc) cores"
printf '%-34s %12s %14s %16s %16s\n' "set-up" "msgs/s" "vs embedded" "node CPU ms/msg" "PG CPU ms/msg"
EMB=$(col embedded 2 | median)
for tag in embedded pg1 pg2; do
    case $tag in
        embedded) label="embedded (maildir:)" ;;
        pg1) label="1 node, PostgreSQL" ;;
        pg2) label="2 nodes, one PostgreSQL" ;;
    esac
    rate=$(col "$tag" 2 | median)
    printf '%-34s %12s %14s %16s %16s\n' "$label" "$rate" \
        "$(awk -v a="$rate" -v b="$EMB" 'BEGIN { printf "%.2f", a / b }')" \
        "$(per_msg "$(col "$tag" 4 | median)")" \
        "$( [[ -n "$PG_PID" && $tag != embedded ]] && per_msg "$(col "$tag" 5 | median)" || echo -)"
done
echo
echo "Rounds (msgs/s): embedded $(col embedded 2 | tr '\n' ' ')| 1 node $(col pg1 2 | tr '\n' ' ')| 2 nodes $(col pg2 2 | tr '\n' ' ')"
echo "Each 250 follows the commit (fsync) of the message into alice's maildrop, so"
echo "accepted = delivered; the stored messages were counted after each set-up."
echo "Two nodes: each gets half the messages and half the sessions, at the same time;"
echo "the rate is all messages over the wall time of both loads. CPU: utime+stime of"
echo "the mailroom process(es) and of the PostgreSQL postmaster and its children."
