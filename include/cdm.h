/*
 * cdm.h - named database connection definitions and pooled connections.
 *
 * This is the one public header of cdm.  If it is not in this file, it is
 * not API.
 *
 * cdm keeps named connection definitions (one INI section each, FireDAC
 * parameter names) and hands out connections by name.  A definition with
 * Pooled=True is served from a pool built on its first use.
 *
 * A complete program (demo/example.c builds this exact code with `make`):
 *
 *     #include <stdio.h>
 *     #include <cdm.h>
 *
 *     int main(void)
 *     {
 *         cdm_manager *m;
 *         cdm_conn *c;
 *         cdm_result *r;
 *         const char *row[] = { "ada", "36" };
 *         int rc;
 *
 *         if ((rc = cdm_manager_new(&m)) != CDM_OK)
 *             return 1;
 *         if ((rc = cdm_manager_load_file(m, "defs/demo.ini")) != CDM_OK ||
 *             (rc = cdm_connect(m, "Demo_Memory", &c)) != CDM_OK) {
 *             fprintf(stderr, "%s: %s\n", cdm_strerror(rc), cdm_errmsg());
 *             cdm_manager_free(m);
 *             return 1;
 *         }
 *         cdm_exec(c, "CREATE TABLE person (name TEXT, age INTEGER)", NULL, 0, NULL);
 *         cdm_exec(c, "INSERT INTO person VALUES (?, ?)", row, 2, NULL);
 *         if (cdm_query(c, "SELECT name, age FROM person WHERE age > ?",
 *                       (const char *[]){ "18" }, 1, &r) == CDM_OK) {
 *             for (size_t i = 0; i < cdm_result_nrows(r); i++)
 *                 printf("%s is %s\n", cdm_result_value(r, i, 0),
 *                        cdm_result_value(r, i, 1));
 *             cdm_result_free(r);
 *         }
 *         cdm_disconnect(c);
 *         cdm_manager_free(m);
 *         return 0;
 *     }
 *
 * Status codes.  Every function returning int returns CDM_OK (0) or one of
 * the CDM_ERR_* codes below, unless its comment says otherwise.  On failure
 * cdm_errmsg() tells the details: which file and line, definition, key or
 * value, and what the database said.  Out-parameters are set only on
 * success.
 *
 * Threads.  A manager, its definitions and its pools may be used from any
 * thread at the same time.  A cdm_conn and its results are used by one
 * thread at a time; when two threads enter the same connection at once the
 * second call fails with CDM_ERR_STATE and the connection is unharmed.
 * cdm_errmsg() is per thread.
 *
 * Output.  The library never prints.  Warnings (unknown keys, readable
 * files holding passwords, repeated keys) go to the callback installed with
 * cdm_manager_set_log().  No message ever contains a password.
 */
#ifndef CDM_H
#define CDM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CDM_BUILDING) && defined(__GNUC__)
#define CDM_EXPORT __attribute__((visibility("default")))
#else
#define CDM_EXPORT
#endif

typedef struct cdm_manager cdm_manager;
typedef struct cdm_conn    cdm_conn;
typedef struct cdm_result  cdm_result;
typedef struct cdm_stmt    cdm_stmt;
typedef struct cdm_deffile cdm_deffile;

/* ---------------------------------------------------------------- errors */

/*
 * The status codes, in their fixed order: X(name, value, text).  One list
 * makes both the enum and cdm_strerror(); codes are never renumbered.
 */
#define CDM_STATUS_MAP(X)                                                      \
    X(CDM_OK,            0, "success")                                         \
    X(CDM_ERR_NOMEM,     1, "out of memory")                                   \
    X(CDM_ERR_INVALID,   2, "invalid argument or parameter value")             \
    X(CDM_ERR_PARSE,     3, "definition file syntax error")                    \
    X(CDM_ERR_IO,        4, "input/output error")                              \
    X(CDM_ERR_NOT_FOUND, 5, "not found")                                       \
    X(CDM_ERR_EXISTS,    6, "already exists")                                  \
    X(CDM_ERR_DRIVER,    7, "unknown or unavailable driver")                   \
    X(CDM_ERR_CONNECT,   8, "cannot connect")                                  \
    X(CDM_ERR_POOL_FULL, 9, "no pooled connection became free in time")        \
    X(CDM_ERR_CLOSED,   10, "manager is closed")                               \
    X(CDM_ERR_QUERY,    11, "statement failed")                                \
    X(CDM_ERR_STATE,    12, "call not valid in the current state")             \
    X(CDM_ERR_BROKEN,   13, "connection lost")                                 \
    X(CDM_ERR_BUSY,     14, "connections still borrowed")                      \
    X(CDM_ERR_CONFLICT, 15, "file changed on disk since it was read")          \
    X(CDM_ERR_INSECURE, 16, "file permissions are unsafe")

