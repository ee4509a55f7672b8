/* check_lint.c - cdm_check_file (cdm check): every rule's finding with its line, level, definition and key; order, counts, status; secrets kept out. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------- helpers */

#define MAX_FINDINGS 64

struct found {
    int line, level;
    bool has_def, has_key;
    char def[256], key[128], message[1024];
};

struct findings {
    const char *path;  /* every finding must name it */
    int n;
    int unbuilt;       /* "driver PG is not built into this cdm", left out */
    struct found f[MAX_FINDINGS];
};

static void record(const cdm_finding *f, void *user)
{
    struct findings *g = user;
    struct found *o;

    ck_assert_int_lt(g->n, MAX_FINDINGS);
    ck_assert_ptr_nonnull(f->path);
    ck_assert_str_eq(f->path, g->path);
    ck_assert_ptr_nonnull(f->message);
    ck_assert_int_ge(f->line, 0);
    ck_assert(f->level == CDM_LOG_ERROR || f->level == CDM_LOG_WARN);
    /* One line, without "path:line: " in front. */
    ck_assert_ptr_null(strchr(f->message, '\n'));
    ck_assert_msg(strncmp(f->message, f->path, strlen(f->path)) != 0,
                  "message repeats the path: %s", f->message);
    /* A fact of the build, not of the file: tests pass on any build. */
    if (strstr(f->message, "is not built into this cdm")) {
        ck_assert_int_eq(f->level, CDM_LOG_WARN);
        g->unbuilt++;
        return;
    }
    o = &g->f[g->n++];
    o->line = f->line;
    o->level = f->level;
    o->has_def = f->def != NULL;
    o->has_key = f->key != NULL;
    snprintf(o->def, sizeof o->def, "%s", f->def ? f->def : "");
    snprintf(o->key, sizeof o->key, "%s", f->key ? f->key : "");
    snprintf(o->message, sizeof o->message, "%s", f->message);
}

/* Checks `path`; asserts the status, that the counts agree with the
 * findings, and that the findings come in line order. */
static void check(const char *path, int want_rc, struct findings *g)
{
    int errors = -1, warnings = -1, nerr = 0, nwarn = 0;

    memset(g, 0, sizeof *g);
    g->path = path;
    ck_status(cdm_check_file(path, record, g, &errors, &warnings), want_rc);
    for (int i = 0; i < g->n; i++) {
        if (g->f[i].level == CDM_LOG_ERROR)
            nerr++;
        else
            nwarn++;
        if (i)
            ck_assert_int_le(g->f[i - 1].line, g->f[i].line);
    }
    ck_assert_int_eq(errors, nerr);
    ck_assert_int_eq(warnings, nwarn + g->unbuilt);
    if (want_rc == CDM_OK)
        ck_assert_int_eq(nerr, 0);
    if (want_rc == CDM_ERR_INVALID)
        ck_assert_int_gt(nerr, 0);
}

/* Writes `text` into a fresh directory with `mode`, then as check().  The
 * directory is removed again; the findings stay in g (paths excepted). */
static void check_text(const char *text, mode_t mode, int want_rc,
                       struct findings *g)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", text, mode);

    check(path, want_rc, g);
    g->path = NULL;
    free(path);
    tu_rmtree(dir);
}

/* Finding i is exactly this: line, level, definition and key (NULL: none)
 * and a message containing `msg`. */
static void assert_found(const struct findings *g, int i, int line, int level,
                         const char *def, const char *key, const char *msg)
{
    const struct found *f;

    ck_assert_msg(i < g->n, "finding %d wanted, only %d", i, g->n);
    f = &g->f[i];
    ck_assert_msg(f->line == line, "finding %d (%s) at line %d, want %d", i,
                  f->message, f->line, line);
    ck_assert_msg(f->level == level, "finding %d (%s): level %d, want %d", i,
                  f->message, f->level, level);
    if (def) {
        ck_assert_msg(f->has_def, "finding %d (%s) names no definition", i,
                      f->message);
        ck_assert_str_eq(f->def, def);
    } else {
        ck_assert_msg(!f->has_def, "finding %d (%s) names definition %s", i,
                      f->message, f->def);
    }
    if (key) {
        ck_assert_msg(f->has_key, "finding %d (%s) names no key", i,
                      f->message);
        ck_assert_str_eq(f->key, key);
    } else {
        ck_assert_msg(!f->has_key, "finding %d (%s) names key %s", i,
                      f->message, f->key);
    }
    ck_assert_msg(strstr(f->message, msg), "finding %d: '%s' lacks '%s'", i,
                  f->message, msg);
}

