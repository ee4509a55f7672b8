/*
 * registry.c - a manager's pools: which pool serves which definition
 * name, and the cleanup thread that runs their periodic passes and
 * watches the sockets of their connections.
 *
 * Pools are kept until the registry is freed and reused for other names
 * once empty, so a thread's cached pool pointer stays valid for the
 * manager's lifetime.  A detached pool keeps its name while it still has
 * connections, so attaching the name again takes the same pool and its
 * limit counts the connections still out.
 *
 * A name's counters (cdm_pool_stats) run on for the registry's life: they
 * are those of every pool that bears the name now (the attached one and
 * detached ones not reused yet) plus what pools that served it earlier
 * counted before they were reused (`past`).  A pool's figures move into
 * `past` in the same step (registry lock, then pool lock) as it takes
 * its new name, so a reader holding the registry lock counts each once.
 *
 * The cleanup thread waits in epoll_wait, for the earliest due time of any
 * pool, for a kick (an eventfd), or for a watched socket that the server
 * closed: never a sleep.
 */
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* What the pools that served `name` counted before they were reused. */
struct past {
    char *name;
    cdm_pool_stats sum;          /* counters only; the gauges stay 0 */
};

struct cdm_registry {
    pthread_mutex_t lock;        /* guards everything below */
    struct cdm_pool **pools;     /* every pool built, attached or not */
    size_t npools;
    struct past *past;           /* one per name whose pool was reused */
    size_t npast;
    struct cdm_log_sink log;
    int epfd, evfd;              /* -1 until the thread starts */
    pthread_t thread;
    bool running, stop;
    bool forked;                 /* inherited by a child process */
    uint64_t force_req;          /* forced passes asked for (test hook) */
    uint64_t force_done;         /* the last request a pass began after */
    pthread_cond_t passed;       /* broadcast after a forced pass */
    int watch_ms;                /* cdm_manager_watch's interval, 0: none */
    cdm_watch_fn watch;
    void *watch_ctx;
    int64_t watch_due;           /* ms, when watch runs next */
};

int cdm__registry_new(const struct cdm_log_sink *log, struct cdm_registry **out)
{
    struct cdm_registry *g = calloc(1, sizeof *g);

    if (!g)
        return cdm__nomem();
    pthread_mutex_init(&g->lock, NULL);
    cdm__cond_init(&g->passed);
    g->log = *log;
    g->epfd = g->evfd = -1;
    *out = g;
    return CDM_OK;
}

static void kick(struct cdm_registry *g)
{
    uint64_t one = 1;

    if (g->evfd >= 0 && write(g->evfd, &one, sizeof one) < 0) {
        /* The counter is full: the thread is awake already. */
    }
}

void cdm__registry_kick(struct cdm_registry *g)
{
    pthread_mutex_lock(&g->lock);
    kick(g);
    pthread_mutex_unlock(&g->lock);
}

