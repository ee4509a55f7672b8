/*
 * lint.c - cdm_check_file: a definition file checked the way a compiler
 * checks a source file, every finding with its line (`cdm check`).
 *
 * The rules are the loader's and the resolver's own (ini.c, load.c,
 * def.c), run in their reporting modes: nothing here decides what is
 * wrong, only gathers, orders and hands out what they find.
 */
#include "cdm_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct item {
    int line;
    int level;
    size_t seq;       /* order of discovery: ties keep it */
    char *def, *key;  /* NULL when not about one */
    char *text;       /* "path:line: ..." as the producer wrote it */
    const char *msg;  /* into text, past "path:line: " */
};

struct lint {
    const char *path;
    struct item *v;
    size_t n, cap;
    bool nomem;
};

/* The message without the "path:line: " (or "path: ") its producer put
 * in front; the path is known, so this cannot mistake a name for it. */
static const char *strip(const char *path, const char *text)
{
    size_t n = strlen(path);
    const char *p;

    if (strncmp(text, path, n) != 0 || text[n] != ':')
        return text;
    p = text + n + 1;
    if (*p >= '0' && *p <= '9') {
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p != ':')
            return text;
        p++;
    }
    return *p == ' ' ? p + 1 : p;
}

static char *dup_or_null(const char *s, bool *failed)
{
    char *d;

    if (!s)
        return NULL;
    if (!(d = cdm__strdup(s)))
        *failed = true;
    return d;
}

/* A cdm_warn_fn: keeps a copy of the issue. */
static void collect(void *ctx, const struct cdm_issue *is)
{
    struct lint *l = ctx;
    struct item *it;

    if (l->nomem)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct item *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->nomem = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    it = &l->v[l->n];
    memset(it, 0, sizeof *it);
    it->line = is->line;
    it->level = is->level == CDM_LOG_ERROR ? CDM_LOG_ERROR : CDM_LOG_WARN;
    it->seq = l->n;
    it->def = dup_or_null(is->def, &l->nomem);
    it->key = dup_or_null(is->key, &l->nomem);
    it->text = dup_or_null(is->text ? is->text : "", &l->nomem);
    l->n++;
    if (it->text)
        it->msg = strip(l->path, it->text);
}

/* A finding from the thread's message: of the file as a whole (line 0,
 * no definition) or of a line. */
static void collect_errmsg(struct lint *l, int level, int line,
                           const char *def)
{
    struct cdm_issue is = { .level = level, .line = line, .def = def,
                            .text = cdm_errmsg() };

    collect(l, &is);
}

static void lint_free(struct lint *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].def);
        free(l->v[i].key);
        free(l->v[i].text);
    }
    free(l->v);
}

static int str_order(const char *a, const char *b)
{
    if (!a || !b)
        return a ? 1 : b ? -1 : 0;
    return strcmp(a, b);
}

