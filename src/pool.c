/*
 * pool.c - one pool of connections per pooled definition: borrowing and
 * returning without a shared lock in the common case, FIFO waiters served
 * by direct handoff, validation on borrow, retirement on return, and the
 * periodic cleanup run.
 *
 * Every connection lives in a slot whose state is atomic: EMPTY, IDLE,
 * BUSY, or CLAIMED (held by a thread that has the lock).  Each thread
 * remembers the slot it last returned to a pool; borrowing it again is one
 * compare-and-swap IDLE -> BUSY and returning it one store BUSY -> IDLE, on
 * a cache line no other thread touches.  Everything else (choosing another
 * idle connection, opening, waiting, handing off, closing, cleanup) takes
 * p->lock.  A returning thread that finds waiters, a new generation or a
 * detached pool after its IDLE store takes the lock to settle it; the
 * other side makes its change and then looks at the slots, so one of the
 * two always sees the other (both use sequentially consistent atomics).
 *
 * p->lock is held only around memory: connecting, checking, pinging,
 * rolling back and closing happen with no lock held.  The manager's lock
 * may be held when taking p->lock, never the reverse.  Slots live in
 * chunks that are freed only with the pool, and pools only with their
 * manager, so a thread holding a stale slot pointer can always look.
 */
#include "cdm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum { S_EMPTY = 0, S_IDLE, S_BUSY, S_CLAIMED };

#define CHUNK 16

/* One cache line each: two threads borrowing and returning their own
 * connections must not write to the same line. */
#define CACHE_LINE 64
struct cdm_slot {
    _Alignas(CACHE_LINE) atomic_int state;
    cdm_conn *conn;      /* set before the state says IDLE or BUSY */
};

struct waiter {
    pthread_cond_t cond;
    struct waiter *next;
    cdm_conn *handed;    /* given directly by a release */
    bool may_open;       /* a slot freed up: open a connection for yourself */
    bool retry;          /* the pool was detached: look the definition up again */
};

struct pool_cfg {
    int max;             /* < 0: no limit */
    int min;
    int expire_ms, cleanup_ms, acquire_ms, lifetime_ms, ping_ms, leak_ms;
    bool reset;
};

struct cdm_pool {
    pthread_mutex_t lock;
    pthread_cond_t drained;     /* broadcast when a detached pool empties */

    /* Written under lock, read without it on the fast paths. */
    _Atomic uint64_t incarnation; /* process-unique, new at every attach */
    atomic_bool detached;
    _Atomic uint64_t gen;       /* parameter generation */
    atomic_int nwaiting;
    atomic_int nconns;          /* slots not EMPTY */
    atomic_int max, ping_ms, lifetime_ms;
    atomic_bool reset;

    /* Guarded by lock. */
    bool orphan;                /* its manager is gone: free when empty */
    char *name;
    struct cdm_resolved *r;     /* parameters for new connections */
    struct pool_cfg cfg;
    struct cdm_slot **chunks;   /* CHUNK slots each; the table may move,
                                 * the chunks never do */
    int nchunks;
    int nslots;
    int nopening;
    struct waiter *wq_head, *wq_tail;
    int64_t next_cleanup_ms;
    int64_t acquired_retired, created, destroyed, timeouts, wait_ns_total;
};

static _Atomic uint64_t incarnations;

/* The slot each thread last returned to a pool, per pool incarnation. */
#define HINTS 4
struct hint {
    struct cdm_pool *pool;
    uint64_t incarnation;
    struct cdm_slot *slot;
};
static _Thread_local struct hint hints[HINTS];
static _Thread_local unsigned hint_next;
/* Orders this thread's returns within one tick of the coarse clock. */
static _Thread_local uint32_t return_seq;

/* The LIFO key of a return: coarse ms, then this thread's sequence. */
static int64_t idle_key(int64_t now_ms)
{
    return now_ms << 20 | (int64_t)(return_seq++ & 0xfffff);
}

/* ------------------------------------------------------------ clocks */

