/*
 * manager.c - the connection-definition manager: the definitions it holds,
 * loading and reloading files, private definitions, the process-wide
 * default manager, and connecting by name.
 */
#include "cdm_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct cdm_manager {
    uint64_t serial;             /* unique per manager, for thread caches;
                                  * set at creation, then read-only */
    pthread_mutex_t lock;        /* guards every field down to log_lock */
    struct cdm_def **defs;       /* file definitions in load order, then
                                  * private ones in the order added */
    size_t ndefs, cap;
    struct cdm_source **files;   /* loaded files in load order (a ref each) */
    size_t nfiles;
    bool closed;
    char *autoload_error;        /* why $CDM_CONNECTION_DEFS did not load */
    uint64_t changes;            /* bumped by every definition change */
    struct cdm_pool **pools;     /* every pool built, attached or detached;
                                  * freed only with the manager */
    size_t npools;
    pthread_t cleaner;           /* the cleanup thread, once a pool exists */
    bool cleaner_running;
    bool stop;                   /* asks the cleanup thread to end */
    bool kick;                   /* a pool changed: recompute due times */
    pthread_cond_t wake;         /* wakes the cleanup thread (monotonic) */

    pthread_mutex_t log_lock;    /* guards log and log_user */
    cdm_log_fn log;
    void *log_user;
};

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(cdm_manager *) default_manager;
static atomic_uint_fast64_t manager_serials;

/* A few (manager, name) -> pool entries per thread, so that a pooled
 * connect touches no lock but the pool's.  An entry may go stale at any
 * time: the pool then answers CDM__RETRY and the slow path takes over.
 * Pools are never freed while their manager lives, and the serial keeps
 * a new manager at an old address from matching. */
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

static int64_t precise_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------- logging */

void cdm__log(cdm_manager *m, int level, const char *fmt, ...)
{
    cdm_log_fn fn;
    void *user;
    char text[1024];
    va_list ap;

    pthread_mutex_lock(&m->log_lock);
    fn = m->log;
    user = m->log_user;
    pthread_mutex_unlock(&m->log_lock);
    if (!fn)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fn(level, text, user);
}

void cdm_manager_set_log(cdm_manager *m, cdm_log_fn fn, void *user)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->log_lock);
    m->log = fn;
    m->log_user = user;
    pthread_mutex_unlock(&m->log_lock);
}

/* A list of messages gathered while nothing may be logged yet. */
struct notes {
    char **v;
    size_t n;
};

static void note(void *ctx, const char *message)
{
    struct notes *ns = ctx;
    char **v = realloc(ns->v, (ns->n + 1) * sizeof *v);

    /* Out of memory only loses a warning. */
    if (v) {
        ns->v = v;
        if ((v[ns->n] = cdm__strdup(message)))
            ns->n++;
    }
}

static void notes_flush(cdm_manager *m, struct notes *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        if (m)
            cdm__log(m, CDM_LOG_WARN, "%s", ns->v[i]);
        free(ns->v[i]);
    }
    free(ns->v);
    ns->v = NULL;
    ns->n = 0;
}

/* ------------------------------------------------------- the def list */

static struct cdm_def *find_def(const cdm_manager *m, const char *name,
                                size_t *index)
{
    for (size_t i = 0; i < m->ndefs; i++)
        if (cdm__streq_nocase(m->defs[i]->name, name)) {
            if (index)
                *index = i;
            return m->defs[i];
        }
    return NULL;
}

static struct cdm_def *lookup(void *ctx, const char *name)
{
    return find_def(ctx, name, NULL);
}

static int reserve(cdm_manager *m, size_t extra)
{
    struct cdm_def **p;
    size_t cap = m->cap ? m->cap : 16;

    if (m->ndefs + extra <= m->cap)
        return CDM_OK;
    while (cap < m->ndefs + extra)
        cap *= 2;
    if (!(p = realloc(m->defs, cap * sizeof *p)))
        return cdm__nomem();
    m->defs = p;
    m->cap = cap;
    return CDM_OK;
}

static void where_defined(const struct cdm_def *d, char *buf, size_t size)
{
    if (d->src)
        snprintf(buf, size, "%s:%d", d->src->path, d->line);
    else
        snprintf(buf, size, "a private definition");
}

/* ---------------------------------------------------------- lifecycle */

