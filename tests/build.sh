#!/bin/sh
# build.sh - what both README commands do first: installs the Debian
# packages that are missing (tests/deps.sh), configures the tree, and builds.
# Usage: tests/build.sh build|test [MAKE-ARGS...]
#
# The tree is configured again whenever its configuration lacks what the
# mode needs: `build` the SQLite driver, `test` also Check, iniparser (the
# reference the loader is tested against) and the PostgreSQL and MySQL
# drivers.  So `sh demo/run.sh` (which configures
# before Check is installed) followed by `sh tests/run.sh` builds every
# suite, and a tree configured by hand before a client library was
# installed picks it up.  A configuration that has everything is kept as
# it is, with whatever options it was given.
set -eu
mode=${1:-build}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."

sh tests/deps.sh "$mode"

# What the configuration lacks for $mode, one item per line.
lacking() {
    grep -q '^#define HAVE_SQLITE 1' config.h || echo "the SQLite driver"
    [ "$mode" = test ] || return 0
    grep -q '^have_check = yes' Makefile || echo "Check"
    grep -q '^#define HAVE_INIPARSER 1' config.h || echo "iniparser"
    grep -q '^#define HAVE_POSTGRESQL 1' config.h || echo "the PostgreSQL driver"
    grep -q '^#define HAVE_MYSQL 1' config.h || echo "the MySQL driver"
}
# The same as one line: "Check, the MySQL driver".
lacking_line() { lacking | paste -sd, - | sed 's/,/, /g'; }

[ -x configure ] || ./autogen.sh >/dev/null
if ! [ -f Makefile ] || ! [ -f config.h ]; then
    ./configure -q
elif [ -n "$(lacking)" ]; then
    echo "build.sh: the tree was configured without $(lacking_line); configuring again" >&2
    ./configure -q
fi
if [ -n "$(lacking)" ]; then
    echo "build.sh: configure did not find $(lacking_line) (see config.log)" >&2
    exit 1
fi
make -s -j"$(nproc)" "$@"
