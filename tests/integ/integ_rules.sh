#!/usr/bin/env bash
# integ_rules: the alert rules of conf/prometheus/riven-rules.yml.
#   promtool check rules  riven-rules.yml        (syntax, PromQL, templates)
#   promtool test rules   riven-rules.test.yml   (every alert pending before
#                         its "for", firing with exact labels and
#                         annotations, and resolved)
# Prints cmocka's summary lines so tests/run-tests.sh counts the two cases;
# both are skipped, with a message, when promtool (Debian package
# prometheus) is not installed. Exit status: 0 unless a case failed.
set -u

dir="$(cd "$(dirname "$0")/../../conf/prometheus" && pwd)" || exit 1
passed=0
failed=0
names=()

run_case() {
    local name=$1
    shift
    echo "[ RUN      ] $name"
    if "$@"; then
        echo "[       OK ] $name"
        passed=$((passed + 1))
    else
        echo "[  FAILED  ] $name"
        failed=$((failed + 1))
        names+=("$name")
    fi
}

echo "[==========] Running 2 test(s)."
if ! command -v promtool >/dev/null 2>&1; then
    echo "integ_rules: promtool is not installed (Debian package" \
         "prometheus): skipping check rules and test rules"
    echo "[==========] 2 test(s) run."
    echo "[  PASSED  ] 0 test(s)."
    echo "[  SKIPPED ] 2 test(s), listed below:"
    echo "[  SKIPPED ] check_rules"
    echo "[  SKIPPED ] test_rules"
    exit 0
fi
# promtool resolves rule_files relative to the test file
run_case check_rules promtool check rules "$dir/riven-rules.yml"
run_case test_rules promtool test rules "$dir/riven-rules.test.yml"
echo "[==========] 2 test(s) run."
echo "[  PASSED  ] $passed test(s)."
if [ "$failed" -gt 0 ]; then
    echo "[  FAILED  ] $failed test(s), listed below:"
    for n in "${names[@]}"; do
        echo "[  FAILED  ] $n"
    done
    exit 1
fi
exit 0
