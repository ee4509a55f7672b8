/*
 * pool.c - one pool of connections per pooled definition: a LIFO stack of
 * idle connections, FIFO waiters served by direct handoff, validation on
 * borrow, retirement on return, and the periodic cleanup run.
 *
 * Locks: p->lock guards the pool's fields and the pool fields of its
 * connections.  It is held only around memory: connecting, checking,
 * pinging, rolling back and closing happen with no lock held.  The
 * manager's lock may be held when taking p->lock, never the reverse.
 */
#include "cdm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct waiter {
    pthread_cond_t cond;
    struct waiter *next;
    cdm_conn *handed;   /* given directly by a release */
    bool may_open;      /* a slot freed up: open a connection for yourself */
    bool retry;         /* the pool was detached: look the definition up again */
};

struct pool_cfg {
    int max;            /* < 0: no limit */
    int min;
    int expire_ms, cleanup_ms, acquire_ms, lifetime_ms, ping_ms, leak_ms;
    bool reset;
};

struct cdm_pool {
    pthread_mutex_t lock;
    pthread_cond_t drained;     /* broadcast when the last borrowed returns */

    /* Guarded by lock. */
    uint64_t incarnation;       /* bumped each time the struct is reused */
    bool detached;              /* no new borrows; returns are destroyed */
    bool orphan;                /* its manager is gone: free when empty */
    char *name;
    struct cdm_resolved *r;     /* parameters for new connections */
    uint64_t gen;               /* parameter generation */
    struct pool_cfg cfg;
    cdm_conn *idle;             /* LIFO through ->next, most recent first */
    cdm_conn *busy;             /* borrowed, through ->next / ->prev */
    int nidle, nbusy, nopening;
    struct waiter *wq_head, *wq_tail;
    int nwaiting;
    int64_t next_cleanup_ms;
    int64_t acquired, created, destroyed, timeouts, wait_ns_total;
};

/* ------------------------------------------------------------ clocks */

int64_t cdm__now_ms(void)
{
    struct timespec ts;

    /* Coarse: a few ms of resolution is plenty for idle and lifetime
     * limits, and it costs a fraction of the precise clock on the hot
     * path. */
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec ns_to_ts(int64_t ns)
{
    struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

    return ts;
}

/* ------------------------------------------------------------ basics */

struct cdm_pool *cdm__pool_new(void)
{
    struct cdm_pool *p = calloc(1, sizeof *p);
    pthread_condattr_t attr;

    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->drained, &attr);
    pthread_condattr_destroy(&attr);
    p->detached = true;
    return p;
}

void cdm__pool_free(struct cdm_pool *p)
{
    if (!p)
        return;
    cdm__resolved_free(p->r);
    free(p->name);
    pthread_cond_destroy(&p->drained);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static int total(const struct cdm_pool *p)
{
    return p->nidle + p->nbusy + p->nopening;
}

static bool has_room(const struct cdm_pool *p)
{
    return p->cfg.max < 0 || total(p) < p->cfg.max;
}

static void busy_link(struct cdm_pool *p, cdm_conn *c)
{
    c->prev = NULL;
    c->next = p->busy;
    if (p->busy)
        p->busy->prev = c;
    p->busy = c;
    p->nbusy++;
}

static void busy_unlink(struct cdm_pool *p, cdm_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        p->busy = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    p->nbusy--;
}

/* Closes connections taken out of a pool; no lock held. */
static void destroy_list(cdm_conn *c)
{
    while (c) {
        cdm_conn *next = c->next;
        cdm__conn_destroy(c);
        c = next;
    }
}

/* With the lock held: a slot freed up, so let the oldest waiter open a
 * connection for itself (it keeps its place: nobody can barge in). */
static void offer_slot(struct cdm_pool *p)
{
    struct waiter *w = p->wq_head;

    if (!w || !has_room(p))
        return;
    p->wq_head = w->next;
    if (!p->wq_head)
        p->wq_tail = NULL;
    p->nwaiting--;
    w->may_open = true;
    p->nopening++;   /* reserved for that waiter */
    pthread_cond_signal(&w->cond);
}

static void maybe_drained(struct cdm_pool *p)
{
    if (p->nbusy == 0 && p->nopening == 0)
        pthread_cond_broadcast(&p->drained);
}

/* ------------------------------------------------------- configuring */

static int cfg_int(const struct cdm_resolved *r, const char *key)
{
    return (int)cdm__rget_int(r, key);
}

static bool same_params(const struct cdm_resolved *a, const struct cdm_resolved *b)
{
    if (!a || !b || a->nkv != b->nkv || a->drv != b->drv)
        return false;
    for (size_t i = 0; i < a->nkv; i++) {
        const struct cdm_rkv *kv = cdm__rfind(b, a->kv[i].key);
        if (!kv || strcmp(kv->value, a->kv[i].value) != 0 ||
            (kv->dir == NULL) != (a->kv[i].dir == NULL) ||
            (kv->dir && strcmp(kv->dir, a->kv[i].dir) != 0))
            return false;
    }
    return true;
}

int cdm__pool_check_cfg(const struct cdm_resolved *r)
{
    if (cdm__rget_int(r, "POOL_MaximumItems") == 0)
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: POOL_MaximumItems=0 would never give a "
                         "connection (use a negative value for no limit)",
                         r->where);
    return CDM_OK;
}