enum cdm_status {
#define CDM_STATUS_ENUM_(name, value, text) name = value,
    CDM_STATUS_MAP(CDM_STATUS_ENUM_)
#undef CDM_STATUS_ENUM_
};

/* Fixed text for a status code; "unknown status" for anything else.
 * Static storage, never NULL.  Any thread. */
CDM_EXPORT const char *cdm_strerror(int status);

/* Details of this thread's last failing cdm call, e.g.
 * "defs/app.ini:12: definition 'Orders': POOL_MaximumItems: 'ten' is not a
 * whole number".  Successful calls leave it as it was (like errno).  Owned
 * by the library, valid until this thread's next cdm call; "" if no call
 * has failed yet.  Never contains a password. */
CDM_EXPORT const char *cdm_errmsg(void);

/* ----------------------------------------------------------------- logging */

enum cdm_log_level {
    CDM_LOG_ERROR = 0,
    CDM_LOG_WARN  = 1,
    CDM_LOG_INFO  = 2,
    CDM_LOG_DEBUG = 3
};

/* Receives the library's warnings and notes.  `message` is borrowed for the
 * call only.  May be called from any thread that uses the manager,
 * including its cleanup thread, so it must be thread-safe; it must not call
 * back into the same manager. */
typedef void (*cdm_log_fn)(int level, const char *message, void *user);

/* --------------------------------------------------------------- manager */

/* Pool figures.  `total`, `idle`, `in_use`, `waiting` and `opening` are
 * now, for the pool serving the definition.  The rest are counters that
 * run for the manager's life, per definition name: a change of parameters
 * (a new generation), a reload, cdm_manager_close_def and the new pool the
 * next connect builds, or the definition losing its pool and getting one
 * again (also deleted and added again) never reset them; connections of
 * a pool that stopped serving the name are counted as they are returned
 * and closed.  A child process after fork() starts from zero.  total == idle
 * + in_use (physical connections open); `opening` counts connects in
 * progress, which also count against POOL_MaximumItems.  Taken under the
 * pool's lock while other threads may be borrowing, so a figure can be a
 * moment old; at rest, acquired == successful pooled cdm_connect calls.
 *
 * `peak_in_use` is a high-water mark over the same life (a lowered
 * POOL_MaximumItems does not lower it): the most connections of the
 * definition seen in use at once.  In use means borrowed,
 * or being opened for a borrower (`in_use` + `opening`; both count
 * against POOL_MaximumItems).  A borrow that takes a thread's own idle
 * connection back touches nothing shared, so it is not counted there:
 * the figure is sampled whenever a borrower takes the pool's lock (to
 * take another idle connection, open one, or queue) and whenever the
 * figures are read.  So it is never below any `in_use` + `opening` read,
 * it is exact whenever a borrower found no idle connection (it reaches
 * POOL_MaximumItems when one had to queue, unless connections were
 * being closed at that moment), but it may miss a brief peak served
 * entirely by threads taking their own connections back.
 *
 * `waits` counts borrows that queued because the pool was full (each
 * borrow once), whether they then got a connection or timed out; a
 * borrow refused at once (POOL_AcquireTimeout=0) counts in `timeouts`
 * only. */
typedef struct cdm_pool_stats {
    int64_t total;
    int64_t idle;
    int64_t in_use;
    int64_t waiting;
    int64_t opening;
    int64_t acquired;
    int64_t created;
    int64_t destroyed;
    int64_t timeouts;
    int64_t wait_ns_total;
    int64_t peak_in_use;
    int64_t waits;
} cdm_pool_stats;

/* The process-wide manager, created on first call (thread-safe).  On
 * creation it loads the file named by $CDM_CONNECTION_DEFS, if set; what
 * that load logs is kept for the first callback cdm_manager_set_log
 * installs.  If the load fails, the manager starts empty and the reason
 * is kept: a cdm_connect that then finds no definition of its name
 * returns the load's status (CDM_ERR_PARSE, CDM_ERR_IO, ...) with its
 * message ("$CDM_CONNECTION_DEFS: path:3: ... (so definition 'X' is not
 * defined)").  Call cdm_manager_load_file yourself when you need the
 * status at once.  NULL only when out of memory.  After
 * cdm_manager_free() on it, the next call creates a fresh one. */
