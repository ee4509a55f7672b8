/*
 * manager.c - the connection-definition manager: the definitions it holds,
 * merging loaded files, private definitions, live changes reaching the
 * pools, the process-wide default manager, shutdown, and fork().
 * Files are read by load.c, pools kept by registry.c, connects made by
 * connect.c.
 */
#include "manager.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(cdm_manager *) default_manager;
static atomic_uint_fast64_t manager_serials;

/* Every live manager, for the fork handlers. */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static cdm_manager *all_managers;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------- logging */

/* Messages kept for the first callback: enough for a file's worth of
 * warnings, bounded whatever the file holds. */
#define KEPT_MAX 100

/* With m->log_lock held. */
static void keep(cdm_manager *m, int level, const char *text)
{
    struct cdm_kept *v;

    if (m->nkept == KEPT_MAX ||
        !(v = realloc(m->kept, (m->nkept + 1) * sizeof *v))) {
        m->ndropped++;
        return;
    }
    m->kept = v;
    if (!(v[m->nkept].text = cdm__strdup(text))) {
        m->ndropped++;
        return;
    }
    v[m->nkept++].level = level;
}

void cdm__log(cdm_manager *m, int level, const char *fmt, ...)
{
    cdm_log_fn fn;
    void *user;
    char raw[1024], text[1024];
    va_list ap;

    pthread_mutex_lock(&m->log_lock);
    fn = m->log;
    user = m->log_user;
    if (!fn && !m->keep_log) {
        pthread_mutex_unlock(&m->log_lock);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    cdm__oneline(text, sizeof text, raw);
    if (!fn) {
        keep(m, level, text);
        pthread_mutex_unlock(&m->log_lock);
        return;
    }
    pthread_mutex_unlock(&m->log_lock);
    fn(level, text, user);
}

void cdm_manager_set_log(cdm_manager *m, cdm_log_fn fn, void *user)
{
    struct cdm_kept *kept = NULL;
    size_t nkept = 0, ndropped = 0;

    if (!m)
        return;
    pthread_mutex_lock(&m->log_lock);
    m->log = fn;
    m->log_user = user;
    if (fn) {
        kept = m->kept;
        nkept = m->nkept;
        ndropped = m->ndropped;
        m->kept = NULL;
        m->nkept = m->ndropped = 0;
        m->keep_log = false;
    }
    pthread_mutex_unlock(&m->log_lock);
    /* What the default manager's load said before anyone listened. */
    for (size_t i = 0; i < nkept; i++) {
        fn(kept[i].level, kept[i].text, user);
        free(kept[i].text);
    }
    free(kept);
    if (ndropped) {
        char text[128];
        snprintf(text, sizeof text, "%zu more messages of the first load "
                 "were not kept", ndropped);
        fn(CDM_LOG_WARN, text, user);
    }
}

/* The registry's log sink: the manager's callback. */
static void sink(void *ctx, int level, const char *message)
{
    cdm__log(ctx, level, "%s", message);
}

/* ------------------------------------------------------- the def list */

struct cdm_def *cdm__manager_find(const cdm_manager *m, const char *name,
                                  size_t *index)
{
    struct cdm_def *d = name ? cdm__names_get(&m->names, name) : NULL;

    /* The position only for a delete, which moves the rest anyway. */
    if (d && index)
        for (size_t i = 0; i < m->ndefs; i++)
            if (m->defs[i] == d)
                *index = i;
    return d;
}

struct cdm_def *cdm__manager_lookup(void *ctx, const char *name)
{
    return cdm__manager_find(ctx, name, NULL);
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

/* ---------------------------------------------------------------- fork */

/* Before fork(): every lock a child could need is taken, so the child
 * never inherits one held by a thread it does not have.  Order: first the
 * opens in progress are waited for (conn.c: the client libraries hold
 * locks of their own inside), then the default manager's lock, the
 * list's, then per manager its own, its registry's and its log lock (the
 * order used everywhere else; no thread opens a connection holding any
 * of them). */
static void fork_prepare(void)
{
    cdm__conn_fork_lock();
    pthread_mutex_lock(&default_lock);
    pthread_mutex_lock(&all_lock);
    for (cdm_manager *m = all_managers; m; m = m->next_all) {
        pthread_mutex_lock(&m->lock);
        cdm__registry_fork_lock(m->reg);
        pthread_mutex_lock(&m->log_lock);
    }
    /* Last: the drivers' libraries take none of ours while holding theirs. */
    for (size_t i = 0; cdm__drivers[i]; i++)
        if (cdm__drivers[i]->fork_lock)
            cdm__drivers[i]->fork_lock();
}

static void fork_unlock_all(bool child)
{
    for (size_t i = 0; cdm__drivers[i]; i++)
        if (cdm__drivers[i]->fork_unlock)
            cdm__drivers[i]->fork_unlock();
    for (cdm_manager *m = all_managers; m; m = m->next_all) {
        pthread_mutex_unlock(&m->log_lock);
        cdm__registry_fork_unlock(m->reg);
        pthread_mutex_unlock(&m->lock);
    }
    pthread_mutex_unlock(&all_lock);
    pthread_mutex_unlock(&default_lock);
    cdm__conn_fork_unlock(child);
}

static void fork_release(void)
{
    fork_unlock_all(false);
}

/* In the child: every pool is the parent's.  They are marked, and each
 * manager takes a fresh registry the first time it needs one. */
static void fork_child(void)
{
    for (cdm_manager *m = all_managers; m; m = m->next_all)
        cdm__registry_fork_child(m->reg);
    fork_unlock_all(true);
}

static void atfork_install(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_child);
}

static int watch_files(void *ctx);

struct cdm_registry *cdm__manager_registry(cdm_manager *m)
{
    struct cdm_log_sink s = { sink, m };
    struct cdm_registry *fresh;

    if (!cdm__registry_forked(m->reg))
        return m->reg;
    /* Out of memory keeps the inherited one, which serves nothing: the
     * connect retries, and fails with NOMEM on the next attempt. */
    if (cdm__registry_new(&s, &fresh) != CDM_OK)
        return m->reg;
    cdm__registry_abandon(m->reg);
    m->reg = fresh;
    /* The child follows the files as the parent did. */
    if (m->watch_ms)
        cdm__registry_watch(fresh, m->watch_ms, watch_files, m);
    return fresh;
}

/* ---------------------------------------------------------- lifecycle */

int cdm_manager_new(cdm_manager **out)
{
    cdm_manager *m;
    struct cdm_log_sink s;

    if (!out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_new: out is NULL");
    if (!(m = calloc(1, sizeof *m)))
        return cdm__nomem();
    s.fn = sink;
    s.ctx = m;
    if (cdm__registry_new(&s, &m->reg) != CDM_OK) {
        free(m);
        return cdm__nomem();
    }
    m->serial = atomic_fetch_add(&manager_serials, 1) + 1;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->log_lock, NULL);
    pthread_once(&atfork_once, atfork_install);
    pthread_mutex_lock(&all_lock);
    m->next_all = all_managers;
    all_managers = m;
    pthread_mutex_unlock(&all_lock);
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
        /* Its warnings wait for the program's callback. */
        m->keep_log = true;
        if (path && *path &&
            (m->autoload_status = cdm_manager_load_file(m, path)) != CDM_OK)
            m->autoload_error = cdm__asprintf("$CDM_CONNECTION_DEFS: %s",
                                              cdm_errmsg());
        if (m->autoload_error)
            cdm__log(m, CDM_LOG_ERROR, "%s", m->autoload_error);
        pthread_mutex_lock(&m->log_lock);
        m->keep_log = false;
        pthread_mutex_unlock(&m->log_lock);
        cdm__errmsg_restore(saved);
        atomic_store_explicit(&default_manager, m, memory_order_release);
    }
    pthread_mutex_unlock(&default_lock);
    return m;
}

