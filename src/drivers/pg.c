/*
 * pg.c - the PostgreSQL driver (libpq).  Connects with keyword arrays
 * (never a conninfo string pasted together), sends every statement with
 * its parameters apart from the SQL text, prepares named statements for
 * stmt.c's cache, types result values by column, and knows the
 * transaction state and liveness of a connection without a round trip.
 * The parameter table is always built so that PG definitions can be
 * checked without libpq.
 */
#include "../cdm_int.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#if HAVE_POSTGRESQL
#include <libpq-fe.h>
#endif

static const char *const pg_aliases[] = { "PostgreSQL", "Postgres", NULL };

/* libpq keywords that have a cdm parameter of their own: PGAdvanced may
 * not set them (a password there would escape masking). */
static const char *const pg_reserved[][2] = {
    { "host", "Server" },
    { "port", "Port" },
    { "dbname", "Database" },
    { "user", "User_Name" },
    { "password", "Password" },
    { "connect_timeout", "LoginTimeout" },
    { "client_encoding", "CharacterSet" },
    { "application_name", "ApplicationName" },
};

/* Calls fn(key, value) for each "key=value" of a PGAdvanced value; blanks
 * around keys and values are ignored, empty entries skipped. */
static int each_advanced(const char *where, const char *text,
                         int (*fn)(void *ctx, const char *key, const char *value),
                         void *ctx)
{
    const char *p = text;

    while (*p) {
        const char *end = strchr(p, ';'), *eq;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *k = p, *v;
        size_t kn, vn;
        char key[64], *value;
        int rc;

        p += n + (end ? 1 : 0);
        cdm__trim(&k, &n);
        if (n == 0)
            continue;
        if (!(eq = memchr(k, '=', n)))
            return cdm__fail(CDM_ERR_INVALID, "%s: PGAdvanced: '%.*s' is not "
                             "key=value", where, (int)(n < 64 ? n : 64), k);
        kn = (size_t)(eq - k);
        v = eq + 1;
        vn = n - kn - 1;
        cdm__trim(&k, &kn);
        cdm__trim(&v, &vn);
        if (kn == 0 || kn >= sizeof key)
            return cdm__fail(CDM_ERR_INVALID, "%s: PGAdvanced: bad key in "
                             "'%.*s'", where, (int)(n < 64 ? n : 64), k);
        memcpy(key, k, kn);
        key[kn] = '\0';
        if (!(value = cdm__strndup(v, vn)))
            return cdm__nomem();
        rc = fn(ctx, key, value);
        free(value);
        if (rc != CDM_OK)
            return rc;
    }
    return CDM_OK;
}

struct check_ctx {
    const char *where;
};

static int check_one(void *ctx, const char *key, const char *value)
{
    const char *where = ((struct check_ctx *)ctx)->where;

    (void)value;
    for (size_t i = 0; i < sizeof pg_reserved / sizeof pg_reserved[0]; i++)
        if (cdm__streq_nocase(key, pg_reserved[i][0]))
            return cdm__fail(CDM_ERR_INVALID, "%s: PGAdvanced: set %s with "
                             "the %s parameter instead", where, key,
                             pg_reserved[i][1]);
#if HAVE_POSTGRESQL
    {
        PQconninfoOption *opts = PQconndefaults(), *o;
        bool known = false;
        if (!opts)
            return cdm__nomem();
        for (o = opts; o->keyword && !known; o++)
            known = strcmp(o->keyword, key) == 0;
        PQconninfoFree(opts);
        if (!known)
            return cdm__fail(CDM_ERR_INVALID, "%s: PGAdvanced: '%s' is not a "
                             "libpq connection keyword", where, key);
    }
#endif
    return CDM_OK;
}

static int check_advanced(const char *where, const char *key, const char *value)
{
    struct check_ctx ctx = { where };

    (void)key;
    return each_advanced(where, value, check_one, &ctx);
}

/* One port, or one per host of a Server list ("5432,5433"). */
static int check_ports(const char *where, const char *key, const char *value)
{
    const char *p = value;

    do {
        size_t n = strcspn(p, ",");
        char one[16];
        long long port;
        if (n == 0 || n >= sizeof one)
            return cdm__fail(CDM_ERR_INVALID, "%s: %s: '%.64s' is not a port "
                             "or a comma-separated list of ports", where, key,
                             value);
        memcpy(one, p, n);
        one[n] = '\0';
        if (cdm__parse_int(one, 1, 65535, &port) != CDM_OK)
            return cdm__fail(CDM_ERR_INVALID, "%s: %s: '%s' is not a port "
                             "(1 to 65535)", where, key, one);
        p += n;
    } while (*p++ == ',');
    return CDM_OK;
}

