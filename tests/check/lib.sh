# shellcheck shell=bash disable=SC2034
# Shared by the tests/check/*.sh steps (sourced, not run).
# Sets ROOT (the repository) and CFLAGS_ARR (the project's compile flags,
# as the Makefile builds them) and cds to ROOT.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2

: "${RIVEN_PKGS:=libmemcached yaml-0.1 libsystemd libmicrohttpd}"
: "${RIVEN_VERSION:=0.1.0}"
# shellcheck disable=SC2207,SC2086 # pkg-config output is split on purpose
CFLAGS_ARR=(-std=c11 -D_GNU_SOURCE -Iinclude
            "-DRIVEN_VERSION=\"$RIVEN_VERSION\""
            $(pkg-config --cflags $RIVEN_PKGS 2>/dev/null))
JOBS=$(nproc 2>/dev/null || echo 2)

need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "missing tool '$1' (make check installs it: make deps EXTRA_PKGS=$2)"
    exit 2
}