int cdm_manager_close(cdm_manager *m, int timeout_ms)
{
    struct cdm_registry *reg;
    int64_t deadline;
    char who[512];
    int busy;

    if (!m)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_close: manager is NULL");
    /* Pools first, so that no connect gets through from here on, even one
     * on a thread's fast path; then the cleanup thread. */
    pthread_mutex_lock(&m->lock);
    m->closed = true;
    reg = cdm__manager_registry(m);
    pthread_mutex_unlock(&m->lock);
    cdm__pool_close_list(cdm__registry_close(reg));

    deadline = cdm__now_ns() + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    if ((busy = cdm__registry_wait_drained(reg, deadline, who, sizeof who)))
        return cdm__fail(CDM_ERR_BUSY,
                         "%d pooled connection%s still borrowed after %d ms%s%s; "
                         "%s closed when returned", busy, busy == 1 ? " is" : "s are",
                         timeout_ms, *who ? ": " : "", who,
                         busy == 1 ? "it is" : "they are");
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
    pthread_mutex_lock(&all_lock);
    for (cdm_manager **pp = &all_managers; *pp; pp = &(*pp)->next_all)
        if (*pp == m) {
            *pp = m->next_all;
            break;
        }
    pthread_mutex_unlock(&all_lock);
    /* Pools with connections still borrowed go when the last one is
     * returned. */
    cdm__registry_free(m->reg);
    cdm__names_clear(&m->names);
    for (size_t i = 0; i < m->ndefs; i++)
        cdm__def_free(m->defs[i]);
    for (size_t i = 0; i < m->nfiles; i++)
        cdm__source_release(m->files[i]);
    free(m->defs);
    free(m->files);
    free(m->autoload_error);
    free(m->watch_failed);
    free(m->watch_seen);
    for (size_t i = 0; i < m->nkept; i++)
        free(m->kept[i].text);
    free(m->kept);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->log_lock);
    free(m);
}