static void *cleaner_main(void *arg)
{
    struct cdm_registry *g = arg;
    struct cdm_pool **snap = NULL;
    size_t cap = 0;

    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        struct epoll_event ev[32];
        size_t n = g->npools;
        uint64_t req = g->force_req;
        bool force = req > g->force_done;
        int64_t now, next = INT64_MAX;
        int timeout, nev;

        if (n > cap) {
            struct cdm_pool **v = realloc(snap, n * sizeof *v);
            if (v) {
                snap = v;
                cap = n;
            }
        }
        if (n > cap)
            n = cap;
        if (n)
            memcpy(snap, g->pools, n * sizeof *snap);
        pthread_mutex_unlock(&g->lock);

        /* Pools are freed only with the registry, after this thread. */
        now = cdm__now_ms();
        for (size_t i = 0; i < n; i++) {
            int64_t due = cdm__pool_cleanup(snap[i], now, force, &g->log);
            if (due < next)
                next = due;
        }

        pthread_mutex_lock(&g->lock);
        if (force) {
            g->force_done = req;
            pthread_cond_broadcast(&g->passed);
        }
        if (g->stop || g->force_req > g->force_done)
            continue;
        /* The files' watch: run unlocked (it reloads, which takes the
         * manager's lock and then this one). */
        now = cdm__now_ms();
        if (g->watch_ms > 0 && now >= g->watch_due) {
            cdm_watch_fn fn = g->watch;
            void *ctx = g->watch_ctx;
            int soon;
            g->watch_due = now + g->watch_ms;
            pthread_mutex_unlock(&g->lock);
            soon = fn(ctx);
            pthread_mutex_lock(&g->lock);
            if (soon > 0 && soon < g->watch_ms)
                g->watch_due = now + soon;
            if (g->stop)
                continue;
        }
        if (g->watch_ms > 0 && g->watch_due < next)
            next = g->watch_due;
        pthread_mutex_unlock(&g->lock);

        now = cdm__now_ms();
        timeout = next == INT64_MAX ? -1 :
                  next <= now ? 0 :
                  next - now > 3600000 ? 3600000 : (int)(next - now);
        nev = epoll_wait(g->epfd, ev, 32, timeout);
        for (int i = 0; i < nev; i++) {
            if (!ev[i].data.ptr) {
                uint64_t count;
                if (read(g->evfd, &count, sizeof count) < 0) {
                    /* Nothing to read: another wake-up took it. */
                }
                continue;
            }
            cdm__pool_socket_closed(ev[i].data.ptr);
        }
        pthread_mutex_lock(&g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    free(snap);
    return NULL;
}

/* Lock held: the event set, before the first pool needs it.  Without it
 * pools still work: every borrow then checks the socket itself. */
static int make_events(struct cdm_registry *g)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    int e;

    if (g->epfd >= 0)
        return 0;
    g->epfd = epoll_create1(EPOLL_CLOEXEC);
    g->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g->epfd >= 0 && g->evfd >= 0 &&
        epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->evfd, &ev) == 0)
        return 0;
    e = errno;
    if (g->epfd >= 0)
        close(g->epfd);
    if (g->evfd >= 0)
        close(g->evfd);
    g->epfd = g->evfd = -1;
    return e;
}

void cdm__registry_start(struct cdm_registry *g)
{
    int err = 0;

    pthread_mutex_lock(&g->lock);
    if (!g->running && !g->stop && (g->npools || g->watch_ms > 0)) {
        if ((err = make_events(g)) == 0 &&
            (err = pthread_create(&g->thread, NULL, cleaner_main, g)) == 0)
            g->running = true;
    }
    pthread_mutex_unlock(&g->lock);
    if (err)
        cdm__sink_log(&g->log, CDM_LOG_ERROR,
                      "cannot start the pool cleanup thread (%s): idle "
                      "connections will not expire", strerror(err));
}

/* Adds the counters of `s` to `to` (the peak is the highest); the gauges
 * of `to` are left as they are. */
static void add_counts(cdm_pool_stats *to, const cdm_pool_stats *s)
{
    to->acquired += s->acquired;
    to->created += s->created;
    to->destroyed += s->destroyed;
    to->timeouts += s->timeouts;
    to->wait_ns_total += s->wait_ns_total;
    to->waits += s->waits;
    if (s->peak_in_use > to->peak_in_use)
        to->peak_in_use = s->peak_in_use;
}

/* Lock held.  Linear, as by_name is: bounded by the pools ever reused. */
static struct past *past_find(struct cdm_registry *g, const char *name)
{
    for (size_t i = 0; i < g->npast; i++)
        if (cdm__streq_nocase(g->past[i].name, name))
            return &g->past[i];
    return NULL;
}

/* Lock held: the entry of `name`, made if need be; NULL when out of
 * memory (nothing changed). */
static struct past *past_get(struct cdm_registry *g, const char *name)
{
    struct past *h = past_find(g, name), *v;
    char *copy;

    if (h)
        return h;
    if (!(copy = cdm__strdup(name)))
        return NULL;
    if (!(v = realloc(g->past, (g->npast + 1) * sizeof *v))) {
        free(copy);
        return NULL;
    }
    g->past = v;
    h = &g->past[g->npast++];
    memset(h, 0, sizeof *h);
    h->name = copy;
    return h;
}

/* Lock held: the pool serving `name` (attached), or that served it and
 * still has connections out (detached). */
static struct cdm_pool *by_name(struct cdm_registry *g, const char *name)
{
    struct cdm_pool *detached = NULL;

