#!/usr/bin/env bash
# The batched backend rows of make bench (issue 16, "Done when" 1):
# memaslap (memcaslap -T 1 -S 3600s, 90% gets) at c=64 and c=1000 through
#   riven          per-connection pool (a backend socket per client thread)
#   riven-batched  riven --batched (backend: {mode: batched}, the default
#                  1 shared connection, batch_max 256)
#   twemproxy      nutcracker, when installed (as run.sh starts it)
# all three in front of one memcached (-m 1024 -c 20000 -t 2), in turn
# within each of ROUNDS rounds; medians. Per run: ops/s; CPU per request
# (utime + stime from /proc over the run) of the proxy and of the
# memcached behind it; memcached's cmd_get + cmd_set per memaslap op (1.00:
# every request reached memcached); the proxy's open fds at the run's
# peak (sampled every 0.2 s); errors and misses as memaslap prints them.
# Writes a Markdown section to OUT_MD and its log to stdout. Loopback only;
# every process started here is stopped by pid.
#
#   tests/bench/batched.sh RIVEN_BIN ROUNDS OUT_MD
#
# Environment: BATCHED_OPS (memaslap ops of a run, default 100000).
set -u
RIVEN=${1:?riven binary}
ROUNDS=${2:-3}
OUT=${3:?output file}
OPS=${BATCHED_OPS:-100000}
TMP=$(mktemp -d /tmp/riven-bench-batched.XXXXXX)
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

MC_PORT=$(free_port)
memcached -u nobody -U 0 -l 127.0.0.1 -p "$MC_PORT" -m 1024 -c 20000 -t 2 &
MC_PID=$!; PIDS+=("$MC_PID")
wait_port "$MC_PORT" || exit 1

# start_rivens PORTS PIDS: a per-connection riven and a riven --batched in
# front of the memcached, into the associative arrays named (keys riven and
# riven-batched); exits when either does not listen
start_rivens() {
    local -n port=$1 pid=$2
    local t extra
    for t in riven riven-batched; do
        extra=()
        [ "$t" = riven-batched ] && extra=(--batched)
        port[$t]=$(free_port)
        "$RIVEN" -q -l 127.0.0.1:"${port[$t]}" -b 127.0.0.1:"$MC_PORT" -m off "${extra[@]}" &
        pid[$t]=$!; PIDS+=("${pid[$t]}")
    done
    wait_port "${port[riven]}" && wait_port "${port[riven-batched]}" || exit 1
}

declare -A PORT PID
start_rivens PORT PID
TARGETS="riven riven-batched"
if command -v nutcracker >/dev/null; then
    PORT[twemproxy]=$(free_port)
    cat > "$TMP/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:${PORT[twemproxy]}
  hash: fnv1a_64
  distribution: ketama
  redis: false
  timeout: 1000
  servers:
    - 127.0.0.1:$MC_PORT:1
YML
    nutcracker -c "$TMP/nutcracker.yml" -s "$(free_port)" -o "$TMP/nutcracker.log" &
    PID[twemproxy]=$!; PIDS+=("${PID[twemproxy]}")
    wait_port "${PORT[twemproxy]}" && TARGETS="$TARGETS twemproxy"
else
    echo "bench: batched: nutcracker not installed, twemproxy skipped"
fi
echo "bench: batched: nproc $(nproc), open-file limit $NOFILE, $(memcached -V), targets: $TARGETS"

