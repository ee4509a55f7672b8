/* check_race.c - races through the public API: threads borrowing while definitions change, pools close and the manager is freed, and whether POOL_MaximumItems bounds physical connections; meant to run under AddressSanitizer and ThreadSanitizer too. */
#define _GNU_SOURCE
#include "testutil.h"
#include "fault_driver.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ helpers */

static cdm_manager *m;
static int run_ms;          /* how long each test hammers (CDM_RACE_SECONDS) */

static void setup(void)
{
    fault_reset();
    ck_status(cdm_manager_new(&m), CDM_OK);
}

static void teardown(void)
{
    cdm_manager_free(m);
    m = NULL;
}

static cdm_pool_stats st(const char *name)
{
    cdm_pool_stats s;

    memset(&s, 0x5a, sizeof s);
    ck_status(cdm_manager_pool_stats(m, name, &s), CDM_OK);
    return s;
}

/* Pool settings that keep the cleanup thread running all the time: it is
 * due every millisecond and finds idle connections expired after one. */
#define CHURN "POOL_ExpireTimeout=1", "POOL_CleanupTimeout=1", \
              "POOL_MaxLifetime=2", "POOL_AcquireTimeout=5000"

static void add_def(const char *name, const char *const *params)
{
    ck_status(cdm_manager_add_def(m, name, params), CDM_OK);
}

/* Two pooled SQLite :memory: definitions and one pooled Fault one. */
static const char *const race_defs[] = { "S1", "S2", "F" };

static void add_race_defs(void)
{
    add_def("S1", (const char *const[]){ "DriverID=SQLite",
            "Database=:memory:", "Pooled=True", "POOL_MaximumItems=4",
            "BusyTimeout=100", CHURN, NULL });
    add_def("S2", (const char *const[]){ "DriverID=SQLite",
            "Database=:memory:", "Pooled=True", "POOL_MaximumItems=3",
            "BusyTimeout=100", CHURN, NULL });
    add_def("F", (const char *const[]){ "DriverID=Fault", "Database=x",
            "Pooled=True", "POOL_MaximumItems=4", CHURN, NULL });
}

/* What one thread saw.  Written by that thread only, read after join. */
struct tally {
    long ok;                 /* successful connects */
    long full;               /* CDM_ERR_POOL_FULL */
    long queries;
    int errors;              /* anything else, or a wrong answer */
    char first[600];
};

static void tally_error(struct tally *t, const char *what, const char *def,
                        int rc)
{
    if (t->errors++ == 0)
        snprintf(t->first, sizeof t->first, "%s on %s: %s (%d): %s", what,
                 def, cdm_strerror(rc), rc, cdm_errmsg());
}

/* One query whose answer the caller can check: on SQLite the value sent
 * must come back; on Fault the connection's number is positive. */
static void query_check(struct tally *t, cdm_conn *c, const char *def,
                        long value)
{
    cdm_result *r = NULL;
    char sent[32];
    const char *v;
    bool fault_def = strcmp(cdm_conn_driver(c), "Fault") == 0;
    int rc;

    snprintf(sent, sizeof sent, "%ld", value);
    rc = fault_def ? cdm_query(c, "SELECT ID", NULL, 0, &r)
                   : cdm_query(c, "SELECT ?", (const char *const[]){ sent },
                               1, &r);
    if (rc != CDM_OK) {
        tally_error(t, "query", def, rc);
        return;
    }
    t->queries++;
    v = cdm_result_nrows(r) == 1 ? cdm_result_value(r, 0, 0) : NULL;
    if (!v || (fault_def ? atol(v) <= 0 : strcmp(v, sent) != 0)) {
        if (t->errors++ == 0)
            snprintf(t->first, sizeof t->first, "query on %s: sent %s, got %s",
                     def, fault_def ? "SELECT ID" : sent, v ? v : "no row");
    }
    cdm_result_free(r);
}

/* ------------------------------------------------------------ workers */

