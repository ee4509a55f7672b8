#!/bin/sh
# deps.sh - installs the Debian packages cdm needs, only those missing.
# Usage: tests/deps.sh build   (compile the library and the demo)
#        tests/deps.sh test    (also Check, valgrind, clang with its sanitizer
#                              runtimes, and every driver)
set -eu

want="gcc make autoconf automake libtool pkg-config libsqlite3-dev"
if [ "${1:-build}" = test ]; then
    # libclang-rt-14-dev: the sanitizer runtimes of Debian 12's clang 14
    # and libFuzzer, for make check-asan, check-tsan and fuzz (only
    # recommended, through libclang-common-14-dev, so
    # --no-install-recommends leaves it out).
    # libiniparser-dev: iniparser 4.1, the reference the loader is tested
    # against.  locales: the sources localedef builds a comma-decimal
    # locale from, for the tests of numbers under such an LC_NUMERIC.
    want="$want check libiniparser-dev valgrind clang libclang-rt-14-dev libpq-dev libmariadb-dev locales"
fi

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "deps.sh: need root (or sudo) to install:$missing" >&2
    exit 1
fi
echo "deps.sh: installing$missing"
$sudo apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
