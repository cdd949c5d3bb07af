#!/usr/bin/env bash
# The big-values rows of make bench (issue 16, "Done when" 4): with 100 KiB
# values at c=16, riven moves at least 0.8x direct's bytes per second, and
# the copy of each set's value into the backend's write buffer is gone
# (riven's CPU per request, before and after).
#
# memaslap (memcaslap -T 1 -c 16 -X 102400 -S 3600s) with its default mix
# (90% gets, 10% sets), then with sets only (-F: the copy was a set's), against
#   direct   a memcached
#   before   riven built from BIGVALS_BASE (default: main before the
#            zero-copy change), `git archive` into a temp dir and make
#   after    RIVEN_BIN (values go to the backend by reference, in a writev)
#   duplex-copy, duplex-splice
#            the floor of any process in the middle (tests/bench/relay.c
#            in its copy and splice modes: a thread a direction, no
#            framing, read/write or splice), so that what loopback TCP
#            itself costs on this machine shows
# in turn within each of ROUNDS rounds, each run a fresh memcached (-m 1024
# -c 20000 -t 2; the default item_size_max of 1 MiB holds 100 KiB) and, for
# the rivens, a fresh riven in front of it. Medians: ops/s, bytes/s (ops x
# the value size: a get's value comes back, a set's goes out), riven's and
# memcached's CPU per request (utime + stime from /proc over the run; for
# riven utime alone too, where the copy was), the
# memcached's cmd_get + cmd_set per memaslap op (every request reached it),
# errors and misses. Then one more sets-only run through each riven under
# perf record (when perf works): the share of riven's CPU samples in
# user-space memcpy/memmove, where the copy was. Writes a Markdown section
# to OUT_MD and its log to stdout. Loopback only; every process started here is stopped by pid.
#
#   tests/bench/bigvals.sh RIVEN_BIN BENCH_DIR ROUNDS OUT_MD
#
# Environment: BIGVALS_OPS (memaslap ops a run, default 40000), BIGVALS_BASE
# (the commit of "before"; an empty value skips it).
set -u
RIVEN=${1:?riven binary}
BENCH=${2:?directory of the bench binaries}
ROUNDS=${3:-3}
OUT=${4:?output file}
OPS=${BIGVALS_OPS:-40000}
BASE_MAIN=4573e46a7dc3c35f24a7a5bb816f0e871e2bde01 # main before the change
BASE=${BIGVALS_BASE-$BASE_MAIN}
SIZE=102400
CONC=16
TARGET=0.8
TMP=$(mktemp -d /tmp/riven-bench-bigvals.XXXXXX)
MIXES="mixed sets"
MC_PID="" # the memcached of the run in progress
RV_PID="" # its riven

