#!/bin/sh
# check_demo.sh - demo/pooling runs: on SQLite (defs/demo.ini, copied next
# to a scratch database, since the source tree may be read-only), with
# bad options (exit 2), with a missing definition (exit 1), and against
# the test servers' PostgreSQL and MariaDB (defs/servers.ini) when the
# CDM_TEST_* variables are set.  Checks what it prints, never how fast.
set -eu
top=${srcdir:-.}
demo=./demo/pooling
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# run NAME WANT_STATUS ARGS...: runs the demo, output in $tmp/NAME.out/.err.
run() {
    name=$1 want=$2
    shift 2
    rc=0
    "$demo" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$name: exit status $rc, want $want (pooling $*)"
        sed 's/^/  | /' "$tmp/$name.out" "$tmp/$name.err"
        return 1
    fi
}

has() {     # has NAME REGEX: the output of run NAME matches
    grep -Eq "$2" "$tmp/$1.out" || fail "$1: no line matching '$2' in its output"
}

# The summary of a good run: both rows, a speed-up, the pool's figures.
summary_ok() {
    name=$1 plain=$2 pooled=$3 opens=$4
    has "$name" "^plain +$plain +$opens +[0-9.]+ s +[0-9.]+ us *$"
    has "$name" "^pooled +$pooled +$opens +[0-9.]+ s +[0-9.]+ us +[0-9.]+x$"
    has "$name" "^  physical connections created +[1-9][0-9]*$"
    has "$name" "^  peak in use +[1-9][0-9]*$"
    has "$name" "^  borrows +$opens$"
    has "$name" "^  waits \\(pool full\\) +[0-9]+"
    has "$name" "^  timeouts +0$"
    has "$name" "^shutdown: cdm_manager_close took [0-9.]+ ms$"
    # Not a terminal: no progress line.
    ! grep -q "$(printf '\r')" "$tmp/$name.out" ||
        fail "$name: a progress line although stdout is not a terminal"
    [ ! -s "$tmp/$name.err" ] || { fail "$name: wrote to stderr"; cat "$tmp/$name.err"; }
}

cp "$top/defs/demo.ini" "$tmp/demo.ini"
chmod 600 "$tmp/demo.ini"
if run sqlite 0 --defs "$tmp/demo.ini" --threads 12 --iterations 5; then
    summary_ok sqlite Demo_File Demo_Pooled 60
    has sqlite "^cdm pooling demo: 12 threads x 5 opens"
fi
if run sqlite_short 0 -d "$tmp/demo.ini" -p Demo_Memory -P Demo_Pooled -t 1 -i 1; then
    summary_ok sqlite_short Demo_Memory Demo_Pooled 1
fi

if run help 0 --help; then
    has help "^usage: pooling"
fi
for bad in "--threads 0" "--threads 1025" "--threads x" "--iterations 0" \
           "--iterations 5x" "--iterations -3" "--bogus" "--threads" "extra"; do
    # shellcheck disable=SC2086 # split on purpose
    if run bad 2 -d "$tmp/demo.ini" $bad; then
        grep -q "^usage: pooling" "$tmp/bad.err" || fail "'$bad': no usage on stderr"
    fi
done

if run missing 1 -d "$tmp/demo.ini" -P No_Such_Def -t 1 -i 1; then
    grep -q "No_Such_Def" "$tmp/missing.err" || fail "missing: the name is not in the error"
fi
if run nofile 1 -d "$tmp/none.ini" -t 1 -i 1; then
    grep -q 'CDM_CONNECTION_DEFS.*none.ini' "$tmp/nofile.err" ||
        fail "nofile: the failed automatic load is not explained"
fi

# The same demo against the test servers, as the README shows it.
if [ -n "${CDM_TEST_PG_PORT:-}" ]; then
    if run pg 0 -d "$top/defs/servers.ini" -p Servers_PG -P Servers_PG_Pooled -t 10 -i 3; then
        summary_ok pg Servers_PG Servers_PG_Pooled 30
    fi
else
    echo "no PostgreSQL test server (CDM_TEST_PG_PORT unset): skipped that run"
    [ "${CDM_REQUIRE_SERVERS:-0}" != 1 ] || fail "CDM_REQUIRE_SERVERS=1 but no PostgreSQL"
fi
if [ -n "${CDM_TEST_MYSQL_PORT:-}" ]; then
    if run mysql 0 -d "$top/defs/servers.ini" -p Servers_MySQL -P Servers_MySQL_Pooled -t 10 -i 3; then
        summary_ok mysql Servers_MySQL Servers_MySQL_Pooled 30
    fi
else
    echo "no MariaDB test server (CDM_TEST_MYSQL_PORT unset): skipped that run"
    [ "${CDM_REQUIRE_SERVERS:-0}" != 1 ] || fail "CDM_REQUIRE_SERVERS=1 but no MariaDB"
fi

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "demo/pooling: all runs as expected"
