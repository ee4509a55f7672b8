/*
 * pool.c - one pool of connections per pooled definition: configuring it,
 * borrowing (one CAS on the thread's own slot in the common case), waiting
 * when it is full, opening, returning (one CAS), and its figures.  The
 * slot protocol is in entry.h, lifetimes and locks in pool.h.
 *
 * Waiting.  When the pool is full, callers queue in arrival order.  A
 * returning thread keeps its connection (it may take it straight back, as
 * a thread looping over borrows does) as long as the first waiter has
 * been first for less than PATIENCE; after that the waiter switches the
 * pool to handoff: every busy slot is flagged, and the next return hands
 * its connection directly to that waiter.  Barging keeps oversubscribed
 * pools fast (no wake-up and sleep per borrow), the switch keeps them
 * fair (no waiter is passed over for more than about PATIENCE per place
 * in the line).  And while anyone waits, a thread that has kept a
 * connection for QUANTUM hands it on when it returns it, so that turns go
 * round the line instead of staying with whoever the scheduler favours.
 */
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#define CHUNK 16
/* How long the first waiter lets returning threads keep their
 * connections before it asks for direct handoff. */
#define PATIENCE_NS 1000000
/* While threads wait, a thread that has held on to a connection (taking
 * it straight back each time) for this long hands it to the first waiter
 * when it returns it: turns of about a millisecond go round the line. */
#define QUANTUM_NS 1000000
/* A network connection returned less than this long ago is handed out
 * without a socket check (a system call): it is as if the check had been
 * made a few ms earlier, and a thread taking its connection straight back
 * pays nothing.  Older ones are checked, which also sees a server's last
 * words before it hangs up; the watcher (cleanup.c) closes idle
 * connections whose server hung up as it happens. */
#define CHECK_AFTER_MS 5

static _Atomic uint64_t incarnations;

/* ------------------------------------------------------------- basics */

struct cdm_pool *cdm__pool_new(int epfd)
{
    struct cdm_pool *p = aligned_alloc(CACHE_LINE, sizeof *p);

    if (!p)
        return NULL;
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    cdm__cond_init(&p->drained);
    atomic_store(&p->detached, true);
    atomic_store(&p->refs, 1);   /* the registry's */
    p->epfd = epfd;
    return p;
}

