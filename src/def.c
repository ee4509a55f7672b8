/*
 * def.c - connection definitions: their parameters as written, checks of
 * the values a definition sets itself, and resolution for use (parent
 * chain, $(VAR) expansion, driver, required keys).
 */
#include "cdm_int.h"

#include <limits.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longer parent chains are surely a mistake; also bounds the cycle check. */
#define CHAIN_MAX 32

void cdm__source_release(struct cdm_source *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s->path);
        free(s->dir);
        free(s);
    }
}

struct cdm_def *cdm__def_new(const char *name, struct cdm_source *src, int line)
{
    struct cdm_def *d = calloc(1, sizeof *d);

    if (!d || !(d->name = cdm__strdup(name))) {
        free(d);
        return NULL;
    }
    d->src = src;
    if (src)
        atomic_fetch_add(&src->refs, 1);
    d->line = line;
    return d;
}

void cdm__def_free(struct cdm_def *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nkv; i++) {
        free(d->kv[i].key);
        free(d->kv[i].value);
    }
    free(d->kv);
    free(d->name);
    cdm_strv_free(d->memory);
    cdm__source_release(d->src);
    free(d);
}

struct cdm_kv *cdm__def_find(const struct cdm_def *d, const char *key)
{
    for (size_t i = 0; i < d->nkv; i++)
        if (cdm__streq_nocase(d->kv[i].key, key))
            return &d->kv[i];
    return NULL;
}

bool cdm__def_note_memory(struct cdm_def *d, const char *key)
{
    size_t n = 0;
    char **v;

    while (d->memory && d->memory[n])
        if (cdm__streq_nocase(d->memory[n++], key))
            return false;
    /* Out of memory only loses the reload's word about it. */
    if (!(v = realloc(d->memory, (n + 2) * sizeof *v)))
        return false;
    d->memory = v;
    v[n] = cdm__strdup(key);
    v[n + 1] = NULL;
    return v[n] != NULL;
}

void cdm__def_unnote_last(struct cdm_def *d)
{
    size_t n = 0;

    while (d->memory && d->memory[n])
        n++;
    if (n == 0)
        return;
    free(d->memory[n - 1]);
    d->memory[n - 1] = NULL;
    if (n == 1) {
        free(d->memory);
        d->memory = NULL;
    }
}

int cdm__def_set(struct cdm_def *d, const char *key, const char *value, int line)
{
    struct cdm_kv *kv = cdm__def_find(d, key);
    char *v;

    if (!value) {
        if (kv) {
            free(kv->key);
            free(kv->value);
            memmove(kv, kv + 1, (size_t)(d->kv + d->nkv - kv - 1) * sizeof *kv);
            d->nkv--;
        }
        d->gen++;
        return CDM_OK;
    }
    if (!(v = cdm__strdup(value)))
        return cdm__nomem();
    if (kv) {
        /* Keeps the key as first written and its place in the file. */
        free(kv->value);
        kv->value = v;
        if (line)
            kv->line = line;
        d->gen++;
        return CDM_OK;
    }
    if (d->nkv == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        struct cdm_kv *p = realloc(d->kv, cap * sizeof *p);
        if (!p) {
            free(v);
            return cdm__nomem();
        }
        d->kv = p;
        d->cap = cap;
    }
    kv = &d->kv[d->nkv];
    if (!(kv->key = cdm__strdup(key))) {
        free(v);
        return cdm__nomem();
    }
    kv->value = v;
    kv->line = line;
    d->nkv++;
    d->gen++;
    return CDM_OK;
}

int cdm__def_take(struct cdm_def *d, char *key, char *value, int line)
{
    if (d->nkv == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        struct cdm_kv *p = realloc(d->kv, cap * sizeof *p);
        if (!p)
            return cdm__nomem();
        d->kv = p;
        d->cap = cap;
    }
    d->kv[d->nkv++] = (struct cdm_kv){ key, value, line };
    d->gen++;
    return CDM_OK;
}

void cdm__def_where(const struct cdm_def *d, const struct cdm_kv *kv,
                    char *buf, size_t size)
{
    /* Changed in memory: the file's section no longer says what the
     * definition is, so only its name is given. */
    int line = kv ? kv->line : d->memory ? 0 : d->line;

    if (d->src && line > 0)
        snprintf(buf, size, "%s:%d: definition '%s'", d->src->path, line,
                 d->name);
    else
        snprintf(buf, size, "definition '%s'", d->name);
}

