/*
 * mysql.c - the MySQL / MariaDB driver (MariaDB Connector/C, or a
 * libmysqlclient with the same API).  Parameters go through the
 * prepared-statement API; statements without parameters take the plain
 * query path (one round trip instead of prepare + execute).  Results are
 * fetched as text without truncation.  Automatic reconnect stays off: it
 * would silently lose session state.  The parameter table is always built
 * so that MySQL definitions can be checked without the client library.
 */
#include "../cdm_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if HAVE_MYSQL
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <errmsg.h>
#include <mysql.h>
#endif

static const char *const mysql_aliases[] = { "MariaDB", NULL };

static const struct cdm_param_spec mysql_params[] = {
    { "Server",       NULL,      CDM_P_STRING, 0, 0, NULL, 0, NULL },
    { "Port",         "3306",    CDM_P_INT, 1, 65535, NULL, 0, NULL },
    { "User_Name",    NULL,      CDM_P_STRING, 0, 0, NULL, 0, NULL },
    { "Password",     NULL,      CDM_P_STRING, 0, 0, NULL, CDM_PF_SECRET, NULL },
    { "LoginTimeout", NULL,      CDM_P_INT, 0, INT_MAX, NULL, 0, NULL },
    { "ReadTimeout",  NULL,      CDM_P_INT, 0, INT_MAX, NULL, 0, NULL },
    { "WriteTimeout", NULL,      CDM_P_INT, 0, INT_MAX, NULL, 0, NULL },
    { "CharacterSet", "utf8mb4", CDM_P_STRING, 0, 0, NULL, 0, NULL },
    { "UseSSL",       "False",   CDM_P_BOOL, 0, 0, NULL, 0, NULL },
    { "Compress",     "False",   CDM_P_BOOL, 0, 0, NULL, 0, NULL },
    { NULL, NULL, CDM_P_STRING, 0, 0, NULL, 0, NULL }
};

#if HAVE_MYSQL

/* ------------------------------------------------------------ threads */

/* mysql_library_init is not thread-safe: once, under pthread_once.  The
 * client also wants mysql_thread_init in every thread that uses it and
 * mysql_thread_end when the thread ends (a key destructor does that). */
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;
static int lib_rc;
static _Thread_local bool thread_ready;

static void thread_done(void *unused)
{
    (void)unused;
    mysql_thread_end();
}

static void lib_init(void)
{
    lib_rc = mysql_library_init(0, NULL, NULL);
    if (lib_rc == 0)
        pthread_key_create(&thread_key, thread_done);
}

static int ready(void)
{
    pthread_once(&lib_once, lib_init);
    if (lib_rc != 0)
        return cdm__fail(CDM_ERR_DRIVER, "MySQL: the client library failed "
                         "to initialise");
    if (!thread_ready) {
        mysql_thread_init();
        pthread_setspecific(thread_key, &thread_ready);
        thread_ready = true;
    }
    return CDM_OK;
}

/* ------------------------------------------------------------- errors */

static bool lost(unsigned int err)
{
    return err == CR_SERVER_GONE_ERROR || err == CR_SERVER_LOST ||
           err == CR_CONNECTION_ERROR || err == CR_CONN_HOST_ERROR ||
           err == 1927 /* ER_CONNECTION_KILLED */ ||
           err == 4031 /* ER_CLIENT_INTERACTION_TIMEOUT */;
}

static int my_fail(MYSQL *db)
{
    unsigned int err = mysql_errno(db);

    if (err == CR_OUT_OF_MEMORY)
        return cdm__nomem();
    if (lost(err))
        return cdm__fail(CDM_ERR_BROKEN, "MySQL: connection lost: %s",
                         mysql_error(db));
    return cdm__fail(CDM_ERR_QUERY, "MySQL: %s", mysql_error(db));
}

static int stmt_fail(MYSQL_STMT *st)
{
    unsigned int err = mysql_stmt_errno(st);

    if (err == CR_OUT_OF_MEMORY)
        return cdm__nomem();
    if (lost(err))
        return cdm__fail(CDM_ERR_BROKEN, "MySQL: connection lost: %s",
                         mysql_stmt_error(st));
    return cdm__fail(CDM_ERR_QUERY, "MySQL: %s", mysql_stmt_error(st));
}

/* ----------------------------------------------------- connect errors */

/* How long connect_errno waits for each address.  It runs after a connect
 * that failed before its timeout, so a refusal or an unreachable network
 * answers at once; anything slower is not worth the wait. */
