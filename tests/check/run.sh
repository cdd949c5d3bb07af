#!/bin/bash
# make check: every static check, each step's result, non-zero if any
# failed. Steps (tests/check/<step>.sh) can be run alone as well.
#   format    clang-format --dry-run -Werror (.clang-format)
#   tidy      clang-tidy (.clang-tidy) over src/*.c
#   cppcheck  cppcheck --enable=warning,performance,portability src/
#   headers   each include/*.h compiles alone and has its guard
#   layers    no #include runs up (or across) DESIGN.md's layers
#   man       the manual pages src/*.[1-8] lint clean (mandoc, groff)
# CHECK_STEPS="tidy layers" runs a subset.
set -u
dir=$(cd "$(dirname "$0")" && pwd)
steps=${CHECK_STEPS:-format tidy cppcheck headers layers man}

failed=""
start=$SECONDS
for s in $steps; do
    if [ ! -f "$dir/$s.sh" ]; then
        echo "check: unknown step '$s'"
        failed="$failed $s"
        continue
    fi
    t0=$SECONDS
    out=$(bash "$dir/$s.sh" 2>&1)
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "check: $s: ok ($((SECONDS - t0))s): $out"
    else
        echo "check: $s: FAILED ($((SECONDS - t0))s)"
        printf '%s\n' "$out" | sed 's/^/  /'
        failed="$failed $s"
    fi
done
if [ -n "$failed" ]; then
    echo "check: FAILED:$failed ($((SECONDS - start))s)"
    exit 1
fi
echo "check: all passed ($((SECONDS - start))s)"
