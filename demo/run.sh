#!/bin/sh
# run.sh - the README's first command: installs what is missing, builds
# cdm, and runs the example program and the pooling demo (demo/pooling)
# on defs/demo.ini; arguments go to the pooling demo.
set -eu
cd "$(dirname "$0")/.."
sh tests/build.sh build
./demo/example
./demo/pooling "$@"
