# shellcheck shell=bash
# Shared by the tests/script/test_*.sh tests (sourced, not run): cd to the
# repository, RIVEN_BIN (default build/riven), a temp dir TMP removed on
# exit, and run_case / finish, which print cmocka's summary lines so that
# tests/run-tests.sh counts each case:
#   run_case NAME CMD...   runs CMD; its exit status is the result
#   finish                 the summary; exit 0 when every case passed
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
RIVEN_BIN=${RIVEN_BIN:-build/riven}
TMP=$(mktemp -d /tmp/riven-script-XXXXXX) || exit 2
trap 'rm -rf "$TMP"' EXIT

ran=0
passed=0
failed_cases=()

run_case() {
    local name=$1
    shift
    ran=$((ran + 1))
    echo "[ RUN      ] $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "[       OK ] $name"
    else
        failed_cases+=("$name")
        echo "[  FAILED  ] $name"
    fi
}

finish() {
    local n
    echo "[==========] $ran test(s) run."
    echo "[  PASSED  ] $passed test(s)."
    if [ "${#failed_cases[@]}" -gt 0 ]; then
        echo "[  FAILED  ] ${#failed_cases[@]} test(s), listed below:"
        for n in "${failed_cases[@]}"; do
            echo "[  FAILED  ] $n"
        done
        exit 1
    fi
    exit 0
}