bool cdm__name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    /* Must survive a round trip through a [section] line. */
    if (n == 0 || n > CDM_NAME_MAX || name[0] == ' ' || name[n - 1] == ' ' ||
        name[0] == ';' || name[0] == '#')
        return false;
    if (cdm__text_bad(name, n) != n)
        return false;
    for (const char *p = name; *p; p++)
        if (*p == '[' || *p == ']' || *p == ':')
            return false;
    return true;
}

bool cdm__key_valid(const char *key)
{
    size_t n = key ? strlen(key) : 0;

    if (n == 0 || n > 64 || key[0] == '[' || key[0] == ';' || key[0] == '#')
        return false;
    if (cdm__text_bad(key, n) != n)
        return false;
    for (const char *p = key; *p; p++)
        if (*p == ' ' || *p == '=' || *p == ':')
            return false;
    return true;
}

/* The line cdm__def_where names, 0 if none. */
static int def_line(const struct cdm_def *d, const struct cdm_kv *kv)
{
    int line = kv ? kv->line : d->line;

    return d->src && line > 0 ? line : 0;
}

static void issue(cdm_warn_fn fn, void *ctx, int level, int line,
                  const char *def, const char *key, const char *text)
{
    struct cdm_issue is = {
        .level = level, .line = line, .def = def, .key = key, .text = text,
    };

    if (fn)
        fn(ctx, &is);
}

static const struct cdm_kv *parent_kv(const struct cdm_def *d);

static struct cdm_drvctx own_driver(const struct cdm_def *d)
{
    const struct cdm_kv *kv = cdm__def_find(d, "DriverID");

    return cdm__drvctx(kv ? kv->value : NULL);
}

/* The text of the warning for a key that is not a parameter of the
 * definition's driver, or NULL for one that is.  Never the value: a
 * misspelt Password key would show it. */
static char *key_hint(const struct cdm_drvctx *c, const char *where,
                      const char *key, enum cdm_key_kind kind)
{
    const char *near;

    if (kind == CDM_KEY_OTHER)
        return cdm__asprintf("%s: %s is not used by driver %s", where, key,
                             c->name);
    if (kind != CDM_KEY_UNKNOWN)
        return NULL;
    if ((near = cdm__param_suggest_for(c, key)))
        return cdm__asprintf("%s: unknown key %s (did you mean %s?)", where,
                             key, near);
    return cdm__asprintf("%s: unknown key %s", where, key);
}

static bool is_pool_key(const char *key)
{
    return strncasecmp(key, "POOL_", 5) == 0;
}

/* Warns "POOL_A, POOL_B have no effect: Pooled=False, so ..." for the
 * POOL_* keys `names` (", "-separated, `n` of them), at the first of them
 * (`key`, on `line`, with `where` naming it). */
static void warn_unpooled(cdm_warn_fn warn, void *ctx, const char *where,
                          int line, const char *def, const char *key,
                          const struct cdm_buf *names, size_t n, bool pooled)
{
    char *text;

    if (names->failed)
        return;
    text = cdm__asprintf("%s: %s %s no effect: %s, so connections are not "
                         "pooled (set Pooled=True to pool them)", where,
                         names->s, n == 1 ? "has" : "have",
                         pooled ? "Pooled=False" : "Pooled is not set");
    if (text)
        issue(warn, ctx, CDM_LOG_WARN, line, def, key, text);
    free(text);
}

/* POOL_* keys a definition sets itself while it is not pooled: a
 * misspelt Pooled (Pooling=True) silently gives an unpooled service.
 * At load only what the definition decides alone is reported: with a
 * parent and no Pooled of its own, cdm check reports it once resolved. */
static void check_unpooled(const struct cdm_def *d, cdm_warn_fn warn,
                           void *ctx)
{
    const struct cdm_kv *pooled = cdm__def_find(d, "Pooled");
    const struct cdm_kv *first = NULL;
    struct cdm_buf names = { 0 };
    char where[512];
    size_t n = 0;
    bool on;

    if (!pooled && parent_kv(d))
        return;     /* the parent may pool it */
    if (pooled && (cdm__parse_bool(pooled->value, &on) != CDM_OK || on))
        return;     /* pooled, or a bad or $(VAR) value reported elsewhere */
    for (size_t i = 0; i < d->nkv; i++)
        if (is_pool_key(d->kv[i].key)) {
            cdm__buf_addf(&names, "%s%s", n++ ? ", " : "", d->kv[i].key);
            if (!first)
                first = &d->kv[i];
        }
    if (first) {
        cdm__def_where(d, first, where, sizeof where);
        warn_unpooled(warn, ctx, where, def_line(d, first), d->name,
                      first->key, &names, n, pooled != NULL);
    }
    cdm__buf_free(&names);
}