static const struct cdm_param_spec pg_params[] = {
    { "Server",          NULL,   CDM_P_STRING, 0, 0, NULL, 0, NULL },
    { "Port",            "5432", CDM_P_STRING, 0, 0, NULL, 0, check_ports },
    { "User_Name",       NULL,   CDM_P_STRING, 0, 0, NULL, 0, NULL },
    { "Password",        NULL,   CDM_P_STRING, 0, 0, NULL, CDM_PF_SECRET, NULL },
    { "LoginTimeout",    NULL,   CDM_P_INT, 0, INT_MAX, NULL, 0, NULL },
    { "CharacterSet",    NULL,   CDM_P_STRING, 0, 0, NULL, 0, NULL },
    { "ApplicationName", NULL,   CDM_P_STRING, 0, 0, NULL, 0, NULL },
    { "PGAdvanced",      NULL,   CDM_P_STRING, 0, 0, NULL, 0, check_advanced },
    { NULL, NULL, CDM_P_STRING, 0, 0, NULL, 0, NULL }
};

#if HAVE_POSTGRESQL

/* Type OIDs, fixed in PostgreSQL's catalog (pg_type.dat) for good; the
 * server's headers that name them are not part of libpq-dev. */
#define BYTEAOID  17
#define INT8OID   20
#define INT2OID   21
#define INT4OID   23
#define OIDOID    26
#define FLOAT4OID 700
#define FLOAT8OID 701

/* A connection: libpq's handle and what arrived while it sat idle. */
struct pgc {
    PGconn *conn;
    bool fatal;   /* the server announced it is ending the session */
    /* StatementCacheSize=0: no statement is kept on the server at all
     * (see pg_prepare). */
    bool unnamed;
    /* Prepared statements are named "cdm_<token>_<n>".  The token is
     * random per connection, so that a name is never another
     * connection's: behind a pooler that moves statements between
     * server sessions (PgBouncer in transaction mode) a name of another
     * client's would run that client's SQL with our values. */
    uint64_t token;
    uint64_t nstmts;
    /* Names to DEALLOCATE once no transaction is open (deferred_flush):
     * a DEALLOCATE that fails inside one would abort it. */
    char **deferred;
    size_t ndeferred, deferred_cap;
};

/* A prepared statement: named on the server, or (unnamed mode) only its
 * SQL, sent with every run. */
struct pgstmt {
    char name[40];
    char *sql;    /* unnamed mode: the SQL with $n; else NULL */
    int nparams;
    Oid *types;   /* the server's parameter types, asked when a BLOB is
                   * first bound (describe_params), else NULL */
};

/* Notices are never printed (the library prints nothing).  A FATAL one
 * that arrives while idle is the server's last word before it closes the
 * socket (pg_terminate_backend, shutdown): the socket may stay open a
 * while longer (a backend dropping many temporary tables), so liveness
 * must not wait for the end of the stream. */
static void on_notice(void *arg, const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        ((struct pgc *)arg)->fatal = true;
}

/* libpq's messages end with a newline; ours do not. */
static const char *trimmed(const char *msg, int *len)
{
    size_t n = msg ? strlen(msg) : 0;

    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    *len = (int)n;
    return msg ? msg : "";
}

static int pg_status_fail(PGconn *conn, const PGresult *res)
{
    int n;
    const char *msg;

    if (PQstatus(conn) != CONNECTION_OK) {
        /* The connection's message keeps the server's reason ("terminating
         * connection due to administrator command"); the result's only
         * says the connection closed. */
        msg = trimmed(PQerrorMessage(conn), &n);
        return cdm__fail(CDM_ERR_BROKEN, "PG: connection lost: %.*s", n, msg);
    }
    msg = trimmed(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), &n);
    if (n == 0)
        msg = trimmed(PQerrorMessage(conn), &n);
    return cdm__fail(CDM_ERR_QUERY, "PG: %.*s", n, msg);
}

struct kw {
    const char *keys[48];
    const char *values[48];
    int n;
    char *owned[24];   /* strings we allocated */
    int nowned;
};

static int kw_add(void *ctx, const char *key, const char *value)
{
    struct kw *kw = ctx;
    char *k, *v;

    if (kw->n >= 46 || kw->nowned >= 22)
        return cdm__fail(CDM_ERR_INVALID, "PGAdvanced: too many keywords");
    if (!(k = cdm__strdup(key)) || !(v = cdm__strdup(value))) {
        free(k);
        return cdm__nomem();
    }
    kw->owned[kw->nowned++] = k;
    kw->owned[kw->nowned++] = v;
    kw->keys[kw->n] = k;
    kw->values[kw->n++] = v;
    return CDM_OK;
}

