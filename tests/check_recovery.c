/*
 * check_recovery.c - failure recovery of pooled connections on real
 * servers (PostgreSQL and MariaDB from tests/servers.sh): a connection
 * killed while idle (borrowed again once the server shows it gone, and at
 * once while the session is still on its way out), a connection killed in
 * the middle of a query, a server restarted under a multi-threaded load,
 * idle connections that outlived a restart, and a server that is down at
 * the first connect.
 *
 * Every scenario is written once and run for both drivers (Check loop
 * tests: even _i is PostgreSQL, odd _i is MariaDB).  The server is
 * stopped, killed into and counted through tests/servers.sh as its admin.
 *
 * Tests stop servers, so every test case makes sure both are running
 * again, whatever happened: a checked setup and teardown (run in the
 * test's process; in fork mode a failing test skips its teardown, so the
 * next test's setup covers it) and an unchecked teardown (run in the
 * runner's own process once the case is over, also after a failure or a
 * timeout of its last test).
 *
 * Time limits below are multiplied by CK_TIMEOUT_MULTIPLIER (as Check does
 * with its timeouts), so that a run under valgrind can be given room.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "config.h"
#include <poll.h>
#if HAVE_POSTGRESQL
#include <libpq-fe.h>
#endif
#if HAVE_MYSQL
#include <mysql.h>
#endif

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ drivers */

struct drv {
    const char *label;       /* as the library names it */
    const char *driver_id;   /* DriverID= */
    const char *admin;       /* servers.sh command running admin SQL */
    const char *stop, *start;
    const char *id_sql;      /* the session's server-side id */
    const char *sleep_sql;   /* a query that runs for 5 s */
    const char *count_fmt;   /* %s user: how many sessions it has */
    bool probe_counted;      /* count_fmt also counts the login that
                              * servers.sh start-* makes as the user */
    const char *exists_fmt;  /* %ld id: 1 while that session exists */
    const char *active_fmt;  /* %ld id: 1 while it runs a statement */
    const char *kill_fmt;    /* %ld id: ends that session */
    struct tu_server srv;
};

static struct drv drivers[2] = {
    {
        .label = "PG",
        .driver_id = "PG",
        .admin = "psql",
        .stop = "stop-pg",
        .start = "start-pg",
        .id_sql = "SELECT pg_backend_pid()",
        .sleep_sql = "SELECT pg_sleep(5)",
        /* Not servers.sh's own check that logins work (psql, as the
         * test user) while start-pg runs. */
        .count_fmt = "SELECT count(*) FROM pg_stat_activity WHERE usename='%s' "
                     "AND application_name<>'psql'",
        .exists_fmt = "SELECT count(*) FROM pg_stat_activity WHERE pid=%ld",
        .active_fmt = "SELECT count(*) FROM pg_stat_activity WHERE pid=%ld "
                      "AND state='active'",
        .kill_fmt = "SELECT pg_terminate_backend(%ld)",
    },
    {
        .label = "MySQL",
        .driver_id = "MySQL",
        .admin = "mysql",
        .stop = "stop-mysql",
        .start = "start-mysql",
        .id_sql = "SELECT CONNECTION_ID()",
        .sleep_sql = "SELECT SLEEP(5)",
        .count_fmt = "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                     "WHERE USER='%s'",
        .probe_counted = true,
        .exists_fmt = "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                      "WHERE ID=%ld",
        .active_fmt = "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                      "WHERE ID=%ld AND COMMAND='Query'",
        .kill_fmt = "KILL %ld",
    },
};

#define DRV(i) (&drivers[(i) % 2])

/* ------------------------------------------------------------ helpers */

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double ms_between(int64_t from, int64_t to)
{
    return (double)(to - from) / 1e6;
}

/* Runs a tests/servers.sh command whose output does not matter; false if
 * it failed.  (" && echo ok": tu_servers returns an uninitialised buffer
 * for a command that prints nothing.) */
static bool servers_run(const char *fmt, ...)
{
    char args[1200];
    va_list ap;
    char *out;

    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    out = tu_servers("%s && echo ok", args);
    free(out);
    return out != NULL;
}

/* Runs SQL as the server's admin; the output (free it), NULL on failure. */
static char *admin_sql(const struct drv *d, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    /* While the server is down these fail: quietly. */
    return tu_servers("%s \"%s\" 2>/dev/null", d->admin, sql);
}

/* The single number an admin query prints; -1 if it failed. */
static long admin_num(const struct drv *d, const char *fmt, long arg)
{
    char *out = admin_sql(d, fmt, arg);
    long n = -1;

    if (out && *out)
        n = strtol(out, NULL, 10);
    free(out);
    return n;
}

/* Sessions of the test user on the server; -1 if the server is down. */
static long server_sessions(const struct drv *d)
{
    char *out = admin_sql(d, d->count_fmt, d->srv.user);
    long n = -1;

    if (out && *out)
        n = strtol(out, NULL, 10);
    free(out);
    return n;
}

