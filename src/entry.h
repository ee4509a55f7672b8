/*
 * entry.h - the slot a pooled connection lives in, its state machine, and
 * each thread's hint of the slot it last returned.  The whole protocol is
 * here; pool.c, cleanup.c and the socket watcher follow it.
 *
 * A slot's state word is  sequence << 8 | flags | state.
 *
 *   state    EMPTY    no connection
 *            IDLE     a connection nobody owns; anyone may claim it
 *            BUSY     owned by the thread that borrowed or opened it
 *            CLAIMED  owned by a thread holding the pool's lock (cleanup,
 *                     detach, trim, the watcher) that is deciding its fate
 *   SETTLE   set on a BUSY slot by a lock holder: "do not publish it back
 *            lock-free; settle it under the lock" (a waiter wants direct
 *            handoff, the parameters changed, the pool was detached, or
 *            the connection's socket was seen to close)
 *   DEAD     with SETTLE: the watcher saw the socket close
 *   sequence bumped each time the slot is emptied, so a word names one
 *            occupancy: a stale hint or a slow releaser compares the
 *            exact word and loses cleanly if the slot changed hands
 *
 * Transitions, and who owns the connection after each:
 *
 *   EMPTY   -> BUSY     lock held (fill): the opener owns it
 *   IDLE    -> BUSY     CAS by a borrower, lock-free (hint) or locked
 *                       (claim): the borrower owns it
 *   IDLE    -> CLAIMED  CAS by a lock holder: it owns it
 *   BUSY    -> IDLE     CAS by the owner from its exact word without
 *                       SETTLE (publish): nobody owns it.  If the CAS
 *                       fails, SETTLE was set: the owner still owns the
 *                       connection and settles under the lock.
 *   BUSY    -> BUSY|SETTLE  CAS by a lock holder (flag): ownership stays
 *   BUSY|SETTLE -> IDLE or BUSY  the owner, lock held (settle): IDLE gives
 *                       it up; BUSY keeps it to hand it to a waiter, who
 *                       then owns it
 *   CLAIMED -> IDLE     the lock holder gives it back (cleanup keeps it)
 *   BUSY, CLAIMED -> EMPTY  the owner, lock held (empty): the connection
 *                       leaves the pool and the owner closes it unlocked
 *
 * What a loser may touch: a borrower whose CAS failed touches neither the
 * slot's connection nor its bookkeeping.  An owner that published IDLE
 * touches nothing of the connection, the slot or the pool afterwards: the
 * pool may be freed the moment its last connection is gone.  So every
 * decision a releaser takes (generation, limits, waiters) is taken while it
 * still owns the connection, and whatever changes after that is the other
 * side's job: it makes its change, then takes IDLE slots itself and flags
 * BUSY ones, under the lock.  Either the publish came first (the other side
 * sees IDLE) or the flag did (the publish fails); the word is one atomic,
 * so there is no third case.
 *
 * Idle bookkeeping (idle_since_ms, idle_key) lives in the slot as relaxed
 * atomics written by the owner before it publishes and read by lock
 * holders after they see IDLE, so a stale read costs at most a choice of
 * which idle connection to take, never a data race.
 *
 * Memory: a slot's chunk lives as long as its pool; a pool lives while its
 * registry holds it (the manager's lifetime), plus as long as any
 * connection it placed exists, plus while a thread is inside its slow
 * paths (see pool.c).  A thread's hint is only followed while the manager
 * that gave out the pool is alive.
 */
#ifndef CDM_ENTRY_H
#define CDM_ENTRY_H

#include "cdm_int.h"

enum { S_EMPTY = 0, S_IDLE = 1, S_BUSY = 2, S_CLAIMED = 3 };

#define SLOT_STATE  3u
#define SLOT_SETTLE 4u
#define SLOT_DEAD   8u
#define SLOT_SEQ    ((uint64_t)1 << 8)

#define CACHE_LINE 64

/* One cache line each: two threads borrowing and returning their own
 * connections never write to the same line. */
struct cdm_slot {
    _Alignas(CACHE_LINE) _Atomic uint64_t word;
    cdm_conn *conn;             /* set by fill and empty, lock held */
    struct cdm_pool *pool;      /* fixed when the chunk is made */
    _Atomic int64_t idle_since_ms;
    _Atomic int64_t idle_key;   /* LIFO order of returns */
};

static inline unsigned entry_state(uint64_t w)
{
    return (unsigned)(w & SLOT_STATE);
}

static inline uint64_t entry_seq(uint64_t w)
{
    return w & ~(SLOT_SEQ - 1);
}

static inline uint64_t entry_load(struct cdm_slot *s)
{
    return atomic_load_explicit(&s->word, memory_order_acquire);
}

/* IDLE -> BUSY from the exact word `w` (a hint's).  True: the caller owns
 * s->conn. */
static inline bool entry_borrow(struct cdm_slot *s, uint64_t w)
{
    uint64_t idle = entry_seq(w) | S_IDLE;

    return atomic_compare_exchange_strong_explicit(
        &s->word, &idle, entry_seq(w) | S_BUSY,
        memory_order_acquire, memory_order_relaxed);
}

/* IDLE -> `to` (BUSY or CLAIMED) whatever the sequence; lock held.  True:
 * the caller owns s->conn. */
