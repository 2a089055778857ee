#!/usr/bin/env bash
# POP3 benchmark: mailroom's POP3 server against Dovecot's (Debian package
# dovecot-pop3d), on the same 5000-message maildrop, in the same run, driven
# by bench/loadgen (mailroom-loadgen). Not a test: it prints numbers.
#
# Measures, for each server:
#   - RETR messages/s in one session (login, STAT, RETR 1..N, QUIT, no DELE),
#     without pipelining and with BENCH_PIPELINE commands in flight (both
#     servers advertise PIPELINING in CAPA);
#   - whole sessions/s (connect, greeting, USER, PASS, STAT, QUIT),
#     BENCH_SESSIONS of them, BENCH_CONCURRENCY at a time, each concurrent
#     worker logging in as its own user (alice0..aliceN-1, each with the same
#     5000-message maildrop: mailroom locks a maildrop per session and
#     Dovecot limits connections per user and IP), with p50/p99 latency;
#   - the CPU time each server used per message / session, and its peak
#     memory (mailroom: VmHWM of its one process; Dovecot: the peaks of RSS
#     and PSS summed over master and all its children, sampled).
#
# Like with like (shared/DESIGN.md): both store the password as Argon2id with
# their own default parameters (mailroom: the argon2 crate's m=19456 KiB,
# t=2; Dovecot: `doveadm pw -s ARGON2ID`, m=65536 KiB, t=3) and run with
# default settings otherwise. Because the two defaults cost different
# amounts of work, the sessions test is also run against Dovecot with
# mailroom's very hash strings (users same0..), which Dovecot verifies with
# the parameters they carry: that row isolates the servers from the choice
# of Argon2 parameters (BENCH_SAME_COST=0 skips it).
#
# The maildrops are written straight into each server's Maildir in the form
# it stores itself: CRLF files named `<unique>,S=<size>` for mailroom; LF
# files named `<unique>,S=<LF size>,W=<CRLF size>` for Dovecot (as its LDA
# and LMTP write them; Dovecot converts to CRLF when sending). Every message
# is BENCH_SIZE octets in CRLF form, which is what both servers' STAT and
# RETR count, and has one line starting with '.', which both byte-stuff.
# Before timing, every user logs in once on each server (Dovecot builds its
# index on the first login) and one untimed RETR pass runs on each.
#
# Environment knobs (defaults in brackets):
#   BENCH_MESSAGES [5000]   BENCH_SIZE [2048 octets]
#   BENCH_SESSIONS [2000]   BENCH_CONCURRENCY [20] (also the number of users)
#   BENCH_PIPELINE [16]     RETR commands in flight in the pipelined run
#   BENCH_PASSES [3]        RETR runs fetch the maildrop this many times over
#                           in their one session (a longer, steadier run)
#   BENCH_ONE_CPU [1]       also time RETR without pipelining with the server
#                           (all its processes/threads) and the load
#                           generator pinned to one CPU, for both servers
#                           alike; 0 skips it (needs 2+ CPUs). On a VM a
#                           wake-up across CPUs costs tens of microseconds,
#                           which makes the unpinned rate depend on where the
#                           scheduler happens to put the two ends.
#   BENCH_BUSY_POLL [1]     also time RETR without pipelining with a load
#                           generator that busy-polls its socket instead of
#                           sleeping in reads (`--busy-poll`, as sockperf's
#                           latency tests do): the client is awake when each
#                           reply lands, so the rate is the server's
#                           turnaround, not the cost of waking the client;
#                           0 skips it (needs 2+ CPUs)
#   BENCH_ROUNDS [1]        repeat every measurement; the table shows medians
#   BENCH_SAME_COST [1]     also time Dovecot sessions with mailroom's hashes
#   BENCH_DOVECOT_PORT [11110, or the next free one]
#   BENCH_MAILROOM_BIN, BENCH_LOADGEN_BIN  use these binaries instead of
#                           building the release ones
#   BENCH_KEEP=1            keep the work directory (logs, raw results)
#   CARGO_TARGET_DIR        [/var/tmp/mailroom-target]
# Needs root (the private Dovecot instance, and installing it when missing).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

