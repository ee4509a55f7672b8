/*
 * bench.c - `make bench`: the figures behind the README's Performance
 * section, in one run, as a Markdown table on stdout and (--json FILE) one
 * JSON object.  A program that prints numbers, not a test: a missed target
 * is shown as MISS and does not change the exit status (only errors do).
 *
 * Every figure is measured in --rounds rounds (default 5) and reported as
 * the median with the smallest and largest round beside it.  A round
 * measures every figure once (all setup is done first), so each figure's
 * rounds are spread over the whole run.  Where two things are compared
 * (cdm and a baseline) each round measures both, the order alternating
 * from round to round, and the ratio figures alternate batches within a
 * round as well, so that drift (frequency scaling, another process on
 * the machine) hits both sides alike.  --seconds (default 0.5) is the
 * time each side gets in one round; --only runs some groups of figures.
 * The JSON holds every figure as {"median", "min", "max", "unit",
 * "target", "met"} or null, the compared sides under "baselines", and
 * the machine, servers, commit (CDM_BENCH_COMMIT, set by bench.sh),
 * date, rounds and notes.
 *
 * The figures (JSON keys), exactly:
 *
 *   cycle_ns_1t        one thread doing cdm_connect + cdm_disconnect, no
 *                      query, on a pooled SQLite ":memory:" definition
 *                      (POOL_MaximumItems=32, opened beforehand): wall
 *                      time / cycles.
 *   floor_ns_1t        the same loop over a bare stack: a mutex, a
 *                      condition variable and an array, pop and push.
 *   cycles_per_s_32t   32 threads doing that cycle on the same definition
 *                      (32 connections, so nobody waits): cycles done by
 *                      all threads / wall time.  Beside it the bare stack
 *                      with 32 items (baseline floor_cycles_per_s_32t).
 *   pg_cycle_ns_1t,    the same two on a pooled PostgreSQL definition
 *   pg_cycles_per_s_32t  (POOL_MaximumItems=32): each borrow includes the
 *                      pool's liveness check of a network connection.
 *   oversub_efficiency 32 threads over a pooled SQLite definition with
 *                      POOL_MaximumItems=4, each holding its connection
 *                      for 20 us of busy work (a clock loop) per borrow:
 *                      borrows per second / (min(cores, 4) / 20 us), i.e.
 *                      the share of what the cores (or the 4 connections,
 *                      if fewer) allow.  cores = CPUs this process may run
 *                      on (sched_getaffinity).
 *   oversub_slowest_share  in the same run, the borrows of the thread that
 *                      got fewest / the average per thread (1 = fair).
 *                      Beside both: the bare stack with 4 items, same
 *                      work (baselines oversub_floor_*).
 *   pg_open_speedup,   (driver's fresh connect + close) / (cdm_connect +
 *   mysql_open_speedup cdm_disconnect on a pooled definition with idle
 *                      connections), mean time of each per round.
 *   pg_select1_ratio,  on one held connection: cdm_query("SELECT 1") and
 *   mysql_select1_ratio  reading its value / the raw driver doing the
 *                      same on the same connection (PQexec + PQgetvalue;
 *                      mysql_real_query + mysql_store_result +
 *                      mysql_fetch_row), in alternating batches of 100.
 *   pg_param_ratio,    "SELECT ?+1" with the parameter "41" through the
 *   mysql_param_ratio  pool, whose definition has the default statement
 *                      cache (StatementCacheSize=32): cdm_connect,
 *                      cdm_query, read the value, cdm_result_free,
 *                      cdm_disconnect / the driver's best way on the
 *                      same physical connection, borrowed for a batch and
 *                      driven through cdm_conn_handle with a statement
 *                      prepared once: PQexecPrepared + PQgetvalue; MySQL
 *                      mysql_stmt_execute (a LONGLONG bound) +
 *                      mysql_stmt_fetch into a bound buffer.  One server
 *                      session serves both sides, so the figure is the
 *                      client's cost: with a session of its own for the
 *                      driver, single rounds ranged from 1.02 to 1.48 on
 *                      a 2-core machine, the two server sessions
 *                      differing more than the two clients.
 *   pg_param_nocache_ratio,  the same through a second pooled definition
 *   mysql_param_nocache_ratio  with StatementCacheSize=0 (each call has
 *                      the statement parsed again), against the driver
 *                      on that definition's connection.  Each ratio
 *                      comes from its own loop of alternating batches
 *                      (driver, cdm), the first side alternating from
 *                      round to round; every side reads the value the
 *                      same way (atoi).
 *   load_10k_defs_ms   cdm_manager_load_file of a generated file of 10,000
 *                      definitions (PG, MySQL and SQLite ones with Server,
 *                      Port, Database, User_Name, Password, Pooled, pool
 *                      limits; a tenth inherit through ConnectionDef;
 *                      about 2 MB, mode 0600) into a fresh manager.
 *   load_100k_defs_ms  the same with 100,000 definitions without their
 *   reload_100k_defs_ms LoginTimeout and POOL_ExpireTimeout (15 MB, near
 *                      the 16 MiB a file may have), then cdm_manager_reload
 *                      of that file unchanged.
 *   lookup_ns          cdm_manager_has_def on that manager, cycling over
 *                      1024 names: half present as written, a quarter
 *                      present in upper case, a quarter absent; wall time
 *                      / lookups.
 *   idle_conn_bytes    memory cdm adds per idle pooled connection beyond
 *                      the driver's own.  A sample is one fresh process
 *                      (this program run again with --idle-child, so
 *                      neither side reuses memory the other freed, and
 *                      the address space is laid out afresh each time):
 *                      it opens one connection (creating the manager,
 *                      pool and cleanup thread, or SQLite's globals),
 *                      reads its resident set (/proc/self/statm: the
 *                      current RSS, not getrusage's peak), opens 200
 *                      more, and reads it again.  cdm side: 201 borrowed
 *                      at once from a pooled SQLite ":memory:"
 *                      definition, then all returned, so 200 new ones sit
 *                      idle.  Driver side: 200 more sqlite3_open_v2
 *                      (":memory:") doing what cdm's driver does at open
 *                      (flags, busy timeout, the foreign_keys and
 *                      schema_version PRAGMAs), so SQLite holds the same
 *                      state.  A round takes 9 samples a side,
 *                      alternating; figure: (median cdm RSS delta -
 *                      median driver RSS delta) / 200.  RSS counts pages,
 *                      and on the development machine a sample's count
 *                      moves by up to ~15 pages from one process to the
 *                      next (address layout; the kernel's page reclaim),
 *                      i.e. +-300 bytes a connection, so the figure is
 *                      good to a few hundred bytes.  Beside it, exact:
 *                      the same difference of the heap in use
 *                      (mallinfo2, every arena; baseline
 *                      idle_conn_heap_bytes).  No malloc_trim: only
 *                      growth is measured, and memory freed is never
 *                      part of it.
 *
 * Server figures run when CDM_TEST_PG_* / CDM_TEST_MYSQL_* are set
 * (tests/bench.sh starts tests/servers.sh when they are not); without a
 * server they are null, with a note.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cdm.h>

#include "config.h"
#if HAVE_SQLITE
#include <sqlite3.h>
#endif
#if HAVE_POSTGRESQL
#include <libpq-fe.h>
#endif
#if HAVE_MYSQL
#include <mysql.h>
#endif

#define MAX_ROUNDS 64
#define MAX_THREADS 32
#define HOLD_NS 20000
#define OVER_MAX 4
#define IDLE_CONNS 200
#define NDEFS 10000
#define NDEFS_BIG 100000
#define NLOOKUP 1024
#define BATCH 100

static int rounds = 5;
static double seconds = 0.5;
static const char *only;        /* --only: comma-separated groups */
static int cores = 1;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t side_ns(void)
{
    return (int64_t)(seconds * 1e9);
}

/* Busy work of about `ns` nanoseconds, as a held connection would do. */
static void work(int64_t ns)
{
    int64_t end = now_ns() + ns;

    while (now_ns() < end)
        ;
}

