#!/bin/bash
# The layer rule of DESIGN.md ("A module includes only modules of lower
# layers. No cycles."): src/x.c and include/x.h may include the project
# header of a module of a lower layer; within one layer, only of a module
# listed before x in DESIGN.md's table (buf uses util, the parsers use
# request, ring uses config, metrics_http uses metrics), which keeps the
# graph free of cycles; x.c may include its own x.h. One departure from
# the table's order: chunk comes before config, which checks a pool's
# chunked.chunk_size against chunk's bounds (chunk uses only util). A
# header in include/ that is not in the table below is reported too, so
# the table follows DESIGN.md.
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# DESIGN.md's module table: module layer.
declare -A LAYER=(
    [util]=0 [log]=0 [buf]=0
    [request]=1 [proto_text]=1 [proto_meta]=1 [proto_binary]=1 [config]=1 [conn]=1
    [chunk]=1 [ring]=1 [hist]=1
    [metrics]=2 [metrics_http]=2
    [health]=3 [handler]=3 [batch]=3 [shadow]=3 [chunked]=3
    [route]=4 [orca]=4 [snapshot]=4
    [server]=5
    [listener]=6
    [main]=7
)

# Position in DESIGN.md's table, for includes within a layer.
declare -A RANK=()
r=0
for mod in util log buf request proto_text proto_meta proto_binary chunk \
           config conn ring hist metrics metrics_http health batch handler shadow \
           chunked route orca snapshot server listener main; do
    RANK[$mod]=$r
    r=$((r + 1))
done

fail=0
nfiles=0
nincl=0
for f in src/*.c include/*.h; do
    m=$(basename "$f"); m=${m%.*}
    nfiles=$((nfiles + 1))
    if [ -z "${LAYER[$m]+set}" ]; then
        echo "$f: module '$m' is not in DESIGN.md's table (tests/check/layers.sh)"
        fail=1
        continue
    fi
    while IFS=: read -r line inc; do
        t=$(printf '%s' "$inc" | sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)\.h".*/\1/')
        t=$(basename "$t")
        nincl=$((nincl + 1))
        if [ -z "${LAYER[$t]+set}" ]; then
            if [ -e "include/$t.h" ]; then
                echo "$f:$line: includes $t.h, a module not in DESIGN.md's table"
                fail=1
            fi
            continue
        fi
        if [ "$t" = "$m" ]; then
            continue
        fi
        if [ "${LAYER[$t]}" -gt "${LAYER[$m]}" ]; then
            echo "$f:$line: $m (layer ${LAYER[$m]}) includes $t.h (layer ${LAYER[$t]}): up the layers"
            fail=1
        elif [ "${LAYER[$t]}" -eq "${LAYER[$m]}" ] &&
             [ "${RANK[$t]}" -gt "${RANK[$m]}" ]; then
            echo "$f:$line: $m includes $t.h, listed after it in layer ${LAYER[$m]}"
            fail=1
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+\.h"' "$f")
done
[ $fail -eq 0 ] && echo "$nfiles files, $nincl project includes, all down the layers"
exit $fail
