/* check_ini.c - reading definition files: syntax accepted and refused, errors with file:line, warnings, permissions, threads. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#if HAVE_INIPARSER
#if defined(HAVE_INIPARSER_INIPARSER_H)
#include <iniparser/iniparser.h>
#else
#include <iniparser.h>
#endif
#endif

/* A NULL-terminated list of strings, for the helpers below. */
#define LIST(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

/* ------------------------------------------------------------- helpers */

static cdm_manager *new_manager(void)
{
    cdm_manager *m = NULL;

    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_assert_ptr_nonnull(m);
    return m;
}

static size_t def_count(cdm_manager *m)
{
    char **names = NULL;
    size_t n = 12345;

    ck_status(cdm_manager_def_names(m, &names, &n), CDM_OK);
    cdm_strv_free(names);
    return n;
}

/* The manager holds exactly the names `want`, as written and in order. */
static void assert_names(cdm_manager *m, const char *const *want)
{
    char **names = NULL;
    size_t n = 12345, nwant = 0;

    while (want[nwant])
        nwant++;
    ck_status(cdm_manager_def_names(m, &names, &n), CDM_OK);
    ck_assert_uint_eq(n, nwant);
    for (size_t i = 0; i < nwant; i++)
        ck_assert_str_eq(names[i], want[i]);
    ck_assert_ptr_null(names[n]);
    cdm_strv_free(names);
}

static void assert_param(cdm_manager *m, const char *name, const char *key,
                         const char *want)
{
    char *value = NULL;

    ck_status(cdm_manager_get_param(m, name, key, &value), CDM_OK);
    ck_assert_ptr_nonnull(value);
    ck_assert_str_eq(value, want);
    cdm_free(value);
}

static void load_ok(cdm_manager *m, const char *fixture)
{
    ck_status(cdm_manager_load_file(m, tu_fixture(fixture)), CDM_OK);
}

/* True if one recorded message contains both `a` and `b`. */
static bool log_line_has(struct tu_log *log, const char *a, const char *b)
{
    bool found = false;

    pthread_mutex_lock(&log->lock);
    for (int i = 0; i < log->n && !found; i++)
        found = strstr(log->lines[i], a) && strstr(log->lines[i], b);
    pthread_mutex_unlock(&log->lock);
    return found;
}

/*
 * Loads good/ini_order_1.ini (One_A, One_B) and then `path`, which must
 * fail with `want`.  cdm_errmsg() must hold every string in `needles` and
 * none in `forbidden`.  Afterwards the manager must be as it was: the same
 * two names, none of `absent`.
 */
static void assert_load_fails(const char *path, int want,
                              const char *const *needles,
                              const char *const *forbidden,
                              const char *const *absent)
{
    char *p = strdup(path);   /* tu_fixture's buffer is reused below */
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_order_1.ini");
    ck_status(cdm_manager_load_file(m, p), want);
    for (size_t i = 0; needles[i]; i++)
        ck_errmsg_has(needles[i]);
    for (size_t i = 0; forbidden[i]; i++)
        ck_assert_msg(!strstr(cdm_errmsg(), forbidden[i]),
                      "errmsg '%s' should not contain '%s'", cdm_errmsg(),
                      forbidden[i]);
    assert_names(m, LIST("One_A", "One_B"));
    for (size_t i = 0; absent[i]; i++)
        ck_assert_msg(!cdm_manager_has_def(m, absent[i]),
                      "'%s' was loaded from a failing file", absent[i]);
    ck_assert(cdm_manager_has_def(m, "One_A"));
    cdm_manager_free(m);
    free(p);
}

/* ------------------------------------------------------ good files */

START_TEST(test_names_as_written_in_file_order)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_basic.ini");
    assert_names(m, LIST("Zeta_Main", "alpha", "Demo"));
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_names_case_insensitive)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_basic.ini");
    ck_assert(cdm_manager_has_def(m, "DEMO"));
    ck_assert(cdm_manager_has_def(m, "demo"));
    ck_assert(cdm_manager_has_def(m, "ALPHA"));
    ck_assert(cdm_manager_has_def(m, "zeta_main"));
    ck_assert(!cdm_manager_has_def(m, "Dem"));
    ck_assert(!cdm_manager_has_def(m, "Demo "));
    assert_param(m, "ZETA_MAIN", "DriverID", "SQLite");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_keys_case_insensitive)
{
    cdm_manager *m = new_manager();
    char untouched[] = "untouched", *value = untouched;

    load_ok(m, "good/ini_basic.ini");
    assert_param(m, "Demo", "database", "demo.sqlite3");
    assert_param(m, "Demo", "DATABASE", "demo.sqlite3");
    assert_param(m, "demo", "driverid", "SQLite");
    /* A key set nowhere is not found, and the out-parameter is untouched. */
    ck_status(cdm_manager_get_param(m, "Demo", "Server", &value),
              CDM_ERR_NOT_FOUND);
    ck_assert_str_eq(value, "untouched");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_header_section_is_not_a_definition)
{
    cdm_manager *m = new_manager();
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "ini_header.ini",
                          "[FDConnectionDefs.ini]\n"
                          "Encoding=UTF8\n"
                          "[Real]\n"
                          "DriverID=SQLite\n"
                          "Database=:memory:\n", 0600);

    /* Any case: good/ini_syntax.ini spells it [fdconnectiondefs.INI]. */
    load_ok(m, "good/ini_syntax.ini");
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    assert_names(m, LIST("Syntax", "Real"));
    ck_assert(!cdm_manager_has_def(m, "FDConnectionDefs.ini"));
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_comments_blank_lines_and_inline_comments)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_syntax.ini");
    assert_names(m, LIST("Syntax"));
    /* Blanks around '=' and before the key do not matter. */
    assert_param(m, "Syntax", "DriverID", "SQLite");
    assert_param(m, "Syntax", "Database", ":memory:");
    /* `Port = 5432 ; comment` and a tab before '#'. */
    assert_param(m, "Syntax", "Port", "5432");
    assert_param(m, "Syntax", "Server", "db.example.org");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_quoted_values_kept_verbatim)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_syntax.ini");
    assert_param(m, "Syntax", "Password", "a;b#c");
    assert_param(m, "Syntax", "User_Name", "  padded  ");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_empty_values)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_syntax.ini");
    /* `Key=` and `Key=""` are set, to the empty string. */
    assert_param(m, "Syntax", "ApplicationName", "");
    assert_param(m, "Syntax", "CharacterSet", "");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_crlf_line_endings)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_crlf.ini");
    assert_names(m, LIST("Crlf_Def", "Crlf_Two"));
    assert_param(m, "Crlf_Def", "Database", ":memory:");
    assert_param(m, "Crlf_Def", "ApplicationName", "quoted value");
    assert_param(m, "Crlf_Two", "DriverID", "SQLite");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_utf8_bom_accepted)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_bom.ini");
    /* The BOM is not part of the first name. */
    assert_names(m, LIST("Bom_Def"));
    assert_param(m, "Bom_Def", "Database", ":memory:");
    cdm_manager_free(m);
}
END_TEST

