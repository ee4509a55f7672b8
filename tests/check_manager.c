/* check_manager.c - the manager as a whole: default manager, load/reload all or nothing, close and free, threads, logging, pool figures. */
#define _GNU_SOURCE
#include "testutil.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PARAMS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define SQLITE_MEM "DriverID=SQLite", "Database=:memory:"

#define ck_errmsg_lacks(needle)                                              \
    ck_assert_msg(strstr(cdm_errmsg(), (needle)) == NULL,                    \
                  "errmsg '%s' shows '%s'", cdm_errmsg(), (needle))

/* Asserts get_param(name, key) is `want`. */
#define ck_param(m, name, key, want)                                         \
    do {                                                                     \
        char *ck_v_ = NULL;                                                  \
        ck_status(cdm_manager_get_param((m), (name), (key), &ck_v_), CDM_OK); \
        ck_assert_str_eq(ck_v_, (want));                                     \
        cdm_free(ck_v_);                                                     \
    } while (0)

static cdm_manager *manager(struct tu_log *log)
{
    cdm_manager *m = NULL;

    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_assert_ptr_nonnull(m);
    if (log) {
        tu_log_init(log);
        cdm_manager_set_log(m, tu_log_fn, log);
    }
    return m;
}

/* Asserts the manager's names are exactly `want` (NULL-terminated). */
static void ck_names(cdm_manager *m, const char *const *want)
{
    char **names = NULL;
    size_t n = 0, nwant = 0;

    while (want[nwant])
        nwant++;
    ck_status(cdm_manager_def_names(m, &names, &n), CDM_OK);
    ck_assert_uint_eq(n, nwant);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(names[i], want[i]);
    ck_assert_ptr_null(names[n]);
    cdm_strv_free(names);
}