int cdm__def_check_pair(const struct cdm_def *d)
{
    const struct cdm_kv *kmin = cdm__def_find(d, "POOL_MinimumItems");
    const struct cdm_kv *kmax = cdm__def_find(d, "POOL_MaximumItems");
    long long min, max;
    char where[512];

    if (!kmin || !kmax ||
        cdm__parse_int(kmin->value, 0, 1000, &min) != CDM_OK ||
        cdm__parse_int(kmax->value, INT_MIN, INT_MAX, &max) != CDM_OK ||
        max <= 0 || min <= max)
        return CDM_OK;
    cdm__def_where(d, kmin, where, sizeof where);
    return cdm__fail(CDM_ERR_INVALID, "%s: POOL_MinimumItems=%lld is more "
                     "than POOL_MaximumItems=%lld", where, min, max);
}

int cdm__def_check_value(const struct cdm_def *d, const char *where,
                         const char *key, const char *value, char **hint)
{
    const struct cdm_kv *kv = cdm__def_find(d, "DriverID");
    struct cdm_drvctx c = cdm__drvctx(cdm__streq_nocase(key, "DriverID")
                                          ? value : kv ? kv->value : NULL);
    const struct cdm_param_spec *spec;
    enum cdm_key_kind kind = cdm__key_kind(&c, key, &spec);

    *hint = key_hint(&c, where, key, kind);
    if (kind == CDM_KEY_CHECKED && !strstr(value, "$("))
        return cdm__param_check(spec, where, key, value);
    return CDM_OK;
}

int cdm__def_check_own(const struct cdm_def *d, bool strict, cdm_warn_fn warn,
                       void *ctx)
{
    struct cdm_drvctx c = own_driver(d);
    char where[512], saved[CDM_MSG_MAX];
    int first = CDM_OK;

    /* Warnings must not replace the message of the caller's last failure. */
    if (!strict)
        cdm__errmsg_save(saved);

    for (size_t i = 0; i < d->nkv; i++) {
        const struct cdm_kv *kv = &d->kv[i];
        const struct cdm_param_spec *spec;
        enum cdm_key_kind kind = cdm__key_kind(&c, kv->key, &spec);
        int rc;

        /* A FireDAC key cdm does not use: known, so silent. */
        if (kind == CDM_KEY_IGNORED)
            continue;
        /* `where` is built only for a message: loading 10,000
         * definitions spent a fifth of its time formatting unused ones. */
        if (kind != CDM_KEY_CHECKED) {
            /* Another driver's key (Port in a SQLite definition) is
             * unused, so neither checked here nor at connect.  An unknown
             * one is kept, so a newer cdm or another tool can use it. */
            char *text;
            cdm__def_where(d, kv, where, sizeof where);
            if ((text = key_hint(&c, where, kv->key, kind)))
                issue(warn, ctx, CDM_LOG_WARN, def_line(d, kv), d->name,
                      kv->key, text);
            free(text);
            continue;
        }
        /* $(VAR) values are checked once expanded, at use. */
        if (strstr(kv->value, "$("))
            continue;
        if (cdm__param_check(spec, "", kv->key, kv->value) == CDM_OK)
            continue;
        /* Again, for the message. */
        cdm__def_where(d, kv, where, sizeof where);
        rc = cdm__param_check(spec, where, kv->key, kv->value);
        if (strict)
            return rc;
        issue(warn, ctx, CDM_LOG_ERROR, def_line(d, kv), d->name, kv->key,
              cdm_errmsg());
        if (first == CDM_OK)
            first = rc;
    }
    /* One rule across two keys, when the definition sets both. */
    {
        int rc = cdm__def_check_pair(d);
        if (rc != CDM_OK) {
            const struct cdm_kv *kmin = cdm__def_find(d, "POOL_MinimumItems");
            if (strict)
                return rc;
            issue(warn, ctx, CDM_LOG_ERROR, def_line(d, kmin), d->name,
                  kmin->key, cdm_errmsg());
            if (first == CDM_OK)
                first = rc;
        }
    }
    check_unpooled(d, warn, ctx);
    if (!strict)
        cdm__errmsg_restore(saved);
    return first;
}

/* ------------------------------------------------------------ resolving */

