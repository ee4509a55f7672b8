/* check_pool.c - the connection pool (borrow, limits, FIFO waiting, validation, return, cleanup, live changes, close, stress) on the fault driver and SQLite. */
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

/* Every test starts from a zeroed fault driver and an empty manager. */
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

/* Adds the pooled Fault definition `name` (Database=x) with the extra
 * "Key=Value" parameters in the NULL-terminated `extra`. */
static void add_pool(const char *name, const char *const *extra)
{
    const char *p[32] = { "DriverID=Fault", "Database=x", "Pooled=True" };
    size_t n = 3;

    for (size_t i = 0; extra && extra[i]; i++) {
        ck_assert_uint_lt(n, 31);
        p[n++] = extra[i];
    }
    p[n] = NULL;
    ck_status(cdm_manager_add_def(m, name, p), CDM_OK);
}

#define POOL(name, ...) add_pool((name), (const char *const[]){ __VA_ARGS__, NULL })

static cdm_pool_stats st(const char *name)
{
    cdm_pool_stats s;

    memset(&s, 0x5a, sizeof s);
    ck_status(cdm_manager_pool_stats(m, name, &s), CDM_OK);
    return s;
}

static void ck_stats_zero(const char *name)
{
    cdm_pool_stats s = st(name), zero;

    memset(&zero, 0, sizeof zero);
    ck_assert_msg(memcmp(&s, &zero, sizeof s) == 0,
                  "stats of %s not all zero: total %lld idle %lld in_use %lld "
                  "acquired %lld created %lld", name, (long long)s.total,
                  (long long)s.idle, (long long)s.in_use,
                  (long long)s.acquired, (long long)s.created);
}

/* Asserts that `name` has no pool serving it now: the gauges are zero
 * (the counters run on, see test_counters_run_on_*). */
static void ck_gauges_zero(const char *name)
{
    cdm_pool_stats s = st(name);

    ck_assert_msg(s.total == 0 && s.idle == 0 && s.in_use == 0 &&
                  s.waiting == 0 && s.opening == 0,
                  "gauges of %s not all zero: total %lld idle %lld in_use "
                  "%lld waiting %lld opening %lld", name, (long long)s.total,
                  (long long)s.idle, (long long)s.in_use,
                  (long long)s.waiting, (long long)s.opening);
}

/* Asserts that `name` is not pooled: no figures, CDM_ERR_STATE. */
static void ck_not_pooled(const char *name)
{
    cdm_pool_stats s;

    ck_status(cdm_manager_pool_stats(m, name, &s), CDM_ERR_STATE);
    ck_errmsg_has("is not pooled");
    ck_errmsg_has(name);
}

/* A connection to `name`, asserting success. */
static cdm_conn *get(const char *name)
{
    cdm_conn *c = NULL;

    ck_status(cdm_connect(m, name, &c), CDM_OK);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* The number a one-row query returns, or -1 on any failure.  Asserts
 * nothing, so threads may use it. */
static long try_num(cdm_conn *c, const char *sql)
{
    cdm_result *r = NULL;
    const char *v;
    long n = -1;

    if (cdm_query(c, sql, NULL, 0, &r) != CDM_OK)
        return -1;
    if (cdm_result_nrows(r) == 1 && (v = cdm_result_value(r, 0, 0)))
        n = strtol(v, NULL, 10);
    cdm_result_free(r);
    return n;
}

static long num(cdm_conn *c, const char *sql)
{
    long n = try_num(c, sql);

    ck_assert_msg(n >= 0, "%s failed: %s", sql, cdm_errmsg());
    return n;
}

#define ID(c) num((c), "SELECT ID")

/* A thread that connects once and keeps what it got. */
struct job {
    pthread_t th;
    const char *name;
    int rc;
    long id;               /* SELECT ID of the connection it got */
    cdm_conn *c;
    int64_t t0, t1;        /* around cdm_connect */
    char err[512];
    atomic_int done;
};

static void *job_main(void *arg)
{
    struct job *j = arg;

    j->t0 = tu_now_ms();
    j->rc = cdm_connect(m, j->name, &j->c);
    j->t1 = tu_now_ms();
    if (j->rc == CDM_OK)
        j->id = try_num(j->c, "SELECT ID");
    else
        snprintf(j->err, sizeof j->err, "%s", cdm_errmsg());
    atomic_store(&j->done, 1);
    return NULL;
}

static void job_start(struct job *j, const char *name)
{
    memset(j, 0, sizeof *j);
    atomic_init(&j->done, 0);
    j->name = name;
    j->rc = -100;
    ck_assert_int_eq(pthread_create(&j->th, NULL, job_main, j), 0);
}

static void job_join(struct job *j)
{
    ck_assert_int_eq(pthread_join(j->th, NULL), 0);
}

/* A thread running cdm_manager_close. */
struct closer {
    pthread_t th;
    int timeout_ms;
    int rc;
    int64_t t0, t1;
};

static void *closer_main(void *arg)
{
    struct closer *k = arg;

    k->t0 = tu_now_ms();
    k->rc = cdm_manager_close(m, k->timeout_ms);
    k->t1 = tu_now_ms();
    return NULL;
}

/* ------------------------------------------------------------- basics */

START_TEST(test_first_connect_builds_pool)
{
    cdm_pool_stats s;
    cdm_conn *c;

    POOL("P", "POOL_MaximumItems=4");
    ck_stats_zero("P");
    ck_assert_int_eq(fault.connects, 0);

    c = get("P");
    s = st("P");
    ck_assert_int_eq(s.total, 1);
    ck_assert_int_eq(s.in_use, 1);
    ck_assert_int_eq(s.idle, 0);
    ck_assert_int_eq(s.waiting, 0);
    ck_assert_int_eq(s.created, 1);
    ck_assert_int_eq(s.acquired, 1);
    ck_assert_int_eq(s.destroyed, 0);
    ck_assert_int_eq(s.timeouts, 0);
    ck_assert_int_eq(fault.connects, 1);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_disconnect_returns_to_pool)
{
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    cdm_disconnect(get("P"));
    s = st("P");
    ck_assert_int_eq(s.total, 1);
    ck_assert_int_eq(s.idle, 1);
    ck_assert_int_eq(s.in_use, 0);
    ck_assert_int_eq(fault.closes, 0);
    ck_assert_int_eq(fault.open_now, 1);
}
END_TEST

START_TEST(test_next_connect_reuses)
{
    cdm_conn *c;
    long id;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    c = get("P");
    id = ID(c);
    cdm_disconnect(c);
    c = get("P");
    ck_assert_int_eq(ID(c), id);
    ck_assert_int_eq(fault.connects, 1);
    s = st("P");
    ck_assert_int_eq(s.acquired, 2);
    ck_assert_int_eq(s.created, 1);
    ck_assert_int_eq(s.in_use, 1);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_lifo_most_recent_first)
{
    cdm_conn *a, *b;
    long ida, idb;

    POOL("P", "POOL_MaximumItems=4");
    a = get("P");
    b = get("P");
    ida = ID(a);
    idb = ID(b);
    ck_assert_int_ne(ida, idb);
    cdm_disconnect(a);
    cdm_disconnect(b);               /* b is the most recently returned */
    a = get("P");
    ck_assert_int_eq(ID(a), idb);
    b = get("P");
    ck_assert_int_eq(ID(b), ida);
    ck_assert_int_eq(fault.connects, 2);
    cdm_disconnect(a);
    cdm_disconnect(b);
}
END_TEST

START_TEST(test_lifo_order_of_three)
{
    cdm_conn *c[3];
    long id[3], got[3];

    POOL("P", "POOL_MaximumItems=4");
    for (int i = 0; i < 3; i++) {
        c[i] = get("P");
        id[i] = ID(c[i]);
    }
    for (int i = 0; i < 3; i++)
        cdm_disconnect(c[i]);           /* returned 1, 2, 3 */
    for (int i = 0; i < 3; i++)
        c[i] = get("P");
    for (int i = 0; i < 3; i++)
        got[i] = ID(c[i]);
    for (int i = 0; i < 3; i++)
        cdm_disconnect(c[i]);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(got[i] == id[2 - i], "borrow %d got connection %ld, "
                      "want %ld (the most recently returned idle one)", i + 1,
                      got[i], id[2 - i]);
    ck_assert_int_eq(fault.connects, 3);
}
END_TEST

static void *disconnect_main(void *arg)
{
    cdm_disconnect(arg);
    return NULL;
}

START_TEST(test_lifo_across_threads)
{
    cdm_conn *a, *b;
    long ida, idb, got;
    pthread_t th;
    struct job j;

    /* The documented rule: a thread first gets back the connection it
     * returned last, if that one is idle (its own warm connection, taken
     * without a shared lock); otherwise the most recently returned one. */
    POOL("P", "POOL_MaximumItems=4");
    a = get("P");
    b = get("P");
    ida = ID(a);
    idb = ID(b);
    cdm_disconnect(a);
    /* Another thread returns b after a came back: b is the most recent. */
    ck_assert_int_eq(pthread_create(&th, NULL, disconnect_main, b), 0);
    pthread_join(th, NULL);
    ck_assert_int_eq(st("P").idle, 2);
    a = get("P");
    got = ID(a);
    cdm_disconnect(a);
    ck_assert_msg(got == ida, "got connection %ld, want %ld (this thread's "
                  "own last connection)", got, ida);
    /* A thread that has returned nothing to the pool gets the most
     * recently returned connection: return b last and ask from a new
     * thread. */
    a = get("P");
    b = get("P");
    ck_assert_int_eq(ID(b), idb);
    cdm_disconnect(a);
    cdm_disconnect(b);
    job_start(&j, "P");
    job_join(&j);
    ck_status(j.rc, CDM_OK);
    ck_assert_msg(j.id == idb, "a fresh thread got connection %ld, want %ld "
                  "(returned last)", j.id, idb);
    cdm_disconnect(j.c);
}
END_TEST

START_TEST(test_name_case_insensitive_one_pool)
{
    cdm_conn *c;
    long id;

    POOL("Orders", "POOL_MaximumItems=4");
    c = get("orders");
    id = ID(c);
    cdm_disconnect(c);
    c = get("ORDERS");
    ck_assert_int_eq(ID(c), id);
    ck_assert_int_eq(fault.connects, 1);
    ck_assert_int_eq(st("Orders").acquired, 2);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_unpooled_opens_and_closes)
{
    cdm_conn *c;

    ck_status(cdm_manager_add_def(m, "U", (const char *[]){
                  "DriverID=Fault", "Database=x", "Pooled=False", NULL }),
              CDM_OK);
    c = get("U");
    ck_assert_int_eq(ID(c), 1);
    ck_assert_int_eq(fault.connects, 1);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.closes, 1);
    ck_assert_int_eq(fault.open_now, 0);
    c = get("U");
    ck_assert_int_eq(ID(c), 2);
    ck_assert_int_eq(fault.connects, 2);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.closes, 2);
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