/* Test hook: one full cleanup pass over every pool, due or not, run by
 * the cleanup thread; returns when it is done (or the time is up). */
int cdm__manager_cleanup_now(cdm_manager *m, int timeout_ms)
{
    struct cdm_registry *reg;

    pthread_mutex_lock(&m->lock);
    reg = cdm__manager_registry(m);
    pthread_mutex_unlock(&m->lock);
    return cdm__registry_cleanup_now(reg, timeout_ms);
}

/* ------------------------------------------------------- pools, changes */

/* The parameters a pool for `name` should have now, or NULL if the name
 * should have no pool (gone, no longer pooled).  A definition that no
 * longer resolves keeps its pool as it is (*keep): the safety rule lets
 * no change break one, so it broke on its own (an environment variable
 * gone), and the pool lends what it has until the definition is fixed,
 * changed or closed. */
static struct cdm_resolved *pooled_params(void *ctx, const char *name,
                                          bool *keep)
{
    cdm_manager *m = ctx;
    struct cdm_resolved *r = NULL;
    int rc = cdm__resolve_chain(name, cdm__manager_lookup, m, &r);

    if (rc == CDM_OK)
        rc = cdm__resolve_finish(r);
    if (rc == CDM_OK && !cdm__rget_bool(r, "Pooled")) {
        cdm__resolved_free(r);
        return NULL;
    }
    if (rc == CDM_OK)
        rc = cdm__pool_check_cfg(r);
    if (rc == CDM_OK)
        return r;
    cdm__resolved_free(r);
    *keep = cdm__manager_find(m, name, NULL) != NULL;
    return NULL;
}

/* With m->lock held, after any change to the definitions: every pool
 * gets its definition resolved again.  New parameters bump its generation
 * (idle connections close, borrowed ones close when returned) and new
 * limits apply at once; a definition that is gone, no longer pooled or no
 * longer valid loses its pool.  Returns connections to close unlocked. */
static cdm_conn *refresh_pools(cdm_manager *m)
{
    char saved[CDM_MSG_MAX];
    cdm_conn *dead;

    cdm__errmsg_save(saved);
    dead = cdm__registry_refresh(cdm__manager_registry(m), pooled_params, m);
    cdm__errmsg_restore(saved);
    return dead;
}

/* ------------------------------------------------- the safety rule */

/*
 * A change never takes a working pool down (DESIGN.md, Live definitions):
 * every definition with a pool that could connect before a change must
 * still resolve in full after it (parent chain, driver built in, required
 * keys, every value valid, pool limits), or the change is refused as a
 * whole.  A definition that was already broken (an environment variable
 * gone since its pool was built) does not block other changes; one that
 * the change removes loses its pool, as asked.
 */
struct guard {
    char **names;   /* definitions with an attached pool */
    bool *ok;       /* whether each could connect before the change */
    size_t n;
};

/* Whether `name` resolves to something a pool can connect with, the
 * message saying why not. */
static int can_connect(const char *name, cdm_lookup_fn lookup, void *ctx)
{
    struct cdm_resolved *r = NULL;
    int rc = cdm__resolve_chain(name, lookup, ctx, &r);

    if (rc == CDM_OK)
        rc = cdm__resolve_finish(r);
    if (rc == CDM_OK && cdm__rget_bool(r, "Pooled"))
        rc = cdm__pool_check_cfg(r);
    cdm__resolved_free(r);
    return rc;
}