void cdm__resolved_free(struct cdm_resolved *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nkv; i++) {
        free(r->kv[i].key);
        free(r->kv[i].value);
        free(r->kv[i].from);
    }
    for (size_t i = 0; i < r->nsrcs; i++)
        cdm__source_release(r->srcs[i]);
    free(r->srcs);
    free(r->kv);
    free(r->name);
    free(r->where);
    free(r);
}

struct cdm_resolved *cdm__resolved_clone(const struct cdm_resolved *r)
{
    struct cdm_resolved *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->drv = r->drv;
    c->line = r->line;
    c->no_create = r->no_create;
    if (!(c->name = cdm__strdup(r->name)) || !(c->where = cdm__strdup(r->where)) ||
        !(c->kv = calloc(r->nkv ? r->nkv : 1, sizeof *c->kv)) ||
        (r->nsrcs && !(c->srcs = calloc(r->nsrcs, sizeof *c->srcs))))
        goto fail;
    for (size_t i = 0; i < r->nsrcs; i++) {
        c->srcs[i] = r->srcs[i];
        atomic_fetch_add(&c->srcs[i]->refs, 1);
        c->nsrcs++;
    }
    for (size_t i = 0; i < r->nkv; i++) {
        struct cdm_rkv *d = &c->kv[i];
        *d = r->kv[i];
        d->key = cdm__strdup(r->kv[i].key);
        d->value = cdm__strdup(r->kv[i].value);
        d->from = r->kv[i].from ? cdm__strdup(r->kv[i].from) : NULL;
        c->nkv++;
        if (!d->key || !d->value || (r->kv[i].from && !d->from))
            goto fail;
    }
    return c;
fail:
    cdm__resolved_free(c);
    return NULL;
}

const struct cdm_rkv *cdm__rfind(const struct cdm_resolved *r, const char *key)
{
    for (size_t i = 0; i < r->nkv; i++)
        if (cdm__streq_nocase(r->kv[i].key, key))
            return &r->kv[i];
    return NULL;
}

const char *cdm__rget(const struct cdm_resolved *r, const char *key)
{
    const struct cdm_rkv *kv = cdm__rfind(r, key);
    const struct cdm_param_spec *spec;

    if (kv)
        return kv->value;
    spec = cdm__param_find(r->drv, key);
    return spec ? spec->def : NULL;
}

long long cdm__rget_int(const struct cdm_resolved *r, const char *key)
{
    const char *v = cdm__rget(r, key);

    return v ? strtoll(v, NULL, 10) : 0;
}

bool cdm__rget_bool(const struct cdm_resolved *r, const char *key)
{
    const char *v = cdm__rget(r, key);
    bool b = false;

    if (v)
        cdm__parse_bool(v, &b);
    return b;
}
/* Where resolving's problems go.  Connecting has none: the first problem
 * fails the call.  cdm check has one: each problem is passed on, as an
 * issue whose text is the message a connect would fail with, and the
 * checks go on where they can. */
struct report {
    cdm_warn_fn fn;
    void *ctx;
};

/* Passes on the thread's message (just set by cdm__fail) as an issue. */
static void report(const struct report *rp, int level, int line,
                   const char *def, const char *key)
{
    issue(rp->fn, rp->ctx, level, line, def, key, cdm_errmsg());
}

static const struct cdm_kv *parent_kv(const struct cdm_def *d)
{
    const struct cdm_kv *kv = cdm__def_find(d, "ConnectionDef");

    return kv ? kv : cdm__def_find(d, "Parent");
}

static const char *parent_of(const struct cdm_def *d)
{
    const struct cdm_kv *kv = parent_kv(d);

    return kv && kv->value[0] ? kv->value : NULL;
}

static int hold_source(struct cdm_resolved *r, struct cdm_source *s)
{
    struct cdm_source **p;

    for (size_t i = 0; i < r->nsrcs; i++)
        if (r->srcs[i] == s)
            return CDM_OK;
    if (!(p = realloc(r->srcs, (r->nsrcs + 1) * sizeof *p)))
        return cdm__nomem();
    r->srcs = p;
    p[r->nsrcs++] = s;
    atomic_fetch_add(&s->refs, 1);
    return CDM_OK;
}

/* The keys merged so far into a resolved definition, by hash: a parent's
 * key is looked up here instead of along the list, which made merging
 * a definition of many keys quadratic.  Slots hold index + 1 into r->kv. */
struct seen {
    size_t *slots;
    size_t mask;
};

static int seen_init(struct seen *t, size_t n)
{
    size_t cap = 32;

    while (cap < 2 * n)
        cap *= 2;
    if (!(t->slots = calloc(cap, sizeof *t->slots)))
        return CDM_ERR_NOMEM;
    t->mask = cap - 1;
    return CDM_OK;
}

