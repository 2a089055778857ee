#!/usr/bin/env bash
# Installs the Debian package on this machine and shows that the installed
# server works the way systemd would run it: root-started, privilege-dropped
# to `mailroom`, accepting mail on port 25 into /var/lib/mailroom. Then
# removes the package. Needs root; does not need systemd (none runs here):
# it starts the unit's ExecStart line itself.
#
#   bash packaging/test-deb.sh [path/to/mailroom_*.deb]
#
# Default package: the one packaging/build-deb.sh left in packaging/generated.
# Fails (exit 1) with a clear message when a port it needs is taken, e.g. by
# a running Postfix (MAILROOM_DEB_STOP_MTA=1 stops a running Postfix, Exim
# or Dovecot first), or when mailroom is installed already. A real purge
# keeps the mailroom user and /var/lib/mailroom (the mail); this script
# deletes them at the end only when it created them, and purges the package
# even when a step fails.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*" >&2; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" -eq 0 ]] || fail "must run as root (apt-get install, port 25, privilege drop)"

deb="${1:-$(ls packaging/generated/mailroom_*.deb 2>/dev/null | tail -n1)}"
[[ -n "$deb" && -f "$deb" ]] || fail "no package: run packaging/build-deb.sh first"
deb="$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"

case "$(dpkg-query -W -f='${Status}' mailroom 2>/dev/null || true)" in
    "") ;;
    *" not-installed") ;;
    *" config-files") fail "mailroom's config files are still installed; purge them first (apt-get purge mailroom)" ;;
    *) fail "mailroom is already installed; remove it first (apt-get purge mailroom)" ;;
esac

# The packaged config listens on 127.0.0.1:25/587/465/110/995.
ports=(25 587 465 110 995)
busy() {
    local p out=""
    for p in "${ports[@]}"; do
        if ss -Hltn "sport = :$p" | grep -q .; then
            out+="$p "
        fi
    done
    printf '%s' "$out"
}
taken="$(busy)"
if [[ -n "$taken" && -n "${MAILROOM_DEB_STOP_MTA:-}" ]]; then
    log "ports in use: $taken; stopping Postfix/Exim/Dovecot"
    (postfix stop || service postfix stop || true) >/dev/null 2>&1
    (service exim4 stop || true) >/dev/null 2>&1
    (doveadm stop || service dovecot stop || true) >/dev/null 2>&1
    sleep 1
    taken="$(busy)"
fi
if [[ -n "$taken" ]]; then
    ss -Hltnp | grep -E ":($(echo "${taken% }" | tr ' ' '|'))\b" >&2 || true
    fail "ports in use: $taken (stop that server, or rerun with MAILROOM_DEB_STOP_MTA=1)"
fi

created_user=""
getent passwd mailroom >/dev/null || created_user=1
created_dir=""
[[ -e /var/lib/mailroom ]] || created_dir=1

pid=""
work="$(mktemp -d)"
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    # Purge, not remove: a failed run must not leave a conffile that the
    # next run's install would keep.
    if dpkg -s mailroom >/dev/null 2>&1; then
        apt-get purge -y -qq mailroom >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    if [[ -n "$created_dir" ]]; then rm -rf /var/lib/mailroom; fi
    if [[ -n "$created_user" ]] && getent passwd mailroom >/dev/null; then
        deluser --quiet --system mailroom >/dev/null 2>&1 || true
        delgroup --quiet --system mailroom >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

