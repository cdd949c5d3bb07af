#!/usr/bin/env bash
# The routes rows of make bench (issue 13, items 5 and 9): riven with
# routes against riven with one pool, each configuration a fresh riven per
# run, configurations in turn within each round, medians of the rounds.
#   1. a table of 1,000 prefixes (all to pool a) vs one pool, c=64: CPU
#      per request;
#   2. default {all_sync: [a, b]} vs one pool, c=64: the set's round trip
#      (riven's riven_request_duration_seconds{command="set"} and
#      riven_backend_request_duration_seconds, per server), under the load
#      of tests/bench/pairs.c, which also measures, in the same rounds, a
#      client that writes a and b itself in parallel and one after the
#      other: what this machine allows a parallel write with no proxy; and
#      the sets reaching both memcacheds;
#   3. default {shadow: {route: a, to: h, fraction: F}} (F the issue's
#      0.1, ROUTES_SHADOW_FRACTION) with memcached h SIGSTOPped for the
#      whole section, vs one pool without a shadow (the issue's target) and
#      vs the same shadow to a live b, c=16: the primary's p99 (riven's own
#      histogram, `stats proxy` latency_*_p99_us).
# Writes a Markdown section to OUT_MD and its log to stdout. Loopback only;
# every process started here is stopped by pid (h is sent SIGCONT first).
#
#   tests/bench/routes.sh RIVEN_BIN ROUNDS OUT_MD
set -u
RIVEN=${1:?riven binary}
ROUNDS=${2:-3}
OUT=${3:?output file}
OPS64=${ROUTES_OPS64:-100000}
OPS16=${ROUTES_OPS16:-100000}
FRACTION=${ROUTES_SHADOW_FRACTION:-0.1}
PAIR_SECS=${ROUTES_PAIR_SECONDS:-8}
PAIRS=${ROUTES_PAIRS:?the pairs binary (tests/bench/pairs.c), in ROUTES_PAIRS}
TMP=$(mktemp -d /tmp/riven-bench-routes.XXXXXX)
PIDS=()      # the memcacheds
HOLE_PID="" # h, SIGSTOPped
RV_PID=""   # the riven of the run in progress