START_TEST(test_unpooled_not_in_stats)
{
    cdm_conn *u, *p;

    ck_status(cdm_manager_add_def(m, "U", (const char *[]){
                  "DriverID=Fault", "Database=x", NULL }), CDM_OK);
    POOL("P", "POOL_MaximumItems=4");
    u = get("U");
    ck_not_pooled("U");
    p = get("P");
    ck_assert_int_eq(st("P").total, 1);
    cdm_disconnect(u);
    ck_not_pooled("U");
    ck_assert_int_eq(st("P").total, 1);
    ck_assert_int_eq(st("P").in_use, 1);
    cdm_disconnect(p);
}
END_TEST

/* -------------------------------------------------- limits and waiting */

struct burst {
    pthread_barrier_t *go;
    int rc;
};

static void *burst_main(void *arg)
{
    struct burst *b = arg;
    cdm_conn *c;

    pthread_barrier_wait(b->go);
    b->rc = cdm_connect(m, "P", &c);
    if (b->rc == CDM_OK) {
        if (cdm_exec(c, "SLEEP 20", NULL, 0, NULL) != CDM_OK)
            b->rc = -1;
        cdm_disconnect(c);
    }
    return NULL;
}

START_TEST(test_max_counts_connections_being_opened)
{
    enum { N = 16 };
    pthread_barrier_t go;
    pthread_t th[N];
    struct burst b[N];
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4", "POOL_AcquireTimeout=10000");
    atomic_store(&fault.connect_delay_ms, 100);
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        b[i].go = &go;
        b[i].rc = -100;
        ck_assert_int_eq(pthread_create(&th[i], NULL, burst_main, &b[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < N; i++)
        ck_assert_msg(b[i].rc == CDM_OK, "thread %d: rc %d", i, b[i].rc);
    ck_assert_int_le(fault.open_peak, 4);
    ck_assert_int_le(fault.connect_attempts, 4);
    s = st("P");
    ck_assert_int_le(s.total, 4);
    ck_assert_int_eq(s.acquired, N);
    ck_assert_int_eq(s.in_use, 0);
    ck_assert_int_eq(s.waiting, 0);
}
END_TEST

START_TEST(test_full_fails_at_once_with_zero_timeout)
{
    cdm_conn *c, *c2 = NULL;
    int64_t t0;
    cdm_pool_stats s;

    POOL("Orders", "POOL_MaximumItems=1", "POOL_AcquireTimeout=0");
    c = get("Orders");
    t0 = tu_now_ms();
    ck_status(cdm_connect(m, "Orders", &c2), CDM_ERR_POOL_FULL);
    ck_assert_int_lt(tu_now_ms() - t0, 1000);
    ck_assert_ptr_null(c2);
    ck_errmsg_has("Orders");
    s = st("Orders");
    ck_assert_int_eq(s.timeouts, 1);
    ck_assert_int_eq(s.waiting, 0);
    ck_assert_int_eq(s.total, 1);
    ck_assert_int_eq(fault.connect_attempts, 1);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_full_waits_then_fails)
{
    cdm_conn *c, *c2 = NULL;
    int64_t t0, took;
    cdm_pool_stats s;

    POOL("Orders", "POOL_MaximumItems=1", "POOL_AcquireTimeout=300");
    c = get("Orders");
    t0 = tu_now_ms();
    ck_status(cdm_connect(m, "Orders", &c2), CDM_ERR_POOL_FULL);
    took = tu_now_ms() - t0;
    ck_assert_msg(took >= 250, "waited only %lld ms", (long long)took);
    ck_errmsg_has("Orders");
    s = st("Orders");
    ck_assert_int_eq(s.timeouts, 1);
    ck_assert_int_eq(s.waiting, 0);
    ck_assert_int_eq(s.in_use, 1);
    cdm_disconnect(c);
    /* The timed-out waiter left the queue: the next connect is served. */
    c = get("Orders");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_waiter_gets_returned_connection)
{
    struct job j;
    cdm_conn *c;
    long id;
    int64_t t;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=1", "POOL_AcquireTimeout=10000");
    c = get("P");
    id = ID(c);
    job_start(&j, "P");
    ck_eventually(st("P").waiting == 1, 10000);
    t = tu_now_ms();
    cdm_disconnect(c);
    job_join(&j);
    ck_status(j.rc, CDM_OK);
    ck_assert_int_eq(j.id, id);
    ck_assert_int_lt(j.t1 - t, 2000);
    ck_assert_int_eq(fault.connects, 1);
    s = st("P");
    ck_assert_int_eq(s.acquired, 2);
    ck_assert_int_eq(s.in_use, 1);
    ck_assert_int_eq(s.waiting, 0);
    ck_assert_int_gt(s.wait_ns_total, 0);
    cdm_disconnect(j.c);
}
END_TEST

START_TEST(test_waiters_served_in_arrival_order)
{
    enum { N = 5 };
    struct job j[N];
    cdm_conn *held[N];
    long ids[N];

    POOL("P", "POOL_MaximumItems=5", "POOL_AcquireTimeout=10000");
    for (int i = 0; i < N; i++) {
        held[i] = get("P");
        ids[i] = ID(held[i]);
    }
    for (int i = 0; i < N; i++) {
        job_start(&j[i], "P");
        ck_eventually(st("P").waiting == i + 1, 10000);
    }
    /* Returned in reverse order of opening: waiter k gets the k-th one
     * returned, whatever its number. */
    for (int k = 0; k < N; k++) {
        cdm_disconnect(held[N - 1 - k]);
        ck_eventually(atomic_load(&j[k].done), 10000);
        ck_status(j[k].rc, CDM_OK);
        ck_assert_msg(j[k].id == ids[N - 1 - k],
                      "waiter %d got connection %ld, want %ld", k, j[k].id,
                      ids[N - 1 - k]);
        for (int l = k + 1; l < N; l++)
            ck_assert_msg(!atomic_load(&j[l].done),
                          "waiter %d served before waiter %d", l, k + 1);
        ck_assert_int_eq(st("P").waiting, N - 1 - k);
    }
    for (int i = 0; i < N; i++) {
        job_join(&j[i]);
        cdm_disconnect(j[i].c);
    }
    ck_assert_int_eq(fault.connects, N);
}
END_TEST

START_TEST(test_negative_max_is_unlimited)
{
    enum { N = 60 };
    cdm_conn *c[N];
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=-1", "POOL_AcquireTimeout=0");
    for (int i = 0; i < N; i++)
        c[i] = get("P");
    s = st("P");
    ck_assert_int_eq(s.total, N);
    ck_assert_int_eq(s.in_use, N);
    ck_assert_int_eq(fault.open_now, N);
    for (int i = 0; i < N; i++)
        cdm_disconnect(c[i]);
    ck_assert_int_eq(st("P").idle, N);
}
END_TEST

START_TEST(test_negative_max_no_hidden_cap)
{
    enum { N = 5000 };
    cdm_conn **c = calloc(N, sizeof *c);
    int n = 0, rc = CDM_OK;

    ck_assert_ptr_nonnull(c);
    POOL("P", "POOL_MaximumItems=-1", "POOL_AcquireTimeout=0");
    while (n < N && (rc = cdm_connect(m, "P", &c[n])) == CDM_OK)
        n++;
    for (int i = 0; i < n; i++)
        cdm_disconnect(c[i]);
    free(c);
    ck_assert_msg(n == N, "connect %d failed: %s: %s", n + 1, cdm_strerror(rc),
                  cdm_errmsg());
    ck_assert_int_eq(st("P").idle, N);
}
END_TEST

START_TEST(test_zero_max_is_invalid)
{
    cdm_conn *c = NULL;

    /* Refused where it is given, saying why. */
    ck_status(cdm_manager_add_def(m, "P", (const char *[]){
                  "DriverID=Fault", "Database=x", "Pooled=True",
                  "POOL_MaximumItems=0", NULL }), CDM_ERR_INVALID);
    ck_errmsg_has("definition 'P': POOL_MaximumItems=0 would never give a "
                  "connection (use a negative value for no limit)");
    ck_assert_int_eq(cdm_manager_has_def(m, "P"), 0);
    ck_status(cdm_connect(m, "P", &c), CDM_ERR_NOT_FOUND);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(fault.connect_attempts, 0);
}
END_TEST

START_TEST(test_failed_connect_frees_its_slot)
{
    cdm_conn *a, *b = NULL;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=2", "POOL_AcquireTimeout=0");
    a = get("P");
    atomic_store(&fault.connect_failures, 1);
    ck_status(cdm_connect(m, "P", &b), CDM_ERR_CONNECT);
    ck_assert_ptr_null(b);
    ck_errmsg_has("connection refused (injected)");
    s = st("P");
    ck_assert_int_eq(s.total, 1);
    ck_assert_int_eq(s.opening, 0);
    ck_assert_int_eq(s.in_use, 1);
    /* The slot is free again: with a limit of 2 and no waiting, this
     * connect would fail if the failed one still counted. */
    b = get("P");
    ck_assert_int_eq(st("P").total, 2);
    cdm_disconnect(a);
    cdm_disconnect(b);
}
END_TEST

START_TEST(test_failed_connect_wakes_waiter)
{
    struct job a, b;

    POOL("P", "POOL_MaximumItems=1", "POOL_AcquireTimeout=10000");
    atomic_store(&fault.connect_hold, true);
    atomic_store(&fault.connect_failures, 1);
    job_start(&a, "P");
    ck_eventually(st("P").opening == 1, 5000);
    job_start(&b, "P");
    ck_eventually(st("P").waiting == 1, 5000);
    atomic_store(&fault.connect_hold, false);
    job_join(&a);
    job_join(&b);
    ck_status(a.rc, CDM_ERR_CONNECT);
    ck_assert_msg(strstr(a.err, "connection refused (injected)"), "%s", a.err);
    ck_status(b.rc, CDM_OK);             /* served, not timed out */
    ck_assert_int_eq(st("P").total, 1);
    cdm_disconnect(b.c);
}
END_TEST

/* ------------------------------------------------ validation on borrow */

START_TEST(test_dead_idle_connection_replaced)
{
    cdm_conn *c;
    long id;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    c = get("P");
    id = ID(c);
    cdm_disconnect(c);
    fault_kill_all();                   /* the server restarted */
    c = get("P");                       /* no error for the caller */
    ck_assert_int_ne(ID(c), id);
    ck_assert_int_eq(fault.closes, 1);
    s = st("P");
    ck_assert_int_eq(s.destroyed, 1);
    ck_assert_int_eq(s.created, 2);
    ck_assert_int_eq(s.total, 1);
    ck_assert_int_eq(s.in_use, 1);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_ping_interval_zero_pings_every_borrow)
{
    int before;

    POOL("P", "POOL_MaximumItems=4", "POOL_PingInterval=0");
    cdm_disconnect(get("P"));
    before = fault.pings;
    for (int i = 1; i <= 3; i++) {
        cdm_disconnect(get("P"));
        ck_assert_int_eq(fault.pings, before + i);
    }
    ck_assert_int_eq(fault.connects, 1);
}
END_TEST

START_TEST(test_ping_default_skips_short_idle)
{
    POOL("P", "POOL_MaximumItems=4");
    cdm_disconnect(get("P"));
    cdm__test_advance_ms(50);
    cdm_disconnect(get("P"));
    ck_assert_int_eq(fault.pings, 0);
    ck_assert_int_gt(fault.alive_checks, 0);   /* checked locally instead */
}
END_TEST

START_TEST(test_ping_after_interval_elapsed)
{
    POOL("P", "POOL_MaximumItems=4", "POOL_PingInterval=600000");
    cdm_disconnect(get("P"));
    cdm_disconnect(get("P"));           /* idle for far less than 10 min */
    ck_assert_int_eq(fault.pings, 0);
    cdm__test_advance_ms(700000);
    cdm_disconnect(get("P"));
    ck_assert_int_eq(fault.pings, 1);
}
END_TEST

START_TEST(test_ping_negative_never)
{
    POOL("P", "POOL_MaximumItems=4", "POOL_PingInterval=-1");
    cdm_disconnect(get("P"));
    cdm__test_advance_ms(300);
    cdm_disconnect(get("P"));
    cdm_disconnect(get("P"));
    ck_assert_int_eq(fault.pings, 0);
}
END_TEST

START_TEST(test_failed_ping_replaced)
{
    cdm_conn *c;
    long id;

    POOL("P", "POOL_MaximumItems=4", "POOL_PingInterval=0");
    c = get("P");
    id = ID(c);
    cdm_disconnect(c);
    atomic_store(&fault.ping_failures, 1);
    c = get("P");
    ck_assert_int_ne(ID(c), id);
    ck_assert_int_ge(fault.pings, 1);
    ck_assert_int_eq(fault.closes, 1);
    ck_assert_int_eq(st("P").destroyed, 1);
    ck_assert_int_eq(st("P").total, 1);
    cdm_disconnect(c);
}
END_TEST

/* -------------------------------------------------------------- return */

START_TEST(test_open_transaction_rolled_back)
{
    cdm_conn *c;
    long id;

    POOL("P", "POOL_MaximumItems=4");
    c = get("P");
    id = ID(c);
    ck_status(cdm_begin(c), CDM_OK);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.rollbacks, 1);
    ck_assert_int_eq(fault.closes, 0);
    c = get("P");
    ck_assert_int_eq(ID(c), id);
    ck_status(cdm_begin(c), CDM_OK);    /* not still inside the old one */
    ck_status(cdm_commit(c), CDM_OK);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.rollbacks, 1);
}
END_TEST