cleanup() {
    [ -n "$RV_PID" ] && kill "$RV_PID" 2>/dev/null && wait "$RV_PID" 2>/dev/null
    [ -n "$MC_PID" ] && kill "$MC_PID" 2>/dev/null && wait "$MC_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
HZ=$(getconf CLK_TCK)
: "$BENCH" # the section needs no bench binary; run.sh passes the dir

# "before": riven at BASE, built apart (no worktree, no checkout)
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BEFORE=""
BASE_DESC="not built"
if [ -n "$BASE" ]; then
    mkdir -p "$TMP/base"
    if git -C "$TOP" archive "$BASE" 2>"$TMP/base.log" | tar -x -C "$TMP/base" 2>>"$TMP/base.log" &&
        make -C "$TMP/base" -j"$(nproc)" build/riven >>"$TMP/base.log" 2>&1; then
        BEFORE=$TMP/base/build/riven
        BASE_DESC=$(git -C "$TOP" log -1 --format='%h of %cs' "$BASE" 2>/dev/null)
        [ "$BASE" = "$BASE_MAIN" ] && BASE_DESC="$BASE_DESC, main before the change"
    else
        echo "bench: bigvals: could not build riven at $BASE (git archive + make), 'before' skipped:" >&2
        tail -5 "$TMP/base.log" >&2
    fi
fi
TARGETS="direct"
[ -n "$BEFORE" ] && TARGETS="$TARGETS before"
TARGETS="$TARGETS after"
[ -x "$BENCH/relay" ] && TARGETS="$TARGETS duplex-copy duplex-splice"
echo "bench: bigvals: nproc $(nproc), $(memcached -V), before = riven at $BASE_DESC, after = $RIVEN;" \
    "memaslap -T 1 -c $CONC -x $OPS -X $SIZE, $ROUNDS rounds"
# memaslap's -F file for the sets-only runs (key and value lengths as -X
# and its default keys would give; cmd type 0 is set, 1 get)
printf 'key\n64 64 1\nvalue\n%s %s 1\ncmd\n0 1\n' "$SIZE" "$SIZE" > "$TMP/sets.cfg"

start_mc() { # MC_PID, MC_PORT
    MC_PORT=$(free_port)
    memcached -u nobody -U 0 -l 127.0.0.1 -p "$MC_PORT" -m 1024 -c 20000 -t 2 &
    MC_PID=$!
    wait_port "$MC_PORT"
}

stop_all() {
    [ -n "$RV_PID" ] && kill "$RV_PID" 2>/dev/null && wait "$RV_PID" 2>/dev/null
    [ -n "$MC_PID" ] && kill "$MC_PID" 2>/dev/null && wait "$MC_PID" 2>/dev/null
    RV_PID=""
    MC_PID=""
}

user_ticks() { awk '{print $14}' /proc/"$1"/stat 2>/dev/null || echo 0; } # utime

# brun TARGET MIX -> "tps bytes_per_s riven_cpu_us mc_cpu_us cmds_per_op
# errors misses client_avg_us riven_user_us" (riven's "-" for direct): CPU
# is utime + stime; riven_user_us utime alone, where the copy was (stime is
# the kernel's copies into and out of the sockets, and scheduling)
brun() {
    local t=$1 mix=$2 bin="" port log=$TMP/run.log r0=0 r1=0 u0=0 u1=0 m0 m1 c0 c1 cfg=()
    [ "$mix" = sets ] && cfg=(-F "$TMP/sets.cfg")
    case $t in
    before) bin=$BEFORE ;;
    after) bin=$RIVEN ;;
    duplex-*) bin=$BENCH/relay ;;
    esac
    start_mc || return 1
    port=$MC_PORT
    if [ -n "$bin" ]; then
        port=$(free_port)
        case $t in
        duplex-*) "$bin" "$port" "$MC_PORT" "${t#duplex-}" & ;;
        *) "$bin" -q -l 127.0.0.1:"$port" -b 127.0.0.1:"$MC_PORT" -m off & ;;
        esac
        RV_PID=$!
        wait_port "$port" || return 1
    fi
    c0=$(mc_cmds 127.0.0.1:"$MC_PORT")
    [ -n "$RV_PID" ] && r0=$(cpu_ticks "$RV_PID") && u0=$(user_ticks "$RV_PID")
    m0=$(cpu_ticks "$MC_PID")
    timeout 300 memcaslap -s 127.0.0.1:"$port" "${cfg[@]}" -T 1 -c "$CONC" -x "$OPS" -X "$SIZE" -S 3600s > "$log" 2>&1
    [ -n "$RV_PID" ] && r1=$(cpu_ticks "$RV_PID") && u1=$(user_ticks "$RV_PID")
    m1=$(cpu_ticks "$MC_PID")
    c1=$(mc_cmds 127.0.0.1:"$MC_PORT")
    stop_all
    awk -v r0="$r0" -v r1="$r1" -v u0="$u0" -v u1="$u1" -v m0="$m0" -v m1="$m1" -v hz="$HZ" -v dc="$((c1 - c0))" \
        -v size="$SIZE" -v proxy="${bin:+1}" '
        /^Run time/ { for (i = 1; i <= NF; i++) { if ($i == "TPS:") tps = $(i+1); if ($i == "Ops:") ops = $(i+1) } }
        /get_misses/ { miss = $2 }
        /^Total Statistics/ { tot = 1 }
        tot && /Avg:/ { avg = $2; tot = 0 }
        /ERROR|[Ee]rror|failed/ { err++ }
        END { printf "%d %.0f %s %.2f %.3f %d %d %s %s\n", tps, tps * size,
                  proxy ? sprintf("%.2f", ops ? (r1 - r0) * 1e6 / hz / ops : 0) : "-",
                  ops ? (m1 - m0) * 1e6 / hz / ops : 0, ops ? dc / ops : 0,
                  err + 0, miss + 0, avg == "" ? "-" : avg,
                  proxy ? sprintf("%.2f", ops ? (u1 - u0) * 1e6 / hz / ops : 0) : "-" }' "$log"
}