static void kw_set(struct kw *kw, const char *key, const char *value)
{
    if (value) {
        kw->keys[kw->n] = key;
        kw->values[kw->n++] = value;
    }
}

static int pg_connect(const struct cdm_resolved *r, void **out)
{
    struct kw kw = { .n = 0 };
    const char *adv = cdm__rget(r, "PGAdvanced");
    struct pgc *pc;
    PGconn *conn;
    int rc = CDM_OK, n;

    kw_set(&kw, "host", cdm__rget(r, "Server"));
    kw_set(&kw, "port", cdm__rget(r, "Port"));
    kw_set(&kw, "dbname", cdm__rget(r, "Database"));
    kw_set(&kw, "user", cdm__rget(r, "User_Name"));
    kw_set(&kw, "password", cdm__rget(r, "Password"));
    kw_set(&kw, "connect_timeout", cdm__rget(r, "LoginTimeout"));
    kw_set(&kw, "client_encoding", cdm__rget(r, "CharacterSet"));
    kw_set(&kw, "application_name", cdm__rget(r, "ApplicationName"));
    if (adv)
        rc = each_advanced(r->where, adv, kw_add, &kw);
    if (rc != CDM_OK)
        goto out;
    kw.keys[kw.n] = NULL;
    kw.values[kw.n] = NULL;

    /* expand_dbname 0: a Database value is a name, never a conninfo. */
    conn = PQconnectdbParams(kw.keys, kw.values, 0);
    if (!conn) {
        rc = cdm__nomem();
        goto out;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *msg = trimmed(PQerrorMessage(conn), &n);
        rc = cdm__fail(CDM_ERR_CONNECT, "%s: PG: %.*s", r->where, n, msg);
        PQfinish(conn);
        goto out;
    }
    if (!(pc = calloc(1, sizeof *pc))) {
        PQfinish(conn);
        rc = cdm__nomem();
        goto out;
    }
    pc->conn = conn;
    pc->unnamed = cdm__rget_int(r, "StatementCacheSize") == 0;
    if (getrandom(&pc->token, sizeof pc->token, GRND_NONBLOCK) !=
        (ssize_t)sizeof pc->token)
        /* No entropy yet (early boot): still unique enough among the
         * clients of one server. */
        pc->token = (uint64_t)cdm__now_ns() ^ ((uint64_t)getpid() << 40) ^
                    (uint64_t)(uintptr_t)pc;
    PQsetNoticeReceiver(conn, on_notice, pc);
    *out = pc;
out:
    for (int i = 0; i < kw.nowned; i++)
        free(kw.owned[i]);
    return rc;
}

static void deferred_clear(struct pgc *pc)
{
    for (size_t i = 0; i < pc->ndeferred; i++)
        free(pc->deferred[i]);
    pc->ndeferred = 0;
}

static void pg_close(void *dc)
{
    struct pgc *pc = dc;

    PQfinish(pc->conn);
    deferred_clear(pc);
    free(pc->deferred);
    free(pc);
}

/* The SQL as the server must see it: ? numbered $1.., parameters checked. */
static int prepare_sql(const char *sql, size_t nparams, char **out, bool *multi)
{
    size_t n;
    int rc = cdm__sql_scan(sql, CDM_SQL_PG, true, out, &n, multi);

    if (rc != CDM_OK)
        return rc;
    if (n != nparams) {
        free(*out);
        return cdm__fail(CDM_ERR_INVALID, "the statement has %zu parameter%s "
                         "(?), %zu given", n, n == 1 ? "" : "s", nparams);
    }
    return CDM_OK;
}

/* Rows changed.  PQcmdTuples also counts the rows a SELECT, FETCH or
 * MOVE returned; those changed nothing (INSERT ... RETURNING did). */
static int64_t affected_of(PGresult *res)
{
    const char *t = PQcmdTuples(res), *tag = PQcmdStatus(res);

    if (PQresultStatus(res) == PGRES_TUPLES_OK &&
        strncmp(tag, "INSERT", 6) != 0 && strncmp(tag, "UPDATE", 6) != 0 &&
        strncmp(tag, "DELETE", 6) != 0 && strncmp(tag, "MERGE", 5) != 0)
        return 0;
    return t && *t ? strtoll(t, NULL, 10) : 0;
}