START_TEST(test_sql_begin_rolled_back)
{
    cdm_conn *c;

    POOL("P", "POOL_MaximumItems=4");
    c = get("P");
    ck_status(cdm_exec(c, "BEGIN", NULL, 0, NULL), CDM_OK);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.rollbacks, 1);
    ck_assert_int_eq(st("P").idle, 1);
}
END_TEST

START_TEST(test_no_rollback_without_transaction)
{
    cdm_conn *c;

    POOL("P", "POOL_MaximumItems=4");
    c = get("P");
    ID(c);
    ck_status(cdm_exec(c, "UPDATE", NULL, 0, NULL), CDM_OK);
    cdm_disconnect(c);
    c = get("P");
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_commit(c), CDM_OK);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.rollbacks, 0);
}
END_TEST

START_TEST(test_failed_rollback_destroys)
{
    cdm_conn *c;
    long id;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    c = get("P");
    id = ID(c);
    ck_status(cdm_begin(c), CDM_OK);
    atomic_store(&fault.rollback_failures, 1);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.rollbacks, 1);
    ck_assert_int_eq(fault.closes, 1);
    s = st("P");
    ck_assert_int_eq(s.total, 0);
    ck_assert_int_eq(s.destroyed, 1);
    c = get("P");
    ck_assert_int_ne(ID(c), id);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_reset_on_release)
{
    cdm_conn *c;
    long id;

    POOL("P", "POOL_MaximumItems=4", "POOL_ResetOnRelease=True");
    c = get("P");
    id = ID(c);
    ck_status(cdm_exec(c, "SET", NULL, 0, NULL), CDM_OK);
    ck_assert_int_eq(num(c, "SELECT SESSION"), 1);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.resets, 1);
    c = get("P");
    ck_assert_int_eq(ID(c), id);
    ck_assert_int_eq(num(c, "SELECT SESSION"), 0);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_no_reset_unless_asked)
{
    cdm_conn *c;

    POOL("P", "POOL_MaximumItems=4", "POOL_ResetOnRelease=False");
    POOL("D", "POOL_MaximumItems=4");   /* the default */
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "D" : "P";
        c = get(name);
        ck_status(cdm_exec(c, "SET", NULL, 0, NULL), CDM_OK);
        cdm_disconnect(c);
        c = get(name);
        ck_assert_int_eq(num(c, "SELECT SESSION"), 1);
        cdm_disconnect(c);
    }
    ck_assert_int_eq(fault.resets, 0);
}
END_TEST

START_TEST(test_broken_connection_not_pooled)
{
    cdm_conn *c;
    long id;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    c = get("P");
    id = ID(c);
    ck_status(cdm_exec(c, "DIE", NULL, 0, NULL), CDM_ERR_BROKEN);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.closes, 1);
    s = st("P");
    ck_assert_int_eq(s.total, 0);
    ck_assert_int_eq(s.idle, 0);
    ck_assert_int_eq(s.destroyed, 1);
    c = get("P");
    ck_assert_int_ne(ID(c), id);
    ck_assert_int_eq(fault.connects, 2);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_broken_return_lets_waiter_open)
{
    struct job j;
    cdm_conn *c;
    long id;

    POOL("P", "POOL_MaximumItems=1", "POOL_AcquireTimeout=10000");
    c = get("P");
    id = ID(c);
    job_start(&j, "P");
    ck_eventually(st("P").waiting == 1, 10000);
    ck_status(cdm_exec(c, "DIE", NULL, 0, NULL), CDM_ERR_BROKEN);
    cdm_disconnect(c);
    job_join(&j);
    ck_status(j.rc, CDM_OK);
    ck_assert_int_ne(j.id, id);          /* a fresh one, not the dead one */
    ck_assert_int_gt(j.id, 0);
    cdm_disconnect(j.c);
}
END_TEST

START_TEST(test_max_lifetime_retires_on_return)
{
    cdm_conn *c;
    long id;

    POOL("P", "POOL_MaximumItems=4", "POOL_MaxLifetime=600000");
    c = get("P");
    id = ID(c);
    cdm_disconnect(c);                   /* young: kept */
    ck_assert_int_eq(fault.closes, 0);
    ck_assert_int_eq(st("P").idle, 1);
    c = get("P");
    ck_assert_int_eq(ID(c), id);
    cdm__test_advance_ms(700000);
    cdm_disconnect(c);                   /* older than 10 min: closed */
    ck_assert_int_eq(fault.closes, 1);
    ck_assert_int_eq(st("P").total, 0);
}
END_TEST

/* ------------------------------------------------------ cleanup thread */

START_TEST(test_expired_idle_closed)
{
    cdm_conn *c[3];

    POOL("P", "POOL_MaximumItems=4", "POOL_ExpireTimeout=600000",
         "POOL_CleanupTimeout=3600000");
    for (int i = 0; i < 3; i++)
        c[i] = get("P");
    for (int i = 0; i < 3; i++)
        cdm_disconnect(c[i]);
    ck_assert_int_eq(st("P").idle, 3);
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_assert_int_eq(st("P").idle, 3);   /* not expired yet */
    cdm__test_advance_ms(600000);
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_assert_int_eq(st("P").total, 0);
    ck_assert_int_eq(fault.closes, 3);
    ck_assert_int_eq(st("P").destroyed, 3);
}
END_TEST

START_TEST(test_minimum_items_kept_open)
{
    cdm_conn *c[4];
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=10", "POOL_MinimumItems=2",
         "POOL_ExpireTimeout=600000", "POOL_CleanupTimeout=3600000");
    cdm_disconnect(get("P"));
    /* The cleanup opens the second one by itself. */
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_assert_int_eq(st("P").idle, 2);
    for (int i = 0; i < 4; i++)
        c[i] = get("P");
    for (int i = 0; i < 4; i++)
        cdm_disconnect(c[i]);
    ck_assert_int_eq(st("P").total, 4);
    cdm__test_advance_ms(600000);
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_assert_int_eq(st("P").total, 2);
    for (int i = 0; i < 3; i++) {        /* several more runs */
        cdm__test_advance_ms(600000);
        ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    }
    s = st("P");
    ck_assert_int_eq(s.total, 2);
    ck_assert_int_eq(s.idle, 2);
    ck_assert_int_eq(fault.open_now, 2);
}
END_TEST

START_TEST(test_minimum_items_filled_in_one_run)
{
    cdm_conn *c;

    POOL("P", "POOL_MaximumItems=10", "POOL_MinimumItems=3",
         "POOL_ExpireTimeout=600000", "POOL_CleanupTimeout=3600000");
    c = get("P");                        /* borrowed: none idle */
    ck_assert_int_eq(st("P").idle, 0);
    /* One cleanup run tops the pool up; not one connection per run. */
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_assert_int_eq(st("P").idle, 3);
    ck_assert_int_eq(fault.open_now, 4);
    cdm_disconnect(c);
}
END_TEST

static int log_lines_with(struct tu_log *log, const char *a, const char *b)
{
    int n = 0;

    pthread_mutex_lock(&log->lock);
    for (int i = 0; i < log->n; i++)
        if (strstr(log->lines[i], a) && strstr(log->lines[i], b) &&
            log->levels[i] == CDM_LOG_WARN)
            n++;
    pthread_mutex_unlock(&log->lock);
    return n;
}

START_TEST(test_leak_logged_once)
{
    struct tu_log log;
    cdm_conn *c;

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    POOL("Leaky", "POOL_MaximumItems=4", "POOL_LeakTimeout=600000",
         "POOL_CleanupTimeout=3600000");
    c = get("Leaky");
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "Leaky"), 0);   /* not yet */
    cdm__test_advance_ms(700000);
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "Leaky"), 1);
    for (int i = 0; i < 3; i++)          /* more cleanup runs */
        ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "Leaky"), 1);
    ck_assert_int_eq(log_lines_with(&log, "Leaky", "600000"), 1);
    cdm_disconnect(c);
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "Leaky"), 1);
    cdm_manager_set_log(m, NULL, NULL);
}
END_TEST

START_TEST(test_leak_every_connection_reported)
{
    enum { N = 10 };
    struct tu_log log;
    cdm_conn *c[N];

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    POOL("Leaky", "POOL_MaximumItems=20", "POOL_LeakTimeout=100",
         "POOL_CleanupTimeout=3600000");
    for (int i = 0; i < N; i++)
        c[i] = get("Leaky");
    cdm__test_advance_ms(400);
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    for (int i = 0; i < N; i++)
        cdm_disconnect(c[i]);
    cdm_manager_set_log(m, NULL, NULL);
    ck_assert_int_eq(tu_log_count(&log, "Leaky"), N);
}
END_TEST

/* -------------------------------------------------------- live changes */