/* Waits up to `ms` for admin query `fmt` (with `id`) to print `want`. */
static bool wait_num(const struct drv *d, const char *fmt, long id, long want,
                     double ms)
{
    int64_t end = now_ns() + (int64_t)(ms * 1e6);

    for (;;) {
        if (admin_num(d, fmt, id) == want)
            return true;
        if (now_ns() > end)
            return false;
        tu_sleep_ms(10);
    }
}

/* Waits up to `ms` for the test user's sessions to number `want`. */
static bool wait_sessions(const struct drv *d, long want, double ms, long *last)
{
    int64_t end = now_ns() + (int64_t)(ms * 1e6);

    for (;;) {
        if ((*last = server_sessions(d)) == want)
            return true;
        if (now_ns() > end)
            return false;
        tu_sleep_ms(10);
    }
}

/* Runs a servers.sh command that must succeed. */
static void servers_cmd(const char *cmd)
{
    ck_assert_msg(servers_run("%s", cmd), "tests/servers.sh %s failed (is "
                  "CDM_SERVERS_SCRIPT set? see the server's log in "
                  "$CDM_SERVERS_DIR)", cmd);
}

/* Kills a session as the admin. */
static void admin_kill(const struct drv *d, long id)
{
    char sql[128];

    snprintf(sql, sizeof sql, d->kill_fmt, id);
    ck_assert_msg(servers_run("%s \"%s\"", d->admin, sql), "%s: '%s' failed",
                  d->label, sql);
}

/* Both servers up again (a no-op for one that runs). */
static void servers_up(void)
{
    servers_run("start-pg");
    servers_run("start-mysql");
}

/* A manager with definition "R" on the driver's server: pooled, with the
 * extra "Key=Value" strings (NULL-terminated). */
static cdm_manager *new_manager(const struct drv *d, const char *const *extra)
{
    const char *p[32];
    cdm_manager *m;
    size_t n = 0;

    p[n++] = "Pooled=True";
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        p[n++] = extra[i];
    p[n] = NULL;
    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_status(tu_server_def(m, "R", d->driver_id, &d->srv, p), CDM_OK);
    return m;
}

/* The connection's socket, to see the server's last words arrive. */
static int conn_socket(const struct drv *d, cdm_conn *c)
{
#if HAVE_POSTGRESQL
    if (strcmp(d->driver_id, "PG") == 0)
        return PQsocket(cdm_conn_handle(c));
#endif
#if HAVE_MYSQL
    if (strcmp(d->driver_id, "MySQL") == 0)
        return (int)mysql_get_socket(cdm_conn_handle(c));
#endif
    return -1;
}

/* Waits, at most `ms`, for something to read on `fd`. */
static bool wait_readable(int fd, double ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return fd >= 0 && poll(&p, 1, (int)ms) == 1;
}