cleanup() {
    [ -n "$HOLE_PID" ] && kill -CONT "$HOLE_PID" 2>/dev/null
    [ -n "$RV_PID" ] && kill "$RV_PID" 2>/dev/null && wait "$RV_PID" 2>/dev/null
    stop_pids # lib.sh
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
HZ=$(getconf CLK_TCK)

start_mc() { # a memcached: its port in MC_PORT, its pid in MC_LAST and PIDS
    local port
    port=$(free_port)
    memcached -u nobody -U 0 -l 127.0.0.1 -p "$port" -m 1024 -c 20000 -t 2 &
    MC_LAST=$!; PIDS+=("$MC_LAST")
    wait_port "$port" || exit 1
    MC_PORT=$port
}
start_mc; A=127.0.0.1:$MC_PORT
start_mc; B=127.0.0.1:$MC_PORT
start_mc; H=127.0.0.1:$MC_PORT; HOLE_PID=$MC_LAST
kill -STOP "$HOLE_PID"

# Configurations: everything but listen: and metrics:, which each run adds.
# The c=64 ones keep the default timeouts; the c=16 ones (one500, shadow-*)
# time requests out after 500 ms, so the black hole's copies time out
# within a run.
TIMEOUTS='timeouts: {request_ms: 500}'
printf 'pool: {servers: ["%s"]}\n' "$A" > "$TMP/one.body"
printf 'pool: {servers: ["%s"]}\n%s\n' "$A" "$TIMEOUTS" > "$TMP/one500.body"
# 1,000 prefixes of 1 to 64 bytes (15 or 16 of each length; letters, digits and
# ':'), all to a. memaslap's keys are 64 bytes starting with 8 control
# bytes, and memaslap cannot prefix them, so no prefix matches: every key
# hashes all 64 of its prefix lengths and probes the table at each, the
# most work a lookup does for these keys, and falls to default (also a).
python3 - "$A" > "$TMP/table.body" <<'PY'
import sys
a = sys.argv[1]
print('pools:\n  a: {servers: ["%s"]}\nroutes:' % a)
for i in range(1000):
    n = 1 + i % 64
    p = (chr(ord("a") + i // 64) + ("r%03d:" % i) * 13)[:n]
    print('  - prefix: "%s"\n    route: a' % p)
print("  - default: a")
PY
printf 'pools:\n  a: {servers: ["%s"]}\nroutes:\n  - default: a\n' "$A" > "$TMP/default.body"
cat > "$TMP/allsync.body" <<YML
pools:
  a: {servers: ["$A"]}
  b: {servers: ["$B"]}
routes:
  - prefix: "p0001:"
    route: a
  - default: {all_sync: [a, b]}
YML
for s in live:"$B" hole:"$H"; do
    cat > "$TMP/shadow-${s%%:*}.body" <<YML
pools:
  a: {servers: ["$A"]}
  b: {servers: ["${s#*:}"]}
routes:
  - default: {shadow: {route: a, to: b, fraction: $FRACTION}}
$TIMEOUTS
YML
done

# riven's view after a run: mean backend round trip (us) on A and on B,
# mean set and get duration (us), get and set p99 (us, from `stats proxy`), and
# the shadow's results ok, timeout, dropped, error
scrape() { # metrics_port riven_port
    python3 - "$1" "$2" "$A" "$B" "$H" <<'PY'
import socket, sys, urllib.request
mport, rport, a, b, h = sys.argv[1:6]
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % mport,
                              timeout=10).read().decode()
v = {}
for line in text.splitlines():
    if not line.startswith("#") and " " in line:
        k, x = line.rsplit(" ", 1)
        v[k] = float(x)
def mean_us(name, label):
    s = v.get("%s_sum{%s}" % (name, label))
    c = v.get("%s_count{%s}" % (name, label))
    return "%.1f" % (s / c * 1e6) if s is not None and c else "-"
be = "riven_backend_request_duration_seconds"
rq = "riven_request_duration_seconds"
out = [mean_us(be, 'server="%s"' % a),
       mean_us(be, 'server="%s"' % (b if b in text else h)),
       mean_us(rq, 'command="set"'), mean_us(rq, 'command="get"')]
s = socket.create_connection(("127.0.0.1", int(rport)))
s.settimeout(10)
s.sendall(b"stats proxy\r\n")
d = b""
while not d.endswith(b"END\r\n"):
    x = s.recv(65536)
    if not x:
        break
    d += x
st = {}
for line in d.decode("latin-1").split("\r\n"):
    f = line.split()
    if len(f) == 3:
        st[f[1]] = f[2]
out += [st.get("latency_get_p99_us", "-"), st.get("latency_set_p99_us", "-")]
for r in ("ok", "timeout", "dropped", "error"):
    out.append("%d" % v.get('riven_shadow_requests_total{route="default",'
                            'result="%s"}' % r, 0))
print(" ".join(out))
PY
}

# rrun CONF C OPS -> "tps cpu_us errors a_cmds_per_op b_cmds_per_op
# b_sets_per_set be_a_us be_b_us set_us get_us get_p99 set_p99
# client_avg_us sh_ok sh_timeout sh_dropped sh_error"; b is not asked
# (its columns are 0) when CONF is shadow-hole: h is stopped
rrun() {
    local conf=$1 c=$2 ops=$3 port mport pid t0 t1 a0 a1 b0=0 b1=0 bs0=0 bs1=0 log=$TMP/run.log
    port=$(free_port); mport=$(free_port)
    { printf 'listen: ["127.0.0.1:%s"]\nmetrics: {listen: "127.0.0.1:%s"}\n' "$port" "$mport"
      cat "$TMP/$conf.body"; } > "$TMP/run.yml"
    "$RIVEN" -q -c "$TMP/run.yml" &
    pid=$!; RV_PID=$pid
    if ! wait_port "$port"; then
        kill "$pid"; wait "$pid" 2>/dev/null; RV_PID=""
        return 1
    fi
    a0=$(mc_cmds "$A")
    if [ "$conf" != shadow-hole ]; then b0=$(mc_cmds "$B"); bs0=$(mc_stat "$B" cmd_set); fi
    t0=$(cpu_ticks "$pid")
    timeout 120 memcaslap -s 127.0.0.1:"$port" -T 1 -c "$c" -x "$ops" -S 3600s > "$log" 2>&1
    t1=$(cpu_ticks "$pid")
    a1=$(mc_cmds "$A")
    if [ "$conf" != shadow-hole ]; then b1=$(mc_cmds "$B"); bs1=$(mc_stat "$B" cmd_set); fi
    read -r -a sc < <(scrape "$mport" "$port")
    kill "$pid"; wait "$pid" 2>/dev/null
    RV_PID=""
    awk -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v da="$((a1 - a0))" -v db="$((b1 - b0))" \
        -v dbs="$((bs1 - bs0))" -v sc="${sc[*]}" '
        /^Run time/ { for (i = 1; i <= NF; i++) { if ($i == "TPS:") tps = $(i+1); if ($i == "Ops:") ops = $(i+1) } }
        /^cmd_set:/ { sets = $2 }
        /^Total Statistics/ { tot = 1 }
        tot && /Avg:/ { avg = $2; tot = 0 }
        /ERROR|[Ee]rror|failed/ { err++ }
        END { split(sc, s, " ");
              printf "%d %.2f %d %.2f %.2f %.2f %s %s %s %s %s %s %s %s %s %s %s\n",
                  tps, ops ? (t1 - t0) * 1e6 / hz / ops : 0, err + 0,
                  ops ? da / ops : 0, ops ? db / ops : 0, sets ? dbs / sets : 0,
                  s[1], s[2], s[3], s[4], s[5], s[6], avg, s[7], s[8], s[9], s[10] }' "$log"
}

# riven's counters once pairs has set its keys, and again after its run:
# set duration sum and count, backend sum and count on a, and on b
sums() { # metrics_port
    python3 - "$1" "$A" "$B" <<'PY'
import sys, urllib.request
mport, a, b = sys.argv[1:4]
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % mport,
                              timeout=10).read().decode()
v = {}
for line in text.splitlines():
    if not line.startswith("#") and " " in line:
        k, x = line.rsplit(" ", 1)
        v[k] = x
out = []
for name, label in (("riven_request_duration_seconds", 'command="set"'),
                    ("riven_backend_request_duration_seconds", 'server="%s"' % a),
                    ("riven_backend_request_duration_seconds", 'server="%s"' % b)):
    out += [v.get("%s_sum{%s}" % (name, label), "0"),
            v.get("%s_count{%s}" % (name, label), "0")]
print(" ".join(out))
PY
}

# prun WHO -> "ops_per_s set_us set_p99_us get_us errors a_cmds_per_op
# b_sets_per_set riven_set_us be_a_us be_b_us": pairs at c=64 for
# PAIR_SECS. WHO is direct (pairs on a alone), parallel or serial (pairs
# writes a and b itself), one or allsync (through a riven with that
# configuration; its columns 6 to 10 from the counters' change over the
# timed part, the others "-").
prun() {
    local who=$1 port mport pid out s0="" s1="" a0=0 a1=0 b0=0 b1=0
    case $who in
    direct) out=$("$PAIRS" "${A##*:}" 64 "$PAIR_SECS") ;;
    parallel | serial) out=$("$PAIRS" "${A##*:}" 64 "$PAIR_SECS" "${B##*:}" "$who") ;;
    *)
        port=$(free_port); mport=$(free_port)
        { printf 'listen: ["127.0.0.1:%s"]\nmetrics: {listen: "127.0.0.1:%s"}\n' "$port" "$mport"
          cat "$TMP/$who.body"; } > "$TMP/run.yml"
        "$RIVEN" -q -c "$TMP/run.yml" &
        pid=$!; RV_PID=$pid
        wait_port "$port" || return 1
        coproc PC { "$PAIRS" -w "$port" 64 "$PAIR_SECS"; }
        read -r out <&"${PC[0]}" # pairs: ready
        s0=$(sums "$mport"); a0=$(mc_cmds "$A"); b0=$(mc_stat "$B" cmd_set)
        echo go >&"${PC[1]}"
        read -r out <&"${PC[0]}"
        wait "$PC_PID" 2>/dev/null
        s1=$(sums "$mport"); a1=$(mc_cmds "$A"); b1=$(mc_stat "$B" cmd_set)
        kill "$pid"; wait "$pid" 2>/dev/null
        RV_PID=""
        ;;
    esac
    echo "$out" | awk -v s0="$s0" -v s1="$s1" -v da="$((a1 - a0))" -v db="$((b1 - b0))" '
        function us(i) { return (y[i + 1] - x[i + 1]) ? sprintf("%.1f", (y[i] - x[i]) / (y[i + 1] - x[i + 1]) * 1e6) : "-" }
        { for (i = 1; i < NF; i++) f[$i] = $(i + 1) }
        END {
            if (s0 == "") { printf "%d %s %s %s %d - - - - -\n", f["rate"], f["set_mean_us"], f["set_p99_us"], f["get_mean_us"], f["errors"]; exit }
            split(s0, x, " "); split(s1, y, " ")
            printf "%d %s %s %s %d %.2f %.2f %s %s %s\n", f["rate"], f["set_mean_us"], f["set_p99_us"],
                f["get_mean_us"], f["errors"], f["ops"] ? da / f["ops"] : 0, f["sets"] ? db / f["sets"] : 0,
                us(1), us(3), us(5) }'
}