static int pg_exec(void *dc, const char *sql, const char *const *params,
                   size_t n, int64_t *affected)
{
    PGconn *conn = ((struct pgc *)dc)->conn;
    PGresult *res;
    char *text;
    bool multi;
    int rc;

    *affected = 0;
    if ((rc = prepare_sql(sql, n, &text, &multi)) != CDM_OK)
        return rc;
    if (n && multi) {
        free(text);
        return cdm__fail(CDM_ERR_INVALID, "the SQL text holds more than one "
                         "statement; parameters go with one statement");
    }
    if (!multi) {
        res = n ? PQexecParams(conn, text, (int)n, NULL, params, NULL, NULL, 0)
                : PQexec(conn, text);
        free(text);
        if (!res)
            return pg_status_fail(conn, NULL);
        switch (PQresultStatus(res)) {
        case PGRES_COMMAND_OK:
        case PGRES_TUPLES_OK:
        case PGRES_EMPTY_QUERY:
            *affected = affected_of(res);
            rc = CDM_OK;
            break;
        default:
            rc = pg_status_fail(conn, res);
        }
        PQclear(res);
        return rc;
    }
    /* A script: one statement at a time, so that each commits on its own
     * (sent as one string, PostgreSQL would run them all in one implicit
     * transaction and undo the earlier ones when a later one fails). */
    for (const char *p = text; rc == CDM_OK && *p;) {
        const char *end = cdm__sql_statement_end(text, p, CDM_SQL_PG);
        char *one = cdm__strndup(p, (size_t)(end - p));
        if (!one) {
            rc = cdm__nomem();
            break;
        }
        res = PQexec(conn, one);
        free(one);
        if (!res) {
            rc = pg_status_fail(conn, NULL);
            break;
        }
        switch (PQresultStatus(res)) {
        case PGRES_COMMAND_OK:
        case PGRES_TUPLES_OK:
        case PGRES_EMPTY_QUERY:
            *affected += affected_of(res);
            break;
        default:
            rc = pg_status_fail(conn, res);
        }
        PQclear(res);
        p = *end ? end + 1 : end;
    }
    free(text);
    return rc;
}

/* What a column's values are, by its type OID.  Numbers keep the text
 * PostgreSQL printed, which cdm_result_int64/_double read when asked:
 * since PostgreSQL 12 a float8 is printed in the shortest form that reads
 * back exactly (extra_float_digits at its default of 1, or above). */
