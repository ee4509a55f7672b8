/* check_stmt.c - prepared statements with typed values and the statement
 * cache, on SQLite (check_pg and check_mysql run the same round trips
 * against the servers). */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARAMS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static cdm_manager *m;
static char *dir;

static void setup(void)
{
    char db[4200];

    dir = tu_tmpdir();
    snprintf(db, sizeof db, "Database=%s/stmt.db", dir);
    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_status(cdm_manager_add_def(m, "Lite", PARAMS("DriverID=SQLite", db,
              "Pooled=True", "POOL_MaximumItems=4", "StatementCacheSize=4")),
              CDM_OK);
    ck_status(cdm_manager_add_def(m, "NoCache", PARAMS("DriverID=SQLite", db,
              "StatementCacheSize=0")), CDM_OK);
}

static void teardown(void)
{
    cdm_manager_free(m);
    tu_rmtree(dir);
}

static cdm_conn *conn(const char *name)
{
    cdm_conn *c = NULL;

    ck_status(cdm_connect(m, name, &c), CDM_OK);
    return c;
}

/* Statements SQLite holds open on the connection's handle. */
static int open_statements(cdm_conn *c)
{
    sqlite3 *db = cdm_conn_handle(c);
    int n = 0;

    for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s;
         s = sqlite3_next_stmt(db, s))
        n++;
    return n;
}

/* ------------------------------------------------------- round trips */

/* A program in a locale that writes 0,5 (setlocale(LC_ALL, "") in
 * Germany): numbers cdm prints and reads keep their decimal point. */
START_TEST(test_doubles_in_a_comma_locale)
{
    cdm_conn *c = conn("Lite");
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;

    tu_comma_numeric();
    ck_status(cdm_prepare(c, "SELECT ?, ? * 2, '2.5'", &s), CDM_OK);
    ck_status(cdm_bind_double(s, 0, 0.1), CDM_OK);
    ck_status(cdm_bind_double(s, 1, 1.25), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_cell_double(r, 0, 0, "0.1", 0.1);
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "2.5");
    /* Text read as a number. */
    ck_cell_double(r, 0, 2, NULL, 2.5);
    cdm_result_free(r);
    cdm_stmt_free(s);
    tu_c_numeric();
    cdm_disconnect(c);
}
END_TEST


