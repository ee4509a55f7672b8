/*
 * sqlite.c - the SQLite driver (sqlite3): opens files or :memory: with the
 * definition's OpenMode and pragmas, binds every parameter, buffers results
 * as text.
 */
#include "../cdm_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const sqlite_aliases[] = { "SQLite3", NULL };
static const char *const open_modes[] = { "CreateUTF8", "CreateUTF16",
                                          "ReadWrite", "ReadOnly", NULL };
static const char *const journal_modes[] = { "Delete", "Truncate", "Persist",
                                             "Memory", "WAL", "Off", NULL };
static const char *const sync_modes[] = { "Off", "Normal", "Full", "Extra",
                                          NULL };
static const char *const locking_modes[] = { "Normal", "Exclusive", NULL };

/* C:\data\x.db, C:x.db, \\server\share\x.db, data\x.db: a
 * FireDAC file written on Windows.  Here the name is a legal file name,
 * so SQLite would create an empty database called that, and the program
 * would run against it as if all were well: refused instead.  A backslash
 * is taken for a Windows separator wherever it is; POSIX allows it in a
 * name, but no one means that in a definition. */
static int check_db_path(const char *where, const char *key,
                         const char *value)
{
    unsigned char c = (unsigned char)value[0];

    if (!c)
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: %s is empty (give a file or :memory:)", where,
                         key);
    if (!(((c | 0x20) >= 'a' && (c | 0x20) <= 'z' && value[1] == ':') ||
          strchr(value, '\\')))
        return CDM_OK;
    return cdm__fail(CDM_ERR_INVALID,
                     "%s: %s: '%.160s' is a Windows path; SQLite here would "
                     "create a new, empty database of that name (write a "
                     "POSIX path, absolute or relative to the definition "
                     "file)", where, key, value);
}

static const struct cdm_param_spec sqlite_params[] = {
    /* Required through the common table; checked further here. */
    { "Database",     NULL,         CDM_P_STRING, 0, 0, NULL, 0, check_db_path },
    { "OpenMode",     "CreateUTF8", CDM_P_ENUM, 0, 0, open_modes, 0, NULL },
    { "BusyTimeout",  "10000",      CDM_P_INT, 0, INT_MAX, NULL, 0, NULL },
    { "JournalMode",  NULL,         CDM_P_ENUM, 0, 0, journal_modes, 0, NULL },
    { "Synchronous",  NULL,         CDM_P_ENUM, 0, 0, sync_modes, 0, NULL },
    { "LockingMode",  "Normal",     CDM_P_ENUM, 0, 0, locking_modes, 0, NULL },
    { "ForeignKeys",  "True",       CDM_P_BOOL, 0, 0, NULL, 0, NULL },
    { NULL, NULL, CDM_P_STRING, 0, 0, NULL, 0, NULL },
};

#if HAVE_SQLITE
#include <sqlite3.h>

/* Maps a failed sqlite3 call to a status, with SQLite's own message. */
static int sq_fail(sqlite3 *db, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return cdm__nomem();
    case SQLITE_MISUSE:
        return cdm__fail(CDM_ERR_STATE, "SQLite: %s", sqlite3_errstr(rc));
    default:
        return cdm__fail(CDM_ERR_QUERY, "SQLite: %s",
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    }
}

static int sq_run(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? CDM_OK : sq_fail(db, rc);
}

/* PRAGMA journal_mode=X takes an exclusive lock.  When several
 * connections open a new file at once, SQLite refuses the switch at once
 * with SQLITE_BUSY where waiting could deadlock (each holds a shared lock
 * and wants to upgrade), busy timeout or not; seen with 12 threads opening
 * one new WAL file.  So nothing is written when the file is in that mode
 * already (the usual case: WAL is kept in the file), and a refused switch
 * is tried again, a millisecond apart, for up to BusyTimeout. */
