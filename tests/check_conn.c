/* check_conn.c - the driver-independent connection layer (exec, query, results, transactions, threads), run on SQLite. */
#define _GNU_SOURCE
#include "testutil.h"

#include <ctype.h>
#include <dlfcn.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static cdm_manager *m;
static cdm_conn *c;

/* A manager with the private definition "Mem" (SQLite :memory:) and one
 * open connection to it. */
static void setup_mem(void)
{
    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Mem", (const char *[]){
                  "DriverID=SQLite", "Database=:memory:", NULL }), CDM_OK);
    ck_status(cdm_connect(m, "Mem", &c), CDM_OK);
}

static void teardown_mem(void)
{
    cdm_disconnect(c);
    c = NULL;
    cdm_manager_free(m);
    m = NULL;
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

/* True if `msg` holds the number `n` as a word of its own (digits not
 * glued to other digits). */
static int has_number(const char *msg, long n)
{
    char want[32];
    size_t len;

    snprintf(want, sizeof want, "%ld", n);
    len = strlen(want);
    for (const char *p = strstr(msg, want); p; p = strstr(p + 1, want))
        if ((p == msg || !isdigit((unsigned char)p[-1])) &&
            !isdigit((unsigned char)p[len]))
            return 1;
    return 0;
}

/* A function of the sqlite3 library that libcdm loaded; the tests link
 * libcdm only, so the symbol is looked up at run time. */
static void *sqlite_sym(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);

    ck_assert_msg(f != NULL, "sqlite3 symbol %s not found", name);
    return f;
}

/* A private definition `name` for a SQLite file in `dir`. */
static void add_file_def(cdm_manager *mgr, const char *name, const char *dir,
                         const char *file, const char *extra)
{
    char db[4200];

    snprintf(db, sizeof db, "Database=%s/%s", dir, file);
    ck_status(cdm_manager_add_def(mgr, name, (const char *[]){
                  "DriverID=SQLite", db, extra ? extra : "BusyTimeout=10000",
                  NULL }), CDM_OK);
}

/* ------------------------------------------------------- cdm_exec counts */

START_TEST(test_exec_affected_multirow_insert)
{
    int64_t n = -1;

    ck_status(cdm_exec(c, "CREATE TABLE t (x INTEGER)", NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 0);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (1), (2), (3)", NULL, 0, &n),
              CDM_OK);
    ck_assert_int_eq(n, 3);
}
END_TEST

