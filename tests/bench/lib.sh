# shellcheck shell=bash
# Helpers shared by tests/bench/run.sh and tests/bench/routes.sh (sourced,
# not run). Loopback only.

free_port() {
    python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
}

stop_pids() { # every pid in the caller's PIDS: TERM, then reap (cleanup traps)
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}

wait_port() { # port: until it accepts, 5 s at most
    for _ in $(seq 1 500); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.01
    done
    echo "bench: nothing listens on $1" >&2
    return 1
}

cpu_ticks() { # utime + stime of pid, in clock ticks
    awk '{print $14 + $15}' /proc/"$1"/stat 2>/dev/null || echo 0
}

user_ticks() { # utime of pid, in clock ticks
    awk '{print $14}' /proc/"$1"/stat 2>/dev/null || echo 0
}

rss_kb() { awk '/^VmRSS/ {print $2}' /proc/"$1"/status 2>/dev/null || echo 0; }

# mc_stat ADDR FIELD...: the sum of the named fields of `stats` on a
# memcached (host:port or a Unix socket path), or on riven (its own stats)
mc_stat() {
    python3 - "$@" <<'PY'
import socket, sys
a = sys.argv[1]
want = set(sys.argv[2:])
if a.startswith("/"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(a)
else:
    h, p = a.rsplit(":", 1)
    s = socket.create_connection((h, int(p)))
s.settimeout(10)
s.sendall(b"stats\r\n")
d = b""
while not d.endswith(b"END\r\n"):
    b = s.recv(65536)
    if not b:
        break
    d += b
s.close()
n = 0
for line in d.decode("latin-1").split("\r\n"):
    f = line.split()
    if len(f) == 3 and f[1] in want:
        n += int(f[2])
print(n)
PY
}

# get + set commands a memcached has executed (keys for a multi-get)
mc_cmds() { mc_stat "$1" cmd_get cmd_set; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }
med() { echo $1 | tr ' ' '\n' | median; }

check() { # description, result text, 0/1 met
    printf "| %s | %s: %s |\n" "$1" "$([ "$3" = 1 ] && echo met || echo MISSED)" "$2"
}

ratio_ok() { awk -v a="$1" -v b="$2" -v lim="$3" -v op="$4" 'BEGIN {
    r = b ? a / b : 0; ok = (op == "le") ? (r <= lim) : (r >= lim); printf "%.2f %d", r, ok }'; }