static int column_type(Oid t)
{
    switch (t) {
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case OIDOID:
        return CDM_TYPE_INT;
    case FLOAT4OID:
    case FLOAT8OID:
        return CDM_TYPE_FLOAT;
    case BYTEAOID:
        return CDM_TYPE_BLOB;
    default:
        return CDM_TYPE_TEXT;
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A bytea value as its raw bytes: from "\x" and hex (the default
 * bytea_output), else from the escape format through libpq. */
static int set_bytea(cdm_result *r, size_t col, const char *s, size_t n)
{
    unsigned char *u;
    size_t len;
    int rc;

    if (n >= 2 && s[0] == '\\' && s[1] == 'x' && n % 2 == 0) {
        char *b;
        len = (n - 2) / 2;
        if (!(b = malloc(len + 1)))
            return cdm__nomem();
        for (size_t i = 0; i < len; i++) {
            int hi = hexval((unsigned char)s[2 + 2 * i]);
            int lo = hexval((unsigned char)s[3 + 2 * i]);
            if (hi < 0 || lo < 0) {
                free(b);
                return cdm__fail(CDM_ERR_QUERY, "PG: a bytea value is not "
                                 "valid hex");
            }
            b[i] = (char)(hi << 4 | lo);
        }
        b[len] = '\0';
        cdm__result_set_binary_owned(r, col, b, len);
        return CDM_OK;
    }
    if (!(u = PQunescapeBytea((const unsigned char *)s, &len)))
        return cdm__nomem();
    rc = cdm__result_set_binary(r, col, u, len);
    PQfreemem(u);
    return rc;
}

static int convert(PGresult *res, cdm_result **out)
{
    int nrows = PQntuples(res), ncols = PQnfields(res), rc;
    int small[16], *types = small;
    cdm_result *r;

    if (ncols > 16 && !(types = malloc((size_t)ncols * sizeof *types)))
        return cdm__nomem();
    if ((rc = cdm__result_new((size_t)ncols, &r)) != CDM_OK) {
        if (types != small)
            free(types);
        return rc;
    }
    rc = cdm__result_reserve(r, (size_t)nrows);
    for (int c = 0; c < ncols && rc == CDM_OK; c++) {
        types[c] = column_type(PQftype(res, c));
        rc = cdm__result_set_colname(r, (size_t)c, PQfname(res, c));
    }
    for (int i = 0; i < nrows && rc == CDM_OK; i++) {
        rc = cdm__result_add_row(r);
        for (int c = 0; c < ncols && rc == CDM_OK; c++) {
            const char *v;
            size_t n;
            if (PQgetisnull(res, i, c))
                continue;
            v = PQgetvalue(res, i, c);
            n = (size_t)PQgetlength(res, i, c);
            rc = types[c] == CDM_TYPE_BLOB
                     ? set_bytea(r, (size_t)c, v, n)
                     : cdm__result_set_typed(r, (size_t)c, types[c], v, n);
        }
    }
    if (types != small)
        free(types);
    if (rc != CDM_OK) {
        cdm_result_free(r);
        return rc;
    }
    *out = r;
    return CDM_OK;
}

static int pg_query(void *dc, const char *sql, const char *const *params,
                    size_t n, cdm_result **out)
{
    PGconn *conn = ((struct pgc *)dc)->conn;
    PGresult *res;
    char *text;
    bool multi;
    int rc;

    if ((rc = prepare_sql(sql, n, &text, &multi)) != CDM_OK)
        return rc;
    if (multi) {
        free(text);
        return cdm__fail(CDM_ERR_INVALID, "the SQL text holds more than one "
                         "statement; run them one by one (or with cdm_exec "
                         "and no parameters)");
    }
    /* One statement either way; without parameters the simple protocol
     * is one message less. */
    res = n ? PQexecParams(conn, text, (int)n, NULL, params, NULL, NULL, 0)
            : PQexec(conn, text);
    free(text);
    if (!res)
        return pg_status_fail(conn, NULL);
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        rc = convert(res, out);
        break;
    case PGRES_EMPTY_QUERY:
        rc = cdm__fail(CDM_ERR_INVALID, "the SQL text holds no statement");
        break;
    default:
        rc = pg_status_fail(conn, res);
    }
    PQclear(res);
    return rc;
}

/* ------------------------------------------------ prepared statements */

/* Drops one server statement now; failures are of no interest (the
 * server may have dropped it already, and a lost connection shows on the
 * next call). */
static void deallocate(PGconn *conn, const char *name)
{
    PGresult *res;
#ifdef LIBPQ_HAS_CLOSE_PREPARED
    /* libpq 17: a protocol Close, which poolers that track statements
     * see, and which is no error for a statement the server lacks. */
    res = PQclosePrepared(conn, name);
#else
    char sql[64];

    snprintf(sql, sizeof sql, "DEALLOCATE \"%s\"", name);
    res = PQexec(conn, sql);
#endif
    PQclear(res);
}

static bool idle(PGconn *conn)
{
    return PQstatus(conn) == CONNECTION_OK &&
           PQtransactionStatus(conn) == PQTRANS_IDLE;
}

/* Drops the statements left over from inside a transaction, once there
 * is none: a DEALLOCATE that failed inside one (the statement already
 * gone) would have aborted it, and inside a failed one it cannot run. */
static void deferred_flush(struct pgc *pc)
{
    if (!idle(pc->conn))
        return;
    for (size_t i = 0; i < pc->ndeferred; i++)
        deallocate(pc->conn, pc->deferred[i]);
    deferred_clear(pc);
}

static int pg_prepare(void *dc, const char *sql, void **ps, size_t *nparams)
{
    struct pgc *pc = dc;
    struct pgstmt *st;
    PGresult *res;
    char *text;
    size_t n;
    bool multi;
    int rc = cdm__sql_scan(sql, CDM_SQL_PG, true, &text, &n, &multi);

    if (rc != CDM_OK)
        return rc;
    if (multi) {
        free(text);
        return cdm__fail(CDM_ERR_INVALID, "the SQL text holds more than one "
                         "statement; %s", n ? "parameters go with one "
                         "statement" : "prepare them one by one");
    }
    if (n > 65535) {
        /* The protocol counts parameters in 16 bits. */
        free(text);
        return cdm__fail(CDM_ERR_INVALID, "the statement has %zu "
                         "parameters; PostgreSQL takes at most 65535", n);
    }
    if (!(st = calloc(1, sizeof *st))) {
        free(text);
        return cdm__nomem();
    }
    st->nparams = (int)n;
    if (pc->unnamed) {
        /* StatementCacheSize=0 says the server keeps no statement
         * between transactions (PgBouncer in transaction mode), where a
         * statement prepared in one would be unknown in the next: each
         * run sends the SQL with its values (PQexecParams, one round
         * trip), and an error in the SQL shows at the first run. */
        st->sql = text;
        *ps = st;
        *nparams = n;
        return CDM_OK;
    }
    if (pc->ndeferred)
        deferred_flush(pc);
    snprintf(st->name, sizeof st->name, "cdm_%016" PRIx64 "_%" PRIu64,
             pc->token, ++pc->nstmts);
    /* No parameter types: the server infers each from its place, as for
     * PQexecParams, so that text, numbers, dates and JSON go in as text
     * whatever the column. */
    res = PQprepare(pc->conn, st->name, text, (int)n, NULL);
    free(text);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_status_fail(pc->conn, res);
        PQclear(res);
        free(st);
        return rc;
    }
    PQclear(res);
    *ps = st;
    *nparams = n;
    return CDM_OK;
}