START_TEST(test_exec_affected_update_counts_matches)
{
    int64_t n = -1;

    ck_status(cdm_exec(c, "CREATE TABLE t (x INTEGER)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (1), (2), (3)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_exec(c, "UPDATE t SET x = x * 10 WHERE x >= ?",
                       (const char *[]){ "2" }, 1, &n), CDM_OK);
    ck_assert_int_eq(n, 2);
    ck_status(cdm_exec(c, "UPDATE t SET x = 0 WHERE x = 999", NULL, 0, &n),
              CDM_OK);
    ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_exec_affected_not_carried_over)
{
    int64_t n = -1;

    ck_status(cdm_exec(c, "CREATE TABLE t (x INTEGER)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (1), (2)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_exec(c, "UPDATE t SET x = x + 1", NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 2);
    /* SQLite keeps the last change count across other statements; a
     * CREATE TABLE or a SELECT changes no rows and must say 0. */
    ck_status(cdm_exec(c, "CREATE TABLE u (y TEXT)", NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 0);
    n = -1;
    ck_status(cdm_exec(c, "SELECT * FROM t", NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_exec_affected_may_be_null)
{
    ck_status(cdm_exec(c, "CREATE TABLE t (x INTEGER)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?)", (const char *[]){ "7" },
                       1, NULL), CDM_OK);
    ck_scalar(c, "SELECT x FROM t", "7");
}
END_TEST

START_TEST(test_exec_script_runs_in_order)
{
    int64_t n = -1;
    cdm_result *r;

    ck_status(cdm_exec(c,
                       "CREATE TABLE s (x INTEGER);\n"
                       "INSERT INTO s VALUES (1);\n"
                       "INSERT INTO s VALUES (2), (3);\n"
                       "-- a comment between statements\n"
                       "UPDATE s SET x = x + 10 WHERE x > 1;\n",
                       NULL, 0, &n), CDM_OK);
    /* 1 + 2 inserted + 2 updated */
    ck_assert_int_eq(n, 5);
    ck_status(cdm_query(c, "SELECT x FROM s ORDER BY x", NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 3);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "1");
    ck_assert_str_eq(cdm_result_value(r, 1, 0), "12");
    ck_assert_str_eq(cdm_result_value(r, 2, 0), "13");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_exec_params_with_two_statements_refused)
{
    int64_t n = 42;

    ck_status(cdm_exec(c, "CREATE TABLE t (x TEXT)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?); DROP TABLE t",
                       (const char *[]){ "a" }, 1, &n), CDM_ERR_INVALID);
    ck_errmsg_has("Mem");
    ck_errmsg_has("statement");
    ck_assert_int_eq(n, 42); /* out-parameter untouched on failure */
    /* Neither statement ran. */
    ck_scalar(c, "SELECT count(*) FROM t", "0");
}
END_TEST

START_TEST(test_query_two_statements_refused)
{
    cdm_result *r = NULL;

    ck_status(cdm_exec(c, "CREATE TABLE t (x TEXT)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT 1; DROP TABLE t", NULL, 0, &r),
              CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_errmsg_has("Mem");
    ck_scalar(c, "SELECT count(*) FROM t", "0");
    /* A trailing semicolon, blanks and a comment are still one statement. */
    ck_status(cdm_query(c, "SELECT 1; -- done\n  ", NULL, 0, &r), CDM_OK);
    cdm_result_free(r);
}
END_TEST

START_TEST(test_query_empty_sql_refused)
{
    static const char *const empty[] = { "", "   \n\t", ";", "-- nothing\n",
                                         "/* nothing */" };
    cdm_result *r = NULL;

    for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) {
        ck_assert_msg(cdm_query(c, empty[i], NULL, 0, &r) == CDM_ERR_INVALID,
                      "query '%s' was not refused: %s", empty[i], cdm_errmsg());
        ck_assert_ptr_null(r);
        ck_errmsg_has("Mem");
    }
}
END_TEST

/* --------------------------------------------------------- parameters */

START_TEST(test_param_count_mismatch)
{
    int64_t n = -1;

    ck_status(cdm_exec(c, "CREATE TABLE t (a TEXT, b TEXT)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?, ?)",
                       (const char *[]){ "x" }, 1, &n), CDM_ERR_INVALID);
    ck_errmsg_has("Mem");
    ck_assert_msg(has_number(cdm_errmsg(), 2) && has_number(cdm_errmsg(), 1),
                  "errmsg '%s' lacks the counts 2 and 1", cdm_errmsg());

    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?, ?)",
                       (const char *[]){ "x", "y", "z" }, 3, &n),
              CDM_ERR_INVALID);
    ck_assert_msg(has_number(cdm_errmsg(), 2) && has_number(cdm_errmsg(), 3),
                  "errmsg '%s' lacks the counts 2 and 3", cdm_errmsg());
    ck_scalar(c, "SELECT count(*) FROM t", "0");
}
END_TEST

START_TEST(test_param_count_mismatch_query)
{
    cdm_result *r = NULL;

    ck_status(cdm_query(c, "SELECT ?, ?", (const char *[]){ "x" }, 1, &r),
              CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_assert_msg(has_number(cdm_errmsg(), 2) && has_number(cdm_errmsg(), 1),
                  "errmsg '%s' lacks the counts 2 and 1", cdm_errmsg());
    /* Placeholders but no parameters at all. */
    ck_status(cdm_query(c, "SELECT ?, ?", NULL, 0, &r), CDM_ERR_INVALID);
    ck_assert_msg(has_number(cdm_errmsg(), 2) && has_number(cdm_errmsg(), 0),
                  "errmsg '%s' lacks the counts 2 and 0", cdm_errmsg());
}
END_TEST

START_TEST(test_bad_arguments_refused)
{
    cdm_result *r = NULL;
    int64_t n = -1;

    ck_status(cdm_exec(c, "SELECT ?", NULL, 1, &n), CDM_ERR_INVALID);
    ck_errmsg_has("NULL");
    ck_status(cdm_query(c, "SELECT ?", NULL, 1, &r), CDM_ERR_INVALID);
    ck_errmsg_has("NULL");
    ck_status(cdm_exec(c, NULL, NULL, 0, &n), CDM_ERR_INVALID);
    ck_errmsg_has("SQL");
    ck_status(cdm_query(c, NULL, NULL, 0, &r), CDM_ERR_INVALID);
    ck_errmsg_has("SQL");
    ck_status(cdm_query(c, "SELECT 1", NULL, 0, NULL), CDM_ERR_INVALID);
    ck_errmsg_has("NULL");
    ck_status(cdm_exec(NULL, "SELECT 1", NULL, 0, &n), CDM_ERR_INVALID);
    ck_errmsg_has("NULL");
    ck_status(cdm_query(NULL, "SELECT 1", NULL, 0, &r), CDM_ERR_INVALID);
    ck_errmsg_has("NULL");
    ck_assert_ptr_null(r);
    ck_assert_int_eq(n, -1);
    /* The connection is still usable after all that. */
    ck_scalar(c, "SELECT 1", "1");
}
END_TEST

START_TEST(test_params_bound_not_pasted)
{
    const char *evil = "x'); DROP TABLE t; --";
    cdm_result *r;

    ck_status(cdm_exec(c, "CREATE TABLE t (v TEXT)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?)", (const char *[]){ evil },
                       1, NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT v FROM t WHERE v = ?",
                        (const char *[]){ evil }, 1, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), evil);
    cdm_result_free(r);
    ck_scalar(c, "SELECT count(*) FROM sqlite_master WHERE name = 't'", "1");
}
END_TEST

START_TEST(test_question_mark_in_literal_not_a_param)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT '?' , ?", (const char *[]){ "p" }, 1, &r),
              CDM_OK);
    ck_assert_uint_eq(cdm_result_ncols(r), 2);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "?");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "p");
    cdm_result_free(r);
    /* Nor inside a comment or a quoted identifier. */
    ck_status(cdm_query(c, "SELECT ? AS \"what?\" -- really?\n",
                        (const char *[]){ "q" }, 1, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_colname(r, 0), "what?");
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "q");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_null_param_is_sql_null)
{
    cdm_result *r;

    ck_status(cdm_exec(c, "CREATE TABLE t (k TEXT, v TEXT)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?, ?)",
                       (const char *[]){ "a", NULL }, 2, NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT v, typeof(v) FROM t WHERE k = 'a'", NULL, 0,
                        &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    ck_assert_ptr_null(cdm_result_value(r, 0, 0));
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "null");
    cdm_result_free(r);
    ck_scalar(c, "SELECT count(*) FROM t WHERE v IS NULL", "1");
}
END_TEST

START_TEST(test_empty_string_param_is_not_null)
{
    cdm_result *r;

    ck_status(cdm_exec(c, "CREATE TABLE t (v TEXT)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?)", (const char *[]){ "" },
                       1, NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT v FROM t", NULL, 0, &r), CDM_OK);
    ck_assert_ptr_nonnull(cdm_result_value(r, 0, 0));
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "");
    cdm_result_free(r);
    ck_scalar(c, "SELECT count(*) FROM t WHERE v IS NULL", "0");
    ck_scalar(c, "SELECT count(*) FROM t WHERE v = ''", "1");
}
END_TEST

/* ------------------------------------------------------------ results */

START_TEST(test_result_shape_and_column_names)
{
    cdm_result *r;

    ck_status(cdm_exec(c, "CREATE TABLE person (Name TEXT, age INTEGER);"
                          "INSERT INTO person VALUES ('ada', 36), ('bob', 17)",
                       NULL, 0, NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT Name, age AS Years, age + 1 FROM person "
                           "ORDER BY Name", NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 2);
    ck_assert_uint_eq(cdm_result_ncols(r), 3);
    ck_assert_str_eq(cdm_result_colname(r, 0), "Name");
    ck_assert_str_eq(cdm_result_colname(r, 1), "Years");
    ck_assert_str_eq(cdm_result_colname(r, 2), "age + 1");
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "ada");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "36");
    ck_assert_str_eq(cdm_result_value(r, 1, 0), "bob");
    ck_assert_str_eq(cdm_result_value(r, 1, 2), "18");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_result_values_as_text)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT 42, 2.5, 'text', NULL, -7", NULL, 0, &r),
              CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    ck_assert_uint_eq(cdm_result_ncols(r), 5);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "42");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "2.5");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "text");
    ck_assert_ptr_null(cdm_result_value(r, 0, 3));
    ck_assert_str_eq(cdm_result_value(r, 0, 4), "-7");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_result_many_rows)
{
    cdm_result *r;
    char want[32];

    ck_status(cdm_query(c, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                           "SELECT i + 1 FROM n WHERE i < 1000) "
                           "SELECT i, i * i, NULLIF(i % 3, 0) FROM n",
                        NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1000);
    ck_assert_uint_eq(cdm_result_ncols(r), 3);
    for (size_t i = 0; i < 1000; i++) {
        snprintf(want, sizeof want, "%zu", i + 1);
        ck_assert_str_eq(cdm_result_value(r, i, 0), want);
        snprintf(want, sizeof want, "%zu", (i + 1) * (i + 1));
        ck_assert_str_eq(cdm_result_value(r, i, 1), want);
        if ((i + 1) % 3 == 0)
            ck_assert_ptr_null(cdm_result_value(r, i, 2));
        else
            ck_assert_ptr_nonnull(cdm_result_value(r, i, 2));
    }
    ck_assert_ptr_null(cdm_result_value(r, 1000, 0));
    cdm_result_free(r);
}
END_TEST

START_TEST(test_result_out_of_range)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT 1 AS a, 2 AS b", NULL, 0, &r), CDM_OK);
    ck_assert_ptr_null(cdm_result_value(r, 1, 0));
    ck_assert_ptr_null(cdm_result_value(r, 0, 2));
    ck_assert_ptr_null(cdm_result_value(r, (size_t)-1, (size_t)-1));
    ck_assert_ptr_null(cdm_result_colname(r, 2));
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "2");
    cdm_result_free(r);
    /* And a NULL result reads as empty. */
    ck_assert_uint_eq(cdm_result_nrows(NULL), 0);
    ck_assert_uint_eq(cdm_result_ncols(NULL), 0);
    ck_assert_ptr_null(cdm_result_colname(NULL, 0));
    ck_assert_ptr_null(cdm_result_value(NULL, 0, 0));
    cdm_result_free(NULL);
}
END_TEST

