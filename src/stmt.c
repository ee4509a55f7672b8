/*
 * stmt.c - prepared statements with typed parameters, and each physical
 * connection's cache of statements prepared on the server.
 *
 * The cache holds the last StatementCacheSize statements a connection
 * prepared, by SQL text, most recently used first; cdm_prepare and
 * cdm_exec/cdm_query with parameters take from it, so a pooled
 * connection prepares a statement once for all its borrowers.  An entry
 * in use by an open cdm_stmt is never evicted (the cache grows past its
 * size for a moment instead).  A statement the server no longer knows
 * (the driver says CDM__STALE) is prepared again once.  The cache goes
 * with a session reset (the server dropped the statements) and with the
 * connection.
 */
#include "cdm_int.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

struct cdm_cached {
    char *sql;
    size_t sqllen;
    uint64_t hash;
    void *ps;                 /* the driver's handle */
    size_t nparams;
    int users;                /* open cdm_stmt on it */
    bool in_cache;            /* else private: freed with its last user */
    struct cdm_cached *prev, *next;   /* the cache, most recent first */
};

struct cdm_stmt {
    cdm_conn *c;              /* NULL once its connection went back */
    struct cdm_cached *e;
    struct cdm_value *v;      /* n values, bound[] says which */
    bool *bound;
    size_t n;
    cdm_stmt *prev, *next;    /* the connection's open statements */
};

static uint64_t text_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ------------------------------------------------------------ the cache */

static void unlink_entry(cdm_conn *c, struct cdm_cached *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->cache_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    e->prev = e->next = NULL;
    e->in_cache = false;
    c->cache_n--;
}

static void push_front(cdm_conn *c, struct cdm_cached *e)
{
    e->prev = NULL;
    e->next = c->cache_head;
    if (c->cache_head)
        c->cache_head->prev = e;
    c->cache_head = e;
    e->in_cache = true;
    c->cache_n++;
}

/* Frees an entry that is in no list, telling the server if it still
 * knows the statement. */
static void drop(cdm_conn *c, struct cdm_cached *e, bool server_knows)
{
    if (e->ps)
        c->drv->unprepare(c->dc, e->ps, server_knows && !c->broken);
    free(e->sql);
    free(e);
}

/* Evicts unused entries from the tail while the cache is over its size. */
static void trim(cdm_conn *c)
{
    struct cdm_cached *e = c->cache_head, *tail = NULL;

    if (c->cache_n <= (size_t)c->cache_size)
        return;
    while (e) {
        tail = e;
        e = e->next;
    }
    while (c->cache_n > (size_t)c->cache_size && tail) {
        struct cdm_cached *prev = tail->prev;
        if (tail->users == 0) {
            unlink_entry(c, tail);
            drop(c, tail, true);
        }
        tail = prev;
    }
}

void cdm__stmt_cache_clear(cdm_conn *c, bool server_knows)
{
    struct cdm_cached *e = c->cache_head;

    while (e) {
        struct cdm_cached *next = e->next;
        if (e->users) {
            /* Its statement is still open: it keeps the entry, which no
             * longer has a handle the server knows. */
            unlink_entry(c, e);
            if (!server_knows && e->ps) {
                c->drv->unprepare(c->dc, e->ps, false);
                e->ps = NULL;
            }
        } else {
            unlink_entry(c, e);
            drop(c, e, server_knows);
        }
        e = next;
    }
}

/* Prepares e's SQL again (its handle is gone or stale). */
static int reprepare(cdm_conn *c, struct cdm_cached *e)
{
    size_t n = 0;
    void *ps = NULL;
    int rc;

    if (e->ps) {
        c->drv->unprepare(c->dc, e->ps, false);
        e->ps = NULL;
    }
    if ((rc = c->drv->prepare(c->dc, e->sql, &ps, &n)) != CDM_OK)
        return rc;
    if (n != e->nparams) {
        /* The statement means something else now (a schema change): its
         * values were bound for the old one. */
        c->drv->unprepare(c->dc, ps, true);
        return cdm__fail(CDM_ERR_STATE, "the statement now has %zu "
                         "parameters, not %zu; prepare it again", n,
                         e->nparams);
    }
    e->ps = ps;
    return CDM_OK;
}

/* The prepared statement for `sql`, from the cache or prepared now, with
 * one more user. */
static int take(cdm_conn *c, const char *sql, struct cdm_cached **out)
{
    size_t len = strlen(sql);
    uint64_t h = text_hash(sql, len);
    struct cdm_cached *e;
    int rc;

    for (e = c->cache_head; e; e = e->next)
        if (e->hash == h && e->sqllen == len && memcmp(e->sql, sql, len) == 0)
            break;
    if (e) {
        if (e != c->cache_head) {
            unlink_entry(c, e);
            push_front(c, e);
        }
        if (!e->ps && (rc = reprepare(c, e)) != CDM_OK)
            return rc;
        e->users++;
        *out = e;
        return CDM_OK;
    }
    if (!(e = calloc(1, sizeof *e)) || !(e->sql = cdm__strndup(sql, len))) {
        free(e);
        return cdm__nomem();
    }
    e->sqllen = len;
    e->hash = h;
    if ((rc = c->drv->prepare(c->dc, sql, &e->ps, &e->nparams)) != CDM_OK) {
        free(e->sql);
        free(e);
        return rc;
    }
    e->users = 1;
    if (c->cache_size > 0) {
        push_front(c, e);
        trim(c);
    }
    *out = e;
    return CDM_OK;
}