CDM_EXPORT cdm_manager *cdm_manager_default(void);

/* A new, empty, independent manager.  Free with cdm_manager_free. */
CDM_EXPORT int cdm_manager_new(cdm_manager **out);

/* Loads every definition in the INI file at `path`.  All or nothing: on any
 * error the manager is exactly as it was.
 *   CDM_ERR_IO        the file cannot be read (errno text in the message)
 *   CDM_ERR_INSECURE  the file is world-writable
 *   CDM_ERR_PARSE     a syntax error or a section repeated in the file
 *                     (message: "path:line: ...")
 *   CDM_ERR_EXISTS    a definition of the same name is already loaded
 *                     (message names both places)
 * Bad values inside a definition do not fail the load: they are logged as
 * warnings and reported again when the definition is used. */
CDM_EXPORT int cdm_manager_load_file(cdm_manager *m, const char *path);

/* Reads every loaded file again and replaces the definitions they hold,
 * all or nothing.  Private definitions are kept.  Pools follow as for
 * cdm_manager_set_param; a definition gone from the file loses its pool.
 * Values set in memory (cdm_manager_set_param) on a file's definitions
 * are replaced by what the file says; each one is logged.
 *
 * No change takes a working pool down: this call, cdm_manager_set_param,
 * cdm_manager_add_def and cdm_manager_delete_def refuse (CDM_ERR_INVALID,
 * CDM_ERR_DRIVER, CDM_ERR_NOT_FOUND: whatever connecting would fail with)
 * a change after which a definition that has a pool, and could connect
 * before, could not: a bad value, an unknown or not built-in driver, a
 * missing or cyclic parent, a required key removed, POOL_MaximumItems=0.
 * The message names the definition, the key and the reason, and nothing
 * changes.  Removing the definition itself, or its Pooled, is allowed. */
CDM_EXPORT int cdm_manager_reload(cdm_manager *m);

/* Follows the loaded files: every `interval_ms` the cleanup thread looks
 * at each (size, modification time, inode: an editor's atomic rename is a
 * change) and, when one changed, reloads as cdm_manager_reload does.  A
 * reload that fails (a syntax error, a change the rule above refuses, a
 * file gone) is logged as an error once per change of the files, naming
 * file and line, and the definitions loaded before keep serving.
 * 0 stops watching; at least 10 ms otherwise.  No extra thread: the
 * cleanup thread waits for the earliest of its pools' and the watch's due
 * times. */
CDM_EXPORT int cdm_manager_watch(cdm_manager *m, int interval_ms);

/* Adds a private (in-memory) definition from a NULL-terminated list of
 * "Key=Value" strings.  Every value is checked now; on any error nothing
 * is added.  CDM_ERR_EXISTS if the name is taken, CDM_ERR_INVALID for a
 * bad name, key or value. */
CDM_EXPORT int cdm_manager_add_def(cdm_manager *m, const char *name,
                                   const char *const *params);

/* Sets one parameter of a definition (file or private; in memory only,
 * until a reload replaces what the file defines).  `value` NULL removes
 * it.  A bad value is refused and nothing changes, as is a change that
 * would break a pool (see cdm_manager_reload).  Pools follow at once: a
 * definition whose resolved parameters changed (its own, or a parent's)
 * gets a new pool generation, so idle connections close now and borrowed
 * ones when returned; new limits apply at once; a definition no longer
 * Pooled loses its pool. */
CDM_EXPORT int cdm_manager_set_param(cdm_manager *m, const char *name,
                                     const char *key, const char *value);

/* Removes a definition.  CDM_ERR_NOT_FOUND if there is none. */
CDM_EXPORT int cdm_manager_delete_def(cdm_manager *m, const char *name);

/* 1 if a definition of that name exists (case-insensitive), else 0. */
CDM_EXPORT int cdm_manager_has_def(cdm_manager *m, const char *name);

/* All definition names as written: files in load order, each in file
 * order, then private ones in the order added.  Free with cdm_strv_free;
 * the array is NULL-terminated as well. */
CDM_EXPORT int cdm_manager_def_names(cdm_manager *m, char ***names,
                                     size_t *count);

/* The value of `key` as a connection would see it: inherited through
 * ConnectionDef/Parent and with $(VAR) expanded.  Driver defaults are not
 * filled in: CDM_ERR_NOT_FOUND if the key is set nowhere in the chain.
 * Free *value with cdm_free. */