START_TEST(test_result_zero_rows_keeps_columns)
{
    cdm_result *r;

    ck_status(cdm_exec(c, "CREATE TABLE t (a INTEGER, b TEXT, c REAL)", NULL, 0,
                       NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT a, b, c FROM t", NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 0);
    ck_assert_uint_eq(cdm_result_ncols(r), 3);
    ck_assert_str_eq(cdm_result_colname(r, 1), "b");
    ck_assert_ptr_null(cdm_result_value(r, 0, 0));
    cdm_result_free(r);
}
END_TEST

START_TEST(test_result_outlives_connection)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT 'still' AS here, 3", NULL, 0, &r), CDM_OK);
    cdm_disconnect(c);
    c = NULL;
    cdm_manager_free(m);
    m = NULL;
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    ck_assert_str_eq(cdm_result_colname(r, 0), "here");
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "still");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "3");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_results_are_independent)
{
    cdm_result *r1, *r2;

    ck_status(cdm_query(c, "SELECT 'one' AS a", NULL, 0, &r1), CDM_OK);
    ck_status(cdm_query(c, "SELECT 'two' AS b, 'x'", NULL, 0, &r2), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r1, 0, 0), "one");
    ck_assert_uint_eq(cdm_result_ncols(r1), 1);
    cdm_result_free(r1);
    ck_assert_str_eq(cdm_result_colname(r2, 0), "b");
    ck_assert_str_eq(cdm_result_value(r2, 0, 0), "two");
    ck_assert_str_eq(cdm_result_value(r2, 0, 1), "x");
    cdm_result_free(r2);
}
END_TEST