static bool seen_has(const struct seen *t, const struct cdm_resolved *r,
                     const char *key)
{
    for (size_t i = cdm__nocase_hash(key) & t->mask; t->slots[i];
         i = (i + 1) & t->mask)
        if (cdm__streq_nocase(r->kv[t->slots[i] - 1].key, key))
            return true;
    return false;
}

static void seen_add(struct seen *t, const struct cdm_resolved *r, size_t k)
{
    size_t i = cdm__nocase_hash(r->kv[k].key) & t->mask;

    while (t->slots[i])
        i = (i + 1) & t->mask;
    t->slots[i] = k + 1;
}

/* With `rp`, a broken chain is reported only when it is the resolved
 * definition's own fault (its parent is missing, or the cycle runs
 * through it): a definition further up reports its own when checked. */
static int resolve_chain(const char *name, cdm_lookup_fn lookup, void *ctx,
                         struct cdm_resolved **out, const struct report *rp)
{
    const struct cdm_def *chain[CHAIN_MAX];
    struct seen seen = { 0 };
    struct cdm_resolved *r;
    size_t depth = 0, total = 0;
    const struct cdm_def *d = lookup(ctx, name);
    char where[512];

    if (!d)
        return cdm__fail(CDM_ERR_NOT_FOUND, "no definition named '%s'", name);
    for (;;) {
        const char *parent = parent_of(d);
        const struct cdm_def *p;
        const struct cdm_kv *own;

        chain[depth++] = d;
        total += d->nkv;
        if (!parent)
            break;
        own = parent_kv(chain[0]);
        cdm__def_where(d, parent_kv(d), where, sizeof where);
        if (!(p = lookup(ctx, parent))) {
            int rc = cdm__fail(CDM_ERR_NOT_FOUND,
                               "%s: parent definition '%s' not found", where,
                               parent);
            if (rp && depth == 1)
                report(rp, CDM_LOG_ERROR, def_line(d, own), d->name,
                       own->key);
            return rc;
        }
        for (size_t i = 0; i < depth; i++)
            if (chain[i] == p) {
                struct cdm_buf b = { 0 };
                int rc;
                /* Reported where the resolved definition names its
                 * parent: each definition in the cycle says so once. */
                if (rp && i == 0)
                    cdm__def_where(chain[0], own, where, sizeof where);
                for (size_t j = i; j < depth; j++)
                    cdm__buf_addf(&b, "%s -> ", chain[j]->name);
                cdm__buf_adds(&b, p->name);
                rc = cdm__fail(CDM_ERR_INVALID,
                               "%s: inheritance cycle %s", where,
                               b.s ? b.s : "");
                cdm__buf_free(&b);
                if (rp && i == 0)
                    report(rp, CDM_LOG_ERROR, def_line(chain[0], own),
                           chain[0]->name, own->key);
                return rc;
            }
        if (depth == CHAIN_MAX) {
            int rc;
            if (rp)
                cdm__def_where(chain[0], own, where, sizeof where);
            rc = cdm__fail(CDM_ERR_INVALID,
                           "%s: more than %d levels of ConnectionDef",
                           where, CHAIN_MAX);
            if (rp)
                report(rp, CDM_LOG_ERROR, def_line(chain[0], own),
                       chain[0]->name, own->key);
            return rc;
        }
        d = p;
    }

    cdm__def_where(chain[0], NULL, where, sizeof where);
    if (!(r = calloc(1, sizeof *r)) || !(r->name = cdm__strdup(chain[0]->name)) ||
        !(r->where = cdm__strdup(where)) || !(r->kv = calloc(total ? total : 1, sizeof *r->kv))) {
        cdm__resolved_free(r);
        return cdm__nomem();
    }
    r->line = def_line(chain[0], NULL);
    if (depth > 1 && total > 16 && seen_init(&seen, total) != CDM_OK) {
        cdm__resolved_free(r);
        return cdm__nomem();
    }
    /* Own values win: walk from the child up and keep the first of each.
     * A definition's own keys are distinct (cdm__def_set): only a
     * parent's can repeat one merged already. */
    for (size_t i = 0; i < depth; i++) {
        d = chain[i];
        for (size_t j = 0; j < d->nkv; j++) {
            const struct cdm_kv *kv = &d->kv[j];
            struct cdm_rkv *rk;
            if (i > 0 && (seen.slots ? seen_has(&seen, r, kv->key)
                                     : cdm__rfind(r, kv->key) != NULL))
                continue;
            rk = &r->kv[r->nkv];
            if (!(rk->key = cdm__strdup(kv->key)) ||
                !(rk->value = cdm__strdup(kv->value)) ||
                (i > 0 && !(rk->from = cdm__strdup(d->name))) ||
                (d->src && hold_source(r, d->src) != CDM_OK)) {
                free(rk->key);
                free(rk->value);
                free(rk->from);
                rk->key = rk->value = rk->from = NULL;
                free(seen.slots);
                cdm__resolved_free(r);
                return cdm__nomem();
            }
            rk->dir = d->src ? d->src->dir : NULL;
            rk->path = d->src ? d->src->path : NULL;
            rk->line = kv->line;
            if (seen.slots)
                seen_add(&seen, r, r->nkv);
            r->nkv++;
        }
    }
    free(seen.slots);
    *out = r;
    return CDM_OK;
}

