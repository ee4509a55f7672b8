/*
 * testsrv.c - helpers shared by the programs that count a test server's
 * sessions from the outside.  No Check here: tests/soak links this too.
 */
#define _GNU_SOURCE
#include "testsrv.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tu_client_sockets(unsigned port, unsigned long skip)
{
    static const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    unsigned long inodes[1024];
    int ninodes = 0, n = 0;
    char line[512], link[64], fdpath[300];
    struct dirent *e;
    DIR *d;

    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++) {
        FILE *f = fopen(tables[t], "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f)) {
            char rem[64];
            unsigned st, rport;
            unsigned long inode;
            char *colon;
            if (sscanf(line, " %*s %*s %63s %x %*s %*s %*s %*s %*s %lu",
                       rem, &st, &inode) != 3 || !(colon = strrchr(rem, ':')))
                continue;
            rport = (unsigned)strtoul(colon + 1, NULL, 16);
            if (rport == port && st == 1 && inode != skip && ninodes < 1024)
                inodes[ninodes++] = inode;
        }
        fclose(f);
    }
    if (!(d = opendir("/proc/self/fd")))
        return -1;
    while ((e = readdir(d))) {
        unsigned long inode;
        ssize_t len;
        snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%s", e->d_name);
        if ((len = readlink(fdpath, link, sizeof link - 1)) <= 0)
            continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &inode) != 1)
            continue;
        for (int i = 0; i < ninodes; i++)
            if (inodes[i] == inode) {
                n++;
                break;
            }
    }
    closedir(d);
    return n;
}

#if HAVE_POSTGRESQL
PGconn *tu_pg_monitor(const char *host, const char *port, const char *db,
                      const char *user, const char *password,
                      const char *application_name, const char *what)
{
    const char *keys[] = { "host", "port", "dbname", "user", "password",
                           "application_name", NULL };
    const char *vals[] = { host, port, db, user, password, application_name,
                           NULL };
    PGconn *h = PQconnectdbParams(keys, vals, 0);

    if (PQstatus(h) != CONNECTION_OK) {
        fprintf(stderr, "%s: %s", what, PQerrorMessage(h));
        PQfinish(h);
        return NULL;
    }
    return h;
}

int tu_pg_sessions(PGconn *h, const char *app)
{
    const char *params[] = { app };
    PGresult *r = PQexecParams(h, "SELECT count(*) FROM pg_stat_activity "
                               "WHERE application_name = $1", 1, NULL,
                               params, NULL, NULL, 0);
    int n = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        n = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}
#endif
