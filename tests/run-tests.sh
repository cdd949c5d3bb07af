#!/usr/bin/env bash
# Run riven's tests: every test_* (unit) then integ_* (integration) binary
# in $TEST_DIR (then integ_hostile_backends, integ_pool and a few suites
# run from flags again against a batched pool: INTEG_POOL_BACKEND,
# RIVEN_BATCHED),
# then the script tests
# tests/script/test_*.sh (checks of the sources and of the riven binary)
# and tests/integ/integ_*.sh (which
# print cmocka's summary lines, so they are counted alike), then
# memccapable's conformance suite (ascii and binary) four times: against
# riven in front of a fresh memcached, against riven whose default route is
# all_sync over two pools (two fresh memcacheds), against riven --batched
# (shared backend connections), and against riven whose
# pool speaks TLS (pool.tls, with a client certificate) to a memcached -Z
# that requires one; memccapable itself talks plain TCP to riven. That last
# run is skipped (counted as 1 skipped) when the openssl CLI or memcached's
# TLS is missing, or with RIVEN_DIRECT=1 (memccapable cannot speak TLS to
# memcached itself).
# Counts cmocka test cases from the "[  PASSED  ] N test(s)." /
# "[  FAILED  ] N test(s)" lines (cases that ran but neither passed nor
# were skipped, e.g. a failed fixture, count as failed; a binary that fails
# without a FAILED line counts as one failure) and memccapable's "[pass]"
# lines, and ends with exactly one line "N passed, N failed".
# Exit status: 0 when nothing failed.
#
# Environment: TEST_DIR (default build/tests), RIVEN_BIN (default
# build/riven, exported to the tests), SANITIZER (thread|address|...),
# RIVEN_DIRECT=1 (tests talk to memcached without riven).
set -u

TEST_DIR=${TEST_DIR:-build/tests}
RIVEN_BIN=${RIVEN_BIN:-build/riven}
export RIVEN_BIN
case "${SANITIZER:-}" in
thread)  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1} ;;
address) export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} ;;
esac

PER_BINARY_TIMEOUT=300
MEMCCAPABLE_TESTS=54   # 27 ascii + 27 binary tests of libmemcached-tools 1.1

passed=0
failed=0
skipped=0
failures=()
log=$(mktemp)
conf=$(mktemp --suffix=.yml)
mc_pid=""
mc2_pid=""
rv_pid=""
certs_dir=""   # run_memccapable_tls's certificates (tests/lib/mkcerts.sh)

# Stop one process we started, by pid: TERM (and CONT), wait up to 5 s,
# then KILL.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    kill -CONT "$pid" 2>/dev/null
    for ((i = 0; i < 500; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    stop_pid "$rv_pid"
    stop_pid "$mc_pid"
    stop_pid "$mc2_pid"
    rm -f "$log" "$conf"
    [ -z "$certs_dir" ] || rm -rf "$certs_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run_binary() { # BIN [NAME]
    local bin=$1 name=${2:-} rc p f s r
    [ -n "$name" ] || name=$(basename "$bin")
    echo "=== $name"
    timeout "$PER_BINARY_TIMEOUT" "$bin" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s)\..*/\1/p' "$log" |
        tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s).*/\1/p' "$log" |
        tail -n 1)
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) test(s).*/\1/p' "$log" |
        tail -n 1)
    r=$(sed -n 's/^\[==========\] \([0-9][0-9]*\) test(s) run\..*/\1/p' "$log" |
        tail -n 1)
    p=${p:-0}
    f=${f:-0}
    s=${s:-0}
    # cmocka lists a test whose fixture failed as ERROR, not in the FAILED
    # count: whatever ran and neither passed nor was skipped failed
    if [ -n "$r" ] && [ $((r - p - s)) -gt "$f" ]; then
        f=$((r - p - s))
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # crashed, timed out (124), sanitizer report, or setup failure
        echo "=== $name: exit status $rc without a FAILED line:" \
             "counted as 1 failed"
        f=1
    elif [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ] &&
         [ "$s" -eq 0 ]; then
        p=1   # not a cmocka binary: its exit status is the result
    fi
    echo "=== $name: $p passed, $f failed, $s skipped (exit $rc)"
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
    [ "$f" -eq 0 ] || failures+=("$name")
}

