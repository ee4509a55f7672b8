/*
 * cdm_int.h - declarations shared between the library's source files.
 * Never installed: nothing here is API.
 */
#ifndef CDM_INT_H
#define CDM_INT_H

#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <stddef.h>
#include <time.h>

#include "cdm.h"

#if defined(__GNUC__)
#define CDM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CDM_HIDDEN __attribute__((visibility("hidden")))
#else
#define CDM_PRINTF(f, a)
#define CDM_HIDDEN
#endif

/* ------------------------------------------------------------- error.c */

/* Sets this thread's message and returns `status`, so that failures read
 * `return cdm__fail(CDM_ERR_INVALID, "...", ...);`. */
int cdm__fail(int status, const char *fmt, ...) CDM_PRINTF(2, 3);
int cdm__vfail(int status, const char *fmt, va_list ap);
int cdm__nomem(void);
/* Size of the per-thread message, for saving and restoring it. */
#define CDM_MSG_MAX 2048
void cdm__errmsg_save(char buf[CDM_MSG_MAX]);
void cdm__errmsg_restore(const char buf[CDM_MSG_MAX]);
/* Puts text in front of this thread's message (error paths only). */
void cdm__errprefix(const char *fmt, ...) CDM_PRINTF(1, 2);

/* ---------------------------------------------------------------- str.c */

char *cdm__strdup(const char *s);
char *cdm__strndup(const char *s, size_t n);
char *cdm__asprintf(const char *fmt, ...) CDM_PRINTF(1, 2);
bool cdm__streq_nocase(const char *a, const char *b);
/* Case-insensitive edit distance, capped at `limit` + 1. */
size_t cdm__distance(const char *a, const char *b, size_t limit);
/* A hash of s that ignores ASCII case, for tables looked up that way. */
uint64_t cdm__nocase_hash(const char *s);
/* Trims blanks (space, tab, CR, LF, VT, FF: those the reader strips, as
 * iniparser does) at both ends of [*s, *s + *n), or at its end only. */
void cdm__trim(const char **s, size_t *n);
void cdm__rtrim(const char *s, size_t *n);
/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if the
 * bytes there are not one. */
size_t cdm__utf8_len(const char *s, size_t n);
/* Offset of the first control character (below 0x20, or 0x7f) or byte
 * of invalid UTF-8 in [s, s + n); n if there is none. */
size_t cdm__text_bad(const char *s, size_t n);
/* Copies `src` into `dst` (size `cap`, at least 1) as one printable
 * line: line breaks with the blanks around them become "; ", a tab a
 * blank, other control bytes and invalid UTF-8 "\xNN"; never cuts an
 * escape or a character in two.  Every message and log line goes
 * through it, so that no driver text or file byte breaks a log line or
 * reaches a terminal raw. */
void cdm__oneline(char *dst, size_t cap, const char *src);

/* A growable string; on allocation failure `failed` is set and further
 * appends do nothing, so callers check once at the end. */
struct cdm_buf {
    char *s;
    size_t len;
    size_t cap;
    bool failed;
};
void cdm__buf_add(struct cdm_buf *b, const char *s, size_t n);
void cdm__buf_adds(struct cdm_buf *b, const char *s);
void cdm__buf_addf(struct cdm_buf *b, const char *fmt, ...) CDM_PRINTF(2, 3);
void cdm__buf_free(struct cdm_buf *b);
/* Hands over the string (NULL if an append failed) and resets the buffer. */
char *cdm__buf_take(struct cdm_buf *b);

/* snprintf "%.*g", strtod and strtof with a decimal point whatever the
 * program's LC_NUMERIC (the C locale, for this one call). */
int cdm__fmt_double(char *buf, size_t size, int prec, double d);
double cdm__strtod(const char *s, char **end);
float cdm__strtof(const char *s, char **end);

/* -------------------------------------------------------------- param.c */

enum cdm_ptype {
    CDM_P_STRING,
    CDM_P_BOOL,
    CDM_P_INT,
    CDM_P_ENUM,
    CDM_P_DRIVER  /* DriverID: checked against the driver registry on use */
};

#define CDM_PF_SECRET   1u  /* never shown: masked by the CLI, kept out of messages */
#define CDM_PF_REQUIRED 2u  /* a definition must set it (itself or through its parent) */

/* Optional check of one parameter's value beyond its type (PGAdvanced
 * keys against libpq's list; an INT's once it is in range); sets the
 * message on failure. */
typedef int (*cdm_param_check_fn)(const char *where, const char *key,
                                  const char *value);

/* One parameter a definition may set.  The common table and each driver's
 * table are arrays of these ending with a NULL key; validation, "did you
 * mean", masking and the documentation all come from them. */
struct cdm_param_spec {
    const char *key;             /* as documented, e.g. "POOL_MaximumItems" */
    const char *def;             /* default as text, NULL if none */
    enum cdm_ptype type;
    long long min, max;          /* CDM_P_INT range */
    const char *const *choices;  /* CDM_P_ENUM values, NULL-terminated */
    unsigned flags;              /* CDM_PF_* */
    cdm_param_check_fn check;    /* optional further check, or NULL */
};