static void give_back(cdm_conn *c, struct cdm_cached *e)
{
    if (--e->users > 0)
        return;
    if (!e->in_cache)
        drop(c, e, e->ps != NULL);
    else
        trim(c);
}

/* Runs e with `v`, preparing it again once if the server forgot it. */
static int run(cdm_conn *c, struct cdm_cached *e, const struct cdm_value *v,
               int64_t *affected, cdm_result **out)
{
    int rc = e->ps ? c->drv->run(c->dc, e->ps, v, e->nparams, affected, out)
                   : CDM__STALE;

    if (rc == CDM__STALE && (rc = reprepare(c, e)) == CDM_OK)
        rc = c->drv->run(c->dc, e->ps, v, e->nparams, affected, out);
    if (rc == CDM__STALE)
        /* Prepared and gone at once: the statement went to one server
         * session and the run to another. */
        rc = cdm__fail(CDM_ERR_QUERY, "the server does not know the "
                       "statement it prepared a moment ago: is a pooler in "
                       "transaction mode (such as PgBouncer) between cdm "
                       "and the server?  Set StatementCacheSize=0 for this "
                       "definition");
    return rc;
}

/* cdm_exec/cdm_query with parameters, through the cache: values as text. */
int cdm__stmt_run_text(cdm_conn *c, const char *sql, const char *const *params,
                       size_t n, int64_t *affected, cdm_result **out)
{
    struct cdm_value small[16], *v = small;
    struct cdm_cached *e;
    int rc;

    if ((rc = take(c, sql, &e)) != CDM_OK)
        return rc;
    if (n != e->nparams) {
        rc = cdm__fail(CDM_ERR_INVALID, "%zu parameters given, but the "
                       "statement has %zu", n, e->nparams);
        goto out;
    }
    if (n > 16 && !(v = calloc(n, sizeof *v))) {
        rc = cdm__nomem();
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = params[i] ? (struct cdm_value){ .type = CDM_TYPE_TEXT,
                                               .p = params[i],
                                               .len = strlen(params[i]) }
                         : (struct cdm_value){ .type = CDM_TYPE_NULL };
    rc = run(c, e, v, affected, out);
    if (v != small)
        free(v);
out:
    give_back(c, e);
    return rc;
}

/* ----------------------------------------------------- cdm_stmt (API) */

static void free_value(struct cdm_value *v)
{
    if (v->type == CDM_TYPE_TEXT || v->type == CDM_TYPE_BLOB)
        free((void *)v->p);
    memset(v, 0, sizeof *v);
}

/* Its connection went back: the statement keeps only its values. */
static void detach(cdm_stmt *s)
{
    cdm_conn *c = s->c;

    if (s->prev)
        s->prev->next = s->next;
    else
        c->stmts = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    give_back(c, s->e);
    s->e = NULL;
    s->c = NULL;
}

void cdm__stmt_detach_all(cdm_conn *c)
{
    while (c->stmts)
        detach(c->stmts);
}

int cdm_prepare(cdm_conn *c, const char *sql, cdm_stmt **out)
{
    cdm_stmt *s;
    int rc;

    if (!out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_prepare: out is NULL");
    *out = NULL;
    if ((rc = cdm__conn_enter(c, "prepare")) != CDM_OK)
        return rc;
    if (!sql)
        rc = cdm__fail(CDM_ERR_INVALID, "SQL text is NULL");
    else if (!c->drv->prepare)
        rc = cdm__fail(CDM_ERR_DRIVER, "driver %s does not prepare "
                       "statements", c->drv->id);
    else if (!(s = calloc(1, sizeof *s)))
        rc = cdm__nomem();
    else if ((rc = take(c, sql, &s->e)) != CDM_OK)
        free(s);
    else if (!(s->v = calloc(s->e->nparams + 1, sizeof *s->v)) ||
             !(s->bound = calloc(s->e->nparams + 1, sizeof *s->bound))) {
        give_back(c, s->e);
        free(s->v);
        free(s);
        rc = cdm__nomem();
    } else {
        s->n = s->e->nparams;
        s->c = c;
        s->next = c->stmts;
        if (c->stmts)
            c->stmts->prev = s;
        c->stmts = s;
        *out = s;
    }
    return cdm__conn_leave(c, rc);
}

size_t cdm_stmt_nparams(const cdm_stmt *s)
{
    return s && s->e ? s->e->nparams : 0;
}

/* The slot of the ith value, for a bind. */
static int slot(cdm_stmt *s, size_t i, const char *what, struct cdm_value **out)
{
    if (!s)
        return cdm__fail(CDM_ERR_INVALID, "%s: statement is NULL", what);
    if (!s->c)
        return cdm__fail(CDM_ERR_STATE, "%s: the statement's connection was "
                         "returned (cdm_disconnect); only cdm_stmt_free is "
                         "left", what);
    if (i >= s->e->nparams)
        return cdm__fail(CDM_ERR_INVALID, "%s: parameter %zu is out of range "
                         "(the statement has %zu; the first is 0)", what, i,
                         s->e->nparams);
    free_value(&s->v[i]);
    s->bound[i] = false;
    *out = &s->v[i];
    return CDM_OK;
}

int cdm_bind_null(cdm_stmt *s, size_t i)
{
    struct cdm_value *v;
    int rc = slot(s, i, "cdm_bind_null", &v);

    if (rc == CDM_OK)
        s->bound[i] = true;
    return rc;
}

int cdm_bind_int64(cdm_stmt *s, size_t i, int64_t x)
{
    struct cdm_value *v;
    int rc = slot(s, i, "cdm_bind_int64", &v);

    if (rc == CDM_OK) {
        v->type = CDM_TYPE_INT;
        v->i = x;
        s->bound[i] = true;
    }
    return rc;
}

int cdm_bind_double(cdm_stmt *s, size_t i, double x)
{
    struct cdm_value *v;
    int rc = slot(s, i, "cdm_bind_double", &v);

    if (rc == CDM_OK) {
        v->type = CDM_TYPE_FLOAT;
        v->d = x;
        s->bound[i] = true;
    }
    return rc;
}

static int bind_bytes(cdm_stmt *s, size_t i, int type, const void *p,
                      size_t len, const char *what)
{
    struct cdm_value *v;
    char *copy;
    int rc = slot(s, i, what, &v);

    if (rc != CDM_OK)
        return rc;
    if (!p && len)
        return cdm__fail(CDM_ERR_INVALID, "%s: value is NULL with length "
                         "%zu (use cdm_bind_null for SQL NULL)", what, len);
    if (len == SIZE_MAX || !(copy = malloc(len + 1)))
        return cdm__nomem();
    if (len)
        memcpy(copy, p, len);
    copy[len] = '\0';
    v->type = type;
    v->p = copy;
    v->len = len;
    s->bound[i] = true;
    return CDM_OK;
}

int cdm_bind_text(cdm_stmt *s, size_t i, const char *v, size_t len)
{
    if (len == CDM_NTS) {
        if (!v)
            return cdm__fail(CDM_ERR_INVALID, "cdm_bind_text: value is NULL "
                             "(use cdm_bind_null for SQL NULL)");
        len = strlen(v);
    }
    return bind_bytes(s, i, CDM_TYPE_TEXT, v, len, "cdm_bind_text");
}

int cdm_bind_blob(cdm_stmt *s, size_t i, const void *v, size_t len)
{
    return bind_bytes(s, i, CDM_TYPE_BLOB, v, len, "cdm_bind_blob");
}

static int stmt_run(cdm_stmt *s, const char *what, int64_t *affected,
                    cdm_result **out)
{
    cdm_conn *c;
    int rc;

    if (!s)
        return cdm__fail(CDM_ERR_INVALID, "%s: statement is NULL", what);
    if (!(c = s->c))
        return cdm__fail(CDM_ERR_STATE, "%s: the statement's connection was "
                         "returned (cdm_disconnect); only cdm_stmt_free is "
                         "left", what);
    if ((rc = cdm__conn_enter(c, what)) != CDM_OK)
        return rc;
    for (size_t i = 0; i < s->e->nparams && rc == CDM_OK; i++)
        if (!s->bound[i])
            rc = cdm__fail(CDM_ERR_STATE, "%s: parameter %zu of %zu is not "
                           "bound", what, i, s->e->nparams);
    if (rc == CDM_OK)
        rc = run(c, s->e, s->v, affected, out);
    return cdm__conn_leave(c, rc);
}

int cdm_stmt_exec(cdm_stmt *s, int64_t *affected)
{
    int64_t n = 0;
    int rc = stmt_run(s, "cdm_stmt_exec", &n, NULL);

    if (rc == CDM_OK && affected)
        *affected = n;
    return rc;
}

int cdm_stmt_query(cdm_stmt *s, cdm_result **out)
{
    if (!out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_stmt_query: out is NULL");
    *out = NULL;
    return stmt_run(s, "cdm_stmt_query", NULL, out);
}

void cdm_stmt_free(cdm_stmt *s)
{
    if (!s)
        return;
    if (s->c) {
        cdm_conn *c = s->c;
        char saved[CDM_MSG_MAX];
        /* Like any call on the connection: not while another thread is in
         * it (that would be a bug of the caller's; waiting is safe). */
        cdm__errmsg_save(saved);
        while (cdm__conn_enter(c, "cdm_stmt_free") != CDM_OK)
            sched_yield();
        detach(s);
        cdm__conn_leave(c, CDM_OK);
        cdm__errmsg_restore(saved);
    }
    for (size_t i = 0; i < s->n; i++)
        free_value(&s->v[i]);
    free(s->bound);
    free(s->v);
    free(s);
}
