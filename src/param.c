/*
 * param.c - the common parameter table and value checking: booleans,
 * whole numbers in range, enumerations, "did you mean" suggestions.
 */
#include "cdm_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INT_RANGE(lo, hi) (lo), (hi), NULL
#define ANY 0, 0, NULL

const struct cdm_param_spec cdm__common_params[] = {
    { "DriverID",            NULL,    CDM_P_DRIVER, ANY, CDM_PF_REQUIRED, NULL },
    { "ConnectionDef",       NULL,    CDM_P_STRING, ANY, 0, NULL },
    { "Parent",              NULL,    CDM_P_STRING, ANY, 0, NULL },
    { "Database",            NULL,    CDM_P_STRING, ANY, CDM_PF_REQUIRED, NULL },
    { "Pooled",              "False", CDM_P_BOOL,   ANY, 0, NULL },
    /* Negative: no limit.  0 is refused by the pool, not here, so that
     * the message can say why. */
    { "POOL_MaximumItems",   "50",    CDM_P_INT, INT_RANGE(INT_MIN, INT_MAX), 0, NULL },
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
    /* FireDAC keys that cdm recognises and does not use. */
    { "MonitorBy",        NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "MetaDefSchema",    NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "MetaDefCatalog",   NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "MetaCurSchema",    NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "MetaCurCatalog",   NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "MetaCaseIns",      NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "MetaCaseInsCat",   NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "ExtendedMetadata", NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "OSAuthent",        NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "NewPassword",      NULL, CDM_P_STRING, ANY, CDM_PF_SECRET | CDM_PF_IGNORED, NULL },
    { "RDBMS",            NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "StringFormat",     NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "DateTimeFormat",   NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "GUIDFormat",       NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "SharedCache",      NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "Encrypt",          NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "CacheSize",        NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "SQLiteAdvanced",   NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "OidAsBlob",        NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "UnknownFormat",    NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "ArrayScanSample",  NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "GUIDEndian",       NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "ResultMode",       NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "TinyIntFormat",    NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { "OSAuthentication", NULL, CDM_P_STRING, ANY, CDM_PF_IGNORED, NULL },
    { NULL, NULL, CDM_P_STRING, ANY, 0, NULL },
};

static const struct cdm_param_spec *find_in(const struct cdm_param_spec *t,
                                            const char *key)
{
    for (; t && t->key; t++)
        if (cdm__streq_nocase(t->key, key))
            return t;
    return NULL;
}

const struct cdm_param_spec *cdm__param_find(const struct cdm_driver *drv,
                                             const char *key)
{
    const struct cdm_param_spec *s = find_in(cdm__common_params, key);

    if (s)
        return s;
    if (drv)
        return find_in(drv->params, key);
    for (size_t i = 0; cdm__drivers[i]; i++)
        if ((s = find_in(cdm__drivers[i]->params, key)))
            return s;
    return NULL;
}

bool cdm__param_is_secret(const char *key)
{
    const struct cdm_param_spec *s = cdm__param_find(NULL, key);

    return s && (s->flags & CDM_PF_SECRET);
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

const char *cdm__param_suggest(const char *key)
{
    size_t len = strlen(key), limit = len <= 4 ? 1 : len <= 10 ? 2 : 3;
    size_t best_d = limit + 1;
    const char *best = NULL;

    for (const struct cdm_param_spec *t = cdm__common_params; t->key; t++)
        consider(key, t->key, &best, &best_d);
    for (size_t i = 0; cdm__drivers[i]; i++)
        for (const struct cdm_param_spec *t = cdm__drivers[i]->params;
             t && t->key; t++)
            consider(key, t->key, &best, &best_d);
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
            return CDM_OK;
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