static void ck_connects(cdm_manager *m, const char *name)
{
    cdm_conn *c = NULL;
    cdm_result *r = NULL;
    int rc = cdm_connect(m, name, &c);

    ck_assert_msg(rc == CDM_OK, "connect '%s': %s: %s", name,
                  cdm_strerror(rc), cdm_errmsg());
    ck_status(cdm_query(c, "SELECT 'up'", NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "up");
    cdm_result_free(r);
    cdm_disconnect(c);
}

/* Frees whatever default manager exists and sets $CDM_CONNECTION_DEFS for
 * the next one (NULL: unset).  Needed with CK_FORK=no, where the default
 * manager outlives a test. */
static void fresh_default(const char *defs)
{
    unsetenv("CDM_CONNECTION_DEFS");
    cdm_manager_free(cdm_manager_default());
    if (defs)
        setenv("CDM_CONNECTION_DEFS", defs, 1);
}

static const char *const V1 =
    "[Alpha]\n"                 /* 1 */
    "DriverID=SQLite\n"         /* 2 */
    "Database=:memory:\n"       /* 3 */
    "BusyTimeout=100\n"         /* 4 */
    "\n"                        /* 5 */
    "[Beta]\n"                  /* 6 */
    "DriverID=SQLite\n"         /* 7 */
    "Database=:memory:\n";      /* 8 */

static const char *const V2 =
    "[Alpha]\n"
    "DriverID=SQLite\n"
    "Database=:memory:\n"
    "BusyTimeout=200\n"
    "\n"
    "[Gamma]\n"
    "DriverID=SQLite\n"
    "Database=:memory:\n";

/* ------------------------------------------------------ default manager */

START_TEST(test_default_loads_env_file)
{
    cdm_manager *m;

    fresh_default(tu_fixture("good/def_default.ini"));
    m = cdm_manager_default();
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(cdm_manager_has_def(m, "Def_FromEnv"), 1);
    ck_names(m, PARAMS("Def_FromEnv"));
    ck_connects(m, "Def_FromEnv");
    cdm_manager_free(m);
    unsetenv("CDM_CONNECTION_DEFS");
}
END_TEST

START_TEST(test_default_same_pointer)
{
    cdm_manager *m;

    fresh_default(NULL);
    m = cdm_manager_default();
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_eq(cdm_manager_default(), m);
    ck_assert_ptr_eq(cdm_manager_default(), m);
    cdm_manager_free(m);
}
END_TEST

#define RACERS 8

struct racer {
    pthread_barrier_t *start;
    cdm_manager *got;
};

static void *race_default(void *arg)
{
    struct racer *r = arg;

    pthread_barrier_wait(r->start);
    r->got = cdm_manager_default();
    return NULL;
}

START_TEST(test_default_threads_race)
{
    pthread_barrier_t start;
    pthread_t th[RACERS];
    struct racer rs[RACERS];
    cdm_manager *m;

    fresh_default(tu_fixture("good/def_default.ini"));
    pthread_barrier_init(&start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        rs[i].start = &start;
        rs[i].got = NULL;
        ck_assert_int_eq(pthread_create(&th[i], NULL, race_default, &rs[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);

    m = cdm_manager_default();
    for (int i = 0; i < RACERS; i++)
        ck_assert_ptr_eq(rs[i].got, m);
    /* Loaded once: a second load would have failed with EXISTS. */
    ck_names(m, PARAMS("Def_FromEnv"));
    cdm_manager_free(m);
    unsetenv("CDM_CONNECTION_DEFS");
}
END_TEST

START_TEST(test_default_fresh_after_free)
{
    cdm_manager *m;

    fresh_default(tu_fixture("good/def_default.ini"));
    m = cdm_manager_default();
    ck_status(cdm_manager_add_def(m, "OldPrivate", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Def_FromEnv", "BusyTimeout", "5"),
              CDM_OK);
    cdm_manager_free(m);

    m = cdm_manager_default();
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(cdm_manager_has_def(m, "OldPrivate"), 0);
    ck_names(m, PARAMS("Def_FromEnv"));   /* the file is loaded again */
    ck_status(cdm_manager_set_param(m, "Def_FromEnv", "BusyTimeout", NULL),
              CDM_OK);
    ck_connects(m, "Def_FromEnv");
    ck_assert_ptr_eq(cdm_manager_default(), m);
    cdm_manager_free(m);
    unsetenv("CDM_CONNECTION_DEFS");
}
END_TEST

START_TEST(test_default_env_unset_loads_nothing)
{
    cdm_manager *m;
    cdm_conn *c = NULL;

    fresh_default(NULL);
    m = cdm_manager_default();
    ck_assert_ptr_nonnull(m);
    ck_names(m, PARAMS(NULL));
    ck_assert_int_eq(cdm_manager_has_def(m, "Def_FromEnv"), 0);
    ck_status(cdm_connect(m, "Def_FromEnv", &c), CDM_ERR_NOT_FOUND);
    ck_assert_ptr_null(c);
    ck_errmsg_has("Def_FromEnv");
    cdm_manager_free(m);

    /* Set but empty is the same as unset. */
    fresh_default("");
    m = cdm_manager_default();
    ck_names(m, PARAMS(NULL));
    ck_status(cdm_connect(m, "Def_FromEnv", &c), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Def_FromEnv");
    cdm_manager_free(m);
    unsetenv("CDM_CONNECTION_DEFS");
}
END_TEST

START_TEST(test_default_env_missing_file)
{
    cdm_manager *m;
    cdm_conn *c = NULL;

    fresh_default("/nonexistent-cdm-dir/def_missing.ini");
    m = cdm_manager_default();
    ck_assert_ptr_nonnull(m);
    ck_names(m, PARAMS(NULL));
    /* The load's own status: a broken file, not a wrong name. */
    ck_status(cdm_connect(m, "Anything", &c), CDM_ERR_IO);
    ck_assert_ptr_null(c);
    ck_errmsg_has("Anything");
    ck_errmsg_has("CDM_CONNECTION_DEFS");
    ck_errmsg_has("def_missing.ini");
    cdm_manager_free(m);
    unsetenv("CDM_CONNECTION_DEFS");
}
END_TEST

/* ------------------------------------------------------ load and reload */

START_TEST(test_load_syntax_error_adds_nothing)
{
    cdm_manager *m = manager(NULL);
    char where[4200];

    ck_status(cdm_manager_add_def(m, "Keep", PARAMS(SQLITE_MEM)), CDM_OK);
    snprintf(where, sizeof where, "%s:10",
             tu_fixture("bad/def_syntax_last_line.ini"));
    ck_status(cdm_manager_load_file(m, tu_fixture("bad/def_syntax_last_line.ini")),
              CDM_ERR_PARSE);
    ck_errmsg_has(where);
    ck_assert_int_eq(cdm_manager_has_def(m, "Def_SyntaxA"), 0);
    ck_assert_int_eq(cdm_manager_has_def(m, "Def_SyntaxB"), 0);
    ck_names(m, PARAMS("Keep"));
    /* Nor is the file remembered for reload. */
    ck_status(cdm_manager_reload(m), CDM_OK);
    ck_names(m, PARAMS("Keep"));

    ck_status(cdm_manager_load_file(m, "/nonexistent-cdm-dir/def_x.ini"),
              CDM_ERR_IO);
    ck_errmsg_has("/nonexistent-cdm-dir/def_x.ini");
    ck_names(m, PARAMS("Keep"));
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_load_syntax_error_hides_password)
{
    cdm_manager *m = manager(NULL);
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "colon.ini",
                          "[Colon]\n"                   /* 1 */
                          "DriverID=SQLite\n"           /* 2 */
                          "Database=:memory:\n"         /* 3 */
                          "Password: Corr3ct-H0rse\n",  /* 4 */
                          0600);
    char where[4200];

    snprintf(where, sizeof where, "%s:4", path);
    ck_status(cdm_manager_load_file(m, path), CDM_ERR_PARSE);
    ck_errmsg_has(where);
    ck_errmsg_lacks("Corr3ct-H0rse");
    ck_assert_int_eq(cdm_manager_has_def(m, "Colon"), 0);
    free(path);
    tu_rmtree(dir);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_load_clash_adds_nothing)
{
    cdm_manager *m = manager(NULL);
    char first[4200], second[4200];

    snprintf(first, sizeof first, "%s:14", tu_fixture("good/def_inherit.ini"));
    snprintf(second, sizeof second, "%s:7", tu_fixture("bad/def_clash.ini"));
    ck_status(cdm_manager_load_file(m, tu_fixture("good/def_inherit.ini")), CDM_OK);
    ck_status(cdm_manager_load_file(m, tu_fixture("bad/def_clash.ini")),
              CDM_ERR_EXISTS);
    ck_errmsg_has("def_base");
    ck_errmsg_has(first);
    ck_errmsg_has(second);
    ck_assert_int_eq(cdm_manager_has_def(m, "Def_ClashNew"), 0);
    ck_names(m, PARAMS("Def_Child", "Def_Grandchild", "Def_Base"));
    ck_param(m, "Def_Base", "BusyTimeout", "500");
    ck_status(cdm_manager_reload(m), CDM_OK);
    ck_assert_int_eq(cdm_manager_has_def(m, "Def_ClashNew"), 0);

    /* A file clashing with a private definition is refused the same way. */
    ck_status(cdm_manager_add_def(m, "def_fromenv", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_load_file(m, tu_fixture("good/def_default.ini")),
              CDM_ERR_EXISTS);
    ck_errmsg_has("Def_FromEnv");
    ck_names(m, PARAMS("Def_Child", "Def_Grandchild", "Def_Base", "def_fromenv"));
    /* The same file twice clashes with itself. */
    ck_status(cdm_manager_load_file(m, tu_fixture("good/def_inherit.ini")),
              CDM_ERR_EXISTS);
    ck_errmsg_has("def_inherit.ini:6");
    ck_errmsg_has("Def_Child");
    ck_names(m, PARAMS("Def_Child", "Def_Grandchild", "Def_Base", "def_fromenv"));
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_reload_picks_up_changes)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", V1, 0600);

    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_param(m, "Alpha", "BusyTimeout", "100");
    /* In-memory changes to file definitions are replaced by the file. */
    ck_status(cdm_manager_set_param(m, "Alpha", "BusyTimeout", "999"), CDM_OK);
    ck_status(cdm_manager_delete_def(m, "Beta"), CDM_OK);
    ck_status(cdm_manager_reload(m), CDM_OK);
    ck_param(m, "Alpha", "BusyTimeout", "100");
    ck_names(m, PARAMS("Alpha", "Beta"));

    free(tu_write(dir, "defs.ini", V2, 0600));
    ck_status(cdm_manager_reload(m), CDM_OK);
    ck_param(m, "Alpha", "BusyTimeout", "200");
    ck_assert_int_eq(cdm_manager_has_def(m, "Beta"), 0);
    ck_names(m, PARAMS("Alpha", "Gamma"));
    ck_connects(m, "Gamma");
    ck_connects(m, "Alpha");
    /* The first reload said what it replaced; the second had nothing. */
    ck_assert_int_eq(log.n, 1);
    ck_assert_msg(strstr(log.lines[0], "reload: definition 'Alpha': "
                         "BusyTimeout, set in memory, is replaced by the "
                         "file's value (") &&
                  strstr(log.lines[0], "defs.ini:4)"), "%s", log.lines[0]);
    ck_assert_int_eq(log.levels[0], CDM_LOG_WARN);
    free(path);
    tu_rmtree(dir);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_reload_keeps_private_defs)
{
    cdm_manager *m = manager(NULL);
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", V1, 0600);

    ck_status(cdm_manager_add_def(m, "Mine",
              PARAMS("ConnectionDef=Alpha", "BusyTimeout=7")), CDM_OK);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    free(tu_write(dir, "defs.ini", V2, 0600));
    ck_status(cdm_manager_reload(m), CDM_OK);
    ck_names(m, PARAMS("Alpha", "Gamma", "Mine"));
    ck_param(m, "Mine", "BusyTimeout", "7");
    ck_connects(m, "Mine");

    /* A file that now holds a private definition's name: refused whole. */
    free(tu_write(dir, "defs.ini",
                  "[Alpha]\nDriverID=SQLite\nDatabase=:memory:\nBusyTimeout=300\n"
                  "[mine]\nDriverID=SQLite\nDatabase=:memory:\n", 0600));
    ck_status(cdm_manager_reload(m), CDM_ERR_EXISTS);
    ck_errmsg_has("mine");
    ck_names(m, PARAMS("Alpha", "Gamma", "Mine"));
    ck_param(m, "Alpha", "BusyTimeout", "200");
    ck_param(m, "Mine", "BusyTimeout", "7");
    free(path);
    tu_rmtree(dir);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_reload_parse_error_changes_nothing)
{
    cdm_manager *m = manager(NULL);
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", V1, 0600);
    char *other = tu_write(dir, "other.ini",
                           "[Omega]\nDriverID=SQLite\nDatabase=:memory:\n", 0600);
    char where[4200];

    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_status(cdm_manager_load_file(m, other), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Mine", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Alpha", "BusyTimeout", "555"), CDM_OK);
    /* The second file changes for the better, the first breaks: the good
     * change must not be applied either. */
    free(tu_write(dir, "other.ini",
                  "[Omega]\nDriverID=SQLite\nDatabase=:memory:\n"
                  "[Psi]\nDriverID=SQLite\nDatabase=:memory:\n", 0600));
    free(tu_write(dir, "defs.ini",
                  "[Alpha]\n"              /* 1 */
                  "DriverID=SQLite\n"      /* 2 */
                  "Database=:memory:\n"    /* 3 */
                  "BusyTimeout=300\n"      /* 4 */
                  "[Delta]\n"              /* 5 */
                  "DriverID=SQLite\n"      /* 6 */
                  "no equals sign here\n", /* 7 */
                  0600));
    snprintf(where, sizeof where, "%s:7", path);
    ck_status(cdm_manager_reload(m), CDM_ERR_PARSE);
    ck_errmsg_has(where);
    ck_names(m, PARAMS("Alpha", "Beta", "Omega", "Mine"));
    ck_param(m, "Alpha", "BusyTimeout", "555");
    ck_connects(m, "Beta");

    /* The file is still watched: fixed, it reloads. */
    free(tu_write(dir, "defs.ini", V2, 0600));
    ck_status(cdm_manager_reload(m), CDM_OK);
    ck_names(m, PARAMS("Alpha", "Gamma", "Omega", "Psi", "Mine"));
    ck_param(m, "Alpha", "BusyTimeout", "200");
    free(path);
    free(other);
    tu_rmtree(dir);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_reload_deleted_file_changes_nothing)
{
    cdm_manager *m = manager(NULL);
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "defs.ini", V1, 0600);

    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Beta", "BusyTimeout", "42"), CDM_OK);
    ck_assert_int_eq(unlink(path), 0);
    ck_status(cdm_manager_reload(m), CDM_ERR_IO);
    ck_errmsg_has(path);
    ck_names(m, PARAMS("Alpha", "Beta"));
    ck_param(m, "Alpha", "BusyTimeout", "100");
    ck_param(m, "Beta", "BusyTimeout", "42");
    ck_connects(m, "Alpha");
    free(path);
    tu_rmtree(dir);
    cdm_manager_free(m);
}
END_TEST

/* ------------------------------------------------------- close and free */

START_TEST(test_close_refuses_new_connects)
{
    cdm_manager *m = manager(NULL);
    cdm_conn *c = NULL;

    ck_status(cdm_manager_add_def(m, "Shut", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_close(m, 0), CDM_OK);   /* nothing borrowed */
    ck_status(cdm_connect(m, "Shut", &c), CDM_ERR_CLOSED);
    ck_assert_ptr_null(c);
    ck_errmsg_has("Shut");
    ck_status(cdm_connect(m, "Shut", &c), CDM_ERR_CLOSED);
    ck_assert_ptr_null(c);
    ck_status(cdm_manager_close(m, 0), CDM_OK);   /* twice is fine */
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_close_keeps_open_connection)
{
    cdm_manager *m = manager(NULL);
    cdm_conn *c = NULL, *late = NULL;
    cdm_result *r = NULL;
    int rc;

    ck_status(cdm_manager_add_def(m, "Open", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_connect(m, "Open", &c), CDM_OK);
    ck_status(cdm_exec(c, "CREATE TABLE t (x); INSERT INTO t VALUES (1)",
                       NULL, 0, NULL), CDM_OK);
    rc = cdm_manager_close(m, 0);
    ck_assert_msg(rc == CDM_OK || rc == CDM_ERR_BUSY, "close: %s: %s",
                  cdm_strerror(rc), cdm_errmsg());
    ck_status(cdm_connect(m, "Open", &late), CDM_ERR_CLOSED);
    ck_assert_ptr_null(late);

    ck_status(cdm_query(c, "SELECT x FROM t", NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "1");
    cdm_result_free(r);
    cdm_disconnect(c);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_free_with_open_connection)
{
    cdm_manager *m = manager(NULL);
    cdm_conn *c = NULL;
    cdm_result *r = NULL;
    int64_t n = 0;

    ck_status(cdm_manager_add_def(m, "Outliving", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_connect(m, "Outliving", &c), CDM_OK);
    cdm_manager_free(m);

    /* The connection does not depend on the manager it came from. */
    ck_status(cdm_exec(c, "CREATE TABLE t (x)", NULL, 0, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO t VALUES (?), (?)",
                       PARAMS("a", "b"), 2, &n), CDM_OK);
    ck_assert_int_eq(n, 2);
    ck_status(cdm_query(c, "SELECT count(*) FROM t", NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "2");
    ck_assert_str_eq(cdm_conn_def_name(c), "Outliving");
    ck_status(cdm_ping(c), CDM_OK);
    cdm_result_free(r);
    cdm_disconnect(c);
}
END_TEST

/* --------------------------------------------------------------- threads */

#define WORKERS 8
#define ITERATIONS 2000
#define CONNECTORS 2
#define CONNECTS 300

struct worker {
    cdm_manager *m;
    int id;
    char failure[512];      /* first unexpected result, "" if none */
};

#define FAIL_IF(cond, ...)                                                   \
    do {                                                                     \
        if ((cond) && !w->failure[0]) {                                      \
            snprintf(w->failure, sizeof w->failure, __VA_ARGS__);            \
            return NULL;                                                     \
        }                                                                    \
    } while (0)

static void *edit_defs(void *arg)
{
    struct worker *w = arg;
    char name[32], num[32], pool[48];
    char **names;
    char *v;
    size_t n;
    int rc;

    snprintf(name, sizeof name, "Worker%d", w->id);
    for (int it = 0; it < ITERATIONS; it++) {
        bool seen_self = false, seen_shared = false;

        snprintf(num, sizeof num, "%d", it);
        snprintf(pool, sizeof pool, "POOL_MaximumItems=%d", it + 1);
        rc = cdm_manager_add_def(w->m, name,
                                 PARAMS("ConnectionDef=Shared", pool));
        FAIL_IF(rc != CDM_OK, "%s: add_def %d: %s", name, it, cdm_errmsg());
        rc = cdm_manager_set_param(w->m, name, "BusyTimeout", num);
        FAIL_IF(rc != CDM_OK, "%s: set_param %d: %s", name, it, cdm_errmsg());
        /* An expected failure: its message is this thread's own. */
        rc = cdm_manager_set_param(w->m, name, "Pooled", "maybe");
        FAIL_IF(rc != CDM_ERR_INVALID || !strstr(cdm_errmsg(), name),
                "%s: bad set_param %d: rc %d: %s", name, it, rc, cdm_errmsg());
        v = NULL;
        rc = cdm_manager_get_param(w->m, name, "BusyTimeout", &v);
        FAIL_IF(rc != CDM_OK || strcmp(v, num) != 0,
                "%s: get_param %d: %s", name, it, rc ? cdm_errmsg() : v);
        cdm_free(v);
        v = NULL;
        rc = cdm_manager_get_param(w->m, name, "Database", &v);
        FAIL_IF(rc != CDM_OK || strcmp(v, ":memory:") != 0,
                "%s: inherited get_param %d: %s", name, it, cdm_errmsg());
        cdm_free(v);
        FAIL_IF(cdm_manager_has_def(w->m, name) != 1, "%s: has_def %d", name, it);
        rc = cdm_manager_def_names(w->m, &names, &n);
        FAIL_IF(rc != CDM_OK, "%s: def_names %d: %s", name, it, cdm_errmsg());
        for (size_t i = 0; i < n; i++) {
            seen_self |= strcmp(names[i], name) == 0;
            seen_shared |= strcmp(names[i], "Shared") == 0;
        }
        cdm_strv_free(names);
        FAIL_IF(!seen_self || !seen_shared || n < 3 || n > WORKERS + 2,
                "%s: def_names %d: %zu names", name, it, n);
        rc = cdm_manager_delete_def(w->m, name);
        FAIL_IF(rc != CDM_OK, "%s: delete_def %d: %s", name, it, cdm_errmsg());
        FAIL_IF(cdm_manager_has_def(w->m, name) != 0, "%s: still there %d",
                name, it);
    }
    return NULL;
}

static void *connect_loop(void *arg)
{
    struct worker *w = arg;
    static const char *const defs[] = { "Shared", "Def_FromEnv" };

    for (int it = 0; it < CONNECTS; it++) {
        const char *def = defs[it % 2];
        cdm_conn *c = NULL;
        cdm_result *r = NULL;
        int rc = cdm_connect(w->m, def, &c);

        FAIL_IF(rc != CDM_OK, "connect %s %d: %s", def, it, cdm_errmsg());
        rc = cdm_query(c, "SELECT 1", NULL, 0, &r);
        if (rc == CDM_OK)
            cdm_result_free(r);
        cdm_disconnect(c);
        FAIL_IF(rc != CDM_OK, "query %s %d: %s", def, it, cdm_errmsg());
    }
    return NULL;
}

START_TEST(test_threads_edit_and_connect)
{
    cdm_manager *m = manager(NULL);
    pthread_t th[WORKERS + CONNECTORS];
    struct worker ws[WORKERS + CONNECTORS];

    ck_status(cdm_manager_load_file(m, tu_fixture("good/def_default.ini")), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Shared", PARAMS(SQLITE_MEM)), CDM_OK);
    for (int i = 0; i < WORKERS + CONNECTORS; i++) {
        ws[i].m = m;
        ws[i].id = i;
        ws[i].failure[0] = '\0';
        ck_assert_int_eq(pthread_create(&th[i], NULL,
                                        i < WORKERS ? edit_defs : connect_loop,
                                        &ws[i]), 0);
    }
    for (int i = 0; i < WORKERS + CONNECTORS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < WORKERS + CONNECTORS; i++)
        ck_assert_msg(ws[i].failure[0] == '\0', "thread %d: %s", i,
                      ws[i].failure);
    ck_names(m, PARAMS("Def_FromEnv", "Shared"));
    ck_connects(m, "Shared");
    cdm_manager_free(m);
}
END_TEST

/* --------------------------------------------------------------- logging */

/* Successful calls leave cdm_errmsg() as it was, like errno, even those
 * that log warnings or fail internally on the way. */
START_TEST(test_success_keeps_errmsg)
{
    cdm_manager *m = manager(NULL), *d;
    cdm_conn *c = NULL;
    char before[2048], **names = NULL, *v = NULL;

    ck_status(cdm_connect(m, "Nobody", &c), CDM_ERR_NOT_FOUND);
    snprintf(before, sizeof before, "%s", cdm_errmsg());
    ck_assert_ptr_nonnull(strstr(before, "Nobody"));

    ck_status(cdm_manager_load_file(m, tu_fixture("good/def_one_bad_value.ini")),
              CDM_OK);
    ck_assert_str_eq(cdm_errmsg(), before);
    ck_status(cdm_manager_add_def(m, "Typo", PARAMS(SQLITE_MEM, "Databse=x")),
              CDM_OK);
    ck_assert_str_eq(cdm_errmsg(), before);
    ck_status(cdm_manager_set_param(m, "Typo", "BusyTimeot", "1"), CDM_OK);
    ck_assert_str_eq(cdm_errmsg(), before);
    ck_status(cdm_manager_get_param(m, "Typo", "Database", &v), CDM_OK);
    cdm_free(v);
    ck_assert_str_eq(cdm_errmsg(), before);
    ck_status(cdm_manager_def_names(m, &names, NULL), CDM_OK);
    cdm_strv_free(names);
    ck_status(cdm_manager_reload(m), CDM_OK);
    ck_assert_str_eq(cdm_errmsg(), before);
    ck_status(cdm_connect(m, "Typo", &c), CDM_OK);
    cdm_disconnect(c);
    ck_status(cdm_manager_delete_def(m, "Typo"), CDM_OK);
    ck_assert_str_eq(cdm_errmsg(), before);

    /* Creating the default manager, whose file is missing, is not a
     * failure of this call. */
    fresh_default("/nonexistent-cdm-dir/def_missing.ini");
    ck_status(cdm_connect(m, "Nobody", &c), CDM_ERR_NOT_FOUND);
    snprintf(before, sizeof before, "%s", cdm_errmsg());
    d = cdm_manager_default();
    ck_assert_ptr_nonnull(d);
    ck_assert_str_eq(cdm_errmsg(), before);
    cdm_manager_free(d);
    unsetenv("CDM_CONNECTION_DEFS");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_log_levels_are_warn)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);

    ck_status(cdm_manager_add_def(m, "Typo", PARAMS(SQLITE_MEM, "Databse=x")),
              CDM_OK);
    ck_status(cdm_manager_set_param(m, "Typo", "BusyTimeot", "3"), CDM_OK);
    ck_status(cdm_manager_load_file(m, tu_fixture("good/def_one_bad_value.ini")),
              CDM_OK);
    ck_assert_int_ge(log.n, 3);
    for (int i = 0; i < log.n; i++)
        ck_assert_msg(log.levels[i] == CDM_LOG_WARN, "level %d for '%s'",
                      log.levels[i], log.lines[i]);
    ck_assert_int_eq(tu_log_count(&log, "Databse"), 1);
    ck_assert_int_eq(tu_log_count(&log, "BusyTimeot"), 1);
    ck_assert_int_ge(tu_log_count(&log, "Def_BadValue"), 1);

    /* Removed, the callback hears nothing more. */
    cdm_manager_set_log(m, NULL, NULL);
    ck_status(cdm_manager_set_param(m, "Typo", "Pasword", "x"), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "Pasword"), 0);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_readable_password_file_warns_without_password)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);
    char *dir = tu_tmpdir();
    char *open_file = tu_write(dir, "readable.ini",
                               "[Leaky]\nDriverID=SQLite\nDatabase=:memory:\n"
                               "Password=Tr0ub4dor-and-3\n", 0644);
    char *closed_file = tu_write(dir, "private.ini",
                                 "[Tight]\nDriverID=SQLite\nDatabase=:memory:\n"
                                 "Password=Tr0ub4dor-and-3\n", 0600);
    char *env_file = tu_write(dir, "env.ini",
                              "[FromVar]\nDriverID=SQLite\nDatabase=:memory:\n"
                              "Password=$(CDM_TEST_PW)\n", 0644);
    char *wide_open = tu_write(dir, "wide.ini",
                               "[Anyone]\nDriverID=SQLite\nDatabase=:memory:\n",
                               0666);

    ck_status(cdm_manager_load_file(m, open_file), CDM_OK);
    /* Also "Password is not used by driver SQLite": count only ours. */
    ck_assert_int_eq(tu_log_count(&log, "others can read"), 1);
    ck_assert_int_eq(log.levels[0], CDM_LOG_WARN);
    ck_assert_int_eq(tu_log_count(&log, "Leaky' holds a password"), 1);
    ck_assert_int_eq(tu_log_count(&log, "Tr0ub4dor"), 0);
    ck_connects(m, "Leaky");

    ck_status(cdm_manager_load_file(m, closed_file), CDM_OK);
    ck_status(cdm_manager_load_file(m, env_file), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "others can read"), 1);

    ck_status(cdm_manager_load_file(m, wide_open), CDM_ERR_INSECURE);
    ck_errmsg_has("wide.ini");
    ck_assert_int_eq(cdm_manager_has_def(m, "Anyone"), 0);
    free(open_file);
    free(closed_file);
    free(env_file);
    free(wide_open);
    tu_rmtree(dir);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_no_callback_prints_nothing)
{
    char *dir = tu_tmpdir();
    char *readable = tu_write(dir, "readable.ini",
                              "[Leaky]\nDriverID=SQLite\nDatabase=:memory:\n"
                              "Password=hunter2\nPasword=x\nBusyTimeout=never\n"
                              "BusyTimeout=later\n", 0644);
    char *fine = tu_write(dir, "fine.ini",
                          "[Noisy]\nDriverID=SQLite\nDatabase=:memory:\n"
                          "Pasword=x\nBusyTimeout=never\n",
                          0600);
    char *capture = NULL;
    int saved_out, saved_err, fd;
    cdm_manager *m;
    cdm_conn *c = NULL;
    struct stat st;

    ck_assert_int_ne(asprintf(&capture, "%s/captured", dir), -1);
    fflush(stdout);
    fflush(stderr);
    saved_out = dup(1);
    saved_err = dup(2);
    fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);

    /* Everything that would warn, with no callback installed. */
    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_status(cdm_manager_load_file(m, readable), CDM_OK);
    ck_status(cdm_manager_load_file(m, fine), CDM_OK);
    cdm_manager_add_def(m, "Typo", PARAMS(SQLITE_MEM, "Databse=x"));
    cdm_manager_set_param(m, "Typo", "Pasword", "x");
    cdm_manager_add_def(m, "Bad", PARAMS(SQLITE_MEM, "Pooled=maybe"));
    cdm_connect(m, "Noisy", &c);
    cdm_connect(m, "Nobody", &c);
    cdm_manager_set_log(m, NULL, NULL);
    cdm_manager_set_param(m, "Typo", "Databse", "y");
    cdm_manager_free(m);

    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    ck_assert_int_eq(fstat(fd, &st), 0);
    close(fd);
    ck_assert_int_eq(st.st_size, 0);
    ck_assert_ptr_null(c);
    free(capture);
    free(readable);
    free(fine);
    tu_rmtree(dir);
}
END_TEST

/* ----------------------------------------------------------------- pools */

START_TEST(test_pool_stats_without_pool)
{
    cdm_manager *m = manager(NULL);
    cdm_pool_stats st, zero;

    memset(&zero, 0, sizeof zero);
    ck_status(cdm_manager_add_def(m, "Plain", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_add_def(m, "PoolLater",
              PARAMS(SQLITE_MEM, "Pooled=True")), CDM_OK);

    ck_status(cdm_manager_pool_stats(m, "Plain", &st), CDM_ERR_STATE);
    ck_errmsg_has("definition 'Plain' is not pooled");
    ck_errmsg_has("Pooled=True");
    memset(&st, 0xab, sizeof st);
    ck_status(cdm_manager_pool_stats(m, "poollater", &st), CDM_OK);
    ck_assert_int_eq(memcmp(&st, &zero, sizeof st), 0);

    ck_status(cdm_manager_close_def(m, "Plain"), CDM_OK);
    ck_status(cdm_manager_close_def(m, "NoSuchDef"), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("NoSuchDef");
    ck_status(cdm_manager_pool_stats(m, "NoSuchDef", &st), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("NoSuchDef");
    ck_assert_int_eq(cdm_manager_has_def(m, "Plain"), 1);
    cdm_manager_free(m);
}
END_TEST

/* --------------------------------------------- figures of unpooled defs */

/* Not pooled (Pooled not True, here or inherited): CDM_ERR_STATE, saying
 * so.  Pooled, with or without a pool yet: CDM_OK.  Unknown: NOT_FOUND. */
START_TEST(test_pool_stats_not_pooled)
{
    cdm_manager *m = manager(NULL);
    cdm_pool_stats st, zero;
    cdm_conn *c = NULL;
    char before[2048];

    memset(&zero, 0, sizeof zero);
    ck_status(cdm_manager_add_def(m, "Plain", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Off", PARAMS(SQLITE_MEM, "Pooled=False")),
              CDM_OK);
    ck_status(cdm_manager_add_def(m, "Base", PARAMS(SQLITE_MEM, "Pooled=True")),
              CDM_OK);
    ck_status(cdm_manager_add_def(m, "Heir", PARAMS("ConnectionDef=Base")),
              CDM_OK);
    ck_status(cdm_manager_add_def(m, "Rebel",
              PARAMS("ConnectionDef=Base", "Pooled=False")), CDM_OK);

    memset(&st, 0xab, sizeof st);
    ck_status(cdm_manager_pool_stats(m, "plain", &st), CDM_ERR_STATE);
    ck_assert_str_eq(cdm_errmsg(), "definition 'Plain' is not pooled, so it "
                     "has no pool figures (Pooled=True would pool it)");
    ck_status(cdm_manager_pool_stats(m, "Off", &st), CDM_ERR_STATE);
    ck_errmsg_has("'Off' is not pooled");
    ck_status(cdm_manager_pool_stats(m, "Rebel", &st), CDM_ERR_STATE);
    ck_errmsg_has("'Rebel' is not pooled");
    /* A plain connection changes nothing. */
    ck_status(cdm_connect(m, "Plain", &c), CDM_OK);
    ck_status(cdm_manager_pool_stats(m, "Plain", &st), CDM_ERR_STATE);
    cdm_disconnect(c);

    /* Pooled through its parent, no pool yet: zeros, and a success
     * leaves the last error message alone. */
    snprintf(before, sizeof before, "%s", cdm_errmsg());
    memset(&st, 0xab, sizeof st);
    ck_status(cdm_manager_pool_stats(m, "Heir", &st), CDM_OK);
    ck_assert_int_eq(memcmp(&st, &zero, sizeof st), 0);
    ck_assert_str_eq(cdm_errmsg(), before);
    ck_connects(m, "Heir");
    ck_status(cdm_manager_pool_stats(m, "Heir", &st), CDM_OK);
    ck_assert_int_eq(st.acquired, 1);
    ck_assert_int_eq(st.idle, 1);

    /* No longer pooled: its pool goes, and so do its figures. */
    ck_status(cdm_manager_set_param(m, "Heir", "Pooled", "False"), CDM_OK);
    ck_status(cdm_manager_pool_stats(m, "Heir", &st), CDM_ERR_STATE);
    ck_status(cdm_manager_set_param(m, "Heir", "Pooled", NULL), CDM_OK);
    ck_status(cdm_manager_pool_stats(m, "Heir", &st), CDM_OK);
    ck_assert_int_eq(st.acquired, 1);   /* counted before, still there */
    ck_assert_int_eq(st.total, 0);

    ck_status(cdm_manager_pool_stats(m, "Nobody", &st), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Nobody");
    cdm_manager_free(m);
}
END_TEST

/* A definition that does not resolve (a missing parent) cannot tell
 * whether it is pooled; it has no pool, so its figures are zeros. */
START_TEST(test_pool_stats_unresolved_is_zero)
{
    cdm_manager *m = manager(NULL);
    cdm_pool_stats st, zero;

    memset(&zero, 0, sizeof zero);
    ck_status(cdm_manager_add_def(m, "Orphan", PARAMS("ConnectionDef=Gone")),
              CDM_OK);
    memset(&st, 0xab, sizeof st);
    ck_status(cdm_manager_pool_stats(m, "Orphan", &st), CDM_OK);
    ck_assert_int_eq(memcmp(&st, &zero, sizeof st), 0);
    cdm_manager_free(m);
}
END_TEST

/* ------------------------------------------------- unknown names */

/* A name that is not defined suggests the closest defined one, as it is
 * written, when it is close (at most a third of its length away, at
 * least one edit); nothing when none is. */
START_TEST(test_unknown_name_suggests_closest)
{
    cdm_manager *m = manager(NULL);
    cdm_conn *c = NULL;
    char *v = NULL;

    ck_status(cdm_manager_add_def(m, "Orders", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Reports", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Inventory",
              PARAMS(SQLITE_MEM, "Pooled=True")), CDM_OK);

    ck_status(cdm_connect(m, "Ordrs", &c), CDM_ERR_NOT_FOUND);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(cdm_errmsg(),
                     "no definition named 'Ordrs' (did you mean Orders?)");
    ck_status(cdm_connect(m, "REPROTS", &c), CDM_ERR_NOT_FOUND);
    ck_assert_str_eq(cdm_errmsg(),
                     "no definition named 'REPROTS' (did you mean Reports?)");
    ck_status(cdm_connect(m, "Inventroy", &c), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("(did you mean Inventory?)");
    /* Pooled, and asked for once by its name: the thread's cache of the
     * pool does not stand in for a misspelt name. */
    ck_connects(m, "Inventory");
    ck_status(cdm_connect(m, "Inventor", &c), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("(did you mean Inventory?)");

    /* Too far: two edits in four letters, or nothing alike. */
    ck_status(cdm_connect(m, "Odrs", &c), CDM_ERR_NOT_FOUND);
    ck_assert_str_eq(cdm_errmsg(), "no definition named 'Odrs'");
    ck_status(cdm_connect(m, "Payroll", &c), CDM_ERR_NOT_FOUND);
    ck_errmsg_lacks("did you mean");

    /* The same for the calls that look a definition up the same way. */
    ck_status(cdm_manager_get_param(m, "Ordrs", "Database", &v),
              CDM_ERR_NOT_FOUND);
    ck_assert_ptr_null(v);
    ck_errmsg_has("(did you mean Orders?)");
    ck_status(cdm_manager_test_def(m, "Ordrs", NULL, NULL), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("(did you mean Orders?)");
    ck_status(cdm_manager_set_param(m, "Ordrs", "LockingMode", "Normal"),
              CDM_ERR_NOT_FOUND);
    ck_assert_str_eq(cdm_errmsg(),
                     "no definition named 'Ordrs' (did you mean Orders?)");
    ck_status(cdm_manager_delete_def(m, "Reprts"), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("(did you mean Reports?)");
    ck_status(cdm_manager_close_def(m, "Inventroy"), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("(did you mean Inventory?)");
    ck_status(cdm_manager_pool_stats(m, "Inventroy", &(cdm_pool_stats){ 0 }),
              CDM_ERR_NOT_FOUND);
    ck_errmsg_has("(did you mean Inventory?)");
    ck_status(cdm_manager_delete_def(m, "Payroll"), CDM_ERR_NOT_FOUND);
    ck_assert_str_eq(cdm_errmsg(), "no definition named 'Payroll'");
    /* Nothing changed. */
    ck_assert(cdm_manager_has_def(m, "Reports"));

    /* A missing parent is another matter: no suggestion of the child. */
    ck_status(cdm_manager_add_def(m, "Child", PARAMS("ConnectionDef=Ordrs")),
              CDM_OK);
    ck_status(cdm_connect(m, "Child", &c), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("parent definition 'Ordrs' not found");
    ck_errmsg_lacks("did you mean");

    ck_connects(m, "orders");            /* no case differs enough */
    cdm_manager_free(m);
}
END_TEST

/* Of equally close names the first in the manager's order is suggested;
 * short names get one edit; a manager with no definitions suggests
 * nothing. */
START_TEST(test_unknown_name_suggestion_deterministic)
{
    cdm_manager *m = manager(NULL);
    cdm_conn *c = NULL;

    ck_status(cdm_connect(m, "Db", &c), CDM_ERR_NOT_FOUND);
    ck_assert_str_eq(cdm_errmsg(), "no definition named 'Db'");
    ck_status(cdm_manager_add_def(m, "Db2", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Db1", PARAMS(SQLITE_MEM)), CDM_OK);
    for (int i = 0; i < 3; i++) {
        ck_status(cdm_connect(m, "Db", &c), CDM_ERR_NOT_FOUND);
        ck_assert_str_eq(cdm_errmsg(),
                         "no definition named 'Db' (did you mean Db2?)");
    }
    ck_status(cdm_connect(m, "Db3", &c), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("(did you mean Db2?)");
    ck_status(cdm_connect(m, "D", &c), CDM_ERR_NOT_FOUND);
    ck_errmsg_lacks("did you mean");
    /* Nearer wins over first. */
    ck_status(cdm_manager_add_def(m, "Dbx", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Dbxy", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_connect(m, "Dbxyz", &c), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("(did you mean Dbxy?)");
    cdm_manager_free(m);
}
END_TEST

/* Among many definitions the failure still answers at once, and a long
 * name (beyond what is measured) gets no suggestion. */
START_TEST(test_unknown_name_many_defs)
{
    enum { DEFS = 20000 };
    cdm_manager *m = manager(NULL);
    cdm_conn *c = NULL;
    char name[32], longname[200];
    int64_t t0, took;

    for (int i = 0; i < DEFS; i++) {
        snprintf(name, sizeof name, "Service%05d", i);
        ck_status(cdm_manager_add_def(m, name, PARAMS(SQLITE_MEM)), CDM_OK);
    }
    t0 = tu_now_ms();
    for (int i = 0; i < 10; i++) {
        ck_status(cdm_connect(m, "Servise12345", &c), CDM_ERR_NOT_FOUND);
        ck_assert_str_eq(cdm_errmsg(), "no definition named 'Servise12345' "
                         "(did you mean Service12345?)");
        ck_status(cdm_connect(m, "Accounts", &c), CDM_ERR_NOT_FOUND);
        ck_errmsg_lacks("did you mean");
    }
    took = tu_now_ms() - t0;
    /* About 10 ms here; generous for valgrind and sanitizers. */
    ck_assert_msg(took < 5000, "20 failed lookups took %lld ms", (long long)took);
    memset(longname, 'S', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ck_status(cdm_connect(m, longname, &c), CDM_ERR_NOT_FOUND);
    ck_errmsg_lacks("did you mean");
    cdm_manager_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("manager");
    TCase *deflt = tcase_create("default");
    TCase *files = tcase_create("files");
    TCase *life = tcase_create("lifecycle");
    TCase *threads = tcase_create("threads");
    TCase *log = tcase_create("log");
    TCase *figures = tcase_create("figures");
    TCase *unknown = tcase_create("unknown_names");

    tcase_add_test(deflt, test_default_loads_env_file);
    tcase_add_test(deflt, test_default_same_pointer);
    tcase_add_test(deflt, test_default_threads_race);
    tcase_add_test(deflt, test_default_fresh_after_free);
    tcase_add_test(deflt, test_default_env_unset_loads_nothing);
    tcase_add_test(deflt, test_default_env_missing_file);
    suite_add_tcase(s, deflt);

    tcase_add_test(files, test_load_syntax_error_adds_nothing);
    tcase_add_test(files, test_load_syntax_error_hides_password);
    tcase_add_test(files, test_load_clash_adds_nothing);
    tcase_add_test(files, test_reload_picks_up_changes);
    tcase_add_test(files, test_reload_keeps_private_defs);
    tcase_add_test(files, test_reload_parse_error_changes_nothing);
    tcase_add_test(files, test_reload_deleted_file_changes_nothing);
    suite_add_tcase(s, files);

    tcase_add_test(life, test_close_refuses_new_connects);
    tcase_add_test(life, test_close_keeps_open_connection);
    tcase_add_test(life, test_free_with_open_connection);
    tcase_add_test(life, test_pool_stats_without_pool);
    suite_add_tcase(s, life);

    /* Generous: valgrind and loaded CI machines are slow. */
    tcase_set_timeout(threads, 120);
    tcase_add_test(threads, test_threads_edit_and_connect);
    suite_add_tcase(s, threads);

    tcase_add_test(log, test_log_levels_are_warn);
    tcase_add_test(log, test_success_keeps_errmsg);
    tcase_add_test(log, test_readable_password_file_warns_without_password);
    tcase_add_test(log, test_no_callback_prints_nothing);
    suite_add_tcase(s, log);

    tcase_add_test(figures, test_pool_stats_not_pooled);
    tcase_add_test(figures, test_pool_stats_unresolved_is_zero);
    suite_add_tcase(s, figures);

    tcase_set_timeout(unknown, 60);
    tcase_add_test(unknown, test_unknown_name_suggests_closest);
    tcase_add_test(unknown, test_unknown_name_suggestion_deterministic);
    tcase_add_test(unknown, test_unknown_name_many_defs);
    suite_add_tcase(s, unknown);

    return tu_run(s);
}
