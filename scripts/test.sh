#!/usr/bin/env bash
# The one command that runs mailroom's whole test suite on a fresh Debian
# machine: installs the real peers the end-to-end tests talk to (swaks, curl,
# Postfix's smtp-source, fetchmail, Dovecot, Python), then runs rustfmt,
# clippy and every test in the workspace. Any failure fails the run.
#
# Environment:
#   CI=true                 tests that need a missing tool fail instead of skipping
#   CARGO_TARGET_DIR        build directory (default /var/tmp/mailroom-target)
#   MAILROOM_SKIP_APT=1     never touch apt (report missing packages and go on)
#   MAILROOM_TEST_ARGS      extra arguments for `cargo test` (e.g. "-- --nocapture")
#
# See docs/testing.md.
set -euo pipefail

cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/mailroom-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if [[ -n "${CI:-}" ]]; then
    export CI
fi

# Debian packages the tests need, and one file each installs (what we check
# to decide whether the package is there: cheaper and more robust than dpkg
# queries, and it also accepts a tool installed some other way).
packages=(
    "swaks:/usr/bin/swaks"
    "curl:/usr/bin/curl"
    "postfix:/usr/sbin/smtp-source"
    "fetchmail:/usr/bin/fetchmail"
    "dovecot-pop3d:/usr/lib/dovecot/pop3"
    "openssl:/usr/bin/openssl"
    "libnet-ssleay-perl:/usr/lib/x86_64-linux-gnu/perl5/5.36/Net/SSLeay.pm"
    "libpython3.11-testsuite:/usr/lib/python3.11/test/test_smtplib.py"
    "groff-base:/usr/bin/groff"
)

log() { printf '== %s\n' "$*" >&2; }

missing=()
for entry in "${packages[@]}"; do
    pkg="${entry%%:*}"
    file="${entry#*:}"
    if [[ ! -e "$file" ]]; then
        missing+=("$pkg")
    fi
done

stop_services() {
    # The packages' maintainer scripts may start daemons (postfix on :25,
    # dovecot on :110/:995). The tests bring up their own instances on free
    # ports; stop the system ones so nothing is left running.
    if command -v postfix >/dev/null 2>&1; then
        postfix stop >/dev/null 2>&1 || true
    fi
    if command -v service >/dev/null 2>&1; then
        service postfix stop >/dev/null 2>&1 || true
        service dovecot stop >/dev/null 2>&1 || true
    fi
    if command -v doveadm >/dev/null 2>&1; then
        doveadm stop >/dev/null 2>&1 || true
    fi
}

if ((${#missing[@]} > 0)); then
    if [[ -n "${MAILROOM_SKIP_APT:-}" ]]; then
        log "MAILROOM_SKIP_APT set; missing packages: ${missing[*]}"
    elif [[ "$(id -u)" -eq 0 ]]; then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        echo "postfix postfix/mailname string mailroom.test" | debconf-set-selections
        # Keep maintainer scripts from starting daemons while we install,
        # unless the machine already has a policy of its own.
        own_policy=""
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            own_policy=1
        fi
        apt_ok=1
        apt-get update -qq || apt_ok=""
        if [[ -n "$apt_ok" ]]; then
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || apt_ok=""
        fi
        if [[ -n "$own_policy" ]]; then
            rm -f /usr/sbin/policy-rc.d
        fi
        if [[ -z "$apt_ok" ]]; then
            log "apt-get failed installing: ${missing[*]}"
            exit 1
        fi
        stop_services
    else
        log "not root: cannot install missing packages: ${missing[*]}"
        log "install them with: sudo apt-get install ${missing[*]}"
        log "(tests that need them will be skipped, or fail when CI=true)"
    fi
fi

# Python's dkimpy: the independent DKIM verifier of tests/mail_auth.rs
# (from PyPI: python3 here is pyenv's, not Debian's python3-dkim).
if ! python3 -c 'import dkim' >/dev/null 2>&1; then
    log "installing dkimpy (pip)"
    python3 -m pip install -q dkimpy || log "pip install dkimpy failed (mail_auth tests will skip, or fail when CI=true)"
fi

log "cargo fmt"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

# The PostgreSQL engine's conformance suite needs a database: a private
# cluster on loopback (scripts/pg-test-cluster.sh installs postgresql if
# missing). Without one, those tests skip on a developer machine and fail
# under CI=true.
if [[ -z "${MAILROOM_TEST_PG:-}" ]]; then
    if MAILROOM_TEST_PG="$(bash scripts/pg-test-cluster.sh start)"; then
        export MAILROOM_TEST_PG
        trap 'bash scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true' EXIT
    elif [[ -n "${CI:-}" ]]; then
        log "could not start the PostgreSQL test cluster"; exit 1
    else
        log "no PostgreSQL test cluster: its tests will be skipped"
    fi
fi

log "cargo test"
# shellcheck disable=SC2086 # word splitting of the extra arguments is wanted
cargo test --workspace --no-fail-fast ${MAILROOM_TEST_ARGS:-}

log "all checks passed"