START_TEST(test_set_param_new_generation)
{
    cdm_conn *a, *b;
    long ida, idb;
    char *v = NULL;

    POOL("P", "POOL_MaximumItems=4");
    a = get("P");
    b = get("P");
    ida = ID(a);
    idb = ID(b);
    cdm_disconnect(b);                   /* idle */
    ck_status(cdm_manager_set_param(m, "P", "Database", "y"), CDM_OK);
    ck_assert_int_eq(fault.closes, 1);   /* the idle one, at once */
    ck_assert_int_eq(st("P").idle, 0);
    ck_assert_int_eq(st("P").in_use, 1);
    ck_assert_int_eq(ID(a), ida);        /* the borrowed one still works */
    cdm_disconnect(a);
    ck_assert_int_eq(fault.closes, 2);   /* closed when returned */
    ck_assert_int_eq(st("P").total, 0);
    b = get("P");
    ck_assert_int_ne(ID(b), ida);
    ck_assert_int_ne(ID(b), idb);
    ck_assert_int_eq(fault.connects, 3);
    ck_status(cdm_manager_get_param(m, "P", "Database", &v), CDM_OK);
    ck_assert_str_eq(v, "y");
    cdm_free(v);
    cdm_disconnect(b);
    ck_assert_int_eq(st("P").idle, 1);   /* new ones are pooled again */
}
END_TEST

START_TEST(test_raising_limit_lets_waiter_proceed)
{
    struct job j;
    cdm_conn *a, *b;
    int64_t t;

    POOL("P", "POOL_MaximumItems=2", "POOL_AcquireTimeout=10000");
    a = get("P");
    b = get("P");
    job_start(&j, "P");
    ck_eventually(st("P").waiting == 1, 10000);
    t = tu_now_ms();
    ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems", "4"), CDM_OK);
    job_join(&j);
    ck_status(j.rc, CDM_OK);
    ck_assert_int_lt(j.t1 - t, 2000);
    ck_assert_int_eq(st("P").in_use, 3);
    ck_assert_int_eq(st("P").waiting, 0);
    cdm_disconnect(j.c);
    cdm_disconnect(a);
    cdm_disconnect(b);
}
END_TEST

START_TEST(test_lowering_limit_closes_surplus)
{
    cdm_conn *c[4];
    cdm_conn *x = NULL;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4", "POOL_AcquireTimeout=0");
    for (int i = 0; i < 4; i++)
        c[i] = get("P");
    ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems", "2"), CDM_OK);
    ck_assert_int_eq(st("P").in_use, 4);  /* nothing taken from callers */
    for (int i = 0; i < 4; i++) {
        cdm_disconnect(c[i]);
        s = st("P");
        ck_assert_int_le(s.total, i < 2 ? 3 - i : 2);
        ck_assert_int_eq(fault.open_now, s.total);
    }
    /* The lower limit holds for new borrows too. */
    c[0] = get("P");
    c[1] = get("P");
    ck_status(cdm_connect(m, "P", &x), CDM_ERR_POOL_FULL);
    ck_assert_int_le(fault.open_now, 2);
    cdm_disconnect(c[0]);
    cdm_disconnect(c[1]);
}
END_TEST

START_TEST(test_lowering_limit_applies_to_idle_at_once)
{
    cdm_conn *c[4];

    POOL("P", "POOL_MaximumItems=4");
    for (int i = 0; i < 4; i++)
        c[i] = get("P");
    for (int i = 0; i < 4; i++)
        cdm_disconnect(c[i]);
    ck_assert_int_eq(st("P").idle, 4);
    ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems", "2"), CDM_OK);
    ck_assert_int_le(st("P").total, 2);
    ck_assert_int_le(fault.open_now, 2);
}
END_TEST

START_TEST(test_limit_change_keeps_fitting_connections)
{
    cdm_conn *c[4];
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    for (int i = 0; i < 4; i++)
        c[i] = get("P");
    ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems", "2"), CDM_OK);
    for (int i = 0; i < 4; i++)
        cdm_disconnect(c[i]);
    /* Only the two over the new limit go; the connection parameters did
     * not change, so the two that fit stay pooled. */
    s = st("P");
    ck_assert_int_eq(fault.closes, 2);
    ck_assert_int_eq(s.idle, 2);
    ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems", "5"), CDM_OK);
    ck_assert_int_eq(fault.closes, 2);
    cdm_disconnect(get("P"));
    ck_assert_int_eq(fault.connects, 4);
}
END_TEST

START_TEST(test_pooled_false_detaches_pool)
{
    cdm_conn *a, *b;

    POOL("P", "POOL_MaximumItems=4");
    a = get("P");
    b = get("P");
    cdm_disconnect(b);
    ck_status(cdm_manager_set_param(m, "P", "Pooled", "False"), CDM_OK);
    ck_assert_int_eq(fault.closes, 1);   /* the idle one */
    ck_not_pooled("P");
    b = get("P");                        /* a plain connection now */
    ck_assert_int_eq(ID(b), 3);
    ck_not_pooled("P");
    cdm_disconnect(b);
    ck_assert_int_eq(fault.closes, 2);
    ID(a);                               /* the borrowed one still works */
    cdm_disconnect(a);
    ck_assert_int_eq(fault.closes, 3);
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

START_TEST(test_unrelated_change_closes_nothing)
{
    cdm_conn *a, *b;
    long ida;

    POOL("P", "POOL_MaximumItems=4");
    ck_status(cdm_manager_add_def(m, "Q", (const char *[]){
                  "DriverID=Fault", "Database=q", NULL }), CDM_OK);
    a = get("P");
    b = get("P");
    ida = ID(a);
    cdm_disconnect(b);
    ck_status(cdm_manager_set_param(m, "Q", "Database", "z"), CDM_OK);
    ck_status(cdm_manager_add_def(m, "R", (const char *[]){
                  "DriverID=Fault", "Database=r", NULL }), CDM_OK);
    ck_status(cdm_manager_delete_def(m, "R"), CDM_OK);
    ck_assert_int_eq(fault.closes, 0);
    ck_assert_int_eq(st("P").idle, 1);
    cdm_disconnect(a);
    ck_assert_int_eq(fault.closes, 0);
    ck_assert_int_eq(st("P").idle, 2);
    a = get("P");
    ck_assert_int_eq(ID(a), ida);
    ck_assert_int_eq(fault.connects, 2);
    cdm_disconnect(a);
}
END_TEST

static const char defs_x[] =
    "[P]\nDriverID=Fault\nDatabase=x\nPooled=True\nPOOL_MaximumItems=4\n";
static const char defs_y[] =
    "[P]\nDriverID=Fault\nDatabase=y\nPooled=True\nPOOL_MaximumItems=4\n";

START_TEST(test_reload_changed_file)
{
    char *dir = tu_tmpdir(), *path;
    cdm_conn *a, *b;
    char *v = NULL;

    path = tu_write(dir, "defs.ini", defs_x, 0600);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    a = get("P");
    b = get("P");
    cdm_disconnect(b);
    free(tu_write(dir, "defs.ini", defs_y, 0600));
    ck_status(cdm_manager_reload(m), CDM_OK);
    ck_assert_int_eq(fault.closes, 1);   /* the idle one, at once */
    ck_assert_int_eq(st("P").idle, 0);
    ID(a);
    cdm_disconnect(a);
    ck_assert_int_eq(fault.closes, 2);   /* the borrowed one, on return */
    b = get("P");
    ck_assert_int_eq(ID(b), 3);
    ck_status(cdm_manager_get_param(m, "P", "Database", &v), CDM_OK);
    ck_assert_str_eq(v, "y");
    cdm_free(v);
    cdm_disconnect(b);
    ck_assert_int_eq(st("P").idle, 1);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_reload_unchanged_file_closes_nothing)
{
    char *dir = tu_tmpdir(), *path;
    cdm_conn *a;
    long id;

    path = tu_write(dir, "defs.ini", defs_x, 0600);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    a = get("P");
    id = ID(a);
    cdm_disconnect(a);
    ck_status(cdm_manager_reload(m), CDM_OK);
    ck_assert_int_eq(fault.closes, 0);
    a = get("P");
    ck_assert_int_eq(ID(a), id);
    cdm_disconnect(a);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_parent_change_reaches_pooled_child)
{
    cdm_conn *c;
    long id;

    ck_status(cdm_manager_add_def(m, "Base", (const char *[]){
                  "DriverID=Fault", "Database=x", NULL }), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Child", (const char *[]){
                  "ConnectionDef=Base", "Pooled=True", "POOL_MaximumItems=4",
                  NULL }), CDM_OK);
    c = get("Child");
    id = ID(c);
    cdm_disconnect(c);
    ck_assert_int_eq(st("Child").idle, 1);
    ck_status(cdm_manager_set_param(m, "Base", "Database", "y"), CDM_OK);
    ck_assert_int_eq(fault.closes, 1);
    ck_assert_int_eq(st("Child").idle, 0);
    c = get("Child");
    ck_assert_int_ne(ID(c), id);
    cdm_disconnect(c);
}
END_TEST

/* ------------------------------------------------------------ close_def */

START_TEST(test_close_def_idle_now_borrowed_later)
{
    cdm_conn *a, *b;
    long ida;

    POOL("P", "POOL_MaximumItems=4");
    a = get("P");
    b = get("P");
    ida = ID(a);
    cdm_disconnect(b);
    ck_status(cdm_manager_close_def(m, "P"), CDM_OK);
    ck_assert_int_eq(fault.closes, 1);
    ck_gauges_zero("P");
    ck_assert_int_eq(st("P").destroyed, 1);
    ck_assert_int_eq(ID(a), ida);        /* still usable */
    cdm_disconnect(a);
    ck_assert_int_eq(fault.closes, 2);
    ck_assert_int_eq(fault.open_now, 0);
    ck_assert_int_eq(st("P").destroyed, 2);  /* counted as it comes back */
    ck_assert_int_eq(st("P").created, 2);
}
END_TEST

START_TEST(test_close_def_next_connect_new_pool)
{
    cdm_conn *c;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    for (int i = 0; i < 3; i++)
        cdm_disconnect(get("P"));
    ck_assert_int_eq(st("P").acquired, 3);
    ck_status(cdm_manager_close_def(m, "P"), CDM_OK);
    c = get("P");
    ck_assert_int_eq(ID(c), 2);
    s = st("P");
    ck_assert_int_eq(s.total, 1);
    ck_assert_int_eq(s.in_use, 1);
    ck_assert_int_eq(s.created, 2);      /* the counters run on */
    ck_assert_int_eq(s.acquired, 4);
    ck_assert_int_eq(s.destroyed, 1);
    cdm_disconnect(c);
    ck_assert_int_eq(st("P").idle, 1);
}
END_TEST