START_TEST(test_round_trip_every_type)
{
    cdm_conn *c = conn("Lite");
    cdm_stmt *ins = NULL, *sel = NULL;
    cdm_result *r = NULL;
    size_t big = 1 << 20, len = 0;
    unsigned char *blob = malloc(big);
    static const char text[] = "gr\xc3\xbc\xc3\x9f" "e\0after NUL \xe2\x82\xac";
    const void *p;
    int64_t i;
    double d;

    for (size_t k = 0; k < big; k++)
        blob[k] = (unsigned char)(k % 256);
    ck_status(cdm_exec(c, "CREATE TABLE v (k INTEGER, x)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_prepare(c, "INSERT INTO v VALUES (?, ?)", &ins), CDM_OK);
    ck_assert_uint_eq(cdm_stmt_nparams(ins), 2);
#define ROW(k, bind)                                                         \
    do {                                                                     \
        ck_status(cdm_bind_int64(ins, 0, (k)), CDM_OK);                      \
        ck_status(bind, CDM_OK);                                             \
        ck_status(cdm_stmt_exec(ins, NULL), CDM_OK);                         \
    } while (0)
    ROW(1, cdm_bind_blob(ins, 1, blob, big));
    ROW(2, cdm_bind_blob(ins, 1, "", 0));
    ROW(3, cdm_bind_text(ins, 1, "", 0));
    ROW(4, cdm_bind_null(ins, 1));
    ROW(5, cdm_bind_int64(ins, 1, INT64_MIN));
    ROW(6, cdm_bind_int64(ins, 1, INT64_MAX));
    ROW(7, cdm_bind_double(ins, 1, -0.0));
    ROW(8, cdm_bind_double(ins, 1, 1e308));
    ROW(9, cdm_bind_double(ins, 1, NAN));
    ROW(10, cdm_bind_text(ins, 1, text, sizeof text - 1));
#undef ROW
    cdm_stmt_free(ins);

    ck_status(cdm_prepare(c, "SELECT x FROM v WHERE k = ?", &sel), CDM_OK);
#define GET(k)                                                               \
    do {                                                                     \
        cdm_result_free(r);                                                  \
        r = NULL;                                                            \
        ck_status(cdm_bind_int64(sel, 0, (k)), CDM_OK);                      \
        ck_status(cdm_stmt_query(sel, &r), CDM_OK);                          \
        ck_assert_uint_eq(cdm_result_nrows(r), 1);                           \
    } while (0)
    GET(1);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_BLOB);
    p = cdm_result_blob(r, 0, 0, &len);
    ck_assert_uint_eq(len, big);
    ck_assert_uint_eq(cdm_result_length(r, 0, 0), big);
    ck_assert_int_eq(memcmp(p, blob, big), 0);
    ck_assert_int_eq(strncmp(cdm_result_value(r, 0, 0), "\\x000102", 8), 0);
    ck_assert_uint_eq(strlen(cdm_result_value(r, 0, 0)), 2 + 2 * big);
    GET(2);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_BLOB);
    ck_assert_uint_eq(cdm_result_length(r, 0, 0), 0);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "\\x");
    GET(3);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_TEXT);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "");
    GET(4);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_NULL);
    ck_assert_ptr_null(cdm_result_value(r, 0, 0));
    ck_status(cdm_result_int64(r, 0, 0, &i), CDM_ERR_INVALID);
    ck_errmsg_has("is NULL");
    GET(5);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_INT);
    ck_status(cdm_result_int64(r, 0, 0, &i), CDM_OK);
    ck_assert(i == INT64_MIN);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "-9223372036854775808");
    GET(6);
    ck_status(cdm_result_int64(r, 0, 0, &i), CDM_OK);
    ck_assert(i == INT64_MAX);
    GET(7);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_FLOAT);
    ck_status(cdm_result_double(r, 0, 0, &d), CDM_OK);
    ck_assert(d == 0.0 && signbit(d));
    GET(8);
    ck_status(cdm_result_double(r, 0, 0, &d), CDM_OK);
    ck_assert(d == 1e308);
    ck_status(cdm_result_int64(r, 0, 0, &i), CDM_ERR_INVALID);
    /* SQLite stores NaN as NULL. */
    GET(9);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_NULL);
    GET(10);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_TEXT);
    ck_assert_uint_eq(cdm_result_length(r, 0, 0), sizeof text - 1);
    p = cdm_result_blob(r, 0, 0, &len);
    ck_assert_int_eq(memcmp(p, text, sizeof text - 1), 0);
    ck_status(cdm_result_int64(r, 0, 0, &i), CDM_ERR_INVALID);
#undef GET
    cdm_result_free(r);
    cdm_stmt_free(sel);
    cdm_disconnect(c);
    free(blob);
}
END_TEST

/* Typed values keep SQL's meaning where text changed it. */
/* Every value of a result is aligned as malloc aligns, short ones too
 * (they share the result's blocks): a BLOB may be read as a struct. */
START_TEST(test_values_aligned)
{
    cdm_conn *c = conn("Lite");
    cdm_result *r = NULL;

    ck_status(cdm_query(c, "SELECT x'01', 'ab', x'0102030405', 'abc', "
                        "x'00', zeroblob(100), 'x' UNION ALL SELECT x'0203', "
                        "'a', x'', '', x'ff', zeroblob(3), 'yz'", NULL, 0, &r),
              CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 2);
    for (size_t row = 0; row < 2; row++)
        for (size_t col = 0; col < cdm_result_ncols(r); col++) {
            const void *p = cdm_result_blob(r, row, col, NULL);
            ck_assert_ptr_nonnull(p);
            ck_assert_msg((uintptr_t)p % _Alignof(max_align_t) == 0,
                          "row %zu, column %zu at %p", row, col, p);
        }
    cdm_result_free(r);
    cdm_disconnect(c);
}
END_TEST

