/*
 * param.c - the common parameter table and value checking: booleans,
 * whole numbers in range, enumerations, "did you mean" suggestions.
 */
#include "cdm_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INT_RANGE(lo, hi) (lo), (hi), NULL
#define ANY 0, 0, NULL

static int check_max_items(const char *where, const char *key,
                           const char *value)
{
    long long n = 1;

    cdm__parse_int(value, INT_MIN, INT_MAX, &n);
    if (n != 0)
        return CDM_OK;
    return cdm__fail(CDM_ERR_INVALID,
                     "%s: %s=0 would never give a connection (use a negative "
                     "value for no limit)", where, key);
}

const struct cdm_param_spec cdm__common_params[] = {
    { "DriverID",            NULL,    CDM_P_DRIVER, ANY, CDM_PF_REQUIRED, NULL },
    { "ConnectionDef",       NULL,    CDM_P_STRING, ANY, 0, NULL },
    { "Parent",              NULL,    CDM_P_STRING, ANY, 0, NULL },
    { "Database",            NULL,    CDM_P_STRING, ANY, CDM_PF_REQUIRED, NULL },
    { "Pooled",              "False", CDM_P_BOOL,   ANY, 0, NULL },
    /* Negative: no limit.  0 would give no connection, ever. */
    { "POOL_MaximumItems",   "50",    CDM_P_INT, INT_RANGE(INT_MIN, INT_MAX), 0, check_max_items },
    { "POOL_ExpireTimeout",  "90000", CDM_P_INT, INT_RANGE(0, INT_MAX), 0, NULL },
    { "POOL_CleanupTimeout", "30000", CDM_P_INT, INT_RANGE(1, INT_MAX), 0, NULL },
    { "POOL_AcquireTimeout", "10000", CDM_P_INT, INT_RANGE(0, INT_MAX), 0, NULL },
    /* Opened by the cleanup thread on its own: bounded, also when the
     * maximum is not (and checked against POOL_MaximumItems). */
    { "POOL_MinimumItems",   "0",     CDM_P_INT, INT_RANGE(0, 1000), 0, NULL },
    { "POOL_MaxLifetime",    "0",     CDM_P_INT, INT_RANGE(0, INT_MAX), 0, NULL },
    { "POOL_PingInterval",   "30000", CDM_P_INT, INT_RANGE(INT_MIN, INT_MAX), 0, NULL },
    { "POOL_ResetOnRelease", "False", CDM_P_BOOL, ANY, 0, NULL },
    { "POOL_LeakTimeout",    "0",     CDM_P_INT, INT_RANGE(0, INT_MAX), 0, NULL },
    /* Statements kept prepared per physical connection (stmt.c). */
    { "StatementCacheSize",  "32",    CDM_P_INT, INT_RANGE(0, 10000), 0, NULL },
    /* FireDAC's other keys (MonitorBy, ...) are in firedac.c: known,
     * not used, so not specified here. */
    { NULL, NULL, CDM_P_STRING, ANY, 0, NULL },
};

const struct cdm_param_spec *cdm__param_find(const struct cdm_driver *drv,
                                             const char *key)
{
    const struct cdm_keyinfo *k = cdm__keyinfo(key);

    if (!k)
        return NULL;
    /* The driver's first: it may check a common key further (SQLite's
     * Database). */
    if (drv && k->drv[cdm__driver_index(drv)])
        return k->drv[cdm__driver_index(drv)];
    if (k->common || drv)
        return k->common;
    for (size_t i = 0; cdm__drivers[i]; i++)
        if (k->drv[i])
            return k->drv[i];
    return NULL;
}

bool cdm__param_is_secret(const char *key)
{
    const struct cdm_param_spec *s = cdm__param_find(NULL, key);

    if (s)
        return (s->flags & CDM_PF_SECRET) != 0;
    return cdm__fd_any_key(key) && cdm__fd_secret(key);
}

struct cdm_drvctx cdm__drvctx(const char *driver_id)
{
    struct cdm_drvctx c = { NULL, NULL, NULL };

    /* "$(DRIVER)" names no driver until it is expanded. */
    if (!driver_id || !*driver_id || strstr(driver_id, "$("))
        return c;
    c.drv = cdm__driver_find(driver_id);
    c.fd = cdm__fd_driver(c.drv ? c.drv->id : driver_id);
    c.name = c.drv ? c.drv->id : c.fd ? c.fd->id : NULL;
    return c;
}

enum cdm_key_kind cdm__key_kind(const struct cdm_drvctx *c, const char *key,
                                const struct cdm_param_spec **spec)
{
    /* A FireDAC driver cdm lacks: only cdm's common keys are checked
     * (its Port is not PG's or MySQL's). */
    const struct cdm_keyinfo *k = cdm__keyinfo(key);
    const struct cdm_param_spec *s;

    *spec = NULL;
    if (!k)
        return CDM_KEY_UNKNOWN;
    s = c->drv || !c->fd ? cdm__param_find(c->drv, key) : k->common;
    if ((*spec = s))
        return CDM_KEY_CHECKED;
    if (!c->drv && !c->fd)
        return k->fd_common || k->fd ? CDM_KEY_IGNORED : CDM_KEY_UNKNOWN;
    if (k->fd_common || (c->fd && (k->fd >> (c->fd - cdm__fd_drivers) & 1)))
        return CDM_KEY_IGNORED;
    /* Any name in the table is some driver's key: another driver's. */
    return CDM_KEY_OTHER;
}

