/*
 * mysql.c - the MySQL / MariaDB driver (MariaDB Connector/C).  Statements
 * with parameters are prepared on the server (and kept there by stmt.c's
 * cache); statements without parameters take the plain query path (one
 * round trip, text protocol).  Results are typed by column on both paths
 * and fetched without truncation.  Automatic reconnect stays off: it
 * would silently lose session state.  The parameter table is always built
 * so that MySQL definitions can be checked without the client library.
 */
#include "../cdm_int.h"

#include <inttypes.h>
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
#include <mysqld_error.h>
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

/* BINARY, VARBINARY, BLOB and BIT columns (binary charset, 63) hold bytes,
 * not text: CDM_TYPE_BLOB. */
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

/* The CDM_TYPE_* of a column's values: by column, as the server types
 * them.  DECIMAL is TEXT (it does not fit a double), and so are dates,
 * ENUM, SET and JSON. */
static int field_type(const MYSQL_FIELD *f)
{
    switch (f->type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
        return CDM_TYPE_INT;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
        return CDM_TYPE_FLOAT;
    default:
        return binary_field(f) ? CDM_TYPE_BLOB : CDM_TYPE_TEXT;
    }
}

/* A result set from the plain query path (text protocol): every value
 * is text as the server prints it, typed by its column; a number's value
 * is read from that text when asked for. */