    for (size_t i = 0; i < g->npools; i++) {
        struct cdm_pool *p = g->pools[i];
        const char *pn = cdm__pool_name(p);
        if (!pn || !cdm__streq_nocase(pn, name))
            continue;
        if (cdm__pool_attached(p))
            return p;
        detached = p;
    }
    return detached;
}

int cdm__registry_find(struct cdm_registry *g, const char *name,
                       struct cdm_pool **out, uint64_t *incarnation)
{
    struct cdm_pool *p;
    int found = 0;

    pthread_mutex_lock(&g->lock);
    if ((p = by_name(g, name)) && cdm__pool_attached(p)) {
        *out = p;
        *incarnation = atomic_load(&p->incarnation);
        found = 1;
    }
    pthread_mutex_unlock(&g->lock);
    return found;
}

int cdm__registry_attach(struct cdm_registry *g, const char *name,
                         struct cdm_resolved *r, struct cdm_pool **out,
                         uint64_t *incarnation, cdm_conn **dead)
{
    struct cdm_pool *p;
    struct past *h = NULL;
    cdm_pool_stats before;
    int rc = CDM_OK;

    pthread_mutex_lock(&g->lock);
    make_events(g);   /* a failure is reported by cdm__registry_start */
    if ((p = by_name(g, name)) && cdm__pool_attached(p)) {
        /* Another thread built it meanwhile: ours goes. */
        cdm__resolved_free(r);
        goto done;
    }
    for (size_t i = 0; i < g->npools && !p; i++)
        if (cdm__pool_unused(g->pools[i]))
            p = g->pools[i];
    if (!p) {
        struct cdm_pool **v = realloc(g->pools, (g->npools + 1) * sizeof *v);
        if (v)
            g->pools = v;
        if (!v || !(p = cdm__pool_new(g->epfd))) {
            cdm__resolved_free(r);
            rc = cdm__nomem();
            goto out;
        }
        g->pools[g->npools++] = p;
    } else if (cdm__pool_name(p) && !(h = past_get(g, cdm__pool_name(p)))) {
        /* Its figures would have nowhere to go. */
        cdm__resolved_free(r);
        rc = cdm__nomem();
        goto out;
    }
    /* Named as the definition is written, for messages (by_name and the
     * thread caches compare without case). */
    if ((rc = cdm__pool_attach(p, r->name ? r->name : name, incarnation,
                               &before)) != CDM_OK) {
        cdm__resolved_free(r);
        goto out;
    }
    if (h)
        add_counts(&h->sum, &before);
    *dead = cdm__pool_configure(p, r, cdm__now_ms());
    kick(g);
done:
    *out = p;
    *incarnation = atomic_load(&p->incarnation);
out:
    pthread_mutex_unlock(&g->lock);
    return rc;
}

cdm_conn *cdm__registry_detach(struct cdm_registry *g, const char *name)
{
    struct cdm_pool *p;
    cdm_conn *dead = NULL;

    pthread_mutex_lock(&g->lock);
    if ((p = by_name(g, name)) && cdm__pool_attached(p))
        dead = cdm__pool_detach(p);
    pthread_mutex_unlock(&g->lock);
    return dead;
}

cdm_conn *cdm__registry_refresh(struct cdm_registry *g, cdm_refresh_fn fn,
                                void *ctx)
{
    cdm_conn *dead = NULL;
    bool any = false;

    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->npools; i++) {
        struct cdm_pool *p = g->pools[i];
        struct cdm_resolved *r;
        cdm_conn *more = NULL;
        bool keep = false;
        if (!cdm__pool_attached(p))
            continue;
        if ((r = fn(ctx, cdm__pool_name(p), &keep))) {
            more = cdm__pool_configure(p, r, cdm__now_ms());
            any = true;
        } else if (!keep) {
            more = cdm__pool_detach(p);
        }
        while (more) {
            cdm_conn *next = more->next;
            more->next = dead;
            dead = more;
            more = next;
        }
    }
    if (any)
        kick(g);
    pthread_mutex_unlock(&g->lock);
    return dead;
}

