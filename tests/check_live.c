/* check_live.c - live definitions: changes that would take a working pool
 * down are refused and the pool keeps serving; cdm_manager_watch follows
 * the files; the default manager keeps its first load's messages. */
#include "testutil.h"
#include "cdm_int.h"   /* cdm__manager_watch_looks, a test hook */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PARAMS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static cdm_manager *m;
static char *dir;
static struct tu_log log_;

static void setup(void)
{
    dir = tu_tmpdir();
    tu_log_init(&log_);
    ck_status(cdm_manager_new(&m), CDM_OK);
    cdm_manager_set_log(m, tu_log_fn, &log_);
}

static void teardown(void)
{
    cdm_manager_free(m);
    m = NULL;
    tu_rmtree(dir);
}

/* A pooled SQLite definition on a file of its own, as a file's text. */
static char *live_file(const char *extra)
{
    char text[2048];

    snprintf(text, sizeof text,
             "[Base]\n"                                 /* 1 */
             "DriverID=SQLite\n"                        /* 2 */
             "Database=%s/live.db\n"                    /* 3 */
             "\n"                                       /* 4 */
             "[Live]\n"                                 /* 5 */
             "ConnectionDef=Base\n"                     /* 6 */
             "Pooled=True\n"                            /* 7 */
             "POOL_MaximumItems=4\n"                    /* 8 */
             "%s", dir, extra ? extra : "");
    return tu_write(dir, "defs.ini", text, 0600);
}

static const char *live_db(void)
{
    static char path[4200];

    snprintf(path, sizeof path, "%s/live.db", dir);
    return path;
}

/* One connect, a query and a return: the pool serves. */
static void serves(const char *name)
{
    cdm_conn *c = NULL;
    cdm_result *r = NULL;

    ck_status(cdm_connect(m, name, &c), CDM_OK);
    ck_status(cdm_query(c, "SELECT 41 + 1", NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "42");
    cdm_result_free(r);
    cdm_disconnect(c);
}

static void param_is(const char *name, const char *key, const char *want)
{
    char *v = NULL;

    ck_status(cdm_manager_get_param(m, name, key, &v), CDM_OK);
    ck_assert_str_eq(v, want);
    cdm_free(v);
}

/* Live loaded from the file, its pool built and holding a connection. */
static char *live_serving(const char *extra)
{
    char *path = live_file(extra);

    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    serves("Live");
    ck_assert_int_eq(cdm_manager_pool_stats(m, "Live", &(cdm_pool_stats){ 0 }),
                     CDM_OK);
    return path;
}

static int64_t created(const char *name)
{
    cdm_pool_stats s;

    ck_status(cdm_manager_pool_stats(m, name, &s), CDM_OK);
    return s.total;
}

/* ----------------------------------------------------- refusals */

/* Each of these would leave Live's pool unable to connect: refused as a
 * whole, naming definition, key and reason; nothing changes, and the pool
 * keeps its connection and serves. */
START_TEST(test_set_param_refusals_keep_the_pool)
{
    static const struct {
        const char *key, *value;
        int status;
        const char *says;
    } cases[] = {
        { "POOL_MaximumItems", "0", CDM_ERR_INVALID,
          "POOL_MaximumItems=0 would never give a connection" },
        { "POOL_MaximumItems", "lots", CDM_ERR_INVALID,
          "POOL_MaximumItems: 'lots' is not a whole number" },
        { "DriverID", "MSSQL", CDM_ERR_DRIVER,
          "DriverID MSSQL (Microsoft SQL Server) is a FireDAC driver cdm "
          "does not support" },
        { "DriverID", "Nope", CDM_ERR_DRIVER, "unknown DriverID 'Nope'" },
        { "ConnectionDef", "Missing", CDM_ERR_NOT_FOUND, "Missing" },
        { "ConnectionDef", "Live", CDM_ERR_INVALID, "Live" },
        { "ConnectionDef", NULL, CDM_ERR_INVALID, "DriverID is not set" },
        { "Pooled", "sometimes", CDM_ERR_INVALID, "not a boolean" },
    };
    char *path = live_serving(NULL);

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ck_status(cdm_manager_set_param(m, "Live", cases[i].key,
                                        cases[i].value), cases[i].status);
        ck_errmsg_has("'Live'");
        ck_errmsg_has(cases[i].says);
        /* In memory: no line of the file is named. */
        ck_assert_msg(!strstr(cdm_errmsg(), "defs.ini:"), "case %zu: %s", i,
                      cdm_errmsg());
        param_is("Live", "POOL_MaximumItems", "4");
        param_is("Live", "ConnectionDef", "Base");
        ck_assert_int_eq(created("Live"), 1);
        serves("Live");
    }
    /* A required key removed from the parent. */
    ck_status(cdm_manager_set_param(m, "Base", "Database", NULL),
              CDM_ERR_INVALID);
    ck_errmsg_has("change refused, nothing changed: definition 'Live' has a "
                  "pool in use and could no longer connect");
    ck_errmsg_has("Database is not set");
    param_is("Base", "Database", live_db());
    serves("Live");
    free(path);
}
END_TEST

