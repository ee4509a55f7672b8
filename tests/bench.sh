#!/bin/sh
# bench.sh - runs the benchmark program, starting the PostgreSQL and
# MariaDB test servers first (tests/servers.sh) unless CDM_TEST_* are set;
# if they cannot start, the program reports its server figures as null.
# Usage: tests/bench.sh PATH-TO-PROGRAM [OPTIONS...]  (bench: --rounds N,
# --seconds S, --json FILE).  CDM_BENCH_COMMIT, when unset, is taken from
# git, so the figures name the code they measured.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bench=$1
shift
if [ -z "${CDM_BENCH_COMMIT:-}" ] &&
    CDM_BENCH_COMMIT=$(git -C "$here/.." describe --always --dirty 2>/dev/null); then
    export CDM_BENCH_COMMIT
fi
if [ -z "${CDM_TEST_PG_PORT:-}" ] && [ -z "${CDM_TEST_MYSQL_PORT:-}" ]; then
    if state=$(sh "$here/servers.sh" start); then
        trap 'sh "$here/servers.sh" stop "$state"' EXIT
        . "$state/env"
    else
        echo "bench.sh: could not start the test servers; server figures skipped" >&2
    fi
fi
${LIBTOOL:+$LIBTOOL --mode=execute} "$bench" "$@"