CDM_EXPORT int cdm_manager_get_param(cdm_manager *m, const char *name,
                                     const char *key, char **value);

/* Closes the idle connections of the definition's pool and detaches the
 * pool; borrowed connections stay valid and are closed when returned, and
 * the next connect builds a new pool.  CDM_OK also when there was no
 * pool; CDM_ERR_NOT_FOUND for an unknown name. */
CDM_EXPORT int cdm_manager_close_def(cdm_manager *m, const char *name);

/* Figures of the definition's pool (see cdm_pool_stats).  A pooled
 * definition whose pool is not built yet gives CDM_OK and zeros (or the
 * counters of its earlier pools).  CDM_ERR_STATE for a definition that
 * is not pooled (Pooled not True: a connect opens a plain connection,
 * which no figure counts); CDM_ERR_NOT_FOUND for an unknown name. */
CDM_EXPORT int cdm_manager_pool_stats(cdm_manager *m, const char *name,
                                      cdm_pool_stats *out);

/* Installs the log callback (NULL: discard, the default).  The first
 * callback installed on the default manager first receives what its
 * automatic load logged. */
CDM_EXPORT void cdm_manager_set_log(cdm_manager *m, cdm_log_fn fn, void *user);

/* Stops new connects (CDM_ERR_CLOSED from then on, also for callers
 * waiting for a pooled connection), wakes and joins the cleanup thread at
 * once, closes idle connections and waits up to `timeout_ms` for borrowed
 * pooled ones.  CDM_ERR_BUSY if some are still out when the time is up
 * (the message names the definitions they belong to and how many each,
 * most first: "3 pooled connections are still borrowed after 100 ms:
 * Orders (2), Reports (1); ..."; past five, the rest are counted, "and
 * 4 more"); they stay valid and are closed when returned.  Plain (unpooled)
 * connections are the caller's and are not waited for. */
CDM_EXPORT int cdm_manager_close(cdm_manager *m, int timeout_ms);

/* Closes (without waiting) and frees the manager.  Connections still
 * borrowed stay valid and are freed by cdm_disconnect.  NULL is fine. */
CDM_EXPORT void cdm_manager_free(cdm_manager *m);

/* Frees memory returned by cdm (strings).  NULL is fine. */
CDM_EXPORT void cdm_free(void *p);

/* Frees a NULL-terminated string array returned by cdm.  NULL is fine. */
CDM_EXPORT void cdm_strv_free(char **v);

/* ----------------------------------------------------------- connections */

/* Opens a connection for the definition `name`: resolves inheritance and
 * $(VAR), checks every value, then connects.
 *
 * With Pooled=True the first call builds the definition's pool and every
 * call borrows from it: the connection this thread returned last if it is
 * idle, else the most recently returned idle connection (after
 * a local liveness check, and a ping if it sat idle longer than
 * POOL_PingInterval; a dead one is replaced silently), else a new one
 * while fewer than POOL_MaximumItems exist (counting those being opened
 * and those of an earlier pool of the definition still borrowed), else
 * the caller waits in arrival order up to POOL_AcquireTimeout.  A
 * returning thread may take its connection straight back until the first
 * waiter has waited 1 ms or it has kept the connection for 1 ms while
 * others wait; then the connection goes to the first waiter directly.
 *
 * After fork(), a child's first call gets fresh pools: a connection the
 * parent opened is never used, pinged or closed in the child.  A fork()
 * waits for connections being opened in other threads (the client
 * libraries hold locks of their own meanwhile).
 *   CDM_ERR_NOT_FOUND  no such definition (or a missing parent); for a
 *                      name close to a defined one the message suggests
 *                      it ("... (did you mean Orders?)"), as do
 *                      cdm_manager_get_param and cdm_manager_test_def
 *   CDM_ERR_INVALID    a bad or missing value (message names the key)
 *   CDM_ERR_DRIVER     DriverID unknown or not built in
 *   CDM_ERR_CONNECT    the database refused (its message is included)
 *   CDM_ERR_POOL_FULL  no pooled connection became free in time
 *   CDM_ERR_CLOSED     the manager is closed
 * Release with cdm_disconnect.  Any thread. */
CDM_EXPORT int cdm_connect(cdm_manager *m, const char *name, cdm_conn **out);

/* Closes the connection, or returns it to its pool: an open transaction
 * is rolled back (only if one is open), session state is reset when
 * POOL_ResetOnRelease=True, and a connection that is broken, older than
 * POOL_MaxLifetime, from before a change of its definition, or over a
 * lowered POOL_MaximumItems is closed instead of kept.  NULL is fine.
 * Results stay valid. */
