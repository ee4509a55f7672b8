/*
 * soak.c - `make soak`: 32 threads on several pooled definitions for a
 * bounded time (SOAK_SECONDS, default 60) with close_def, set_param and
 * reload mixed in; fails (exit 1) if a call fails, a connection stays
 * borrowed, a server sees more sessions than the largest limit in force,
 * or the resident size grows.
 *
 *   Mem    SQLite :memory:
 *   File   SQLite file (WAL) in a scratch directory
 *   Pg     PostgreSQL, when CDM_TEST_PG_* are set (tests/servers.sh)
 *   My     MariaDB, when CDM_TEST_MYSQL_* are set
 *
 * Server sessions are counted through separate plain client connections
 * (PostgreSQL by ApplicationName, MariaDB by user), and this process's
 * own sockets to each server, sampled every 100 ms, as is the resident
 * size (/proc/self/statm).  The last quarter's median
 * size may exceed the first quarter's by 20% plus 2 MB at most.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cdm.h>

#include "config.h"
#include "testsrv.h"
#if HAVE_POSTGRESQL
#include <libpq-fe.h>
#endif
#if HAVE_MYSQL
#include <mysql.h>
#endif

enum {
    THREADS = 32,
    LEAST = 2, MOST = 6,      /* limits the changes choose from */
    SAMPLE_MS = 100,
    MAX_SAMPLES = 36000       /* an hour of samples */
};

static cdm_manager *m;
static char dir[64] = "/tmp/cdm-soak-XXXXXX";
static char ini[128];
static char app[64];          /* the Pg definition's ApplicationName */
static const char *names[4];
static int ndefs;
static atomic_int stop;

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static bool have_pg(void)
{
#if HAVE_POSTGRESQL
    return env("CDM_TEST_PG_HOST") && env("CDM_TEST_PG_PORT");
#else
    return false;
#endif
}

static bool have_my(void)
{
#if HAVE_MYSQL
    return env("CDM_TEST_MYSQL_HOST") && env("CDM_TEST_MYSQL_PORT");
#else
    return false;
#endif
}

/* ------------------------------------------------------- definitions */

static int write_ini(void)
{
    FILE *f = fopen(ini, "w");
    const char *pool = "Pooled=True\nPOOL_MaximumItems=4\n"
                       "POOL_ExpireTimeout=100\nPOOL_CleanupTimeout=50\n"
                       "POOL_AcquireTimeout=10000\n";

    if (!f)
        return -1;
    fprintf(f, "; soak.c: the soak run's definitions\n"
            "[Mem]\nDriverID=SQLite\nDatabase=:memory:\n%s\n"
            "[File]\nDriverID=SQLite\nDatabase=soak.db\nJournalMode=WAL\n"
            "BusyTimeout=10000\n%s\n", pool, pool);
    if (have_pg())
        fprintf(f, "[Pg]\nDriverID=PG\nServer=%s\nPort=%s\nDatabase=%s\n"
                "User_Name=%s\nPassword=%s\nApplicationName=%s\n%s\n",
                env("CDM_TEST_PG_HOST"), env("CDM_TEST_PG_PORT"),
                env("CDM_TEST_PG_DB"), env("CDM_TEST_PG_USER"),
                env("CDM_TEST_PG_PASSWORD"), app, pool);
    if (have_my())
        fprintf(f, "[My]\nDriverID=MySQL\nServer=%s\nPort=%s\nDatabase=%s\n"
                "User_Name=%s\nPassword=%s\n%s\n",
                env("CDM_TEST_MYSQL_HOST"), env("CDM_TEST_MYSQL_PORT"),
                env("CDM_TEST_MYSQL_DB"), env("CDM_TEST_MYSQL_USER"),
                env("CDM_TEST_MYSQL_PASSWORD"), pool);
    return fclose(f) == 0 && chmod(ini, 0600) == 0 ? 0 : -1;
}

/* ----------------------------------------------------- session counts */