for r in $(seq 1 "$ROUNDS"); do
    for conf in one default table allsync; do
        rrun "$conf" 64 "$OPS64" >> "$TMP/c64.$conf"
        read -r -a f < <(tail -1 "$TMP/c64.$conf")
        echo "bench: routes c=64 round $r $conf: ${f[0]} ops/s, ${f[1]} us/req cpu, errors ${f[2]}," \
            "cmds/op a ${f[3]} b ${f[4]} (b sets per set ${f[5]}), backend mean us a ${f[6]} b ${f[7]}"
    done
    for who in direct parallel serial one allsync; do
        prun "$who" >> "$TMP/pair.$who"
        read -r -a f < <(tail -1 "$TMP/pair.$who")
        echo "bench: routes pairs c=64 round $r $who: ${f[0]} ops/s, set us ${f[1]} (p99 ${f[2]}), get us ${f[3]}," \
            "errors ${f[4]}, riven: a cmds/op ${f[5]}, b sets/set ${f[6]}, set us ${f[7]}, backend us a ${f[8]} b ${f[9]}"
    done
    for conf in one500 shadow-live shadow-hole; do
        rrun "$conf" 16 "$OPS16" >> "$TMP/c16.$conf"
        read -r -a f < <(tail -1 "$TMP/c16.$conf")
        echo "bench: routes c=16 round $r $conf: ${f[0]} ops/s, errors ${f[2]}, p99 us get ${f[10]} set ${f[11]}," \
            "client avg us ${f[12]}, cmds/op a ${f[3]} b ${f[4]}, shadow ok/timeout/dropped/error" \
            "${f[13]}/${f[14]}/${f[15]}/${f[16]}"
    done