CDM_EXPORT void cdm_disconnect(cdm_conn *c);

/* Runs a statement with `nparams` `?` parameters bound as text (a NULL
 * entry binds SQL NULL).  `?` inside string literals, quoted identifiers
 * and comments is not a parameter; with PostgreSQL write `??` for a
 * literal `?` (the jsonb operators).  With no parameters `sql` may hold several
 * statements, run in order; the first failure stops the script and the
 * statements before it stay done (wrap it in cdm_begin/cdm_commit to make
 * it all or nothing).  `affected` (may be NULL) gets the rows changed.  CDM_ERR_INVALID when the parameter count does not match,
 * CDM_ERR_QUERY with the database's message when it fails,
 * CDM_ERR_BROKEN when the connection is lost. */
CDM_EXPORT int cdm_exec(cdm_conn *c, const char *sql,
                        const char *const *params, size_t nparams,
                        int64_t *affected);

/* Runs one statement and buffers its whole result.  Free *out with
 * cdm_result_free; it does not depend on the connection.  With
 * parameters, cdm_exec and cdm_query go through the connection's
 * statement cache (StatementCacheSize), like cdm_prepare. */
CDM_EXPORT int cdm_query(cdm_conn *c, const char *sql,
                         const char *const *params, size_t nparams,
                         cdm_result **out);

/* ------------------------------------------------------------ statements */

/* `len` of cdm_bind_text for a NUL-terminated string. */
#define CDM_NTS ((size_t)-1)

/* Prepares one statement with `?` parameters on the connection, each then
 * bound with its own type, and run any number of times (rebinding between
 * runs as needed).  Each physical connection keeps its last
 * StatementCacheSize statements (default 32, 0: none) prepared on the
 * server by SQL text, so that a pooled connection prepares a statement
 * once and later borrowers only execute it.  Set StatementCacheSize=0
 * for a server behind PgBouncer in transaction mode, which loses them
 * between transactions: PostgreSQL then keeps no statement on the
 * server, not even this one (each run sends the SQL with its values, so
 * an error in the SQL shows at the first run).  A statement belongs to the
 * borrow of its connection: free it before cdm_disconnect; one still open
 * then is finished by cdm_disconnect, and every later call on it but
 * cdm_stmt_free is CDM_ERR_STATE.  Like its connection, a statement is
 * used by one thread at a time (a second one gets CDM_ERR_STATE). */
CDM_EXPORT int cdm_prepare(cdm_conn *c, const char *sql, cdm_stmt **out);

/* Bind the `i`th `?` (0-based).  Values are copied: the caller's memory
 * may change or go after the call.  CDM_ERR_INVALID for an index out of
 * range.  Text is `len` bytes (CDM_NTS: up to its NUL), which may hold
 * NUL bytes where the database's text can (PostgreSQL's cannot: the run
 * fails with CDM_ERR_INVALID; bind such bytes as a BLOB, for a bytea);
 * a BLOB any bytes (PostgreSQL: only into a parameter the server types
 * bytea, so write `?::bytea` where it cannot tell; otherwise the run
 * fails).  Numbers go in as numbers, a double exactly. */
CDM_EXPORT int cdm_bind_null(cdm_stmt *s, size_t i);
CDM_EXPORT int cdm_bind_int64(cdm_stmt *s, size_t i, int64_t v);
CDM_EXPORT int cdm_bind_double(cdm_stmt *s, size_t i, double v);
CDM_EXPORT int cdm_bind_text(cdm_stmt *s, size_t i, const char *v,
                             size_t len);
CDM_EXPORT int cdm_bind_blob(cdm_stmt *s, size_t i, const void *v,
                             size_t len);

/* Runs the statement with its bound values.  CDM_ERR_STATE if a `?` is
 * not bound.  `affected` may be NULL.  A statement the server dropped
 * (DEALLOCATE, DISCARD ALL run through cdm_exec) or no longer runs as
 * prepared (a table it reads changed its columns) is prepared again and
 * run once more, unseen; on PostgreSQL only outside a transaction, as
 * inside one the server's error has aborted the transaction (it is
 * returned: CDM_ERR_QUERY). */
CDM_EXPORT int cdm_stmt_exec(cdm_stmt *s, int64_t *affected);
CDM_EXPORT int cdm_stmt_query(cdm_stmt *s, cdm_result **out);
/* The number of `?` in the statement. */
CDM_EXPORT size_t cdm_stmt_nparams(const cdm_stmt *s);
/* NULL is fine. */
CDM_EXPORT void cdm_stmt_free(cdm_stmt *s);

