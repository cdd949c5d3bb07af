#!/usr/bin/env bash
# Instructions riven executes per get, under valgrind's callgrind (a count
# that does not depend on what else the machine does): one pool, routes
# with only a default, and the 1,000-prefix table of routes.sh, each over
# the same memcached. Each configuration runs twice, with N1 and N2 gets
# of 64-byte keys that begin with 8 control bytes, as memaslap's do, on
# one connection; (Ir(N2) - Ir(N1)) / (N2 - N1) leaves startup and
# shutdown out. User-space instructions only: the system calls that
# dominate a request's real CPU are not counted.
#
#   tests/bench/route_instr.sh RIVEN_BIN TABLE_BODY   (prints "conf ir/get")
set -u
RIVEN=${1:?riven binary}
TABLE=${2:?the 1,000-prefix routes body of routes.sh}
N1=1000
N2=5000
# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d /tmp/riven-bench-instr.XXXXXX)
MC_PID=""
RV_PID=""
cleanup() {
    [ -n "$RV_PID" ] && kill "$RV_PID" 2>/dev/null && wait "$RV_PID" 2>/dev/null
    [ -n "$MC_PID" ] && kill "$MC_PID" 2>/dev/null && wait "$MC_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
command -v valgrind > /dev/null || { echo "route_instr: no valgrind" >&2; exit 1; }

MP=$(free_port)
memcached -u nobody -l 127.0.0.1 -p "$MP" -m 64 &
MC_PID=$!
wait_port "$MP" || exit 1
A="127.0.0.1:$MP"
printf 'pool: {servers: ["%s"]}\n' "$A" > "$TMP/one.body"
printf 'pools:\n  a: {servers: ["%s"]}\nroutes:\n  - default: a\n' "$A" > "$TMP/default.body"
sed "s/127\.0\.0\.1:[0-9]*/$A/" "$TABLE" > "$TMP/table.body"

for conf in one default table; do
    declare -A ir=()
    for n in $N1 $N2; do
        RP=$(free_port)
        { printf 'listen: ["127.0.0.1:%s"]\nmetrics: {listen: "off"}\nlog_level: error\n' "$RP"
          cat "$TMP/$conf.body"; } > "$TMP/$conf.yml"
        valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$conf.$n" \
            "$RIVEN" -c "$TMP/$conf.yml" > /dev/null 2>&1 &
        RV_PID=$!
        wait_port "$RP" || exit 1
        python3 - "$RP" "$n" <<'PY' || exit 1
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
key = bytes(range(0x10, 0x18)) + b"k" * 52
s.sendall(b"set " + key + b"0000 0 0 10\r\n0123456789\r\n")
assert s.recv(100) == b"STORED\r\n"
for i in range(n):
    s.sendall(b"get " + key + b"%04d\r\n" % (i % 1000))
    buf = b""
    while not buf.endswith(b"END\r\n"):
        d = s.recv(4096)
        assert d, "riven closed"
        buf += d
s.close()
PY
        kill -TERM "$RV_PID"
        wait "$RV_PID" 2>/dev/null
        RV_PID=""
        ir[$n]=$(awk '/^summary:/ {print $2; exit}' "$TMP/cg.$conf.$n")
    done
    echo "$conf $(( (ir[$N2] - ir[$N1]) / (N2 - N1) ))"
done
