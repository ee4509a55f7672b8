/* check_deffile.c - editing definition files: untouched lines kept byte
 * for byte, awkward values round-tripped through save and load, bad names,
 * keys and values refused, conflicts, the lock, modes, a crash before the
 * rename. */
#include "testutil.h"
#include "fault_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

/* The file's bytes (NUL-terminated; free them). */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    rewind(fp);
    buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    if (len)
        *len = (size_t)n;
    return buf;
}

static void assert_file(const char *path, const char *want)
{
    char *got = slurp(path, NULL);

    ck_assert_str_eq(got, want);
    free(got);
}

static cdm_deffile *open_ok(const char *path)
{
    cdm_deffile *f = NULL;

    ck_status(cdm_deffile_open(path, &f), CDM_OK);
    ck_assert_ptr_nonnull(f);
    return f;
}

static void assert_get(cdm_deffile *f, const char *name, const char *key,
                       const char *want)
{
    char *v = NULL;

    ck_status(cdm_deffile_get(f, name, key, &v), CDM_OK);
    ck_assert_str_eq(v, want);
    cdm_free(v);
}

/* The loader (a manager) reads `key` of `name` in `path` as `want`. */
static void assert_loaded(const char *path, const char *name, const char *key,
                          const char *want)
{
    cdm_manager *m;
    char *v = NULL;

    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_status(cdm_manager_get_param(m, name, key, &v), CDM_OK);
    ck_assert_msg(strcmp(v, want) == 0, "%s: read back '%s', set '%s'", key,
                  v, want);
    cdm_free(v);
    cdm_manager_free(m);
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static const char sample[] =
    "; Connection definitions of the order service.\n"
    "[FDConnectionDefs.ini]\n"
    "Encoding=UTF8\n"
    "\n"
    "; The main database.\n"
    "[Orders]\n"
    "DriverID = PG\n"
    "Server   = db1.example.com   ; the primary\n"
    "Database=orders\n"
    "Pooled=True\n"
    "\n"
    "   # Reports read a copy.\n"
    "[ Reports ]\n"
    "ConnectionDef=Orders\n"
    "Server=db2.example.com\n"
    "\n"
    "[Local]\n"
    "DriverID=SQLite\n"
    "Database=local.db\n";

/* -------------------------------------------------- keeping the bytes */

START_TEST(test_open_and_save_unchanged_is_identical)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    cdm_deffile *f = open_ok(path);

    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, sample);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_set_changes_only_that_line)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    cdm_deffile *f = open_ok(path);
    char *want = strdup(sample), *at;

    /* Spacing before the value and the comment after it stay. */
    ck_status(cdm_deffile_set(f, "orders", "SERVER", "db9.example.com"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    at = strstr(want, "db1");
    memcpy(at, "db9", 3);
    assert_file(path, want);
    assert_loaded(path, "Orders", "Server", "db9.example.com");
    free(want);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_new_key_goes_after_last_key)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    cdm_deffile *f = open_ok(path);
    const char *mark = "Pooled=True\n";
    char want[2048], *at;

    ck_status(cdm_deffile_set(f, "Orders", "POOL_MaximumItems", "20"), CDM_OK);
    ck_status(cdm_deffile_set(f, "Local", "BusyTimeout", "500"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    at = strstr(sample, mark) + strlen(mark);
    snprintf(want, sizeof want, "%.*sPOOL_MaximumItems=20\n%sBusyTimeout=500\n",
             (int)(at - sample), sample, at);
    assert_file(path, want);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_crlf_bom_and_no_final_newline_kept)
{
    static const char text[] =
        "\xEF\xBB\xBF[A]\r\nDriverID=SQLite\r\n; note\r\nDatabase=a.db";
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", text, 0600);
    cdm_deffile *f = open_ok(path);

    ck_status(cdm_deffile_set(f, "A", "Database", "b.db"), CDM_OK);
    ck_status(cdm_deffile_set(f, "A", "BusyTimeout", "100"), CDM_OK);
    ck_status(cdm_deffile_add(f, "B"), CDM_OK);
    ck_status(cdm_deffile_set(f, "B", "DriverID", "SQLite"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    /* New lines take the file's CRLF; the BOM stays; the file still ends
     * without a line end. */
    assert_file(path, "\xEF\xBB\xBF[A]\r\nDriverID=SQLite\r\n; note\r\n"
                      "Database=b.db\r\nBusyTimeout=100\r\n\r\n[B]\r\n"
                      "DriverID=SQLite");
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* Real FDConnectionDefs.ini files often lack a final line end: an edit
 * and its undoing, each saved apart, give back the very same bytes. */
START_TEST(test_no_final_newline_edit_and_undo_identical)
{
    static const char text[] =
        "[A]\r\nDriverID=SQLite\r\nDatabase=a.db\r\n\r\n[B]\r\nDriverID=SQLite";
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", text, 0600);
    cdm_deffile *f;

    f = open_ok(path);
    ck_status(cdm_deffile_set(f, "B", "Database", "b.db"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, "[A]\r\nDriverID=SQLite\r\nDatabase=a.db\r\n\r\n[B]\r\n"
                      "DriverID=SQLite\r\nDatabase=b.db");
    f = open_ok(path);
    ck_status(cdm_deffile_unset(f, "B", "Database"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, text);

    f = open_ok(path);
    ck_status(cdm_deffile_copy(f, "A", "C"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, "[A]\r\nDriverID=SQLite\r\nDatabase=a.db\r\n\r\n[B]\r\n"
                      "DriverID=SQLite\r\n\r\n[C]\r\nDriverID=SQLite\r\n"
                      "Database=a.db");
    f = open_ok(path);
    ck_status(cdm_deffile_delete(f, "C"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, text);

    f = open_ok(path);
    ck_status(cdm_deffile_add(f, "D"), CDM_OK);
    ck_status(cdm_deffile_delete(f, "D"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, text);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_delete_takes_its_block_only)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    cdm_deffile *f = open_ok(path);
    char **names = NULL;
    size_t n = 0;

    ck_status(cdm_deffile_delete(f, "reports"), CDM_OK);
    ck_status(cdm_deffile_names(f, &names, &n), CDM_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(names[0], "Orders");
    ck_assert_str_eq(names[1], "Local");
    cdm_strv_free(names);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path,
                "; Connection definitions of the order service.\n"
                "[FDConnectionDefs.ini]\n"
                "Encoding=UTF8\n"
                "\n"
                "; The main database.\n"
                "[Orders]\n"
                "DriverID = PG\n"
                "Server   = db1.example.com   ; the primary\n"
                "Database=orders\n"
                "Pooled=True\n"
                "\n"
                "[Local]\n"
                "DriverID=SQLite\n"
                "Database=local.db\n");
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_delete_last_and_first)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini",
                          "[A]\nDriverID=SQLite\n\n[B]\nDriverID=SQLite\n", 0600);
    cdm_deffile *f = open_ok(path);

    ck_status(cdm_deffile_delete(f, "B"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    assert_file(path, "[A]\nDriverID=SQLite\n");
    ck_status(cdm_deffile_delete(f, "A"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    assert_file(path, "");
    ck_status(cdm_deffile_delete(f, "A"), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("no definition named 'A'");
    cdm_deffile_free(f);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_rename_keeps_the_header_spacing)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    cdm_deffile *f = open_ok(path);
    char *want = strdup(sample), *at;
    char buf[2048];

    ck_status(cdm_deffile_rename(f, "REPORTS", "Report"), CDM_OK);
    ck_status(cdm_deffile_rename(f, "Orders", "local"), CDM_ERR_EXISTS);
    ck_status(cdm_deffile_rename(f, "Nope", "X"), CDM_ERR_NOT_FOUND);
    /* Only the case changes: allowed. */
    ck_status(cdm_deffile_rename(f, "local", "LOCAL"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    at = strstr(want, "[ Reports ]");
    snprintf(buf, sizeof buf, "%.*s[ Report ]%s", (int)(at - want), want,
             at + strlen("[ Reports ]"));
    at = strstr(buf, "[Local]");
    memcpy(at, "[LOCAL]", 7);
    assert_file(path, buf);
    free(want);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_copy_appends_the_lines)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    cdm_deffile *f = open_ok(path);
    char want[2048];

    ck_status(cdm_deffile_copy(f, "Orders", "Orders2"), CDM_OK);
    ck_status(cdm_deffile_copy(f, "Orders", "local"), CDM_ERR_EXISTS);
    assert_get(f, "orders2", "server", "db1.example.com");
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    snprintf(want, sizeof want, "%s\n[Orders2]\nDriverID = PG\n"
             "Server   = db1.example.com   ; the primary\n"
             "Database=orders\nPooled=True\n", sample);
    assert_file(path, want);
    assert_loaded(path, "Orders2", "Database", "orders");
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_unset_removes_every_occurrence)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini",
                          "[A]\nDriverID=SQLite\nDatabase=one.db\n"
                          "; keep me\nDatabase=two.db\n", 0600);
    cdm_deffile *f = open_ok(path);

    /* Set changes the last (the one that counts), leaving the other. */
    ck_status(cdm_deffile_set(f, "A", "Database", "three.db"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    assert_file(path, "[A]\nDriverID=SQLite\nDatabase=one.db\n"
                      "; keep me\nDatabase=three.db\n");
    /* Unset removes both, or the first would come back. */
    ck_status(cdm_deffile_unset(f, "A", "database"), CDM_OK);
    ck_status(cdm_deffile_unset(f, "A", "database"), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("sets no database");
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, "[A]\nDriverID=SQLite\n; keep me\n");
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_continued_value_rewritten_as_one_line)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini",
                          "[A]\nDriverID=SQLite\nNote=one \\\n  two\n"
                          "Database=a.db\n", 0600);
    cdm_deffile *f = open_ok(path);

    ck_status(cdm_deffile_set(f, "A", "Note", "three"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, "[A]\nDriverID=SQLite\nNote=three\nDatabase=a.db\n");
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* ------------------------------------------------------------- values */

static const char *const awkward[] = {
    "", "plain", " leading", "trailing ", "  ", "a;b", "a#b", ";", "#",
    "say \"hi\"", "it's", "\"", "'", "\"\"", "''", "'quoted'", "\"quoted\"",
    "C:\\Users\\Public\\", "\\\\server\\share", "ends with \\", "=x", "a=b",
    "[not a section]", "costs 5$ (or $5)", "caf\xC3\xA9 \xE2\x82\xAC",
    "sslmode=require;connect_timeout=5", "\tTab", "x ; y # z",
};

START_TEST(test_awkward_values_round_trip)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", "[A]\nDriverID=SQLite\n", 0600);
    size_t n = sizeof awkward / sizeof *awkward;

    for (size_t i = 0; i < n; i++) {
        cdm_deffile *f = open_ok(path);
        char key[16];
        snprintf(key, sizeof key, "ApplicationName");
        ck_status(cdm_deffile_set(f, "A", key, awkward[i]), CDM_OK);
        assert_get(f, "A", key, awkward[i]);
        ck_status(cdm_deffile_save(f), CDM_OK);
        cdm_deffile_free(f);
        /* Through the editor and through the loader. */
        f = open_ok(path);
        assert_get(f, "A", key, awkward[i]);
        cdm_deffile_free(f);
        assert_loaded(path, "A", key, awkward[i]);
    }
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_awkward_value_replacing_a_commented_line)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini",
                          "[A]\nDriverID=SQLite\nApplicationName = x   ; c\n",
                          0600);
    size_t n = sizeof awkward / sizeof *awkward;

    for (size_t i = 0; i < n; i++) {
        cdm_deffile *f = open_ok(path);
        ck_status(cdm_deffile_set(f, "A", "ApplicationName", awkward[i]), CDM_OK);
        ck_status(cdm_deffile_save(f), CDM_OK);
        cdm_deffile_free(f);
        assert_loaded(path, "A", "ApplicationName", awkward[i]);
    }
    /* The comment is still there. */
    {
        char *text = slurp(path, NULL);
        ck_assert_ptr_nonnull(strstr(text, "   ; c\n"));
        free(text);
    }
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_refused_values_names_and_keys)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    cdm_deffile *f = open_ok(path);
    char long_value[1100];

    memset(long_value, 'v', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    ck_status(cdm_deffile_set(f, "Orders", "Password", "both \" and '"),
              CDM_ERR_INVALID);
    ck_errmsg_has("both kinds of quote");
    ck_errmsg_has("definition 'Orders'");
    ck_status(cdm_deffile_set(f, "Orders", "Password", "two\nlines"), CDM_ERR_INVALID);
    ck_errmsg_has("line break");
    /* The refused value is not in the message. */
    ck_assert_ptr_null(strstr(cdm_errmsg(), "two"));
    ck_status(cdm_deffile_set(f, "Orders", "Password", "cr\rhere"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_set(f, "Orders", "ApplicationName", long_value),
              CDM_ERR_INVALID);
    ck_errmsg_has("longer than");
    ck_status(cdm_deffile_set(f, "Orders", "Bad=Key", "x"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_set(f, "Orders", "Bad:Key", "x"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_set(f, "Orders", "Bad Key", "x"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_set(f, "Orders", "Bad\nKey", "x"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_set(f, "Orders", "", "x"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_add(f, "a[b"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_add(f, "a]b"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_add(f, "a:b"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_add(f, "two\nlines"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_add(f, " padded"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_add(f, ""), CDM_ERR_INVALID);
    ck_status(cdm_deffile_add(f, "fdconnectiondefs.ini"), CDM_ERR_INVALID);
    ck_errmsg_has("header section");
    ck_status(cdm_deffile_add(f, "orders"), CDM_ERR_EXISTS);
    ck_status(cdm_deffile_rename(f, "Orders", "x]y"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_copy(f, "Orders", "x\ny"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_set(f, "Nope", "Server", "x"), CDM_ERR_NOT_FOUND);
    ck_status(cdm_deffile_get(f, "Orders", "Port", &(char *){ NULL }),
              CDM_ERR_NOT_FOUND);
    /* Bad values of known keys, as cdm_manager_set_param refuses them. */
    ck_status(cdm_deffile_set(f, "Orders", "Pooled", "maybe"), CDM_ERR_INVALID);
    ck_errmsg_has("Pooled");
    ck_status(cdm_deffile_set(f, "Orders", "POOL_MaximumItems", "lots"),
              CDM_ERR_INVALID);
    ck_status(cdm_deffile_set(f, "Orders", "POOL_MaximumItems", "4"), CDM_OK);
    ck_status(cdm_deffile_set(f, "Orders", "POOL_MinimumItems", "5"),
              CDM_ERR_INVALID);
    ck_errmsg_has("POOL_MinimumItems");
    assert_get(f, "Orders", "Pooled", "True");
    ck_status(cdm_deffile_get(f, "Orders", "POOL_MinimumItems", &(char *){ NULL }),
              CDM_ERR_NOT_FOUND);
    /* Nothing refused reached the file. */
    ck_status(cdm_deffile_unset(f, "Orders", "POOL_MaximumItems"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, sample);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_unknown_key_warns_with_suggestion)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    cdm_deffile *f = open_ok(path);
    struct tu_log log;

    tu_log_init(&log);
    cdm_deffile_set_log(f, tu_log_fn, &log);
    ck_status(cdm_deffile_set(f, "Orders", "Pooledd", "True"), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "unknown key Pooledd (did you mean Pooled?)"), 1);
    ck_assert_int_eq(tu_log_count(&log, "definition 'Orders'"), 1);
    ck_status(cdm_deffile_set(f, "Orders", "Server", "x"), CDM_OK);
    ck_assert_int_eq(log.n, 1);
    cdm_deffile_free(f);
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* -------------------------------------------------------------- files */

START_TEST(test_missing_file_created_0600)
{
    char *dir = tu_tmpdir();
    char path[512];
    cdm_deffile *f;
    char **names = NULL;
    size_t n = 9;

    umask(022);
    snprintf(path, sizeof path, "%s/new.ini", dir);
    f = open_ok(path);
    ck_status(cdm_deffile_names(f, &names, &n), CDM_OK);
    ck_assert_uint_eq(n, 0);
    cdm_strv_free(names);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_status(cdm_deffile_add(f, "Mem"), CDM_OK);
    ck_status(cdm_deffile_set(f, "Mem", "DriverID", "SQLite"), CDM_OK);
    ck_status(cdm_deffile_set(f, "Mem", "Database", ":memory:"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    ck_assert_uint_eq(mode_of(path), 0600);
    assert_file(path, "[Mem]\nDriverID=SQLite\nDatabase=:memory:\n");
    /* A second save on the same handle compares with what it wrote. */
    ck_status(cdm_deffile_set(f, "Mem", "BusyTimeout", "10"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_loaded(path, "Mem", "BusyTimeout", "10");
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_mode_kept)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0640);
    cdm_deffile *f = open_ok(path);

    ck_status(cdm_deffile_set(f, "Local", "Database", "other.db"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    ck_assert_uint_eq(mode_of(path), 0640);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_unsafe_or_broken_file_not_opened)
{
    char *dir = tu_tmpdir();
    char *ww = tu_write(dir, "ww.ini", sample, 0666);
    char *bad = tu_write(dir, "bad.ini", "[A]\nDriverID=SQLite\noops\n", 0600);
    cdm_deffile *f = (cdm_deffile *)&f;

    ck_status(cdm_deffile_open(ww, &f), CDM_ERR_INSECURE);
    ck_assert_ptr_null(f);
    ck_status(cdm_deffile_open(bad, &f), CDM_ERR_PARSE);
    ck_errmsg_has("bad.ini:3:");
    ck_status(cdm_deffile_open(dir, &f), CDM_ERR_IO);
    ck_status(cdm_deffile_open(NULL, &f), CDM_ERR_INVALID);
    free(ww);
    free(bad);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_symlink_followed)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "real.ini", sample, 0600);
    char link[512];
    cdm_deffile *f;
    struct stat st;

    snprintf(link, sizeof link, "%s/link.ini", dir);
    ck_assert_int_eq(symlink("real.ini", link), 0);
    f = open_ok(link);
    ck_status(cdm_deffile_set(f, "Local", "Database", "x.db"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    ck_assert_int_eq(lstat(link, &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    assert_loaded(path, "Local", "Database", "x.db");
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* ---------------------------------------------------------- conflicts */

START_TEST(test_conflict_when_changed_on_disk)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    cdm_deffile *f = open_ok(path), *g = open_ok(path);
    char *after;

    ck_status(cdm_deffile_set(f, "Local", "Database", "f.db"), CDM_OK);
    ck_status(cdm_deffile_set(g, "Local", "Database", "g.db"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    after = slurp(path, NULL);
    ck_status(cdm_deffile_save(g), CDM_ERR_CONFLICT);
    ck_errmsg_has("changed on disk");
    ck_errmsg_has("defs.ini");
    assert_file(path, after);
    cdm_deffile_free(g);
    /* Edited by hand meanwhile, even to the same length. */
    free(tu_write(dir, "defs.ini", after, 0600));
    {
        char *hand = strdup(after);
        *strstr(hand, "f.db") = 'h';
        free(tu_write(dir, "defs.ini", hand, 0600));
        ck_status(cdm_deffile_set(f, "Local", "Database", "i.db"), CDM_OK);
        ck_status(cdm_deffile_save(f), CDM_ERR_CONFLICT);
        assert_file(path, hand);
        free(hand);
    }
    cdm_deffile_free(f);
    free(after);
    free(path);
    tu_rmtree(dir);
}
END_TEST

START_TEST(test_conflict_when_created_or_removed)
{
    char *dir = tu_tmpdir();
    char path[512];
    cdm_deffile *f, *g;

    snprintf(path, sizeof path, "%s/defs.ini", dir);
    f = open_ok(path);
    free(tu_write(dir, "defs.ini", "[X]\nDriverID=SQLite\n", 0600));
    ck_status(cdm_deffile_add(f, "A"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_ERR_CONFLICT);
    ck_errmsg_has("created");
    assert_file(path, "[X]\nDriverID=SQLite\n");
    cdm_deffile_free(f);
    g = open_ok(path);
    ck_assert_int_eq(unlink(path), 0);
    ck_status(cdm_deffile_add(g, "A"), CDM_OK);
    ck_status(cdm_deffile_save(g), CDM_ERR_CONFLICT);
    ck_errmsg_has("removed");
    ck_assert_int_eq(access(path, F_OK), -1);
    cdm_deffile_free(g);
    tu_rmtree(dir);
}
END_TEST

/* --------------------------------------------------------------- lock */

/* Whether someone holds the lock on `path` (tried without waiting). */
static bool lock_held(const char *path)
{
    char lp[600];
    int fd;
    bool held;

    snprintf(lp, sizeof lp, "%s.lock", path);
    fd = open(lp, O_RDWR | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

START_TEST(test_open_locked_holds_the_lock_until_free)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    char *real = realpath(path, NULL);
    cdm_deffile *f = NULL;

    ck_assert(!lock_held(real));
    ck_status(cdm_deffile_open_locked(path, &f), CDM_OK);
    ck_assert(lock_held(real));
    ck_status(cdm_deffile_set(f, "Local", "Database", "a.db"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    ck_assert(lock_held(real));
    cdm_deffile_free(f);
    ck_assert(!lock_held(real));
    /* The lock file is private. */
    {
        char lp[600];
        snprintf(lp, sizeof lp, "%s.lock", real);
        ck_assert_uint_eq(mode_of(lp), 0600);
    }
    free(real);
    free(path);
    tu_rmtree(dir);
}
END_TEST

#define EDITORS 8
#define EDITS 10

struct editor {
    const char *path;
    int id;
    int failures;
};

static void *edit_loop(void *arg)
{
    struct editor *e = arg;

    for (int i = 0; i < EDITS; i++) {
        cdm_deffile *f = NULL;
        char key[32], value[32];
        snprintf(key, sizeof key, "Note%d_%d", e->id, i);
        snprintf(value, sizeof value, "v%d", i);
        if (cdm_deffile_open_locked(e->path, &f) != CDM_OK ||
            cdm_deffile_set(f, "Local", key, value) != CDM_OK ||
            cdm_deffile_save(f) != CDM_OK)
            e->failures++;
        cdm_deffile_free(f);
    }
    return NULL;
}

START_TEST(test_locked_editors_lose_no_update)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0600);
    pthread_t t[EDITORS];
    struct editor e[EDITORS];
    cdm_deffile *f;
    char **keys = NULL;
    size_t n = 0;

    for (int i = 0; i < EDITORS; i++) {
        e[i] = (struct editor){ path, i, 0 };
        ck_assert_int_eq(pthread_create(&t[i], NULL, edit_loop, &e[i]), 0);
    }
    for (int i = 0; i < EDITORS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(e[i].failures, 0);
    }
    f = open_ok(path);
    ck_status(cdm_deffile_keys(f, "Local", &keys, &n), CDM_OK);
    ck_assert_uint_eq(n, 2 + EDITORS * EDITS);
    cdm_strv_free(keys);
    cdm_deffile_free(f);
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* ------------------------------------------------------------- crash */

static void die_before_rename(const char *tmp)
{
    (void)tmp;
    kill(getpid(), SIGKILL);
}

START_TEST(test_crash_before_rename_leaves_old_file)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", sample, 0644);
    int status, leftovers = 0;
    pid_t pid;
    char cmd[600];
    cdm_deffile *f;

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        cdm_deffile *g = NULL;
        cdm__test_deffile_before_rename = die_before_rename;
        if (cdm_deffile_open_locked(path, &g) == CDM_OK &&
            cdm_deffile_set(g, "Local", "Database", "new.db") == CDM_OK)
            cdm_deffile_save(g);
        _exit(3); /* not reached when the hook runs */
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_file(path, sample);
    ck_assert_uint_eq(mode_of(path), 0644);
    /* The written temporary file is there, complete; the next save
     * removes it. */
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -c '^\\.defs\\.ini\\.cdm-tmp\\.'", dir);
    {
        FILE *p = popen(cmd, "r");
        ck_assert_int_eq(fscanf(p, "%d", &leftovers), 1);
        pclose(p);
    }
    ck_assert_int_eq(leftovers, 1);
    f = open_ok(path);
    ck_status(cdm_deffile_set(f, "Local", "Database", "later.db"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    {
        FILE *p = popen(cmd, "r");
        ck_assert_int_eq(fscanf(p, "%d", &leftovers), 1);
        pclose(p);
    }
    ck_assert_int_eq(leftovers, 0);
    assert_loaded(path, "Local", "Database", "later.db");
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* ------------------------------------ found by the fuzzer (tests/fuzz) */

/* A copy of a tests/fixtures/fuzz/load file in dir, as `name`. */
static char *fuzz_fixture(const char *dir, const char *fixture)
{
    char rel[256], *text;
    size_t len;
    char *path;

    snprintf(rel, sizeof rel, "fuzz/load/%s", fixture);
    text = slurp(tu_fixture(rel), &len);
    path = tu_write_bytes(dir, "defs.ini", text, len, 0600);
    free(text);
    return path;
}

/* "\v[B]" is a section header to the reader: to the editor too. */
START_TEST(test_fuzz_vtab_before_section)
{
    char *dir = tu_tmpdir(), *path = fuzz_fixture(dir, "editor_vtab_before_section.ini");
    cdm_deffile *f = open_ok(path);

    ck_status(cdm_deffile_set(f, "A", "BusyTimeout", "5"), CDM_OK);
    ck_status(cdm_deffile_copy(f, "A", "C"), CDM_OK);
    ck_status(cdm_deffile_delete(f, "A"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, "\v[B]\nDriverID=SQLite\n\n[C]\nDriverID=SQLite\n"
                "BusyTimeout=5\n");
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* "Data\" + "base=a.db" is the key Database: set rewrites it as such. */
START_TEST(test_fuzz_key_continued_before_equals)
{
    char *dir = tu_tmpdir();
    char *path = fuzz_fixture(dir, "editor_key_continued_before_equals.ini");
    cdm_deffile *f = open_ok(path);

    assert_get(f, "J", "Database", "a.db");
    ck_status(cdm_deffile_set(f, "J", "Database", "b.db"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, "[J]\nDriverID=SQLite\nDatabase=b.db\n");
    assert_loaded(path, "J", "Database", "b.db");
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* A header continued over two lines: the copy takes its keys only. */
START_TEST(test_fuzz_copy_header_continued)
{
    char *dir = tu_tmpdir();
    char *path = fuzz_fixture(dir, "editor_copy_header_continued.ini");
    cdm_deffile *f = open_ok(path);

    ck_status(cdm_deffile_copy(f, "AB", "C"), CDM_OK);
    ck_status(cdm_deffile_set(f, "AB", "Database", "x.db"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, "[A\\\nB]\nDriverID=SQLite\nDatabase=x.db\n\n[C]\n"
                "DriverID=SQLite\n");
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* A key the file has, though a new one could not be written so, is found:
 * listed, read, set and unset. */
START_TEST(test_fuzz_key_with_blank)
{
    char *dir = tu_tmpdir(), *path = fuzz_fixture(dir, "editor_key_with_blank.ini");
    cdm_deffile *f = open_ok(path);
    char **keys = NULL;
    size_t n = 0;

    ck_status(cdm_deffile_keys(f, "A", &keys, &n), CDM_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(keys[0], "DriverID x");
    cdm_strv_free(keys);
    assert_get(f, "A", "DriverID x", "SQLite");
    ck_status(cdm_deffile_set(f, "A", "DriverID x", "PG"), CDM_OK);
    assert_get(f, "A", "driverid X", "PG");
    /* A new key of that shape is still refused. */
    ck_status(cdm_deffile_set(f, "A", "Other key", "1"), CDM_ERR_INVALID);
    ck_status(cdm_deffile_unset(f, "A", "DriverID x"), CDM_OK);
    ck_status(cdm_deffile_save(f), CDM_OK);
    cdm_deffile_free(f);
    assert_file(path, "[A]\n");
    free(path);
    tu_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deffile");
    TCase *bytes = tcase_create("bytes");
    TCase *values = tcase_create("values");
    TCase *files = tcase_create("files");
    TCase *conflicts = tcase_create("conflicts");
    TCase *fuzz = tcase_create("found by fuzzing");

    tcase_add_test(fuzz, test_fuzz_vtab_before_section);
    tcase_add_test(fuzz, test_fuzz_key_continued_before_equals);
    tcase_add_test(fuzz, test_fuzz_copy_header_continued);
    tcase_add_test(fuzz, test_fuzz_key_with_blank);
    suite_add_tcase(s, fuzz);

    tcase_add_test(bytes, test_open_and_save_unchanged_is_identical);
    tcase_add_test(bytes, test_set_changes_only_that_line);
    tcase_add_test(bytes, test_new_key_goes_after_last_key);
    tcase_add_test(bytes, test_crlf_bom_and_no_final_newline_kept);
    tcase_add_test(bytes, test_no_final_newline_edit_and_undo_identical);
    tcase_add_test(bytes, test_delete_takes_its_block_only);
    tcase_add_test(bytes, test_delete_last_and_first);
    tcase_add_test(bytes, test_rename_keeps_the_header_spacing);
    tcase_add_test(bytes, test_copy_appends_the_lines);
    tcase_add_test(bytes, test_unset_removes_every_occurrence);
    tcase_add_test(bytes, test_continued_value_rewritten_as_one_line);
    suite_add_tcase(s, bytes);

    tcase_add_test(values, test_awkward_values_round_trip);
    tcase_add_test(values, test_awkward_value_replacing_a_commented_line);
    tcase_add_test(values, test_refused_values_names_and_keys);
    tcase_add_test(values, test_unknown_key_warns_with_suggestion);
    suite_add_tcase(s, values);

    tcase_add_test(files, test_missing_file_created_0600);
    tcase_add_test(files, test_mode_kept);
    tcase_add_test(files, test_unsafe_or_broken_file_not_opened);
    tcase_add_test(files, test_symlink_followed);
    suite_add_tcase(s, files);

    tcase_add_test(conflicts, test_conflict_when_changed_on_disk);
    tcase_add_test(conflicts, test_conflict_when_created_or_removed);
    tcase_add_test(conflicts, test_open_locked_holds_the_lock_until_free);
    tcase_add_test(conflicts, test_locked_editors_lose_no_update);
    tcase_add_test(conflicts, test_crash_before_rename_leaves_old_file);
    tcase_set_timeout(conflicts, 60);
    suite_add_tcase(s, conflicts);

    return tu_run(s);
}
