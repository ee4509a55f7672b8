/* check_def.c - definition semantics: inheritance, $(VAR), strict values, required keys, unknown keys, add/set/delete. */
#define _GNU_SOURCE
#include "testutil.h"
#include "cdm_int.h"   /* the key table, checked against its sources */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A NULL-terminated parameter list for cdm_manager_add_def. */
#define PARAMS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define SQLITE_MEM "DriverID=SQLite", "Database=:memory:"

/* Asserts that cdm_errmsg() does not contain `needle` (e.g. a password). */
#define ck_errmsg_lacks(needle)                                              \
    ck_assert_msg(strstr(cdm_errmsg(), (needle)) == NULL,                    \
                  "errmsg '%s' shows '%s'", cdm_errmsg(), (needle))

/* Same as ck_errmsg_has, ignoring case (keys are shown as the caller
 * spelled them). */
#define ck_errmsg_has_nocase(needle)                                         \
    ck_assert_msg(strcasestr(cdm_errmsg(), (needle)) != NULL,                \
                  "errmsg '%s' lacks '%s'", cdm_errmsg(), (needle))

/* Asserts get_param(name, key) is `want`. */
#define ck_param(m, name, key, want)                                         \
    do {                                                                     \
        char *ck_v_ = NULL;                                                  \
        ck_status(cdm_manager_get_param((m), (name), (key), &ck_v_), CDM_OK); \
        ck_assert_str_eq(ck_v_, (want));                                     \
        cdm_free(ck_v_);                                                     \
    } while (0)

/* Asserts get_param(name, key) fails with `want` and leaves out alone. */
#define ck_param_fails(m, name, key, want)                                   \
    do {                                                                     \
        char *ck_v_ = NULL;                                                  \
        ck_status(cdm_manager_get_param((m), (name), (key), &ck_v_), (want)); \
        ck_assert_ptr_null(ck_v_);                                           \
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

static void load(cdm_manager *m, const char *fixture)
{
    ck_status(cdm_manager_load_file(m, tu_fixture(fixture)), CDM_OK);
}

/* Connects to `name`, checks the connection answers a query, disconnects. */
static void ck_connects(cdm_manager *m, const char *name)
{
    cdm_conn *c = NULL;
    cdm_result *r = NULL;
    int rc = cdm_connect(m, name, &c);

    ck_assert_msg(rc == CDM_OK, "connect '%s': %s: %s", name,
                  cdm_strerror(rc), cdm_errmsg());
    ck_assert_str_eq(cdm_conn_driver(c), "SQLite");
    ck_assert_str_eq(cdm_conn_def_name(c), name);
    ck_status(cdm_query(c, "SELECT 6 * 7", NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "42");
    cdm_result_free(r);
    cdm_disconnect(c);
}

/* Connecting to `name` fails with `want`; no connection comes back. */
static void ck_connect_fails(cdm_manager *m, const char *name, int want)
{
    cdm_conn *c = NULL;

    ck_status(cdm_connect(m, name, &c), want);
    ck_assert_ptr_null(c);
}

/* ------------------------------------------------------------ inheritance */

START_TEST(test_inherit_connectiondef)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Base",
              PARAMS(SQLITE_MEM, "BusyTimeout=500", "ApplicationName=base")),
              CDM_OK);
    ck_status(cdm_manager_add_def(m, "Kid",
              PARAMS("ConnectionDef=Base", "BusyTimeout=700")), CDM_OK);
    ck_param(m, "Kid", "BusyTimeout", "700");      /* own value wins */
    ck_param(m, "Kid", "ApplicationName", "base"); /* inherited */
    ck_param(m, "Kid", "DriverID", "SQLite");
    ck_param(m, "Base", "BusyTimeout", "500");     /* parent untouched */
    ck_connects(m, "Kid");
    cdm_manager_free(m);
}
END_TEST

/* For test_inherit_many_keys: the two definitions by name. */
static struct cdm_def *two_defs[2];

static struct cdm_def *two_lookup(void *ctx, const char *name)
{
    (void)ctx;
    for (int i = 0; i < 2; i++)
        if (strcasecmp(two_defs[i]->name, name) == 0)
            return two_defs[i];
    return NULL;
}

/* A child and its parent with hundreds of keys, half of them the same in
 * another case: each key is merged once, the child's value first. */
START_TEST(test_inherit_many_keys)
{
    struct cdm_def *base = cdm__def_new("Base", NULL, 0);
    struct cdm_def *kid = cdm__def_new("Kid", NULL, 0);
    struct cdm_resolved *r = NULL;
    char key[32], value[32];

    ck_assert_ptr_nonnull(base);
    ck_assert_ptr_nonnull(kid);
    ck_status(cdm__def_set(base, "DriverID", "SQLite", 0), CDM_OK);
    ck_status(cdm__def_set(kid, "ConnectionDef", "base", 0), CDM_OK);
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof key, "Note%d", i);
        snprintf(value, sizeof value, "base%d", i);
        ck_status(cdm__def_set(base, key, value, 0), CDM_OK);
        snprintf(key, sizeof key, "NOTE%d", i + 200);
        snprintf(value, sizeof value, "kid%d", i + 200);
        ck_status(cdm__def_set(kid, key, value, 0), CDM_OK);
    }
    two_defs[0] = base;
    two_defs[1] = kid;
    ck_status(cdm__resolve_chain("Kid", two_lookup, NULL, &r), CDM_OK);
    /* 600 notes, DriverID, ConnectionDef. */
    ck_assert_uint_eq(r->nkv, 602);
    ck_assert_str_eq(cdm__rfind(r, "note0")->value, "base0");
    ck_assert_str_eq(cdm__rfind(r, "note199")->value, "base199");
    ck_assert_str_eq(cdm__rfind(r, "note200")->value, "kid200");
    ck_assert_str_eq(cdm__rfind(r, "note399")->value, "kid399");
    ck_assert_str_eq(cdm__rfind(r, "note599")->value, "kid599");
    ck_assert_str_eq(cdm__rfind(r, "driverid")->value, "SQLite");
    cdm__resolved_free(r);
    cdm__def_free(base);
    cdm__def_free(kid);
}
END_TEST

