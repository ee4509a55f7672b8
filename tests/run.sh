#!/bin/sh
# run.sh - the README's second command and CI's: installs what is missing,
# builds with warnings as errors, runs every Check suite, runs them again
# under valgrind, AddressSanitizer + UBSan and ThreadSanitizer, fuzzes the
# loader and the `?` scanner (make fuzz), and checks the release tarball
# (make distcheck, built with clang).
set -eu
cd "$(dirname "$0")/.."
# Installs what is missing, configures again if the tree was configured
# without Check or a driver (after sh demo/run.sh, say), builds.
sh tests/build.sh test WARN_CFLAGS="-Wall -Wextra -Werror"
jobs=$(nproc)
# Throwaway PostgreSQL, MariaDB and PgBouncer servers (tests/servers.sh) for
# the driver suites, stopped on exit however it comes; with
# CDM_REQUIRE_SERVERS=1 a server test fails instead of skipping.
servers="$(pwd)/tests/servers.sh"
state="" stage=""
trap '[ -z "$state" ] || sh "$servers" stop "$state"; [ -z "$stage" ] || rm -rf "$stage"' EXIT
trap 'exit 1' HUP INT TERM
state=$(sh "$servers" start)
. "$state/env"
export CDM_REQUIRE_SERVERS=1
make -s -j"$jobs" check WARN_CFLAGS="-Wall -Wextra -Werror" || {
    cat tests/*.log >&2
    exit 1
}
# The two README commands again, in a copy, as a fresh machine meets them
# (Check and libpq hidden from configure first): every suite must run.
sh tests/check_scripts.sh
make -s check-valgrind
# A bounded soak (make soak; 60 s by default): 32 threads over SQLite,
# PostgreSQL and MariaDB pools with changes mixed in.
make -s soak SOAK_SECONDS=10
# Every suite again, built with clang under AddressSanitizer + UBSan, then
# under ThreadSanitizer, each in its own build directory (_asan, _tsan), with
# the servers still up.  Each prints the logs of failing suites itself.
make -s -j"$jobs" check-asan
make -s -j"$jobs" check-tsan
# Both libFuzzer targets (make fuzz, built with clang in _fuzz) after the
# inputs of tests/fixtures/fuzz: 45 s each, the two at once.
if command -v clang >/dev/null 2>&1; then
    make -s -j"$jobs" fuzz FUZZ_SECONDS=45
else
    echo "run.sh: clang not found: make fuzz skipped" >&2
fi
# A program written only against DESIGN.md's names (it uses SQLite only),
# built with pkg-config against a staged install, seeing no other .pc file:
# cdm.pc must not need the drivers' (nor add their include paths).
stage=$(mktemp -d)
make -s install prefix="$stage" >/dev/null
# (echo: pkg-config ends its output with a blank)
cflags=$(echo $(PKG_CONFIG_LIBDIR="$stage/lib/pkgconfig" pkg-config --define-prefix --cflags cdm))
[ "$cflags" = "-I$stage/include" ] || {
    echo "run.sh: pkg-config --cflags cdm gave '$cflags', not '-I$stage/include'" >&2
    exit 1
}
PKG_CONFIG_LIBDIR="$stage/lib/pkgconfig" sh -c \
    'cc -Wall -Wextra -Werror -o "$1/design_names" tests/design_names.c \
        $(pkg-config --define-prefix --cflags --libs cdm)' sh "$stage"
LD_LIBRARY_PATH="$stage/lib" "$stage/design_names"
make -s -j"$jobs" distcheck \
    DISTCHECK_CONFIGURE_FLAGS="CC=clang WARN_CFLAGS='-Wall -Wextra -Werror'" >/dev/null
# Check's own totals of the plain run (tests/, not _asan or _tsan), summed
# over the suites, as one closing line.
awk '/Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+/ {
        gsub(",", ""); for (i = 1; i <= NF; i++) {
            if ($i == "Checks:") c += $(i + 1)
            if ($i == "Failures:") f += $(i + 1)
            if ($i == "Errors:") f += $(i + 1) } }
     END { printf "%d passed, %d failed\n", c - f, f }' tests/check_*.log