struct cdm_driver;

extern const struct cdm_param_spec cdm__common_params[];

/* The spec for `key` (case-insensitive): `drv`'s, then the common keys,
 * then (with drv NULL) any driver's.  NULL for a key cdm does not use. */
const struct cdm_param_spec *cdm__param_find(const struct cdm_driver *drv,
                                             const char *key);
/* Checks `value` against `spec`; on failure sets a message starting with
 * `where` ("file:line: definition 'X'") and naming key and value (never a
 * secret's value). */
int cdm__param_check(const struct cdm_param_spec *spec, const char *where,
                     const char *key, const char *value);
/* The closest known key to an unknown one, of any driver, or NULL. */
const char *cdm__param_suggest(const char *key);

/* ------------------------------------------------------------ firedac.c */

/* A FireDAC driver: its DriverID, the DBMS (for messages), the cdm driver
 * that serves it (NULL: none) and its keys beyond cdm__fd_common. */
struct cdm_fd_driver {
    const char *id;
    const char *what;
    const char *cdm;
    const char *const *keys;
};

extern const char *const cdm__fd_common[];
extern const struct cdm_fd_driver cdm__fd_drivers[];  /* ends with a NULL id */
/* The FireDAC driver with this DriverID (case-insensitive), or NULL. */
const struct cdm_fd_driver *cdm__fd_driver(const char *id);
/* Whether `key` is a common FireDAC key or one of `fd`'s (fd may be NULL). */
bool cdm__fd_has_key(const struct cdm_fd_driver *fd, const char *key);
/* Whether `key` is a key of any FireDAC driver. */
bool cdm__fd_any_key(const char *key);
/* The key `key` is a common mistake for ("Pooling": "Pooled"), or NULL. */
const char *cdm__fd_mistake(const char *key);
/* Whether a FireDAC key holds a secret (its name says "password"). */
bool cdm__fd_secret(const char *key);

/* --------------------------------------------------------------- keys.c */

/* Largest number of cdm drivers (cdm__drivers, test driver included). */
#define CDM_DRIVERS_MAX 4

/* Everything known of one key name, whatever its case. */
struct cdm_keyinfo {
    const char *name;                                   /* as documented */
    const struct cdm_param_spec *common;                /* in the common table */
    const struct cdm_param_spec *drv[CDM_DRIVERS_MAX];  /* by cdm__drivers index */
    uint64_t fd;          /* bit i: a key of cdm__fd_drivers[i] */
    bool fd_common;       /* in cdm__fd_common */
};
/* The key `key` (case-insensitive), or NULL for a name no table has. */
const struct cdm_keyinfo *cdm__keyinfo(const char *key);
/* drv's index in cdm__drivers. */
size_t cdm__driver_index(const struct cdm_driver *drv);
void cdm__keys_usage(size_t *nkeys, size_t *key_slots, size_t *nids,
                     size_t *id_slots);

/* What a key is in a definition of a given driver. */
enum cdm_key_kind {
    CDM_KEY_CHECKED,  /* a cdm parameter: its value is checked */
    CDM_KEY_IGNORED,  /* a FireDAC key of this driver that cdm does not use */
    CDM_KEY_OTHER,    /* another driver's key (Port in a SQLite definition) */
    CDM_KEY_UNKNOWN
};

/* The driver a definition names, as far as cdm knows it: `drv` is cdm's
 * driver (NULL: none), `fd` FireDAC's (NULL: not a FireDAC ID).  Both NULL
 * when the DriverID is unset, unknown or not yet expanded: then any
 * driver's keys are accepted. */
struct cdm_drvctx {
    const struct cdm_driver *drv;
    const struct cdm_fd_driver *fd;
    const char *name;  /* for messages: cdm's ID, else FireDAC's */
};

struct cdm_drvctx cdm__drvctx(const char *driver_id);
/* Classifies `key`; *spec is set for CDM_KEY_CHECKED (else NULL). */
enum cdm_key_kind cdm__key_kind(const struct cdm_drvctx *c, const char *key,
                                const struct cdm_param_spec **spec);
/* The closest key valid for the driver (a common mistake first), or NULL. */
const char *cdm__param_suggest_for(const struct cdm_drvctx *c,
                                   const char *key);
bool cdm__param_is_secret(const char *key);
int cdm__parse_bool(const char *s, bool *out);
int cdm__parse_int(const char *s, long long min, long long max, long long *out);

/* ------------------------------------------------------------ driver.c */

/* A database driver.  The identity and parameter table are always present
 * so that definitions for any driver can be checked; the operations are
 * NULL when configure did not find the client library.  Every operation
 * sets the thread's message on failure. */
struct cdm_resolved;

struct cdm_value;

