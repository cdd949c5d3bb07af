#!/usr/bin/env bash
# make bench: memaslap (memcaslap -T 1) against memcached direct, the raw
# relay (the design's floor), riven, and twemproxy when installed, round
# robin within every round, at c=1, 64, 1000 and 9000. Writes
# tests/bench/RESULTS.md. Only loopback addresses are used; every process
# started here is stopped by pid.
#
#   tests/bench/run.sh RIVEN_BIN BENCH_DIR [ROUNDS]
#   BENCH_ONLY=routes tests/bench/run.sh RIVEN_BIN BENCH_DIR
#       only the routes rows (tests/bench/routes.sh, ROUTES_ROUNDS rounds,
#       default 5), spliced into RESULTS.md in place of the last ones
#   BENCH_ONLY=tls ...: the same for the TLS rows (tests/bench/tls.sh,
#       TLS_ROUNDS rounds, default 3)
#   BENCH_ONLY=chunked ...: the same for the chunked storage rows
#       (tests/bench/chunked.sh, CHUNKED_ROUNDS rounds, default 5)
#   BENCH_ONLY=bigvals ...: the same for the big-values rows
#       (tests/bench/bigvals.sh, BIGVALS_ROUNDS rounds, default 3)
#   BENCH_ONLY=batched ...: the same for the batched backend rows
#       (tests/bench/batched.sh, BATCHED_ROUNDS rounds, default 3)
#   BENCH_ONLY=footprint ...: the same for the footprint rows: a get's
#       instructions and cache lines, counted under valgrind
#       (tests/bench/footprint.sh)
#   BENCH_ONLY=memprobe ...: tests/bench/memprobe.sh (issue 16), to stdout
#
# BENCH_DIR holds the relay, idle, pairs, lat, calcify, parse_bench and
# hist_bench binaries.
#
#   LAT_ONLY=1 tests/bench/run.sh RIVEN_BIN BENCH_DIR [ROUNDS]
#       only the latency table at c=64 (tests/bench/lat, ROUNDS rounds of
#       LAT_SECS seconds, default 5), spliced into RESULTS.md in place of
#       the last one
set -u
RIVEN=${1:?riven binary}
BENCH=${2:?directory of the bench binaries}
RELAY=$BENCH/relay
ROUNDS=${3:-3}
OUT=tests/bench/RESULTS.md
TMP=$(mktemp -d /tmp/riven-bench.XXXXXX)
PIDS=()

cleanup() {
    stop_pids # lib.sh
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"

# the routes section runs 5 rounds (ROUTES_ROUNDS): its CPU ratio is a 5%
# target, finer than this machine's noise over 3
ROUTES_ROUNDS=${ROUTES_ROUNDS:-5}

# The sections with their own memcacheds and rivens: routes (issue 13),
# tls (issue 14), chunked (issue 15), bigvals and batched (issue 16).
# section NAME
# OUT_MD runs one.
section() {
    case $1 in
    routes) ROUTES_PAIRS=$BENCH/pairs "$(dirname "$0")/routes.sh" "$RIVEN" "$ROUTES_ROUNDS" "$2" ;;
    tls) "$(dirname "$0")/tls.sh" "$RIVEN" "$BENCH" "$TLS_ROUNDS" "$2" ;;
    chunked) "$(dirname "$0")/chunked.sh" "$RIVEN" "$BENCH" "$CHUNKED_ROUNDS" "$2" ;;
    bigvals) "$(dirname "$0")/bigvals.sh" "$RIVEN" "$BENCH" "$BIGVALS_ROUNDS" "$2" ;;
    batched) "$(dirname "$0")/batched.sh" "$RIVEN" "$BATCHED_ROUNDS" "$2" ;;
    footprint) "$(dirname "$0")/footprint.sh" "$RIVEN" "$BENCH" "$2" ;;
    esac
}
TLS_ROUNDS=${TLS_ROUNDS:-3}
# 5 rounds: an A/A run of the chunked section (both rivens plain) read
# 0.88x ops/s and 1.13x CPU at 100 bytes over 3
CHUNKED_ROUNDS=${CHUNKED_ROUNDS:-5}
BIGVALS_ROUNDS=${BIGVALS_ROUNDS:-3}
BATCHED_ROUNDS=${BATCHED_ROUNDS:-3}

# BENCH_ONLY=memprobe: tests/bench/memprobe.sh, this riven against the
# relay (CPU at c=64, memory at c=9000), to stdout; RESULTS.md untouched
if [ "${BENCH_ONLY:-}" = memprobe ]; then
    "$(dirname "$0")/memprobe.sh" "$BENCH" riven="$RIVEN"
    exit $?
fi
# BENCH_ONLY=routes, tls, chunked, bigvals, batched or footprint: run only that
# section and put it in place of the one in RESULTS.md, the rest left as
# it was
case ${BENCH_ONLY:-} in routes | tls | chunked | bigvals | batched | footprint) ONLY=1 ;; *) ONLY=0 ;; esac
if [ "$ONLY" = 1 ]; then
    section "$BENCH_ONLY" "$TMP/$BENCH_ONLY.md" || exit 1
    python3 - "$OUT" "$TMP/$BENCH_ONLY.md" "$BENCH_ONLY" <<'PY'