/* Some tools add a byte order mark to a file that has one (seen in a real
 * FDConnectionDefs.ini): read, with a warning. */
START_TEST(test_repeated_utf8_bom_warned)
{
    cdm_manager *m = new_manager();
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "two_boms.ini", "\xEF\xBB\xBF\xEF\xBB\xBF"
                          "[FDConnectionDefs.ini]\nEncoding=UTF8\n\n"
                          "[Two]\nDriverID=SQLite\nDatabase=:memory:\n", 0600);
    struct tu_log log;

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    assert_names(m, LIST("Two"));
    assert_param(m, "Two", "Database", ":memory:");
    ck_assert_int_eq(tu_log_count(&log, "two_boms.ini:1: 2 UTF-8 byte order marks"), 1);
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_only_comments_and_empty_file)
{
    cdm_manager *m = new_manager();
    char *dir = tu_tmpdir();
    char *empty = tu_write(dir, "ini_empty.ini", "", 0600);

    load_ok(m, "good/ini_only_comments.ini");
    ck_assert_uint_eq(def_count(m), 0);
    ck_assert(!cdm_manager_has_def(m, "Commented_Out"));
    ck_status(cdm_manager_load_file(m, empty), CDM_OK);
    ck_assert_uint_eq(def_count(m), 0);
    /* Files without definitions do not stop later ones. */
    load_ok(m, "good/ini_order_1.ini");
    assert_names(m, LIST("One_A", "One_B"));
    cdm_manager_free(m);
    free(empty);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_two_files_keep_load_order)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_order_2.ini");
    load_ok(m, "good/ini_order_1.ini");
    assert_names(m, LIST("Two_A", "Two_B", "One_A", "One_B"));
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_long_line_within_limit)
{
    cdm_manager *m = new_manager();
    char *dir = tu_tmpdir(), *path;
    char value[1001], content[1200];

    /* A 1009-character line is well inside iniparser's limit. */
    memset(value, 'v', 1000);
    value[1000] = '\0';
    snprintf(content, sizeof content,
             "[Long_Ok]\nDriverID=SQLite\nDatabase=%s\n", value);
    path = tu_write(dir, "ini_long_ok.ini", content, 0600);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    assert_param(m, "Long_Ok", "Database", value);
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_clean_file_logs_nothing)
{
    cdm_manager *m = new_manager();
    struct tu_log log;

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    load_ok(m, "good/ini_basic.ini");
    ck_assert_msg(log.n == 0, "unexpected log: %s", log.lines[0]);
    cdm_manager_free(m);
}
END_TEST

/* ------------------------------------------------------- bad files */

START_TEST(test_section_repeated)
{
    assert_load_fails(tu_fixture("bad/ini_dup_section.ini"), CDM_ERR_PARSE,
                      LIST("ini_dup_section.ini:5", "Dup_Demo",
                           "repeated (first at line 2)"),
                      NONE, LIST("Dup_Demo"));
}
END_TEST

START_TEST(test_section_repeated_other_case)
{
    assert_load_fails(tu_fixture("bad/ini_dup_section_case.ini"),
                      CDM_ERR_PARSE,
                      LIST("ini_dup_section_case.ini:10", "DUP_ORDERS",
                           "repeated (first at line 6)"),
                      NONE, LIST("Dup_Other", "Dup_Orders"));
}
END_TEST

START_TEST(test_nul_byte_in_line)
{
    static const char content[] =
        "[Nul_Def]\nDriverID=SQLite\nDatabase=:mem\0ory:\nBusyTimeout=5\n";
    char *dir = tu_tmpdir();
    char *path = tu_write_bytes(dir, "ini_nul.ini", content,
                                sizeof content - 1, 0600);

    assert_load_fails(path, CDM_ERR_PARSE, LIST("ini_nul.ini:3", "NUL"),
                      NONE, LIST("Nul_Def"));
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_key_before_any_section)
{
    assert_load_fails(tu_fixture("bad/ini_key_before_section.ini"),
                      CDM_ERR_PARSE,
                      LIST("ini_key_before_section.ini:2", "DriverID"),
                      NONE, LIST("Orphan_After"));
}
END_TEST

START_TEST(test_section_without_closing_bracket)
{
    assert_load_fails(tu_fixture("bad/ini_unclosed_section.ini"),
                      CDM_ERR_PARSE, LIST("ini_unclosed_section.ini:6", "']'"),
                      NONE, LIST("Before_Unclosed", "Unclosed", "[Unclosed"));
}
END_TEST

START_TEST(test_empty_section_name)
{
    assert_load_fails(tu_fixture("bad/ini_empty_section.ini"),
                      CDM_ERR_PARSE, LIST("ini_empty_section.ini:5", "empty"),
                      NONE, LIST("Before_Empty"));
}
END_TEST