/* Keeps the closer of `best` and `cand` for `key`. */
static void consider(const char *key, const char *cand, const char **best,
                     size_t *best_d)
{
    size_t d = cdm__distance(key, cand, *best_d);
    size_t lk = strlen(key), lc = strlen(cand);

    /* "MaximumItems" for "POOL_MaximumItems": a missing prefix counts as
     * one edit. */
    if (lc > lk && cdm__streq_nocase(cand + lc - lk, key) && lc - lk <= 5)
        d = 1;
    /* "User" for "User_Name": so does a missing tail. */
    if (lc > lk && strncasecmp(cand, key, lk) == 0 && lc - lk <= 5)
        d = 1;
    /* "Pooling" for "Pooled": a word that starts the same (four letters
     * or more) is one edit nearer; the tail is what gets misremembered. */
    else if (d > 1 && lk >= 4 && lc >= 4 && strncasecmp(cand, key, 4) == 0)
        d--;
    if (d < *best_d) {
        *best_d = d;
        *best = cand;
    }
}

static void consider_list(const char *key, const char *const *list,
                          const char **best, size_t *best_d)
{
    for (; list && *list; list++)
        consider(key, *list, best, best_d);
}

static void consider_specs(const char *key, const struct cdm_param_spec *t,
                           const char **best, size_t *best_d)
{
    for (; t && t->key; t++)
        consider(key, t->key, best, best_d);
}

/* Limits by length: a short key must be nearly right to suggest anything. */
static size_t limit_for(const char *key)
{
    size_t len = strlen(key);

    return len <= 4 ? 1 : len <= 10 ? 2 : 3;
}

const char *cdm__param_suggest(const char *key)
{
    size_t best_d = limit_for(key) + 1;
    const char *best = cdm__fd_mistake(key);

    if (best)
        return best;
    /* cdm's keys first: on a tie they win. */
    consider_specs(key, cdm__common_params, &best, &best_d);
    for (size_t i = 0; cdm__drivers[i]; i++)
        consider_specs(key, cdm__drivers[i]->params, &best, &best_d);
    consider_list(key, cdm__fd_common, &best, &best_d);
    for (const struct cdm_fd_driver *d = cdm__fd_drivers; d->id; d++)
        consider_list(key, d->keys, &best, &best_d);
    return best;
}

const char *cdm__param_suggest_for(const struct cdm_drvctx *c,
                                   const char *key)
{
    size_t best_d = limit_for(key) + 1;
    const char *best = cdm__fd_mistake(key);
    const struct cdm_param_spec *s;

    if (!c->drv && !c->fd)
        return cdm__param_suggest(key);
    /* A common mistake, if what was meant is valid here ("Timeout" is
     * no BusyTimeout outside SQLite). */
    if (best) {
        enum cdm_key_kind k = cdm__key_kind(c, best, &s);
        if (k == CDM_KEY_CHECKED || k == CDM_KEY_IGNORED)
            return best;
        best = NULL;
    }
    consider_specs(key, cdm__common_params, &best, &best_d);
    if (c->drv)
        consider_specs(key, c->drv->params, &best, &best_d);
    consider_list(key, cdm__fd_common, &best, &best_d);
    if (c->fd)
        consider_list(key, c->fd->keys, &best, &best_d);
    return best;
}

int cdm__parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "True", "Yes", "On", "1", NULL };
    static const char *const no[] = { "False", "No", "Off", "0", NULL };

    for (size_t i = 0; yes[i]; i++) {
        if (cdm__streq_nocase(s, yes[i])) {
            *out = true;
            return CDM_OK;
        }
        if (cdm__streq_nocase(s, no[i])) {
            *out = false;
            return CDM_OK;
        }
    }
    return CDM_ERR_INVALID;
}

int cdm__parse_int(const char *s, long long min, long long max, long long *out)
{
    const char *p = s;
    char *end;
    long long v;

    /* Whole decimal numbers only: no blanks, no '+', no hex or octal
     * surprises ("010" is ten), no trailing units. */
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return CDM_ERR_INVALID;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return CDM_ERR_INVALID;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE || v < min || v > max)
        return CDM_ERR_NOT_FOUND; /* "out of range", told apart by the caller */
    *out = v;
    return CDM_OK;
}

