/* pooling.c - AnyDAC's pooling demo, done with cdm: worker threads open a
 * connection by definition name, run SELECT 1 and close it, over and over,
 * once through a plain definition and once through a pooled one.
 *
 * Run it from the top directory (sh demo/run.sh does): ./demo/pooling
 * It loads its definitions the way an application does, through the
 * process-wide manager and $CDM_CONNECTION_DEFS, and shuts down the way an
 * application does, with cdm_manager_close (FireDAC's FDManager.Close).
 * ./demo/pooling --help lists the options. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cdm.h>

/* Defaults: more threads than Demo_Pooled's POOL_MaximumItems=8, so some
 * of them wait for a connection; a few seconds in all on SQLite. */
#define DEFAULT_DEFS       "defs/demo.ini"
#define DEFAULT_PLAIN      "Demo_File"
#define DEFAULT_POOLED     "Demo_Pooled"
#define DEFAULT_THREADS    16
#define DEFAULT_ITERATIONS 500
#define MAX_THREADS        1024
#define CLOSE_TIMEOUT_MS   5000
#define REPORT_EVERY_MS    250

/* One worker thread.  `done` is written by its own thread only and read
 * by the progress reporter: each worker has its own cache line, so
 * counting costs the workers nothing (the pool works the same way). */
struct worker {
    _Alignas(64) atomic_long done;
    pthread_t thread;
    struct run *run;
    int rc;                 /* the first failure, CDM_OK if none */
    char what[64];          /* the call that failed */
    char msg[512];          /* cdm_errmsg() right after it (per thread) */
};

/* One pass of the demo over one definition. */
struct run {
    const char *label;      /* "plain" or "pooled" */
    const char *name;       /* the definition */
    int nthreads;
    long iterations;        /* per thread */
    struct worker *workers;
    pthread_barrier_t start;    /* workers and main start together */
    atomic_bool failed;         /* a worker failed: the others stop */
    double seconds;             /* wall time of the whole pass */
    long opens;
};

/* The progress line, redrawn every REPORT_EVERY_MS on a terminal. */
struct reporter {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* signalled to stop; on CLOCK_MONOTONIC */
    bool stop;                  /* guarded by lock */
    struct run *run;
};

/* ------------------------------------------------------------ helpers */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long opens_so_far(const struct run *run)
{
    long n = 0;

    for (int i = 0; i < run->nthreads; i++)
        n += atomic_load_explicit(&run->workers[i].done, memory_order_relaxed);
    return n;
}

/* The library prints nothing; it hands its warnings to this callback,
 * which may be called from any thread (the pool's cleanup thread too). */
static void log_warnings(int level, const char *message, void *user)
{
    (void)user;
    if (level == CDM_LOG_ERROR || level == CDM_LOG_WARN)
        fprintf(stderr, "pooling: cdm %s: %s\n",
                level == CDM_LOG_ERROR ? "error" : "warning", message);
}

/* ------------------------------------------------------------- worker */

static bool fail(struct worker *w, const char *what, int rc)
{
    w->rc = rc;
    snprintf(w->what, sizeof w->what, "%s", what);
    snprintf(w->msg, sizeof w->msg, "%s", cdm_errmsg());
    atomic_store(&w->run->failed, true);
    return false;
}

/* One open: connect by name, SELECT 1, check the answer, disconnect. */
static bool one_open(struct worker *w, cdm_manager *m)
{
    cdm_conn *c;
    cdm_result *r;
    const char *v;
    int rc;

    if ((rc = cdm_connect(m, w->run->name, &c)) != CDM_OK)
        return fail(w, "cdm_connect", rc);
    if ((rc = cdm_query(c, "SELECT 1", NULL, 0, &r)) != CDM_OK) {
        fail(w, "cdm_query", rc);
        cdm_disconnect(c);
        return false;
    }
    v = cdm_result_nrows(r) == 1 ? cdm_result_value(r, 0, 0) : NULL;
    if (!v || strcmp(v, "1") != 0) {
        w->rc = CDM_ERR_QUERY;
        snprintf(w->what, sizeof w->what, "SELECT 1");
        snprintf(w->msg, sizeof w->msg, "returned %s instead of one row 1",
                 v ? v : "no value");
        atomic_store(&w->run->failed, true);
    }
    cdm_result_free(r);
    cdm_disconnect(c);    /* a pooled connection goes back to its pool */
    return w->rc == CDM_OK;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    cdm_manager *m = cdm_manager_default();

    pthread_barrier_wait(&w->run->start);
    for (long i = 0; i < w->run->iterations; i++) {
        if (atomic_load_explicit(&w->run->failed, memory_order_relaxed) ||
            !one_open(w, m))
            break;
        atomic_store_explicit(&w->done, i + 1, memory_order_relaxed);
    }
    return NULL;
}