/* The connection's server-side session id. */
static long backend_id(const struct drv *d, cdm_conn *c)
{
    cdm_result *r;
    const char *v;
    long id;

    ck_status(cdm_query(c, d->id_sql, NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    v = cdm_result_value(r, 0, 0);
    ck_assert_ptr_nonnull(v);
    id = strtol(v, NULL, 10);
    cdm_result_free(r);
    ck_assert_int_gt(id, 0);
    return id;
}

/* SELECT 1 works on `c` and says 1. */
static void select_one(cdm_conn *c)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT 1", NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "1");
    cdm_result_free(r);
}

static cdm_pool_stats stats(cdm_manager *m)
{
    cdm_pool_stats s;

    ck_status(cdm_manager_pool_stats(m, "R", &s), CDM_OK);
    return s;
}

/* A message is clear: it names the definition, and it has no password. */
static void check_message(const struct drv *d, const char *msg)
{
    ck_assert_msg(strstr(msg, "definition 'R'") != NULL,
                  "%s: message does not name the definition: '%s'", d->label, msg);
    ck_assert_msg(strstr(msg, d->srv.password) == NULL,
                  "%s: message contains the password: '%s'", d->label, msg);
}

static void fixture_up(void)
{
    servers_up();
}

/* ----------------------------------------------- 1. killed while idle */

/* _i: driver = _i % 2; POOL_PingInterval = default (30 s: no ping within
 * this test, the local check decides), 0 (ping on every borrow), -1 (never
 * ping: only the local check). */
static const char *const ping_variant[] = { NULL, "POOL_PingInterval=0",
                                            "POOL_PingInterval=-1" };

START_TEST(test_idle_killed_is_replaced)
{
    const struct drv *d = DRV(_i);
    const char *extra[] = { "POOL_MaximumItems=4", "LoginTimeout=5",
                            ping_variant[_i / 2], NULL };
    cdm_manager *m = new_manager(d, extra);
    cdm_pool_stats before, after;
    cdm_conn *c;
    long id1, id2;

    ck_status(cdm_connect(m, "R", &c), CDM_OK);
    id1 = backend_id(d, c);
    cdm_disconnect(c);
    before = stats(m);
    ck_assert_int_eq(before.idle, 1);

    admin_kill(d, id1);
    ck_assert_msg(wait_num(d, d->exists_fmt, id1, 0, tu_limit_ms(5000)),
                  "%s: session %ld still there after the kill", d->label, id1);

    /* Replaced with no error to the caller. */
    ck_status(cdm_connect(m, "R", &c), CDM_OK);
    id2 = backend_id(d, c);
    ck_assert_msg(id2 != id1, "%s: got the killed session %ld back", d->label, id1);
    select_one(c);
    after = stats(m);
    ck_assert_int_eq(after.destroyed, before.destroyed + 1);
    ck_assert_int_eq(after.created, before.created + 1);
    ck_assert_int_eq(after.total, 1);
    ck_assert_int_eq(after.in_use, 1);
    cdm_disconnect(c);
    ck_status(cdm_manager_close(m, 2000), CDM_OK);
    cdm_manager_free(m);
}
END_TEST

/* Nobody borrows: the cleanup thread sees the server hang up on the idle
 * connection (its socket watcher) and closes it by itself, so the pool's
 * figures tell the truth and no socket lingers half closed. */
START_TEST(test_idle_killed_retired_by_watcher)
{
    const struct drv *d = DRV(_i);
    const char *extra[] = { "POOL_MaximumItems=4", "LoginTimeout=5",
                            "POOL_CleanupTimeout=3600000", NULL };
    cdm_manager *m = new_manager(d, extra);
    cdm_pool_stats s;
    cdm_conn *c;
    long id1;
    int64_t end;

    ck_status(cdm_connect(m, "R", &c), CDM_OK);
    id1 = backend_id(d, c);
    cdm_disconnect(c);
    s = stats(m);
    ck_assert_int_eq(s.idle, 1);
    ck_assert_int_eq(s.destroyed, 0);

    admin_kill(d, id1);
    end = now_ns() + (int64_t)(tu_limit_ms(10000) * 1e6);
    do {
        s = stats(m);
        if (s.destroyed == 1)
            break;
        tu_sleep_ms(5);
    } while (now_ns() < end);
    ck_assert_msg(s.destroyed == 1 && s.total == 0, "%s: the killed idle "
                  "connection is still in the pool (total %lld, destroyed %lld)",
                  d->label, (long long)s.total, (long long)s.destroyed);
    ck_status(cdm_connect(m, "R", &c), CDM_OK);
    select_one(c);
    cdm_disconnect(c);
    ck_status(cdm_manager_close(m, 2000), CDM_OK);
    cdm_manager_free(m);
}
END_TEST

/* The same, borrowing again at once instead of waiting until the server
 * shows the session gone.  Many temporary tables make the session's exit
 * slow: PostgreSQL sends its FATAL message at once, then drops them, and
 * closes the socket only at the very end.  A borrow in between must not
 * get the doomed connection. */
#define TEMP_TABLES 3000

START_TEST(test_idle_killed_borrowed_at_once)
{
    const struct drv *d = DRV(_i);
    const char *extra[] = { "POOL_MaximumItems=4", "LoginTimeout=5",
                            ping_variant[_i / 2], NULL };
    cdm_manager *m = new_manager(d, extra);
    cdm_pool_stats before, after;
    cdm_conn *c;
    cdm_result *r;
    long id1, id2, present;
    double after_ms;
    int rc, fd;
    int64_t t0;

    ck_status(cdm_connect(m, "R", &c), CDM_OK);
    id1 = backend_id(d, c);
    t0 = now_ns();
    if (_i % 2 == 0) {
        char sql[200];
        snprintf(sql, sizeof sql, "DO $$BEGIN FOR i IN 1..%d LOOP EXECUTE "
                 "'CREATE TEMP TABLE t' || i || ' (x int)'; END LOOP; END$$",
                 TEMP_TABLES);
        ck_status(cdm_exec(c, sql, NULL, 0, NULL), CDM_OK);
    } else {
        char *sql = malloc(TEMP_TABLES * 48), *p = sql;
        ck_assert_ptr_nonnull(sql);
        for (int i = 1; i <= TEMP_TABLES; i++)
            p += sprintf(p, "CREATE TEMPORARY TABLE t%d (x int);", i);
        ck_status(cdm_exec(c, sql, NULL, 0, NULL), CDM_OK);
        free(sql);
    }
    printf("%s: temp tables made in %.0f ms\n", d->label, ms_between(t0, now_ns()));
    fd = conn_socket(d, c);
    cdm_disconnect(c);
    before = stats(m);

    admin_kill(d, id1);
    t0 = now_ns();
    /* The server's last words (or its hang-up) have reached the idle
     * connection's socket. */
    ck_assert_msg(wait_readable(fd, tu_limit_ms(5000)), "%s: nothing arrived "
                  "on the killed session's socket", d->label);
    rc = cdm_connect(m, "R", &c);
    after_ms = ms_between(t0, now_ns());
    present = admin_num(d, d->exists_fmt, id1);
    printf("%s: borrowed %.0f ms after the kill (session %s on the server "
           "after it): %s\n", d->label, after_ms,
           present == 1 ? "still" : "no longer", cdm_strerror(rc));
    ck_status(rc, CDM_OK);
    rc = cdm_query(c, "SELECT 1", NULL, 0, &r);
    cdm_result_free(rc == CDM_OK ? r : NULL);
    ck_assert_msg(rc == CDM_OK, "%s: the first query on a connection borrowed "
                  "after its session was killed failed: %s: %s", d->label,
                  cdm_strerror(rc), cdm_errmsg());
    id2 = backend_id(d, c);
    ck_assert_msg(id2 != id1, "%s: got the killed session %ld back", d->label, id1);
    after = stats(m);
    ck_assert_int_eq(after.destroyed, before.destroyed + 1);
    cdm_disconnect(c);
    ck_status(cdm_manager_close(m, 2000), CDM_OK);
    cdm_manager_free(m);
}
END_TEST

/* ------------------------------------------- 2. killed during a query */

struct sleeper {
    cdm_conn *c;
    const char *sql;
    int rc;
    double ms;
    char msg[1024];
};

static void *sleeper_run(void *arg)
{
    struct sleeper *s = arg;
    cdm_result *r = NULL;
    int64_t t0 = now_ns();

    s->rc = cdm_query(s->c, s->sql, NULL, 0, &r);
    s->ms = ms_between(t0, now_ns());
    snprintf(s->msg, sizeof s->msg, "%s", s->rc == CDM_OK ? "" : cdm_errmsg());
    cdm_result_free(r);
    return NULL;
}

START_TEST(test_killed_mid_query_is_broken)
{
    const struct drv *d = DRV(_i);
    const char *extra[] = { "POOL_MaximumItems=4", "LoginTimeout=5", NULL };
    cdm_manager *m = new_manager(d, extra);
    struct sleeper s = { .sql = d->sleep_sql, .rc = -1 };
    cdm_pool_stats before, after;
    pthread_t th;
    cdm_conn *c;
    long id1, id2, n;
    bool active, killed;
    char kill_sql[128];

    ck_status(cdm_connect(m, "R", &c), CDM_OK);
    id1 = backend_id(d, c);
    before = stats(m);
    s.c = c;
    ck_assert_int_eq(pthread_create(&th, NULL, sleeper_run, &s), 0);
    active = wait_num(d, d->active_fmt, id1, 1, tu_limit_ms(4000));
    snprintf(kill_sql, sizeof kill_sql, d->kill_fmt, id1);
    killed = servers_run("%s \"%s\"", d->admin, kill_sql);
    pthread_join(th, NULL);
    ck_assert_msg(killed, "%s: '%s' failed", d->label, kill_sql);
    ck_assert_msg(active, "%s: session %ld never showed as running the query",
                  d->label, id1);

    printf("%s mid-query kill: %s after %.0f ms: %s\n", d->label,
           cdm_strerror(s.rc), s.ms, s.msg);
    ck_assert_msg(s.rc == CDM_ERR_BROKEN, "%s: a query on a killed session "
                  "returned %s (%d), want CDM_ERR_BROKEN: %s", d->label,
                  cdm_strerror(s.rc), s.rc, s.msg);
    ck_assert_msg(s.ms < tu_limit_ms(4000), "%s: the query took %.0f ms", d->label, s.ms);
    check_message(d, s.msg);
    ck_assert_msg(strstr(s.msg, "connection lost") != NULL,
                  "%s: message does not say the connection was lost: '%s'",
                  d->label, s.msg);

    /* Broken: destroyed when returned, never pooled again. */
    cdm_disconnect(c);
    after = stats(m);
    ck_assert_int_eq(after.destroyed, before.destroyed + 1);
    ck_assert_int_eq(after.total, 0);
    ck_assert_int_eq(after.idle, 0);
    ck_assert_int_eq(after.in_use, 0);

    ck_status(cdm_connect(m, "R", &c), CDM_OK);
    id2 = backend_id(d, c);
    ck_assert_msg(id2 != id1, "%s: got the killed session %ld back", d->label, id1);
    select_one(c);
    after = stats(m);
    ck_assert_int_eq(after.created, before.created + 1);
    ck_assert_int_eq(after.total, 1);
    cdm_disconnect(c);
    ck_status(cdm_manager_close(m, 2000), CDM_OK);
    cdm_manager_free(m);
    ck_assert_msg(wait_sessions(d, 0, tu_limit_ms(2000), &n),
                  "%s: %ld sessions left after close", d->label, n);
}
END_TEST

/* ------------------------------------------- 3. restart under a load */

#define WORKERS 8
#define POOL_MAX 4
#define SAMPLE_MSGS 6
#define SAMPLE_KEY 120    /* messages that differ in so many bytes */

struct load {
    const struct drv *d;
    cdm_manager *m;
    atomic_bool stop;
    _Atomic int64_t stop_ns;      /* the server began to stop (0: not yet) */
    _Atomic int64_t started_ns;   /* it accepts logins again (0: not yet) */
    atomic_int threads_ok;        /* threads that have had a success */
    atomic_int threads_back;      /* ... and one after the restart */
};

struct worker {
    struct load *L;
    pthread_t th;
    int64_t nok, nerr;
    int64_t ok_before_stop;
    int64_t first_ok_after;       /* first success ended after the restart */
    int64_t by_code[CDM_ERR_INSECURE + 2];
    int64_t err_first_end, err_last_end, err_last_start;
    int64_t err_before_stop;      /* errors that ended before the stop */
    int64_t bad_value;            /* SELECT 1 said something else */
    int64_t leaky, unclear;       /* messages with a password, or unclear */
    char leaky_msg[512], unclear_msg[512];
    int nsample;                  /* distinct messages, first seen */
    int sample_code[SAMPLE_MSGS];
    char sample[SAMPLE_MSGS][512];
};

/* connect / SELECT 1 / disconnect until told to stop; records every
 * outcome (asserts are for the test's own thread). */
static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct load *L = w->L;
    const char *pw = L->d->srv.password;

    while (!atomic_load(&L->stop)) {
        int64_t t0 = now_ns(), t1, stop, started;
        char msg[1024] = "";
        cdm_result *r = NULL;
        cdm_conn *c;
        int rc = cdm_connect(L->m, "R", &c);

        if (rc == CDM_OK) {
            rc = cdm_query(c, "SELECT 1", NULL, 0, &r);
            if (rc == CDM_OK) {
                if (cdm_result_nrows(r) != 1 || !cdm_result_value(r, 0, 0) ||
                    strcmp(cdm_result_value(r, 0, 0), "1") != 0)
                    w->bad_value++;
                cdm_result_free(r);
            } else {
                snprintf(msg, sizeof msg, "%s", cdm_errmsg());
            }
            cdm_disconnect(c);
        } else {
            snprintf(msg, sizeof msg, "%s", cdm_errmsg());
        }
        t1 = now_ns();
        stop = atomic_load(&L->stop_ns);
        started = atomic_load(&L->started_ns);
        if (rc == CDM_OK) {
            if (!w->nok++)
                atomic_fetch_add(&L->threads_ok, 1);
            if (!stop || t1 < stop)
                w->ok_before_stop++;
            if (started && t1 > started && !w->first_ok_after) {
                w->first_ok_after = t1;
                atomic_fetch_add(&L->threads_back, 1);
            }
            continue;
        }
        w->nerr++;
        w->by_code[rc >= 0 && rc <= CDM_ERR_INSECURE ? rc : CDM_ERR_INSECURE + 1]++;
        w->err_last_end = t1;
        w->err_last_start = t0;
        if (!stop || t1 < stop)
            w->err_before_stop++;
        if (strstr(msg, pw) && !w->leaky++)
            snprintf(w->leaky_msg, sizeof w->leaky_msg, "%s", msg);
        if (!strstr(msg, "definition 'R'") && !w->unclear++)
            snprintf(w->unclear_msg, sizeof w->unclear_msg, "%s", msg);
        if (!w->err_first_end)
            w->err_first_end = t1;
        if (w->nsample < SAMPLE_MSGS) {
            bool seen = false;
            for (int i = 0; i < w->nsample; i++)
                seen |= strncmp(w->sample[i], msg, SAMPLE_KEY) == 0;
            if (!seen) {
                w->sample_code[w->nsample] = rc;
                snprintf(w->sample[w->nsample++], sizeof w->sample[0], "%s", msg);
            }
        }
    }
    return NULL;
}