int cdm_manager_new(cdm_manager **out)
{
    cdm_manager *m;

    if (!out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_new: out is NULL");
    pthread_condattr_t attr;

    if (!(m = calloc(1, sizeof *m)))
        return cdm__nomem();
    m->serial = atomic_fetch_add(&manager_serials, 1) + 1;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->log_lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &attr);
    pthread_condattr_destroy(&attr);
    *out = m;
    return CDM_OK;
}

cdm_manager *cdm_manager_default(void)
{
    cdm_manager *m = atomic_load_explicit(&default_manager, memory_order_acquire);
    const char *path;

    if (m)
        return m;
    pthread_mutex_lock(&default_lock);
    if (!(m = atomic_load_explicit(&default_manager, memory_order_relaxed)) &&
        cdm_manager_new(&m) == CDM_OK) {
        char saved[CDM_MSG_MAX];
        /* Not this call's failure: kept for the connect that needs it. */
        cdm__errmsg_save(saved);
        path = getenv("CDM_CONNECTION_DEFS");
        if (path && *path && cdm_manager_load_file(m, path) != CDM_OK)
            m->autoload_error = cdm__asprintf("$CDM_CONNECTION_DEFS: %s",
                                              cdm_errmsg());
        cdm__errmsg_restore(saved);
        atomic_store_explicit(&default_manager, m, memory_order_release);
    }
    pthread_mutex_unlock(&default_lock);
    return m;
}

static void append_dead(cdm_conn **list, cdm_conn *more)
{
    while (more) {
        cdm_conn *next = more->next;
        more->next = *list;
        *list = more;
        more = next;
    }
}

static void destroy_dead(cdm_conn *c)
{
    while (c) {
        cdm_conn *next = c->next;
        cdm__conn_destroy(c);
        c = next;
    }
}

/* With m->lock held: the definition's pool stops serving it. */
static void drop_pool(struct cdm_def *d, cdm_conn **dead)
{
    if (d->pool) {
        append_dead(dead, cdm__pool_detach(d->pool));
        d->pool = NULL;
    }
}

int cdm_manager_close(cdm_manager *m, int timeout_ms)
{
    struct cdm_pool **pools = NULL;
    cdm_conn *dead = NULL;
    size_t npools;
    bool running;
    int64_t deadline;
    int busy = 0;

    if (!m)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_close: manager is NULL");
    /* Pools first, so that no connect gets through from here on, even one
     * on a thread's fast path; then the cleanup thread. */
    pthread_mutex_lock(&m->lock);
    m->closed = true;
    m->stop = true;
    for (size_t i = 0; i < m->ndefs; i++)
        drop_pool(m->defs[i], &dead);
    running = m->cleaner_running;
    m->cleaner_running = false;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    /* Woken by the condition variable, it ends at once (unless it is in
     * the middle of opening a connection for POOL_MinimumItems). */
    if (running)
        pthread_join(m->cleaner, NULL);

    pthread_mutex_lock(&m->lock);
    npools = m->npools;
    if (npools && (pools = malloc(npools * sizeof *pools)))
        memcpy(pools, m->pools, npools * sizeof *pools);
    pthread_mutex_unlock(&m->lock);
    destroy_dead(dead);
    if (npools && !pools)
        return cdm__nomem();

    deadline = (int64_t)precise_ms() * 1000000 + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    for (size_t i = 0; i < npools; i++)
        if (cdm__pool_wait_drained(pools[i], deadline) != CDM_OK)
            busy += cdm__pool_busy(pools[i]);
    free(pools);
    if (busy)
        return cdm__fail(CDM_ERR_BUSY,
                         "%d pooled connection%s still borrowed after %d ms; "
                         "%s closed when returned", busy, busy == 1 ? " is" : "s are",
                         timeout_ms, busy == 1 ? "it is" : "they are");
    return CDM_OK;
}

