/*
 * bench.c - `make bench`: pool figures next to a bare mutex-protected
 * stack doing the same push/pop in the same run.  A program that prints
 * numbers, not a test: nothing here fails on a slow machine.
 *
 *   fast path       cdm_connect + cdm_disconnect on a pooled SQLite
 *                   :memory: definition, POOL_MaximumItems >= threads
 *   oversubscribed  32 threads, POOL_MaximumItems=4, ~20 us of work held
 *   servers         for PostgreSQL and MariaDB (when tests/servers.sh
 *                   has started them: CDM_TEST_* in the environment):
 *                   pooled open vs a fresh driver connect, and
 *                   cdm_query("SELECT 1") vs the driver's own call on the
 *                   same connection, interleaved in batches
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cdm.h>

#include "config.h"
#if HAVE_POSTGRESQL
#include <libpq-fe.h>
#endif
#if HAVE_MYSQL
#include <mysql.h>
#endif

static double seconds = 1.0;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Busy work of about `ns` nanoseconds, as a held connection would do. */
static void work(int64_t ns)
{
    int64_t end = now_ns() + ns;

    while (now_ns() < end)
        ;
}

/* ------------------------------------------------ the bare baseline */

struct bare {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void *items[64];
    int n;
};

static void *bare_pop(struct bare *b)
{
    void *p;

    pthread_mutex_lock(&b->lock);
    while (b->n == 0)
        pthread_cond_wait(&b->cond, &b->lock);
    p = b->items[--b->n];
    pthread_mutex_unlock(&b->lock);
    return p;
}

