#!/bin/bash
# clang-format --dry-run -Werror over src/*.c include/*.h and every .c/.h
# under tests/, with the repository's .clang-format. Lists the files that
# are not formatted (and how many lines differ); run clang-format -i on
# them to fix.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need clang-format clang-format

mapfile -t files < <(ls src/*.c include/*.h; find tests -name '*.[ch]' | sort)
out=$(clang-format --style=file --dry-run -Werror "${files[@]}" 2>&1)
rc=$?
bad=$(printf '%s\n' "$out" | grep -oE '^[^:]+\.[ch]:[0-9]+:[0-9]+: error' |
      cut -d: -f1 | sort | uniq -c)
if [ $rc -eq 0 ] && [ -z "$bad" ]; then
    echo "${#files[@]} files formatted"
    exit 0
fi
nbad=$(printf '%s\n' "$bad" | grep -c .)
echo "$nbad of ${#files[@]} files are not clang-formatted (count = places):"
printf '%s\n' "$bad" | sed 's/^ */    /'
[ -n "$bad" ] || printf '%s\n' "$out" | head -n 20
exit 1