/* A worker borrows from one of `ndefs` definitions at random, sometimes
 * queries, returns; until `stop`.  Then, if `hold` is set, it borrows one
 * connection of every definition, meets the others at `barrier`, and
 * returns them (querying some first) while the manager is being freed. */
struct worker {
    pthread_t th;
    unsigned seed;
    int id;
    const char *const *defs;
    int ndefs;
    atomic_int *stop;
    pthread_barrier_t *barrier;   /* NULL: no hold phase */
    struct tally t;
};

static void tally_sum(struct tally *sum, const struct worker *w, int n)
{
    memset(sum, 0, sizeof *sum);
    for (int i = 0; i < n; i++) {
        sum->ok += w[i].t.ok;
        sum->full += w[i].t.full;
        sum->queries += w[i].t.queries;
        sum->errors += w[i].t.errors;
        if (w[i].t.errors && !sum->first[0])
            snprintf(sum->first, sizeof sum->first, "thread %d: %s", i,
                     w[i].t.first);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    cdm_conn *held[8] = { NULL };
    long n = 0;

    while (!atomic_load(w->stop)) {
        const char *def = w->defs[rand_r(&w->seed) % (unsigned)w->ndefs];
        cdm_conn *c;
        int rc = cdm_connect(m, def, &c);

        if (rc == CDM_ERR_POOL_FULL) {
            w->t.full++;
            continue;
        }
        if (rc != CDM_OK) {
            tally_error(&w->t, "connect", def, rc);
            continue;
        }
        w->t.ok++;
        switch (rand_r(&w->seed) % 8) {
        case 0: case 1:
            query_check(&w->t, c, def, (long)w->id * 100000000L + n++);
            break;
        case 2:
            /* Held a while, so that changes find it borrowed. */
            if (strcmp(cdm_conn_driver(c), "Fault") == 0 &&
                (rc = cdm_exec(c, "SLEEP 1", NULL, 0, NULL)) != CDM_OK)
                tally_error(&w->t, "SLEEP 1", def, rc);
            break;
        default:
            break;
        }
        cdm_disconnect(c);
    }
    if (!w->barrier)
        return NULL;
    for (int i = 0; i < w->ndefs; i++) {
        int rc = cdm_connect(m, w->defs[i], &held[i]);
        if (rc != CDM_OK) {
            held[i] = NULL;
            tally_error(&w->t, "connect before free", w->defs[i], rc);
        } else {
            w->t.ok++;
        }
    }
    pthread_barrier_wait(w->barrier);
    /* The manager is being freed now: these must stay valid. */
    for (int i = 0; i < w->ndefs; i++) {
        if (!held[i])
            continue;
        if ((w->id + i) % 2 == 0)
            query_check(&w->t, held[i], w->defs[i], 7700000L + w->id);
        cdm_disconnect(held[i]);
    }
    return NULL;
}

static void workers_start(struct worker *w, int n, const char *const *defs,
                          int ndefs, atomic_int *stop,
                          pthread_barrier_t *barrier)
{
    for (int i = 0; i < n; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i + 1;
        w[i].seed = (unsigned)(i * 7919 + 17);
        w[i].defs = defs;
        w[i].ndefs = ndefs;
        w[i].stop = stop;
        w[i].barrier = barrier;
        ck_assert_int_eq(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
    }
}

static void workers_join(struct worker *w, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(pthread_join(w[i].th, NULL), 0);
}

/* ------------------------------------------------------------ mutator */

struct mutator {
    pthread_t th;
    atomic_int *stop;
    long ops;
    int errors;
    char first[600];
};

static void mutation_error(long *ops, int *errors, char *first, size_t size,
                           const char *what, const char *def, int rc)
{
    (*ops)++;
    if (rc != CDM_OK && (*errors)++ == 0)
        snprintf(first, size, "%s on %s: %s: %s", what, def,
                 cdm_strerror(rc), cdm_errmsg());
}

/* One change, chosen by the step number `i`: parameter generations
 * (BusyTimeout on SQLite, Database on Fault), limits 1..6, close_def,
 * and now and then POOL_MaxLifetime. */
static void mutate(long i, long *ops, int *errors, char *first, size_t size)
{
    const char *d = race_defs[(i / 8) % 3];
    char v[16];
    int rc;

#define DONE(what, def) mutation_error(ops, errors, first, size, what, def, rc)
    switch (i % 8) {
    case 0:
    case 1:
        snprintf(v, sizeof v, "%ld", 100 + i % 97);
        rc = cdm_manager_set_param(m, i % 8 ? "S2" : "S1", "BusyTimeout", v);
        DONE("set BusyTimeout", i % 8 ? "S2" : "S1");
        break;
    case 2:
        rc = cdm_manager_set_param(m, "F", "Database", (i / 8) % 2 ? "x" : "y");
        DONE("set Database", "F");
        break;
    case 3:
    case 5:
        snprintf(v, sizeof v, "%ld", 1 + (i / 8 + i % 8) % 6);
        rc = cdm_manager_set_param(m, i % 8 == 3 ? d : "F",
                                   "POOL_MaximumItems", v);
        DONE("set POOL_MaximumItems", i % 8 == 3 ? d : "F");
        break;
    case 4:
        rc = cdm_manager_close_def(m, d);
        DONE("close_def", d);
        break;
    case 6:
        if ((i / 8) % 4 == 0) {
            rc = cdm_manager_set_param(m, d, "POOL_MaxLifetime",
                                       (i / 32) % 2 ? "2" : "3");
            DONE("set POOL_MaxLifetime", d);
        } else {
            rc = cdm_manager_close_def(m, "F");
            DONE("close_def", "F");
        }
        break;
    default:
        rc = cdm_manager_close_def(m, (i / 8) % 2 ? "S1" : "S2");
        DONE("close_def", (i / 8) % 2 ? "S1" : "S2");
        break;
    }
#undef DONE
}

static void *mutator_main(void *arg)
{
    struct mutator *x = arg;

    for (long i = 0; !atomic_load(x->stop); i++)
        mutate(i, &x->ops, &x->errors, x->first, sizeof x->first);
    return NULL;
}

/* --------------------------------------------------------------- tests */

/*
 * 8 workers on S1, S2 and F while the mutator changes generations and
 * limits and closes pools without pause, and the cleanup thread expires
 * connections every millisecond.  Every connect succeeds or times out;
 * afterwards nothing is borrowed, the Fault driver's own count of open
 * connections matches the pool's, and freeing the manager closes them all.
 */
START_TEST(test_race_connect_while_changing)
{
    enum { N = 8 };
    struct worker w[N];
    struct mutator x;
    struct tally sum;
    atomic_int stop;
    int64_t until;

    add_race_defs();
    atomic_init(&stop, 0);
    memset(&x, 0, sizeof x);
    x.stop = &stop;
    workers_start(w, N, race_defs, 3, &stop, NULL);
    ck_assert_int_eq(pthread_create(&x.th, NULL, mutator_main, &x), 0);
    until = tu_now_ms() + run_ms;
    while (tu_now_ms() < until)
        tu_sleep_ms(10);   /* the hammering lasts this long */
    atomic_store(&stop, 1);
    ck_assert_int_eq(pthread_join(x.th, NULL), 0);
    workers_join(w, N);

    tally_sum(&sum, w, N);
    printf("race: %ld connects, %ld queries, %ld POOL_FULL, %ld changes, "
           "%d Fault connects in %d ms\n", sum.ok, sum.queries, sum.full,
           x.ops, atomic_load(&fault.connects), run_ms);
    fflush(stdout);
    ck_assert_msg(sum.errors == 0, "%d worker errors, first: %s", sum.errors,
                  sum.first);
    ck_assert_msg(x.errors == 0, "%d failed changes, first: %s", x.errors,
                  x.first);
    for (int i = 0; i < N; i++)
        ck_assert_msg(w[i].t.ok > 0, "thread %d never connected", i);
    for (int i = 0; i < 3; i++) {
        cdm_pool_stats s = st(race_defs[i]);
        ck_assert_msg(s.in_use == 0 && s.waiting == 0 && s.opening == 0,
                      "%s at rest: in_use %lld waiting %lld opening %lld",
                      race_defs[i], (long long)s.in_use, (long long)s.waiting,
                      (long long)s.opening);
        ck_assert_int_eq(s.total, s.idle);
    }
    /* Counted by the driver, not the pool: a connection no pool knows of
     * is a leak.  The cleanup thread may be closing one right now, so
     * wait for the two counts to meet. */
    ck_eventually(atomic_load(&fault.open_now) == st("F").total, 10000);
    cdm_manager_free(m);
    m = NULL;
    ck_assert_int_eq(atomic_load(&fault.open_now), 0);
    ck_assert_int_eq(atomic_load(&fault.connects), atomic_load(&fault.closes));
}
END_TEST

/*
 * Rounds of: workers and changes as above for a moment, then every worker
 * borrows one connection of each definition, and the manager is freed
 * while they query on them and return them.  The contract: borrowed
 * connections outlive the manager and cdm_disconnect destroys them.
 */
START_TEST(test_race_free_while_returning)
{
    enum { N = 8 };
    int64_t until = tu_now_ms() + run_ms;
    int rounds = 0;
    long changes = 0;
    int changes_failed = 0;
    char first_change[600] = "";

    cdm_manager_free(m);   /* each round makes its own */
    m = NULL;
    do {
        struct worker w[N];
        struct tally sum;
        pthread_barrier_t barrier;
        atomic_int stop;
        int64_t round_end = tu_now_ms() + 100;

        ck_status(cdm_manager_new(&m), CDM_OK);
        add_race_defs();
        atomic_init(&stop, 0);
        ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, N + 1), 0);
        workers_start(w, N, race_defs, 3, &stop, &barrier);
        for (long i = rounds; tu_now_ms() < round_end; i++)
            mutate(i, &changes, &changes_failed, first_change,
                   sizeof first_change);
        /* Room for every worker to hold one of each. */
        for (int i = 0; i < 3; i++)
            ck_status(cdm_manager_set_param(m, race_defs[i],
                                            "POOL_MaximumItems", "-1"), CDM_OK);
        atomic_store(&stop, 1);
        pthread_barrier_wait(&barrier);
        cdm_manager_free(m);
        m = NULL;
        workers_join(w, N);
        pthread_barrier_destroy(&barrier);
        rounds++;

        tally_sum(&sum, w, N);
        ck_assert_msg(sum.errors == 0, "round %d: %d worker errors, first: %s",
                      rounds, sum.errors, sum.first);
        ck_assert_msg(atomic_load(&fault.open_now) == 0,
                      "round %d: %d Fault connections still open after the "
                      "free and every return", rounds,
                      atomic_load(&fault.open_now));
    } while (tu_now_ms() < until);
    printf("race: %d rounds of free-while-returning, %ld changes, "
           "%d Fault connects\n", rounds, changes,
           atomic_load(&fault.connects));
    fflush(stdout);
    ck_assert_msg(changes_failed == 0, "%d failed changes, first: %s",
                  changes_failed, first_change);
    ck_assert_int_eq(atomic_load(&fault.connects), atomic_load(&fault.closes));
}
END_TEST