done
kill -CONT "$HOLE_PID"

# riven's own instructions per get (callgrind: independent of the load)
INSTR=$("$(dirname "$0")/route_instr.sh" "$RIVEN" "$TMP/table.body" 2>&1)
echo "bench: routes instructions per get: $(echo "$INSTR" | tr '\n' ' ')"
ir() { echo "$INSTR" | awk -v c="$1" '$1 == c {print $2}'; }

cm() { # file column(1-based): the median of that column over the rounds
    awk -v k="$2" '{print $k}' "$1" | median
}
csum() { awk -v k="$2" '{s += $k} END {print s + 0}' "$1"; }
allin() { # file column lo hi: 1 when every round's value is within
    awk -v k="$2" -v lo="$3" -v hi="$4" '$k < lo || $k > hi {bad = 1} END {print bad ? 0 : 1}' "$1"
}

V=""
ok=1
for f in c64.one c64.default c64.table c64.allsync c16.one500 c16.shadow-live c16.shadow-hole; do
    [ "$(allin "$TMP/$f" 4 0.99 1.01)" = 1 ] || ok=0
done
[ "$(allin "$TMP/c64.allsync" 6 0.99 1.01)" = 1 ] || ok=0
V+=$(check "every request reached memcached a, and every all_sync set memcached b too (0.99 to 1.01, every run)" \
    "a cmds/op $(cm "$TMP/c64.one" 4)/$(cm "$TMP/c64.default" 4)/$(cm "$TMP/c64.table" 4)/$(cm "$TMP/c64.allsync" 4) (c=64 one/default/table/all_sync), $(cm "$TMP/c16.one500" 4)/$(cm "$TMP/c16.shadow-live" 4)/$(cm "$TMP/c16.shadow-hole" 4) (c=16 one/live/hole); b sets per all_sync set $(cm "$TMP/c64.allsync" 6)" "$ok")$'\n'
