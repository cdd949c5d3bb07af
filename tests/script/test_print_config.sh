#!/usr/bin/env bash
# riven -T (issue 17): for each example config, and with the command line's
# -l/-b/-m/--orca/--l2/--batch-listen, --chunked/--chunk-size and --tls-*
# applied, the printed
# configuration loads with -t and a second -T prints the same bytes. A
# file riven -t refuses makes -T exit 1 with nothing on stdout. The TLS
# case needs the openssl CLI (tests/lib/mkcerts.sh) and is skipped without
# it (counted as passed, with a message).
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# roundtrip NAME RIVEN-ARGS...: -T with the arguments, -t and -T on that.
roundtrip() {
    local out=$TMP/$1.yml again=$TMP/$1.again.yml
    shift
    if ! "$RIVEN_BIN" -T "$@" >"$out"; then
        echo "    riven -T $* failed"
        return 1
    fi
    if ! "$RIVEN_BIN" -t -c "$out" >/dev/null; then
        echo "    riven -t refuses what riven -T $* printed:"
        sed 's/^/    | /' "$out"
        return 1
    fi
    "$RIVEN_BIN" -T -c "$out" >"$again" || return 1
    if ! cmp -s "$out" "$again"; then
        echo "    a second -T differs:"
        diff -u "$out" "$again" | sed 's/^/    /'
        return 1
    fi
}

# has FILE LINE: FILE holds LINE exactly.
has() {
    grep -qxF -- "$2" "$1" && return 0
    echo "    no line '$2' in $1"
    return 1
}

for f in conf/riven.yml conf/pool-example.yml conf/l1l2-example.yml \
    conf/routes-example.yml conf/chunked-example.yml; do
    run_case "$(basename "$f" .yml)" roundtrip "$(basename "$f" .yml)" -c "$f"
done

run_case builtin roundtrip builtin

flags() {
    roundtrip flags -c conf/pool-example.yml -l 127.0.0.1:7001 \
        -l unix:/tmp/riven-T.sock -b 127.0.0.1:7002 -m off --orca l1l2 \
        --l2 127.0.0.1:7003 &&
        has "$TMP/flags.yml" '  - "unix:/tmp/riven-T.sock"' &&
        has "$TMP/flags.yml" '    - {addr: "127.0.0.1:7002", weight: 1}' &&
        has "$TMP/flags.yml" '    - {addr: "127.0.0.1:7003", weight: 1}' &&
        has "$TMP/flags.yml" 'orca: l1l2' &&
        has "$TMP/flags.yml" '  listen: "off"' &&
        ! grep -q '10.0.0.1' "$TMP/flags.yml"
}
run_case flags flags

# The chunked: forms print as one block mapping, flags override the file,
# and an unchunked pool prints no chunked: at all.
chunked() {
    printf 'pool:\n  servers: [127.0.0.1:7005]\n  chunked: true\n' \
        >"$TMP/in-true.yml"
    printf 'pool:\n  chunked: {chunk_size: 4000}\n' >"$TMP/in-4000.yml"
    printf 'pool:\n  chunked: false\n' >"$TMP/in-false.yml"
    roundtrip chunked-example -c conf/chunked-example.yml &&
        has "$TMP/chunked-example.yml" '  chunked:' &&
        has "$TMP/chunked-example.yml" '    chunk_size: 1068' &&
        roundtrip chunked-true -c "$TMP/in-true.yml" &&
        has "$TMP/chunked-true.yml" '    chunk_size: 1068' &&
        roundtrip chunked-false -c "$TMP/in-false.yml" &&
        ! grep -q 'chunk' "$TMP/chunked-false.yml" &&
        roundtrip chunked-flag --chunked &&
        has "$TMP/chunked-flag.yml" '    chunk_size: 1068' &&
        [ "$(grep -c 'chunk' "$TMP/chunked-flag.yml")" -eq 2 ] &&
        roundtrip chunked-on -c "$TMP/in-false.yml" --chunked &&
        has "$TMP/chunked-on.yml" '    chunk_size: 1068' &&
        roundtrip chunked-keep -c "$TMP/in-4000.yml" --chunked &&
        has "$TMP/chunked-keep.yml" '    chunk_size: 4000' &&
        roundtrip chunked-size -c "$TMP/in-4000.yml" --chunk-size 256 &&
        has "$TMP/chunked-size.yml" '    chunk_size: 256' &&
        roundtrip chunked-false-flag -c "$TMP/in-false.yml" \
            --chunk-size 524172 &&
        has "$TMP/chunked-false-flag.yml" '    chunk_size: 524172'
}
run_case chunked chunked

# --chunk-size out of range, or with routes:, is refused with a message.
chunked_refused() {
    local arg want
    for arg in 255 524173 -1 abc ''; do
        case $arg in
        abc | '') want="riven: --chunk-size: expected an integer, got '$arg'" ;;
        *) want="riven: --chunk-size: $arg out of range 256..524172" ;;
        esac
        if "$RIVEN_BIN" -T --chunk-size "$arg" >"$TMP/c.out" 2>"$TMP/c.err"; then
            echo "    riven -T --chunk-size '$arg' was accepted"
            return 1
        fi
        [ ! -s "$TMP/c.out" ] || return 1
        has "$TMP/c.err" "$want" || return 1
    done
    if "$RIVEN_BIN" -T -c conf/routes-example.yml --chunked \
        >"$TMP/c.out" 2>"$TMP/c.err"; then
        echo "    riven -T --chunked was accepted with routes:"
        return 1
    fi
    has "$TMP/c.err" 'riven: --chunked does not apply with routes: (set chunked: in pools:)'
}
run_case chunked_refused chunked_refused

tls() {
    if ! command -v openssl >/dev/null 2>&1; then
        echo "    skipped: the openssl CLI is not installed"
        return 0
    fi
    bash tests/lib/mkcerts.sh "$TMP/certs" || return 1
    roundtrip tls -l "tls:127.0.0.1:7004" --tls-cert "$TMP/certs/server.pem" \
        --tls-key "$TMP/certs/server.key" --tls-ca "$TMP/certs/ca.pem" \
        --tls-verify require &&
        has "$TMP/tls.yml" '  - addr: "127.0.0.1:7004"' &&
        has "$TMP/tls.yml" "      ca: \"$TMP/certs/ca.pem\"" &&
        has "$TMP/tls.yml" '      verify: require'
}
run_case tls tls

refused() {
    printf 'pool: {failure_limit: 0}\n' >"$TMP/bad.yml"
    if "$RIVEN_BIN" -T -c "$TMP/bad.yml" >"$TMP/bad.out" 2>"$TMP/bad.err"; then
        echo "    riven -T accepted a bad file"
        return 1
    fi
    [ ! -s "$TMP/bad.out" ] && grep -q 'out of range' "$TMP/bad.err"
}
run_case refused refused
finish