int64_t cdm__now_ms(void)
{
    struct timespec ts;

    /* Coarse: a few ms of resolution is plenty for idle and lifetime
     * limits, and it costs a fraction of the precise clock. */
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

/* ------------------------------------------------------------- hints */

static struct cdm_slot *hint_get(struct cdm_pool *p, uint64_t incarnation)
{
    for (unsigned i = 0; i < HINTS; i++)
        if (hints[i].pool == p && hints[i].incarnation == incarnation)
            return hints[i].slot;
    return NULL;
}

static void hint_set(struct cdm_pool *p, uint64_t incarnation,
                     struct cdm_slot *s)
{
    struct hint *h = NULL;

    for (unsigned i = 0; i < HINTS && !h; i++)
        if (hints[i].pool == p)
            h = &hints[i];
    if (!h)
        h = &hints[hint_next++ % HINTS];
    h->pool = p;
    h->incarnation = incarnation;
    h->slot = s;
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
    atomic_store(&p->detached, true);
    return p;
}

void cdm__pool_free(struct cdm_pool *p)
{
    if (!p)
        return;
    cdm__resolved_free(p->r);
    for (int i = 0; i < p->nchunks; i++)
        free(p->chunks[i]);
    free(p->chunks);
    free(p->name);
    pthread_cond_destroy(&p->drained);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static struct cdm_slot *slot_at(struct cdm_pool *p, int i)
{
    return &p->chunks[i / CHUNK][i % CHUNK];
}

static int total(struct cdm_pool *p)
{
    return atomic_load(&p->nconns) + p->nopening;
}

static bool has_room(struct cdm_pool *p)
{
    return p->cfg.max < 0 || total(p) < p->cfg.max;
}

/* With the lock held: borrowed connections, and those being opened. */
static int count_busy(struct cdm_pool *p)
{
    int n = p->nopening;

    for (int i = 0; i < p->nslots; i++) {
        int st = atomic_load(&slot_at(p, i)->state);
        n += st == S_BUSY || st == S_CLAIMED;
    }
    return n;
}

static void maybe_drained(struct cdm_pool *p)
{
    if (atomic_load(&p->detached) && count_busy(p) == 0)
        pthread_cond_broadcast(&p->drained);
}

/* With the lock held: puts a new connection in an empty slot, BUSY. */
static int place(struct cdm_pool *p, cdm_conn *c)
{
    struct cdm_slot *s = NULL;

    for (int i = 0; i < p->nslots && !s; i++)
        if (atomic_load(&slot_at(p, i)->state) == S_EMPTY)
            s = slot_at(p, i);
    if (!s) {
        if (p->nslots == p->nchunks * CHUNK) {
            struct cdm_slot **table, *chunk;
            if (!(table = realloc(p->chunks, (size_t)(p->nchunks + 1) * sizeof *table)))
                return cdm__nomem();
            p->chunks = table;
            if (!(chunk = aligned_alloc(CACHE_LINE, CHUNK * sizeof *s)))
                return cdm__nomem();
            memset(chunk, 0, CHUNK * sizeof *s);
            p->chunks[p->nchunks++] = chunk;
        }
        s = slot_at(p, p->nslots++);
    }
    s->conn = c;
    c->slot = s;
    atomic_store(&s->state, S_BUSY);
    atomic_fetch_add(&p->nconns, 1);
    return CDM_OK;
}

/* With the lock held: empties a BUSY or CLAIMED slot whose connection the
 * caller will close (unlocked). */
static void unplace(struct cdm_pool *p, cdm_conn *c)
{
    p->acquired_retired += atomic_load_explicit(&c->acquired, memory_order_relaxed);
    c->slot->conn = NULL;
    atomic_store(&c->slot->state, S_EMPTY);
    atomic_fetch_sub(&p->nconns, 1);
    p->destroyed++;
}

/* With the lock held: takes every IDLE connection out, for closing. */
static cdm_conn *take_idle(struct cdm_pool *p)
{
    cdm_conn *dead = NULL;

    for (int i = 0; i < p->nslots; i++) {
        struct cdm_slot *s = slot_at(p, i);
        int expect = S_IDLE;
        if (atomic_compare_exchange_strong(&s->state, &expect, S_CLAIMED)) {
            cdm_conn *c = s->conn;
            unplace(p, c);
            c->next = dead;
            dead = c;
        }
    }
    return dead;
}

/* With the lock held: the oldest waiter gets `c` (BUSY) directly. */
static bool handoff(struct cdm_pool *p, cdm_conn *c)
{
    struct waiter *w = p->wq_head;

    if (!w)
        return false;
    p->wq_head = w->next;
    if (!p->wq_head)
        p->wq_tail = NULL;
    atomic_fetch_sub(&p->nwaiting, 1);
    w->handed = c;
    pthread_cond_signal(&w->cond);
    return true;
}

/* With the lock held: a slot freed up, so the oldest waiter may open a
 * connection for itself (it keeps its place: nobody can barge in). */
static void offer_slot(struct cdm_pool *p)
{
    struct waiter *w = p->wq_head;

    if (!w || !has_room(p))
        return;
    p->wq_head = w->next;
    if (!p->wq_head)
        p->wq_tail = NULL;
    atomic_fetch_sub(&p->nwaiting, 1);
    w->may_open = true;
    p->nopening++;   /* reserved for that waiter */
    pthread_cond_signal(&w->cond);
}

static void destroy_list(cdm_conn *c)
{
    while (c) {
        cdm_conn *next = c->next;
        cdm__conn_destroy(c);
        c = next;
    }
}

/* ------------------------------------------------------- configuring */

/* Keys that shape the pool, not its connections: changing them applies
 * new limits without closing anything that still fits. */
static bool pool_key(const char *key)
{
    return strncasecmp(key, "POOL_", 5) == 0 || cdm__streq_nocase(key, "Pooled");
}

/* True if every key of `a` that shapes a connection is the same in `b`. */
static bool covers(const struct cdm_resolved *a, const struct cdm_resolved *b)
{
    for (size_t i = 0; i < a->nkv; i++) {
        const struct cdm_rkv *kv;
        if (pool_key(a->kv[i].key))
            continue;
        kv = cdm__rfind(b, a->kv[i].key);
        if (!kv || strcmp(kv->value, a->kv[i].value) != 0 ||
            (kv->dir == NULL) != (a->kv[i].dir == NULL) ||
            (kv->dir && strcmp(kv->dir, a->kv[i].dir) != 0))
            return false;
    }
    return true;
}

static bool same_connection(const struct cdm_resolved *a,
                            const struct cdm_resolved *b)
{
    return a && b && a->drv == b->drv && covers(a, b) && covers(b, a);
}

/* With the lock held: closes idle connections above a lowered limit,
 * oldest first; borrowed ones close as they come back. */
static cdm_conn *trim_surplus(struct cdm_pool *p)
{
    cdm_conn *dead = NULL;

    while (p->cfg.max >= 0 && atomic_load(&p->nconns) > p->cfg.max) {
        struct cdm_slot *oldest = NULL;
        int expect = S_IDLE;
        for (int i = 0; i < p->nslots; i++) {
            struct cdm_slot *s = slot_at(p, i);
            if (atomic_load(&s->state) == S_IDLE &&
                (!oldest || s->conn->idle_key < oldest->conn->idle_key))
                oldest = s;
        }
        if (!oldest)
            break;
        if (atomic_compare_exchange_strong(&oldest->state, &expect, S_CLAIMED)) {
            cdm_conn *c = oldest->conn;
            unplace(p, c);
            c->next = dead;
            dead = c;
        }
    }
    return dead;
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

    c.max = (int)cdm__rget_int(r, "POOL_MaximumItems");
    c.min = (int)cdm__rget_int(r, "POOL_MinimumItems");
    c.expire_ms = (int)cdm__rget_int(r, "POOL_ExpireTimeout");
    c.cleanup_ms = (int)cdm__rget_int(r, "POOL_CleanupTimeout");
    c.acquire_ms = (int)cdm__rget_int(r, "POOL_AcquireTimeout");
    c.lifetime_ms = (int)cdm__rget_int(r, "POOL_MaxLifetime");
    c.ping_ms = (int)cdm__rget_int(r, "POOL_PingInterval");
    c.leak_ms = (int)cdm__rget_int(r, "POOL_LeakTimeout");
    c.reset = cdm__rget_bool(r, "POOL_ResetOnRelease");

    pthread_mutex_lock(&p->lock);
    if (!same_connection(p->r, r)) {
        /* New parameters: idle connections go now, borrowed ones when
         * they come back (their generation no longer matches). */
        if (p->r) {
            atomic_fetch_add(&p->gen, 1);
            dead = take_idle(p);
        }
        cdm__resolved_free(p->r);
        p->r = r;
    } else {
        cdm__resolved_free(r);
    }
    p->cfg = c;
    atomic_store(&p->max, c.max);
    atomic_store(&p->ping_ms, c.ping_ms);
    atomic_store(&p->lifetime_ms, c.lifetime_ms);
    atomic_store(&p->reset, c.reset);
    {
        cdm_conn *surplus = trim_surplus(p);
        while (surplus) {
            cdm_conn *next = surplus->next;
            surplus->next = dead;
            dead = surplus;
            surplus = next;
        }
    }
    if (p->next_cleanup_ms == 0 || p->next_cleanup_ms > now + c.cleanup_ms)
        p->next_cleanup_ms = now + c.cleanup_ms;
    /* A higher limit (or fewer connections) lets waiters open at once. */
    for (int n = atomic_load(&p->nwaiting); n > 0 && has_room(p); n--)
        offer_slot(p);
    pthread_mutex_unlock(&p->lock);
    return dead;
}

int cdm__pool_attach(struct cdm_pool *p, const char *name, uint64_t *incarnation)
{
    char *copy = cdm__strdup(name);
    uint64_t inc = atomic_fetch_add(&incarnations, 1) + 1;

    if (!copy)
        return cdm__nomem();
    pthread_mutex_lock(&p->lock);
    free(p->name);
    p->name = copy;
    atomic_store(&p->incarnation, inc);
    atomic_store(&p->gen, 0);
    p->next_cleanup_ms = 0;
    p->acquired_retired = p->created = p->destroyed = p->timeouts = 0;
    p->wait_ns_total = 0;
    atomic_store(&p->detached, false);
    *incarnation = inc;
    pthread_mutex_unlock(&p->lock);
    return CDM_OK;
}

cdm_conn *cdm__pool_detach(struct cdm_pool *p)
{
    cdm_conn *dead;

    pthread_mutex_lock(&p->lock);
    atomic_store(&p->detached, true);
    dead = take_idle(p);
    /* Waiters look the definition up again: a new pool or an error. */
    while (p->wq_head) {
        struct waiter *w = p->wq_head;
        p->wq_head = w->next;
        w->retry = true;
        pthread_cond_signal(&w->cond);
    }
    p->wq_tail = NULL;
    atomic_store(&p->nwaiting, 0);
    cdm__resolved_free(p->r);
    p->r = NULL;
    maybe_drained(p);
    pthread_mutex_unlock(&p->lock);
    return dead;
}

bool cdm__pool_reusable(struct cdm_pool *p)
{
    bool empty;

    pthread_mutex_lock(&p->lock);
    empty = atomic_load(&p->detached) && total(p) == 0 && !p->wq_head;
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
    while (count_busy(p) > 0) {
        if (pthread_cond_timedwait(&p->drained, &p->lock, &ts) == ETIMEDOUT) {
            if (count_busy(p) > 0)
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
    n = count_busy(p);
    pthread_mutex_unlock(&p->lock);
    return n;
}

void cdm__pool_stats(struct cdm_pool *p, cdm_pool_stats *out)
{
    int64_t acquired;

    pthread_mutex_lock(&p->lock);
    memset(out, 0, sizeof *out);
    acquired = p->acquired_retired;
    for (int i = 0; i < p->nslots; i++) {
        struct cdm_slot *s = slot_at(p, i);
        int st = atomic_load(&s->state);
        if (st == S_EMPTY)
            continue;
        /* A slot can be IDLE for an instant between a release and the
         * handoff it settles; it is counted where it stands. */
        if (st == S_IDLE)
            out->idle++;
        else
            out->in_use++;
        acquired += atomic_load_explicit(&s->conn->acquired, memory_order_relaxed);
    }
    out->total = out->idle + out->in_use;
    out->opening = p->nopening;
    out->waiting = atomic_load(&p->nwaiting);
    out->acquired = acquired;
    out->created = p->created;
    out->destroyed = p->destroyed;
    out->timeouts = p->timeouts;
    out->wait_ns_total = p->wait_ns_total;
    pthread_mutex_unlock(&p->lock);
}

/* --------------------------------------------------------- borrowing */

/* Marks `c` as the caller's; counted once the caller really has it. */
static void lend(struct cdm_pool *p, cdm_conn *c, int64_t now)
{
    atomic_store_explicit(&c->borrowed_ms, now, memory_order_relaxed);
    atomic_store_explicit(&c->leak_logged, false, memory_order_relaxed);
    /* Only the borrower writes it: no read-modify-write needed. */
    atomic_store_explicit(&c->acquired,
                          atomic_load_explicit(&c->acquired, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&c->busy, 0, memory_order_relaxed);
    hint_set(p, c->incarnation, c->slot);
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

/* Closes a connection the caller holds (BUSY or CLAIMED); no lock held. */
static void destroy_held(struct cdm_pool *p, cdm_conn *c)
{
    bool free_pool;

    pthread_mutex_lock(&p->lock);
    unplace(p, c);
    offer_slot(p);
    maybe_drained(p);
    free_pool = p->orphan && total(p) == 0;
    pthread_mutex_unlock(&p->lock);
    cdm__conn_destroy(c);
    if (free_pool)
        cdm__pool_free(p);
}

/* Opens a physical connection for the pool; a slot (nopening) is already
 * reserved.  No lock held on entry or exit. */
static int open_one(struct cdm_pool *p, cdm_conn **out)
{
    struct cdm_resolved *r = NULL;
    uint64_t gen, inc;
    cdm_conn *c = NULL;
    bool have = false;
    int rc;

    /* The parameters may be replaced while we connect: work on a copy. */
    pthread_mutex_lock(&p->lock);
    gen = atomic_load(&p->gen);
    inc = atomic_load(&p->incarnation);
    if (p->r && !atomic_load(&p->detached)) {
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
    if (rc == CDM_OK && (atomic_load(&p->detached) || gen != atomic_load(&p->gen))) {
        /* Opened with parameters that are no longer current. */
        pthread_mutex_unlock(&p->lock);
        cdm__conn_destroy(c);
        pthread_mutex_lock(&p->lock);
        rc = CDM__RETRY;
    } else if (rc == CDM_OK) {
        int64_t now = cdm__now_ms();
        c->pool = p;
        c->gen = gen;
        c->incarnation = inc;
        c->created_ms = now;
        c->idle_since_ms = now;
        c->idle_key = idle_key(now);
        if ((rc = place(p, c)) == CDM_OK) {
            p->created++;
            *out = c;
        } else {
            pthread_mutex_unlock(&p->lock);
            cdm__conn_destroy(c);
            pthread_mutex_lock(&p->lock);
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

/* With the lock held: claims the most recently returned IDLE connection
 * (LIFO keeps the working set warm), or NULL. */
static cdm_conn *claim_idle(struct cdm_pool *p)
{
    for (;;) {
        struct cdm_slot *best = NULL;
        int expect = S_IDLE;

        for (int i = 0; i < p->nslots; i++) {
            struct cdm_slot *s = slot_at(p, i);
            if (atomic_load(&s->state) == S_IDLE &&
                (!best || s->conn->idle_key > best->conn->idle_key))
                best = s;
        }
        if (!best)
            return NULL;
        /* A thread on the fast path may take it first: look again. */
        if (atomic_compare_exchange_strong(&best->state, &expect, S_BUSY))
            return best->conn;
    }
}

static int full_error(struct cdm_pool *p)
{
    int max = p->cfg.max, ms = p->cfg.acquire_ms;

    p->timeouts++;
    pthread_mutex_unlock(&p->lock);
    return cdm__fail(CDM_ERR_POOL_FULL,
                     "definition '%s': all %d pooled connections are in use "
                     "and none was returned within %d ms (POOL_AcquireTimeout)",
                     p->name, max, ms);
}

static void dequeue(struct cdm_pool *p, struct waiter *w)
{
    struct waiter **pp = &p->wq_head, *prev = NULL;

    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = w->next;
        if (p->wq_tail == w)
            p->wq_tail = prev;
        atomic_fetch_sub(&p->nwaiting, 1);
    }
}

static int acquire_slow(struct cdm_pool *p, uint64_t inc, cdm_conn **out)
{
    struct waiter w;
    bool waiting = false;
    int64_t start = 0, deadline = 0;
    int rc;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        cdm_conn *c;
        int ping_ms;

        if (atomic_load(&p->detached) || atomic_load(&p->incarnation) != inc) {
            rc = CDM__RETRY;
            break;
        }
        /* Waiters are served in order: take an idle connection only when
         * nobody is ahead of us. */
        if ((!waiting ? !p->wq_head : p->wq_head == &w) && (c = claim_idle(p))) {
            int64_t now = cdm__now_ms();
            if (waiting) {
                dequeue(p, &w);
                waiting = false;
                p->wait_ns_total += now_ns() - start;
                pthread_cond_destroy(&w.cond);
            }
            ping_ms = p->cfg.ping_ms;
            pthread_mutex_unlock(&p->lock);
            if (c->gen == atomic_load(&p->gen) && usable(c, ping_ms, now)) {
                lend(p, c, now);
                *out = c;
                return CDM_OK;
            }
            /* Dead or outdated: replaced without the caller seeing an error. */
            destroy_held(p, c);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        if (!waiting && !p->wq_head && has_room(p)) {
            p->nopening++;
            pthread_mutex_unlock(&p->lock);
            goto open;
        }
        if (!waiting) {
            pthread_condattr_t attr;
            if (p->cfg.acquire_ms == 0)
                return full_error(p);
            /* Full: wait in line.  A release hands its connection straight
             * to the oldest waiter. */
            pthread_condattr_init(&attr);
            pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
            pthread_cond_init(&w.cond, &attr);
            pthread_condattr_destroy(&attr);
            w.next = NULL;
            w.handed = NULL;
            w.may_open = w.retry = false;
            if (p->wq_tail)
                p->wq_tail->next = &w;
            else
                p->wq_head = &w;
            p->wq_tail = &w;
            atomic_fetch_add(&p->nwaiting, 1);
            waiting = true;
            start = now_ns();
            deadline = start + (int64_t)p->cfg.acquire_ms * 1000000;
            continue;   /* look at the slots once more before sleeping */
        }
        {
            struct timespec ts = ns_to_ts(deadline);
            if (pthread_cond_timedwait(&w.cond, &p->lock, &ts) == ETIMEDOUT &&
                !w.handed && !w.may_open && !w.retry) {
                dequeue(p, &w);
                pthread_cond_destroy(&w.cond);
                return full_error(p);
            }
        }
        if (w.handed) {
            c = w.handed;
            p->wait_ns_total += now_ns() - start;
            pthread_mutex_unlock(&p->lock);
            pthread_cond_destroy(&w.cond);
            lend(p, c, cdm__now_ms());
            *out = c;
            return CDM_OK;
        }
        if (w.may_open) {
            p->wait_ns_total += now_ns() - start;
            pthread_mutex_unlock(&p->lock);
            pthread_cond_destroy(&w.cond);
            goto open;
        }
        if (w.retry) {
            pthread_mutex_unlock(&p->lock);
            pthread_cond_destroy(&w.cond);
            return CDM__RETRY;
        }
    }
    if (waiting) {
        dequeue(p, &w);
        pthread_cond_destroy(&w.cond);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;

open:
    if ((rc = open_one(p, out)) == CDM_OK)
        lend(p, *out, cdm__now_ms());
    return rc;
}

int cdm__pool_acquire(struct cdm_pool *p, uint64_t inc, cdm_conn **out)
{
    struct cdm_slot *s = hint_get(p, inc);
    int expect = S_IDLE;

    /* The fast path: this thread's last connection, if nobody waits. */
    if (s && atomic_load_explicit(&p->nwaiting, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_strong_explicit(&s->state, &expect, S_BUSY,
                                                memory_order_acquire,
                                                memory_order_relaxed)) {
        cdm_conn *c = s->conn;
        int64_t now;

        if (c->incarnation != inc || atomic_load(&p->detached) ||
            c->gen != atomic_load_explicit(&p->gen, memory_order_acquire)) {
            /* Not for us: settled under the lock like a return. */
            cdm__pool_release(c);
            return acquire_slow(p, inc, out);
        }
        now = cdm__now_ms();
        if (usable(c, atomic_load_explicit(&p->ping_ms, memory_order_relaxed), now)) {
            lend(p, c, now);
            *out = c;
            return CDM_OK;
        }
        destroy_held(p, c);
    }
    return acquire_slow(p, inc, out);
}

/* -------------------------------------------------------- returning */

void cdm__pool_release(cdm_conn *c)
{
    struct cdm_pool *p = c->pool;
    struct cdm_slot *s = c->slot;
    bool keep = !c->broken;
    int lifetime_ms = atomic_load_explicit(&p->lifetime_ms, memory_order_relaxed);
    int max;
    int64_t now = cdm__now_ms();

    /* Driver work first, with no lock held. */
    if (keep && c->drv->in_transaction(c->dc) &&
        c->drv->rollback(c->dc) != CDM_OK)
        keep = false;
    if (keep && atomic_load_explicit(&p->reset, memory_order_relaxed) &&
        c->drv->reset && c->drv->reset(c->dc) != CDM_OK)
        keep = false;
    if (keep && c->drv->alive(c->dc) != CDM_OK)
        keep = false;
    if (keep && lifetime_ms > 0 && now - c->created_ms >= lifetime_ms)
        keep = false;
    /* A lowered POOL_MaximumItems applies at once: surplus connections
     * close as they come back. */
    max = atomic_load_explicit(&p->max, memory_order_relaxed);
    if (keep && max >= 0 && atomic_load_explicit(&p->nconns, memory_order_relaxed) > max)
        keep = false;

    if (keep) {
        c->idle_since_ms = now;
        c->idle_key = idle_key(now);
        hint_set(p, c->incarnation, s);
        atomic_store(&s->state, S_IDLE);
        /* The common case ends here.  Otherwise someone changed the pool
         * or is waiting: settle it under the lock. */
        if (atomic_load(&p->nwaiting) == 0 && !atomic_load(&p->detached) &&
            c->gen == atomic_load(&p->gen))
            return;
        pthread_mutex_lock(&p->lock);
        {
            int expect = S_IDLE;
            /* Somebody (a waiter looking, the cleanup) may have it now. */
            if (!atomic_compare_exchange_strong(&s->state, &expect, S_BUSY)) {
                pthread_mutex_unlock(&p->lock);
                return;
            }
        }
        if (!atomic_load(&p->detached) && c->gen == atomic_load(&p->gen)) {
            if (!handoff(p, c))
                atomic_store(&s->state, S_IDLE);
            pthread_mutex_unlock(&p->lock);
            return;
        }
        pthread_mutex_unlock(&p->lock);
    }
    destroy_held(p, c);
}

/* ---------------------------------------------------------- cleanup */

int64_t cdm__pool_cleanup(struct cdm_pool *p, int64_t now, cdm_manager *m)
{
    cdm_conn *dead = NULL, **idle = NULL;
    int64_t *leaks = NULL;
    char name[256];
    int nleaks = 0, nidle = 0, want_open = 0, idle_count = 0, leak_limit;
    int64_t next;

    pthread_mutex_lock(&p->lock);
    if (atomic_load(&p->detached) || now < p->next_cleanup_ms) {
        next = atomic_load(&p->detached) ? INT64_MAX : p->next_cleanup_ms;
        pthread_mutex_unlock(&p->lock);
        return next;
    }
    snprintf(name, sizeof name, "%s", p->name);
    leak_limit = p->cfg.leak_ms;
    /* Bounded by the pool's size; out of memory only delays this run. */
    if (p->nslots && (!(idle = malloc((size_t)p->nslots * sizeof *idle)) ||
                      !(leaks = malloc((size_t)p->nslots * sizeof *leaks)))) {
        free(idle);
        pthread_mutex_unlock(&p->lock);
        return now + 1000;
    }
    /* Claim the idle connections, newest first, and keep the newest
     * POOL_MinimumItems of them whatever their age. */
    for (int i = 0; i < p->nslots; i++) {
        struct cdm_slot *s = slot_at(p, i);
        int expect = S_IDLE;
        if (atomic_compare_exchange_strong(&s->state, &expect, S_CLAIMED))
            idle[nidle++] = s->conn;
    }
    for (int i = 1; i < nidle; i++)
        for (int j = i; j > 0 && idle[j]->idle_key > idle[j - 1]->idle_key; j--) {
            cdm_conn *t = idle[j];
            idle[j] = idle[j - 1];
            idle[j - 1] = t;
        }
    for (int i = 0; i < nidle; i++) {
        cdm_conn *c = idle[i];
        bool expired = now - c->idle_since_ms >= p->cfg.expire_ms;
        bool too_old = p->cfg.lifetime_ms > 0 &&
                       now - c->created_ms >= p->cfg.lifetime_ms;
        if (too_old || (expired && idle_count >= p->cfg.min)) {
            unplace(p, c);
            c->next = dead;
            dead = c;
            continue;
        }
        idle_count++;
        atomic_store(&c->slot->state, S_IDLE);
        /* A waiter may have queued while we held it. */
        {
            int expect = S_IDLE;
            if (p->wq_head && atomic_compare_exchange_strong(&c->slot->state, &expect, S_BUSY) &&
                !handoff(p, c))
                atomic_store(&c->slot->state, S_IDLE);
        }
    }
    if (p->cfg.leak_ms > 0)
        for (int i = 0; i < p->nslots; i++) {
            struct cdm_slot *s = slot_at(p, i);
            cdm_conn *c;
            int64_t out;
            if (atomic_load(&s->state) != S_BUSY || !(c = s->conn))
                continue;
            out = now - atomic_load_explicit(&c->borrowed_ms, memory_order_relaxed);
            if (out < p->cfg.leak_ms ||
                atomic_exchange_explicit(&c->leak_logged, true, memory_order_relaxed))
                continue;
            leaks[nleaks++] = out;
        }
    while (idle_count + want_open < p->cfg.min && has_room(p)) {
        p->nopening++;
        want_open++;
    }
    if (dead) {
        offer_slot(p);
        maybe_drained(p);
    }
    p->next_cleanup_ms = now + p->cfg.cleanup_ms;
    next = p->next_cleanup_ms;
    pthread_mutex_unlock(&p->lock);

    destroy_list(dead);
    for (int i = 0; i < nleaks; i++)
        cdm__log(m, CDM_LOG_WARN,
                 "definition '%s': a connection has been borrowed for %lld ms "
                 "and not returned (POOL_LeakTimeout=%d)", name,
                 (long long)leaks[i], leak_limit);
    free(idle);
    free(leaks);
    /* POOL_MinimumItems: opened here, outside every lock, and parked. */
    while (want_open > 0) {
        cdm_conn *c;
        int rc;
        want_open--;
        if ((rc = open_one(p, &c)) == CDM_OK) {
            cdm__pool_release(c);
            continue;
        }
        if (rc != CDM__RETRY)
            cdm__log(m, CDM_LOG_WARN, "%s", cdm_errmsg());
        pthread_mutex_lock(&p->lock);
        p->nopening -= want_open;
        want_open = 0;
        offer_slot(p);
        maybe_drained(p);
        pthread_mutex_unlock(&p->lock);
    }
    return next;
}
