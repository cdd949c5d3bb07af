#!/usr/bin/env bash
# memprobe (issue 16): where a busy connection's CPU and memory go, as an
# A/B of riven builds against the relay on one memcached.
#
#   tests/bench/memprobe.sh BENCH_DIR LABEL=RIVEN_BIN [LABEL=RIVEN_BIN ...] [OUT_MD]
#   BENCH_ONLY=memprobe tests/bench/run.sh build/riven build/bench
#       (this build alone against the relay; the table goes to stdout)
#
# 1. CPU: every riven (started once, default options) and the relay, in
#    turn within each of MP_ROUNDS rounds, under memaslap (`memcaslap -T 1
#    -c MP_C -x MP_OPS`, with `-S 3600s` when MP_S=1, as make bench runs
#    it; MP_S=both runs each row both ways): ops/s and the process's
#    utime + stime per request, medians.
# 2. Memory: for each target a fresh process under memaslap at
#    c=MP_BIG (9000; 0 skips it), MP_BIG_ROUNDS times: its RSS before the
#    load, the peak sampled every 0.2 s, and from /proc/PID/smaps, taken
#    once while every connection is open, the resident memory of the
#    thread stacks (each a VMA above a guard page; pages touched per
#    stack), of malloc's heaps (the main heap and the 64 MiB-aligned
#    arena heaps) and of the rest. With MP_MALLINFO=1 (default) the
#    process runs with a small LD_PRELOAD library, built here, that
#    prints mallinfo2() and the number of arenas on request: the bytes
#    malloc hands out (in use, tcaches included) against the bytes it
#    holds free.
# MP_RELAY=0 leaves the relay out.
#
# Loopback only; every process started here is stopped by its pid.
set -u
BENCH=${1:?directory of the bench binaries}
shift
LABELS=()
declare -A BIN
OUT=""
for a in "$@"; do
    case $a in
    *=*) LABELS+=("${a%%=*}"); BIN[${a%%=*}]=${a#*=} ;;
    *) OUT=$a ;;
    esac
done
[ "${#LABELS[@]}" -gt 0 ] || { echo "usage: memprobe.sh BENCH_DIR LABEL=RIVEN_BIN... [OUT_MD]" >&2; exit 2; }
ROUNDS=${MP_ROUNDS:-3}
C=${MP_C:-64}
OPS=${MP_OPS:-200000}
SFLAG=${MP_S:-1}
BIG=${MP_BIG:-9000}
BIG_ROUNDS=${MP_BIG_ROUNDS:-1}
BIG_OPS=${MP_BIG_OPS:-200000}
MALLINFO=${MP_MALLINFO:-1}
TMP=$(mktemp -d /tmp/riven-memprobe.XXXXXX)
PIDS=()

cleanup() {
    stop_pids # lib.sh
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
HZ=$(getconf CLK_TCK)
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
if [ "$BIG" -gt $(((NOFILE - 200) / 2)) ]; then
    BIG=$(((NOFILE - 200) / 2))
    echo "memprobe: c=$BIG for the memory rows (open-file limit $NOFILE)"
fi

# The mallinfo probe: a thread that, whenever $MP_TRIGGER exists, removes
# it and appends mallinfo2() and the arena count to $MP_REPORT.
PRELOAD=""
if [ "$MALLINFO" = 1 ]; then
    cat > "$TMP/mallprobe.c" <<'C'
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *
probe(void *arg)
{
    const char *trig = getenv("MP_TRIGGER"), *rep = getenv("MP_REPORT");

    (void)arg;
    for (;;) {
        usleep(50000);
        if (access(trig, F_OK) != 0) {
            continue;
        }
        unlink(trig);
        char *xml = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&xml, &len);
        int heaps = 0;
        struct mallinfo2 mi = mallinfo2();
        FILE *f;

        if (m != NULL) {
            malloc_info(0, m);
            fclose(m);
            for (char *p = xml; p != NULL && (p = strstr(p, "<heap nr=")); p++) {
                heaps++;
            }
            free(xml);
        }
        if ((f = fopen(rep, "a")) != NULL) {
            fprintf(f, "arena %zu hblkhd %zu uordblks %zu fordblks %zu heaps %d\n",
                    mi.arena, mi.hblkhd, mi.uordblks, mi.fordblks, heaps);
            fclose(f);
        }
    }
    return NULL;
}

__attribute__((constructor)) static void
start(void)
{
    pthread_t t;

    if (getenv("MP_TRIGGER") != NULL && getenv("MP_REPORT") != NULL) {
        pthread_create(&t, NULL, probe, NULL);
        pthread_detach(t);
    }
}
C
    if cc -O2 -shared -fPIC -pthread -o "$TMP/mallprobe.so" "$TMP/mallprobe.c"; then
        PRELOAD=$TMP/mallprobe.so
    else
        echo "memprobe: no mallinfo probe (cc failed)"
    fi
fi

MC_PORT=$(free_port)
memcached -u nobody -U 0 -l 127.0.0.1 -p "$MC_PORT" -m 1024 -c 20000 -t 2 &
PIDS+=($!)
wait_port "$MC_PORT" || exit 1