/* Counts the user's sessions on the server all along.  Where count_fmt
 * cannot tell servers.sh's own login check (MariaDB) from the pool's
 * sessions, samples taken while start-* runs (and 100 ms after) are kept
 * apart. */
struct sampler {
    const struct drv *d;
    atomic_bool stop;
    _Atomic int64_t probe_from, probe_to;
    pthread_t th;
    long max, nsamples, ndown;
    long max_probe, nprobe;       /* samples kept apart */
};

static void *sampler_run(void *arg)
{
    struct sampler *s = arg;

    while (!atomic_load(&s->stop)) {
        int64_t t0 = now_ns();
        long n = server_sessions(s->d);
        int64_t t1 = now_ns();
        if (n < 0) {
            s->ndown++;
        } else if (s->d->probe_counted && t1 >= atomic_load(&s->probe_from) &&
                   t0 <= atomic_load(&s->probe_to)) {
            s->nprobe++;
            if (n > s->max_probe)
                s->max_probe = n;
        } else {
            s->nsamples++;
            if (n > s->max)
                s->max = n;
        }
        tu_sleep_ms(20);
    }
    return NULL;
}

START_TEST(test_restart_under_load)
{
    const struct drv *d = DRV(_i);
    /* Limits that make a failure quick, stretched for slow runs (valgrind
     * serialises the threads: a SCRAM login alone can take seconds). */
    char acquire[64], login[64];
    const char *extra[] = { "POOL_MaximumItems=4", acquire, login, NULL };
    cdm_manager *m;

    snprintf(acquire, sizeof acquire, "POOL_AcquireTimeout=%.0f", tu_limit_ms(2000));
    snprintf(login, sizeof login, "LoginTimeout=%.0f", tu_limit_ms(2000) / 1000);
    m = new_manager(d, extra);
    static struct worker w[WORKERS];
    struct load L = { .d = d, .m = m };
    struct sampler smp = { .d = d };
    int64_t t_begin, t_stop, t_stopped, t_started, t_all = 0, t_end, err_first = 0, err_last = 0;
    int64_t codes[CDM_ERR_INSECURE + 2] = { 0 }, nerr = 0, nok = 0;
    cdm_pool_stats st;
    char sample[4096] = "";
    bool stop_ok, start_ok;
    long n;

    memset(w, 0, sizeof w);
    atomic_init(&L.stop, false);
    atomic_init(&L.stop_ns, 0);
    atomic_init(&L.started_ns, 0);
    atomic_init(&L.threads_ok, 0);
    atomic_init(&L.threads_back, 0);
    atomic_init(&smp.stop, false);
    atomic_init(&smp.probe_from, INT64_MAX);
    atomic_init(&smp.probe_to, INT64_MAX);
    ck_assert_int_eq(pthread_create(&smp.th, NULL, sampler_run, &smp), 0);
    t_begin = now_ns();
    for (int i = 0; i < WORKERS; i++) {
        w[i].L = &L;
        ck_assert_int_eq(pthread_create(&w[i].th, NULL, worker_run, &w[i]), 0);
    }

    /* No assert until the threads are joined (CK_FORK=no longjmps).  About
     * 1 s of load, and every thread has had its turn (valgrind is slow). */
    tu_sleep_ms(1000);
    for (int64_t end = now_ns() + (int64_t)(tu_limit_ms(5000) * 1e6);
         atomic_load(&L.threads_ok) < WORKERS && now_ns() < end;)
        tu_sleep_ms(10);
    t_stop = now_ns();
    atomic_store(&L.stop_ns, t_stop);
    stop_ok = servers_run("%s", d->stop);
    t_stopped = now_ns();
    tu_sleep_ms(1500);
    atomic_store(&smp.probe_from, now_ns());
    start_ok = servers_run("%s", d->start);
    t_started = now_ns();   /* the server accepts logins again */
    atomic_store(&smp.probe_to, t_started + 100000000);
    atomic_store(&L.started_ns, t_started);
    /* At least 3 s of load after the restart, and until every thread has
     * had a success since (bounded: the asserts below say who had not). */
    tu_sleep_ms(3000);
    for (int64_t end = now_ns() + (int64_t)(tu_limit_ms(10000) * 1e6);
         atomic_load(&L.threads_back) < WORKERS && now_ns() < end;)
        tu_sleep_ms(10);
    atomic_store(&L.stop, true);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(w[i].th, NULL);
    t_end = now_ns();
    atomic_store(&smp.stop, true);
    pthread_join(smp.th, NULL);

    ck_assert_msg(stop_ok, "tests/servers.sh %s failed", d->stop);
    ck_assert_msg(start_ok, "tests/servers.sh %s failed", d->start);
    st = stats(m);
    ck_assert_int_eq(st.in_use, 0);
    ck_assert_int_eq(st.opening, 0);
    ck_assert_int_eq(st.waiting, 0);
    ck_assert_int_le(st.total, POOL_MAX);

    /* ---- what happened */
    for (int i = 0; i < WORKERS; i++) {
        nerr += w[i].nerr;
        nok += w[i].nok;
        for (int k = 0; k < CDM_ERR_INSECURE + 2; k++)
            codes[k] += w[i].by_code[k];
        if (w[i].err_first_end && (!err_first || w[i].err_first_end < err_first))
            err_first = w[i].err_first_end;
        if (w[i].err_last_end > err_last)
            err_last = w[i].err_last_end;
        for (int k = 0; k < w[i].nsample; k++) {
            char key[SAMPLE_KEY + 1];
            snprintf(key, sizeof key, "%s", w[i].sample[k]);
            if (!strstr(sample, key) && strlen(sample) < sizeof sample - 600) {
                size_t len = strlen(sample);
                snprintf(sample + len, sizeof sample - len, "\n    %s: %s",
                         cdm_strerror(w[i].sample_code[k]), w[i].sample[k]);
            }
        }
    }
    printf("%s restart under load: stop took %.0f ms, down %.0f ms, load %.0f ms; "
           "%lld ok, %lld errors (CONNECT %lld, BROKEN %lld, POOL_FULL %lld, "
           "other %lld); server sessions peak %ld in %ld samples (%ld while down)",
           d->label, ms_between(t_stop, t_stopped), ms_between(t_stop, t_started),
           ms_between(t_begin, t_end), (long long)nok, (long long)nerr,
           (long long)codes[CDM_ERR_CONNECT], (long long)codes[CDM_ERR_BROKEN],
           (long long)codes[CDM_ERR_POOL_FULL],
           (long long)(nerr - codes[CDM_ERR_CONNECT] - codes[CDM_ERR_BROKEN] -
                       codes[CDM_ERR_POOL_FULL]),
           smp.max, smp.nsamples, smp.ndown);
    if (d->probe_counted)
        printf(" (%ld samples during %s kept apart, peak %ld)", smp.nprobe,
               d->start, smp.max_probe);
    printf("%s\n", sample);
    if (nerr)
        printf("%s errors ended from %.0f ms after the stop began to %.0f ms "
               "after the start returned\n", d->label, ms_between(t_stop, err_first),
               ms_between(t_started, err_last));

    /* Every thread worked before the stop, and recovered after the start. */
    for (int i = 0; i < WORKERS; i++) {
        ck_assert_msg(w[i].ok_before_stop > 0, "%s: thread %d had no success "
                      "before the stop", d->label, i);
        ck_assert_int_eq(w[i].bad_value, 0);
        ck_assert_msg(w[i].leaky == 0, "%s: a message holds the password: '%s'",
                      d->label, w[i].leaky_msg);
        ck_assert_msg(w[i].unclear == 0, "%s: a message does not name the "
                      "definition: '%s'", d->label, w[i].unclear_msg);
        ck_assert_msg(w[i].err_before_stop == 0, "%s: thread %d had %lld errors "
                      "before the server stopped", d->label, i,
                      (long long)w[i].err_before_stop);
        /* Errors only while the server was down: no failing call began
         * after it accepted logins again. */
        ck_assert_msg(w[i].err_last_start <= t_started, "%s: thread %d: a call "
                      "begun %.0f ms after the restart failed", d->label, i,
                      ms_between(t_started, w[i].err_last_start));
        /* Its first success after the restart, and no failure after it. */
        ck_assert_msg(w[i].first_ok_after > 0, "%s: thread %d never "
                      "succeeded after the restart", d->label, i);
        ck_assert_msg(w[i].err_last_end < w[i].first_ok_after, "%s: thread %d "
                      "failed %.0f ms after it had recovered", d->label, i,
                      ms_between(w[i].first_ok_after, w[i].err_last_end));
        if (w[i].first_ok_after > t_all)
            t_all = w[i].first_ok_after;
    }
    printf("%s recovery: every thread succeeded %.0f ms after the server "
           "accepted logins again\n", d->label, ms_between(t_started, t_all));
    for (int k = 0; k < CDM_ERR_INSECURE + 2; k++)
        if (k != CDM_ERR_CONNECT && k != CDM_ERR_BROKEN && k != CDM_ERR_POOL_FULL)
            ck_assert_msg(codes[k] == 0, "%s: %lld errors with code %d (%s):%s",
                          d->label, (long long)codes[k], k, cdm_strerror(k), sample);
    ck_assert_msg(smp.nsamples >= 10, "%s: only %ld session counts", d->label,
                  smp.nsamples);
    ck_assert_msg(smp.max >= 1, "%s: the server never showed a session of "
                  "the user", d->label);
    ck_assert_msg(smp.max <= POOL_MAX, "%s: the server saw %ld sessions of the "
                  "user, more than POOL_MaximumItems=%d", d->label, smp.max, POOL_MAX);

    /* Nothing leaked: all returned, all closed. */
    ck_status(cdm_manager_close(m, 2000), CDM_OK);
    st = stats(m);
    ck_assert_int_eq(st.total, 0);
    ck_assert_msg(wait_sessions(d, 0, tu_limit_ms(1000), &n),
                  "%s: %ld sessions left 1 s after cdm_manager_close", d->label, n);
    cdm_manager_free(m);
}
END_TEST

