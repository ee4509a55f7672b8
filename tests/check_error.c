/* check_error.c - status codes and their texts, the per-thread error message, NULL arguments. */
#include "testutil.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

/* Makes this thread's last call fail with a message holding `tag`. */
static void fail_with(cdm_manager *m, const char *tag)
{
    char path[256];

    snprintf(path, sizeof path, "/nonexistent-cdm-dir/%s.ini", tag);
    ck_status(cdm_manager_load_file(m, path), CDM_ERR_IO);
    ck_errmsg_has(tag);
}

/* ------------------------------------------------------- status codes */

START_TEST(test_status_values_fixed)
{
    /* Programs are compiled against these numbers: never renumbered. */
    static const struct { int code, value; } fixed[] = {
        { CDM_OK, 0 },            { CDM_ERR_NOMEM, 1 },
        { CDM_ERR_INVALID, 2 },   { CDM_ERR_PARSE, 3 },
        { CDM_ERR_IO, 4 },        { CDM_ERR_NOT_FOUND, 5 },
        { CDM_ERR_EXISTS, 6 },    { CDM_ERR_DRIVER, 7 },
        { CDM_ERR_CONNECT, 8 },   { CDM_ERR_POOL_FULL, 9 },
        { CDM_ERR_CLOSED, 10 },   { CDM_ERR_QUERY, 11 },
        { CDM_ERR_STATE, 12 },    { CDM_ERR_BROKEN, 13 },
        { CDM_ERR_BUSY, 14 },     { CDM_ERR_CONFLICT, 15 },
        { CDM_ERR_INSECURE, 16 },
    };

    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        ck_assert_int_eq(fixed[i].code, fixed[i].value);
    ck_assert_int_eq(CDM_ERR_NOMEM, 1);
    ck_assert_int_eq(CDM_ERR_INSECURE, 16);
}
END_TEST

START_TEST(test_strerror_texts)
{
    static const int unknown[] = { -1, 17, 999, INT_MIN, INT_MAX };

    for (int a = CDM_OK; a <= CDM_ERR_INSECURE; a++) {
        const char *ta = cdm_strerror(a);
        ck_assert_ptr_nonnull(ta);
        ck_assert_msg(ta[0] != '\0', "no text for status %d", a);
        ck_assert_str_ne(ta, "unknown status");
        for (int b = CDM_OK; b < a; b++)
            ck_assert_msg(strcmp(ta, cdm_strerror(b)) != 0,
                          "statuses %d and %d share the text '%s'", a, b, ta);
    }
    ck_assert_str_eq(cdm_strerror(CDM_OK), "success");
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        ck_assert_str_eq(cdm_strerror(unknown[i]), "unknown status");
}
END_TEST

/* ----------------------------------------------------- per-thread text */

struct other_thread {
    cdm_manager *m;
    pthread_barrier_t *step;   /* NULL: run straight through */
    char initial[256];         /* cdm_errmsg() before any call */
    char after[256];           /* cdm_errmsg() after its own failure */
    int rc;
};

static void *other_thread_main(void *arg)
{
    struct other_thread *t = arg;

    snprintf(t->initial, sizeof t->initial, "%s", cdm_errmsg());
    t->rc = cdm_manager_load_file(t->m, "/nonexistent-cdm-dir/thread_b.ini");
    snprintf(t->after, sizeof t->after, "%s", cdm_errmsg());
    if (t->step) {
        pthread_barrier_wait(t->step);   /* main checks its own text */
        pthread_barrier_wait(t->step);   /* main has failed again */
        snprintf(t->after, sizeof t->after, "%s", cdm_errmsg());
    }
    return NULL;
}

START_TEST(test_errmsg_empty_in_fresh_thread)
{
    struct other_thread t = { 0 };
    pthread_t th;

    ck_status(cdm_manager_new(&t.m), CDM_OK);
    fail_with(t.m, "main_failed_first");
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread_main, &t), 0);
    pthread_join(th, NULL);
    ck_assert_str_eq(t.initial, "");
    cdm_manager_free(t.m);
}
END_TEST

