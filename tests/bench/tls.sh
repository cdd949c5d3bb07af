#!/usr/bin/env bash
# The TLS rows of make bench (issue 14, item 7), each configuration in
# turn within each round, medians of the rounds:
#   1. at c=1 and c=64 (tests/bench/pairs, a closed loop, 90% gets of
#      1,024-byte values, every reply checked): memcached plain and
#      memcached -Z directly, riven plain and riven with a TLS listener in
#      front of the same plain memcached; riven's CPU per request (its
#      utime + stime over the run) and the requests reaching memcached;
#   2. RSS per idle TLS connection: a fresh riven holds IDLE_N (5,000)
#      TLS clients that each sent "version" (tests/bench/idle -s).
# The certificate is made here with the openssl CLI (EC P-256, one day)
# and removed with the rest. Writes a Markdown section to OUT_MD and its
# log to stdout. Loopback only; every process started here is stopped by
# pid.
#
#   tests/bench/tls.sh RIVEN_BIN BENCH_DIR ROUNDS OUT_MD
set -u
RIVEN=${1:?riven binary}
BENCH=${2:?directory of the bench binaries}
ROUNDS=${3:-3}
OUT=${4:?output file}
SECS=${TLS_SECONDS:-6}
IDLE_N=${TLS_IDLE_N:-5000}
TMP=$(mktemp -d /tmp/riven-bench-tls.XXXXXX)
PIDS=()
RV_PID=""

cleanup() {
    [ -n "$RV_PID" ] && kill "$RV_PID" 2>/dev/null && wait "$RV_PID" 2>/dev/null
    stop_pids # lib.sh
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# shellcheck source=tests/bench/lib.sh
. "$(dirname "$0")/lib.sh"
HZ=$(getconf CLK_TCK)

NOFILE=$(ulimit -n)
if [ "$IDLE_N" -gt $((NOFILE - 200)) ]; then
    IDLE_N=$((NOFILE - 200))
    echo "bench: tls idle connections scaled down to $IDLE_N (open-file limit $NOFILE)"
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" -days 1 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null || {
    echo "bench: tls: openssl cannot make a certificate" >&2; exit 1; }
chmod 0644 "$TMP/key.pem" # memcached reads it as nobody
chmod 0755 "$TMP"

M_PORT=$(free_port)
memcached -u nobody -U 0 -l 127.0.0.1 -p "$M_PORT" -m 1024 -c 20000 -t 2 &
PIDS+=($!)
wait_port "$M_PORT" || exit 1
Z_PORT=$(free_port); Z_STATS=$(free_port)
memcached -u nobody -U 0 -l "127.0.0.1:$Z_PORT,notls:127.0.0.1:$Z_STATS" -m 1024 \
    -c 20000 -t 2 -Z -o "ssl_chain_cert=$TMP/cert.pem,ssl_key=$TMP/key.pem" &
PIDS+=($!)
wait_port "$Z_STATS" || exit 1

# run WHO C -> "ops_per_s set_us get_us errors cmds_per_op cpu_us_per_req"
# WHO: direct (memcached), directz (memcached -Z, over TLS), riven (plain
# listener), riventls (TLS listener); riven's backend is the plain one.
run() {
    local who=$1 c=$2 port mport pid="" out t0=0 t1=0 m0 m1 stats=127.0.0.1:$M_PORT tlsflag=""
    case $who in
    direct) port=$M_PORT ;;
    directz) port=$Z_PORT; stats=127.0.0.1:$Z_STATS; tlsflag=-s ;;
    *)
        port=$(free_port); mport=$(free_port)
        if [ "$who" = riventls ]; then
            tlsflag=-s
            printf 'listen:\n  - 127.0.0.1:%s\n  - {addr: "127.0.0.1:%s", tls: {cert: "%s", key: "%s"}}\n' \
                "$mport" "$port" "$TMP/cert.pem" "$TMP/key.pem" > "$TMP/run.yml"
        else
            printf 'listen: ["127.0.0.1:%s"]\n' "$port" > "$TMP/run.yml"
            mport=$port
        fi
        printf 'metrics: {listen: "off"}\npool: {servers: ["127.0.0.1:%s"]}\n' "$M_PORT" >> "$TMP/run.yml"
        "$RIVEN" -q -c "$TMP/run.yml" &
        pid=$!; RV_PID=$pid
        wait_port "$mport" || return 1
        ;;
    esac
    m0=$(mc_cmds "$stats")
    [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
    out=$("$BENCH/pairs" $tlsflag "$port" "$c" "$SECS")
    [ -n "$pid" ] && t1=$(cpu_ticks "$pid")
    m1=$(mc_cmds "$stats")
    if [ -n "$pid" ]; then
        kill "$pid"; wait "$pid" 2>/dev/null
        RV_PID=""
    fi
    echo "$out" | awk -v dm="$((m1 - m0))" -v dt="$((t1 - t0))" -v hz="$HZ" -v r="$pid" '
        { for (i = 1; i < NF; i++) f[$i] = $(i + 1) }
        END { ops = f["ops"]
              printf "%d %s %s %d %.2f %s\n", f["rate"], f["set_mean_us"], f["get_mean_us"], f["errors"],
                  ops ? dm / ops : 0, (r != "" && ops) ? sprintf("%.2f", dt * 1e6 / hz / ops) : "-" }'
}