static void pg_unprepare(void *dc, void *ps, bool server_knows)
{
    struct pgc *pc = dc;
    struct pgstmt *st = ps;

    if (server_knows && !st->sql && PQstatus(pc->conn) == CONNECTION_OK) {
        if (idle(pc->conn)) {
            deallocate(pc->conn, st->name);
        } else {
            char *name = cdm__strdup(st->name);
            char **p = pc->deferred;
            size_t cap = pc->deferred_cap ? pc->deferred_cap * 2 : 8;
            if (name && pc->ndeferred == pc->deferred_cap &&
                (p = realloc(pc->deferred, cap * sizeof *p)) != NULL) {
                pc->deferred = p;
                pc->deferred_cap = cap;
            }
            /* Out of memory: the server keeps the statement until the
             * session ends (or DISCARD ALL), which harms nothing. */
            if (name && p && pc->ndeferred < pc->deferred_cap)
                pc->deferred[pc->ndeferred++] = name;
            else
                free(name);
        }
    }
    free(st->sql);
    free(st->types);
    free(st);
}

/* Whether the error is the server's "cached plan must not change result
 * type": a table the statement reads changed its columns since it was
 * prepared.  By the function that raises it, as the message may be
 * translated (lc_messages); SQLSTATE 0A000 alone says only "not
 * supported". */
static bool plan_changed(const PGresult *res)
{
    const char *fn = PQresultErrorField(res, PG_DIAG_SOURCE_FUNCTION);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    return (fn && strcmp(fn, "RevalidateCachedQuery") == 0) ||
           (msg && strstr(msg, "cached plan must not change result type"));
}

/* A failed run or describe of `st`: CDM__STALE when the server lost the
 * statement or its plan no longer fits and no transaction is open, so
 * that stmt.c prepares it again and runs it once more; else the error.
 * Inside a transaction block the error has aborted the transaction, so
 * running the statement again there would only fail again. */
static int run_failed(struct pgc *pc, struct pgstmt *st, PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    bool gone = state && strcmp(state, "26000") == 0;
    bool changed = state && strcmp(state, "0A000") == 0 && plan_changed(res);
    int rc;

    if (!gone && !changed)
        return pg_status_fail(pc->conn, res);
    if (idle(pc->conn)) {
        /* 26000: nothing left to drop.  A changed plan's statement is
         * still there, and stmt.c frees a stale handle without a word
         * to the server. */
        if (changed)
            deallocate(pc->conn, st->name);
        return CDM__STALE;
    }
    rc = pg_status_fail(pc->conn, res);
    if (rc == CDM_ERR_QUERY)
        cdm__errprefix("%s", gone
            ? "the server dropped a cached prepared statement (DEALLOCATE "
              "or DISCARD on this connection, or a pooler in transaction "
              "mode, such as PgBouncer, in front of the server: set "
              "StatementCacheSize=0 for it); inside a transaction it "
              "cannot be prepared again, and the transaction is aborted: "
            : "a table the statement reads changed since it was prepared; "
              "inside a transaction it cannot be prepared again, and the "
              "transaction is aborted (roll back and run it again): ");
    return rc;
}

/* The server's parameter types of `st`, once per statement: a BLOB goes
 * in binary, which only a bytea parameter reads as its bytes (an int4
 * one would take 4 bytes as a number).  Asked only when a BLOB is first
 * bound, so that statements without one keep to one round trip per run;
 * declaring types at prepare time is no alternative, as the binds come
 * after it, and declaring text would make the server refuse `date = ?`. */
