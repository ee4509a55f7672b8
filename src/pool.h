/*
 * pool.h - the pool's insides, shared by pool.c (configure, borrow, wait,
 * open, return, stats) and cleanup.c (the periodic pass and the socket
 * watcher's verdicts).  Never installed.
 *
 * Lifetime: a pool holds a reference count.  Its registry holds one from
 * creation until the manager is freed; every connection placed in a slot
 * holds one until it is closed (cdm__pool_close_list); a thread inside a
 * slow path (waiting, opening) holds one.  The last to drop it frees the
 * pool (the kref rule), so a connection returned after cdm_manager_free
 * still finds its pool, and nothing is freed under a thread using it.
 *
 * Locks: p->lock guards memory only; no driver call and no I/O happen
 * under it.  Order: manager lock, then registry lock, then p->lock; never
 * two pool locks at once.
 */
#ifndef CDM_POOL_H
#define CDM_POOL_H

#include "entry.h"

/* A waiter for a full pool, on the waiting thread's stack. */
struct waiter {
    pthread_cond_t cond;
    struct waiter *next;
    cdm_conn *handed;       /* given directly by a release */
    int64_t head_since_ns;  /* when it reached the head of the line */
    bool may_open;          /* room freed up: open one for yourself */
    bool retry;             /* detached: look the definition up again */
};

struct pool_cfg {
    int max;                /* < 0: no limit */
    int min;
    int expire_ms, cleanup_ms, acquire_ms, lifetime_ms, ping_ms, leak_ms;
    bool reset;
};

struct cdm_pool {
    /* Read on every borrow and return, written rarely (under lock). */
    _Alignas(CACHE_LINE) _Atomic uint64_t incarnation; /* new at every attach */
    _Atomic uint64_t gen;       /* parameter generation */
    atomic_bool detached;
    atomic_bool forked;         /* inherited by a child process: serves nothing */
    atomic_bool handoff;        /* a waiter ran out of patience: no barging */
    atomic_int nconns;          /* slots not EMPTY, old generations too */
    atomic_int max, ping_ms, lifetime_ms;
    atomic_bool reset;
    int epfd;                   /* the watcher's epoll set, or -1; fixed
                                 * at creation (-1 in a forked child) */

    /* Written on slow paths only. */
    _Alignas(CACHE_LINE) atomic_int refs;
    atomic_int nwaiting;

    pthread_mutex_t lock;
    pthread_cond_t drained;     /* broadcast when a detached pool empties */
    /* Guarded by lock. */
    char *name;                 /* the definition it serves (or served) */
    struct cdm_resolved *r;     /* parameters for new connections */
    struct pool_cfg cfg;
    struct cdm_slot **chunks;   /* the table may move, chunks never do */
    int nchunks, nslots;
    int nopening;               /* connections being opened (reserved room) */
    int nclosing;               /* out of their slots, not yet closed: they
                                 * still count against the limit */
    struct waiter *wq_head, *wq_tail;
    int64_t next_cleanup_ms;
    int64_t acquired_retired, created, destroyed, timeouts, wait_ns_total;
    int64_t peak_in_use;        /* sampled under this lock only */
    int64_t waits;              /* borrows that queued */
};

struct cdm_slot *cdm__pool_slot(struct cdm_pool *p, int i);

/* Lock held: takes the owned (BUSY or CLAIMED) connection out of its slot;
 * the caller closes it with cdm__pool_close_list after unlocking. */
void cdm__pool_unplace(struct cdm_pool *p, cdm_conn *c);
/* Lock held, after connections left: lets a waiter use the room, and tells
 * a closing manager when a detached pool has drained. */
void cdm__pool_room_freed(struct cdm_pool *p);
/* Lock held: wakes the first waiter, to look at the slots again. */
void cdm__pool_nudge(struct cdm_pool *p);
/* Opens a connection into a reserved room (nopening already counted).
 * No lock held.  CDM_OK, an error, or CDM__RETRY. */
int cdm__pool_open(struct cdm_pool *p, cdm_conn **out);
bool cdm__pool_has_room(struct cdm_pool *p);

#endif /* CDM_POOL_H */