read -r r ok < <(ratio_ok "$(cm "$TMP/c64.table" 2)" "$(cm "$TMP/c64.one" 2)" 1.05 le)
V+=$(check "1,000-prefix table: CPU/request <= 1.05x one pool's (c=64)" \
    "$(cm "$TMP/c64.table" 2) vs $(cm "$TMP/c64.one" 2) µs (${r}x); routes: default only $(cm "$TMP/c64.default" 2) µs" "$ok")$'\n'
ok=1
for f in pair.one pair.allsync; do
    [ "$(allin "$TMP/$f" 6 0.99 1.01)" = 1 ] || ok=0
done
[ "$(allin "$TMP/pair.allsync" 7 0.99 1.01)" = 1 ] || ok=0
[ "$(csum "$TMP/pair.one" 5)$(csum "$TMP/pair.allsync" 5)" = 00 ] || ok=0
V+=$(check "under pairs' load, every request through riven reached memcached a, every all_sync set b too (0.99 to 1.01, every run), and every reply was right" \
    "a cmds/op $(cm "$TMP/pair.one" 6)/$(cm "$TMP/pair.allsync" 6) (one/all_sync), b sets per all_sync set $(cm "$TMP/pair.allsync" 7), wrong replies $(csum "$TMP/pair.one" 5)/$(csum "$TMP/pair.allsync" 5)" "$ok")$'\n'
read -r r ok < <(ratio_ok "$(cm "$TMP/pair.allsync" 8)" "$(cm "$TMP/pair.one" 8)" 1.3 le)
read -r rc _ < <(ratio_ok "$(cm "$TMP/pair.allsync" 2)" "$(cm "$TMP/pair.one" 2)" 1.3 le)
read -r rp _ < <(ratio_ok "$(cm "$TMP/pair.parallel" 2)" "$(cm "$TMP/pair.direct" 2)" 1.3 le)
read -r rs _ < <(ratio_ok "$(cm "$TMP/pair.serial" 2)" "$(cm "$TMP/pair.direct" 2)" 1.3 le)
read -r rm _ < <(ratio_ok "$(cm "$TMP/c64.allsync" 9)" "$(cm "$TMP/c64.one" 9)" 1.3 le)
V+=$(check "all_sync: a set's backend round trip <= 1.3x one pool's (c=64; riven's set duration, mean)" \
    "$(cm "$TMP/pair.allsync" 8) vs $(cm "$TMP/pair.one" 8) µs (${r}x); at the client $(cm "$TMP/pair.allsync" 2) vs $(cm "$TMP/pair.one" 2) µs (${rc}x). With no proxy, on this machine, in the same rounds: a client writing a and b in parallel ${rp}x of a alone, one after the other ${rs}x. Under memaslap (the c=64 table below): $(cm "$TMP/c64.allsync" 9) vs $(cm "$TMP/c64.one" 9) µs (${rm}x)" "$ok")$'\n'