START_TEST(test_inherit_parent_alias)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Base",
              PARAMS(SQLITE_MEM, "LockingMode=Exclusive")), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Kid",
              PARAMS("Parent=Base", "LockingMode=Normal")), CDM_OK);
    ck_param(m, "Kid", "LockingMode", "Normal");
    ck_param(m, "Kid", "Database", ":memory:");
    ck_connects(m, "Kid");
    /* Keys are case-insensitive, the inheritance keys too. */
    ck_status(cdm_manager_add_def(m, "Kid2", PARAMS("PARENT=base")), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Kid3",
              PARAMS("connectiondef=KID2", "lockingmode=Normal")), CDM_OK);
    ck_param(m, "Kid2", "LockingMode", "Exclusive");
    ck_param(m, "Kid3", "LockingMode", "Normal");
    ck_param(m, "Kid3", "databASE", ":memory:");
    ck_connects(m, "Kid3");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_inherit_three_levels_from_file)
{
    cdm_manager *m = manager(NULL);

    load(m, "good/def_inherit.ini");
    /* Def_Grandchild -> Def_Child -> Def_Base, each setting something. */
    ck_param(m, "Def_Grandchild", "ApplicationName", "grand");
    ck_param(m, "Def_Grandchild", "BusyTimeout", "700");
    ck_param(m, "Def_Grandchild", "ForeignKeys", "False");
    ck_param(m, "Def_Grandchild", "DriverID", "SQLite");
    ck_param(m, "Def_Child", "ApplicationName", "base");
    ck_param(m, "Def_Base", "BusyTimeout", "500");
    /* Names are matched case-insensitively. */
    ck_param(m, "def_grandchild", "busytimeout", "700");
    ck_connects(m, "Def_Grandchild");
    ck_connects(m, "Def_Child");
    ck_connects(m, "Def_Base");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_inherit_parent_added_after_child)
{
    cdm_manager *m = manager(NULL);

    /* Parents are looked up when used, so a child may come first. */
    ck_status(cdm_manager_add_def(m, "Early",
              PARAMS("ConnectionDef=Late", "BusyTimeout=42")), CDM_OK);
    ck_connect_fails(m, "Early", CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Late");
    ck_errmsg_has("Early");
    ck_status(cdm_manager_add_def(m, "Late", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_param(m, "Early", "Database", ":memory:");
    ck_param(m, "Early", "BusyTimeout", "42");
    ck_connects(m, "Early");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_inherit_cycle)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "CycA",
              PARAMS("ConnectionDef=CycB", SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_add_def(m, "CycB",
              PARAMS("ConnectionDef=CycA")), CDM_OK);
    ck_connect_fails(m, "CycA", CDM_ERR_INVALID);
    ck_errmsg_has("cycle");
    ck_errmsg_has("CycA");
    ck_errmsg_has("CycB");
    ck_connect_fails(m, "CycB", CDM_ERR_INVALID);
    ck_errmsg_has("CycA");
    ck_errmsg_has("CycB");
    ck_param_fails(m, "CycA", "Database", CDM_ERR_INVALID);
    ck_errmsg_has("cycle");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_inherit_self_cycle)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Narcissus",
              PARAMS("Parent=Narcissus", SQLITE_MEM)), CDM_OK);
    ck_connect_fails(m, "Narcissus", CDM_ERR_INVALID);
    ck_errmsg_has("cycle");
    ck_errmsg_has("Narcissus");

    /* The same from a file, where the message also says where. */
    load(m, "good/def_cycle.ini");
    ck_connect_fails(m, "Def_Self", CDM_ERR_INVALID);
    ck_errmsg_has("Def_Self");
    ck_errmsg_has("def_cycle.ini:");
    ck_connect_fails(m, "Def_CycA", CDM_ERR_INVALID);
    ck_errmsg_has("Def_CycA");
    ck_errmsg_has("Def_CycB");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_inherit_missing_parent)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Orphan",
              PARAMS("ConnectionDef=Nowhere", SQLITE_MEM)), CDM_OK);
    ck_connect_fails(m, "Orphan", CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Nowhere");
    ck_errmsg_has("Orphan");
    ck_param_fails(m, "Orphan", "Database", CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Nowhere");
    ck_errmsg_has("Orphan");

    /* Deleting a loaded parent orphans its file children the same way. */
    load(m, "good/def_inherit.ini");
    ck_status(cdm_manager_delete_def(m, "Def_Base"), CDM_OK);
    ck_connect_fails(m, "Def_Child", CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Def_Base");
    ck_errmsg_has("Def_Child");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_inherit_across_files)
{
    cdm_manager *m = manager(NULL);

    load(m, "good/def_inherit.ini");
    load(m, "good/def_other_file.ini");
    ck_param(m, "Def_Cousin", "ApplicationName", "cousin");
    ck_param(m, "Def_Cousin", "BusyTimeout", "500");
    ck_connects(m, "Def_Cousin");

    /* A private definition may inherit from a file one too. */
    ck_status(cdm_manager_add_def(m, "Private",
              PARAMS("ConnectionDef=Def_Cousin")), CDM_OK);
    ck_param(m, "Private", "ApplicationName", "cousin");
    ck_connects(m, "Private");
    cdm_manager_free(m);
}
END_TEST

/* ------------------------------------------------------------ $(VAR) */

START_TEST(test_env_expanded_in_get_param)
{
    cdm_manager *m = manager(NULL);

    setenv("CDM_TEST_DIR", "/srv/data", 1);
    setenv("CDM_TEST_APP", "billing", 1);
    ck_status(cdm_manager_add_def(m, "Env",
              PARAMS(SQLITE_MEM, "ApplicationName=$(CDM_TEST_APP)-$(CDM_TEST_APP)",
                     "Server=$(CDM_TEST_DIR)/x")), CDM_OK);
    ck_param(m, "Env", "ApplicationName", "billing-billing");
    ck_param(m, "Env", "Server", "/srv/data/x");
    /* Expanded when asked, not when added. */
    setenv("CDM_TEST_APP", "orders", 1);
    ck_param(m, "Env", "ApplicationName", "orders-orders");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_env_expanded_at_connect)
{
    cdm_manager *m = manager(NULL);

    setenv("CDM_TEST_DB", ":memory:", 1);
    setenv("CDM_TEST_BUSY", "250", 1);
    ck_status(cdm_manager_add_def(m, "EnvDb",
              PARAMS("DriverID=SQLite", "Database=$(CDM_TEST_DB)",
                     "BusyTimeout=$(CDM_TEST_BUSY)")), CDM_OK);
    ck_param(m, "EnvDb", "Database", ":memory:");
    ck_connects(m, "EnvDb");
    /* A child inherits the unexpanded value and expands it itself. */
    ck_status(cdm_manager_add_def(m, "EnvKid",
              PARAMS("Parent=EnvDb")), CDM_OK);
    ck_connects(m, "EnvKid");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_env_unset_variable)
{
    cdm_manager *m = manager(NULL);

    unsetenv("CDM_TEST_UNSET_DB");
    ck_status(cdm_manager_add_def(m, "NoEnv",
              PARAMS("DriverID=SQLite", "Database=$(CDM_TEST_UNSET_DB)")),
              CDM_OK);
    ck_param_fails(m, "NoEnv", "Database", CDM_ERR_INVALID);
    ck_errmsg_has("CDM_TEST_UNSET_DB");
    ck_errmsg_has("Database");

    ck_connect_fails(m, "NoEnv", CDM_ERR_INVALID);
    ck_errmsg_has("CDM_TEST_UNSET_DB");
    ck_errmsg_has("Database");
    ck_errmsg_has("NoEnv");

    /* Set now: the same definition works. */
    setenv("CDM_TEST_UNSET_DB", ":memory:", 1);
    ck_connects(m, "NoEnv");
    unsetenv("CDM_TEST_UNSET_DB");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_env_double_dollar_is_literal)
{
    cdm_manager *m = manager(NULL);

    unsetenv("CDM_TEST_NOT_EXPANDED");
    ck_status(cdm_manager_add_def(m, "Literal",
              PARAMS(SQLITE_MEM,
                     "ApplicationName=cost $$(CDM_TEST_NOT_EXPANDED) here",
                     "MonitorBy=a$$(b")), CDM_OK);
    ck_param(m, "Literal", "ApplicationName", "cost $(CDM_TEST_NOT_EXPANDED) here");
    ck_param(m, "Literal", "MonitorBy", "a$(b");
    ck_connects(m, "Literal");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_env_bad_syntax)
{
    static const char *const bad[] = {
        "ApplicationName=$(CDM_TEST_OPEN",
        "ApplicationName=x$(bad-name)y",
        "ApplicationName=$()",
        NULL
    };
    cdm_manager *m = manager(NULL);

    setenv("CDM_TEST_OPEN", "set", 1);
    for (size_t i = 0; bad[i]; i++) {
        ck_status(cdm_manager_add_def(m, "Syntax", PARAMS(SQLITE_MEM, bad[i])),
                  CDM_OK);
        ck_param_fails(m, "Syntax", "ApplicationName", CDM_ERR_INVALID);
        ck_errmsg_has("ApplicationName");
        ck_connect_fails(m, "Syntax", CDM_ERR_INVALID);
        ck_errmsg_has("ApplicationName");
        ck_errmsg_has("Syntax");
        ck_status(cdm_manager_delete_def(m, "Syntax"), CDM_OK);
    }
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_env_expanded_value_is_checked)
{
    cdm_manager *m = manager(NULL);

    setenv("CDM_TEST_V", "abc", 1);
    /* Not checkable when added ... */
    ck_status(cdm_manager_add_def(m, "Expanded",
              PARAMS(SQLITE_MEM, "POOL_MaximumItems=$(CDM_TEST_V)")), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Expanded", "Pooled", "$(CDM_TEST_V)"),
              CDM_OK);
    ck_status(cdm_manager_set_param(m, "Expanded", "Pooled", NULL), CDM_OK);
    /* ... but checked once expanded. */
    ck_connect_fails(m, "Expanded", CDM_ERR_INVALID);
    ck_errmsg_has("Expanded");
    ck_errmsg_has("POOL_MaximumItems");
    ck_errmsg_has("abc");

    setenv("CDM_TEST_V", "10", 1);
    ck_connects(m, "Expanded");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_env_error_hides_password)
{
    cdm_manager *m = manager(NULL);

    /* A password that happens to contain "$(...)" with a bad name: the
     * error names the key, never the password or a piece of it. */
    ck_status(cdm_manager_add_def(m, "Hidden_Def",
              PARAMS(SQLITE_MEM, "Password=Sup3r$(ecret-Word)")), CDM_OK);
    ck_connect_fails(m, "Hidden_Def", CDM_ERR_INVALID);
    ck_errmsg_has("Password");
    ck_errmsg_lacks("Sup3r");
    ck_errmsg_lacks("ecret-Word");
    ck_param_fails(m, "Hidden_Def", "Password", CDM_ERR_INVALID);
    ck_errmsg_lacks("ecret-Word");

    ck_status(cdm_manager_set_param(m, "Hidden_Def", "Password",
                                    "Sup3r$(ecret"), CDM_OK);
    ck_connect_fails(m, "Hidden_Def", CDM_ERR_INVALID);
    ck_errmsg_has("Password");
    ck_errmsg_lacks("Sup3r");
    ck_errmsg_lacks("ecret");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_env_error_on_value_set_in_memory)
{
    cdm_manager *m = manager(NULL);
    char line0[4200];

    /* A key added by set_param to a file definition has no line in the
     * file: its errors must not point at a line 0 that does not exist. */
    load(m, "good/def_inherit.ini");
    snprintf(line0, sizeof line0, "%s:0:", tu_fixture("good/def_inherit.ini"));
    setenv("CDM_TEST_V", "abc", 1);
    unsetenv("CDM_TEST_UNSET_PM");
    ck_status(cdm_manager_set_param(m, "Def_Base", "POOL_MaximumItems",
                                    "$(CDM_TEST_V)"), CDM_OK);
    ck_connect_fails(m, "Def_Base", CDM_ERR_INVALID);
    ck_errmsg_has("Def_Base");
    ck_errmsg_has("POOL_MaximumItems");
    ck_errmsg_has("abc");
    ck_errmsg_lacks(line0);

    ck_status(cdm_manager_set_param(m, "Def_Base", "POOL_MaximumItems",
                                    "$(CDM_TEST_UNSET_PM)"), CDM_OK);
    ck_param_fails(m, "Def_Base", "POOL_MaximumItems", CDM_ERR_INVALID);
    ck_errmsg_has("CDM_TEST_UNSET_PM");
    ck_errmsg_lacks(line0);
    cdm_manager_free(m);
}
END_TEST

/* ------------------------------------------------------- strict values */

START_TEST(test_bool_spellings_accepted)
{
    static const char *const ok[] = {
        "True", "False", "Yes", "No", "On", "Off", "1", "0",
        "TRUE", "false", "yes", "NO", "on", "OFF", "tRuE", "oFf", NULL
    };
    cdm_manager *m = manager(NULL);
    char param[64];

    ck_status(cdm_manager_add_def(m, "Target", PARAMS(SQLITE_MEM)), CDM_OK);
    for (size_t i = 0; ok[i]; i++) {
        snprintf(param, sizeof param, "Pooled=%s", ok[i]);
        ck_status(cdm_manager_add_def(m, "Bool", PARAMS(SQLITE_MEM, param)),
                  CDM_OK);
        ck_param(m, "Bool", "Pooled", ok[i]);   /* kept as written */
        ck_status(cdm_manager_delete_def(m, "Bool"), CDM_OK);

        ck_status(cdm_manager_set_param(m, "Target", "Pooled", ok[i]), CDM_OK);
        ck_param(m, "Target", "Pooled", ok[i]);
        ck_status(cdm_manager_set_param(m, "Target", "POOL_ResetOnRelease",
                                        ok[i]), CDM_OK);
    }
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_bool_refused)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Maybe",
              PARAMS(SQLITE_MEM, "Pooled=maybe")), CDM_ERR_INVALID);
    ck_errmsg_has("Maybe");
    ck_errmsg_has("Pooled");
    ck_errmsg_has("'maybe'");
    ck_assert_int_eq(cdm_manager_has_def(m, "Maybe"), 0);

    ck_status(cdm_manager_add_def(m, "Sure",
              PARAMS(SQLITE_MEM, "Pooled=True")), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Sure", "Pooled", "maybe"),
              CDM_ERR_INVALID);
    ck_errmsg_has("Sure");
    ck_errmsg_has("Pooled");
    ck_errmsg_has("'maybe'");
    ck_param(m, "Sure", "Pooled", "True");

    /* Close but not quite: empty, blanks, "T", "2". */
    ck_status(cdm_manager_set_param(m, "Sure", "Pooled", ""), CDM_ERR_INVALID);
    ck_errmsg_has("Pooled");
    ck_status(cdm_manager_set_param(m, "Sure", "Pooled", " True"),
              CDM_ERR_INVALID);
    ck_errmsg_has("' True'");
    ck_status(cdm_manager_set_param(m, "Sure", "Pooled", "T"), CDM_ERR_INVALID);
    ck_errmsg_has("'T'");
    ck_status(cdm_manager_set_param(m, "Sure", "Pooled", "2"), CDM_ERR_INVALID);
    ck_errmsg_has("'2'");
    ck_param(m, "Sure", "Pooled", "True");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_number_accepted)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Num",
              PARAMS(SQLITE_MEM, "POOL_MaximumItems=10", "BusyTimeout=0",
                     "POOL_ExpireTimeout=2147483647", "POOL_PingInterval=-1")),
              CDM_OK);
    ck_param(m, "Num", "POOL_MaximumItems", "10");
    ck_status(cdm_manager_set_param(m, "Num", "POOL_MaximumItems", "-1"), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Num", "POOL_MaximumItems", "7"), CDM_OK);
    ck_param(m, "Num", "POOL_MaximumItems", "7");
    ck_connects(m, "Num");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_number_refused)
{
    static const char *const bad[] = {
        "ten", "10ms", " 10", "+10", "1e3", "0x10", "1.5", "10 ",
        "99999999999999999999", NULL
    };
    cdm_manager *m = manager(NULL);
    char param[64];

    ck_status(cdm_manager_add_def(m, "Keep",
              PARAMS(SQLITE_MEM, "POOL_MaximumItems=10")), CDM_OK);
    for (size_t i = 0; bad[i]; i++) {
        snprintf(param, sizeof param, "POOL_MaximumItems=%s", bad[i]);
        ck_status(cdm_manager_add_def(m, "Numb", PARAMS(SQLITE_MEM, param)),
                  CDM_ERR_INVALID);
        ck_errmsg_has("Numb");
        ck_errmsg_has("POOL_MaximumItems");
        ck_errmsg_has(bad[i]);
        ck_assert_int_eq(cdm_manager_has_def(m, "Numb"), 0);

        ck_status(cdm_manager_set_param(m, "Keep", "POOL_MaximumItems", bad[i]),
                  CDM_ERR_INVALID);
        ck_errmsg_has("Keep");
        ck_errmsg_has("POOL_MaximumItems");
        ck_errmsg_has(bad[i]);
        ck_param(m, "Keep", "POOL_MaximumItems", "10");
    }
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_number_out_of_range)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Range",
              PARAMS(SQLITE_MEM, "POOL_ExpireTimeout=-1")), CDM_ERR_INVALID);
    ck_errmsg_has("Range");
    ck_errmsg_has("POOL_ExpireTimeout");
    ck_errmsg_has("-1");
    ck_errmsg_has("range");
    ck_errmsg_has("2147483647");
    ck_assert_int_eq(cdm_manager_has_def(m, "Range"), 0);

    ck_status(cdm_manager_add_def(m, "Range",
              PARAMS(SQLITE_MEM, "BusyTimeout=-5")), CDM_ERR_INVALID);
    ck_errmsg_has("Range");
    ck_errmsg_has("BusyTimeout");
    ck_errmsg_has("-5");
    ck_errmsg_has("range");
    ck_errmsg_has("2147483647");
    ck_assert_int_eq(cdm_manager_has_def(m, "Range"), 0);

    ck_status(cdm_manager_add_def(m, "Range",
              PARAMS(SQLITE_MEM, "BusyTimeout=5")), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Range", "BusyTimeout", "-5"),
              CDM_ERR_INVALID);
    ck_errmsg_has("range");
    ck_status(cdm_manager_set_param(m, "Range", "POOL_CleanupTimeout", "0"),
              CDM_ERR_INVALID);
    ck_errmsg_has("POOL_CleanupTimeout");
    ck_param(m, "Range", "BusyTimeout", "5");
    ck_param_fails(m, "Range", "POOL_CleanupTimeout", CDM_ERR_NOT_FOUND);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_enum_values)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "ModeDef",
              PARAMS(SQLITE_MEM, "OpenMode=ReadOnly")), CDM_OK);
    ck_status(cdm_manager_set_param(m, "ModeDef", "OpenMode", "readwrite"), CDM_OK);
    ck_connects(m, "ModeDef");

    ck_status(cdm_manager_add_def(m, "Whenever",
              PARAMS(SQLITE_MEM, "OpenMode=Sometimes")), CDM_ERR_INVALID);
    ck_errmsg_has("Whenever");
    ck_errmsg_has("OpenMode");
    ck_errmsg_has("Sometimes");
    ck_errmsg_has("CreateUTF8");
    ck_errmsg_has("ReadWrite");
    ck_errmsg_has("ReadOnly");
    ck_assert_int_eq(cdm_manager_has_def(m, "Whenever"), 0);

    ck_status(cdm_manager_set_param(m, "ModeDef", "OpenMode", "Sometimes"),
              CDM_ERR_INVALID);
    ck_errmsg_has("ModeDef");
    ck_errmsg_has("ReadOnly");
    ck_param(m, "ModeDef", "OpenMode", "readwrite");
    cdm_manager_free(m);
}
END_TEST