struct cdm_driver {
    const char *id;                       /* "SQLite": cdm_conn_driver() */
    const char *const *aliases;           /* other DriverID spellings */
    const struct cdm_param_spec *params;  /* driver's own keys */
    const char *configure_flag;           /* how to build it in */

    /* Opens a connection from fully resolved, checked parameters. */
    int (*connect)(const struct cdm_resolved *r, void **out);
    void (*close)(void *dc);
    int (*exec)(void *dc, const char *sql, const char *const *params,
                size_t n, int64_t *affected);
    int (*query)(void *dc, const char *sql, const char *const *params,
                 size_t n, cdm_result **out);
    int (*begin)(void *dc);
    int (*commit)(void *dc);
    int (*rollback)(void *dc);
    /* 1 inside a transaction, else 0; from local state, no round trip. */
    int (*in_transaction)(void *dc);
    /* CDM_OK or CDM_ERR_BROKEN from local state, no round trip. */
    int (*alive)(void *dc);
    /* A round trip: CDM_OK or CDM_ERR_BROKEN. */
    int (*ping)(void *dc);
    /* Optional: discard session state (POOL_ResetOnRelease). */
    int (*reset)(void *dc);
    void *(*handle)(void *dc);
    /* Optional: the socket, for network drivers.  Its pooled connections
     * are watched for the server hanging up instead of being checked
     * with a system call on every borrow and return. */
    int (*socket)(void *dc);
    /* Optional: frees a connection inherited across fork() without a word
     * to the server (its session is the parent's).  Without it such a
     * connection is never closed in the child. */
    void (*forget)(void *dc);
    /* Optional: take and release the client library's own process-wide
     * locks around fork() (called from the manager's fork handlers, the
     * release in both parent and child). */
    void (*fork_lock)(void);
    void (*fork_unlock)(void);
    /* Optional: prepared statements (stmt.c keeps them per connection).
     * prepare: one statement with ? parameters; *ps the driver's handle,
     * *nparams its number of ?.  run: with n typed values, as exec
     * (out NULL; *affected) or as a query (*out); CDM__STALE when the
     * server no longer knows the statement, or no longer runs it as
     * prepared (PG: a changed result type), and running it again is safe
     * (no transaction was open): the caller prepares it again, once,
     * after freeing the stale handle with server_knows false (so run
     * drops a statement the server still has before it says
     * CDM__STALE).  unprepare: frees the handle, and the server's statement
     * when server_knows; without it (after a session reset, which dropped
     * them, before the connection is closed, or in a forked child) it
     * does no I/O at all. */
    int (*prepare)(void *dc, const char *sql, void **ps, size_t *nparams);
    int (*run)(void *dc, void *ps, const struct cdm_value *v, size_t n,
               int64_t *affected, cdm_result **out);
    void (*unprepare)(void *dc, void *ps, bool server_knows);
};

/* A parameter value of a prepared statement (stmt.c). */
struct cdm_value {
    int type;             /* CDM_TYPE_*; CDM_TYPE_NULL is SQL NULL */
    int64_t i;            /* CDM_TYPE_INT */
    double d;             /* CDM_TYPE_FLOAT */
    const char *p;        /* CDM_TYPE_TEXT, CDM_TYPE_BLOB: len bytes, and a
                           * NUL after them (stmt.c keeps one there) */
    size_t len;
};

/* Internal status of a driver's run: the server forgot the statement. */
#define CDM__STALE (-3)



extern const struct cdm_driver cdm__driver_sqlite;
extern const struct cdm_driver cdm__driver_pg;
extern const struct cdm_driver cdm__driver_mysql;

/* NULL-terminated list of every driver cdm knows. */
extern const struct cdm_driver *const cdm__drivers[];
/* By DriverID or alias, case-insensitive; NULL when unknown. */
const struct cdm_driver *cdm__driver_find(const char *id);

/* --------------------------------------------------------------- names.c */

/* Definitions by name, case-insensitively (the index owns none of them). */
struct cdm_name_slot;
struct cdm_names {
    struct cdm_name_slot *slots;
    size_t cap, used, live;   /* used counts removed entries too */
};
struct cdm_def *cdm__names_get(const struct cdm_names *ix, const char *name);
/* cdm__names_get as a cdm_lookup_fn (ctx: the index), for
 * cdm__resolve_chain over a set of definitions no manager holds. */
struct cdm_def *cdm__names_lookup(void *ix, const char *name);
/* Room for n more names, so that adding them allocates nothing. */
int cdm__names_reserve(struct cdm_names *ix, size_t n);
/* Adds `d` (replacing an entry of the same name). */
int cdm__names_put(struct cdm_names *ix, struct cdm_def *d);
void cdm__names_del(struct cdm_names *ix, const struct cdm_def *d);
/* Replaces the index by one of `defs`; unchanged when out of memory. */
int cdm__names_build(struct cdm_names *ix, struct cdm_def *const *defs,
                     size_t n);
void cdm__names_clear(struct cdm_names *ix);

