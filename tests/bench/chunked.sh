#!/usr/bin/env bash
# The chunked storage rows of make bench (issue 15, "Done when" 1 and 6):
#   1. calcification: two fresh memcacheds with the defaults and -m 64, one
#      used directly and one behind `riven --chunked`, in the same run;
#      tests/bench/calcify against each in turn (600,000 values of 100
#      bytes, then 5,000 of 4,000 bytes, read back byte for byte): the
#      fraction of the 5,000 readable, and what each client set and get
#      cost the memcached behind (calcify -M: its cmd_set and cmd_get
#      before and after each phase), against what chunked storage should
#      cost (ceil(v / chunk_size) chunk sets and one metadata set a set;
#      a metadata get and the chunks' gets a get);
#   2. the cost at c=64: memaslap (-T 1 -c 64 -X SIZE, 90% gets) through
#      riven plain and riven --chunked, each a fresh riven per run in front
#      of a memcached of its own (-m 1024), for 100-byte and 10 KiB values,
#      in turn within each of ROUNDS rounds, medians: ops/s, riven's and
#      memcached's CPU per request (utime + stime from /proc), and the
#      memcached sets per client set and gets per client get; then calcify
#      writes and reads back 2,000 values of each size through riven
#      --chunked, byte for byte, with the same counts.
# Writes a Markdown section to OUT_MD and its log to stdout. Loopback only;
# every process started here is stopped by pid.
#
#   tests/bench/chunked.sh RIVEN_BIN BENCH_DIR ROUNDS OUT_MD
#
# Environment: CHUNKED_OPS_SMALL (memaslap ops of a 100-byte run, default
# 150000), CHUNKED_OPS_LARGE (of a 10 KiB run, default 60000).
set -u
RIVEN=${1:?riven binary}
BENCH=${2:?directory of the bench binaries}
ROUNDS=${3:-3}
OUT=${4:?output file}
CALCIFY=$BENCH/calcify
OPS_SMALL=${CHUNKED_OPS_SMALL:-150000}
OPS_LARGE=${CHUNKED_OPS_LARGE:-60000}
SMALL=100
LARGE=10240
CHECK_N=2000 # values of each size calcify checks through riven --chunked
TMP=$(mktemp -d /tmp/riven-bench-chunked.XXXXXX)
PIDS=()   # the memcacheds
RV_PID="" # the riven of the run in progress

