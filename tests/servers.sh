#!/bin/sh
# servers.sh - throwaway PostgreSQL, MariaDB and PgBouncer servers for the
# driver tests. Each run gets a fresh state directory (mktemp -d) holding
# every data directory, socket, pid file and log; the servers listen on
# 127.0.0.1 only, on free ports picked at random, and run as unprivileged
# users (postgres, mysql; PgBouncer as postgres). Installs the Debian
# packages it needs when they are missing (without starting the system's
# own services).
#
# Usage: tests/servers.sh start            start all three; prints STATE
#                                          (. STATE/env sets CDM_TEST_*)
#        tests/servers.sh stop [STATE]     stop them (default $CDM_SERVERS_DIR),
#                                          remove STATE; safe to repeat
#        tests/servers.sh restart-pg | stop-pg | start-pg
#        tests/servers.sh restart-mysql | stop-mysql | start-mysql
#                                          same port, same data directory
#        tests/servers.sh psql SQL...      run SQL as the admin over the
#        tests/servers.sh mysql SQL...     socket, rows tab-separated, no
#                                          header (no SQL: read stdin)
# Commands other than start and stop act on $CDM_SERVERS_DIR. Quiet on
# success (start prints only STATE); errors go to stderr.
# shellcheck disable=SC2015 # a && b || c: c when either fails, as meant
set -u
umask 022
# Descriptors a caller (a test's system()) left open must not reach the
# servers: a daemon holding the read end's pipe open hangs $(...).
exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
PATH=$PATH:/usr/sbin:/sbin
export PATH
tab=$(printf '\t')
here=$(pwd)
script=$(cd "$(dirname "$0")" && pwd -P)/$(basename "$0")
cd / || exit 1

say() { echo "servers.sh: $*" >&2; }
die() { say "$*"; exit 1; }
tails() { # LOG...: the end of each non-empty log, to stderr
    for f; do
        [ -s "$f" ] || continue
        echo "---- last lines of $f" >&2
        tail -n 25 "$f" >&2
    done
}

if [ "$(id -u)" = 0 ]; then
    is_root=1 pg_user=postgres my_user=mysql my_admin=root
else
    is_root=0 pg_user=$(id -un) my_user=$(id -un) my_admin=$(id -un)
fi