/* ---------------------------------------------------------- required */

START_TEST(test_required_driverid)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "NoDriver", PARAMS("Database=:memory:")),
              CDM_OK);
    ck_connect_fails(m, "NoDriver", CDM_ERR_INVALID);
    ck_errmsg_has("NoDriver");
    ck_errmsg_has("DriverID");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_required_database)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "NoDb", PARAMS("DriverID=SQLite")), CDM_OK);
    ck_connect_fails(m, "NoDb", CDM_ERR_INVALID);
    ck_errmsg_has("NoDb");
    ck_errmsg_has("Database");
    /* Set through a parent it is enough. */
    ck_status(cdm_manager_add_def(m, "HasDb", PARAMS("Database=:memory:")),
              CDM_OK);
    ck_status(cdm_manager_set_param(m, "NoDb", "ConnectionDef", "HasDb"), CDM_OK);
    ck_connects(m, "NoDb");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_unknown_driver)
{
    cdm_manager *m = manager(NULL);

    /* Accepted when added (FireDAC's stock files list such drivers) ... */
    ck_status(cdm_manager_add_def(m, "Sql",
              PARAMS("DriverID=MSSQL", "Database=master")), CDM_OK);
    /* ... and refused when used. */
    ck_connect_fails(m, "Sql", CDM_ERR_DRIVER);
    ck_errmsg_has("Sql");
    ck_errmsg_has("DriverID MSSQL (Microsoft SQL Server) is a FireDAC driver "
                  "cdm does not support");
    /* Not FireDAC's either: what cdm has, and why a virtual one fails. */
    ck_status(cdm_manager_add_def(m, "Odd",
              PARAMS("DriverID=Nope", "Database=x")), CDM_OK);
    ck_connect_fails(m, "Odd", CDM_ERR_DRIVER);
    ck_errmsg_has("unknown DriverID 'Nope' (cdm has PG (also PostgreSQL, "
                  "Postgres), MySQL (also MariaDB) and SQLite (also SQLite3)");
    ck_errmsg_has("FireDAC virtual drivers from FDDrivers.ini are not read");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_driver_aliases)
{
    static const char *const ids[] = { "SQLite", "sqlite", "SQLITE", "SQLite3",
                                       "sqlite3", NULL };
    cdm_manager *m = manager(NULL);
    char param[64];

    for (size_t i = 0; ids[i]; i++) {
        snprintf(param, sizeof param, "DriverID=%s", ids[i]);
        ck_status(cdm_manager_add_def(m, "Alias",
                  PARAMS(param, "Database=:memory:")), CDM_OK);
        ck_connects(m, "Alias");    /* also checks cdm_conn_driver */
        ck_param(m, "Alias", "DriverID", ids[i]);
        ck_status(cdm_manager_delete_def(m, "Alias"), CDM_OK);
    }
    cdm_manager_free(m);
}
END_TEST