/* --------------------------------- 4. idle connections after a restart */

/* _i: driver = _i % 2; POOL_PingInterval default, or -1 (never ping). */
START_TEST(test_restart_idle_never_broken)
{
    const struct drv *d = DRV(_i);
    const char *extra[] = { "POOL_MaximumItems=4", "LoginTimeout=5",
                            _i / 2 ? "POOL_PingInterval=-1" : NULL, NULL };
    cdm_manager *m = new_manager(d, extra);
    cdm_conn *c[POOL_MAX];
    long old[POOL_MAX];
    cdm_pool_stats st;

    for (int i = 0; i < POOL_MAX; i++) {
        ck_status(cdm_connect(m, "R", &c[i]), CDM_OK);
        old[i] = backend_id(d, c[i]);
    }
    for (int i = 0; i < POOL_MAX; i++)
        cdm_disconnect(c[i]);
    ck_assert_int_eq(stats(m).idle, POOL_MAX);

    servers_cmd(d->stop);
    servers_cmd(d->start);

    /* Sequential borrows: each works on the first try. */
    for (int k = 0; k < 12; k++) {
        cdm_conn *x;
        long id;
        ck_status(cdm_connect(m, "R", &x), CDM_OK);
        select_one(x);
        id = backend_id(d, x);
        for (int i = 0; i < POOL_MAX; i++)
            ck_assert_msg(id != old[i], "%s: borrow %d got session %ld from "
                          "before the restart", d->label, k, id);
        cdm_disconnect(x);
    }
    /* All at once: whatever idle connection is left is checked as well. */
    for (int i = 0; i < POOL_MAX; i++) {
        ck_status(cdm_connect(m, "R", &c[i]), CDM_OK);
        select_one(c[i]);
    }
    for (int i = 0; i < POOL_MAX; i++)
        cdm_disconnect(c[i]);
    st = stats(m);
    ck_assert_int_ge(st.destroyed, POOL_MAX);
    ck_assert_int_eq(st.total, POOL_MAX);
    ck_assert_int_eq(st.idle, POOL_MAX);
    ck_status(cdm_manager_close(m, 2000), CDM_OK);
    cdm_manager_free(m);
}
END_TEST