for r in $(seq 1 "$ROUNDS"); do
    for mix in $MIXES; do
        for t in $TARGETS; do
            brun "$t" "$mix" >> "$TMP/b.$mix.$t" || { echo "bench: bigvals: the $mix $t run failed" >&2; exit 1; }
            read -r -a v < <(tail -1 "$TMP/b.$mix.$t")
            echo "bench: bigvals round $r $mix $t: ${v[0]} ops/s, $(awk -v b="${v[1]}" 'BEGIN {printf "%.1f", b / 1048576}') MiB/s," \
                "riven cpu ${v[2]} us/req (user ${v[8]}), memcached cpu ${v[3]} us/req, memcached cmds/op ${v[4]}," \
                "errors ${v[5]}, misses ${v[6]}, client avg ${v[7]} us"
        done
    done
done

# copy_share BIN -> "PCT SAMPLES": one more sets-only run through a fresh
# riven BIN, sampled by perf (cpu-clock): the share of riven's samples in
# user-space memcpy/memmove, where the copy of each value was; "- 0" without
# a working perf. Apart from the timed runs: perf costs CPU of its own.
copy_share() {
    local port data=$TMP/perf.data pp
    if ! command -v perf >/dev/null; then
        echo "- 0"
        return
    fi
    start_mc || return 1
    port=$(free_port)
    "$1" -q -l 127.0.0.1:"$port" -b 127.0.0.1:"$MC_PORT" -m off &
    RV_PID=$!
    wait_port "$port" || return 1
    perf record -q -e cpu-clock -p "$RV_PID" -o "$data" 2>/dev/null &
    pp=$!
    sleep 0.3
    timeout 300 memcaslap -s 127.0.0.1:"$port" -F "$TMP/sets.cfg" -T 1 -c "$CONC" -x "$OPS" -X "$SIZE" > /dev/null 2>&1
    kill -INT "$pp" 2>/dev/null
    wait "$pp" 2>/dev/null
    stop_all
    # "  9.75%   515  [.] __memmove_avx512_unaligned_erms": share, samples
    perf report -i "$data" --no-children --sort sym --stdio -n -g none 2>/dev/null | awk '
        $1 ~ /%$/ && $2 ~ /^[0-9]+$/ { n += $2; if ($3 == "[.]" && $4 ~ /mem(cpy|move)/) c += $2 }
        END { if (n == 0) print "- 0"; else printf "%.1f %d\n", 100 * c / n, n }'
}
if [ -n "$BEFORE" ]; then
    read -r CS_BEFORE CN_BEFORE < <(copy_share "$BEFORE")
    read -r CS_AFTER CN_AFTER < <(copy_share "$RIVEN")
    echo "bench: bigvals perf, sets only: riven's samples in memcpy/memmove: before ${CS_BEFORE}% of $CN_BEFORE," \
        "after ${CS_AFTER}% of $CN_AFTER"
fi

cm() { awk -v k="$2" '{print $k}' "$1" | median; }
csum() { awk -v k="$2" '{s += $k} END {print s + 0}' "$1"; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }

# the targets
M=$TMP/b.mixed
V=""
read -r ra ok < <(ratio_ok "$(cm "$M.after" 2)" "$(cm "$M.direct" 2)" "$TARGET" ge)
V+=$(check "with 100 KiB values at c=$CONC (memaslap's mix), riven moves >= ${TARGET}x direct's bytes per second" \
    "riven $(mib "$(cm "$M.after" 2)") MiB/s, direct $(mib "$(cm "$M.direct" 2)") MiB/s (${ra}x)" "$ok")$'\n'
reach_ok=1
reach_txt=""
for mix in $MIXES; do
    for t in $TARGETS; do
        bad=$(awk '$5 < 0.99 || $5 > 1.01 {printf "%s ", $5}' "$TMP/b.$mix.$t")
        [ -z "$bad" ] || { reach_ok=0; reach_txt+="$mix $t: $bad; "; }
    done
done
if [ -f "$M.duplex-copy" ]; then
    V+="| the floor on this machine: a process in the middle that only moves the bytes (duplex) | copy $(awk -v a="$(cm "$M.duplex-copy" 2)" -v b="$(cm "$M.direct" 2)" 'BEGIN {printf "%.2f", b ? a / b : 0}')x direct, splice $(awk -v a="$(cm "$M.duplex-splice" 2)" -v b="$(cm "$M.direct" 2)" 'BEGIN {printf "%.2f", b ? a / b : 0}')x; riven $(awk -v a="$(cm "$M.after" 2)" -v b="$(cm "$M.duplex-copy" 2)" 'BEGIN {printf "%.2f", b ? a / b : 0}')x duplex-copy's bytes/s (memaslap's mix) |"$'\n'
fi
V+=$(check "every request reached memcached (its cmd_get + cmd_set per memaslap op, 0.99 to 1.01, every run)" \
    "${reach_txt:-all runs of every target}" "$reach_ok")$'\n'