cleanup() {
    [ -n "$RV_PID" ] && kill "$RV_PID" 2>/dev/null && wait "$RV_PID" 2>/dev/null
    stop_pids # lib.sh
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
HZ=$(getconf CLK_TCK)

[ -x "$CALCIFY" ] || { echo "bench: chunked: $CALCIFY not built (make $CALCIFY)" >&2; exit 1; }
# riven's default chunk_size as include/chunk.h defines it (the expected
# memcached commands per request follow from it), and ITEM, the bytes of
# a chunk item in memcached (chunk_size + CHUNK_ITEM_OVERHEAD)
CHUNK=$(awk '/^#define CHUNK_SIZE_DEFAULT/ {print $3 + 0}' "$(dirname "$0")/../../include/chunk.h" 2>/dev/null)
ITEM=$(awk -v c="${CHUNK:-0}" '/^#define CHUNK_ITEM_OVERHEAD/ {print c + $3}' "$(dirname "$0")/../../include/chunk.h" 2>/dev/null)
if [ "${CHUNK:-0}" -le 0 ] || [ "${ITEM:-0}" -le "${CHUNK:-0}" ]; then
    echo "bench: chunked: no CHUNK_SIZE_DEFAULT or CHUNK_ITEM_OVERHEAD in include/chunk.h" >&2
    exit 1
fi
nchunks() { echo $((($1 + CHUNK - 1) / CHUNK)); }

start_mc() { # MB: a memcached with -m MB; its port in MC_PORT, its pid in MC_LAST and PIDS
    local port
    port=$(free_port)
    if [ "$1" = 64 ]; then # calcify.sh's: memcached's defaults but the memory
        memcached -u nobody -U 0 -l 127.0.0.1 -p "$port" -m 64 &
    else
        memcached -u nobody -U 0 -l 127.0.0.1 -p "$port" -m "$1" -c 20000 -t 2 &
    fi
    MC_LAST=$!; PIDS+=("$MC_LAST")
    wait_port "$port" || exit 1
    MC_PORT=$port
}

stop_mc() { # pid: one of PIDS
    kill "$1" 2>/dev/null; wait "$1" 2>/dev/null
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

start_riven() { # MCPORT [--chunked]: RV_PID, RV_PORT
    RV_PORT=$(free_port)
    "$RIVEN" -q -l 127.0.0.1:"$RV_PORT" -b 127.0.0.1:"$1" -m off ${2:+"$2"} &
    RV_PID=$!
    if ! wait_port "$RV_PORT"; then
        echo "bench: chunked: riven ${2:-} did not start (does this riven have --chunked?)" >&2
        wait "$RV_PID" 2>/dev/null
        RV_PID=""
        return 1
    fi
}

stop_riven() {
    kill "$RV_PID" 2>/dev/null; wait "$RV_PID" 2>/dev/null
    RV_PID=""
}

# mc_settings ADDR NAME...: those fields of `stats settings`, space-separated
mc_settings() {
    python3 - "$@" <<'PY'
import socket, sys
h, p = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((h, int(p)))
s.settimeout(10)
s.sendall(b"stats settings\r\n")
d = b""
while not d.endswith(b"END\r\n"):
    b = s.recv(65536)
    if not b:
        break
    d += b
v = dict(l.split()[1:3] for l in d.decode().split("\r\n") if l.startswith("STAT "))
print(" ".join(v.get(n, "-") for n in sys.argv[2:]))
PY
}

# mc_classes ADDR: the slab classes that hold items, "SIZE B: N items; ..."
# (SIZE the class's chunk_size, the most an item of it takes), largest first
mc_classes() {
    python3 - "$1" <<'PY'
import socket, sys
h, p = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((h, int(p)))
s.settimeout(10)
def stats(what):
    s.sendall(what)
    d = b""
    while not d.endswith(b"END\r\n"):
        b = s.recv(65536)
        if not b:
            break
        d += b
    v = {}
    for l in d.decode().split("\r\n"):
        f = l.split()
        if len(f) == 3 and f[0] == "STAT":
            v[f[1]] = f[2]
    return v
items, slabs = stats(b"stats items\r\n"), stats(b"stats slabs\r\n")
out = []
for k, n in items.items():  # items:CLASS:number
    f = k.split(":")
    if len(f) == 3 and f[2] == "number" and int(n) > 0:
        out.append((int(slabs.get("%s:chunk_size" % f[1], 0)), int(n)))
out.sort(reverse=True)
print("; ".join("%d B: %d items" % x for x in out) or "none")
PY
}

NOFILE=$(ulimit -n)
start_mc 64
read -r MAXBYTES ITEMMAX GROWTH < <(mc_settings 127.0.0.1:"$MC_PORT" maxbytes item_size_max growth_factor)
stop_mc "$MC_LAST"
echo "bench: chunked: nproc $(nproc), open-file limit $NOFILE, $(memcached -V); memcached -m 64: maxbytes $MAXBYTES," \
    "item_size_max $ITEMMAX, growth_factor $GROWTH; riven chunk_size $CHUNK (include/chunk.h CHUNK_SIZE_DEFAULT), chunk items of $ITEM bytes"

# 1. calcification: calcify against a memcached -m 64 directly, then
# through riven --chunked in front of another one
calc_run() { # WHO (direct|chunked): TMP/calc.WHO.{out,err,classes,time,cpu}
    local who=$1 port mc t0 t1 c0=0 c1=0
    start_mc 64
    mc=$MC_PORT
    port=$mc
    if [ "$who" = chunked ]; then
        start_riven "$mc" --chunked || return 1
        port=$RV_PORT
        c0=$(cpu_ticks "$RV_PID")
    fi
    t0=$(date +%s.%N)
    timeout 240 "$CALCIFY" -M "$mc" "$port" > "$TMP/calc.$who.out" 2> "$TMP/calc.$who.err"
    echo "calcify exit $?" >> "$TMP/calc.$who.err"
    t1=$(date +%s.%N)
    if [ "$who" = chunked ]; then
        c1=$(cpu_ticks "$RV_PID")
        stop_riven
    fi
    mc_classes 127.0.0.1:"$mc" > "$TMP/calc.$who.classes"
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", b - a}' > "$TMP/calc.$who.time"
    awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.1f\n", (b - a) / hz}' > "$TMP/calc.$who.cpu"
    stop_mc "$MC_LAST"
    sed "s/^/bench: chunked calcify $who: /" "$TMP/calc.$who.out" "$TMP/calc.$who.err"
    echo "bench: chunked calcify $who: $(cat "$TMP/calc.$who.time") s, slab classes with items: $(cat "$TMP/calc.$who.classes")"
}
for who in direct chunked; do
    calc_run "$who" || { echo "bench: chunked: the calcify run through riven --chunked failed" >&2; exit 1; }
done

# calcify's numbers: cval WHO readable|pct|ssmall|sbig|gbig|hits
cval() {
    local f=$TMP/calc.$1.out
    case $2 in
    readable) awk '/readable/ {print $(NF-1); exit}' "$f" ;;
    pct) awk '/readable/ {gsub(/[()%]/, "", $NF); print $NF; exit}' "$f" ;;
    ssmall) sed -n 's/.*small sets [0-9]* (\([0-9.]*\) a set).*/\1/p' "$f" ;;
    sbig) sed -n 's/.*big sets [0-9]* (\([0-9.]*\) a set).*/\1/p' "$f" ;;
    gbig) sed -n 's/.*big gets [0-9]* (\([0-9.]*\) a get).*/\1/p' "$f" ;;
    hits) sed -n 's/.*get_hits \([0-9]*\).*/\1/p' "$f" ;;
    esac
}
within() { # measured expected: 1 when within 1% (measured "" fails)
    awk -v m="$1" -v e="$2" 'BEGIN {print (m != "" && m >= e * 0.99 && m <= e * 1.01) ? 1 : 0}'
}
BIGC=$(nchunks 4000)

