#!/bin/bash
# clang-tidy with the repository's .clang-tidy over src/*.c (and, through
# HeaderFilterRegex, the project headers they include), in parallel.
# Any warning fails (WarningsAsErrors '*').
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need clang-tidy clang-tidy

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
export tmp
printf '%s\0' src/*.c | xargs -0 -P "$JOBS" -I{} bash -c '
    f=$1; shift
    clang-tidy --quiet "$f" -- "$@" >"$tmp/$(basename "$f").out" 2>&1
    echo $? >"$tmp/$(basename "$f").rc"' _ {} "${CFLAGS_ARR[@]}"

fail=0
for rc in "$tmp"/*.rc; do
    [ "$(cat "$rc")" = 0 ] || fail=1
done
# One line per finding, deduplicated (a header's finding shows once).
findings=$(cat "$tmp"/*.out | grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error): ' |
           sed -E "s|^$ROOT/||; s/,-warnings-as-errors\]/]/" | sort -u)
n=$(printf '%s' "$findings" | grep -c .)
if [ $fail -eq 0 ] && [ "$n" -eq 0 ]; then
    echo "$(ls src/*.c | wc -l) files clean"
    exit 0
fi
echo "$n findings:"
printf '%s\n' "$findings" | sed 's/^/    /'
exit 1