import sys
out, new, name = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
try:
    s = open(out).read()
except FileNotFoundError:
    s = ""
end = "<!-- %s:end -->" % name
b, e = s.find("<!-- %s:begin" % name), s.find(end)
if b >= 0 and e > b:
    s = s[:b] + new + s[e + len(end) + 1:]
else:
    n = s.find("## Notes (tests/bench/NOTES.md")
    n = len(s) if n < 0 else n
    s = s[:n] + new + "\n" + s[n:]
open(out, "w").write(s)
PY
    echo "bench: $BENCH_ONLY section replaced in $OUT"
    exit 0
elif [ -n "${BENCH_ONLY:-}" ]; then
    echo "bench: BENCH_ONLY=$BENCH_ONLY: only 'routes', 'tls', 'chunked', 'bigvals', 'batched', 'footprint' and 'memprobe' are known" >&2
    exit 2
fi

NOFILE=$(ulimit -n)
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
HZ=$(getconf CLK_TCK)
echo "bench: nproc $(nproc), kernel $(uname -r), open-file limit $NOFILE"
CMAX=$(((NOFILE - 200) / 2))
SETTINGS=()
for c in 1 64 1000 9000; do
    if [ "$c" -gt "$CMAX" ]; then
        echo "bench: c=$c needs $((2 * c)) fds in a proxy; limit $NOFILE allows c=$CMAX, scaling down"
        c=$CMAX
    fi
    SETTINGS+=("$c")
done

MC_PORT=$(free_port)
memcached -u nobody -U 0 -l 127.0.0.1 -p "$MC_PORT" -m 1024 -c 20000 -t 2 &
MC_PID=$!; PIDS+=("$MC_PID")
wait_port "$MC_PORT" || exit 1

RV_PORT=$(free_port)
RV_METRICS=$(free_port)
"$RIVEN" -q -l 127.0.0.1:"$RV_PORT" -b 127.0.0.1:"$MC_PORT" -m 127.0.0.1:"$RV_METRICS" &
RV_PID=$!; PIDS+=("$RV_PID")
RL_PORT=$(free_port)
"$RELAY" "$RL_PORT" "$MC_PORT" &
RL_PID=$!; PIDS+=("$RL_PID")
wait_port "$RV_PORT" && wait_port "$RL_PORT" || exit 1

# riven-unix: riven with its backend on a Unix socket (the one-box
# deployment), in front of a second memcached started the same way
chmod 711 "$TMP" # memcached runs as nobody and must reach its socket's dir
mkdir -m 1777 "$TMP/unix"
MCU_SOCK=$TMP/unix/memcached.sock
memcached -u nobody -U 0 -s "$MCU_SOCK" -a 0766 -m 1024 -c 20000 -t 2 &
MCU_PID=$!; PIDS+=("$MCU_PID")
for _ in $(seq 1 500); do [ -S "$MCU_SOCK" ] && break; sleep 0.01; done
[ -S "$MCU_SOCK" ] || { echo "bench: memcached made no socket at $MCU_SOCK" >&2; exit 1; }
RU_PORT=$(free_port)
"$RIVEN" -q -l 127.0.0.1:"$RU_PORT" -b unix:"$MCU_SOCK" -m off &
RU_PID=$!; PIDS+=("$RU_PID")
wait_port "$RU_PORT" || exit 1

TARGETS="direct relay riven riven-unix"
declare -A PORT PID MCADDR
PORT[direct]=$MC_PORT; PID[direct]=$MC_PID
PORT[relay]=$RL_PORT; PID[relay]=$RL_PID
PORT[riven]=$RV_PORT; PID[riven]=$RV_PID
PORT[riven-unix]=$RU_PORT; PID[riven-unix]=$RU_PID
for t in direct relay riven twemproxy; do MCADDR[$t]=127.0.0.1:$MC_PORT; done
MCADDR[riven-unix]=$MCU_SOCK
if command -v nutcracker >/dev/null; then
    TW_PORT=$(free_port)
    cat > "$TMP/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:$TW_PORT
  hash: fnv1a_64
  distribution: ketama
  redis: false
  timeout: 1000
  servers:
    - 127.0.0.1:$MC_PORT:1
YML
    nutcracker -c "$TMP/nutcracker.yml" -s "$(free_port)" -o "$TMP/nutcracker.log" &
    TW_PID=$!; PIDS+=("$TW_PID")
    wait_port "$TW_PORT" && { TARGETS="$TARGETS twemproxy"; PORT[twemproxy]=$TW_PORT; PID[twemproxy]=$TW_PID; }
else
    echo "bench: nutcracker not installed, twemproxy skipped"
fi