# Runs a command as the PostgreSQL user.
as_pg() {
    if [ "$is_root" = 1 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}

own() { # USER PATH...: chown when root
    if [ "$is_root" = 1 ]; then u=$1; shift; chown "$u" "$@"; fi
}

# ------------------------------------------------------------- packages

ensure_packages() {
    command -v dpkg-query >/dev/null 2>&1 || return 0
    missing=""
    for p in postgresql mariadb-server mariadb-client pgbouncer; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $p"
        fi
    done
    [ -z "$missing" ] && return 0
    if [ "$is_root" = 1 ]; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        die "need root (or sudo) to install:$missing"
    fi
    say "installing$missing"
    # policy-rc.d (only if there is none) keeps the packages from starting
    # the system's own PostgreSQL, MariaDB and PgBouncer services.
    # shellcheck disable=SC2086,SC2016
    $sudo sh -c '
        set -e
        p=/usr/sbin/policy-rc.d
        if [ ! -e "$p" ]; then
            trap "rm -f $p" EXIT
            printf "#!/bin/sh\nexit 101\n" >"$p"
            chmod 755 "$p"
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "$@" >/dev/null
    ' sh $missing >&2 || die "could not install:$missing"
}

find_tools() {
    pgbin=""
    # shellcheck disable=SC2012
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/psql" ] && pgbin=$d
    done
    [ -n "$pgbin" ] || die "no PostgreSQL server found in /usr/lib/postgresql/*/bin"
    for t in mariadbd mariadb-install-db mariadb pgbouncer setsid flock \
        $([ "$is_root" = 1 ] && echo runuser); do
        command -v "$t" >/dev/null 2>&1 || die "$t not found"
    done
}

# ---------------------------------------------------------------- state

# Sets the paths inside the state directory $S.
paths() {
    PGDIR=$S/pg PGDATA_=$S/pg/data PGLOG=$S/pg/server.log
    MYDIR=$S/my MYDATA=$S/my/data MYSOCK=$S/my/mysqld.sock
    MYPID=$S/my/mysqld.pid MYLOG=$S/my/error.log MYOUT=$S/my/mariadbd.out
    BDIR=$S/bouncer BINI=$S/bouncer/pgbouncer.ini BPID=$S/bouncer/pgbouncer.pid
    BLOG=$S/bouncer/pgbouncer.log
}

# For commands other than start and stop: the state of $CDM_SERVERS_DIR.
load_state() {
    S=${CDM_SERVERS_DIR:-}
    [ -n "$S" ] || die "CDM_SERVERS_DIR is not set (run start, then . STATE/env)"
    [ -f "$S/.cdm-servers" ] && [ -f "$S/env" ] ||
        die "$S is not a running servers.sh state directory"
    paths
    # shellcheck disable=SC1091
    . "$S/env"
}

# lock NAME: one restart/stop/start of a server at a time (suites run in
# parallel). Fd 9 holds the lock; every daemon is started with 9>&-.
lock() {
    exec 9>>"$S/.lock-$1"
    flock -w 120 9 || die "timed out waiting for another servers.sh on $1"
}

# alive PID: the process exists and is not a zombie.
alive() {
    st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$st" ] && [ "$st" != Z ]
}

# ours PIDFILE: prints the pid in PIDFILE if that process is alive and was
# started for this state directory (its command line names $S), so a stale
# pid file never leads to signalling someone else's process.
ours() {
    [ -f "$1" ] || return 1
    pid=$(head -n 1 "$1" 2>/dev/null | tr -dc 0-9)
    [ -n "$pid" ] && alive "$pid" || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$S/" || return 1
    echo "$pid"
}

# wait_gone PID TICKS: waits up to TICKS x 50 ms for PID to exit.
wait_gone() {
    i=0
    while alive "$1"; do
        [ "$i" -ge "$2" ] && return 1
        sleep 0.05
        i=$((i + 1))
    done
}

# kill_ours PIDFILE: SIGTERM, then SIGKILL after 30 s.
kill_ours() {
    kpid=$(ours "$1") || return 0
    kill -TERM "$kpid" 2>/dev/null
    wait_gone "$kpid" 600 && return 0
    say "pid $kpid ($1) ignored SIGTERM for 30 s; sending SIGKILL"
    kill -KILL "$kpid" 2>/dev/null
    wait_gone "$kpid" 100 || { say "pid $kpid did not exit"; return 1; }
}

rand() { od -An -N2 -tu2 /dev/urandom | tr -dc 0-9; }
gen_password() { od -An -N16 -tx1 /dev/urandom | tr -dc 0-9a-f; }

# port_busy PORT: some TCP socket (any state, any address) uses PORT.
port_busy() {
    hex=$(printf '%04X' "$1")
    for f in /proc/net/tcp /proc/net/tcp6; do
        [ -r "$f" ] || continue
        awk -v p="$hex" 'FNR > 1 { n = split($2, a, ":"); if (a[n] == p) f = 1 }
                         END { exit !f }' "$f" && return 0
    done
    return 1
}

# pick_port: sets $port to a free port in 20000-31999 (below Linux's
# ephemeral range, so no outgoing connection takes it meanwhile), not one
# already picked by this run.
used_ports=""
pick_port() {
    n=0
    while [ "$n" -lt 500 ]; do
        port=$((20000 + $(rand) % 12000))
        n=$((n + 1))
        case " $used_ports " in *" $port "*) continue ;; esac
        port_busy "$port" && continue
        used_ports="$used_ports $port"
        return 0
    done
    die "found no free TCP port"
}

# env_line NAME VALUE: an export line, the value quoted only when needed.
env_line() {
    case $2 in
    '' | *[!A-Za-z0-9_./:@%+,=-]*)
        printf "export %s='%s'\n" "$1" "$(printf '%s' "$2" | sed "s/'/'\\\\''/g")" ;;
    *) printf 'export %s=%s\n' "$1" "$2" ;;
    esac
}

# ----------------------------------------------------------- PostgreSQL

pg_admin() { # DB ARGS...: psql as the superuser over the socket
    db=$1
    shift
    as_pg "$pgbin/psql" -X -q -A -t -F "$tab" -v ON_ERROR_STOP=1 \
        -h "$PGDIR" -p "$CDM_TEST_PG_PORT" -U postgres -d "$db" "$@"
}

pg_login() { # PORT: a password login as cdm_test over TCP works
    PGPASSWORD=$CDM_TEST_PG_PASSWORD PGCONNECT_TIMEOUT=5 "$pgbin/psql" -X -w -q -A -t \
        -h 127.0.0.1 -p "$1" -U cdm_test -d cdm_test -c 'SELECT 1' >/dev/null 2>&1
}