static void pool_free(struct cdm_pool *p)
{
    cdm__resolved_free(p->r);
    for (int i = 0; i < p->nchunks; i++)
        free(p->chunks[i]);
    free(p->chunks);
    free(p->name);
    pthread_cond_destroy(&p->drained);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void cdm__pool_ref(struct cdm_pool *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void cdm__pool_unref(struct cdm_pool *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        pool_free(p);
}

struct cdm_slot *cdm__pool_slot(struct cdm_pool *p, int i)
{
    return &p->chunks[i / CHUNK][i % CHUNK];
}

/* Physical connections: in slots, being opened, or being closed. */
static int total(struct cdm_pool *p)
{
    return atomic_load(&p->nconns) + p->nopening + p->nclosing;
}

bool cdm__pool_has_room(struct cdm_pool *p)
{
    return p->cfg.max < 0 || total(p) < p->cfg.max;
}

/* Lock held: borrowed connections, and those being opened. */
static int count_busy(struct cdm_pool *p)
{
    int n = p->nopening;

    for (int i = 0; i < p->nslots; i++) {
        unsigned st = entry_state(entry_load(cdm__pool_slot(p, i)));
        n += st == S_BUSY || st == S_CLAIMED;
    }
    return n;
}

/* Lock held: the peak is raised to `borrowed` plus the connections
 * being opened for borrowers (they count against the limit too).
 * Sampled only where the lock is held anyway (see cdm_pool_stats in
 * cdm.h): the fast path writes nothing shared. */
static void note_in_use(struct cdm_pool *p, int64_t borrowed)
{
    if (borrowed + p->nopening > p->peak_in_use)
        p->peak_in_use = borrowed + p->nopening;
}

/* Lock held: counts the borrowed connections (bounded by the pool's
 * size) and notes the peak. */
static void sample_in_use(struct cdm_pool *p)
{
    int64_t n = 0;

    for (int i = 0; i < p->nslots; i++)
        n += entry_state(entry_load(cdm__pool_slot(p, i))) == S_BUSY;
    note_in_use(p, n);
}

/* Lock held: a new connection moves into an empty slot, BUSY, owned by
 * the caller; it holds a reference to the pool until it is closed. */
static int place(struct cdm_pool *p, cdm_conn *c)
{
    struct cdm_slot *s = NULL;

    for (int i = 0; i < p->nslots && !s; i++)
        if (entry_state(entry_load(cdm__pool_slot(p, i))) == S_EMPTY)
            s = cdm__pool_slot(p, i);
    if (!s) {
        if (p->nslots == p->nchunks * CHUNK) {
            struct cdm_slot **table, *chunk;
            if (!(table = realloc(p->chunks, (size_t)(p->nchunks + 1) * sizeof *table)))
                return cdm__nomem();
            p->chunks = table;
            if (!(chunk = aligned_alloc(CACHE_LINE, CHUNK * sizeof *chunk)))
                return cdm__nomem();
            memset(chunk, 0, CHUNK * sizeof *chunk);
            for (int i = 0; i < CHUNK; i++)
                chunk[i].pool = p;
            p->chunks[p->nchunks++] = chunk;
        }
        s = cdm__pool_slot(p, p->nslots++);
    }
    entry_fill(s, c);
    if (atomic_load(&p->handoff))
        entry_flag(s, false);
    atomic_fetch_add(&p->nconns, 1);
    cdm__pool_ref(p);
    return CDM_OK;
}

void cdm__pool_unplace(struct cdm_pool *p, cdm_conn *c)
{
    p->acquired_retired += atomic_load_explicit(&c->acquired, memory_order_relaxed);
    entry_empty(c->slot);
    atomic_fetch_sub(&p->nconns, 1);
    p->nclosing++;
    p->destroyed++;
}

/* The socket of a network connection goes into the watcher's set, to be
 * reported once if the server closes it (EPOLLONESHOT: a report is acted
 * on, never repeated). */
static void watch(struct cdm_pool *p, cdm_conn *c)
{
    struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLONESHOT,
                              .data.ptr = c->slot };
    int fd = c->drv->socket ? c->drv->socket(c->dc) : -1;

    c->watched_fd = -1;
    if (fd >= 0 && p->epfd >= 0 && epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        c->watched_fd = fd;
}

/* Closes connections that left their slots (linked through ->next), each
 * dropping its reference to its pool.  No lock held. */
void cdm__pool_close_list(cdm_conn *c)
{
    while (c) {
        cdm_conn *next = c->next;
        struct cdm_pool *p = c->pool;

        /* Out of the set before the descriptor closes: a child process
         * may keep the socket open, and with it the registration.  Only
         * while the driver still has it: a client library that closed it
         * on an error (libpq does) may have seen the number reused by
         * another connection, whose registration must stay. */
        if (c->watched_fd >= 0 && p->epfd >= 0 &&
            c->drv->socket(c->dc) == c->watched_fd)
            epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->watched_fd, NULL);
        cdm__conn_destroy(c);
        /* Only now is its room free. */
        pthread_mutex_lock(&p->lock);
        p->nclosing--;
        cdm__pool_room_freed(p);
        pthread_mutex_unlock(&p->lock);
        cdm__pool_unref(p);
        c = next;
    }
}

/* ---------------------------------------------------------- waiters */

/* Lock held: the new first waiter starts its patience and is woken to
 * count it. */
static void promote(struct cdm_pool *p)
{
    struct waiter *w = p->wq_head;

    if (w && !w->head_since_ns) {
        w->head_since_ns = cdm__now_ns();
        pthread_cond_signal(&w->cond);
    }
}

static struct waiter *wq_pop(struct cdm_pool *p)
{
    struct waiter *w = p->wq_head;

    if (!w)
        return NULL;
    p->wq_head = w->next;
    if (!p->wq_head)
        p->wq_tail = NULL;
    atomic_fetch_sub(&p->nwaiting, 1);
    promote(p);
    return w;
}

static void wq_remove(struct cdm_pool *p, struct waiter *w)
{
    struct waiter **pp = &p->wq_head, *prev = NULL;

    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = w->next;
    if (p->wq_tail == w)
        p->wq_tail = prev;
    atomic_fetch_sub(&p->nwaiting, 1);
    promote(p);
}

void cdm__pool_nudge(struct cdm_pool *p)
{
    if (p->wq_head)
        pthread_cond_signal(&p->wq_head->cond);
}

/* Lock held: the first waiter gets `c` (BUSY, flags cleared) directly. */
static bool handoff(struct cdm_pool *p, cdm_conn *c)
{
    struct waiter *w = wq_pop(p);

    if (!w)
        return false;
    entry_set(c->slot, S_BUSY);
    w->handed = c;
    atomic_store_explicit(&p->handoff, false, memory_order_relaxed);
    pthread_cond_signal(&w->cond);
    return true;
}

void cdm__pool_room_freed(struct cdm_pool *p)
{
    /* The first waiter may open a connection for itself; the room is
     * reserved for it, so nobody barges in. */
    while (p->wq_head && cdm__pool_has_room(p)) {
        struct waiter *w = wq_pop(p);
        w->may_open = true;
        p->nopening++;
        pthread_cond_signal(&w->cond);
    }
    if (atomic_load(&p->detached) && count_busy(p) == 0)
        pthread_cond_broadcast(&p->drained);
}

/* Lock held: idle connections are taken out for closing and busy ones
 * flagged, so that none is published or borrowed again without the lock
 * seeing what changed. */
static cdm_conn *sweep(struct cdm_pool *p)
{
    cdm_conn *dead = NULL;

    for (int i = 0; i < p->nslots; i++) {
        struct cdm_slot *s = cdm__pool_slot(p, i);
        while (entry_flag(s, false) == S_IDLE)
            if (entry_take(s, S_CLAIMED)) {
                cdm_conn *c = s->conn;
                cdm__pool_unplace(p, c);
                c->next = dead;
                dead = c;
                break;
            }
    }
    return dead;
}

/* Lock held: the first waiter has run out of patience. */
static void start_handoff(struct cdm_pool *p)
{
    atomic_store(&p->handoff, true);
    for (int i = 0; i < p->nslots; i++)
        entry_flag(cdm__pool_slot(p, i), false);
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

/* Lock held: closes idle connections above a lowered limit, oldest
 * first; if borrowed ones are still above it, flags them so that they
 * close as they come back, whenever they left. */
static cdm_conn *trim_surplus(struct cdm_pool *p)
{
    cdm_conn *dead = NULL;

    while (p->cfg.max >= 0 && atomic_load(&p->nconns) > p->cfg.max) {
        struct cdm_slot *oldest = NULL;
        for (int i = 0; i < p->nslots; i++) {
            struct cdm_slot *s = cdm__pool_slot(p, i);
            if (entry_state(entry_load(s)) == S_IDLE &&
                (!oldest || atomic_load_explicit(&s->idle_key, memory_order_relaxed) <
                            atomic_load_explicit(&oldest->idle_key, memory_order_relaxed)))
                oldest = s;
        }
        if (!oldest) {
            for (int i = 0; i < p->nslots; i++)
                entry_flag(cdm__pool_slot(p, i), false);
            break;
        }
        if (entry_take(oldest, S_CLAIMED)) {
            cdm_conn *c = oldest->conn;
            cdm__pool_unplace(p, c);
            c->next = dead;
            dead = c;
        }
    }
    return dead;
}

int cdm__pool_check_cfg(const struct cdm_resolved *r)
{
    long long max = cdm__rget_int(r, "POOL_MaximumItems");
    long long min = cdm__rget_int(r, "POOL_MinimumItems");

    if (max == 0)
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: POOL_MaximumItems=0 would never give a "
                         "connection (use a negative value for no limit)",
                         r->where);
    if (max > 0 && min > max)
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: POOL_MinimumItems=%lld is more than "
                         "POOL_MaximumItems=%lld", r->where, min, max);
    return CDM_OK;
}

