#!/usr/bin/env bash
# SMTP intake benchmark: Postfix's smtp-source pushes the same load into
# `mailroom serve` (release build) and into a private Postfix 3.7 instance
# from Debian, in the same run, and prints messages/s accepted, messages/s
# delivered into the Maildir, and peak memory for each. Not a test: it
# asserts nothing beyond "all messages arrived". See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   BENCH_MESSAGES [5000]  BENCH_SESSIONS [20]  BENCH_SIZE [2048 bytes]
#   BENCH_POSTFIX_PORT [2526, or the next free one]
#   BENCH_SKIP_POSTFIX=1   only measure mailroom
#   BENCH_SKIP_MAILROOM=1  only measure Postfix
#   BENCH_MAILROOM_BIN     use this binary instead of building the release one
#   BENCH_TIMEOUT [600]    seconds to wait for delivery before giving up
#   CARGO_TARGET_DIR       [/var/tmp/mailroom-target]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

MESSAGES=${BENCH_MESSAGES:-5000}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-2048}
TIMEOUT=${BENCH_TIMEOUT:-600}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/mailroom-target}"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
# shellcheck source=bench/postfix-lib.sh
. bench/postfix-lib.sh  # the script has cd'd to the repository root
now() { date +%s.%N; }

# --- prerequisites ----------------------------------------------------------

if ! command -v smtp-source >/dev/null 2>&1 && [[ ! -x /usr/sbin/smtp-source ]]; then
    [[ "$(id -u)" -eq 0 ]] || die "smtp-source missing (apt-get install postfix) and not root"
    log "installing postfix (for smtp-source and the reference MTA)"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    own_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postfix >/dev/null
    [[ -n "$own_policy" ]] && rm -f /usr/sbin/policy-rc.d
fi
export PATH="$PATH:/usr/sbin:/sbin"
if [[ -z "${BENCH_SKIP_POSTFIX:-}" && "$(id -u)" -ne 0 ]]; then
    die "the Postfix half needs root (private instance, local user); set BENCH_SKIP_POSTFIX=1 to skip it"
fi

MAILROOM="${BENCH_MAILROOM_BIN:-$CARGO_TARGET_DIR/release/mailroom}"
if [[ -z "${BENCH_SKIP_MAILROOM:-}" && -z "${BENCH_MAILROOM_BIN:-}" ]]; then
    log "building mailroom (release)"
    cargo build --release -p mailroom >&2
    [[ -x "$MAILROOM" ]] || die "no binary at $MAILROOM"
fi

WORK=$(mktemp -d /tmp/mailroom-bench.XXXXXX)
chmod 755 "$WORK"
MAILROOM_PID=""
POSTFIX_CONF=""
POSTFIX_USER_CREATED=""
POSTFIX_BASELINE=""
SAMPLER_PID=""