#define PROBE_MS 250

/* The error of one more TCP connect to host:port (the last address's), or
 * 0 if it connects or does not fail within PROBE_MS.  Connector/C 3.x
 * reports errno after its non-blocking connect fails, and errno still
 * holds that connect's EINPROGRESS: the reason it read from SO_ERROR is
 * lost.  Only asking again finds it. */
static int connect_errno(const char *host, unsigned int port)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_protocol = IPPROTO_TCP };
    struct addrinfo *res;
    char service[16];
    int err = 0;

    snprintf(service, sizeof service, "%u", port);
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK |
                        SOCK_CLOEXEC, a->ai_protocol);
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        socklen_t len = sizeof err;

        if (fd < 0)
            continue;
        err = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
        if (err == EINPROGRESS &&
            (poll(&pfd, 1, PROBE_MS) != 1 ||
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0))
            err = 0;
        close(fd);
        if (err == 0)
            break;
    }
    freeaddrinfo(res);
    return err;
}

/* Finds the number that ends msg as " (N)" or as "system error: N" (a
 * connection lost in the handshake).  Returns the glue for the words that
 * replace it, after the first *keep bytes of msg, or NULL if msg ends
 * otherwise. */
static const char *trailing_number(const char *msg, long *n, size_t *keep)
{
    static const char sys[] = "system error: ";
    size_t len = strlen(msg), paren = len > 0 && msg[len - 1] == ')';
    const char *digits = msg + len - paren, *p = digits;

    while (p > msg && p[-1] >= '0' && p[-1] <= '9')
        p--;
    if (p == digits)
        return NULL;
    if (p > msg && p[-1] == '-')
        p--;
    *n = strtol(p, NULL, 10);
    if (paren) {
        if (p - msg < 2 || p[-1] != '(' || p[-2] != ' ')
            return NULL;
        *keep = (size_t)(p - 2 - msg);
        return ": ";
    }
    if ((size_t)(p - msg) < sizeof sys - 1 ||
        strncmp(p - (sizeof sys - 1), sys, sizeof sys - 1) != 0)
        return NULL;
    *keep = (size_t)(p - msg);
    return "";
}

/* Connector/C's message for a failed connect, with the bare number that
 * ends it replaced by what it means: getaddrinfo's code for
 * CR_UNKNOWN_HOST, errno for the others.  Other messages are copied as
 * they are.  host is NULL or "localhost" for the Unix socket. */
static void connect_message(MYSQL *db, const char *host, unsigned int port,
                            char *buf, size_t size)
{
    const char *msg = mysql_error(db), *glue;
    char text[256];
    size_t keep;
    long n;

    snprintf(buf, size, "%s", msg);
    if (!(glue = trailing_number(msg, &n, &keep)) || n == 0 ||
        n < INT_MIN || n > INT_MAX)
        return;
    switch (mysql_errno(db)) {
    case CR_UNKNOWN_HOST:
        snprintf(text, sizeof text, "%s", gai_strerror((int)n));
        break;
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
        if (n == EINPROGRESS)
            n = host && strcmp(host, "localhost") != 0 ?
                connect_errno(host, port) : 0;
        if (n == 0) {
            snprintf(text, sizeof text, "the client library lost the reason");
            break;
        }
        /* fall through */
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
        /* XSI strerror_r (this file does not define _GNU_SOURCE). */
        if (n < 0 || strerror_r((int)n, text, sizeof text) != 0)
            return;
        break;
    default:
        return;
    }
    snprintf(buf, size, "%.*s%s%s", (int)keep, msg, glue, text);
}

/* ------------------------------------------------------------ connect */