/* ----------------------------------------------------------------- ini.c */

struct cdm_ini_key {
    char *key;    /* as written */
    char *value;  /* as iniparser 4.1 reads it (quotes and comments removed) */
    int line;
};

struct cdm_ini_section {
    char *name;   /* as written */
    int line;
    struct cdm_ini_key *keys;
    size_t nkeys, keys_cap;
};

/* A warning of the reader (a repeated key, a value cut at ';'). */
struct cdm_ini_warning {
    int line;
    char *section;   /* the section it is in, as written, or NULL */
    char *key;       /* the key it is about, as written, or NULL */
    char *text;      /* "path:line: ..." */
};

/* What cdm_manager_watch compares to see that a file changed: an edit in
 * place changes size or mtime, an editor's atomic rename the inode. */
struct cdm_filesig {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
};
void cdm__filesig(const struct stat *st, struct cdm_filesig *out);
bool cdm__filesig_eq(const struct cdm_filesig *a, const struct cdm_filesig *b);

struct cdm_ini {
    char *path;      /* as given */
    char *dir;       /* absolute directory of the file */
    unsigned mode;   /* st_mode permission bits */
    struct cdm_filesig sig;
    struct cdm_ini_section *sections;
    size_t nsections, sections_cap;
    struct cdm_ini_warning *warnings;
    size_t nwarnings;
    int error_line;  /* of a syntax error, while parsing */
    struct cdm_ini_slot *index;  /* sections and keys by name (ini.c) */
    size_t index_cap, index_used;
};

/* Reads and parses a definition file (through iniparser, serialised).
 * CDM_ERR_IO, CDM_ERR_INSECURE (world-writable), CDM_ERR_PARSE (syntax, a
 * repeated section; message "path:line: ...").  A repeated key is kept as
 * two entries in file order (the last wins) and noted in `warnings`. */
int cdm__ini_read(const char *path, struct cdm_ini **out);
/* Reads a whole definition file: a regular file, not world-writable
 * (CDM_ERR_INSECURE), at most 16 MB.  *buf is NUL-terminated; free it. */
struct stat;
int cdm__file_read(const char *path, char **buf, size_t *len, struct stat *st);
/* The same, reading a world-writable file too (cdm check reports it and
 * reads on); cdm__file_insecure tells whether `st` is one, with the
 * message cdm__file_read fails with. */
int cdm__file_read_any(const char *path, char **buf, size_t *len,
                       struct stat *st);
int cdm__file_insecure(const char *path, const struct stat *st);
/* Parses bytes already read (`path` for messages only; no `dir`,
 * no `mode`): how an edited file's new text is checked before it is
 * written. */
int cdm__ini_parse(const char *path, const char *buf, size_t len,
                   struct cdm_ini **out);
/* The same; on CDM_ERR_PARSE *line gets the line the message names (0
 * when iniparser did not tell). */
int cdm__ini_parse_at(const char *path, const char *buf, size_t len,
                      struct cdm_ini **out, int *line);
void cdm__ini_free(struct cdm_ini *ini);

/* ----------------------------------------------------------------- def.c */

/* Where definitions came from: a loaded file.  Shared by its definitions. */
struct cdm_source {
    char *path;   /* as given to load_file, for messages and reload */
    char *dir;    /* absolute directory, for relative SQLite paths */
    struct cdm_filesig sig;  /* the file as read (its fstat before reading) */
    atomic_uint refs;  /* shared by definitions and resolved copies that
                        * live in different threads */
};

struct cdm_kv {
    char *key;    /* as written */
    char *value;
    int line;     /* 0 when set at run time */
};

struct cdm_def {
    char *name;                 /* as written */
    struct cdm_source *src;     /* NULL for a private definition */
    int line;
    struct cdm_kv *kv;
    size_t nkv, cap;
    uint64_t gen;               /* bumped on every change */
    char **memory;              /* keys of a file's definition set or unset
                                 * in memory (cdm_manager_set_param), which
                                 * a reload replaces; NULL-terminated */
};

struct cdm_def *cdm__def_new(const char *name, struct cdm_source *src, int line);
void cdm__def_free(struct cdm_def *d);
struct cdm_kv *cdm__def_find(const struct cdm_def *d, const char *key);
/* Notes that `key` of a file's definition was changed in memory; true if
 * it was not noted before (out of memory: not noted). */
bool cdm__def_note_memory(struct cdm_def *d, const char *key);
/* Takes back the last note (a change refused). */
void cdm__def_unnote_last(struct cdm_def *d);
/* Sets (or adds) a key; value NULL removes it. */
int cdm__def_set(struct cdm_def *d, const char *key, const char *value, int line);
/* Appends a key the definition does not have, taking `key` and `value`
 * (malloc'd; on failure the caller still owns them). */
int cdm__def_take(struct cdm_def *d, char *key, char *value, int line);
/* "path:line: definition 'X'" (the key's line, else the section's) or
 * "definition 'X'" for a private one or a value set at run time. */