static int set_journal_mode(sqlite3 *db, const char *mode, int busy_ms)
{
    int64_t deadline = cdm__now_ms() + busy_ms;
    char sql[64];
    int rc;

    snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
    for (;;) {
        sqlite3_stmt *st = NULL;
        bool same = false;
        if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) ==
                SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            const char *cur = (const char *)sqlite3_column_text(st, 0);
            same = cur && cdm__streq_nocase(cur, mode);
        }
        sqlite3_finalize(st);
        if (same)
            return CDM_OK;
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return CDM_OK;
        if ((rc & 0xff) != SQLITE_BUSY || cdm__now_ms() >= deadline)
            return sq_fail(db, rc);
        sqlite3_sleep(1);
    }
}

/* "Database" made absolute against the directory of the file that set it,
 * so a definition works whatever the program's working directory. */
static char *db_path(const struct cdm_resolved *r)
{
    const struct cdm_rkv *kv = cdm__rfind(r, "Database");
    const char *v = kv ? kv->value : "";

    if (!v[0] || v[0] == '/' || strcmp(v, ":memory:") == 0 || !kv->dir)
        return cdm__strdup(v);
    return cdm__asprintf("%s/%s", kv->dir, v);
}

static int sq_connect(const struct cdm_resolved *r, void **out)
{
    const char *mode = cdm__rget(r, "OpenMode");
    const char *v;
    sqlite3 *db = NULL;
    char *path, sql[64];
    struct stat st;
    int flags, rc;

    if (!(path = db_path(r)))
        return cdm__nomem();
    if (!*path) {
        free(path);
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: Database is empty (give a file or :memory:)",
                         r->where);
    }
    if (cdm__streq_nocase(mode, "ReadOnly"))
        flags = SQLITE_OPEN_READONLY;
    else if (cdm__streq_nocase(mode, "ReadWrite"))
        flags = SQLITE_OPEN_READWRITE;
    else
        flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    /* Testing a definition must leave no file behind. */
    if (r->no_create)
        flags &= ~SQLITE_OPEN_CREATE;
    /* cdm keeps each connection to one thread at a time, so SQLite's own
     * per-connection mutex would only cost time. */
    flags |= SQLITE_OPEN_NOMUTEX;

    rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK && !(flags & SQLITE_OPEN_CREATE) &&
        strcmp(path, ":memory:") != 0 && stat(path, &st) != 0 &&
        errno == ENOENT) {
        /* SQLite says only "unable to open database file". */
        rc = cdm__fail(CDM_ERR_CONNECT, "%s: SQLite: cannot open '%s': the "
                       "file does not exist%s", r->where, path,
                       r->no_create ? " (it is not created here)" :
                       " (OpenMode=ReadWrite and ReadOnly do not create it)");
        goto fail;
    }
    if (rc != SQLITE_OK) {
        rc = cdm__fail(rc == SQLITE_NOMEM ? CDM_ERR_NOMEM : CDM_ERR_CONNECT,
                       "%s: SQLite: cannot open '%s': %s", r->where, path,
                       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, (int)cdm__rget_int(r, "BusyTimeout"));

    /* Values below were checked against their enumerations, so pasting
     * them into PRAGMA text (which cannot take bound values) is safe. */
    rc = CDM_OK;
    if (cdm__streq_nocase(mode, "CreateUTF16"))
        rc = sq_run(db, "PRAGMA encoding='UTF-16'"); /* only for a new file */
    if (rc == CDM_OK && (v = cdm__rget(r, "LockingMode"))) {
        snprintf(sql, sizeof sql, "PRAGMA locking_mode=%s", v);
        rc = sq_run(db, sql);
    }
    if (rc == CDM_OK && (v = cdm__rget(r, "JournalMode")))
        rc = set_journal_mode(db, v, (int)cdm__rget_int(r, "BusyTimeout"));
    if (rc == CDM_OK && (v = cdm__rget(r, "Synchronous"))) {
        snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", v);
        rc = sq_run(db, sql);
    }
    if (rc == CDM_OK)
        rc = sq_run(db, cdm__rget_bool(r, "ForeignKeys") ?
                    "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF");
    /* Opening does not read the file; this does, so a file that is not a
     * database (or one another connection holds with LockingMode=Exclusive,
     * after BusyTimeout) fails here rather than at the first query. */
    if (rc == CDM_OK)
        rc = sq_run(db, "PRAGMA schema_version");
    if (rc != CDM_OK) {
        if (rc != CDM_ERR_NOMEM) {
            char why[1024];
            snprintf(why, sizeof why, "%s", cdm_errmsg());
            rc = cdm__fail(CDM_ERR_CONNECT, "%s: cannot open '%s': %s",
                           r->where, path, why);
        }
        goto fail;
    }
    free(path);
    *out = db;
    return CDM_OK;
fail:
    sqlite3_close_v2(db);
    free(path);
    return rc;
}