cdm_conn *cdm__pool_configure(struct cdm_pool *p, struct cdm_resolved *r,
                              int64_t now)
{
    cdm_conn *dead = NULL;
    struct pool_cfg c;
    int slots;

    c.max = cfg_int(r, "POOL_MaximumItems");
    c.min = cfg_int(r, "POOL_MinimumItems");
    c.expire_ms = cfg_int(r, "POOL_ExpireTimeout");
    c.cleanup_ms = cfg_int(r, "POOL_CleanupTimeout");
    c.acquire_ms = cfg_int(r, "POOL_AcquireTimeout");
    c.lifetime_ms = cfg_int(r, "POOL_MaxLifetime");
    c.ping_ms = cfg_int(r, "POOL_PingInterval");
    c.leak_ms = cfg_int(r, "POOL_LeakTimeout");
    c.reset = cdm__rget_bool(r, "POOL_ResetOnRelease");

    pthread_mutex_lock(&p->lock);
    if (!same_params(p->r, r)) {
        /* New parameters: idle connections go now, borrowed ones when
         * they come back (their generation no longer matches). */
        if (p->r)
            p->gen++;
        dead = p->idle;
        p->idle = NULL;
        p->destroyed += p->nidle;
        p->nidle = 0;
        cdm__resolved_free(p->r);
        p->r = r;
    } else {
        cdm__resolved_free(r);
    }
    p->cfg = c;
    if (p->next_cleanup_ms == 0 || p->next_cleanup_ms > now + c.cleanup_ms)
        p->next_cleanup_ms = now + c.cleanup_ms;
    /* A higher limit (or fewer connections) lets waiters open at once. */
    for (slots = p->nwaiting; slots > 0 && has_room(p); slots--)
        offer_slot(p);
    pthread_mutex_unlock(&p->lock);
    return dead;
}

int cdm__pool_attach(struct cdm_pool *p, const char *name, uint64_t *incarnation)
{
    char *copy = cdm__strdup(name);

    if (!copy)
        return cdm__nomem();
    pthread_mutex_lock(&p->lock);
    free(p->name);
    p->name = copy;
    p->incarnation++;
    p->detached = false;
    p->gen = 0;
    p->next_cleanup_ms = 0;
    p->acquired = p->created = p->destroyed = p->timeouts = 0;
    p->wait_ns_total = 0;
    *incarnation = p->incarnation;
    pthread_mutex_unlock(&p->lock);
    return CDM_OK;
}

cdm_conn *cdm__pool_detach(struct cdm_pool *p)
{
    cdm_conn *dead;

    pthread_mutex_lock(&p->lock);
    p->detached = true;
    dead = p->idle;
    p->idle = NULL;
    p->destroyed += p->nidle;
    p->nidle = 0;
    /* Waiters look the definition up again: a new pool or an error. */
    while (p->wq_head) {
        struct waiter *w = p->wq_head;
        p->wq_head = w->next;
        w->retry = true;
        pthread_cond_signal(&w->cond);
    }
    p->wq_tail = NULL;
    p->nwaiting = 0;
    cdm__resolved_free(p->r);
    p->r = NULL;
    pthread_mutex_unlock(&p->lock);
    return dead;
}

bool cdm__pool_reusable(struct cdm_pool *p)
{
    bool empty;

    pthread_mutex_lock(&p->lock);
    empty = p->detached && total(p) == 0 && p->nwaiting == 0;
    pthread_mutex_unlock(&p->lock);
    return empty;
}

bool cdm__pool_orphan(struct cdm_pool *p)
{
    bool empty;

    pthread_mutex_lock(&p->lock);
    empty = total(p) == 0;
    if (!empty)
        p->orphan = true;
    pthread_mutex_unlock(&p->lock);
    return empty;
}