void cdm_manager_free(cdm_manager *m)
{
    char saved[CDM_MSG_MAX];

    if (!m)
        return;
    pthread_mutex_lock(&default_lock);
    if (atomic_load_explicit(&default_manager, memory_order_relaxed) == m)
        atomic_store_explicit(&default_manager, NULL, memory_order_release);
    pthread_mutex_unlock(&default_lock);
    cdm__errmsg_save(saved);
    cdm_manager_close(m, 0);
    cdm__errmsg_restore(saved);
    /* Pools with connections still borrowed free themselves when the last
     * one comes back. */
    for (size_t i = 0; i < m->npools; i++)
        if (cdm__pool_orphan(m->pools[i]))
            cdm__pool_free(m->pools[i]);
    for (size_t i = 0; i < m->ndefs; i++)
        cdm__def_free(m->defs[i]);
    for (size_t i = 0; i < m->nfiles; i++)
        cdm__source_release(m->files[i]);
    free(m->pools);
    free(m->defs);
    free(m->files);
    free(m->autoload_error);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->log_lock);
    free(m);
}

/* ------------------------------------------------------- pools, changes */

/* With m->lock held, after any change to the definitions: every pool
 * gets its definition resolved again.  New parameters bump its generation
 * (idle connections close, borrowed ones close when returned) and new
 * limits apply at once; a definition that is gone, no longer pooled or no
 * longer valid loses its pool.  Returns connections to close unlocked. */
static cdm_conn *refresh_pools(cdm_manager *m)
{
    char saved[CDM_MSG_MAX];
    cdm_conn *dead = NULL;
    int64_t now = precise_ms();
    bool any = false;

    m->changes++;
    cdm__errmsg_save(saved);
    for (size_t i = 0; i < m->ndefs; i++) {
        struct cdm_def *d = m->defs[i];
        struct cdm_resolved *r = NULL;
        int rc;

        if (!d->pool)
            continue;
        rc = cdm__resolve_chain(d->name, lookup, m, &r);
        if (rc == CDM_OK)
            rc = cdm__resolve_finish(r);
        if (rc == CDM_OK && !cdm__rget_bool(r, "Pooled"))
            rc = CDM_ERR_INVALID;
        if (rc == CDM_OK)
            rc = cdm__pool_check_cfg(r);
        if (rc != CDM_OK) {
            cdm__resolved_free(r);
            drop_pool(d, &dead);
            continue;
        }
        append_dead(&dead, cdm__pool_configure(d->pool, r, now));
        any = true;
    }
    cdm__errmsg_restore(saved);
    if (any) {
        m->kick = true;
        pthread_cond_signal(&m->wake);
    }
    return dead;
}

/* The cleanup thread: wakes at the earliest due time of any pool (a timed
 * condition wait, never a sleep), or when kicked, and does every close,
 * ping and connect with no lock held. */
static void *cleaner_main(void *arg)
{
    cdm_manager *m = arg;
    struct cdm_pool **snap = NULL;
    size_t cap = 0;

    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        size_t n = m->npools;
        int64_t now, next = INT64_MAX;

        if (n > cap) {
            struct cdm_pool **p = realloc(snap, n * sizeof *p);
            if (p) {
                snap = p;
                cap = n;
            }
        }
        if (n > cap)
            n = cap;
        if (n)
            memcpy(snap, m->pools, n * sizeof *snap);
        m->kick = false;
        pthread_mutex_unlock(&m->lock);

        now = precise_ms();
        for (size_t i = 0; i < n; i++) {
            int64_t due = cdm__pool_cleanup(snap[i], now, m);
            if (due < next)
                next = due;
        }

        pthread_mutex_lock(&m->lock);
        if (m->stop || m->kick)
            continue;
        if (next == INT64_MAX) {
            pthread_cond_wait(&m->wake, &m->lock);
        } else {
            struct timespec ts = { .tv_sec = next / 1000,
                                   .tv_nsec = (next % 1000) * 1000000 };
            pthread_cond_timedwait(&m->wake, &m->lock, &ts);
        }
    }
    pthread_mutex_unlock(&m->lock);
    free(snap);
    return NULL;
}

/* With m->lock held: a pool for `d`, reusing an empty detached one.
 * Takes ownership of r, also on failure. */
