/*
 * testsrv.h - helpers shared by the programs that count a test server's
 * sessions from the outside (check_chaos, soak): this process's own
 * sockets to a port, and a plain libpq connection that counts sessions.
 * Check-free, so that tests/soak (built without Check) can use them.
 */
#ifndef CDM_TESTSRV_H
#define CDM_TESTSRV_H

#include "config.h"
#if HAVE_POSTGRESQL
#include <libpq-fe.h>
#endif

/* This process's TCP connections to `port` (ESTABLISHED), other than the
 * socket with inode `skip`: the client side's own count of physical
 * connections, from /proc/net/tcp and /proc/self/fd.  Unlike the
 * server's count it does not lag behind a close.  -1 if unreadable. */
int tu_client_sockets(unsigned port, unsigned long skip);

#if HAVE_POSTGRESQL
/* A plain libpq connection, not through cdm, named `application_name`;
 * NULL (saying why on stderr after `what: `) if it fails. */
PGconn *tu_pg_monitor(const char *host, const char *port, const char *db,
                      const char *user, const char *password,
                      const char *application_name, const char *what);
/* Server sessions whose application_name is `app` now, or -1. */
int tu_pg_sessions(PGconn *h, const char *app);
#endif

#endif