static void bare_push(struct bare *b, void *p)
{
    pthread_mutex_lock(&b->lock);
    b->items[b->n++] = p;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

/* ---------------------------------------------------------- runners */

struct run {
    cdm_manager *m;     /* NULL: bare stack */
    struct bare *bare;
    const char *def;
    int64_t hold_ns;
    atomic_int *go;
    atomic_int *stop;
    long count;
    long errors;
};

static void *runner(void *arg)
{
    struct run *r = arg;
    long n = 0, errors = 0;

    while (!atomic_load(r->go))
        ;
    while (!atomic_load_explicit(r->stop, memory_order_relaxed)) {
        if (r->m) {
            cdm_conn *c;
            if (cdm_connect(r->m, r->def, &c) != CDM_OK) {
                errors++;
                continue;
            }
            if (r->hold_ns)
                work(r->hold_ns);
            cdm_disconnect(c);
        } else {
            void *p = bare_pop(r->bare);
            if (r->hold_ns)
                work(r->hold_ns);
            bare_push(r->bare, p);
        }
        n++;
    }
    r->count = n;
    r->errors = errors;
    return NULL;
}

struct figures {
    double per_sec;     /* total cycles per second */
    double ns_per;      /* wall ns per cycle per thread */
    long min, max;
    double avg;
    long errors;
};

static struct figures measure(cdm_manager *m, struct bare *bare,
                              const char *def, int threads, int64_t hold_ns)
{
    pthread_t tid[64];
    struct run runs[64];
    atomic_int go = 0, stop = 0;
    struct figures f = { 0 };
    int64_t t0, t1;
    long sum = 0;

    for (int i = 0; i < threads; i++) {
        runs[i] = (struct run){ m, bare, def, hold_ns, &go, &stop, 0, 0 };
        pthread_create(&tid[i], NULL, runner, &runs[i]);
    }
    t0 = now_ns();
    atomic_store(&go, 1);
    while (now_ns() - t0 < (int64_t)(seconds * 1e9)) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    t1 = now_ns();
    f.min = runs[0].count;
    for (int i = 0; i < threads; i++) {
        sum += runs[i].count;
        f.errors += runs[i].errors;
        if (runs[i].count < f.min)
            f.min = runs[i].count;
        if (runs[i].count > f.max)
            f.max = runs[i].count;
    }
    f.per_sec = (double)sum / ((double)(t1 - t0) / 1e9);
    f.ns_per = (double)(t1 - t0) * threads / (double)(sum ? sum : 1);
    f.avg = (double)sum / threads;
    return f;
}

static int pooled_def(cdm_manager *m, const char *name, int max)
{
    char maxs[32];
    const char *params[] = { "DriverID=SQLite", "Database=:memory:",
                             "Pooled=True", maxs, "POOL_AcquireTimeout=60000",
                             NULL };

    snprintf(maxs, sizeof maxs, "POOL_MaximumItems=%d", max);
    return cdm_manager_add_def(m, name, params);
}

/* Opens `n` connections at once so the measured loop never connects. */
static void warm(cdm_manager *m, const char *def, int n)
{
    cdm_conn *c[64];

    for (int i = 0; i < n; i++)
        if (cdm_connect(m, def, &c[i]) != CDM_OK) {
            fprintf(stderr, "bench: %s\n", cdm_errmsg());
            exit(1);
        }
    for (int i = 0; i < n; i++)
        cdm_disconnect(c[i]);
}

static struct bare *bare_new(int items)
{
    static char token[64];
    struct bare *b = calloc(1, sizeof *b);

    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    for (int i = 0; i < items; i++)
        b->items[b->n++] = &token[i];
    return b;
}

/* ----------------------------------------------------------- servers */

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

/* A definition on the test server whose variables start with `prefix`. */
static int server_def(cdm_manager *m, const char *name, const char *driver,
                      const char *prefix, bool pooled)
{
    char host[128], port[64], db[128], user[128], pw[256];
    const char *params[] = { driver, host, port, db, user, pw,
                             pooled ? "Pooled=True" : "Pooled=False",
                             "POOL_MaximumItems=4", NULL };
    char var[64];

#define GET(buf, key, suffix)                                                \
    snprintf(var, sizeof var, "%s_%s", prefix, suffix);                      \
    if (!env(var))                                                           \
        return 1;                                                            \
    snprintf(buf, sizeof buf, key "=%s", env(var));
    GET(host, "Server", "HOST");
    GET(port, "Port", "PORT");
    GET(db, "Database", "DB");
    GET(user, "User_Name", "USER");
    GET(pw, "Password", "PASSWORD");
#undef GET
    return cdm_manager_add_def(m, name, params) == CDM_OK ? 0 : -1;
}

typedef void *(*raw_connect_fn)(void);
typedef void (*raw_close_fn)(void *);
typedef int (*raw_select_fn)(void *);

static void bench_server(cdm_manager *m, const char *label, const char *driver,
                         const char *prefix, raw_connect_fn raw_connect,
                         raw_close_fn raw_close, raw_select_fn raw_select)
{
    char pooled[64], plain[64];
    int64_t t0, t_raw = 0, t_cdm = 0;
    cdm_conn *c;
    int n_connect = 200, batches = 20, per_batch = 1000;
    int rc;

    snprintf(pooled, sizeof pooled, "%s_Pooled", label);
    snprintf(plain, sizeof plain, "%s_Plain", label);
    if ((rc = server_def(m, pooled, driver, prefix, true)) != 0 ||
        server_def(m, plain, driver, prefix, false) != 0) {
        printf("%s: %s\n", label, rc > 0 ? "skipped (no test server: run "
               "through tests/bench.sh, which starts one)" : cdm_errmsg());
        return;
    }
    if (cdm_connect(m, pooled, &c) != CDM_OK) {
        printf("%s: cannot connect: %s\n", label, cdm_errmsg());
        return;
    }
    cdm_disconnect(c);

    /* Opening: a fresh driver connection against a pooled borrow. */
    t0 = now_ns();
    for (int i = 0; i < n_connect; i++) {
        void *h = raw_connect();
        if (!h) {
            printf("%s: raw connect failed\n", label);
            return;
        }
        raw_close(h);
    }
    t_raw = now_ns() - t0;
    t0 = now_ns();
    for (int i = 0; i < n_connect * 100; i++) {
        if (cdm_connect(m, pooled, &c) != CDM_OK) {
            printf("%s: %s\n", label, cdm_errmsg());
            return;
        }
        cdm_disconnect(c);
    }
    t_cdm = (now_ns() - t0) / 100;
    printf("%-6s open:   fresh driver connect %9.1f us   pooled cdm_connect "
           "%7.3f us   speed-up %.0fx\n", label, t_raw / 1e3 / n_connect,
           t_cdm / 1e3 / n_connect, (double)t_raw / (double)t_cdm);

    /* SELECT 1 on one connection: the driver's call against cdm_query,
     * alternating batches so that drift hits both alike. */
    if (cdm_connect(m, plain, &c) != CDM_OK) {
        printf("%s: %s\n", label, cdm_errmsg());
        return;
    }
    t_raw = t_cdm = 0;
    for (int b = 0; b < batches; b++) {
        t0 = now_ns();
        for (int i = 0; i < per_batch; i++)
            if (raw_select(cdm_conn_handle(c)) != 0) {
                printf("%s: raw SELECT 1 failed\n", label);
                cdm_disconnect(c);
                return;
            }
        t_raw += now_ns() - t0;
        t0 = now_ns();
        for (int i = 0; i < per_batch; i++) {
            cdm_result *r;
            if (cdm_query(c, "SELECT 1", NULL, 0, &r) != CDM_OK) {
                printf("%s: %s\n", label, cdm_errmsg());
                cdm_disconnect(c);
                return;
            }
            cdm_result_free(r);
        }
        t_cdm += now_ns() - t0;
    }
    cdm_disconnect(c);
    printf("%-6s SELECT 1: driver %7.2f us   cdm_query %7.2f us   "
           "cdm/driver %.3fx (%+.1f%%)\n", label,
           t_raw / 1e3 / (batches * per_batch), t_cdm / 1e3 / (batches * per_batch),
           (double)t_cdm / (double)t_raw,
           100.0 * ((double)t_cdm / (double)t_raw - 1));
}

#if HAVE_POSTGRESQL
static void *pg_raw_connect(void)
{
    const char *keys[] = { "host", "port", "dbname", "user", "password", NULL };
    const char *vals[] = { env("CDM_TEST_PG_HOST"), env("CDM_TEST_PG_PORT"),
                           env("CDM_TEST_PG_DB"), env("CDM_TEST_PG_USER"),
                           env("CDM_TEST_PG_PASSWORD"), NULL };
    PGconn *c = PQconnectdbParams(keys, vals, 0);

    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void pg_raw_close(void *h)
{
    PQfinish(h);
}

static int pg_raw_select(void *h)
{
    PGresult *r = PQexec(h, "SELECT 1");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;

    PQclear(r);
    return ok ? 0 : -1;
}
#endif

#if HAVE_MYSQL
static void *my_raw_connect(void)
{
    MYSQL *db = mysql_init(NULL);

    if (!mysql_real_connect(db, env("CDM_TEST_MYSQL_HOST"), env("CDM_TEST_MYSQL_USER"),
                            env("CDM_TEST_MYSQL_PASSWORD"), env("CDM_TEST_MYSQL_DB"),
                            (unsigned)atoi(env("CDM_TEST_MYSQL_PORT")), NULL, 0)) {
        mysql_close(db);
        return NULL;
    }
    return db;
}

static void my_raw_close(void *h)
{
    mysql_close(h);
}

static int my_raw_select(void *h)
{
    MYSQL_RES *r;

    if (mysql_real_query(h, "SELECT 1", 8) || !(r = mysql_store_result(h)))
        return -1;
    mysql_free_result(r);
    return 0;
}
#endif

int main(int argc, char **argv)
{
    static const int counts[] = { 1, 2, 8, 32 };
    cdm_manager *m;
    int rc = 0;

    if (argc > 1)
        seconds = atof(argv[1]);
    if (cdm_manager_new(&m) != CDM_OK)
        return 1;

    printf("cdm pool benchmark, %.1f s per figure (bare = mutex-protected "
           "stack doing the same push/pop)\n\n", seconds);
    printf("fast path: cdm_connect + cdm_disconnect, SQLite :memory:, "
           "POOL_MaximumItems = threads\n");
    printf("%8s %14s %12s %14s %12s %10s\n", "threads", "cdm cycles/s",
           "cdm ns/cyc", "bare cycles/s", "bare ns/cyc", "cdm/bare");
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        char name[32];
        struct bare *b = bare_new(counts[i]);
        struct figures fc, fb;

        snprintf(name, sizeof name, "Fast%d", counts[i]);
        if (pooled_def(m, name, counts[i]) != CDM_OK) {
            fprintf(stderr, "bench: %s\n", cdm_errmsg());
            return 1;
        }
        warm(m, name, counts[i]);
        fb = measure(NULL, b, NULL, counts[i], 0);
        fc = measure(m, NULL, name, counts[i], 0);
        printf("%8d %14.0f %12.1f %14.0f %12.1f %9.2fx%s\n", counts[i],
               fc.per_sec, 1e9 / fc.per_sec,
               fb.per_sec, 1e9 / fb.per_sec, fb.per_sec / fc.per_sec,
               fc.errors ? "  ERRORS" : "");
        rc |= fc.errors != 0;
        pthread_mutex_destroy(&b->lock);
        free(b);
    }
    printf("(ns/cyc is wall time divided by all cycles; cdm/bare is cdm's "
           "time per cycle over the bare stack's: below 1 is faster)\n\n");

    {
        struct bare *b = bare_new(4);
        struct figures fc, fb;

        if (pooled_def(m, "Over", 4) != CDM_OK) {
            fprintf(stderr, "bench: %s\n", cdm_errmsg());
            return 1;
        }
        warm(m, "Over", 4);
        printf("oversubscribed: 32 threads, POOL_MaximumItems=4, 20 us held; "
               "two cores allow 100000 cycles/s\n");
        fb = measure(NULL, b, NULL, 32, 20000);
        fc = measure(m, NULL, "Over", 32, 20000);
        printf("%6s %12s %10s %14s %14s\n", "", "cycles/s", "of 100k",
               "slowest/avg", "fastest/avg");
        printf("%6s %12.0f %9.0f%% %14.2f %14.2f%s\n", "cdm", fc.per_sec,
               fc.per_sec / 1000.0, fc.min / fc.avg, fc.max / fc.avg,
               fc.errors ? "  ERRORS" : "");
        printf("%6s %12.0f %9.0f%% %14.2f %14.2f\n", "bare", fb.per_sec,
               fb.per_sec / 1000.0, fb.min / fb.avg, fb.max / fb.avg);
        rc |= fc.errors != 0;
        free(b);
    }

    printf("\nservers: fresh driver connect vs pooled cdm_connect; "
           "SELECT 1 through the driver vs cdm_query on one connection\n");
#if HAVE_POSTGRESQL
    if (env("CDM_TEST_PG_PORT"))
        bench_server(m, "PG", "DriverID=PG", "CDM_TEST_PG", pg_raw_connect,
                     pg_raw_close, pg_raw_select);
    else
        printf("PG: skipped (no test server: run tests/bench.sh)\n");
#endif
#if HAVE_MYSQL
    if (env("CDM_TEST_MYSQL_PORT"))
        bench_server(m, "MySQL", "DriverID=MySQL", "CDM_TEST_MYSQL",
                     my_raw_connect, my_raw_close, my_raw_select);
    else
        printf("MySQL: skipped (no test server: run tests/bench.sh)\n");
#endif
    cdm_manager_free(m);
    return rc;
}
