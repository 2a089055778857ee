#!/usr/bin/env bash
# Builds the Debian package: packaging/generated/mailroom_<version>_<arch>.deb.
#
#   bash packaging/build-deb.sh
#
# Steps: a release build of the binary; man pages and shell completions
# written by that binary (`mailroom generate`, from the clap definitions);
# then `cargo deb --no-build` packs them with the unit file, the default
# config and the maintainer scripts ([package.metadata.deb] in
# crates/mailroom/Cargo.toml). cargo-deb is installed with
# `cargo install --locked` when missing (once; about 6 minutes on 2 cores).
#
# Cost: the release profile of the workspace Cargo.toml (no LTO, 16 codegen
# units); from a cold target dir, on 2 cores, the build takes several minutes
# (docs/testing.md has the figures); with the release artefacts of an earlier
# build (bench/ uses the same profile) only the changed crates rebuild.
# `--strip`: the profile's debug line tables stay out of the package.
set -euo pipefail

cd "$(dirname "$0")/.."

CARGO_DEB_VERSION="3.8.0"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/mailroom-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
out=packaging/generated

log() { printf '== %s\n' "$*" >&2; }

if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi

start=$(date +%s)
log "cargo build --release -p mailroom"
cargo build --release -p mailroom
log "release build took $(($(date +%s) - start)) s"

bin="$CARGO_TARGET_DIR/release/mailroom"
rm -rf "$out"
mkdir -p "$out/completions"
"$bin" generate man "$out/man"
"$bin" generate completions bash >"$out/completions/mailroom.bash"
"$bin" generate completions zsh >"$out/completions/_mailroom"
"$bin" generate completions fish >"$out/completions/mailroom.fish"
bash -n "$out/completions/mailroom.bash"
"$bin" check --config packaging/mailroom.toml >/dev/null

log "cargo deb"
cargo deb -p mailroom --no-build --strip --output "$out/"
deb=$(ls "$out"/mailroom_*.deb)
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p' >&2
log "built $deb"
echo "$deb"