START_TEST(test_valid_change_applies_at_once)
{
    char *path = live_serving(NULL);

    ck_status(cdm_manager_set_param(m, "Live", "POOL_MaximumItems", "8"),
              CDM_OK);
    param_is("Live", "POOL_MaximumItems", "8");
    serves("Live");
    /* No longer pooled: allowed, the pool goes. */
    ck_status(cdm_manager_set_param(m, "Live", "Pooled", "False"), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Live", "DriverID", "MSSQL"), CDM_OK);
    free(path);
}
END_TEST

/* A parent a pooled definition needs cannot be deleted; the pooled
 * definition itself can. */
START_TEST(test_delete_parent_refused)
{
    char *path = live_serving(NULL);

    ck_status(cdm_manager_delete_def(m, "Base"), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("definition 'Live' has a pool in use");
    ck_errmsg_has("Base");
    ck_assert(cdm_manager_has_def(m, "Base"));
    serves("Live");
    ck_status(cdm_manager_delete_def(m, "Live"), CDM_OK);
    ck_status(cdm_manager_delete_def(m, "Base"), CDM_OK);
    free(path);
}
END_TEST

/* A definition broken before the change (its variable unset since its
 * pool was built) does not block changes elsewhere. */
START_TEST(test_already_broken_does_not_block)
{
    cdm_conn *c = NULL;

    setenv("CDM_LIVE_DB", ":memory:", 1);
    ck_status(cdm_manager_add_def(m, "Env", PARAMS("DriverID=SQLite",
              "Database=$(CDM_LIVE_DB)", "Pooled=True")), CDM_OK);
    serves("Env");
    unsetenv("CDM_LIVE_DB");
    ck_status(cdm_manager_add_def(m, "Other", PARAMS("DriverID=SQLite",
              "Database=:memory:")), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Other", "BusyTimeout", "5"), CDM_OK);
    /* The pool still lends what it has. */
    ck_status(cdm_connect(m, "Env", &c), CDM_OK);
    cdm_disconnect(c);
}
END_TEST

/* A value set in memory is shown without the line of the file it
 * replaced. */
START_TEST(test_memory_value_names_no_line)
{
    char *path = live_file(NULL);
    cdm_conn *c = NULL;

    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    unsetenv("CDM_LIVE_UNSET");
    ck_status(cdm_manager_set_param(m, "Base", "Database",
                                    "$(CDM_LIVE_UNSET)"), CDM_OK);
    ck_status(cdm_connect(m, "Base", &c), CDM_ERR_INVALID);
    ck_errmsg_has("definition 'Base'");
    ck_errmsg_has("CDM_LIVE_UNSET");
    ck_assert_msg(!strstr(cdm_errmsg(), "defs.ini"), "%s", cdm_errmsg());
    free(path);
}
END_TEST

/* A reload is held to the same rule: the file's line is named, the old
 * definitions keep serving. */
START_TEST(test_reload_refused_keeps_serving)
{
    char *path = live_serving(NULL);

    free(tu_write(dir, "defs.ini",
                  "[Base]\nDriverID=SQLite\nDatabase=x.db\n\n[Live]\n"
                  "ConnectionDef=Base\nPooled=True\nPOOL_MaximumItems=lots\n",
                  0600));
    ck_status(cdm_manager_reload(m), CDM_ERR_INVALID);
    ck_errmsg_has("definition 'Live' has a pool in use");
    ck_errmsg_has("defs.ini:8:");
    ck_errmsg_has("'lots' is not a whole number");
    param_is("Live", "POOL_MaximumItems", "4");
    param_is("Base", "Database", live_db());
    serves("Live");
    free(path);
}
END_TEST

/* A reload that drops the pooled definition is allowed, and says so; one
 * that replaces a value set in memory says that. */
START_TEST(test_reload_says_what_it_discards)
{
    char *path = live_serving(NULL);

    ck_status(cdm_manager_set_param(m, "Base", "BusyTimeout", "77"), CDM_OK);
    free(tu_write(dir, "defs.ini", "[Base]\nDriverID=SQLite\n"
                  "Database=:memory:\nBusyTimeout=5\n", 0600));
    ck_status(cdm_manager_reload(m), CDM_OK);
    param_is("Base", "BusyTimeout", "5");
    ck_assert_int_eq(tu_log_count(&log_, "reload: definition 'Base': "
                                  "BusyTimeout, set in memory, is replaced "
                                  "by the file's value"), 1);
    ck_assert_int_eq(tu_log_count(&log_, "defs.ini:4)"), 1);
    ck_assert_int_eq(tu_log_count(&log_, "reload: definition 'Live' is no "
                                  "longer defined; its pool closes"), 1);
    ck_assert(!cdm_manager_has_def(m, "Live"));
    free(path);
}
END_TEST

/* ----------------------------------------------------- the watch */

static uint64_t looks(void)
{
    return cdm__manager_watch_looks(m);
}

/* Replaces the file as an editor does: a new file renamed over it. */
static void save(const char *text)
{
    char tmp[4200], dst[4200];

    free(tu_write(dir, "defs.ini.tmp", text, 0600));
    snprintf(tmp, sizeof tmp, "%s/defs.ini.tmp", dir);
    snprintf(dst, sizeof dst, "%s/defs.ini", dir);
    ck_assert_int_eq(rename(tmp, dst), 0);
}

static bool param_now(const char *name, const char *key, const char *want)
{
    char *v = NULL;
    bool same = cdm_manager_get_param(m, name, key, &v) == CDM_OK &&
                strcmp(v, want) == 0;

    cdm_free(v);
    return same;
}

START_TEST(test_watch_follows_edits)
{
    char *path = live_serving(NULL);
    char text[2048];

    ck_status(cdm_manager_watch(m, 20), CDM_OK);
    snprintf(text, sizeof text, "[Base]\nDriverID=SQLite\nDatabase=%s/live.db\n"
             "\n[Live]\nConnectionDef=Base\nPooled=True\nPOOL_MaximumItems=8\n",
             dir);
    save(text);
    ck_eventually(param_now("Live", "POOL_MaximumItems", "8"), 10000);
    serves("Live");
    /* The watch says so after the change applies: wait for the line. */
    ck_eventually(tu_log_count(&log_, "watch: definition files changed; "
                               "reloaded") == 1, 10000);
    /* An edit in place (same inode) is seen too. */
    free(live_file("BusyTimeout=9\n"));
    ck_eventually(param_now("Live", "BusyTimeout", "9"), 10000);
    ck_eventually(tu_log_count(&log_, "watch: definition files changed; "
                               "reloaded") == 2, 10000);
    free(path);
}
END_TEST

/* A bad edit: logged once as an error naming file and line, the pool
 * serving throughout; the next good edit applies. */
START_TEST(test_watch_bad_edit_logged_once)
{
    char *path = live_serving(NULL);
    uint64_t seen;
    char text[2048];

    ck_status(cdm_manager_watch(m, 20), CDM_OK);
    snprintf(text, sizeof text, "[Base]\nDriverID=SQLite\nDatabase=%s/live.db\n"
             "\n[Live]\nConnectionDef=Base\nPooled=True\nPOOL_MaximumItems=lots\n",
             dir);
    save(text);
    ck_eventually(tu_log_count(&log_, "watch: the changed definition files "
                               "were not reloaded") == 1, 10000);
    ck_assert_int_eq(tu_log_count(&log_, "defs.ini:8:"), 1);
    /* Three more looks at the unchanged bad file: nothing more said. */
    seen = looks();
    ck_eventually(looks() >= seen + 3, 10000);
    ck_assert_int_eq(tu_log_count(&log_, "were not reloaded"), 1);
    param_is("Live", "POOL_MaximumItems", "4");
    serves("Live");
    /* A syntax error is another change: said once more. */
    save("[Base\n");
    ck_eventually(tu_log_count(&log_, "were not reloaded") == 2, 10000);
    ck_assert_int_eq(tu_log_count(&log_, "defs.ini:1: section header"), 1);
    serves("Live");
    /* Fixed: applied. */
    snprintf(text, sizeof text, "[Base]\nDriverID=SQLite\nDatabase=%s/live.db\n"
             "\n[Live]\nConnectionDef=Base\nPooled=True\nPOOL_MaximumItems=6\n",
             dir);
    save(text);
    ck_eventually(param_now("Live", "POOL_MaximumItems", "6"), 10000);
    serves("Live");
    free(path);
}
END_TEST

/* The file gone and back: said once, then reloaded. */
START_TEST(test_watch_file_gone_and_back)
{
    char *path = live_serving(NULL);
    char text[2048];

    ck_status(cdm_manager_watch(m, 20), CDM_OK);
    ck_assert_int_eq(unlink(path), 0);
    ck_eventually(tu_log_count(&log_, "were not reloaded") == 1, 10000);
    serves("Live");
    snprintf(text, sizeof text, "[Base]\nDriverID=SQLite\nDatabase=%s/live.db\n"
             "\n[Live]\nConnectionDef=Base\nPooled=True\nPOOL_MaximumItems=5\n",
             dir);
    save(text);
    ck_eventually(param_now("Live", "POOL_MaximumItems", "5"), 10000);
    ck_assert_int_eq(tu_log_count(&log_, "were not reloaded"), 1);
    free(path);
}
END_TEST

START_TEST(test_watch_arguments)
{
    uint64_t seen;

    ck_status(cdm_manager_watch(NULL, 100), CDM_ERR_INVALID);
    ck_status(cdm_manager_watch(m, 5), CDM_ERR_INVALID);
    ck_errmsg_has("at least 10 ms");
    ck_status(cdm_manager_watch(m, -1), CDM_ERR_INVALID);
    /* Watching with no file and no pool: the thread runs, looks. */
    ck_status(cdm_manager_watch(m, 10), CDM_OK);
    seen = looks();
    ck_eventually(looks() >= seen + 2, 10000);
    ck_status(cdm_manager_watch(m, 0), CDM_OK);
    ck_status(cdm_manager_close(m, 0), CDM_OK);
    ck_status(cdm_manager_watch(m, 100), CDM_ERR_CLOSED);
}
END_TEST

/* ------------------------------------------------ the default manager */

static void fresh_default(const char *defs)
{
    unsetenv("CDM_CONNECTION_DEFS");
    cdm_manager_free(cdm_manager_default());
    if (defs)
        setenv("CDM_CONNECTION_DEFS", defs, 1);
}

/* Its first load's warnings reach the first callback installed, once. */
START_TEST(test_default_keeps_first_load_warnings)
{
    char *path = tu_write(dir, "auto.ini", "[App]\nDriverID=SQLite\n"
                          "Database=:memory:\nPooling=True\n"
                          "Password=hunter2\n", 0640);
    struct tu_log first, second;
    cdm_manager *d;

    fresh_default(path);
    d = cdm_manager_default();
    ck_assert_ptr_nonnull(d);
    tu_log_init(&first);
    cdm_manager_set_log(d, tu_log_fn, &first);
    ck_assert_int_eq(tu_log_count(&first, "unknown key Pooling (did you "
                                  "mean Pooled?)"), 1);
    ck_assert_int_eq(tu_log_count(&first, "holds a password in a file "
                                  "others can read"), 1);
    ck_assert_int_eq(tu_log_count(&first, "hunter2"), 0);
    ck_assert_int_eq(first.n, 2);
    /* Delivered once: a second callback gets only what comes after. */
    tu_log_init(&second);
    cdm_manager_set_log(d, tu_log_fn, &second);
    ck_assert_int_eq(second.n, 0);
    fresh_default(NULL);
    free(path);
}
END_TEST

/* A failed automatic load: connect says why with the load's status, and
 * the first callback gets it as an error. */
START_TEST(test_default_failed_load_status)
{
    char *path = tu_write(dir, "auto.ini", "[App\nDriverID=SQLite\n", 0600);
    struct tu_log first;
    cdm_manager *d;
    cdm_conn *c = NULL;

    fresh_default(path);
    d = cdm_manager_default();
    ck_status(cdm_connect(d, "App", &c), CDM_ERR_PARSE);
    ck_assert_ptr_null(c);
    ck_errmsg_has("$CDM_CONNECTION_DEFS: ");
    ck_errmsg_has("auto.ini:1: section header without closing ']'");
    ck_errmsg_has("definition 'App' is not defined");
    tu_log_init(&first);
    cdm_manager_set_log(d, tu_log_fn, &first);
    ck_assert_int_eq(first.n, 1);
    ck_assert_int_eq(first.levels[0], CDM_LOG_ERROR);
    ck_assert_int_eq(tu_log_count(&first, "auto.ini:1:"), 1);
    /* A definition added since is found as usual. */
    ck_status(cdm_manager_add_def(d, "Mem", PARAMS("DriverID=SQLite",
              "Database=:memory:")), CDM_OK);
    ck_status(cdm_connect(d, "Mem", &c), CDM_OK);
    cdm_disconnect(c);
    fresh_default(NULL);
    free(path);
}
END_TEST

/* ------------------------------------------------------------ hammer */

struct hammer {
    atomic_bool stop;
    atomic_long ok, failed, changes, refused;
    char failure[512];
};

static void *h_worker(void *arg)
{
    struct hammer *h = arg;

    while (!atomic_load(&h->stop)) {
        cdm_conn *c = NULL;
        cdm_result *r = NULL;
        int rc = cdm_connect(m, "Live", &c);
        if (rc == CDM_OK)
            rc = cdm_query(c, "SELECT 1", NULL, 0, &r);
        if (rc == CDM_OK)
            atomic_fetch_add(&h->ok, 1);
        else if (atomic_fetch_add(&h->failed, 1) == 0)
            snprintf(h->failure, sizeof h->failure, "%s", cdm_errmsg());
        cdm_result_free(r);
        cdm_disconnect(c);
    }
    return NULL;
}

/* Good and bad in-memory changes, one after another. */
static void *h_setter(void *arg)
{
    struct hammer *h = arg;
    static const char *const values[][2] = {
        { "POOL_MaximumItems", "2" }, { "POOL_MaximumItems", "0" },
        { "POOL_MaximumItems", "6" }, { "DriverID", "MSSQL" },
        { "ConnectionDef", "Live" }, { "BusyTimeout", "7" },
        { "ConnectionDef", "Nowhere" }, { "POOL_MaximumItems", "-1" },
    };
    unsigned i = 0;

    while (!atomic_load(&h->stop)) {
        const char *const *kv = values[i++ % 8];
        if (cdm_manager_set_param(m, "Live", kv[0], kv[1]) == CDM_OK)
            atomic_fetch_add(&h->changes, 1);
        else
            atomic_fetch_add(&h->refused, 1);
    }
    return NULL;
}

/* The file rewritten, good and bad, with reloads of its own besides the
 * watch's; and the parent deleted (refused) now and then. */
static void *h_editor(void *arg)
{
    struct hammer *h = arg;
    unsigned i = 0;

    while (!atomic_load(&h->stop)) {
        static const char *const extra[] = {
            "BusyTimeout=3\n", "POOL_MinimumItems=1\n",
            "POOL_MaximumItems=lots\n", "",
        };
        char text[5000];
        snprintf(text, sizeof text, "[Base]\nDriverID=SQLite\n"
                 "Database=%s\n\n[Live]\nConnectionDef=Base\nPooled=True\n"
                 "POOL_MaximumItems=4\n%s", live_db(), extra[i++ % 4]);
        /* Saved as cdm and editors save: written aside, renamed over. */
        save(text);
        cdm_manager_reload(m);
        if (cdm_manager_delete_def(m, "Base") == CDM_OK)
            atomic_fetch_add(&h->failed, 1000000);   /* never allowed */
    }
    return NULL;
}

/* Connects through every kind of change at once, with the watch on: not
 * one fails, and refusals leave the pool serving. */
START_TEST(test_hammer_changes_while_serving)
{
    struct hammer h = { 0 };
    pthread_t w[8], set, edit;
    int run_ms = tu_env_ms("CDM_RACE_SECONDS", 2000, 50);
    char *path = live_serving(NULL);

    ck_status(cdm_manager_watch(m, 10), CDM_OK);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&w[i], NULL, h_worker, &h), 0);
    ck_assert_int_eq(pthread_create(&set, NULL, h_setter, &h), 0);
    ck_assert_int_eq(pthread_create(&edit, NULL, h_editor, &h), 0);
    tu_sleep_ms(run_ms);   /* how long to hammer, not a synchronisation */
    atomic_store(&h.stop, true);
    for (int i = 0; i < 8; i++)
        pthread_join(w[i], NULL);
    pthread_join(set, NULL);
    pthread_join(edit, NULL);
    printf("hammer: %ld connects, %ld failed, %ld changes, %ld refused\n",
           atomic_load(&h.ok), atomic_load(&h.failed),
           atomic_load(&h.changes), atomic_load(&h.refused));
    ck_assert_msg(atomic_load(&h.failed) == 0, "%ld failed: %s",
                  atomic_load(&h.failed), h.failure);
    ck_assert_int_gt(atomic_load(&h.ok), 0);
    ck_assert_int_gt(atomic_load(&h.changes), 0);
    ck_assert_int_gt(atomic_load(&h.refused), 0);
    serves("Live");
    free(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("live");
    TCase *rule = tcase_create("safety rule");
    TCase *watch = tcase_create("watch");
    TCase *dflt = tcase_create("default manager");

    tcase_add_checked_fixture(rule, setup, teardown);
    tcase_add_test(rule, test_set_param_refusals_keep_the_pool);
    tcase_add_test(rule, test_valid_change_applies_at_once);
    tcase_add_test(rule, test_delete_parent_refused);
    tcase_add_test(rule, test_already_broken_does_not_block);
    tcase_add_test(rule, test_memory_value_names_no_line);
    tcase_add_test(rule, test_reload_refused_keeps_serving);
    tcase_add_test(rule, test_reload_says_what_it_discards);
    suite_add_tcase(s, rule);

    tcase_add_checked_fixture(watch, setup, teardown);
    tcase_set_timeout(watch, 30);
    tcase_add_test(watch, test_watch_follows_edits);
    tcase_add_test(watch, test_watch_bad_edit_logged_once);
    tcase_add_test(watch, test_watch_file_gone_and_back);
    tcase_add_test(watch, test_watch_arguments);
    suite_add_tcase(s, watch);

    {
        TCase *hammer = tcase_create("hammer");
        tcase_add_checked_fixture(hammer, setup, teardown);
        tcase_set_timeout(hammer, 120);
        tcase_add_test(hammer, test_hammer_changes_while_serving);
        suite_add_tcase(s, hammer);
    }

    tcase_add_checked_fixture(dflt, setup, teardown);
    tcase_add_test(dflt, test_default_keeps_first_load_warnings);
    tcase_add_test(dflt, test_default_failed_load_status);
    suite_add_tcase(s, dflt);
    return tu_run(s);
}
