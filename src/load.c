/*
 * load.c - a definition file read into definitions, before any manager
 * sees it, and the warnings gathered on the way.
 */
#include "cdm_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cdm__note(void *ctx, const char *message)
{
    struct cdm_notes *ns = ctx;
    char **v = realloc(ns->v, (ns->n + 1) * sizeof *v);

    /* Out of memory only loses a warning. */
    if (v) {
        ns->v = v;
        if ((v[ns->n] = cdm__strdup(message)))
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

int cdm__load(const char *path, struct cdm_loaded *l)
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
        cdm__note(&l->notes, ini->warnings[i]);

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
        cdm__def_check_own(d, false, cdm__note, &l->notes);
        if ((ini->mode & (S_IRGRP | S_IROTH)) && literal_password(d)) {
            char text[600];
            snprintf(text, sizeof text,
                     "%s:%d: definition '%s' holds a password in a file "
                     "others can read (mode %04o); run chmod 600 or use "
                     "Password=$(VAR)",
                     l->src->path, d->line, d->name, ini->mode);
            cdm__note(&l->notes, text);
        }
    }
out:
    cdm__ini_free(ini);
    if (rc != CDM_OK)
        cdm__loaded_free(l);
    return rc;
}