void cdm__def_where(const struct cdm_def *d, const struct cdm_kv *kv,
                    char *buf, size_t size);
/* A problem found in a file or definition, with where it is: a load logs
 * its text as a warning; cdm check (lint.c) reports its parts. */
struct cdm_issue {
    int level;         /* CDM_LOG_WARN; CDM_LOG_ERROR when the definition
                        * (or the file) cannot be used */
    int line;          /* the line `text` names, 0 if none */
    const char *def;   /* the definition, as written, or NULL */
    const char *key;   /* the key, as written, or NULL */
    const char *text;  /* the whole message: "path:line: definition 'X': ..." */
};
typedef void (*cdm_warn_fn)(void *ctx, const struct cdm_issue *is);
/* Checks the values the definition sets itself.  Unknown keys and (when
 * `strict` is false) bad values are passed to `warn`; with `strict` the
 * first bad value fails. */
int cdm__def_check_own(const struct cdm_def *d, bool strict,
                       cdm_warn_fn warn, void *ctx);
/* Checks one value `d` is about to set, as cdm_manager_set_param does: a
 * bad value of a known key fails, naming `where`; an unknown key (or one
 * of another driver) is allowed and *hint gets the warning to log
 * (malloc'd, or NULL). */
int cdm__def_check_value(const struct cdm_def *d, const char *where,
                         const char *key, const char *value, char **hint);
/* Rules across keys the definition sets itself (POOL_MinimumItems at
 * most POOL_MaximumItems). */
int cdm__def_check_pair(const struct cdm_def *d);
/* Longest definition name. */
#define CDM_NAME_MAX 255
bool cdm__name_valid(const char *name);
bool cdm__key_valid(const char *key);

void cdm__source_release(struct cdm_source *s);

/* A definition resolved for use: parent chain merged, $(VAR) expanded,
 * every value checked, driver chosen.  Owned by whoever resolved it. */
struct cdm_rkv {
    char *key;
    char *value;
    const char *dir;  /* directory of the file that set it, or NULL */
    const char *path; /* that file, for messages, or NULL */
    int line;         /* 0 when set at run time */
    char *from;       /* the parent definition that set it, NULL if own */
};

struct cdm_resolved {
    char *name;
    char *where;                /* "file:line: definition 'X'" */
    int line;                   /* the line of `where`, 0 if none */
    const struct cdm_driver *drv;
    struct cdm_rkv *kv;
    size_t nkv;
    struct cdm_source **srcs;   /* references held for the dirs above */
    size_t nsrcs;
    bool no_create;             /* open only what exists (cdm_manager_test_def):
                                 * a SQLite file is never created */
};

/* Merges the chain of `name` in the sorted list `defs` (lookup callback),
 * copying what it needs; then expands and checks.  Called with the
 * manager's lock held for the merge; see manager.c. */
typedef struct cdm_def *(*cdm_lookup_fn)(void *ctx, const char *name);
int cdm__resolve_chain(const char *name, cdm_lookup_fn lookup, void *ctx,
                       struct cdm_resolved **out);
/* Expands $(VAR), chooses the driver, checks values and required keys. */
int cdm__resolve_finish(struct cdm_resolved *r);
/* Everything that keeps the definition `name` from connecting, each
 * problem to `report` instead of failing at the first (cdm check).  A
 * problem is reported by the definition that causes it: a parent's bad
 * value or missing grandparent by that parent when it is checked itself.
 * An unset $(VAR) and a driver not built in are warnings.  Returns the
 * first status a connect would fail with; *out (may be NULL) gets the
 * resolved definition when that is CDM_OK. */
int cdm__resolve_report(const char *name, cdm_lookup_fn lookup, void *ctx,
                        cdm_warn_fn report, void *rctx,
                        struct cdm_resolved **out);
void cdm__resolved_free(struct cdm_resolved *r);
struct cdm_resolved *cdm__resolved_clone(const struct cdm_resolved *r);
/* Value as set, else the spec's default, else NULL. */
const char *cdm__rget(const struct cdm_resolved *r, const char *key);
const struct cdm_rkv *cdm__rfind(const struct cdm_resolved *r, const char *key);
/* Typed reads of values already checked by resolve. */
long long cdm__rget_int(const struct cdm_resolved *r, const char *key);
bool cdm__rget_bool(const struct cdm_resolved *r, const char *key);
/* "file:line: definition 'X' (inherited from 'P')" for a resolved value. */
void cdm__rkv_where(const struct cdm_resolved *r, const struct cdm_rkv *kv,
                    char *buf, size_t size);
/* Expands $(VAR) in one value; `where` prefixes errors, which never quote
 * the value of a secret or unknown key. */
int cdm__expand(const char *value, const char *where, const char *key,
                char **out);

/* ------------------------------------------------------------ sqlscan.c */

enum cdm_sql_dialect { CDM_SQL_PG, CDM_SQL_MYSQL };