static int build_pool(cdm_manager *m, struct cdm_def *d, struct cdm_resolved *r)
{
    struct cdm_pool *p = NULL;
    uint64_t inc;
    int rc;

    for (size_t i = 0; i < m->npools && !p; i++)
        if (cdm__pool_reusable(m->pools[i]))
            p = m->pools[i];
    if (!p) {
        struct cdm_pool **v = realloc(m->pools, (m->npools + 1) * sizeof *v);
        if (!v || !(p = cdm__pool_new())) {
            if (v)
                m->pools = v;
            cdm__resolved_free(r);
            return cdm__nomem();
        }
        m->pools = v;
        m->pools[m->npools++] = p;
    }
    if ((rc = cdm__pool_attach(p, d->name, &inc)) != CDM_OK) {
        cdm__resolved_free(r);
        return rc;
    }
    /* A fresh pool has no idle connections to hand back. */
    cdm__pool_configure(p, r, precise_ms());
    d->pool = p;
    d->pool_incarnation = inc;
    if (!m->cleaner_running && !m->stop) {
        if (pthread_create(&m->cleaner, NULL, cleaner_main, m) == 0)
            m->cleaner_running = true;
        else
            cdm__log(m, CDM_LOG_ERROR,
                     "cannot start the pool cleanup thread: idle "
                     "connections will not expire");
    }
    m->kick = true;
    pthread_cond_signal(&m->wake);
    return CDM_OK;
}

/* ------------------------------------------------------------- loading */

/* A file read into definitions, not yet part of any manager. */
struct loaded {
    struct cdm_source *src;
    struct cdm_def **defs;
    size_t ndefs;
    struct notes notes;
};

static void loaded_free(struct loaded *l)
{
    for (size_t i = 0; i < l->ndefs; i++)
        cdm__def_free(l->defs[i]);
    free(l->defs);
    notes_flush(NULL, &l->notes);
    cdm__source_release(l->src);
    memset(l, 0, sizeof *l);
}

static bool literal_password(const struct cdm_def *d)
{
    for (size_t i = 0; i < d->nkv; i++) {
        const char *v = d->kv[i].value;
        const char *end;
        if (!cdm__param_is_secret(d->kv[i].key) || !*v)
            continue;
        /* Only "$(VAR)" alone keeps the secret out of the file. */
        if (strncmp(v, "$(", 2) != 0 || !(end = strchr(v, ')')) || end[1])
            return true;
    }
    return false;
}

static int load(const char *path, struct loaded *l)
{
    struct cdm_ini *ini;
    int rc;

    memset(l, 0, sizeof *l);
    if ((rc = cdm__ini_read(path, &ini)) != CDM_OK)
        return rc;
    if (!(l->src = calloc(1, sizeof *l->src)) ||
        !(l->defs = calloc(ini->nsections ? ini->nsections : 1, sizeof *l->defs))) {
        rc = cdm__nomem();
        goto out;
    }
    l->src->refs = 1;
    l->src->path = ini->path;
    l->src->dir = ini->dir;
    ini->path = ini->dir = NULL;
    for (size_t i = 0; i < ini->nwarnings; i++)
        note(&l->notes, ini->warnings[i]);

    for (size_t i = 0; i < ini->nsections; i++) {
        const struct cdm_ini_section *s = &ini->sections[i];
        struct cdm_def *d;
        if (cdm__streq_nocase(s->name, "FDConnectionDefs.ini"))
            continue; /* FireDAC's header section, not a definition */
        if (!(d = cdm__def_new(s->name, l->src, s->line))) {
            rc = cdm__nomem();
            goto out;
        }
        l->defs[l->ndefs++] = d;
        for (size_t j = 0; j < s->nkeys; j++)
            if ((rc = cdm__def_set(d, s->keys[j].key, s->keys[j].value,
                                   s->keys[j].line)) != CDM_OK)
                goto out;
        d->gen = 0;
        cdm__def_check_own(d, false, note, &l->notes);
        if ((ini->mode & (S_IRGRP | S_IROTH)) && literal_password(d)) {
            char text[600];
            snprintf(text, sizeof text,
                     "%s:%d: definition '%s' holds a password in a file "
                     "others can read (mode %04o); run chmod 600 or use "
                     "Password=$(VAR)",
                     l->src->path, d->line, d->name, ini->mode);
            note(&l->notes, text);
        }
    }
out:
    cdm__ini_free(ini);
    if (rc != CDM_OK)
        loaded_free(l);
    return rc;
}

/* Checks that none of `l`'s names is taken by `m`'s definitions other
 * than those from `except`, nor by an earlier entry of `others`. */