MESSAGES=${BENCH_MESSAGES:-5000}
SIZE=${BENCH_SIZE:-2048}
SESSIONS=${BENCH_SESSIONS:-2000}
CONCURRENCY=${BENCH_CONCURRENCY:-20}
PIPELINE=${BENCH_PIPELINE:-16}
PASSES=${BENCH_PASSES:-3}
ONE_CPU=${BENCH_ONE_CPU:-1}
(($(nproc) >= 2)) || ONE_CPU=0
BUSY_POLL=${BENCH_BUSY_POLL:-1}
(($(nproc) >= 2)) || BUSY_POLL=0
ROUNDS=${BENCH_ROUNDS:-1}
SAME_COST=${BENCH_SAME_COST:-1}
USERS=$CONCURRENCY
PASSWORD=bench-password
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/mailroom-target}"
export PATH="$PATH:/usr/sbin:/sbin"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" -eq 0 ]] || die "needs root: it runs a private Dovecot instance (and installs dovecot-pop3d if missing)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- prerequisites ----------------------------------------------------------

dovecot_pop3_binary() {
    local p
    for p in /usr/lib/dovecot/pop3 /usr/libexec/dovecot/pop3; do
        [[ -x "$p" ]] && return 0
    done
    return 1
}

if ! command -v dovecot >/dev/null 2>&1 || ! dovecot_pop3_binary; then
    log "installing dovecot-pop3d (the reference POP3 server)"
    export DEBIAN_FRONTEND=noninteractive
    own_policy=""
    # Keep the package's system-wide Dovecot from starting: we run our own.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends dovecot-pop3d >/dev/null
    [[ -n "$own_policy" ]] && rm -f /usr/sbin/policy-rc.d
fi
DOVECOT_VERSION=$(dovecot --version | cut -d' ' -f1)
id dovenull >/dev/null 2>&1 && id dovecot >/dev/null 2>&1 ||
    die "the dovenull and dovecot users are missing (the dovecot-core package creates them)"

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

# --- work directory and cleanup ---------------------------------------------

WORK=$(mktemp -d /tmp/mailroom-pop3-bench.XXXXXX)
chmod 755 "$WORK"
# Private copies: another build into the shared target dir must not swap
# a binary in the middle of the run.
mkdir "$WORK/bin"
cp "$MAILROOM" "$WORK/bin/mailroom"
cp "$LOADGEN" "$WORK/bin/mailroom-loadgen"
MAILROOM="$WORK/bin/mailroom"
LOADGEN="$WORK/bin/mailroom-loadgen"
MAILROOM_PID=""
DOVECOT_PID=""