START_TEST(test_line_without_equals)
{
    assert_load_fails(tu_fixture("bad/ini_garbage.ini"), CDM_ERR_PARSE,
                      LIST("ini_garbage.ini:4"), NONE,
                      LIST("Before_Garbage"));
}
END_TEST

START_TEST(test_line_without_equals_hides_secret)
{
    /* "No message ever contains a password": a password line that lost
     * its '=' must not be echoed. */
    assert_load_fails(tu_fixture("bad/ini_secret_no_equals.ini"),
                      CDM_ERR_PARSE, LIST("ini_secret_no_equals.ini:5"),
                      LIST("Hunter2Secret"), LIST("Before_Secret"));
}
END_TEST

START_TEST(test_value_without_key)
{
    assert_load_fails(tu_fixture("bad/ini_no_key.ini"), CDM_ERR_PARSE,
                      LIST("ini_no_key.ini:4", "key"), NONE,
                      LIST("Before_No_Key"));
}
END_TEST

START_TEST(test_unterminated_quote)
{
    assert_load_fails(tu_fixture("bad/ini_unterminated_quote.ini"),
                      CDM_ERR_PARSE,
                      LIST("ini_unterminated_quote.ini:5", "Password"),
                      LIST("Unclosed5ecret"), LIST("Before_Quote"));
}
END_TEST

START_TEST(test_text_after_closing_quote)
{
    assert_load_fails(tu_fixture("bad/ini_text_after_quote.ini"),
                      CDM_ERR_PARSE,
                      LIST("ini_text_after_quote.ini:6", "Password"),
                      LIST("Quoted5ecret", "TrailingJunk"),
                      LIST("Before_After_Quote"));
}
END_TEST

START_TEST(test_line_too_long)
{
    char *dir = tu_tmpdir(), *path;
    char content[1300];
    int n;

    /* Line 3 holds 1109 characters, past iniparser's limit; iniparser
     * finds this one, through a memory file. */
    n = snprintf(content, sizeof content,
                 "[Long_Def]\nDriverID=SQLite\nPassword=");
    memset(content + n, 'x', 1100);
    strcpy(content + n + 1100, "\nDatabase=:memory:\n");
    path = tu_write(dir, "ini_long.ini", content, 0600);
    assert_load_fails(path, CDM_ERR_PARSE, LIST("ini_long.ini:3: "),
                      LIST("/proc/self", "xxxxxxxx"), LIST("Long_Def"));
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_colon_in_key_or_name)
{
    char *dir = tu_tmpdir(), *path;

    /* iniparser stores "name:key": [x] a:b=1 and [x:a] b=2 would collide. */
    path = tu_write(dir, "ini_colon_key.ini",
                    "[Colon_Key]\nDriverID=SQLite\na:b=1\n", 0600);
    assert_load_fails(path, CDM_ERR_PARSE,
                      LIST("ini_colon_key.ini:3: ", "a:b"), LIST(NULL),
                      LIST("Colon_Key"));
    free(path);
    path = tu_write(dir, "ini_colon_name.ini",
                    "[Ok_Def]\nDriverID=SQLite\n[x:a]\nb=2\n", 0600);
    assert_load_fails(path, CDM_ERR_PARSE, LIST("ini_colon_name.ini:3: "),
                      LIST(NULL), LIST("Ok_Def"));
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_backslash_on_last_line)
{
    char *dir = tu_tmpdir(), *path;

    /* iniparser would drop the line silently: refuse the file instead. */
    path = tu_write(dir, "ini_last_backslash.ini",
                    "[Last_Def]\nDriverID=SQLite\nDatabase=C:\\data\\\n", 0600);
    assert_load_fails(path, CDM_ERR_PARSE,
                      LIST("ini_last_backslash.ini:3: ", "file ends"),
                      LIST(NULL), LIST("Last_Def"));
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_value_backslash_joins_next_line_warns)
{
    char *dir = tu_tmpdir(), *path;
    cdm_manager *m = new_manager();
    struct tu_log log;

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    path = tu_write(dir, "ini_value_backslash.ini",
                    "[Join_Def]\nDatabase=C:\\data\\\nDriverID=SQLite\n", 0600);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "ini_value_backslash.ini:2: "), 1);
    ck_assert_int_eq(tu_log_count(&log, "line 3 is joined"), 1);
    free(path);
    cdm_manager_free(m);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_line_length_limit_exact)
{
    char *dir = tu_tmpdir(), *path, content[2200];
    cdm_manager *m = new_manager();
    int n;

    /* 1022 characters load; 1023 do not (iniparser's 1024-byte buffer). */
    n = snprintf(content, sizeof content, "[Edge_Def]\nDriverID=SQLite\nX=");
    memset(content + n, 'y', 1020);
    strcpy(content + n + 1020, "\n");
    path = tu_write(dir, "ini_edge_ok.ini", content, 0600);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    free(path);
    content[n + 1020] = 'y';
    strcpy(content + n + 1021, "\n");
    path = tu_write(dir, "ini_edge_bad.ini", content, 0600);
    assert_load_fails(path, CDM_ERR_PARSE, LIST("ini_edge_bad.ini:3: ", "1022"),
                      LIST("yyyy"), LIST("Edge_Def"));
    free(path);
    cdm_manager_free(m);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_missing_file)
{
    char *dir = tu_tmpdir(), path[4200];

    snprintf(path, sizeof path, "%s/ini_missing.ini", dir);
    assert_load_fails(path, CDM_ERR_IO, LIST(path, strerror(ENOENT)), NONE,
                      NONE);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_directory_path)
{
    char *dir = tu_tmpdir();

    assert_load_fails(dir, CDM_ERR_IO, LIST(dir), NONE, NONE);
    tu_rmtree(dir);
}
END_TEST

/* ---------------------------------------------------- any bytes, any size */

/* The thread's message is one printable line: no byte below 0x20, no DEL,
 * valid UTF-8 (a terminal escape in a file never reaches a log raw). */