static int check_clash(const cdm_manager *m, const struct loaded *l,
                       bool skip_files, const struct loaded *others,
                       size_t nothers)
{
    char there[512];

    for (size_t i = 0; i < l->ndefs; i++) {
        const struct cdm_def *d = l->defs[i], *old = NULL;
        for (size_t j = 0; j < m->ndefs && !old; j++)
            if ((!skip_files || !m->defs[j]->src) &&
                cdm__streq_nocase(m->defs[j]->name, d->name))
                old = m->defs[j];
        for (size_t k = 0; k < nothers && !old; k++)
            for (size_t j = 0; j < others[k].ndefs && !old; j++)
                if (cdm__streq_nocase(others[k].defs[j]->name, d->name))
                    old = others[k].defs[j];
        if (old) {
            where_defined(old, there, sizeof there);
            return cdm__fail(CDM_ERR_EXISTS,
                             "%s:%d: definition '%s' is already defined at %s",
                             d->src->path, d->line, d->name, there);
        }
    }
    return CDM_OK;
}

int cdm_manager_load_file(cdm_manager *m, const char *path)
{
    struct loaded l;
    struct cdm_source **files;
    cdm_conn *dead;
    size_t nfile_defs = 0;
    int rc;

    if (!m || !path)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_load_file: %s is NULL",
                         m ? "path" : "manager");
    if ((rc = load(path, &l)) != CDM_OK)
        return rc;

    pthread_mutex_lock(&m->lock);
    if ((rc = check_clash(m, &l, false, NULL, 0)) != CDM_OK ||
        (rc = reserve(m, l.ndefs)) != CDM_OK)
        goto fail;
    if (!(files = realloc(m->files, (m->nfiles + 1) * sizeof *files))) {
        rc = cdm__nomem();
        goto fail;
    }
    m->files = files;
    /* File definitions go before the private ones. */
    while (nfile_defs < m->ndefs && m->defs[nfile_defs]->src)
        nfile_defs++;
    memmove(m->defs + nfile_defs + l.ndefs, m->defs + nfile_defs,
            (m->ndefs - nfile_defs) * sizeof *m->defs);
    memcpy(m->defs + nfile_defs, l.defs, l.ndefs * sizeof *l.defs);
    m->ndefs += l.ndefs;
    m->files[m->nfiles++] = l.src;
    l.src = NULL;
    l.ndefs = 0;
    dead = refresh_pools(m);
    pthread_mutex_unlock(&m->lock);
    destroy_dead(dead);
    notes_flush(m, &l.notes);
    loaded_free(&l);
    return CDM_OK;
fail:
    pthread_mutex_unlock(&m->lock);
    loaded_free(&l);
    return rc;
}

int cdm_manager_reload(cdm_manager *m)
{
    struct loaded *ls = NULL;
    char **paths = NULL;
    struct cdm_def **defs = NULL;
    cdm_conn *dead = NULL;
    size_t n = 0, total = 0, k = 0;
    int rc = CDM_OK;

    if (!m)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_reload: manager is NULL");
    /* Copy the paths so the files are read without the lock held. */
    pthread_mutex_lock(&m->lock);
    n = m->nfiles;
    if (n && (paths = calloc(n, sizeof *paths)))
        for (size_t i = 0; i < n; i++)
            if (!(paths[i] = cdm__strdup(m->files[i]->path)))
                rc = CDM_ERR_NOMEM;
    pthread_mutex_unlock(&m->lock);
    if ((n && !paths) || rc != CDM_OK) {
        rc = cdm__nomem();
        goto out;
    }
    if (n && !(ls = calloc(n, sizeof *ls))) {
        rc = cdm__nomem();
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = load(paths[i], &ls[i])) != CDM_OK)
            goto out;
        total += ls[i].ndefs;
    }

    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n && rc == CDM_OK; i++)
        rc = check_clash(m, &ls[i], true, ls, i);
    if (rc == CDM_OK && m->nfiles != n)
        rc = cdm__fail(CDM_ERR_CONFLICT,
                       "files were loaded while reloading; try again");
    if (rc == CDM_OK) {
        size_t npriv = 0;
        for (size_t i = 0; i < m->ndefs; i++)
            npriv += m->defs[i]->src == NULL;
        if (!(defs = calloc(total + npriv + 1, sizeof *defs)))
            rc = cdm__nomem();
    }
    if (rc != CDM_OK) {
        pthread_mutex_unlock(&m->lock);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < ls[i].ndefs; j++)
            defs[k++] = ls[i].defs[j];
    for (size_t i = 0; i < m->ndefs; i++) {
        struct cdm_def *old = m->defs[i];
        if (!old->src) {
            defs[k++] = old;
            continue;
        }
        /* A pool follows its definition's name into the new file; the
         * refresh below bumps its generation if the parameters changed. */
        for (size_t j = 0; j < total && old->pool; j++)
            if (cdm__streq_nocase(defs[j]->name, old->name)) {
                defs[j]->pool = old->pool;
                defs[j]->pool_incarnation = old->pool_incarnation;
                old->pool = NULL;
            }
        drop_pool(old, &dead);
        cdm__def_free(old);
    }
    free(m->defs);
    m->defs = defs;
    m->ndefs = k;
    m->cap = total + (k - total) + 1;
    for (size_t i = 0; i < n; i++) {
        cdm__source_release(m->files[i]);
        m->files[i] = ls[i].src;
        ls[i].src = NULL;
        ls[i].ndefs = 0;
    }
    append_dead(&dead, refresh_pools(m));
    pthread_mutex_unlock(&m->lock);
    destroy_dead(dead);
    for (size_t i = 0; i < n; i++)
        notes_flush(m, &ls[i].notes);