pg_write_conf() {
    cat >"$PGDATA_/cdm.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $CDM_TEST_PG_PORT
unix_socket_directories = '$PGDIR'
password_encryption = scram-sha-256
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    own "$pg_user" "$PGDATA_/cdm.conf"
}

pg_start() {
    ours "$PGDATA_/postmaster.pid" >/dev/null && return 0
    as_pg "$pgbin/pg_ctl" -D "$PGDATA_" -l "$PGLOG" -s -w -t 60 start \
        </dev/null >/dev/null 2>>"$PGDIR/pg_ctl.err" 3>&- 9>&- || return 1
    i=0
    until pg_login "$CDM_TEST_PG_PORT"; do
        [ "$i" -ge 200 ] && return 1
        sleep 0.05
        i=$((i + 1))
    done
}

pg_stop() { # fast shutdown; immediate, then SIGKILL, if that hangs
    ppid_=$(ours "$PGDATA_/postmaster.pid") || return 0
    as_pg "$pgbin/pg_ctl" -D "$PGDATA_" -m fast -s -w -t 30 stop \
        </dev/null >/dev/null 2>>"$PGDIR/pg_ctl.err" && wait_gone "$ppid_" 100 && return 0
    say "PostgreSQL (pid $ppid_) did not stop; sending SIGQUIT"
    kill -QUIT "$ppid_" 2>/dev/null
    wait_gone "$ppid_" 200 && return 0
    kill -KILL "$ppid_" 2>/dev/null
    wait_gone "$ppid_" 100 || { say "pid $ppid_ did not exit"; return 1; }
}

pg_setup() {
    mkdir -p "$PGDIR" && chmod 700 "$PGDIR" && own "$pg_user" "$PGDIR" || return 1
    as_pg "$pgbin/initdb" -D "$PGDATA_" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --no-locale -N \
        >"$PGDIR/initdb.log" 2>&1 || { logs="$PGDIR/initdb.log"; return 1; }
    echo "include 'cdm.conf'" >>"$PGDATA_/postgresql.conf"
    logs="$PGLOG $PGDIR/pg_ctl.err"
    n=0
    while :; do
        pick_port
        CDM_TEST_PG_PORT=$port
        pg_write_conf
        : >"$PGLOG" && own "$pg_user" "$PGLOG"
        : >"$PGDIR/pg_ctl.err"
        as_pg "$pgbin/pg_ctl" -D "$PGDATA_" -l "$PGLOG" -s -w -t 60 start \
            </dev/null >/dev/null 2>>"$PGDIR/pg_ctl.err" 3>&- 9>&- && break
        n=$((n + 1))
        # Someone took the port between the check and the bind: another.
        grep -q "Address already in use" "$PGLOG" && [ "$n" -lt 5 ] || return 1
    done
    printf "CREATE ROLE cdm_test LOGIN PASSWORD '%s';\n%s\n" "$CDM_TEST_PG_PASSWORD" \
        "CREATE DATABASE cdm_test OWNER cdm_test;" | pg_admin postgres -f - ||
        { say "PostgreSQL: creating role and database failed"; return 1; }
    pg_login "$CDM_TEST_PG_PORT" ||
        { say "PostgreSQL: password login as cdm_test over TCP failed"; return 1; }
}

# -------------------------------------------------------------- MariaDB

# Options for both mariadb-install-db and mariadbd. With --no-defaults the
# server would default to latin1; the tests want what Debian configures.
my_common="--innodb-use-native-aio=0 --innodb-log-file-size=16M
 --innodb-buffer-pool-size=64M --character-set-server=utf8mb4
 --collation-server=utf8mb4_general_ci"

my_admin() { # DB ARGS...: the client as the admin over the socket
    db=$1
    shift
    mariadb --no-defaults --protocol=socket --socket="$MYSOCK" -u "$my_admin" \
        -N -B "$@" ${db:+"$db"}
}

my_login() { # PORT
    MYSQL_PWD=$CDM_TEST_MYSQL_PASSWORD mariadb --no-defaults --protocol=tcp \
        -h 127.0.0.1 -P "$1" -u cdm_test --connect-timeout=5 -N -B \
        -e 'SELECT 1' cdm_test >/dev/null 2>&1
}