# A TCP port on 127.0.0.1 where nothing answers (the server we start on it
# fails if it was taken meanwhile, and we retry).
free_port() {
    local p
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Wait until pid accepts on 127.0.0.1:port (5 s), or pid has exited.
wait_ready() {
    local pid=$1 port=$2
    for ((i = 0; i < 500; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# start_memcached [EXTRA...]: a fresh memcached on $mc_port (pid in
# $mc_pid) with EXTRA arguments (e.g. -Z -o ssl_...).
start_memcached() {
    local user=()
    if [ "$(id -u)" -eq 0 ]; then  # memcached refuses root without -u
        if getent passwd nobody >/dev/null; then user=(-u nobody)
        else user=(-u root); fi
    fi
    for ((try = 0; try < 5; try++)); do
        mc_port=$(free_port) || return 1
        memcached -U 0 -l 127.0.0.1 -p "$mc_port" -m 64 "${user[@]}" "$@" &
        mc_pid=$!
        wait_ready "$mc_pid" "$mc_port" && return 0
        stop_pid "$mc_pid"
        mc_pid=""
    done
    return 1
}

# riven in front of the memcached on $mc_port; with an argument, riven
# -c $conf instead, where the argument is the config with LISTEN_PORT in
# place of its listener's port.
start_riven() {
    local yaml=${1:-}
    for ((try = 0; try < 5; try++)); do
        rv_port=$(free_port) || return 1
        if [ -n "$yaml" ]; then
            printf '%s\n' "${yaml//LISTEN_PORT/$rv_port}" >"$conf"
            "$RIVEN_BIN" -q -c "$conf" -m off &
        else
            "$RIVEN_BIN" -q -l "127.0.0.1:$rv_port" \
                -b "127.0.0.1:$mc_port" -m off &
        fi
        rv_pid=$!
        wait_ready "$rv_pid" "$rv_port" && return 0
        stop_pid "$rv_pid"
        rv_pid=""
    done
    return 1
}

# One memccapable run against 127.0.0.1:$2, named $1; counts its
# "[pass]" lines as passed and any shortfall from MEMCCAPABLE_TESTS as
# failed, then stops the processes of the run.
memccapable_count() {
    local name=$1 port=$2 rc p=0 f=0 s=0 n=0
    timeout 120 "$tool" -t 5 -h 127.0.0.1 -p "$port" </dev/null \
        >"$log" 2>&1
    rc=$?
    cat "$log"
    while IFS= read -r line; do
        case "$line" in
        ascii*"[pass]"|binary*"[pass]") p=$((p + 1)); n=$((n + 1)) ;;
        ascii*"[skip]"|binary*"[skip]") s=$((s + 1)); n=$((n + 1)) ;;
        ascii*"["*"]"|binary*"["*"]")   f=$((f + 1)); n=$((n + 1)) ;;
        esac
    done <"$log"
    if [ "$n" -lt "$MEMCCAPABLE_TESTS" ]; then
        echo "=== $name: only $n of $MEMCCAPABLE_TESTS tests reported" \
             "(exit $rc): $((MEMCCAPABLE_TESTS - n)) counted as failed"
        f=$((f + MEMCCAPABLE_TESTS - n))
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "=== $name: exit status $rc: counted as 1 failed"
        f=1
    fi
    if [ -n "$rv_pid" ] && ! kill -0 "$rv_pid" 2>/dev/null; then
        echo "=== $name: riven died during the run"
        f=$((f + 1))
    fi
    echo "=== $name: $p passed, $f failed, $s skipped (exit $rc)"
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$f" -eq 0 ] || failures+=("$name")
    stop_pid "$rv_pid"; rv_pid=""
    stop_pid "$mc_pid"; mc_pid=""
    stop_pid "$mc2_pid"; mc2_pid=""
}

# A run that could not start: counted as 1 failed; stops what it started.
memccapable_broken() {
    echo "=== $1: $2: counted as 1 failed"
    failed=$((failed + 1)); failures+=("$1")
    stop_pid "$rv_pid"; rv_pid=""
    stop_pid "$mc_pid"; mc_pid=""
    stop_pid "$mc2_pid"; mc2_pid=""
}

direct() {
    [ -n "${RIVEN_DIRECT:-}" ] && [ "${RIVEN_DIRECT}" != 0 ]
}

run_memccapable() {
    local port
    echo "=== memccapable (ascii and binary)"
    start_memcached || {
        memccapable_broken memccapable "cannot start memcached"; return; }
    port=$mc_port
    if ! direct; then
        start_riven || {
            memccapable_broken memccapable "cannot start $RIVEN_BIN"; return; }
        port=$rv_port
    fi
    memccapable_count memccapable "$port"
}

# The same against riven --batched: the pool's server reached through
# shared connections with I/O threads of their own (batch.h).
run_memccapable_batched() {
    local name=memccapable-batched
    echo "=== $name (ascii and binary, backend: {mode: batched})"
    if direct; then
        memccapable_skipped "$name" "RIVEN_DIRECT: no riven to batch"
        return
    fi
    start_memcached || {
        memccapable_broken "$name" "cannot start memcached"; return; }
    start_riven "listen: [\"127.0.0.1:LISTEN_PORT\"]
pool:
  servers: [\"127.0.0.1:$mc_port\"]
  backend: {mode: batched, connections: 2}" || {
        memccapable_broken "$name" "cannot start $RIVEN_BIN -c"; return; }
    memccapable_count "$name" "$rv_port"
}

# The same against a default route all_sync over two one-server pools:
# every write reaches both memcacheds, reads come from the first.
run_memccapable_all_sync() {
    local name=memccapable-all_sync port p1 p2
    echo "=== $name (ascii and binary, routes: default all_sync)"
    start_memcached || {
        memccapable_broken "$name" "cannot start memcached"; return; }
    p1=$mc_port
    mc2_pid=$mc_pid
    mc_pid=""
    start_memcached || {
        memccapable_broken "$name" "cannot start memcached"; return; }
    p2=$mc_port
    port=$p1
    if ! direct; then
        start_riven "listen: [\"127.0.0.1:LISTEN_PORT\"]
pools:
  a: {servers: [\"127.0.0.1:$p1\"]}
  b: {servers: [\"127.0.0.1:$p2\"]}
routes:
  - default: {all_sync: [a, b]}" || {
            memccapable_broken "$name" "cannot start $RIVEN_BIN -c"; return; }
        port=$rv_port
    fi
    memccapable_count "$name" "$port"
}

# A run that cannot happen on this machine: counted as 1 skipped.
memccapable_skipped() {
    echo "=== $1: skipped: $2"
    skipped=$((skipped + 1))
}

# The same through riven whose pool talks TLS (issue 14) to a memcached -Z
# with ssl_verify_mode=2 (a client certificate required): certificates
# from tests/lib/mkcerts.sh in a temp dir, removed after the run.
run_memccapable_tls() {
    local name=memccapable-tls mkcerts ssl
    mkcerts="$(dirname "$0")/lib/mkcerts.sh"
    echo "=== $name (ascii and binary, riven -> memcached -Z over pool.tls)"
    if direct; then
        memccapable_skipped "$name" "RIVEN_DIRECT: memccapable has no TLS"
        return
    fi
    if ! command -v openssl >/dev/null 2>&1; then
        memccapable_skipped "$name" "the openssl CLI is not installed"
        return
    fi
    if ! memcached -h 2>&1 | grep -q -- --enable-ssl; then
        memccapable_skipped "$name" "memcached has no TLS (-Z)"
        return
    fi
    if ! certs_dir=$(mktemp -d /tmp/riven-tls-XXXXXX); then
        certs_dir=""
        memccapable_broken "$name" "mktemp -d failed"
        return
    fi
    if ! bash "$mkcerts" "$certs_dir"; then
        memccapable_broken "$name" "$mkcerts failed"
        rm -rf "$certs_dir"; certs_dir=""; return
    fi
    ssl="ssl_chain_cert=$certs_dir/server.pem,ssl_key=$certs_dir/server.key"
    ssl="$ssl,ssl_ca_cert=$certs_dir/ca.pem,ssl_verify_mode=2"
    start_memcached -Z -o "$ssl" || {
        memccapable_broken "$name" "cannot start memcached -Z"
        rm -rf "$certs_dir"; certs_dir=""; return; }
    start_riven "listen: [\"127.0.0.1:LISTEN_PORT\"]
pool:
  servers: [\"127.0.0.1:$mc_port\"]
  tls: {ca: \"$certs_dir/ca.pem\", cert: \"$certs_dir/client.pem\",
        key: \"$certs_dir/client.key\", verify: true,
        server_name: localhost}" || {
        memccapable_broken "$name" "cannot start $RIVEN_BIN -c (pool.tls)"
        rm -rf "$certs_dir"; certs_dir=""; return; }
    memccapable_count "$name" "$rv_port"
    rm -rf "$certs_dir"
    certs_dir=""
}

ulimit -n 2>/dev/null | sed 's/^/=== ulimit -n: /'
shopt -s nullglob
for bin in "$TEST_DIR"/test_* "$TEST_DIR"/integ_*; do
    case "$bin" in *.d|*.o) continue ;; esac
    [ -x "$bin" ] && [ -f "$bin" ] || continue
    run_binary "$bin"
done
# suites again against a batched pool (issue 16): the hostile-backend one
# (a misbehaving server breaks a shared connection, never another's
# reply) and the pool one (placement, a killed, stopped or garbage-talking
# server, reload, eject_rehash), whose rivens run from a file
# (INTEG_POOL_BACKEND), and those whose riven runs from flags
# (RIVEN_BATCHED: --batched).
# Not integ_pipeline: its syscall bound is per-connection's, as a batched
# pool splits a pipeline's gets at the reply budget.
# integ_hostile_backends with 2 shared connections a server: its clients
# A and B, bound round robin, each get one of the fake's, so that A's
# hostile reply fails A's batches only (on one shared connection it fails
# every batch written there, B's good ones too: test_one_stall_one_failure
# in integ_batched checks that case).
for t in integ_hostile_backends integ_pool; do # their riven runs from a file
    [ -x "$TEST_DIR/$t" ] || continue
    mode="{mode: batched}"
    [ "$t" = integ_hostile_backends ] && mode="{mode: batched, connections: 2}"
    INTEG_POOL_BACKEND=$mode run_binary "$TEST_DIR/$t" "$t-batched"
done
for t in integ_diff integ_diff_proto integ_binary integ_client integ_backend \
    integ_health integ_limits integ_l1l2; do
    [ -x "$TEST_DIR/$t" ] || continue
    RIVEN_BATCHED=1 run_binary "$TEST_DIR/$t" "$t-batched"
done
for script in "$(dirname "$0")"/script/test_*.sh "$(dirname "$0")"/integ/integ_*.sh; do
    [ -x "$script" ] && [ -f "$script" ] || continue
    run_binary "$script"
done
tool=$(command -v memccapable || command -v memcapable) || tool=""
if [ -z "$tool" ]; then
    echo "=== memccapable: not installed: 4 runs counted as 1 failed each"
    failed=$((failed + 4)); failures+=("memccapable")
else
    run_memccapable
    run_memccapable_all_sync
    run_memccapable_batched
    run_memccapable_tls
fi

if [ "${#failures[@]}" -gt 0 ]; then
    echo "=== failed: ${failures[*]}"
fi
[ "$skipped" -eq 0 ] || echo "=== skipped: $skipped test case(s) or run(s)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