/* With m->lock held, before a change: the definitions as they are, seen
 * through `lookup`. */
static int guard_begin(cdm_manager *m, struct guard *g, cdm_lookup_fn lookup,
                       void *ctx)
{
    char saved[CDM_MSG_MAX];

    memset(g, 0, sizeof *g);
    if (!(g->names = cdm__registry_names(cdm__manager_registry(m))))
        return cdm__nomem();
    while (g->names[g->n])
        g->n++;
    if (!(g->ok = calloc(g->n + 1, sizeof *g->ok))) {
        cdm_strv_free(g->names);
        return cdm__nomem();
    }
    cdm__errmsg_save(saved);
    for (size_t i = 0; i < g->n; i++)
        g->ok[i] = can_connect(g->names[i], lookup, ctx) == CDM_OK;
    cdm__errmsg_restore(saved);
    return CDM_OK;
}

/* After the change, seen through `lookup`: CDM_OK, or the refusal. */
static int guard_check(const struct guard *g, cdm_lookup_fn lookup, void *ctx)
{
    for (size_t i = 0; i < g->n; i++) {
        int rc;
        if (!g->ok[i] || !lookup(ctx, g->names[i]))
            continue;
        if ((rc = can_connect(g->names[i], lookup, ctx)) != CDM_OK) {
            cdm__errprefix("change refused, nothing changed: definition "
                           "'%s' has a pool in use and could no longer "
                           "connect: ", g->names[i]);
            return rc;
        }
    }
    return CDM_OK;
}

static void guard_end(struct guard *g)
{
    cdm_strv_free(g->names);
    free(g->ok);
}

/* The manager's definitions but one, as they would be without it. */
struct without {
    cdm_manager *m;
    const struct cdm_def *gone;
};

static struct cdm_def *without_lookup(void *ctx, const char *name)
{
    struct without *w = ctx;
    struct cdm_def *d = cdm__manager_find(w->m, name, NULL);

    return d == w->gone ? NULL : d;
}

/* ------------------------------------------------------------- loading */

/* Checks that none of `l`'s names is taken by `m`'s definitions (only its
 * private ones when `skip_files`: a reload replaces the others) nor by an
 * entry of `seen` (the files before it in a reload), then adds `l`'s
 * definitions to `seen`. */
static int check_clash(const cdm_manager *m, const struct cdm_loaded *l,
                       bool skip_files, struct cdm_names *seen)
{
    char there[512];
    int rc = CDM_OK;

    for (size_t i = 0; i < l->ndefs && rc == CDM_OK; i++) {
        const struct cdm_def *d = l->defs[i];
        const struct cdm_def *old = cdm__names_get(&m->names, d->name);
        if (old && skip_files && old->src)
            old = NULL;
        if (!old && seen)
            old = cdm__names_get(seen, d->name);
        if (old) {
            where_defined(old, there, sizeof there);
            return cdm__fail(CDM_ERR_EXISTS,
                             "%s:%d: definition '%s' is already defined at %s",
                             d->src->path, d->line, d->name, there);
        }
        if (seen)
            rc = cdm__names_put(seen, l->defs[i]);
    }
    return rc;
}

