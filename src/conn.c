/*
 * conn.c - connections: the driver-independent half of every call, and
 * the guard that keeps two threads out of one connection.
 */
#define _GNU_SOURCE
#include "cdm_int.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Opening a connection runs client-library code that holds that library's
 * own process-wide locks for a moment (libpq's GSSAPI setup through
 * Kerberos, SQLite's open): a fork() at that moment hands the child a lock
 * no thread of it will ever release, and the child's first connect hangs.
 * cdm's fork handlers (manager.c) take this lock for writing, so a fork
 * waits for the opens in progress (each bounded by its LoginTimeout) and
 * opens that start meanwhile wait for the fork; writers go first, so a
 * stream of opens cannot hold a fork off. */
static pthread_rwlock_t open_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

void cdm__conn_fork_lock(void)
{
    pthread_rwlock_wrlock(&open_lock);
}

void cdm__conn_fork_unlock(bool child)
{
    /* glibc's rwlock records its writer's thread id, which the forking
     * thread no longer has in the child: there it is made anew. */
    if (child) {
        static const pthread_rwlock_t fresh =
            PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
        memcpy(&open_lock, &fresh, sizeof open_lock);
    } else {
        pthread_rwlock_unlock(&open_lock);
    }
}

int cdm__conn_open(const struct cdm_resolved *r, cdm_conn **out)
{
    /* Whole cache lines: pooled connections of different threads are
     * written on every borrow and must not share one. */
    size_t size = (sizeof(cdm_conn) + 63) / 64 * 64;
    cdm_conn *c = aligned_alloc(64, size);
    int rc;

    if (c)
        memset(c, 0, size);
    if (!c || !(c->def_name = cdm__strdup(r->name))) {
        free(c);
        return cdm__nomem();
    }
    c->drv = r->drv;
    c->watched_fd = -1;
    c->cache_size = (int)cdm__rget_int(r, "StatementCacheSize");
    pthread_rwlock_rdlock(&open_lock);
    rc = r->drv->connect(r, &c->dc);
    pthread_rwlock_unlock(&open_lock);
    if (rc != CDM_OK) {
        free(c->def_name);
        free(c);
        return rc;
    }
    *out = c;
    return CDM_OK;
}

/* Claims the connection for this call.  A second thread is turned away
 * instead of running two calls through one driver handle at once. */
int cdm__conn_enter(cdm_conn *c, const char *what)
{
    if (!c)
        return cdm__fail(CDM_ERR_INVALID, "%s: connection is NULL", what);
    if (atomic_exchange_explicit(&c->busy, 1, memory_order_acquire))
        return cdm__fail(CDM_ERR_STATE,
                         "definition '%s': %s: the connection is in use by "
                         "another thread", c->def_name, what);
    return CDM_OK;
}

void cdm__conn_destroy(cdm_conn *c)
{
    cdm__stmt_detach_all(c);
    /* The session ends with the connection, and its statements with it:
     * nothing to tell the server (PostgreSQL would otherwise get one
     * DEALLOCATE round trip per cached statement before the close). */
    cdm__stmt_cache_clear(c, false);
    c->drv->close(c->dc);
    free(c->def_name);
    free(c);
}

int cdm__conn_leave(cdm_conn *c, int rc)
{
    if (rc == CDM_ERR_BROKEN)
        c->broken = true;   /* destroyed, not pooled, when returned */
    if (rc != CDM_OK && rc != CDM_ERR_NOMEM)
        cdm__errprefix("definition '%s': ", c->def_name);
    atomic_store_explicit(&c->busy, 0, memory_order_release);
    return rc;
}

void cdm_disconnect(cdm_conn *c)
{
    if (!c)
        return;
    /* Disconnecting a connection another thread is inside is a bug in the
     * caller; waiting for that call to end (it is bounded by the driver's
     * own timeouts) at least keeps it from running on freed memory. */
    while (atomic_exchange_explicit(&c->busy, 1, memory_order_acquire))
        sched_yield();
    /* Statements belong to the borrow. */
    cdm__stmt_detach_all(c);
    if (c->pool)
        cdm__pool_release(c);
    else
        cdm__conn_destroy(c);
}

static int check_params(const char *sql, const char *const *params,
                        size_t nparams)
{
    if (!sql)
        return cdm__fail(CDM_ERR_INVALID, "SQL text is NULL");
    if (nparams && !params)
        return cdm__fail(CDM_ERR_INVALID, "%zu parameters but params is NULL",
                         nparams);
    return CDM_OK;
}

/* Whether a call with n parameters goes through the statement cache. */
static bool cached(const cdm_conn *c, size_t n)
{
    return n && c->cache_size > 0 && c->drv->prepare;
}

int cdm__conn_reset(cdm_conn *c)
{
    int rc = c->drv->reset(c->dc);

    /* The server dropped the session's statements (or, on failure, the
     * connection is closed anyway). */
    cdm__stmt_cache_clear(c, false);
    return rc;
}

int cdm_exec(cdm_conn *c, const char *sql, const char *const *params,
             size_t nparams, int64_t *affected)
{
    int64_t n = 0;
    int rc;

    if ((rc = cdm__conn_enter(c, "exec")) != CDM_OK)
        return rc;
    if ((rc = check_params(sql, params, nparams)) == CDM_OK &&
        (rc = cached(c, nparams)
                  ? cdm__stmt_run_text(c, sql, params, nparams, &n, NULL)
                  : c->drv->exec(c->dc, sql, params, nparams, &n)) == CDM_OK &&
        affected)
        *affected = n;
    return cdm__conn_leave(c, rc);
}

int cdm_query(cdm_conn *c, const char *sql, const char *const *params,
              size_t nparams, cdm_result **out)
{
    int rc;

    if ((rc = cdm__conn_enter(c, "query")) != CDM_OK)
        return rc;
    if (!out)
        rc = cdm__fail(CDM_ERR_INVALID, "result pointer is NULL");
    else if ((rc = check_params(sql, params, nparams)) == CDM_OK)
        rc = cached(c, nparams)
                 ? cdm__stmt_run_text(c, sql, params, nparams, NULL, out)
                 : c->drv->query(c->dc, sql, params, nparams, out);
    return cdm__conn_leave(c, rc);
}

int cdm_begin(cdm_conn *c)
{
    int rc;

    if ((rc = cdm__conn_enter(c, "begin")) != CDM_OK)
        return rc;
    if (c->drv->in_transaction(c->dc))
        rc = cdm__fail(CDM_ERR_STATE, "a transaction is already open");
    else
        rc = c->drv->begin(c->dc);
    return cdm__conn_leave(c, rc);
}

static int finish(cdm_conn *c, const char *what, int (*op)(void *))
{
    int rc;

    if ((rc = cdm__conn_enter(c, what)) != CDM_OK)
        return rc;
    if (!c->drv->in_transaction(c->dc))
        rc = cdm__fail(CDM_ERR_STATE, "%s: no transaction is open", what);
    else
        rc = op(c->dc);
    return cdm__conn_leave(c, rc);
}

int cdm_commit(cdm_conn *c)
{
    return finish(c, "commit", c ? c->drv->commit : NULL);
}

int cdm_rollback(cdm_conn *c)
{
    return finish(c, "rollback", c ? c->drv->rollback : NULL);
}

int cdm_ping(cdm_conn *c)
{
    int rc;

    if ((rc = cdm__conn_enter(c, "ping")) != CDM_OK)
        return rc;
    return cdm__conn_leave(c, c->drv->ping(c->dc));
}

const char *cdm_conn_driver(const cdm_conn *c)
{
    return c ? c->drv->id : NULL;
}

const char *cdm_conn_def_name(const cdm_conn *c)
{
    return c ? c->def_name : NULL;
}

void *cdm_conn_handle(cdm_conn *c)
{
    return c ? c->drv->handle(c->dc) : NULL;
}

int cdm__socket_check(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    char byte;
    ssize_t n;

    if (fd < 0)
        return CDM_ERR_BROKEN;
    if (poll(&pfd, 1, 0) == 0)
        return CDM_OK;              /* the usual case: nothing to read */
    if (pfd.revents & (POLLERR | POLLNVAL))
        return CDM_ERR_BROKEN;
    n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return CDM_ERR_BROKEN;      /* the server closed it */
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ?
               CDM_OK : CDM_ERR_BROKEN;
    return CDM__PENDING;
}

int cdm__socket_silence(int fd)
{
    int null;

    if (fd < 0)
        return CDM_OK;
    /* Another descriptor takes the socket's number in one step (dup2), so
     * a thread opening a file meanwhile cannot be handed that number and
     * get the driver's goodbye written into it.  /dev/null takes writes;
     * without it, an unconnected socket fails them. */
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        null = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (null < 0)
        return CDM_ERR_IO;
    if (dup2(null, fd) < 0) {
        close(null);
        return CDM_ERR_IO;
    }
    close(null);
    return CDM_OK;
}
