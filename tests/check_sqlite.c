/* check_sqlite.c - the SQLite driver: Database paths, OpenMode and pragma parameters, data round trips, SQLite's errors. */
#define _GNU_SOURCE
#include "testutil.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static cdm_manager *m;
static char *dir;            /* scratch directory of the test */
static char start_cwd[PATH_MAX];
static char *owned[16];      /* freed by teardown, even after a failure */
static size_t nowned;

static void setup(void)
{
    ck_assert_ptr_nonnull(getcwd(start_cwd, sizeof start_cwd));
    ck_status(cdm_manager_new(&m), CDM_OK);
    dir = tu_tmpdir();
}

static void teardown(void)
{
    cdm_manager_free(m);
    m = NULL;
    ck_assert_int_eq(chdir(start_cwd), 0);
    tu_rmtree(dir);
    dir = NULL;
    while (nowned)
        free(owned[--nowned]);
}

/* Keeps `p` until the end of the test. */
static char *own(char *p)
{
    ck_assert_uint_lt(nowned, sizeof owned / sizeof *owned);
    return owned[nowned++] = p;
}

/* Adds the private SQLite definition `name` for `database` plus up to
 * three more "Key=Value" parameters (NULL to stop early). */
static int add_sqlite(const char *name, const char *database, const char *p1,
                      const char *p2, const char *p3)
{
    char db[4200];

    snprintf(db, sizeof db, "Database=%s", database);
    return cdm_manager_add_def(m, name, (const char *[]){
        "DriverID=SQLite", db, p1, p2, p3, NULL });
}

/* dir/file, kept until the end of the test. */
static char *path_in(const char *d, const char *file)
{
    char *p;

    ck_assert_int_ne(asprintf(&p, "%s/%s", d, file), -1);
    return own(p);
}

static int exists(const char *d, const char *file)
{
    char *p = path_in(d, file);
    struct stat st;

    return stat(p, &st) == 0;
}

static char *own_write(const char *d, const char *name, const char *text,
                       mode_t mode)
{
    return own(tu_write(d, name, text, mode));
}

/* Runs a one-row, one-column query and returns a copy of the value
 * ("(null)" for SQL NULL).  Free with free(). */