int cdm_manager_load_file(cdm_manager *m, const char *path)
{
    struct cdm_loaded l;
    struct cdm_source **files;
    cdm_conn *dead;
    size_t nfile_defs = 0;
    int rc;

    if (!m || !path)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_load_file: %s is NULL",
                         m ? "path" : "manager");
    if ((rc = cdm__load(path, &l)) != CDM_OK)
        return rc;

    pthread_mutex_lock(&m->lock);
    if ((rc = check_clash(m, &l, false, NULL)) != CDM_OK ||
        (rc = reserve(m, l.ndefs)) != CDM_OK)
        goto fail;
    /* Every name indexed before anything changes: nothing can fail after. */
    for (size_t i = 0; i < l.ndefs && rc == CDM_OK; i++)
        rc = cdm__names_put(&m->names, l.defs[i]);
    if (rc != CDM_OK) {
        for (size_t i = 0; i < l.ndefs; i++)
            cdm__names_del(&m->names, l.defs[i]);
        goto fail;
    }
    if (!(files = realloc(m->files, (m->nfiles + 1) * sizeof *files))) {
        rc = cdm__nomem();
        for (size_t i = 0; i < l.ndefs; i++)
            cdm__names_del(&m->names, l.defs[i]);
        goto fail;
    }
    m->files = files;
    /* File definitions go before the private ones. */
    while (nfile_defs < m->ndefs && m->defs[nfile_defs]->src)
        nfile_defs++;
    if (l.ndefs) {   /* an empty file adds nothing (m->defs may be NULL) */
        memmove(m->defs + nfile_defs + l.ndefs, m->defs + nfile_defs,
                (m->ndefs - nfile_defs) * sizeof *m->defs);
        memcpy(m->defs + nfile_defs, l.defs, l.ndefs * sizeof *l.defs);
    }
    m->ndefs += l.ndefs;
    m->files[m->nfiles++] = l.src;
    l.src = NULL;
    l.ndefs = 0;
    dead = refresh_pools(m);
    pthread_mutex_unlock(&m->lock);
    cdm__pool_close_list(dead);
    cdm__notes_flush(m, &l.notes);
    cdm__loaded_free(&l);
    return CDM_OK;
fail:
    pthread_mutex_unlock(&m->lock);
    cdm__loaded_free(&l);
    return rc;
}

static void note(struct cdm_notes *ns, const char *fmt, ...) CDM_PRINTF(2, 3);

static void note(struct cdm_notes *ns, const char *fmt, ...)
{
    struct cdm_issue is = { .level = CDM_LOG_WARN };
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    is.text = text;
    cdm__note(ns, &is);
}

/* With m->lock held, a reload about to apply (`fresh` indexes the
 * definitions it leaves): what it discards that someone may miss.  A
 * value set in memory on a file's definition goes (the file defines the
 * definition again), and a definition with a pool that the files no
 * longer define loses its pool. */
static void note_reload(cdm_manager *m, const struct guard *g,
                        const struct cdm_names *fresh, struct cdm_notes *ns)
{
    for (size_t i = 0; i < m->ndefs; i++) {
        const struct cdm_def *d = m->defs[i];
        const struct cdm_def *now;
        if (!d->src || !d->memory)
            continue;
        now = cdm__names_get(fresh, d->name);
        for (size_t j = 0; d->memory[j]; j++) {
            const struct cdm_kv *kv = now ? cdm__def_find(now, d->memory[j])
                                          : NULL;
            if (kv)
                note(ns, "reload: definition '%s': %s, set in memory, is "
                     "replaced by the file's value (%s:%d)", d->name,
                     d->memory[j], now->src->path, kv->line);
            else
                note(ns, "reload: definition '%s': %s, set in memory, is "
                     "gone: %s", d->name, d->memory[j],
                     now ? "the file does not set it"
                         : "the files no longer define the definition");
        }
    }
    for (size_t i = 0; i < g->n; i++)
        if (!cdm__names_get(fresh, g->names[i]))
            note(ns, "reload: definition '%s' is no longer defined; its pool "
                 "closes (borrowed connections finish first)", g->names[i]);
}