/* ----------------------------------------------------------- progress */

static void draw_progress(struct run *run, long opens, double rate)
{
    cdm_pool_stats st;
    char pool[64] = "no pool";

    if (cdm_manager_pool_stats(cdm_manager_default(), run->name, &st) == CDM_OK &&
        (st.total || st.created))
        snprintf(pool, sizeof pool, "pool %lld open, %lld waiting",
                 (long long)st.total, (long long)st.waiting);
    /* Padded so that a shorter line covers a longer one. */
    printf("\r%-6s %-16s %9ld opens %10.0f/s   %-28s", run->label, run->name,
           opens, rate, pool);
    fflush(stdout);
}

static void *reporter_main(void *arg)
{
    struct reporter *rep = arg;
    long last = 0;
    double last_t = now_s();
    struct timespec until;

    pthread_mutex_lock(&rep->lock);
    clock_gettime(CLOCK_MONOTONIC, &until);
    while (!rep->stop) {
        long opens;
        double t;

        until.tv_nsec += REPORT_EVERY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        /* A timed wait, not a sleep: stop() wakes it at once. */
        while (!rep->stop &&
               pthread_cond_timedwait(&rep->wake, &rep->lock, &until) != ETIMEDOUT)
            ;
        if (rep->stop)
            break;
        opens = opens_so_far(rep->run);
        t = now_s();
        draw_progress(rep->run, opens, (double)(opens - last) / (t - last_t));
        last = opens;
        last_t = t;
    }
    pthread_mutex_unlock(&rep->lock);
    return NULL;
}

static int reporter_start(struct reporter *rep, struct run *run)
{
    pthread_condattr_t attr;

    rep->run = run;
    rep->stop = false;
    pthread_mutex_init(&rep->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&rep->wake, &attr);
    pthread_condattr_destroy(&attr);
    return pthread_create(&rep->thread, NULL, reporter_main, rep);
}

static void reporter_stop(struct reporter *rep)
{
    pthread_mutex_lock(&rep->lock);
    rep->stop = true;
    pthread_cond_signal(&rep->wake);
    pthread_mutex_unlock(&rep->lock);
    pthread_join(rep->thread, NULL);
    pthread_cond_destroy(&rep->wake);
    pthread_mutex_destroy(&rep->lock);
    printf("\r%79s\r", "");     /* the summary takes the line's place */
    fflush(stdout);
}

/* ---------------------------------------------------------------- run */

/* Runs one pass; false (having said why) if any open failed. */
static bool run_pass(struct run *run, bool progress)
{
    struct reporter rep;
    bool reporting = false;
    double t0;

    /* Aligned as struct worker asks (a cache line each); calloc would not. */
    run->workers = aligned_alloc(_Alignof(struct worker),
                                 (size_t)run->nthreads * sizeof *run->workers);
    if (!run->workers) {
        fprintf(stderr, "pooling: out of memory\n");
        return false;
    }
    memset(run->workers, 0, (size_t)run->nthreads * sizeof *run->workers);
    atomic_init(&run->failed, false);
    pthread_barrier_init(&run->start, NULL, (unsigned)run->nthreads + 1);
    for (int i = 0; i < run->nthreads; i++) {
        struct worker *w = &run->workers[i];
        atomic_init(&w->done, 0);
        w->run = run;
        w->rc = CDM_OK;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            fprintf(stderr, "pooling: cannot start thread %d\n", i + 1);
            exit(1);   /* the others would wait at the barrier for ever */
        }
    }
    if (progress)
        reporting = reporter_start(&rep, run) == 0;
    pthread_barrier_wait(&run->start);
    t0 = now_s();
    for (int i = 0; i < run->nthreads; i++)
        pthread_join(run->workers[i].thread, NULL);
    run->seconds = now_s() - t0;
    if (reporting)
        reporter_stop(&rep);
    pthread_barrier_destroy(&run->start);

    run->opens = opens_so_far(run);
    for (int i = 0; i < run->nthreads; i++) {
        struct worker *w = &run->workers[i];
        if (w->rc != CDM_OK) {
            fprintf(stderr, "pooling: %s %s: %s failed: %s: %s\n", run->label,
                    run->name, w->what, cdm_strerror(w->rc), w->msg);
            return false;
        }
    }
    return true;
}

