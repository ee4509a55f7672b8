/* check_chaos.c - 32 threads on one pooled PostgreSQL definition while its limit changes, its pool is closed and its file reloaded: this process never holds more connections than the largest limit in force, the server lists more only while a closed backend is leaving, and none once the manager is freed. */
#define _GNU_SOURCE
#include "testutil.h"
#include "testsrv.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static struct tu_server pg;   /* filled in main() */
static cdm_manager *m;
static char *dir, *path;
static char app[64];          /* ApplicationName of the pooled definition */
static int run_ms;            /* CDM_CHAOS_SECONDS */

enum { THREADS = 32, LEAST = 2, MOST = 6, SAMPLE_MS = 50 };

/* The definition file with POOL_MaximumItems=max.  Written beside and
 * renamed over, so that a reload never reads half a file.  Asserts
 * nothing (the mutator thread calls it); 0 on success. */
static int write_defs(int max)
{
    char tmp[4200], text[2048];
    FILE *f;
    int ok;

    snprintf(text, sizeof text,
             "; check_chaos.c: rewritten while the test runs\n"
             "[Chaos]\n"
             "DriverID=PG\nServer=%s\nPort=%s\nDatabase=%s\n"
             "User_Name=%s\nPassword=%s\nApplicationName=%s\n"
             "Pooled=True\nPOOL_MaximumItems=%d\n"
             "POOL_AcquireTimeout=10000\nPOOL_ExpireTimeout=500\n"
             "POOL_CleanupTimeout=50\n",
             pg.host, pg.port, pg.db, pg.user, pg.password, app, max);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    if (!(f = fopen(tmp, "w")))
        return -1;
    ok = fputs(text, f) >= 0;
    ok = fclose(f) == 0 && ok;
    return ok && chmod(tmp, 0600) == 0 && rename(tmp, path) == 0 ? 0 : -1;
}

/* A plain libpq connection, not through cdm, for counting sessions. */
static PGconn *admin_connect(void)
{
    return tu_pg_monitor(pg.host, pg.port, pg.db, pg.user, pg.password,
                         "cdm_chaos_monitor", "chaos: monitor connection");
}

/* Server sessions of the pooled definition now, or -1. */
static int sessions(PGconn *h)
{
    return tu_pg_sessions(h, app);
}

static void setup(void)
{
    dir = tu_tmpdir();
    snprintf(app, sizeof app, "cdm_chaos_%ld_%ld", (long)getpid(),
             (long)time(NULL));
    path = tu_write(dir, "chaos.ini", "", 0600);
    ck_assert_int_eq(write_defs(4), 0);
    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
}

static void teardown(void)
{
    cdm_manager_free(m);
    m = NULL;
    free(path);
    path = NULL;
    tu_rmtree(dir);
    dir = NULL;
}

/* ------------------------------------------------------------ threads */

struct shared {
    atomic_int stop;
};

struct worker {
    pthread_t th;
    struct shared *sh;
    long ok, full;
    int errors;
    char first[600];
};

static void worker_error(struct worker *w, const char *what, int rc)
{
    if (w->errors++ == 0)
        snprintf(w->first, sizeof w->first, "%s: %s (%d): %s", what,
                 cdm_strerror(rc), rc, cdm_errmsg());
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    while (!atomic_load(&w->sh->stop)) {
        cdm_result *r = NULL;
        cdm_conn *c;
        const char *v;
        int rc = cdm_connect(m, "Chaos", &c);

        if (rc == CDM_ERR_POOL_FULL) {
            w->full++;
            continue;
        }
        if (rc != CDM_OK) {
            worker_error(w, "connect", rc);
            continue;
        }
        w->ok++;
        if ((rc = cdm_query(c, "SELECT 1", NULL, 0, &r)) != CDM_OK)
            worker_error(w, "SELECT 1", rc);
        else if (cdm_result_nrows(r) != 1 || !(v = cdm_result_value(r, 0, 0)) ||
                 strcmp(v, "1") != 0)
            worker_error(w, "SELECT 1 answered something else", CDM_OK);
        cdm_result_free(r);
        cdm_disconnect(c);
    }
    return NULL;
}

struct mutator {
    pthread_t th;
    struct shared *sh;
    long set, closed, reloaded;
    int errors;
    char first[600];
};

static void mutator_error(struct mutator *x, const char *what, int rc)
{
    if (rc != CDM_OK && x->errors++ == 0)
        snprintf(x->first, sizeof x->first, "%s: %s: %s", what,
                 cdm_strerror(rc), cdm_errmsg());
}

/* Limits between LEAST and MOST by set_param and by a rewritten file and
 * reload, and close_def, in turn.  The short pause lets the pool serve
 * between changes: each close_def makes every thread open a new
 * connection (SCRAM authentication) otherwise. */
static void *mutator_main(void *arg)
{
    struct mutator *x = arg;
    char v[16];

    for (long i = 0; !atomic_load(&x->sh->stop); i++) {
        int max = LEAST + (int)(i / 3 % (MOST - LEAST + 1));
        switch (i % 3) {
        case 0:
            snprintf(v, sizeof v, "%d", max);
            mutator_error(x, "set_param POOL_MaximumItems",
                          cdm_manager_set_param(m, "Chaos", "POOL_MaximumItems", v));
            x->set++;
            break;
        case 1:
            mutator_error(x, "close_def", cdm_manager_close_def(m, "Chaos"));
            x->closed++;
            break;
        default:
            if (write_defs(max) != 0)
                mutator_error(x, "rewriting the file", CDM_ERR_IO);
            else
                mutator_error(x, "reload", cdm_manager_reload(m));
            x->reloaded++;
            break;
        }
        tu_sleep_ms(10);
    }
    return NULL;
}

