#!/bin/bash
# The manual pages src/*.[1-8] lint clean: `mandoc -T lint -W warning`
# (warnings and errors; style notes such as a referenced page not
# installed on this machine are not failures) when mandoc is installed,
# and `groff -mdoc -ww -z` (every groff warning) when groff is; any output
# of either fails the step. At least one of the two must be installed.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

pages=(src/*.[1-8])
if ! command -v mandoc >/dev/null 2>&1 && ! command -v groff >/dev/null 2>&1
then
    need mandoc mandoc
fi
fail=0
tools=()
for p in "${pages[@]}"; do
    if command -v mandoc >/dev/null 2>&1; then
        # mandoc also notes an outdated mandoc.db of the system: not ours
        out=$(mandoc -T lint -W warning "$p" 2>&1 | grep -v 'mandoc\.db')
        if [ -n "$out" ]; then
            printf '%s\n' "$out"
            fail=1
        fi
    fi
    if command -v groff >/dev/null 2>&1; then
        out=$(groff -mdoc -ww -z "$p" 2>&1)
        if [ -n "$out" ]; then
            printf '%s: groff:\n%s\n' "$p" "$out"
            fail=1
        fi
    fi
done
command -v mandoc >/dev/null 2>&1 && tools+=("mandoc -T lint")
command -v groff >/dev/null 2>&1 && tools+=("groff -ww")
list=$(printf '%s, ' "${tools[@]}")
[ $fail -eq 0 ] && echo "${#pages[@]} manual pages lint clean (${list%, })"
exit $fail