#if HAVE_POSTGRESQL
static PGconn *pg_admin(void)
{
    return tu_pg_monitor(env("CDM_TEST_PG_HOST"), env("CDM_TEST_PG_PORT"),
                         env("CDM_TEST_PG_DB"), env("CDM_TEST_PG_USER"),
                         env("CDM_TEST_PG_PASSWORD"), "cdm_soak_monitor",
                         "soak: PostgreSQL monitor");
}
#endif

#if HAVE_MYSQL
static MYSQL *my_admin(void)
{
    MYSQL *db = mysql_init(NULL);

    if (!db || !mysql_real_connect(db, env("CDM_TEST_MYSQL_HOST"),
                                   env("CDM_TEST_MYSQL_USER"),
                                   env("CDM_TEST_MYSQL_PASSWORD"),
                                   env("CDM_TEST_MYSQL_DB"),
                                   (unsigned)atoi(env("CDM_TEST_MYSQL_PORT")),
                                   NULL, 0)) {
        fprintf(stderr, "soak: MariaDB monitor: %s\n", db ? mysql_error(db) : "no memory");
        mysql_close(db);
        return NULL;
    }
    return db;
}

/* Sessions of the test user other than this monitor's. */
static int my_sessions(MYSQL *h)
{
    static const char sql[] = "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                              "WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1) "
                              "AND ID <> CONNECTION_ID()";
    MYSQL_RES *r;
    MYSQL_ROW row;
    int n = -1;

    if (mysql_real_query(h, sql, sizeof sql - 1) || !(r = mysql_store_result(h)))
        return -1;
    if ((row = mysql_fetch_row(r)) && row[0])
        n = atoi(row[0]);
    mysql_free_result(r);
    return n;
}
#endif

/* ------------------------------------------------------------ workers */

struct worker {
    pthread_t th;
    unsigned seed;
    int id;
    long ops, full;
    int errors;
    char first[600];
};

static void worker_error(struct worker *w, const char *def, const char *what,
                         int rc)
{
    if (w->errors++ == 0)
        snprintf(w->first, sizeof w->first, "%s: %s: %s: %s", def, what,
                 cdm_strerror(rc), cdm_errmsg());
}

/* SELECT of a value only this call sends; it must come back. */
static void echo(struct worker *w, cdm_conn *c, const char *def,
                 const char *sql, long value)
{
    cdm_result *r = NULL;
    char sent[32];
    const char *v;
    int rc;

    snprintf(sent, sizeof sent, "%ld", value);
    if ((rc = cdm_query(c, sql, (const char *const[]){ sent }, 1, &r)) != CDM_OK) {
        worker_error(w, def, sql, rc);
        return;
    }
    v = cdm_result_nrows(r) == 1 ? cdm_result_value(r, 0, 0) : NULL;
    if ((!v || strcmp(v, sent) != 0) && w->errors++ == 0)
        snprintf(w->first, sizeof w->first, "%s: %s: sent %s, got %s", def,
                 sql, sent, v ? v : "no row");
    cdm_result_free(r);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (long n = 0; !atomic_load(&stop); n++) {
        const char *def = names[rand_r(&w->seed) % (unsigned)ndefs];
        unsigned dice = rand_r(&w->seed) % 100;
        long value = (long)w->id * 1000000L + n % 1000000L;   /* fits an int */
        cdm_conn *c;
        int rc = cdm_connect(m, def, &c);

        if (rc == CDM_ERR_POOL_FULL) {
            w->full++;
            continue;
        }
        if (rc != CDM_OK) {
            worker_error(w, def, "connect", rc);
            continue;
        }
        w->ops++;
        if (strcmp(def, "File") == 0) {
            char v[32];
            snprintf(v, sizeof v, "%ld", value);
            if (dice < 30)
                rc = cdm_exec(c, "INSERT INTO t (v) VALUES (?)",
                              (const char *const[]){ v }, 1, NULL);
            else if (dice < 31)
                rc = cdm_exec(c, "DELETE FROM t WHERE id < "
                              "(SELECT max(id) FROM t) - 1000", NULL, 0, NULL);
            else
                echo(w, c, def, "SELECT ?", value);
            if (rc != CDM_OK)
                worker_error(w, def, "write", rc);
        } else if (strcmp(def, "Pg") == 0) {
            /* Now and then a transaction left open: the pool rolls it
             * back on return. */
            if (dice < 10 && (rc = cdm_begin(c)) != CDM_OK)
                worker_error(w, def, "begin", rc);
            echo(w, c, def, "SELECT ?::int", value);
        } else {
            echo(w, c, def, "SELECT ?", value);
        }
        cdm_disconnect(c);
    }
    return NULL;
}