static void assert_errmsg_printable(void)
{
    const unsigned char *p = (const unsigned char *)cdm_errmsg();

    for (; *p; p++)
        ck_assert_msg(*p >= 0x20 && *p != 0x7f,
                      "byte 0x%02x in message '%s'", *p, cdm_errmsg());
    ck_assert_msg(tu_utf8_valid(cdm_errmsg()), "invalid UTF-8 in '%s'",
                  cdm_errmsg());
}

/* A definition file that serves one definition, Live, loaded into m. */
static char *write_live(const char *dir, const char *name)
{
    return tu_write(dir, name, "[Live]\nDriverID=SQLite\nDatabase=:memory:\n",
                    0600);
}

/* m still serves Live, as loaded from the file before. */
static void assert_live_serves(cdm_manager *m)
{
    cdm_conn *c = NULL;

    assert_names(m, LIST("Live"));
    ck_status(cdm_connect(m, "Live", &c), CDM_OK);
    ck_status(cdm_exec(c, "SELECT 1", NULL, 0, NULL), CDM_OK);
    cdm_disconnect(c);
}

START_TEST(test_fifo_refused_without_waiting)
{
    char *dir = tu_tmpdir(), *path = write_live(dir, "live.ini"), fifo[4200];
    cdm_manager *m = new_manager();

    /* Nobody ever opens the FIFO for writing: a loader that opened it
     * before looking would wait for ever (the test's timeout). */
    snprintf(fifo, sizeof fifo, "%s/fifo.ini", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    assert_load_fails(fifo, CDM_ERR_IO, LIST(fifo, "not a regular file",
                                             "FIFO"), NONE, NONE);
    /* The same under a reload: the file replaced by a FIFO. */
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_assert_int_eq(rename(fifo, path), 0);
    ck_status(cdm_manager_reload(m), CDM_ERR_IO);
    ck_errmsg_has("FIFO");
    assert_live_serves(m);
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_device_refused)
{
    assert_load_fails("/dev/zero", CDM_ERR_IO,
                      LIST("/dev/zero", "character device"), NONE, NONE);
    assert_load_fails("/dev/null", CDM_ERR_IO,
                      LIST("/dev/null", "character device"), NONE, NONE);
}
END_TEST

START_TEST(test_symlink_loop_refused)
{
    char *dir = tu_tmpdir(), a[4200], b[4200];

    snprintf(a, sizeof a, "%s/a.ini", dir);
    snprintf(b, sizeof b, "%s/b.ini", dir);
    ck_assert_int_eq(symlink(b, a), 0);
    ck_assert_int_eq(symlink(a, b), 0);
    assert_load_fails(a, CDM_ERR_IO, LIST(a, strerror(ELOOP)), NONE, NONE);
    tu_rmtree(dir);
}
END_TEST

/* 50 MB, over the 16 MiB cap: refused from its size, before any read
 * (the file is sparse, so this costs no disk). */
START_TEST(test_file_over_size_cap_refused)
{
    char *dir = tu_tmpdir(), *path = write_live(dir, "big.ini");
    cdm_manager *m = new_manager();

    ck_assert_int_eq(truncate(path, 50000000), 0);
    assert_load_fails(path, CDM_ERR_IO, LIST(path, "50000000 bytes",
                                             "at most 16 MiB"), NONE, NONE);
    /* A reload of a file that grew past the cap keeps what it had. */
    ck_assert_int_eq(truncate(path, 0), 0);
    free(path);
    path = write_live(dir, "big.ini");
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_assert_int_eq(truncate(path, 50000000), 0);
    ck_status(cdm_manager_reload(m), CDM_ERR_IO);
    ck_errmsg_has("at most 16 MiB");
    assert_live_serves(m);
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* The file goes between two reloads (an editor's delete-and-write, a
 * deploy): the reload fails naming it, and the definitions keep serving. */
START_TEST(test_vanished_file_on_reload)
{
    char *dir = tu_tmpdir(), *path = write_live(dir, "live.ini");
    cdm_manager *m = new_manager();

    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_assert_int_eq(unlink(path), 0);
    ck_status(cdm_manager_reload(m), CDM_ERR_IO);
    ck_errmsg_has(path);
    ck_errmsg_has(strerror(ENOENT));
    assert_live_serves(m);
    /* Back again: the next reload reads it. */
    free(path);
    path = tu_write(dir, "live.ini", "[Live]\nDriverID=SQLite\n"
                    "Database=:memory:\nBusyTimeout=5\n", 0600);
    ck_status(cdm_manager_reload(m), CDM_OK);
    assert_param(m, "Live", "BusyTimeout", "5");
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* Section and key names from a file with control characters or invalid
 * UTF-8 are refused, by line, and the bytes are not quoted back. */
START_TEST(test_unprintable_names_refused)
{
    static const struct {
        const char *text, *what;
    } cases[] = {
        { "[Live]\nDriverID=SQLite\n[A\x1b[31mB]\nDriverID=SQLite\n",
          "section name has a control character" },
        { "[Live]\nDriverID=SQLite\n[caf\xe9]\nDriverID=SQLite\n",
          "section name has invalid UTF-8" },
        { "[Live]\nDriverID=SQLite\n[\xc0\xaf]\nDriverID=SQLite\n",
          "section name has invalid UTF-8" },  /* overlong '/' */
        { "[Live]\nDriverID=SQLite\n[A\x7f]\nDriverID=SQLite\n",
          "section name has a control character" },
        { "[Live]\nDriverID=SQLite\nPass\x1b]0;pwned\x07word=x\n",
          "key name has a control character" },
        { "[Live]\nDriverID=SQLite\nK\xff=x\n", "key name has invalid UTF-8" },
    };
    char *dir = tu_tmpdir();

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *path = tu_write(dir, "names.ini", cases[i].text, 0600), at[4300];
        snprintf(at, sizeof at, "%s:3:", path);
        assert_load_fails(path, CDM_ERR_PARSE, LIST(at, cases[i].what),
                          LIST("pwned", "caf", "31m"), LIST("Live"));
        assert_errmsg_printable();
        free(path);
    }
    /* Printable UTF-8 is fine. */
    {
        char *path = tu_write(dir, "names.ini", "[Caf\xc3\xa9_\xe2\x82\xac]\n"
                              "DriverID=SQLite\nDatabase=:memory:\n", 0600);
        cdm_manager *m = new_manager();
        ck_status(cdm_manager_load_file(m, path), CDM_OK);
        assert_names(m, LIST("Caf\xc3\xa9_\xe2\x82\xac"));
        cdm_manager_free(m);
        free(path);
    }
    tu_rmtree(dir);
}
END_TEST

/* iniparser looks keys up as "section:key" in 1,024 bytes and cut longer
 * ones, so two long keys read the same value.  cdm reads each its own, or
 * refuses the name. */
START_TEST(test_long_names_read_right_or_refused)
{
    char *dir = tu_tmpdir(), name[300], key[800], text[4096], *path;
    cdm_manager *m = new_manager();
    char *v = NULL;

    memset(name, 'N', 250);
    name[250] = '\0';
    memset(key, 'k', 760);
    key[760] = '\0';
    snprintf(text, sizeof text, "[%s]\nDriverID=SQLite\nDatabase=:memory:\n"
             "%s1=first\n%s2=second\n", name, key, key);
    path = tu_write(dir, "long.ini", text, 0600);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    /* The API's keys are at most 64 characters: these are read, but only
     * cdm check and the warnings see them. */
    ck_status(cdm_manager_get_param(m, name, "Database", &v), CDM_OK);
    ck_assert_str_eq(v, ":memory:");
    cdm_free(v);
    cdm_manager_free(m);
    free(path);

    /* A name longer than a definition name may be. */
    memset(name, 'N', 256);
    name[256] = '\0';
    snprintf(text, sizeof text, "[%s]\nDriverID=SQLite\n", name);
    path = tu_write(dir, "long.ini", text, 0600);
    assert_load_fails(path, CDM_ERR_PARSE,
                      LIST("long.ini:1:", "longer than 255"), LIST("NNNN"),
                      NONE);
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* Random bytes and mangled good files: a clean error or a load, never a
 * crash (the sanitizer builds run this too), and always a printable
 * message.  Fixed seeds: the same files every run. */
START_TEST(test_garbage_never_crashes)
{
    static const char good[] =
        "\xef\xbb\xbf[FDConnectionDefs.ini]\nEncoding=UTF8\n\n[A]\n"
        "DriverID=SQLite\nDatabase=\"a b.db\" ; c\nPooled=True\n"
        "POOL_MaximumItems=4\n[B]\nConnectionDef=A\nUser_Name=u\\\n x\n";
    char *dir = tu_tmpdir(), buf[2048];
    unsigned seed = 12345;

    for (int round = 0; round < 400; round++) {
        size_t n;
        char *path;
        cdm_manager *m = new_manager();
        int rc;
        if (round < 200) {
            n = (size_t)(rand_r(&seed) % sizeof buf);
            for (size_t i = 0; i < n; i++)
                buf[i] = (char)rand_r(&seed);
        } else {
            n = sizeof good - 1;
            memcpy(buf, good, n);
            for (int k = 0; k < 1 + round % 4; k++)
                buf[rand_r(&seed) % n] = (char)rand_r(&seed);
        }
        path = tu_write_bytes(dir, "g.ini", buf, n, 0600);
        rc = cdm_manager_load_file(m, path);
        ck_assert_msg(rc == CDM_OK || rc == CDM_ERR_PARSE ||
                      rc == CDM_ERR_INVALID || rc == CDM_ERR_EXISTS,
                      "round %d: status %d: %s", round, rc, cdm_errmsg());
        if (rc != CDM_OK) {
            ck_assert_msg(strstr(cdm_errmsg(), path), "round %d: '%s'",
                          round, cdm_errmsg());
            assert_errmsg_printable();
            ck_assert_uint_eq(def_count(m), 0);
        }
        cdm_manager_free(m);
        free(path);
    }
    tu_rmtree(dir);
}
END_TEST

/* ----------------------------------------------- names across files */

START_TEST(test_name_in_two_files)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_order_1.ini");
    ck_status(cdm_manager_load_file(m, tu_fixture("good/ini_clash.ini")),
              CDM_ERR_EXISTS);
    ck_errmsg_has("ini_clash.ini:7");
    ck_errmsg_has("ini_order_1.ini:6");
    ck_errmsg_has("one_b");
    assert_names(m, LIST("One_A", "One_B"));
    ck_assert(!cdm_manager_has_def(m, "Clash_Fresh"));
    assert_param(m, "one_b", "Database", ":memory:");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_same_file_twice)
{
    cdm_manager *m = new_manager();

    load_ok(m, "good/ini_order_1.ini");
    ck_status(cdm_manager_load_file(m, tu_fixture("good/ini_order_1.ini")),
              CDM_ERR_EXISTS);
    ck_errmsg_has("ini_order_1.ini:2");
    ck_errmsg_has("One_A");
    assert_names(m, LIST("One_A", "One_B"));
    cdm_manager_free(m);
}
END_TEST

/* ---------------------------------------------------------- warnings */

START_TEST(test_repeated_key_warns_last_wins)
{
    cdm_manager *m = new_manager();
    struct tu_log log;

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    load_ok(m, "good/ini_repeated_key.ini");
    ck_assert_int_eq(tu_log_count(&log, "repeated"), 1);
    ck_assert(log_line_has(&log, "ini_repeated_key.ini:6", "repeated"));
    ck_assert(log_line_has(&log, "first at line 4", "Repeated"));
    ck_assert_int_eq(log.levels[0], CDM_LOG_WARN);
    assert_param(m, "Repeated", "Database", "second.sqlite3");
    assert_param(m, "Repeated", "BusyTimeout", "100");
    cdm_manager_free(m);
}
END_TEST

/* Repeats are found however many keys a section has (a small section is
 * scanned, a large one indexed), in any case of the key, on both sides of
 * the point where the one switches to the other. */
START_TEST(test_repeated_key_in_large_section)
{
    char *dir = tu_tmpdir(), *path;
    struct { char s[8192]; size_t n; } b = { "", 0 };
    cdm_manager *m = new_manager();
    struct tu_log log;

    b.n += (size_t)snprintf(b.s + b.n, sizeof b.s - b.n,
                            "[Big]\nDriverID=SQLite\nDatabase=first.db\n");
    for (int i = 0; i < 40; i++)
        b.n += (size_t)snprintf(b.s + b.n, sizeof b.s - b.n,
                                "X_Key%02d=v%d\n", i, i);
    /* Line 44: a repeat of line 3; line 45: of line 43, a key indexed
     * late. */
    b.n += (size_t)snprintf(b.s + b.n, sizeof b.s - b.n,
                            "DATABASE=second.db\nx_key39=w39\n");
    path = tu_write(dir, "big.ini", b.s, 0600);
    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "repeated"), 2);
    ck_assert(log_line_has(&log, "big.ini:44:", "first at line 3)"));
    ck_assert(log_line_has(&log, "big.ini:45:", "first at line 43)"));
    assert_param(m, "Big", "Database", "second.db");
    assert_param(m, "Big", "X_Key39", "w39");
    assert_param(m, "Big", "X_Key16", "v16");
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_value_cut_at_semicolon_warns)
{
    cdm_manager *m = new_manager();
    struct tu_log log;
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "ini_cut.ini",
                          "[Cut]\n"
                          "DriverID=PG\n"
                          "Database=app\n"
                          "Password=Sekr3tHead;TailAfterSemi\n", 0600);

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.levels[0], CDM_LOG_WARN);
    ck_assert(log_line_has(&log, "ini_cut.ini:4", "cut"));
    ck_assert_int_eq(tu_log_count(&log, "Password"), 1);
    ck_assert_int_eq(tu_log_count(&log, "Sekr3tHead"), 0);
    ck_assert_int_eq(tu_log_count(&log, "TailAfterSemi"), 0);
    /* What the warning says: the rest is read as a comment. */
    assert_param(m, "Cut", "Password", "Sekr3tHead");
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_comment_backslash_warns)
{
    cdm_manager *m = new_manager();
    struct tu_log log;
    char *value = NULL;

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    load_ok(m, "good/ini_comment_backslash.ini");
    ck_assert(log_line_has(&log, "ini_comment_backslash.ini:4", "line 5"));
    ck_assert_int_eq(tu_log_count(&log, "joined"), 1);
    /* ...and line 5 really is swallowed by the comment. */
    ck_status(cdm_manager_get_param(m, "Joined", "Database", &value),
              CDM_ERR_NOT_FOUND);
    assert_param(m, "Joined", "BusyTimeout", "100");
    cdm_manager_free(m);
}
END_TEST