int cdm__registry_stats(struct cdm_registry *g, const char *name,
                        cdm_pool_stats *out)
{
    struct past *h;
    cdm_pool_stats s;

    pthread_mutex_lock(&g->lock);
    memset(out, 0, sizeof *out);
    if ((h = past_find(g, name)))
        add_counts(out, &h->sum);
    /* Counters from every pool bearing the name; the gauges from the one
     * serving it (detached ones only drain). */
    for (size_t i = 0; i < g->npools; i++) {
        struct cdm_pool *p = g->pools[i];
        const char *pn = cdm__pool_name(p);
        if (!pn || !cdm__streq_nocase(pn, name))
            continue;
        cdm__pool_stats(p, &s);
        add_counts(out, &s);
        if (cdm__pool_attached(p)) {
            out->total = s.total;
            out->idle = s.idle;
            out->in_use = s.in_use;
            out->waiting = s.waiting;
            out->opening = s.opening;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return CDM_OK;
}

char **cdm__registry_names(struct cdm_registry *g)
{
    char **v;
    size_t n = 0;

    pthread_mutex_lock(&g->lock);
    if ((v = calloc(g->npools + 1, sizeof *v)))
        for (size_t i = 0; i < g->npools; i++) {
            struct cdm_pool *p = g->pools[i];
            if (!cdm__pool_attached(p))
                continue;
            if (!(v[n++] = cdm__strdup(cdm__pool_name(p)))) {
                cdm_strv_free(v);
                v = NULL;
                break;
            }
        }
    pthread_mutex_unlock(&g->lock);
    return v;
}

void cdm__registry_watch(struct cdm_registry *g, int interval_ms,
                         cdm_watch_fn fn, void *ctx)
{
    pthread_mutex_lock(&g->lock);
    g->watch_ms = interval_ms > 0 ? interval_ms : 0;
    g->watch = fn;
    g->watch_ctx = ctx;
    g->watch_due = cdm__now_ms() + g->watch_ms;
    kick(g);   /* a thread asleep recomputes when to wake */
    pthread_mutex_unlock(&g->lock);
    if (interval_ms > 0)
        cdm__registry_start(g);
}

/* Stops new borrowing everywhere and the cleanup thread; returns the idle
 * connections to close. */
cdm_conn *cdm__registry_close(struct cdm_registry *g)
{
    cdm_conn *dead = NULL;
    bool running;

    pthread_mutex_lock(&g->lock);
    g->stop = true;
    for (size_t i = 0; i < g->npools; i++) {
        cdm_conn *more = cdm__pool_attached(g->pools[i]) ?
                         cdm__pool_detach(g->pools[i]) : NULL;
        while (more) {
            cdm_conn *next = more->next;
            more->next = dead;
            dead = more;
            more = next;
        }
    }
    running = g->running;
    g->running = false;
    kick(g);
    pthread_mutex_unlock(&g->lock);
    /* Woken by the kick, it ends at once (unless it is in the middle of
     * opening a connection for POOL_MinimumItems). */
    if (running)
        pthread_join(g->thread, NULL);
    return dead;
}

/* A definition with connections still out at close, for the message. */
struct out {
    const char *name;
    int n;
};

/* Most first; ties by name, so the message is the same every time. */
static int by_count(const void *a, const void *b)
{
    const struct out *x = a, *y = b;
    int c;

    if (x->n != y->n)
        return x->n > y->n ? -1 : 1;
    if ((c = strcasecmp(x->name, y->name)) != 0)
        return c;
    return strcmp(x->name, y->name);
}

/* At most this many definitions are named; the rest are counted. */
#define NAMED 5

int cdm__registry_wait_drained(struct cdm_registry *g, int64_t deadline_ns,
                               char *who, size_t size)
{
    struct out *v;
    size_t nv = 0, len = 0;
    int busy = 0;

    who[0] = '\0';
    /* Out of memory: the count without the names. */
    v = g->npools ? calloc(g->npools, sizeof *v) : NULL;
    /* After close nothing is added or removed, nor renamed: no lock
     * needed to walk or to read a pool's name. */
    for (size_t i = 0; i < g->npools; i++) {
        struct cdm_pool *p = g->pools[i];
        const char *name = cdm__pool_name(p);
        size_t j = 0;
        int n;
        if (cdm__pool_wait_drained(p, deadline_ns) == CDM_OK ||
            (n = cdm__pool_busy(p)) == 0)
            continue;
        busy += n;
        if (!v)
            continue;
        /* A pool reused for the name and an older one still draining
         * count together (in practice the name keeps its pool). */
        while (j < nv && !cdm__streq_nocase(v[j].name, name ? name : "?"))
            j++;
        if (j == nv) {
            v[nv].name = name ? name : "?";
            nv++;
        }
        v[j].n += n;
    }
    if (v && nv) {
        qsort(v, nv, sizeof *v, by_count);
        for (size_t j = 0; j < nv && j < NAMED && len < size; j++) {
            int k = snprintf(who + len, size - len, "%s%.64s (%d)",
                             j ? ", " : "", v[j].name, v[j].n);
            if (k > 0)
                len += (size_t)k;
        }
        if (nv > NAMED && len < size)
            snprintf(who + len, size - len, " and %zu more", nv - NAMED);
    }
    free(v);
    return busy;
}

int cdm__registry_cleanup_now(struct cdm_registry *g, int timeout_ms)
{
    int64_t deadline = cdm__now_ns() + (int64_t)timeout_ms * 1000000;
    uint64_t want;
    int rc = CDM_OK;

    pthread_mutex_lock(&g->lock);
    if (!g->running) {
        pthread_mutex_unlock(&g->lock);
        return cdm__fail(CDM_ERR_STATE, "no cleanup thread is running");
    }
    /* Done when a pass that began after this request has ended. */
    want = ++g->force_req;
    kick(g);
    while (g->force_done < want && rc == CDM_OK)
        if (cdm__cond_wait_until(&g->passed, &g->lock, deadline) == ETIMEDOUT &&
            g->force_done < want)
            rc = cdm__fail(CDM_ERR_BUSY, "the cleanup pass did not run within %d ms",
                           timeout_ms);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

/* Frees the registry after cdm__registry_close: each pool goes when its
 * last connection does. */
void cdm__registry_free(struct cdm_registry *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->npools; i++)
        cdm__pool_unref(g->pools[i]);
    for (size_t i = 0; i < g->npast; i++)
        free(g->past[i].name);
    free(g->past);
    if (g->epfd >= 0)
        close(g->epfd);
    if (g->evfd >= 0)
        close(g->evfd);
    free(g->pools);
    pthread_cond_destroy(&g->passed);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* ------------------------------------------------------------- fork */

void cdm__registry_fork_lock(struct cdm_registry *g)
{
    pthread_mutex_lock(&g->lock);
}

void cdm__registry_fork_unlock(struct cdm_registry *g)
{
    pthread_mutex_unlock(&g->lock);
}

/* In the child, with the lock held by the fork handler: nothing here is
 * the child's.  The pools serve nothing from now on; their connections
 * are the parent's and are never used, pinged or closed here. */
void cdm__registry_fork_child(struct cdm_registry *g)
{
    g->forked = true;
    g->running = false;   /* the thread stayed in the parent */
    for (size_t i = 0; i < g->npools; i++) {
        atomic_store(&g->pools[i]->forked, true);
        g->pools[i]->epfd = -1;
    }
}

bool cdm__registry_forked(struct cdm_registry *g)
{
    return g->forked;
}

/* The child lets go of an inherited registry without touching its pools
 * (their locks may have been held by threads that are not in the child):
 * it stays reachable from here and is never freed. */
struct abandoned {
    struct cdm_registry *g;
    struct abandoned *next;
};
static struct abandoned *_Atomic abandoned;

void cdm__registry_abandon(struct cdm_registry *g)
{
    struct abandoned *a = malloc(sizeof *a);

    /* The event set is the parent's too: the child's copies of the two
     * descriptors are simply closed. */
    if (g->epfd >= 0)
        close(g->epfd);
    if (g->evfd >= 0)
        close(g->evfd);
    g->epfd = g->evfd = -1;
    if (!a)
        return;   /* out of memory: unreachable, still never freed */
    a->g = g;
    a->next = atomic_load(&abandoned);
    while (!atomic_compare_exchange_weak(&abandoned, &a->next, a))
        ;
}