cleanup() {
    set +e
    [[ -n "$SAMPLER_PID" ]] && kill "$SAMPLER_PID" 2>/dev/null
    if [[ -n "$MAILROOM_PID" ]] && kill -0 "$MAILROOM_PID" 2>/dev/null; then
        kill -TERM "$MAILROOM_PID"
        for _ in $(seq 50); do kill -0 "$MAILROOM_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$MAILROOM_PID" 2>/dev/null
    fi
    if [[ -n "$POSTFIX_CONF" ]]; then
        postfix -c "$POSTFIX_CONF" stop >/dev/null 2>&1
        for _ in $(seq 100); do
            [[ -f "$WORK/postfix-spool/pid/master.pid" ]] || break
            pid=$(tr -d ' ' <"$WORK/postfix-spool/pid/master.pid" 2>/dev/null)
            [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        postfix -c "$POSTFIX_CONF" abort >/dev/null 2>&1
    fi
    if [[ -n "$POSTFIX_USER_CREATED" ]]; then
        userdel -r alice >/dev/null 2>&1
    elif [[ -n "$POSTFIX_BASELINE" ]]; then
        # alice existed: remove only the messages this run delivered.
        comm -13 "$POSTFIX_BASELINE" <(ls /home/alice/Maildir/new 2>/dev/null | sort) |
            while read -r f; do rm -f "/home/alice/Maildir/new/$f"; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

count_files() { { find "$1" -maxdepth 1 -type f 2>/dev/null || true; } | wc -l; }

# Waits until directory $1 holds $2 files; sets DONE_AT to that time.
wait_for_files() {
    local dir=$1 want=$2 deadline
    deadline=$(($(date +%s) + TIMEOUT))
    while (($(count_files "$dir") < want)); do
        (($(date +%s) < deadline)) || die "only $(count_files "$dir") of $want messages in $dir after ${TIMEOUT}s"
        sleep 0.05
    done
    DONE_AT=$(now)
}

# Samples, every 100 ms, the RSS and PSS (KiB) summed over the PIDs that
# command $1 prints; keeps the peak of each in file $2 as "rss pss".
start_rss_sampler() {
    local pids_cmd=$1 out=$2
    echo "0 0" >"$out"
    (
        peak_rss=0 peak_pss=0
        while true; do
            rss=0 pss=0
            for pid in $(eval "$pids_cmd"); do
                r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
                p=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
                rss=$((rss + ${r:-0}))
                pss=$((pss + ${p:-0}))
            done
            ((rss > peak_rss)) && peak_rss=$rss
            ((pss > peak_pss)) && peak_pss=$pss
            echo "$peak_rss $peak_pss" >"$out"
            sleep 0.1
        done
    ) &
    SAMPLER_PID=$!
}

stop_rss_sampler() {
    [[ -n "$SAMPLER_PID" ]] && kill "$SAMPLER_PID" 2>/dev/null
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
}

# Runs smtp-source against $1:$2; sets LOAD_START and LOAD_END.
run_load() {
    local host=$1 port=$2
    LOAD_START=$(now)
    smtp-source -c -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" \
        -f bench@example.test -t alice@example.test "$host:$port" >"$WORK/smtp-source.out" 2>&1 ||
        { cat "$WORK/smtp-source.out" >&2; die "smtp-source failed against $host:$port"; }
    LOAD_END=$(now)
}

rate() { awk -v n="$1" -v s="$2" -v e="$3" 'BEGIN { d = e - s; if (d <= 0) d = 0.001; printf "%.0f", n / d }'; }

# --- mailroom ---------------------------------------------------------------

MR_ACCEPT="-" MR_DELIVER="-" MR_RSS="-"
if [[ -z "${BENCH_SKIP_MAILROOM:-}" ]]; then
    log "mailroom: $MESSAGES messages of $SIZE bytes over $SESSIONS sessions"
    DATA="$WORK/mailroom-data"
    echo "bench-password" | "$MAILROOM" --data-dir "$DATA" user add alice --password-stdin >/dev/null
    printf '[limits]\nmax_connections = 200\nmax_connections_per_ip = 100\n' >"$WORK/mailroom.toml"
    "$MAILROOM" serve --data-dir "$DATA" --config "$WORK/mailroom.toml" \
        --hostname mx.example.test --domain example.test \
        --smtp 127.0.0.1:0 --submission off --smtps off --pop3 off --pop3s off \
        2>"$WORK/mailroom.log" &
    MAILROOM_PID=$!
    for _ in $(seq 300); do
        grep -qx ready "$WORK/mailroom.log" && break
        kill -0 "$MAILROOM_PID" 2>/dev/null || { cat "$WORK/mailroom.log" >&2; die "mailroom serve exited"; }
        sleep 0.1
    done
    grep -qx ready "$WORK/mailroom.log" || { cat "$WORK/mailroom.log" >&2; die "mailroom serve not ready"; }
    MR_ADDR=$(awk '$1 == "listening" && $2 == "smtp" { print $3; exit }' "$WORK/mailroom.log")
    MR_PORT=${MR_ADDR##*:}

    run_load 127.0.0.1 "$MR_PORT"
    MR_START=$LOAD_START MR_END=$LOAD_END
    wait_for_files "$DATA/mail/alice/new" "$MESSAGES"
    MR_DONE=$DONE_AT
    MR_RSS=$(awk '/^VmHWM:/ {print $2}' "/proc/$MAILROOM_PID/status")
    kill -TERM "$MAILROOM_PID"
    wait "$MAILROOM_PID" || log "mailroom serve exited with status $?"
    MAILROOM_PID=""
    MR_ACCEPT=$(rate "$MESSAGES" "$MR_START" "$MR_END")
    MR_DELIVER=$(rate "$MESSAGES" "$MR_START" "$MR_DONE")
    log "mailroom: accepted $MR_ACCEPT msg/s, delivered $MR_DELIVER msg/s, peak RSS ${MR_RSS} KiB"
fi

# --- Postfix ------------------------------------------------------------------

PF_ACCEPT="-" PF_DELIVER="-" PF_RSS="-" PF_PSS="-" PF_VERSION="postfix (skipped)"
if [[ -z "${BENCH_SKIP_POSTFIX:-}" ]]; then
    PF_VERSION="postfix $(postconf -d -h mail_version 2>/dev/null || echo '?')"
    port_free() { python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
    PF_PORT=${BENCH_POSTFIX_PORT:-2526}
    while ! port_free "$PF_PORT"; do PF_PORT=$((PF_PORT + 1)); done
    log "$PF_VERSION: private instance on 127.0.0.1:$PF_PORT"

    if ! id alice >/dev/null 2>&1; then
        useradd -m -s /usr/sbin/nologin alice
        POSTFIX_USER_CREATED=1
    else
        POSTFIX_BASELINE="$WORK/alice-baseline"
        ls /home/alice/Maildir/new 2>/dev/null | sort >"$POSTFIX_BASELINE" || true
    fi
    PF_MAILDIR=/home/alice/Maildir/new
    PF_BEFORE=$(count_files "$PF_MAILDIR")

    POSTFIX_CONF="$WORK/postfix-conf"
    mkdir -p "$POSTFIX_CONF"
    # Postfix defaults except what a private instance on loopback needs.
    cat >"$POSTFIX_CONF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $WORK/postfix-spool
data_directory = $WORK/postfix-data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.example.test
mydomain = example.test
myorigin = \$myhostname
mydestination = example.test, \$myhostname, localhost
mynetworks = 127.0.0.0/8
home_mailbox = Maildir/
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
maillog_file = $WORK/postfix.log
maillog_file_prefixes = $WORK
biff = no
EOF
    postfix_master_cf
    postfix_start

    run_load 127.0.0.1 "$PF_PORT"
    PF_START=$LOAD_START PF_END=$LOAD_END
    wait_for_files "$PF_MAILDIR" $((PF_BEFORE + MESSAGES))
    PF_DONE=$DONE_AT
    stop_rss_sampler
    read -r PF_RSS PF_PSS <"$WORK/postfix.rss"
    PF_ACCEPT=$(rate "$MESSAGES" "$PF_START" "$PF_END")
    PF_DELIVER=$(rate "$MESSAGES" "$PF_START" "$PF_DONE")
    log "postfix: accepted $PF_ACCEPT msg/s, delivered $PF_DELIVER msg/s, peak RSS ${PF_RSS} KiB, PSS ${PF_PSS} KiB (sums over processes)"
fi

# --- report -------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

echo
echo "SMTP intake: $MESSAGES messages x $SIZE bytes, $SESSIONS sessions, smtp-source -> 127.0.0.1 ($(nproc) cores)"
printf '%-30s %15s %16s %15s %15s\n' "server" "accepted msg/s" "delivered msg/s" "peak RSS (MiB)" "peak PSS (MiB)"
mib() { awk -v k="$1" 'BEGIN { if (k + 0 > 0) printf "%.1f", k / 1024; else printf "-" }'; }
MR_LABEL="mailroom (release)"
[[ -n "${BENCH_MAILROOM_BIN:-}" ]] && MR_LABEL="mailroom ($(basename "$BENCH_MAILROOM_BIN"))"
printf '%-30s %15s %16s %15s %15s\n' "$MR_LABEL" "$MR_ACCEPT" "$MR_DELIVER" "$(mib "$MR_RSS")" "$(mib "$MR_RSS")"
printf '%-30s %15s %16s %15s %15s\n' "$PF_VERSION" "$PF_ACCEPT" "$PF_DELIVER" "$(mib "$PF_RSS")" "$(mib "$PF_PSS")"
printf '%-30s %15s %16s %15s %15s\n' "ratio mailroom/postfix" "$(ratio "$MR_ACCEPT" "$PF_ACCEPT")" \
    "$(ratio "$MR_DELIVER" "$PF_DELIVER")" "$(ratio "$MR_RSS" "$PF_RSS")" "$(ratio "$MR_RSS" "$PF_PSS")"
echo
echo "mailroom delivers before its 250 (fsync'd), so its two rates match; Postfix"
echo "acknowledges once the message is in its queue and delivers afterwards."
echo "Memory: mailroom is one process (VmHWM; its RSS and PSS columns are the same"
echo "number). Postfix: the peaks of VmRSS and of PSS summed over master and its"
echo "children, sampled every 100 ms; RSS counts shared pages once per process, PSS"
echo "splits them, so PSS is the fairer comparison."