/* ---------------------------------------------------------- security */

START_TEST(test_world_writable_refused)
{
    static const mode_t modes[] = { 0666, 0602, 0646 };
    char *dir = tu_tmpdir();

    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char *path = tu_write(dir, "ini_open.ini",
                              "[Open_Def]\nDriverID=SQLite\n"
                              "Database=:memory:\n", modes[i]);
        assert_load_fails(path, CDM_ERR_INSECURE, LIST(path), NONE,
                          LIST("Open_Def"));
        free(path);
    }
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_readable_password_warns)
{
    static const mode_t modes[] = { 0644, 0640 };
    char *dir = tu_tmpdir();

    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        cdm_manager *m = new_manager();
        struct tu_log log;
        char *path = tu_write(dir, "ini_readable.ini",
                              "[Readable_Pw]\nDriverID=PG\nDatabase=app\n"
                              "User_Name=app\nPassword=Pl41nT3xtPw\n",
                              modes[i]);

        tu_log_init(&log);
        cdm_manager_set_log(m, tu_log_fn, &log);
        ck_status(cdm_manager_load_file(m, path), CDM_OK);
        ck_assert(cdm_manager_has_def(m, "Readable_Pw"));
        ck_assert_msg(log_line_has(&log, path, "'Readable_Pw'"),
                      "no warning naming file and definition (%d logged)",
                      log.n);
        ck_assert_int_eq(tu_log_count(&log, "Pl41nT3xtPw"), 0);
        cdm_manager_free(m);
        free(path);
    }
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_private_password_no_warning)
{
    cdm_manager *m = new_manager();
    struct tu_log log;
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "ini_private.ini",
                          "[Private_Pw]\nDriverID=PG\nDatabase=app\n"
                          "User_Name=app\nPassword=Pl41nT3xtPw\n", 0600);

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_assert(cdm_manager_has_def(m, "Private_Pw"));
    ck_assert_msg(log.n == 0, "unexpected log: %s", log.lines[0]);
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_password_from_environment_no_warning)
{
    cdm_manager *m = new_manager();
    struct tu_log log;
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "ini_envpw.ini",
                          "[Env_Pw]\nDriverID=PG\nDatabase=app\n"
                          "User_Name=app\nPassword=$(SOME_VAR)\n", 0644);

    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_assert(cdm_manager_has_def(m, "Env_Pw"));
    ck_assert_msg(log.n == 0, "unexpected log: %s", log.lines[0]);
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* ----------------------------------------------------------- threads */