my_launch() { # PORT: starts mariadbd in its own session; sets $my_pid
    # shellcheck disable=SC2086
    set -- --no-defaults --datadir="$MYDATA" --port="$1" --bind-address=127.0.0.1 \
        --socket="$MYSOCK" --pid-file="$MYPID" --log-error="$MYLOG" \
        --tmpdir="$MYDIR/tmp" $my_common \
        --skip-name-resolve --host-cache-size=0 --max-connect-errors=1000000000 \
        --max-connections=200 --innodb-flush-log-at-trx-commit=0 \
        --innodb-doublewrite=0 --innodb-buffer-pool-dump-at-shutdown=0 \
        --innodb-buffer-pool-load-at-startup=0
    [ "$is_root" = 1 ] && set -- "$@" --user="$my_user"
    my_pid=$( (setsid mariadbd "$@" </dev/null >>"$MYOUT" 2>&1 3>&- 9>&- & echo $!))
    # Recorded at once, so stop finds it even before its own pid file.
    echo "$my_pid" >"$MYDIR/launch.pid"
}

# my_wait CHECK...: waits until CHECK succeeds while mariadbd ($my_pid) lives.
my_wait() {
    i=0
    until "$@"; do
        alive "$my_pid" || return 1
        [ "$i" -ge 1200 ] && return 1
        sleep 0.05
        i=$((i + 1))
    done
}

my_ping_admin() { my_admin "" -e 'SELECT 1' >/dev/null 2>&1; }

my_start() {
    ours "$MYPID" >/dev/null && return 0
    rm -f "$MYPID"
    my_launch "$CDM_TEST_MYSQL_PORT"
    my_wait my_login "$CDM_TEST_MYSQL_PORT"
}

my_stop() {
    kill_ours "$MYPID" && kill_ours "$MYDIR/launch.pid"
}

my_setup() {
    mkdir -p "$MYDIR/tmp" && chmod 700 "$MYDIR" && own "$my_user" "$MYDIR" "$MYDIR/tmp" ||
        return 1
    set -- --no-defaults --datadir="$MYDATA" --auth-root-authentication-method=socket
    if [ "$is_root" = 1 ]; then
        set -- "$@" --user="$my_user"
    else
        set -- "$@" --auth-root-socket-user="$my_admin"
    fi
    mariadb-install-db --help 2>/dev/null | grep -q -e --skip-test-db &&
        set -- "$@" --skip-test-db
    # shellcheck disable=SC2086
    mariadb-install-db "$@" --skip-name-resolve $my_common \
        >"$MYDIR/install.log" 2>&1 3>&- </dev/null || { logs="$MYDIR/install.log"; return 1; }
    logs="$MYLOG $MYOUT"
    n=0
    while :; do
        pick_port
        CDM_TEST_MYSQL_PORT=$port
        rm -f "$MYLOG" "$MYOUT"
        my_launch "$port"
        my_wait my_ping_admin && break
        n=$((n + 1))
        grep -q "Address already in use" "$MYLOG" "$MYOUT" 2>/dev/null && [ "$n" -lt 5 ] ||
            return 1
        kill_ours "$MYDIR/launch.pid"
    done
    # Anonymous users (''@'localhost', ''@host, ''@'%') would shadow
    # cdm_test@'%' for local logins: drop every one of them.
    anon=$(my_admin "" -e "SELECT Host FROM mysql.user WHERE User=''") ||
        { say "MariaDB: admin query failed"; return 1; }
    pw=$CDM_TEST_MYSQL_PASSWORD
    {
        for h in $anon; do echo "DROP USER ''@'$h';"; done
        echo "CREATE DATABASE cdm_test CHARACTER SET utf8mb4;"
        for h in % localhost 127.0.0.1; do
            echo "CREATE USER 'cdm_test'@'$h' IDENTIFIED BY '$pw';"
            echo "GRANT ALL ON cdm_test.* TO 'cdm_test'@'$h';"
        done
    } | my_admin "" || { say "MariaDB: creating user and database failed"; return 1; }
    [ -z "$(my_admin "" -e "SELECT Host FROM mysql.user WHERE User=''")" ] ||
        { say "MariaDB: anonymous users remain"; return 1; }
    my_login "$CDM_TEST_MYSQL_PORT" ||
        { say "MariaDB: password login as cdm_test over TCP failed"; return 1; }
}

# ------------------------------------------------------------- PgBouncer