/* -------------------------------------------------------- unknown keys */

START_TEST(test_unknown_keys_warned_with_suggestion)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);

    ck_status(cdm_manager_add_def(m, "Typos",
              PARAMS(SQLITE_MEM, "Pasword=hunter2", "MaximumItems=5",
                     "Databse=elsewhere.db")), CDM_OK);
    ck_assert_int_eq(cdm_manager_has_def(m, "Typos"), 1);
    ck_assert_int_eq(log.n, 3);
    for (int i = 0; i < log.n; i++) {
        ck_assert_int_eq(log.levels[i], CDM_LOG_WARN);
        ck_assert_msg(strstr(log.lines[i], "Typos") != NULL, "%s", log.lines[i]);
    }
    ck_assert_int_eq(tu_log_count(&log, "Pasword"), 1);
    ck_assert_int_eq(tu_log_count(&log, "did you mean Password"), 1);
    ck_assert_int_eq(tu_log_count(&log, "did you mean POOL_MaximumItems"), 1);
    ck_assert_int_eq(tu_log_count(&log, "did you mean Database"), 1);
    /* The value is never shown: a misspelt Password key would leak it. */
    ck_assert_int_eq(tu_log_count(&log, "hunter2"), 0);
    ck_assert_int_eq(tu_log_count(&log, "elsewhere"), 0);

    /* Kept as written: get_param still finds them, connect still works. */
    ck_param(m, "Typos", "Pasword", "hunter2");
    ck_param(m, "Typos", "MaximumItems", "5");
    ck_param(m, "Typos", "Database", ":memory:");
    ck_connects(m, "Typos");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_other_drivers_key_warns_not_checked)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);
    cdm_conn *c;

    /* Port belongs to PG and MySQL: in a SQLite definition it is unused,
     * so it is neither refused nor checked, only reported. */
    ck_status(cdm_manager_add_def(m, "Lite", PARAMS(SQLITE_MEM, "Port=abc")),
              CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "Port is not used by driver SQLite"), 1);
    ck_status(cdm_manager_set_param(m, "Lite", "UseSSL", "perhaps"), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "UseSSL is not used by driver SQLite"), 1);
    ck_status(cdm_connect(m, "Lite", &c), CDM_OK);
    cdm_disconnect(c);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_unknown_key_set_param_warns)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);

    ck_status(cdm_manager_add_def(m, "Later", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_assert_int_eq(log.n, 0);
    ck_status(cdm_manager_set_param(m, "Later", "Pasword", "s3cr3t-value"),
              CDM_OK);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(log.levels[0], CDM_LOG_WARN);
    ck_assert_int_eq(tu_log_count(&log, "did you mean Password"), 1);
    ck_assert_int_eq(tu_log_count(&log, "s3cr3t-value"), 0);
    ck_param(m, "Later", "Pasword", "s3cr3t-value");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_ignored_firedac_keys_silent)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);

    ck_status(cdm_manager_add_def(m, "FireDAC",
              PARAMS(SQLITE_MEM, "MonitorBy=Remote", "MetaDefSchema=dbo")),
              CDM_OK);
    ck_status(cdm_manager_set_param(m, "FireDAC", "MetaDefCatalog", "main"),
              CDM_OK);
    ck_assert_msg(log.n == 0, "unexpected warning: %s", log.lines[0]);
    ck_param(m, "FireDAC", "MonitorBy", "Remote");
    ck_connects(m, "FireDAC");
    cdm_manager_free(m);
}
END_TEST