#define THREADS 4
#define LOADS_PER_THREAD 50

struct loader {
    int id;
    char *good, *dup, *too_long;   /* this thread's own files */
    char good_name[32];
    pthread_barrier_t *start;
    int wrong;                     /* results that were not right */
    char first_wrong[1200];
};

static void loader_wrong(struct loader *l, const char *path, int rc)
{
    if (l->wrong++ == 0)
        snprintf(l->first_wrong, sizeof l->first_wrong,
                 "thread %d, %s: %s: %s", l->id, path, cdm_strerror(rc),
                 cdm_errmsg());
}

static void *loader_main(void *arg)
{
    struct loader *l = arg;

    pthread_barrier_wait(l->start);
    for (int i = 0; i < LOADS_PER_THREAD; i++) {
        const char *path = i % 3 == 0 ? l->good : i % 3 == 1 ? l->dup
                                                             : l->too_long;
        int want = i % 3 == 0 ? CDM_OK : CDM_ERR_PARSE;
        bool right;
        cdm_manager *m;
        int rc;

        if ((rc = cdm_manager_new(&m)) != CDM_OK) {
            loader_wrong(l, "cdm_manager_new", rc);
            continue;
        }
        rc = cdm_manager_load_file(m, path);
        right = rc == want;
        if (right && want == CDM_OK)
            right = cdm_manager_has_def(m, l->good_name);
        if (right && want != CDM_OK) {
            char own[64];
            /* Both bad files fail on line 3. */
            snprintf(own, sizeof own, "ini_t%d_%s.ini:3:", l->id,
                     i % 3 == 1 ? "dup" : "long");
            right = strstr(cdm_errmsg(), own) != NULL;
            for (int t = 0; t < THREADS && right; t++) {
                char other[16];
                snprintf(other, sizeof other, "ini_t%d_", t);
                right = t == l->id || !strstr(cdm_errmsg(), other);
            }
        }
        if (!right)
            loader_wrong(l, path, rc);
        cdm_manager_free(m);
    }
    return NULL;
}