START_TEST(test_typed_values_compare_as_numbers)
{
    cdm_conn *c = conn("Lite");
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;
    int64_t v = 0;

    ck_status(cdm_prepare(c, "SELECT ? = 1", &s), CDM_OK);
    ck_status(cdm_bind_int64(s, 0, 1), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_status(cdm_result_int64(r, 0, 0, &v), CDM_OK);
    ck_assert_int_eq(v, 1);
    cdm_result_free(r);
    /* As text, as cdm_query binds: '1' = 1 is false in SQLite. */
    ck_status(cdm_query(c, "SELECT ? = 1", PARAMS("1"), 1, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "0");
    cdm_result_free(r);
    cdm_stmt_free(s);
    cdm_disconnect(c);
}
END_TEST

/* ------------------------------------------------------------ misuse */

START_TEST(test_misuse_is_a_clear_error)
{
    cdm_conn *c = conn("Lite");
    cdm_stmt *s = NULL, *s2 = NULL;
    int64_t n;

    ck_status(cdm_prepare(c, "SELECT ?, ?", &s), CDM_OK);
    ck_status(cdm_bind_int64(s, 2, 1), CDM_ERR_INVALID);
    ck_errmsg_has("parameter 2 is out of range (the statement has 2");
    ck_status(cdm_bind_int64(s, 0, 1), CDM_OK);
    ck_status(cdm_stmt_exec(s, &n), CDM_ERR_STATE);
    ck_errmsg_has("parameter 1 of 2 is not bound");
    ck_status(cdm_bind_text(s, 1, NULL, 3), CDM_ERR_INVALID);
    ck_errmsg_has("cdm_bind_null");
    ck_status(cdm_prepare(c, "SELECT 1; SELECT 2", &s2), CDM_ERR_INVALID);
    ck_assert_ptr_null(s2);
    ck_status(cdm_prepare(c, "SELEC nonsense", &s2), CDM_ERR_QUERY);
    ck_assert_ptr_null(s2);
    /* Its connection returned: only cdm_stmt_free is left. */
    cdm_disconnect(c);
    ck_status(cdm_bind_int64(s, 1, 2), CDM_ERR_STATE);
    ck_errmsg_has("cdm_disconnect");
    ck_status(cdm_stmt_exec(s, &n), CDM_ERR_STATE);
    ck_assert_uint_eq(cdm_stmt_nparams(s), 0);
    cdm_stmt_free(s);
    cdm_stmt_free(NULL);
    ck_status(cdm_prepare(NULL, "SELECT 1", &s), CDM_ERR_INVALID);
}
END_TEST

struct busy_arg {
    cdm_conn *c;
    atomic_bool inside;      /* the slow query is running in SQLite */
    atomic_bool turned_away; /* the test has seen its second thread refused */
};

/* SQLite's progress handler, so inside the slow query: holds it there
 * (bounded) until the test has tried the statement. */
static int hold_inside(void *arg)
{
    struct busy_arg *a = arg;

    if (!atomic_exchange(&a->inside, true))
        for (int i = 0; i < 10000 && !atomic_load(&a->turned_away); i++)
            tu_sleep_ms(1);
    return 0;
}

static void *slow_query(void *arg)
{
    struct busy_arg *a = arg;
    cdm_result *r = NULL;

    cdm_query(a->c, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
              "FROM n WHERE i < 100000) SELECT count(*) FROM n", NULL, 0, &r);
    cdm_result_free(r);
    return NULL;
}

/* Two threads in one statement: the second is turned away. */
START_TEST(test_two_threads_in_one_statement)
{
    struct busy_arg a = { .c = conn("Lite") };
    cdm_stmt *s = NULL;
    pthread_t t;
    int rc;

    ck_status(cdm_prepare(a.c, "SELECT 1", &s), CDM_OK);
    sqlite3_progress_handler(cdm_conn_handle(a.c), 1000, hold_inside, &a);
    ck_assert_int_eq(pthread_create(&t, NULL, slow_query, &a), 0);
    ck_eventually(atomic_load(&a.inside), 5000);
    rc = cdm_stmt_exec(s, NULL);
    atomic_store(&a.turned_away, true);
    pthread_join(t, NULL);
    sqlite3_progress_handler(cdm_conn_handle(a.c), 0, NULL, NULL);
    ck_status(rc, CDM_ERR_STATE);
    ck_errmsg_has("in use by another thread");
    ck_status(cdm_stmt_exec(s, NULL), CDM_OK);
    cdm_stmt_free(s);
    cdm_disconnect(a.c);
}
END_TEST

/* ------------------------------------------------------------ the cache */

START_TEST(test_cache_prepares_once_and_evicts)
{
    cdm_conn *c = conn("Lite");
    cdm_result *r = NULL;
    char sql[64];

    /* The same text twice: one statement on the handle. */
    for (int k = 0; k < 2; k++) {
        ck_status(cdm_query(c, "SELECT ? + 1", PARAMS("41"), 1, &r), CDM_OK);
        ck_assert_str_eq(cdm_result_value(r, 0, 0), "42");
        cdm_result_free(r);
    }
    ck_assert_int_eq(open_statements(c), 1);
    /* Ten texts through a cache of 4: four stay. */
    for (int k = 0; k < 10; k++) {
        snprintf(sql, sizeof sql, "SELECT ? + %d", k);
        ck_status(cdm_query(c, sql, PARAMS("1"), 1, &r), CDM_OK);
        cdm_result_free(r);
    }
    ck_assert_int_eq(open_statements(c), 4);
    cdm_disconnect(c);
    /* The next borrower of the pooled connection finds them. */
    c = conn("Lite");
    ck_assert_int_eq(open_statements(c), 4);
    cdm_disconnect(c);
    /* Without a cache nothing stays. */
    c = conn("NoCache");
    ck_status(cdm_query(c, "SELECT ? + 1", PARAMS("41"), 1, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "42");
    cdm_result_free(r);
    ck_assert_int_eq(open_statements(c), 0);
    cdm_disconnect(c);
}
END_TEST

/* An open statement pins its entry; many open at once grow the cache for
 * as long as they are open. */
START_TEST(test_open_statements_are_not_evicted)
{
    cdm_conn *c = conn("Lite");
    cdm_stmt *s[6];
    cdm_result *r = NULL;
    char sql[64];

    for (int k = 0; k < 6; k++) {
        snprintf(sql, sizeof sql, "SELECT ? * %d", k + 1);
        ck_status(cdm_prepare(c, sql, &s[k]), CDM_OK);
    }
    for (int k = 0; k < 6; k++) {
        ck_status(cdm_bind_int64(s[k], 0, 7), CDM_OK);
        ck_status(cdm_stmt_query(s[k], &r), CDM_OK);
        ck_assert_int_eq(atoi(cdm_result_value(r, 0, 0)), 7 * (k + 1));
        cdm_result_free(r);
    }
    ck_assert_int_eq(open_statements(c), 6);
    for (int k = 0; k < 6; k++)
        cdm_stmt_free(s[k]);
    ck_assert_int_eq(open_statements(c), 4);
    cdm_disconnect(c);
}
END_TEST

/* 16 threads, 10 parameterised statements, a cache of 4, while close_def
 * and set_param replace the pool's generation: every answer right, and no
 * connection holds more statements than its cache afterwards. */
struct race {
    atomic_bool stop;
    atomic_long ok, wrong, failed;
};

static void *r_worker(void *arg)
{
    struct race *rc_ = arg;
    unsigned k = (unsigned)(uintptr_t)&k;

    while (!atomic_load(&rc_->stop)) {
        cdm_conn *c = NULL;
        cdm_stmt *s = NULL;
        cdm_result *r = NULL;
        char sql[64];
        int64_t v = -1;
        int which = (int)(k++ % 10);
        snprintf(sql, sizeof sql, "SELECT ? * 100 + %d", which);
        if (cdm_connect(m, "Lite", &c) != CDM_OK) {
            atomic_fetch_add(&rc_->failed, 1);
            continue;
        }
        if (k % 2) {
            if (cdm_prepare(c, sql, &s) == CDM_OK &&
                cdm_bind_int64(s, 0, which) == CDM_OK &&
                cdm_stmt_query(s, &r) == CDM_OK &&
                cdm_result_int64(r, 0, 0, &v) == CDM_OK)
                atomic_fetch_add(v == which * 101 ? &rc_->ok : &rc_->wrong, 1);
            else
                atomic_fetch_add(&rc_->failed, 1);
            cdm_stmt_free(s);
        } else {
            char arg_[8];
            snprintf(arg_, sizeof arg_, "%d", which);
            if (cdm_query(c, sql, (const char *const[]){ arg_ }, 1, &r) ==
                    CDM_OK &&
                cdm_result_int64(r, 0, 0, &v) == CDM_OK)
                atomic_fetch_add(v == which * 101 ? &rc_->ok : &rc_->wrong, 1);
            else
                atomic_fetch_add(&rc_->failed, 1);
        }
        cdm_result_free(r);
        cdm_disconnect(c);
    }
    return NULL;
}

START_TEST(test_cache_under_the_pool)
{
    struct race st = { 0 };
    pthread_t t[16];
    int run_ms = tu_env_ms("CDM_RACE_SECONDS", 2000, 50);
    int64_t end;
    cdm_conn *held[4];
    unsigned flip = 0;

    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, r_worker, &st), 0);
    end = tu_now_ms() + run_ms;
    while (tu_now_ms() < end) {
        if (flip++ % 2)
            ck_status(cdm_manager_close_def(m, "Lite"), CDM_OK);
        else
            ck_status(cdm_manager_set_param(m, "Lite", "BusyTimeout",
                                            flip % 4 ? "5000" : "6000"),
                      CDM_OK);
        tu_sleep_ms(20);   /* pacing the changes, not synchronisation */
    }
    atomic_store(&st.stop, true);
    for (int i = 0; i < 16; i++)
        pthread_join(t[i], NULL);
    printf("cache race: %ld right, %ld wrong, %ld failed\n",
           atomic_load(&st.ok), atomic_load(&st.wrong),
           atomic_load(&st.failed));
    ck_assert_int_eq(atomic_load(&st.wrong), 0);
    ck_assert_int_eq(atomic_load(&st.failed), 0);
    ck_assert_int_gt(atomic_load(&st.ok), 0);
    /* Every connection of the pool: at most its cache. */
    for (int i = 0; i < 4; i++) {
        held[i] = conn("Lite");
        ck_assert_int_le(open_statements(held[i]), 4);
    }
    for (int i = 0; i < 4; i++)
        cdm_disconnect(held[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stmt");
    TCase *values = tcase_create("values");
    TCase *locale = tcase_create("locale");
    TCase *misuse = tcase_create("misuse");
    TCase *cache = tcase_create("cache");

    tcase_add_checked_fixture(values, setup, teardown);
    tcase_add_test(values, test_round_trip_every_type);
    tcase_add_test(values, test_typed_values_compare_as_numbers);
    tcase_add_test(values, test_values_aligned);
    suite_add_tcase(s, values);
    /* localedef may build the locale first: seconds. */
    tcase_add_checked_fixture(locale, setup, teardown);
    tcase_set_timeout(locale, 60);
    tcase_add_test(locale, test_doubles_in_a_comma_locale);
    suite_add_tcase(s, locale);
    tcase_add_checked_fixture(misuse, setup, teardown);
    tcase_set_timeout(misuse, 30);
    tcase_add_test(misuse, test_misuse_is_a_clear_error);
    tcase_add_test(misuse, test_two_threads_in_one_statement);
    suite_add_tcase(s, misuse);
    tcase_add_checked_fixture(cache, setup, teardown);
    tcase_set_timeout(cache, 60);
    tcase_add_test(cache, test_cache_prepares_once_and_evicts);
    tcase_add_test(cache, test_open_statements_are_not_evicted);
    tcase_add_test(cache, test_cache_under_the_pool);
    suite_add_tcase(s, cache);
    return tu_run(s);
}