fds() { find /proc/"$1"/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# brun TARGET C -> "tps proxy_cpu_us mc_cpu_us cmds_per_op fds_peak errors
# misses p99_us" (p99_us: the upper edge of memaslap's log2 bucket that
# holds the 99th percentile, as in run.sh)
brun() {
    local t=$1 c=$2 pid=${PID[$1]} log=$TMP/run.log p0 p1 m0 m1 k0 k1 sampler
    k0=$(mc_cmds 127.0.0.1:"$MC_PORT")
    p0=$(cpu_ticks "$pid"); m0=$(cpu_ticks "$MC_PID")
    ( while :; do fds "$pid"; sleep 0.2; done ) > "$TMP/fds" &
    sampler=$!
    timeout 300 memcaslap -s 127.0.0.1:"${PORT[$t]}" -T 1 -c "$c" -x "$OPS" -S 3600s > "$log" 2>&1
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    p1=$(cpu_ticks "$pid"); m1=$(cpu_ticks "$MC_PID")
    k1=$(mc_cmds 127.0.0.1:"$MC_PORT")
    awk -v p0="$p0" -v p1="$p1" -v m0="$m0" -v m1="$m1" -v hz="$HZ" -v k="$((k1 - k0))" \
        -v fd="$(sort -n "$TMP/fds" | tail -1)" '
        /^Run time/ { for (i = 1; i <= NF; i++) { if ($i == "TPS:") tps = $(i+1); if ($i == "Ops:") ops = $(i+1) } }
        /get_misses/ { miss = $2 }
        /ERROR|[Ee]rror|failed/ { err++ }
        /^Total Statistics \(/ { tot = 1; next }
        tot && /Log2 Dist:/ { dist = 1; next }
        dist && $1 ~ /^[0-9]+:$/ { for (i = 2; i <= NF; i++) { j = $1 + i - 2; d[j] = $i; n += $i; if (j > top) top = j } next }
        dist && NF == 0 { dist = tot = 0 }
        END { p99 = "-"; cum = 0
              for (j = 0; n > 0 && j <= top; j++) { cum += d[j]; if (cum * 100 >= n * 99) { p99 = 2 ^ j; break } }
              printf "%d %.1f %.1f %.2f %d %d %d %s\n", tps,
                  ops ? (p1 - p0) * 1e6 / hz / ops : 0, ops ? (m1 - m0) * 1e6 / hz / ops : 0,
                  ops ? k / ops : 0, fd + 0, err + 0, miss + 0, p99 }' "$log"
}

for c in 64 1000; do
    for r in $(seq 1 "$ROUNDS"); do
        for t in $TARGETS; do
            brun "$t" "$c" >> "$TMP/b.$t.$c"
            read -r -a v < <(tail -1 "$TMP/b.$t.$c")
            echo "bench: batched c=$c round $r $t: ${v[0]} ops/s, proxy cpu ${v[1]} us/req," \
                "memcached cpu ${v[2]} us/req, memcached cmds/op ${v[3]}, fds ${v[4]}," \
                "errors ${v[5]}, misses ${v[6]}, p99 <= ${v[7]} us"
        done
    done
done

# Many clients (issue 16, Done when 2 and 3): fresh rivens, so that idle
# RSS is that of a riven that never had a client. Per-connection and
# batched riven at c=9000 (RSS per busy connection: peak RSS less idle RSS,
# per connection), then batched riven at C_MANY (19000, or what this box's
# open-file limit and pid_max allow): memaslap -T 1 -x 10 ops a connection.
# The per-connection ceiling is what 2 fds a busy client leave under the
# limit (a client socket and a backend socket).
PID_MAX=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
C_MANY=19000
LIM=$((NOFILE - 500))
[ "$C_MANY" -gt "$LIM" ] && { echo "bench: batched: open-file limit $NOFILE: c=$C_MANY scaled to $LIM"; C_MANY=$LIM; }
LIM=$((PID_MAX - $(ls /proc | grep -c '^[0-9]') - 3000))
[ "$C_MANY" -gt "$LIM" ] && { echo "bench: batched: pid_max $PID_MAX: c=$C_MANY scaled to $LIM threads"; C_MANY=$LIM; }
C_MEM=9000
[ "$C_MEM" -gt $(((NOFILE - 200) / 2)) ] && { C_MEM=$(((NOFILE - 200) / 2)); echo "bench: batched: memory run scaled to c=$C_MEM"; }
PC_CEIL=$(((NOFILE - 64) / 2))
echo "bench: batched: many clients: c=$C_MEM (memory), c=$C_MANY (batched), per-connection ceiling $PC_CEIL (open-file limit $NOFILE, pid_max $PID_MAX)"

# mrun PID PORT C -> "tps cmds_per_op fds_peak rss_peak_kb errors misses"
mrun() {
    local pid=$1 port=$2 c=$3 log=$TMP/many.log k0 k1 sampler
    k0=$(mc_cmds 127.0.0.1:"$MC_PORT")
    ( while :; do echo "$(fds "$pid") $(rss_kb "$pid")"; sleep 0.2; done ) > "$TMP/msamp" &
    sampler=$!
    timeout 600 memcaslap -s 127.0.0.1:"$port" -T 1 -c "$c" -x $((c * 10)) > "$log" 2>&1
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    k1=$(mc_cmds 127.0.0.1:"$MC_PORT")
    grep -E 'ERROR|[Ee]rror|failed' "$log" | sort | uniq -c | sort -rn | head -3 | sed "s/^/bench: batched: c=$c memaslap: /" >&2
    awk -v k="$((k1 - k0))" -v fd="$(awk '{print $1}' "$TMP/msamp" | sort -n | tail -1)" \
        -v rss="$(awk '{print $2}' "$TMP/msamp" | sort -n | tail -1)" '
        /^Run time/ { for (i = 1; i <= NF; i++) { if ($i == "TPS:") tps = $(i+1); if ($i == "Ops:") ops = $(i+1) } }
        /get_misses/ { miss = $2 }
        /ERROR|[Ee]rror|failed/ { err++ }
        END { printf "%d %.2f %d %d %d %d\n", tps, ops ? k / ops : 0, fd + 0, rss + 0, err + 0, miss + 0 }' "$log"
}

declare -A MPORT MPID IDLE
start_rivens MPORT MPID
for t in riven riven-batched; do IDLE[$t]=$(rss_kb "${MPID[$t]}"); done
IDLE_THREADS=$(awk '/^Threads:/ {print $2}' /proc/"${MPID[riven-batched]}"/status)
for t in riven riven-batched; do
    mrun "${MPID[$t]}" "${MPORT[$t]}" "$C_MEM" > "$TMP/m.$t.$C_MEM"
    read -r -a v < "$TMP/m.$t.$C_MEM"
    echo "bench: batched: c=$C_MEM $t: ${v[0]} ops/s, cmds/op ${v[1]}, fds ${v[2]}, RSS ${IDLE[$t]} -> ${v[3]} KiB, errors ${v[4]}, misses ${v[5]}"
done
# the c=9000 run's clients must be gone first (their threads and fds),
# or they count against the limits the c=C_MANY run is to show
threads() { awk '/^Threads:/ {print $2}' /proc/"$1"/status 2>/dev/null || echo 0; }
settled=0
for _ in $(seq 1 600); do
    [ "$(threads "${MPID[riven-batched]}")" -le "$((IDLE_THREADS + 8))" ] && settled=1 && break
    sleep 0.1
done
[ "$settled" = 1 ] || echo "bench: batched: riven still had $(threads "${MPID[riven-batched]}") threads 60 s after the c=$C_MEM run" >&2
mrun "${MPID[riven-batched]}" "${MPORT[riven-batched]}" "$C_MANY" > "$TMP/m.riven-batched.$C_MANY"
read -r -a v < "$TMP/m.riven-batched.$C_MANY"
echo "bench: batched: c=$C_MANY riven-batched: ${v[0]} ops/s, cmds/op ${v[1]}, fds ${v[2]}, RSS peak ${v[3]} KiB, errors ${v[4]}, misses ${v[5]}"
for t in riven riven-batched; do kill "${MPID[$t]}" 2>/dev/null; wait "${MPID[$t]}" 2>/dev/null; done
# per busy connection, KiB
kib() { awk -v p="$1" -v i="$2" -v c="$3" 'BEGIN {printf "%.1f", (p - i) / c}'; }

cm() { awk -v k="$2" '{print $k}' "$1" | median; }
csum() { awk -v k="$2" '{s += $k} END {print s + 0}' "$1"; }
cmax() { awk -v k="$2" '$k > m {m = $k} END {print m + 0}' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b ? a / b : 0}'; }
has() { [[ " $TARGETS " == *" $1 "* ]]; }

V=""
for c in 64 1000; do
    read -r r ok < <(ratio_ok "$(cm "$TMP/b.riven-batched.$c" 1)" "$(cm "$TMP/b.riven.$c" 1)" 1.3 ge)
    V+=$(check "riven --batched >= 1.3x per-connection riven's ops/s at c=$c" \
        "$(cm "$TMP/b.riven-batched.$c" 1) vs $(cm "$TMP/b.riven.$c" 1) ops/s (${r}x)" "$ok")$'\n'
done
if has twemproxy; then
    read -r r ok < <(ratio_ok "$(cm "$TMP/b.riven-batched.1000" 1)" "$(cm "$TMP/b.twemproxy.1000" 1)" 0.75 ge)
    V+=$(check "riven --batched >= 0.75x twemproxy's ops/s at c=1000" \
        "$(cm "$TMP/b.riven-batched.1000" 1) vs $(cm "$TMP/b.twemproxy.1000" 1) ops/s (${r}x)" "$ok")$'\n'
fi
ok=1
for f in "$TMP"/b.*; do
    [ "$(awk '$4 < 0.99 || $4 > 1.01 {bad = 1} END {print bad ? 0 : 1}' "$f")" = 1 ] || ok=0
    [ "$(csum "$f" 6)" = 0 ] || ok=0
done
V+=$(check "every request of every run reached memcached (cmds/op 1.00 within 1%) and no run had an error" \
    "see the table's cmds/op and errors columns" "$ok")$'\n'
read -r -a v < "$TMP/m.riven-batched.$C_MANY"
ok=0
[ "${v[4]}" = 0 ] && [ "${v[5]}" = 0 ] && [ "$C_MANY" -ge 19000 ] && awk -v k="${v[1]}" 'BEGIN {exit !(k >= 0.99 && k <= 1.01)}' && ok=1
V+=$(check "riven --batched holds 19,000 active clients with zero errors and zero misses, every request at memcached" \
    "c=$C_MANY: ${v[0]} ops/s, ${v[4]} errors, ${v[5]} misses, cmds/op ${v[1]}, riven's fds at the peak ${v[2]} ($(awk -v f="${v[2]}" -v c="$C_MANY" 'BEGIN {printf "%.3f", f / c}') per client); per-connection riven's ceiling: $PC_CEIL busy clients (2 fds each under $NOFILE)" "$ok")$'\n'
for t in riven riven-batched; do
    read -r -a v < "$TMP/m.$t.$C_MEM"
    lim=16; [ "$t" = riven-batched ] && lim=12
    k=$(kib "${v[3]}" "${IDLE[$t]}" "$C_MEM")
    ok=$(awk -v k="$k" -v l="$lim" -v e="${v[4]}" 'BEGIN {print (k <= l && e == 0) ? 1 : 0}')
    V+=$(check "$t: RSS per busy connection at c=$C_MEM <= $lim KiB" "$k KiB ((${v[3]} - ${IDLE[$t]}) KiB / $C_MEM)" "$ok")$'\n'
done

{
    echo "<!-- batched:begin (tests/bench/batched.sh; BENCH_ONLY=batched tests/bench/run.sh RIVEN BENCH_DIR reruns only this) -->"
    echo "## Batched backend mode (issue 16, items 1 to 3)"
    echo
    echo "Run on $(date -u +%Y-%m-%d) (\`BENCH_ONLY=batched\` reruns only this section). $(memcached -V), $(nproc) cores."
    echo "memaslap (\`memcaslap -T 1 -c C -x $OPS -S 3600s\`, 90% gets) through per-connection riven, riven"
    echo "\`--batched\` (1 shared connection, batch_max 256) and twemproxy, all in front of one memcached"
    echo "(\`-m 1024 -c 20000 -t 2\`), in turn within each of $ROUNDS rounds; medians. CPU: utime + stime"
    echo "from /proc over the run, per request, of the proxy and of the memcached. cmds/op: memcached's"
    echo "\`cmd_get + cmd_set\` per memaslap op. fds: the proxy's open descriptors at the run's peak."
    echo "p99: the upper edge of memaslap's log2 bucket (the true p99 is within half of it)."
    echo
    echo "| target | result |"
    echo "| --- | --- |"
    printf "%s" "$V"
    echo
    echo "| c | target | ops/s | proxy CPU µs/req | memcached CPU µs/req | proxy + memcached µs/req | cmds/op | fds (peak) | errors | misses | p99 µs |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for c in 64 1000; do
        for t in $TARGETS; do
            f=$TMP/b.$t.$c
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$c" "$t" "$(cm "$f" 1)" "$(cm "$f" 2)" \
                "$(cm "$f" 3)" "$(awk -v a="$(cm "$f" 2)" -v b="$(cm "$f" 3)" 'BEGIN {printf "%.1f", a + b}')" \
                "$(cm "$f" 4)" "$(cmax "$f" 5)" "$(csum "$f" 6)" "$(csum "$f" 7)" "$(cm "$f" 8)"
        done
    done
    echo
    echo "| c | batched / per-connection: ops/s | proxy CPU/req | memcached CPU/req | batched / twemproxy: ops/s |"
    echo "| --- | --- | --- | --- | --- |"
    for c in 64 1000; do
        b=$TMP/b.riven-batched.$c; p=$TMP/b.riven.$c
        tw="-"
        has twemproxy && tw=$(ratio "$(cm "$b" 1)" "$(cm "$TMP/b.twemproxy.$c" 1)")
        printf "| %s | %s | %s | %s | %s |\n" "$c" "$(ratio "$(cm "$b" 1)" "$(cm "$p" 1)")" \
            "$(ratio "$(cm "$b" 2)" "$(cm "$p" 2)")" "$(ratio "$(cm "$b" 3)" "$(cm "$p" 3)")" "$tw"
    done
    echo
    echo "Many clients: fresh rivens, one run each, memaslap \`-T 1 -c C -x 10C\`. RSS per busy connection: (peak RSS − the riven's RSS before its first client) / C."
    echo
    echo "| c | target | ops/s | cmds/op | fds (peak) | fds per client | RSS idle KiB | RSS peak KiB | KiB per busy connection | errors | misses |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for f in "$TMP/m.riven.$C_MEM" "$TMP/m.riven-batched.$C_MEM" "$TMP/m.riven-batched.$C_MANY"; do
        t=${f#"$TMP"/m.}; c=${t##*.}; t=${t%.*}
        read -r -a v < "$f"
        kb="-"; [ "$c" = "$C_MEM" ] && kb=$(kib "${v[3]}" "${IDLE[$t]}" "$c")
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$c" "$t" "${v[0]}" "${v[1]}" "${v[2]}" \
            "$(awk -v f="${v[2]}" -v c="$c" 'BEGIN {printf "%.3f", f / c}')" "${IDLE[$t]}" "${v[3]}" "$kb" "${v[4]}" "${v[5]}"
    done
    echo "<!-- batched:end -->"
} > "$OUT"
echo "bench: batched section written to $OUT"
