#!/bin/sh
# check_cli.sh - the cdm command run as a user runs it: exact output and
# exit status of every subcommand, masking, byte-exact edits, refusals,
# 20 concurrent `cdm set` runs losing no update, and a `cdm set` killed
# between writing and renaming leaving the old file intact.
#
# Run from the build directory (make check): ./cdm and tests/cdm-test
# (the same command on the test library) are the programs built there;
# fixtures come from $srcdir.
set -u
top=${srcdir:-.}
here=$(pwd)
CDM="$here/cdm"
CDM_TEST="$here/tests/cdm-test"
work=$(mktemp -d "${TMPDIR:-/tmp}/cdm-cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
checks=0
unset CDM_CONNECTION_DEFS CDM_CLI_TEST_DB
for p in "$CDM" "$CDM_TEST"; do
    [ -x "$p" ] || { echo "check_cli: $p is not built (run make check)"; exit 1; }
done

# ------------------------------------------------------------- helpers

# t COMMAND...: runs it, keeping stdout, stderr and the exit status.
t() {
    what="$*"
    "$@" >"$work/out" 2>"$work/err"
    rc=$?
}
bad() {
    failures=$((failures + 1))
    printf 'FAIL: %s\n  %s\n' "$what" "$1"
    printf '  stdout: '; sed -n '1,8p' "$work/out"
    printf '  stderr: '; sed -n '1,8p' "$work/err"
}
# rc_is N
rc_is() {
    checks=$((checks + 1))
    [ "$rc" = "$1" ] || bad "exit status $rc, want $1"
}
# out_is TEXT: stdout is exactly TEXT and a newline ("" : nothing).
out_is() {
    checks=$((checks + 1))
    if [ -z "$1" ]; then
        [ -s "$work/out" ] && bad "stdout should be empty"
    else
        printf '%s\n' "$1" >"$work/want"
        diff -u "$work/want" "$work/out" >"$work/diff" ||
            bad "stdout differs: $(cat "$work/diff")"
    fi
    return 0
}
err_is() {
    checks=$((checks + 1))
    if [ -z "$1" ]; then
        [ -s "$work/err" ] && bad "stderr should be empty"
    else
        printf '%s\n' "$1" >"$work/want"
        diff -u "$work/want" "$work/err" >"$work/diff" ||
            bad "stderr differs: $(cat "$work/diff")"
    fi
    return 0
}
# err_has TEXT / out_has TEXT: a fixed string somewhere in it.
err_has() {
    checks=$((checks + 1))
    grep -qF -- "$1" "$work/err" || bad "stderr lacks '$1'"
}
out_has() {
    checks=$((checks + 1))
    grep -qF -- "$1" "$work/out" || bad "stdout lacks '$1'"
}
# lacks TEXT: neither output shows it (a secret).
lacks() {
    checks=$((checks + 1))
    ! grep -qF -- "$1" "$work/out" "$work/err" || bad "'$1' was shown"
}
# file_is FILE TEXT: the file holds exactly TEXT and a newline.
file_is() {
    checks=$((checks + 1))
    printf '%s\n' "$2" >"$work/want"
    cmp -s "$work/want" "$1" ||
        bad "$1 differs: $(diff -u "$work/want" "$1")"
}
same_file() {
    checks=$((checks + 1))
    cmp -s "$1" "$2" || bad "$2 changed: $(diff -u "$1" "$2")"
}
# A fresh copy of the fixture, mode 0600, as $f (and the original as $orig).
fresh() {
    rm -rf "$work/d"
    mkdir "$work/d"
    f="$work/d/defs.ini"
    orig="$work/orig.ini"
    cat "$top/tests/fixtures/cli/defs.ini" >"$orig"
    cp "$orig" "$f"
    chmod 600 "$f"
}

# ---------------------------------------------------------- usage, help

fresh
t "$CDM"; rc_is 2; out_is ""; err_has "no command given"; err_has "usage: cdm"
t "$CDM" frobnicate; rc_is 2; err_has "unknown command 'frobnicate'"
t "$CDM" --bogus list; rc_is 2; err_has "unknown option '--bogus'"
t "$CDM" -f "$f" show; rc_is 2; out_is ""
err_is "cdm: missing operand
usage: cdm [-f FILE] show NAME
Try 'cdm --help' for more information."
t "$CDM" -f "$f" rename A; rc_is 2
t "$CDM" -f "$f" delete A B; rc_is 2; err_has "too many operands"
t "$CDM" -f "$f" set Orders Server; rc_is 2; err_has "'Server' is not KEY=VALUE"
t "$CDM" -f "$f" add New Database=x.db; rc_is 2; err_has "DriverID"
same_file "$orig" "$f"
t "$CDM" --help; rc_is 0; err_is ""; out_has "usage: cdm [-f FILE]"
out_has "exec NAME SQL [PARAM...]"
t "$CDM" set --help; rc_is 0; err_is ""
out_has "usage: cdm [-f FILE] set NAME KEY=VALUE..."
t "$CDM" help unset; rc_is 0; out_has "usage: cdm [-f FILE] unset NAME KEY..."
t "$CDM" --version; rc_is 0
checks=$((checks + 1))
grep -qx 'cdm [0-9][0-9.]*' "$work/out" || bad "--version: not 'cdm VERSION'"

# ------------------------------------------------------- reading: FILE

t "$CDM" -f "$f" list; rc_is 0; err_is ""
out_is "Orders
Orders_Reports
Local
LocalNew"
t "$CDM" --file="$f" list; rc_is 0; out_has Orders_Reports
t env CDM_CONNECTION_DEFS="$f" "$CDM" list; rc_is 0; out_has LocalNew
t sh -c "cd '$work/d' && cp defs.ini connection-defs.ini && '$CDM' list"
rc_is 0; out_has LocalNew
rm -f "$work/d/connection-defs.ini"
t sh -c "cd '$work' && '$CDM' list"; rc_is 1; out_is ""
err_is "cdm: ./connection-defs.ini: no such file (give one with -f FILE or \$CDM_CONNECTION_DEFS)"

# ------------------------------------------------------------ show, get

t "$CDM" -f "$f" show Orders; rc_is 0; err_is ""
out_is "DriverID=PG
Server=db1.example.com
Database=orders
User_Name=orders_app
Password=*****
PGAdvanced=sslmode=require;sslpassword=*****
Pooled=True"
lacks s3cret; lacks keypass
t "$CDM" -f "$f" show orders --show-secrets; rc_is 0
out_has "Password=s3cret"; out_has "sslpassword=keypass"
t "$CDM" -f "$f" show Nope; rc_is 1; out_is ""
err_is "cdm: $f: no definition named 'Nope'"
t "$CDM" -f "$f" get Orders_Reports Server; rc_is 0; out_is "db1.example.com"
t "$CDM" -f "$f" get Orders_Reports Port; rc_is 1; out_is ""; err_has "Port is not set"
t env CDM_CLI_TEST_DB=reports_db "$CDM" -f "$f" get Orders_Reports Database
rc_is 0; out_is "reports_db"
t "$CDM" -f "$f" get Orders_Reports Database; rc_is 1
err_has "environment variable CDM_CLI_TEST_DB is not set"
t "$CDM" -f "$f" get Orders_Reports Password; rc_is 1; out_is ""
err_is "cdm: definition 'Orders_Reports': Password is secret: add --show-secrets to print it"
lacks s3cret
t "$CDM" -f "$f" --show-secrets get Orders_Reports Password; rc_is 0; out_is "s3cret"
same_file "$orig" "$f"

# ------------------------------------------------------------- editing

# set: an existing key keeps its place and comment, a new one goes last.
t "$CDM" -f "$f" set Orders Server=db2 Port=5433 ApplicationName='a;b'
rc_is 0; out_is ""; err_is ""
sed -e 's/^Server=db1.example.com/Server=db2/' \
    -e 's/^Pooled=True$/Pooled=True\nPort=5433\nApplicationName="a;b"/' \
    "$orig" >"$work/want.ini"
same_file "$work/want.ini" "$f"
t "$CDM" -f "$f" get Orders ApplicationName; out_is "a;b"
t "$CDM" -f "$f" unset Orders Port ApplicationName; rc_is 0; out_is ""
t "$CDM" -f "$f" set Orders Server=db1.example.com; rc_is 0
same_file "$orig" "$f"
# A set and an unset give back the very same bytes.
t "$CDM" -f "$f" set Local BusyTimeout=500; rc_is 0
t "$CDM" -f "$f" unset Local BusyTimeout; rc_is 0
same_file "$orig" "$f"
# All or nothing, and a refusal says why.
t "$CDM" -f "$f" set Orders Server=db3 Pooled=maybe; rc_is 1; out_is ""
err_has "Pooled: 'maybe' is not a boolean"
same_file "$orig" "$f"
t "$CDM" -f "$f" unset Orders Server Port; rc_is 1
err_is "cdm: $f: definition 'Orders' sets no Port"
same_file "$orig" "$f"
t "$CDM" -f "$f" set Nope Server=x; rc_is 1; err_has "no definition named 'Nope'"
t "$CDM" -f "$f" set Orders "Server=it's \"quoted\""; rc_is 1
err_has "both kinds of quote"
same_file "$orig" "$f"
# An unknown key is kept, with a warning; its value is masked when it
# looks like a misspelt password.
t "$CDM" -f "$f" set Local Pasword=hunter2; rc_is 0
err_is "cdm: warning: $f: definition 'Local': unknown key Pasword (did you mean Password?)"
lacks hunter2
t "$CDM" -f "$f" show Local; out_has "Pasword=*****"; lacks hunter2
t "$CDM" -f "$f" unset Local Pasword; rc_is 0
same_file "$orig" "$f"
# rename there and back, copy and delete.
t "$CDM" -f "$f" rename Orders Sales; rc_is 0; out_is ""; err_is ""
sed 's/^\[Orders\]$/[Sales]/' "$orig" >"$work/want.ini"
same_file "$work/want.ini" "$f"
t "$CDM" -f "$f" rename Sales Orders_Reports; rc_is 1; err_has "exists"
t "$CDM" -f "$f" rename Sales Orders; rc_is 0
same_file "$orig" "$f"
t "$CDM" -f "$f" copy Local Local2; rc_is 0
{ cat "$orig"; printf '\n[Local2]\nDriverID=SQLite\nDatabase=local.db\nOpenMode=ReadWrite\n'; } >"$work/want.ini"
same_file "$work/want.ini" "$f"
t "$CDM" -f "$f" delete Local2; rc_is 0
same_file "$orig" "$f"
t "$CDM" -f "$f" delete Local2; rc_is 1; err_has "no definition named 'Local2'"
# delete takes the comment lines above the header with it.
t "$CDM" -f "$f" delete Local; rc_is 0
sed '20,25d' "$orig" >"$work/want.ini"   # its comment, lines and a blank
same_file "$work/want.ini" "$f"
cp "$orig" "$f"
# add: at the end, after a blank line; a name is taken once.
t "$CDM" -f "$f" add Archive DriverID=SQLite Database=archive.db; rc_is 0
{ cat "$orig"; printf '\n[Archive]\nDriverID=SQLite\nDatabase=archive.db\n'; } >"$work/want.ini"
same_file "$work/want.ini" "$f"
t "$CDM" -f "$f" add archive DriverID=SQLite Database=x.db; rc_is 1; err_has "exists"
t "$CDM" -f "$f" add Child ConnectionDef=Orders Database=child; rc_is 0
t "$CDM" -f "$f" get Child Server; out_is "db1.example.com"
# A new file is created with mode 0600.
t "$CDM" -f "$work/d/new.ini" add Mem DriverID=SQLite Database=:memory:; rc_is 0
file_is "$work/d/new.ini" "[Mem]
DriverID=SQLite
Database=:memory:"
checks=$((checks + 1))
[ "$(stat -c %a "$work/d/new.ini")" = 600 ] || bad "new file mode $(stat -c %a "$work/d/new.ini")"
# A world-writable file is refused, even for reading.
chmod 666 "$work/d/new.ini"
t "$CDM" -f "$work/d/new.ini" set Mem BusyTimeout=1; rc_is 1; err_has "world-writable"
t "$CDM" -f "$work/d/new.ini" list; rc_is 1

# ------------------------------------------------------------ test, exec

fresh
t "$CDM" -f "$f" test Local; rc_is 1
out_is "fail Local: $f:21: definition 'Local': SQLite: cannot open '$work/d/local.db': the file does not exist (it is not created here)"
err_is ""
t "$CDM" -f "$f" test LocalNew; rc_is 1; out_has "does not exist"
checks=$((checks + 1))
[ ! -e "$work/d/local.db" ] || bad "cdm test created local.db"
# exec creates it (LocalNew opens with the default OpenMode=CreateUTF8).
t "$CDM" -f "$f" exec LocalNew "CREATE TABLE t (a, b)"; rc_is 0; out_is ""; err_is ""
t "$CDM" -f "$f" test Local LocalNew; rc_is 0; err_is ""
checks=$((checks + 1))
grep -Eqx 'ok Local \(SQLite, [0-9]+ ms\)' "$work/out" &&
    grep -Eqx 'ok LocalNew \(SQLite, [0-9]+ ms\)' "$work/out" ||
    bad "test: not 'ok NAME (SQLite, N ms)'"
t "$CDM" -f "$f" exec Local "INSERT INTO t VALUES (?, ?)" 1 '\N'; rc_is 0; out_is ""
tab=$(printf '\t')
t "$CDM" -f "$f" exec Local "INSERT INTO t VALUES (?, ?)" "x${tab}y\\z" "line1
line2"; rc_is 0
t "$CDM" -f "$f" exec Local "SELECT a, b AS \"the b\" FROM t WHERE a IS NOT ? ORDER BY rowid" 7
rc_is 0; err_is ""
out_is "a${tab}the b
1${tab}\\N
x\\ty\\\\z${tab}line1\\nline2"
t "$CDM" -f "$f" exec Local "SELECT a FROM t WHERE a = ?"; rc_is 1; out_is ""
err_has "cdm: "
t "$CDM" -f "$f" exec Local "SELEC 1"; rc_is 1; out_is ""; err_has "syntax error"
t "$CDM" -f "$f" exec Nope "SELECT 1"; rc_is 1; err_is "cdm: no definition named 'Nope'"
t "$CDM" -f "$f" test Orders_Reports Local; rc_is 1
out_has "fail Orders_Reports: "; out_has "ok Local (SQLite, "
same_file "$orig" "$f"

# ---------------------------------------------------------------- check

fresh
t "$CDM" -f "$f" check
# Every finding on a FILE:LINE: line; the fixture has no error.
rc_is 0; err_is ""
checks=$((checks + 1))
! grep -Ev "^$f:[0-9]+: (error|warning): " "$work/out" | grep -q . ||
    bad "check: a line not 'FILE:LINE: error|warning: message'"
printf '[Bad]\nDriverID=PG\nDatabase=x\nPooled=maybe\n\n[Odd]\nDriverID=Oracle9\nDatabase=y\n' >"$work/d/bad.ini"
chmod 600 "$work/d/bad.ini"
t "$CDM" -f "$work/d/bad.ini" check; rc_is 1; err_is ""
checks=$((checks + 1))
! grep -Ev "^$work/d/bad.ini:[0-9]+: (error|warning): " "$work/out" | grep -q . ||
    bad "check: a line not 'FILE:LINE: error|warning: message'"
out_has "$work/d/bad.ini:4: error: "
# The unknown DriverID: on its key's line or its section's.
checks=$((checks + 1))
grep -Eq "^$work/d/bad.ini:(6|7): error: " "$work/out" || bad "no error for [Odd]"
printf '[Good]\nDriverID=SQLite\nDatabase=:memory:\n' >"$work/d/good.ini"
chmod 600 "$work/d/good.ini"
t "$CDM" -f "$work/d/good.ini" check; rc_is 0; out_is ""; err_is ""
printf '[Broken\nDriverID=SQLite\n' >"$work/d/syntax.ini"
chmod 600 "$work/d/syntax.ini"
t "$CDM" -f "$work/d/syntax.ini" check; rc_is 1; out_has "$work/d/syntax.ini:1: error: "
t "$CDM" -f "$work/d/missing.ini" check; rc_is 1
out_has "$work/d/missing.ini:0: error: "
printf '[Svc]\nDriverID=PG\nDatabase=x\nPooling=True\nPOOL_MaximumItems=4\n' >"$work/d/typo.ini"
chmod 600 "$work/d/typo.ini"
t "$CDM" -f "$work/d/typo.ini" check; rc_is 0
out_has "$work/d/typo.ini:4: warning: "
out_has "unknown key Pooling (did you mean Pooled?)"
same_file "$orig" "$f"

# ------------------------------------------- 20 concurrent `cdm set` runs

fresh
pids=""
i=1
while [ $i -le 20 ]; do
    "$CDM" -f "$f" set LocalNew "Note_$i=value $i" >"$work/conc.$i.out" 2>&1 &
    pids="$pids $!"
    i=$((i + 1))
done
n=0
for p in $pids; do
    n=$((n + 1))
    what="concurrent set #$n"
    wait "$p"; rc=$?
    rc_is 0
done
t "$CDM" -f "$f" show LocalNew; rc_is 0
i=1
while [ $i -le 20 ]; do
    out_has "Note_$i=value $i"
    i=$((i + 1))
done
checks=$((checks + 1))
[ "$(grep -c '^Note_' "$f")" = 20 ] || bad "want 20 Note_ lines in the file"
# Nothing else changed.
grep -v '^Note_' "$f" >"$work/rest.ini"
same_file "$orig" "$work/rest.ini"

# ------------------------------------ a crash between write and rename

fresh
checks=$((checks + 1))
CDM_TEST_STOP_BEFORE_RENAME=1 "$CDM_TEST" -f "$f" set Local Database=other.db \
    >"$work/crash.out" 2>&1 &
pid=$!
# The test build stops itself (SIGSTOP) with the new text written and
# flushed to its temporary file; wait for that state (bounded).
state=""
tries=0
while [ $tries -lt 1000 ]; do
    state=$(ps -o stat= -p "$pid" 2>/dev/null) || state=gone
    case $state in T*|gone) break ;; esac
    sleep 0.01
    tries=$((tries + 1))
done
what="cdm set stopped before its rename"
case $state in
T*)
    same_file "$orig" "$f"
    checks=$((checks + 1))
    ls -a "$work/d" | grep -q '^\.defs\.ini\.cdm-tmp\.' || bad "no temporary file while stopped"
    kill -KILL "$pid"
    wait "$pid"; rc=$?
    rc_is 137
    same_file "$orig" "$f"
    t "$CDM" -f "$f" get Local Database; rc_is 0; out_is "local.db"
    checks=$((checks + 1))
    ls -a "$work/d" | grep -q '^\.defs\.ini\.cdm-tmp\.' || bad "the killed save left no temporary file"
    t "$CDM" -f "$f" set Local Database=later.db; rc_is 0
    t "$CDM" -f "$f" get Local Database; out_is "later.db"
    checks=$((checks + 1))
    ! ls -a "$work/d" | grep -q '^\.defs\.ini\.cdm-tmp\.' || bad "the next save left the temporary file"
    ;;
*)
    kill -KILL "$pid" 2>/dev/null
    bad "the test build never stopped before its rename (state '$state'): $(cat "$work/crash.out")"
    ;;
esac

echo "check_cli: $checks checks, $failures failed"
[ "$failures" = 0 ]
