#!/usr/bin/env bash
# tests/run-local.sh BIN CONF: what `make run` runs.
# If nothing answers on 127.0.0.1:11211, start a memcached there; run riven
# (BIN -c CONF) in the foreground; on Ctrl-C, TERM or riven's exit, stop
# riven and the memcached this script started, by pid, and nothing else.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 RIVEN_BIN CONFIG" >&2
    exit 2
fi
bin=$1
conf=$2
mc_pid=""
rv_pid=""

stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 500; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    trap - INT TERM EXIT
    stop_pid "$rv_pid"
    if [ -n "$mc_pid" ]; then
        echo "run-local: stopping the memcached it started (pid $mc_pid)" >&2
        stop_pid "$mc_pid"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

if answers 11211; then
    echo "run-local: using the memcached already on 127.0.0.1:11211" >&2
else
    user=()
    if [ "$(id -u)" -eq 0 ]; then   # memcached refuses root without -u
        if getent passwd nobody >/dev/null; then user=(-u nobody)
        else user=(-u root); fi
    fi
    memcached -U 0 -l 127.0.0.1 -p 11211 "${user[@]}" &
    mc_pid=$!
    for ((i = 0; i < 500; i++)); do
        answers 11211 && break
        if ! kill -0 "$mc_pid" 2>/dev/null; then
            echo "run-local: memcached failed to start" >&2
            mc_pid=""
            exit 1
        fi
        sleep 0.01
    done
    echo "run-local: started memcached on 127.0.0.1:11211 (pid $mc_pid)" >&2
fi

echo "run-local: $bin -c $conf (Ctrl-C stops it)" >&2
"$bin" -c "$conf" &
rv_pid=$!
# a trapped INT/TERM interrupts this wait; its trap exits and cleans up
wait "$rv_pid"
rc=$?
rv_pid=""
exit "$rc"
