#!/bin/sh
# run.sh - the README's first command: installs what is missing, builds
# cdm and runs the example program on defs/demo.ini.
set -eu
cd "$(dirname "$0")/.."
sh tests/build.sh build
./demo/example
./demo/pooling "$@"