/* --------------------------------------------------- values from files */

START_TEST(test_file_bad_value_fails_only_that_def)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);
    char where[4200];

    snprintf(where, sizeof where, "%s:9",
             tu_fixture("good/def_one_bad_value.ini"));
    load(m, "good/def_one_bad_value.ini");
    /* Logged at load, with the place of the bad key. */
    ck_assert_int_ge(tu_log_count(&log, where), 1);
    ck_assert_int_ge(tu_log_count(&log, "Def_BadValue"), 1);
    ck_assert_int_eq(log.levels[0], CDM_LOG_WARN);

    ck_assert_int_eq(cdm_manager_has_def(m, "Def_BadValue"), 1);
    ck_connects(m, "Def_GoodFirst");
    ck_connects(m, "Def_GoodLast");
    ck_connect_fails(m, "Def_BadValue", CDM_ERR_INVALID);
    ck_errmsg_has(where);
    ck_errmsg_has("Def_BadValue");
    ck_errmsg_has("POOL_MaximumItems");
    ck_errmsg_has("'ten'");

    /* Fixed in memory, it connects. */
    ck_status(cdm_manager_set_param(m, "Def_BadValue", "POOL_MaximumItems", "3"),
              CDM_OK);
    ck_connects(m, "Def_BadValue");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_file_error_names_line_of_inherited_key)
{
    cdm_manager *m = manager(NULL);
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "def_chain.ini",
                          "[Top]\n"                 /* 1 */
                          "DriverID=SQLite\n"       /* 2 */
                          "Database=:memory:\n"     /* 3 */
                          "BusyTimeout=soon\n"      /* 4 */
                          "\n"                      /* 5 */
                          "[Bottom]\n"              /* 6 */
                          "ConnectionDef=Top\n",    /* 7 */
                          0600);
    char where[4200];

    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    snprintf(where, sizeof where, "%s:4", path);
    ck_connect_fails(m, "Bottom", CDM_ERR_INVALID);
    ck_errmsg_has(where);
    ck_errmsg_has("Bottom");
    ck_errmsg_has("BusyTimeout");
    ck_errmsg_has("soon");
    free(path);
    tu_rmtree(dir);
    cdm_manager_free(m);
}
END_TEST

/* -------------------------------------------------------------- add_def */

START_TEST(test_add_def_bad_names)
{
    static const char *const bad[] = { "", "a]b", "[x", "two\nlines", " lead",
                                       NULL };
    cdm_manager *m = manager(NULL);
    char **names = NULL;
    size_t n = 99;

    for (size_t i = 0; bad[i]; i++) {
        ck_status(cdm_manager_add_def(m, bad[i], PARAMS(SQLITE_MEM)),
                  CDM_ERR_INVALID);
        ck_errmsg_has("name");
        if (i == 1 || i == 2 || i == 4)
            ck_errmsg_has(bad[i]);
        ck_assert_int_eq(cdm_manager_has_def(m, bad[i]), 0);
    }
    ck_status(cdm_manager_def_names(m, &names, &n), CDM_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(names[0]);
    cdm_strv_free(names);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_add_def_param_without_equals)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "NoEq",
              PARAMS(SQLITE_MEM, "correct-horse-battery")), CDM_ERR_INVALID);
    ck_errmsg_has("NoEq");
    ck_errmsg_has("=");
    ck_errmsg_lacks("correct-horse-battery");
    ck_errmsg_lacks("horse");
    ck_assert_int_eq(cdm_manager_has_def(m, "NoEq"), 0);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_add_def_same_key_twice)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Twice",
              PARAMS(SQLITE_MEM, "BusyTimeout=1", "BusyTimeout=2")),
              CDM_ERR_INVALID);
    ck_errmsg_has("Twice");
    ck_errmsg_has("BusyTimeout");
    ck_assert_int_eq(cdm_manager_has_def(m, "Twice"), 0);

    /* Keys match case-insensitively, so this is the same key too; the
     * password is not shown. */
    ck_status(cdm_manager_add_def(m, "Twice",
              PARAMS(SQLITE_MEM, "Password=first-pw", "PASSWORD=second-pw")),
              CDM_ERR_INVALID);
    ck_errmsg_has("Twice");
    ck_errmsg_has_nocase("Password");
    ck_errmsg_lacks("first-pw");
    ck_errmsg_lacks("second-pw");
    ck_assert_int_eq(cdm_manager_has_def(m, "Twice"), 0);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_add_def_duplicate_name)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Dup",
              PARAMS(SQLITE_MEM, "BusyTimeout=1")), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Dup",
              PARAMS(SQLITE_MEM, "BusyTimeout=2")), CDM_ERR_EXISTS);
    ck_errmsg_has("Dup");
    ck_status(cdm_manager_add_def(m, "dUP",
              PARAMS(SQLITE_MEM, "BusyTimeout=3")), CDM_ERR_EXISTS);
    ck_errmsg_has("dUP");
    ck_param(m, "Dup", "BusyTimeout", "1");

    /* Against a file definition: the message says where that one is. */
    load(m, "good/def_inherit.ini");
    ck_status(cdm_manager_add_def(m, "DEF_BASE", PARAMS(SQLITE_MEM)),
              CDM_ERR_EXISTS);
    ck_errmsg_has("DEF_BASE");
    ck_errmsg_has("def_inherit.ini");
    ck_param(m, "Def_Base", "BusyTimeout", "500");
    cdm_manager_free(m);
}
END_TEST

/* ------------------------------------------------- set_param and delete */