b_write_conf() {
    cat >"$BINI" <<EOF
[databases]
cdm_test = host=$PGDIR port=$CDM_TEST_PG_PORT dbname=cdm_test

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $CDM_TEST_PGBOUNCER_PORT
unix_socket_dir = $BDIR
pool_mode = transaction
auth_type = scram-sha-256
auth_file = $BDIR/userlist.txt
logfile = $BLOG
pidfile = $BPID
max_client_conn = 500
default_pool_size = 20
; while PostgreSQL is down: retry it every second (default 15 s), and
; fail a waiting query after 5 s (default 120 s)
server_login_retry = 1
query_wait_timeout = 5
ignore_startup_parameters = extra_float_digits
EOF
    own "$pg_user" "$BINI"
}

b_setup() {
    mkdir -p "$BDIR" && chmod 700 "$BDIR" && own "$pg_user" "$BDIR" || return 1
    (umask 077 && printf '"cdm_test" "%s"\n' "$CDM_TEST_PG_PASSWORD" >"$BDIR/userlist.txt") &&
        own "$pg_user" "$BDIR/userlist.txt" || return 1
    logs="$BLOG $BDIR/start.err"
    n=0
    while :; do
        pick_port
        CDM_TEST_PGBOUNCER_PORT=$port
        b_write_conf
        rm -f "$BLOG"
        if as_pg pgbouncer -d -q "$BINI" </dev/null >>"$BDIR/start.err" 2>&1 3>&- 9>&-; then
            i=0
            while [ "$i" -lt 200 ]; do
                # Without its TCP port it keeps running on the socket alone.
                grep -q "cannot listen" "$BLOG" 2>/dev/null && break
                pg_login "$port" && break 2
                sleep 0.05
                i=$((i + 1))
            done
        fi
        n=$((n + 1))
        grep -q "cannot listen.*Address already in use" "$BLOG" 2>/dev/null &&
            [ "$n" -lt 5 ] || { say "PgBouncer: password login through it failed"; return 1; }
        kill_ours "$BPID"
    done
    # That login left PgBouncer a server connection: close it, so the tests
    # start with no session of cdm_test on the server.
    i=0
    until [ "$(pg_admin postgres -c "SET client_min_messages = error;
            SELECT count(CASE WHEN usename = 'cdm_test'
                              THEN pg_terminate_backend(pid) END)
            FROM pg_stat_activity")" = 0 ]; do
        [ "$i" -ge 100 ] && { say "PostgreSQL: cdm_test sessions remain"; return 1; }
        sleep 0.05
        i=$((i + 1))
    done
}

# -------------------------------------------------------------- commands

