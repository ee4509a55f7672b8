#!/bin/sh
# check_readme.sh - the example in README.md and at the top of cdm.h must
# be exactly demo/example.c (without its two-line header comment), so the
# documented example is the one `make` builds.
set -eu
top=${srcdir:-.}
code=$(mktemp)
doc=$(mktemp)
trap 'rm -f "$code" "$doc"' EXIT
tail -n +3 "$top/demo/example.c" >"$code"

awk '/^```c$/ && !done { on = 1; next } on && /^```$/ { on = 0; done = 1 } on' \
    "$top/README.md" >"$doc"
diff -u "$code" "$doc" || { echo "README.md example differs from demo/example.c"; exit 1; }

sed -n '/A complete program/,/Status codes/p' "$top/include/cdm.h" |
    sed -n '3,$p' | sed '$d' | sed '$d' |
    sed -e 's/^ \*     //' -e 's/^ \*$//' >"$doc"
diff -u "$code" "$doc" || { echo "cdm.h example differs from demo/example.c"; exit 1; }
echo "examples match demo/example.c"