START_TEST(test_errmsg_per_thread)
{
    struct other_thread t = { 0 };
    pthread_barrier_t step;
    pthread_t th;

    pthread_barrier_init(&step, NULL, 2);
    t.step = &step;
    ck_status(cdm_manager_new(&t.m), CDM_OK);
    fail_with(t.m, "thread_a");
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread_main, &t), 0);

    /* B failed: A's text is still A's own. */
    pthread_barrier_wait(&step);
    ck_assert_int_eq(t.rc, CDM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(t.after, "thread_b.ini"));
    ck_errmsg_has("thread_a.ini");
    ck_assert_ptr_null(strstr(cdm_errmsg(), "thread_b"));

    /* A fails again: B's text does not change. */
    fail_with(t.m, "thread_a_again");
    pthread_barrier_wait(&step);
    pthread_join(th, NULL);
    ck_assert_ptr_nonnull(strstr(t.after, "thread_b.ini"));
    ck_assert_ptr_null(strstr(t.after, "thread_a"));
    pthread_barrier_destroy(&step);
    cdm_manager_free(t.m);
}
END_TEST

START_TEST(test_errmsg_kept_by_successful_calls)
{
    static const char *const params[] = { "DriverID=SQLite",
                                          "Database=:memory:", NULL };
    cdm_manager *m;
    char before[512], **names = NULL, *value = NULL;
    size_t n = 0;

    ck_status(cdm_manager_new(&m), CDM_OK);
    fail_with(m, "kept_message");
    snprintf(before, sizeof before, "%s", cdm_errmsg());

    ck_status(cdm_manager_load_file(m, tu_fixture("good/ini_order_1.ini")),
              CDM_OK);
    ck_assert(cdm_manager_has_def(m, "One_A"));
    ck_assert(!cdm_manager_has_def(m, "No_Such_Def"));
    ck_status(cdm_manager_def_names(m, &names, &n), CDM_OK);
    cdm_strv_free(names);
    ck_status(cdm_manager_get_param(m, "One_A", "Database", &value), CDM_OK);
    cdm_free(value);
    ck_status(cdm_manager_add_def(m, "Private_One", params), CDM_OK);
    ck_status(cdm_manager_set_param(m, "Private_One", "BusyTimeout", "50"),
              CDM_OK);
    ck_status(cdm_manager_delete_def(m, "Private_One"), CDM_OK);
    (void)cdm_strerror(CDM_ERR_IO);
    ck_assert_str_eq(cdm_errmsg(), before);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_errmsg_kept_by_load_with_warnings)
{
    cdm_manager *m;
    struct tu_log log;
    char before[512];
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "warned.ini",
                          "[Warned]\nDriverID=SQLite\nDatabase=:memory:\n"
                          "POOL_MaximumItems=ten\nPoolSize=3\n", 0600);

    ck_status(cdm_manager_new(&m), CDM_OK);
    tu_log_init(&log);
    cdm_manager_set_log(m, tu_log_fn, &log);
    fail_with(m, "kept_message");
    snprintf(before, sizeof before, "%s", cdm_errmsg());
    /* Bad values in a loaded file are warnings: the load succeeds... */
    ck_status(cdm_manager_load_file(m, path), CDM_OK);
    ck_assert_int_eq(tu_log_count(&log, "POOL_MaximumItems: 'ten'"), 1);
    /* (Also "POOL_MaximumItems has no effect: Pooled is not set".) */
    /* ...and like every successful call leaves the message alone. */
    ck_assert_str_eq(cdm_errmsg(), before);
    cdm_manager_free(m);
    free(path);
    tu_rmtree(dir);
}
END_TEST

/* ------------------------------------------------------ NULL arguments */