/* ------------------------------------------------------- transactions */

START_TEST(test_tx_commit_persists)
{
    char *dir = tu_tmpdir();
    cdm_conn *w, *rd;

    add_file_def(m, "File", dir, "tx.db", NULL);
    ck_status(cdm_connect(m, "File", &w), CDM_OK);
    ck_status(cdm_connect(m, "File", &rd), CDM_OK);
    ck_status(cdm_exec(w, "CREATE TABLE t (x INTEGER)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_begin(w), CDM_OK);
    ck_status(cdm_exec(w, "INSERT INTO t VALUES (1), (2)", NULL, 0, NULL),
              CDM_OK);
    ck_scalar(w, "SELECT count(*) FROM t", "2");
    ck_scalar(rd, "SELECT count(*) FROM t", "0"); /* not yet committed */
    ck_status(cdm_commit(w), CDM_OK);
    ck_scalar(rd, "SELECT count(*) FROM t", "2");
    cdm_disconnect(w);
    cdm_disconnect(rd);
    /* And on a fresh connection. */
    ck_status(cdm_connect(m, "File", &rd), CDM_OK);
    ck_scalar(rd, "SELECT count(*) FROM t", "2");
    cdm_disconnect(rd);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_tx_rollback_discards)
{
    ck_status(cdm_exec(c, "CREATE TABLE t (x INTEGER);"
                          "INSERT INTO t VALUES (1)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (2), (3)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_exec(c, "DELETE FROM t WHERE x = 1", NULL, 0, NULL), CDM_OK);
    ck_scalar(c, "SELECT group_concat(x) FROM t", "2,3");
    ck_status(cdm_rollback(c), CDM_OK);
    ck_scalar(c, "SELECT group_concat(x) FROM t", "1");
}
END_TEST

START_TEST(test_tx_commit_rollback_without_tx)
{
    ck_status(cdm_commit(c), CDM_ERR_STATE);
    ck_errmsg_has("no transaction");
    ck_errmsg_has("Mem");
    ck_status(cdm_rollback(c), CDM_ERR_STATE);
    ck_errmsg_has("no transaction");
    ck_errmsg_has("Mem");
    /* After a finished transaction, too. */
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_commit(c), CDM_OK);
    ck_status(cdm_commit(c), CDM_ERR_STATE);
    ck_errmsg_has("no transaction");
}
END_TEST

START_TEST(test_tx_begin_twice)
{
    ck_status(cdm_exec(c, "CREATE TABLE t (x INTEGER)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (1)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_begin(c), CDM_ERR_STATE);
    ck_errmsg_has("Mem");
    ck_errmsg_has("transaction");
    /* The first transaction is still open and intact. */
    ck_scalar(c, "SELECT count(*) FROM t", "1");
    ck_status(cdm_rollback(c), CDM_OK);
    ck_scalar(c, "SELECT count(*) FROM t", "0");
}
END_TEST

START_TEST(test_tx_begun_with_sql_is_seen)
{
    ck_status(cdm_exec(c, "CREATE TABLE t (x INTEGER)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "BEGIN", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_begin(c), CDM_ERR_STATE);
    ck_errmsg_has("Mem");
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (1)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_commit(c), CDM_OK);
    ck_status(cdm_rollback(c), CDM_ERR_STATE);
    ck_errmsg_has("no transaction");
    ck_scalar(c, "SELECT count(*) FROM t", "1");
    /* And one ended with SQL is seen as ended. */
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_exec(c, "COMMIT", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_commit(c), CDM_ERR_STATE);
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_rollback(c), CDM_OK);
}
END_TEST

START_TEST(test_tx_sql_error_keeps_tx_open)
{
    ck_status(cdm_exec(c, "CREATE TABLE t (x INTEGER PRIMARY KEY)", NULL, 0,
                       NULL), CDM_OK);
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (1)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO no_such_table VALUES (1)", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("no_such_table");
    ck_errmsg_has("Mem");
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (1)", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("UNIQUE");
    ck_status(cdm_begin(c), CDM_ERR_STATE); /* still inside */
    ck_status(cdm_rollback(c), CDM_OK);
    ck_scalar(c, "SELECT count(*) FROM t", "0");
}
END_TEST

START_TEST(test_tx_failed_commit_stays_open)
{
    char *dir = tu_tmpdir();
    cdm_conn *w, *rd;

    /* Rollback journal: a reader's open transaction keeps the writer from
     * committing; the commit fails and the transaction is still there. */
    add_file_def(m, "File", dir, "commit.db", "BusyTimeout=100");
    ck_status(cdm_connect(m, "File", &w), CDM_OK);
    ck_status(cdm_connect(m, "File", &rd), CDM_OK);
    ck_status(cdm_exec(w, "CREATE TABLE t (x INTEGER)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_begin(rd), CDM_OK);
    ck_scalar(rd, "SELECT count(*) FROM t", "0");
    ck_status(cdm_begin(w), CDM_OK);
    ck_status(cdm_exec(w, "INSERT INTO t VALUES (1)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_commit(w), CDM_ERR_QUERY);
    ck_errmsg_has("File");
    ck_assert_msg(strstr(cdm_errmsg(), "locked") || strstr(cdm_errmsg(), "busy"),
                  "errmsg '%s' says neither locked nor busy", cdm_errmsg());
    ck_status(cdm_begin(w), CDM_ERR_STATE);  /* still open */
    ck_status(cdm_commit(rd), CDM_OK);
    ck_status(cdm_commit(w), CDM_OK);        /* the retry succeeds */
    ck_scalar(rd, "SELECT count(*) FROM t", "1");
    cdm_disconnect(w);
    cdm_disconnect(rd);
    tu_rmtree(dir);
}
END_TEST

/* ----------------------------------------------------- connection info */

START_TEST(test_ping_driver_and_name)
{
    cdm_conn *c2;

    ck_status(cdm_ping(c), CDM_OK);
    ck_assert_str_eq(cdm_conn_driver(c), "SQLite");
    ck_assert_str_eq(cdm_conn_def_name(c), "Mem");

    ck_status(cdm_manager_add_def(m, "MyDb", (const char *[]){
                  "DriverID=sqlite", "Database=:memory:", NULL }), CDM_OK);
    ck_status(cdm_connect(m, "mydb", &c2), CDM_OK);
    ck_assert_str_eq(cdm_conn_def_name(c2), "MyDb");
    ck_assert_str_eq(cdm_conn_driver(c2), "SQLite");
    ck_status(cdm_ping(c2), CDM_OK);
    cdm_disconnect(c2);

    ck_assert_ptr_null(cdm_conn_driver(NULL));
    ck_assert_ptr_null(cdm_conn_def_name(NULL));
    ck_assert_ptr_null(cdm_conn_handle(NULL));
    cdm_disconnect(NULL);
}
END_TEST

START_TEST(test_handle_is_usable_sqlite3)
{
    int (*libversion)(void) = (int (*)(void))sqlite_sym("sqlite3_libversion_number");
    int (*autocommit)(void *) = (int (*)(void *))sqlite_sym("sqlite3_get_autocommit");
    void *h = cdm_conn_handle(c);
    cdm_conn *c2;

    ck_assert_ptr_nonnull(h);
    ck_assert_int_ge(libversion(), 3000000);
    ck_assert_int_eq(autocommit(h), 1);
    ck_status(cdm_begin(c), CDM_OK);
    ck_assert_int_eq(autocommit(h), 0);
    ck_status(cdm_rollback(c), CDM_OK);
    ck_assert_int_eq(autocommit(h), 1);
    ck_assert_ptr_eq(cdm_conn_handle(c), h); /* stable */

    ck_status(cdm_connect(m, "Mem", &c2), CDM_OK);
    ck_assert_ptr_nonnull(cdm_conn_handle(c2));
    ck_assert_ptr_ne(cdm_conn_handle(c2), h);
    cdm_disconnect(c2);
}
END_TEST

/* ------------------------------------------------------------- threads */

/* Two threads in one connection.  A runs a long query; a progress handler
 * installed on the sqlite3 handle tells when A's statement is really
 * running inside cdm_query, and holds A there until B has been turned
 * away once, so the overlap does not depend on timing. */
struct overlap {
    cdm_conn *conn;
    atomic_int a_inside;     /* A's statement is running */
    atomic_int b_turned_away;
    atomic_int a_done;
    int a_rc;
    char a_value[32];
    char a_msg[256];
    int b_state;             /* CDM_ERR_STATE seen by B */
    int b_state_bad_msg;     /* ... without the expected message */
    int b_ok_after;          /* CDM_OK, which must mean A had left */
    int b_other;             /* anything else */
    char b_msg[256];
};

static int hold_a_inside(void *arg)
{
    struct overlap *o = arg;

    if (!atomic_exchange(&o->a_inside, 1))
        for (int i = 0; i < 10000 && !atomic_load(&o->b_turned_away); i++)
            usleep(1000);
    return 0;
}

static void *thread_a(void *arg)
{
    struct overlap *o = arg;
    cdm_result *r = NULL;

    o->a_rc = cdm_query(o->conn,
                        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                        "SELECT x + 1 FROM c WHERE x < 2000000) "
                        "SELECT count(*) FROM c", NULL, 0, &r);
    if (o->a_rc == CDM_OK) {
        const char *v = cdm_result_value(r, 0, 0);
        snprintf(o->a_value, sizeof o->a_value, "%s", v ? v : "(null)");
        cdm_result_free(r);
    } else {
        snprintf(o->a_msg, sizeof o->a_msg, "%s", cdm_errmsg());
    }
    atomic_store(&o->a_done, 1);
    return NULL;
}

static void *thread_b(void *arg)
{
    struct overlap *o = arg;

    while (!atomic_load(&o->a_inside))
        sched_yield();
    for (unsigned i = 0; !atomic_load(&o->a_done); i++) {
        cdm_result *r = NULL;
        int rc;

        switch (i % 3) {
        case 0:
            rc = cdm_exec(o->conn, "SELECT 1", NULL, 0, NULL);
            break;
        case 1:
            rc = cdm_query(o->conn, "SELECT 2", NULL, 0, &r);
            cdm_result_free(r);
            break;
        default:
            rc = cdm_begin(o->conn);
            if (rc == CDM_OK)
                cdm_rollback(o->conn);
            break;
        }
        if (rc == CDM_ERR_STATE) {
            o->b_state++;
            if (!strstr(cdm_errmsg(), "in use by another thread")) {
                o->b_state_bad_msg++;
                snprintf(o->b_msg, sizeof o->b_msg, "%s", cdm_errmsg());
            }
            atomic_store(&o->b_turned_away, 1);
        } else if (rc == CDM_OK) {
            /* B got in, so A has left cdm_query: stop here. */
            o->b_ok_after++;
            break;
        } else {
            o->b_other++;
            snprintf(o->b_msg, sizeof o->b_msg, "%s: %s", cdm_strerror(rc),
                     cdm_errmsg());
        }
    }
    return NULL;
}

START_TEST(test_two_threads_one_connection)
{
    void (*progress)(void *, int, int (*)(void *), void *) =
        (void (*)(void *, int, int (*)(void *), void *))
        sqlite_sym("sqlite3_progress_handler");
    struct overlap o = { .conn = c };
    pthread_t ta, tb;

    progress(cdm_conn_handle(c), 1000, hold_a_inside, &o);
    ck_assert_int_eq(pthread_create(&tb, NULL, thread_b, &o), 0);
    ck_assert_int_eq(pthread_create(&ta, NULL, thread_a, &o), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    progress(cdm_conn_handle(c), 0, NULL, NULL);

    ck_assert_msg(o.a_rc == CDM_OK, "A failed: %s", o.a_msg);
    ck_assert_str_eq(o.a_value, "2000000");
    ck_assert_msg(o.b_state >= 1, "B was never turned away");
    ck_assert_msg(o.b_state_bad_msg == 0, "B's message: %s", o.b_msg);
    ck_assert_msg(o.b_other == 0, "B got %d other results, e.g. %s",
                  o.b_other, o.b_msg);
    ck_assert_int_le(o.b_ok_after, 1);

    /* The connection is unharmed. */
    ck_scalar(c, "SELECT 40 + 2", "42");
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_exec(c, "CREATE TABLE after (x)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_commit(c), CDM_OK);
    ck_status(cdm_ping(c), CDM_OK);
}
END_TEST

#define WRITERS 8
#define ROWS_EACH 50

struct writer {
    cdm_manager *mgr;
    int id;
    int rc;
    int done;
    char msg[256];
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    cdm_conn *conn;
    char id[16], seq[16];

    if ((w->rc = cdm_connect(w->mgr, "Shared", &conn)) != CDM_OK) {
        snprintf(w->msg, sizeof w->msg, "connect: %s", cdm_errmsg());
        return NULL;
    }
    snprintf(id, sizeof id, "%d", w->id);
    for (int i = 0; i < ROWS_EACH; i++) {
        const char *params[] = { id, seq };
        snprintf(seq, sizeof seq, "%d", i);
        if ((w->rc = cdm_exec(conn, "INSERT INTO t (writer, seq) VALUES (?, ?)",
                              params, 2, NULL)) != CDM_OK) {
            snprintf(w->msg, sizeof w->msg, "insert %d: %s", i, cdm_errmsg());
            break;
        }
        w->done++;
    }
    cdm_disconnect(conn);
    return NULL;
}

START_TEST(test_threads_own_connections_shared_file)
{
    char *dir = tu_tmpdir();
    struct writer w[WRITERS];
    pthread_t th[WRITERS];
    cdm_conn *conn;
    char want[32];

    add_file_def(m, "Shared", dir, "shared.db", "JournalMode=WAL");
    ck_status(cdm_connect(m, "Shared", &conn), CDM_OK);
    ck_status(cdm_exec(conn, "CREATE TABLE t (writer INTEGER, seq INTEGER, "
                             "UNIQUE (writer, seq))", NULL, 0, NULL), CDM_OK);
    ck_scalar(conn, "PRAGMA journal_mode", "wal");

    for (int i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){ .mgr = m, .id = i };
        ck_assert_int_eq(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < WRITERS; i++) {
        ck_assert_msg(w[i].rc == CDM_OK, "writer %d: %s: %s", i,
                      cdm_strerror(w[i].rc), w[i].msg);
        ck_assert_int_eq(w[i].done, ROWS_EACH);
    }
    snprintf(want, sizeof want, "%d", WRITERS * ROWS_EACH);
    ck_scalar(conn, "SELECT count(*) FROM t", want);
    snprintf(want, sizeof want, "%d", WRITERS);
    ck_scalar(conn, "SELECT count(DISTINCT writer) FROM t", want);
    cdm_disconnect(conn);
    tu_rmtree(dir);
}
END_TEST

/* The installed library can be loaded late (dlopen from Python, PHP, a
 * plug-in): its thread-local data must not need the static TLS block
 * that glibc keeps small for such libraries.  A fresh process, so that
 * the library is not loaded already. */
START_TEST(test_library_loads_with_dlopen)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        void *h = dlopen(LIBCDM_SO, RTLD_NOW | RTLD_LOCAL);
        int (*mnew)(cdm_manager **);
        void (*mfree)(cdm_manager *);
        cdm_manager *m = NULL;
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            _exit(1);
        }
        *(void **)&mnew = dlsym(h, "cdm_manager_new");
        *(void **)&mfree = dlsym(h, "cdm_manager_free");
        if (!mnew || !mfree || mnew(&m) != CDM_OK)
            _exit(2);
        mfree(m);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "dlopen of %s failed (status %d)", LIBCDM_SO, status);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("exec");
    TCase *tp = tcase_create("params");
    TCase *tr = tcase_create("results");
    TCase *tt = tcase_create("transactions");
    TCase *ti = tcase_create("info");
    TCase *th = tcase_create("threads");
    TCase *all[] = { tc, tp, tr, tt, ti, th };

    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        tcase_add_checked_fixture(all[i], setup_mem, teardown_mem);
        tcase_set_timeout(all[i], 120);
        suite_add_tcase(s, all[i]);
    }

    tcase_add_test(tc, test_exec_affected_multirow_insert);
    tcase_add_test(tc, test_exec_affected_update_counts_matches);
    tcase_add_test(tc, test_exec_affected_not_carried_over);
    tcase_add_test(tc, test_exec_affected_may_be_null);
    tcase_add_test(tc, test_exec_script_runs_in_order);
    tcase_add_test(tc, test_exec_params_with_two_statements_refused);
    tcase_add_test(tc, test_query_two_statements_refused);
    tcase_add_test(tc, test_query_empty_sql_refused);

    tcase_add_test(tp, test_param_count_mismatch);
    tcase_add_test(tp, test_param_count_mismatch_query);
    tcase_add_test(tp, test_bad_arguments_refused);
    tcase_add_test(tp, test_params_bound_not_pasted);
    tcase_add_test(tp, test_question_mark_in_literal_not_a_param);
    tcase_add_test(tp, test_null_param_is_sql_null);
    tcase_add_test(tp, test_empty_string_param_is_not_null);

    tcase_add_test(tr, test_result_shape_and_column_names);
    tcase_add_test(tr, test_result_values_as_text);
    tcase_add_test(tr, test_result_many_rows);
    tcase_add_test(tr, test_result_out_of_range);
    tcase_add_test(tr, test_result_zero_rows_keeps_columns);
    tcase_add_test(tr, test_result_outlives_connection);
    tcase_add_test(tr, test_results_are_independent);

    tcase_add_test(tt, test_tx_commit_persists);
    tcase_add_test(tt, test_tx_rollback_discards);
    tcase_add_test(tt, test_tx_commit_rollback_without_tx);
    tcase_add_test(tt, test_tx_begin_twice);
    tcase_add_test(tt, test_tx_begun_with_sql_is_seen);
    tcase_add_test(tt, test_tx_sql_error_keeps_tx_open);
    tcase_add_test(tt, test_tx_failed_commit_stays_open);

    tcase_add_test(ti, test_ping_driver_and_name);
    tcase_add_test(ti, test_library_loads_with_dlopen);
    tcase_add_test(ti, test_handle_is_usable_sqlite3);

    tcase_add_test(th, test_two_threads_one_connection);
    tcase_add_test(th, test_threads_own_connections_shared_file);
    return tu_run(s);
}
