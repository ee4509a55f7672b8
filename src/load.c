/*
 * load.c - a definition file read into definitions, before any manager
 * sees it, and the warnings gathered on the way.
 */
#include "cdm_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cdm__note(void *ctx, const struct cdm_issue *is)
{
    struct cdm_notes *ns = ctx;
    char **v = realloc(ns->v, (ns->n + 1) * sizeof *v);

    /* Out of memory only loses a warning. */
    if (v) {
        ns->v = v;
        if ((v[ns->n] = cdm__strdup(is->text)))
            ns->n++;
    }
}

void cdm__notes_flush(cdm_manager *m, struct cdm_notes *ns)
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

void cdm__loaded_free(struct cdm_loaded *l)
{
    for (size_t i = 0; i < l->ndefs; i++)
        cdm__def_free(l->defs[i]);
    free(l->defs);
    cdm__notes_flush(NULL, &l->notes);
    cdm__source_release(l->src);
    memset(l, 0, sizeof *l);
}

/* The first secret the definition writes out, or NULL. */
static const struct cdm_kv *literal_password(const struct cdm_def *d)
{
    for (size_t i = 0; i < d->nkv; i++) {
        const char *v = d->kv[i].value;
        const char *end;
        if (!cdm__param_is_secret(d->kv[i].key) || !*v)
            continue;
        /* Only "$(VAR)" alone keeps the secret out of the file. */
        if (strncmp(v, "$(", 2) != 0 || !(end = strchr(v, ')')) || end[1])
            return &d->kv[i];
    }
    return NULL;
}

bool cdm__is_header(const char *name)
{
    return cdm__streq_nocase(name, CDM_HEADER_SECTION) ||
           cdm__streq_nocase(name, CDM_DRIVERS_HEADER);
}

/* [FDDrivers.ini] at the top of a definition file: the header of
 * FireDAC's other file, copied by mistake.  FireDAC reads it as a
 * definition without a DriverID; cdm skips it, and says so. */
static void wrong_header(const struct cdm_ini_section *s, const char *path,
                         cdm_warn_fn warn, void *ctx)
{
    struct cdm_issue is = { .level = CDM_LOG_WARN, .line = s->line };
    char text[768];

    snprintf(text, sizeof text,
             "%s:%d: [%s] is the header of FireDAC's driver file, not of a "
             "definition file ([%s]); skipped, with its keys",
             path, s->line, s->name, CDM_HEADER_SECTION);
    is.text = text;
    warn(ctx, &is);
}

int cdm__load(const char *path, struct cdm_loaded *l)
{
    struct cdm_ini *ini;
    int rc;

    memset(l, 0, sizeof *l);
    if ((rc = cdm__ini_read(path, &ini)) != CDM_OK)
        return rc;
    return cdm__load_parsed(ini, l, cdm__note, &l->notes);
}

int cdm__load_parsed(struct cdm_ini *ini, struct cdm_loaded *l,
                     cdm_warn_fn warn, void *ctx)
{
    int rc = CDM_OK;

    memset(l, 0, sizeof *l);
    if (!(l->src = calloc(1, sizeof *l->src)) ||
        !(l->defs = calloc(ini->nsections ? ini->nsections : 1, sizeof *l->defs))) {
        rc = cdm__nomem();
        goto out;
    }
    l->src->refs = 1;
    l->src->path = ini->path;
    l->src->dir = ini->dir;
    l->src->sig = ini->sig;
    ini->path = ini->dir = NULL;
    for (size_t i = 0; i < ini->nwarnings; i++) {
        const struct cdm_ini_warning *w = &ini->warnings[i];
        struct cdm_issue is = {
            .level = CDM_LOG_WARN, .line = w->line, .key = w->key,
            .text = w->text,
        };
        if (w->section && !cdm__is_header(w->section))
            is.def = w->section;
        warn(ctx, &is);
    }

    for (size_t i = 0; i < ini->nsections; i++) {
        struct cdm_ini_section *s = &ini->sections[i];
        const struct cdm_kv *pw;
        struct cdm_def *d;
        if (cdm__is_header(s->name)) {
            if (!cdm__streq_nocase(s->name, CDM_HEADER_SECTION))
                wrong_header(s, l->src->path, warn, ctx);
            continue;
        }
        if (!(d = cdm__def_new(s->name, l->src, s->line))) {
            rc = cdm__nomem();
            goto out;
        }
        l->defs[l->ndefs++] = d;
        /* The reader's keys are unique in their section: taken over as
         * they are, not copied and looked up one by one. */
        for (size_t j = 0; j < s->nkeys; j++) {
            struct cdm_ini_key *k = &s->keys[j];
            if ((rc = cdm__def_take(d, k->key, k->value, k->line)) != CDM_OK)
                goto out;
            k->key = k->value = NULL;
        }
        d->gen = 0;
        cdm__def_check_own(d, false, warn, ctx);
        if ((ini->mode & (S_IRGRP | S_IROTH)) && (pw = literal_password(d))) {
            struct cdm_issue is = {
                .level = CDM_LOG_WARN, .line = pw->line, .def = d->name,
                .key = pw->key,
            };
            char where[512], text[768];
            cdm__def_where(d, pw, where, sizeof where);
            snprintf(text, sizeof text,
                     "%s holds a password in a file others can read "
                     "(mode %04o); run chmod 600 or use Password=$(VAR)",
                     where, ini->mode);
            is.text = text;
            warn(ctx, &is);
        }
    }
out:
    cdm__ini_free(ini);
    if (rc != CDM_OK)
        cdm__loaded_free(l);
    return rc;
}