/* ------------------------------------ 5. server down at first connect */

START_TEST(test_down_at_first_connect)
{
    const struct drv *d = DRV(_i);
    const char *extra[] = { "POOL_MaximumItems=2", "POOL_AcquireTimeout=500",
                            "LoginTimeout=2", NULL };
    cdm_manager *m = new_manager(d, extra);
    cdm_conn *c[2];
    cdm_pool_stats st;

    servers_cmd(d->stop);
    for (int k = 0; k < 3; k++) {
        int64_t t0 = now_ns();
        cdm_conn *x;
        int rc = cdm_connect(m, "R", &x);
        double ms = ms_between(t0, now_ns());
        if (k == 0)
            printf("%s down at connect: %s after %.1f ms: %s\n", d->label,
                   cdm_strerror(rc), ms, cdm_errmsg());
        ck_status(rc, CDM_ERR_CONNECT);
        ck_assert_msg(ms < tu_limit_ms(1000), "%s: a refused connect took %.0f ms",
                      d->label, ms);
        check_message(d, cdm_errmsg());
        ck_assert_msg(strstr(cdm_errmsg(), d->srv.host) != NULL,
                      "%s: message lacks the host %s: '%s'", d->label,
                      d->srv.host, cdm_errmsg());
        ck_assert_msg(strstr(cdm_errmsg(), d->srv.port) != NULL,
                      "%s: message lacks the port %s: '%s'", d->label,
                      d->srv.port, cdm_errmsg());
    }
    st = stats(m);
    ck_assert_int_eq(st.total, 0);
    ck_assert_int_eq(st.opening, 0);
    ck_assert_int_eq(st.in_use, 0);
    ck_assert_int_eq(st.waiting, 0);

    servers_cmd(d->start);
    /* Both slots are free: failed attempts reserved nothing. */
    for (int i = 0; i < 2; i++) {
        ck_status(cdm_connect(m, "R", &c[i]), CDM_OK);
        select_one(c[i]);
    }
    st = stats(m);
    ck_assert_int_eq(st.total, 2);
    ck_assert_int_eq(st.opening, 0);
    for (int i = 0; i < 2; i++)
        cdm_disconnect(c[i]);
    ck_status(cdm_manager_close(m, 2000), CDM_OK);
    cdm_manager_free(m);
}
END_TEST

