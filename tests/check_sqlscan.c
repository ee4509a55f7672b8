/* check_sqlscan.c - the `?` scanner (src/sqlscan.c, internal): placeholders counted and numbered outside literals and comments, second statements told apart, in linear time. */
#include "testutil.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cdm_int.h"

/* ------------------------------------------------------------- helpers */

/* Scans `sql` in dialect `d` both ways and checks what each tells. */
static void scan_is(const char *sql, enum cdm_sql_dialect d, size_t nparams,
                    bool multi, const char *rewritten)
{
    char *out = NULL;
    size_t n = 12345;
    bool m = !multi;

    ck_status(cdm__sql_scan(sql, d, false, NULL, &n, &m), CDM_OK);
    ck_assert_uint_eq(n, nparams);
    ck_assert_int_eq(m, multi);
    n = 12345;
    m = !multi;
    ck_status(cdm__sql_scan(sql, d, true, &out, &n, &m), CDM_OK);
    ck_assert_uint_eq(n, nparams);
    ck_assert_int_eq(m, multi);
    ck_assert_str_eq(out, rewritten);
    free(out);
}

/* ------------------------------------------------------- placeholders */

START_TEST(test_placeholders_outside_literals)
{
    scan_is("SELECT * FROM t WHERE a = ? AND b = ?", CDM_SQL_PG, 2, false,
            "SELECT * FROM t WHERE a = $1 AND b = $2");
    scan_is("SELECT '?', \"?\", E'it\\'s ?', ? FROM t", CDM_SQL_PG, 1, false,
            "SELECT '?', \"?\", E'it\\'s ?', $1 FROM t");
    scan_is("SELECT $$ ? ; $$, $tag$ ?; $x$ $tag$, ?", CDM_SQL_PG, 1, false,
            "SELECT $$ ? ; $$, $tag$ ?; $x$ $tag$, $1");
    scan_is("SELECT 1 /* a /* nested ? */ still ? */ + ? -- ?", CDM_SQL_PG,
            1, false, "SELECT 1 /* a /* nested ? */ still ? */ + $1 -- ?");
    /* "??" is a literal '?' (jsonb's operator). */
    scan_is("SELECT j ?? 'a', ?", CDM_SQL_PG, 1, false, "SELECT j ? 'a', $1");
    /* The MySQL driver only counts them; rewriting numbers them all the
     * same. */
    scan_is("SELECT `t?`, 'x\\'?' # ?\n, ?", CDM_SQL_MYSQL, 1, false,
            "SELECT `t?`, 'x\\'?' # ?\n, $1");
    /* MySQL's "--" starts a comment only before a blank. */
    scan_is("SELECT 1 --?\n", CDM_SQL_MYSQL, 1, false, "SELECT 1 --$1\n");
}
END_TEST

/* ---------------------------------------------------------- statements */

START_TEST(test_second_statement)
{
    scan_is("SELECT 1;", CDM_SQL_PG, 0, false, "SELECT 1;");
    scan_is("SELECT ?; ;  -- done\n;/* c */ ", CDM_SQL_PG, 1, false,
            "SELECT $1; ;  -- done\n;/* c */ ");
    scan_is("SELECT 1; SELECT 2", CDM_SQL_PG, 0, true, "SELECT 1; SELECT 2");
    scan_is("SELECT 1; # c\n; SELECT 2", CDM_SQL_MYSQL, 0, true,
            "SELECT 1; # c\n; SELECT 2");
    /* A '?' right after the semicolons and comments looked over counts,
     * and so does a "??" there. */
    scan_is("SELECT 1;;/* c */?", CDM_SQL_PG, 1, true, "SELECT 1;;/* c */$1");
    scan_is("SELECT 1; -- c\n??", CDM_SQL_PG, 0, true, "SELECT 1; -- c\n?");
    scan_is("SELECT ? ;'?'; ?", CDM_SQL_PG, 2, true, "SELECT $1 ;'?'; $2");
}
END_TEST

/* A megabyte of semicolons, blanks and comments: each ';' used to look
 * over all of what follows it again (1 MB: minutes; Check's timeout
 * fails that). */
START_TEST(test_long_runs_linear)
{
    static const char *const runs[] = { ";", "; ", ";/**/", "; -- c\n" };
    const size_t len = 1u << 20;
    char *sql = malloc(len + sizeof "SELECT ?");
    size_t n;
    bool multi;

    ck_assert_ptr_nonnull(sql);
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        size_t rl = strlen(runs[k]), at = 0;
        while (at + rl <= len) {
            memcpy(sql + at, runs[k], rl);
            at += rl;
        }
        sql[at] = '\0';
        ck_status(cdm__sql_scan(sql, CDM_SQL_PG, false, NULL, &n, &multi),
                  CDM_OK);
        ck_assert_uint_eq(n, 0);
        ck_assert(!multi);
        strcpy(sql + at, "SELECT ?");
        ck_status(cdm__sql_scan(sql, CDM_SQL_MYSQL, false, NULL, &n, &multi),
                  CDM_OK);
        ck_assert_uint_eq(n, 1);
        ck_assert(multi);
    }
    free(sql);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sqlscan");
    TCase *marks = tcase_create("placeholders");
    TCase *stmts = tcase_create("statements");

    tcase_add_test(marks, test_placeholders_outside_literals);
    suite_add_tcase(s, marks);

    tcase_add_test(stmts, test_second_statement);
    tcase_add_test(stmts, test_long_runs_linear);
    suite_add_tcase(s, stmts);

    return tu_run(s);
}
