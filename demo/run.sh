#!/bin/sh
# run.sh - the README's first command: installs what is missing, builds
# cdm and runs the example program on defs/demo.ini.
set -eu
cd "$(dirname "$0")/.."
sh tests/deps.sh build
[ -x configure ] || ./autogen.sh >/dev/null
[ -f Makefile ] || ./configure -q
make -s -j"$(nproc)"
./demo/example
./demo/pooling "$@"