stop_pid() {
    local pid=$1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

cleanup() {
    set +e
    stop_pid "$MAILROOM_PID"
    stop_pid "$DOVECOT_PID"
    if [[ -n "${BENCH_KEEP:-}" ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until a POP3 greeting comes from 127.0.0.1:$1.
wait_greeting() {
    local port=$1 what=$2 line
    for _ in $(seq 300); do
        line=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" && read -r -t 2 l <&3 &&
            printf "QUIT\r\n" >&3 && echo "$l"' "$port" 2>/dev/null || true)
        [[ "$line" == +OK* ]] && return 0
        sleep 0.1
    done
    die "$what: no greeting on port $port"
}

# --- mailroom ---------------------------------------------------------------

log "mailroom: $USERS users with $MESSAGES messages of $SIZE octets each"
DATA="$WORK/mailroom-data"
for i in $(seq 0 $((USERS - 1))); do
    echo "$PASSWORD" | "$MAILROOM" --data-dir "$DATA" user add "alice$i" --password-stdin >/dev/null
done
"$LOADGEN" maildrop --dir "$DATA/mail/alice0" --count "$MESSAGES" --size "$SIZE" --layout mailroom >/dev/null
for i in $(seq 1 $((USERS - 1))); do
    mkdir -p "$DATA/mail/alice$i"/{tmp,new,cur}
    cp -al "$DATA/mail/alice0/new/." "$DATA/mail/alice$i/new/"
done
MR_CONFIG=()
if ((CONCURRENCY > 40)); then
    # The default allows 50 connections per client IP.
    printf '[limits]\nmax_connections_per_ip = %d\n' $((CONCURRENCY + 10)) >"$WORK/mailroom.toml"
    MR_CONFIG=(--config "$WORK/mailroom.toml")
fi
"$MAILROOM" serve --data-dir "$DATA" "${MR_CONFIG[@]}" --hostname pop.example.test \
    --smtp off --submission off --smtps off --pop3 127.0.0.1:0 --pop3s off \
    2>"$WORK/mailroom.log" &
MAILROOM_PID=$!
for _ in $(seq 300); do
    grep -qx ready "$WORK/mailroom.log" && break
    kill -0 "$MAILROOM_PID" 2>/dev/null || { cat "$WORK/mailroom.log" >&2; die "mailroom serve exited"; }
    sleep 0.1
done
grep -qx ready "$WORK/mailroom.log" || { cat "$WORK/mailroom.log" >&2; die "mailroom serve not ready"; }
MR_ADDR=$(awk '$1 == "listening" && $2 == "pop3" { print $3; exit }' "$WORK/mailroom.log")
[[ -n "$MR_ADDR" ]] || die "mailroom: no pop3 listener in its log"

# --- Dovecot ------------------------------------------------------------------

DV_PORT=${BENCH_DOVECOT_PORT:-11110}
while ! port_free "$DV_PORT"; do DV_PORT=$((DV_PORT + 1)); done
DV_ADDR="127.0.0.1:$DV_PORT"
log "dovecot $DOVECOT_VERSION: private instance on $DV_ADDR"
DV="$WORK/dovecot"
mkdir -p "$DV/mail" "$DV/home" "$DV/base" "$DV/state"
"$LOADGEN" maildrop --dir "$DV/mail/alice0" --count "$MESSAGES" --size "$SIZE" --layout dovecot >/dev/null
DV_USERS=()
for i in $(seq 0 $((USERS - 1))); do DV_USERS+=("alice$i"); done
[[ "$SAME_COST" == 1 ]] && for i in $(seq 0 $((USERS - 1))); do DV_USERS+=("same$i"); done
for u in "${DV_USERS[@]}"; do
    mkdir -p "$DV/home/$u"
    [[ "$u" == alice0 ]] && continue
    mkdir -p "$DV/mail/$u"/{tmp,new,cur}
    cp -al "$DV/mail/alice0/new/." "$DV/mail/$u/new/"
done
# Dovecot refuses to give mail processes uid 0: the mail belongs to nobody.
DV_UID=$(id -u nobody)
DV_GID=$(id -g nobody)
chown -R "$DV_UID:$DV_GID" "$DV/mail" "$DV/home"
DV_HASH=$(doveadm pw -s ARGON2ID -p "$PASSWORD")
MR_HASH=$(awk -F: '$1 == "alice0" { print $2; exit }' "$DATA/users")
[[ "$MR_HASH" == '$argon2id$'* ]] || die "no Argon2id hash for alice0 in $DATA/users"
: >"$DV/passwd"
for u in "${DV_USERS[@]}"; do
    hash=$DV_HASH
    [[ "$u" == same* ]] && hash="{ARGON2ID}$MR_HASH"
    printf '%s:%s:%s:%s::%s::\n' "$u" "$hash" "$DV_UID" "$DV_GID" "$DV/home/$u" >>"$DV/passwd"
done
# Readable by the auth process, which runs as the internal user.
chown "root:$(id -gn dovecot)" "$DV/passwd"
chmod 640 "$DV/passwd"

if [[ "$DOVECOT_VERSION" == 2.3.* ]]; then
    cat >"$DV/dovecot.conf" <<EOF
# Private benchmark instance: Dovecot defaults except what running beside
# the system (own dirs, loopback port, no TLS, no IMAP) needs.
protocols = pop3
listen = 127.0.0.1
base_dir = $DV/base
state_dir = $DV/state
instance_name = mailroom-bench-$DV_PORT
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
ssl = no
disable_plaintext_auth = no
log_path = $DV/dovecot.log
mail_location = maildir:$DV/mail/%u
passdb {
  driver = passwd-file
  args = $DV/passwd
}
userdb {
  driver = passwd-file
  args = $DV/passwd
}
service pop3-login {
  inet_listener pop3 {
    port = $DV_PORT
  }
  inet_listener pop3s {
    port = 0
  }
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
else
    # Dovecot 2.4 renamed the settings used here. Written from its
    # documentation, not yet run: adjust if it does not start.
    cat >"$DV/dovecot.conf" <<EOF
dovecot_config_version = $DOVECOT_VERSION
dovecot_storage_version = $DOVECOT_VERSION
protocols = pop3
listen = 127.0.0.1
base_dir = $DV/base
state_dir = $DV/state
instance_name = mailroom-bench-$DV_PORT
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
ssl = no
auth_allow_cleartext = yes
log_path = $DV/dovecot.log
mail_driver = maildir
mail_path = $DV/mail/%{user}
passdb passwd-file {
  passwd_file_path = $DV/passwd
}
userdb passwd-file {
  passwd_file_path = $DV/passwd
}
service pop3-login {
  inet_listener pop3 {
    port = $DV_PORT
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
fi
dovecot -F -c "$DV/dovecot.conf" </dev/null >"$WORK/dovecot.out" 2>&1 &
DOVECOT_PID=$!
sleep 0.2
kill -0 "$DOVECOT_PID" 2>/dev/null || { cat "$WORK/dovecot.out" "$DV/dovecot.log" >&2 2>/dev/null; die "dovecot exited"; }
wait_greeting "$DV_PORT" dovecot

# --- loads ------------------------------------------------------------------

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"

# Runs the load generator; prints its JSON line and appends it, tagged
# with $1, to the results. Fails the run if the load reported errors.
# With LOAD_CPU set, the load generator runs pinned to that CPU.
load() {
    local tag=$1 out wrap=()
    shift
    [[ -n "${LOAD_CPU:-}" ]] && wrap=(taskset -c "$LOAD_CPU")
    if ! out=$("${wrap[@]}" "$LOADGEN" "$@" 2>"$WORK/loadgen.err"); then
        printf '%s\n' "$out" >&2
        cat "$WORK/loadgen.err" >&2
        die "load '$tag' failed: $LOADGEN $*"
    fi
    printf '%s %s\n' "$tag" "$out" >>"$RESULTS"
    log "$tag: $out"
}

# field TAG NAME: the values of NAME in TAG's result lines, one a line.
field() {
    awk -v tag="$1" '$1 == tag' "$RESULTS" | { grep -o "\"$2\":[-0-9.]*" || true; } | cut -d: -f2
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maximum() { sort -g | tail -n1; }
med() { field "$1" "$2" | median; }

log "warm-up: one login per user on each server, one untimed RETR pass each"
for u in $(seq 0 $((USERS - 1))); do
    "$LOADGEN" pop3-sessions --server "$MR_ADDR" --user "alice$u" --password "$PASSWORD" --sessions 1 --concurrency 1 >/dev/null ||
        die "mailroom: warm-up login of alice$u failed"
done
for u in "${DV_USERS[@]}"; do
    "$LOADGEN" pop3-sessions --server "$DV_ADDR" --user "$u" --password "$PASSWORD" --sessions 1 --concurrency 1 >/dev/null ||
        { tail -n 20 "$DV/dovecot.log" >&2; die "dovecot: warm-up login of $u failed"; }
done
load warm-mr pop3-retr --server "$MR_ADDR" --user alice0 --password "$PASSWORD"
load warm-dv pop3-retr --server "$DV_ADDR" --user alice0 --password "$PASSWORD"

# mailroom is one process: its VmHWM is exact and needs no sampling (which
# costs CPU on the machine under test), except in the RETR runs, where its
# RSS is sampled every 100 ms like Dovecot's: memory while serving RETR,
# without what the logins before used and gave back. Dovecot is a tree of
# processes: sampled every 100 ms (PSS every 500 ms) during the short RETR
# runs, and every 500 ms (PSS every 2.5 s) during the long, steady sessions
# runs, where sampling at 100 ms cost the load generator ~5% of a core.
WATCH_MR=(--watch-pid "$MAILROOM_PID" --watch-interval-ms 0)
WATCH_MR_RETR=(--watch-pid "$MAILROOM_PID" --watch-interval-ms 100)
WATCH_DV=(--watch-pid "$DOVECOT_PID" --watch-interval-ms 100 --watch-pss)
WATCH_DV_SESSIONS=(--watch-pid "$DOVECOT_PID" --watch-interval-ms 500 --watch-pss)

# pin PID…: every thread of each PID onto the CPUs in $PIN_TO.
pin() { for p in "$@"; do taskset -a -p -c "$PIN_TO" "$p" >/dev/null; done; }
# tree_of PID: PID and its children.
tree_of() { echo "$1"; ps -o pid= --ppid "$1"; }

for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    for k in 1 "$PIPELINE"; do
        load "retr$k-mr" pop3-retr --server "$MR_ADDR" --user alice0 --password "$PASSWORD" \
            --pipeline "$k" --passes "$PASSES" "${WATCH_MR_RETR[@]}"
        load "retr$k-dv" pop3-retr --server "$DV_ADDR" --user alice0 --password "$PASSWORD" \
            --pipeline "$k" --passes "$PASSES" "${WATCH_DV[@]}"
    done
    if [[ "$BUSY_POLL" == 1 ]]; then
        # CPU time only for both: the client already keeps one CPU busy.
        load retrspin-mr pop3-retr --server "$MR_ADDR" --user alice0 --password "$PASSWORD" \
            --passes "$PASSES" --busy-poll "${WATCH_MR[@]}"
        load retrspin-dv pop3-retr --server "$DV_ADDR" --user alice0 --password "$PASSWORD" \
            --passes "$PASSES" --busy-poll --watch-pid "$DOVECOT_PID" --watch-interval-ms 0
    fi
    if [[ "$ONE_CPU" == 1 ]]; then
        # Every thread of mailroom, and Dovecot's master with every process
        # it has (the per-connection pop3 process forks from the master and
        # inherits its mask) on CPU 0 with the load generator; put back after.
        PIN_TO=0 pin "$MAILROOM_PID"
        LOAD_CPU=0 load "retr1cpu-mr" pop3-retr --server "$MR_ADDR" --user alice0 \
            --password "$PASSWORD" --passes "$PASSES" "${WATCH_MR[@]}"
        PIN_TO=0-$(($(nproc) - 1)) pin "$MAILROOM_PID"
        PIN_TO=0 pin $(tree_of "$DOVECOT_PID")
        # CPU time only: a sampling thread would share the one CPU.
        LOAD_CPU=0 load "retr1cpu-dv" pop3-retr --server "$DV_ADDR" --user alice0 \
            --password "$PASSWORD" --passes "$PASSES" --watch-pid "$DOVECOT_PID" --watch-interval-ms 0
        PIN_TO=0-$(($(nproc) - 1)) pin $(tree_of "$DOVECOT_PID")
    fi
    sessions=(pop3-sessions --password "$PASSWORD" --users "$USERS" --sessions "$SESSIONS" --concurrency "$CONCURRENCY")
    load sess-mr "${sessions[@]}" --server "$MR_ADDR" --user alice "${WATCH_MR[@]}"
    load sess-dv "${sessions[@]}" --server "$DV_ADDR" --user alice "${WATCH_DV_SESSIONS[@]}"
    if [[ "$SAME_COST" == 1 ]]; then
        load sess-dvsame "${sessions[@]}" --server "$DV_ADDR" --user same "${WATCH_DV_SESSIONS[@]}"
    fi
done

MR_HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$MAILROOM_PID/status")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- checks -------------------------------------------------------------------

WANT_OCTETS=$((MESSAGES * SIZE))
for tag in warm-mr warm-dv; do
    for name in octets stat_octets; do
        got=$(field "$tag" "$name" | head -n1)
        [[ "$got" == "$WANT_OCTETS" ]] ||
            log "WARNING: $tag $name = $got, expected $WANT_OCTETS ($MESSAGES x $SIZE)"
    done
done
for tag in sess-mr sess-dv; do
    got=$(field "$tag" stat_messages | head -n1)
    [[ "$got" == "$MESSAGES" ]] || log "WARNING: $tag: STAT reported $got messages, expected $MESSAGES"
done

# --- report -------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "-" && b != "-" && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
per() { awk -v s="$1" -v n="$2" 'BEGIN { if (s != "-" && n + 0 > 0) printf "%.3f", 1000 * s / n; else printf "-" }'; }
mib() { awk -v k="$1" 'BEGIN { if (k != "" && k + 0 > 0) printf "%.1f", k / 1024; else printf "-" }'; }
row() { printf '%-44s %12s %12s %8s %8s\n' "$@"; }
# Rounds alternate the servers, so a slow spell of a shared machine falls
# on both: the rate ratio within each round shows the spread.
round_ratios() {
    printf '%-44s %s\n' "  ratio in each round" "$(paste -d' ' <(field "$1" msgs_per_s) <(field "$2" msgs_per_s) |
        awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 / $2 }')"
}

echo
echo "POP3 vs Dovecot: mailroom $MAILROOM_REV vs dovecot $DOVECOT_VERSION; $MESSAGES messages x $SIZE octets;"
echo "sessions: $SESSIONS x (connect, USER, PASS, STAT, QUIT), $CONCURRENCY concurrent over $USERS users;"
echo "$(nproc) cores, $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); medians of $ROUNDS round(s);"
echo "load average before: $LOAD_BEFORE, after: $LOAD_AFTER"
echo
row "metric" "mailroom" "dovecot" "ratio" "target"
for k in 1 "$PIPELINE"; do
    label="RETR msgs/s, one session, pipeline $k"
    [[ "$k" == 1 ]] && label="RETR msgs/s, one session, no pipelining"
    a=$(med "retr$k-mr" msgs_per_s) b=$(med "retr$k-dv" msgs_per_s)
    row "$label" "$a" "$b" "$(ratio "$a" "$b")" ">= 2"
    a=$(med "retr$k-mr" mb_per_s) b=$(med "retr$k-dv" mb_per_s)
    row "  MB/s" "$a" "$b" "$(ratio "$a" "$b")" ""
    a=$(per "$(med "retr$k-mr" server_cpu_s)" $((MESSAGES * PASSES))) b=$(per "$(med "retr$k-dv" server_cpu_s)" $((MESSAGES * PASSES)))
    row "  server CPU ms per message" "$a" "$b" "$(ratio "$a" "$b")" ""
    round_ratios "retr$k-mr" "retr$k-dv"
done
# retr_rows TAG LABEL: a RETR load's rate, CPU per message and per-round ratios.
retr_rows() {
    local a b
    a=$(med "$1-mr" msgs_per_s) b=$(med "$1-dv" msgs_per_s)
    row "$2" "$a" "$b" "$(ratio "$a" "$b")" ">= 2"
    a=$(per "$(med "$1-mr" server_cpu_s)" $((MESSAGES * PASSES))) b=$(per "$(med "$1-dv" server_cpu_s)" $((MESSAGES * PASSES)))
    row "  server CPU ms per message" "$a" "$b" "$(ratio "$a" "$b")" ""
    round_ratios "$1-mr" "$1-dv"
}
if [[ "$BUSY_POLL" == 1 ]]; then
    retr_rows retrspin "RETR msgs/s, no pipelining, busy-poll client"
fi
if [[ "$ONE_CPU" == 1 ]]; then
    retr_rows retr1cpu "RETR msgs/s, no pipelining, one CPU"
fi
a=$(med sess-mr sessions_per_s) b=$(med sess-dv sessions_per_s)
row "sessions/s" "$a" "$b" "$(ratio "$a" "$b")" ">= 5"
a=$(med sess-mr p50_ms) b=$(med sess-dv p50_ms)
row "  session latency p50 ms" "$a" "$b" "$(ratio "$a" "$b")" ""
a=$(med sess-mr p99_ms) b=$(med sess-dv p99_ms)
row "  session latency p99 ms" "$a" "$b" "$(ratio "$a" "$b")" ""
a=$(per "$(med sess-mr server_cpu_s)" "$SESSIONS") b=$(per "$(med sess-dv server_cpu_s)" "$SESSIONS")
row "  server CPU ms per session" "$a" "$b" "$(ratio "$a" "$b")" ""
if [[ "$SAME_COST" == 1 ]]; then
    a=$(med sess-mr sessions_per_s) b=$(med sess-dvsame sessions_per_s)
    row "sessions/s, Dovecot with mailroom's hashes" "$a" "$b" "$(ratio "$a" "$b")" ""
    a=$(per "$(med sess-mr server_cpu_s)" "$SESSIONS") b=$(per "$(med sess-dvsame server_cpu_s)" "$SESSIONS")
    row "  server CPU ms per session" "$a" "$b" "$(ratio "$a" "$b")" ""
fi
DV_RSS=$(for t in retr1-dv "retr$PIPELINE-dv" sess-dv sess-dvsame; do field "$t" server_peak_rss_kib; done | maximum)
DV_PSS=$(for t in retr1-dv "retr$PIPELINE-dv" sess-dv sess-dvsame; do field "$t" server_peak_pss_kib; done | maximum)
DV_PROCS=$(for t in retr1-dv "retr$PIPELINE-dv" sess-dv sess-dvsame; do field "$t" server_max_processes; done | maximum)
# Round 1 only: later rounds follow a sessions load, whose peak VmHWM keeps.
# Round 1's RETR runs come before any sessions load; later rounds' follow
# one (20 concurrent logins, each listing 5000 messages), whose memory a
# process may keep.
retr_rss() { for t in "retr1-$1" "retr$PIPELINE-$1"; do field "$t" server_peak_rss_kib | sed -n "$2"; done | maximum; }
MR_RETR_RSS=$(retr_rss mr 1p) DV_RETR_RSS=$(retr_rss dv 1p)
row "peak RSS MiB during round 1's RETR tests" "$(mib "$MR_RETR_RSS")" "$(mib "$DV_RETR_RSS")" "$(ratio "$MR_RETR_RSS" "$DV_RETR_RSS")" ""
if ((ROUNDS > 1)); then
    MR_RETR_RSS=$(retr_rss mr '2,$p') DV_RETR_RSS=$(retr_rss dv '2,$p')
    row "  in later rounds (after a sessions load)" "$(mib "$MR_RETR_RSS")" "$(mib "$DV_RETR_RSS")" "$(ratio "$MR_RETR_RSS" "$DV_RETR_RSS")" ""
fi
row "peak RSS MiB (whole run)" "$(mib "$MR_HWM")" "$(mib "$DV_RSS")" "$(ratio "$MR_HWM" "$DV_RSS")" ""
row "peak PSS MiB (whole run)" "$(mib "$MR_HWM")" "$(mib "$DV_PSS")" "$(ratio "$MR_HWM" "$DV_PSS")" ""
CL=$(for t in retr1-mr retr1-dv; do field "$t" client_cpu_s; done | maximum)
CS=$(for t in sess-mr sess-dv; do field "$t" client_cpu_s; done | maximum)
echo
echo "Ratios are mailroom/dovecot (for latency, CPU and memory, lower is better for mailroom)."
echo "Memory: mailroom is one process (whole run: VmHWM, exact; during RETR: VmRSS sampled every 100 ms)."
echo "Dovecot: the peaks of VmRSS and PSS (sampled, see the script) summed over master"
echo "and its children (up to $DV_PROCS processes); RSS counts shared pages once per process, PSS"
echo "splits them. Server CPU: utime+stime of the server's process tree, reaped children included,"
echo "from the first RETR to the last reply (RETR), or over the whole load (sessions). On a shared"
echo "machine CPU per operation is steadier than the rates, though memory-bound work (Argon2) still"
echo "slows down when other processes compete for the caches."
echo "Load generator: single-threaded; its own CPU was at most ${CL}s in a RETR run and ${CS}s in a"
echo "sessions run (compare with the servers' CPU above); the busy-poll client uses a whole CPU by design."
