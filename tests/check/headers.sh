#!/bin/bash
# Header self-containment (STYLE.md rule 4): each include/x.h compiles on
# its own, as the only include of a translation unit, with the project's
# flags and -Werror for what a header alone can get wrong; and it has the
# guard RIVEN_X_H.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
CC=${CC:-cc}
need "$CC" build-essential

fail=0
n=0
for h in include/*.h; do
    n=$((n + 1))
    if ! out=$(printf '#include "%s"\n' "$(basename "$h")" |
               "$CC" "${CFLAGS_ARR[@]}" -Wall -Wextra -Wstrict-prototypes \
                   -Werror -fsyntax-only -x c - 2>&1); then
        echo "$h does not compile alone:"
        printf '%s\n' "$out" | grep -E 'error' | head -n 5 | sed 's/^/    /'
        fail=1
    fi
    guard=RIVEN_$(basename "$h" .h | tr '[:lower:]' '[:upper:]')_H
    if ! grep -qE "^#ifndef $guard\b" "$h" ||
       ! grep -qE "^#define $guard\b" "$h"; then
        echo "$h: no include guard $guard"
        fail=1
    fi
done
[ $fail -eq 0 ] && echo "$n headers compile alone"
exit $fail