for r in $(seq 1 "$ROUNDS"); do
    for c in 1 64; do
        for who in direct directz riven riventls; do
            run "$who" "$c" >> "$TMP/c$c.$who"
            read -r -a f < <(tail -1 "$TMP/c$c.$who")
            echo "bench: tls c=$c round $r $who: ${f[0]} ops/s, set us ${f[1]}, get us ${f[2]}," \
                "errors ${f[3]}, memcached cmds/op ${f[4]}, riven cpu us/req ${f[5]}"
        done
    done
done

# idle TLS connections: RSS per connection of a fresh riven
I_PORT=$(free_port); I_PLAIN=$(free_port)
printf 'listen:\n  - 127.0.0.1:%s\n  - {addr: "127.0.0.1:%s", tls: {cert: "%s", key: "%s"}}\nmetrics: {listen: "off"}\npool: {servers: ["127.0.0.1:%s"]}\n' \
    "$I_PLAIN" "$I_PORT" "$TMP/cert.pem" "$TMP/key.pem" "$M_PORT" > "$TMP/idle.yml"
"$RIVEN" -q -c "$TMP/idle.yml" &
RV_PID=$!
wait_port "$I_PLAIN" || exit 1
"$BENCH/idle" -s "$I_PORT" "$RV_PID" "$IDLE_N" > "$TMP/idle.txt" 2>&1
cat "$TMP/idle.txt"
kill "$RV_PID"; wait "$RV_PID" 2>/dev/null
RV_PID=""
read -r held kib < <(awk '/connections held/ {h = $2} /per connection/ {k = $(NF-3)} END {print h + 0, k + 0}' "$TMP/idle.txt")

cm() { awk -v k="$2" '{print $k}' "$1" | median; }
csum() { awk -v k="$2" '{s += $k} END {print s + 0}' "$1"; }

V=""
ok=1
for c in 1 64; do
    for who in direct directz riven riventls; do
        [ "$(awk '$5 < 0.99 || $5 > 1.01 || $4 != 0 {bad = 1} END {print bad ? 0 : 1}' "$TMP/c$c.$who")" = 1 ] || ok=0
    done
done
V+=$(check "every request reached memcached (0.99 to 1.01 cmds per op, every run) and every reply was right" \
    "riven TLS $(cm "$TMP/c64.riventls" 5) (c=64), $(cm "$TMP/c1.riventls" 5) (c=1); wrong replies $(( $(csum "$TMP/c1.riventls" 4) + $(csum "$TMP/c64.riventls" 4) ))" "$ok")$'\n'
read -r r ok < <(ratio_ok "$(cm "$TMP/c64.riventls" 6)" "$(cm "$TMP/c64.riven" 6)" 1.5 le)
read -r r1 _ < <(ratio_ok "$(cm "$TMP/c1.riventls" 6)" "$(cm "$TMP/c1.riven" 6)" 1.5 le)
V+=$(check "riven with TLS: CPU/request <= 1.5x riven plain's (c=64)" \
    "$(cm "$TMP/c64.riventls" 6) vs $(cm "$TMP/c64.riven" 6) µs (${r}x); at c=1 $(cm "$TMP/c1.riventls" 6) vs $(cm "$TMP/c1.riven" 6) µs (${r1}x)" "$ok")$'\n'
ok=$(awk -v k="$kib" -v h="$held" -v n="$IDLE_N" 'BEGIN {print (h == n && k <= 32) ? 1 : 0}')
V+=$(check "RSS per idle TLS connection <= 32 KiB ($IDLE_N held)" "$held held, $kib KiB each" "$ok")$'\n'

{
    echo "<!-- tls:begin (tests/bench/tls.sh) -->"
    echo "## TLS (issue 14)"
    echo
    echo "Run on $(date -u +%Y-%m-%d). Load: \`tests/bench/pairs\` (a closed loop of $SECS s a run, 90% gets of"
    echo "1,024-byte values over 16 keys per connection, every reply checked; \`-s\`: TLS, as riven's"
    echo "and memcached's TLS clients do, one handshake per connection before the clock starts)."
    echo "Each configuration in turn within each of $ROUNDS rounds; medians below. riven's TLS"
    echo "listener is in front of the same plain memcached as riven plain; memcached -Z is a second"
    echo "memcached with TLS. Certificate: EC P-256, made by the run. CPU: riven's utime + stime"
    echo "over the run, per request. Idle: a fresh riven holds $IDLE_N TLS connections that each"
    echo "sent \`version\` (\`tests/bench/idle -s\`), RSS after less RSS before."
    echo
    echo "| target | result |"
    echo "| --- | --- |"
    printf "%s" "$V"
    echo
    echo "| c | target | ops/s | set µs | get µs | errors | memcached cmds/op | riven CPU µs/req |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for c in 1 64; do
        for who in direct directz riven riventls; do
            case $who in
            direct) name="memcached, plain" ;;
            directz) name="memcached -Z, TLS" ;;
            riven) name="riven, plain" ;;
            riventls) name="riven, TLS listener, plain backend" ;;
            esac
            f=$TMP/c$c.$who
            printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n" "$c" "$name" "$(cm "$f" 1)" \
                "$(cm "$f" 2)" "$(cm "$f" 3)" "$(csum "$f" 4)" "$(cm "$f" 5)" "$(cm "$f" 6)"
        done
    done
    echo
    echo "Idle: $(grep -h 'connections held\|per connection' "$TMP/idle.txt" | sed 's/^idle: //' | tr '\n' ' ')"
    echo "<!-- tls:end -->"
} > "$OUT"
echo "bench: tls section written to $OUT"