static cdm_conn *chain(cdm_conn *a, cdm_conn *b)
{
    cdm_conn **tail = &a;

    while (*tail)
        tail = &(*tail)->next;
    *tail = b;
    return a;
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
            dead = sweep(p);
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
    dead = chain(dead, trim_surplus(p));
    if (p->next_cleanup_ms == 0 || p->next_cleanup_ms > now + c.cleanup_ms)
        p->next_cleanup_ms = now + c.cleanup_ms;
    /* A higher limit (or fewer connections) lets waiters open at once. */
    cdm__pool_room_freed(p);
    pthread_mutex_unlock(&p->lock);
    return dead;
}

/* Lock held. */
static void fill_stats(struct cdm_pool *p, cdm_pool_stats *out)
{
    int64_t acquired;

    memset(out, 0, sizeof *out);
    acquired = p->acquired_retired;
    for (int i = 0; i < p->nslots; i++) {
        struct cdm_slot *s = cdm__pool_slot(p, i);
        unsigned st = entry_state(entry_load(s));
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
    note_in_use(p, out->in_use);
    out->peak_in_use = p->peak_in_use;
    out->waits = p->waits;
}

void cdm__pool_stats(struct cdm_pool *p, cdm_pool_stats *out)
{
    pthread_mutex_lock(&p->lock);
    fill_stats(p, out);
    pthread_mutex_unlock(&p->lock);
}

int cdm__pool_attach(struct cdm_pool *p, const char *name, uint64_t *incarnation,
                     cdm_pool_stats *before)
{
    char *copy = cdm__strdup(name);
    uint64_t inc = atomic_fetch_add(&incarnations, 1) + 1;
    cdm_pool_stats old;

    if (!copy)
        return cdm__nomem();
    pthread_mutex_lock(&p->lock);
    /* The figures of the life that ends here, for the registry to keep
     * under the name it served: they and the reset below are one step. */
    fill_stats(p, &old);
    if (before)
        *before = old;
    free(p->name);
    p->name = copy;
    /* This pool's counters start again (the registry carries a name's
     * figures on from one pool to the next).  Connections of the earlier
     * life still out count against its limit until they are closed;
     * their borrows so far are in `old`, so the new life starts from
     * minus those, as read in that same pass (a borrower may be counting
     * one more right now: it lands in the new life, once). */
    p->acquired_retired = -(old.acquired - p->acquired_retired);
    p->created = p->destroyed = p->timeouts = p->wait_ns_total = 0;
    p->peak_in_use = p->waits = 0;
    p->next_cleanup_ms = 0;
    atomic_store(&p->incarnation, inc);
    atomic_store(&p->detached, false);
    *incarnation = inc;
    pthread_mutex_unlock(&p->lock);
    return CDM_OK;
}

cdm_conn *cdm__pool_detach(struct cdm_pool *p)
{
    cdm_conn *dead;
    struct waiter *w;

    pthread_mutex_lock(&p->lock);
    atomic_store(&p->detached, true);
    /* Whatever is borrowed now closes when it comes back, also if the
     * pool is attached again meanwhile. */
    atomic_fetch_add(&p->gen, 1);
    dead = sweep(p);
    /* Waiters look the definition up again: a new pool or an error. */
    while ((w = wq_pop(p))) {
        w->retry = true;
        pthread_cond_signal(&w->cond);
    }
    atomic_store(&p->handoff, false);
    cdm__resolved_free(p->r);
    p->r = NULL;
    cdm__pool_room_freed(p);
    pthread_mutex_unlock(&p->lock);
    return dead;
}

const char *cdm__pool_name(struct cdm_pool *p)
{
    return p->name;
}

bool cdm__pool_attached(struct cdm_pool *p)
{
    return !atomic_load(&p->detached);
}

bool cdm__pool_unused(struct cdm_pool *p)
{
    bool unused;

    pthread_mutex_lock(&p->lock);
    unused = atomic_load(&p->detached) && total(p) == 0 && !p->wq_head &&
             atomic_load(&p->refs) == 1;
    pthread_mutex_unlock(&p->lock);
    return unused;
}

int cdm__pool_wait_drained(struct cdm_pool *p, int64_t deadline_ns)
{
    int rc = CDM_OK;

    pthread_mutex_lock(&p->lock);
    while (count_busy(p) > 0)
        if (cdm__cond_wait_until(&p->drained, &p->lock, deadline_ns) == ETIMEDOUT) {
            if (count_busy(p) > 0)
                rc = CDM_ERR_BUSY;
            break;
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

/* --------------------------------------------------------- borrowing */

/* Marks `c` as the caller's; counted once the caller really has it.
 * A connection taken from another thread (not this thread's own from the
 * fast path) starts a new turn. */
static void lend(cdm_conn *c, int64_t now, bool new_turn)
{
    if (new_turn)
        c->turn_ns = cdm__now_ns();
    atomic_store_explicit(&c->borrowed_ms, now, memory_order_relaxed);
    atomic_store_explicit(&c->leak_logged, false, memory_order_relaxed);
    /* Only the borrower writes it: no read-modify-write needed. */
    atomic_store_explicit(&c->acquired,
                          atomic_load_explicit(&c->acquired, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&c->busy, 0, memory_order_relaxed);
}

/* Checks an idle connection before handing it out; no lock held. */
static bool usable(cdm_conn *c, int ping_ms, int64_t now)
{
    int64_t idle = now - atomic_load_explicit(&c->slot->idle_since_ms,
                                              memory_order_relaxed);

    if (ping_ms >= 0 && idle >= ping_ms)
        return c->drv->alive(c->dc) == CDM_OK && c->drv->ping(c->dc) == CDM_OK;
    /* A watched socket closing is reported by the watcher; the system
     * call is saved for connections idle long enough to be worth it. */
    if (c->watched_fd >= 0 && idle < CHECK_AFTER_MS)
        return true;
    return c->drv->alive(c->dc) == CDM_OK;
}

/* Closes a connection the caller owns (BUSY or CLAIMED); no lock held. */
static void destroy_held(struct cdm_pool *p, cdm_conn *c)
{
    pthread_mutex_lock(&p->lock);
    cdm__pool_unplace(p, c);
    cdm__pool_room_freed(p);
    pthread_mutex_unlock(&p->lock);
    c->next = NULL;
    cdm__pool_close_list(c);
}

int cdm__pool_open(struct cdm_pool *p, cdm_conn **out)
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
    /* Parameters that changed while we connected do not cost the caller
     * its connection: it was asked for before the change, is lent once
     * and closed when returned (its generation is old).  A pool detached
     * meanwhile is another matter: the caller looks the name up again. */
    if (rc == CDM_OK && atomic_load(&p->detached))
        rc = CDM__RETRY;
    if (rc == CDM_OK) {
        int64_t now = cdm__now_ms();
        c->pool = p;
        c->gen = gen;
        c->incarnation = inc;
        c->created_ms = now;
        if ((rc = place(p, c)) == CDM_OK) {
            entry_stamp(c->slot, now, cdm__idle_key(now));
            p->created++;
            sample_in_use(p);      /* the new one is borrowed already */
            *out = c;
            c = NULL;
        }
    }
    if (c) {
        /* Opened but not placed (the pool was detached meanwhile, or
         * no memory for a slot): closed below, and counted, so that
         * `created` is what the server saw and created - destroyed
         * what is open. */
        p->nclosing++;
        p->created++;
        p->destroyed++;
    } else if (rc != CDM_OK) {
        cdm__pool_room_freed(p);   /* the room is free again */
    }
    pthread_mutex_unlock(&p->lock);
    if (c) {
        cdm__conn_destroy(c);      /* never placed: no pool reference */
        pthread_mutex_lock(&p->lock);
        p->nclosing--;
        cdm__pool_room_freed(p);
        pthread_mutex_unlock(&p->lock);
    } else if (rc == CDM_OK) {
        watch(p, *out);            /* a system call: no lock held */
    }
    return rc;
}

/* Lock held: takes the most recently returned idle connection (LIFO
 * keeps the working set warm), or NULL.  The same pass counts the
 * borrowed ones for the peak: with none idle, every connection is. */
static cdm_conn *claim_idle(struct cdm_pool *p)
{
    for (;;) {
        struct cdm_slot *best = NULL;
        int64_t best_key = 0, busy = 0;

        for (int i = 0; i < p->nslots; i++) {
            struct cdm_slot *s = cdm__pool_slot(p, i);
            unsigned st = entry_state(entry_load(s));
            int64_t key;
            if (st != S_IDLE) {
                busy += st == S_BUSY;
                continue;
            }
            key = atomic_load_explicit(&s->idle_key, memory_order_relaxed);
            if (!best || key > best_key) {
                best = s;
                best_key = key;
            }
        }
        if (!best) {
            note_in_use(p, busy);
            return NULL;
        }
        /* A thread on the fast path may take it first: look again. */
        if (entry_take(best, S_BUSY)) {
            note_in_use(p, busy + 1);
            return best->conn;
        }
    }
}

static int full_error(struct cdm_pool *p)
{
    int max = p->cfg.max, ms = p->cfg.acquire_ms;
    char name[256];

    p->timeouts++;
    snprintf(name, sizeof name, "%s", p->name);
    pthread_mutex_unlock(&p->lock);
    return cdm__fail(CDM_ERR_POOL_FULL,
                     "definition '%s': all %d pooled connections are in use "
                     "and none was returned within %d ms (POOL_AcquireTimeout)",
                     name, max, ms);
}

static bool current(struct cdm_pool *p, uint64_t inc)
{
    return !atomic_load(&p->detached) && !atomic_load(&p->forked) &&
           atomic_load(&p->incarnation) == inc;
}

/* Everything but the fast path: claims, opens, waits.  Holds a reference
 * to the pool throughout.  CDM_OK, an error, or CDM__RETRY. */
static int acquire_slow(struct cdm_pool *p, uint64_t inc, cdm_conn **out)
{
    struct waiter w = { 0 };
    bool waiting = false, waited = false;
    int64_t start = 0, deadline = 0;
    int rc;

    cdm__pool_ref(p);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        cdm_conn *c;
        bool first = waiting ? p->wq_head == &w : true;
        /* Newcomers may take an idle connection ahead of the line unless
         * the first waiter asked for handoff. */
        bool may_claim = waiting ? first :
                         !(p->wq_head && atomic_load(&p->handoff));

        if (!current(p, inc)) {
            rc = CDM__RETRY;
            break;
        }
        if (may_claim && (c = claim_idle(p))) {
            int64_t now = cdm__now_ms();
            int ping_ms = p->cfg.ping_ms;
            bool ok;
            if (waiting) {
                wq_remove(p, &w);
                waiting = false;
                p->wait_ns_total += cdm__now_ns() - start;
                pthread_cond_destroy(&w.cond);
            }
            pthread_mutex_unlock(&p->lock);
            ok = c->gen == atomic_load(&p->gen) && usable(c, ping_ms, now);
            if (ok) {
                lend(c, now, true);
                *out = c;
                cdm__pool_unref(p);
                return CDM_OK;
            }
            /* Dead or outdated: replaced without the caller seeing an error. */
            destroy_held(p, c);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        if (!waiting && !p->wq_head && cdm__pool_has_room(p)) {
            p->nopening++;
            pthread_mutex_unlock(&p->lock);
            goto open;
        }
        if (!waiting) {
            if (p->cfg.acquire_ms == 0) {
                rc = full_error(p);
                cdm__pool_unref(p);
                return rc;
            }
            /* Full: wait in line (again, after a connection taken from
             * the head of the line turned out dead: a fresh entry). */
            w.next = NULL;
            w.handed = NULL;
            w.head_since_ns = 0;
            w.may_open = w.retry = false;
            cdm__cond_init(&w.cond);
            if (p->wq_tail)
                p->wq_tail->next = &w;
            else
                p->wq_head = &w;
            p->wq_tail = &w;
            atomic_fetch_add(&p->nwaiting, 1);
            waiting = true;
            /* One wait per borrow, however often it queues again. */
            if (!waited)
                p->waits++;
            waited = true;
            sample_in_use(p);   /* full: the peak sees every borrower */
            start = cdm__now_ns();
            deadline = start + (int64_t)p->cfg.acquire_ms * 1000000;
            promote(p);
            continue;   /* look at the slots once more before sleeping */
        }
        {
            /* The first waiter wakes each PATIENCE: to ask for handoff,
             * and then to look again, in case a slot it could not flag
             * (borrowed from the fast path that very moment) came back. */
            int64_t until = deadline, now;
            if (first) {
                int64_t tick = atomic_load(&p->handoff) ? cdm__now_ns() :
                                                          w.head_since_ns;
                if (tick + PATIENCE_NS < until)
                    until = tick + PATIENCE_NS;
            }
            cdm__cond_wait_until(&w.cond, &p->lock, until);
            if (w.handed || w.may_open || w.retry)
                break;
            now = cdm__now_ns();
            if (now >= deadline) {
                wq_remove(p, &w);
                pthread_cond_destroy(&w.cond);
                rc = full_error(p);
                cdm__pool_unref(p);
                return rc;
            }
            if (p->wq_head == &w && now >= w.head_since_ns + PATIENCE_NS)
                start_handoff(p);
        }
    }
    if (waiting) {
        /* Handed, offered room, or told to look again: dequeued by the
         * thread that told us.  Or the pool changed under us. */
        if (!w.handed && !w.may_open && !w.retry)
            wq_remove(p, &w);
        pthread_cond_destroy(&w.cond);
        if (w.handed || w.may_open)
            p->wait_ns_total += cdm__now_ns() - start;
        if (w.handed) {
            pthread_mutex_unlock(&p->lock);
            lend(w.handed, cdm__now_ms(), true);
            *out = w.handed;
            cdm__pool_unref(p);
            return CDM_OK;
        }
        if (w.may_open) {
            pthread_mutex_unlock(&p->lock);
            goto open;
        }
        rc = CDM__RETRY;
    }
    pthread_mutex_unlock(&p->lock);
    cdm__pool_unref(p);
    return rc;

open:
    if ((rc = cdm__pool_open(p, out)) == CDM_OK)
        lend(*out, cdm__now_ms(), true);
    cdm__pool_unref(p);
    return rc;
}

int cdm__pool_acquire(struct cdm_pool *p, uint64_t inc, cdm_conn **out)
{
    struct cdm_hint *h;

    if (atomic_load_explicit(&p->incarnation, memory_order_relaxed) != inc ||
        atomic_load_explicit(&p->forked, memory_order_relaxed))
        return CDM__RETRY;
    /* The fast path: this thread's last connection, still idle. */
    if (!atomic_load_explicit(&p->handoff, memory_order_relaxed) &&
        (h = hint_find(p, inc)) && entry_borrow(h->slot, h->word)) {
        cdm_conn *c = h->slot->conn;
        int64_t now = cdm__now_ms();

        if (c->gen == atomic_load_explicit(&p->gen, memory_order_acquire) &&
            usable(c, atomic_load_explicit(&p->ping_ms, memory_order_relaxed), now)) {
            lend(c, now, false);
            *out = c;
            return CDM_OK;
        }
        destroy_held(p, c);
    }
    return acquire_slow(p, inc, out);
}

/* -------------------------------------------------------- returning */

/* After fork(), in the child: the connection is the parent's (same
 * socket, same server session).  It is let go without a word to the
 * server, and the pool, inherited with it, is not touched. */
static _Atomic(cdm_conn *) forgotten;

static void forget(cdm_conn *c)
{
    if (c->drv->forget) {
        /* The parent's statements: let go of, with no word to the server. */
        cdm__stmt_cache_clear(c, false);
        c->drv->forget(c->dc);
        free(c->def_name);
        free(c);
        return;
    }
    /* A driver that cannot let go safely (SQLite: closing could disturb
     * the parent's locks and journal) keeps it open, reachable here. */
    c->next = atomic_load(&forgotten);
    while (!atomic_compare_exchange_weak(&forgotten, &c->next, c))
        ;
}

/* Lock taken here: the owner of a flagged slot, or of a connection whose
 * turn is over while threads wait, decides under the lock. */
static void settle(struct cdm_pool *p, cdm_conn *c, uint64_t inc, bool pass_on)
{
    struct cdm_slot *s = c->slot;
    uint64_t w;

    pthread_mutex_lock(&p->lock);
    w = entry_load(s);
    if (atomic_load(&p->detached) || c->gen != atomic_load(&p->gen) ||
        (w & SLOT_DEAD) ||
        (p->cfg.max >= 0 && atomic_load(&p->nconns) > p->cfg.max)) {
        cdm__pool_unplace(p, c);
        cdm__pool_room_freed(p);
        pthread_mutex_unlock(&p->lock);
        c->next = NULL;
        cdm__pool_close_list(c);
        return;
    }
    if ((pass_on || atomic_load(&p->handoff)) && handoff(p, c)) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    entry_set(s, S_IDLE);
    hint_set(p, inc, s, entry_seq(w) | S_IDLE);
    pthread_mutex_unlock(&p->lock);
}

void cdm__pool_release(cdm_conn *c)
{
    struct cdm_pool *p = c->pool;
    struct cdm_slot *s = c->slot;
    uint64_t inc = c->incarnation, word;
    bool keep = !c->broken;
    int lifetime_ms, max;
    int64_t now;

    if (atomic_load_explicit(&p->forked, memory_order_relaxed)) {
        forget(c);
        return;
    }
    /* Driver work first, with no lock held. */
    if (keep && c->drv->in_transaction(c->dc) &&
        c->drv->rollback(c->dc) != CDM_OK)
        keep = false;
    if (keep && atomic_load_explicit(&p->reset, memory_order_relaxed) &&
        c->drv->reset && cdm__conn_reset(c) != CDM_OK)
        keep = false;
    /* A watched socket needs no system call here: the watcher reports it. */
    if (keep && c->watched_fd < 0 && c->drv->alive(c->dc) != CDM_OK)
        keep = false;
    now = cdm__now_ms();
    lifetime_ms = atomic_load_explicit(&p->lifetime_ms, memory_order_relaxed);
    if (keep && lifetime_ms > 0 && now - c->created_ms >= lifetime_ms)
        keep = false;
    /* A lowered POOL_MaximumItems applies at once: surplus connections
     * close as they come back. */
    max = atomic_load_explicit(&p->max, memory_order_relaxed);
    if (keep && max >= 0 && atomic_load_explicit(&p->nconns, memory_order_relaxed) > max)
        keep = false;
    if (keep && c->gen != atomic_load_explicit(&p->gen, memory_order_relaxed))
        keep = false;
    if (!keep) {
        destroy_held(p, c);
        return;
    }
    entry_stamp(s, now, cdm__idle_key(now));
    if (atomic_load_explicit(&p->nwaiting, memory_order_relaxed) > 0 &&
        cdm__now_ns() - c->turn_ns >= QUANTUM_NS) {
        settle(p, c, inc, true);
        return;
    }
    if (entry_publish(s, &word)) {
        /* From here on nothing of c, s or p may be touched. */
        hint_set(p, inc, s, word);
        return;
    }
    settle(p, c, inc, false);
}