static inline bool entry_take(struct cdm_slot *s, unsigned to)
{
    uint64_t w = entry_load(s);

    while (entry_state(w) == S_IDLE && !(w & SLOT_SETTLE))
        if (atomic_compare_exchange_weak_explicit(
                &s->word, &w, entry_seq(w) | to,
                memory_order_acquire, memory_order_acquire))
            return true;
    return false;
}

/* The owner gives its BUSY slot up: BUSY -> IDLE, unless flagged.  On
 * success the caller must not touch the slot, its connection or its pool
 * again; `*word` gets the published word (for the hint).  False: flagged,
 * the caller still owns the connection and settles under the lock. */
static inline bool entry_publish(struct cdm_slot *s, uint64_t *word)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    uint64_t idle = entry_seq(w) | S_IDLE;

    if (w & SLOT_SETTLE)
        return false;
    if (!atomic_compare_exchange_strong_explicit(&s->word, &w, idle,
                                                 memory_order_release,
                                                 memory_order_relaxed))
        return false;
    *word = idle;
    return true;
}

/* Lock held, by a non-owner: asks the owner of a BUSY slot to settle under
 * the lock (with `dead`: its socket closed).  Returns the state seen: for
 * IDLE, the caller may take it instead. */
static inline unsigned entry_flag(struct cdm_slot *s, bool dead)
{
    uint64_t w = entry_load(s);
    uint64_t add = SLOT_SETTLE | (dead ? SLOT_DEAD : 0);

    for (;;) {
        if (entry_state(w) != S_BUSY || (w & add) == add)
            return entry_state(w);
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w | add,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire))
            return S_BUSY;
    }
}

/* Lock held, by the owner: sets the state, clearing the flags.  Only
 * lock holders change a flagged or CLAIMED word, and only the owner a
 * BUSY or CLAIMED one, so a plain store is enough. */
static inline void entry_set(struct cdm_slot *s, unsigned state)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);

    atomic_store_explicit(&s->word, entry_seq(w) | state, memory_order_release);
}

/* Lock held, by the owner: the slot is emptied and names a new occupancy
 * from now on. */
static inline void entry_empty(struct cdm_slot *s)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);

    s->conn = NULL;
    atomic_store_explicit(&s->word, entry_seq(w) + SLOT_SEQ,
                          memory_order_release);
}

/* Lock held, on an EMPTY slot: `c` moves in, owned by the caller. */
static inline void entry_fill(struct cdm_slot *s, cdm_conn *c)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);

    s->conn = c;
    c->slot = s;
    atomic_store_explicit(&s->word, entry_seq(w) | S_BUSY, memory_order_release);
}

/* The owner's idle bookkeeping, written before it publishes. */
static inline void entry_stamp(struct cdm_slot *s, int64_t now_ms, int64_t key)
{
    atomic_store_explicit(&s->idle_since_ms, now_ms, memory_order_relaxed);
    atomic_store_explicit(&s->idle_key, key, memory_order_relaxed);
}

/* ----------------------------------------------------------- hints */

/* The slot (and its exact IDLE word) each thread last returned to a pool:
 * borrowing it again is one CAS on a line no other thread writes. */
#define HINTS 4
struct cdm_hint {
    struct cdm_pool *pool;
    uint64_t incarnation;       /* a new pool at a freed one's address
                                 * never matches */
    struct cdm_slot *slot;
    uint64_t word;
};
/* This thread's hot state, read on every borrow and return.  It lives in
 * the static TLS block (initial-exec: one %fs-relative access, where the
 * dynamic model costs a call each time, a fifth of a borrow and return),
 * and is kept small (136 bytes) so that a program can still dlopen libcdm
 * (glibc sets 512 bytes of static TLS aside for libraries loaded late). */
struct cdm_thread_hot {
    struct cdm_hint hints[HINTS];
    unsigned hint_next;
    uint32_t return_seq;        /* orders this thread's returns within one
                                 * tick of the coarse clock */
};
extern _Thread_local struct cdm_thread_hot cdm__hot;

static inline struct cdm_hint *hint_find(struct cdm_pool *p, uint64_t inc)
{
    struct cdm_hint *hints = cdm__hot.hints;

    for (unsigned i = 0; i < HINTS; i++)
        if (hints[i].pool == p && hints[i].incarnation == inc)
            return &hints[i];
    return NULL;
}

static inline void hint_set(struct cdm_pool *p, uint64_t inc,
                            struct cdm_slot *s, uint64_t word)
{
    struct cdm_thread_hot *t = &cdm__hot;
    struct cdm_hint *h = NULL;

    for (unsigned i = 0; i < HINTS && !h; i++)
        if (t->hints[i].pool == p)
            h = &t->hints[i];
    if (!h)
        h = &t->hints[t->hint_next++ % HINTS];
    h->pool = p;
    h->incarnation = inc;
    h->slot = s;
    h->word = word;
}

/* The LIFO key of a return: coarse ms, then this thread's sequence. */
static inline int64_t cdm__idle_key(int64_t now_ms)
{
    return now_ms << 20 | (int64_t)(cdm__hot.return_seq++ & 0xfffff);
}

#endif /* CDM_ENTRY_H */