static void sq_close(void *dc)
{
    sqlite3_close_v2(dc);
}

static int bind_all(sqlite3 *db, sqlite3_stmt *st, const char *const *params,
                    size_t n)
{
    int want = sqlite3_bind_parameter_count(st);

    if ((size_t)want != n)
        return cdm__fail(CDM_ERR_INVALID,
                         "the statement has %d parameter%s, %zu given", want,
                         want == 1 ? "" : "s", n);
    for (size_t i = 0; i < n; i++) {
        /* SQLITE_STATIC: the caller's strings outlive the statement. */
        int rc = params[i] ?
                 sqlite3_bind_text(st, (int)i + 1, params[i], -1, SQLITE_STATIC) :
                 sqlite3_bind_null(st, (int)i + 1);
        if (rc != SQLITE_OK)
            return sq_fail(db, rc);
    }
    return CDM_OK;
}

/* True if `sql` holds nothing but blanks and comments. */
static bool only_blanks(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    const char *p = sql;

    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ';')
        p++;
    if (!*p)
        return true;
    if (sqlite3_prepare_v2(db, p, -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_finalize(st);
    return st == NULL;
}

/* Prepares the one statement of `sql`, refusing empty text and a second
 * statement (which would silently not run). */
static int prepare_one(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    sqlite3_stmt *st = NULL;
    const char *tail;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, &tail);

    if (rc != SQLITE_OK)
        return sq_fail(db, rc);
    if (!st)
        return cdm__fail(CDM_ERR_INVALID, "the SQL text holds no statement");
    if (!only_blanks(db, tail)) {
        sqlite3_finalize(st);
        return cdm__fail(CDM_ERR_INVALID,
                         "the SQL text holds more than one statement; run "
                         "them one by one (or with cdm_exec and no "
                         "parameters)");
    }
    *out = st;
    return CDM_OK;
}

static int step_all(sqlite3 *db, sqlite3_stmt *st, int64_t *affected)
{
    sqlite3_int64 before = sqlite3_total_changes64(db);
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE)
        return sq_fail(db, rc);
    /* sqlite3_changes() keeps the count of the last INSERT, UPDATE or
     * DELETE, even across other statements: count only if this one
     * changed something. */
    if (sqlite3_total_changes64(db) != before)
        *affected += sqlite3_changes64(db);
    return CDM_OK;
}

static int sq_exec(void *dc, const char *sql, const char *const *params,
                   size_t n, int64_t *affected)
{
    sqlite3 *db = dc;
    sqlite3_stmt *st;
    const char *tail = sql;
    int rc = CDM_OK;

    *affected = 0;
    if (n) {
        if ((rc = prepare_one(db, sql, &st)) != CDM_OK)
            return rc;
        if ((rc = bind_all(db, st, params, n)) == CDM_OK)
            rc = step_all(db, st, affected);
        sqlite3_finalize(st);
        return rc;
    }
    /* No parameters: a script of several statements, run in order. */
    while (rc == CDM_OK && *tail) {
        int src = sqlite3_prepare_v2(db, tail, -1, &st, &tail);
        if (src != SQLITE_OK)
            return sq_fail(db, src);
        if (!st)
            break; /* only blanks and comments were left */
        if ((rc = bind_all(db, st, NULL, 0)) == CDM_OK)
            rc = step_all(db, st, affected);
        sqlite3_finalize(st);
    }
    return rc;
}