int cdm__resolve_chain(const char *name, cdm_lookup_fn lookup, void *ctx,
                       struct cdm_resolved **out)
{
    return resolve_chain(name, lookup, ctx, out, NULL);
}

/* cdm__expand; *unset tells a variable that is not set from a value that
 * is malformed. */
static int expand(const char *value, const char *where, const char *key,
                  char **out, bool *unset)
{
    struct cdm_buf b = { 0 };
    const char *p = value;

    *unset = false;
    while (*p) {
        const char *start = strstr(p, "$(");
        const char *end, *env;
        char var[128];
        size_t n;

        if (!start) {
            cdm__buf_adds(&b, p);
            break;
        }
        /* "$$(" is a literal "$(". */
        if (start > p && start[-1] == '$') {
            cdm__buf_add(&b, p, (size_t)(start - p));
            cdm__buf_adds(&b, "(");
            p = start + 2;
            continue;
        }
        cdm__buf_add(&b, p, (size_t)(start - p));
        if (!(end = strchr(start + 2, ')'))) {
            cdm__buf_free(&b);
            return cdm__fail(CDM_ERR_INVALID, "%s: %s: '$(' without ')' "
                             "(write '$$(' for a literal '$(')", where, key);
        }
        n = (size_t)(end - start - 2);
        if (n == 0 || n >= sizeof var ||
            strspn(start + 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                              "0123456789_") != n) {
            const struct cdm_param_spec *spec = cdm__param_find(NULL, key);
            cdm__buf_free(&b);
            /* "Sup3r$(ecret)" is a password, not a variable: never quoted. */
            if (!spec || (spec->flags & CDM_PF_SECRET))
                return cdm__fail(CDM_ERR_INVALID,
                                 "%s: %s: '$(' not followed by a variable "
                                 "name and ')' (write '$$(' for a literal "
                                 "'$(')", where, key);
            return cdm__fail(CDM_ERR_INVALID,
                             "%s: %s: '$(%.*s)' is not a variable name",
                             where, key, (int)(n < 64 ? n : 64), start + 2);
        }
        memcpy(var, start + 2, n);
        var[n] = '\0';
        if (!(env = getenv(var))) {
            cdm__buf_free(&b);
            *unset = true;
            return cdm__fail(CDM_ERR_INVALID,
                             "%s: %s: environment variable %s is not set",
                             where, key, var);
        }
        cdm__buf_adds(&b, env);
        p = end + 1;
    }
    if (!(*out = cdm__buf_take(&b)))
        return cdm__nomem();
    return CDM_OK;
}

int cdm__expand(const char *value, const char *where, const char *key,
                char **out)
{
    bool unset;

    return expand(value, where, key, out, &unset);
}

/* "file:line: definition 'X'" for a resolved value: the line that set it,
 * which may be in a parent definition, named too. */
void cdm__rkv_where(const struct cdm_resolved *r, const struct cdm_rkv *kv,
                    char *buf, size_t size)
{
    char from[300] = "";

    if (kv->from)
        snprintf(from, sizeof from, " (inherited from '%s')", kv->from);
    if (kv->path && kv->line > 0)
        snprintf(buf, size, "%s:%d: definition '%s'%s", kv->path, kv->line,
                 r->name, from);
    else
        snprintf(buf, size, "definition '%s'%s", r->name, from);
}

static int rkv_line(const struct cdm_rkv *kv)
{
    return kv->path && kv->line > 0 ? kv->line : 0;
}

/* What a value was before expansion, for reporting (cdm check). */
enum { RAW_PLAIN, RAW_EXPANDED, RAW_UNEXPANDED };

