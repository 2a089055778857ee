#!/usr/bin/env bash
# Relay benchmark: Postfix's smtp-source pushes mail for a remote domain
# (user@sink.test) into `mailroom serve` (release build) configured to relay
# from 127.0.0.0/8 with sink.test routed to Postfix's smtp-sink, and then, in
# the same run, into a private Postfix 3.7 instance from Debian relaying the
# same load to the same sink. Prints, for each server, messages/s accepted,
# messages/s relayed (until the sink has counted them all) and peak memory.
# Not a test: it asserts nothing beyond "all messages reached the sink", and
# reports what looked wrong (stuck queue, duplicates, WARN/ERROR in mailroom's
# log). See bench/README.md.
#
# Environment knobs (defaults in brackets):
#   BENCH_MESSAGES [5000]  BENCH_SESSIONS [20]  BENCH_SIZE [2048 bytes]
#   BENCH_POSTFIX_PORT [2526, or the next free one]
#   BENCH_SINK_PORT    [2527, or the next free one]
#   BENCH_SKIP_POSTFIX=1   only measure mailroom
#   BENCH_SKIP_MAILROOM=1  only measure Postfix
#   BENCH_MAILROOM_BIN     use this binary instead of building the release one
#   BENCH_TIMEOUT [600]    seconds to wait for the sink before giving up
#   BENCH_KEEP=1           keep the work directory (logs) instead of removing it
#   CARGO_TARGET_DIR       [/var/tmp/mailroom-target]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

MESSAGES=${BENCH_MESSAGES:-5000}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-2048}
TIMEOUT=${BENCH_TIMEOUT:-600}
SENDER=bench@example.test
RCPT=user@sink.test
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/mailroom-target}"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
# shellcheck source=bench/postfix-lib.sh
. bench/postfix-lib.sh  # the script has cd'd to the repository root
now() { date +%s.%N; }

# --- prerequisites (as in smtp-intake.sh) ---------------------------------------

if ! command -v smtp-source >/dev/null 2>&1 && [[ ! -x /usr/sbin/smtp-source ]]; then
    [[ "$(id -u)" -eq 0 ]] || die "smtp-source missing (apt-get install postfix) and not root"
    log "installing postfix (for smtp-source, smtp-sink and the reference MTA)"
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
    die "the Postfix half needs root (private instance); set BENCH_SKIP_POSTFIX=1 to skip it"
fi

MAILROOM="${BENCH_MAILROOM_BIN:-$CARGO_TARGET_DIR/release/mailroom}"
if [[ -z "${BENCH_SKIP_MAILROOM:-}" && -z "${BENCH_MAILROOM_BIN:-}" ]]; then
    log "building mailroom (release)"
    cargo build --release -p mailroom >&2
fi
[[ -n "${BENCH_SKIP_MAILROOM:-}" || -x "$MAILROOM" ]] || die "no binary at $MAILROOM"

WORK=$(mktemp -d /tmp/mailroom-relay-bench.XXXXXX)
chmod 755 "$WORK"
MAILROOM_PID=""
MAILROOM_SUMMARY_DONE=""
POSTFIX_CONF=""
SINK_PID=""
SAMPLER_PID=""

# Prints the WARN/ERROR lines of mailroom's log (ANSI colours stripped),
# grouped by message with counts. Runs once, on success or failure.
mailroom_log_summary() {
    [[ -z "$MAILROOM_SUMMARY_DONE" && -s "$WORK/mailroom.log" ]] || return 0
    MAILROOM_SUMMARY_DONE=1
    local plain="$WORK/mailroom.log.plain" n
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/mailroom.log" >"$plain"
    n=$(grep -cE '\b(WARN|ERROR)\b' "$plain" || true)
    if [[ "$n" -eq 0 ]]; then
        echo "mailroom log: no WARN or ERROR lines ($(wc -l <"$plain") lines in all)"
        return 0
    fi
    echo "mailroom log: $n WARN/ERROR lines; distinct messages (timestamps and ids dropped), most frequent first:"
    grep -E '\b(WARN|ERROR)\b' "$plain" |
        sed -E 's/^[0-9T:.Z-]+ +//; s/[0-9a-f]{16,}/<id>/g; s/[0-9]+(\.[0-9]+)?(ms|s|µs)/<t>/g' |
        sort | uniq -c | sort -rn | head -15 | sed 's/^/  /'
}

