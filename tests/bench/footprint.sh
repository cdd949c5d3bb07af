#!/usr/bin/env bash
# The footprint rows of make bench (issue 16, "Done when" 5): what one get
# costs the thread of a per-connection riven in user space, counted, not
# timed, beside the relay's (tests/bench/relay.c, lockstep): instructions
# executed and distinct 64-byte cache lines read or written. Timing on
# this shared 2-core machine moves by 10% from run to run; these counts
# do not move at all, so a change to the request path shows in them
# exactly.
#
# Why lines: at c=1000 every connection's thread runs after 999 others,
# so what its request touches of its own (stack, buffers, its orca and
# handler) has left the caches, and each such line is a miss. riven's
# user CPU per request grows with concurrency where the relay's barely
# does; the lines are where to look.
#
# How: the target runs under valgrind's lackey (--trace-mem=yes), which
# prints every instruction and data access of the process. A client sets
# one key with a 1,024-byte value, then gets it GETS times, one at a time,
# each answer checked byte for byte, and memcached's cmd_get must have
# grown by exactly GETS (every get reached it). The trace is cut at each
# call of the function that reads a socket (read@plt for the relay,
# recv@plt for riven): both read twice a request, the client then the
# backend, so two consecutive pieces make one request. Per request: the
# instructions of both pieces, and the distinct lines they touch; the
# median over the last GETS / 2 requests (the first ones build what later
# ones reuse). Only the target's own user space is seen: the kernel's
# work, the same for both (two reads and two writes), is not.
#
#   tests/bench/footprint.sh RIVEN_BIN BENCH_DIR OUT_MD
#
# Environment: FOOTPRINT_GETS (default 60). Needs valgrind; without it the
# section says so. Loopback only; every process started here is stopped
# by pid.
set -u
RIVEN=${1:?riven binary}
BENCH=${2:?directory of the bench binaries}
OUT=${3:?output file}
GETS=${FOOTPRINT_GETS:-60}
TMP=$(mktemp -d /tmp/riven-footprint.XXXXXX)
PIDS=()
cleanup() {
    stop_pids
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

section_begin() {
    echo "<!-- footprint:begin (tests/bench/footprint.sh; BENCH_ONLY=footprint tests/bench/run.sh RIVEN BENCH_DIR reruns only this) -->"
    echo "### Footprint of a get, counted (issue 16, Done when 5)"
    echo
}
if ! command -v valgrind > /dev/null; then
    { section_begin; echo "valgrind is not installed: no footprint rows."; echo "<!-- footprint:end -->"; } > "$OUT"
    echo "bench: footprint: valgrind is not installed; skipped"
    exit 0
fi

# The address of BIN's PLT stub for FN under valgrind, which loads a
# position-independent executable at 0x108000.
stub() {
    local bin=$1 fn=$2 base=0 off
    readelf -h "$bin" | grep -q 'DYN' && base=$((0x108000))
    off=$(objdump -d "$bin" | awk -v f="<$fn@plt>:" '$2 == f {print $1; exit}')
    [ -n "$off" ] || return 1
    printf '%08x\n' $((base + 0x$off))
}

# lackey's trace on stdin -> one line a piece of it: "instructions lines",
# then, per pair of consecutive pieces, "pair instructions lines" with the
# lines of both counted once.
cut_trace() {
    awk -v mark="$1" '
        function close_piece(   k, u) {
            if (npiece > 0) {
                u = nprev
                for (k in cur) if (!(k in prev)) u++
                if (npiece > 1) printf "pair %d %d\n", iprev + icur, u
                delete prev
                for (k in cur) prev[k] = 1
                nprev = ncur; iprev = icur
            }
            delete cur; ncur = 0; icur = 0; npiece++
        }
        $1 == "I" {
            split($2, a, ",")
            if (a[1] == mark) close_piece()
            icur++
            next
        }
        npiece > 0 && ($1 == "L" || $1 == "S" || $1 == "M") {
            # the line of the address (>> 6): all its hex digits but the
            # last two, then the next to last divided by 4 (an access that
            # crosses into the next line is rare, and counted in its
            # first only)
            split($2, a, ",")
            n = length(a[1])
            l = substr(a[1], 1, n - 2) int((index("0123456789abcdef", substr(a[1], n - 1, 1)) - 1) / 4)
            if (!(l in cur)) { cur[l] = 1; ncur++ }
        }
        END { close_piece() }'
}

# client PORT MC_PORT: set, then GETS gets, every answer checked; prints
# "ok" and memcached's cmd_get growth, or what went wrong
client() {
    python3 - "$1" "$GETS" <<'PY'
import socket, sys
port, gets = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(60)
val = bytes(range(97, 123)) * 39 + b"abcdefghij"   # 1,024 bytes
def ask(req, end):
    s.sendall(req)
    d = b""
    while not d.endswith(end):
        b = s.recv(65536)
        if not b:
            break
        d += b
    return d
if ask(b"set footprint 5 0 1024\r\n" + val + b"\r\n", b"\r\n") != b"STORED\r\n":
    print("set failed"); sys.exit(1)
want = b"VALUE footprint 5 1024\r\n" + val + b"\r\nEND\r\n"
for i in range(gets):
    if ask(b"get footprint\r\n", b"END\r\n") != want:
        print("get %d: wrong answer" % i); sys.exit(1)
s.close()
print("ok")
PY
}

MC_PORT=$(free_port)
memcached -u nobody -U 0 -l 127.0.0.1 -p "$MC_PORT" -m 64 -t 2 &
PIDS+=($!)
wait_port "$MC_PORT" || exit 1

# measure NAME BIN FN ARGS...: the target under lackey; prints
# "NAME instructions lines" (medians per request) or fails
measure() {
    local name=$1 bin=$2 fn=$3 port mark g0 g1 pid n
    shift 3
    mark=$(stub "$bin" "$fn") || { echo "bench: footprint: $bin has no $fn@plt" >&2; return 1; }
    port=$(free_port)
    mkfifo "$TMP/trace.$name"
    cut_trace "$mark" < "$TMP/trace.$name" > "$TMP/pieces.$name" &
    local cutter=$!
    PIDS+=("$cutter") # a failure below leaves it waiting on the fifo
    valgrind --tool=lackey --trace-mem=yes --log-file="$TMP/trace.$name" \
        "$bin" "${@//PORT/$port}" > "$TMP/out.$name" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 1200); do # valgrind starts slowly: 120 s at most
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
        sleep 0.1
    done
    g0=$(mc_stat 127.0.0.1:"$MC_PORT" cmd_get)
    if [ "$(client "$port")" != ok ]; then
        echo "bench: footprint: $name answered wrong" >&2
        return 1
    fi
    g1=$(mc_stat 127.0.0.1:"$MC_PORT" cmd_get)
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    wait "$cutter"
    # the pairs of the last GETS / 2 requests: 2 pieces a get, and the
    # close's read ends the last; the median of each column
    n=$(grep -c '^pair' "$TMP/pieces.$name")
    echo "bench: footprint: $name: $((g1 - g0)) gets reached memcached of $GETS; $n pieces paired" >&2
    [ "$((g1 - g0))" = "$GETS" ] || { echo "bench: footprint: $name: memcached saw $((g1 - g0)) gets, not $GETS" >&2; return 1; }
    # the last pair takes in the close: left out
    grep '^pair' "$TMP/pieces.$name" | head -n -1 | tail -n "$GETS" | awk 'NR % 2 == 1' > "$TMP/req.$name"
    echo "$name $(awk '{print $2}' "$TMP/req.$name" | median) $(awk '{print $3}' "$TMP/req.$name" | median)"
}

