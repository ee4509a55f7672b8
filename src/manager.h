/*
 * manager.h - the manager's insides, shared by manager.c (definitions,
 * changes, lifecycle), load.c's callers and connect.c.  Never installed.
 */
#ifndef CDM_MANAGER_H
#define CDM_MANAGER_H

#include "cdm_int.h"

struct cdm_manager {
    uint64_t serial;             /* unique per manager, for thread caches;
                                  * set at creation, then read-only */
    pthread_mutex_t lock;        /* guards every field down to log_lock */
    struct cdm_def **defs;       /* file definitions in load order, then
                                  * private ones in the order added */
    size_t ndefs, cap;
    struct cdm_names names;      /* defs by name */
    struct cdm_source **files;   /* loaded files in load order (a ref each) */
    size_t nfiles;
    bool closed;
    char *autoload_error;        /* why $CDM_CONNECTION_DEFS did not load */
    struct cdm_registry *reg;    /* its pools; a new one in a forked child */
    cdm_manager *next_all;       /* every live manager, for fork handlers
                                  * (guarded by the list's own lock) */

    pthread_mutex_t log_lock;    /* guards log and log_user */
    cdm_log_fn log;
    void *log_user;
};

/* With m->lock held. */
struct cdm_def *cdm__manager_find(const cdm_manager *m, const char *name,
                                  size_t *index);
/* cdm_lookup_fn over a manager (ctx), for cdm__resolve_chain. */
struct cdm_def *cdm__manager_lookup(void *ctx, const char *name);
/* With m->lock held: cdm__resolve_chain over the manager, whose "no
 * definition named" suggests the closest defined name (connect.c). */
int cdm__manager_resolve(cdm_manager *m, const char *name,
                         struct cdm_resolved **out);
/* With m->lock held: the manager's registry, replaced by a fresh one the
 * first time it is needed in a child process after fork(). */
struct cdm_registry *cdm__manager_registry(cdm_manager *m);

#endif /* CDM_MANAGER_H */