if [ -n "$BEFORE" ]; then
    S=$TMP/b.sets
    V+=$(check "the copy removed: riven's user CPU per request (utime, /proc) after < before, sets only" \
        "$(cm "$S.after" 9) µs after, $(cm "$S.before" 9) µs before; memaslap's mix $(cm "$M.after" 9) after, $(cm "$M.before" 9) before (utime + stime, which the kernel's socket copies and scheduling dominate: sets $(cm "$S.after" 3) after, $(cm "$S.before" 3) before; mix $(cm "$M.after" 3) after, $(cm "$M.before" 3) before)" \
        "$(awk -v a="$(cm "$S.after" 9)" -v b="$(cm "$S.before" 9)" 'BEGIN {print (a < b) ? 1 : 0}')")$'\n'
    if [ "$CS_BEFORE" != - ] && [ "$CS_AFTER" != - ]; then
        V+=$(check "the copy removed: riven's CPU samples in user-space memcpy/memmove during sets (perf record -e cpu-clock, one more run each) at most a quarter of before's" \
            "${CS_AFTER}% after (of $CN_AFTER samples), ${CS_BEFORE}% before (of $CN_BEFORE)" \
            "$(awk -v a="$CS_AFTER" -v b="$CS_BEFORE" 'BEGIN {print (b > 0 && a <= b / 4) ? 1 : 0}')")$'\n'
    fi
fi

{
    echo "<!-- bigvals:begin (tests/bench/bigvals.sh; BENCH_ONLY=bigvals tests/bench/run.sh RIVEN BENCH_DIR reruns only this) -->"
    echo "## Big values (issue 16)"
    echo
    echo "Run on $(date -u +%Y-%m-%d) (\`BENCH_ONLY=bigvals\` reruns only this section), $(nproc) cores, $(memcached -V)."
    echo "memaslap \`memcaslap -T 1 -c $CONC -x $OPS -X $SIZE -S 3600s\` with its own mix (90% gets, 10% sets),"
    echo "then with sets only (\`-F\`: cmd 0 1, where the copy was), against memcached directly,"
    echo "riven *before* (built from $BASE_DESC: a set's value copied into the"
    echo "backend's write buffer) and riven *after* (this build: the value written to the backend by"
    echo "reference from the client's read buffer, in a writev), in turn within each of $ROUNDS rounds,"
    echo "each run a fresh memcached (\`-m 1024 -c 20000 -t 2\`) and a fresh riven; medians."
    echo "Bytes/s: ops/s x $SIZE (a get's value comes back, a set's goes out). CPU: utime + stime"
    echo "from /proc over the run, per request; user CPU: utime alone, where the copy was. Commands/op:"
    echo "the memcached's \`cmd_get + cmd_set\` per memaslap op. Then one more sets-only run through each"
    echo "riven under \`perf record -e cpu-clock\`: the share of riven's samples in user-space"
    echo "memcpy/memmove. *duplex-copy* and *duplex-splice* (\`tests/bench/relay.c\` copy and splice) are the floor of"
    echo "any proxy here: a thread a direction moving bytes between the client's and memcached's sockets,"
    echo "without framing or lockstep, by read/write or by splice through a pipe (no copy to user space);"
    echo "their CPU is in the riven columns. What they lose against direct is loopback TCP's cost"
    echo "for the second hop, on 2 cores that memaslap and memcached share."
    echo
    echo "| target | result |"
    echo "| --- | --- |"
    printf "%s" "$V"
    echo
    echo "| c=$CONC, 100 KiB | target | ops/s | MiB/s | ratio to direct | riven (or duplex) CPU µs/req | its user CPU µs/req | memcached CPU µs/req | memcached cmds/op | errors | misses | client avg µs |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for mix in $MIXES; do
        for t in $TARGETS; do
            f=$TMP/b.$mix.$t
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" \
                "$([ "$mix" = sets ] && echo "sets only" || echo "90% gets")" "$t" "$(cm "$f" 1)" "$(mib "$(cm "$f" 2)")" \
                "$(awk -v a="$(cm "$f" 2)" -v b="$(cm "$TMP/b.$mix.direct" 2)" 'BEGIN {printf "%.2f", b ? a / b : 0}')" \
                "$(cm "$f" 3)" "$(cm "$f" 9)" "$(cm "$f" 4)" "$(cm "$f" 5)" "$(csum "$f" 6)" "$(csum "$f" 7)" "$(cm "$f" 8)"
        done
    done
    echo "<!-- bigvals:end -->"
} > "$OUT"
echo "bench: bigvals section written to $OUT"