/* Whether the group `name` (idle, load, fast, over, pg, mysql) runs. */
static bool wanted(const char *name)
{
    size_t len = strlen(name);

    if (!only)
        return true;
    for (const char *p = only; *p;) {
        size_t n = strcspn(p, ",");
        if (n == len && !strncmp(p, name, n))
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

static void progress(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void die(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, cdm_errmsg());
    exit(1);
}

/* ----------------------------------------------------------- figures */

enum {
    F_CYCLE_1T, F_CPS_32T, F_FLOOR_1T, F_PG_CYCLE_1T, F_PG_CPS_32T,
    F_OVER_EFF, F_OVER_SLOW, F_PG_OPEN, F_MY_OPEN, F_PG_SEL1, F_MY_SEL1,
    F_PG_PARAM, F_PG_PARAM_NC, F_MY_PARAM, F_MY_PARAM_NC, F_LOAD, F_LOAD_BIG,
    F_RELOAD_BIG, F_LOOKUP, F_IDLE,
    NFIGURES,
    /* baselines: in the JSON's "baselines" and the table's last column */
    B_FLOOR_CPS_32T = NFIGURES, B_OVER_FLOOR_EFF, B_OVER_FLOOR_SLOW,
    B_PG_FRESH_US, B_PG_POOLED_US, B_MY_FRESH_US, B_MY_POOLED_US,
    B_PG_SEL1_RAW_US, B_PG_SEL1_CDM_US, B_MY_SEL1_RAW_US, B_MY_SEL1_CDM_US,
    B_PG_PARAM_RAW_US, B_PG_PARAM_CDM_US, B_PG_PARAM_NC_CDM_US,
    B_MY_PARAM_RAW_US, B_MY_PARAM_CDM_US, B_MY_PARAM_NC_CDM_US,
    B_IDLE_CDM_RSS, B_IDLE_DRV_RSS, B_IDLE_HEAP,
    NALL
};

enum target { NONE, BELOW, AT_LEAST };

struct figure {
    const char *key;
    const char *unit;
    const char *fmt;        /* printf format of value / scale */
    double scale;
    enum target kind;
    double target;
    double v[MAX_ROUNDS];
    int n;
    double median, min, max;
};

#define FIG(k, u, f, sc, tk, t)                                               \
    { .key = k, .unit = u, .fmt = f, .scale = sc, .kind = tk, .target = t }
static struct figure fig[NALL] = {
    [F_CYCLE_1T]     = FIG("cycle_ns_1t", "ns", "%.1f", 1, BELOW, 50),
    [F_CPS_32T]      = FIG("cycles_per_s_32t", "cycles/s", "%.1f M", 1e6, AT_LEAST, 10e6),
    [F_FLOOR_1T]     = FIG("floor_ns_1t", "ns", "%.1f", 1, NONE, 0),
    [F_PG_CYCLE_1T]  = FIG("pg_cycle_ns_1t", "ns", "%.1f", 1, BELOW, 100),
    [F_PG_CPS_32T]   = FIG("pg_cycles_per_s_32t", "cycles/s", "%.1f M", 1e6, AT_LEAST, 10e6),
    [F_OVER_EFF]     = FIG("oversub_efficiency", "fraction", "%.2f", 1, AT_LEAST, 0.6),
    [F_OVER_SLOW]    = FIG("oversub_slowest_share", "fraction", "%.2f", 1, AT_LEAST, 0.8),
    [F_PG_OPEN]      = FIG("pg_open_speedup", "x", "%.0f", 1, AT_LEAST, 1000),
    [F_MY_OPEN]      = FIG("mysql_open_speedup", "x", "%.0f", 1, NONE, 0),
    [F_PG_SEL1]      = FIG("pg_select1_ratio", "x", "%.3f", 1, BELOW, 1.1),
    [F_MY_SEL1]      = FIG("mysql_select1_ratio", "x", "%.3f", 1, BELOW, 1.1),
    [F_PG_PARAM]     = FIG("pg_param_ratio", "x", "%.3f", 1, BELOW, 1.1),
    [F_PG_PARAM_NC]  = FIG("pg_param_nocache_ratio", "x", "%.2f", 1, NONE, 0),
    [F_MY_PARAM]     = FIG("mysql_param_ratio", "x", "%.3f", 1, BELOW, 1.1),
    [F_MY_PARAM_NC]  = FIG("mysql_param_nocache_ratio", "x", "%.2f", 1, NONE, 0),
    [F_LOAD]         = FIG("load_10k_defs_ms", "ms", "%.1f", 1, BELOW, 100),
    [F_LOAD_BIG]     = FIG("load_100k_defs_ms", "ms", "%.0f", 1, BELOW, 1000),
    [F_RELOAD_BIG]   = FIG("reload_100k_defs_ms", "ms", "%.0f", 1, BELOW, 1000),
    [F_LOOKUP]       = FIG("lookup_ns", "ns", "%.0f", 1, BELOW, 200),
    [F_IDLE]         = FIG("idle_conn_bytes", "bytes", "%.0f", 1, NONE, 0),
    [B_FLOOR_CPS_32T]   = FIG("floor_cycles_per_s_32t", "cycles/s", "%.1f M", 1e6, NONE, 0),
    [B_OVER_FLOOR_EFF]  = FIG("oversub_floor_efficiency", "fraction", "%.2f", 1, NONE, 0),
    [B_OVER_FLOOR_SLOW] = FIG("oversub_floor_slowest_share", "fraction", "%.2f", 1, NONE, 0),
    [B_PG_FRESH_US]     = FIG("pg_fresh_open_us", "us", "%.0f", 1, NONE, 0),
    [B_PG_POOLED_US]    = FIG("pg_pooled_open_us", "us", "%.3f", 1, NONE, 0),
    [B_MY_FRESH_US]     = FIG("mysql_fresh_open_us", "us", "%.0f", 1, NONE, 0),
    [B_MY_POOLED_US]    = FIG("mysql_pooled_open_us", "us", "%.3f", 1, NONE, 0),
    [B_PG_SEL1_RAW_US]  = FIG("pg_select1_driver_us", "us", "%.1f", 1, NONE, 0),
    [B_PG_SEL1_CDM_US]  = FIG("pg_select1_cdm_us", "us", "%.1f", 1, NONE, 0),
    [B_MY_SEL1_RAW_US]  = FIG("mysql_select1_driver_us", "us", "%.1f", 1, NONE, 0),
    [B_MY_SEL1_CDM_US]  = FIG("mysql_select1_cdm_us", "us", "%.1f", 1, NONE, 0),
    [B_PG_PARAM_RAW_US] = FIG("pg_param_driver_us", "us", "%.1f", 1, NONE, 0),
    [B_PG_PARAM_CDM_US] = FIG("pg_param_cdm_us", "us", "%.1f", 1, NONE, 0),
    [B_PG_PARAM_NC_CDM_US] = FIG("pg_param_nocache_cdm_us", "us", "%.1f", 1, NONE, 0),
    [B_MY_PARAM_RAW_US] = FIG("mysql_param_driver_us", "us", "%.1f", 1, NONE, 0),
    [B_MY_PARAM_CDM_US] = FIG("mysql_param_cdm_us", "us", "%.1f", 1, NONE, 0),
    [B_MY_PARAM_NC_CDM_US] = FIG("mysql_param_nocache_cdm_us", "us", "%.1f", 1, NONE, 0),
    [B_IDLE_CDM_RSS]    = FIG("idle_cdm_rss_bytes", "bytes", "%.0f", 1, NONE, 0),
    [B_IDLE_DRV_RSS]    = FIG("idle_driver_rss_bytes", "bytes", "%.0f", 1, NONE, 0),
    [B_IDLE_HEAP]       = FIG("idle_conn_heap_bytes", "bytes", "%.0f", 1, NONE, 0),
};

static char notes[8][256];
static int nnotes;

static void note(const char *fmt, ...)
{
    va_list ap;

    if (nnotes == (int)(sizeof notes / sizeof notes[0]))
        return;
    va_start(ap, fmt);
    vsnprintf(notes[nnotes++], sizeof notes[0], fmt, ap);
    va_end(ap);
}

static void record(int f, double v)
{
    if (fig[f].n < MAX_ROUNDS)
        fig[f].v[fig[f].n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void summarize(struct figure *f)
{
    double s[MAX_ROUNDS];

    if (!f->n)
        return;
    memcpy(s, f->v, (size_t)f->n * sizeof *s);
    qsort(s, (size_t)f->n, sizeof *s, cmp_double);
    f->min = s[0];
    f->max = s[f->n - 1];
    f->median = f->n % 2 ? s[f->n / 2] : (s[f->n / 2 - 1] + s[f->n / 2]) / 2;
}

static const char *fmt(const struct figure *f, double v, char *buf, size_t size)
{
    snprintf(buf, size, f->fmt, v / f->scale);
    return buf;
}

/* ------------------------------------------------ the bare baseline */

struct bare {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void *items[MAX_THREADS];
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

static void bare_init(struct bare *b, int items)
{
    static char token[MAX_THREADS];

    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    for (int i = 0; i < items; i++)
        b->items[b->n++] = &token[i];
}

static void bare_destroy(struct bare *b)
{
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
}

/* ------------------------------------------------------ cycle loops */

/* One thread for one side's time: ns per cycle, or -1 on an error. */
static double cycle_ns(cdm_manager *m, const char *def, struct bare *b)
{
    int64_t t0 = now_ns(), end = t0 + side_ns();
    long n = 0;

    do {
        for (int i = 0; i < 1000; i++) {
            if (m) {
                cdm_conn *c;
                if (cdm_connect(m, def, &c) != CDM_OK)
                    return -1;
                cdm_disconnect(c);
            } else {
                bare_push(b, bare_pop(b));
            }
        }
        n += 1000;
    } while (now_ns() < end);
    return (double)(now_ns() - t0) / (double)n;
}

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
        sched_yield();
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

struct threads_result {
    double per_sec;     /* cycles of all threads per second */
    double slowest;     /* fewest cycles of one thread / the average */
    long errors;
};

/* `threads` threads cycling for one side's time. */
static struct threads_result run_threads(cdm_manager *m, struct bare *bare,
                                         const char *def, int threads,
                                         int64_t hold_ns)
{
    pthread_t tid[MAX_THREADS];
    struct run runs[MAX_THREADS];
    atomic_int go = 0, stop = 0;
    struct threads_result res = { 0, 0, 0 };
    int64_t t0, t1;
    long sum = 0, min;

    for (int i = 0; i < threads; i++) {
        runs[i] = (struct run){ m, bare, def, hold_ns, &go, &stop, 0, 0 };
        if (pthread_create(&tid[i], NULL, runner, &runs[i]) != 0) {
            fprintf(stderr, "bench: cannot start a thread\n");
            exit(1);
        }
    }
    t0 = now_ns();
    atomic_store(&go, 1);
    while (now_ns() - t0 < side_ns()) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(tid[i], NULL);
    t1 = now_ns();
    min = runs[0].count;
    for (int i = 0; i < threads; i++) {
        sum += runs[i].count;
        res.errors += runs[i].errors;
        if (runs[i].count < min)
            min = runs[i].count;
    }
    res.per_sec = (double)sum / ((double)(t1 - t0) / 1e9);
    res.slowest = sum ? (double)min / ((double)sum / threads) : 0;
    return res;
}

/* ---------------------------------------------------- definitions */

static int sqlite_def(cdm_manager *m, const char *name, int max)
{
    char maxs[32];
    const char *params[] = { "DriverID=SQLite", "Database=:memory:",
                             "Pooled=True", maxs, "POOL_AcquireTimeout=60000",
                             NULL };

    snprintf(maxs, sizeof maxs, "POOL_MaximumItems=%d", max);
    return cdm_manager_add_def(m, name, params);
}

/* Borrows `n` connections at once, so that `n` exist, idle, afterwards. */
static int warm(cdm_manager *m, const char *def, int n)
{
    cdm_conn *c[IDLE_CONNS + 1];
    int i, rc = CDM_OK;

    for (i = 0; i < n && rc == CDM_OK; i++)
        rc = cdm_connect(m, def, &c[i]);
    if (rc != CDM_OK)
        i--;
    while (i > 0)
        cdm_disconnect(c[--i]);
    return rc;
}

/* --------------------------------------------------- fast path, SQLite */

/* Opens the SQLite definitions' connections; false if SQLite cannot. */
static bool fast_setup(cdm_manager *m)
{
    if (sqlite_def(m, "Fast", MAX_THREADS) != CDM_OK ||
        sqlite_def(m, "Over", OVER_MAX) != CDM_OK)
        die("adding the SQLite definitions");
    if (warm(m, "Fast", MAX_THREADS) != CDM_OK ||
        warm(m, "Over", OVER_MAX) != CDM_OK) {
        note("SQLite cannot be opened (%s): cycle_ns_1t, cycles_per_s_32t, "
             "oversub_* skipped", cdm_errmsg());
        return false;
    }
    return true;
}

static void fast_round(cdm_manager *m, int r)
{
    struct bare b;

    progress("round %d/%d: borrow cycles, SQLite", r + 1, rounds);
    bare_init(&b, 1);
    for (int side = 0; side < 2; side++) {
        if ((side ^ r) & 1)
            record(F_FLOOR_1T, cycle_ns(NULL, NULL, &b));
        else {
            double ns = cycle_ns(m, "Fast", NULL);
            if (ns < 0)
                die("cdm_connect on the SQLite definition");
            record(F_CYCLE_1T, ns);
        }
    }
    bare_destroy(&b);
    bare_init(&b, MAX_THREADS);
    for (int side = 0; side < 2; side++) {
        if ((side ^ r) & 1)
            record(B_FLOOR_CPS_32T,
                   run_threads(NULL, &b, NULL, MAX_THREADS, 0).per_sec);
        else {
            struct threads_result t = run_threads(m, NULL, "Fast",
                                                  MAX_THREADS, 0);
            if (t.errors)
                die("cdm_connect on the SQLite definition");
            record(F_CPS_32T, t.per_sec);
        }
    }
    bare_destroy(&b);
}

/* Oversubscribed: what the machine allows is min(cores, 4) holds of
 * HOLD_NS at a time. */
static void over_round(cdm_manager *m, int r)
{
    double ideal = (cores < OVER_MAX ? cores : OVER_MAX) * 1e9 / HOLD_NS;
    struct bare b;

    progress("round %d/%d: oversubscribed pool", r + 1, rounds);
    bare_init(&b, OVER_MAX);
    for (int side = 0; side < 2; side++) {
        if ((side ^ r) & 1) {
            struct threads_result t = run_threads(NULL, &b, NULL,
                                                  MAX_THREADS, HOLD_NS);
            record(B_OVER_FLOOR_EFF, t.per_sec / ideal);
            record(B_OVER_FLOOR_SLOW, t.slowest);
        } else {
            struct threads_result t = run_threads(m, NULL, "Over",
                                                  MAX_THREADS, HOLD_NS);
            if (t.errors)
                die("cdm_connect on the oversubscribed definition");
            record(F_OVER_EFF, t.per_sec / ideal);
            record(F_OVER_SLOW, t.slowest);
        }
    }
    bare_destroy(&b);
}

/* ----------------------------------------------------------- servers */

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

struct server {
    const char *label;          /* "PG", "MySQL" */
    const char *driver;         /* "DriverID=..." */
    const char *prefix;         /* CDM_TEST_PG, CDM_TEST_MYSQL */
    const char *lower;          /* key prefix: "pg", "mysql" */
    int f_open, f_sel1, f_param, f_param_nc;
    int b_fresh, b_pooled, b_sel1_raw, b_sel1_cdm, b_param_raw, b_param_cdm,
        b_param_nc_cdm;
    void *(*raw_connect)(void);
    void (*raw_close)(void *h);
    int (*raw_select1)(void *h);            /* 0: read "1" */
    void *(*param_prepare)(void *h);        /* NULL on failure */
    int (*param_run)(void *ctx);            /* 0: read 42 */
    void (*param_free)(void *ctx);
    /* set by server_setup */
    bool ready, param_ready;
    char def[64], def_nc[64];   /* the pooled definition; without a cache */
    /* The driver's own prepared statement on each definition's pooled
     * connection ([0] cached, [1] no cache), and the handle it is on. */
    void *ctx[2], *ctx_handle[2];
};

/* A pooled definition on the test server whose variables start with the
 * server's prefix, with `extra` (a "Key=Value", or NULL); 1 when the
 * variables are not set. */
static int server_def(cdm_manager *m, const struct server *s, const char *name,
                      const char *extra)
{
    char host[128], port[64], db[128], user[128], pw[256], var[64];
    const char *params[] = { s->driver, host, port, db, user, pw,
                             "Pooled=True", "POOL_MaximumItems=32",
                             "POOL_AcquireTimeout=60000", extra, NULL };

#define GET(buf, key, suffix)                                                \
    snprintf(var, sizeof var, "%s_%s", s->prefix, suffix);                   \
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

static int cdm_select1(cdm_conn *c)
{
    cdm_result *r;
    int ok;

    if (cdm_query(c, "SELECT 1", NULL, 0, &r) != CDM_OK)
        return -1;
    ok = cdm_result_nrows(r) == 1 && cdm_result_value(r, 0, 0)[0] == '1';
    cdm_result_free(r);
    return ok ? 0 : -1;
}

/* The pooled side of the parameter figure: borrow, run, read, return. */
static int cdm_param(cdm_manager *m, const char *def)
{
    const char *params[] = { "41" };
    cdm_conn *c;
    cdm_result *r;
    const char *v;
    int ok;

    if (cdm_connect(m, def, &c) != CDM_OK)
        return -1;
    if (cdm_query(c, "SELECT ?+1", params, 1, &r) != CDM_OK) {
        cdm_disconnect(c);
        return -1;
    }
    ok = cdm_result_nrows(r) == 1 && (v = cdm_result_value(r, 0, 0)) &&
         atoi(v) == 42;
    cdm_result_free(r);
    cdm_disconnect(c);
    return ok ? 0 : -1;
}

/* Borrows def's connection for a batch of the driver's own calls, with
 * the driver's statement prepared on it (again, if the pool handed out
 * another connection than last time); s->ctx[i] stays NULL if that
 * fails. */
static cdm_conn *driver_borrow(cdm_manager *m, struct server *s, int i,
                               const char *def)
{
    cdm_conn *c;
    void *h;

    if (cdm_connect(m, def, &c) != CDM_OK)
        die("cdm_connect on a server definition");
    h = cdm_conn_handle(c);
    if (s->ctx[i] && s->ctx_handle[i] != h) {
        s->param_free(s->ctx[i]);
        s->ctx[i] = NULL;
    }
    if (!s->ctx[i] && (s->ctx[i] = s->param_prepare(h)) != NULL)
        s->ctx_handle[i] = h;
    return c;
}

/* Defines and opens the pooled definition and the driver's own
 * connection with its prepared statement; s->ready if the server is
 * there. */
static void server_setup(cdm_manager *m, struct server *s)
{
    char port_var[64];
    int rc;

    snprintf(s->def, sizeof s->def, "%s_Pooled", s->label);
    snprintf(s->def_nc, sizeof s->def_nc, "%s_NoCache", s->label);
    snprintf(port_var, sizeof port_var, "%s_PORT", s->prefix);
    if (!env(port_var) || (rc = server_def(m, s, s->def, NULL)) > 0) {
        note("no %s test server: %s_* figures skipped (run through "
             "tests/bench.sh, which starts one)", s->label, s->lower);
        return;
    }
    if (rc < 0 || warm(m, s->def, MAX_THREADS) != CDM_OK) {
        note("%s test server unusable (%s): %s_* figures skipped", s->label,
             cdm_errmsg(), s->lower);
        return;
    }
    s->ready = true;
    if (server_def(m, s, s->def_nc, "StatementCacheSize=0") != 0 ||
        warm(m, s->def_nc, 1) != CDM_OK)
        die("the definition without a statement cache");
    if (cdm_param(m, s->def) != 0 || cdm_param(m, s->def_nc) != 0)
        die("SELECT ?+1 through cdm");
    for (int i = 0; i < 2; i++) {
        cdm_conn *c = driver_borrow(m, s, i, i ? s->def_nc : s->def);
        int rc = s->ctx[i] ? s->param_run(s->ctx[i]) : -1;
        cdm_disconnect(c);
        if (rc != 0) {
            note("%s: SELECT ?+1 with the driver failed: %s_param_ratio "
                 "skipped", s->label, s->lower);
            return;
        }
    }
    s->param_ready = true;
}

static void server_teardown(struct server *s)
{
    for (int i = 0; i < 2; i++)
        if (s->ctx[i])
            s->param_free(s->ctx[i]);
}

static void server_round(cdm_manager *m, struct server *s, int r)
{
    const char *def = s->def;
    cdm_conn *held;

    if (!s->ready)
        return;
    /* Borrow cycles, PostgreSQL only (the figures). */
    if (s->f_open == F_PG_OPEN) {
        struct threads_result t;
        double ns;
        progress("round %d/%d: %s borrow cycles", r + 1, rounds, s->label);
        if ((ns = cycle_ns(m, def, NULL)) < 0)
            die("cdm_connect on the PG definition");
        record(F_PG_CYCLE_1T, ns);
        t = run_threads(m, NULL, def, MAX_THREADS, 0);
        if (t.errors)
            die("cdm_connect on the PG definition");
        record(F_PG_CPS_32T, t.per_sec);
    }

    /* Opening: a fresh driver connection against a pooled borrow. */
    progress("round %d/%d: %s open", r + 1, rounds, s->label);
    {
        double fresh = 0, pooled = 0;
        for (int side = 0; side < 2; side++) {
            int64_t t0 = now_ns(), end = t0 + side_ns();
            long n = 0;
            if ((side ^ r) & 1) {
                do {
                    void *h = s->raw_connect();
                    if (!h) {
                        fprintf(stderr, "bench: %s: the driver's own connect "
                                "failed\n", s->label);
                        exit(1);
                    }
                    s->raw_close(h);
                    n++;
                } while (now_ns() < end || n < 3);
                fresh = (double)(now_ns() - t0) / (double)n;
            } else {
                pooled = cycle_ns(m, def, NULL);
                if (pooled < 0)
                    die("cdm_connect on a server definition");
            }
        }
        record(s->b_fresh, fresh / 1e3);
        record(s->b_pooled, pooled / 1e3);
        record(s->f_open, fresh / pooled);
    }

    /* SELECT 1 on one held connection: the driver's call and cdm_query in
     * alternating batches. */
    progress("round %d/%d: %s SELECT 1", r + 1, rounds, s->label);
    if (cdm_connect(m, def, &held) != CDM_OK)
        die("cdm_connect on a server definition");
    if (s->raw_select1(cdm_conn_handle(held)) != 0 || cdm_select1(held) != 0)
        die("SELECT 1");
    {
        int64_t t_raw = 0, t_cdm = 0, start = now_ns();
        long batches = 0;
        do {
            for (int side = 0; side < 2; side++) {
                int64_t t0 = now_ns();
                bool raw_side = (side ^ batches) & 1;
                for (int i = 0; i < BATCH; i++)
                    if ((raw_side ? s->raw_select1(cdm_conn_handle(held))
                                  : cdm_select1(held)) != 0)
                        die("SELECT 1");
                *(raw_side ? &t_raw : &t_cdm) += now_ns() - t0;
            }
            batches++;
        } while (now_ns() - start < 2 * side_ns());
        record(s->b_sel1_raw, (double)t_raw / 1e3 / (double)(batches * BATCH));
        record(s->b_sel1_cdm, (double)t_cdm / 1e3 / (double)(batches * BATCH));
        record(s->f_sel1, (double)t_cdm / (double)t_raw);
    }
    cdm_disconnect(held);

    /* SELECT ?+1: the driver's prepared statement against cdm, on the
     * same physical connection, in alternating batches; then the same
     * with the statement cache off.  Each pair is measured on its own,
     * so that neither cdm side runs between the other's batches. */
    if (!s->param_ready)
        return;
    progress("round %d/%d: %s SELECT ?+1", r + 1, rounds, s->label);
    {
        const char *defs[2] = { def, s->def_nc };
        const int figs[2] = { s->f_param, s->f_param_nc };
        const int cdm_us[2] = { s->b_param_cdm, s->b_param_nc_cdm };
        int64_t raw_all = 0;
        long raw_batches = 0;
        for (int pair = 0; pair < 2; pair++) {
            int64_t t[2] = { 0, 0 }, start = now_ns();   /* driver, cdm */
            long batches = 0;
            do {
                for (int k = 0; k < 2; k++) {
                    int side = (int)((k + batches + r) & 1);
                    cdm_conn *c = NULL;
                    int64_t t0;
                    if (side == 0) {
                        c = driver_borrow(m, s, pair, defs[pair]);
                        if (!s->ctx[pair])
                            die("preparing SELECT ?+1 with the driver");
                    }
                    t0 = now_ns();
                    for (int i = 0; i < BATCH; i++)
                        if ((side == 0 ? s->param_run(s->ctx[pair])
                                       : cdm_param(m, defs[pair])) != 0)
                            die("SELECT ?+1");
                    t[side] += now_ns() - t0;
                    cdm_disconnect(c);
                }
                batches++;
            } while (now_ns() - start < 2 * side_ns());
            raw_all += t[0];
            raw_batches += batches;
            record(cdm_us[pair], (double)t[1] / 1e3 / (double)(batches * BATCH));
            record(figs[pair], (double)t[1] / (double)t[0]);
        }
        record(s->b_param_raw,
               (double)raw_all / 1e3 / (double)(raw_batches * BATCH));
    }
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

static int pg_raw_select1(void *h)
{
    PGresult *r = PQexec(h, "SELECT 1");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
             PQgetvalue(r, 0, 0)[0] == '1';

    PQclear(r);
    return ok ? 0 : -1;
}

static void *pg_param_prepare(void *h)
{
    PGresult *r = PQprepare(h, "bench_param", "SELECT $1+1", 1, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

    PQclear(r);
    return ok ? h : NULL;
}

static int pg_param_run(void *h)
{
    const char *vals[] = { "41" };
    PGresult *r = PQexecPrepared(h, "bench_param", 1, vals, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
             atoi(PQgetvalue(r, 0, 0)) == 42;

    PQclear(r);
    return ok ? 0 : -1;
}

static void pg_param_free(void *h)
{
    (void)h;    /* the statement goes with the connection */
}

static void pg_version(char *buf, size_t size)
{
    void *h = pg_raw_connect();
    int v;

    if (!h)
        return;
    v = PQserverVersion(h);
    snprintf(buf, size, "PostgreSQL %d.%d", v / 10000, v % 10000);
    PQfinish(h);
}
#endif

#if HAVE_MYSQL
static void *my_raw_connect(void)
{
    MYSQL *db = mysql_init(NULL);

    if (!db)
        return NULL;
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

static int my_raw_select1(void *h)
{
    MYSQL_RES *r;
    MYSQL_ROW row;
    int ok;

    if (mysql_real_query(h, "SELECT 1", 8) || !(r = mysql_store_result(h)))
        return -1;
    ok = (row = mysql_fetch_row(r)) && row[0] && row[0][0] == '1';
    mysql_free_result(r);
    return ok ? 0 : -1;
}

struct my_param {
    MYSQL_STMT *st;
    long long in;
    char out[64];
    unsigned long out_len;
};

static void *my_param_prepare(void *h)
{
    static const char sql[] = "SELECT ?+1";
    struct my_param *p = calloc(1, sizeof *p);
    MYSQL_BIND in, out;

    if (!p || !(p->st = mysql_stmt_init(h)) ||
        mysql_stmt_prepare(p->st, sql, sizeof sql - 1))
        goto fail;
    memset(&in, 0, sizeof in);
    in.buffer_type = MYSQL_TYPE_LONGLONG;
    in.buffer = &p->in;
    memset(&out, 0, sizeof out);
    out.buffer_type = MYSQL_TYPE_STRING;
    out.buffer = p->out;
    out.buffer_length = sizeof p->out - 1;
    out.length = &p->out_len;
    p->in = 41;
    if (mysql_stmt_bind_param(p->st, &in) || mysql_stmt_bind_result(p->st, &out))
        goto fail;
    return p;
fail:
    if (p && p->st)
        mysql_stmt_close(p->st);
    free(p);
    return NULL;
}

static int my_param_run(void *ctx)
{
    struct my_param *p = ctx;
    int rc, rows = 0;

    if (mysql_stmt_execute(p->st))
        return -1;
    while ((rc = mysql_stmt_fetch(p->st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
        p->out[p->out_len < sizeof p->out ? p->out_len : sizeof p->out - 1] = 0;
        rows++;
    }
    mysql_stmt_free_result(p->st);
    return rc == MYSQL_NO_DATA && rows == 1 && atoi(p->out) == 42 ? 0 : -1;
}

static void my_param_free(void *ctx)
{
    struct my_param *p = ctx;

    mysql_stmt_close(p->st);
    free(p);
}

static void my_version(char *buf, size_t size)
{
    MYSQL *h = my_raw_connect();

    if (!h)
        return;
    snprintf(buf, size, "%s", mysql_get_server_info(h));
    mysql_close(h);
}
#endif

/* ------------------------------------------------- definitions file */

static char tmpdir[256];
static double defs_mb;      /* size of the generated file */

/* `lean` leaves out two keys of little interest, so that 100,000
 * definitions fit in the 16 MiB a file may have. */
static int write_defs(const char *path, int ndefs, bool lean)
{
    static const char *const drivers[] = { "PG", "MySQL", "SQLite" };
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

    if (!f)
        return -1;
    fprintf(f, "; %d generated definitions for `make bench`\n"
            "[FDConnectionDefs.ini]\nEncoding=UTF8\n\n", ndefs);
    for (int i = 0; i < ndefs; i++) {
        const char *drv = drivers[i % 3];
        if (i % 10 == 9) {      /* a variant of the one before */
            fprintf(f, "[App%05d_%s]\nConnectionDef=App%05d_%s\n"
                    "Database=app%05d_reporting\nPooled=True\n"
                    "POOL_MaximumItems=5\n\n",
                    i, drv, i - 1, drivers[(i - 1) % 3], i);
            continue;
        }
        fprintf(f, "[App%05d_%s]\nDriverID=%s\n", i, drv, drv);
        if (i % 3 == 2) {
            fprintf(f, "Database=/var/lib/app%05d/data.db\nBusyTimeout=5000\n"
                    "JournalMode=WAL\n", i);
        } else {
            fprintf(f, "Server=db%03d.internal.example.com\nPort=%s\n"
                    "Database=app%05d\nUser_Name=app%05d\nPassword=pw%08x\n"
                    "%s", i % 250, i % 3 ? "3306" : "5432", i, i,
                    (unsigned)i * 2654435761u, lean ? "" : "LoginTimeout=5\n");
        }
        /* Pool limits only where they apply: a file that loads without a
         * warning, as a maintained one does. */
        if (i % 2)
            fprintf(f, "Pooled=True\nPOOL_MaximumItems=%d\n%s\n",
                    10 + i % 40, lean ? "" : "POOL_ExpireTimeout=60000\n");
        else
            fprintf(f, "Pooled=False\n\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

static char defs_path[300], big_path[300];
static double big_mb;       /* size of the 100,000-definition file */
static char names[NLOOKUP][32];

/* Writes the file and the names to look up; false if it cannot. */
static bool load_setup(void)
{
    struct stat st;
    uint32_t seed = 12345;

    snprintf(tmpdir, sizeof tmpdir, "%s/cdm-bench-XXXXXX",
             env("TMPDIR") ? env("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        note("cannot make a temporary directory: load_10k_defs_ms, "
             "lookup_ns skipped");
        return false;
    }
    snprintf(defs_path, sizeof defs_path, "%s/defs.ini", tmpdir);
    snprintf(big_path, sizeof big_path, "%s/big.ini", tmpdir);
    if (write_defs(defs_path, NDEFS, false) != 0 ||
        write_defs(big_path, NDEFS_BIG, true) != 0) {
        note("cannot write %s: load_10k_defs_ms, lookup_ns skipped", defs_path);
        unlink(defs_path);
        unlink(big_path);
        rmdir(tmpdir);
        return false;
    }
    if (stat(defs_path, &st) == 0)
        defs_mb = (double)st.st_size / 1e6;
    if (stat(big_path, &st) == 0)
        big_mb = (double)st.st_size / 1e6;
    for (int i = 0; i < NLOOKUP; i++) {
        int d;
        seed = seed * 1103515245u + 12345u;
        d = (int)((seed >> 8) % NDEFS);
        if (i % 4 == 3)
            snprintf(names[i], sizeof names[i], "Missing%05d", d);
        else if (i % 4 == 2)
            snprintf(names[i], sizeof names[i], "APP%05d_%s", d,
                     (const char *[]){ "PG", "MYSQL", "SQLITE" }[d % 3]);
        else
            snprintf(names[i], sizeof names[i], "App%05d_%s", d,
                     (const char *[]){ "PG", "MySQL", "SQLite" }[d % 3]);
    }
    return true;
}

static void load_teardown(void)
{
    unlink(defs_path);
    unlink(big_path);
    rmdir(tmpdir);
}

/* Counts what loading logs: the generated files must load clean. */
static void count_log(int level, const char *message, void *user)
{
    (void)level;
    if (!*(int *)user)
        fprintf(stderr, "bench: the generated file loads with: %s\n", message);
    ++*(int *)user;
}

static void load_round(int r)
{
    int logged = 0;
    cdm_manager *m;
    int64_t t0, start;
    long n = 0, found = 0;

    progress("round %d/%d: loading %d definitions", r + 1, rounds, NDEFS);
    if (cdm_manager_new(&m) != CDM_OK)
        die("cdm_manager_new");
    cdm_manager_set_log(m, count_log, &logged);
    t0 = now_ns();
    if (cdm_manager_load_file(m, defs_path) != CDM_OK)
        die("loading the generated definitions");
    record(F_LOAD, (double)(now_ns() - t0) / 1e6);
    start = now_ns();
    do {
        for (int i = 0; i < NLOOKUP; i++)
            found += cdm_manager_has_def(m, names[i]);
        n += NLOOKUP;
    } while (now_ns() - start < side_ns() / 2);
    record(F_LOOKUP, (double)(now_ns() - start) / (double)n);
    if (found != n / 4 * 3)
        die("cdm_manager_has_def found the wrong names");
    if (logged)
        die("the generated file must load without a message");
    cdm_manager_free(m);

    progress("round %d/%d: loading and reloading %d definitions", r + 1,
             rounds, NDEFS_BIG);
    if (cdm_manager_new(&m) != CDM_OK)
        die("cdm_manager_new");
    t0 = now_ns();
    if (cdm_manager_load_file(m, big_path) != CDM_OK)
        die("loading the generated definitions");
    record(F_LOAD_BIG, (double)(now_ns() - t0) / 1e6);
    t0 = now_ns();
    if (cdm_manager_reload(m) != CDM_OK)
        die("reloading the generated definitions");
    record(F_RELOAD_BIG, (double)(now_ns() - t0) / 1e6);
    cdm_manager_free(m);
}

/* ------------------------------------------------------------ memory */

static double rss_bytes(void)
{
    long size, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static double heap_bytes(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 mi = mallinfo2();

    return (double)mi.uordblks + (double)mi.hblkhd;
#else
    return 0;
#endif
}

#if HAVE_SQLITE
static sqlite3 *raw_sqlite_open(void)
{
    sqlite3 *db;

    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE |
                        SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_exec(db, "PRAGMA foreign_keys=OFF", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA schema_version", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}
#endif

/* In a process of its own: the growth of RSS and heap, per connection,
 * over IDLE_CONNS connections opened by cdm (pooled, then returned) or
 * by SQLite alone. */
static int idle_child(bool with_cdm, double out[2])
{
    static cdm_conn *held[IDLE_CONNS + 1];
#if HAVE_SQLITE
    static sqlite3 *raw[IDLE_CONNS];
#endif
    double rss0, heap0;

    if (with_cdm) {
        cdm_manager *m;
        if (cdm_manager_new(&m) != CDM_OK ||
            sqlite_def(m, "Idle", IDLE_CONNS + 1) != CDM_OK ||
            warm(m, "Idle", 1) != CDM_OK)
            return -1;
        rss0 = rss_bytes();
        heap0 = heap_bytes();
        for (int i = 0; i < IDLE_CONNS + 1; i++)
            if (cdm_connect(m, "Idle", &held[i]) != CDM_OK)
                return -1;
        for (int i = 0; i < IDLE_CONNS + 1; i++)
            cdm_disconnect(held[i]);
        /* the manager stays: its connections are idle, not closed */
    } else {
#if HAVE_SQLITE
        sqlite3 *first = raw_sqlite_open();
        if (!first)
            return -1;
        rss0 = rss_bytes();
        heap0 = heap_bytes();
        for (int i = 0; i < IDLE_CONNS; i++)
            if (!(raw[i] = raw_sqlite_open()))
                return -1;
#else
        return -1;
#endif
    }
    out[0] = (rss_bytes() - rss0) / IDLE_CONNS;
    out[1] = (heap_bytes() - heap0) / IDLE_CONNS;
    return rss0 < 0 ? -1 : 0;
}

/* One side in a fresh process: this program run again (exec, so that
 * its address space is laid out afresh: where the heap starts within a
 * page moves the count by a few pages, and a forked child would inherit
 * the parent's layout every time). */
static int idle_side(bool with_cdm, double out[2])
{
    char buf[128];
    int fds[2], status;
    pid_t pid;
    ssize_t got;

    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    if ((pid = fork()) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        if (dup2(fds[1], 1) < 0)
            _exit(127);
        close(fds[0]);
        close(fds[1]);
        execl("/proc/self/exe", "bench", "--idle-child",
              with_cdm ? "cdm" : "driver", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    got = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0 || got <= 0)
        return -1;
    buf[got] = 0;
    return sscanf(buf, "%lf %lf", &out[0], &out[1]) == 2 ? 0 : -1;
}

/* A round: IDLE_SAMPLES processes a side, alternating, and the
 * difference of the sides' medians. */
#define IDLE_SAMPLES 9
static bool idle_failed;

static void idle_round(int r)
{
    struct figure c = { 0 }, d = { 0 }, ch = { 0 }, dh = { 0 };

    if (idle_failed)
        return;
    progress("round %d/%d: idle connections", r + 1, rounds);
    for (int i = 0; i < 2 * IDLE_SAMPLES; i++) {
        bool with_cdm = (i ^ r) & 1;
        double v[2];
        if (idle_side(with_cdm, v) != 0) {
            note("idle connections could not be measured (/proc/self/"
                 "statm, /proc/self/exe or SQLite missing): "
                 "idle_conn_bytes skipped");
            fig[F_IDLE].n = fig[B_IDLE_CDM_RSS].n = 0;
            fig[B_IDLE_DRV_RSS].n = fig[B_IDLE_HEAP].n = 0;
            idle_failed = true;
            return;
        }
        (with_cdm ? &c : &d)->v[(with_cdm ? &c : &d)->n++] = v[0];
        (with_cdm ? &ch : &dh)->v[(with_cdm ? &ch : &dh)->n++] = v[1];
    }
    summarize(&c);
    summarize(&d);
    summarize(&ch);
    summarize(&dh);
    record(B_IDLE_CDM_RSS, c.median);
    record(B_IDLE_DRV_RSS, d.median);
    record(F_IDLE, c.median - d.median);
    record(B_IDLE_HEAP, ch.median - dh.median);
}

/* ------------------------------------------------------------ output */

static struct {
    char cpu[128], kernel[400], os[128], date[32];
    const char *compiler, *commit;
} machine;

static void read_machine(void)
{
    char line[512];
    struct utsname u;
    FILE *f;
    time_t t = time(NULL);
    cpu_set_t set;

    snprintf(machine.cpu, sizeof machine.cpu, "unknown CPU");
    if ((f = fopen("/proc/cpuinfo", "r"))) {
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                char *v = strchr(line, ':') + 1;
                v += strspn(v, " \t");
                v[strcspn(v, "\n")] = 0;
                snprintf(machine.cpu, sizeof machine.cpu, "%s", v);
                break;
            }
        fclose(f);
    }
    if ((f = fopen("/etc/os-release", "r"))) {
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "PRETTY_NAME=", 12)) {
                char *v = line + 12;
                v += *v == '"';
                v[strcspn(v, "\"\n")] = 0;
                snprintf(machine.os, sizeof machine.os, "%s", v);
            }
        fclose(f);
    }
    if (uname(&u) == 0)
        snprintf(machine.kernel, sizeof machine.kernel, "%s %s %s", u.sysname,
                 u.release, u.machine);
    strftime(machine.date, sizeof machine.date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
#if defined(__clang__)
    machine.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
    machine.compiler = "gcc " __VERSION__;
#else
    machine.compiler = "unknown compiler";
#endif
    machine.commit = env("CDM_BENCH_COMMIT");
    cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cores = CPU_COUNT(&set);
    if (cores < 1)
        cores = 1;
}

static const char *target_text(const struct figure *f, char *buf, size_t size)
{
    char v[32];

    if (f->kind == NONE)
        return "—";
    fmt(f, f->target, v, sizeof v);
    snprintf(buf, size, "%s %s", f->kind == BELOW ? "<" : "≥", v);
    return buf;
}

static bool met(const struct figure *f)
{
    return f->kind == BELOW ? f->median < f->target : f->median >= f->target;
}

/* The last column: what the figure stands beside. */
static void beside(int i, char *buf, size_t size)
{
    char a[32], b[32];
    const struct figure *x, *y;

    buf[0] = 0;
#define HAVE(k) (fig[k].n > 0)
    switch (i) {
    case F_CYCLE_1T:
    case F_PG_CYCLE_1T:
        if (HAVE(i) && HAVE(F_FLOOR_1T))
            snprintf(buf, size, "%.2fx the bare stack", fig[i].median /
                     fig[F_FLOOR_1T].median);
        break;
    case F_FLOOR_1T:
        snprintf(buf, size, "bare mutex-protected stack, 1 thread");
        break;
    case F_CPS_32T:
    case F_PG_CPS_32T:
        x = &fig[B_FLOOR_CPS_32T];
        if (HAVE(i) && x->n)
            snprintf(buf, size, "bare stack: %s cycles/s",
                     fmt(x, x->median, a, sizeof a));
        break;
    case F_OVER_EFF:
    case F_OVER_SLOW:
        x = &fig[i == F_OVER_EFF ? B_OVER_FLOOR_EFF : B_OVER_FLOOR_SLOW];
        if (x->n)
            snprintf(buf, size, "bare stack: %s", fmt(x, x->median, a, sizeof a));
        break;
    case F_PG_OPEN:
    case F_MY_OPEN:
        x = &fig[i == F_PG_OPEN ? B_PG_FRESH_US : B_MY_FRESH_US];
        y = &fig[i == F_PG_OPEN ? B_PG_POOLED_US : B_MY_POOLED_US];
        if (x->n)
            snprintf(buf, size, "fresh %s µs, pooled %s µs",
                     fmt(x, x->median, a, sizeof a), fmt(y, y->median, b, sizeof b));
        break;
    case F_PG_SEL1:
    case F_MY_SEL1:
    case F_PG_PARAM:
    case F_MY_PARAM:
        x = &fig[i == F_PG_SEL1 ? B_PG_SEL1_RAW_US : i == F_MY_SEL1 ?
                 B_MY_SEL1_RAW_US : i == F_PG_PARAM ? B_PG_PARAM_RAW_US :
                 B_MY_PARAM_RAW_US];
        y = x + 1;      /* the cdm figure follows the driver's */
        if (x->n)
            snprintf(buf, size, "driver %s µs, cdm %s µs",
                     fmt(x, x->median, a, sizeof a), fmt(y, y->median, b, sizeof b));
        break;
    case F_PG_PARAM_NC:
    case F_MY_PARAM_NC:
        x = &fig[i == F_PG_PARAM_NC ? B_PG_PARAM_RAW_US : B_MY_PARAM_RAW_US];
        y = x + 2;      /* then the cdm figure without a cache */
        if (x->n)
            snprintf(buf, size, "driver %s µs, cdm without a cache %s µs",
                     fmt(x, x->median, a, sizeof a), fmt(y, y->median, b, sizeof b));
        break;
    case F_LOAD:
        snprintf(buf, size, "%d definitions, %.1f MB", NDEFS, defs_mb);
        break;
    case F_LOAD_BIG:
        snprintf(buf, size, "%d definitions, %.1f MB", NDEFS_BIG, big_mb);
        break;
    case F_RELOAD_BIG:
        snprintf(buf, size, "cdm_manager_reload of the same file");
        break;
    case F_LOOKUP:
        snprintf(buf, size, "cdm_manager_has_def, %d definitions", NDEFS);
        break;
    case F_IDLE:
        x = &fig[B_IDLE_DRV_RSS];
        y = &fig[B_IDLE_HEAP];
        if (x->n)
            snprintf(buf, size, "SQLite alone %s B; heap %s B",
                     fmt(x, x->median, a, sizeof a), fmt(y, y->median, b, sizeof b));
        break;
    }
#undef HAVE
}

static void print_table(void)
{
    printf("cdm %s%s%s, %s; %s, %d core%s, %s, %s; %d rounds, %.2g s a side\n\n",
           PACKAGE_VERSION, machine.commit ? " " : "",
           machine.commit ? machine.commit : "", machine.date, machine.cpu,
           cores, cores == 1 ? "" : "s", machine.os[0] ? machine.os : "?",
           machine.compiler, rounds, seconds);
    printf("| figure | median | min – max | target | | beside it |\n");
    printf("|---|--:|--:|--:|---|---|\n");
    for (int i = 0; i < NFIGURES; i++) {
        const struct figure *f = &fig[i];
        char med[32], lo[32], hi[32], tgt[48], bes[128];

        beside(i, bes, sizeof bes);
        if (!f->n) {
            printf("| `%s` (%s) | — | — | %s | skipped | %s |\n", f->key, f->unit,
                   target_text(f, tgt, sizeof tgt), bes);
            continue;
        }
        printf("| `%s` (%s) | %s | %s – %s | %s | %s | %s |\n", f->key, f->unit,
               fmt(f, f->median, med, sizeof med), fmt(f, f->min, lo, sizeof lo),
               fmt(f, f->max, hi, sizeof hi), target_text(f, tgt, sizeof tgt),
               f->kind == NONE ? "" : met(f) ? "ok" : "MISS", bes);
    }
    for (int i = 0; i < nnotes; i++)
        printf("%s%s\n", i ? "" : "\n", notes[i]);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_figure(FILE *f, const struct figure *x, bool with_target)
{
    fprintf(f, "  ");
    json_str(f, x->key);
    if (!x->n) {
        fprintf(f, ": null");
        return;
    }
    fprintf(f, ": {\"median\": %.6g, \"min\": %.6g, \"max\": %.6g, \"unit\": ",
            x->median, x->min, x->max);
    json_str(f, x->unit);
    if (with_target && x->kind != NONE)
        fprintf(f, ", \"target\": \"%s %.6g\", \"met\": %s",
                x->kind == BELOW ? "<" : ">=", x->target, met(x) ? "true" : "false");
    fprintf(f, "}");
}

static int write_json(const char *path, const char *pg_version, const char *my_version)
{
    FILE *f = fopen(path, "w");

    if (!f) {
        fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n");
    for (int i = 0; i < NFIGURES; i++) {
        json_figure(f, &fig[i], true);
        fprintf(f, ",\n");
    }
    fprintf(f, "  \"baselines\": {\n");
    for (int i = NFIGURES; i < NALL; i++) {
        fprintf(f, "  ");
        json_figure(f, &fig[i], false);
        fprintf(f, "%s\n", i + 1 < NALL ? "," : "");
    }
    fprintf(f, "  },\n  \"machine\": {\"cpu\": ");
    json_str(f, machine.cpu);
    fprintf(f, ", \"cores\": %d, \"kernel\": ", cores);
    json_str(f, machine.kernel);
    fprintf(f, ", \"os\": ");
    json_str(f, machine.os);
    fprintf(f, ", \"compiler\": ");
    json_str(f, machine.compiler);
    fprintf(f, "},\n  \"servers\": {\"pg\": ");
    if (*pg_version)
        json_str(f, pg_version);
    else
        fprintf(f, "null");
    fprintf(f, ", \"mysql\": ");
    if (*my_version)
        json_str(f, my_version);
    else
        fprintf(f, "null");
    fprintf(f, "},\n  \"cdm\": ");
    json_str(f, PACKAGE_VERSION);
    fprintf(f, ",\n  \"commit\": ");
    if (machine.commit)
        json_str(f, machine.commit);
    else
        fprintf(f, "null");
    fprintf(f, ",\n  \"date\": ");
    json_str(f, machine.date);
    fprintf(f, ",\n  \"rounds\": %d,\n  \"seconds_per_side\": %.6g,\n"
            "  \"notes\": [", rounds, seconds);
    for (int i = 0; i < nnotes; i++) {
        fprintf(f, "%s", i ? ", " : "");
        json_str(f, notes[i]);
    }
    fprintf(f, "]\n}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: bench [--rounds N] [--seconds S] [--json FILE]\n"
            "  --rounds N   rounds per figure, median of them (default 5)\n"
            "  --seconds S  time each side gets per round (default 0.5)\n"
            "  --json FILE  also write the figures as one JSON object\n"
            "  --only LIST  only these groups, comma-separated: idle, load,\n"
            "               fast, over, pg, mysql (figures of the others null)\n"
            "Server figures need CDM_TEST_PG_* / CDM_TEST_MYSQL_* "
            "(tests/bench.sh sets them).\n");
}

int main(int argc, char **argv)
{
    const char *json = NULL;
    char pg_ver[64] = "", my_ver[64] = "";
    struct server *servers[2];
    int nservers = 0;
    bool do_load, do_fast;
    cdm_manager *m;

    if (argc == 3 && !strcmp(argv[1], "--idle-child")) {
        double v[2];
        if (idle_child(!strcmp(argv[2], "cdm"), v) != 0)
            return 1;
        printf("%.17g %.17g\n", v[0], v[1]);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || !(seconds > 0) || seconds > 60) {
        fprintf(stderr, "bench: --rounds 1..%d, --seconds above 0, at most 60\n",
                MAX_ROUNDS);
        return 2;
    }
    if (only)
        note("--only %s: the other figures were not measured", only);
    if (rounds < 5)
        note("%d rounds: the figures want at least 5", rounds);
    read_machine();

    {
#if HAVE_POSTGRESQL
        static struct server pg = {
            .label = "PG", .driver = "DriverID=PG", .prefix = "CDM_TEST_PG",
            .lower = "pg", .f_open = F_PG_OPEN, .f_sel1 = F_PG_SEL1,
            .f_param = F_PG_PARAM, .f_param_nc = F_PG_PARAM_NC,
            .b_fresh = B_PG_FRESH_US, .b_pooled = B_PG_POOLED_US,
            .b_sel1_raw = B_PG_SEL1_RAW_US, .b_sel1_cdm = B_PG_SEL1_CDM_US,
            .b_param_raw = B_PG_PARAM_RAW_US,
            .b_param_cdm = B_PG_PARAM_CDM_US,
            .b_param_nc_cdm = B_PG_PARAM_NC_CDM_US,
            .raw_connect = pg_raw_connect, .raw_close = pg_raw_close,
            .raw_select1 = pg_raw_select1, .param_prepare = pg_param_prepare,
            .param_run = pg_param_run, .param_free = pg_param_free,
        };
        servers[nservers++] = &pg;
#else
        note("cdm built without PostgreSQL: pg_* figures skipped");
#endif
#if HAVE_MYSQL
        static struct server my = {
            .label = "MySQL", .driver = "DriverID=MySQL",
            .prefix = "CDM_TEST_MYSQL", .lower = "mysql",
            .f_open = F_MY_OPEN, .f_sel1 = F_MY_SEL1,
            .f_param = F_MY_PARAM, .f_param_nc = F_MY_PARAM_NC,
            .b_fresh = B_MY_FRESH_US, .b_pooled = B_MY_POOLED_US,
            .b_sel1_raw = B_MY_SEL1_RAW_US, .b_sel1_cdm = B_MY_SEL1_CDM_US,
            .b_param_raw = B_MY_PARAM_RAW_US,
            .b_param_cdm = B_MY_PARAM_CDM_US,
            .b_param_nc_cdm = B_MY_PARAM_NC_CDM_US,
            .raw_connect = my_raw_connect, .raw_close = my_raw_close,
            .raw_select1 = my_raw_select1, .param_prepare = my_param_prepare,
            .param_run = my_param_run, .param_free = my_param_free,
        };
        servers[nservers++] = &my;
#else
        note("cdm built without MySQL: mysql_* figures skipped");
#endif
    }
#if HAVE_POSTGRESQL
    if (wanted("pg") && env("CDM_TEST_PG_PORT"))
        pg_version(pg_ver, sizeof pg_ver);
#endif
#if HAVE_MYSQL
    if (wanted("mysql") && env("CDM_TEST_MYSQL_PORT"))
        my_version(my_ver, sizeof my_ver);
#endif

    /* Everything is set up first; then each round measures every figure
     * once, so that a figure's rounds are spread over the whole run and
     * a burst of other work on the machine spoils one round of each, not
     * every round of one. */
    if (cdm_manager_new(&m) != CDM_OK)
        die("cdm_manager_new");
    do_load = wanted("load") && load_setup();
    do_fast = (wanted("fast") || wanted("over")) && fast_setup(m);
    for (int i = 0; i < nservers; i++)
        if (wanted(servers[i]->lower))
            server_setup(m, servers[i]);
    for (int r = 0; r < rounds; r++) {
        if (wanted("idle"))
            idle_round(r);
        if (do_load)
            load_round(r);
        if (do_fast && wanted("fast"))
            fast_round(m, r);
        if (do_fast && wanted("over"))
            over_round(m, r);
        for (int i = 0; i < nservers; i++)
            server_round(m, servers[i], r);
    }
    for (int i = 0; i < nservers; i++)
        server_teardown(servers[i]);
    if (do_load)
        load_teardown();
    cdm_manager_free(m);

    for (int i = 0; i < NALL; i++)
        summarize(&fig[i]);
    print_table();
    if (json && write_json(json, pg_ver, my_ver) != 0)
        return 1;
    return 0;
}