# riven-batched: riven --batched (backend: {mode: batched}) in front of
# the same memcached, for the latency table only (batched.sh has its own
# throughput rows)
RB_PORT=$(free_port)
"$RIVEN" -q -l 127.0.0.1:"$RB_PORT" -b 127.0.0.1:"$MC_PORT" -m off --batched &
RB_PID=$!; PIDS+=("$RB_PID")
wait_port "$RB_PORT" || exit 1
PORT[riven-batched]=$RB_PORT; PID[riven-batched]=$RB_PID; MCADDR[riven-batched]=127.0.0.1:$MC_PORT
LAT_TARGETS="$TARGETS riven-batched"

# Latency at c=64 (issue 16): tests/bench/lat, a closed-loop client that
# times every request, so that p50, p99 and p99.9 are exact (memaslap's -S
# histogram is log2). Every target in turn within each of ROUNDS rounds,
# LAT_SECS seconds a run after lat has set its keys and run 0.5 s untimed;
# CPU ticks and memcached's commands are read around the timed part only
# (lat -w). LAT_ONLY=1 runs only this and puts its table in place of the
# one in RESULTS.md.
LAT_SECS=${LAT_SECS:-5}
LAT_C=${SETTINGS[1]}
echo "bench: latency: c=$LAT_C (open-file limit $NOFILE), lat on one thread of $(nproc) cores, $LAT_SECS s a run, $ROUNDS rounds"
# lat_run TARGET -> "ops_per_s cpu_us_per_req p50 p99 p999 max errors
# cmds_per_op get_p99 set_p99" (µs), or "0 0 - - - - 1 0 - -" when lat
# failed to start
# (lat talks over two FIFOs, not a coproc: bash unsets a coproc's
# variables once it ends, which set -u would make fatal)
lat_run() {
    local t=$1 pid=${PID[$1]} line="" out="" before after mc0 mc1 lpid lin lout rc
    rm -f "$TMP/lat.in" "$TMP/lat.out"
    mkfifo "$TMP/lat.in" "$TMP/lat.out" || return 1
    timeout 300 "$BENCH/lat" -w "${PORT[$t]}" "$LAT_C" "$LAT_SECS" \
        < "$TMP/lat.in" > "$TMP/lat.out" 2> "$TMP/lat.err" &
    lpid=$!
    exec {lin}> "$TMP/lat.in" {lout}< "$TMP/lat.out"
    read -r line <&"$lout"
    if [ "$line" = "lat: ready" ]; then
        before=$(cpu_ticks "$pid"); mc0=$(mc_cmds "${MCADDR[$t]}")
        (echo go >&"$lin") 2>/dev/null
        read -r out <&"$lout"
        after=$(cpu_ticks "$pid"); mc1=$(mc_cmds "${MCADDR[$t]}")
    fi
    exec {lin}>&- {lout}<&- # the end of its stdin: lat closes its connections
    wait "$lpid"
    rc=$?
    [ "$rc" = 124 ] && echo "lat: killed after 300 s" >> "$TMP/lat.err"
    [ -s "$TMP/lat.err" ] && sed "s/^/bench: latency $t: /" "$TMP/lat.err" >&2
    echo "$out" | awk -v b="${before:-0}" -v a="${after:-0}" -v hz="$HZ" -v mc="$((${mc1:-0} - ${mc0:-0}))" '
        { for (i = 1; i < NF; i++) f[$i] = $(i + 1) }
        END {
            if (!f["ops"]) { print "0 0 - - - - 1 0 - -"; exit }
            printf "%d %.1f %s %s %s %s %d %.2f %s %s\n", f["rate"], (a - b) * 1e6 / hz / f["ops"],
                f["p50_us"], f["p99_us"], f["p999_us"], f["max_us"], f["errors"], mc / f["ops"],
                f["get_p99_us"], f["set_p99_us"] }'
}
for r in $(seq 1 "$ROUNDS"); do
    for t in $LAT_TARGETS; do
        lat_run "$t" >> "$TMP/lat.$t"
        read -r -a lf < <(tail -1 "$TMP/lat.$t")
        echo "bench: latency c=$LAT_C round $r $t: ${lf[0]} ops/s, ${lf[1]} us/req cpu, p50 ${lf[2]} p99 ${lf[3]}" \
            "p99.9 ${lf[4]} max ${lf[5]} us (p99 get ${lf[8]} set ${lf[9]}), errors ${lf[6]}, memcached commands per op ${lf[7]}"
    done