START_TEST(test_close_def_unknown_and_unbuilt)
{
    POOL("P", "POOL_MaximumItems=4");
    ck_status(cdm_manager_close_def(m, "NoSuchDef"), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("NoSuchDef");
    ck_status(cdm_manager_close_def(m, "P"), CDM_OK);   /* no pool yet */
}
END_TEST

/* Another thread that used the pool before close_def must not keep
 * borrowing from the detached pool. */
struct twice {
    pthread_barrier_t *sync;
    long id1, id2;
    int rc1, rc2;
};

static void *twice_main(void *arg)
{
    struct twice *t = arg;
    cdm_conn *c;

    if ((t->rc1 = cdm_connect(m, "P", &c)) == CDM_OK) {
        t->id1 = try_num(c, "SELECT ID");
        cdm_disconnect(c);
    }
    pthread_barrier_wait(t->sync);       /* main: close_def */
    pthread_barrier_wait(t->sync);
    if ((t->rc2 = cdm_connect(m, "P", &c)) == CDM_OK) {
        t->id2 = try_num(c, "SELECT ID");
        cdm_disconnect(c);
    }
    return NULL;
}

START_TEST(test_close_def_seen_by_other_threads)
{
    pthread_barrier_t sync;
    pthread_t th;
    struct twice t = { &sync, 0, 0, -100, -100 };

    POOL("P", "POOL_MaximumItems=4");
    pthread_barrier_init(&sync, NULL, 2);
    ck_assert_int_eq(pthread_create(&th, NULL, twice_main, &t), 0);
    pthread_barrier_wait(&sync);
    ck_status(cdm_manager_close_def(m, "P"), CDM_OK);
    pthread_barrier_wait(&sync);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&sync);
    ck_status(t.rc1, CDM_OK);
    ck_status(t.rc2, CDM_OK);
    ck_assert_int_eq(t.id1, 1);
    ck_assert_int_eq(t.id2, 2);
    ck_assert_int_eq(st("P").acquired, 2);
    ck_assert_int_eq(st("P").idle, 1);
    ck_assert_int_eq(fault.open_now, 1);
}
END_TEST

/* --------------------------------------------------------- manager close */

START_TEST(test_close_idle_then_refuses)
{
    cdm_conn *c = NULL;

    POOL("P", "POOL_MaximumItems=4");
    ck_status(cdm_manager_add_def(m, "U", (const char *[]){
                  "DriverID=Fault", "Database=x", NULL }), CDM_OK);
    cdm_disconnect(get("P"));
    ck_status(cdm_manager_close(m, 0), CDM_OK);
    ck_assert_int_eq(fault.closes, 1);
    ck_assert_int_eq(fault.open_now, 0);
    ck_status(cdm_connect(m, "P", &c), CDM_ERR_CLOSED);
    ck_assert_ptr_null(c);
    ck_status(cdm_connect(m, "U", &c), CDM_ERR_CLOSED);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_close_busy_after_timeout)
{
    cdm_conn *c;
    int64_t t0, took;

    POOL("P", "POOL_MaximumItems=4");
    c = get("P");
    t0 = tu_now_ms();
    ck_status(cdm_manager_close(m, 200), CDM_ERR_BUSY);
    took = tu_now_ms() - t0;
    ck_assert_msg(took >= 150, "close gave up after %lld ms", (long long)took);
    ck_assert_int_eq(ID(c), 1);          /* still works */
    ck_assert_int_eq(fault.closes, 0);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.closes, 1);
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

struct returner {
    cdm_conn *c;
    atomic_int started;
};

static void *returner_main(void *arg)
{
    struct returner *r = arg;

    atomic_store(&r->started, 1);
    cdm_exec(r->c, "SLEEP 300", NULL, 0, NULL);
    cdm_disconnect(r->c);
    return NULL;
}

