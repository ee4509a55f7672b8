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
    int autoload_status;         /* and its status */
    int watch_ms;                /* cdm_manager_watch's interval, 0: none */
    struct cdm_filesig *watch_failed;  /* the files' signatures when a
                                  * watched reload last failed (logged once
                                  * per change), one per file; NULL: none */
    size_t watch_nfailed;
    struct cdm_filesig *watch_seen;  /* the changed signatures seen at the
                                  * last look, not yet reloaded: a reload
                                  * waits until a look sees them again, so
                                  * that a file being written in place is
                                  * not read half-written */
    size_t watch_nseen;
    atomic_uint_fast64_t watch_looks;  /* times the files were looked at
                                  * (a test hook reads it) */
    struct cdm_registry *reg;    /* its pools; a new one in a forked child */
    cdm_manager *next_all;       /* every live manager, for fork handlers
                                  * (guarded by the list's own lock) */

    pthread_mutex_t log_lock;    /* guards everything below */
    cdm_log_fn log;
    void *log_user;
    bool keep_log;               /* no callback yet: keep what is logged
                                  * (the default manager's first load) */
    struct cdm_kept *kept;       /* kept messages, oldest first */
    size_t nkept, ndropped;
};

/* A message logged before any callback was installed. */
struct cdm_kept {
    int level;
    char *text;
};

/* With m->lock held. */
struct cdm_def *cdm__manager_find(const cdm_manager *m, const char *name,
                                  size_t *index);
/* cdm_lookup_fn over a manager (ctx), for cdm__resolve_chain. */
struct cdm_def *cdm__manager_lookup(void *ctx, const char *name);
/* With m->lock held: fails with CDM_ERR_NOT_FOUND, "no definition named
 * 'X'", and the closest defined name if one is near (connect.c). */
int cdm__manager_not_found(const cdm_manager *m, const char *name);
/* With m->lock held: cdm__resolve_chain over the manager, whose "no
 * definition named" suggests the closest defined name (connect.c). */
int cdm__manager_resolve(cdm_manager *m, const char *name,
                         struct cdm_resolved **out);
/* With m->lock held: the manager's registry, replaced by a fresh one the
 * first time it is needed in a child process after fork(). */
struct cdm_registry *cdm__manager_registry(cdm_manager *m);

#endif /* CDM_MANAGER_H */