/* Transactions.  CDM_ERR_STATE for begin inside a transaction, and for
 * commit or rollback outside one. */
CDM_EXPORT int cdm_begin(cdm_conn *c);
CDM_EXPORT int cdm_commit(cdm_conn *c);
CDM_EXPORT int cdm_rollback(cdm_conn *c);

/* Asks the database whether the connection works (a round trip for
 * network drivers).  CDM_ERR_BROKEN if not. */
CDM_EXPORT int cdm_ping(cdm_conn *c);

/* "PG", "MySQL" or "SQLite".  Static storage. */
CDM_EXPORT const char *cdm_conn_driver(const cdm_conn *c);

/* The definition name as written.  Valid until cdm_disconnect. */
CDM_EXPORT const char *cdm_conn_def_name(const cdm_conn *c);

/* The driver's own handle (PGconn *, MYSQL *, sqlite3 *), borrowed until
 * cdm_disconnect.  Do not close it; leave it as you found it (no open
 * transaction, same settings) or the pool will hand out a changed one. */
CDM_EXPORT void *cdm_conn_handle(cdm_conn *c);

/* --------------------------------------------------------------- results */

/* Every value keeps its type: CDM_TYPE_NULL, _INT (integers of any
 * width), _FLOAT (float, double), _BLOB (SQLite BLOB, PostgreSQL bytea,
 * MySQL BINARY/VARBINARY/BLOB/BIT) or _TEXT (everything else: text,
 * decimal, dates, booleans, JSON, as the database prints them).  SQLite
 * types each value; PostgreSQL and MySQL type by column.
 *
 * cdm_result_value gives every value as text, NULL for SQL NULL; a BLOB
 * as "\x" followed by lowercase hex (PostgreSQL's bytea output), made on
 * first request.  cdm_result_blob gives the raw bytes of a BLOB (and the
 * bytes of any other value), cdm_result_length their number.
 * cdm_result_int64 and cdm_result_double give a number: CDM_ERR_INVALID
 * for NULL, a BLOB, and a value that is not a number (or, for int64, not
 * a whole number in range).  Numbers are written and read with a decimal
 * point ("0.5") whatever LC_NUMERIC the program set, for this call only
 * (uselocale).  Strings are owned by the result.  An
 * out-of-range row or column gives NULL (and 0 / CDM_TYPE_NULL / an error
 * for the other accessors). */
enum {
    CDM_TYPE_NULL  = 0,
    CDM_TYPE_INT   = 1,
    CDM_TYPE_FLOAT = 2,
    CDM_TYPE_TEXT  = 3,
    CDM_TYPE_BLOB  = 4
};
CDM_EXPORT size_t      cdm_result_nrows(const cdm_result *r);
CDM_EXPORT size_t      cdm_result_ncols(const cdm_result *r);
CDM_EXPORT const char *cdm_result_colname(const cdm_result *r, size_t col);
CDM_EXPORT const char *cdm_result_value(const cdm_result *r, size_t row,
                                        size_t col);
CDM_EXPORT int         cdm_result_type(const cdm_result *r, size_t row,
                                       size_t col);
CDM_EXPORT size_t      cdm_result_length(const cdm_result *r, size_t row,
                                         size_t col);
CDM_EXPORT const void *cdm_result_blob(const cdm_result *r, size_t row,
                                       size_t col, size_t *len);
CDM_EXPORT int         cdm_result_int64(const cdm_result *r, size_t row,
                                        size_t col, int64_t *out);
CDM_EXPORT int         cdm_result_double(const cdm_result *r, size_t row,
                                         size_t col, double *out);
CDM_EXPORT void        cdm_result_free(cdm_result *r);

/* ------------------------------------------------- editing definition files */

/* A definition file open for editing.  Every line that no edit touches is
 * written back byte for byte: comments, blank lines, spacing, key order,
 * the case of names, CRLF line ends, byte order marks.  Names and keys
 * match case-insensitively.  A new key goes after the last key of its
 * definition, a new definition at the end of the file (after a blank
 * line).  One handle is used by one thread at a time.
 *
 * Values are written so that the loader reads them back unchanged: bare
 * when they can be, else in double quotes (a value with ';', '#', a
 * quote, a blank at either end, or a final '\'), or in single quotes when
 * the value holds a double quote.  The file format has no escapes, so a
 * value holding both kinds of quote, or a line break, cannot be written
 * (CDM_ERR_INVALID, saying why); nor a name with '[', ']', ':' or a line
 * break, nor a key with '=', ':', a blank or a line break.
 *
 * Opens `path`, or an empty file if it does not exist (created on save,
 * with mode 0600).  CDM_ERR_PARSE (with file and line) if it does not
 * load: a file cdm cannot read is not edited.  CDM_ERR_INSECURE if it is
 * world-writable, CDM_ERR_IO if it is not a regular file. */