/* --------------------------------------------------------------- main */

static void usage(FILE *to)
{
    fprintf(to,
        "usage: pooling [options]\n"
        "Threads each open a connection by definition name, run SELECT 1 and\n"
        "close it, over and over: once through a plain definition, once\n"
        "through a pooled one.  Definitions are loaded from $CDM_CONNECTION_DEFS,\n"
        "set from --defs.\n"
        "\n"
        "  -d, --defs FILE        definition file (default " DEFAULT_DEFS ")\n"
        "  -p, --plain NAME       plain definition (default " DEFAULT_PLAIN ")\n"
        "  -P, --pooled NAME      pooled definition (default " DEFAULT_POOLED ")\n"
        "  -t, --threads N        worker threads, 1 to %d (default %d)\n"
        "  -i, --iterations M     opens per thread (default %d)\n"
        "  -h, --help             this text\n"
        "\n"
        "A progress line is shown while stdout is a terminal.\n"
        "Exit status: 0 done, 1 a database call failed, 2 bad options.\n",
        MAX_THREADS, DEFAULT_THREADS, DEFAULT_ITERATIONS);
}

/* A whole decimal number in [1, max], or -1. */
static long parse_count(const char *s, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return -1;
    return v;
}

/* Makes sure `name` is defined; if not, says why (a failed automatic
 * load shows up here, with the file and line). */
static bool check_def(cdm_manager *m, const char *name)
{
    cdm_conn *c = NULL;
    int rc;

    if (cdm_manager_has_def(m, name))
        return true;
    /* cdm_connect explains a missing definition best: it adds the reason
     * the automatic load of $CDM_CONNECTION_DEFS failed, if it did. */
    rc = cdm_connect(m, name, &c);
    cdm_disconnect(c);
    fprintf(stderr, "pooling: definition %s: %s: %s\n", name,
            cdm_strerror(rc ? rc : CDM_ERR_NOT_FOUND), cdm_errmsg());
    return false;
}

static void print_summary(const struct run *plain, const struct run *pooled)
{
    const struct run *runs[] = { plain, pooled };
    double plain_us = plain->seconds * 1e6 / (double)plain->opens;
    int width = 0;

    for (int i = 0; i < 2; i++)
        if ((int)strlen(runs[i]->name) > width)
            width = (int)strlen(runs[i]->name);
    printf("\n%-6s  %-*s  %9s  %9s  %12s  %8s\n", "", width, "definition",
           "opens", "total", "per open", "speed-up");
    for (int i = 0; i < 2; i++) {
        const struct run *r = runs[i];
        double us = r->seconds * 1e6 / (double)r->opens;
        printf("%-6s  %-*s  %9ld  %7.3f s  %9.2f us", r->label, width, r->name,
               r->opens, r->seconds, us);
        if (r == pooled)
            printf("  %7.1fx", plain_us / us);
        printf("\n");
    }
    printf("(an open is cdm_connect + SELECT 1 + cdm_disconnect; per open = "
           "total / opens)\n");
}