# 2. the cost at c=64
start_mc 1024; MP=$MC_PORT; MP_PID=$MC_LAST # behind riven plain
start_mc 1024; MC=$MC_PORT; MC_PID=$MC_LAST # behind riven --chunked

ops_for() { if [ "$1" -le 1024 ]; then echo "$OPS_SMALL"; else echo "$OPS_LARGE"; fi; }

# crun MODE SIZE -> "tps riven_cpu_us mc_cpu_us errors misses sets_per_set
# gets_per_get client_avg_us": a fresh riven (MODE plain or chunked) in
# front of its memcached, memaslap at c=64 with SIZE-byte values
crun() {
    local mode=$1 size=$2 mc mcpid ops log=$TMP/run.log t0 t1 m0 m1 s0 s1 g0 g1
    if [ "$mode" = chunked ]; then mc=$MC; mcpid=$MC_PID; else mc=$MP; mcpid=$MP_PID; fi
    ops=$(ops_for "$size")
    if [ "$mode" = chunked ]; then start_riven "$mc" --chunked || return 1; else start_riven "$mc" || return 1; fi
    s0=$(mc_stat 127.0.0.1:"$mc" cmd_set); g0=$(mc_stat 127.0.0.1:"$mc" cmd_get)
    t0=$(cpu_ticks "$RV_PID"); m0=$(cpu_ticks "$mcpid")
    timeout 120 memcaslap -s 127.0.0.1:"$RV_PORT" -T 1 -c 64 -x "$ops" -X "$size" -S 3600s > "$log" 2>&1
    t1=$(cpu_ticks "$RV_PID"); m1=$(cpu_ticks "$mcpid")
    s1=$(mc_stat 127.0.0.1:"$mc" cmd_set); g1=$(mc_stat 127.0.0.1:"$mc" cmd_get)
    stop_riven
    awk -v t0="$t0" -v t1="$t1" -v m0="$m0" -v m1="$m1" -v hz="$HZ" \
        -v ds="$((s1 - s0))" -v dg="$((g1 - g0))" '
        /^Run time/ { for (i = 1; i <= NF; i++) { if ($i == "TPS:") tps = $(i+1); if ($i == "Ops:") ops = $(i+1) } }
        /^cmd_get:/ { gets = $2 }
        /^cmd_set:/ { sets = $2 }
        /get_misses/ { miss = $2 }
        /^Total Statistics/ { tot = 1 }
        tot && /Avg:/ { avg = $2; tot = 0 }
        /ERROR|[Ee]rror|failed/ { err++ }
        END { printf "%d %.2f %.2f %d %d %.2f %.2f %s\n", tps,
                  ops ? (t1 - t0) * 1e6 / hz / ops : 0, ops ? (m1 - m0) * 1e6 / hz / ops : 0,
                  err + 0, miss + 0, sets ? ds / sets : 0, gets ? dg / gets : 0, avg == "" ? "-" : avg }' "$log"
}