/* A DriverID cdm has no driver for: FireDAC's own, or not even that (a
 * virtual driver from FDDrivers.ini, whose BaseDriverID cdm cannot see).
 * HAS is what the registry holds, the test driver left out. */
#define HAS "PG (also PostgreSQL, Postgres), MySQL (also MariaDB) and " \
            "SQLite (also SQLite3)"
static int unknown_driver(const char *where, const char *id)
{
    const struct cdm_fd_driver *fd = cdm__fd_driver(id);
    const char *base = NULL;

    if (fd)
        return cdm__fail(CDM_ERR_DRIVER,
                         "%s: DriverID %s (%s) is a FireDAC driver cdm does "
                         "not support (cdm has PG, MySQL and SQLite)", where,
                         fd->id, fd->what);
    /* MYSQL5, PG_Prod, SQLite_Enc: named after their base, usually. */
    for (size_t i = 0; !base && cdm__drivers[i]; i++) {
        const struct cdm_driver *d = cdm__drivers[i];
        if (d->connect && strncasecmp(id, d->id, strlen(d->id)) == 0)
            base = d->id;
        for (size_t j = 0; !base && d->aliases && d->aliases[j]; j++)
            if (strncasecmp(id, d->aliases[j], strlen(d->aliases[j])) == 0)
                base = d->id;
    }
    if (base)
        return cdm__fail(CDM_ERR_DRIVER,
                         "%s: unknown DriverID '%.64s' (cdm has " HAS "; "
                         "FireDAC virtual drivers from FDDrivers.ini are not "
                         "read: if '%.64s' is one based on %s, write "
                         "DriverID=%s)", where, id, id, base, base);
    return cdm__fail(CDM_ERR_DRIVER,
                     "%s: unknown DriverID '%.64s' (cdm has " HAS "; FireDAC "
                     "virtual drivers from FDDrivers.ini are not read)",
                     where, id);
}

/* cdm check: the POOL_* keys the definition sets itself while, resolved,
 * it is not pooled (check_unpooled's rule, once the parent is known; the
 * same text, so that cdm check shows it once). */
static void report_unpooled(const struct cdm_resolved *r,
                            const struct report *rp)
{
    const struct cdm_rkv *pooled = cdm__rfind(r, "Pooled");
    const struct cdm_rkv *first = NULL;
    struct cdm_buf names = { 0 };
    char where[512];
    size_t n = 0;
    bool on;

    if (pooled && (cdm__parse_bool(pooled->value, &on) != CDM_OK || on))
        return;     /* pooled, or a bad or unset value reported elsewhere */
    for (size_t i = 0; i < r->nkv; i++)
        if (!r->kv[i].from && is_pool_key(r->kv[i].key)) {
            cdm__buf_addf(&names, "%s%s", n++ ? ", " : "", r->kv[i].key);
            if (!first)
                first = &r->kv[i];
        }
    if (first) {
        cdm__rkv_where(r, first, where, sizeof where);
        warn_unpooled(rp->fn, rp->ctx, where, rkv_line(first), r->name,
                      first->key, &names, n, pooled != NULL);
    }
    cdm__buf_free(&names);
}

/* Without `rp` the first problem fails; with it every problem is
 * reported, except those of inherited values (the parent reports them)
 * and those cdm__def_check_own reports already (a value as written, an
 * empty DriverID), and the first status is returned. */
