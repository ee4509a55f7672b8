/*
 * bench.c - `make bench`: pool figures next to a bare mutex-protected
 * stack doing the same push/pop in the same run.  A program that prints
 * numbers, not a test: nothing here fails on a slow machine.
 *
 *   fast path       cdm_connect + cdm_disconnect on a pooled SQLite
 *                   :memory: definition, POOL_MaximumItems >= threads
 *   oversubscribed  32 threads, POOL_MaximumItems=4, ~20 us of work held
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cdm.h>

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
    cdm_manager_free(m);
    return rc;
}