read -r rg _ < <(ratio_ok "$(cm "$TMP/c16.shadow-hole" 11)" "$(cm "$TMP/c16.shadow-live" 11)" 1.2 le)
read -r rs _ < <(ratio_ok "$(cm "$TMP/c16.shadow-hole" 12)" "$(cm "$TMP/c16.shadow-live" 12)" 1.2 le)
read -r ng okg < <(ratio_ok "$(cm "$TMP/c16.shadow-hole" 11)" "$(cm "$TMP/c16.one500" 11)" 1.2 le)
read -r ns oks < <(ratio_ok "$(cm "$TMP/c16.shadow-hole" 12)" "$(cm "$TMP/c16.one500" 12)" 1.2 le)
V+=$(check "shadow black-holed (fraction $FRACTION): primary's p99 <= 1.2x one pool's without a shadow (c=16; get and set)" \
    "get $(cm "$TMP/c16.shadow-hole" 11) vs $(cm "$TMP/c16.one500" 11) µs (${ng}x), set $(cm "$TMP/c16.shadow-hole" 12) vs $(cm "$TMP/c16.one500" 12) µs (${ns}x); against the same shadow to a live memcached, get $(cm "$TMP/c16.shadow-live" 11) µs (${rg}x), set $(cm "$TMP/c16.shadow-live" 12) µs (${rs}x)" \
    "$([ "$okg$oks" = 11 ] && echo 1 || echo 0)")$'\n'