done
lcol() { awk -v k="$2" '{print $k}' "$TMP/lat.$1" | median; } # target column
# the latency table, between markers that LAT_ONLY=1 finds
LAT_MD=$TMP/latency.md
{
    echo "<!-- latency:begin (tests/bench/lat; LAT_ONLY=1 tests/bench/run.sh RIVEN BENCH_DIR reruns only this) -->"
    echo "Latency at c=$LAT_C ($(date -u +%Y-%m-%d), \`tests/bench/lat\`): a closed loop of $LAT_C connections on one"
    echo "epoll thread, each with one request at a time, memaslap's default load (64-byte keys,"
    echo "1,024-byte values, 90% get / 10% set, a key at random) over 10,000 keys set"
    echo "before the clock, so every get hits; every request timed (CLOCK_MONOTONIC) and every"
    echo "answer checked byte for byte. $LAT_SECS s a run after 0.5 s untimed, $ROUNDS rounds, the targets in turn"
    echo "within each round. Percentiles are exact (nearest rank over every request of a"
    echo "run, get and set together); each column is the median over the rounds (max"
    echo "too: one stall of this shared machine can set a run's max). CPU is the process in"
    echo "the middle's (memcached's for direct) over the timed part only; latency ratios"
    echo "are to direct's (2.00: twice as long)."
    echo
    echo "| target | ops/s | ratio to direct | CPU µs/req | p50 µs | p99 µs | p99.9 µs | max µs | p50 / direct | p99 / direct | p99.9 / direct | errors | memcached cmds/op |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for t in $LAT_TARGETS; do
        awk -v t="$t" -v m="$(lcol "$t" 1)" -v u="$(lcol "$t" 2)" -v p50="$(lcol "$t" 3)" \
            -v p99="$(lcol "$t" 4)" -v p999="$(lcol "$t" 5)" -v e="$(awk '{s += $7} END {print s + 0}' "$TMP/lat.$t")" \
            -v mx="$(lcol "$t" 6)" -v rc="$(lcol "$t" 8)" \
            -v d="$(lcol direct 1)" -v d50="$(lcol direct 3)" -v d99="$(lcol direct 4)" -v d999="$(lcol direct 5)" '
            function r(x, y) { return (y + 0 > 0 && x ~ /^[0-9.]+$/) ? sprintf("%.2f", x / y) : "-" }
            BEGIN { printf "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n",
                t, m, r(m, d), u, p50, p99, p999, mx, r(p50, d50), r(p99, d99), r(p999, d999), e, rc }'
    done
    echo "<!-- latency:end -->"
} > "$LAT_MD"
# every answer right and every request at memcached, in every run
lat_txt=""; lat_ok=1
for t in $LAT_TARGETS; do
    bad=$(awk '$7 != 0 || $8 < 0.99 || $8 > 1.01 {printf "round %d: %d errors, %s cmds/op; ", NR, $7, $8}' "$TMP/lat.$t")
    [ -z "$bad" ] || { lat_ok=0; lat_txt+="$t ${bad% }"; }
done
if [ "${LAT_ONLY:-}" = 1 ]; then
    cat "$LAT_MD"
    python3 - "$OUT" "$LAT_MD" <<'PY'
import sys
out, new = sys.argv[1], open(sys.argv[2]).read()
try:
    s = open(out).read()
except FileNotFoundError:
    s = ""
b, e = s.find("<!-- latency:begin"), s.find("<!-- latency:end -->")
if b >= 0 and e > b:
    s = s[:b] + new + s[e + len("<!-- latency:end -->") + 1:]
else: # after the main table: before the system calls, else at the end
    n = s.find("System calls per request")
    n = len(s) if n < 0 else n
    s = s[:n] + new + "\n" + s[n:]
open(out, "w").write(s)
PY
    echo "bench: latency section replaced in $OUT"
    # its chart (and the others, from the same main table as before)
    PLOTS=$("$(dirname "$0")/plots.sh" "$OUT" "$(dirname "$OUT")")
    echo "$PLOTS"
    if grep -qxF "plots: wrote $(dirname "$OUT")/lat.svg" <<<"$PLOTS" && ! grep -qF '(lat.svg)' "$OUT"; then
        # after the other charts' links, else above the targets
        awk -v link="![p50, p99 and p99.9 latency per target at c=$LAT_C](lat.svg)" -v after="$(grep -c '(p99.svg)$' "$OUT")" '
            !done && !after && /^Targets \(issue 7\)/ { print link; print ""; done = 1 }
            { print }
            !done && after && /\(p99.svg\)$/ { print link; done = 1 }' "$OUT" > "$TMP/results.md" &&
            cat "$TMP/results.md" > "$OUT"
        echo "bench: lat.svg linked from $OUT"
    fi
    [ "$lat_ok" = 1 ] || { echo "bench: latency: ${lat_txt%; }" >&2; exit 1; }
    exit 0
fi

ops_for() { case $1 in 1) echo 30000 ;; *) echo 100000 ;; esac; }

