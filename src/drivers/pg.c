/*
 * pg.c - the PostgreSQL driver (libpq).  Connects with keyword arrays
 * (never a conninfo string pasted together), sends every statement with
 * its parameters apart from the SQL text, types result values by column,
 * and knows the transaction state and liveness of a connection without a
 * round trip.  The parameter table is always built so that PG definitions
 * can be checked without libpq.
 */
#include "../cdm_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    PQsetNoticeReceiver(conn, on_notice, pc);
    *out = pc;
out:
    for (int i = 0; i < kw.nowned; i++)
        free(kw.owned[i]);
    return rc;
}

static void pg_close(void *dc)
{
    struct pgc *pc = dc;

    PQfinish(pc->conn);
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
    return run(((struct pgc *)dc)->conn, "DISCARD ALL", NULL);
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
#endif
};