/* Watches the Fault driver's count of open connections without pause. */
struct monitor {
    pthread_t th;
    atomic_int *stop;
    int max;
    long samples;
};

static void *monitor_main(void *arg)
{
    struct monitor *k = arg;

    while (!atomic_load(k->stop)) {
        int n = atomic_load(&fault.open_now);
        if (n > k->max)
            k->max = n;
        k->samples++;
        sched_yield();
    }
    return NULL;
}

/*
 * 16 threads on one Fault pool whose POOL_MaximumItems moves between 2
 * and 6 while close_def runs in a loop: physical connections, counted by
 * the driver, never exceed the largest limit in force.  A detached pool's
 * borrowed connections are still open, so they count.
 */
START_TEST(test_limit_is_a_bound)
{
    enum { N = 16, MOST = 6 };
    static const char *const defs[] = { "F" };
    struct worker w[N];
    struct monitor k;
    struct tally sum;
    atomic_int stop;
    long ops = 0;
    int errors = 0;
    char first[600] = "";
    int64_t until;

    /* No cleanup churn here: this test is about the bound, not about
     * the cleanup thread (the race tests above cover that). */
    add_def("F", (const char *const[]){ "DriverID=Fault", "Database=x",
            "Pooled=True", "POOL_MaximumItems=4", "POOL_AcquireTimeout=5000",
            NULL });
    atomic_init(&stop, 0);
    memset(&k, 0, sizeof k);
    k.stop = &stop;
    ck_assert_int_eq(pthread_create(&k.th, NULL, monitor_main, &k), 0);
    workers_start(w, N, defs, 1, &stop, NULL);
    until = tu_now_ms() + run_ms;
    for (long i = 0; tu_now_ms() < until; i++) {
        char v[16];
        int rc;
        if (i % 2) {
            snprintf(v, sizeof v, "%ld", 2 + (i / 2) % (MOST - 1));
            rc = cdm_manager_set_param(m, "F", "POOL_MaximumItems", v);
            mutation_error(&ops, &errors, first, sizeof first,
                           "set POOL_MaximumItems", "F", rc);
        } else {
            rc = cdm_manager_close_def(m, "F");
            mutation_error(&ops, &errors, first, sizeof first, "close_def",
                           "F", rc);
        }
    }
    atomic_store(&stop, 1);
    workers_join(w, N);
    ck_assert_int_eq(pthread_join(k.th, NULL), 0);

    tally_sum(&sum, w, N);
    printf("limit: %ld connects, %ld POOL_FULL, %ld changes; open "
           "connections: at most %d seen in %ld samples, driver's peak %d "
           "(limit %d)\n", sum.ok, sum.full, ops, k.max, k.samples,
           atomic_load(&fault.open_peak), MOST);
    fflush(stdout);
    ck_assert_msg(sum.errors == 0, "%d worker errors, first: %s", sum.errors,
                  sum.first);
    ck_assert_msg(errors == 0, "%d failed changes, first: %s", errors, first);
    ck_assert_msg(k.max <= MOST, "%d physical connections open at once "
                  "(sampled), the largest limit in force is %d", k.max, MOST);
    ck_assert_msg(atomic_load(&fault.open_peak) <= MOST,
                  "%d physical connections open at once (driver's peak), "
                  "the largest limit in force is %d",
                  atomic_load(&fault.open_peak), MOST);
    ck_assert_int_eq(st("F").in_use, 0);
    cdm_manager_free(m);
    m = NULL;
    ck_assert_int_eq(atomic_load(&fault.open_now), 0);
}
END_TEST

/* ---------------------------------------------------------------- main */

int main(void)
{
    Suite *s = suite_create("race");
    TCase *tr = tcase_create("race");
    TCase *tf = tcase_create("free");
    TCase *tl = tcase_create("limit");
    TCase *all[] = { tr, tf, tl };

    /* CDM_RACE_SECONDS (e.g. "0.5" or "20"), else 2.5 s. */
    run_ms = tu_env_ms("CDM_RACE_SECONDS", 2500, 50);
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        /* The hammering time plus room for slow (sanitized) builds. */
        tcase_set_timeout(all[i], run_ms / 1000.0 * 3 + 30);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_test(tr, test_race_connect_while_changing);
    tcase_add_test(tf, test_race_free_while_returning);
    tcase_add_test(tl, test_limit_is_a_bound);
    return tu_run(s);
}