cmd_stop() {
    S=${1:-${CDM_SERVERS_DIR:-}}
    [ -n "$S" ] || die "stop: no state directory (give one or set CDM_SERVERS_DIR)"
    case $S in /*) ;; *) S=$here/$S ;; esac
    [ -d "$S" ] || return 0
    [ -f "$S/.cdm-servers" ] || die "stop: $S is not a servers.sh state directory"
    S=$(cd "$S" && pwd -P) || return 1
    paths
    ok=0
    kill_ours "$BPID" || ok=1
    if [ -n "${pgbin:-}" ]; then pg_stop || ok=1; fi
    my_stop || ok=1
    [ "$ok" = 0 ] || die "stop: something in $S would not stop; left it there"
    # (A setup tool of an interrupted start may still be writing there.)
    rm -rf "$S" 2>/dev/null || { sleep 0.5; rm -rf "$S"; }
}

start_abort() {
    trap - EXIT
    say "start failed or was interrupted; stopping what it started"
    [ -n "${S:-}" ] && [ -d "$S" ] || exit 1
    # shellcheck disable=SC2086
    tails $logs
    cmd_stop "$S" >&2
    exit 1
}

cmd_start() {
    # Only STATE goes to the real stdout (fd 3); anything else to stderr.
    exec 3>&1 >&2
    ensure_packages
    find_tools
    parent=${TMPDIR:-/tmp}
    S=""
    logs=""
    trap start_abort EXIT
    trap 'exit 1' HUP INT TERM
    # The servers' users must reach it, socket paths must stay short and
    # every path is used unquoted inside config files: else use /tmp.
    bad=1
    if S=$(mktemp -d "$parent/cdm-servers.XXXXXXXX" 2>/dev/null); then
        case $S in *[!A-Za-z0-9_./-]*) ;; *) [ "${#S}" -gt 60 ] || bad=0 ;; esac
        chmod 711 "$S" && touch "$S/.cdm-servers" || bad=1
        if [ "$is_root" = 1 ] && [ "$bad" = 0 ]; then
            runuser -u "$pg_user" -- test -x "$S" &&
                runuser -u "$my_user" -- test -x "$S" || bad=1
        fi
        [ "$bad" = 0 ] || rm -rf "$S"
    fi
    if [ "$bad" = 1 ]; then
        S=$(mktemp -d /tmp/cdm-servers.XXXXXXXX) || die "mktemp failed"
        chmod 711 "$S" && touch "$S/.cdm-servers" || die "cannot use $S"
    fi
    S=$(cd "$S" && pwd -P)
    # Temporary files of every tool it runs stay inside, reachable by all.
    mkdir "$S/tmp" && chmod 1777 "$S/tmp" || die "cannot use $S"
    TMPDIR=$S/tmp
    export TMPDIR
    paths
    CDM_TEST_PG_PASSWORD=$(gen_password)
    CDM_TEST_MYSQL_PASSWORD=$(gen_password)

    pg_setup || die "PostgreSQL did not start"
    my_setup || die "MariaDB did not start"
    b_setup || die "PgBouncer did not start"

    (
        umask 077
        env_line CDM_SERVERS_DIR "$S"
        env_line CDM_SERVERS_SCRIPT "$script"
        env_line CDM_TEST_PG_HOST 127.0.0.1
        env_line CDM_TEST_PG_PORT "$CDM_TEST_PG_PORT"
        env_line CDM_TEST_PG_USER cdm_test
        env_line CDM_TEST_PG_PASSWORD "$CDM_TEST_PG_PASSWORD"
        env_line CDM_TEST_PG_DB cdm_test
        env_line CDM_TEST_MYSQL_HOST 127.0.0.1
        env_line CDM_TEST_MYSQL_PORT "$CDM_TEST_MYSQL_PORT"
        env_line CDM_TEST_MYSQL_USER cdm_test
        env_line CDM_TEST_MYSQL_PASSWORD "$CDM_TEST_MYSQL_PASSWORD"
        env_line CDM_TEST_MYSQL_DB cdm_test
        env_line CDM_TEST_PGBOUNCER_PORT "$CDM_TEST_PGBOUNCER_PORT"
    ) >"$S/env" && chmod 600 "$S/env" || die "cannot write $S/env"
    trap - EXIT HUP INT TERM
    echo "$S" >&3
    [ -t 2 ] && say "started; now run: . $S/env"
    exit 0
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
start)
    [ $# -eq 0 ] || die "usage: servers.sh start"
    cmd_start ;;
stop)
    [ $# -le 1 ] || die "usage: servers.sh stop [STATE]"
    pgbin=""
    # shellcheck disable=SC2012
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
        [ -x "$d/pg_ctl" ] && pgbin=$d
    done
    cmd_stop "${1:-}" ;;
restart-pg | stop-pg | start-pg | psql)
    find_tools
    load_state
    case $cmd in restart-pg | stop-pg | start-pg) lock pg ;; esac
    case $cmd in
    restart-pg) pg_stop && pg_start || { tails "$PGLOG" "$PGDIR/pg_ctl.err"; die "$cmd failed"; } ;;
    stop-pg) pg_stop || { tails "$PGLOG" "$PGDIR/pg_ctl.err"; die "$cmd failed"; } ;;
    start-pg) pg_start || { tails "$PGLOG" "$PGDIR/pg_ctl.err"; die "$cmd failed"; } ;;
    psql)
        n=$#
        for a; do set -- "$@" -c "$a"; done
        shift "$n"
        pg_admin cdm_test "$@" ;;
    esac ;;
restart-mysql | stop-mysql | start-mysql | mysql)
    find_tools
    load_state
    case $cmd in restart-mysql | stop-mysql | start-mysql) lock mysql ;; esac
    case $cmd in
    restart-mysql) my_stop && my_start || { tails "$MYLOG" "$MYOUT"; die "$cmd failed"; } ;;
    stop-mysql) my_stop || { tails "$MYLOG" "$MYOUT"; die "$cmd failed"; } ;;
    start-mysql) my_start || { tails "$MYLOG" "$MYOUT"; die "$cmd failed"; } ;;
    mysql)
        if [ $# -eq 0 ]; then
            my_admin cdm_test
        else
            printf '%s;\n' "$@" | my_admin cdm_test
        fi ;;
    esac ;;
*)
    sed -n '2,/^set -u/{/^# shellcheck/d;/^#/s/^# \{0,1\}//p}' "$script" >&2
    exit 2 ;;
esac