for r in $(seq 1 "$ROUNDS"); do
    for size in $SMALL $LARGE; do
        for mode in plain chunked; do
            crun "$mode" "$size" >> "$TMP/c64.$mode.$size" || exit 1
            read -r -a v < <(tail -1 "$TMP/c64.$mode.$size")
            echo "bench: chunked c=64 round $r $mode ${size} B: ${v[0]} ops/s, riven cpu ${v[1]} us/req," \
                "memcached cpu ${v[2]} us/req, errors ${v[3]}, misses ${v[4]}, memcached sets/set ${v[5]}," \
                "gets/get ${v[6]}, client avg ${v[7]} us"
        done
    done
done

# every byte back: calcify writes CHECK_N values of each size through a
# fresh riven --chunked and reads them back
for size in $SMALL $LARGE; do
    start_riven "$MC" --chunked || exit 1
    timeout 120 "$CALCIFY" -M "$MC" -n 0 -N "$CHECK_N" -S "$size" "$RV_PORT" > "$TMP/check.$size" 2>&1
    stop_riven
    sed "s/^/bench: chunked check ${size} B: /" "$TMP/check.$size"
done
chk() { # SIZE readable|sbig|gbig
    local f=$TMP/check.$1
    case $2 in
    readable) awk '/readable/ {print $(NF-1); exit}' "$f" ;;
    sbig) sed -n 's/.*big sets [0-9]* (\([0-9.]*\) a set).*/\1/p' "$f" ;;
    gbig) sed -n 's/.*big gets [0-9]* (\([0-9.]*\) a get).*/\1/p' "$f" ;;
    esac
}

cm() { awk -v k="$2" '{print $k}' "$1" | median; }
csum() { awk -v k="$2" '{s += $k} END {print s + 0}' "$1"; }
allin() { # file column lo hi: 1 when every round's value is within
    awk -v k="$2" -v lo="$3" -v hi="$4" '$k < lo || $k > hi {bad = 1} END {print bad ? 0 : 1}' "$1"
}

# the targets
V=""
rd=$(cval chunked readable); rp=$(cval chunked pct); dd=$(cval direct readable); dp=$(cval direct pct)
ok=$(awk -v r="${rp:-0}" -v d="${dp:-100}" 'BEGIN {print (r >= 95 && d <= 20) ? 1 : 0}')
V+=$(check "calcification (memcached -m 64; 600,000 values of 100 bytes, then 5,000 of 4,000): through riven --chunked >= 95% of the 5,000 readable, while directly, in the same run, calcification shows (<= 20%; measured 4.6% before chunked storage)" \
    "riven --chunked ${rd:-?}/5000 (${rp:-?}%), direct ${dd:-?}/5000 (${dp:-?}%)" "$ok")$'\n'
# the calcify runs' memcached commands: direct 1 a request; chunked
# nchunks(v) + 1 a set, and a get 1 + nchunks(v) when the value is there
# (riven asks for the metadata and chunk 0 together, then for the other
# chunks: include/chunked.h), 2 when it is not: so between
# 2 + (BIGC - 1) x readable / 5000 and 1 + BIGC
gexp_lo=$(awk -v c="$BIGC" -v r="${rd:-0}" 'BEGIN {printf "%.2f", 2 + (c - 1) * r / 5000}')
gexp=$(awk -v lo="$gexp_lo" -v hi="$((BIGC + 1))" 'BEGIN {printf (lo == hi) ? "%s" : "%s to %s", (lo == hi) ? hi : lo, hi}')
ok=1
for x in "$(cval direct ssmall) 1" "$(cval direct sbig) 1" "$(cval direct gbig) 1" \
    "$(cval chunked ssmall) $(($(nchunks 100) + 1))" "$(cval chunked sbig) $((BIGC + 1))"; do
    read -r m e <<<"$x"
    [ "$(within "$m" "$e")" = 1 ] || ok=0
done
g=$(cval chunked gbig)
awk -v g="${g:-0}" -v lo="$gexp_lo" -v hi="$((BIGC + 1))" 'BEGIN {exit !(g >= lo * 0.99 && g <= hi * 1.01)}' || ok=0
for size in $SMALL $LARGE; do
    e=$(($(nchunks "$size") + 1))
    [ "$(within "$(chk "$size" sbig)" "$e")$(within "$(chk "$size" gbig)" "$e")" = 11 ] || ok=0
    [ "$(chk "$size" readable)" = "$CHECK_N" ] || ok=0
    [ "$(allin "$TMP/c64.plain.$size" 6 0.99 1.01)$(allin "$TMP/c64.plain.$size" 7 0.99 1.01)" = 11 ] || ok=0
    lo=$(awk -v e="$e" 'BEGIN {print e * 0.99}'); hi=$(awk -v e="$e" 'BEGIN {print e * 1.01}')
    [ "$(allin "$TMP/c64.chunked.$size" 6 "$lo" "$hi")$(allin "$TMP/c64.chunked.$size" 7 "$lo" "$hi")" = 11 ] || ok=0