/* ---------------------------------------------------------------- main */

static TCase *tcase(Suite *s, const char *name, int timeout)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, fixture_up, fixture_up);
    tcase_add_unchecked_fixture(tc, NULL, fixture_up);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("recovery");

    /* This suite stops and restarts servers: it gets a set of its own, so
     * suites running beside it (make -j) are not cut off. */
    tu_private_servers();
    tu_need_server("PG", &drivers[0].srv);
    tu_need_server("MYSQL", &drivers[1].srv);
    /* Output of the tests (timings) in order with Check's. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    tcase_add_loop_test(tcase(s, "idle_killed", 10), test_idle_killed_is_replaced, 0, 6);
    tcase_add_loop_test(tcase(s, "idle_killed_watched", 15),
                        test_idle_killed_retired_by_watcher, 0, 2);
    /* Making 3,000 temporary tables took up to 10.6 s on a loaded 2-core
     * machine (0.8 s quiet): the limit is for a hang, not a speed. */
    tcase_add_loop_test(tcase(s, "idle_killed_at_once", 60),
                        test_idle_killed_borrowed_at_once, 0, 6);
    tcase_add_loop_test(tcase(s, "mid_query", 15), test_killed_mid_query_is_broken, 0, 2);
    tcase_add_loop_test(tcase(s, "restart_load", 25), test_restart_under_load, 0, 2);
    tcase_add_loop_test(tcase(s, "restart_idle", 15), test_restart_idle_never_broken, 0, 4);
    tcase_add_loop_test(tcase(s, "down_at_connect", 15), test_down_at_first_connect, 0, 2);
    return tu_run(s);
}