/* Counts the `?` placeholders of `sql` outside literals, quoted
 * identifiers, comments and dollar quotes ("??" is a literal '?'), and
 * tells whether a second statement follows a ';'.  With `rewrite`, *out
 * gets the SQL with each placeholder numbered $1, $2, ... (PostgreSQL). */
int cdm__sql_scan(const char *sql, enum cdm_sql_dialect d, bool rewrite,
                  char **out, size_t *nparams, bool *multi);

/* The end of the statement starting at `from` (within `sql`): its ';'
 * outside literals and comments, or the terminating NUL. */
const char *cdm__sql_statement_end(const char *sql, const char *from,
                                   enum cdm_sql_dialect d);

/* A non-blocking look at a connected socket: CDM_OK if nothing is
 * waiting, CDM_ERR_BROKEN if the peer closed it or it failed, and
 * CDM__PENDING if data is waiting (the driver decides what it means). */
#define CDM__PENDING (-2)
int cdm__socket_check(int fd);
/* After fork(), in the child: puts a harmless descriptor in the place of
 * the inherited socket `fd`, so that a driver's close says nothing to the
 * server the parent is still talking to. */
int cdm__socket_silence(int fd);

/* ------------------------------------------------------------- result.c */

int cdm__result_new(size_t ncols, cdm_result **out);
int cdm__result_set_colname(cdm_result *r, size_t col, const char *name);
/* Appends a row of NULLs; values are then set with cdm__result_set. */
int cdm__result_add_row(cdm_result *r);
/* Makes room for nrows rows at once (a driver that knows how many). */
int cdm__result_reserve(cdm_result *r, size_t nrows);
/* Sets a cell of the last row to a copy of [v, v + n); v NULL is SQL NULL. */
int cdm__result_set(cdm_result *r, size_t col, const char *v, size_t n);
/* A binary value (CDM_TYPE_BLOB), kept raw; its text form for
 * cdm_result_value is "\x" and lowercase hex (PostgreSQL's bytea output),
 * made when first asked for. */
int cdm__result_set_binary(cdm_result *r, size_t col, const void *v, size_t n);
/* The same, taking ownership of `v`: n bytes and a NUL after them, from
 * malloc (a driver that decodes a BLOB decodes it into its cell). */
void cdm__result_set_binary_owned(cdm_result *r, size_t col, char *v,
                                  size_t n);
/* Same as cdm__result_set, taking ownership of `v` (allocated with malloc). */
void cdm__result_set_owned(cdm_result *r, size_t col, char *v);
/* A value of a given CDM_TYPE_* from its bytes (text as the database
 * prints it, or a BLOB's raw bytes); v NULL is SQL NULL. */
int cdm__result_set_typed(cdm_result *r, size_t col, int type, const void *v,
                          size_t n);
/* A number the driver has as a number; `text` (n bytes) is how the
 * database prints it, or NULL to print it here. */
int cdm__result_set_int(cdm_result *r, size_t col, int64_t v, const char *text,
                        size_t n);
int cdm__result_set_double(cdm_result *r, size_t col, double v,
                           const char *text, size_t n);

/* --------------------------------------------------------------- sync.c */

/* Coarse monotonic milliseconds, read twice by every borrow and return:
 * inline, so that it costs the clock read and nothing more.  A few ms of
 * resolution is plenty for idle and lifetime limits, and the coarse clock
 * costs a fraction of the precise one.  The test library's clock can be
 * moved forward (cdm__test_advance_ms), so that tests of idle, lifetime
 * and leak limits need not wait. */
#ifdef CDM_TEST_DRIVER
extern _Atomic int64_t cdm__test_skew_ms;
#define CDM__SKEW atomic_load_explicit(&cdm__test_skew_ms, memory_order_relaxed)
#else
#define CDM__SKEW 0
#endif
static inline int64_t cdm__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + CDM__SKEW;
}
/* Precise monotonic nanoseconds. */
int64_t cdm__now_ns(void);
/* Test library only: moves cdm__now_ms forward. */
void cdm__test_advance_ms(int64_t ms);
/* A condition variable that waits on CLOCK_MONOTONIC. */
void cdm__cond_init(pthread_cond_t *cond);
/* pthread_cond_timedwait to a cdm__now_ns() deadline; INT64_MAX: no
 * deadline.  ETIMEDOUT when the time is up. */
int cdm__cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock,
                         int64_t deadline_ns);

/* Where the pool machinery sends its messages (the manager's callback). */
struct cdm_log_sink {
    void (*fn)(void *ctx, int level, const char *message);
    void *ctx;
};
void cdm__sink_log(const struct cdm_log_sink *sink, int level,
                   const char *fmt, ...) CDM_PRINTF(3, 4);

/* --------------------------------------------------------------- load.c */

/* Messages gathered while nothing may be logged yet. */
struct cdm_notes {
    char **v;
    size_t n;
};
void cdm__note(void *ctx, const struct cdm_issue *is);   /* a cdm_warn_fn */
/* Logs them to m (NULL: drops them) and empties the list. */
void cdm__notes_flush(cdm_manager *m, struct cdm_notes *ns);