static int describe_params(struct pgc *pc, struct pgstmt *st)
{
    PGresult *res = PQdescribePrepared(pc->conn, st->name);
    int rc = CDM_OK;

    if (!res)
        return pg_status_fail(pc->conn, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = run_failed(pc, st, res);
    else if (PQnparams(res) != st->nparams)
        rc = cdm__fail(CDM_ERR_QUERY, "PG: the statement has %d parameters "
                       "on the server, %d ?", PQnparams(res), st->nparams);
    else if (!(st->types = malloc(((size_t)st->nparams + 1) *
                                  sizeof *st->types)))
        rc = cdm__nomem();
    else
        for (int i = 0; i < st->nparams; i++)
            st->types[i] = PQparamtype(res, i);
    PQclear(res);
    return rc;
}

/* A double as float8 reads it: the shortest of 15 to 17 digits that reads
 * back exactly (so 0.1 stays 0.1 in a numeric column), the special
 * values spelt PostgreSQL's way; -0 keeps its sign. */
static const char *double_text(double d, char *buf, size_t size)
{
    if (isnan(d))
        return "NaN";
    if (isinf(d))
        return d > 0 ? "Infinity" : "-Infinity";
    for (int prec = 15; prec <= 17; prec++) {
        cdm__fmt_double(buf, size, prec, d);
        if (cdm__strtod(buf, NULL) == d)
            break;
    }
    return buf;
}

#define NUM_TEXT 32   /* room for any int64 or double as text */

/* Runs `st` with typed values, in one round trip (PQexecPrepared, or
 * PQexecParams in unnamed mode): INT and FLOAT as their text, TEXT as
 * is, a BLOB as binary bytea. */
static int pg_run(void *dc, void *ps, const struct cdm_value *v, size_t n,
                  int64_t *affected, cdm_result **out)
{
    struct pgc *pc = dc;
    struct pgstmt *st = ps;
    const char *small_vals[16], **vals = small_vals;
    int small_lens[16], small_fmts[16], *lens = small_lens, *fmts = small_fmts;
    Oid small_types[16], *types = small_types;
    char small_nums[16][NUM_TEXT], (*nums)[NUM_TEXT] = small_nums;
    void *heap = NULL;
    bool binary = false;
    PGresult *res;
    int rc = CDM_OK;

    if (n > 16) {
        size_t each = sizeof *nums + sizeof *vals + sizeof *types +
                      2 * sizeof *lens;
        if (n > SIZE_MAX / each || !(heap = malloc(n * each)))
            return cdm__nomem();
        nums = heap;
        vals = (const char **)(nums + n);
        types = (Oid *)(vals + n);
        lens = (int *)(types + n);
        fmts = lens + n;
    }
    if (pc->ndeferred)
        deferred_flush(pc);
    for (size_t i = 0; i < n && rc == CDM_OK; i++) {
        const char *nul;
        lens[i] = 0;
        fmts[i] = 0;
        types[i] = 0;
        switch (v[i].type) {
        case CDM_TYPE_INT:
            snprintf(nums[i], NUM_TEXT, "%" PRId64, v[i].i);
            vals[i] = nums[i];
            break;
        case CDM_TYPE_FLOAT:
            vals[i] = double_text(v[i].d, nums[i], NUM_TEXT);
            break;
        case CDM_TYPE_TEXT:
            /* Text goes up to its NUL (libpq takes no length for text),
             * and PostgreSQL's text types cannot hold one anyway. */
            if ((nul = memchr(v[i].p, '\0', v[i].len)) != NULL)
                rc = cdm__fail(CDM_ERR_INVALID, "parameter %zu: PostgreSQL "
                               "text cannot hold a NUL byte (byte %zu of "
                               "%zu); bind it with cdm_bind_blob, for a "
                               "bytea", i, (size_t)(nul - v[i].p), v[i].len);
            vals[i] = v[i].p;
            break;
        case CDM_TYPE_BLOB:
            if (v[i].len > INT_MAX) {
                rc = cdm__fail(CDM_ERR_INVALID, "parameter %zu: a BLOB of "
                               "%zu bytes is more than PostgreSQL takes",
                               i, v[i].len);
                break;
            }
            if (st->sql) {
                /* Unnamed: the type goes with the value, and where the
                 * SQL wants another the server says so. */
                types[i] = BYTEAOID;
            } else if (!st->types &&
                       (rc = describe_params(pc, st)) != CDM_OK) {
                break;
            } else if (st->types[i] != BYTEAOID) {
                rc = cdm__fail(CDM_ERR_INVALID, "parameter %zu: a BLOB goes "
                               "into a bytea only, and the server reads "
                               "this one as type %u (write ?::bytea, or "
                               "bind text)", i, (unsigned)st->types[i]);
                break;
            }
            vals[i] = v[i].len ? v[i].p : "";
            lens[i] = (int)v[i].len;
            fmts[i] = 1;
            binary = true;
            break;
        default:
            vals[i] = NULL;
        }
    }
    if (rc != CDM_OK) {
        free(heap);
        return rc;
    }
    if (st->sql)
        res = PQexecParams(pc->conn, st->sql, (int)n, binary ? types : NULL,
                           vals, binary ? lens : NULL, binary ? fmts : NULL, 0);
    else
        res = PQexecPrepared(pc->conn, st->name, (int)n, vals,
                             binary ? lens : NULL, binary ? fmts : NULL, 0);
    free(heap);
    if (!res)
        return pg_status_fail(pc->conn, NULL);
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        if (out)
            rc = convert(res, out);
        else
            *affected = affected_of(res);
        break;
    case PGRES_EMPTY_QUERY:
        if (out)
            rc = cdm__fail(CDM_ERR_INVALID, "the SQL text holds no "
                           "statement");
        else
            *affected = 0;
        break;
    default:
        rc = run_failed(pc, st, res);
    }
    PQclear(res);
    return rc;
}