START_TEST(test_close_returns_early_when_returned)
{
    struct returner r;
    pthread_t th;
    int64_t t0, took;

    POOL("P", "POOL_MaximumItems=4");
    r.c = get("P");
    atomic_init(&r.started, 0);
    ck_assert_int_eq(pthread_create(&th, NULL, returner_main, &r), 0);
    ck_eventually(atomic_load(&r.started), 10000);
    t0 = tu_now_ms();
    ck_status(cdm_manager_close(m, 60000), CDM_OK);
    took = tu_now_ms() - t0;
    pthread_join(th, NULL);
    /* Returned when the connection came back, not at its time limit. */
    ck_assert_msg(took < 30000, "close took %lld ms", (long long)took);
    ck_assert_int_eq(fault.closes, 1);
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

START_TEST(test_close_joins_cleanup_thread_at_once)
{
    int64_t t0, took;

    POOL("P", "POOL_MaximumItems=4", "POOL_CleanupTimeout=3600000");
    cdm_disconnect(get("P"));
    /* The cleanup thread has run and waits for its next due time, an
     * hour away: a close that waited for it would hit the test timeout. */
    ck_status(cdm__manager_cleanup_now(m, 5000), CDM_OK);
    t0 = tu_now_ms();
    ck_status(cdm_manager_close(m, 0), CDM_OK);
    took = tu_now_ms() - t0;
    printf("close with the cleanup thread waiting took %lld ms\n", (long long)took);
}
END_TEST

START_TEST(test_free_with_borrowed_connection)
{
    cdm_conn *a, *b;

    POOL("P", "POOL_MaximumItems=4");
    a = get("P");
    b = get("P");
    cdm_disconnect(b);
    cdm_manager_free(m);
    m = NULL;
    ck_assert_int_eq(fault.closes, 1);   /* the idle one */
    ck_assert_int_eq(num(a, "SELECT ID"), 1);
    ck_status(cdm_begin(a), CDM_OK);
    cdm_disconnect(a);                   /* frees what the manager left */
    ck_assert_int_eq(fault.closes, 2);
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

START_TEST(test_close_wakes_waiters)
{
    enum { N = 3 };
    struct job j[N];
    cdm_conn *c;
    int64_t t0;

    POOL("P", "POOL_MaximumItems=1", "POOL_AcquireTimeout=60000");
    c = get("P");
    for (int i = 0; i < N; i++)
        job_start(&j[i], "P");
    ck_eventually(st("P").waiting == N, 10000);
    t0 = tu_now_ms();
    ck_status(cdm_manager_close(m, 0), CDM_ERR_BUSY);
    for (int i = 0; i < N; i++) {
        job_join(&j[i]);
        ck_status(j[i].rc, CDM_ERR_CLOSED);
        /* Woken by the close, not by their time limit. */
        ck_assert_int_lt(j[i].t1 - t0, 30000);
    }
    ck_assert_int_eq(ID(c), 1);
    cdm_disconnect(c);
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

/* A thread that has used the pool must see the close as soon as anyone
 * does, even while the close is still waiting for the cleanup thread. */
START_TEST(test_close_refuses_connects_from_known_pool)
{
    struct closer k = { .timeout_ms = (int)tu_limit_ms(5000) };
    cdm_conn *c = NULL, *held, *q;
    int64_t deadline;
    int rc, rcq;

    POOL("P", "POOL_MaximumItems=10", "POOL_MinimumItems=3",
         "POOL_CleanupTimeout=50", "POOL_ExpireTimeout=600000");
    ck_status(cdm_manager_add_def(m, "Q", (const char *[]){
                  "DriverID=SQLite", "Database=:memory:", NULL }), CDM_OK);
    cdm_disconnect(get("P"));            /* this thread knows the pool now */
    ck_eventually(st("P").idle == 3, 10000);
    atomic_store(&fault.connect_hold, true);
    held = get("P");                     /* 2 idle: the cleanup opens one */
    ck_eventually(st("P").opening == 1, 5000);
    ck_assert_int_eq(pthread_create(&k.th, NULL, closer_main, &k), 0);
    /* The close is under way once a connect elsewhere is refused; the
     * cleanup thread is still held in its connect. */
    deadline = tu_now_ms() + (int64_t)tu_limit_ms(5000);
    while ((rcq = cdm_connect(m, "Q", &q)) == CDM_OK && tu_now_ms() < deadline) {
        cdm_disconnect(q);
        tu_sleep_ms(1);
    }
    rc = cdm_connect(m, "P", &c);
    if (rc == CDM_OK)
        cdm_disconnect(c);
    atomic_store(&fault.connect_hold, false);
    cdm_disconnect(held);
    pthread_join(k.th, NULL);
    ck_status(rcq, CDM_ERR_CLOSED);
    ck_assert_msg(rc == CDM_ERR_CLOSED, "a connect on a pool this thread had "
                  "used, made after the close began, got %s (want %s)",
                  cdm_strerror(rc), cdm_strerror(CDM_ERR_CLOSED));
    ck_status(k.rc, CDM_OK);
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

/* --------------------------------------------------------------- stress */

/* Successful connects of every load thread, for pacing changes. */
static atomic_long borrows;

struct load {
    pthread_t th;
    const char *name;
    const char *sql;         /* a query returning one row */
    int64_t until_ms;        /* 0: until the manager is closed */
    atomic_int *closing;     /* CDM_ERR_CLOSED is fine once set */
    long ok;                 /* successful connects */
    atomic_bool served;      /* at least one: readable by other threads */
    int errors;
    int first_rc;
    char first_err[512];
};

static void load_error(struct load *l, int rc)
{
    if (l->errors++ == 0) {
        l->first_rc = rc;
        snprintf(l->first_err, sizeof l->first_err, "%s", cdm_errmsg());
    }
}

static void *load_main(void *arg)
{
    struct load *l = arg;

    for (;;) {
        cdm_conn *c;
        cdm_result *r = NULL;
        int rc;

        if (l->until_ms && tu_now_ms() >= l->until_ms)
            break;
        rc = cdm_connect(m, l->name, &c);
        if (rc == CDM_ERR_CLOSED && l->closing && atomic_load(l->closing))
            break;
        if (rc != CDM_OK) {
            load_error(l, rc);
            break;
        }
        l->ok++;
        atomic_store(&l->served, true);
        atomic_fetch_add(&borrows, 1);
        rc = cdm_query(c, l->sql, NULL, 0, &r);
        if (rc != CDM_OK)
            load_error(l, rc);
        else if (cdm_result_nrows(r) != 1)
            load_error(l, -1);
        cdm_result_free(r);
        cdm_disconnect(c);
    }
    return NULL;
}

static void load_start(struct load *l, const char *name, const char *sql,
                       int64_t until_ms, atomic_int *closing)
{
    memset(l, 0, sizeof *l);
    l->name = name;
    l->sql = sql;
    l->until_ms = until_ms;
    l->closing = closing;
    ck_assert_int_eq(pthread_create(&l->th, NULL, load_main, l), 0);
}

/* Runs N threads on `name` for `ms`, sampling the stats meanwhile, and
 * checks the invariants of a pool limited to `max`. */
static void stress(const char *name, const char *sql, int max, int ms)
{
    enum { N = 16 };
    struct load l[N];
    int64_t until = tu_now_ms() + ms;
    long ok = 0, samples = 0, over = 0, skew = 0;
    cdm_pool_stats s;

    for (int i = 0; i < N; i++)
        load_start(&l[i], name, sql, until, NULL);
    while (tu_now_ms() < until) {
        s = st(name);
        samples++;
        if (s.total + s.opening > max)
            over++;
        /* Physical connections, counted by the driver, not the pool. */
        if (atomic_load(&fault.open_now) > max)
            skew++;
        tu_sleep_ms(1);
    }
    for (int i = 0; i < N; i++)
        pthread_join(l[i].th, NULL);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(l[i].errors == 0, "thread %d: %d errors, first %s: %s",
                      i, l[i].errors, cdm_strerror(l[i].first_rc),
                      l[i].first_err);
        ok += l[i].ok;
    }
    ck_assert_msg(over == 0, "%ld of %ld samples over the limit", over, samples);
    ck_assert_msg(skew == 0, "%ld of %ld samples with more open connections "
                  "than the limit", skew, samples);
    s = st(name);
    ck_assert_int_gt(ok, N);
    ck_assert_int_eq(s.acquired, ok);
    ck_assert_int_eq(s.in_use, 0);
    ck_assert_int_eq(s.waiting, 0);
    ck_assert_int_eq(s.opening, 0);
    ck_assert_int_le(s.total, max);
}

START_TEST(test_stress_fault_invariants)
{
    POOL("P", "POOL_MaximumItems=4", "POOL_AcquireTimeout=10000");
    stress("P", "SELECT ID", 4, 1500);
    ck_assert_int_le(fault.open_peak, 4);
    ck_assert_int_eq(fault.open_now, st("P").total);
    ck_assert_int_eq(fault.closes, 0);
}
END_TEST

START_TEST(test_stress_sqlite_invariants)
{
    ck_status(cdm_manager_add_def(m, "S", (const char *[]){
                  "DriverID=SQLite", "Database=:memory:", "Pooled=True",
                  "POOL_MaximumItems=4", "POOL_AcquireTimeout=10000", NULL }),
              CDM_OK);
    stress("S", "SELECT 1", 4, 1500);
}
END_TEST

START_TEST(test_stress_changes_and_close)
{
    enum { N = 12 };
    struct load l[N];
    atomic_int closing;
    int64_t until, deadline;
    int bad = 0, i = 0, rc;

    atomic_init(&closing, 0);
    POOL("P", "POOL_MaximumItems=4", "POOL_AcquireTimeout=10000");
    atomic_store(&fault.connect_delay_ms, 1);
    for (int t = 0; t < N; t++)
        load_start(&l[t], "P", "SELECT ID", 0, &closing);
    /* At least 1.2 s of changes, and until every thread has been served
     * (a slow run, valgrind's, takes longer), within a bound. */
    until = tu_now_ms() + 1200;
    deadline = tu_now_ms() + 120000;
    for (;;) {
        int served = 0;
        for (int t = 0; t < N; t++)
            served += atomic_load(&l[t].served);
        if (tu_now_ms() >= deadline || (tu_now_ms() >= until && served == N))
            break;
        switch (i++ % 3) {
        case 0:
            rc = cdm_manager_close_def(m, "P");
            break;
        case 1:
            rc = cdm_manager_set_param(m, "P", "POOL_MaximumItems", "3");
            break;
        default:
            rc = cdm_manager_set_param(m, "P", "POOL_MaximumItems", "5");
            break;
        }
        bad += rc != CDM_OK;
        /* No pause, but no change before some thread has been served
         * since the last one: valgrind runs one thread at a time, for
         * long slices, and a changing thread alone on the processor
         * would keep every pool detached. */
        for (long seen = atomic_load(&borrows);
             atomic_load(&borrows) == seen && tu_now_ms() < deadline;)
            sched_yield();
    }
    atomic_store(&closing, 1);
    rc = cdm_manager_close(m, 5000);
    for (int t = 0; t < N; t++)
        pthread_join(l[t].th, NULL);
    ck_status(rc, CDM_OK);
    ck_assert_int_eq(bad, 0);
    for (int t = 0; t < N; t++) {
        ck_assert_msg(l[t].errors == 0, "thread %d: %d errors, first %s: %s",
                      t, l[t].errors, cdm_strerror(l[t].first_rc),
                      l[t].first_err);
        ck_assert_int_gt(l[t].ok, 0);
    }
    cdm_manager_free(m);
    m = NULL;
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

/* POOL_MinimumItems is opened by the cleanup thread on its own: it may
 * not exceed the maximum, nor 1000 when there is none. */
START_TEST(test_minimum_items_bounded)
{
    char *v = NULL;
    cdm_conn *c = NULL;

    ck_status(cdm_manager_add_def(m, "A", (const char *[]){
                  "DriverID=Fault", "Database=x", "Pooled=True",
                  "POOL_MaximumItems=2", "POOL_MinimumItems=5", NULL }),
              CDM_ERR_INVALID);
    ck_errmsg_has("POOL_MinimumItems=5 is more than POOL_MaximumItems=2");
    ck_assert_int_eq(cdm_manager_has_def(m, "A"), 0);
    POOL("P", "POOL_MaximumItems=4", "POOL_MinimumItems=1");
    ck_status(cdm_manager_set_param(m, "P", "POOL_MinimumItems", "1000"),
              CDM_ERR_INVALID);
    ck_errmsg_has("definition 'P'");
    ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems", "0"),
              CDM_ERR_INVALID);          /* never a connection */
    ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems", "4"), CDM_OK);
    ck_status(cdm_manager_get_param(m, "P", "POOL_MinimumItems", &v), CDM_OK);
    ck_assert_str_eq(v, "1");            /* unchanged */
    cdm_free(v);
    ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems", "-1"), CDM_OK);
    ck_status(cdm_manager_set_param(m, "P", "POOL_MinimumItems", "1001"),
              CDM_ERR_INVALID);
    ck_errmsg_has("POOL_MinimumItems");
    ck_status(cdm_manager_set_param(m, "P", "POOL_MinimumItems", "1000"), CDM_OK);
    /* Through inheritance the rule is checked at connect. */
    ck_status(cdm_manager_add_def(m, "Base", (const char *[]){
                  "DriverID=Fault", "Database=x", "Pooled=True",
                  "POOL_MaximumItems=2", NULL }), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Child", (const char *[]){
                  "ConnectionDef=Base", "POOL_MinimumItems=3", NULL }), CDM_OK);
    ck_status(cdm_connect(m, "Child", &c), CDM_ERR_INVALID);
    ck_errmsg_has("POOL_MinimumItems=3 is more than POOL_MaximumItems=2");
    ck_assert_ptr_null(c);
    ck_assert_int_eq(fault.connect_attempts, 0);
}
END_TEST

/* ------------------------------------------------------------ figures */

/* Borrowing one connection after another never has two out at once. */
START_TEST(test_peak_one_at_a_time)
{
    POOL("P", "POOL_MaximumItems=4");
    ck_assert_int_eq(st("P").peak_in_use, 0);
    for (int i = 0; i < 5; i++)
        cdm_disconnect(get("P"));
    ck_assert_int_eq(st("P").peak_in_use, 1);
    ck_assert_int_eq(st("P").waits, 0);
    ck_assert_int_eq(st("P").acquired, 5);
}
END_TEST

/* The peak stays when the connections come back. */
START_TEST(test_peak_kept_after_return)
{
    cdm_conn *c[3];
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    for (int i = 0; i < 3; i++)
        c[i] = get("P");
    ck_assert_int_eq(st("P").peak_in_use, 3);
    for (int i = 0; i < 3; i++)
        cdm_disconnect(c[i]);
    /* Taken back one at a time, from the thread's own hint or not. */
    for (int i = 0; i < 3; i++)
        cdm_disconnect(get("P"));
    s = st("P");
    ck_assert_int_eq(s.in_use, 0);
    ck_assert_int_eq(s.idle, 3);
    ck_assert_int_eq(s.peak_in_use, 3);
    ck_assert_int_eq(s.waits, 0);
}
END_TEST

/* A full pool of two: a third borrower queues, counts one wait, and the
 * peak is the two borrowed, not three. */
START_TEST(test_wait_counted_peak_is_limit)
{
    struct job j;
    cdm_conn *a, *b;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=2", "POOL_AcquireTimeout=10000");
    a = get("P");
    b = get("P");
    s = st("P");
    ck_assert_int_eq(s.peak_in_use, 2);
    ck_assert_int_eq(s.waits, 0);
    job_start(&j, "P");
    ck_eventually(st("P").waiting == 1, 5000);
    s = st("P");
    ck_assert_int_eq(s.waits, 1);
    ck_assert_int_eq(s.peak_in_use, 2);
    cdm_disconnect(a);
    job_join(&j);
    ck_status(j.rc, CDM_OK);
    s = st("P");
    ck_assert_int_eq(s.waits, 1);
    ck_assert_int_eq(s.waiting, 0);
    ck_assert_int_eq(s.in_use, 2);
    ck_assert_int_eq(s.peak_in_use, 2);
    ck_assert_int_eq(s.timeouts, 0);
    ck_assert_int_eq(s.acquired, 3);
    cdm_disconnect(b);
    cdm_disconnect(j.c);
    s = st("P");
    ck_assert_int_eq(s.in_use, 0);
    ck_assert_int_eq(s.peak_in_use, 2);
    ck_assert_int_eq(s.waits, 1);
}
END_TEST

/* Three borrowers queue behind one connection: three waits, each served
 * in turn; the peak never passes the limit. */
START_TEST(test_waits_count_each_borrower)
{
    struct job j[3];
    cdm_conn *c;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=1", "POOL_AcquireTimeout=10000");
    c = get("P");
    for (int i = 0; i < 3; i++) {
        job_start(&j[i], "P");
        ck_eventually(st("P").waiting == i + 1, 5000);
    }
    ck_assert_int_eq(st("P").waits, 3);
    for (int i = 0; i < 3; i++) {
        cdm_disconnect(c);
        job_join(&j[i]);
        ck_status(j[i].rc, CDM_OK);
        c = j[i].c;
    }
    cdm_disconnect(c);
    s = st("P");
    ck_assert_int_eq(s.waits, 3);
    ck_assert_int_eq(s.peak_in_use, 1);
    ck_assert_int_eq(s.acquired, 4);
    ck_assert_int_eq(s.created, 1);
}
END_TEST

/* A wait that times out is a wait and a timeout; a refusal without
 * waiting (POOL_AcquireTimeout=0) is a timeout only. */
START_TEST(test_timed_out_wait_counted)
{
    cdm_conn *c, *c2 = NULL;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=1", "POOL_AcquireTimeout=20");
    c = get("P");
    ck_status(cdm_connect(m, "P", &c2), CDM_ERR_POOL_FULL);
    s = st("P");
    ck_assert_int_eq(s.waits, 1);
    ck_assert_int_eq(s.timeouts, 1);
    ck_status(cdm_manager_set_param(m, "P", "POOL_AcquireTimeout", "0"), CDM_OK);
    ck_status(cdm_connect(m, "P", &c2), CDM_ERR_POOL_FULL);
    s = st("P");
    ck_assert_int_eq(s.waits, 1);
    ck_assert_int_eq(s.timeouts, 2);
    ck_assert_int_eq(s.peak_in_use, 1);
    cdm_disconnect(c);
}
END_TEST

/* New parameters (a new generation) keep the figures; so does close_def
 * and the new pool the next connect builds: the peak is the highest so
 * far, the counters run on. */
START_TEST(test_peak_and_waits_across_generations)
{
    struct job j;
    cdm_conn *a, *b;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=2", "POOL_AcquireTimeout=10000");
    a = get("P");
    b = get("P");
    job_start(&j, "P");
    ck_eventually(st("P").waiting == 1, 5000);
    cdm_disconnect(a);
    job_join(&j);
    ck_status(j.rc, CDM_OK);
    cdm_disconnect(b);
    cdm_disconnect(j.c);
    ck_status(cdm_manager_set_param(m, "P", "Database", "y"), CDM_OK);
    ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems", "3"), CDM_OK);
    s = st("P");
    ck_assert_int_eq(s.total, 0);          /* the old generation is gone */
    ck_assert_int_eq(s.peak_in_use, 2);
    ck_assert_int_eq(s.waits, 1);
    ck_assert_int_eq(s.created, 2);
    cdm_disconnect(get("P"));
    s = st("P");
    ck_assert_int_eq(s.peak_in_use, 2);
    ck_assert_int_eq(s.waits, 1);
    ck_assert_int_eq(s.created, 3);
    ck_status(cdm_manager_close_def(m, "P"), CDM_OK);
    a = get("P");
    s = st("P");
    ck_assert_int_eq(s.in_use, 1);
    ck_assert_int_eq(s.peak_in_use, 2);
    ck_assert_int_eq(s.waits, 1);
    ck_assert_int_eq(s.created, 4);
    cdm_disconnect(a);
}
END_TEST

/* Connections being opened count in the peak as they do against the
 * limit: two slow opens and a third borrower queued behind them make a
 * peak of two, however far the opens have got. */
START_TEST(test_peak_counts_connections_being_opened)
{
    struct job j[3];
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=2", "POOL_AcquireTimeout=10000");
    atomic_store(&fault.connect_hold, true);
    job_start(&j[0], "P");
    job_start(&j[1], "P");
    ck_eventually(st("P").opening == 2, 5000);
    job_start(&j[2], "P");
    ck_eventually(st("P").waiting == 1, 5000);
    s = st("P");
    ck_assert_int_eq(s.peak_in_use, 2);
    ck_assert_int_eq(s.waits, 1);
    atomic_store(&fault.connect_hold, false);
    job_join(&j[0]);
    ck_status(j[0].rc, CDM_OK);
    cdm_disconnect(j[0].c);
    for (int i = 1; i < 3; i++) {
        job_join(&j[i]);
        ck_status(j[i].rc, CDM_OK);
        cdm_disconnect(j[i].c);
    }
    s = st("P");
    ck_assert_int_eq(s.peak_in_use, 2);
    ck_assert_int_eq(s.waits, 1);
    ck_assert_int_eq(s.created, 2);
}
END_TEST

/* Many threads over a small pool: the peak never passes the limit, and
 * every read of in_use + opening is at most the peak. */
struct peak_worker {
    pthread_t th;
    atomic_int *stop;
    int rc;
};

static void *peak_worker_main(void *arg)
{
    struct peak_worker *w = arg;

    while (!atomic_load(w->stop)) {
        cdm_conn *c;
        if ((w->rc = cdm_connect(m, "P", &c)) != CDM_OK)
            break;
        cdm_disconnect(c);
    }
    return NULL;
}

START_TEST(test_peak_bounded_under_load)
{
    struct peak_worker w[8];
    atomic_int stop;
    cdm_pool_stats s;
    int reads = 0;

    atomic_init(&stop, 0);
    POOL("P", "POOL_MaximumItems=3", "POOL_AcquireTimeout=10000");
    for (int i = 0; i < 8; i++) {
        w[i].stop = &stop;
        w[i].rc = CDM_OK;
        ck_assert_int_eq(pthread_create(&w[i].th, NULL, peak_worker_main, &w[i]), 0);
    }
    /* Until the pool has been full at least once and has been read a few
     * hundred times (a bound on work, not on time). */
    for (int64_t end = tu_now_ms() + 5000;
         (reads < 300 || st("P").waits == 0) && tu_now_ms() < end; reads++) {
        s = st("P");
        ck_assert_int_le(s.in_use + s.opening, s.peak_in_use);
        ck_assert_int_le(s.peak_in_use, 3);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(pthread_join(w[i].th, NULL), 0);
        ck_status(w[i].rc, CDM_OK);
    }
    s = st("P");
    ck_assert_int_gt(s.waits, 0);
    ck_assert_int_le(s.peak_in_use, 3);
    ck_assert_int_ge(s.peak_in_use, 1);
    ck_assert_int_le(s.waits, s.acquired);
}
END_TEST

/* ------------------------------------------------ figures run on */

/* `n` pooled connects of `name`, each returned at once. */
static void cycles(const char *name, int n)
{
    for (int i = 0; i < n; i++)
        cdm_disconnect(get(name));
}

/* Through the public API on SQLite: new parameters (a new generation),
 * new limits, close_def and the pool the next connect builds, and the
 * definition losing its pool and getting one again: the counters keep
 * growing, the gauges show the pool serving now. */
START_TEST(test_counters_run_on_sqlite)
{
    cdm_pool_stats s;

    ck_status(cdm_manager_add_def(m, "S", (const char *[]){
                  "DriverID=SQLite", "Database=:memory:", "Pooled=True",
                  "POOL_MaximumItems=4", NULL }), CDM_OK);
    cycles("S", 5);
    s = st("S");
    ck_assert_int_eq(s.acquired, 5);
    ck_assert_int_eq(s.created, 1);
    ck_assert_int_eq(s.destroyed, 0);

    /* A connection parameter: a new generation, the idle one closes. */
    ck_status(cdm_manager_set_param(m, "S", "BusyTimeout", "2000"), CDM_OK);
    s = st("S");
    ck_assert_int_eq(s.total, 0);
    ck_assert_int_eq(s.acquired, 5);
    ck_assert_int_eq(s.destroyed, 1);
    cycles("S", 5);
    s = st("S");
    ck_assert_int_eq(s.acquired, 10);
    ck_assert_int_eq(s.created, 2);
    ck_assert_int_eq(s.destroyed, 1);
    ck_assert_int_eq(s.idle, 1);
    ck_assert_int_eq(s.peak_in_use, 1);

    /* A limit only: nothing closes, nothing resets. */
    ck_status(cdm_manager_set_param(m, "S", "POOL_MaximumItems", "2"), CDM_OK);
    cycles("S", 2);
    ck_assert_int_eq(st("S").acquired, 12);

    ck_status(cdm_manager_close_def(m, "S"), CDM_OK);
    s = st("S");
    ck_assert_int_eq(s.total, 0);
    ck_assert_int_eq(s.idle, 0);
    ck_assert_int_eq(s.acquired, 12);
    ck_assert_int_eq(s.created, 2);
    ck_assert_int_eq(s.destroyed, 2);
    cycles("S", 3);
    s = st("S");
    ck_assert_int_eq(s.acquired, 15);
    ck_assert_int_eq(s.created, 3);
    ck_assert_int_eq(s.destroyed, 2);
    ck_assert_int_eq(s.total, 1);

    /* Not pooled for a while (its pool goes), then pooled again. */
    ck_status(cdm_manager_set_param(m, "S", "Pooled", "False"), CDM_OK);
    cycles("S", 2);                      /* plain: not counted */
    ck_not_pooled("S");
    ck_status(cdm_manager_set_param(m, "S", "Pooled", "True"), CDM_OK);
    s = st("S");
    ck_assert_int_eq(s.acquired, 15);
    ck_assert_int_eq(s.destroyed, 3);
    cycles("S", 1);
    s = st("S");
    ck_assert_int_eq(s.acquired, 16);
    ck_assert_int_eq(s.created, 4);
    ck_assert_int_eq(s.destroyed, 3);
    ck_assert_int_eq(s.total, 1);
    ck_assert_int_eq(s.created, s.destroyed + s.total);
}
END_TEST

/* A pool that no longer serves P is reused for Q: Q's figures start from
 * zero, P keeps what its pool counted, and P's next pool adds to it. */
START_TEST(test_counters_kept_when_pool_reused)
{
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    POOL("Q", "POOL_MaximumItems=4");
    cycles("P", 3);
    ck_status(cdm_manager_close_def(m, "P"), CDM_OK);
    cycles("Q", 2);
    s = st("Q");
    ck_assert_int_eq(s.acquired, 2);
    ck_assert_int_eq(s.created, 1);
    ck_assert_int_eq(s.destroyed, 0);
    ck_assert_int_eq(s.idle, 1);
    s = st("P");
    ck_assert_int_eq(s.acquired, 3);
    ck_assert_int_eq(s.created, 1);
    ck_assert_int_eq(s.destroyed, 1);
    ck_assert_int_eq(s.total, 0);
    ck_assert_int_eq(s.peak_in_use, 1);
    cycles("p", 1);                      /* any case: the same name */
    s = st("P");
    ck_assert_int_eq(s.acquired, 4);
    ck_assert_int_eq(s.created, 2);
    ck_assert_int_eq(s.idle, 1);
    ck_assert_int_eq(st("Q").acquired, 2);
}
END_TEST

/* A connection borrowed across close_def is counted once: borrowed
 * before, destroyed when returned (the pool built again for the name
 * counts it against its limit meanwhile). */
START_TEST(test_counters_borrowed_across_close_def)
{
    cdm_conn *a, *b;
    cdm_pool_stats s;

    POOL("P", "POOL_MaximumItems=4");
    a = get("P");
    ck_status(cdm_manager_close_def(m, "P"), CDM_OK);
    b = get("P");
    s = st("P");
    ck_assert_int_eq(s.in_use, 2);
    ck_assert_int_eq(s.acquired, 2);
    ck_assert_int_eq(s.created, 2);
    ck_assert_int_eq(s.destroyed, 0);
    cdm_disconnect(a);
    s = st("P");
    ck_assert_int_eq(s.destroyed, 1);
    ck_assert_int_eq(s.acquired, 2);
    ck_assert_int_eq(s.in_use, 1);
    cdm_disconnect(b);
    cycles("P", 2);
    s = st("P");
    ck_assert_int_eq(s.acquired, 4);
    ck_assert_int_eq(s.created, 2);
    ck_assert_int_eq(s.destroyed, 1);
    ck_assert_int_eq(s.total, 1);
    ck_assert_int_eq(fault.connects, s.created);
    ck_assert_int_eq(fault.closes, s.destroyed);
}
END_TEST

/* The race: threads borrow while the pool is rebuilt and its parameters
 * change under them.  Read meanwhile, no counter ever goes down; at rest
 * they match what the threads and the driver counted. */
START_TEST(test_counters_monotonic_under_changes)
{
    enum { N = 8 };
    struct load l[N];
    cdm_pool_stats s, last;
    int64_t until;
    long ok = 0, reads = 0;
    int i = 0;

    memset(&last, 0, sizeof last);
    POOL("P", "POOL_MaximumItems=4", "POOL_AcquireTimeout=10000");
    until = tu_now_ms() + 1000;
    for (int t = 0; t < N; t++)
        load_start(&l[t], "P", "SELECT ID", until, NULL);
    while (tu_now_ms() < until) {
        switch (i++ % 4) {
        case 0:
            ck_status(cdm_manager_close_def(m, "P"), CDM_OK);
            break;
        case 1:
            ck_status(cdm_manager_set_param(m, "P", "Database", "y"), CDM_OK);
            break;
        case 2:
            ck_status(cdm_manager_set_param(m, "P", "Database", "x"), CDM_OK);
            break;
        default:
            ck_status(cdm_manager_set_param(m, "P", "POOL_MaximumItems",
                                            i % 8 < 4 ? "3" : "4"), CDM_OK);
            break;
        }
        for (int k = 0; k < 20; k++) {
            s = st("P");
            reads++;
            ck_assert_msg(s.acquired >= last.acquired &&
                          s.created >= last.created &&
                          s.destroyed >= last.destroyed &&
                          s.timeouts >= last.timeouts &&
                          s.waits >= last.waits &&
                          s.wait_ns_total >= last.wait_ns_total &&
                          s.peak_in_use >= last.peak_in_use,
                          "a counter went down after %ld reads: acquired "
                          "%lld -> %lld, created %lld -> %lld, destroyed "
                          "%lld -> %lld, peak %lld -> %lld", reads,
                          (long long)last.acquired, (long long)s.acquired,
                          (long long)last.created, (long long)s.created,
                          (long long)last.destroyed, (long long)s.destroyed,
                          (long long)last.peak_in_use,
                          (long long)s.peak_in_use);
            last = s;
        }
        sched_yield();
    }
    for (int t = 0; t < N; t++) {
        pthread_join(l[t].th, NULL);
        ck_assert_msg(l[t].errors == 0, "thread %d: %d errors, first %s: %s",
                      t, l[t].errors, cdm_strerror(l[t].first_rc),
                      l[t].first_err);
        ok += l[t].ok;
    }
    s = st("P");
    ck_assert_int_gt(ok, 0);
    ck_assert_int_eq(s.acquired, ok);
    ck_assert_int_eq(s.in_use, 0);
    ck_assert_int_eq(s.created, fault.connects);
    ck_assert_int_eq(s.destroyed, fault.closes);
    ck_assert_int_eq(s.total, fault.open_now);
    ck_assert_int_eq(s.created, s.destroyed + s.total);
    ck_assert_int_le(s.peak_in_use, 4);
}
END_TEST

/* ------------------------------------------- close names who is out */

/* Each definition with connections out is named with how many, most
 * first, as the definition is written; one with none out is not. */
START_TEST(test_close_busy_names_definitions)
{
    cdm_conn *o1, *o2, *r1;

    POOL("Orders", "POOL_MaximumItems=4");
    POOL("Reports", "POOL_MaximumItems=4");
    POOL("Quiet", "POOL_MaximumItems=4");
    r1 = get("Reports");
    o1 = get("orders");
    o2 = get("ORDERS");
    cdm_disconnect(get("Quiet"));
    ck_status(cdm_manager_close(m, 50), CDM_ERR_BUSY);
    ck_assert_str_eq(cdm_errmsg(), "3 pooled connections are still borrowed "
                     "after 50 ms: Orders (2), Reports (1); they are closed "
                     "when returned");
    cdm_disconnect(o1);
    ck_status(cdm_manager_close(m, 0), CDM_ERR_BUSY);
    ck_assert_str_eq(cdm_errmsg(), "2 pooled connections are still borrowed "
                     "after 0 ms: Orders (1), Reports (1); they are closed "
                     "when returned");
    cdm_disconnect(r1);
    ck_status(cdm_manager_close(m, 0), CDM_ERR_BUSY);
    ck_assert_str_eq(cdm_errmsg(), "1 pooled connection is still borrowed "
                     "after 0 ms: Orders (1); it is closed when returned");
    cdm_disconnect(o2);
    ck_status(cdm_manager_close(m, 0), CDM_OK);
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

/* Many definitions: five are named, most first (ties by name), the
 * others counted; the message stays one bounded line. */
START_TEST(test_close_busy_names_first_five)
{
    enum { DEFS = 9 };
    /* Long names, so that the bound is tested too. */
    static const char *const names[DEFS] = {
        "Alpha_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India",
    };
    /* Connections out per definition. */
    static const int out[DEFS] = { 1, 1, 3, 1, 1, 1, 2, 1, 1 };
    cdm_conn *c[16];
    size_t nc = 0;
    const char *msg;
    char cut[65], want[512];

    for (int i = 0; i < DEFS; i++) {
        POOL(names[i], "POOL_MaximumItems=4");
        for (int k = 0; k < out[i]; k++)
            c[nc++] = get(names[i]);
    }
    ck_status(cdm_manager_close(m, 0), CDM_ERR_BUSY);
    msg = cdm_errmsg();
    /* A long name is cut to its first 64 characters. */
    memcpy(cut, "Alpha_", 6);
    memset(cut + 6, 'a', 58);
    cut[64] = '\0';
    snprintf(want, sizeof want, "12 pooled connections are still borrowed "
             "after 0 ms: Charlie (3), Golf (2), %s (1), Bravo (1), Delta "
             "(1) and 4 more; they are closed when returned", cut);
    ck_assert_str_eq(msg, want);
    ck_assert_ptr_null(strchr(msg, '\n'));
    for (size_t i = 0; i < nc; i++)
        cdm_disconnect(c[i]);
    ck_assert_int_eq(fault.open_now, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tb = tcase_create("basics");
    TCase *tl = tcase_create("limits");
    TCase *tv = tcase_create("validation");
    TCase *tr = tcase_create("return");
    TCase *tc = tcase_create("cleanup");
    TCase *tg = tcase_create("changes");
    TCase *td = tcase_create("close_def");
    TCase *tm = tcase_create("close");
    TCase *ts = tcase_create("stress");
    TCase *tf = tcase_create("figures");
    TCase *tn = tcase_create("figures_run_on");
    TCase *all[] = { tb, tl, tv, tr, tc, tg, td, tm, ts, tf, tn };

    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], all[i] == ts || all[i] == tn ? 30 : 10);
        suite_add_tcase(s, all[i]);
    }

    tcase_add_test(tb, test_first_connect_builds_pool);
    tcase_add_test(tb, test_disconnect_returns_to_pool);
    tcase_add_test(tb, test_next_connect_reuses);
    tcase_add_test(tb, test_lifo_most_recent_first);
    tcase_add_test(tb, test_lifo_order_of_three);
    tcase_add_test(tb, test_lifo_across_threads);
    tcase_add_test(tb, test_name_case_insensitive_one_pool);
    tcase_add_test(tb, test_unpooled_opens_and_closes);
    tcase_add_test(tb, test_unpooled_not_in_stats);

    tcase_add_test(tl, test_max_counts_connections_being_opened);
    tcase_add_test(tl, test_full_fails_at_once_with_zero_timeout);
    tcase_add_test(tl, test_full_waits_then_fails);
    tcase_add_test(tl, test_waiter_gets_returned_connection);
    tcase_add_test(tl, test_waiters_served_in_arrival_order);
    tcase_add_test(tl, test_negative_max_is_unlimited);
    tcase_add_test(tl, test_negative_max_no_hidden_cap);
    tcase_add_test(tl, test_zero_max_is_invalid);
    tcase_add_test(tl, test_failed_connect_frees_its_slot);
    tcase_add_test(tl, test_failed_connect_wakes_waiter);

    tcase_add_test(tv, test_dead_idle_connection_replaced);
    tcase_add_test(tv, test_ping_interval_zero_pings_every_borrow);
    tcase_add_test(tv, test_ping_default_skips_short_idle);
    tcase_add_test(tv, test_ping_after_interval_elapsed);
    tcase_add_test(tv, test_ping_negative_never);
    tcase_add_test(tv, test_failed_ping_replaced);

    tcase_add_test(tr, test_open_transaction_rolled_back);
    tcase_add_test(tr, test_sql_begin_rolled_back);
    tcase_add_test(tr, test_no_rollback_without_transaction);
    tcase_add_test(tr, test_failed_rollback_destroys);
    tcase_add_test(tr, test_reset_on_release);
    tcase_add_test(tr, test_no_reset_unless_asked);
    tcase_add_test(tr, test_broken_connection_not_pooled);
    tcase_add_test(tr, test_broken_return_lets_waiter_open);
    tcase_add_test(tr, test_max_lifetime_retires_on_return);

    tcase_add_test(tc, test_expired_idle_closed);
    tcase_add_test(tc, test_minimum_items_kept_open);
    tcase_add_test(tc, test_minimum_items_filled_in_one_run);
    tcase_add_test(tc, test_leak_logged_once);
    tcase_add_test(tc, test_leak_every_connection_reported);

    tcase_add_test(tg, test_set_param_new_generation);
    tcase_add_test(tg, test_raising_limit_lets_waiter_proceed);
    tcase_add_test(tg, test_lowering_limit_closes_surplus);
    tcase_add_test(tg, test_lowering_limit_applies_to_idle_at_once);
    tcase_add_test(tg, test_limit_change_keeps_fitting_connections);
    tcase_add_test(tg, test_pooled_false_detaches_pool);
    tcase_add_test(tg, test_minimum_items_bounded);
    tcase_add_test(tg, test_unrelated_change_closes_nothing);
    tcase_add_test(tg, test_reload_changed_file);
    tcase_add_test(tg, test_reload_unchanged_file_closes_nothing);
    tcase_add_test(tg, test_parent_change_reaches_pooled_child);

    tcase_add_test(td, test_close_def_idle_now_borrowed_later);
    tcase_add_test(td, test_close_def_next_connect_new_pool);
    tcase_add_test(td, test_close_def_unknown_and_unbuilt);
    tcase_add_test(td, test_close_def_seen_by_other_threads);

    tcase_add_test(tm, test_close_idle_then_refuses);
    tcase_add_test(tm, test_close_busy_after_timeout);
    tcase_add_test(tm, test_close_returns_early_when_returned);
    tcase_add_test(tm, test_close_joins_cleanup_thread_at_once);
    tcase_add_test(tm, test_free_with_borrowed_connection);
    tcase_add_test(tm, test_close_wakes_waiters);
    tcase_add_test(tm, test_close_refuses_connects_from_known_pool);
    tcase_add_test(tm, test_close_busy_names_definitions);
    tcase_add_test(tm, test_close_busy_names_first_five);

    tcase_add_test(ts, test_stress_fault_invariants);
    tcase_add_test(ts, test_stress_sqlite_invariants);
    tcase_add_test(ts, test_stress_changes_and_close);

    tcase_add_test(tf, test_peak_one_at_a_time);
    tcase_add_test(tf, test_peak_kept_after_return);
    tcase_add_test(tf, test_wait_counted_peak_is_limit);
    tcase_add_test(tf, test_waits_count_each_borrower);
    tcase_add_test(tf, test_timed_out_wait_counted);
    tcase_add_test(tf, test_peak_and_waits_across_generations);
    tcase_add_test(tf, test_peak_counts_connections_being_opened);
    tcase_add_test(tf, test_peak_bounded_under_load);

    tcase_add_test(tn, test_counters_run_on_sqlite);
    tcase_add_test(tn, test_counters_kept_when_pool_reused);
    tcase_add_test(tn, test_counters_borrowed_across_close_def);
    tcase_add_test(tn, test_counters_monotonic_under_changes);
    return tu_run(s);
}