/* A file read into definitions, not yet part of any manager. */
struct cdm_loaded {
    struct cdm_source *src;
    struct cdm_def **defs;
    size_t ndefs;
    struct cdm_notes notes;
};
int cdm__load(const char *path, struct cdm_loaded *l);
/* FireDAC's header sections, never definitions: [FDConnectionDefs.ini]
 * and, copied by mistake from the driver file, [FDDrivers.ini]. */
#define CDM_HEADER_SECTION "FDConnectionDefs.ini"
#define CDM_DRIVERS_HEADER "FDDrivers.ini"
bool cdm__is_header(const char *name);
/* The same from a file already parsed (taken: freed, also on failure),
 * every warning to `warn` instead of l->notes. */
int cdm__load_parsed(struct cdm_ini *ini, struct cdm_loaded *l,
                     cdm_warn_fn warn, void *ctx);
void cdm__loaded_free(struct cdm_loaded *l);


/* --------------------------------------------------------------- conn.c */

struct cdm_pool;
struct cdm_slot;

struct cdm_conn {
    const struct cdm_driver *drv;
    void *dc;               /* the driver's connection */
    char *def_name;         /* as written */
    atomic_int busy;        /* 1 while a thread is inside a call */
    bool broken;            /* the driver reported the connection lost */

    /* Pooled connections only.  Fixed at open: pool, slot, incarnation,
     * gen, created_ms, watched_fd.  The rest is written by the borrowing
     * thread and read by the cleanup thread. */
    struct cdm_pool *pool;  /* NULL for a plain connection */
    struct cdm_slot *slot;  /* where the pool keeps it (entry.h) */
    uint64_t incarnation;   /* the pool incarnation it was opened for */
    uint64_t gen;           /* the pool's parameter generation at open */
    int64_t created_ms;
    int watched_fd;         /* in the watcher's set, or -1 */
    _Atomic int64_t borrowed_ms;
    atomic_bool leak_logged;
    _Atomic int64_t acquired; /* borrows, written by the borrower only */
    int64_t turn_ns;        /* when its borrower took it from another */
    cdm_conn *next;         /* lists of connections to close */

    /* Statements (stmt.c), used by the borrowing thread only. */
    int cache_size;         /* StatementCacheSize */
    struct cdm_cached *cache_head;   /* most recently used first */
    size_t cache_n;
    cdm_stmt *stmts;        /* open cdm_stmt of this borrow */
};

/* Opens a plain (unpooled) connection for a resolved definition. */
int cdm__conn_open(const struct cdm_resolved *r, cdm_conn **out);
/* Held for writing across fork() (manager.c): no thread is inside a
 * driver's connect then. */
void cdm__conn_fork_lock(void);
void cdm__conn_fork_unlock(bool child);
/* Closes the driver connection and frees the struct; no lock held. */
void cdm__conn_destroy(cdm_conn *c);
/* Claims the connection for one call (CDM_ERR_STATE if another thread is
 * inside), and lets it go, prefixing a failure's message. */
int cdm__conn_enter(cdm_conn *c, const char *what);
int cdm__conn_leave(cdm_conn *c, int rc);
/* POOL_ResetOnRelease: the driver's reset, and the statement cache goes
 * (the server dropped its statements). */
int cdm__conn_reset(cdm_conn *c);

/* ---------------------------------------------------------------- stmt.c */

/* cdm_exec/cdm_query with text parameters, through the cache. */
int cdm__stmt_run_text(cdm_conn *c, const char *sql, const char *const *params,
                       size_t n, int64_t *affected, cdm_result **out);
/* The borrow ends: open statements let go of the connection. */
void cdm__stmt_detach_all(cdm_conn *c);
/* Empties the cache, telling the server when it still knows them. */
void cdm__stmt_cache_clear(cdm_conn *c, bool server_knows);

/* ---------------------------------------- pool.c, cleanup.c (pool.h) */

/* Internal status: the pool was detached, reused or inherited while we
 * looked; look the definition up again.  Never returned to callers. */
#define CDM__RETRY (-1)

/* A new pool, detached, holding one reference (its registry's). */
struct cdm_pool *cdm__pool_new(int epfd);
void cdm__pool_ref(struct cdm_pool *p);
void cdm__pool_unref(struct cdm_pool *p);
/* Serves `name` from now on, its counters from zero; `before` (may be
 * NULL) gets the figures of the life that ends, taken in the same step. */
int cdm__pool_attach(struct cdm_pool *p, const char *name, uint64_t *incarnation,
                     cdm_pool_stats *before);
const char *cdm__pool_name(struct cdm_pool *p);
bool cdm__pool_attached(struct cdm_pool *p);
/* Detached, empty, and referenced by its registry alone: reusable. */
bool cdm__pool_unused(struct cdm_pool *p);
/* Refuses what the pool cannot work with (POOL_MaximumItems=0,
 * POOL_MinimumItems above the maximum). */
