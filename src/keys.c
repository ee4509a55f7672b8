/*
 * keys.c - the names a loader looks up for every key of every definition:
 * cdm's parameters (common and per driver), FireDAC's keys and driver IDs.
 *
 * The tables they come from (param.c, firedac.c, the drivers) are written
 * for people to read, in documentation order; searched one entry at a time
 * they made the checking of a large file cost most of its loading.  Here
 * each name is hashed once, on first use, into one table that answers
 * every question about it in a lookup.
 */
#include "cdm_int.h"

#include <pthread.h>
#include <string.h>

/* Powers of two, at least twice the names they hold (checked when built). */
#define KEY_SLOTS 1024
#define ID_SLOTS 128

struct cdm_driver_id {
    const struct cdm_driver *drv;       /* cdm's driver of this ID or alias */
    const struct cdm_fd_driver *fd;     /* FireDAC's driver of this ID */
};

/* Open addressing: slot i holds a name, its hash (0: empty) and what is
 * known of it. */
static const char *key_name[KEY_SLOTS], *id_name[ID_SLOTS];
static uint64_t key_hash[KEY_SLOTS], id_hash[ID_SLOTS];
static struct cdm_keyinfo keys[KEY_SLOTS];
static struct cdm_driver_id ids[ID_SLOTS];
static pthread_once_t built = PTHREAD_ONCE_INIT;

static uint64_t hash(const char *s)
{
    uint64_t h = cdm__nocase_hash(s);

    return h ? h : 1;   /* 0 marks an empty slot */
}

/* The slot of `name` in a table of `n` slots: where it is, or the empty
 * one where it goes. */
static size_t slot(const uint64_t *hashes, const char *const *names,
                   size_t n, const char *name, uint64_t h)
{
    size_t i = (size_t)h & (n - 1);

    while (hashes[i] &&
           !(hashes[i] == h && cdm__streq_nocase(names[i], name)))
        i = (i + 1) & (n - 1);
    return i;
}

static struct cdm_keyinfo *key_add(const char *name)
{
    uint64_t h = hash(name);
    size_t i = slot(key_hash, key_name, KEY_SLOTS, name, h);

    if (!key_hash[i]) {
        key_hash[i] = h;
        key_name[i] = keys[i].name = name;
    }
    return &keys[i];
}

static struct cdm_driver_id *id_add(const char *name)
{
    uint64_t h = hash(name);
    size_t i = slot(id_hash, id_name, ID_SLOTS, name, h);

    if (!id_hash[i]) {
        id_hash[i] = h;
        id_name[i] = name;
    }
    return &ids[i];
}

static void build(void)
{
    for (const struct cdm_param_spec *s = cdm__common_params; s->key; s++)
        key_add(s->key)->common = s;
    for (size_t d = 0; cdm__drivers[d]; d++) {
        const struct cdm_driver *drv = cdm__drivers[d];
        for (const struct cdm_param_spec *s = drv->params; s && s->key; s++)
            key_add(s->key)->drv[d] = s;
        id_add(drv->id)->drv = drv;
        for (size_t j = 0; drv->aliases && drv->aliases[j]; j++)
            id_add(drv->aliases[j])->drv = drv;
    }
    for (size_t i = 0; cdm__fd_common[i]; i++)
        key_add(cdm__fd_common[i])->fd_common = true;
    for (size_t f = 0; cdm__fd_drivers[f].id; f++) {
        const struct cdm_fd_driver *fd = &cdm__fd_drivers[f];
        for (size_t i = 0; fd->keys && fd->keys[i]; i++)
            key_add(fd->keys[i])->fd |= (uint64_t)1 << f;
        id_add(fd->id)->fd = fd;
    }
}

/* Table sizes, for the test that they stay less than half full. */
void cdm__keys_usage(size_t *nkeys, size_t *key_slots, size_t *nids,
                     size_t *id_slots)
{
    pthread_once(&built, build);
    *nkeys = *nids = 0;
    for (size_t i = 0; i < KEY_SLOTS; i++)
        *nkeys += key_hash[i] != 0;
    for (size_t i = 0; i < ID_SLOTS; i++)
        *nids += id_hash[i] != 0;
    *key_slots = KEY_SLOTS;
    *id_slots = ID_SLOTS;
}

const struct cdm_keyinfo *cdm__keyinfo(const char *key)
{
    size_t i;

    pthread_once(&built, build);
    i = slot(key_hash, key_name, KEY_SLOTS, key, hash(key));
    return key_hash[i] ? &keys[i] : NULL;
}

static const struct cdm_driver_id *driver_id(const char *id)
{
    size_t i;

    pthread_once(&built, build);
    i = slot(id_hash, id_name, ID_SLOTS, id, hash(id));
    return id_hash[i] ? &ids[i] : NULL;
}

const struct cdm_driver *cdm__driver_find(const char *id)
{
    const struct cdm_driver_id *e = id ? driver_id(id) : NULL;

    return e ? e->drv : NULL;
}

const struct cdm_fd_driver *cdm__fd_driver(const char *id)
{
    const struct cdm_driver_id *e = id ? driver_id(id) : NULL;

    return e ? e->fd : NULL;
}

size_t cdm__driver_index(const struct cdm_driver *drv)
{
    size_t i = 0;

    while (cdm__drivers[i] && cdm__drivers[i] != drv)
        i++;
    return i;
}