int cdm_manager_reload(cdm_manager *m)
{
    struct cdm_loaded *ls = NULL;
    char **paths = NULL;
    struct cdm_def **defs = NULL, **old_defs = NULL;
    struct cdm_names seen = { 0 }, fresh = { 0 };
    struct cdm_notes notes = { 0 };
    struct guard g;
    cdm_conn *dead = NULL;
    size_t n = 0, total = 0, k = 0, old_n = 0;
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
        if ((rc = cdm__load(paths[i], &ls[i])) != CDM_OK)
            goto out;
        total += ls[i].ndefs;
    }

    rc = cdm__names_reserve(&seen, total);
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < n && rc == CDM_OK; i++)
        rc = check_clash(m, &ls[i], true, &seen);
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
    if (rc == CDM_OK) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < ls[i].ndefs; j++)
                defs[k++] = ls[i].defs[j];
        for (size_t i = 0; i < m->ndefs; i++)
            if (!m->defs[i]->src)
                defs[k++] = m->defs[i];
        /* The new index before anything changes: nothing fails after. */
        rc = cdm__names_build(&fresh, defs, k);
    }
    /* The safety rule, on the definitions as the reload would leave them. */
    if (rc == CDM_OK &&
        (rc = guard_begin(m, &g, cdm__manager_lookup, m)) == CDM_OK) {
        rc = guard_check(&g, cdm__names_lookup, &fresh);
        if (rc == CDM_OK)
            note_reload(m, &g, &fresh, &notes);
        guard_end(&g);
    }
    if (rc != CDM_OK) {
        pthread_mutex_unlock(&m->lock);
        cdm__names_clear(&fresh);
        free(defs);
        goto out;
    }
    cdm__names_clear(&m->names);
    m->names = fresh;
    /* The old file definitions are freed after the lock is let go (a
     * large file's take a while): the array keeps them, the private ones
     * moved to `defs`.  Pools belong to names: the refresh below bumps a
     * pool's generation if its parameters changed. */
    old_defs = m->defs;
    old_n = m->ndefs;
    m->defs = defs;
    m->ndefs = k;
    m->cap = total + (k - total) + 1;
    for (size_t i = 0; i < n; i++) {
        cdm__source_release(m->files[i]);
        m->files[i] = ls[i].src;
        ls[i].src = NULL;
        ls[i].ndefs = 0;
    }
    dead = refresh_pools(m);
    pthread_mutex_unlock(&m->lock);
    cdm__pool_close_list(dead);
    for (size_t i = 0; i < old_n; i++)
        if (old_defs[i]->src)
            cdm__def_free(old_defs[i]);
    free(old_defs);
    for (size_t i = 0; i < n; i++)
        cdm__notes_flush(m, &ls[i].notes);
    cdm__notes_flush(m, &notes);
out:
    cdm__names_clear(&seen);
    for (size_t i = 0; ls && i < n; i++)
        cdm__loaded_free(&ls[i]);
    free(ls);
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
    return rc;
}

/* ------------------------------------------------------------ watching */

/* The files' signatures now (all zero for one that cannot be looked at),
 * and whether any differs from the one read.  NULL when out of memory. */
static struct cdm_filesig *look_at_files(cdm_manager *m, size_t *n,
                                         bool *changed)
{
    struct cdm_filesig *had, *now;
    char **paths;
    size_t count;

    pthread_mutex_lock(&m->lock);
    count = m->nfiles;
    had = calloc(count + 1, sizeof *had);
    now = calloc(count + 1, sizeof *now);
    paths = calloc(count + 1, sizeof *paths);
    for (size_t i = 0; had && now && paths && i < count; i++) {
        had[i] = m->files[i]->sig;
        paths[i] = cdm__strdup(m->files[i]->path);
    }
    pthread_mutex_unlock(&m->lock);
    *changed = false;
    for (size_t i = 0; had && now && paths && i < count; i++) {
        struct stat st;
        if (paths[i] && stat(paths[i], &st) == 0)
            cdm__filesig(&st, &now[i]);
        if (!cdm__filesig_eq(&now[i], &had[i]))
            *changed = true;
    }
    cdm_strv_free(paths);
    if (!had || !paths) {
        free(now);
        now = NULL;
    }
    free(had);
    *n = count;
    return now;
}

/* How soon a look follows one that saw a change, to see it settled. */
#define SETTLE_MS 20

static bool sigs_eq(const struct cdm_filesig *a, size_t na,
                    const struct cdm_filesig *b, size_t nb)
{
    if (!a || !b || na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!cdm__filesig_eq(&a[i], &b[i]))
            return false;
    return true;
}

/* One look at the files, and the reload if they changed and the change
 * has settled (the same at two looks in a row: an editor writing in place
 * is not caught halfway).  Returns how soon to look again (0: at the
 * interval). */