{
    measure relay "$BENCH/relay" read PORT "$MC_PORT" || exit 1
    measure riven "$RIVEN" recv -q -l 127.0.0.1:PORT -b 127.0.0.1:"$MC_PORT" -m off || exit 1
} > "$TMP/rows"
cat "$TMP/rows" | sed 's/^/bench: footprint: /'

{
    section_begin
    echo "One get of a 1,024-byte value at a time on one connection, the target under valgrind's"
    echo "lackey: its user-space instructions and the distinct 64-byte cache lines it reads or"
    echo "writes, per request (both of its socket reads and what follows each), the median over"
    echo "the last $((GETS / 2)) of $GETS gets, every answer checked byte for byte and every get seen by"
    echo "memcached. Counted, not timed: these numbers do not move between runs. At c=1000 most of"
    echo "a connection's lines are cold when its thread runs again, so each costs a cache miss."
    echo
    echo "| target | instructions / request | cache lines / request | ratio to relay (instructions) | ratio to relay (lines) |"
    echo "| --- | --- | --- | --- | --- |"
    read -r _ ri rl < <(grep '^relay ' "$TMP/rows")
    while read -r t i l; do
        awk -v t="$t" -v i="$i" -v l="$l" -v ri="$ri" -v rl="$rl" \
            'BEGIN { printf "| %s | %d | %d | %.1f | %.1f |\n", t, i, l, i / ri, l / rl }'
    done < "$TMP/rows"
    echo "<!-- footprint:end -->"
} > "$OUT"