out:
    for (size_t i = 0; ls && i < n; i++)
        loaded_free(&ls[i]);
    free(ls);
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
    return rc;
}

/* ------------------------------------------------ private definitions */

int cdm_manager_add_def(cdm_manager *m, const char *name,
                        const char *const *params)
{
    struct notes notes = { 0 };
    struct cdm_def *d, *old;
    cdm_conn *dead = NULL;
    char there[512];
    int rc = CDM_OK;

    if (!m || !name)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_add_def: %s is NULL",
                         m ? "name" : "manager");
    if (!cdm__name_valid(name))
        return cdm__fail(CDM_ERR_INVALID,
                         "'%.64s' is not a valid definition name (1 to 255 "
                         "characters, no brackets or control characters, no "
                         "blank at either end)", name);
    if (!(d = cdm__def_new(name, NULL, 0)))
        return cdm__nomem();
    for (size_t i = 0; params && params[i] && rc == CDM_OK; i++) {
        const char *eq = strchr(params[i], '=');
        char *key;
        if (!eq) {
            /* Not shown: it could be a password missing its key. */
            rc = cdm__fail(CDM_ERR_INVALID,
                           "definition '%s': parameter %zu has no '=' "
                           "(expected Key=Value)", name, i + 1);
            break;
        }
        if (!(key = cdm__strndup(params[i], (size_t)(eq - params[i])))) {
            rc = cdm__nomem();
            break;
        }
        if (!cdm__key_valid(key))
            rc = cdm__fail(CDM_ERR_INVALID,
                           "definition '%s': parameter %zu: '%.64s' is not a "
                           "valid key", name, i + 1, key);
        else if (cdm__def_find(d, key))
            rc = cdm__fail(CDM_ERR_INVALID,
                           "definition '%s': %s given twice", name, key);
        else
            rc = cdm__def_set(d, key, eq + 1, 0);
        free(key);
    }
    if (rc == CDM_OK)
        rc = cdm__def_check_own(d, true, note, &notes);
    if (rc != CDM_OK) {
        cdm__def_free(d);
        notes_flush(NULL, &notes);
        return rc;
    }
    pthread_mutex_lock(&m->lock);
    if ((old = find_def(m, name, NULL))) {
        where_defined(old, there, sizeof there);
        rc = cdm__fail(CDM_ERR_EXISTS,
                       "definition '%s' already exists (%s)", name, there);
    } else if ((rc = reserve(m, 1)) == CDM_OK) {
        m->defs[m->ndefs++] = d;
        d = NULL;
        dead = refresh_pools(m);
    }
    pthread_mutex_unlock(&m->lock);
    destroy_dead(dead);
    cdm__def_free(d);
    notes_flush(rc == CDM_OK ? m : NULL, &notes);
    return rc;
}