int cdm__param_check(const struct cdm_param_spec *spec, const char *where,
                     const char *key, const char *value)
{
    long long n;
    bool b;
    int rc;

    switch (spec->type) {
    case CDM_P_STRING:
        return spec->check ? spec->check(where, key, value) : CDM_OK;
    case CDM_P_DRIVER:
        if (!*value)
            return cdm__fail(CDM_ERR_INVALID, "%s: %s is empty", where, key);
        return CDM_OK;
    case CDM_P_BOOL:
        if (cdm__parse_bool(value, &b) == CDM_OK)
            return CDM_OK;
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: %s: '%.64s' is not a boolean "
                         "(use True/False, Yes/No, On/Off or 1/0)",
                         where, key, value);
    case CDM_P_INT:
        rc = cdm__parse_int(value, spec->min, spec->max, &n);
        if (rc == CDM_OK)
            return spec->check ? spec->check(where, key, value) : CDM_OK;
        if (rc == CDM_ERR_INVALID)
            return cdm__fail(CDM_ERR_INVALID,
                             "%s: %s: '%.64s' is not a whole number",
                             where, key, value);
        if (spec->min == INT_MIN)
            return cdm__fail(CDM_ERR_INVALID,
                             "%s: %s: %.64s is out of range (at most %lld)",
                             where, key, value, spec->max);
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: %s: %.64s is out of range (%lld to %lld)",
                         where, key, value, spec->min, spec->max);
    case CDM_P_ENUM:
        for (size_t i = 0; spec->choices[i]; i++)
            if (cdm__streq_nocase(value, spec->choices[i]))
                return CDM_OK;
        {
            struct cdm_buf list = { 0 };
            for (size_t i = 0; spec->choices[i]; i++) {
                cdm__buf_adds(&list, i ? ", " : "");
                cdm__buf_adds(&list, spec->choices[i]);
            }
            rc = cdm__fail(CDM_ERR_INVALID,
                           "%s: %s: '%.64s' is not one of %s", where, key,
                           value, list.s ? list.s : "");
            cdm__buf_free(&list);
            return rc;
        }
    }
    return CDM_OK;
}

/* ------------------------------------------------------- secrets (API) */

/* The spec of `key` for `driver_id` (NULL or unknown: any driver's). */
static const struct cdm_param_spec *spec_for(const char *driver_id,
                                             const char *key)
{
    const struct cdm_driver *drv = driver_id ? cdm__driver_find(driver_id) : NULL;
    const struct cdm_param_spec *s = cdm__param_find(drv, key);

    /* Another driver's key in this definition: still masked if secret
     * there (better one mask too many than a password shown). */
    return s ? s : drv ? cdm__param_find(NULL, key) : NULL;
}

int cdm_param_is_secret(const char *driver_id, const char *key)
{
    const struct cdm_param_spec *s;
    const char *near;

    if (!key)
        return 0;
    if ((s = spec_for(driver_id, key)))
        return (s->flags & CDM_PF_SECRET) != 0;
    if (cdm__fd_any_key(key))
        return cdm__fd_secret(key);
    /* An unknown key that is a misspelt password is a password. */
    near = cdm__param_suggest(key);
    return near && (s = cdm__param_find(NULL, near)) &&
           (s->flags & CDM_PF_SECRET);
}

/* Whether `key` names a driver's "advanced" string of libpq-style
 * "k=v;k=v" pairs (PGAdvanced; FireDAC's *Advanced keys). */
static bool is_advanced(const char *key)
{
    size_t n = strlen(key), a = strlen("Advanced");

    return n > a && cdm__streq_nocase(key + n - a, "Advanced");
}

static bool has_password(const char *s, size_t n)
{
    static const char word[] = "password";

    for (size_t i = 0; i + sizeof word - 1 <= n; i++)
        if (strncasecmp(s + i, word, sizeof word - 1) == 0)
            return true;
    return false;
}

int cdm_param_mask(const char *driver_id, const char *key, const char *value,
                   char **out)
{
    struct cdm_buf b = { 0 };
    const char *p = NULL;

    if (!key || !value || !out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_param_mask: %s is NULL",
                         !key ? "key" : !value ? "value" : "out");
    if (cdm_param_is_secret(driver_id, key))
        cdm__buf_adds(&b, "*****");
    else if (is_advanced(key))
        p = value;
    else
        cdm__buf_adds(&b, value);
    /* Each "k=v" entry whose keyword holds "password" keeps its keyword
     * and loses its value; separators and blanks stay as written. */
    while (p && *p) {
        size_t n = strcspn(p, ";");
        const char *eq = memchr(p, '=', n);
        if (eq && has_password(p, (size_t)(eq - p))) {
            cdm__buf_add(&b, p, (size_t)(eq - p) + 1);
            cdm__buf_adds(&b, "*****");
        } else {
            cdm__buf_add(&b, p, n);
        }
        p += n;
        if (*p == ';')
            cdm__buf_add(&b, p++, 1);
    }
    cdm__buf_add(&b, "", 0);
    if (b.failed)
        return cdm__nomem();
    *out = cdm__buf_take(&b);
    return CDM_OK;
}