/* `call` must return CDM_ERR_INVALID and set a new message. */
#define ck_invalid(m, call)                                                  \
    do {                                                                     \
        fail_with((m), "previous_failure");                                  \
        ck_status((call), CDM_ERR_INVALID);                                  \
        ck_assert_msg(cdm_errmsg()[0] != '\0' &&                             \
                          !strstr(cdm_errmsg(), "previous_failure"),         \
                      "%s: message not set: '%s'", #call, cdm_errmsg());     \
    } while (0)

START_TEST(test_null_arguments_invalid)
{
    static const char *const params[] = { "DriverID=SQLite",
                                          "Database=:memory:", NULL };
    cdm_manager *m;
    cdm_conn *c = (cdm_conn *)&c;     /* sentinels: must stay untouched */
    cdm_result *r = (cdm_result *)&r;
    char *value = (char *)&value, **names = (char **)&names;
    size_t n = 777;

    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_status(cdm_manager_load_file(m, tu_fixture("good/ini_order_1.ini")),
              CDM_OK);

    ck_invalid(m, cdm_manager_new(NULL));
    ck_invalid(m, cdm_manager_load_file(m, NULL));
    ck_invalid(m, cdm_manager_load_file(NULL, tu_fixture("good/ini_order_1.ini")));
    ck_invalid(m, cdm_manager_add_def(m, NULL, params));
    ck_invalid(m, cdm_manager_add_def(NULL, "Private_Null", params));
    ck_invalid(m, cdm_manager_get_param(m, "One_A", "Database", NULL));
    ck_invalid(m, cdm_manager_get_param(m, "One_A", NULL, &value));
    ck_invalid(m, cdm_manager_get_param(m, NULL, "Database", &value));
    ck_invalid(m, cdm_manager_get_param(NULL, "One_A", "Database", &value));
    ck_invalid(m, cdm_manager_def_names(m, NULL, &n));
    ck_invalid(m, cdm_manager_def_names(NULL, &names, &n));
    ck_invalid(m, cdm_manager_set_param(m, NULL, "Database", "x"));
    ck_invalid(m, cdm_manager_delete_def(m, NULL));
    ck_invalid(m, cdm_manager_reload(NULL));
    ck_invalid(m, cdm_manager_close(NULL, 0));
    ck_invalid(m, cdm_connect(NULL, "One_A", &c));
    ck_invalid(m, cdm_connect(m, NULL, &c));
    ck_invalid(m, cdm_connect(m, "One_A", NULL));
    ck_invalid(m, cdm_exec(NULL, "SELECT 1", NULL, 0, NULL));
    ck_invalid(m, cdm_query(NULL, "SELECT 1", NULL, 0, &r));
    ck_invalid(m, cdm_begin(NULL));
    ck_invalid(m, cdm_commit(NULL));
    ck_invalid(m, cdm_rollback(NULL));
    ck_invalid(m, cdm_ping(NULL));

    ck_assert_ptr_eq(c, (cdm_conn *)&c);
    ck_assert_ptr_eq(r, (cdm_result *)&r);
    ck_assert_ptr_eq(value, (char *)&value);
    ck_assert_ptr_eq(names, (char **)&names);
    ck_assert_uint_eq(n, 777);
    ck_assert_int_eq(cdm_manager_has_def(NULL, "One_A"), 0);
    ck_assert_int_eq(cdm_manager_has_def(m, NULL), 0);
    /* Nothing was added or lost on the way. */
    ck_status(cdm_manager_def_names(m, &names, &n), CDM_OK);
    ck_assert_uint_eq(n, 2);
    cdm_strv_free(names);
    cdm_manager_free(m);
}
END_TEST

START_TEST(test_null_frees_do_nothing)
{
    cdm_manager *m;
    char before[512];

    ck_status(cdm_manager_new(&m), CDM_OK);
    fail_with(m, "kept_message");
    snprintf(before, sizeof before, "%s", cdm_errmsg());
    cdm_manager_free(NULL);
    cdm_disconnect(NULL);
    cdm_result_free(NULL);
    cdm_free(NULL);
    cdm_strv_free(NULL);
    cdm_manager_set_log(NULL, tu_log_fn, NULL);
    /* Not failures: the message stays. */
    ck_assert_str_eq(cdm_errmsg(), before);
    cdm_manager_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("error");
    TCase *codes = tcase_create("codes");
    TCase *msg = tcase_create("errmsg");
    TCase *args = tcase_create("arguments");

    tcase_add_test(codes, test_status_values_fixed);
    tcase_add_test(codes, test_strerror_texts);
    suite_add_tcase(s, codes);

    tcase_add_test(msg, test_errmsg_empty_in_fresh_thread);
    tcase_add_test(msg, test_errmsg_per_thread);
    tcase_add_test(msg, test_errmsg_kept_by_successful_calls);
    tcase_add_test(msg, test_errmsg_kept_by_load_with_warnings);
    suite_add_tcase(s, msg);

    tcase_add_test(args, test_null_arguments_invalid);
    tcase_add_test(args, test_null_frees_do_nothing);
    suite_add_tcase(s, args);

    return tu_run(s);
}