int cdm_manager_set_param(cdm_manager *m, const char *name, const char *key,
                          const char *value)
{
    const struct cdm_param_spec *spec;
    const struct cdm_driver *drv = NULL;
    struct cdm_def *d;
    struct cdm_kv *kv;
    cdm_conn *dead = NULL;
    char where[512], *hint_text = NULL;
    int rc = CDM_OK;

    if (!m || !name || !key)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_set_param: %s is NULL",
                         !m ? "manager" : !name ? "name" : "key");
    if (!cdm__key_valid(key))
        return cdm__fail(CDM_ERR_INVALID,
                         "definition '%.64s': '%.64s' is not a valid key",
                         name, key);
    pthread_mutex_lock(&m->lock);
    if (!(d = find_def(m, name, NULL))) {
        rc = cdm__fail(CDM_ERR_NOT_FOUND, "no definition named '%.64s'", name);
        goto out;
    }
    if (value) {
        kv = cdm__def_find(d, "DriverID");
        if (cdm__streq_nocase(key, "DriverID"))
            drv = cdm__driver_find(value);
        else if (kv)
            drv = cdm__driver_find(kv->value);
        spec = cdm__param_find(drv, key);
        /* The value comes from the caller, not from a line of the file. */
        snprintf(where, sizeof where, "definition '%s'", d->name);
        if (!spec && drv && cdm__param_find(NULL, key)) {
            hint_text = cdm__asprintf("%s: %s is not used by driver %s", where,
                                      key, drv->id);
        } else if (!spec) {
            const char *hint = cdm__param_suggest(key);
            hint_text = hint ? cdm__asprintf("%s: unknown key %s (did you mean %s?)",
                                             where, key, hint)
                             : cdm__asprintf("%s: unknown key %s", where, key);
        } else if (!strstr(value, "$(") &&
                   (rc = cdm__param_check(spec, where, key, value)) != CDM_OK) {
            goto out;
        }
    }
    if ((rc = cdm__def_set(d, key, value, 0)) == CDM_OK)
        dead = refresh_pools(m);
out:
    pthread_mutex_unlock(&m->lock);
    destroy_dead(dead);
    if (hint_text && rc == CDM_OK)
        cdm__log(m, CDM_LOG_WARN, "%s", hint_text);
    free(hint_text);
    return rc;
}

int cdm_manager_delete_def(cdm_manager *m, const char *name)
{
    struct cdm_def *d = NULL;
    cdm_conn *dead = NULL;
    size_t i;
    int rc = CDM_OK;

    if (!m || !name)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_delete_def: %s is NULL",
                         m ? "name" : "manager");
    pthread_mutex_lock(&m->lock);
    if ((d = find_def(m, name, &i))) {
        memmove(m->defs + i, m->defs + i + 1,
                (m->ndefs - i - 1) * sizeof *m->defs);
        m->ndefs--;
        drop_pool(d, &dead);
        append_dead(&dead, refresh_pools(m));
    } else {
        rc = cdm__fail(CDM_ERR_NOT_FOUND, "no definition named '%.64s'", name);
    }
    pthread_mutex_unlock(&m->lock);
    destroy_dead(dead);
    cdm__def_free(d);
    return rc;
}

int cdm_manager_has_def(cdm_manager *m, const char *name)
{
    int found;

    if (!m || !name)
        return 0;
    pthread_mutex_lock(&m->lock);
    found = find_def(m, name, NULL) != NULL;
    pthread_mutex_unlock(&m->lock);
    return found;
}

int cdm_manager_def_names(cdm_manager *m, char ***names, size_t *count)
{
    char **v;
    size_t n;
    int rc = CDM_OK;

    if (!m || !names)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_def_names: %s is NULL",
                         m ? "names" : "manager");
    pthread_mutex_lock(&m->lock);
    n = m->ndefs;
    if ((v = calloc(n + 1, sizeof *v)))
        for (size_t i = 0; i < n && rc == CDM_OK; i++)
            if (!(v[i] = cdm__strdup(m->defs[i]->name)))
                rc = CDM_ERR_NOMEM;
    pthread_mutex_unlock(&m->lock);
    if (!v || rc != CDM_OK) {
        cdm_strv_free(v);
        return cdm__nomem();
    }
    *names = v;
    if (count)
        *count = n;
    return CDM_OK;
}