log "apt-get install $deb"
(cd "$(dirname "$deb")" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$(basename "$deb")")

log "installed files"
for f in /usr/bin/mailroom /etc/mailroom/mailroom.toml /usr/lib/systemd/system/mailroom.service \
    /usr/share/man/man1/mailroom.1.gz /usr/share/man/man1/mailroom-serve.1.gz \
    /usr/share/bash-completion/completions/mailroom /usr/share/doc/mailroom/mailroom.example.toml; do
    [[ -e "$f" ]] || fail "missing $f"
    echo "  $f"
done
dpkg-query -W -f='${Conffiles}\n' mailroom | grep -q /etc/mailroom/mailroom.toml \
    || fail "/etc/mailroom/mailroom.toml is not a conffile"
getent passwd mailroom >/dev/null || fail "postinst did not create the mailroom user"
echo "  user: $(getent passwd mailroom)"
zcat /usr/share/man/man1/mailroom-serve.1.gz | grep -q -- '\\-\\-smtp' || fail "man page lacks --smtp"
man -l /usr/share/man/man1/mailroom-serve.1.gz 2>/dev/null | grep -q -- '--smtp' \
    || [[ ! -x /usr/bin/man ]] || fail "man cannot render mailroom-serve(1)"
bash -n /usr/share/bash-completion/completions/mailroom || fail "bash completion does not parse"
mailroom check --config /etc/mailroom/mailroom.toml

log "mailroom user add debtest (packaged config and data dir)"
echo "deb-test-password" | mailroom --config /etc/mailroom/mailroom.toml user add debtest --password-stdin

log "starting the unit's ExecStart as root: $(grep ^ExecStart= /usr/lib/systemd/system/mailroom.service)"
exec_start="$(sed -n 's/^ExecStart=//p' /usr/lib/systemd/system/mailroom.service)"
# shellcheck disable=SC2086 # the unit's command line, split as systemd would
$exec_start >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 1 100); do
    grep -qx ready "$work/stderr" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/stderr" >&2; fail "server exited before ready"; }
    sleep 0.1
done
grep -qx ready "$work/stderr" || { cat "$work/stderr" >&2; fail "server not ready within 10 s"; }
grep -E '^(listening|ready)' "$work/stderr" | sed 's/^/  /'

user="$(ps -o user= -p "$pid" | tr -d ' ')"
echo "  server pid $pid runs as: $user"
[[ "$user" == "mailroom" ]] || fail "server runs as $user, not mailroom"

# send_to USER: one message to USER@localhost on 127.0.0.1:25 (smtplib),
# then waits for it in /var/lib/mailroom/mail/USER/new.
send_to() {
    local user="$1" found=""
    log "SMTP to $user@localhost on 127.0.0.1:25 (python smtplib)"
    python3 - "$user" <<'PY'
import smtplib, sys
from email.message import EmailMessage
msg = EmailMessage()
msg["From"] = "sender@remote.test"
msg["To"] = f"{sys.argv[1]}@localhost"
msg["Subject"] = f"package test for {sys.argv[1]}"
msg.set_content("delivered by the packaged mailroom\n")
with smtplib.SMTP("127.0.0.1", 25, timeout=30) as s:
    code, banner = s.ehlo("client.test")
    print("  EHLO:", code, banner.decode().splitlines()[0])
    refused = s.send_message(msg)
    assert not refused, refused
    print("  message accepted")
PY
    log "checking /var/lib/mailroom/mail/$user/new"
    for _ in $(seq 1 50); do
        found="$(grep -l "Subject: package test for $user" /var/lib/mailroom/mail/"$user"/new/* 2>/dev/null | head -n1 || true)"
        [[ -n "$found" ]] && break
        sleep 0.1
    done
    [[ -n "$found" ]] || fail "message not in /var/lib/mailroom/mail/$user/new"
    echo "  $found ($(stat -c '%U %s bytes' "$found"))"
}

send_to debtest

# The usual order on a real machine: the service is already running (as
# mailroom) when root adds a user.
log "mailroom user add debtest2 while the server runs"
echo "deb-test-password" | mailroom --config /etc/mailroom/mailroom.toml user add debtest2 --password-stdin
send_to debtest2

log "stopping the server (SIGTERM)"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[[ "$status" -eq 0 ]] || { cat "$work/stderr" >&2; fail "server exited with $status after SIGTERM"; }

log "apt-get remove mailroom"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq mailroom >/dev/null
[[ ! -e /usr/bin/mailroom ]] || fail "/usr/bin/mailroom still there after remove"
[[ -e /etc/mailroom/mailroom.toml ]] || fail "conffile removed on remove (should stay until purge)"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq mailroom >/dev/null
[[ ! -e /etc/mailroom/mailroom.toml ]] || fail "conffile still there after purge"
echo "package test: 1 passed, 0 failed"