START_TEST(test_loads_from_threads)
{
    struct loader loaders[THREADS];
    pthread_t threads[THREADS];
    pthread_barrier_t start;
    char *dir = tu_tmpdir();
    char long_file[1300];
    int n;

    n = snprintf(long_file, sizeof long_file, "[Long]\nDriverID=SQLite\nDatabase=");
    memset(long_file + n, 'x', 1100);
    strcpy(long_file + n + 1100, "\n");
    pthread_barrier_init(&start, NULL, THREADS);
    for (int t = 0; t < THREADS; t++) {
        struct loader *l = &loaders[t];
        char name[64], content[128];

        memset(l, 0, sizeof *l);
        l->id = t;
        l->start = &start;
        snprintf(l->good_name, sizeof l->good_name, "T%d_Good", t);
        snprintf(content, sizeof content,
                 "[%s]\nDriverID=SQLite\nDatabase=:memory:\n", l->good_name);
        snprintf(name, sizeof name, "ini_t%d_good.ini", t);
        l->good = tu_write(dir, name, content, 0600);
        snprintf(name, sizeof name, "ini_t%d_dup.ini", t);
        l->dup = tu_write(dir, name, "[Same]\nDriverID=SQLite\n[SAME]\n", 0600);
        snprintf(name, sizeof name, "ini_t%d_long.ini", t);
        l->too_long = tu_write(dir, name, long_file, 0600);
    }
    for (int t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_create(&threads[t], NULL, loader_main,
                                        &loaders[t]), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&start);
    for (int t = 0; t < THREADS; t++) {
        ck_assert_msg(loaders[t].wrong == 0, "%d wrong results; first: %s",
                      loaders[t].wrong, loaders[t].first_wrong);
        free(loaders[t].good);
        free(loaders[t].dup);
        free(loaders[t].too_long);
    }
    tu_rmtree(dir);
}
END_TEST

/* -------------------------------------------------------------- main */

/* -------------------------------------------- the same as iniparser 4.1 */

#if HAVE_INIPARSER
/* Values as cdm's reader and iniparser 4.1 read them must be the same:
 * each line below, alone in a file after "[S]", is read by both; a line
 * cdm refuses is fine (it is refused, not misread), a line it reads must
 * give iniparser's value.  Lines are built from these parts. */
static const char *const keys_written[] = { "K", "  K", "K  ", "K\t", "k" };
static const char *const eqs[] = { "=", " = ", "=  ", "\t=\t" };
static const char *const values_written[] = {
    "", "abc", "a b", " abc ", "\"abc\"", "\" abc \"", "'abc'", "' a '",
    "\"\"", "''", "\"\" ", "\"a;b\"", "'a#b'", "a;b", "a ;b", "a#b",
    "a # b", ";", "#", "=", "==x", "a=b", "\"it's\"", "'say \"hi\"'",
    "\"a\" ; c", "'a'#c", "\"a\"   ", "x\"y", "x'y", "\"", "'", "\"abc",
    "C:\\dir\\f.db", "\\\\srv\\share", "caf\xC3\xA9", "\ttab", "tab\t",
    "\"\t\"", "\v", "a\fb", "$(HOME)", "[x]", "a\\", "\"a\\\"",
};
static const char *const tails[] = { "", "\n", "\r\n", "  \n", " ; c\n" };

struct both {
    char *dir;
    int compared, refused;
};

static void compare_one(struct both *b, const char *text)
{
    char *path = tu_write(b->dir, "d.ini", text, 0600);
    cdm_manager *m = new_manager();
    dictionary *d;
    int rc = cdm_manager_load_file(m, path);

    d = iniparser_load(path);
    if (rc != CDM_OK) {
        b->refused++;
    } else {
        const char *want;
        char *got = NULL;
        ck_assert_msg(d != NULL, "iniparser refused what cdm read: [%s]", text);
        want = iniparser_getstring(d, "s:k", NULL);
        ck_assert_msg(want != NULL, "iniparser has no s:k in [%s]", text);
        ck_status(cdm_manager_get_param(m, "S", "K", &got), CDM_OK);
        ck_assert_msg(strcmp(got, want) == 0,
                      "[%s]: cdm read '%s', iniparser 4.1 '%s'", text, got, want);
        cdm_free(got);
        b->compared++;
    }
    if (d)
        iniparser_freedict(d);
    cdm_manager_free(m);
    free(path);
}