static int my_connect(const struct cdm_resolved *r, void **out)
{
    const char *v;
    my_bool off = 0, on = 1;
    unsigned int t, port = (unsigned int)cdm__rget_int(r, "Port");
    /* CLIENT_FOUND_ROWS: UPDATE counts matched rows, as PG and SQLite do. */
    unsigned long flags = CLIENT_MULTI_STATEMENTS | CLIENT_FOUND_ROWS;
    MYSQL *db;
    int rc;

    if ((rc = ready()) != CDM_OK)
        return rc;
    if (!(db = mysql_init(NULL)))
        return cdm__nomem();
    mysql_optionsv(db, MYSQL_OPT_RECONNECT, &off);
    if ((v = cdm__rget(r, "LoginTimeout"))) {
        t = (unsigned int)atoi(v);
        mysql_optionsv(db, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    }
    if ((v = cdm__rget(r, "ReadTimeout"))) {
        t = (unsigned int)atoi(v);
        mysql_optionsv(db, MYSQL_OPT_READ_TIMEOUT, &t);
    }
    if ((v = cdm__rget(r, "WriteTimeout"))) {
        t = (unsigned int)atoi(v);
        mysql_optionsv(db, MYSQL_OPT_WRITE_TIMEOUT, &t);
    }
    mysql_optionsv(db, MYSQL_SET_CHARSET_NAME, cdm__rget(r, "CharacterSet"));
    if (cdm__rget_bool(r, "Compress"))
        mysql_optionsv(db, MYSQL_OPT_COMPRESS, NULL);
    if (cdm__rget_bool(r, "UseSSL"))
        mysql_optionsv(db, MYSQL_OPT_SSL_ENFORCE, &on);

    if (!mysql_real_connect(db, cdm__rget(r, "Server"), cdm__rget(r, "User_Name"),
                            cdm__rget(r, "Password"), cdm__rget(r, "Database"),
                            port, NULL, flags)) {
        /* Connector/C names the host but not the port. */
        const char *host = cdm__rget(r, "Server");
        char why[1024];
        connect_message(db, host, port, why, sizeof why);
        rc = cdm__fail(mysql_errno(db) == CR_OUT_OF_MEMORY ? CDM_ERR_NOMEM :
                       CDM_ERR_CONNECT, "%s: MySQL: cannot connect to %s:%u: %s",
                       r->where, host ? host : "localhost", port, why);
        mysql_close(db);
        return rc;
    }
    /* MYSQL_OPT_SSL_ENFORCE alone lets Connector/C fall back to clear
     * text when the server has no TLS: refuse that ourselves. */
    if (cdm__rget_bool(r, "UseSSL") && !mysql_get_ssl_cipher(db)) {
        mysql_close(db);
        return cdm__fail(CDM_ERR_CONNECT, "%s: MySQL: UseSSL=True but the "
                         "server does not support SSL/TLS", r->where);
    }
    *out = db;
    return CDM_OK;
}

static void my_close(void *dc)
{
    ready();
    mysql_close(dc);
}

/* ------------------------------------------------------------ results */

/* BINARY, VARBINARY, BLOB and BIT columns (binary charset) come back as
 * "\x" and hex (cdm__result_set_binary). */
static bool binary_field(const MYSQL_FIELD *f)
{
    if (f->charsetnr != 63)
        return false;
    switch (f->type) {
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_BIT:
    case MYSQL_TYPE_GEOMETRY:
        return true;
    default:
        return false;
    }
}

static int set_value(cdm_result *r, size_t col, const char *v, size_t n,
                     bool binary)
{
    return binary ? cdm__result_set_binary(r, col, v, n)
                  : cdm__result_set(r, col, v, n);
}

/* A result set from the plain query path. */
static int convert(MYSQL_RES *res, cdm_result **out)
{
    unsigned int ncols = mysql_num_fields(res);
    MYSQL_FIELD *f = mysql_fetch_fields(res);
    cdm_result *r;
    MYSQL_ROW row;
    int rc;

    if ((rc = cdm__result_new(ncols, &r)) != CDM_OK)
        return rc;
    for (unsigned int c = 0; c < ncols && rc == CDM_OK; c++)
        rc = cdm__result_set_colname(r, c, f[c].name);
    while (rc == CDM_OK && (row = mysql_fetch_row(res))) {
        unsigned long *len = mysql_fetch_lengths(res);
        rc = cdm__result_add_row(r);
        for (unsigned int c = 0; c < ncols && rc == CDM_OK; c++)
            if (row[c])
                rc = set_value(r, c, row[c], len[c], binary_field(&f[c]));
    }
    if (rc != CDM_OK) {
        cdm_result_free(r);
        return rc;
    }
    *out = r;
    return CDM_OK;
}

static int empty_result(cdm_result **out)
{
    return out ? cdm__result_new(0, out) : CDM_OK;
}

/* ---------------------------------------------------- plain query path */

/* True if `sql` may hold an executable comment with a version: the
 * server skips the text of one above its own version (MariaDB also skips
 * MySQL's 50700 to 99999), where cdm__sql_scan counted every `?`.  A match
 * inside a literal only costs a round trip. */
static bool versioned_comment(const char *sql)
{
    for (const char *p = strstr(sql, "/*"); p; p = strstr(p + 2, "/*")) {
        const char *bang = p[2] == 'M' ? p + 3 : p + 2;
        if (*bang == '!' && bang[1] >= '0' && bang[1] <= '9')
            return true;
    }
    return false;
}

/* Checks the count of `?` and the number of statements.  *ask_server is
 * set when the counts differ but the server may skip some of them: the
 * prepared path then lets the server count.  A script cannot be prepared:
 * it takes the plain path, where a `?` the server runs is a syntax error. */
static int check_text(const char *sql, size_t nparams, bool allow_multi,
                      bool *ask_server)
{
    size_t n;
    bool multi;
    int rc = cdm__sql_scan(sql, CDM_SQL_MYSQL, false, NULL, &n, &multi);

    *ask_server = false;
    if (rc != CDM_OK)
        return rc;
    if (n != nparams && !versioned_comment(sql))
        return cdm__fail(CDM_ERR_INVALID, "the statement has %zu parameter%s "
                         "(?), %zu given", n, n == 1 ? "" : "s", nparams);
    if (multi && !allow_multi)
        return cdm__fail(CDM_ERR_INVALID, "the SQL text holds more than one "
                         "statement; %s", nparams ? "parameters go with one "
                         "statement" : "run them one by one (or with cdm_exec "
                         "and no parameters)");
    *ask_server = n != nparams && !multi;
    return CDM_OK;
}

static int plain(MYSQL *db, const char *sql, int64_t *affected, cdm_result **out)
{
    int status, rc = CDM_OK;

    if (mysql_real_query(db, sql, strlen(sql)))
        return my_fail(db);
    /* Every result of a script is read, or the connection is left out of
     * step with the server. */
    do {
        MYSQL_RES *res = mysql_store_result(db);
        /* The first result is the statement's; a CALL or a trailing
         * comment adds an empty status result after it. */
        if (res) {
            if (out && !*out && rc == CDM_OK)
                rc = convert(res, out);
            mysql_free_result(res);
        } else if (mysql_field_count(db) == 0) {
            my_ulonglong n = mysql_affected_rows(db);
            if (affected && n != (my_ulonglong)-1)
                *affected += (int64_t)n;
            if (out && !*out && rc == CDM_OK)
                rc = empty_result(out);
        } else if (rc == CDM_OK) {
            rc = my_fail(db);
        }
        if ((status = mysql_next_result(db)) > 0 && rc == CDM_OK)
            rc = my_fail(db);
    } while (status == 0);
    return rc;
}

/* ------------------------------------------------ prepared statements */

static int bind_params(MYSQL_STMT *st, const char *const *params, size_t n,
                       MYSQL_BIND **binds, unsigned long **lens, my_bool **nulls)
{
    MYSQL_BIND *b = calloc(n, sizeof *b);
    unsigned long *l = calloc(n, sizeof *l);
    my_bool *z = calloc(n, sizeof *z);

    *binds = b;
    *lens = l;
    *nulls = z;
    if (!b || !l || !z)
        return cdm__nomem();
    for (size_t i = 0; i < n; i++) {
        b[i].buffer_type = MYSQL_TYPE_STRING;
        b[i].buffer = (void *)params[i];
        l[i] = params[i] ? (unsigned long)strlen(params[i]) : 0;
        b[i].buffer_length = l[i];
        b[i].length = &l[i];
        z[i] = params[i] == NULL;
        b[i].is_null = &z[i];
    }
    if (mysql_stmt_bind_param(st, b))
        return stmt_fail(st);
    return CDM_OK;
}

/* Fetches a statement's rows as text.  Buffers are sized from the longest
 * value (STMT_ATTR_UPDATE_MAX_LENGTH); a value that still does not fit is
 * fetched again whole. */
static int fetch_all(MYSQL_STMT *st, cdm_result **out)
{
    unsigned int ncols = mysql_stmt_field_count(st);
    MYSQL_RES *meta = mysql_stmt_result_metadata(st);
    MYSQL_FIELD *f;
    MYSQL_BIND *b = NULL;
    unsigned long *len = NULL;
    my_bool *isnull = NULL, *err = NULL;
    char **buf = NULL;
    cdm_result *r = NULL;
    int rc, frc;

    if (!meta)
        return stmt_fail(st);
    f = mysql_fetch_fields(meta);
    if ((rc = cdm__result_new(ncols, &r)) != CDM_OK)
        goto out;
    for (unsigned int c = 0; c < ncols && rc == CDM_OK; c++)
        rc = cdm__result_set_colname(r, c, f[c].name);
    if (rc != CDM_OK)
        goto out;
    if (mysql_stmt_store_result(st)) {
        rc = stmt_fail(st);
        goto out;
    }
    b = calloc(ncols, sizeof *b);
    len = calloc(ncols, sizeof *len);
    isnull = calloc(ncols, sizeof *isnull);
    err = calloc(ncols, sizeof *err);
    buf = calloc(ncols, sizeof *buf);
    if (!b || !len || !isnull || !err || !buf) {
        rc = cdm__nomem();
        goto out;
    }
    for (unsigned int c = 0; c < ncols; c++) {
        /* Numbers and dates are converted to text by the client: 128
         * bytes hold any of them (DECIMAL(65,30) needs 67). */
        unsigned long size = f[c].max_length > 128 ? f[c].max_length : 128;
        if (!(buf[c] = malloc(size + 1))) {
            rc = cdm__nomem();
            goto out;
        }
        b[c].buffer_type = MYSQL_TYPE_STRING;
        b[c].buffer = buf[c];
        b[c].buffer_length = size + 1;
        b[c].length = &len[c];
        b[c].is_null = &isnull[c];
        b[c].error = &err[c];
    }
    if (mysql_stmt_bind_result(st, b)) {
        rc = stmt_fail(st);
        goto out;
    }
    while (rc == CDM_OK && ((frc = mysql_stmt_fetch(st)) == 0 ||
                            frc == MYSQL_DATA_TRUNCATED)) {
        rc = cdm__result_add_row(r);
        for (unsigned int c = 0; c < ncols && rc == CDM_OK; c++) {
            if (isnull[c])
                continue;
            if (err[c] || len[c] >= b[c].buffer_length) {
                MYSQL_BIND whole;
                char *p = malloc(len[c] + 1);
                if (!p) {
                    rc = cdm__nomem();
                    break;
                }
                memset(&whole, 0, sizeof whole);
                whole.buffer_type = MYSQL_TYPE_STRING;
                whole.buffer = p;
                whole.buffer_length = len[c] + 1;
                if (mysql_stmt_fetch_column(st, &whole, c, 0)) {
                    free(p);
                    rc = stmt_fail(st);
                    break;
                }
                rc = set_value(r, c, p, len[c], binary_field(&f[c]));
                free(p);
            } else {
                rc = set_value(r, c, buf[c], len[c], binary_field(&f[c]));
            }
        }
    }
    if (rc == CDM_OK && frc != MYSQL_NO_DATA)
        rc = stmt_fail(st);
out:
    for (unsigned int c = 0; buf && c < ncols; c++)
        free(buf[c]);
    free(buf);
    free(b);
    free(len);
    free(isnull);
    free(err);
    mysql_free_result(meta);
    if (rc != CDM_OK) {
        cdm_result_free(r);
        return rc;
    }
    *out = r;
    return CDM_OK;
}

static int prepared(MYSQL *db, const char *sql, const char *const *params,
                    size_t n, int64_t *affected, cdm_result **out)
{
    MYSQL_STMT *st = mysql_stmt_init(db);
    MYSQL_BIND *b = NULL;
    unsigned long *lens = NULL;
    my_bool *nulls = NULL, update = 1;
    unsigned long want;
    int rc = CDM_OK;

    if (!st)
        return my_fail(db);
    if (mysql_stmt_prepare(st, sql, strlen(sql))) {
        rc = stmt_fail(st);
        goto out;
    }
    if ((want = mysql_stmt_param_count(st)) != n) {
        rc = cdm__fail(CDM_ERR_INVALID, "the statement has %lu parameter%s "
                       "(?), %zu given", want, want == 1 ? "" : "s", n);
        goto out;
    }
    /* None when the server was asked to count (check_text). */
    if (n && (rc = bind_params(st, params, n, &b, &lens, &nulls)) != CDM_OK)
        goto out;
    mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &update);
    if (mysql_stmt_execute(st)) {
        rc = stmt_fail(st);
        goto out;
    }
    /* Rows changed; a statement that returns rows changed none. */
    if (affected && mysql_stmt_field_count(st) == 0) {
        my_ulonglong a = mysql_stmt_affected_rows(st);
        *affected = a == (my_ulonglong)-1 ? 0 : (int64_t)a;
    }
    if (mysql_stmt_field_count(st) > 0) {
        if (out)
            rc = fetch_all(st, out);
        else if (mysql_stmt_store_result(st))
            rc = stmt_fail(st);
    } else if (out) {
        rc = empty_result(out);
    }
out:
    free(b);
    free(lens);
    free(nulls);
    mysql_stmt_close(st);
    return rc;
}