# Stops the private Postfix instance, if one is running, and waits for master.
stop_postfix() {
    [[ -n "$POSTFIX_CONF" ]] || return 0
    postfix -c "$POSTFIX_CONF" stop >/dev/null 2>&1 || true
    for _ in $(seq 100); do
        [[ -f "$WORK/postfix-spool/pid/master.pid" ]] || break
        pid=$(tr -d ' ' <"$WORK/postfix-spool/pid/master.pid" 2>/dev/null || true)
        [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    postfix -c "$POSTFIX_CONF" abort >/dev/null 2>&1 || true
    POSTFIX_CONF=""
}

cleanup() {
    local status=$?
    set +e
    [[ -n "$SAMPLER_PID" ]] && kill "$SAMPLER_PID" 2>/dev/null
    if [[ -n "$MAILROOM_PID" ]] && kill -0 "$MAILROOM_PID" 2>/dev/null; then
        kill -TERM "$MAILROOM_PID"
        for _ in $(seq 50); do kill -0 "$MAILROOM_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$MAILROOM_PID" 2>/dev/null
    fi
    mailroom_log_summary >&2
    stop_postfix
    if [[ -n "$SINK_PID" ]]; then
        kill -TERM "$SINK_PID" 2>/dev/null
        wait "$SINK_PID" 2>/dev/null
    fi
    if [[ -n "${BENCH_KEEP:-}" ]]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    return "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
free_port_from() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }

# --- the sink -------------------------------------------------------------------
# One smtp-sink for the whole run. With -c it writes running counters
# ("sess=N quit=N mesg=N", one update per event, separated by CR) to stdout,
# flushed each time; mesg counts messages whose final "." it has received.
# Each phase reads the counter before it starts and waits for +MESSAGES.

SINK_PORT=$(free_port_from "${BENCH_SINK_PORT:-2527}")
SINK_OPTS=(-c -h sink.test)
if [[ "$(id -u)" -eq 0 ]]; then
    # smtp-sink refuses to run as root without -u.
    if id postfix >/dev/null 2>&1; then SINK_OPTS+=(-u postfix); else SINK_OPTS+=(-u nobody); fi
fi
smtp-sink "${SINK_OPTS[@]}" "127.0.0.1:$SINK_PORT" 256 >"$WORK/sink.out" 2>"$WORK/sink.err" &
SINK_PID=$!
for _ in $(seq 100); do port_free "$SINK_PORT" || break; sleep 0.05; done
kill -0 "$SINK_PID" 2>/dev/null || { cat "$WORK/sink.err" >&2; die "smtp-sink did not start"; }
port_free "$SINK_PORT" && die "smtp-sink not listening on 127.0.0.1:$SINK_PORT"
log "smtp-sink on 127.0.0.1:$SINK_PORT"

# The sink's counter $1 (mesg, sess or quit; 0 before the first update).
sink_counter() {
    local c
    # Only whole records (CR-terminated): the last one may be half written.
    c=$(tail -c 256 "$WORK/sink.out" 2>/dev/null | grep -ao $'sess=[0-9]* quit=[0-9]* mesg=[0-9]*\r' |
        tail -n 1 | sed -n "s/.*$1=\([0-9]*\).*/\1/p" || true)
    echo "${c:-0}"
}
sink_count() { sink_counter mesg; }

# Waits until the sink has counted $1 messages; sets DONE_AT to that time.
# Runs $2 (a diagnostic command) before giving up.
wait_for_sink() {
    local want=$1 diag=$2 deadline
    deadline=$(($(date +%s) + TIMEOUT))
    while (($(sink_count) < want)); do
        if (($(date +%s) >= deadline)); then
            log "the sink has $(sink_count) of $want messages after ${TIMEOUT}s"
            eval "$diag" >&2 || true
            die "timed out waiting for the sink"
        fi
        sleep 0.05
    done
    DONE_AT=$(now)
}

# Polls command $1 until its output contains "Mail queue is empty" or $2
# seconds pass; sets QUEUE_EMPTY=1/"" and leaves the last output in
# $WORK/queue.out.
wait_queue_empty() {
    local cmd=$1 secs=$2 deadline
    deadline=$(($(date +%s) + secs))
    QUEUE_EMPTY=""
    while true; do
        eval "$cmd" >"$WORK/queue.out" 2>&1 || true
        grep -q "Mail queue is empty" "$WORK/queue.out" && { QUEUE_EMPTY=1; return 0; }
        (($(date +%s) < deadline)) || return 0
        sleep 0.2
    done
}

# --- measurement helpers (as in smtp-intake.sh) ------------------------------------

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

# Runs smtp-source against 127.0.0.1:$1; sets LOAD_START and LOAD_END.
run_load() {
    local port=$1
    LOAD_START=$(now)
    smtp-source -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" \
        -f "$SENDER" -t "$RCPT" "127.0.0.1:$port" >"$WORK/smtp-source.out" 2>&1 ||
        { cat "$WORK/smtp-source.out" >&2; die "smtp-source failed against 127.0.0.1:$port"; }
    LOAD_END=$(now)
}

rate() { awk -v n="$1" -v s="$2" -v e="$3" 'BEGIN { d = e - s; if (d <= 0) d = 0.001; printf "%.0f", n / d }'; }

NOTES=()
note() { NOTES+=("$*"); log "$*"; }

# --- mailroom ---------------------------------------------------------------------

MR_SINK_SESS="-" MR_ACCEPT="-" MR_RELAY="-" MR_RSS="-"
if [[ -z "${BENCH_SKIP_MAILROOM:-}" ]]; then
    log "mailroom: $MESSAGES messages of $SIZE bytes over $SESSIONS sessions, relayed to the sink"
    DATA="$WORK/mailroom-data"
    # Everything but SMTP off; connection limits raised as in smtp-intake.sh
    # (20 sessions from one address); queue settings are the defaults.
    cat >"$WORK/mailroom.toml" <<EOF
hostname = "relay.example.test"
data_dir = "$DATA"
trusted_networks = ["127.0.0.0/8"]

[relay_map]
"sink.test" = "127.0.0.1:$SINK_PORT"

[listen]
smtp = "127.0.0.1:0"
submission = "off"
smtps = "off"
pop3 = "off"
pop3s = "off"
metrics = "off"

[limits]
max_connections = 200
max_connections_per_ip = 100
EOF
    "$MAILROOM" check --config "$WORK/mailroom.toml" --data-dir "$DATA" >"$WORK/check.out" 2>&1 ||
        { cat "$WORK/check.out" >&2; die "mailroom check rejected the configuration"; }
    "$MAILROOM" serve --config "$WORK/mailroom.toml" --data-dir "$DATA" 2>"$WORK/mailroom.log" &
    MAILROOM_PID=$!
    for _ in $(seq 300); do
        grep -qx ready "$WORK/mailroom.log" && break
        kill -0 "$MAILROOM_PID" 2>/dev/null || { cat "$WORK/mailroom.log" >&2; die "mailroom serve exited"; }
        sleep 0.1
    done
    grep -qx ready "$WORK/mailroom.log" || { cat "$WORK/mailroom.log" >&2; die "mailroom serve not ready"; }
    MR_ADDR=$(awk '$1 == "listening" && $2 == "smtp" { print $3; exit }' "$WORK/mailroom.log")
    MR_PORT=${MR_ADDR##*:}
    [[ -n "$MR_PORT" ]] || { cat "$WORK/mailroom.log" >&2; die "no smtp listener in mailroom's log"; }
    others=$(awk '$1 == "listening" && $2 != "smtp" { printf " %s", $2 }' "$WORK/mailroom.log")
    [[ -z "$others" ]] || note "mailroom: listeners besides smtp are up:$others (config says off)"

    MR_QUEUE="\"\$MAILROOM\" queue list --config \"\$WORK/mailroom.toml\" --data-dir \"\$DATA\""
    BASE=$(sink_count) BASE_SESS=$(sink_counter sess)
    run_load "$MR_PORT"
    MR_START=$LOAD_START MR_END=$LOAD_END
    wait_for_sink $((BASE + MESSAGES)) "$MR_QUEUE | tail -n 20"
    MR_DONE=$DONE_AT
    MR_RSS=$(awk '/^VmHWM:/ {print $2}' "/proc/$MAILROOM_PID/status")
    MR_ACCEPT=$(rate "$MESSAGES" "$MR_START" "$MR_END")
    MR_RELAY=$(rate "$MESSAGES" "$MR_START" "$MR_DONE")
    log "mailroom: accepted $MR_ACCEPT msg/s, relayed $MR_RELAY msg/s, peak RSS ${MR_RSS} KiB"

    # The sink has everything: the queue should drain at once.
    wait_queue_empty "$MR_QUEUE" 30
    if [[ -z "$QUEUE_EMPTY" ]]; then
        note "mailroom: queue not empty 30 s after the sink got all $MESSAGES messages: $(grep -c . "$WORK/queue.out") lines of 'queue list', first ones:"
        head -n 10 "$WORK/queue.out" | sed 's/^/    /' >&2
    fi
    sleep 1 # late duplicates, if any
    extra=$(($(sink_count) - BASE - MESSAGES))
    ((extra == 0)) || note "mailroom: the sink counted $extra messages more than were sent (duplicates)"
    kill -TERM "$MAILROOM_PID"
    wait "$MAILROOM_PID" || note "mailroom serve exited with status $? on SIGTERM"
    MAILROOM_PID=""
    # The sink's sess counts sessions that ended: read it once the relay's
    # cached connections are closed.
    sleep 0.5
    MR_SINK_SESS=$(($(sink_counter sess) - BASE_SESS))
fi

# --- Postfix --------------------------------------------------------------------------

PF_SINK_SESS="-" PF_ACCEPT="-" PF_RELAY="-" PF_RSS="-" PF_PSS="-" PF_VERSION="postfix (skipped)"
if [[ -z "${BENCH_SKIP_POSTFIX:-}" ]]; then
    PF_VERSION="postfix $(postconf -d -h mail_version 2>/dev/null || echo '?')"
    PF_PORT=$(free_port_from "${BENCH_POSTFIX_PORT:-2526}")
    log "$PF_VERSION: private instance on 127.0.0.1:$PF_PORT relaying sink.test to the sink"

    POSTFIX_CONF="$WORK/postfix-conf"
    mkdir -p "$POSTFIX_CONF"
    # Postfix defaults (concurrency, connection cache, in_flow_delay, ...)
    # except what a private relay on loopback needs. No TLS on either side:
    # smtp-sink does not offer STARTTLS, so mailroom's opportunistic TLS is
    # not used either.
    cat >"$POSTFIX_CONF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $WORK/postfix-spool
data_directory = $WORK/postfix-data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.example.test
mydomain = example.test
myorigin = \$myhostname
mydestination = \$myhostname, localhost
mynetworks = 127.0.0.0/8
transport_maps = texthash:$POSTFIX_CONF/transport
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
maillog_file = $WORK/postfix.log
maillog_file_prefixes = $WORK
biff = no
EOF
    echo "sink.test smtp:[127.0.0.1]:$SINK_PORT" >"$POSTFIX_CONF/transport"
    postfix_master_cf
    postfix_start

    PF_QUEUE="postqueue -c \"\$POSTFIX_CONF\" -p"
    BASE=$(sink_count) BASE_SESS=$(sink_counter sess)
    run_load "$PF_PORT"
    PF_START=$LOAD_START PF_END=$LOAD_END
    wait_for_sink $((BASE + MESSAGES)) "$PF_QUEUE | tail -n 20; tail -n 20 \"\$WORK/postfix.log\""
    PF_DONE=$DONE_AT
    stop_rss_sampler
    read -r PF_RSS PF_PSS <"$WORK/postfix.rss"
    PF_ACCEPT=$(rate "$MESSAGES" "$PF_START" "$PF_END")
    PF_RELAY=$(rate "$MESSAGES" "$PF_START" "$PF_DONE")
    log "postfix: accepted $PF_ACCEPT msg/s, relayed $PF_RELAY msg/s, peak RSS ${PF_RSS} KiB, PSS ${PF_PSS} KiB (sums over processes)"

    wait_queue_empty "$PF_QUEUE" 30
    [[ -n "$QUEUE_EMPTY" ]] || note "postfix: queue not empty 30 s after the sink got all $MESSAGES messages"
    sleep 1
    extra=$(($(sink_count) - BASE - MESSAGES))
    ((extra == 0)) || note "postfix: the sink counted $extra messages more than were sent (duplicates)"
    sent=$(grep -c 'status=sent' "$WORK/postfix.log" || true)
    [[ "$sent" -eq "$MESSAGES" ]] || note "postfix: $sent status=sent lines in its log, expected $MESSAGES"
    stop_postfix
    sleep 0.5
    PF_SINK_SESS=$(($(sink_counter sess) - BASE_SESS))
fi

# --- report -------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
mib() { awk -v k="$1" 'BEGIN { if (k + 0 > 0) printf "%.1f", k / 1024; else printf "-" }'; }

echo
echo "Relay: $MESSAGES messages x $SIZE bytes, $SESSIONS sessions, smtp-source -> server -> smtp-sink, all on 127.0.0.1 ($(nproc) cores)"
printf '%-36s %15s %15s %15s %15s\n' "server" "accepted msg/s" "relayed msg/s" "peak RSS (MiB)" "peak PSS (MiB)"
MR_LABEL="mailroom (release)"
[[ -n "${BENCH_MAILROOM_BIN:-}" ]] && MR_LABEL="mailroom ($(basename "$BENCH_MAILROOM_BIN"))"
[[ -n "${BENCH_SKIP_MAILROOM:-}" ]] && MR_LABEL="mailroom (skipped)"
printf '%-36s %15s %15s %15s %15s\n' "$MR_LABEL" "$MR_ACCEPT" "$MR_RELAY" "$(mib "$MR_RSS")" "$(mib "$MR_RSS")"
printf '%-36s %15s %15s %15s %15s\n' "$PF_VERSION" "$PF_ACCEPT" "$PF_RELAY" "$(mib "$PF_RSS")" "$(mib "$PF_PSS")"
printf '%-36s %15s %15s %15s %15s\n' "ratio mailroom/postfix" "$(ratio "$MR_ACCEPT" "$PF_ACCEPT")" \
    "$(ratio "$MR_RELAY" "$PF_RELAY")" "$(ratio "$MR_RSS" "$PF_RSS")" "$(ratio "$MR_RSS" "$PF_PSS")"
echo
echo "Target (issue 4): relayed msg/s at least 2x Postfix."
echo "accepted = messages / smtp-source wall time; relayed = messages / time from the"
echo "start of the load until smtp-sink has received the last one. Both servers"
echo "queue (fsync) before their 250 and relay afterwards."
echo "Memory: mailroom is one process (VmHWM; its RSS and PSS columns are the same"
echo "number). Postfix: the peaks of VmRSS and of PSS summed over master and its"
echo "children, sampled every 100 ms; PSS is the fairer comparison."
echo "SMTP sessions the sink saw: mailroom $MR_SINK_SESS, Postfix $PF_SINK_SESS (for $MESSAGES messages each)."
if ((${#NOTES[@]} > 0)); then
    echo
    echo "Anomalies:"
    printf '  - %s\n' "${NOTES[@]}"
fi
echo
mailroom_log_summary