static int finish(struct cdm_resolved *r, const struct report *rp)
{
    const struct cdm_rkv *drv_kv;
    const char *where = r->where;
    char kwhere[512];
    unsigned char *raw = NULL;
    struct cdm_drvctx dc;
    int drv_raw = RAW_PLAIN;
    int rc, first = CDM_OK;

    if (rp && !(raw = calloc(r->nkv ? r->nkv : 1, 1)))
        return cdm__nomem();
    for (size_t i = 0; i < r->nkv; i++) {
        struct cdm_rkv *kv = &r->kv[i];
        bool unset;
        char *v;
        if (!strchr(kv->value, '$'))
            continue;
        cdm__rkv_where(r, kv, kwhere, sizeof kwhere);
        if ((rc = expand(kv->value, kwhere, kv->key, &v, &unset))) {
            if (!rp || rc == CDM_ERR_NOMEM) {
                free(raw);
                return rc;
            }
            raw[i] = RAW_UNEXPANDED;
            if (first == CDM_OK)
                first = rc;
            /* The environment of this check, not of the program. */
            if (!kv->from)
                report(rp, unset ? CDM_LOG_WARN : CDM_LOG_ERROR,
                       rkv_line(kv), r->name, kv->key);
            continue;
        }
        free(kv->value);
        kv->value = v;
        if (raw)
            raw[i] = RAW_EXPANDED;
    }

    if ((drv_kv = cdm__rfind(r, "DriverID")) && raw)
        drv_raw = raw[drv_kv - r->kv];
    if (!drv_kv || !drv_kv->value[0]) {
        rc = cdm__fail(CDM_ERR_INVALID,
                       "%s: DriverID is not set (PG, MySQL or SQLite)", where);
        if (!rp)
            return rc;
        if (first == CDM_OK)
            first = rc;
        /* DriverID= (empty as written) is cdm__def_check_own's. */
        if (!drv_kv)
            report(rp, CDM_LOG_ERROR, r->line, r->name, NULL);
        else if (drv_raw == RAW_EXPANDED && !drv_kv->from)
            report(rp, CDM_LOG_ERROR, r->line, r->name, drv_kv->key);
    } else if (drv_raw == RAW_UNEXPANDED) {
        /* Its driver is not known: only the common keys are checked. */
    } else if (!(r->drv = cdm__driver_find(drv_kv->value))) {
        cdm__rkv_where(r, drv_kv, kwhere, sizeof kwhere);
        rc = unknown_driver(kwhere, drv_kv->value);
        if (!rp)
            return rc;
        if (first == CDM_OK)
            first = rc;
        if (!drv_kv->from)
            report(rp, CDM_LOG_ERROR, rkv_line(drv_kv), r->name, drv_kv->key);
    } else if (!r->drv->connect) {
        rc = cdm__fail(CDM_ERR_DRIVER,
                       "%s: driver %s is not built into this cdm "
                       "(configure %s)", where, r->drv->id,
                       r->drv->configure_flag);
        if (!rp)
            return rc;
        if (first == CDM_OK)
            first = rc;
        /* A fact of this build, not of the file. */
        if (!drv_kv->from)
            report(rp, CDM_LOG_WARN, r->line, r->name, NULL);
    }

    for (int pass = 0; pass < 2; pass++) {
        const struct cdm_param_spec *t = pass ? r->drv ? r->drv->params : NULL
                                              : cdm__common_params;
        for (; t && t->key; t++) {
            if (!(t->flags & CDM_PF_REQUIRED) || cdm__rfind(r, t->key) ||
                (rp && cdm__streq_nocase(t->key, "DriverID")))
                continue;
            rc = cdm__fail(CDM_ERR_INVALID, "%s: %s is not set", where, t->key);
            if (!rp)
                return rc;
            if (first == CDM_OK)
                first = rc;
            report(rp, CDM_LOG_ERROR, r->line, r->name, NULL);
        }
    }
    dc = cdm__drvctx(drv_kv && drv_raw != RAW_UNEXPANDED ? drv_kv->value
                                                          : NULL);
    for (size_t i = 0; i < r->nkv; i++) {
        const struct cdm_param_spec *spec;
        if (cdm__key_kind(&dc, r->kv[i].key, &spec) != CDM_KEY_CHECKED ||
            (raw && raw[i] == RAW_UNEXPANDED))
            continue;
        cdm__rkv_where(r, &r->kv[i], kwhere, sizeof kwhere);
        if ((rc = cdm__param_check(spec, kwhere, r->kv[i].key,
                                   r->kv[i].value)) != CDM_OK) {
            if (!rp)
                return rc;
            if (first == CDM_OK)
                first = rc;
            if (!r->kv[i].from && raw[i] == RAW_EXPANDED)
                report(rp, CDM_LOG_ERROR, rkv_line(&r->kv[i]), r->name,
                       r->kv[i].key);
        }
    }
    free(raw);
    if (rp)
        report_unpooled(r, rp);
    return first;
}

int cdm__resolve_finish(struct cdm_resolved *r)
{
    return finish(r, NULL);
}

int cdm__resolve_report(const char *name, cdm_lookup_fn lookup, void *ctx,
                        cdm_warn_fn fn, void *rctx, struct cdm_resolved **out)
{
    struct report rp = { fn, rctx };
    struct cdm_resolved *r = NULL;
    int rc = resolve_chain(name, lookup, ctx, &r, &rp);

    if (rc == CDM_OK)
        rc = finish(r, &rp);
    if (rc == CDM_OK && out)
        *out = r;
    else
        cdm__resolved_free(r);
    return rc;
}
