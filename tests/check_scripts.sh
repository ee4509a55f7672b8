#!/bin/sh
# check_scripts.sh - the README's two commands as a fresh machine meets
# them.  In a copy of the distribution (without its generated configure,
# as a clone has it):
#   1. sh demo/run.sh where Check and libpq-dev look uninstalled (a
#      pkg-config directory without check.pc and libpq.pc): it configures
#      without them, builds, and runs the demos;
#   2. make check in that tree fails, saying how to get Check, and runs no
#      test;
#   3. the test command's build step (tests/build.sh test) configures again
#      now that everything is there, and make check then runs every suite,
#      each passing (the servers' CDM_TEST_* come from the environment);
#   4. sh demo/run.sh again keeps that configuration.
# Run by tests/run.sh from a configured tree with the test servers up.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "check_scripts.sh: $*" >&2; exit 1; }

make -s -C "$top" distdir distdir="$work/cdm" >/dev/null
rm -f "$work/cdm/configure"
hidden="$work/pkgconfig"
mkdir "$hidden"
for dir in $(pkg-config --variable pc_path pkg-config | tr : ' '); do
    for pc in "$dir"/*.pc; do
        [ -e "$pc" ] || continue
        case ${pc##*/} in
        check.pc|libpq.pc) ;;
        *) ln -sf "$pc" "$hidden/" ;;
        esac
    done
done
cd "$work/cdm"

echo "check_scripts.sh: 1. sh demo/run.sh without Check and libpq"
PKG_CONFIG_LIBDIR="$hidden" sh demo/run.sh >demo.out 2>&1 ||
    { cat demo.out >&2; fail "demo/run.sh failed without Check and libpq"; }
grep -q '^have_check = no' Makefile || fail "configure found the hidden Check"
grep -q '^#define HAVE_POSTGRESQL 1' config.h && fail "configure found the hidden libpq"

echo "check_scripts.sh: 2. make check without Check"
make -s check >check.out 2>&1 && { cat check.out >&2; fail "make check passed without Check"; }
grep -q 'apt-get install check' check.out ||
    { cat check.out >&2; fail "make check did not say how to get Check"; }
ls tests/*.trs >/dev/null 2>&1 && fail "make check ran tests without Check"

echo "check_scripts.sh: 3. the test command's build, then make check"
sh tests/build.sh test WARN_CFLAGS="-Wall -Wextra -Werror" >build.out 2>build.err ||
    { cat build.err >&2; fail "tests/build.sh test failed"; }
grep -q 'configured without Check, the PostgreSQL driver; configuring again' build.err ||
    { cat build.err >&2; fail "tests/build.sh test did not say why it configured again"; }
CDM_RACE_SECONDS=1 CDM_CHAOS_SECONDS=1 make -s -j"$(nproc)" check >check.out 2>&1 ||
    { cat check.out tests/*.log >&2; fail "make check failed after configuring again"; }
suites=0
for c in tests/check_*.c; do
    t=${c%.c}
    suites=$((suites + 1))
    grep -q '^:test-result: PASS' "$t.trs" 2>/dev/null ||
        { cat "$t.log" >&2 2>/dev/null; fail "$t did not run and pass"; }
done
[ "$suites" -gt 10 ] || fail "only $suites suites found"

echo "check_scripts.sh: 4. sh demo/run.sh after the test command"
sh demo/run.sh >demo.out 2>&1 || { cat demo.out >&2; fail "demo/run.sh failed"; }
grep -q 'configuring again' demo.out && fail "demo/run.sh configured a complete tree again"
echo "check_scripts.sh: both commands work in either order; $suites suites ran and passed"