/* ------------------------------------------------------------ mutator */

struct mutator {
    pthread_t th;
    unsigned seed;
    long set, closed, reloaded;
    int errors;
    char first[600];
};

static void mutator_check(struct mutator *x, const char *what,
                          const char *def, int rc)
{
    if (rc != CDM_OK && x->errors++ == 0)
        snprintf(x->first, sizeof x->first, "%s %s: %s: %s", what, def,
                 cdm_strerror(rc), cdm_errmsg());
}

/* A change every 10 ms or so: a limit between LEAST and MOST, a new
 * generation (BusyTimeout on File), POOL_ExpireTimeout, close_def, or a
 * reload (which puts the file's values back). */
static void *mutator_main(void *arg)
{
    struct mutator *x = arg;
    char v[16];

    while (!atomic_load(&stop)) {
        const char *def = names[rand_r(&x->seed) % (unsigned)ndefs];
        switch (rand_r(&x->seed) % 6) {
        case 0:
        case 1:
            snprintf(v, sizeof v, "%d", LEAST + (int)(rand_r(&x->seed) % (MOST - LEAST + 1)));
            mutator_check(x, "set POOL_MaximumItems", def,
                          cdm_manager_set_param(m, def, "POOL_MaximumItems", v));
            x->set++;
            break;
        case 2:
            snprintf(v, sizeof v, "%d", 5000 + (int)(rand_r(&x->seed) % 5000));
            mutator_check(x, "set BusyTimeout", "File",
                          cdm_manager_set_param(m, "File", "BusyTimeout", v));
            x->set++;
            break;
        case 3:
            mutator_check(x, "set POOL_ExpireTimeout", def,
                          cdm_manager_set_param(m, def, "POOL_ExpireTimeout",
                                                rand_r(&x->seed) % 2 ? "100" : "150"));
            x->set++;
            break;
        case 4:
            mutator_check(x, "close_def", def, cdm_manager_close_def(m, def));
            x->closed++;
            break;
        default:
            mutator_check(x, "reload", ini, cdm_manager_reload(m));
            x->reloaded++;
            break;
        }
        sleep_ms(5 + (int)(rand_r(&x->seed) % 10));   /* pacing */
    }
    return NULL;
}

/* ------------------------------------------------------------ monitor */

struct monitor {
    pthread_t th;
    long rss_kb[MAX_SAMPLES];
    int nrss;
    int pg_max, my_max, pg_failed, my_failed;
    int pg_client_max, my_client_max;   /* by tu_client_sockets() */
    unsigned long pg_own, my_own;       /* the monitors' own sockets */
    long pg_samples, my_samples;
#if HAVE_POSTGRESQL
    PGconn *pg;
#endif
#if HAVE_MYSQL
    MYSQL *my;
#endif
};

static long rss_kb(void)
{
    long size, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void *monitor_main(void *arg)
{
    struct monitor *k = arg;

    while (!atomic_load(&stop)) {
        long kb = rss_kb();
        if (kb > 0 && k->nrss < MAX_SAMPLES)
            k->rss_kb[k->nrss++] = kb;
#if HAVE_POSTGRESQL
        if (k->pg) {
            int n = tu_pg_sessions(k->pg, app);
            int mine = tu_client_sockets((unsigned)atoi(env("CDM_TEST_PG_PORT")), k->pg_own);
            k->pg_client_max = mine > k->pg_client_max ? mine : k->pg_client_max;
            k->pg_failed += n < 0 || mine < 0;
            k->pg_max = n > k->pg_max ? n : k->pg_max;
            k->pg_samples++;
        }
#endif
#if HAVE_MYSQL
        if (k->my) {
            int n = my_sessions(k->my);
            int mine = tu_client_sockets((unsigned)atoi(env("CDM_TEST_MYSQL_PORT")), k->my_own);
            k->my_client_max = mine > k->my_client_max ? mine : k->my_client_max;
            k->my_failed += n < 0 || mine < 0;
            k->my_max = n > k->my_max ? n : k->my_max;
            k->my_samples++;
        }
#endif
        sleep_ms(SAMPLE_MS);   /* the sampling period */
    }
    return NULL;
}

#if HAVE_POSTGRESQL || HAVE_MYSQL
static unsigned long socket_inode(int fd)
{
    struct stat sb;

    return fd >= 0 && fstat(fd, &sb) == 0 ? (unsigned long)sb.st_ino : 0;
}
#endif

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return (x > y) - (x < y);
}