START_TEST(test_values_read_as_iniparser_reads_them)
{
    struct both b = { tu_tmpdir(), 0, 0 };
    char text[512];

    /* $(HOME) is expanded by get_param: compare what is not. */
    unsetenv("CDM_NOT_SET");
    /* Every value with every '=' and every line end; the way the key is
     * written (which cannot change a value) turns with them. */
    for (size_t e = 0; e < sizeof eqs / sizeof *eqs; e++)
        for (size_t v = 0; v < sizeof values_written / sizeof *values_written; v++)
            for (size_t t = 0; t < sizeof tails / sizeof *tails; t++) {
                size_t k = (e + v + t) % (sizeof keys_written / sizeof *keys_written);
                if (strstr(values_written[v], "$("))
                    continue;
                snprintf(text, sizeof text, "[S]\n%s%s%s%s",
                         keys_written[k], eqs[e], values_written[v], tails[t]);
                compare_one(&b, text);
            }
    /* Lines joined by a final '\': blanks before it go, those after the
     * join stay. */
    compare_one(&b, "[S]\nK = one \\\n  two\n");
    compare_one(&b, "[S]\nK = one\\  \n\\\n  two  \n");
    compare_one(&b, "[S]\nK = \"a \\\nb\"\n");
    compare_one(&b, "[S]\n  K\\\n = v\n");
    compare_one(&b, "[S]\nK = v\nK = w\n");
    /* Most lines are read, not refused, or this compares little. */
    ck_assert_int_gt(b.compared, 3 * b.refused);
    tu_rmtree(b.dir);
}
END_TEST
#endif

int main(void)
{
    Suite *s = suite_create("ini");
    TCase *good = tcase_create("good");
    TCase *bad = tcase_create("bad");
    TCase *files = tcase_create("files");
    TCase *limits = tcase_create("limits");
    TCase *warn = tcase_create("warnings");
    TCase *security = tcase_create("security");
    TCase *threads = tcase_create("threads");
#if HAVE_INIPARSER
    TCase *reference = tcase_create("iniparser");
#endif

    tcase_add_test(good, test_names_as_written_in_file_order);
    tcase_add_test(good, test_names_case_insensitive);
    tcase_add_test(good, test_keys_case_insensitive);
    tcase_add_test(good, test_header_section_is_not_a_definition);
    tcase_add_test(good, test_comments_blank_lines_and_inline_comments);
    tcase_add_test(good, test_quoted_values_kept_verbatim);
    tcase_add_test(good, test_empty_values);
    tcase_add_test(good, test_crlf_line_endings);
    tcase_add_test(good, test_utf8_bom_accepted);
    tcase_add_test(good, test_repeated_utf8_bom_warned);
    tcase_add_test(good, test_only_comments_and_empty_file);
    tcase_add_test(good, test_two_files_keep_load_order);
    tcase_add_test(good, test_long_line_within_limit);
    tcase_add_test(good, test_clean_file_logs_nothing);

    suite_add_tcase(s, good);

    tcase_add_test(bad, test_section_repeated);
    tcase_add_test(bad, test_section_repeated_other_case);
    tcase_add_test(bad, test_nul_byte_in_line);
    tcase_add_test(bad, test_key_before_any_section);
    tcase_add_test(bad, test_section_without_closing_bracket);
    tcase_add_test(bad, test_empty_section_name);
    tcase_add_test(bad, test_line_without_equals);
    tcase_add_test(bad, test_line_without_equals_hides_secret);
    tcase_add_test(bad, test_value_without_key);
    tcase_add_test(bad, test_unterminated_quote);
    tcase_add_test(bad, test_text_after_closing_quote);
    tcase_add_test(bad, test_line_too_long);
    tcase_add_test(bad, test_colon_in_key_or_name);
    tcase_add_test(bad, test_backslash_on_last_line);
    tcase_add_test(bad, test_line_length_limit_exact);
    tcase_add_test(bad, test_missing_file);
    tcase_add_test(limits, test_fifo_refused_without_waiting);
    tcase_add_test(limits, test_device_refused);
    tcase_add_test(limits, test_symlink_loop_refused);
    tcase_add_test(limits, test_file_over_size_cap_refused);
    tcase_add_test(limits, test_vanished_file_on_reload);
    tcase_add_test(limits, test_unprintable_names_refused);
    tcase_add_test(limits, test_long_names_read_right_or_refused);
    tcase_add_test(limits, test_garbage_never_crashes);
    tcase_add_test(bad, test_directory_path);
    suite_add_tcase(s, bad);
    suite_add_tcase(s, limits);

    tcase_add_test(files, test_name_in_two_files);
    tcase_add_test(files, test_same_file_twice);
    suite_add_tcase(s, files);

    tcase_add_test(warn, test_repeated_key_warns_last_wins);
    tcase_add_test(warn, test_repeated_key_in_large_section);
    tcase_add_test(warn, test_value_cut_at_semicolon_warns);
    tcase_add_test(warn, test_comment_backslash_warns);
    tcase_add_test(warn, test_value_backslash_joins_next_line_warns);
    suite_add_tcase(s, warn);

    tcase_add_test(security, test_world_writable_refused);
    tcase_add_test(security, test_readable_password_warns);
    tcase_add_test(security, test_private_password_no_warning);
    tcase_add_test(security, test_password_from_environment_no_warning);
    suite_add_tcase(s, security);

#if HAVE_INIPARSER
    /* Some 900 small files, each read twice: slow under valgrind. */
    tcase_set_timeout(reference, 120);
    tcase_add_test(reference, test_values_read_as_iniparser_reads_them);
    suite_add_tcase(s, reference);
#endif

    /* Valgrind makes 200 loads slow. */
    tcase_set_timeout(threads, 120);
    tcase_add_test(threads, test_loads_from_threads);
    suite_add_tcase(s, threads);

    return tu_run(s);
}