CDM_EXPORT int cdm_deffile_open(const char *path, cdm_deffile **out);

/* The same, first taking the file's exclusive lock (waiting for it) and
 * holding it until cdm_deffile_free: read, edit and save as one step, so
 * that concurrent editors (the cdm command run by hand and by scripts)
 * each see the others' changes.  The lock is on `path` + ".lock" beside
 * the file (created mode 0600 and left there: removing it would race), as
 * the save replaces the file's inode.  Locks are per open, so a program
 * that opens one file twice this way waits for itself. */
CDM_EXPORT int cdm_deffile_open_locked(const char *path, cdm_deffile **out);

/* Warnings about an edit that is allowed but suspect (an unknown key, with
 * a "did you mean"; another driver's key) go here.  NULL: discard. */
CDM_EXPORT void cdm_deffile_set_log(cdm_deffile *f, cdm_log_fn fn, void *user);

/* The path as given to open.  Owned by `f`. */
CDM_EXPORT const char *cdm_deffile_path(const cdm_deffile *f);

/* Definition names in file order, as written (not the [FDConnectionDefs.ini]
 * header section).  Free with cdm_strv_free. */
CDM_EXPORT int cdm_deffile_names(cdm_deffile *f, char ***names, size_t *count);

/* The keys a definition sets itself, as written, in file order.  Free with
 * cdm_strv_free.  CDM_ERR_NOT_FOUND for no such definition. */
CDM_EXPORT int cdm_deffile_keys(cdm_deffile *f, const char *name, char ***keys,
                                size_t *count);

/* The value a definition sets itself for `key` (as read: no inheritance,
 * no $(VAR) expansion; cdm_manager_get_param resolves).  Free with
 * cdm_free.  CDM_ERR_NOT_FOUND when the definition or the key is absent. */
CDM_EXPORT int cdm_deffile_get(cdm_deffile *f, const char *name,
                               const char *key, char **value);

/* Sets `key`: the line of an existing key keeps its own text before the
 * value and its comment after it; a new key is added after the
 * definition's last key.  A bad value of a known key (Pooled=maybe,
 * POOL_MinimumItems above POOL_MaximumItems) is CDM_ERR_INVALID and
 * changes nothing; an unknown key is allowed with a warning.  A NULL value
 * unsets. */
CDM_EXPORT int cdm_deffile_set(cdm_deffile *f, const char *name,
                               const char *key, const char *value);

/* Removes every line of `key` in the definition.  CDM_ERR_NOT_FOUND if it
 * does not set it. */
CDM_EXPORT int cdm_deffile_unset(cdm_deffile *f, const char *name,
                                 const char *key);

/* A new, empty definition at the end.  CDM_ERR_EXISTS if the name is
 * taken. */
CDM_EXPORT int cdm_deffile_add(cdm_deffile *f, const char *name);

/* Removes a definition: its header, its keys and the comments among them,
 * the comment lines right above its header, and one blank line that
 * separated it.  Definitions that inherit from it are not changed. */
CDM_EXPORT int cdm_deffile_delete(cdm_deffile *f, const char *name);

/* Renames a definition in place (only the name between the brackets
 * changes).  ConnectionDef= lines naming it are not changed. */
CDM_EXPORT int cdm_deffile_rename(cdm_deffile *f, const char *from,
                                  const char *to);

/* A copy of a definition's lines under a new name, at the end. */
CDM_EXPORT int cdm_deffile_copy(cdm_deffile *f, const char *from,
                                const char *to);

/* Writes the edits.  The new text is first read back with the loader's
 * own reader and must give exactly the edited names, keys and values;
 * then, under the exclusive lock (see cdm_deffile_open_locked), the file
 * must still hold the bytes it held when opened (else CDM_ERR_CONFLICT
 * and nothing is written: open again and redo the edit); the text goes to
 * a temporary file in the same directory, is flushed (fsync), given the
 * file's mode and owner, and renamed over the file, and the directory is
 * flushed.  A crash leaves the old file or the new one, never a mix; a
 * temporary file left by a crash is removed by the next save.  A symbolic
 * link is followed: the file it names is replaced.  The handle stays
 * usable: a later save compares with what this one wrote. */
