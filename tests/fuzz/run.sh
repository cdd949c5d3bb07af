#!/bin/sh
# Run each libFuzzer target for FUZZ_SECONDS seconds on its corpus.
#
#   tests/fuzz/run.sh BUILD_DIR TARGET_BIN...
#
# Seeds are copied from tests/fuzz/corpus/<target>/ into BUILD_DIR/corpus/
# <target>/ (the repository is never written); new inputs libFuzzer finds
# stay there for the next run. Crash, leak and timeout inputs go to
# BUILD_DIR/artifacts/. Exits non-zero if any target failed.
set -u

seconds=${FUZZ_SECONDS:-60}
build=${1:?usage: run.sh BUILD_DIR TARGET_BIN...}
shift
[ $# -gt 0 ] || { echo "fuzz: no targets given" >&2; exit 2; }
case $seconds in
    ''|*[!0-9]*) echo "fuzz: FUZZ_SECONDS must be a number, got '$seconds'" >&2
                 exit 2 ;;
esac

# UBSan findings with their stack; keep what the caller set.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

here=$(cd "$(dirname "$0")" && pwd)
arts="$build/artifacts"
mkdir -p "$arts" "$build/corpus" "$build/logs" || exit 2

failed=""
for bin in "$@"; do
    name=$(basename "$bin")
    seeds="$here/corpus/$name"
    work="$build/corpus/$name"
    log="$build/logs/$name.log"
    if [ ! -x "$bin" ]; then
        echo "fuzz: $name: $bin is not built" >&2
        failed="$failed $name"
        continue
    fi
    mkdir -p "$work" || exit 2
    if [ -d "$seeds" ]; then
        # -n keeps what earlier runs found; seeds are never overwritten.
        cp -n "$seeds"/* "$work"/ 2>/dev/null || true
    else
        echo "fuzz: $name: no seed corpus at $seeds (starting empty)"
    fi
    before=$(find "$arts" -name "$name-*" | wc -l)
    echo "fuzz: $name: ${seconds}s, corpus $(find "$work" -type f | wc -l) inputs"
    "$bin" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$arts/$name-" \
        "$work" >"$log" 2>&1
    rc=$?
    after=$(find "$arts" -name "$name-*" | wc -l)
    stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    [ -n "$stats" ] || stats=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
        echo "fuzz: $name: FAILED (exit $rc); log $log; report:"
        # the finding, the project's frames of its stack, and the input
        grep -E 'ERROR: |invariant failed|runtime error|SUMMARY|Test unit written|Base64|^ +#[0-9]+ 0x[0-9a-f]+ in .*(/src/|/tests/fuzz/)' \
            "$log" | head -n 40 | sed 's/^/    /'
        failed="$failed $name"
    else
        echo "fuzz: $name: ok: $stats"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (artifacts in $arts)"
    exit 1
fi
echo "fuzz: all $# targets ran ${seconds}s without a finding"
