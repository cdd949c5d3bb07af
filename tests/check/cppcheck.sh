#!/bin/bash
# cppcheck --enable=warning,performance,portability over src/, failing on
# any finding. Suppress a false positive in place with
# "// cppcheck-suppress <id>" on the line before.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
need cppcheck cppcheck

# No -j: it turns off cppcheck's whole-program (CTU) analysis. No -D: all
# preprocessor configurations are checked.
out=$(cppcheck --quiet --error-exitcode=1 --inline-suppr \
      --enable=warning,performance,portability \
      --template='{file}:{line}: {severity}: {message} [{id}]' \
      -Iinclude src/ 2>&1)
rc=$?
if [ $rc -eq 0 ]; then
    echo "src/ clean"
    exit 0
fi
n=$(printf '%s\n' "$out" | grep -cE '^[^ ]+:[0-9]+: ')
echo "$n findings:"
printf '%s\n' "$out" | sed 's/^/    /'
exit 1