/* No finding's message or key contains `secret`. */
static void assert_never_shown(const struct findings *g, const char *secret)
{
    for (int i = 0; i < g->n; i++) {
        ck_assert_msg(!strstr(g->f[i].message, secret),
                      "finding %d shows the secret: %s", i, g->f[i].message);
        ck_assert_ptr_null(strstr(g->f[i].key, secret));
    }
}

#define E CDM_LOG_ERROR
#define W CDM_LOG_WARN

/* A definition with nothing to say about it, to build files from. */
#define GOOD "DriverID=SQLite\nDatabase=:memory:\n"
/* One that takes a user and password (SQLite does not). */
#define GOOD_PG "DriverID=PG\nServer=db1\nDatabase=orders\n"

/* ---------------------------------------------------------- whole files */

START_TEST(test_clean_file_has_no_findings)
{
    struct findings g;

    check(tu_fixture("lint/clean.ini"), CDM_OK, &g);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

START_TEST(test_every_rule_in_line_order)
{
    struct findings g;

    unsetenv("CDM_LINT_UNSET_VARIABLE");
    check(tu_fixture("lint/everything.ini"), CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 12);
    assert_found(&g, 0, 5, E, "NoDriver", NULL, "DriverID is not set");
    assert_found(&g, 1, 11, W, "Typos", "Pooling",
                 "unknown key Pooling (did you mean Pooled?)");
    assert_found(&g, 2, 12, E, "Typos", "Pooled", "'maybe' is not a boolean");
    assert_found(&g, 3, 13, E, "Typos", "BusyTimeout",
                 "'10ms' is not a whole number");
    assert_found(&g, 4, 14, W, "Typos", "Port",
                 "Port is not used by driver SQLite");
    assert_found(&g, 5, 16, W, "Typos", "LockingMode",
                 "repeated in [Typos] (first at line 15)");
    assert_found(&g, 6, 19, E, "Elsewhere", "DriverID",
                 "DriverID MSSQL (Microsoft SQL Server) is a FireDAC driver "
                 "cdm does not support");
    assert_found(&g, 7, 23, E, "Orphan", "ConnectionDef",
                 "parent definition 'Nowhere' not found");
    assert_found(&g, 8, 26, E, "Ping", "ConnectionDef",
                 "inheritance cycle Ping -> Pong -> Ping");
    assert_found(&g, 9, 29, E, "Pong", "ConnectionDef",
                 "inheritance cycle Pong -> Ping -> Pong");
    assert_found(&g, 10, 33, W, "FromEnv", "Database",
                 "environment variable CDM_LINT_UNSET_VARIABLE is not set");
    assert_found(&g, 11, 39, E, "NeverGives", "POOL_MaximumItems",
                 "POOL_MaximumItems=0 would never give a connection");
    /* The message still says which definition (the CLI prints it alone). */
    ck_assert_ptr_nonnull(strstr(g.f[2].message, "definition 'Typos'"));
}
END_TEST

START_TEST(test_empty_file_is_clean)
{
    struct findings g;

    check_text("", 0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

START_TEST(test_bom_and_crlf_keep_line_numbers)
{
    struct findings g;

    check_text("\xEF\xBB\xBF[A]\r\nDriverID=SQLite\r\nDatabase=:memory:\r\n"
               "Pooling=True\r\n", 0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 4, W, "A", "Pooling", "did you mean Pooled?");
}
END_TEST

START_TEST(test_header_section_not_checked)
{
    struct findings g;

    check_text("[FDConnectionDefs.ini]\nEncoding=UTF8\nWhatever=1\n\n[A]\n" GOOD,
               0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

/* -------------------------------------------------- file as a whole */

START_TEST(test_missing_file_is_io_and_one_finding)
{
    struct findings g;
    char *dir = tu_tmpdir(), *path;

    ck_assert_int_ne(asprintf(&path, "%s/nothing.ini", dir), -1);
    check(path, CDM_ERR_IO, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 0, E, NULL, NULL, "No such file");
    ck_errmsg_has("nothing.ini");
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_directory_is_io)
{
    struct findings g;
    char *dir = tu_tmpdir();

    check(dir, CDM_ERR_IO, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 0, E, NULL, NULL, "not a regular file");
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_world_writable_is_error_and_content_checked)
{
    struct findings g;

    check_text("[A]\n" GOOD "Pooling=1\n", 0646, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 2);
    assert_found(&g, 0, 0, E, NULL, NULL, "world-writable");
    assert_found(&g, 1, 4, W, "A", "Pooling", "did you mean Pooled?");
}
END_TEST

START_TEST(test_readable_file_with_password_warns)
{
    struct findings g;

    check_text("[A]\n" GOOD_PG "User_Name=app\nPassword=Tr0ub4dor\n", 0644,
               CDM_OK, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 6, W, "A", "Password", "others can read (mode 0644)");
    assert_never_shown(&g, "Tr0ub4dor");
}
END_TEST

START_TEST(test_private_file_with_password_is_clean)
{
    struct findings g;

    check_text("[A]\n" GOOD_PG "Password=Tr0ub4dor\n", 0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

START_TEST(test_password_from_variable_is_clean)
{
    struct findings g;

    setenv("CDM_LINT_PW", "Tr0ub4dor", 1);
    check_text("[A]\n" GOOD_PG "Password=$(CDM_LINT_PW)\n", 0644, CDM_OK, &g);
    ck_assert_int_eq(g.n, 0);
    unsetenv("CDM_LINT_PW");
}
END_TEST

/* --------------------------------------------------------------- syntax */

START_TEST(test_syntax_error_is_the_only_finding)
{
    struct findings g;

    check_text("[A]\n" GOOD "\nthis is no key\n[B]\nPooled=maybe\n", 0600,
               CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 5, E, NULL, NULL,
                 "expected 'Key=Value', '[Name]' or a comment");
}
END_TEST

START_TEST(test_syntax_error_never_shows_the_line)
{
    struct findings g;

    /* A password that lost its key: the line itself is not quoted. */
    check_text("[A]\n" GOOD "Tr0ub4dor\n", 0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 4, E, NULL, NULL, "expected 'Key=Value'");
    assert_never_shown(&g, "Tr0ub4dor");
}
END_TEST

START_TEST(test_repeated_section_is_error)
{
    struct findings g;

    check_text("[Orders]\n" GOOD "\n[orders]\n" GOOD, 0600, CDM_ERR_INVALID,
               &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 5, E, NULL, NULL,
                 "section [orders] repeated (first at line 1)");
}
END_TEST

START_TEST(test_syntax_error_and_world_writable)
{
    struct findings g;

    check_text("[A\n", 0666, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 2);
    assert_found(&g, 0, 0, E, NULL, NULL, "world-writable");
    assert_found(&g, 1, 1, E, NULL, NULL, "without closing ']'");
}
END_TEST

/* ------------------------------------------------------ reader warnings */

START_TEST(test_repeated_key_warns)
{
    struct findings g;

    check_text("[A]\n" GOOD "Pooled=False\nPOOLED=True\n", 0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 5, W, "A", "POOLED",
                 "key POOLED repeated in [A] (first at line 4)");
}
END_TEST

START_TEST(test_value_cut_at_semicolon_warns_without_value)
{
    struct findings g;

    check_text("[A]\n" GOOD_PG "Password=abc;Tr0ub4dor\n", 0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 5, W, "A", "Password", "value of Password is cut at ';'");
    assert_never_shown(&g, "abc");
    assert_never_shown(&g, "Tr0ub4dor");
}
END_TEST

/* --------------------------------------------------------------- values */

START_TEST(test_unknown_key_suggests)
{
    struct findings g;

    check_text("[A]\n" GOOD "Pooling=True\nUser=app\nZzyzx=1\n", 0600, CDM_OK,
               &g);
    ck_assert_int_eq(g.n, 3);
    assert_found(&g, 0, 4, W, "A", "Pooling",
                 "unknown key Pooling (did you mean Pooled?)");
    assert_found(&g, 1, 5, W, "A", "User",
                 "unknown key User (did you mean User_Name?)");
    assert_found(&g, 2, 6, W, "A", "Zzyzx", "unknown key Zzyzx");
    ck_assert_ptr_null(strstr(g.f[2].message, "did you mean"));
}
END_TEST

START_TEST(test_unknown_key_never_shows_value)
{
    struct findings g;

    check_text("[A]\n" GOOD "Pasword=Tr0ub4dor\n", 0644, CDM_OK, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 4, W, "A", "Pasword", "did you mean Password?");
    assert_never_shown(&g, "Tr0ub4dor");
}
END_TEST

START_TEST(test_bad_boolean_is_error)
{
    struct findings g;

    check_text("[A]\n" GOOD "Pooled=maybe\n", 0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 4, E, "A", "Pooled", "Pooled: 'maybe' is not a boolean");
}
END_TEST

START_TEST(test_bad_numbers_are_errors)
{
    struct findings g;

    /* Pooled last: the lines stay, and the keys are not unused. */
    check_text("[A]\n" GOOD "POOL_ExpireTimeout=90s\nPOOL_MinimumItems=5000\n"
               "BusyTimeout=0x10\nPooled=True\n", 0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 3);
    assert_found(&g, 0, 4, E, "A", "POOL_ExpireTimeout",
                 "'90s' is not a whole number");
    assert_found(&g, 1, 5, E, "A", "POOL_MinimumItems",
                 "5000 is out of range (0 to 1000)");
    assert_found(&g, 2, 6, E, "A", "BusyTimeout", "is not a whole number");
}
END_TEST

START_TEST(test_bad_enumeration_is_error)
{
    struct findings g;

    check_text("[A]\n" GOOD "JournalMode=Fast\n", 0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 4, E, "A", "JournalMode", "'Fast' is not one of");
}
END_TEST

START_TEST(test_other_drivers_key_warns)
{
    struct findings g;

    check_text("[A]\n" GOOD "Port=5432\n", 0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 4, W, "A", "Port", "Port is not used by driver SQLite");
}
END_TEST

START_TEST(test_minimum_above_maximum_reported_once)
{
    struct findings g;

    /* The definition's own values and the pool's settings both say so:
     * one finding, at the key. */
    check_text("[A]\n" GOOD "Pooled=True\nPOOL_MaximumItems=2\n"
               "POOL_MinimumItems=5\n", 0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 6, E, "A", "POOL_MinimumItems",
                 "POOL_MinimumItems=5 is more than POOL_MaximumItems=2");
}
END_TEST

START_TEST(test_pool_that_never_gives_is_error)
{
    struct findings g;

    check_text("[A]\n" GOOD "Pooled=True\nPOOL_MaximumItems=0\n"
               "\n[NotPooled]\n" GOOD "POOL_MaximumItems=0\n", 0600,
               CDM_ERR_INVALID, &g);
    /* A bad value wherever it is written (issue 11: add_def and
     * set_param refuse it too), and unused where not pooled. */
    ck_assert_int_eq(g.n, 3);
    assert_found(&g, 0, 5, E, "A", "POOL_MaximumItems",
                 "POOL_MaximumItems=0 would never");
    assert_found(&g, 1, 10, E, "NotPooled", "POOL_MaximumItems",
                 "POOL_MaximumItems=0 would never");
    assert_found(&g, 2, 10, W, "NotPooled", "POOL_MaximumItems",
                 "POOL_MaximumItems has no effect: Pooled is not set");
}
END_TEST

/* ----------------------------------------------- definitions as a whole */

START_TEST(test_missing_driver_and_database)
{
    struct findings g;

    check_text("[A]\nServer=db1\n\n[B]\nDriverID=SQLite\n", 0600,
               CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 3);
    /* Same line: in the order found. */
    assert_found(&g, 0, 1, E, "A", NULL, "DriverID is not set");
    assert_found(&g, 1, 1, E, "A", NULL, "Database is not set");
    assert_found(&g, 2, 4, E, "B", NULL, "Database is not set");
}
END_TEST

START_TEST(test_empty_driver_reported_once)
{
    struct findings g;

    check_text("[A]\nDriverID=\nDatabase=x\n", 0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 2, E, "A", "DriverID", "DriverID is empty");
}
END_TEST

START_TEST(test_unknown_driver_is_error)
{
    struct findings g;

    check_text("[A]\nDriverID=Nope\nDatabase=x\n", 0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 2, E, "A", "DriverID", "unknown DriverID 'Nope'");
}
END_TEST

START_TEST(test_firedac_driver_cdm_lacks_is_error)
{
    struct findings g;

    /* Loads, but cannot connect with cdm. */
    check_text("[Sales]\nDatabase=sales\nOSAuthent=Yes\nDriverID=MSSQL\n",
               0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 4, E, "Sales", "DriverID",
                 "DriverID MSSQL (Microsoft SQL Server) is a FireDAC driver "
                 "cdm does not support (cdm has PG, MySQL and SQLite)");
}
END_TEST

START_TEST(test_driver_aliases_are_clean)
{
    struct findings g;

    check_text("[A]\nDriverID=sqlite3\nDatabase=:memory:\n", 0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

/* ----------------------------------------------------------- inheritance */

START_TEST(test_missing_parent_reported_by_its_child_only)
{
    struct findings g;

    check_text("[A]\nConnectionDef=Nowhere\n\n[B]\nParent=A\n", 0600,
               CDM_ERR_INVALID, &g);
    /* B's trouble is A's: said once, where it can be fixed. */
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 2, E, "A", "ConnectionDef",
                 "parent definition 'Nowhere' not found");
}
END_TEST

START_TEST(test_cycle_reported_by_each_member)
{
    struct findings g;

    check_text("[A]\nParent=B\n\n[B]\nParent=C\n\n[C]\nParent=A\n"
               "\n[D]\nParent=A\n", 0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 3);
    assert_found(&g, 0, 2, E, "A", "Parent", "inheritance cycle A -> B -> C -> A");
    assert_found(&g, 1, 5, E, "B", "Parent", "inheritance cycle B -> C -> A -> B");
    assert_found(&g, 2, 8, E, "C", "Parent", "inheritance cycle C -> A -> B -> C");
}
END_TEST

START_TEST(test_self_parent_is_cycle)
{
    struct findings g;

    check_text("[A]\n" GOOD "ConnectionDef=a\n", 0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 4, E, "A", "ConnectionDef", "inheritance cycle A -> A");
}
END_TEST

START_TEST(test_inherited_values_reported_by_parent_only)
{
    struct findings g;

    check_text("[Base]\nDriverID=Nope\nDatabase=x\nPooled=maybe\n\n"
               "[Child]\nConnectionDef=Base\nApplicationName=x\n", 0600,
               CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 2);
    assert_found(&g, 0, 2, E, "Base", "DriverID", "unknown DriverID 'Nope'");
    assert_found(&g, 1, 4, E, "Base", "Pooled", "'maybe' is not a boolean");
}
END_TEST

START_TEST(test_child_gets_required_keys_from_parent)
{
    struct findings g;

    check_text("[Base]\n" GOOD "\n[Child]\nParent=Base\nPooled=Yes\n", 0600,
               CDM_OK, &g);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

/* -------------------------------------------------------------- $(VAR)s */

START_TEST(test_unset_variable_is_warning)
{
    struct findings g;

    unsetenv("CDM_LINT_NO_SUCH");
    check_text("[A]\nDriverID=SQLite\nDatabase=$(CDM_LINT_NO_SUCH)\n", 0600,
               CDM_OK, &g);
    /* And Database counts as set. */
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 3, W, "A", "Database",
                 "environment variable CDM_LINT_NO_SUCH is not set");
}
END_TEST

START_TEST(test_unset_variable_in_parent_reported_once)
{
    struct findings g;

    unsetenv("CDM_LINT_NO_SUCH");
    check_text("[A]\nDriverID=SQLite\nDatabase=$(CDM_LINT_NO_SUCH)\n"
               "\n[B]\nParent=A\n", 0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 3, W, "A", "Database", "CDM_LINT_NO_SUCH is not set");
}
END_TEST

START_TEST(test_expanded_value_is_checked)
{
    struct findings g;

    setenv("CDM_LINT_POOLED", "perhaps", 1);
    check_text("[A]\n" GOOD "Pooled=$(CDM_LINT_POOLED)\n", 0600,
               CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 4, E, "A", "Pooled", "'perhaps' is not a boolean");
    setenv("CDM_LINT_POOLED", "True", 1);
    check_text("[A]\n" GOOD "Pooled=$(CDM_LINT_POOLED)\n", 0600, CDM_OK, &g);
    ck_assert_int_eq(g.n, 0);
    unsetenv("CDM_LINT_POOLED");
}
END_TEST

START_TEST(test_unset_driver_variable_checks_the_rest)
{
    struct findings g;

    unsetenv("CDM_LINT_NO_SUCH");
    check_text("[A]\nDriverID=$(CDM_LINT_NO_SUCH)\n", 0600, CDM_ERR_INVALID,
               &g);
    ck_assert_int_eq(g.n, 2);
    assert_found(&g, 0, 1, E, "A", NULL, "Database is not set");
    assert_found(&g, 1, 2, W, "A", "DriverID", "CDM_LINT_NO_SUCH is not set");
}
END_TEST

START_TEST(test_malformed_variable_is_error_without_secret)
{
    struct findings g;

    check_text("[A]\n" GOOD_PG "Password=Sup3r$(ecret\nUser_Name=$(not a name)\n",
               0600, CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 2);
    assert_found(&g, 0, 5, E, "A", "Password", "'$(' without ')'");
    assert_found(&g, 1, 6, E, "A", "User_Name", "is not a variable name");
    assert_never_shown(&g, "Sup3r");
    check_text("[A]\n" GOOD_PG "Password=Sup3r$(ec-ret)\n", 0600,
               CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 1);
    assert_found(&g, 0, 5, E, "A", "Password", "not followed by a variable name");
    assert_never_shown(&g, "Sup3r");
    assert_never_shown(&g, "ec-ret");
}
END_TEST

/* ------------------------------------------------------------- the API */

START_TEST(test_null_arguments)
{
    struct findings g;
    int errors = 77, warnings = 77;
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", "[A]\nPooled=maybe\n", 0600);

    ck_status(cdm_check_file(NULL, record, &g, &errors, &warnings),
              CDM_ERR_INVALID);
    ck_errmsg_has("path is NULL");
    ck_assert_int_eq(errors, 77);
    ck_assert_int_eq(warnings, 77);
    /* No callback: the counts and the status alone. */
    ck_status(cdm_check_file(path, NULL, NULL, &errors, &warnings),
              CDM_ERR_INVALID);
    ck_assert_int_eq(errors, 3);
    ck_assert_int_eq(warnings, 0);
    ck_errmsg_has("3 errors, 0 warnings");
    /* No counts wanted. */
    ck_status(cdm_check_file(path, NULL, NULL, NULL, NULL), CDM_ERR_INVALID);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_check_twice_same_answer)
{
    struct findings a, b;

    check(tu_fixture("lint/everything.ini"), CDM_ERR_INVALID, &a);
    check(tu_fixture("lint/everything.ini"), CDM_ERR_INVALID, &b);
    ck_assert_int_eq(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        ck_assert_int_eq(a.f[i].line, b.f[i].line);
        ck_assert_str_eq(a.f[i].message, b.f[i].message);
    }
}
END_TEST

/* ------------------------------------- FireDAC files (issue 10, fixtures) */

/* Keys of FireDAC drivers cdm lacks are theirs: only the driver is said. */
START_TEST(test_firedac_keys_of_drivers_cdm_lacks_are_silent)
{
    struct findings g;

    check(tu_fixture("firedac/stock_keys.ini"), CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 4);
    assert_found(&g, 0, 7, E, "Fb_Stock", "DriverID",
                 "DriverID FB (Firebird) is a FireDAC driver cdm does not "
                 "support (cdm has PG, MySQL and SQLite)");
    assert_found(&g, 1, 19, E, "Mssql_Stock", "DriverID",
                 "DriverID MSSQL (Microsoft SQL Server) is a FireDAC driver");
    assert_found(&g, 2, 29, E, "Odbc_Dsn", "DriverID",
                 "DriverID ODBC (ODBC data source) is a FireDAC driver");
    assert_found(&g, 3, 36, E, "Access_Stock", "DriverID",
                 "DriverID MSAcc (Microsoft Access) is a FireDAC driver");
    /* Not "unknown": FireDAC knows them. */
    for (int i = 0; i < g.n; i++)
        ck_assert_ptr_null(strstr(g.f[i].message, "unknown"));
}
END_TEST

/* Suggestions come from the definition's own driver, common mistakes
 * first. */
START_TEST(test_firedac_suggestions_follow_the_driver)
{
    struct findings g;

    check(tu_fixture("firedac/typos.ini"), CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 12);
    assert_found(&g, 0, 7, W, "Pg", "Pooling",
                 "unknown key Pooling (did you mean Pooled?)");
    assert_found(&g, 1, 8, W, "Pg", "User",
                 "unknown key User (did you mean User_Name?)");
    assert_found(&g, 2, 9, W, "Pg", "POOL_MaxItems",
                 "unknown key POOL_MaxItems (did you mean POOL_MaximumItems?)");
    assert_found(&g, 3, 9, W, "Pg", "POOL_MaxItems",
                 "POOL_MaxItems, POOL_MaxSize have no effect: Pooled is not "
                 "set, so connections are not pooled");
    assert_found(&g, 4, 10, W, "Pg", "POOL_MaxSize",
                 "unknown key POOL_MaxSize (did you mean POOL_MaximumItems?)");
    assert_found(&g, 5, 11, W, "Pg", "Timeout",
                 "unknown key Timeout (did you mean LoginTimeout?)");
    assert_found(&g, 6, 14, E, "Fb", "DriverID", "is a FireDAC driver");
    /* Firebird has no BusyTimeout, nor any other *Timeout. */
    assert_found(&g, 7, 16, W, "Fb", "Timeout", "unknown key Timeout");
    ck_assert_ptr_null(strstr(g.f[7].message, "did you mean"));
    assert_found(&g, 8, 17, W, "Fb", "Protocoll",
                 "unknown key Protocoll (did you mean Protocol?)");
    assert_found(&g, 9, 22, W, "Lite", "Timeout",
                 "unknown key Timeout (did you mean BusyTimeout?)");
    /* FireDAC keys of other drivers. */
    assert_found(&g, 10, 23, W, "Lite", "OidAsBlob",
                 "OidAsBlob is not used by driver SQLite");
    assert_found(&g, 11, 24, W, "Lite", "OSAuthent",
                 "OSAuthent is not used by driver SQLite");
}
END_TEST

START_TEST(test_pool_keys_without_pooled_warn)
{
    struct findings g;

    check(tu_fixture("firedac/unpooled.ini"), CDM_OK, &g);
    ck_assert_int_eq(g.n, 5);
    assert_found(&g, 0, 5, W, "NotSet", "POOL_MaximumItems",
                 "definition 'NotSet': POOL_MaximumItems, POOL_ExpireTimeout "
                 "have no effect: Pooled is not set, so connections are not "
                 "pooled (set Pooled=True to pool them)");
    assert_found(&g, 1, 12, W, "SetFalse", "POOL_MaximumItems",
                 "POOL_MaximumItems has no effect: Pooled=False, so "
                 "connections are not pooled");
    /* The misspelt Pooled is what this rule is for. */
    assert_found(&g, 2, 17, W, "Misspelt", "Pooling", "did you mean Pooled?");
    assert_found(&g, 3, 18, W, "Misspelt", "POOL_MaximumItems",
                 "POOL_MaximumItems has no effect: Pooled is not set");
    /* PooledChild inherits Pooled=True: silent.  PlainChild's parent is not
     * pooled either: found once its chain is resolved. */
    assert_found(&g, 4, 35, W, "PlainChild", "POOL_MaximumItems",
                 "POOL_MaximumItems has no effect: Pooled is not set");
}
END_TEST

START_TEST(test_driver_ids_cdm_lacks_say_why)
{
    struct findings g;

    check(tu_fixture("firedac/drivers.ini"), CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 3);
    /* A virtual driver from FDDrivers.ini: named after its base. */
    assert_found(&g, 0, 3, E, "Virtual", "DriverID",
                 "unknown DriverID 'MYSQL5' (cdm has PG (also PostgreSQL, "
                 "Postgres), MySQL (also MariaDB) and SQLite (also SQLite3); "
                 "FireDAC virtual drivers from FDDrivers.ini are not read: if "
                 "'MYSQL5' is one based on MySQL, write DriverID=MySQL)");
    assert_found(&g, 1, 8, E, "Invented", "DriverID",
                 "unknown DriverID 'Nope' (cdm has PG (also PostgreSQL, "
                 "Postgres), MySQL (also MariaDB) and SQLite (also SQLite3); "
                 "FireDAC virtual drivers from FDDrivers.ini are not read)");
    assert_found(&g, 2, 13, E, "SqlServer", "DriverID",
                 "DriverID MSSQL (Microsoft SQL Server) is a FireDAC driver "
                 "cdm does not support");
    /* DriverID=MYSQL is MySQL: [Upper] is clean. */
}
END_TEST

START_TEST(test_sqlite_windows_paths_are_errors)
{
    struct findings g;

    check(tu_fixture("firedac/windows_paths.ini"), CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 5);
    assert_found(&g, 0, 5, E, "Drive", "Database",
                 "definition 'Drive': Database: "
                 "'C:\\Users\\Public\\Documents\\Data\\FDDemo.sdb' is a Windows "
                 "path; SQLite here would create a new, empty database of that "
                 "name (write a POSIX path, absolute or relative to the "
                 "definition file)");
    assert_found(&g, 1, 9, E, "Unc", "Database",
                 "'\\\\fileserver\\share\\app.db' is a Windows path");
    assert_found(&g, 2, 13, E, "ForwardSlashes", "Database",
                 "'D:/data/app.db' is a Windows path");
    assert_found(&g, 3, 17, E, "Relative", "Database",
                 "'data\\app.db' is a Windows path");
    /* Posix and :memory: are clean; Access is not SQLite. */
    assert_found(&g, 4, 28, E, "Access", "DriverID", "is a FireDAC driver");
}
END_TEST

/* [FDDrivers.ini] (the driver file's header) is skipped with a word, not
 * read as a definition without DriverID; a blank SQLite Database is an
 * error where it is written, not only at connect. */
START_TEST(test_wrong_header_and_blank_sqlite_database)
{
    struct findings g;
    cdm_manager *m = NULL;
    char **names = NULL;
    size_t n = 0;

    check(tu_fixture("firedac/wrong_header.ini"), CDM_ERR_INVALID, &g);
    ck_assert_int_eq(g.n, 2);
    assert_found(&g, 0, 1, W, NULL, NULL,
                 "[FDDrivers.ini] is the header of FireDAC's driver file, "
                 "not of a definition file ([FDConnectionDefs.ini]); "
                 "skipped, with its keys");
    assert_found(&g, 1, 13, E, "Blank", "Database",
                 "definition 'Blank': Database is empty (give a file or "
                 ":memory:)");
    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_status(cdm_manager_load_file(m, tu_fixture("firedac/wrong_header.ini")),
              CDM_OK);
    ck_status(cdm_manager_def_names(m, &names, &n), CDM_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(names[0], "Lite");
    ck_assert_str_eq(names[1], "Blank");
    cdm_strv_free(names);
    cdm_manager_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lint");
    TCase *files = tcase_create("files");
    TCase *whole = tcase_create("file as a whole");
    TCase *syntax = tcase_create("syntax");
    TCase *reader = tcase_create("reader warnings");
    TCase *values = tcase_create("values");
    TCase *defs = tcase_create("definitions");
    TCase *inherit = tcase_create("inheritance");
    TCase *vars = tcase_create("variables");
    TCase *api = tcase_create("api");
    TCase *firedac = tcase_create("FireDAC files");

    tcase_add_test(files, test_clean_file_has_no_findings);
    tcase_add_test(files, test_every_rule_in_line_order);
    tcase_add_test(files, test_empty_file_is_clean);
    tcase_add_test(files, test_bom_and_crlf_keep_line_numbers);
    tcase_add_test(files, test_header_section_not_checked);
    suite_add_tcase(s, files);

    tcase_add_test(whole, test_missing_file_is_io_and_one_finding);
    tcase_add_test(whole, test_directory_is_io);
    tcase_add_test(whole, test_world_writable_is_error_and_content_checked);
    tcase_add_test(whole, test_readable_file_with_password_warns);
    tcase_add_test(whole, test_private_file_with_password_is_clean);
    tcase_add_test(whole, test_password_from_variable_is_clean);
    suite_add_tcase(s, whole);

    tcase_add_test(syntax, test_syntax_error_is_the_only_finding);
    tcase_add_test(syntax, test_syntax_error_never_shows_the_line);
    tcase_add_test(syntax, test_repeated_section_is_error);
    tcase_add_test(syntax, test_syntax_error_and_world_writable);
    suite_add_tcase(s, syntax);

    tcase_add_test(reader, test_repeated_key_warns);
    tcase_add_test(reader, test_value_cut_at_semicolon_warns_without_value);
    suite_add_tcase(s, reader);

    tcase_add_test(values, test_unknown_key_suggests);
    tcase_add_test(values, test_unknown_key_never_shows_value);
    tcase_add_test(values, test_bad_boolean_is_error);
    tcase_add_test(values, test_bad_numbers_are_errors);
    tcase_add_test(values, test_bad_enumeration_is_error);
    tcase_add_test(values, test_other_drivers_key_warns);
    tcase_add_test(values, test_minimum_above_maximum_reported_once);
    tcase_add_test(values, test_pool_that_never_gives_is_error);
    suite_add_tcase(s, values);

    tcase_add_test(defs, test_missing_driver_and_database);
    tcase_add_test(defs, test_empty_driver_reported_once);
    tcase_add_test(defs, test_unknown_driver_is_error);
    tcase_add_test(defs, test_firedac_driver_cdm_lacks_is_error);
    tcase_add_test(defs, test_driver_aliases_are_clean);
    suite_add_tcase(s, defs);

    tcase_add_test(inherit, test_missing_parent_reported_by_its_child_only);
    tcase_add_test(inherit, test_cycle_reported_by_each_member);
    tcase_add_test(inherit, test_self_parent_is_cycle);
    tcase_add_test(inherit, test_inherited_values_reported_by_parent_only);
    tcase_add_test(inherit, test_child_gets_required_keys_from_parent);
    suite_add_tcase(s, inherit);

    tcase_add_test(vars, test_unset_variable_is_warning);
    tcase_add_test(vars, test_unset_variable_in_parent_reported_once);
    tcase_add_test(vars, test_expanded_value_is_checked);
    tcase_add_test(vars, test_unset_driver_variable_checks_the_rest);
    tcase_add_test(vars, test_malformed_variable_is_error_without_secret);
    suite_add_tcase(s, vars);

    tcase_add_test(api, test_null_arguments);
    tcase_add_test(api, test_check_twice_same_answer);
    suite_add_tcase(s, api);

    tcase_add_test(firedac, test_firedac_keys_of_drivers_cdm_lacks_are_silent);
    tcase_add_test(firedac, test_firedac_suggestions_follow_the_driver);
    tcase_add_test(firedac, test_pool_keys_without_pooled_warn);
    tcase_add_test(firedac, test_driver_ids_cdm_lacks_say_why);
    tcase_add_test(firedac, test_sqlite_windows_paths_are_errors);
    tcase_add_test(firedac, test_wrong_header_and_blank_sqlite_database);
    suite_add_tcase(s, firedac);

    return tu_run(s);
}