int cdm__pool_wait_drained(struct cdm_pool *p, int64_t deadline_ns)
{
    struct timespec ts = ns_to_ts(deadline_ns);
    int rc = CDM_OK;

    pthread_mutex_lock(&p->lock);
    while (p->nbusy + p->nopening > 0) {
        if (pthread_cond_timedwait(&p->drained, &p->lock, &ts) == ETIMEDOUT) {
            if (p->nbusy + p->nopening > 0)
                rc = CDM_ERR_BUSY;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int cdm__pool_busy(struct cdm_pool *p)
{
    int n;

    pthread_mutex_lock(&p->lock);
    n = p->nbusy + p->nopening;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void cdm__pool_stats(struct cdm_pool *p, cdm_pool_stats *out)
{
    pthread_mutex_lock(&p->lock);
    out->idle = p->nidle;
    out->in_use = p->nbusy;
    out->total = p->nidle + p->nbusy;
    out->opening = p->nopening;
    out->waiting = p->nwaiting;
    out->acquired = p->acquired;
    out->created = p->created;
    out->destroyed = p->destroyed;
    out->timeouts = p->timeouts;
    out->wait_ns_total = p->wait_ns_total;
    pthread_mutex_unlock(&p->lock);
}

/* --------------------------------------------------------- borrowing */

/* Opens a physical connection for the pool; a slot (nopening) is already
 * reserved.  No lock held on entry or exit. */
static int open_one(struct cdm_pool *p, cdm_conn **out)
{
    struct cdm_resolved *r = NULL;
    uint64_t gen;
    cdm_conn *c = NULL;
    bool have = false;
    int rc;

    /* The parameters may be replaced while we connect: work on a copy
     * taken under the lock. */
    pthread_mutex_lock(&p->lock);
    gen = p->gen;
    if (p->r && !p->detached) {
        have = true;
        r = cdm__resolved_clone(p->r);
    }
    pthread_mutex_unlock(&p->lock);
    if (!have)
        rc = CDM__RETRY;
    else if (!r)
        rc = cdm__nomem();
    else
        rc = cdm__conn_open(r, &c);
    cdm__resolved_free(r);

    pthread_mutex_lock(&p->lock);
    p->nopening--;
    if (rc == CDM_OK) {
        if (p->detached || gen != p->gen) {
            /* Opened with parameters that are no longer current. */
            pthread_mutex_unlock(&p->lock);
            cdm__conn_destroy(c);
            pthread_mutex_lock(&p->lock);
            rc = CDM__RETRY;
        } else {
            int64_t now = cdm__now_ms();
            c->pool = p;
            c->gen = gen;
            c->created_ms = now;
            c->borrowed_ms = now;
            c->idle_since_ms = now;
            c->leak_logged = false;
            busy_link(p, c);
            p->created++;
            *out = c;
        }
    }
    if (rc != CDM_OK) {
        /* The slot is free again: the next waiter may try. */
        offer_slot(p);
        maybe_drained(p);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Checks an idle connection before handing it out; no lock held. */
static bool usable(cdm_conn *c, int ping_ms, int64_t now)
{
    if (c->drv->alive(c->dc) != CDM_OK)
        return false;
    if (ping_ms >= 0 && now - c->idle_since_ms >= ping_ms)
        return c->drv->ping(c->dc) == CDM_OK;
    return true;
}

static void drop_borrowed(struct cdm_pool *p, cdm_conn *c)
{
    pthread_mutex_lock(&p->lock);
    busy_unlink(p, c);
    p->destroyed++;
    offer_slot(p);
    maybe_drained(p);
    pthread_mutex_unlock(&p->lock);
    cdm__conn_destroy(c);
}

int cdm__pool_acquire(struct cdm_pool *p, uint64_t incarnation,
                      cdm_conn **out)
{
    struct waiter w;
    int64_t start = 0, deadline = 0;
    bool waited = false;
    int rc;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        cdm_conn *c;
        int ping_ms;

        if (p->detached || p->incarnation != incarnation) {
            pthread_mutex_unlock(&p->lock);
            return CDM__RETRY;
        }
        if ((c = p->idle)) {
            int64_t now = cdm__now_ms();
            p->idle = c->next;
            p->nidle--;
            busy_link(p, c);
            c->borrowed_ms = now;
            c->leak_logged = false;
            ping_ms = p->cfg.ping_ms;
            p->acquired++;
            if (waited)
                p->wait_ns_total += now_ns() - start;
            pthread_mutex_unlock(&p->lock);
            if (usable(c, ping_ms, now)) {
                atomic_store_explicit(&c->busy, 0, memory_order_relaxed);
                *out = c;
                return CDM_OK;
            }
            /* Dead: replaced without the caller seeing an error. */
            pthread_mutex_lock(&p->lock);
            p->acquired--;
            pthread_mutex_unlock(&p->lock);
            drop_borrowed(p, c);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        if (has_room(p)) {
            p->nopening++;
            pthread_mutex_unlock(&p->lock);
            goto open;
        }
        if (p->cfg.acquire_ms == 0 ||
            (waited && now_ns() >= deadline)) {
            int max = p->cfg.max, ms = p->cfg.acquire_ms;
            p->timeouts++;
            pthread_mutex_unlock(&p->lock);
            return cdm__fail(CDM_ERR_POOL_FULL,
                             "definition '%s': all %d pooled connections are "
                             "in use and none was returned within %d ms "
                             "(POOL_AcquireTimeout)", p->name, max, ms);
        }
        break;
    }

    /* Full: wait in line.  A release hands its connection straight to the
     * oldest waiter, so nobody arriving later can take it first. */
    {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&w.cond, &attr);
        pthread_condattr_destroy(&attr);
    }
    start = now_ns();
    deadline = start + (int64_t)p->cfg.acquire_ms * 1000000;
    for (;;) {
        struct timespec ts = ns_to_ts(deadline);
        bool timed_out = false;

        w.next = NULL;
        w.handed = NULL;
        w.may_open = w.retry = false;
        if (p->wq_tail)
            p->wq_tail->next = &w;
        else
            p->wq_head = &w;
        p->wq_tail = &w;
        p->nwaiting++;
        while (!w.handed && !w.may_open && !w.retry && !timed_out)
            timed_out = pthread_cond_timedwait(&w.cond, &p->lock, &ts) == ETIMEDOUT;
        if (w.handed) {
            cdm_conn *c = w.handed;
            p->acquired++;
            p->wait_ns_total += now_ns() - start;
            pthread_mutex_unlock(&p->lock);
            pthread_cond_destroy(&w.cond);
            atomic_store_explicit(&c->busy, 0, memory_order_relaxed);
            *out = c;
            return CDM_OK;
        }
        if (w.retry) {
            pthread_mutex_unlock(&p->lock);
            pthread_cond_destroy(&w.cond);
            return CDM__RETRY;
        }
        if (w.may_open) {
            p->wait_ns_total += now_ns() - start;
            pthread_mutex_unlock(&p->lock);
            pthread_cond_destroy(&w.cond);
            goto open;
        }
        /* Timed out and still in the queue: leave it. */
        {
            struct waiter **pp = &p->wq_head, *prev = NULL;
            while (*pp && *pp != &w) {
                prev = *pp;
                pp = &(*pp)->next;
            }
            if (*pp) {
                *pp = w.next;
                if (p->wq_tail == &w)
                    p->wq_tail = prev;
                p->nwaiting--;
            }
        }
        {
            int max = p->cfg.max, ms = p->cfg.acquire_ms;
            p->timeouts++;
            pthread_mutex_unlock(&p->lock);
            pthread_cond_destroy(&w.cond);
            return cdm__fail(CDM_ERR_POOL_FULL,
                             "definition '%s': all %d pooled connections are "
                             "in use and none was returned within %d ms "
                             "(POOL_AcquireTimeout)", p->name, max, ms);
        }
    }

open:
    rc = open_one(p, out);
    if (rc == CDM_OK) {
        pthread_mutex_lock(&p->lock);
        p->acquired++;
        pthread_mutex_unlock(&p->lock);
        atomic_store_explicit(&(*out)->busy, 0, memory_order_relaxed);
    }
    return rc;
}

/* -------------------------------------------------------- returning */

void cdm__pool_release(cdm_conn *c)
{
    struct cdm_pool *p = c->pool;
    bool keep = !c->broken;
    bool free_pool = false;
    int lifetime_ms, reset;

    pthread_mutex_lock(&p->lock);
    lifetime_ms = p->cfg.lifetime_ms;
    reset = p->cfg.reset;
    pthread_mutex_unlock(&p->lock);

    /* Driver work first, with no lock held. */
    if (keep && c->drv->in_transaction(c->dc) &&
        c->drv->rollback(c->dc) != CDM_OK)
        keep = false;
    if (keep && reset && c->drv->reset && c->drv->reset(c->dc) != CDM_OK)
        keep = false;
    if (keep && c->drv->alive(c->dc) != CDM_OK)
        keep = false;
    if (keep && lifetime_ms > 0 && cdm__now_ms() - c->created_ms >= lifetime_ms)
        keep = false;

    pthread_mutex_lock(&p->lock);
    /* A lowered POOL_MaximumItems applies at once: surplus connections
     * are closed as they come back. */
    if (keep && p->cfg.max >= 0 && total(p) > p->cfg.max)
        keep = false;
    if (keep && !p->detached && c->gen == p->gen) {
        struct waiter *w = p->wq_head;
        if (w) {
            /* Straight to the oldest waiter: it stays borrowed. */
            p->wq_head = w->next;
            if (!p->wq_head)
                p->wq_tail = NULL;
            p->nwaiting--;
            c->borrowed_ms = cdm__now_ms();
            c->leak_logged = false;
            w->handed = c;
            pthread_cond_signal(&w->cond);
            pthread_mutex_unlock(&p->lock);
            return;
        }
        busy_unlink(p, c);
        c->idle_since_ms = cdm__now_ms();
        c->next = p->idle;
        p->idle = c;
        p->nidle++;
        maybe_drained(p);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    busy_unlink(p, c);
    p->destroyed++;
    offer_slot(p);
    maybe_drained(p);
    free_pool = p->orphan && total(p) == 0;
    pthread_mutex_unlock(&p->lock);
    cdm__conn_destroy(c);
    if (free_pool)
        cdm__pool_free(p);
}

/* ---------------------------------------------------------- cleanup */

int64_t cdm__pool_cleanup(struct cdm_pool *p, int64_t now, cdm_manager *m)
{
    cdm_conn *dead = NULL, **pp;
    struct { char name[256]; int64_t out_ms; int limit; } leaks[8];
    int nleaks = 0, keep, want_open = 0;
    int64_t next;

    pthread_mutex_lock(&p->lock);
    if (p->detached || now < p->next_cleanup_ms) {
        next = p->detached ? INT64_MAX : p->next_cleanup_ms;
        pthread_mutex_unlock(&p->lock);
        return next;
    }
    /* Most recently used first: keep the first POOL_MinimumItems. */
    keep = p->cfg.min;
    for (pp = &p->idle; *pp;) {
        cdm_conn *c = *pp;
        bool expired = now - c->idle_since_ms >= p->cfg.expire_ms;
        bool too_old = p->cfg.lifetime_ms > 0 &&
                       now - c->created_ms >= p->cfg.lifetime_ms;
        if (too_old || (expired && keep <= 0)) {
            *pp = c->next;
            c->next = dead;
            dead = c;
            p->nidle--;
            p->destroyed++;
            continue;
        }
        keep--;
        pp = &c->next;
    }
    if (p->cfg.leak_ms > 0)
        for (cdm_conn *c = p->busy; c; c = c->next)
            if (!c->leak_logged && now - c->borrowed_ms >= p->cfg.leak_ms) {
                c->leak_logged = true;
                if (nleaks < 8) {
                    snprintf(leaks[nleaks].name, sizeof leaks[0].name, "%s",
                             p->name);
                    leaks[nleaks].out_ms = now - c->borrowed_ms;
                    leaks[nleaks].limit = p->cfg.leak_ms;
                    nleaks++;
                }
            }
    while (p->nidle + p->nopening + want_open < p->cfg.min && has_room(p)) {
        p->nopening++;
        want_open++;
    }
    p->next_cleanup_ms = now + p->cfg.cleanup_ms;
    next = p->next_cleanup_ms;
    pthread_mutex_unlock(&p->lock);

    destroy_list(dead);
    for (int i = 0; i < nleaks; i++)
        cdm__log(m, CDM_LOG_WARN,
                 "definition '%s': a connection has been borrowed for %lld ms "
                 "and not returned (POOL_LeakTimeout=%d)", leaks[i].name,
                 (long long)leaks[i].out_ms, leaks[i].limit);
    /* POOL_MinimumItems: opened here, outside every lock, and parked. */
    while (want_open-- > 0) {
        cdm_conn *c;
        int rc = open_one(p, &c);
        if (rc != CDM_OK) {
            if (rc != CDM__RETRY)
                cdm__log(m, CDM_LOG_WARN, "%s", cdm_errmsg());
            pthread_mutex_lock(&p->lock);
            while (want_open-- > 0)
                p->nopening--;
            offer_slot(p);
            maybe_drained(p);
            pthread_mutex_unlock(&p->lock);
            break;
        }
        cdm__pool_release(c);
    }
    return next;
}