/* --------------------------------------------------------------- calls */

static int my_exec(void *dc, const char *sql, const char *const *params,
                   size_t n, int64_t *affected)
{
    bool ask;
    int rc;

    *affected = 0;
    if ((rc = ready()) != CDM_OK ||
        (rc = check_text(sql, n, n == 0, &ask)) != CDM_OK)
        return rc;
    return n || ask ? prepared(dc, sql, params, n, affected, NULL)
                    : plain(dc, sql, affected, NULL);
}

static int my_query(void *dc, const char *sql, const char *const *params,
                    size_t n, cdm_result **out)
{
    cdm_result *r = NULL;
    bool ask;
    int rc;

    if ((rc = ready()) != CDM_OK ||
        (rc = check_text(sql, n, false, &ask)) != CDM_OK)
        return rc;
    rc = n || ask ? prepared(dc, sql, params, n, NULL, &r)
                  : plain(dc, sql, NULL, &r);
    if (rc == CDM_OK && !r)
        rc = cdm__fail(CDM_ERR_INVALID, "the SQL text holds no statement");
    if (rc != CDM_OK) {
        cdm_result_free(r);
        return rc;
    }
    *out = r;
    return CDM_OK;
}

static int simple(MYSQL *db, const char *sql)
{
    int rc;

    if ((rc = ready()) != CDM_OK)
        return rc;
    return mysql_real_query(db, sql, strlen(sql)) ? my_fail(db) : CDM_OK;
}