struct monitor {
    pthread_t th;
    struct shared *sh;
    PGconn *h;
    unsigned long own;          /* inode of h's socket */
    int max, over, failed;
    int client_max;             /* by tu_client_sockets() */
    long samples;
    int64_t over_since;         /* first sample of the current run over MOST */
    int64_t over_ms;            /* the longest such run */
};

static void *monitor_main(void *arg)
{
    struct monitor *k = arg;

    while (!atomic_load(&k->sh->stop)) {
        int n = sessions(k->h);
        int mine = tu_client_sockets((unsigned)atoi(pg.port), k->own);
        if (n < 0)
            k->failed++;
        if (n > k->max)
            k->max = n;
        if (mine > k->client_max)
            k->client_max = mine;
        k->over += n > MOST;
        /* A backend leaves pg_stat_activity a moment after its client
         * closed, so a replacement may be listed beside it: over MOST is a
         * fault only if it lasts. */
        if (n > MOST) {
            int64_t now = tu_now_ms();
            if (k->over_since == 0)
                k->over_since = now;
            if (now - k->over_since > k->over_ms)
                k->over_ms = now - k->over_since;
        } else {
            k->over_since = 0;
        }
        k->samples++;
        tu_sleep_ms(SAMPLE_MS);   /* the sampling period */
    }
    return NULL;
}

/* --------------------------------------------------------------- test */

START_TEST(test_chaos_sessions_bounded)
{
    struct shared sh;
    struct worker w[THREADS];
    struct mutator x;
    struct monitor k;
    cdm_pool_stats st;
    long ok = 0, full = 0;
    int64_t until;

    atomic_init(&sh.stop, 0);
    memset(&x, 0, sizeof x);
    memset(&k, 0, sizeof k);
    x.sh = k.sh = &sh;
    ck_assert_ptr_nonnull(k.h = admin_connect());
    {
        struct stat sb;
        ck_assert_int_eq(fstat(PQsocket(k.h), &sb), 0);
        k.own = (unsigned long)sb.st_ino;
    }
    ck_assert_int_eq(tu_client_sockets((unsigned)atoi(pg.port), k.own), 0);
    ck_assert_int_eq(sessions(k.h), 0);
    ck_assert_int_eq(pthread_create(&k.th, NULL, monitor_main, &k), 0);
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].sh = &sh;
        ck_assert_int_eq(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
    }
    ck_assert_int_eq(pthread_create(&x.th, NULL, mutator_main, &x), 0);
    until = tu_now_ms() + run_ms;
    while (tu_now_ms() < until)
        tu_sleep_ms(20);   /* the chaos lasts this long */
    atomic_store(&sh.stop, 1);
    ck_assert_int_eq(pthread_join(x.th, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(w[i].th, NULL), 0);
    ck_assert_int_eq(pthread_join(k.th, NULL), 0);

    for (int i = 0; i < THREADS; i++) {
        ok += w[i].ok;
        full += w[i].full;
    }
    printf("chaos: %ld connects, %ld POOL_FULL, %ld set_param, %ld close_def, "
           "%ld reload in %d ms; server sessions: at most %d in %ld samples, "
           "%d over %d; this process's sockets to the server: at most %d\n",
           ok, full, x.set, x.closed, x.reloaded, run_ms, k.max, k.samples,
           k.over, MOST, k.client_max);
    fflush(stdout);
    for (int i = 0; i < THREADS; i++)
        ck_assert_msg(w[i].errors == 0, "thread %d: %d errors, first: %s", i,
                      w[i].errors, w[i].first);
    ck_assert_msg(x.errors == 0, "%d failed changes, first: %s", x.errors,
                  x.first);
    ck_assert_msg(k.failed == 0, "%d session counts failed: %s", k.failed,
                  PQerrorMessage(k.h));
    ck_assert_int_gt(k.samples, 0);
    ck_assert_msg(k.client_max <= MOST, "this process had %d connections "
                  "to the server at once (its own sockets); the largest limit "
                  "in force is %d", k.client_max, MOST);
    ck_assert_msg(k.over_ms < tu_limit_ms(1000), "the server saw more "
                  "sessions of %s than the largest limit in force (%d) for "
                  "%lld ms (at most %d; %d of %ld samples over; this process "
                  "had at most %d sockets to it)", app, MOST,
                  (long long)k.over_ms, k.max, k.over, k.samples,
                  k.client_max);

    ck_status(cdm_manager_pool_stats(m, "Chaos", &st), CDM_OK);
    ck_assert_int_eq(st.in_use, 0);
    ck_assert_int_eq(st.waiting, 0);
    cdm_manager_free(m);
    m = NULL;
    {
        /* Backends end a moment after their clients close. */
        int64_t deadline = tu_now_ms() + 10000;
        int n;
        while ((n = sessions(k.h)) != 0 && tu_now_ms() < deadline)
            tu_sleep_ms(20);
        ck_assert_msg(n == 0, "%d sessions of %s left 10 s after "
                      "cdm_manager_free", n, app);
    }
    PQfinish(k.h);
}
END_TEST

/* ---------------------------------------------------------------- main */

int main(void)
{
    Suite *s = suite_create("chaos");
    TCase *tc = tcase_create("chaos");

    tu_need_server("PG", &pg);
    /* CDM_CHAOS_SECONDS (e.g. "3"), else 30 s. */
    run_ms = tu_env_ms("CDM_CHAOS_SECONDS", 30000, 100);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, run_ms / 1000.0 * 2 + 60);
    suite_add_tcase(s, tc);
    tcase_add_test(tc, test_chaos_sessions_bounded);
    return tu_run(s);
}
