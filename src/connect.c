/*
 * connect.c - cdm_connect: from a definition name to a connection, plain
 * or pooled, with a per-thread cache of (manager, name) -> pool so that a
 * pooled connect touches no lock but, rarely, the pool's.
 */
#include "manager.h"

#include <stdio.h>
#include <string.h>

/* A few entries per thread.  An entry may go stale at any time (the pool
 * detached, reused for another name, or inherited across fork): the pool
 * then answers CDM__RETRY and the slow path looks the name up again.
 * Pools live as long as their manager, and the serial keeps a new
 * manager at an old address from matching. */
#define CACHE_WAYS 4
#define CACHE_NAME 64
struct pool_cache {
    uint64_t serial;
    struct cdm_pool *pool;
    uint64_t incarnation;
    char name[CACHE_NAME];
};
static _Thread_local struct pool_cache cache[CACHE_WAYS];
static _Thread_local unsigned cache_next;

static void cache_put(cdm_manager *m, const char *name, struct cdm_pool *p,
                      uint64_t incarnation)
{
    struct pool_cache *e;
    size_t n = strlen(name);

    if (n >= CACHE_NAME)
        return;
    for (unsigned i = 0; i < CACHE_WAYS; i++)
        if (cache[i].serial == m->serial && strcmp(cache[i].name, name) == 0) {
            cache[i].pool = p;
            cache[i].incarnation = incarnation;
            return;
        }
    e = &cache[cache_next++ % CACHE_WAYS];
    e->serial = m->serial;
    e->pool = p;
    e->incarnation = incarnation;
    memcpy(e->name, name, n + 1);
}

/* strcmp for the few short names a thread uses: inline, where a call to
 * the library's vectorised one costs more than the compare. */
