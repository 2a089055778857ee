#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the
# other, and prints a results table (target, executions, crashes, date).
#
#   fuzz/run.sh 120                      # every target, 2 minutes each
#   fuzz/run.sh 600 smtp_data mime       # two targets, 10 minutes each
#
# Works on a stable toolchain: `-s none` (no sanitizer) needs no nightly.
# New inputs go to $FUZZ_WORK/corpus/<target> (default
# /var/tmp/mailroom-fuzz), not to the committed seeds in fuzz/corpus/, which
# are read too; crashes land in fuzz/artifacts/<target>/. Builds go to
# $FUZZ_TARGET_DIR (default /var/tmp/mailroom-fuzz-target), apart from the
# workspace's target directory. Needs cargo-fuzz (`cargo install cargo-fuzz
# --locked`).
set -u

seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")/.."
work=${FUZZ_WORK:-/var/tmp/mailroom-fuzz}
target_dir=${FUZZ_TARGET_DIR:-/var/tmp/mailroom-fuzz-target}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

results="$work/results-$(date -u +%Y%m%dT%H%M%SZ).tsv"
mkdir -p "$work"
printf 'target\texecutions\tcrashes\tdate\tseconds\n' > "$results"
for target in "${targets[@]}"; do
    # mail-parser has debug-only panics that release builds survive (see
    # the root Cargo.toml): fuzz mime as it ships, without debug assertions,
    # in a target directory of its own so the two builds do not evict each
    # other. Everything else runs with debug assertions and overflow checks.
    build=()
    dir=$target_dir
    if [ "$target" = mime ]; then
        build=(-O)
        dir=$target_dir/no-debug-assertions
    fi
    args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
    case $target in
        smtp_*) args+=(-dict=fuzz/dict/smtp.dict) ;;
        pop3_*) args+=(-dict=fuzz/dict/pop3.dict) ;;
    esac
    mkdir -p "$work/corpus/$target" "fuzz/artifacts/$target"
    log="$work/$target.log"
    before=$(find "fuzz/artifacts/$target" -type f | wc -l)
    echo "== $target: ${seconds}s, log $log" >&2
    nice -n 10 cargo fuzz run -s none "${build[@]}" --target-dir "$dir" "$target" \
        "$work/corpus/$target" "fuzz/corpus/$target" -- "${args[@]}" > "$log" 2>&1
    status=$?
    after=$(find "fuzz/artifacts/$target" -type f | wc -l)
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    crashes=$((after - before))
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="exit $status"
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$target" "${executions:-?}" "$crashes" \
        "$(date -u +%Y-%m-%d)" "$seconds" >> "$results"
done
column -t -s $'\t' "$results"
echo "results: $results" >&2