{
    echo "<!-- routes:begin (tests/bench/routes.sh; BENCH_ONLY=routes tests/bench/run.sh RIVEN BENCH_DIR reruns only this) -->"
    echo "## Routes (issue 13)"
    echo
    echo "Run on $(date -u +%Y-%m-%d) (\`BENCH_ONLY=routes\` reruns only this section, so it may be newer"
    echo "than the tables above; its ratios compare runs of this section only). Each configuration"
    echo "runs in a fresh riven (\`-c FILE\`; at c=16 every file has \`timeouts: {request_ms: 500}\`),"
    echo "in turn within each of $ROUNDS rounds; medians below. Load: \`memcaslap -T 1 -c C -x OPS -S 3600s\` ($OPS64 ops at c=64,"
    echo "$OPS16 at c=16). **memaslap cannot prefix its keys**: they are 64 bytes that start with 8"
    echo "control bytes. So the 1,000-prefix table (15 or 16 prefixes of each length 1 to 64, all to a,"
    echo "default a) matches none of them: every lookup hashes all 64 prefix lengths and probes the"
    echo "table at each, the most work a lookup does for these keys, and falls to default."
    echo "\"routes: default a only\" is the routed path with an empty table, to tell the table's"
    echo "cost from the routed path's. Under all_sync, a serves the gets and both serve the sets."
    echo "Backend round trip: \`riven_backend_request_duration_seconds\` sum/count per server after"
    echo "the run. Set µs: riven's \`riven_request_duration_seconds{command=\"set\"}\` sum/count."
    echo "p99: riven's own histogram (\`stats proxy\` latency_get/set_p99_us, 3% buckets), from the"
    echo "request read to the reply written. Client avg: memaslap's, all commands."
    echo "Memcached h (the black hole) is SIGSTOPped from before the first run to after the last."
    echo
    echo "The all_sync round trip is measured under \`tests/bench/pairs\` (c=64, a closed loop of"
    echo "${PAIR_SECS} s a run, 90% gets, 1,024-byte values, every reply checked), because pairs can also"
    echo "be the client that writes a and b itself, in parallel or one after the other: the same"
    echo "rounds measure what this machine allows a parallel write with no proxy in between. On two"
    echo "cores that the load, riven's 64 threads and both memcacheds share, a set written to two"
    echo "memcacheds waits for two of them to be scheduled, whoever writes it. riven's columns are"
    echo "the change in its counters over the timed part of each run (the connections' first"
    echo "requests, which connect to the backends, are left out)."
    echo "| target | result |"
    echo "| --- | --- |"
    printf "%s" "$V"
    echo
    echo "| c | riven config | ops/s | CPU µs/req | errors | a cmds/op | b cmds/op | b sets/set | backend µs a | backend µs b | set µs | get p99 µs | set p99 µs | client avg µs |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for f in c64.one c64.default c64.table c64.allsync c16.one500 c16.shadow-live c16.shadow-hole; do
        case $f in
        *.one) name="one pool a (pool:)" ;;
        *.one500) name="one pool a (pool:), request_ms 500" ;;
        *.default) name="routes: default a only" ;;
        *.table) name="1,000 prefixes + default, all to a" ;;
        *.allsync) name="default all_sync [a, b]" ;;
        *.shadow-live) name="default shadow a -> b (b live), fraction $FRACTION" ;;
        *.shadow-hole) name="default shadow a -> h (h SIGSTOPped), fraction $FRACTION" ;;
        esac
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" \
            "${f%%.*}" "$name" "$(cm "$TMP/$f" 1)" "$(cm "$TMP/$f" 2)" "$(csum "$TMP/$f" 3)" \
            "$(cm "$TMP/$f" 4)" "$(cm "$TMP/$f" 5)" "$(cm "$TMP/$f" 6)" "$(cm "$TMP/$f" 7)" \
            "$(cm "$TMP/$f" 8)" "$(cm "$TMP/$f" 9)" "$(cm "$TMP/$f" 11)" "$(cm "$TMP/$f" 12)" \
            "$(cm "$TMP/$f" 13)"
    done | sed 's/^| c64 /| 64 /; s/^| c16 /| 16 /'
    echo
    echo "| pairs, c=64 | ops/s | set µs (client) | set p99 µs (client) | get µs (client) | wrong replies | a cmds/op | b sets/set | riven set µs | backend µs a | backend µs b |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for w in direct parallel serial one allsync; do
        case $w in
        direct) name="no proxy: a alone" ;;
        parallel) name="no proxy: sets to a and b in parallel" ;;
        serial) name="no proxy: sets to a, then b" ;;
        one) name="riven, one pool a" ;;
        allsync) name="riven, default all_sync [a, b]" ;;
        esac
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$name" \
            "$(cm "$TMP/pair.$w" 1)" "$(cm "$TMP/pair.$w" 2)" "$(cm "$TMP/pair.$w" 3)" \
            "$(cm "$TMP/pair.$w" 4)" "$(csum "$TMP/pair.$w" 5)" "$(cm "$TMP/pair.$w" 6)" \
            "$(cm "$TMP/pair.$w" 7)" "$(cm "$TMP/pair.$w" 8)" "$(cm "$TMP/pair.$w" 9)" \
            "$(cm "$TMP/pair.$w" 10)"
    done
    echo
    echo "riven's own instructions per get, counted by callgrind (\`tests/bench/route_instr.sh\`:"
    echo "one connection, 4,000 gets of memaslap-like keys, startup left out; user space only, so the"
    echo "system calls that make most of a request's CPU above are not in it; the same on any machine"
    echo "load): one pool $(ir one), routes with only a default $(ir default), the 1,000-prefix table"
    echo "$(ir table)."
    echo
    echo "Shadow requests over the $ROUNDS rounds (\`riven_shadow_requests_total{route=\"default\"}\`):"
    echo
    echo "| shadow | ok | timeout | dropped | error |"
    echo "| --- | --- | --- | --- | --- |"
    for f in shadow-live shadow-hole; do
        printf "| %s | %s | %s | %s | %s |\n" "$f" "$(csum "$TMP/c16.$f" 14)" "$(csum "$TMP/c16.$f" 15)" \
            "$(csum "$TMP/c16.$f" 16)" "$(csum "$TMP/c16.$f" 17)"
    done
    echo "<!-- routes:end -->"
} > "$OUT"
echo "bench: routes section written to $OUT"