CDM_EXPORT int cdm_deffile_save(cdm_deffile *f);

/* Releases the handle (and its lock).  Unsaved edits are dropped. */
CDM_EXPORT void cdm_deffile_free(cdm_deffile *f);

/* ------------------------------------------------------------ parameters */

/* 1 if `key` holds a secret that is never shown (Password, NewPassword),
 * else 0.  Answered from the driver parameter tables: `driver_id` (a
 * DriverID or alias, any case) picks the driver's table; NULL or an
 * unknown driver asks every table.  An unknown key whose "did you mean"
 * suggestion is a secret (Pasword, PassWrd) counts as one too: it is
 * most likely a misspelt password.  Any thread. */
CDM_EXPORT int cdm_param_is_secret(const char *driver_id, const char *key);

/* The value of `key` as it may be shown: "*****" for a secret (see
 * cdm_param_is_secret), and in a driver's "advanced" string (PGAdvanced,
 * "k=v;k=v") each keyword holding "password" (libpq's sslpassword) with
 * its value replaced by "*****"; otherwise a copy.  `cdm show` prints
 * values this way.  Free *out with cdm_free.  Any thread. */
CDM_EXPORT int cdm_param_mask(const char *driver_id, const char *key,
                              const char *value, char **out);

/* ---------------------------------------------------------- testing a def */

/* Opens the definition `name` as a plain (never pooled) connection,
 * runs a trivial query (SELECT 1) and closes it: what `cdm test` does.
 * Testing changes nothing: a SQLite Database file is never created (with
 * any OpenMode), so a missing file fails with CDM_ERR_CONNECT saying the
 * file does not exist.  *driver (may be NULL) gets the driver's name
 * ("PG", "MySQL", "SQLite"; static storage) and *ms (may be NULL) the
 * milliseconds the open and the query took, on success only.  Fails as
 * cdm_connect does, or with the query's error.  Any thread. */
CDM_EXPORT int cdm_manager_test_def(cdm_manager *m, const char *name,
                                    const char **driver, int64_t *ms);

/* ------------------------------------------------------ checking a file */

/* One finding of cdm_check_file.  The strings are valid during the call
 * to the callback only. */
typedef struct cdm_finding {
    const char *path;     /* the file, as given */
    int line;             /* 1-based: the key's line when about a key, the
                           * [section] line when about a definition; 0 for
                           * the file as a whole (permissions, unreadable) */
    int level;            /* CDM_LOG_ERROR or CDM_LOG_WARN */
    const char *def;      /* the definition, as written, or NULL */
    const char *key;      /* the key, as written, or NULL */
    const char *message;  /* one line, without path or line (it names the
                           * definition: "definition 'X': unknown key ...",
                           * as a load logs it); never a secret */
} cdm_finding;

typedef void (*cdm_finding_fn)(const cdm_finding *f, void *user);

/* Checks a definition file the way `cdm check` does, like a compiler:
 * every finding, in line order (ties in the order found), to `fn` (may be
 * NULL: counts only).
 *
 * Errors, what keeps the file from loading or a definition from
 * connecting: syntax and a repeated section (the reader stops at the
 * first, so that is then the only finding besides permissions), a
 * world-writable file (its content is still checked), bad booleans,
 * numbers and enumerations, a missing DriverID or Database, an unknown
 * DriverID (also a FireDAC driver cdm lacks, such as MSSQL or FB), a
 * missing parent, an inheritance cycle, a malformed $(VAR), a pool that
 * can never give a connection.  Warnings: unknown keys (with a "did you
 * mean"), another driver's key, a repeated key, a value cut at ';' or
 * '#', an unset $(VAR) (in this process's environment), a literal
 * password in a file others can read, a driver not built into this cdm.
 * Parents are looked up in the same file; a problem a definition
 * inherits is reported once, by the definition that causes it.
 *
 * *errors and *warnings (each may be NULL) get the counts whenever the
 * file was checked.  CDM_OK when there is no error; CDM_ERR_INVALID when
 * there is one (or `path` is NULL: nothing reported, no counts);
 * CDM_ERR_IO when the file cannot be read at all (also reported as a
 * finding at line 0); CDM_ERR_NOMEM (nothing reported).  Any thread. */
CDM_EXPORT int cdm_check_file(const char *path, cdm_finding_fn fn, void *user,
                              int *errors, int *warnings);

#ifdef __cplusplus
}
#endif

#endif /* CDM_H */