/* The value in column `col` of the current row, with its type: SQLite
 * types each value, not each column. */
static int add_value(cdm_result *res, sqlite3_stmt *st, int col)
{
    const unsigned char *b;
    size_t c = (size_t)col;
    int64_t i;
    double d;

    switch (sqlite3_column_type(st, col)) {
    case SQLITE_NULL:
        return CDM_OK;
    case SQLITE_BLOB:
        return cdm__result_set_binary(res, c, sqlite3_column_blob(st, col),
                                      (size_t)sqlite3_column_bytes(st, col));
    case SQLITE_INTEGER:
        i = sqlite3_column_int64(st, col);
        /* SQLite's own text of it, as cdm_result_value always gave. */
        if (!(b = sqlite3_column_text(st, col)))
            return cdm__nomem();
        return cdm__result_set_int(res, c, i, (const char *)b,
                                   (size_t)sqlite3_column_bytes(st, col));
    case SQLITE_FLOAT:
        d = sqlite3_column_double(st, col);
        if (!(b = sqlite3_column_text(st, col)))
            return cdm__nomem();
        return cdm__result_set_double(res, c, d, (const char *)b,
                                      (size_t)sqlite3_column_bytes(st, col));
    default:
        if (!(b = sqlite3_column_text(st, col)))
            return cdm__nomem();
        return cdm__result_set(res, c, (const char *)b,
                               (size_t)sqlite3_column_bytes(st, col));
    }
}

/* Steps `st` to its end, buffering the rows. */
static int collect(sqlite3 *db, sqlite3_stmt *st, cdm_result **out)
{
    int ncols = sqlite3_column_count(st), rc, src = SQLITE_DONE;
    cdm_result *res = NULL;

    if ((rc = cdm__result_new((size_t)ncols, &res)) != CDM_OK)
        return rc;
    for (int i = 0; i < ncols && rc == CDM_OK; i++)
        rc = cdm__result_set_colname(res, (size_t)i, sqlite3_column_name(st, i));
    while (rc == CDM_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        rc = cdm__result_add_row(res);
        for (int i = 0; i < ncols && rc == CDM_OK; i++)
            rc = add_value(res, st, i);
    }
    if (rc == CDM_OK && src != SQLITE_DONE)
        rc = sq_fail(db, src);
    if (rc != CDM_OK) {
        cdm_result_free(res);
        return rc;
    }
    *out = res;
    return CDM_OK;
}

/* ------------------------------------------------ prepared statements */

static int sq_prepare(void *dc, const char *sql, void **ps, size_t *nparams)
{
    sqlite3_stmt *st;
    int rc = prepare_one(dc, sql, &st);

    if (rc != CDM_OK)
        return rc;
    *nparams = (size_t)sqlite3_bind_parameter_count(st);
    *ps = st;
    return CDM_OK;
}

static int bind_value(sqlite3_stmt *st, int i, const struct cdm_value *v)
{
    /* SQLITE_STATIC: the values outlive the run, and the bindings are
     * cleared before it returns. */
    switch (v->type) {
    case CDM_TYPE_INT:
        return sqlite3_bind_int64(st, i, v->i);
    case CDM_TYPE_FLOAT:
        return sqlite3_bind_double(st, i, v->d);
    case CDM_TYPE_TEXT:
        return sqlite3_bind_text64(st, i, v->p, v->len, SQLITE_STATIC,
                                   SQLITE_UTF8);
    case CDM_TYPE_BLOB:
        /* A NULL pointer would bind SQL NULL, not an empty BLOB. */
        return sqlite3_bind_blob64(st, i, v->len ? v->p : "", v->len,
                                   SQLITE_STATIC);
    default:
        return sqlite3_bind_null(st, i);
    }
}