# one_run TARGET C -> "tps cpu_us_per_req errors misses maxrss_kb
# backend_cmds_per_op p99_us user_us_per_req" (user: utime alone, the
# process's own code; cpu less it is the kernel's work). -S 3600s makes memaslap time every request
# and print its "Total Statistics" (get and set) at the end, with a log2
# histogram: bucket i holds the latencies in (2^(i-1), 2^i] µs. p99_us is
# the upper edge 2^i of the bucket that holds the 99th percentile, so the
# true p99 is in (p99_us / 2, p99_us]; "-" when memaslap printed none.
one_run() {
    local t=$1 c=$2 ops pid before after log rss=0 sampler mc0 mc1 ubefore uafter
    ops=$(ops_for "$c")
    pid=${PID[$t]}
    log="$TMP/run.log"
    mc0=$(mc_cmds "${MCADDR[$t]}")
    before=$(cpu_ticks "$pid")
    ubefore=$(user_ticks "$pid")
    ( while :; do rss_kb "$pid"; sleep 0.2; done ) > "$TMP/rss" &
    sampler=$!
    timeout 120 memcaslap -s 127.0.0.1:"${PORT[$t]}" -T 1 -c "$c" -x "$ops" -S 3600s > "$log" 2>&1
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    after=$(cpu_ticks "$pid")
    uafter=$(user_ticks "$pid")
    mc1=$(mc_cmds "${MCADDR[$t]}")
    rss=$(sort -n "$TMP/rss" | tail -1)
    # an error is any line memaslap prints about one (memcached's error
    # replies are upper case: "<9 CLIENT_ERROR ...")
    awk -v b="$before" -v a="$after" -v ub="$ubefore" -v ua="$uafter" -v hz="$HZ" -v rss="${rss:-0}" -v mc="$((mc1 - mc0))" '
        /^Run time/ { for (i = 1; i <= NF; i++) { if ($i == "TPS:") tps = $(i+1); if ($i == "Ops:") ops = $(i+1) } }
        /get_misses/ { miss = $2 }
        /ERROR|[Ee]rror|failed/ { err++ }
        /^Total Statistics \(/ { tot = 1; next }
        tot && /Log2 Dist:/ { dist = 1; next }
        dist && $1 ~ /^[0-9]+:$/ { for (i = 2; i <= NF; i++) { k = $1 + i - 2; d[k] = $i; n += $i; if (k > top) top = k } next }
        dist && NF == 0 { dist = tot = 0 }
        END { cpu = (ops > 0) ? (a - b) * 1e6 / hz / ops : 0;
              p99 = "-"; cum = 0
              for (k = 0; n > 0 && k <= top; k++) { cum += d[k]; if (cum * 100 >= n * 99) { p99 = 2 ^ k; break } }
              printf "%d %.1f %d %d %d %.2f %s %.1f\n", tps, cpu, err + 0, miss + 0, rss, (ops > 0) ? mc / ops : 0, p99,
                  (ops > 0) ? (ua - ub) * 1e6 / hz / ops : 0 }' "$log"
}

declare -A TPS CPU USR ERR MISS RSS REACH P99
for c in "${SETTINGS[@]}"; do
    for r in $(seq 1 "$ROUNDS"); do
        for t in $TARGETS; do
            read -r tps cpu err miss rss reach p99 usr < <(one_run "$t" "$c")
            echo "bench: c=$c round $r $t: $tps ops/s, ${cpu} us/req cpu (${usr} user), rss ${rss} KiB, errors $err, misses $miss, memcached commands per op $reach, p99 <= $p99 us"
            TPS[$t,$c]+="$tps "; CPU[$t,$c]+="$cpu "; USR[$t,$c]+="$usr "
            ERR[$t,$c]=$(( ${ERR[$t,$c]:-0} + err )); MISS[$t,$c]=$(( ${MISS[$t,$c]:-0} + miss ))
            RSS[$t,$c]=$rss
            REACH[$t,$c]+="$reach "
            P99[$t,$c]+="$p99 "
        done
    done
done

# System calls per request: one c=64 run of 20000 requests with every
# thread of the middle process under `strace -c -f` (threads the run
# creates are followed too). strace slows the process; the counts, not the
# rate, are what this measures.
traced() { # pid: true once its main thread has a tracer
    [ "$(awk '/^TracerPid/ {print $2}' /proc/"$1"/status 2>/dev/null)" != "0" ]
}
SYS=""
SYSTOP=""
for t in relay riven; do
    strace -c -f -p "${PID[$t]}" -o "$TMP/strace.$t" 2>/dev/null &
    sp=$!
    for _ in $(seq 1 500); do traced "${PID[$t]}" && break; sleep 0.01; done
    timeout 300 memcaslap -s 127.0.0.1:"${PORT[$t]}" -T 1 -c 64 -x 20000 > /dev/null 2>&1
    kill -INT "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
    # strace -c: "% time seconds usecs/call calls [errors] syscall"
    SYS+=$(awk -v t="$t" '$NF == "total" {printf "| %s | %.2f |\n", t, $4 / 20000}' "$TMP/strace.$t")$'\n'
    SYSTOP+=$(awk -v t="$t" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" && $4 / 20000 >= 0.01 {
        printf "| %s | %s | %.2f |\n", t, $NF, $4 / 20000 }' "$TMP/strace.$t")$'\n'
done

# The cost of scraping: riven at c=64 with /metrics read 10 times a second,
# against the plain c=64 rounds above.
scrape_loop() {
    while :; do
        (exec 3<>/dev/tcp/127.0.0.1/"$RV_METRICS" &&
            printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3 > /dev/null) 2>/dev/null
        sleep 0.1
    done
}
SCRAPED=""
for r in $(seq 1 "$ROUNDS"); do
    scrape_loop &
    sl=$!
    read -r tps _ < <(one_run riven 64)
    kill "$sl" 2>/dev/null; wait "$sl" 2>/dev/null
    SCRAPED+="$tps "
    echo "bench: c=64 round $r riven with /metrics scraped 10/s: $tps ops/s"
done

# A new client while c=9000 connections are busy: connect + version, 20
# times, timed by the idle tool (its slowest).
C9=${SETTINGS[3]}
timeout 120 memcaslap -s 127.0.0.1:"$RV_PORT" -T 1 -c "$C9" -x 200000 > /dev/null 2>&1 &
lp=$!
for _ in $(seq 1 100); do
    [ "$(awk '/^Threads/ {print $2}' /proc/"$RV_PID"/status)" -ge $((C9 / 2)) ] && break
    sleep 0.1
done
NEWCLIENT=$("$BENCH/idle" "$RV_PORT" "$RV_PID" 20 2>&1 | awk '/slowest/ {print $(NF-1), $NF}')
wait "$lp"
echo "bench: new client during c=$C9 load: slowest of 20 connect+version: $NEWCLIENT"

csw_sum() { # voluntary + involuntary switches of the live threads of pid
    awk '/ctxt_switches/ {s += $2} END {print s + 0}' /proc/"$1"/task/*/status 2>/dev/null
}
CSW=""
for t in relay riven; do
    v0=$(csw_sum "${PID[$t]}")
    timeout 120 memcaslap -s 127.0.0.1:"${PORT[$t]}" -T 1 -c 64 -x 20000 > /dev/null 2>&1 &
    lp=$!
    vmax=$v0
    while kill -0 "$lp" 2>/dev/null; do
        v=$(csw_sum "${PID[$t]}")
        [ "${v:-0}" -gt "$vmax" ] && vmax=$v
        sleep 0.05
    done
    wait "$lp"
    CSW+="| $t | $(awk -v a="$v0" -v b="$vmax" 'BEGIN {printf "%.2f", (b - a) / 20000}') |"$'\n'
done

# idle scale: a fresh riven holds N idle connections that sent "version"
IDLE_N=19000
if [ $((NOFILE - 200)) -lt "$IDLE_N" ]; then
    IDLE_N=$((NOFILE - 200))
    echo "bench: idle connections scaled down to $IDLE_N (open-file limit $NOFILE)"
fi
kill "$RV_PID" 2>/dev/null; wait "$RV_PID" 2>/dev/null
IDLE_PORT=$(free_port)
"$RIVEN" -q -l 127.0.0.1:"$IDLE_PORT" -b 127.0.0.1:"$MC_PORT" -m off &
IDLE_PID=$!; PIDS+=("$IDLE_PID")
wait_port "$IDLE_PORT" || exit 1
"$BENCH/idle" "$IDLE_PORT" "$IDLE_PID" "$IDLE_N" > "$TMP/idle.txt" 2>&1
cat "$TMP/idle.txt"
# the micro-benchmarks on a quiet machine: no riven unwinding 19000 threads
kill "$IDLE_PID" 2>/dev/null; wait "$IDLE_PID" 2>/dev/null
for t in $LAT_TARGETS; do kill "${PID[$t]}" 2>/dev/null; wait "${PID[$t]}" 2>/dev/null; done
PARSE=$("$BENCH/parse_bench")
HIST=$("$BENCH/hist_bench" 2>&1)
# the routes, TLS, chunked, big-values and batched rows (issues 13 to
# 16): their own memcacheds and rivens
section routes "$TMP/routes.md" || echo "(routes section failed)" > "$TMP/routes.md"
section tls "$TMP/tls.md" || echo "(tls section failed)" > "$TMP/tls.md"
section chunked "$TMP/chunked.md" || echo "(chunked section failed)" > "$TMP/chunked.md"
section bigvals "$TMP/bigvals.md" || echo "(bigvals section failed)" > "$TMP/bigvals.md"
section batched "$TMP/batched.md" || echo "(batched section failed)" > "$TMP/batched.md"
section footprint "$TMP/footprint.md" || echo "(footprint section failed)" > "$TMP/footprint.md"

# The targets of issue 7, judged on this run's medians.
VERDICT=""
# every request a proxy answered must have reached memcached: a proxy that
# answers errors of its own is fast and wrong
reach_txt=""; reach_ok=1
for t in $TARGETS; do
    for c in "${SETTINGS[@]}"; do
        for v in ${REACH[$t,$c]}; do
            awk -v v="$v" 'BEGIN {exit !(v >= 0.99 && v <= 1.01)}' || { reach_ok=0; reach_txt+="$t c=$c: $v; "; }
        done
    done
done
VERDICT+=$(check "every request reached memcached (its cmd_get + cmd_set per op, 0.99 to 1.01, every run)" \
    "${reach_txt:-all runs of every target}" "$reach_ok")$'\n'
VERDICT+=$(check "latency runs (c=$LAT_C, \`tests/bench/lat\`): every answer right byte for byte, every request reached memcached (0.99 to 1.01 cmds/op, every run)" \
    "${lat_txt:-all runs of every target}" "$lat_ok")$'\n'
cpu_txt=""; cpu_ok=1
for c in "${SETTINGS[@]:0:3}"; do
    read -r r ok < <(ratio_ok "$(med "${CPU[riven,$c]}")" "$(med "${CPU[relay,$c]}")" 1.1 le)
    cpu_txt+="c=$c $(med "${CPU[riven,$c]}") vs $(med "${CPU[relay,$c]}") µs (${r}x); "
    [ "$ok" = 1 ] || cpu_ok=0
done
VERDICT+=$(check "riven CPU/request <= 1.1x the relay's at c=${SETTINGS[0]}, ${SETTINGS[1]}, ${SETTINGS[2]}" "${cpu_txt%; }" "$cpu_ok")$'\n'
tp_txt=""; tp_ok=1
for c in "${SETTINGS[@]:1:2}"; do
    read -r r ok < <(ratio_ok "$(med "${TPS[riven,$c]}")" "$(med "${TPS[direct,$c]}")" 0.45 ge)
    tp_txt+="c=$c ${r}x; "
    [ "$ok" = 1 ] || tp_ok=0
done
VERDICT+=$(check "riven >= 0.45x direct at c=${SETTINGS[1]} and c=${SETTINGS[2]}" "${tp_txt%; }" "$tp_ok")$'\n'
if [[ " $TARGETS " == *" twemproxy "* ]]; then
    c=${SETTINGS[0]}
    read -r r ok < <(ratio_ok "$(med "${TPS[riven,$c]}")" "$(med "${TPS[twemproxy,$c]}")" 1 ge)
    VERDICT+=$(check "riven >= twemproxy at c=$c" "$(med "${TPS[riven,$c]}") vs $(med "${TPS[twemproxy,$c]}") ops/s (${r}x)" "$ok")$'\n'
fi
VERDICT+=$(check "c=$C9: zero errors" "${ERR[riven,$C9]} errors, ${MISS[riven,$C9]} misses over $ROUNDS rounds" "$([ "${ERR[riven,$C9]}" = 0 ] && echo 1 || echo 0)")$'\n'
read -r r ok < <(awk -v rss="${RSS[riven,$C9]}" -v c="$C9" 'BEGIN { k = rss / c; printf "%.1f %d", k, k <= 16 }')
VERDICT+=$(check "c=$C9: <= 16 KiB RSS per connection" "$r KiB (peak RSS over $C9 busy connections)" "$ok")$'\n'
read -r r ok < <(echo "$NEWCLIENT" | awk '{ printf "%s %d", $1, ($1 != "" && $1 <= 10) }')
VERDICT+=$(check "c=$C9: a new client answered within 10 ms" "slowest of 20 connect + \`version\` during the load, $r ms" "$ok")$'\n'
read -r held kib fds < <(awk '/connections held/ {h = $2} /per connection/ {k = $(NF-3)} /backend sockets/ {b = $(NF-2)}
    END {print h + 0, k + 0, b + 0}' "$TMP/idle.txt")
VERDICT+=$(check "$IDLE_N idle connections, <= 16 KiB each, no backend socket" "$held held, $kib KiB each, $fds backend sockets" \
    "$([ "$held" = "$IDLE_N" ] && awk -v k="$kib" 'BEGIN {exit !(k <= 16)}' && [ "$fds" = 0 ] && echo 1 || echo 0)")$'\n'

{
    echo "# riven benchmark results"
    echo
    echo "Generated by \`make bench\` on $(date -u +%Y-%m-%d) — $(nproc) cores, kernel $(uname -r),"
    echo "open-file limit $NOFILE. Load: \`memcaslap -s 127.0.0.1:PORT -T 1 -c C -x OPS -S 3600s\`"
    echo "(90% get, 10% set), $ROUNDS rounds, targets run in turn within each round;"
    echo "medians below. CPU is utime+stime of the process in the middle (memcached for"
    echo "direct) from /proc, per request. RSS is the peak sampled during the run."
    echo "p99 is the client's, get and set together: memaslap's log2 latency histogram"
    echo "(\`-S\`), the upper edge of the bucket that holds the 99th percentile, so the"
    echo "true p99 lies between half of it and it. The exact p50, p99 and p99.9 at"
    echo "c=$LAT_C are in the latency table below this one (\`tests/bench/lat\`)."
    echo
    echo "Targets (issue 7), judged by \`run.sh\` on the medians below:"
    echo
    echo "| target | result |"
    echo "| --- | --- |"
    printf "%s" "$VERDICT"
    echo
    echo "| c | target | ops/s | ratio to direct | CPU µs/req | RSS KiB | RSS/conn KiB | errors | misses | memcached cmds/op | p99 µs |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for c in "${SETTINGS[@]}"; do
        d=$(echo ${TPS[direct,$c]} | tr ' ' '\n' | median)
        for t in $TARGETS; do
            m=$(echo ${TPS[$t,$c]} | tr ' ' '\n' | median)
            u=$(echo ${CPU[$t,$c]} | tr ' ' '\n' | median)
            rc=$(echo ${REACH[$t,$c]} | tr ' ' '\n' | median)
            p=$(med "${P99[$t,$c]}")
            awk -v c="$c" -v t="$t" -v m="$m" -v d="$d" -v u="$u" -v rss="${RSS[$t,$c]}" \
                -v e="${ERR[$t,$c]}" -v mi="${MISS[$t,$c]}" -v rc="$rc" -v p="$p" 'BEGIN {
                printf "| %s | %s | %d | %.2f | %s | %d | %.1f | %d | %d | %s | %s |\n",
                    c, t, m, d ? m / d : 0, u, rss, (t == "direct" ? 0 : rss / c), e, mi, rc, p }'
        done
    done
    echo
    echo "The CPU per request of the relay and riven above, split: user is the process's own"
    echo "code (utime), kernel the rest (stime: the system calls, the TCP stack, the"
    echo "scheduler). Medians of the same runs; the median of a difference is not the"
    echo "difference of the medians, so user + kernel need not add up to the CPU column."
    echo
    echo "| c | relay user µs/req | relay kernel µs/req | riven user µs/req | riven kernel µs/req |"
    echo "| --- | --- | --- | --- | --- |"
    for c in "${SETTINGS[@]}"; do
        row="| $c |"
        for t in relay riven; do
            ks=""
            read -r -a cs <<< "${CPU[$t,$c]}"
            read -r -a us <<< "${USR[$t,$c]}"
            for i in "${!cs[@]}"; do ks+="$(awk -v a="${cs[$i]}" -v b="${us[$i]:-0}" 'BEGIN {printf "%.1f", a - b}') "; done
            row+=" $(med "${USR[$t,$c]}") | $(med "$ks") |"
        done
        echo "$row"
    done
    echo
    cat "$LAT_MD"
    echo
    echo "System calls per request (\`strace -c -f -p PID\`: every thread of the middle"
    echo "process, the connection threads a run creates included; one run at c=64,"
    echo "20000 requests):"
    echo
    echo "| target | syscalls/req |"
    echo "| --- | --- |"
    printf "%s" "$SYS"
    echo
    echo "Of which (at least 0.01 per request):"
    echo
    echo "| target | syscall | calls/req |"
    echo "| --- | --- | --- |"
    printf "%s" "$SYSTOP"
    echo
    echo "Context switches per request (voluntary + involuntary, summed over live threads, sampled"
    echo "every 50 ms during a c=64 run of 20000 requests; a lower bound):"
    echo
    echo "| target | switches/req |"
    echo "| --- | --- |"
    printf "%s" "$CSW"
    echo
    echo "Scraping cost: riven at c=64 with \`/metrics\` read 10 times a second, medians:"
    echo
    echo "| riven c=64 | ops/s |"
    echo "| --- | --- |"
    echo "| plain (table above) | $(echo ${TPS[riven,64]} | tr ' ' '\n' | median) |"
    echo "| scraped 10/s | $(echo $SCRAPED | tr ' ' '\n' | median) |"
    echo
    echo "A new client during the c=$C9 load: slowest of 20 connect + \`version\`: $NEWCLIENT."
    echo
    echo "Idle scale (\`tests/bench/idle\`: $IDLE_N connections, each sends \`version\`, all held open):"
    echo
    echo '```'
    cat "$TMP/idle.txt"
    echo '```'
    echo
    echo "Parser micro-benchmark (\`tests/bench/parse_bench\`, one thread, 2,000,000 iterations):"
    echo
    echo "$PARSE"
    echo
    echo "Histogram record cost (\`tests/bench/hist_bench\`):"
    echo
    echo '```'
    echo "$HIST"
    echo '```'
    echo
    cat "$TMP/routes.md"
    echo
    cat "$TMP/tls.md"
    echo
    cat "$TMP/chunked.md"
    echo
    cat "$TMP/bigvals.md"
    echo
    cat "$TMP/batched.md"
    echo
    cat "$TMP/footprint.md"
    echo
    cat tests/bench/NOTES.md
} > "$OUT"
echo "bench: wrote $OUT"

# The charts (tests/bench/plots.sh: gnuplot, from the table just written),
# beside RESULTS.md, linked from it above the targets. Without gnuplot the
# run goes on with no charts and no links.
PLOTS=$("$(dirname "$0")/plots.sh" "$OUT" "$(dirname "$OUT")")
echo "$PLOTS"
LINKS=""
for chart in "ops ops/s against concurrency" "cpu CPU per request against concurrency" \
    "p99 p99 latency against concurrency" "lat p50, p99 and p99.9 latency per target at c=$LAT_C"; do
    f=${chart%% *}
    grep -qxF "plots: wrote $(dirname "$OUT")/$f.svg" <<<"$PLOTS" &&
        LINKS+="![${chart#* }]($f.svg)"$'\n'
done
if [ -n "$LINKS" ]; then
    awk -v links="$LINKS" '/^Targets \(issue 7\)/ && !done { printf "%s\n", links; done = 1 } { print }' \
        "$OUT" > "$TMP/results.md" && cat "$TMP/results.md" > "$OUT"
    echo "bench: charts linked from $OUT"
else
    echo "bench: no charts drawn: any tests/bench/*.svg are an earlier run's, and $OUT links none"
fi