START_TEST(test_set_param_on_file_def)
{
    cdm_manager *m = manager(NULL);

    load(m, "good/def_inherit.ini");
    ck_status(cdm_manager_set_param(m, "Def_Base", "BusyTimeout", "900"), CDM_OK);
    ck_param(m, "Def_Base", "BusyTimeout", "900");
    ck_param(m, "Def_Child", "BusyTimeout", "700");   /* own still wins */
    ck_status(cdm_manager_set_param(m, "Def_Child", "BusyTimeout", NULL), CDM_OK);
    ck_param(m, "Def_Child", "BusyTimeout", "900");   /* now inherited */
    ck_param(m, "Def_Grandchild", "BusyTimeout", "900");

    /* A new key on a file definition. */
    ck_status(cdm_manager_set_param(m, "def_base", "journalmode", "Memory"),
              CDM_OK);
    ck_param(m, "Def_Grandchild", "JournalMode", "Memory");

    /* Unset everywhere: not found, naming the key. */
    ck_status(cdm_manager_set_param(m, "Def_Base", "ApplicationName", NULL),
              CDM_OK);
    ck_status(cdm_manager_set_param(m, "Def_Grandchild", "ApplicationName",
                                    NULL), CDM_OK);
    ck_param_fails(m, "Def_Grandchild", "ApplicationName", CDM_ERR_NOT_FOUND);
    ck_errmsg_has("ApplicationName");
    ck_connects(m, "Def_Grandchild");

    ck_status(cdm_manager_set_param(m, "Def_Nobody", "BusyTimeout", "1"),
              CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Def_Nobody");
    ck_assert_int_eq(cdm_manager_has_def(m, "Def_Nobody"), 0);
    ck_param_fails(m, "Def_Nobody", "BusyTimeout", CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Def_Nobody");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_delete_def)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Gone", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_assert_int_eq(cdm_manager_has_def(m, "gone"), 1);
    ck_status(cdm_manager_delete_def(m, "GONE"), CDM_OK);
    ck_assert_int_eq(cdm_manager_has_def(m, "Gone"), 0);
    ck_status(cdm_manager_delete_def(m, "Gone"), CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Gone");
    ck_connect_fails(m, "Gone", CDM_ERR_NOT_FOUND);
    ck_errmsg_has("Gone");

    /* A file definition can be deleted (in memory) too. */
    load(m, "good/def_inherit.ini");
    ck_status(cdm_manager_delete_def(m, "Def_Grandchild"), CDM_OK);
    ck_assert_int_eq(cdm_manager_has_def(m, "Def_Grandchild"), 0);
    ck_assert_int_eq(cdm_manager_has_def(m, "Def_Child"), 1);
    /* The name is free again. */
    ck_status(cdm_manager_add_def(m, "Def_Grandchild", PARAMS(SQLITE_MEM)),
              CDM_OK);
    ck_connects(m, "Def_Grandchild");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_def_names_order)
{
    static const char *const want[] = { "Def_Child", "Def_Grandchild",
                                        "Def_Base", "zeta private",
                                        "Alpha_Private", NULL };
    cdm_manager *m = manager(NULL);
    char **names = NULL;
    size_t n = 0;

    /* A private definition added before the file still comes after it. */
    ck_status(cdm_manager_add_def(m, "zeta private", PARAMS(SQLITE_MEM)), CDM_OK);
    load(m, "good/def_inherit.ini");
    ck_status(cdm_manager_add_def(m, "Alpha_Private", PARAMS(SQLITE_MEM)),
              CDM_OK);
    ck_status(cdm_manager_def_names(m, &names, &n), CDM_OK);
    ck_assert_uint_eq(n, 5);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(names[i], want[i]);
    ck_assert_ptr_null(names[n]);
    cdm_strv_free(names);

    /* The header section is not a definition. */
    ck_assert_int_eq(cdm_manager_has_def(m, "FDConnectionDefs.ini"), 0);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_get_param_gives_no_defaults)
{
    cdm_manager *m = manager(NULL);
    cdm_conn *c = NULL;

    load(m, "good/def_inherit.ini");
    /* LockingMode and POOL_MaximumItems have defaults, but nobody in the
     * chain sets them: get_param does not invent them. */
    ck_param_fails(m, "Def_Grandchild", "LockingMode", CDM_ERR_NOT_FOUND);
    ck_errmsg_has("LockingMode");
    ck_errmsg_has("Def_Grandchild");
    ck_param_fails(m, "Def_Base", "POOL_MaximumItems", CDM_ERR_NOT_FOUND);
    ck_errmsg_has("POOL_MaximumItems");

    /* A connection reports the definition's name as written, whatever
     * spelling the caller used. */
    ck_status(cdm_connect(m, "DEF_GRANDCHILD", &c), CDM_OK);
    ck_assert_str_eq(cdm_conn_def_name(c), "Def_Grandchild");
    cdm_disconnect(c);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_bad_keys_refused)
{
    cdm_manager *m = manager(NULL);

    ck_status(cdm_manager_add_def(m, "Keys",
              PARAMS(SQLITE_MEM, "Busy Timeout=5")), CDM_ERR_INVALID);
    ck_errmsg_has("Keys");
    ck_errmsg_has("Busy Timeout");
    ck_assert_int_eq(cdm_manager_has_def(m, "Keys"), 0);
    ck_status(cdm_manager_add_def(m, "Keys", PARAMS(SQLITE_MEM, "=5")),
              CDM_ERR_INVALID);
    ck_errmsg_has("Keys");
    ck_assert_int_eq(cdm_manager_has_def(m, "Keys"), 0);

    ck_status(cdm_manager_add_def(m, "Keys", PARAMS(SQLITE_MEM)), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Keys", "Busy Timeout", "5"),
              CDM_ERR_INVALID);
    ck_errmsg_has("Busy Timeout");
    ck_status(cdm_manager_set_param(m, "Keys", "", "5"), CDM_ERR_INVALID);
    ck_errmsg_has("Keys");
    ck_status(cdm_manager_set_param(m, "Keys", "[Other]", "5"), CDM_ERR_INVALID);
    ck_errmsg_has("[Other]");
    ck_param_fails(m, "Keys", "Busy Timeout", CDM_ERR_NOT_FOUND);
    ck_param_fails(m, "Keys", "[Other]", CDM_ERR_NOT_FOUND);
    cdm_manager_free(m);
}
END_TEST

/* ------------------------------------------------------------- secrets */

START_TEST(test_param_is_secret)
{
    ck_assert_int_eq(cdm_param_is_secret("PG", "Password"), 1);
    ck_assert_int_eq(cdm_param_is_secret("mysql", "PASSWORD"), 1);
    ck_assert_int_eq(cdm_param_is_secret(NULL, "password"), 1);
    ck_assert_int_eq(cdm_param_is_secret("SQLite", "Password"), 1);
    ck_assert_int_eq(cdm_param_is_secret("MSSQL", "Password"), 1);
    ck_assert_int_eq(cdm_param_is_secret(NULL, "NewPassword"), 1);
    /* A misspelt password is a password. */
    ck_assert_int_eq(cdm_param_is_secret("PG", "Pasword"), 1);
    ck_assert_int_eq(cdm_param_is_secret(NULL, "Passwrd"), 1);
    ck_assert_int_eq(cdm_param_is_secret("PG", "User_Name"), 0);
    ck_assert_int_eq(cdm_param_is_secret("PG", "Database"), 0);
    ck_assert_int_eq(cdm_param_is_secret(NULL, "Colour"), 0);
    ck_assert_int_eq(cdm_param_is_secret(NULL, NULL), 0);
}
END_TEST

#define ck_mask(drv, key, value, want)                                       \
    do {                                                                     \
        char *ck_m_ = NULL;                                                  \
        ck_status(cdm_param_mask((drv), (key), (value), &ck_m_), CDM_OK);    \
        ck_assert_str_eq(ck_m_, (want));                                     \
        cdm_free(ck_m_);                                                     \
    } while (0)

START_TEST(test_param_mask)
{
    char *v = NULL;

    ck_mask("PG", "Password", "s3cret", "*****");
    ck_mask("PG", "Password", "$(PGPASS)", "*****");
    ck_mask("PG", "Pasword", "s3cret", "*****");
    ck_mask("PG", "Server", "db1", "db1");
    ck_mask("PG", "PGAdvanced", "sslmode=require; sslpassword=x;y=1",
            "sslmode=require; sslpassword=*****;y=1");
    ck_mask("PG", "PGAdvanced", "sslmode=require", "sslmode=require");
    ck_mask(NULL, "Database", "", "");
    ck_status(cdm_param_mask("PG", NULL, "x", &v), CDM_ERR_INVALID);
    ck_assert_ptr_null(v);
}
END_TEST

/* ------------------------------------------- FireDAC's keys (issue 10) */

/* Every key in the fixture is its driver's: loading logs nothing, and
 * connecting says the driver is FireDAC's, not unknown. */
START_TEST(test_firedac_keys_of_drivers_cdm_lacks_silent)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);

    load(m, "firedac/stock_keys.ini");
    ck_assert_msg(log.n == 0, "unexpected warning: %s", log.lines[0]);
    ck_connect_fails(m, "Fb_Stock", CDM_ERR_DRIVER);
    ck_errmsg_has("stock_keys.ini:7: definition 'Fb_Stock': DriverID FB "
                  "(Firebird) is a FireDAC driver cdm does not support "
                  "(cdm has PG, MySQL and SQLite)");
    ck_connect_fails(m, "Access_Stock", CDM_ERR_DRIVER);
    ck_errmsg_has("DriverID MSAcc (Microsoft Access) is a FireDAC driver");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_firedac_keys_by_driver_when_added)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);

    /* Firebird's own keys: silent.  Its Port is not checked as PG's or
     * MySQL's: FireDAC's to interpret. */
    ck_status(cdm_manager_add_def(m, "Fb",
              PARAMS("DriverID=FB", "Database=/srv/x.fdb", "Protocol=TCPIP",
                     "PageSize=8192", "SQLDialect=3", "Port=3050/x")),
              CDM_OK);
    ck_assert_msg(log.n == 0, "unexpected warning: %s", log.lines[0]);
    /* A key of no driver of FireDAC's: suggestions only from Firebird's. */
    ck_status(cdm_manager_set_param(m, "Fb", "Timeout", "60"), CDM_OK);
    ck_assert_int_eq(log.n, 1);
    ck_assert_int_eq(tu_log_count(&log, "definition 'Fb': unknown key Timeout"),
                     1);
    ck_assert_int_eq(tu_log_count(&log, "did you mean"), 0);
    /* SQLite's key in a Firebird definition: another driver's. */
    ck_status(cdm_manager_set_param(m, "Fb", "BusyTimeout", "5"), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "BusyTimeout is not used by driver FB"),
                     1);
    /* In SQLite, "Timeout" is its BusyTimeout; FireDAC's SQLite keys that
     * cdm does not use are silent. */
    ck_status(cdm_manager_add_def(m, "Lite",
              PARAMS(SQLITE_MEM, "Timeout=5", "SharedCache=False",
                     "StringFormat=Unicode", "VendorLib=sqlite3.dll")), CDM_OK);
    ck_assert_int_eq(log.n, 3);
    ck_assert_int_eq(tu_log_count(&log, "unknown key Timeout (did you mean "
                                        "BusyTimeout?)"), 1);
    ck_connects(m, "Lite");
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_common_mistakes_suggested)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);

    ck_status(cdm_manager_add_def(m, "Pg",
              PARAMS("DriverID=PG", "Database=x", "Pooled=True",
                     "Pooling=True", "User=app", "UserName=app",
                     "POOL_MaxItems=5", "POOL_MaxSize=5", "Host=db1")),
              CDM_OK);
    ck_assert_int_eq(log.n, 6);
    ck_assert_int_eq(tu_log_count(&log, "unknown key Pooling (did you mean "
                                        "Pooled?)"), 1);
    ck_assert_int_eq(tu_log_count(&log, "unknown key User (did you mean "
                                        "User_Name?)"), 1);
    ck_assert_int_eq(tu_log_count(&log, "unknown key UserName (did you mean "
                                        "User_Name?)"), 1);
    ck_assert_int_eq(tu_log_count(&log, "unknown key POOL_MaxItems (did you "
                                        "mean POOL_MaximumItems?)"), 1);
    ck_assert_int_eq(tu_log_count(&log, "unknown key POOL_MaxSize (did you "
                                        "mean POOL_MaximumItems?)"), 1);
    ck_assert_int_eq(tu_log_count(&log, "unknown key Host (did you mean "
                                        "Server?)"), 1);
    /* A mistake is offered only where the right key is valid: SQLite has
     * no Server. */
    ck_status(cdm_manager_add_def(m, "Lite", PARAMS(SQLITE_MEM, "Host=db1")),
              CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "definition 'Lite': unknown key Host"),
                     1);
    ck_assert_int_eq(tu_log_count(&log, "Host (did you mean Server?)"), 1);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_pool_keys_without_pooled_warn_at_load)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);
    char where[4200];

    load(m, "firedac/unpooled.ini");
    snprintf(where, sizeof where, "%s:5: definition 'NotSet': "
             "POOL_MaximumItems, POOL_ExpireTimeout have no effect: Pooled is "
             "not set, so connections are not pooled (set Pooled=True to pool "
             "them)", tu_fixture("firedac/unpooled.ini"));
    ck_assert_int_eq(tu_log_count(&log, where), 1);
    ck_assert_int_eq(tu_log_count(&log, "'SetFalse': POOL_MaximumItems has no "
                                        "effect: Pooled=False"), 1);
    ck_assert_int_eq(tu_log_count(&log, "'Misspelt': POOL_MaximumItems has no "
                                        "effect: Pooled is not set"), 1);
    /* With a parent, a definition alone cannot tell: cdm check says. */
    ck_assert_int_eq(tu_log_count(&log, "Child"), 0);
    ck_assert_int_eq(tu_log_count(&log, "'Fine'"), 0);
    ck_assert_int_eq(log.n, 4);
    /* Added from C, the same rule. */
    ck_status(cdm_manager_add_def(m, "Api",
              PARAMS(SQLITE_MEM, "POOL_AcquireTimeout=0")), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "definition 'Api': POOL_AcquireTimeout "
                                        "has no effect: Pooled is not set"), 1);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_firedac_secrets)
{
    ck_assert_int_eq(cdm_param_is_secret("IB", "SEPassword"), 1);
    ck_assert_int_eq(cdm_param_is_secret("ADS", "TablePassword"), 1);
    ck_assert_int_eq(cdm_param_is_secret("DS", "DSProxyPassword"), 1);
    ck_assert_int_eq(cdm_param_is_secret(NULL, "DSProxyPassword"), 1);
    ck_assert_int_eq(cdm_param_is_secret("FB", "Protocol"), 0);
    ck_assert_int_eq(cdm_param_is_secret("DS", "DSProxyUsername"), 0);
}
END_TEST