static char *scalar(cdm_conn *conn, const char *sql)
{
    cdm_result *r = NULL;
    const char *v;
    char *copy;

    ck_status(cdm_query(conn, sql, NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    v = cdm_result_value(r, 0, 0);
    copy = strdup(v ? v : "(null)");
    cdm_result_free(r);
    return copy;
}

#define ck_scalar(conn, sql, want)                                           \
    do {                                                                     \
        char *ck_v_ = scalar((conn), (sql));                                 \
        ck_assert_str_eq(ck_v_, (want));                                     \
        free(ck_v_);                                                         \
    } while (0)

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* Connects to a fresh :memory: definition "Mem". */
static cdm_conn *mem_conn(void)
{
    cdm_conn *c;

    if (!cdm_manager_has_def(m, "Mem"))
        ck_status(add_sqlite("Mem", ":memory:", NULL, NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Mem", &c), CDM_OK);
    return c;
}

/* --------------------------------------------------------- Database paths */

START_TEST(test_relative_database_against_file_dir)
{
    char *sub = path_in(dir, "sub"), *elsewhere = path_in(dir, "elsewhere");
    char *defs;
    cdm_conn *c;

    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_int_eq(mkdir(elsewhere, 0700), 0);
    defs = own_write(sub, "defs.ini",
                     "[Rel]\nDriverID=SQLite\nDatabase=data.db\n", 0600);
    ck_assert_int_eq(chdir(elsewhere), 0);

    ck_status(cdm_manager_load_file(m, defs), CDM_OK);
    ck_status(cdm_connect(m, "Rel", &c), CDM_OK);
    ck_status(cdm_exec(c, "CREATE TABLE t (x)", NULL, 0, NULL), CDM_OK);
    cdm_disconnect(c);

    ck_assert_msg(exists(sub, "data.db"), "sub/data.db was not created");
    ck_assert_msg(!exists(elsewhere, "data.db"), "data.db created in the cwd");
}
END_TEST

START_TEST(test_relative_database_private_def_uses_cwd)
{
    cdm_conn *c;

    ck_assert_int_eq(chdir(dir), 0);
    ck_status(add_sqlite("Here", "here.db", NULL, NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Here", &c), CDM_OK);
    ck_status(cdm_exec(c, "CREATE TABLE t (x)", NULL, 0, NULL), CDM_OK);
    cdm_disconnect(c);
    ck_assert_msg(exists(dir, "here.db"), "here.db not created in the cwd");
}
END_TEST

START_TEST(test_relative_database_from_parent_file)
{
    char *da = path_in(dir, "a"), *db = path_in(dir, "b");
    char *fa, *fb;
    cdm_conn *c;

    ck_assert_int_eq(mkdir(da, 0700), 0);
    ck_assert_int_eq(mkdir(db, 0700), 0);
    fa = own_write(da, "base.ini",
                   "[Base]\nDriverID=SQLite\nDatabase=base.db\n", 0600);
    fb = own_write(db, "child.ini",
                   "[Child]\nConnectionDef=Base\nBusyTimeout=500\n", 0600);
    ck_assert_int_eq(chdir(dir), 0);

    ck_status(cdm_manager_load_file(m, fb), CDM_OK);
    ck_status(cdm_manager_load_file(m, fa), CDM_OK);
    ck_status(cdm_connect(m, "Child", &c), CDM_OK);
    ck_status(cdm_exec(c, "CREATE TABLE t (x)", NULL, 0, NULL), CDM_OK);
    cdm_disconnect(c);

    ck_assert_msg(exists(da, "base.db"), "a/base.db was not created");
    ck_assert_msg(!exists(db, "base.db"), "created next to the child's file");
    ck_assert_msg(!exists(dir, "base.db"), "created in the cwd");
}
END_TEST

/* ------------------------------------------------------------- OpenMode */

START_TEST(test_openmode_create_is_default)
{
    char *p = path_in(dir, "new.db");
    cdm_conn *c;

    ck_status(add_sqlite("New", p, NULL, NULL, NULL), CDM_OK);
    ck_assert(!exists(dir, "new.db"));
    ck_status(cdm_connect(m, "New", &c), CDM_OK);
    ck_status(cdm_exec(c, "CREATE TABLE t (x); INSERT INTO t VALUES (1)", NULL,
                       0, NULL), CDM_OK);
    cdm_disconnect(c);
    ck_assert(exists(dir, "new.db"));
    /* And an explicit CreateUTF8 opens the existing file. */
    ck_status(add_sqlite("Again", p, "OpenMode=CreateUTF8", NULL, NULL),
              CDM_OK);
    ck_status(cdm_connect(m, "Again", &c), CDM_OK);
    ck_scalar(c, "SELECT x FROM t", "1");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_openmode_readwrite_missing_file)
{
    char *p = path_in(dir, "missing.db");
    cdm_conn *c = NULL;

    ck_status(add_sqlite("RW", p, "OpenMode=ReadWrite", NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "RW", &c), CDM_ERR_CONNECT);
    ck_assert_ptr_null(c);
    ck_errmsg_has("RW");
    ck_errmsg_has(p);
    ck_assert(!exists(dir, "missing.db"));
}
END_TEST

START_TEST(test_openmode_readonly)
{
    char *p = path_in(dir, "ro.db");
    cdm_conn *c;

    ck_status(add_sqlite("Maker", p, NULL, NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Maker", &c), CDM_OK);
    ck_status(cdm_exec(c, "CREATE TABLE t (x); INSERT INTO t VALUES (7)", NULL,
                       0, NULL), CDM_OK);
    cdm_disconnect(c);

    ck_status(add_sqlite("RO", p, "OpenMode=ReadOnly", NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "RO", &c), CDM_OK);
    ck_scalar(c, "SELECT x FROM t", "7");
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (8)", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("readonly");
    ck_errmsg_has("RO");
    ck_scalar(c, "SELECT count(*) FROM t", "1");
    cdm_disconnect(c);

    /* ReadOnly on a missing file cannot create it. */
    ck_status(add_sqlite("RO2", "/nonexistent-dir/x.db", "OpenMode=ReadOnly",
                         NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "RO2", &c), CDM_ERR_CONNECT);
    ck_errmsg_has("RO2");
}
END_TEST

START_TEST(test_not_a_database)
{
    char *p = own_write(dir, "junk.db", "hello", 0600);
    cdm_conn *c = NULL;

    ck_status(add_sqlite("Junk", p, NULL, NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Junk", &c), CDM_ERR_CONNECT);
    ck_assert_ptr_null(c);
    ck_errmsg_has("not a database");
    ck_errmsg_has("Junk");
}
END_TEST

/* ---------------------------------------------------------- BusyTimeout */

/* Conn A holds the write lock on dir/busy.db; returns it. */
static cdm_conn *hold_write_lock(void)
{
    char *p = path_in(dir, "busy.db");
    cdm_conn *a;

    ck_status(add_sqlite("Holder", p, NULL, NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Holder", &a), CDM_OK);
    ck_status(cdm_exec(a, "CREATE TABLE t (x)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(a, "BEGIN IMMEDIATE", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(a, "INSERT INTO t VALUES (1)", NULL, 0, NULL), CDM_OK);
    return a;
}

static void ck_errmsg_locked(void)
{
    ck_assert_msg(strstr(cdm_errmsg(), "locked") || strstr(cdm_errmsg(), "busy"),
                  "errmsg '%s' says neither locked nor busy", cdm_errmsg());
}

START_TEST(test_busy_timeout_waits)
{
    cdm_conn *a = hold_write_lock(), *b;
    char *p = path_in(dir, "busy.db");
    double t0, ms;

    ck_status(add_sqlite("Waiter", p, "BusyTimeout=200", NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Waiter", &b), CDM_OK);
    t0 = now_ms();
    ck_status(cdm_exec(b, "INSERT INTO t VALUES (2)", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ms = now_ms() - t0;
    ck_errmsg_locked();
    ck_errmsg_has("Waiter");
    ck_assert_msg(ms >= 150 && ms < 5000, "gave up after %.0f ms", ms);

    /* Once A is done, B can write. */
    ck_status(cdm_rollback(a), CDM_OK);
    ck_status(cdm_exec(b, "INSERT INTO t VALUES (2)", NULL, 0, NULL), CDM_OK);
    cdm_disconnect(b);
    cdm_disconnect(a);
}
END_TEST

START_TEST(test_busy_timeout_zero_fails_at_once)
{
    cdm_conn *a = hold_write_lock(), *b;
    char *p = path_in(dir, "busy.db");
    double t0, ms;

    ck_status(add_sqlite("Impatient", p, "BusyTimeout=0", NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Impatient", &b), CDM_OK);
    t0 = now_ms();
    ck_status(cdm_exec(b, "INSERT INTO t VALUES (2)", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ms = now_ms() - t0;
    ck_errmsg_locked();
    ck_assert_msg(ms < 150, "took %.0f ms to fail", ms);
    cdm_disconnect(b);
    cdm_disconnect(a);
}
END_TEST

/* -------------------------------------------------------------- pragmas */

START_TEST(test_journal_mode_wal)
{
    char *p = path_in(dir, "wal.db");
    cdm_conn *c;

    ck_status(add_sqlite("Wal", p, "JournalMode=WAL", NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Wal", &c), CDM_OK);
    ck_scalar(c, "PRAGMA journal_mode", "wal");
    ck_status(cdm_exec(c, "CREATE TABLE t (x)", NULL, 0, NULL), CDM_OK);
    cdm_disconnect(c);

    /* Without JournalMode the file keeps SQLite's default. */
    p = path_in(dir, "plain.db");
    ck_status(add_sqlite("Plain", p, NULL, NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Plain", &c), CDM_OK);
    ck_scalar(c, "PRAGMA journal_mode", "delete");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_synchronous_off)
{
    char *p = path_in(dir, "sync.db");
    cdm_conn *c;

    ck_status(add_sqlite("NoSync", p, "Synchronous=Off", NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "NoSync", &c), CDM_OK);
    ck_scalar(c, "PRAGMA synchronous", "0");
    cdm_disconnect(c);
    ck_status(add_sqlite("FullSync", p, "Synchronous=Full", NULL, NULL),
              CDM_OK);
    ck_status(cdm_connect(m, "FullSync", &c), CDM_OK);
    ck_scalar(c, "PRAGMA synchronous", "2");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_locking_mode)
{
    char *p = path_in(dir, "lock.db");
    cdm_conn *c, *other;

    ck_status(add_sqlite("Normal", p, NULL, NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Normal", &c), CDM_OK);
    ck_scalar(c, "PRAGMA locking_mode", "normal");
    cdm_disconnect(c);

    ck_status(add_sqlite("Excl", p, "LockingMode=Exclusive", NULL, NULL),
              CDM_OK);
    ck_status(cdm_connect(m, "Excl", &c), CDM_OK);
    ck_scalar(c, "PRAGMA locking_mode", "exclusive");
    /* After a write the exclusive connection keeps the file to itself. */
    ck_status(cdm_exec(c, "CREATE TABLE t (x)", NULL, 0, NULL), CDM_OK);
    ck_status(add_sqlite("Other", p, "BusyTimeout=0", NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "Other", &other), CDM_ERR_CONNECT);
    ck_errmsg_has("Other");
    ck_errmsg_has("locked");
    cdm_disconnect(c);
    /* Released on close. */
    ck_status(cdm_connect(m, "Other", &other), CDM_OK);
    ck_scalar(other, "SELECT count(*) FROM t", "0");
    cdm_disconnect(other);
}
END_TEST

START_TEST(test_foreign_keys_on_by_default)
{
    cdm_conn *c = mem_conn();

    ck_scalar(c, "PRAGMA foreign_keys", "1");
    ck_status(cdm_exec(c, "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
                          "CREATE TABLE child (pid INTEGER REFERENCES parent(id));"
                          "INSERT INTO parent VALUES (1);"
                          "INSERT INTO child VALUES (1)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO child VALUES (?)",
                       (const char *[]){ "2" }, 1, NULL), CDM_ERR_QUERY);
    ck_errmsg_has("FOREIGN KEY");
    ck_errmsg_has("Mem");
    ck_scalar(c, "SELECT count(*) FROM child", "1");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_foreign_keys_false)
{
    cdm_conn *c;

    ck_status(add_sqlite("NoFK", ":memory:", "ForeignKeys=False", NULL, NULL),
              CDM_OK);
    ck_status(cdm_connect(m, "NoFK", &c), CDM_OK);
    ck_scalar(c, "PRAGMA foreign_keys", "0");
    ck_status(cdm_exec(c, "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
                          "CREATE TABLE child (pid INTEGER REFERENCES parent(id));"
                          "INSERT INTO child VALUES (2)", NULL, 0, NULL),
              CDM_OK);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_openmode_create_utf16)
{
    const char *text = "\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x99\x82";
    char *p = path_in(dir, "utf16.db");
    cdm_conn *c;

    ck_status(add_sqlite("U16", p, "OpenMode=CreateUTF16", NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "U16", &c), CDM_OK);
    ck_status(cdm_exec(c, "CREATE TABLE t (v TEXT);"
                          "INSERT INTO t VALUES ('plain')", NULL, 0, NULL),
              CDM_OK);
    ck_scalar(c, "PRAGMA encoding", "UTF-16le");
    /* Values still come back as UTF-8. */
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?)", (const char *[]){ text },
                       1, NULL), CDM_OK);
    ck_scalar(c, "SELECT v FROM t WHERE rowid = 2", text);
    cdm_disconnect(c);
}
END_TEST

/* ----------------------------------------------------------- bad values */

START_TEST(test_bad_values_refused_at_add_def)
{
    static const struct { const char *param, *key, *value; } bad[] = {
        { "OpenMode=Foo", "OpenMode", "Foo" },
        { "JournalMode=Bogus", "JournalMode", "Bogus" },
        { "BusyTimeout=abc", "BusyTimeout", "abc" },
        { "BusyTimeout=-1", "BusyTimeout", "-1" },
        { "Synchronous=Sometimes", "Synchronous", "Sometimes" },
        { "LockingMode=Shared", "LockingMode", "Shared" },
        { "ForeignKeys=Maybe", "ForeignKeys", "Maybe" },
    };

    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(add_sqlite("Bad", ":memory:", bad[i].param, NULL, NULL) ==
                      CDM_ERR_INVALID, "%s was accepted", bad[i].param);
        ck_errmsg_has(bad[i].key);
        ck_errmsg_has(bad[i].value);
        ck_assert_int_eq(cdm_manager_has_def(m, "Bad"), 0);
    }
}
END_TEST

START_TEST(test_bad_value_in_file_fails_at_connect)
{
    char *defs = own_write(dir, "bad.ini",
                           "[Good]\nDriverID=SQLite\nDatabase=:memory:\n"
                           "[BadMode]\nDriverID=SQLite\nDatabase=:memory:\n"
                           "OpenMode=Sideways\n", 0600);
    cdm_conn *c = NULL;

    ck_status(cdm_manager_load_file(m, defs), CDM_OK);
    ck_status(cdm_connect(m, "BadMode", &c), CDM_ERR_INVALID);
    ck_assert_ptr_null(c);
    ck_errmsg_has("bad.ini:7");  /* the OpenMode line */
    ck_errmsg_has("BadMode");
    ck_errmsg_has("OpenMode");
    ck_errmsg_has("Sideways");
    ck_status(cdm_connect(m, "Good", &c), CDM_OK);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_database_empty)
{
    char *defs = own_write(dir, "empty.ini",
                           "[EmptyFile]\nDriverID=SQLite\nDatabase=\n", 0600);
    cdm_conn *c = NULL;

    /* Refused where it is given, like any other bad value. */
    ck_status(cdm_manager_add_def(m, "Empty", (const char *[]){
                  "DriverID=SQLite", "Database=", NULL }), CDM_ERR_INVALID);
    ck_errmsg_has("definition 'Empty': Database is empty");
    ck_assert(!cdm_manager_has_def(m, "Empty"));

    /* From a file: loaded with a warning (cdm check makes it an error),
     * and connecting fails naming the line, never opening a database. */
    ck_status(cdm_manager_load_file(m, defs), CDM_OK);
    ck_status(cdm_connect(m, "EmptyFile", &c), CDM_ERR_INVALID);
    ck_assert_ptr_null(c);
    ck_errmsg_has("empty.ini:3: definition 'EmptyFile': Database is empty");
}
END_TEST

/* ----------------------------------------------------------------- data */

START_TEST(test_unicode_round_trip)
{
    const char *text = "Gr\xc3\xbc\xc3\x9f" "e, \xe4\xb8\x96\xe7\x95\x8c, "
                       "\xf0\x9f\x99\x82";   /* "Grüße, 世界, 🙂" */
    cdm_conn *c = mem_conn();
    cdm_result *r;

    ck_status(cdm_exec(c, "CREATE TABLE t (v TEXT)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?)", (const char *[]){ text },
                       1, NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT v, length(v), v = ? FROM t",
                        (const char *[]){ text }, 1, &r), CDM_OK);
    ck_assert_uint_eq(strlen(cdm_result_value(r, 0, 0)), strlen(text));
    ck_assert_int_eq(memcmp(cdm_result_value(r, 0, 0), text, strlen(text)), 0);
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "12"); /* characters */
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "1");
    cdm_result_free(r);
    /* Unicode in the SQL text itself, as a column alias too. */
    ck_status(cdm_query(c, "SELECT 'Gr\xc3\xbc\xc3\x9f" "e' AS \"\xe4\xb8\x96\"",
                        NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_colname(r, 0), "\xe4\xb8\x96");
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "Gr\xc3\xbc\xc3\x9f" "e");
    cdm_result_free(r);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_large_text_round_trip)
{
    const size_t len = 10u * 1024 * 1024;
    char *big = own(malloc(len + 1));
    cdm_conn *c = mem_conn();
    cdm_result *r;
    const char *v;

    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + (i * 7 + i / 26) % 26);
    big[len] = '\0';
    ck_status(cdm_exec(c, "CREATE TABLE t (v TEXT)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?)", (const char *[]){ big },
                       1, NULL), CDM_OK);
    ck_scalar(c, "SELECT length(v) FROM t", "10485760");
    ck_status(cdm_query(c, "SELECT v FROM t", NULL, 0, &r), CDM_OK);
    v = cdm_result_value(r, 0, 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(strlen(v), len);
    ck_assert_msg(memcmp(v, big, len) == 0, "10 MB value changed on the way");
    cdm_result_free(r);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_blob_as_hex)
{
    cdm_conn *c = mem_conn();
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT x'00ff10', x'', zeroblob(3), "
                           "x'DEADBEEF', typeof(x'')", NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "\\x00ff10");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "\\x");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "\\x000000");
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "\\xdeadbeef");
    ck_assert_str_eq(cdm_result_value(r, 0, 4), "blob");
    cdm_result_free(r);
    /* A stored blob too. */
    ck_status(cdm_exec(c, "CREATE TABLE b (v BLOB);"
                          "INSERT INTO b VALUES (x'0a0B0c')", NULL, 0, NULL),
              CDM_OK);
    ck_scalar(c, "SELECT v FROM b", "\\x0a0b0c");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_integer_bounds)
{
    cdm_conn *c = mem_conn();
    cdm_result *r;

    ck_scalar(c, "SELECT 9223372036854775807", "9223372036854775807");
    ck_scalar(c, "SELECT -9223372036854775807 - 1", "-9223372036854775808");
    /* Text parameters take the column's integer affinity. */
    ck_status(cdm_exec(c, "CREATE TABLE n (v INTEGER)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO n VALUES (?), (?), (?)",
                       (const char *[]){ "9223372036854775807",
                                         "-9223372036854775808", "0" },
                       3, NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT v, typeof(v) FROM n ORDER BY v", NULL, 0,
                        &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 3);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "-9223372036854775808");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "integer");
    ck_assert_str_eq(cdm_result_value(r, 1, 0), "0");
    ck_assert_str_eq(cdm_result_value(r, 2, 0), "9223372036854775807");
    ck_assert_str_eq(cdm_result_value(r, 2, 1), "integer");
    cdm_result_free(r);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_real_values)
{
    cdm_conn *c = mem_conn();
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT 2.5, -0.25, 1.0, 0.1, 3 / 2.0, 1e3",
                        NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "2.5");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "-0.25");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "1.0");
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "0.1");
    ck_assert_str_eq(cdm_result_value(r, 0, 4), "1.5");
    ck_assert_str_eq(cdm_result_value(r, 0, 5), "1000.0");
    cdm_result_free(r);
    cdm_disconnect(c);
}
END_TEST

/* ----------------------------------------------------------- SQL errors */

START_TEST(test_syntax_error)
{
    cdm_conn *c = mem_conn();
    cdm_result *r = NULL;

    ck_status(cdm_query(c, "SELEC 1", NULL, 0, &r), CDM_ERR_QUERY);
    ck_assert_ptr_null(r);
    ck_errmsg_has("syntax error");
    ck_errmsg_has("SELEC");
    ck_errmsg_has("Mem");
    ck_status(cdm_exec(c, "CREATE TABLE (", NULL, 0, NULL), CDM_ERR_QUERY);
    ck_errmsg_has("syntax error");
    ck_errmsg_has("Mem");
    ck_scalar(c, "SELECT 'fine'", "fine");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_unique_violation)
{
    cdm_conn *c = mem_conn();
    int64_t n = -1;

    ck_status(cdm_exec(c, "CREATE TABLE u (k TEXT UNIQUE);"
                          "INSERT INTO u VALUES ('a')", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO u VALUES (?)", (const char *[]){ "a" },
                       1, &n), CDM_ERR_QUERY);
    ck_assert_int_eq(n, -1);
    ck_errmsg_has("UNIQUE");
    ck_errmsg_has("u.k");
    ck_errmsg_has("Mem");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_no_such_table)
{
    cdm_conn *c = mem_conn();
    cdm_result *r = NULL;

    ck_status(cdm_query(c, "SELECT * FROM missing_tbl", NULL, 0, &r),
              CDM_ERR_QUERY);
    ck_errmsg_has("no such table");
    ck_errmsg_has("missing_tbl");
    ck_errmsg_has("Mem");
    ck_status(cdm_exec(c, "DELETE FROM other_missing", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("other_missing");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_error_after_some_rows)
{
    cdm_conn *c = mem_conn();
    cdm_result *r = NULL;

    /* abs() of the smallest integer fails at run time, on the fifth row. */
    ck_status(cdm_query(c, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                           "SELECT i + 1 FROM n WHERE i < 10) "
                           "SELECT CASE WHEN i = 5 THEN "
                           "abs(-9223372036854775807 - 1) ELSE i END FROM n",
                        NULL, 0, &r), CDM_ERR_QUERY);
    ck_assert_ptr_null(r);
    ck_errmsg_has("integer overflow");
    ck_errmsg_has("Mem");
    ck_scalar(c, "SELECT 1", "1");
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_error_in_script_reports_sqlite_text)
{
    cdm_conn *c = mem_conn();

    ck_status(cdm_exec(c, "CREATE TABLE t (x); INSERT INTO nope VALUES (1)",
                       NULL, 0, NULL), CDM_ERR_QUERY);
    ck_errmsg_has("nope");
    ck_errmsg_has("Mem");
    /* The statement before the failing one ran. */
    ck_scalar(c, "SELECT count(*) FROM t", "0");
    cdm_disconnect(c);
}
END_TEST

/* ------------------------------------------------------------ :memory: */

START_TEST(test_memory_databases_are_separate)
{
    cdm_conn *c1 = mem_conn(), *c2 = mem_conn();

    ck_status(cdm_exec(c1, "CREATE TABLE only_here (x)", NULL, 0, NULL),
              CDM_OK);
    ck_scalar(c1, "SELECT count(*) FROM only_here", "0");
    ck_status(cdm_exec(c2, "SELECT * FROM only_here", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("only_here");
    cdm_disconnect(c1);
    /* A new connection after the first closed starts empty as well. */
    c1 = mem_conn();
    ck_scalar(c1, "SELECT count(*) FROM sqlite_master", "0");
    cdm_disconnect(c1);
    cdm_disconnect(c2);
}
END_TEST

/* ------------------------------------------------------- testing a def */

START_TEST(test_test_def_ok_and_timed)
{
    char *db = path_in(dir, "t.db");
    const char *drv = NULL;
    int64_t ms = -1;
    cdm_conn *c;

    ck_status(add_sqlite("T", db, "Pooled=True", NULL, NULL), CDM_OK);
    ck_status(cdm_connect(m, "T", &c), CDM_OK);      /* creates t.db */
    cdm_disconnect(c);
    ck_status(cdm_manager_test_def(m, "T", &drv, &ms), CDM_OK);
    ck_assert_str_eq(drv, "SQLite");
    ck_assert_int_ge(ms, 0);
    ck_status(add_sqlite("Mem", ":memory:", NULL, NULL, NULL), CDM_OK);
    ck_status(cdm_manager_test_def(m, "Mem", NULL, NULL), CDM_OK);
}
END_TEST

START_TEST(test_test_def_never_creates_the_file)
{
    const char *modes[] = { "OpenMode=CreateUTF8", "OpenMode=CreateUTF16",
                            "OpenMode=ReadWrite", "OpenMode=ReadOnly" };
    const char *drv = "unset";
    int64_t ms = -1;

    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        char name[16];
        snprintf(name, sizeof name, "New%zu", i);
        ck_status(add_sqlite(name, path_in(dir, "missing.db"), modes[i],
                             NULL, NULL), CDM_OK);
        ck_status(cdm_manager_test_def(m, name, &drv, &ms), CDM_ERR_CONNECT);
        ck_errmsg_has("does not exist");
        ck_errmsg_has("missing.db");
        ck_assert(!exists(dir, "missing.db"));
    }
    ck_assert_str_eq(drv, "unset");   /* untouched on failure */
    ck_assert_int_eq(ms, -1);
    /* A real connect still creates it. */
    {
        cdm_conn *c;
        ck_status(cdm_connect(m, "New0", &c), CDM_OK);
        cdm_disconnect(c);
        ck_assert(exists(dir, "missing.db"));
    }
}
END_TEST

START_TEST(test_test_def_errors)
{
    ck_status(cdm_manager_test_def(m, "Nope", NULL, NULL), CDM_ERR_NOT_FOUND);
    ck_status(cdm_manager_add_def(m, "Odd", (const char *[]){
        "DriverID=MSSQL", "Database=x", NULL }), CDM_OK);
    ck_status(cdm_manager_test_def(m, "Odd", NULL, NULL), CDM_ERR_DRIVER);
    ck_status(cdm_manager_test_def(NULL, "Odd", NULL, NULL), CDM_ERR_INVALID);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sqlite");
    TCase *tpath = tcase_create("paths");
    TCase *tmode = tcase_create("openmode");
    TCase *tprag = tcase_create("pragmas");
    TCase *tbad = tcase_create("bad_values");
    TCase *tdata = tcase_create("data");
    TCase *terr = tcase_create("errors");
    TCase *ttest = tcase_create("test_def");
    TCase *all[] = { tpath, tmode, tprag, tbad, tdata, terr, ttest };

    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], 120);
        suite_add_tcase(s, all[i]);
    }

    tcase_add_test(tpath, test_relative_database_against_file_dir);
    tcase_add_test(tpath, test_relative_database_private_def_uses_cwd);
    tcase_add_test(tpath, test_relative_database_from_parent_file);

    tcase_add_test(tmode, test_openmode_create_is_default);
    tcase_add_test(tmode, test_openmode_readwrite_missing_file);
    tcase_add_test(tmode, test_openmode_readonly);
    tcase_add_test(tmode, test_not_a_database);
    tcase_add_test(tmode, test_openmode_create_utf16);

    tcase_add_test(tprag, test_busy_timeout_waits);
    tcase_add_test(tprag, test_busy_timeout_zero_fails_at_once);
    tcase_add_test(tprag, test_journal_mode_wal);
    tcase_add_test(tprag, test_synchronous_off);
    tcase_add_test(tprag, test_locking_mode);
    tcase_add_test(tprag, test_foreign_keys_on_by_default);
    tcase_add_test(tprag, test_foreign_keys_false);

    tcase_add_test(tbad, test_bad_values_refused_at_add_def);
    tcase_add_test(tbad, test_bad_value_in_file_fails_at_connect);
    tcase_add_test(tbad, test_database_empty);

    tcase_add_test(tdata, test_unicode_round_trip);
    tcase_add_test(tdata, test_large_text_round_trip);
    tcase_add_test(tdata, test_blob_as_hex);
    tcase_add_test(tdata, test_integer_bounds);
    tcase_add_test(tdata, test_real_values);
    tcase_add_test(tdata, test_memory_databases_are_separate);

    tcase_add_test(terr, test_syntax_error);
    tcase_add_test(terr, test_unique_violation);
    tcase_add_test(terr, test_no_such_table);
    tcase_add_test(terr, test_error_after_some_rows);
    tcase_add_test(terr, test_error_in_script_reports_sqlite_text);

    tcase_add_test(ttest, test_test_def_ok_and_timed);
    tcase_add_test(ttest, test_test_def_never_creates_the_file);
    tcase_add_test(ttest, test_test_def_errors);
    return tu_run(s);
}