/* Median of v[from, to). */
static long median(const long *v, int from, int to)
{
    long tmp[MAX_SAMPLES];
    int n = to - from;

    if (n <= 0)
        return 0;
    memcpy(tmp, v + from, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_long);
    return tmp[n / 2];
}

#if HAVE_POSTGRESQL || HAVE_MYSQL
/* Polls a session count down to 0 for up to 10 s; the last count. */
static int drained(int (*count)(void *), void *h)
{
    int64_t deadline = now_ms() + 10000;
    int n;

    while ((n = count(h)) != 0 && now_ms() < deadline)
        sleep_ms(20);
    return n;
}

#if HAVE_POSTGRESQL
static int pg_count(void *h) { return tu_pg_sessions(h, app); }
#endif
#if HAVE_MYSQL
static int my_count(void *h) { return my_sessions(h); }
#endif
#endif

/* -------------------------------------------------------------- main */

static int failures;

static void check(bool ok, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;

    printf("  %s  ", ok ? "ok  " : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    failures += !ok;
}

static double soak_seconds(void)
{
    const char *v = env("SOAK_SECONDS");
    char *end;
    double s;

    if (!v)
        return 60;
    s = strtod(v, &end);
    if (*end || !(s > 0)) {
        fprintf(stderr, "soak: SOAK_SECONDS='%s' is not a positive number\n", v);
        exit(2);
    }
    return s > 3600 ? 3600 : s;   /* bounded: the samples fit */
}

int main(void)
{
    static struct worker w[THREADS];
    static struct monitor k;
    struct mutator x;
    double seconds = soak_seconds();
    long ops = 0, full = 0, first_q, last_q;
    int errors = 0, q;
    int64_t t0, elapsed;
    cdm_conn *c;
    char cmd[128];

    snprintf(app, sizeof app, "cdm_soak_%ld", (long)getpid());
    if (!mkdtemp(dir)) {
        perror("soak: mkdtemp");
        return 1;
    }
    snprintf(ini, sizeof ini, "%s/soak.ini", dir);
    names[ndefs++] = "Mem";
    names[ndefs++] = "File";
    if (have_pg())
        names[ndefs++] = "Pg";
    if (have_my())
        names[ndefs++] = "My";
    if (write_ini() != 0 || cdm_manager_new(&m) != CDM_OK ||
        cdm_manager_load_file(m, ini) != CDM_OK ||
        cdm_connect(m, "File", &c) != CDM_OK) {
        fprintf(stderr, "soak: setting up: %s\n", cdm_errmsg());
        return 1;
    }
    if (cdm_exec(c, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                 NULL, 0, NULL) != CDM_OK) {
        fprintf(stderr, "soak: setting up: %s\n", cdm_errmsg());
        return 1;
    }
    cdm_disconnect(c);
#if HAVE_POSTGRESQL
    if (have_pg() && !(k.pg = pg_admin()))
        return 1;
    if (k.pg)
        k.pg_own = socket_inode(PQsocket(k.pg));
#endif
#if HAVE_MYSQL
    if (have_my() && !(k.my = my_admin()))
        return 1;
    if (k.my)
        k.my_own = socket_inode(mysql_get_socket(k.my));
#endif
    printf("soak: %d threads, %.0f s, definitions:", THREADS, seconds);
    for (int i = 0; i < ndefs; i++)
        printf(" %s", names[i]);
    printf("%s\n", have_pg() && have_my() ? "" :
           " (no PostgreSQL/MariaDB: start tests/servers.sh)");

    atomic_init(&stop, 0);
    memset(&x, 0, sizeof x);
    x.seed = 4242;
    if (pthread_create(&k.th, NULL, monitor_main, &k) != 0 ||
        pthread_create(&x.th, NULL, mutator_main, &x) != 0)
        return 1;
    for (int i = 0; i < THREADS; i++) {
        w[i].id = i + 1;
        w[i].seed = (unsigned)(i * 7919 + 1);
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0)
            return 1;
    }
    t0 = now_ms();
    while (now_ms() - t0 < (int64_t)(seconds * 1000))
        sleep_ms(50);   /* the soak lasts this long */
    atomic_store(&stop, 1);
    pthread_join(x.th, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(w[i].th, NULL);
    elapsed = now_ms() - t0;
    pthread_join(k.th, NULL);

    for (int i = 0; i < THREADS; i++) {
        ops += w[i].ops;
        full += w[i].full;
        errors += w[i].errors;
    }
    printf("soak: %ld borrows in %.1f s = %.0f ops/s; %ld POOL_FULL; changes: "
           "%ld set_param, %ld close_def, %ld reload\n", ops, elapsed / 1000.0,
           ops / (elapsed / 1000.0), full, x.set, x.closed, x.reloaded);

    for (int i = 0; i < THREADS && errors; i++)
        if (w[i].errors) {
            check(false, "%d worker errors; first (thread %d): %s", errors, i,
                  w[i].first);
            break;
        }
    if (!errors)
        check(true, "no worker errors");
    check(x.errors == 0, "%d failed changes%s%s", x.errors,
          x.errors ? "; first: " : "", x.first);
    for (int i = 0; i < ndefs; i++) {
        cdm_pool_stats st;
        int rc = cdm_manager_pool_stats(m, names[i], &st);
        check(rc == CDM_OK && st.in_use == 0 && st.waiting == 0,
              "%s at rest: %lld borrowed, %lld waiting, %lld open",
              names[i], (long long)st.in_use, (long long)st.waiting,
              (long long)st.total);
    }
#if HAVE_POSTGRESQL
    if (k.pg)
        check(k.pg_max <= MOST && k.pg_client_max <= MOST && k.pg_failed == 0,
              "PostgreSQL sessions: at most %d on the server, %d sockets here, "
              "in %ld samples (limit %d; %d counts failed)", k.pg_max,
              k.pg_client_max, k.pg_samples, MOST, k.pg_failed);
#endif
#if HAVE_MYSQL
    if (k.my)
        check(k.my_max <= MOST && k.my_client_max <= MOST && k.my_failed == 0,
              "MariaDB sessions: at most %d on the server, %d sockets here, "
              "in %ld samples (limit %d; %d counts failed)", k.my_max,
              k.my_client_max, k.my_samples, MOST, k.my_failed);
#endif
    q = k.nrss / 4;
    first_q = median(k.rss_kb, 0, q);
    last_q = median(k.rss_kb, k.nrss - q, k.nrss);
    check(q > 0 && last_q <= first_q * 12 / 10 + 2048,
          "resident size: first quarter median %ld kB, last quarter %ld kB "
          "(%d samples; at most +20%% + 2 MB)", first_q, last_q, k.nrss);

    cdm_manager_free(m);
#if HAVE_POSTGRESQL
    if (k.pg) {
        int n = drained(pg_count, k.pg);
        check(n == 0, "PostgreSQL sessions after cdm_manager_free: %d", n);
        PQfinish(k.pg);
    }
#endif
#if HAVE_MYSQL
    if (k.my) {
        int n = drained(my_count, k.my);
        check(n == 0, "MariaDB sessions after cdm_manager_free: %d", n);
        mysql_close(k.my);
    }
#endif
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "soak: could not remove %s\n", dir);
    printf("soak: %s\n", failures ? "FAILED" : "passed");
    return failures ? 1 : 0;
}