declare -A PORT PID
start_target() { # label [env...]: PORT[label], PID[label]
    local t=$1 p
    shift
    p=$(free_port)
    if [ "$t" = relay ]; then
        env "$@" "$BENCH/relay" "$p" "$MC_PORT" &
    else
        env "$@" "${BIN[$t]}" -q -l 127.0.0.1:"$p" -b 127.0.0.1:"$MC_PORT" -m off &
    fi
    PID[$t]=$!; PORT[$t]=$p
    PIDS+=("${PID[$t]}")
    wait_port "$p"
}
stop_target() {
    kill "${PID[$1]}" 2>/dev/null; wait "${PID[$1]}" 2>/dev/null
}

# load TARGET C OPS SFLAG: memaslap against it; prints "tps cpu_us_per_req errors"
load() {
    local t=$1 c=$2 ops=$3 s=$4 before after sopt=()
    [ "$s" = 1 ] && sopt=(-S 3600s)
    before=$(cpu_ticks "${PID[$t]}")
    timeout 300 memcaslap -s 127.0.0.1:"${PORT[$t]}" -T 1 -c "$c" -x "$ops" "${sopt[@]}" > "$TMP/ms.log" 2>&1
    after=$(cpu_ticks "${PID[$t]}")
    awk -v b="$before" -v a="$after" -v hz="$HZ" '
        /^Run time/ { for (i = 1; i <= NF; i++) { if ($i == "TPS:") tps = $(i+1); if ($i == "Ops:") ops = $(i+1) } }
        /ERROR|[Ee]rror|failed/ { err++ }
        END { printf "%d %.1f %d\n", tps, (ops > 0) ? (a - b) * 1e6 / hz / ops : 0, err + 0 }' "$TMP/ms.log"
}

TARGETS="${LABELS[*]}"
[ "${MP_RELAY:-1}" = 1 ] && TARGETS="$TARGETS relay"
SMODES=$SFLAG
[ "$SFLAG" = both ] && SMODES="1 0"