static int by_seq(const struct item *a, const struct item *b)
{
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Same definition and message, first found first. */
static int by_text(const void *pa, const void *pb)
{
    const struct item *a = pa, *b = pb;
    int c = str_order(a->def, b->def);

    if (!c)
        c = strcmp(a->msg, b->msg);
    return c ? c : by_seq(a, b);
}

static int by_line(const void *pa, const void *pb)
{
    const struct item *a = pa, *b = pb;

    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    return by_seq(a, b);
}

/* The same problem can come from two checks (POOL_MinimumItems above
 * POOL_MaximumItems: the definition's own values, then the pool's
 * settings); the first found, which names the key's line, is kept. */
static void dedupe(struct lint *l)
{
    size_t out = 0;

    if (l->n < 2)
        return;
    qsort(l->v, l->n, sizeof *l->v, by_text);
    for (size_t i = 0; i < l->n; i++) {
        if (out && str_order(l->v[out - 1].def, l->v[i].def) == 0 &&
            strcmp(l->v[out - 1].msg, l->v[i].msg) == 0) {
            free(l->v[i].def);
            free(l->v[i].key);
            free(l->v[i].text);
            continue;
        }
        l->v[out++] = l->v[i];
    }
    l->n = out;
}

/* Every definition resolved as a connect would, reporting all it finds;
 * then the pool's own rules for the pooled ones that resolve. */
static int check_defs(struct lint *l, struct cdm_loaded *ld)
{
    struct cdm_names byname = { 0 };

    /* Parents are found through the file's own index. */
    if (cdm__names_build(&byname, ld->defs, ld->ndefs) != CDM_OK)
        return cdm__nomem();
    for (size_t i = 0; i < ld->ndefs && !l->nomem; i++) {
        const struct cdm_def *d = ld->defs[i];
        struct cdm_resolved *r = NULL;
        int rc = cdm__resolve_report(d->name, cdm__names_lookup, &byname,
                                     collect, l, &r);

        if (rc == CDM_ERR_NOMEM) {
            cdm__names_clear(&byname);
            return rc;
        }
        if (rc == CDM_OK && cdm__rget_bool(r, "Pooled") &&
            cdm__pool_check_cfg(r) != CDM_OK)
            collect_errmsg(l, CDM_LOG_ERROR, r->line, d->name);
        cdm__resolved_free(r);
    }
    cdm__names_clear(&byname);
    return l->nomem ? cdm__nomem() : CDM_OK;
}

/* Reads and checks; every finding goes into l. */
static int run(struct lint *l, const char *path)
{
    struct cdm_loaded ld;
    struct cdm_ini *ini = NULL;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int rc, line;

    if ((rc = cdm__file_read_any(path, &buf, &len, &st)) != CDM_OK) {
        if (rc == CDM_ERR_NOMEM)
            return rc;
        collect_errmsg(l, CDM_LOG_ERROR, 0, NULL);
        return l->nomem ? cdm__nomem() : CDM_ERR_IO;
    }
    /* Loading refuses it; the content is checked all the same. */
    if (cdm__file_insecure(path, &st) != CDM_OK)
        collect_errmsg(l, CDM_LOG_ERROR, 0, NULL);
    rc = cdm__ini_parse_at(path, buf, len, &ini, &line);
    free(buf);
    if (rc == CDM_ERR_PARSE) {
        /* The reader stops at the first: the rest is not known. */
        collect_errmsg(l, CDM_LOG_ERROR, line, NULL);
        return l->nomem ? cdm__nomem() : CDM_OK;
    }
    if (rc != CDM_OK)
        return rc;
    ini->mode = (unsigned)(st.st_mode & 07777);
    if ((rc = cdm__load_parsed(ini, &ld, collect, l)) != CDM_OK)
        return rc;
    if (l->nomem)
        rc = cdm__nomem();
    else
        rc = check_defs(l, &ld);
    cdm__loaded_free(&ld);
    return rc;
}

int cdm_check_file(const char *path, cdm_finding_fn fn, void *user,
                   int *errors, int *warnings)
{
    struct lint l = { .path = path };
    int rc, nerr = 0, nwarn = 0;

    if (!path)
        return cdm__fail(CDM_ERR_INVALID, "cdm_check_file: path is NULL");
    rc = run(&l, path);
    if (rc == CDM_OK || rc == CDM_ERR_IO) {
        dedupe(&l);
        if (l.n)    /* l.v is NULL when nothing was found */
            qsort(l.v, l.n, sizeof *l.v, by_line);
        for (size_t i = 0; i < l.n; i++) {
            const struct item *it = &l.v[i];
            cdm_finding f = {
                .path = path, .line = it->line, .level = it->level,
                .def = it->def, .key = it->key, .message = it->msg,
            };
            if (it->level == CDM_LOG_ERROR)
                nerr++;
            else
                nwarn++;
            if (fn)
                fn(&f, user);
        }
        if (errors)
            *errors = nerr;
        if (warnings)
            *warnings = nwarn;
        /* CDM_ERR_IO keeps the reading's message. */
        if (rc == CDM_OK && nerr)
            rc = cdm__fail(CDM_ERR_INVALID, "%s: %d error%s, %d warning%s",
                           path, nerr, nerr == 1 ? "" : "s", nwarn,
                           nwarn == 1 ? "" : "s");
    }
    lint_free(&l);
    return rc;
}