done
V+=$(check "every request reached memcached as the commands chunked storage should make (within 1%, every run; a get of a missing value makes 2: the metadata and chunk 0), and calcify read back every value of its checks" \
    "calcify sets a set: chunked $(cval chunked ssmall) (100 B, expected $(($(nchunks 100) + 1))), $(cval chunked sbig) (4,000 B, expected $((BIGC + 1))); gets a get $g (expected $gexp); direct $(cval direct ssmall)/$(cval direct sbig)/$(cval direct gbig); memaslap c=64 sets a set, gets a get: chunked $(cm "$TMP/c64.chunked.$SMALL" 6), $(cm "$TMP/c64.chunked.$SMALL" 7) (100 B) and $(cm "$TMP/c64.chunked.$LARGE" 6), $(cm "$TMP/c64.chunked.$LARGE" 7) (10 KiB; expected $(($(nchunks $SMALL) + 1)) and $(($(nchunks $LARGE) + 1))), plain sets $(cm "$TMP/c64.plain.$SMALL" 6)/$(cm "$TMP/c64.plain.$LARGE" 6); checks $(chk $SMALL readable)/$CHECK_N and $(chk $LARGE readable)/$CHECK_N readable" "$ok")$'\n'

row() { # MODE SIZE name
    local f=$TMP/c64.$1.$2 e=1
    [ "$1" = chunked ] && e=$(($(nchunks "$2") + 1))
    printf "| %s B | %s | %s | %s | %s | %s | %s | %s (%s) | %s (%s) | %s |\n" "$2" "$3" "$(cm "$f" 1)" "$(cm "$f" 2)" \
        "$(cm "$f" 3)" "$(awk -v a="$(cm "$f" 2)" -v b="$(cm "$f" 3)" 'BEGIN {printf "%.2f", a + b}')" \
        "$(csum "$f" 4)" "$(cm "$f" 6)" "$e" "$(cm "$f" 7)" "$e" "$(cm "$f" 8)"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b ? a / b : 0}'; }