int cdm__pool_check_cfg(const struct cdm_resolved *r);
/* Takes ownership of r.  New parameters bump the generation; returns the
 * connections to close (cdm__pool_close_list, no lock held). */
cdm_conn *cdm__pool_configure(struct cdm_pool *p, struct cdm_resolved *r,
                              int64_t now_ms);
/* Stops borrowing; returns the idle connections to close. */
cdm_conn *cdm__pool_detach(struct cdm_pool *p);
/* Closes a list of connections that left their pools. */
void cdm__pool_close_list(cdm_conn *list);
int cdm__pool_wait_drained(struct cdm_pool *p, int64_t deadline_ns);
int cdm__pool_busy(struct cdm_pool *p);
void cdm__pool_stats(struct cdm_pool *p, cdm_pool_stats *out);
/* CDM_OK, an error, or CDM__RETRY. */
int cdm__pool_acquire(struct cdm_pool *p, uint64_t incarnation, cdm_conn **out);
void cdm__pool_release(cdm_conn *c);
/* One cleanup pass if due (or `force`d); returns when it is next due. */
int64_t cdm__pool_cleanup(struct cdm_pool *p, int64_t now_ms, bool force,
                          const struct cdm_log_sink *log);
/* The watcher saw the socket of the connection in `s` close. */
void cdm__pool_socket_closed(struct cdm_slot *s);

/* ----------------------------------------------------------- registry.c */

struct cdm_registry;

int cdm__registry_new(const struct cdm_log_sink *log, struct cdm_registry **out);
/* After cdm__registry_close; pools go when their last connection does. */
void cdm__registry_free(struct cdm_registry *g);
/* 1 and the attached pool serving `name`, or 0. */
int cdm__registry_find(struct cdm_registry *g, const char *name,
                       struct cdm_pool **out, uint64_t *incarnation);
/* A pool for `name` configured with r (taken, also on failure); connections
 * to close come back in *dead. */
int cdm__registry_attach(struct cdm_registry *g, const char *name,
                         struct cdm_resolved *r, struct cdm_pool **out,
                         uint64_t *incarnation, cdm_conn **dead);
/* Starts the cleanup thread if it is not running (logs a failure). */
void cdm__registry_start(struct cdm_registry *g);
void cdm__registry_kick(struct cdm_registry *g);
cdm_conn *cdm__registry_detach(struct cdm_registry *g, const char *name);
/* Every attached pool gets fn's parameters for its name; when fn returns
 * NULL it is detached, or left as it is when fn sets *keep. */
typedef struct cdm_resolved *(*cdm_refresh_fn)(void *ctx, const char *name,
                                               bool *keep);
cdm_conn *cdm__registry_refresh(struct cdm_registry *g, cdm_refresh_fn fn,
                                void *ctx);
int cdm__registry_stats(struct cdm_registry *g, const char *name,
                        cdm_pool_stats *out);
/* The names of the attached pools (a cdm_strv_free list), NULL when out
 * of memory. */
char **cdm__registry_names(struct cdm_registry *g);
/* Has the cleanup thread call fn(ctx) every interval_ms (0: stop), outside
 * every lock of the registry; starts the thread if needed.  fn returns 0,
 * or how soon (ms, less than the interval) it wants to look again. */
typedef int (*cdm_watch_fn)(void *ctx);
void cdm__registry_watch(struct cdm_registry *g, int interval_ms,
                         cdm_watch_fn fn, void *ctx);
cdm_conn *cdm__registry_close(struct cdm_registry *g);
/* Connections still borrowed when the deadline passed (0: none); `who`
 * gets the definitions they belong to, most first, at most five named
 * ("Orders (2), Reports (1) and 3 more"; "" when out of memory). */
int cdm__registry_wait_drained(struct cdm_registry *g, int64_t deadline_ns,
                               char *who, size_t size);
int cdm__registry_cleanup_now(struct cdm_registry *g, int timeout_ms);
void cdm__registry_fork_lock(struct cdm_registry *g);
void cdm__registry_fork_unlock(struct cdm_registry *g);
void cdm__registry_fork_child(struct cdm_registry *g);
bool cdm__registry_forked(struct cdm_registry *g);
void cdm__registry_abandon(struct cdm_registry *g);

/* ------------------------------------------------------------- manager.c */

void cdm__log(cdm_manager *m, int level, const char *fmt, ...) CDM_PRINTF(3, 4);
/* Test hook: one full cleanup pass over every pool, run now by the
 * cleanup thread; CDM_OK when it has run, CDM_ERR_BUSY on timeout. */
int cdm__manager_cleanup_now(cdm_manager *m, int timeout_ms);
/* Test hook: how many times cdm_manager_watch has looked at the files
 * (after the look, and after any reload it made). */
uint64_t cdm__manager_watch_looks(cdm_manager *m);

#endif /* CDM_INT_H */