static int convert(MYSQL_RES *res, cdm_result **out)
{
    unsigned int ncols = mysql_num_fields(res);
    MYSQL_FIELD *f = mysql_fetch_fields(res);
    int small[16], *type = small;
    cdm_result *r;
    MYSQL_ROW row;
    int rc;

    if (ncols > 16 && !(type = malloc(ncols * sizeof *type)))
        return cdm__nomem();
    if ((rc = cdm__result_new(ncols, &r)) != CDM_OK)
        goto out;
    for (unsigned int c = 0; c < ncols && rc == CDM_OK; c++) {
        type[c] = field_type(&f[c]);
        rc = cdm__result_set_colname(r, c, f[c].name);
    }
    while (rc == CDM_OK && (row = mysql_fetch_row(res))) {
        unsigned long *len = mysql_fetch_lengths(res);
        rc = cdm__result_add_row(r);
        for (unsigned int c = 0; c < ncols && rc == CDM_OK; c++)
            if (row[c])
                rc = cdm__result_set_typed(r, c, type[c], row[c], len[c]);
    }
    if (rc != CDM_OK)
        cdm_result_free(r);
    else
        *out = r;
out:
    if (type != small)
        free(type);
    return rc;
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

/*
 * A prepared statement stays on the server while its MYSQL_STMT is open.
 * stmt.c keeps them per connection (the statement cache), so that a
 * cached one costs one COM_STMT_EXECUTE round trip.  Values are bound
 * with their own MYSQL_TYPE_*; results come in the binary protocol and
 * are fetched by column type (fetch_all).
 *
 * Letting a statement go without a word to the server (unprepare with
 * server_knows false) is needed after a session reset and in a forked
 * child, whose socket is the parent's.  mysql_reset_connection already
 * cuts every statement loose: Connector/C takes it off mysql->stmts and
 * clears stmt->mysql, after which mysql_stmt_close only frees memory and
 * mysql_stmt_execute fails with CR_SERVER_LOST without any I/O.  A
 * statement still attached would have mysql_stmt_close send
 * COM_STMT_CLOSE (and read a pending result), and Connector/C has no call
 * that frees a single statement silently; cut_loose does to that one
 * statement what the library's own invalidation does to all of them,
 * through the fields mariadb_stmt.h makes public (`mysql`, `list`).
 */

/* How one result column is fetched: integers into `num` (LONGLONG, signed
 * or not as the column), FLOAT as a float and DOUBLE as a double into
 * `num`, anything else as bytes into `buf` (a longer value is fetched
 * whole on its own). */
struct col {
    /* What the layout was made for (compared after each execute). */
    enum enum_field_types ftype;
    unsigned int fflags, charsetnr;
    int type;               /* CDM_TYPE_* */
    bool is_unsigned;
    bool single;            /* a FLOAT column, fetched as a float */
    bool client_text;       /* the text is the client library's (below) */
    union {
        int64_t i;
        uint64_t u;
        double d;
        float f;
    } num;
    char *buf;
    unsigned long cap;
    unsigned long len;
    unsigned long want;     /* the longest value this result, if > cap */
    my_bool isnull, err;
};

/* Buffers start at BUF_MIN and grow, from one run to the next, to the
 * longest value a column had, up to BUF_MAX; a longer value is fetched
 * again whole.  BUF_MAX bounds what a cached statement keeps per column
 * between runs. */
#define BUF_MIN 256
#define BUF_MAX (64 * 1024)

struct my_ps {
    MYSQL_STMT *st;         /* NULL once exec_fail closed it */
    unsigned long nparams;
    MYSQL_BIND *pb;         /* nparams: the values, bound again each run */
    unsigned long *plen;
    /* The result columns' buffers, bound to st and kept from run to run
     * while the columns keep their types (a parameter's type can change
     * them: SELECT ?+1 is DOUBLE for a string and BIGINT for an
     * integer).  None while ncols is 0. */
    unsigned int ncols;
    MYSQL_BIND *rb;
    struct col *cols;
};

/* Takes st off its connection's list of statements, so that closing it
 * sends nothing (see above).  Nothing to do for one already cut loose. */
static void cut_loose(MYSQL_STMT *st)
{
    MYSQL *db = st->mysql;
    LIST *l = &st->list;

    if (!db)
        return;
    if (l->prev)
        l->prev->next = l->next;
    else
        db->stmts = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
    st->mysql = NULL;
}

/* Forgets p's result columns. */
static void drop_layout(struct my_ps *p)
{
    for (unsigned int c = 0; c < p->ncols; c++)
        free(p->cols[c].buf);
    free(p->cols);
    free(p->rb);
    p->cols = NULL;
    p->rb = NULL;
    p->ncols = 0;
}

static void my_unprepare(void *dc, void *ps, bool server_knows)
{
    struct my_ps *p = ps;

    (void)dc;
    if (p->st) {
        if (!server_knows)
            cut_loose(p->st);
        ready();
        mysql_stmt_close(p->st);
    }
    drop_layout(p);
    free(p->pb);
    free(p->plen);
    free(p);
}

static int my_prepare(void *dc, const char *sql, void **ps, size_t *nparams)
{
    MYSQL *db = dc;
    struct my_ps *p;
    size_t n;
    bool multi;
    int rc;

    if ((rc = ready()) != CDM_OK ||
        (rc = cdm__sql_scan(sql, CDM_SQL_MYSQL, false, NULL, &n, &multi)) !=
        CDM_OK)
        return rc;
    /* The server would say "syntax error" at the second statement. */
    if (multi)
        return cdm__fail(CDM_ERR_INVALID, "the SQL text holds more than one "
                         "statement; a statement with parameters is one "
                         "statement (run a script with cdm_exec and no "
                         "parameters)");
    if (!(p = calloc(1, sizeof *p)))
        return cdm__nomem();
    if (!(p->st = mysql_stmt_init(db))) {
        free(p);
        return my_fail(db);
    }
    if (mysql_stmt_prepare(p->st, sql, (unsigned long)strlen(sql))) {
        rc = stmt_fail(p->st);
        my_unprepare(db, p, true);
        return rc;
    }
    /* The server counts the `?`: it knows which executable comments it
     * runs (the scanner above only looked for a second statement). */
    p->nparams = mysql_stmt_param_count(p->st);
    if (p->nparams &&
        (!(p->pb = calloc(p->nparams, sizeof *p->pb)) ||
         !(p->plen = calloc(p->nparams, sizeof *p->plen)))) {
        my_unprepare(db, p, true);
        return cdm__nomem();
    }
    *nparams = p->nparams;
    *ps = p;
    return CDM_OK;
}

static void bind_value(MYSQL_BIND *b, unsigned long *len,
                       const struct cdm_value *v)
{
    /* Connector/C only reads a parameter's buffer. */
    memset(b, 0, sizeof *b);
    switch (v->type) {
    case CDM_TYPE_INT:
        b->buffer_type = MYSQL_TYPE_LONGLONG;
        b->buffer = (void *)&v->i;
        break;
    case CDM_TYPE_FLOAT:
        b->buffer_type = MYSQL_TYPE_DOUBLE;
        b->buffer = (void *)&v->d;
        break;
    case CDM_TYPE_TEXT:
    case CDM_TYPE_BLOB:
        /* A BLOB parameter is a binary string to the server; text is in
         * the connection's character set.  Both by length: NUL bytes go
         * through, and an empty value is not NULL. */
        b->buffer_type = v->type == CDM_TYPE_TEXT ? MYSQL_TYPE_STRING
                                                  : MYSQL_TYPE_BLOB;
        b->buffer = (void *)(v->len ? v->p : "");
        *len = (unsigned long)v->len;
        b->buffer_length = *len;
        b->length = len;
        break;
    default:
        b->buffer_type = MYSQL_TYPE_NULL;
        break;
    }
}

/* The value of column c of the current row as text, as Connector/C
 * converts it (the same text the text protocol gives for FLOAT, DOUBLE
 * and ZEROFILL integers): into `small` (size `cap`) or, when longer,
 * into *heap (free it). */
static int column_text(MYSQL_STMT *st, unsigned int c, char *small,
                       unsigned long cap, char **text, unsigned long *len,
                       char **heap)
{
    MYSQL_BIND b;

    *heap = NULL;
    memset(&b, 0, sizeof b);
    b.buffer_type = MYSQL_TYPE_STRING;
    b.buffer = small;
    b.buffer_length = cap;
    b.length = len;
    if (mysql_stmt_fetch_column(st, &b, c, 0))
        return stmt_fail(st);
    if (*len >= cap) {
        if (!(*heap = malloc(*len + 1)))
            return cdm__nomem();
        b.buffer = *heap;
        b.buffer_length = *len + 1;
        if (mysql_stmt_fetch_column(st, &b, c, 0)) {
            free(*heap);
            *heap = NULL;
            return stmt_fail(st);
        }
    }
    *text = *heap ? *heap : small;
    return CDM_OK;
}

/* A FLOAT column's value as a double: the shortest decimal that reads
 * back as the same float, so that 0.1 stays 0.1 rather than becoming
 * the float's exact 0.100000001490116...  Nine significant digits
 * always identify a float. */
static double float_value(float f)
{
    char buf[32];

    for (int digits = 6; digits < 9; digits++) {
        cdm__fmt_double(buf, sizeof buf, digits, (double)f);
        if (cdm__strtof(buf, NULL) == f)
            return cdm__strtod(buf, NULL);
    }
    cdm__fmt_double(buf, sizeof buf, 9, (double)f);
    return cdm__strtod(buf, NULL);
}

/* Stores column c of the current row in the last row of r. */
static int set_cell(MYSQL_STMT *st, cdm_result *r, unsigned int c,
                    struct col *k)
{
    char small[64], digits[24], *text = NULL, *heap = NULL;
    unsigned long len = 0;
    int rc = CDM_OK;

    if (k->type == CDM_TYPE_INT || k->type == CDM_TYPE_FLOAT) {
        if (k->client_text &&
            (rc = column_text(st, c, small, sizeof small, &text, &len,
                              &heap)) != CDM_OK)
            return rc;
        if (k->type == CDM_TYPE_FLOAT) {
            rc = cdm__result_set_double(r, c, k->single ? float_value(k->num.f)
                                                        : k->num.d, text, len);
        } else if (k->is_unsigned && k->num.u > INT64_MAX) {
            /* Above INT64_MAX (BIGINT UNSIGNED): still an INT, by its
             * column, with its exact decimal text; cdm_result_int64
             * refuses it as out of range, cdm_result_double rounds. */
            if (!text) {
                len = (unsigned long)snprintf(digits, sizeof digits,
                                              "%" PRIu64, k->num.u);
                text = digits;
            }
            rc = cdm__result_set_typed(r, c, CDM_TYPE_INT, text, len);
        } else {
            rc = cdm__result_set_int(r, c, k->num.i, text, len);
        }
        free(heap);
        return rc;
    }
    if (k->len > k->cap) {
        /* Longer than the buffer: fetched whole on its own (the bound
         * buffer grows after the result, for the next run). */
        MYSQL_BIND b;
        char *whole = malloc(k->len + 1);
        if (k->len > k->want)
            k->want = k->len;
        if (!whole)
            return cdm__nomem();
        memset(&b, 0, sizeof b);
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = whole;
        b.buffer_length = k->len + 1;
        b.length = &len;
        rc = mysql_stmt_fetch_column(st, &b, c, 0)
                 ? stmt_fail(st)
                 : cdm__result_set_typed(r, c, k->type, whole, k->len);
        free(whole);
        return rc;
    }
    return cdm__result_set_typed(r, c, k->type, k->buf, k->len);
}

/* Frees the rows mysql_stmt_store_result read, which a cached statement
 * would otherwise keep until it runs again: mysql_stmt_free_result frees
 * them only while a row is left to fetch, hence the seek to the first.
 * With no rows there is nothing to free (and the seek would leave the
 * statement "fetching" an unbuffered result). */
static void release(MYSQL_STMT *st)
{
    if (mysql_stmt_num_rows(st) > 0) {
        mysql_stmt_data_seek(st, 0);
        mysql_stmt_free_result(st);
    }
}

/* Reads the results that follow the first (a CALL's status, a procedure's
 * further result sets), so that the connection stays in step. */
static int drain(MYSQL_STMT *st)
{
    int status = 0;

    while (status == 0 && mysql_stmt_more_results(st)) {
        if ((status = mysql_stmt_next_result(st)) == 0 &&
            mysql_stmt_field_count(st) > 0) {
            if (mysql_stmt_store_result(st))
                return stmt_fail(st);
            release(st);
        }
    }
    return status > 0 ? stmt_fail(st) : CDM_OK;
}

/* Whether p's result columns are made for the columns st has after this
 * execute (Connector/C updates their types in place). */
static bool layout_fits(const struct my_ps *p, unsigned int ncols)
{
    const MYSQL_STMT *st = p->st;

    if (!p->ncols || ncols != p->ncols)
        return false;
    for (unsigned int c = 0; c < ncols; c++) {
        const MYSQL_FIELD *f = &st->fields[c];
        const struct col *k = &p->cols[c];
        if (f->type != k->ftype || f->flags != k->fflags ||
            f->charsetnr != k->charsetnr)
            return false;
    }
    return true;
}

/* Makes p's result columns for the columns st has now. */
static int make_layout(struct my_ps *p, unsigned int ncols)
{
    const MYSQL_FIELD *f = p->st->fields;
    MYSQL_BIND *b;
    struct col *k;

    drop_layout(p);
    b = calloc(ncols, sizeof *b);
    k = calloc(ncols, sizeof *k);
    if (!b || !k) {
        free(b);
        free(k);
        return cdm__nomem();
    }
    p->rb = b;
    p->cols = k;
    p->ncols = ncols;
    for (unsigned int c = 0; c < ncols; c++) {
        k[c].ftype = f[c].type;
        k[c].fflags = f[c].flags;
        k[c].charsetnr = f[c].charsetnr;
        k[c].type = field_type(&f[c]);
        b[c].is_null = &k[c].isnull;
        b[c].error = &k[c].err;
        b[c].length = &k[c].len;
        if (k[c].type == CDM_TYPE_INT) {
            k[c].is_unsigned = (f[c].flags & UNSIGNED_FLAG) != 0;
            /* ZEROFILL (YEAR too) pads the text: "000042", "0000". */
            k[c].client_text = (f[c].flags & ZEROFILL_FLAG) != 0;
            b[c].buffer_type = MYSQL_TYPE_LONGLONG;
            b[c].is_unsigned = k[c].is_unsigned;
            b[c].buffer = &k[c].num;
        } else if (k[c].type == CDM_TYPE_FLOAT) {
            /* The number itself; the text as the server prints it (a
             * FLOAT's 6 digits, DOUBLE(M,D)'s D decimals) comes from
             * the client library, which prints it the same way. */
            k[c].client_text = true;
            k[c].single = f[c].type == MYSQL_TYPE_FLOAT;
            b[c].buffer_type = k[c].single ? MYSQL_TYPE_FLOAT
                                           : MYSQL_TYPE_DOUBLE;
            b[c].buffer = &k[c].num;
        } else {
            if (!(k[c].buf = malloc(BUF_MIN))) {
                drop_layout(p);
                return cdm__nomem();
            }
            k[c].cap = BUF_MIN;
            /* Dates, times and decimals as text the way the text
             * protocol prints them; strings and bytes as they are. */
            b[c].buffer_type = MYSQL_TYPE_STRING;
            b[c].buffer = k[c].buf;
            b[c].buffer_length = BUF_MIN;
        }
    }
    return CDM_OK;
}

/* After a result: the columns that had a value longer than their buffer
 * get a buffer that size (up to BUF_MAX) for the next run. */
static void grow(struct my_ps *p)
{
    for (unsigned int c = 0; c < p->ncols; c++) {
        struct col *k = &p->cols[c];
        unsigned long size = k->want < BUF_MAX ? k->want : BUF_MAX;
        char *buf;

        k->want = 0;
        if (size <= k->cap || !(buf = realloc(k->buf, size)))
            continue;       /* a failure keeps the smaller buffer */
        k->buf = buf;
        k->cap = size;
        p->rb[c].buffer = buf;
        p->rb[c].buffer_length = size;
    }
}

/* Fetches a statement's rows, each value by its column's type, row by
 * row from the connection (no copy of the whole result first, as the
 * driver's own mysql_stmt_fetch loop). */
static int fetch_all(struct my_ps *p, cdm_result **out)
{
    MYSQL_STMT *st = p->st;
    unsigned int ncols = mysql_stmt_field_count(st);
    cdm_result *r = NULL;
    int rc = CDM_OK, frc = 0;

    if (!layout_fits(p, ncols))
        rc = make_layout(p, ncols);
    /* Bound again on every run: Connector/C replaces its copy of the
     * bindings when an execute leaves the statement without result
     * columns (the status after a CALL's rows) and keeps saying they are
     * bound.  A copy of ncols bindings, no I/O. */
    if (rc == CDM_OK && mysql_stmt_bind_result(st, p->rb))
        rc = stmt_fail(st);
    if (rc == CDM_OK)
        rc = cdm__result_new(ncols, &r);
    for (unsigned int c = 0; c < ncols && rc == CDM_OK; c++)
        rc = cdm__result_set_colname(r, c, st->fields[c].name);
    /* MYSQL_DATA_TRUNCATED: a value longer than its buffer (set_cell
     * fetches it whole). */
    while (rc == CDM_OK && ((frc = mysql_stmt_fetch(st)) == 0 ||
                            frc == MYSQL_DATA_TRUNCATED)) {
        rc = cdm__result_add_row(r);
        for (unsigned int c = 0; c < ncols && rc == CDM_OK; c++)
            if (!p->cols[c].isnull)
                rc = set_cell(st, r, c, &p->cols[c]);
    }
    /* An error packet or a lost connection while reading rows is the
     * connection's error: Connector/C does not copy it to the statement. */
    if (rc == CDM_OK && frc != MYSQL_NO_DATA)
        rc = mysql_stmt_errno(st) || !st->mysql ? stmt_fail(st)
                                                : my_fail(st->mysql);
    if (rc != CDM_OK) {
        /* Reads what is left of the result, so that the connection
         * stays in step. */
        mysql_stmt_free_result(st);
        cdm_result_free(r);
        return rc;
    }
    grow(p);
    *out = r;
    return CDM_OK;
}

/* After a failed mysql_stmt_execute.  CDM__STALE for a statement the
 * server forgot (1243) and for one the server changed under it: its
 * columns (an ALTER TABLE; Connector/C then leaves the new rows unread)
 * or its meaning (1615, the server gave up preparing it again itself).
 * Those two the server still knows: closed here, which also reads the
 * unread rows, so that stmt.c prepares anew. */
static int exec_fail(struct my_ps *p)
{
    unsigned int err = mysql_stmt_errno(p->st);

    if (err == ER_UNKNOWN_STMT_HANDLER)
        return CDM__STALE;
    if (err == CR_NEW_STMT_METADATA || err == ER_NEED_REPREPARE) {
        mysql_stmt_close(p->st);
        p->st = NULL;
        return CDM__STALE;
    }
    return stmt_fail(p->st);
}

static int my_run(void *dc, void *ps, const struct cdm_value *v, size_t n,
                  int64_t *affected, cdm_result **out)
{
    struct my_ps *p = ps;
    MYSQL_STMT *st = p->st;
    int rc;

    (void)dc;
    if ((rc = ready()) != CDM_OK)
        return rc;
    /* Cut loose by a reset (mysql_reset_connection through
     * cdm_conn_handle, behind the cache's back): the server dropped it. */
    if (!st || !st->mysql)
        return CDM__STALE;
    if (n != p->nparams)
        return cdm__fail(CDM_ERR_INVALID, "%zu values for %lu parameters", n,
                         p->nparams);
    for (size_t i = 0; i < n; i++)
        bind_value(&p->pb[i], &p->plen[i], &v[i]);
    if (n && mysql_stmt_bind_param(st, p->pb))
        return stmt_fail(st);
    if (mysql_stmt_execute(st))
        return exec_fail(p);
    if (mysql_stmt_field_count(st) == 0) {
        if (affected) {
            my_ulonglong a = mysql_stmt_affected_rows(st);
            *affected = a == (my_ulonglong)-1 ? 0 : (int64_t)a;
        }
        if (out)
            rc = empty_result(out);
    } else {
        /* Rows changed: none by a statement that returns rows. */
        if (affected)
            *affected = 0;
        if (out) {
            rc = fetch_all(p, out);
        } else if (mysql_stmt_store_result(st)) {
            rc = stmt_fail(st);
        } else {
            release(st);
        }
    }
    if (rc == CDM_OK)
        rc = drain(st);
    else
        drain(st);
    if (rc != CDM_OK && out) {
        cdm_result_free(*out);
        *out = NULL;
    }
    return rc;
}

/* A statement with parameters and the cache off (StatementCacheSize=0),
 * or one whose `?` the server counts (check_text): prepared, run and
 * closed again, three round trips.  Values as text, like the cache's
 * cdm_exec/cdm_query. */
static int prepared(MYSQL *db, const char *sql, const char *const *params,
                    size_t n, int64_t *affected, cdm_result **out)
{
    struct cdm_value small[16], *v = small;
    size_t want = 0;
    void *ps = NULL;
    int rc = CDM__STALE;

    if (n > 16 && !(v = calloc(n, sizeof *v)))
        return cdm__nomem();
    for (size_t i = 0; i < n; i++)
        v[i] = params[i] ? (struct cdm_value){ .type = CDM_TYPE_TEXT,
                                               .p = params[i],
                                               .len = strlen(params[i]) }
                         : (struct cdm_value){ .type = CDM_TYPE_NULL };
    /* A statement changed between its prepare and its execute (another
     * session's ALTER TABLE) is prepared again, once. */
    for (int tries = 0; tries < 2 && rc == CDM__STALE; tries++) {
        if ((rc = my_prepare(db, sql, &ps, &want)) != CDM_OK)
            break;
        if (want != n)
            rc = cdm__fail(CDM_ERR_INVALID, "the statement has %zu "
                           "parameter%s (?), %zu given", want,
                           want == 1 ? "" : "s", n);
        else
            rc = my_run(db, ps, v, n, affected, out);
        my_unprepare(db, ps, rc != CDM__STALE);
    }
    if (rc == CDM__STALE)
        rc = cdm__fail(CDM_ERR_QUERY, "MySQL: the statement changed twice "
                       "between its prepare and its execute");
    if (v != small)
        free(v);
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
    .prepare = my_prepare,
    .run = my_run,
    .unprepare = my_unprepare,
#endif
};
