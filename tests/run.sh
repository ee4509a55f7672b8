#!/bin/sh
# run.sh - the README's second command and CI's: installs what is missing,
# builds with warnings as errors, runs every Check suite, runs them again
# under valgrind, and checks the release tarball (make distcheck, built
# with clang).
set -eu
cd "$(dirname "$0")/.."
sh tests/deps.sh test
[ -x configure ] || ./autogen.sh >/dev/null
[ -f Makefile ] || ./configure -q
jobs=$(nproc)
make -s -j"$jobs" WARN_CFLAGS="-Wall -Wextra -Werror"
make -s -j"$jobs" check WARN_CFLAGS="-Wall -Wextra -Werror" || {
    cat tests/*.log >&2
    exit 1
}
make -s check-valgrind
make -s -j"$jobs" distcheck \
    DISTCHECK_CONFIGURE_FLAGS="CC=clang WARN_CFLAGS='-Wall -Wextra -Werror'" >/dev/null
# Check's own totals, summed over the suites, as one closing line.
awk '/Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+/ {
        gsub(",", ""); for (i = 1; i <= NF; i++) {
            if ($i == "Checks:") c += $(i + 1)
            if ($i == "Failures:") f += $(i + 1)
            if ($i == "Errors:") f += $(i + 1) } }
     END { printf "%d passed, %d failed\n", c - f, f }' tests/check_*.log
