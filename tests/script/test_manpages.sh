#!/usr/bin/env bash
# The manual pages cannot drift (issue 17): every config key that
# src/config.c accepts has an entry in src/riven.yml.5, every value word a
# Cm there, and every flag of `riven -h` an entry in src/riven.8
# (manpages.pl says how each is found). Then the check is shown to bite:
# against copies with a key entry, a flag entry or a value word removed
# from a page, and against a config.c and a usage that gained a key, a
# value and a flag, it must fail and name what is missing.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

check=tests/script/manpages.pl
usage=$TMP/usage.txt

# check CONFIG_C USAGE PAGE8 PAGE5: run the checker, its output to
# $TMP/out (and shown).
check() {
    perl "$check" "$@" >"$TMP/out" 2>&1
    local rc=$?
    sed 's/^/    /' "$TMP/out"
    return $rc
}

# expect_missing WHAT CHECK-ARGS...: the check fails (exit 1) naming WHAT.
expect_missing() {
    local what=$1 rc
    shift
    check "$@"
    rc=$?
    if [ $rc -ne 1 ]; then
        echo "    expected exit 1 naming $what, got exit $rc"
        return 1
    fi
    if ! grep -qF -- "$what" "$TMP/out"; then
        echo "    exit 1, but $what is not named"
        return 1
    fi
}

documented() {
    "$RIVEN_BIN" -h >"$usage" || return 1
    check src/config.c "$usage" src/riven.8 src/riven.yml.5
}

# A page without one key's entry.
key_removed() {
    grep -v '^\.It Ic hash_tag ' src/riven.yml.5 >"$TMP/riven.yml.5"
    expect_missing "'hash_tag'" src/config.c "$usage" src/riven.8 \
        "$TMP/riven.yml.5"
}

# A page without the entry of -T / --print-config.
flag_removed() {
    grep -v '^\.It Fl T ' src/riven.8 >"$TMP/riven.8"
    expect_missing "flag -T " src/config.c "$usage" "$TMP/riven.8" \
        src/riven.yml.5 &&
        grep -qF -- "flag --print-config " "$TMP/out"
}

# A page that no longer lists one hash.
value_removed() {
    sed 's/^\.Cm murmur ,$/murmur ,/' src/riven.yml.5 >"$TMP/riven.yml.5"
    expect_missing "value 'murmur'" src/config.c "$usage" src/riven.8 \
        "$TMP/riven.yml.5"
}

# config.c with a new key in the top-level table, undocumented.
key_added() {
    sed 's/^    {"key_locks", set_u32,/    {"frob_ms", set_u32, 0, 0, 1, NULL},\n&/' \
        src/config.c >"$TMP/config.c"
    grep -q '"frob_ms"' "$TMP/config.c" || return 1
    expect_missing "'frob_ms'" "$TMP/config.c" "$usage" src/riven.8 \
        src/riven.yml.5
}

# config.c with a new hash, undocumented.
value_added() {
    sed 's/"one_at_a_time", NULL}/"one_at_a_time", "xxh3", NULL}/' \
        src/config.c >"$TMP/config.c"
    grep -q '"xxh3"' "$TMP/config.c" || return 1
    expect_missing "value 'xxh3'" "$TMP/config.c" "$usage" src/riven.8 \
        src/riven.yml.5
}

# A usage with a new long and short flag, undocumented.
flag_added() {
    { cat "$usage"; echo "  -Z, --frobnicate  frobnicate"; } >"$TMP/usage2"
    expect_missing "flag --frobnicate " src/config.c "$TMP/usage2" \
        src/riven.8 src/riven.yml.5 &&
        grep -qF -- "flag -Z " "$TMP/out"
}

run_case documented documented
run_case key_removed key_removed
run_case flag_removed flag_removed
run_case value_removed value_removed
run_case key_added key_added
run_case value_added value_added
run_case flag_added flag_added
finish
