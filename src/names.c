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

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Marks a removed entry: probing goes on past it. */
static char tombstone_mark;
#define TOMBSTONE ((struct cdm_def *)(void *)&tombstone_mark)

/* A slot keeps the name's hash beside the definition: a probe compares
 * hashes and reads a name only when they match, and growing the table
 * rehashes nothing.  With 100,000 definitions each name read is a cache
 * miss. */
struct cdm_name_slot {
    uint64_t hash;
    struct cdm_def *def;     /* NULL: empty */
};

static uint64_t hash(const char *s)
{
    uint64_t h = cdm__nocase_hash(s);

    return h ^ (h >> 32);
}

void cdm__names_clear(struct cdm_names *ix)
{
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

/* The slot of `name` (hash h), or NULL when absent. */
static struct cdm_name_slot *find(const struct cdm_names *ix,
                                  const char *name, uint64_t h)
{
    size_t mask, i;

    if (!ix->cap)
        return NULL;
    mask = ix->cap - 1;
    for (i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct cdm_name_slot *e = &ix->slots[i];
        if (!e->def)
            return NULL;
        if (e->hash == h && e->def != TOMBSTONE &&
            strcasecmp(e->def->name, name) == 0)
            return e;
    }
}

struct cdm_def *cdm__names_lookup(void *ix, const char *name)
{
    return cdm__names_get(ix, name);
}

struct cdm_def *cdm__names_get(const struct cdm_names *ix, const char *name)
{
    struct cdm_name_slot *e = find(ix, name, hash(name));

    return e ? e->def : NULL;
}

static void place(struct cdm_name_slot *slots, size_t cap, uint64_t h,
                  struct cdm_def *d)
{
    size_t i = (size_t)h & (cap - 1);

    while (slots[i].def)
        i = (i + 1) & (cap - 1);
    slots[i] = (struct cdm_name_slot){ h, d };
}

/* Room for `more` entries: the table is kept at most half full,
 * tombstones included, and rebuilt without them when it would not be. */
static int make_room(struct cdm_names *ix, size_t more)
{
    struct cdm_name_slot *slots;
    size_t cap = ix->cap ? ix->cap : 64;

    if ((ix->used + more) * 2 <= ix->cap)
        return CDM_OK;
    while ((ix->live + more) * 2 > cap)
        cap *= 2;
    if (!(slots = calloc(cap, sizeof *slots)))
        return cdm__nomem();
    for (size_t i = 0; i < ix->cap; i++)
        if (ix->slots[i].def && ix->slots[i].def != TOMBSTONE)
            place(slots, cap, ix->slots[i].hash, ix->slots[i].def);
    free(ix->slots);
    ix->slots = slots;
    ix->cap = cap;
    ix->used = ix->live;
    return CDM_OK;
}

int cdm__names_reserve(struct cdm_names *ix, size_t n)
{
    return make_room(ix, n);
}

int cdm__names_put(struct cdm_names *ix, struct cdm_def *d)
{
    uint64_t h = hash(d->name);
    struct cdm_name_slot *e = find(ix, d->name, h);
    int rc;

    if (e) {
        e->def = d;
        return CDM_OK;
    }
    if ((rc = make_room(ix, 1)) != CDM_OK)
        return rc;
    place(ix->slots, ix->cap, h, d);
    ix->used++;
    ix->live++;
    return CDM_OK;
}

void cdm__names_del(struct cdm_names *ix, const struct cdm_def *d)
{
    struct cdm_name_slot *e = find(ix, d->name, hash(d->name));

    if (e && e->def == d) {
        e->def = TOMBSTONE;
        ix->live--;
    }
}

int cdm__names_build(struct cdm_names *ix, struct cdm_def *const *defs,
                     size_t n)
{
    struct cdm_names fresh = { 0 };
    int rc = make_room(&fresh, n);

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