int cdm_manager_get_param(cdm_manager *m, const char *name, const char *key,
                          char **value)
{
    struct cdm_resolved *r = NULL;
    const struct cdm_rkv *kv;
    char where[512];
    int rc;

    if (!m || !name || !key || !value)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_get_param: argument is NULL");
    pthread_mutex_lock(&m->lock);
    rc = cdm__resolve_chain(name, lookup, m, &r);
    pthread_mutex_unlock(&m->lock);
    if (rc != CDM_OK)
        return rc;
    if (!(kv = cdm__rfind(r, key))) {
        rc = cdm__fail(CDM_ERR_NOT_FOUND, "%s: %.64s is not set", r->where, key);
    } else {
        cdm__rkv_where(r, kv, where, sizeof where);
        rc = cdm__expand(kv->value, where, kv->key, value);
    }
    cdm__resolved_free(r);
    return rc;
}

/* ------------------------------------------------------------- pools */

int cdm_manager_close_def(cdm_manager *m, const char *name)
{
    struct cdm_def *d;
    cdm_conn *dead = NULL;
    int rc = CDM_OK;

    if (!m || !name)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_close_def: %s is NULL",
                         m ? "name" : "manager");
    pthread_mutex_lock(&m->lock);
    if ((d = find_def(m, name, NULL)))
        drop_pool(d, &dead);
    else
        rc = cdm__fail(CDM_ERR_NOT_FOUND, "no definition named '%.64s'", name);
    pthread_mutex_unlock(&m->lock);
    destroy_dead(dead);
    return rc;
}

int cdm_manager_pool_stats(cdm_manager *m, const char *name,
                           cdm_pool_stats *out)
{
    struct cdm_def *d;
    int rc = CDM_OK;

    if (!m || !name || !out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_pool_stats: argument is NULL");
    pthread_mutex_lock(&m->lock);
    if (!(d = find_def(m, name, NULL)))
        rc = cdm__fail(CDM_ERR_NOT_FOUND, "no definition named '%.64s'", name);
    else if (d->pool)
        cdm__pool_stats(d->pool, out);
    else
        memset(out, 0, sizeof *out);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ---------------------------------------------------------- connecting */

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

static int connect_slow(cdm_manager *m, const char *name, cdm_conn **out)
{
    for (;;) {
        struct cdm_resolved *r = NULL;
        struct cdm_def *d;
        struct cdm_pool *p;
        uint64_t inc, changes;
        int rc;

        pthread_mutex_lock(&m->lock);
        if (m->closed) {
            pthread_mutex_unlock(&m->lock);
            return cdm__fail(CDM_ERR_CLOSED, "cannot connect to '%.64s': the "
                             "manager is closed", name);
        }
        if ((d = find_def(m, name, NULL)) && d->pool) {
            p = d->pool;
            inc = d->pool_incarnation;
            pthread_mutex_unlock(&m->lock);
            goto borrow;
        }
        changes = m->changes;
        rc = cdm__resolve_chain(name, lookup, m, &r);
        if (rc == CDM_ERR_NOT_FOUND && m->autoload_error) {
            char first[1024];
            snprintf(first, sizeof first, "%s", cdm_errmsg());
            cdm__fail(rc, "%s (%s)", first, m->autoload_error);
        }
        pthread_mutex_unlock(&m->lock);
        if (rc == CDM_OK)
            rc = cdm__resolve_finish(r);
        if (rc == CDM_OK && !cdm__rget_bool(r, "Pooled")) {
            rc = cdm__conn_open(r, out);
            cdm__resolved_free(r);
            return rc;
        }
        if (rc == CDM_OK)
            rc = cdm__pool_check_cfg(r);
        if (rc != CDM_OK) {
            cdm__resolved_free(r);
            return rc;
        }

        pthread_mutex_lock(&m->lock);
        if (m->closed || m->changes != changes ||
            !(d = find_def(m, name, NULL))) {
            /* Changed while we resolved: start again with what is now. */
            pthread_mutex_unlock(&m->lock);
            cdm__resolved_free(r);
            continue;
        }
        /* Another thread may have built it meanwhile: then ours goes. */
        if (d->pool)
            cdm__resolved_free(r);
        else if ((rc = build_pool(m, d, r)) != CDM_OK) {
            pthread_mutex_unlock(&m->lock);
            return rc;
        }
        p = d->pool;
        inc = d->pool_incarnation;
        pthread_mutex_unlock(&m->lock);
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
        if (e->serial == m->serial && e->pool && strcmp(e->name, name) == 0) {
            int rc = cdm__pool_acquire(e->pool, e->incarnation, out);
            if (rc != CDM__RETRY)
                return rc;
            e->pool = NULL;
            break;
        }
    }
    return connect_slow(m, name, out);
}