static inline bool same_name(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* With m->lock held: the defined name closest to `name` (edit distance
 * without regard to case, at most a third of its length, at least 1), or
 * NULL.  Of equally close ones, the first in the manager's order.  It
 * looks at every definition, so only a failure calls it; the lengths
 * alone rule most names out without computing a distance. */
static const char *closest_name(const cdm_manager *m, const char *name)
{
    size_t len = strlen(name), most = len / 3 > 1 ? len / 3 : 1;
    size_t best_d = most + 1;
    const char *best = NULL;

    if (len > 64)   /* beyond what cdm__distance measures */
        return NULL;
    for (size_t i = 0; i < m->ndefs && best_d > 1; i++) {
        const char *cand = m->defs[i]->name;
        size_t lc = strlen(cand), d;
        if ((lc > len ? lc - len : len - lc) >= best_d)
            continue;
        /* 0 cannot be: the lookup ignores case too.  So 1 ends it. */
        if ((d = cdm__distance(name, cand, best_d - 1)) < best_d) {
            best_d = d;
            best = cand;
        }
    }
    return best;
}

int cdm__manager_not_found(const cdm_manager *m, const char *name)
{
    const char *near = closest_name(m, name);

    if (near)
        return cdm__fail(CDM_ERR_NOT_FOUND, "no definition named '%.64s' "
                         "(did you mean %s?)", name, near);
    return cdm__fail(CDM_ERR_NOT_FOUND, "no definition named '%.64s'", name);
}

int cdm__manager_resolve(cdm_manager *m, const char *name,
                         struct cdm_resolved **out)
{
    int rc = cdm__resolve_chain(name, cdm__manager_lookup, m, out);

    /* The name itself, not a parent it names, is missing. */
    if (rc == CDM_ERR_NOT_FOUND && !cdm__manager_find(m, name, NULL) &&
        closest_name(m, name))
        cdm__manager_not_found(m, name);
    return rc;
}

static int closed_error(const char *name)
{
    return cdm__fail(CDM_ERR_CLOSED, "cannot connect to '%.64s': the "
                     "manager is closed", name);
}

static int connect_slow(cdm_manager *m, const char *name, cdm_conn **out)
{
    for (;;) {
        struct cdm_resolved *r = NULL;
        struct cdm_registry *reg;
        struct cdm_pool *p;
        cdm_conn *dead = NULL;
        uint64_t inc;
        int rc;

        /* Resolving and attaching under one hold of the lock: a change
         * made meanwhile cannot leave a pool with stale parameters, and a
         * stream of changes cannot keep a connect retrying. */
        pthread_mutex_lock(&m->lock);
        if (m->closed) {
            pthread_mutex_unlock(&m->lock);
            return closed_error(name);
        }
        reg = cdm__manager_registry(m);
        if (cdm__registry_find(reg, name, &p, &inc)) {
            pthread_mutex_unlock(&m->lock);
            goto borrow;
        }
        rc = cdm__manager_resolve(m, name, &r);
        /* A broken file, not a wrong name: the load's own status. */
        if (rc == CDM_ERR_NOT_FOUND && m->autoload_error &&
            !cdm__manager_find(m, name, NULL))
            rc = cdm__fail(m->autoload_status, "%s (so definition '%.64s' "
                           "is not defined)", m->autoload_error, name);
        if (rc == CDM_OK)
            rc = cdm__resolve_finish(r);
        if (rc == CDM_OK && !cdm__rget_bool(r, "Pooled")) {
            pthread_mutex_unlock(&m->lock);
            rc = cdm__conn_open(r, out);
            cdm__resolved_free(r);
            return rc;
        }
        if (rc == CDM_OK)
            rc = cdm__pool_check_cfg(r);
        if (rc != CDM_OK) {
            pthread_mutex_unlock(&m->lock);
            cdm__resolved_free(r);
            return rc;
        }
        rc = cdm__registry_attach(reg, name, r, &p, &inc, &dead);
        pthread_mutex_unlock(&m->lock);
        cdm__pool_close_list(dead);
        if (rc != CDM_OK)
            return rc;
        cdm__registry_start(reg);
borrow:
        rc = cdm__pool_acquire(p, inc, out);
        if (rc == CDM__RETRY)
            continue;
        if (rc == CDM_OK)
            cache_put(m, name, p, inc);
        return rc;
    }
}

int cdm_connect(cdm_manager *m, const char *name, cdm_conn **out)
{
    if (!m || !name || !out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_connect: %s is NULL",
                         !m ? "manager" : !name ? "name" : "out");
    for (unsigned i = 0; i < CACHE_WAYS; i++) {
        struct pool_cache *e = &cache[i];
        if (e->serial == m->serial && e->pool && same_name(e->name, name)) {
            int rc = cdm__pool_acquire(e->pool, e->incarnation, out);
            if (rc != CDM__RETRY)
                return rc;
            e->pool = NULL;
            break;
        }
    }
    return connect_slow(m, name, out);
}

int cdm_manager_test_def(cdm_manager *m, const char *name, const char **driver,
                         int64_t *ms)
{
    struct cdm_resolved *r = NULL;
    cdm_result *res = NULL;
    cdm_conn *c = NULL;
    int64_t t0 = cdm__now_ns();
    int rc;

    if (!m || !name)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_test_def: %s is NULL",
                         m ? "name" : "manager");
    pthread_mutex_lock(&m->lock);
    rc = m->closed ? closed_error(name)
                   : cdm__manager_resolve(m, name, &r);
    pthread_mutex_unlock(&m->lock);
    if (rc == CDM_OK && (rc = cdm__resolve_finish(r)) == CDM_OK) {
        /* Plain, whatever Pooled says: a test opens no pool, and it
         * creates nothing (a missing SQLite file is a failure). */
        r->no_create = true;
        rc = cdm__conn_open(r, &c);
    }
    cdm__resolved_free(r);
    if (rc == CDM_OK)
        rc = cdm_query(c, "SELECT 1", NULL, 0, &res);
    cdm_result_free(res);
    if (rc == CDM_OK) {
        if (driver)
            *driver = cdm_conn_driver(c);
        if (ms)
            *ms = (cdm__now_ns() - t0) / 1000000;
    }
    cdm_disconnect(c);
    return rc;
}