/* ------------------------------------ Windows paths in SQLite (issue 10) */

/* The fixture copied into a scratch directory: a wrong connect would
 * create files beside it. */
static char *copy_fixture(const char *dir, const char *rel)
{
    FILE *f = fopen(tu_fixture(rel), "rb");
    char buf[8192];
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return tu_write(dir, "defs.ini", buf, 0600);
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

START_TEST(test_sqlite_windows_path_warned_and_refused)
{
    struct tu_log log;
    cdm_manager *m = manager(&log);
    char *dir = tu_tmpdir();
    char *path = copy_fixture(dir, "firedac/windows_paths.ini");
    char want[4200];

    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    /* A warning at load, with file, line, definition and key. */
    snprintf(want, sizeof want, "%s:5: definition 'Drive': Database: "
             "'C:\\Users\\Public\\Documents\\Data\\FDDemo.sdb' is a Windows "
             "path; SQLite here would create a new, empty database of that "
             "name", path);
    ck_assert_int_eq(tu_log_count(&log, want), 1);
    ck_assert_int_eq(tu_log_count(&log, "'Unc': Database: "
                                        "'\\\\fileserver\\share\\app.db' is a "
                                        "Windows path"), 1);
    ck_assert_int_eq(tu_log_count(&log, "'ForwardSlashes': Database: "
                                        "'D:/data/app.db' is a Windows path"),
                     1);
    ck_assert_int_eq(tu_log_count(&log, "'Relative': Database: 'data\\app.db' "
                                        "is a Windows path"), 1);
    /* Not SQLite's: Access's paths are its own business. */
    ck_assert_int_eq(tu_log_count(&log, "Access"), 0);
    ck_assert_int_eq(log.n, 4);
    for (int i = 0; i < log.n; i++)
        ck_assert_int_eq(log.levels[i], CDM_LOG_WARN);

    /* At connect an error, never a new database named after the path. */
    ck_connect_fails(m, "Drive", CDM_ERR_INVALID);
    snprintf(want, sizeof want, "%s:5: definition 'Drive': Database: ", path);
    ck_errmsg_has(want);
    ck_errmsg_has("is a Windows path");
    ck_connect_fails(m, "Unc", CDM_ERR_INVALID);
    ck_connect_fails(m, "ForwardSlashes", CDM_ERR_INVALID);
    ck_connect_fails(m, "Relative", CDM_ERR_INVALID);
    ck_connects(m, "Memory");
    ck_assert_int_eq(entries(dir), 1);

    /* Added from C it is refused, like any bad value. */
    ck_status(cdm_manager_add_def(m, "Api",
              PARAMS("DriverID=SQLite", "Database=C:\\data\\x.db")),
              CDM_ERR_INVALID);
    ck_errmsg_has("definition 'Api': Database: 'C:\\data\\x.db' is a Windows "
                  "path");
    ck_assert_int_eq(cdm_manager_has_def(m, "Api"), 0);
    free(path);
    tu_rmtree(dir);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_sqlite_windows_path_from_variable_refused)
{
    cdm_manager *m = manager(NULL);
    char *dir = tu_tmpdir();
    char *path, text[256];

    /* Expanded first, then checked: at connect. */
    setenv("CDM_TEST_WIN_DB", "E:\\db\\orders.db", 1);
    snprintf(text, sizeof text,
             "[Env]\nDriverID=SQLite\nDatabase=$(CDM_TEST_WIN_DB)\n");
    path = tu_write(dir, "defs.ini", text, 0600);
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_connect_fails(m, "Env", CDM_ERR_INVALID);
    ck_errmsg_has("Database: 'E:\\db\\orders.db' is a Windows path");
    ck_assert_int_eq(entries(dir), 1);
    /* A POSIX value from the same variable connects. */
    setenv("CDM_TEST_WIN_DB", ":memory:", 1);
    ck_connects(m, "Env");
    unsetenv("CDM_TEST_WIN_DB");
    free(path);
    tu_rmtree(dir);
    cdm_manager_free(m);
}
END_TEST

/* The key table answers for every name of the tables it is built from,
 * in any case, and stays less than half full (linear probing). */
START_TEST(test_key_table_knows_every_name)
{
    size_t nkeys, key_slots, nids, id_slots;
    const struct cdm_keyinfo *k;

    for (const struct cdm_param_spec *s = cdm__common_params; s->key; s++) {
        ck_assert_ptr_nonnull(k = cdm__keyinfo(s->key));
        ck_assert_ptr_eq(k->common, s);
    }
    for (size_t d = 0; cdm__drivers[d]; d++) {
        const struct cdm_driver *drv = cdm__drivers[d];
        ck_assert_uint_lt(d, CDM_DRIVERS_MAX);
        ck_assert_ptr_eq(cdm__driver_find(drv->id), drv);
        for (size_t j = 0; drv->aliases && drv->aliases[j]; j++)
            ck_assert_ptr_eq(cdm__driver_find(drv->aliases[j]), drv);
        for (const struct cdm_param_spec *s = drv->params; s && s->key; s++) {
            ck_assert_ptr_nonnull(k = cdm__keyinfo(s->key));
            ck_assert_ptr_eq(k->drv[d], s);
            ck_assert_ptr_eq(cdm__param_find(drv, s->key), s);
        }
    }
    for (size_t f = 0; cdm__fd_drivers[f].id; f++) {
        const struct cdm_fd_driver *fd = &cdm__fd_drivers[f];
        ck_assert_uint_lt(f, 64);
        ck_assert_ptr_eq(cdm__fd_driver(fd->id), fd);
        for (size_t i = 0; fd->keys && fd->keys[i]; i++)
            ck_assert(cdm__fd_has_key(fd, fd->keys[i]));
    }
    for (size_t i = 0; cdm__fd_common[i]; i++)
        ck_assert(cdm__fd_any_key(cdm__fd_common[i]));
    /* Case does not matter; unknown names are not found. */
    ck_assert_ptr_eq(cdm__keyinfo("pool_maximumitems"),
                     cdm__keyinfo("POOL_MaximumItems"));
    ck_assert_ptr_eq(cdm__driver_find("postgresql"), cdm__driver_find("PG"));
    ck_assert_ptr_null(cdm__keyinfo("Pooling"));
    ck_assert_ptr_null(cdm__driver_find("MYSQL5"));
    ck_assert_ptr_null(cdm__fd_driver("Nope"));
    cdm__keys_usage(&nkeys, &key_slots, &nids, &id_slots);
    ck_assert_uint_gt(nkeys, 100);
    ck_assert_uint_le(nkeys * 2, key_slots);
    ck_assert_uint_le(nids * 2, id_slots);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("def");
    TCase *inherit = tcase_create("inherit");
    TCase *env = tcase_create("env");
    TCase *values = tcase_create("values");
    TCase *keys = tcase_create("keys");
    TCase *edit = tcase_create("edit");

    tcase_add_test(inherit, test_inherit_connectiondef);
    tcase_add_test(inherit, test_inherit_parent_alias);
    tcase_add_test(inherit, test_inherit_three_levels_from_file);
    tcase_add_test(inherit, test_inherit_many_keys);
    tcase_add_test(inherit, test_inherit_parent_added_after_child);
    tcase_add_test(inherit, test_inherit_cycle);
    tcase_add_test(inherit, test_inherit_self_cycle);
    tcase_add_test(inherit, test_inherit_missing_parent);
    tcase_add_test(inherit, test_inherit_across_files);
    suite_add_tcase(s, inherit);

    tcase_add_test(env, test_env_expanded_in_get_param);
    tcase_add_test(env, test_env_expanded_at_connect);
    tcase_add_test(env, test_env_unset_variable);
    tcase_add_test(env, test_env_double_dollar_is_literal);
    tcase_add_test(env, test_env_bad_syntax);
    tcase_add_test(env, test_env_expanded_value_is_checked);
    tcase_add_test(env, test_env_error_hides_password);
    tcase_add_test(env, test_env_error_on_value_set_in_memory);
    suite_add_tcase(s, env);

    tcase_add_test(values, test_bool_spellings_accepted);
    tcase_add_test(values, test_bool_refused);
    tcase_add_test(values, test_number_accepted);
    tcase_add_test(values, test_number_refused);
    tcase_add_test(values, test_number_out_of_range);
    tcase_add_test(values, test_enum_values);
    tcase_add_test(values, test_required_driverid);
    tcase_add_test(values, test_required_database);
    tcase_add_test(values, test_unknown_driver);
    tcase_add_test(values, test_driver_aliases);
    tcase_add_test(values, test_file_bad_value_fails_only_that_def);
    tcase_add_test(values, test_file_error_names_line_of_inherited_key);
    tcase_add_test(values, test_sqlite_windows_path_warned_and_refused);
    tcase_add_test(values, test_sqlite_windows_path_from_variable_refused);
    suite_add_tcase(s, values);

    tcase_add_test(keys, test_key_table_knows_every_name);
    tcase_add_test(keys, test_unknown_keys_warned_with_suggestion);
    tcase_add_test(keys, test_unknown_key_set_param_warns);
    tcase_add_test(keys, test_other_drivers_key_warns_not_checked);
    tcase_add_test(keys, test_ignored_firedac_keys_silent);
    tcase_add_test(keys, test_firedac_keys_of_drivers_cdm_lacks_silent);
    tcase_add_test(keys, test_firedac_keys_by_driver_when_added);
    tcase_add_test(keys, test_common_mistakes_suggested);
    tcase_add_test(keys, test_pool_keys_without_pooled_warn_at_load);
    tcase_add_test(keys, test_firedac_secrets);
    suite_add_tcase(s, keys);

    tcase_add_test(edit, test_add_def_bad_names);
    tcase_add_test(edit, test_add_def_param_without_equals);
    tcase_add_test(edit, test_add_def_same_key_twice);
    tcase_add_test(edit, test_add_def_duplicate_name);
    tcase_add_test(edit, test_set_param_on_file_def);
    tcase_add_test(edit, test_delete_def);
    tcase_add_test(edit, test_def_names_order);
    tcase_add_test(edit, test_get_param_gives_no_defaults);
    tcase_add_test(edit, test_bad_keys_refused);
    suite_add_tcase(s, edit);

    {
        TCase *secrets = tcase_create("secrets");
        tcase_add_test(secrets, test_param_is_secret);
        tcase_add_test(secrets, test_param_mask);
        suite_add_tcase(s, secrets);
    }

    return tu_run(s);
}
