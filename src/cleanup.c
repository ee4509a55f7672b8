/*
 * cleanup.c - what the cleanup thread does to a pool: the periodic pass
 * (expiry, lifetime, surplus, POOL_MinimumItems, leak warnings) and the
 * socket watcher's verdict on a connection whose server hung up.  Network
 * I/O and closing happen with no lock held; messages go to a log sink.
 */
#include "pool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void cdm__sink_log(const struct cdm_log_sink *sink, int level,
                   const char *fmt, ...)
{
    char raw[1024], text[1024];
    va_list ap;

    if (!sink || !sink->fn)
        return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    cdm__oneline(text, sizeof text, raw);
    sink->fn(sink->ctx, level, text);
}

static int newest_first(const void *a, const void *b)
{
    int64_t ka = atomic_load_explicit(&(*(cdm_conn *const *)a)->slot->idle_key,
                                      memory_order_relaxed);
    int64_t kb = atomic_load_explicit(&(*(cdm_conn *const *)b)->slot->idle_key,
                                      memory_order_relaxed);

    return ka < kb ? 1 : ka > kb ? -1 : 0;
}

int64_t cdm__pool_cleanup(struct cdm_pool *p, int64_t now, bool force,
                          const struct cdm_log_sink *log)
{
    cdm_conn *dead = NULL, **idle = NULL;
    int64_t *leaks = NULL, next;
    char name[256];
    int nleaks = 0, nidle = 0, want_open = 0, kept = 0, leak_limit, room;

    pthread_mutex_lock(&p->lock);
    if (atomic_load(&p->detached) || (!force && now < p->next_cleanup_ms)) {
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
    /* Claim the idle connections, newest first; keep the newest
     * POOL_MinimumItems whatever their age, and none above the limit. */
    for (int i = 0; i < p->nslots; i++) {
        struct cdm_slot *s = cdm__pool_slot(p, i);
        if (entry_take(s, S_CLAIMED))
            idle[nidle++] = s->conn;
    }
    if (nidle > 1)
        qsort(idle, (size_t)nidle, sizeof *idle, newest_first);
    room = p->cfg.max < 0 ? INT32_MAX :
           p->cfg.max - (atomic_load(&p->nconns) - nidle);
    for (int i = 0; i < nidle; i++) {
        cdm_conn *c = idle[i];
        int64_t since = atomic_load_explicit(&c->slot->idle_since_ms,
                                             memory_order_relaxed);
        bool expired = now - since >= p->cfg.expire_ms;
        bool too_old = p->cfg.lifetime_ms > 0 &&
                       now - c->created_ms >= p->cfg.lifetime_ms;
        if (too_old || kept >= room || (expired && kept >= p->cfg.min)) {
            cdm__pool_unplace(p, c);
            c->next = dead;
            dead = c;
            continue;
        }
        kept++;
        entry_set(c->slot, S_IDLE);
    }
    /* A waiter may have looked while we held them. */
    if (kept)
        cdm__pool_nudge(p);
    if (p->cfg.leak_ms > 0)
        for (int i = 0; i < p->nslots; i++) {
            struct cdm_slot *s = cdm__pool_slot(p, i);
            int64_t out;
            if (entry_state(entry_load(s)) != S_BUSY)
                continue;
            out = now - atomic_load_explicit(&s->conn->borrowed_ms, memory_order_relaxed);
            if (out < p->cfg.leak_ms ||
                atomic_exchange_explicit(&s->conn->leak_logged, true,
                                         memory_order_relaxed))
                continue;
            leaks[nleaks++] = out;
        }
    while (kept + want_open < p->cfg.min && cdm__pool_has_room(p)) {
        p->nopening++;
        want_open++;
    }
    if (dead)
        cdm__pool_room_freed(p);
    p->next_cleanup_ms = now + p->cfg.cleanup_ms;
    next = p->next_cleanup_ms;
    /* The pool stays while we open connections for it below. */
    if (want_open)
        cdm__pool_ref(p);
    pthread_mutex_unlock(&p->lock);

    cdm__pool_close_list(dead);
    for (int i = 0; i < nleaks; i++)
        cdm__sink_log(log, CDM_LOG_WARN,
                      "definition '%s': a connection has been borrowed for "
                      "%lld ms and not returned (POOL_LeakTimeout=%d)", name,
                      (long long)leaks[i], leak_limit);
    free(idle);
    free(leaks);
    /* POOL_MinimumItems: opened here, outside every lock, and parked. */
    if (want_open) {
        while (want_open > 0) {
            cdm_conn *c;
            int rc;
            want_open--;
            if ((rc = cdm__pool_open(p, &c)) == CDM_OK) {
                cdm__pool_release(c);
                continue;
            }
            if (rc != CDM__RETRY)
                cdm__sink_log(log, CDM_LOG_WARN, "%s", cdm_errmsg());
            pthread_mutex_lock(&p->lock);
            p->nopening -= want_open;
            want_open = 0;
            cdm__pool_room_freed(p);
            pthread_mutex_unlock(&p->lock);
        }
        cdm__pool_unref(p);
    }
    return next;
}

void cdm__pool_socket_closed(struct cdm_slot *s)
{
    struct cdm_pool *p = s->pool;
    cdm_conn *dead = NULL;

    pthread_mutex_lock(&p->lock);
    /* The report may be about an earlier occupant of the slot; closing a
     * healthy connection then costs a reconnect, nothing more. */
    while (entry_flag(s, true) == S_IDLE)
        if (entry_take(s, S_CLAIMED)) {
            dead = s->conn;
            dead->next = NULL;
            cdm__pool_unplace(p, dead);
            cdm__pool_room_freed(p);
            break;
        }
    pthread_mutex_unlock(&p->lock);
    cdm__pool_close_list(dead);
}