static int my_begin(void *dc)
{
    return simple(dc, "START TRANSACTION");
}

static int my_commit(void *dc)
{
    return simple(dc, "COMMIT");
}

static int my_rollback(void *dc)
{
    return simple(dc, "ROLLBACK");
}

static int my_in_transaction(void *dc)
{
    /* From the status flags of the server's last reply: no round trip. */
    return (((MYSQL *)dc)->server_status & SERVER_STATUS_IN_TRANS) != 0;
}

static int my_alive(void *dc)
{
    /* An idle MySQL connection receives nothing: anything readable (the
     * end of the stream after KILL or a restart) means it is gone. */
    int rc = cdm__socket_check((int)mysql_get_socket(dc));

    return rc == CDM_OK ? CDM_OK : CDM_ERR_BROKEN;
}

static int my_ping(void *dc)
{
    int rc;

    if ((rc = ready()) != CDM_OK)
        return rc;
    return mysql_ping(dc) == 0 ? CDM_OK :
           cdm__fail(CDM_ERR_BROKEN, "MySQL: ping failed: %s", mysql_error(dc));
}

static int my_reset(void *dc)
{
    int rc;

    if ((rc = ready()) != CDM_OK)
        return rc;
    return mysql_reset_connection(dc) == 0 ? CDM_OK : my_fail(dc);
}

static void *my_handle(void *dc)
{
    return dc;
}

static int my_socket_fd(void *dc)
{
    return (int)mysql_get_socket(dc);
}

static void my_forget(void *dc)
{
    /* COM_QUIT then goes nowhere (see pg_forget). */
    if (cdm__socket_silence((int)mysql_get_socket(dc)) == CDM_OK)
        my_close(dc);
}
#endif /* HAVE_MYSQL */

const struct cdm_driver cdm__driver_mysql = {
    .id = "MySQL",
    .aliases = mysql_aliases,
    .params = mysql_params,
    .configure_flag = "--with-mysql",
#if HAVE_MYSQL
    .connect = my_connect,
    .close = my_close,
    .exec = my_exec,
    .query = my_query,
    .begin = my_begin,
    .commit = my_commit,
    .rollback = my_rollback,
    .in_transaction = my_in_transaction,
    .alive = my_alive,
    .ping = my_ping,
    .reset = my_reset,
    .handle = my_handle,
    .socket = my_socket_fd,
    .forget = my_forget,
#endif
};
