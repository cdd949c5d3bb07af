#!/usr/bin/env bash
# Slab calcification, measured on a fresh memcached (issue 15, item 1):
# starts `memcached -u nobody -U 0 -l 127.0.0.1 -p PORT -m 64` plus the
# given arguments on a free port, runs tests/bench/calcify against it
# (600,000 values of 100 bytes, then 5,000 of 4,000 bytes, read back;
# -M: with the memcached commands each phase cost, from its stats),
# prints its result lines, and stops memcached by pid. Loopback only.
#
#   tests/bench/calcify.sh [MEMCACHED_ARGS...]
#
# Environment: CALCIFY (the binary, default build/bench/calcify),
# CALCIFY_ARGS (extra calcify flags, e.g. "-w 30" for a second round
# after 30 s, "-c 1068" to chunk the values in calcify itself). The same
# load through riven's chunked pool, beside this one direct, is make
# bench's chunked section (tests/bench/chunked.sh).
set -u
CALCIFY=${CALCIFY:-build/bench/calcify}
MC_PID=""

cleanup() {
    if [ -n "$MC_PID" ]; then
        kill "$MC_PID" 2>/dev/null
        wait "$MC_PID" 2>/dev/null
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

[ -x "$CALCIFY" ] || {
    echo "calcify.sh: $CALCIFY not built (make $CALCIFY)" >&2
    exit 2
}
command -v memcached >/dev/null || {
    echo "calcify.sh: memcached is not installed" >&2
    exit 2
}

port=""
for _ in 1 2 3 4 5; do
    port=$(free_port)
    memcached -u nobody -U 0 -l 127.0.0.1 -p "$port" -m 64 "$@" &
    MC_PID=$!
    wait_port "$port" 2>/dev/null && kill -0 "$MC_PID" 2>/dev/null && break
    kill "$MC_PID" 2>/dev/null
    wait "$MC_PID" 2>/dev/null
    MC_PID=""
done
[ -n "$MC_PID" ] || {
    echo "calcify.sh: cannot start memcached $*" >&2
    exit 1
}

echo "calcify.sh: $(memcached -V) -m 64 $*"
# shellcheck disable=SC2086 # CALCIFY_ARGS is a list of flags
"$CALCIFY" -M "$port" ${CALCIFY_ARGS:-} "$port"