{
    echo "<!-- chunked:begin (tests/bench/chunked.sh; BENCH_ONLY=chunked tests/bench/run.sh RIVEN BENCH_DIR reruns only this) -->"
    echo "## Chunked storage (issue 15)"
    echo
    echo "Run on $(date -u +%Y-%m-%d) (\`BENCH_ONLY=chunked\` reruns only this section). $(memcached -V),"
    echo "riven's chunk_size $CHUNK (\`CHUNK_SIZE_DEFAULT\`: a chunk item of $ITEM bytes, one slab class)."
    echo
    echo "**Calcification.** Two fresh memcacheds with the defaults and \`-m 64\` (maxbytes $MAXBYTES,"
    echo "growth_factor $GROWTH), one used directly and one behind \`riven --chunked\`, in turn in this run."
    echo "\`tests/bench/calcify\` sets 600,000 values of 100 bytes, then 5,000 of 4,000 bytes, over one"
    echo "pipelined connection, and reads the 5,000 back byte for byte. The memcached commands are its"
    echo "\`cmd_set\`/\`cmd_get\` before and after each phase (\`calcify -M\`), per client request;"
    echo "through a chunked pool a set of v bytes should make ceil(v / $CHUNK) chunk sets and one metadata"
    echo "set, and a get of a value that is there the metadata's and the chunks' gets; riven asks for"
    echo "the metadata and chunk 0 together, so a get of a missing value makes 2."
    echo
    echo "**Cost.** memaslap at c=64 (\`memcaslap -T 1 -c 64 -x OPS -X SIZE -S 3600s\`, 90% gets;"
    echo "$OPS_SMALL ops of 100 bytes, $OPS_LARGE of 10 KiB) through riven plain and riven \`--chunked\`,"
    echo "each a fresh riven per run in front of its own memcached (\`-m 1024 -c 20000 -t 2\`), in turn"
    echo "within each of $ROUNDS rounds; medians. CPU: utime + stime from /proc over the run, per request,"
    echo "of riven and of the memcached behind it. Sets/gets: the memcached's \`cmd_set\`/\`cmd_get\` per"
    echo "client set/get (memaslap's own counts), expected in brackets. Then calcify writes $CHECK_N values"
    echo "of each size through a fresh riven --chunked and reads them back byte for byte."
    echo
    echo "| target | result |"
    echo "| --- | --- |"
    printf "%s" "$V"
    echo
    echo "| memcached -m 64 | 4,000-byte values readable | memcached sets a set: 100 B / 4,000 B (expected) | memcached gets a get, 4,000 B (expected) | get_hits | riven CPU s | time s | slab classes with items |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    printf "| direct | %s (%s%%) | %s / %s (1 / 1) | %s (1) | %s | - | %s | %s |\n" "$(cval direct readable)" \
        "$(cval direct pct)" "$(cval direct ssmall)" "$(cval direct sbig)" "$(cval direct gbig)" "$(cval direct hits)" \
        "$(cat "$TMP/calc.direct.time")" "$(cat "$TMP/calc.direct.classes")"
    printf "| riven --chunked | %s (%s%%) | %s / %s (%s / %s) | %s (%s) | %s | %s | %s | %s |\n" "$(cval chunked readable)" \
        "$(cval chunked pct)" "$(cval chunked ssmall)" "$(cval chunked sbig)" "$(($(nchunks 100) + 1))" "$((BIGC + 1))" \
        "$(cval chunked gbig)" "$gexp" "$(cval chunked hits)" "$(cat "$TMP/calc.chunked.cpu")" \
        "$(cat "$TMP/calc.chunked.time")" "$(cat "$TMP/calc.chunked.classes")"
    echo
    echo "What the 64 MB held of the 100-byte values at the end (from the classes above): directly"
    echo "$(awk -F'; ' '{for (i = 1; i <= NF; i++) {split($i, x, " "); n += x[3]}} END {print n}' "$TMP/calc.direct.classes" | \
        awk -v r="$(cval direct readable)" '{print $1 - r}'), through riven --chunked at most $(awk -F'; ' -v c="$ITEM" \
        '{for (i = 1; i <= NF; i++) {split($i, x, " "); if (x[1] == c) n = x[3]}} END {print n + 0}' "$TMP/calc.chunked.classes" | \
        awk -v r="$(cval chunked readable)" -v k="$BIGC" '{print $1 - k * r}') (the ${ITEM}-byte items less the"
    echo "4,000-byte values' chunks): each takes a whole chunk item and a metadata item."
    echo
    echo "| value | riven, c=64 | ops/s | riven CPU µs/req | memcached CPU µs/req | riven + memcached µs/req | errors | memcached sets a set (expected) | memcached gets a get (expected) | client avg µs |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for size in $SMALL $LARGE; do
        row plain "$size" "plain"
        row chunked "$size" "--chunked"
    done
    echo
    echo "| value | chunked / plain: ops/s | riven CPU/req | riven + memcached CPU/req | memaslap misses, plain / chunked |"
    echo "| --- | --- | --- | --- | --- |"
    for size in $SMALL $LARGE; do
        p=$TMP/c64.plain.$size; c=$TMP/c64.chunked.$size
        printf "| %s B | %s | %s | %s | %s / %s |\n" "$size" "$(ratio "$(cm "$c" 1)" "$(cm "$p" 1)")" \
            "$(ratio "$(cm "$c" 2)" "$(cm "$p" 2)")" \
            "$(ratio "$(awk -v a="$(cm "$c" 2)" -v b="$(cm "$c" 3)" 'BEGIN {print a + b}')" "$(awk -v a="$(cm "$p" 2)" -v b="$(cm "$p" 3)" 'BEGIN {print a + b}')")" \
            "$(csum "$p" 5)" "$(csum "$c" 5)"
    done
    echo
    echo "calcify through riven --chunked, $CHECK_N values written and read back byte for byte:"
    for size in $SMALL $LARGE; do
        echo "$size B: $(chk "$size" readable) readable, memcached sets a set $(chk "$size" sbig), gets a get $(chk "$size" gbig) (expected $(($(nchunks "$size") + 1)) and $(($(nchunks "$size") + 1)))."
    done
    echo "<!-- chunked:end -->"
} > "$OUT"
echo "bench: chunked section written to $OUT"