# ---- 1. CPU per request at c=C ----
declare -A TPS CPU
for t in $TARGETS; do start_target "$t" || exit 1; done
# the order rotates each round; CPU/relay's is also taken round by round
# (this machine's speed swings by a third within minutes, every target
# alike), and the median of those ratios given beside the ratio of medians
read -r -a TLIST <<<"$TARGETS"
for s in $SMODES; do
    for r in $(seq 1 "$ROUNDS"); do
        for k in $(seq 0 $((${#TLIST[@]} - 1))); do
            t=${TLIST[$(((k + r) % ${#TLIST[@]}))]}
            read -r tps cpu err < <(load "$t" "$C" "$OPS" "$s")
            echo "memprobe: c=$C -S=$s round $r $t: $tps ops/s, $cpu us/req, errors $err"
            TPS[$t,$s]+="$tps "; CPU[$t,$s]+="$cpu "
        done
    done
done
for t in $TARGETS; do stop_target "$t"; done

# ---- 2. memory per busy connection at c=BIG ----
# smaps_split PID: "stacks stack_kib per_stack_hist heap_kib other_kib total_kib"
smaps_split() {
    python3 - "$1" <<'PY'
import sys, collections
pid = sys.argv[1]
vmas = []
cur = None
with open("/proc/%s/smaps" % pid) as f:
    for line in f:
        p = line.split()
        if "-" in p[0] and len(p) >= 5 and ":" not in p[0]:
            lo, hi = (int(x, 16) for x in p[0].split("-"))
            cur = {"lo": lo, "hi": hi, "perm": p[1], "path": p[5] if len(p) > 5 else "", "rss": 0}
            vmas.append(cur)
        elif p[0] == "Rss:":
            cur["rss"] = int(p[1])
HEAP_MAX = 64 << 20
stack = heap = other = 0
hist = collections.Counter()
prev = None
for v in vmas:
    anon = v["path"] == ""
    if (anon and v["perm"].startswith("rw") and prev is not None and prev["hi"] == v["lo"]
            and prev["perm"].startswith("---") and prev["hi"] - prev["lo"] <= 65536):
        stack += v["rss"]; hist[v["rss"]] += 1
    elif v["path"] == "[heap]" or (anon and v["perm"].startswith("rw") and v["lo"] % HEAP_MAX == 0):
        heap += v["rss"]
    else:
        other += v["rss"]
    prev = v
n = sum(hist.values())
top = ",".join("%dK:%d" % (k, c) for k, c in sorted(hist.items(), key=lambda x: -x[1])[:4])
print(n, stack, top or "-", heap, other, stack + heap + other)
PY
}

declare -A MEM
if [ "$BIG" -gt 0 ]; then
    for r in $(seq 1 "$BIG_ROUNDS"); do
        for t in $TARGETS; do
            env=()
            rm -f "$TMP/mi.$t"
            [ -n "$PRELOAD" ] && env=(LD_PRELOAD="$PRELOAD" MP_TRIGGER="$TMP/trig.$t" MP_REPORT="$TMP/mi.$t")
            start_target "$t" "${env[@]}" || exit 1
            pid=${PID[$t]}
            sleep 0.5
            base=$(rss_kb "$pid")
            [ -n "$PRELOAD" ] && touch "$TMP/trig.$t"
            sleep 0.2
            # RSS every 0.2 s, mallinfo every second
            (
                i=0
                while :; do
                    rss_kb "$pid"
                    i=$((i + 1))
                    [ -n "$PRELOAD" ] && [ $((i % 5)) = 0 ] && touch "$TMP/trig.$t"
                    sleep 0.2
                done
            ) > "$TMP/rss" &
            sampler=$!
            timeout 300 memcaslap -s 127.0.0.1:"${PORT[$t]}" -T 1 -c "$BIG" -x "$BIG_OPS" -S 3600s > "$TMP/ms.log" 2>&1 &
            lp=$!
            # once every connection has its thread, and a second later
            for _ in $(seq 1 600); do
                [ "$(awk '/^Threads/ {print $2}' /proc/"$pid"/status)" -ge "$BIG" ] && break
                kill -0 "$lp" 2>/dev/null || break
                sleep 0.1
            done
            sleep 1
            split=$(smaps_split "$pid")
            rss_at=$(rss_kb "$pid")
            wait "$lp"
            kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
            peak=$(sort -n "$TMP/rss" | tail -1)
            err=$(grep -cE 'ERROR|[Ee]rror|failed' "$TMP/ms.log")
            tps=$(awk '/^Run time/ { for (i = 1; i <= NF; i++) if ($i == "TPS:") print $(i+1) }' "$TMP/ms.log")
            sleep 0.3
            # mallinfo before the load, and its sample with the most
            # memory from the system (arena): bytes in use, bytes free
            mi=$(awk 'NR == 1 {printf "before: in use %d KiB, free %d KiB, %d heaps; ", $6 / 1024, $8 / 1024, $10}
                $2 > max {max = $2; l = $0}
                END {if (l != "") {split(l, f, " "); printf "largest: %d KiB from the system, in use %d KiB, free %d KiB, %d heaps", f[2] / 1024, f[6] / 1024, f[8] / 1024, f[10]}}' "$TMP/mi.$t" 2>/dev/null)
            stop_target "$t"
            read -r nst stk hist heap oth _ <<<"$split"
            line=$(awk -v c="$BIG" -v b="$base" -v p="$peak" -v n="$nst" -v s="$stk" -v h="$heap" -v o="$oth" -v at="$rss_at" -v hist="$hist" -v tps="$tps" -v e="$err" 'BEGIN {
                printf "| %d | %d | %d | %.1f | %.1f | %d stacks, %.1f KiB each (%s) | %.1f | %.1f | %s | %d |",
                    b, p, at, (p - b) / c, p / c, n, n ? s / n : 0, hist, h / c, o / c, tps, e }')
            echo "memprobe: c=$BIG round $r $t: $line malloc: $mi"
            MEM[$t]+="| $t $line ${mi:--} |"$'\n'
        done
    done
fi

{
    echo "### memprobe ($(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) cores)"
    echo
    echo "CPU at c=$C (\`memcaslap -T 1 -c $C -x $OPS\`, $ROUNDS rounds, targets in turn; medians):"
    echo
    echo "| target | -S | ops/s | CPU µs/req | CPU / relay's (medians) | median of each round's CPU / relay's | runs (µs/req) |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for s in $SMODES; do
        rel=$(med "${CPU[relay,$s]}")
        for t in $TARGETS; do
            awk -v t="$t" -v s="$s" -v tps="$(med "${TPS[$t,$s]}")" -v cpu="$(med "${CPU[$t,$s]}")" -v rel="$rel" \
                -v runs="${CPU[$t,$s]}" -v relruns="${CPU[relay,$s]:-}" 'BEGIN {
                n = split(runs, a, " "); split(relruns, b, " ")
                for (i = 1; i <= n; i++) q[i] = (b[i] > 0) ? a[i] / b[i] : 0
                for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (q[j] < q[i]) { x = q[i]; q[i] = q[j]; q[j] = x }
                printf "| %s | %s | %d | %.1f | %.2f | %.2f | %s |\n", t, s == 1 ? "yes" : "no", tps, cpu,
                    rel ? cpu / rel : 0, n ? q[int((n + 1) / 2)] : 0, runs }'
        done
    done
    if [ "$BIG" -gt 0 ]; then
        echo
        echo "Memory at c=$BIG (a fresh process each, \`-x $BIG_OPS -S 3600s\`; KiB; stacks, heap and other from"
        echo "/proc/PID/smaps once every connection was open, per connection; malloc: mallinfo2 before the load and its sample"
        echo "(one a second) that held the most memory from the system):"
        echo
        echo "| target | RSS before | peak | at smaps | (peak − before) / c | peak / c | stacks | heap / c | other / c | ops/s | errors | malloc |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        for t in $TARGETS; do printf "%s" "${MEM[$t]}"; done
    fi
} > "$TMP/out.md"
cat "$TMP/out.md"
[ -n "$OUT" ] && cp "$TMP/out.md" "$OUT"
exit 0