static int sq_run_prepared(void *dc, void *ps, const struct cdm_value *v,
                           size_t n,
                  int64_t *affected, cdm_result **out)
{
    sqlite3 *db = dc;
    sqlite3_stmt *st = ps;
    int rc = CDM_OK;

    for (size_t i = 0; i < n && rc == CDM_OK; i++) {
        int src = bind_value(st, (int)i + 1, &v[i]);
        if (src != SQLITE_OK)
            rc = sq_fail(db, src);
    }
    if (rc == CDM_OK) {
        if (out) {
            rc = collect(db, st, out);
        } else {
            *affected = 0;
            rc = step_all(db, st, affected);
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static void sq_unprepare(void *dc, void *ps, bool server_knows)
{
    (void)dc;
    (void)server_knows;
    sqlite3_finalize(ps);
}

static int sq_query(void *dc, const char *sql, const char *const *params,
                    size_t n, cdm_result **out)
{
    sqlite3 *db = dc;
    sqlite3_stmt *st;
    int rc;

    if ((rc = prepare_one(db, sql, &st)) != CDM_OK)
        return rc;
    if ((rc = bind_all(db, st, params, n)) == CDM_OK)
        rc = collect(db, st, out);
    sqlite3_finalize(st);
    return rc;
}

static int sq_begin(void *dc)
{
    return sq_run(dc, "BEGIN");
}

static int sq_commit(void *dc)
{
    return sq_run(dc, "COMMIT");
}

static int sq_rollback(void *dc)
{
    return sq_run(dc, "ROLLBACK");
}

static int sq_in_transaction(void *dc)
{
    return !sqlite3_get_autocommit(dc);
}

static int sq_alive(void *dc)
{
    /* An open sqlite3 handle has no peer that can go away. */
    (void)dc;
    return CDM_OK;
}

static int sq_ping(void *dc)
{
    return sq_run(dc, "SELECT 1") == CDM_OK ? CDM_OK :
           cdm__fail(CDM_ERR_BROKEN, "SQLite: %s", sqlite3_errmsg(dc));
}

static void *sq_handle(void *dc)
{
    return dc;
}
/* Around fork(): SQLite's allocator mutex (taken on every malloc) is held,
 * so that a child never inherits it locked by a thread it does not have
 * (seen: a child stuck in sqlite3Malloc).  It is a leaf: SQLite allocates
 * while holding its other mutexes, never the reverse (unless a soft heap
 * limit is set), so taking it last cannot deadlock.  SQLite's other
 * static mutexes nest in orders that are not documented (PRNG before
 * MAIN, for one), so they are not taken: SQLite does not support fork()
 * while another thread is inside it (README, "Pools"). */
static sqlite3_mutex *fork_mutex;

static void sq_fork_lock(void)
{
    fork_mutex = sqlite3_mutex_alloc(SQLITE_MUTEX_STATIC_MEM);
    sqlite3_mutex_enter(fork_mutex);   /* NULL is a no-op */
}

static void sq_fork_unlock(void)
{
    sqlite3_mutex_leave(fork_mutex);
}
#endif /* HAVE_SQLITE */

const struct cdm_driver cdm__driver_sqlite = {
    .id = "SQLite",
    .aliases = sqlite_aliases,
    .params = sqlite_params,
    .configure_flag = "--with-sqlite",
#if HAVE_SQLITE
    .connect = sq_connect,
    .close = sq_close,
    .exec = sq_exec,
    .query = sq_query,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .in_transaction = sq_in_transaction,
    .alive = sq_alive,
    .ping = sq_ping,
    .handle = sq_handle,
    .fork_lock = sq_fork_lock,
    .fork_unlock = sq_fork_unlock,
    .prepare = sq_prepare,
    .run = sq_run_prepared,
    .unprepare = sq_unprepare,
#endif
};