static int run(PGconn *conn, const char *sql, const char *expect_status)
{
    PGresult *res = PQexec(conn, sql);
    int rc = CDM_OK;

    if (!res)
        return pg_status_fail(conn, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_status_fail(conn, res);
    else if (expect_status && strcmp(PQcmdStatus(res), expect_status) != 0)
        /* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
        rc = cdm__fail(CDM_ERR_QUERY, "PG: the transaction was rolled back "
                       "(a statement in it failed), nothing was committed");
    PQclear(res);
    return rc;
}

static int pg_begin(void *dc)
{
    return run(((struct pgc *)dc)->conn, "BEGIN", NULL);
}

static int pg_commit(void *dc)
{
    return run(((struct pgc *)dc)->conn, "COMMIT", "COMMIT");
}

static int pg_rollback(void *dc)
{
    return run(((struct pgc *)dc)->conn, "ROLLBACK", NULL);
}

static int pg_in_transaction(void *dc)
{
    PGTransactionStatusType st = PQtransactionStatus(((struct pgc *)dc)->conn);

    return st == PQTRANS_INTRANS || st == PQTRANS_INERROR ||
           st == PQTRANS_ACTIVE;
}

static int pg_ping(void *dc);

static int pg_alive(void *dc)
{
    struct pgc *pc = dc;
    int rc;

    if (pc->fatal || PQstatus(pc->conn) != CONNECTION_OK)
        return CDM_ERR_BROKEN;
    rc = cdm__socket_check(PQsocket(pc->conn));
    if (rc == CDM__PENDING) {
        /* Something arrived while idle: a notice, or the server's last
         * words before it hangs up (seen by on_notice as FATAL). */
        /* PQconsumeInput only reads; PQisBusy parses, which is when a
         * FATAL reaches on_notice. */
        if (!PQconsumeInput(pc->conn))
            return CDM_ERR_BROKEN;
        PQisBusy(pc->conn);
        if (pc->fatal || PQstatus(pc->conn) != CONNECTION_OK)
            return CDM_ERR_BROKEN;
        rc = cdm__socket_check(PQsocket(pc->conn));
        if (rc == CDM__PENDING)
            /* Still unread: whatever it is, the next statement would see
             * it first; let a round trip decide. */
            rc = pg_ping(pc) == CDM_OK ? CDM_OK : CDM_ERR_BROKEN;
    }
    return rc;
}

static int pg_ping(void *dc)
{
    PGconn *conn = ((struct pgc *)dc)->conn;
    PGresult *res = PQexec(conn, "");
    int rc = res && PQresultStatus(res) == PGRES_EMPTY_QUERY ? CDM_OK :
             cdm__fail(CDM_ERR_BROKEN, "PG: ping failed: %s",
                       PQerrorMessage(conn));

    PQclear(res);
    return rc;
}

static int pg_reset(void *dc)
{
    struct pgc *pc = dc;
    int rc = run(pc->conn, "DISCARD ALL", NULL);

    /* It dropped every prepared statement (stmt.c forgets its own). */
    if (rc == CDM_OK)
        deferred_clear(pc);
    return rc;
}

static void *pg_handle(void *dc)
{
    return ((struct pgc *)dc)->conn;
}

static int pg_socket(void *dc)
{
    return PQsocket(((struct pgc *)dc)->conn);
}

static void pg_forget(void *dc)
{
    struct pgc *pc = dc;

    /* PQfinish's Terminate then goes nowhere; if the socket cannot be
     * replaced, the memory is left rather than the parent's session. */
    if (cdm__socket_silence(PQsocket(pc->conn)) == CDM_OK)
        pg_close(pc);
}
#endif /* HAVE_POSTGRESQL */

const struct cdm_driver cdm__driver_pg = {
    .id = "PG",
    .aliases = pg_aliases,
    .params = pg_params,
    .configure_flag = "--with-postgresql",
#if HAVE_POSTGRESQL
    .connect = pg_connect,
    .close = pg_close,
    .exec = pg_exec,
    .query = pg_query,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .in_transaction = pg_in_transaction,
    .alive = pg_alive,
    .ping = pg_ping,
    .reset = pg_reset,
    .handle = pg_handle,
    .socket = pg_socket,
    .forget = pg_forget,
    .prepare = pg_prepare,
    .run = pg_run,
    .unprepare = pg_unprepare,
#endif
};
