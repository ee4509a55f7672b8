/*
 * names.c - definitions found by name, case-insensitively, in constant
 * time: the manager's index (a file of 100,000 definitions is looked up,
 * checked for clashes and reloaded in time linear in its size).
 *
 * Open addressing with linear probing over pointers to the definitions
 * (whose names it reads); a removed entry leaves a tombstone until the
 * table is rebuilt.  The index owns no definition.
 */
#include "cdm_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Marks a removed entry: probing goes on past it. */
static char tombstone_mark;
#define TOMBSTONE ((struct cdm_def *)(void *)&tombstone_mark)

static size_t hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s; s++) {
        h ^= (unsigned char)tolower((unsigned char)*s);
        h *= 0x100000001b3ULL;
    }
    return (size_t)(h ^ (h >> 32));
}

void cdm__names_clear(struct cdm_names *ix)
{
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

/* The slot of `name`, or NULL when absent. */
static struct cdm_def **find(const struct cdm_names *ix, const char *name)
{
    size_t mask, i;

    if (!ix->cap)
        return NULL;
    mask = ix->cap - 1;
    for (i = hash(name) & mask;; i = (i + 1) & mask) {
        struct cdm_def *d = ix->slots[i];
        if (!d)
            return NULL;
        if (d != TOMBSTONE && strcasecmp(d->name, name) == 0)
            return &ix->slots[i];
    }
}

struct cdm_def *cdm__names_get(const struct cdm_names *ix, const char *name)
{
    struct cdm_def **at = find(ix, name);

    return at ? *at : NULL;
}

static void place(struct cdm_def **slots, size_t cap, struct cdm_def *d)
{
    size_t i = hash(d->name) & (cap - 1);

    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = d;
}

/* Room for one more: the table is kept at most half full, tombstones
 * included, and rebuilt without them when it would not be. */
static int make_room(struct cdm_names *ix)
{
    struct cdm_def **slots;
    size_t cap = ix->cap ? ix->cap : 64;

    if ((ix->used + 1) * 2 <= ix->cap)
        return CDM_OK;
    while ((ix->live + 1) * 2 > cap)
        cap *= 2;
    if (!(slots = calloc(cap, sizeof *slots)))
        return cdm__nomem();
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slots[i] && ix->slots[i] != TOMBSTONE)
            place(slots, cap, ix->slots[i]);
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    ix->used = ix->live;
    return CDM_OK;
}

int cdm__names_put(struct cdm_names *ix, struct cdm_def *d)
{
    struct cdm_def **at = find(ix, d->name);
    int rc;

    if (at) {
        *at = d;
        return CDM_OK;
    }
    if ((rc = make_room(ix)) != CDM_OK)
        return rc;
    place(ix->slots, ix->cap, d);
    ix->used++;
    ix->live++;
    return CDM_OK;
}

void cdm__names_del(struct cdm_names *ix, const struct cdm_def *d)
{
    struct cdm_def **at = find(ix, d->name);

    if (at && *at == d) {
        *at = TOMBSTONE;
        ix->live--;
    }
}

int cdm__names_build(struct cdm_names *ix, struct cdm_def *const *defs,
                     size_t n)
{
    struct cdm_names fresh = { 0 };
    int rc = CDM_OK;

    for (size_t i = 0; i < n && rc == CDM_OK; i++)
        rc = cdm__names_put(&fresh, defs[i]);
    if (rc != CDM_OK) {
        cdm__names_clear(&fresh);
        return rc;
    }
    cdm__names_clear(ix);
    *ix = fresh;
    return CDM_OK;
}