static void print_pool(cdm_manager *m, const char *name)
{
    cdm_pool_stats st;
    char *max = NULL;

    if (cdm_manager_pool_stats(m, name, &st) != CDM_OK || st.created == 0) {
        printf("\n%s has no pool: is Pooled=True set?\n", name);
        return;
    }
    cdm_manager_get_param(m, name, "POOL_MaximumItems", &max);
    printf("\npool of %s (POOL_MaximumItems=%s)\n", name, max ? max : "50, the default");
    cdm_free(max);
    printf("  physical connections created  %8lld\n", (long long)st.created);
    printf("  peak in use                   %8lld\n", (long long)st.peak_in_use);
    printf("  borrows                       %8lld\n", (long long)st.acquired);
    printf("  waits (pool full)             %8lld", (long long)st.waits);
    if (st.waits)
        printf("   average %.3f ms", (double)st.wait_ns_total / 1e6 / (double)st.waits);
    printf("\n  timeouts                      %8lld\n", (long long)st.timeouts);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "defs",       required_argument, NULL, 'd' },
        { "plain",      required_argument, NULL, 'p' },
        { "pooled",     required_argument, NULL, 'P' },
        { "threads",    required_argument, NULL, 't' },
        { "iterations", required_argument, NULL, 'i' },
        { "help",       no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *defs = DEFAULT_DEFS;
    const char *plain_name = DEFAULT_PLAIN, *pooled_name = DEFAULT_POOLED;
    long threads = DEFAULT_THREADS, iterations = DEFAULT_ITERATIONS;
    bool progress = isatty(STDOUT_FILENO);
    struct run plain, pooled;
    cdm_manager *m;
    double t0;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "d:p:P:t:i:h", options, NULL)) != -1) {
        switch (opt) {
        case 'd': defs = optarg; break;
        case 'p': plain_name = optarg; break;
        case 'P': pooled_name = optarg; break;
        case 't':
            if ((threads = parse_count(optarg, MAX_THREADS)) < 0) {
                fprintf(stderr, "pooling: --threads wants a number from 1 to %d, "
                        "not '%s'\n", MAX_THREADS, optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 'i':
            if ((iterations = parse_count(optarg, LONG_MAX / MAX_THREADS)) < 0) {
                fprintf(stderr, "pooling: --iterations wants a whole number "
                        "above 0, not '%s'\n", optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:            /* getopt_long has said what was wrong */
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pooling: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* As an application would: the process-wide manager loads the file
     * named by $CDM_CONNECTION_DEFS when it is first used. */
    if (setenv("CDM_CONNECTION_DEFS", defs, 1) != 0 ||
        !(m = cdm_manager_default())) {
        fprintf(stderr, "pooling: out of memory\n");
        return 1;
    }
    /* Warnings from here on (a bad value met at connect, a connection
     * borrowed too long); the automatic load ran before this could be
     * installed, so its warnings are not seen: `cdm check` shows them. */
    cdm_manager_set_log(m, log_warnings, NULL);
    if (!check_def(m, plain_name) || !check_def(m, pooled_name)) {
        cdm_manager_free(m);
        return 1;
    }

    plain = (struct run){ .label = "plain", .name = plain_name,
                          .nthreads = (int)threads, .iterations = iterations };
    pooled = plain;
    pooled.label = "pooled";
    pooled.name = pooled_name;
    printf("cdm pooling demo: %ld threads x %ld opens, definitions from %s\n",
           threads, iterations, defs);
    rc = run_pass(&plain, progress) && run_pass(&pooled, progress) ? 0 : 1;
    if (rc == 0) {
        print_summary(&plain, &pooled);
        print_pool(m, pooled_name);
    }
    free(plain.workers);
    free(pooled.workers);

    /* Shutdown, as FDManager.Close: refuse new connects, close the idle
     * connections, wait (here up to 5 s) for borrowed ones. */
    t0 = now_s();
    if (cdm_manager_close(m, CLOSE_TIMEOUT_MS) != CDM_OK) {
        fprintf(stderr, "pooling: cdm_manager_close: %s\n", cdm_errmsg());
        rc = 1;
    }
    printf("\nshutdown: cdm_manager_close took %.1f ms\n", (now_s() - t0) * 1e3);
    cdm_manager_free(m);
    return rc;
}