static int watch_once(cdm_manager *m)
{
    struct cdm_filesig *now;
    bool changed, said, settled, closed;
    size_t n;
    int rc;

    now = look_at_files(m, &n, &changed);
    if (!now || !changed) {
        pthread_mutex_lock(&m->lock);
        free(m->watch_seen);
        m->watch_seen = NULL;
        pthread_mutex_unlock(&m->lock);
        free(now);
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    /* A change that failed is said once, not at every look. */
    said = sigs_eq(m->watch_failed, m->watch_nfailed, now, n);
    settled = sigs_eq(m->watch_seen, m->watch_nseen, now, n);
    closed = m->closed;
    if (!said && !settled) {
        free(m->watch_seen);
        m->watch_seen = now;
        m->watch_nseen = n;
        now = NULL;
    }
    pthread_mutex_unlock(&m->lock);
    if (said || closed) {
        free(now);
        return 0;
    }
    if (!settled)
        return SETTLE_MS;
    if ((rc = cdm_manager_reload(m)) != CDM_OK) {
        cdm__log(m, CDM_LOG_ERROR, "watch: the changed definition files were "
                 "not reloaded; the definitions loaded before keep serving: "
                 "%s", cdm_errmsg());
        pthread_mutex_lock(&m->lock);
        free(m->watch_failed);
        m->watch_failed = now;
        m->watch_nfailed = n;
        pthread_mutex_unlock(&m->lock);
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    free(m->watch_failed);
    m->watch_failed = NULL;
    m->watch_nfailed = 0;
    pthread_mutex_unlock(&m->lock);
    cdm__log(m, CDM_LOG_INFO, "watch: definition files changed; reloaded");
    free(now);
    return 0;
}

/* The cleanup thread's call, every cdm_manager_watch interval. */
static int watch_files(void *ctx)
{
    cdm_manager *m = ctx;
    int soon = watch_once(m);

    atomic_fetch_add(&m->watch_looks, 1);
    return soon;
}

/* Test hook: how many times the watch has looked at the files. */
uint64_t cdm__manager_watch_looks(cdm_manager *m)
{
    return atomic_load(&m->watch_looks);
}

int cdm_manager_watch(cdm_manager *m, int interval_ms)
{
    if (!m)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_watch: manager is NULL");
    if (interval_ms != 0 && interval_ms < 10)
        return cdm__fail(CDM_ERR_INVALID,
                         "cdm_manager_watch: interval %d ms (0 stops "
                         "watching, at least 10 ms otherwise)", interval_ms);
    pthread_mutex_lock(&m->lock);
    if (m->closed) {
        pthread_mutex_unlock(&m->lock);
        return cdm__fail(CDM_ERR_CLOSED, "cdm_manager_watch: the manager is "
                         "closed");
    }
    m->watch_ms = interval_ms;
    cdm__registry_watch(cdm__manager_registry(m), interval_ms, watch_files, m);
    pthread_mutex_unlock(&m->lock);
    return CDM_OK;
}

/* ------------------------------------------------ private definitions */

int cdm_manager_add_def(cdm_manager *m, const char *name,
                        const char *const *params)
{
    struct cdm_notes notes = { 0 };
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
        rc = cdm__def_check_own(d, true, cdm__note, &notes);
    if (rc != CDM_OK) {
        cdm__def_free(d);
        cdm__notes_flush(NULL, &notes);
        return rc;
    }
    pthread_mutex_lock(&m->lock);
    if ((old = cdm__manager_find(m, name, NULL))) {
        where_defined(old, there, sizeof there);
        rc = cdm__fail(CDM_ERR_EXISTS,
                       "definition '%s' already exists (%s)", name, there);
    } else if ((rc = reserve(m, 1)) == CDM_OK &&
               (rc = cdm__names_put(&m->names, d)) == CDM_OK) {
        struct without w = { m, d };
        struct guard g;
        m->defs[m->ndefs++] = d;
        /* A new name can complete a pooled definition's chain, not break
         * it; the rule holds for every change all the same. */
        if ((rc = guard_begin(m, &g, without_lookup, &w)) == CDM_OK) {
            rc = guard_check(&g, cdm__manager_lookup, m);
            guard_end(&g);
        }
        if (rc == CDM_OK) {
            d = NULL;
            dead = refresh_pools(m);
        } else {
            m->ndefs--;
            cdm__names_del(&m->names, d);
        }
    }
    pthread_mutex_unlock(&m->lock);
    cdm__pool_close_list(dead);
    cdm__def_free(d);
    cdm__notes_flush(rc == CDM_OK ? m : NULL, &notes);
    return rc;
}

int cdm_manager_set_param(cdm_manager *m, const char *name, const char *key,
                          const char *value)
{
    struct cdm_def *d;
    struct guard g = { 0 };
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
    if (!(d = cdm__manager_find(m, name, NULL))) {
        rc = cdm__manager_not_found(m, name);
        goto out;
    }
    /* The value comes from the caller, not from a line of the file. */
    snprintf(where, sizeof where, "definition '%s'", d->name);
    if (value && (rc = cdm__def_check_value(d, where, key, value,
                                            &hint_text)) != CDM_OK)
        goto out;
    if ((rc = guard_begin(m, &g, cdm__manager_lookup, m)) != CDM_OK)
        goto out;
    {
        struct cdm_kv *had = cdm__def_find(d, key), *now;
        char *before = had ? cdm__strdup(had->value) : NULL;
        int line = had ? had->line : 0;
        if (had && !before) {
            rc = cdm__nomem();
            goto out;
        }
        bool noted = d->src && cdm__def_note_memory(d, key);
        rc = cdm__def_set(d, key, value, 0);
        /* In memory now: messages must not send anyone to the file. */
        if (rc == CDM_OK && (now = cdm__def_find(d, key)))
            now->line = 0;
        if (rc == CDM_OK && (rc = cdm__def_check_pair(d)) == CDM_OK)
            rc = guard_check(&g, cdm__manager_lookup, m);
        if (rc != CDM_OK) {
            /* Refused as a whole: the definition stays as it was. */
            char saved[CDM_MSG_MAX];
            cdm__errmsg_save(saved);
            cdm__def_set(d, key, before, line);
            if (noted)
                cdm__def_unnote_last(d);
            cdm__errmsg_restore(saved);
        }
        free(before);
    }
    if (rc == CDM_OK)
        dead = refresh_pools(m);
out:
    pthread_mutex_unlock(&m->lock);
    guard_end(&g);
    cdm__pool_close_list(dead);
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
    if ((d = cdm__manager_find(m, name, &i))) {
        struct without w = { m, d };
        struct guard g;
        /* A parent that a pooled definition needs stays. */
        if ((rc = guard_begin(m, &g, cdm__manager_lookup, m)) == CDM_OK) {
            rc = guard_check(&g, without_lookup, &w);
            guard_end(&g);
        }
        if (rc != CDM_OK) {
            pthread_mutex_unlock(&m->lock);
            return rc;
        }
        cdm__names_del(&m->names, d);
        memmove(m->defs + i, m->defs + i + 1,
                (m->ndefs - i - 1) * sizeof *m->defs);
        m->ndefs--;
        dead = refresh_pools(m);
    } else {
        rc = cdm__manager_not_found(m, name);
    }
    pthread_mutex_unlock(&m->lock);
    cdm__pool_close_list(dead);
    cdm__def_free(d);
    return rc;
}

int cdm_manager_has_def(cdm_manager *m, const char *name)
{
    int found;

    if (!m || !name)
        return 0;
    pthread_mutex_lock(&m->lock);
    found = cdm__manager_find(m, name, NULL) != NULL;
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
    rc = cdm__manager_resolve(m, name, &r);
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
    cdm_conn *dead = NULL;
    int rc = CDM_OK;

    if (!m || !name)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_close_def: %s is NULL",
                         m ? "name" : "manager");
    pthread_mutex_lock(&m->lock);
    if (cdm__manager_find(m, name, NULL))
        dead = cdm__registry_detach(cdm__manager_registry(m), name);
    else
        rc = cdm__manager_not_found(m, name);
    pthread_mutex_unlock(&m->lock);
    cdm__pool_close_list(dead);
    return rc;
}

int cdm_manager_pool_stats(cdm_manager *m, const char *name,
                           cdm_pool_stats *out)
{
    struct cdm_resolved *r = NULL;
    char saved[CDM_MSG_MAX];
    int rc = CDM_OK;

    if (!m || !name || !out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_manager_pool_stats: argument is NULL");
    cdm__errmsg_save(saved);
    pthread_mutex_lock(&m->lock);
    if (!cdm__manager_find(m, name, NULL)) {
        rc = cdm__manager_not_found(m, name);
    } else if (cdm__resolve_chain(name, cdm__manager_lookup, m, &r) == CDM_OK &&
               cdm__resolve_finish(r) == CDM_OK && !cdm__rget_bool(r, "Pooled")) {
        /* A connect would open a plain connection: there is no pool to
         * count, now or later.  One that does not resolve has no pool
         * either, but may get one once it is fixed: its figures. */
        rc = cdm__fail(CDM_ERR_STATE, "definition '%s' is not pooled, so it "
                       "has no pool figures (Pooled=True would pool it)",
                       r->name);
    } else {
        cdm__registry_stats(cdm__manager_registry(m), name, out);
        cdm__errmsg_restore(saved);   /* resolving's, not this call's */
    }
    pthread_mutex_unlock(&m->lock);
    cdm__resolved_free(r);
    return rc;
}
