/* check_pg.c - the PostgreSQL driver against a real server and PgBouncer: values, placeholders, errors, connect options, transactions, pooling, liveness, prepared statements and the statement cache. */
#define _GNU_SOURCE
#include "testutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

static struct tu_server pg, bouncer;   /* filled in main() */
static cdm_manager *m;
static cdm_conn *c;                    /* an unpooled connection to "PG" */

#define EXTRA(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define P(...) ((const char *const[]){ __VA_ARGS__ })

static void setup(void)
{
    ck_status(cdm_manager_new(&m), CDM_OK);
    ck_status(tu_server_def(m, "PG", "PG", &pg, NULL), CDM_OK);
    ck_status(cdm_connect(m, "PG", &c), CDM_OK);
}

static void teardown(void)
{
    cdm_disconnect(c);
    c = NULL;
    cdm_manager_free(m);
    m = NULL;
}

/* Adds definition `name` on the PostgreSQL server (or PgBouncer). */
static void add_def(const char *name, const struct tu_server *srv,
                    const char *const *extra)
{
    ck_status(tu_server_def(m, name, "PG", srv, extra), CDM_OK);
}

/* The one value of a one-row, one-column query, copied ("(null)" for SQL
 * NULL).  Free with free(). */
static char *scalar(cdm_conn *conn, const char *sql, const char *const *params,
                    size_t n)
{
    cdm_result *r = NULL;
    const char *v;
    char *copy;

    ck_status(cdm_query(conn, sql, params, n, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    ck_assert_uint_eq(cdm_result_ncols(r), 1);
    v = cdm_result_value(r, 0, 0);
    copy = strdup(v ? v : "(null)");
    cdm_result_free(r);
    return copy;
}

/* The same into `buf` (no allocation, so a failing assertion after it
 * leaks nothing). */
static const char *scalar_buf(cdm_conn *conn, const char *sql,
                              const char *const *params, size_t n, char *buf,
                              size_t size)
{
    char *v = scalar(conn, sql, params, n);
    size_t len = strlen(v);

    if (len >= size) {
        free(v);
        ck_abort_msg("value of '%s' is %zu bytes, too long to compare", sql,
                     len);
    }
    memcpy(buf, v, len + 1);
    free(v);
    return buf;
}

#define ck_scalar_p(conn, sql, params, n, want)                              \
    do {                                                                     \
        char ck_b_[512];                                                     \
        const char *ck_w_ = (want);                                          \
        scalar_buf((conn), (sql), (params), (n), ck_b_, sizeof ck_b_);       \
        ck_assert_msg(strcmp(ck_b_, ck_w_) == 0, "%s: got '%s', want '%s'",  \
                      (sql), ck_b_, ck_w_);                                  \
    } while (0)
#define ck_scalar(conn, sql, want) ck_scalar_p(conn, sql, NULL, 0, want)

static void exec_ok(cdm_conn *conn, const char *sql)
{
    ck_status(cdm_exec(conn, sql, NULL, 0, NULL), CDM_OK);
}

/* The server process behind a connection. */
static long pid_of(cdm_conn *conn)
{
    char *v = scalar(conn, "SELECT pg_backend_pid()", NULL, 0);
    long pid = atol(v);

    free(v);
    ck_assert_int_gt(pid, 0);
    return pid;
}

/* True if the decimal number `n` appears in `s` not glued to other digits. */
static int mentions_number(const char *s, long n)
{
    char num[24];
    size_t len = (size_t)snprintf(num, sizeof num, "%ld", n);

    for (const char *p = s; (p = strstr(p, num)) != NULL; p++) {
        int before = p > s && isdigit((unsigned char)p[-1]);
        int after = isdigit((unsigned char)p[len]);
        if (!before && !after)
            return 1;
    }
    return 0;
}

#define ck_errmsg_number(n)                                                  \
    ck_assert_msg(mentions_number(cdm_errmsg(), (n)),                        \
                  "errmsg '%s' lacks the number %ld", cdm_errmsg(), (long)(n))

/* Terminates server process `pid` as the admin and waits (up to 1 s)
 * until it is gone (5 s, stretched as tu_limit_ms says): out of
 * pg_stat_activity and its process exited, so its socket is closed.
 * Looks through `watcher`, another connection. */
static void kill_backend(cdm_conn *watcher, long pid)
{
    char path[64], num[24];
    char *out = tu_servers("psql \"SELECT pg_terminate_backend(%ld)\"", pid);
    long long deadline = tu_now_ms() + (long long)tu_limit_ms(5000);

    ck_assert_msg(out != NULL, "servers.sh psql failed");
    ck_assert_str_eq(out, "t");
    free(out);
    snprintf(num, sizeof num, "%ld", pid);
    snprintf(path, sizeof path, "/proc/%ld", pid);
    for (;;) {
        char *n = scalar(watcher, "SELECT count(*) FROM pg_stat_activity "
                                  "WHERE pid = ?", P(num), 1);
        int listed = strcmp(n, "0") != 0;

        free(n);
        if (!listed && access(path, F_OK) != 0)
            return;
        ck_assert_msg(tu_now_ms() < deadline,
                      "backend %ld still there %.0f ms after "
                      "pg_terminate_backend", pid, tu_limit_ms(5000));
        usleep(10000);
    }
}

/* ------------------------------------------------------------ values */

START_TEST(test_types_integers)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT 42::int2, '-32768'::int2, "
                           "'-2147483648'::int4, 2147483647::int4, "
                           "'-9223372036854775808'::int8, "
                           "9223372036854775807::int8, 0::int8",
                        NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_ncols(r), 7);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "42");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "-32768");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "-2147483648");
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "2147483647");
    ck_assert_str_eq(cdm_result_value(r, 0, 4), "-9223372036854775808");
    ck_assert_str_eq(cdm_result_value(r, 0, 5), "9223372036854775807");
    ck_assert_str_eq(cdm_result_value(r, 0, 6), "0");
    cdm_result_free(r);
    /* Bound as text, typed by the server. */
    ck_scalar_p(c, "SELECT ?::bigint - 1", P("-9223372036854775807"), 1,
                "-9223372036854775808");
    ck_scalar_p(c, "SELECT ? + 1", P("41"), 1, "42");
}
END_TEST

START_TEST(test_types_numeric_exact)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT '123.4500'::numeric, 123.45::numeric(10,4), "
                           "0.1 + 0.2, "
                           "12345678901234567890.123456789012345678::numeric, "
                           "'NaN'::numeric, -0.5::numeric(3,2), 1e-20::numeric",
                        NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "123.4500");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "123.4500");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "0.3");
    ck_assert_str_eq(cdm_result_value(r, 0, 3),
                     "12345678901234567890.123456789012345678");
    ck_assert_str_eq(cdm_result_value(r, 0, 4), "NaN");
    ck_assert_str_eq(cdm_result_value(r, 0, 5), "-0.50");
    ck_assert_str_eq(cdm_result_value(r, 0, 6), "0.00000000000000000001");
    cdm_result_free(r);
    /* A bound decimal keeps its digits and scale. */
    ck_scalar_p(c, "SELECT ?::numeric", P("123.4500"), 1, "123.4500");
    ck_scalar_p(c, "SELECT ?::numeric(12,2) * 3", P("0.10"), 1, "0.30");
}
END_TEST

START_TEST(test_types_float)
{
    cdm_result *r;

    /* PostgreSQL 12+ prints the shortest text that reads back exactly. */
    ck_status(cdm_query(c, "SELECT 1.5::real, 0.1::real, 0.1::float8, "
                           "1e300::float8, 'Infinity'::float8, "
                           "'-Infinity'::real, 'NaN'::float8, 1/3::float8",
                        NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "1.5");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "0.1");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "0.1");
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "1e+300");
    ck_assert_str_eq(cdm_result_value(r, 0, 4), "Infinity");
    ck_assert_str_eq(cdm_result_value(r, 0, 5), "-Infinity");
    ck_assert_str_eq(cdm_result_value(r, 0, 6), "NaN");
    ck_assert_str_eq(cdm_result_value(r, 0, 7), "0.3333333333333333");
    cdm_result_free(r);
    ck_scalar_p(c, "SELECT ?::float8 * 2", P("1.25"), 1, "2.5");
}
END_TEST

START_TEST(test_types_date_time)
{
    cdm_result *r;

    exec_ok(c, "SET TimeZone = 'UTC'");
    exec_ok(c, "SET DateStyle = 'ISO, MDY'");
    ck_status(cdm_query(c, "SELECT date '2024-02-29', "
                           "timestamp '2024-02-29 23:59:59.123456', "
                           "timestamptz '2024-02-29 23:59:59.5+02', "
                           "time '13:14:15', interval '1 day 2 hours', "
                           "date 'infinity'",
                        NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "2024-02-29");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "2024-02-29 23:59:59.123456");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "2024-02-29 21:59:59.5+00");
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "13:14:15");
    ck_assert_str_eq(cdm_result_value(r, 0, 4), "1 day 02:00:00");
    ck_assert_str_eq(cdm_result_value(r, 0, 5), "infinity");
    cdm_result_free(r);
    /* timestamptz is printed in the session's time zone. */
    exec_ok(c, "SET TimeZone = 'Asia/Kolkata'");
    ck_scalar_p(c, "SELECT ?::timestamptz", P("2024-01-01 00:00:00+00"), 1,
                "2024-01-01 05:30:00+05:30");
    ck_scalar_p(c, "SELECT ?::date + 1", P("2023-12-31"), 1, "2024-01-01");
}
END_TEST

START_TEST(test_types_boolean_is_t_f)
{
    cdm_result *r;

    /* PostgreSQL's text form of boolean is 't' / 'f', not "true"/"1". */
    ck_status(cdm_query(c, "SELECT true, false, NULL::boolean, 1 < 2",
                        NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "t");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "f");
    ck_assert_ptr_null(cdm_result_value(r, 0, 2));
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "t");
    cdm_result_free(r);
    ck_scalar_p(c, "SELECT ?::boolean", P("on"), 1, "t");
    ck_scalar_p(c, "SELECT NOT ?::boolean", P("true"), 1, "f");
}
END_TEST

START_TEST(test_types_bytea_hex)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT '\\x00ff'::bytea, decode('DEADbeef00', 'hex'), "
                           "''::bytea, convert_to('A', 'UTF8')",
                        NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "\\x00ff");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "\\xdeadbeef00");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "\\x");
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "\\x41");
    cdm_result_free(r);
    /* Bytes with NUL in them go in as hex text and come back the same. */
    exec_ok(c, "DROP TABLE IF EXISTS pg_bytes");
    exec_ok(c, "CREATE TABLE pg_bytes (b bytea)");
    ck_status(cdm_exec(c, "INSERT INTO pg_bytes VALUES (?)",
                       P("\\x0001020300ff"), 1, NULL), CDM_OK);
    ck_scalar(c, "SELECT octet_length(b) FROM pg_bytes", "6");
    ck_scalar(c, "SELECT b FROM pg_bytes", "\\x0001020300ff");
    ck_scalar(c, "SELECT get_byte(b, 5) FROM pg_bytes", "255");
}
END_TEST

START_TEST(test_types_uuid_json)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, "
                           "'{\"b\": [1, 2],  \"a\":1}'::json, "
                           "'{\"b\": [1, 2],  \"a\":1}'::jsonb, "
                           "'[true, null, \"x\"]'::jsonb",
                        NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0),
                     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    /* json keeps the text as written; jsonb prints its normal form. */
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "{\"b\": [1, 2],  \"a\":1}");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "{\"a\": 1, \"b\": [1, 2]}");
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "[true, null, \"x\"]");
    cdm_result_free(r);
    ck_scalar_p(c, "SELECT ?::uuid",
                P("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"), 1,
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    ck_scalar_p(c, "SELECT ?::jsonb ->> 'k'", P("{\"k\": \"caf\u00e9 \U0001F600\"}"),
                1, "caf\u00e9 \U0001F600");
}
END_TEST

START_TEST(test_types_null_and_empty)
{
    cdm_result *r;

    ck_status(cdm_query(c, "SELECT NULL, NULL::int, ''::text, 'x' AS named",
                        NULL, 0, &r), CDM_OK);
    ck_assert_ptr_null(cdm_result_value(r, 0, 0));
    ck_assert_ptr_null(cdm_result_value(r, 0, 1));
    ck_assert_ptr_nonnull(cdm_result_value(r, 0, 2));
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "");
    /* Unnamed columns get PostgreSQL's own names. */
    ck_assert_str_eq(cdm_result_colname(r, 0), "?column?");
    ck_assert_str_eq(cdm_result_colname(r, 1), "int4");
    ck_assert_str_eq(cdm_result_colname(r, 3), "named");
    cdm_result_free(r);
    /* Zero rows keep their columns. */
    ck_status(cdm_query(c, "SELECT 1 AS a, 2 AS b WHERE false", NULL, 0, &r),
              CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 0);
    ck_assert_uint_eq(cdm_result_ncols(r), 2);
    ck_assert_str_eq(cdm_result_colname(r, 1), "b");
    cdm_result_free(r);
}
END_TEST

/* Code points in UTF-8 text. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void unicode_round_trip(cdm_conn *conn)
{
    static const char *const texts[] = {
        "Gr\u00fc\u00dfe, \u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439, "
        "\u65e5\u672c\u8a9e, \u05e2\u05d1\u05e8\u05d9\u05ea",
        "e\u0301 \U0001F600 \U0001F1E9\U0001F1EA "
        "\U0001F468\u200D\U0001F469\u200D\U0001F467 \U0001D11E",
        "\u00a0\u2028\uFEFF\U0010FFFF",
    };
    char want[32];

    exec_ok(conn, "DROP TABLE IF EXISTS pg_uni");
    exec_ok(conn, "CREATE TABLE pg_uni (id int, v text)");
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char id[8];
        cdm_result *r;

        snprintf(id, sizeof id, "%zu", i);
        ck_status(cdm_exec(conn, "INSERT INTO pg_uni VALUES (?, ?)",
                           P(id, texts[i]), 2, NULL), CDM_OK);
        ck_status(cdm_query(conn, "SELECT v, length(v), octet_length(v), ? "
                                  "FROM pg_uni WHERE id = ?",
                            P(texts[i], id), 2, &r), CDM_OK);
        ck_assert_uint_eq(cdm_result_nrows(r), 1);
        /* Byte for byte, stored and echoed. */
        ck_assert_str_eq(cdm_result_value(r, 0, 0), texts[i]);
        ck_assert_str_eq(cdm_result_value(r, 0, 3), texts[i]);
        snprintf(want, sizeof want, "%zu", utf8_chars(texts[i]));
        ck_assert_str_eq(cdm_result_value(r, 0, 1), want);
        snprintf(want, sizeof want, "%zu", strlen(texts[i]));
        ck_assert_str_eq(cdm_result_value(r, 0, 2), want);
        cdm_result_free(r);
    }
    /* A literal in the SQL text arrives the same way. */
    ck_scalar(conn, "SELECT 'caf\u00e9 \U0001F600'", "caf\u00e9 \U0001F600");
    ck_scalar(conn, "SELECT 'caf\u00e9 \U0001F600' = "
                    "'caf' || chr(233) || ' ' || chr(128512)", "t");
}

START_TEST(test_unicode_default_charset)
{
    ck_scalar(c, "SHOW client_encoding", "UTF8");
    unicode_round_trip(c);
}
END_TEST

START_TEST(test_unicode_charset_utf8)
{
    cdm_conn *u;

    add_def("Utf8", &pg, EXTRA("CharacterSet=UTF8"));
    ck_status(cdm_connect(m, "Utf8", &u), CDM_OK);
    ck_scalar(u, "SHOW client_encoding", "UTF8");
    unicode_round_trip(u);
    cdm_disconnect(u);
}
END_TEST

#define BIG (10u * 1000u * 1000u)

START_TEST(test_large_text_param)
{
    char *big = malloc(BIG + 1), num[32];
    cdm_result *r;
    const char *v;

    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)('a' + (i * 7 + i / 1000) % 26);
    big[0] = '<';
    big[BIG - 1] = '>';
    big[BIG] = '\0';
    exec_ok(c, "DROP TABLE IF EXISTS pg_big");
    exec_ok(c, "CREATE TABLE pg_big (v text)");
    ck_status(cdm_exec(c, "INSERT INTO pg_big VALUES (?)", P(big), 1, NULL),
              CDM_OK);
    ck_status(cdm_query(c, "SELECT length(v), v FROM pg_big", NULL, 0, &r),
              CDM_OK);
    snprintf(num, sizeof num, "%u", BIG);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), num);
    v = cdm_result_value(r, 0, 1);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(strlen(v), BIG);
    ck_assert_msg(memcmp(v, big, BIG) == 0, "10 MB value changed on the way");
    cdm_result_free(r);
    /* And echoed straight back. */
    ck_status(cdm_query(c, "SELECT ?::text", P(big), 1, &r), CDM_OK);
    v = cdm_result_value(r, 0, 0);
    ck_assert_uint_eq(strlen(v), BIG);
    ck_assert_msg(memcmp(v, big, BIG) == 0, "10 MB echo changed on the way");
    cdm_result_free(r);
    free(big);
}
END_TEST

START_TEST(test_large_text_repeat)
{
    cdm_result *r;
    const char *v;

    ck_status(cdm_query(c, "SELECT repeat('x', 10000000)", NULL, 0, &r),
              CDM_OK);
    v = cdm_result_value(r, 0, 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(strlen(v), BIG);
    for (size_t i = 0; i < BIG; i++)
        if (v[i] != 'x')
            ck_abort_msg("byte %zu is 0x%02x", i, (unsigned char)v[i]);
    cdm_result_free(r);
}
END_TEST

/* ------------------------------------------------------- placeholders */

START_TEST(test_qmark_decoys_not_params)
{
    cdm_result *r;

    /* One real ?, first; every other ? is inside something. */
    ck_status(cdm_query(c,
                        "SELECT ? AS \"col?\", '?' AS a, E'\\'?' AS b, "
                        "'it''s ?' AS c,\n"
                        "  $$?$$ AS d, $tag$ ? $$ ? $tag$ AS e, "
                        "e'\\\\' AS f -- a ? comment\n"
                        "  /* outer ? /* nested ? */ still ? */",
                        P("real"), 1, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_ncols(r), 7);
    ck_assert_str_eq(cdm_result_colname(r, 0), "col?");
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "real");
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "?");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "'?");
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "it's ?");
    ck_assert_str_eq(cdm_result_value(r, 0, 4), "?");
    ck_assert_str_eq(cdm_result_value(r, 0, 5), " ? $$ ? ");
    ck_assert_str_eq(cdm_result_value(r, 0, 6), "\\");
    cdm_result_free(r);

    /* The real ? last, after decoys that could swallow it: a standard
     * string ending in a backslash, a doubled quote in an identifier. */
    ck_status(cdm_query(c,
                        "SELECT 'a\\' AS g, 1 AS \"q?\"\"?\", "
                        "/* ? /* ? */ ? */ $x$?$x$ AS h, ? AS p",
                        P("last"), 1, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_ncols(r), 4);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "a\\");
    ck_assert_str_eq(cdm_result_colname(r, 1), "q?\"?");
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "?");
    ck_assert_str_eq(cdm_result_value(r, 0, 3), "last");
    cdm_result_free(r);

    /* The same through cdm_exec: one parameter bound into a table. */
    exec_ok(c, "DROP TABLE IF EXISTS pg_decoy");
    exec_ok(c, "CREATE TABLE pg_decoy (\"v?\" text, w text)");
    ck_status(cdm_exec(c, "INSERT INTO pg_decoy (\"v?\", w) -- ?\n"
                          "VALUES (?, $$?$$ /* ? */ || E'\\'?')",
                       P("bound"), 1, NULL), CDM_OK);
    ck_scalar(c, "SELECT \"v?\" || '|' || w FROM pg_decoy", "bound|?'?");
}
END_TEST

START_TEST(test_qmark_doubled_is_literal)
{
    ck_scalar(c, "SELECT '{\"a\":1}'::jsonb ?? 'a'", "t");
    ck_scalar(c, "SELECT '{\"a\":1}'::jsonb ?? 'b'", "f");
    ck_scalar(c, "SELECT '{\"a\":1}'::jsonb ??| array['x', 'a']", "t");
    ck_scalar(c, "SELECT '{\"a\":1}'::jsonb ??& array['x', 'a']", "f");
    /* Mixed with real parameters. */
    ck_scalar_p(c, "SELECT ?::jsonb ?? ?", P("{\"k\": 1}", "k"), 2, "t");
    /* Inside a literal, ?? is two question marks. */
    ck_scalar(c, "SELECT '?" "?'", "??");
}
END_TEST

START_TEST(test_param_count_mismatch)
{
    cdm_result *r = NULL;
    int64_t n = -1;

    exec_ok(c, "DROP TABLE IF EXISTS pg_cnt");
    exec_ok(c, "CREATE TABLE pg_cnt (a text, b text)");
    ck_status(cdm_exec(c, "INSERT INTO pg_cnt VALUES (?, ?)", P("x"), 1, &n),
              CDM_ERR_INVALID);
    ck_errmsg_has("'PG'");
    ck_errmsg_number(2);
    ck_errmsg_number(1);
    ck_assert_int_eq(n, -1);
    ck_status(cdm_query(c, "SELECT ?, ?", P("x", "y", "z"), 3, &r),
              CDM_ERR_INVALID);
    ck_errmsg_number(2);
    ck_errmsg_number(3);
    ck_assert_ptr_null(r);
    /* ?? does not count. */
    ck_status(cdm_query(c, "SELECT ?::jsonb ?? ?", P("{}"), 1, &r),
              CDM_ERR_INVALID);
    ck_errmsg_number(2);
    ck_errmsg_number(1);
    ck_scalar(c, "SELECT count(*) FROM pg_cnt", "0");
}
END_TEST

START_TEST(test_null_param_binds_null)
{
    cdm_result *r;

    exec_ok(c, "DROP TABLE IF EXISTS pg_nullp");
    exec_ok(c, "CREATE TABLE pg_nullp (k text, v text, n int)");
    ck_status(cdm_exec(c, "INSERT INTO pg_nullp VALUES (?, ?, ?)",
                       P("a", NULL, NULL), 3, NULL), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO pg_nullp VALUES (?, ?, ?)",
                       P("b", "", "0"), 3, NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT v, n, v IS NULL FROM pg_nullp ORDER BY k",
                        NULL, 0, &r), CDM_OK);
    ck_assert_ptr_null(cdm_result_value(r, 0, 0));
    ck_assert_ptr_null(cdm_result_value(r, 0, 1));
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "t");
    ck_assert_str_eq(cdm_result_value(r, 1, 0), "");
    ck_assert_str_eq(cdm_result_value(r, 1, 1), "0");
    ck_assert_str_eq(cdm_result_value(r, 1, 2), "f");
    cdm_result_free(r);
    ck_scalar_p(c, "SELECT ?::text IS NULL", P(NULL), 1, "t");
}
END_TEST

START_TEST(test_injection_strings_are_data)
{
    static const char *const evil[] = {
        "'); DROP TABLE pg_inj_x; --",
        "\\' OR 1=1 --",
        "$$; DROP TABLE pg_inj_x; $$",
        "? $1 ?? /* ; */ E'\\'",
    };
    cdm_result *r;

    exec_ok(c, "DROP TABLE IF EXISTS pg_inj_x");
    exec_ok(c, "CREATE TABLE pg_inj_x (id serial, v text)");
    for (size_t i = 0; i < sizeof evil / sizeof *evil; i++)
        ck_status(cdm_exec(c, "INSERT INTO pg_inj_x (v) VALUES (?)",
                           P(evil[i]), 1, NULL), CDM_OK);
    ck_status(cdm_query(c, "SELECT v FROM pg_inj_x ORDER BY id", NULL, 0, &r),
              CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 4);
    for (size_t i = 0; i < sizeof evil / sizeof *evil; i++) {
        ck_assert_str_eq(cdm_result_value(r, i, 0), evil[i]);
        ck_scalar_p(c, "SELECT count(*) FROM pg_inj_x WHERE v = ?",
                    P(evil[i]), 1, "1");
    }
    cdm_result_free(r);
    ck_scalar(c, "SELECT to_regclass('pg_inj_x') IS NOT NULL", "t");
}
END_TEST

/* ------------------------------------------------------------- errors */

START_TEST(test_error_syntax)
{
    cdm_result *r = NULL;

    ck_status(cdm_exec(c, "SELEC 1", NULL, 0, NULL), CDM_ERR_QUERY);
    ck_errmsg_has("syntax error");
    ck_errmsg_has("'PG'");
    ck_status(cdm_query(c, "SELECT * FROM WHERE ?", P("1"), 1, &r),
              CDM_ERR_QUERY);
    ck_errmsg_has("syntax error");
    ck_errmsg_has("'PG'");
    ck_assert_ptr_null(r);
    ck_status(cdm_query(c, "SELECT 1/0", NULL, 0, &r), CDM_ERR_QUERY);
    ck_errmsg_has("division by zero");
    ck_status(cdm_query(c, "SELECT * FROM pg_no_such_table", NULL, 0, &r),
              CDM_ERR_QUERY);
    ck_errmsg_has("does not exist");
    /* Nothing broken: the connection goes on. */
    ck_scalar(c, "SELECT 1", "1");
    ck_status(cdm_ping(c), CDM_OK);
}
END_TEST

START_TEST(test_error_unique_violation)
{
    exec_ok(c, "DROP TABLE IF EXISTS pg_uniq");
    exec_ok(c, "CREATE TABLE pg_uniq (id int PRIMARY KEY)");
    ck_status(cdm_exec(c, "INSERT INTO pg_uniq VALUES (?)", P("1"), 1, NULL),
              CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO pg_uniq VALUES (?)", P("1"), 1, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("duplicate key");
    ck_errmsg_has("pg_uniq_pkey");
    ck_errmsg_has("'PG'");
    ck_scalar(c, "SELECT count(*) FROM pg_uniq", "1");
}
END_TEST

START_TEST(test_error_not_null_and_foreign_key)
{
    exec_ok(c, "DROP TABLE IF EXISTS pg_child, pg_parent");
    exec_ok(c, "CREATE TABLE pg_parent (id int PRIMARY KEY)");
    exec_ok(c, "CREATE TABLE pg_child (id int NOT NULL "
               "REFERENCES pg_parent (id))");
    ck_status(cdm_exec(c, "INSERT INTO pg_child VALUES (?)", P(NULL), 1, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("not-null constraint");
    ck_errmsg_has("'PG'");
    ck_status(cdm_exec(c, "INSERT INTO pg_child VALUES (?)", P("7"), 1, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("foreign key constraint");
    exec_ok(c, "INSERT INTO pg_parent VALUES (7); INSERT INTO pg_child VALUES (7)");
    ck_status(cdm_exec(c, "DELETE FROM pg_parent", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("foreign key constraint");
    ck_scalar(c, "SELECT count(*) FROM pg_child", "1");
}
END_TEST

START_TEST(test_error_commit_after_failure_reports_rollback)
{
    exec_ok(c, "DROP TABLE IF EXISTS pg_txfail");
    exec_ok(c, "CREATE TABLE pg_txfail (id int PRIMARY KEY)");
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO pg_txfail VALUES (1)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO pg_txfail VALUES (1)", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("duplicate key");
    /* Everything after the failure is refused until the end. */
    ck_status(cdm_exec(c, "INSERT INTO pg_txfail VALUES (2)", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("current transaction is aborted");
    ck_status(cdm_commit(c), CDM_ERR_QUERY);
    ck_errmsg_has("rolled back");
    ck_errmsg_has("'PG'");
    /* The transaction is over, and nothing of it was kept. */
    ck_status(cdm_rollback(c), CDM_ERR_STATE);
    ck_scalar(c, "SELECT count(*) FROM pg_txfail", "0");
}
END_TEST

/* ------------------------------------------------------------ connect */

START_TEST(test_connect_wrong_password)
{
    static const char *const bad = "Wr0ng-Zebra-Pa55-7731";
    struct tu_server s = pg;
    cdm_conn *x = NULL;

    s.password = bad;
    add_def("BadPw", &s, NULL);
    ck_status(cdm_connect(m, "BadPw", &x), CDM_ERR_CONNECT);
    ck_assert_ptr_null(x);
    ck_errmsg_has("password authentication failed");
    ck_errmsg_has("BadPw");
    ck_assert_msg(strstr(cdm_errmsg(), bad) == NULL,
                  "the password is in the message: %s", cdm_errmsg());
    ck_assert_msg(strstr(cdm_errmsg(), "Zebra") == NULL,
                  "part of the password is in the message: %s", cdm_errmsg());
}
END_TEST

/* A TCP port on 127.0.0.1 where nothing listens. */
static int closed_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);   /* bound, never listened: connecting is refused */
    return port;
}

START_TEST(test_connect_refused_port)
{
    struct tu_server s = pg;
    char port[16];
    cdm_conn *x = NULL;
    int p = closed_port();

    snprintf(port, sizeof port, "%d", p);
    s.port = port;
    add_def("Closed", &s, NULL);
    ck_status(cdm_connect(m, "Closed", &x), CDM_ERR_CONNECT);
    ck_assert_ptr_null(x);
    ck_errmsg_has("Closed");
    ck_errmsg_has("refused");
    ck_errmsg_number(p);
    /* libpq puts its hint on a second line after a tab: folded, so that
     * the message stays one log line. */
    ck_errmsg_has("refused; Is the server running");
    ck_assert_ptr_null(strpbrk(cdm_errmsg(), "\n\r\t"));
}
END_TEST

START_TEST(test_connect_unknown_database)
{
    struct tu_server s = pg;
    cdm_conn *x = NULL;

    s.db = "cdm_no_such_db";
    add_def("NoDb", &s, NULL);
    ck_status(cdm_connect(m, "NoDb", &x), CDM_ERR_CONNECT);
    ck_assert_ptr_null(x);
    ck_errmsg_has("does not exist");
    ck_errmsg_has("cdm_no_such_db");
    ck_errmsg_has("NoDb");
}
END_TEST

/* --------------------------------------------------------- PGAdvanced */

START_TEST(test_advanced_connect_timeout_refused)
{
    ck_status(tu_server_def(m, "Adv", "PG", &pg,
                            EXTRA("PGAdvanced=sslmode=disable;connect_timeout=5")),
              CDM_ERR_INVALID);
    ck_errmsg_has("LoginTimeout");
    ck_errmsg_has("connect_timeout");
    ck_errmsg_has("Adv");
    ck_assert_int_eq(cdm_manager_has_def(m, "Adv"), 0);
    /* set_param on an existing definition is refused the same way. */
    add_def("Adv", &pg, NULL);
    ck_status(cdm_manager_set_param(m, "Adv", "PGAdvanced", "connect_timeout=5"),
              CDM_ERR_INVALID);
    ck_errmsg_has("LoginTimeout");
}
END_TEST

START_TEST(test_advanced_unknown_keyword)
{
    ck_status(tu_server_def(m, "Adv", "PG", &pg,
                            EXTRA("PGAdvanced=bogus_key=1")),
              CDM_ERR_INVALID);
    ck_errmsg_has("bogus_key");
    ck_errmsg_has("Adv");
    ck_assert_int_eq(cdm_manager_has_def(m, "Adv"), 0);
    /* Not key=value at all. */
    ck_status(tu_server_def(m, "Adv", "PG", &pg,
                            EXTRA("PGAdvanced=sslmode")),
              CDM_ERR_INVALID);
    ck_errmsg_has("PGAdvanced");
}
END_TEST

START_TEST(test_advanced_password_refused)
{
    ck_status(tu_server_def(m, "Adv", "PG", &pg,
                            EXTRA("PGAdvanced=sslmode=disable; password=Hush7Secret")),
              CDM_ERR_INVALID);
    ck_errmsg_has("Password");
    ck_assert_msg(strstr(cdm_errmsg(), "Hush7Secret") == NULL,
                  "the password is in the message: %s", cdm_errmsg());
    ck_assert_int_eq(cdm_manager_has_def(m, "Adv"), 0);
    /* The other reserved keywords too. */
    ck_status(tu_server_def(m, "Adv", "PG", &pg,
                            EXTRA("PGAdvanced=application_name=x")),
              CDM_ERR_INVALID);
    ck_errmsg_has("ApplicationName");
    ck_status(tu_server_def(m, "Adv", "PG", &pg, EXTRA("PGAdvanced=host=x")),
              CDM_ERR_INVALID);
    ck_errmsg_has("Server");
}
END_TEST

/* The value libpq reports for keyword `key` of a live connection. */
static char *conninfo_value(PGconn *h, const char *key)
{
    PQconninfoOption *opts = PQconninfo(h), *o;
    char *v = NULL;

    ck_assert_ptr_nonnull(opts);
    for (o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val)
            v = strdup(o->val);
    PQconninfoFree(opts);
    return v ? v : strdup("(unset)");
}

START_TEST(test_advanced_valid_keywords_used)
{
    cdm_conn *x;
    PGconn *h;
    char *v;

    add_def("Adv", &pg, EXTRA("PGAdvanced=sslmode=disable;keepalives=1"));
    ck_status(cdm_connect(m, "Adv", &x), CDM_OK);
    ck_scalar(x, "SELECT 1", "1");
    h = cdm_conn_handle(x);
    ck_assert_int_eq(PQsslInUse(h), 0);
    v = conninfo_value(h, "sslmode");
    ck_assert_str_eq(v, "disable");
    free(v);
    v = conninfo_value(h, "keepalives");
    ck_assert_str_eq(v, "1");
    free(v);
    cdm_disconnect(x);
}
END_TEST

START_TEST(test_advanced_host_list_one_port)
{
    cdm_conn *x;
    struct tu_server s = pg;

    s.host = "127.0.0.1,127.0.0.1";
    add_def("Hosts", &s, EXTRA("PGAdvanced=target_session_attrs=any"));
    ck_status(cdm_connect(m, "Hosts", &x), CDM_OK);
    ck_scalar(x, "SELECT 1", "1");
    ck_assert_str_eq(PQhost(cdm_conn_handle(x)), "127.0.0.1");
    cdm_disconnect(x);
}
END_TEST

START_TEST(test_advanced_host_list_port_list)
{
    cdm_conn *x;
    struct tu_server s = pg;
    char ports[64];

    /* One port per host, as libpq takes them. */
    snprintf(ports, sizeof ports, "%s,%s", pg.port, pg.port);
    s.host = "127.0.0.1,127.0.0.1";
    s.port = ports;
    ck_status(tu_server_def(m, "Hosts", "PG", &s,
                            EXTRA("PGAdvanced=target_session_attrs=any")),
              CDM_OK);
    ck_status(cdm_connect(m, "Hosts", &x), CDM_OK);
    ck_scalar(x, "SELECT 1", "1");
    cdm_disconnect(x);
    /* The first host refuses; libpq moves on to the second. */
    snprintf(ports, sizeof ports, "%d,%s", closed_port(), pg.port);
    ck_status(tu_server_def(m, "Failover", "PG", &s,
                            EXTRA("PGAdvanced=target_session_attrs=any")),
              CDM_OK);
    ck_status(cdm_connect(m, "Failover", &x), CDM_OK);
    ck_scalar(x, "SELECT 1", "1");
    ck_assert_str_eq(PQport(cdm_conn_handle(x)), pg.port);
    cdm_disconnect(x);
}
END_TEST

/* ------------------------------------------------------------ session */

START_TEST(test_application_name_visible)
{
    cdm_conn *x;

    add_def("App", &pg, EXTRA("ApplicationName=cdm-check-pg"));
    ck_status(cdm_connect(m, "App", &x), CDM_OK);
    ck_scalar(x, "SELECT application_name FROM pg_stat_activity "
                 "WHERE pid = pg_backend_pid()", "cdm-check-pg");
    ck_scalar(x, "SHOW application_name", "cdm-check-pg");
    cdm_disconnect(x);
}
END_TEST

START_TEST(test_charset_latin1)
{
    cdm_conn *x;

    add_def("Latin1", &pg, EXTRA("CharacterSet=LATIN1"));
    ck_status(cdm_connect(m, "Latin1", &x), CDM_OK);
    ck_scalar(x, "SHOW client_encoding", "LATIN1");
    exec_ok(c, "DROP TABLE IF EXISTS pg_latin");
    exec_ok(c, "CREATE TABLE pg_latin (v text)");
    /* Latin-1 bytes in, converted by the server, read as UTF-8 elsewhere. */
    ck_status(cdm_exec(x, "INSERT INTO pg_latin VALUES (?)", P("caf\xe9"), 1,
                       NULL), CDM_OK);
    ck_scalar(x, "SELECT v FROM pg_latin", "caf\xe9");
    ck_scalar(c, "SELECT v FROM pg_latin", "caf\xc3\xa9");
    /* A character Latin-1 has not: the server says so. */
    exec_ok(c, "INSERT INTO pg_latin VALUES ('\U0001F600')");
    {
        cdm_result *r = NULL;
        ck_status(cdm_query(x, "SELECT v FROM pg_latin WHERE v <> 'caf\xe9'",
                            NULL, 0, &r), CDM_ERR_QUERY);
        ck_errmsg_has("LATIN1");
    }
    cdm_disconnect(x);
}
END_TEST

/* ------------------------------------------------------- transactions */

START_TEST(test_tx_commit_and_rollback)
{
    cdm_conn *o;

    ck_status(cdm_connect(m, "PG", &o), CDM_OK);
    exec_ok(c, "DROP TABLE IF EXISTS pg_tx");
    exec_ok(c, "CREATE TABLE pg_tx (id int)");
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO pg_tx VALUES (?)", P("1"), 1, NULL),
              CDM_OK);
    ck_scalar(o, "SELECT count(*) FROM pg_tx", "0");   /* not yet visible */
    ck_status(cdm_begin(c), CDM_ERR_STATE);
    ck_errmsg_has("already open");
    ck_status(cdm_commit(c), CDM_OK);
    ck_scalar(o, "SELECT count(*) FROM pg_tx", "1");

    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_exec(c, "INSERT INTO pg_tx VALUES (?)", P("2"), 1, NULL),
              CDM_OK);
    ck_scalar(c, "SELECT count(*) FROM pg_tx", "2");
    ck_status(cdm_rollback(c), CDM_OK);
    ck_scalar(c, "SELECT count(*) FROM pg_tx", "1");
    ck_scalar(o, "SELECT count(*) FROM pg_tx", "1");

    ck_status(cdm_commit(c), CDM_ERR_STATE);
    ck_errmsg_has("no transaction");
    ck_status(cdm_rollback(c), CDM_ERR_STATE);
    cdm_disconnect(o);
}
END_TEST

START_TEST(test_tx_begun_with_sql_is_seen)
{
    exec_ok(c, "DROP TABLE IF EXISTS pg_txsql");
    exec_ok(c, "CREATE TABLE pg_txsql (id int)");
    exec_ok(c, "BEGIN");
    ck_status(cdm_begin(c), CDM_ERR_STATE);
    ck_status(cdm_exec(c, "INSERT INTO pg_txsql VALUES (1)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_commit(c), CDM_OK);
    ck_status(cdm_commit(c), CDM_ERR_STATE);
    ck_scalar(c, "SELECT count(*) FROM pg_txsql", "1");

    exec_ok(c, "START TRANSACTION ISOLATION LEVEL SERIALIZABLE");
    ck_scalar(c, "SHOW transaction_isolation", "serializable");
    ck_status(cdm_exec(c, "INSERT INTO pg_txsql VALUES (2)", NULL, 0, NULL),
              CDM_OK);
    ck_status(cdm_rollback(c), CDM_OK);
    ck_scalar(c, "SELECT count(*) FROM pg_txsql", "1");

    /* Ended with SQL: the driver knows that too. */
    ck_status(cdm_begin(c), CDM_OK);
    exec_ok(c, "COMMIT");
    ck_status(cdm_commit(c), CDM_ERR_STATE);
}
END_TEST

START_TEST(test_tx_pool_return_rolls_back)
{
    cdm_conn *p;
    long pid;

    exec_ok(c, "DROP TABLE IF EXISTS pg_txpool");
    exec_ok(c, "CREATE TABLE pg_txpool (id int)");
    add_def("Pool", &pg, EXTRA("Pooled=True"));
    ck_status(cdm_connect(m, "Pool", &p), CDM_OK);
    pid = pid_of(p);
    ck_status(cdm_begin(p), CDM_OK);
    ck_status(cdm_exec(p, "INSERT INTO pg_txpool VALUES (1)", NULL, 0, NULL),
              CDM_OK);
    cdm_disconnect(p);   /* returned with the transaction open */
    ck_scalar(c, "SELECT count(*) FROM pg_txpool", "0");

    ck_status(cdm_connect(m, "Pool", &p), CDM_OK);
    ck_assert_int_eq(pid_of(p), pid);   /* the same session */
    ck_assert_int_eq(PQtransactionStatus(cdm_conn_handle(p)), PQTRANS_IDLE);
    ck_status(cdm_commit(p), CDM_ERR_STATE);
    ck_scalar(p, "SELECT count(*) FROM pg_txpool", "0");
    ck_status(cdm_begin(p), CDM_OK);
    ck_status(cdm_rollback(p), CDM_OK);
    cdm_disconnect(p);
}
END_TEST

/* -------------------------------------------------------------- pools */

/* Changes session state on a pooled connection of `def`, returns it,
 * borrows again (the same session) and checks what survived. */
static void session_state_after_return(const char *def, int reset)
{
    cdm_conn *p;
    long pid;

    ck_status(cdm_connect(m, def, &p), CDM_OK);
    pid = pid_of(p);
    ck_scalar(p, "SHOW application_name", "cdm-reset");
    exec_ok(p, "SET application_name = 'changed'");
    exec_ok(p, "CREATE TEMP TABLE pg_reset_tmp (x int)");
    exec_ok(p, "SET search_path = 'nowhere'");
    exec_ok(p, "PREPARE pg_reset_stmt AS SELECT 1");
    ck_scalar(p, "SHOW search_path", "nowhere");
    cdm_disconnect(p);

    ck_status(cdm_connect(m, def, &p), CDM_OK);
    ck_assert_int_eq(pid_of(p), pid);
    if (reset) {
        /* DISCARD ALL: back to the values the connection opened with. */
        ck_scalar(p, "SHOW application_name", "cdm-reset");
        ck_scalar(p, "SELECT application_name FROM pg_stat_activity "
                     "WHERE pid = pg_backend_pid()", "cdm-reset");
        ck_scalar(p, "SHOW search_path", "\"$user\", public");
        ck_scalar(p, "SELECT to_regclass('pg_temp.pg_reset_tmp') IS NULL", "t");
        ck_scalar(p, "SELECT count(*) FROM pg_prepared_statements", "0");
    } else {
        ck_scalar(p, "SHOW application_name", "changed");
        ck_scalar(p, "SHOW search_path", "nowhere");
        ck_scalar(p, "SELECT to_regclass('pg_temp.pg_reset_tmp') IS NULL", "f");
        ck_scalar(p, "SELECT count(*) FROM pg_prepared_statements", "1");
    }
    cdm_disconnect(p);
}

START_TEST(test_pool_reset_on_release_true)
{
    add_def("Reset", &pg, EXTRA("Pooled=True", "POOL_ResetOnRelease=True",
                                "ApplicationName=cdm-reset"));
    session_state_after_return("Reset", 1);
}
END_TEST

START_TEST(test_pool_reset_on_release_false)
{
    add_def("Keep", &pg, EXTRA("Pooled=True", "POOL_ResetOnRelease=False",
                               "ApplicationName=cdm-reset"));
    session_state_after_return("Keep", 0);
}
END_TEST

START_TEST(test_pool_killed_idle_replaced)
{
    cdm_pool_stats st0, st1;
    cdm_conn *p;
    long pid, pid2;

    add_def("Pool", &pg, EXTRA("Pooled=True"));
    ck_status(cdm_connect(m, "Pool", &p), CDM_OK);
    pid = pid_of(p);
    cdm_disconnect(p);
    ck_status(cdm_manager_pool_stats(m, "Pool", &st0), CDM_OK);
    ck_assert_int_eq(st0.idle, 1);

    kill_backend(c, pid);

    ck_status(cdm_connect(m, "Pool", &p), CDM_OK);
    pid2 = pid_of(p);
    ck_assert_int_ne(pid2, pid);
    ck_scalar(p, "SELECT 'works'", "works");
    ck_status(cdm_manager_pool_stats(m, "Pool", &st1), CDM_OK);
    ck_assert_int_eq(st1.destroyed, st0.destroyed + 1);
    ck_assert_int_eq(st1.created, st0.created + 1);
    ck_assert_int_eq(st1.total, 1);
    cdm_disconnect(p);
}
END_TEST

START_TEST(test_pool_killed_borrowed_broken)
{
    cdm_pool_stats st0, st1;
    cdm_conn *p;
    long pid;

    add_def("Pool", &pg, EXTRA("Pooled=True"));
    ck_status(cdm_connect(m, "Pool", &p), CDM_OK);
    pid = pid_of(p);
    ck_status(cdm_manager_pool_stats(m, "Pool", &st0), CDM_OK);

    kill_backend(c, pid);

    ck_status(cdm_exec(p, "SELECT 1", NULL, 0, NULL), CDM_ERR_BROKEN);
    ck_errmsg_has("'Pool'");
    ck_status(cdm_exec(p, "SELECT 1", NULL, 0, NULL), CDM_ERR_BROKEN);
    ck_status(cdm_ping(p), CDM_ERR_BROKEN);
    cdm_disconnect(p);

    ck_status(cdm_manager_pool_stats(m, "Pool", &st1), CDM_OK);
    ck_assert_int_eq(st1.destroyed, st0.destroyed + 1);
    ck_assert_int_eq(st1.total, 0);
    ck_assert_int_eq(st1.idle, 0);
    /* The next borrow gets a new session. */
    ck_status(cdm_connect(m, "Pool", &p), CDM_OK);
    ck_assert_int_ne(pid_of(p), pid);
    cdm_disconnect(p);
}
END_TEST

/* ----------------------------------------------------------- scripts */

START_TEST(test_exec_script_sums_rows)
{
    int64_t n = -1;

    exec_ok(c, "DROP TABLE IF EXISTS pg_script");
    ck_status(cdm_exec(c, "CREATE TABLE pg_script (x int);\n"
                          "INSERT INTO pg_script VALUES (1), (2);\n"
                          "INSERT INTO pg_script VALUES (3);\n"
                          "-- between statements\n"
                          "UPDATE pg_script SET x = x + 10 WHERE x > 1;",
                       NULL, 0, &n), CDM_OK);
    /* 2 + 1 inserted, 2 updated */
    ck_assert_int_eq(n, 5);
    ck_scalar(c, "SELECT string_agg(x::text, ',' ORDER BY x) FROM pg_script",
              "1,12,13");
}
END_TEST

START_TEST(test_exec_select_changes_no_rows)
{
    int64_t n = -1;

    exec_ok(c, "DROP TABLE IF EXISTS pg_sel");
    ck_status(cdm_exec(c, "CREATE TABLE pg_sel (x int); "
                          "INSERT INTO pg_sel VALUES (1), (2), (3)",
                       NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 3);
    /* cdm.h: `affected` gets the rows changed; a SELECT changes none,
     * however many it returns (PostgreSQL's command tag counts them). */
    ck_status(cdm_exec(c, "SELECT * FROM pg_sel", NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 0);
    n = -1;
    ck_status(cdm_exec(c, "SELECT * FROM pg_sel WHERE x > ?", P("0"), 1, &n),
              CDM_OK);
    ck_assert_int_eq(n, 0);
    n = -1;
    ck_status(cdm_exec(c, "UPDATE pg_sel SET x = x + 1 WHERE x > 1; "
                          "SELECT * FROM pg_sel", NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 2);
    /* Rows written by a statement that also returns them do count. */
    ck_status(cdm_exec(c, "INSERT INTO pg_sel VALUES (7), (8) RETURNING x",
                       NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(test_exec_script_failure_keeps_earlier)
{
    exec_ok(c, "DROP TABLE IF EXISTS pg_script2");
    ck_status(cdm_exec(c, "CREATE TABLE pg_script2 (x int);\n"
                          "INSERT INTO pg_script2 VALUES (1);\n"
                          "INSERT INTO pg_no_such_table VALUES (2);\n"
                          "INSERT INTO pg_script2 VALUES (3);",
                       NULL, 0, NULL), CDM_ERR_QUERY);
    ck_errmsg_has("pg_no_such_table");
    ck_errmsg_has("'PG'");
    /* cdm.h: "the first failure stops the script and the statements
     * before it stay done". */
    ck_scalar(c, "SELECT to_regclass('pg_script2') IS NOT NULL", "t");
    ck_scalar(c, "SELECT string_agg(x::text, ',') FROM pg_script2", "1");
}
END_TEST

START_TEST(test_exec_params_with_two_statements_refused)
{
    int64_t n = 42;

    exec_ok(c, "DROP TABLE IF EXISTS pg_two");
    exec_ok(c, "CREATE TABLE pg_two (v text)");
    ck_status(cdm_exec(c, "INSERT INTO pg_two VALUES (?); DROP TABLE pg_two",
                       P("a"), 1, &n), CDM_ERR_INVALID);
    ck_errmsg_has("statement");
    ck_errmsg_has("'PG'");
    ck_assert_int_eq(n, 42);
    ck_scalar(c, "SELECT count(*) FROM pg_two", "0");
    /* A ; inside a literal or dollar quote is not a second statement. */
    ck_status(cdm_exec(c, "INSERT INTO pg_two VALUES (? || ';' || $$;$$); -- ;",
                       P("a"), 1, &n), CDM_OK);
    ck_assert_int_eq(n, 1);
    ck_scalar(c, "SELECT v FROM pg_two", "a;;");
}
END_TEST

START_TEST(test_query_two_statements_refused)
{
    cdm_result *r = NULL;

    exec_ok(c, "DROP TABLE IF EXISTS pg_two");
    exec_ok(c, "CREATE TABLE pg_two (v text)");
    ck_status(cdm_query(c, "SELECT 1; DROP TABLE pg_two", NULL, 0, &r),
              CDM_ERR_INVALID);
    ck_errmsg_has("statement");
    ck_assert_ptr_null(r);
    ck_scalar(c, "SELECT to_regclass('pg_two') IS NOT NULL", "t");
    ck_status(cdm_query(c, "   ", NULL, 0, &r), CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
}
END_TEST

/* -------------------------------------------------------------- misc */

START_TEST(test_handle_driver_ping)
{
    PGconn *h = cdm_conn_handle(c);
    char pid[24];

    ck_assert_str_eq(cdm_conn_driver(c), "PG");
    ck_assert_str_eq(cdm_conn_def_name(c), "PG");
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(PQstatus(h), CONNECTION_OK);
    ck_assert_int_ge(PQserverVersion(h), 120000);
    ck_assert_str_eq(PQparameterStatus(h, "server_encoding"), "UTF8");
    snprintf(pid, sizeof pid, "%d", PQbackendPID(h));
    ck_scalar(c, "SELECT pg_backend_pid()", pid);
    ck_status(cdm_ping(c), CDM_OK);
}
END_TEST

START_TEST(test_notices_not_printed)
{
    char path[] = "/tmp/cdm-pg-stderr-XXXXXX";
    int fd = mkstemp(path), saved;
    struct stat st;

    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    exec_ok(c, "DO $$ BEGIN RAISE NOTICE 'cdm-notice'; "
               "RAISE WARNING 'cdm-warning'; END $$");
    exec_ok(c, "DROP TABLE IF EXISTS pg_never_there");   /* a NOTICE too */
    fflush(stderr);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    ck_assert_int_eq(fstat(fd, &st), 0);
    close(fd);
    unlink(path);
    ck_assert_int_eq(st.st_size, 0);
}
END_TEST

/* --------------------------------------------------------- statements */

/* Prepared statements and the statement cache: typed values in and out,
 * statements the server dropped or replanned, the cache under the pool. */

/* Statements the connection's server session holds.  Without parameters,
 * so that counting prepares nothing itself. */
static long prepared_count(cdm_conn *conn)
{
    char *v = scalar(conn, "SELECT count(*) FROM pg_prepared_statements",
                     NULL, 0);
    long n = atol(v);

    free(v);
    return n;
}

/* The one row of `s` run with `k` bound to its only parameter. */
static cdm_result *row_of(cdm_stmt *s, int64_t k)
{
    cdm_result *r = NULL;

    ck_status(cdm_bind_int64(s, 0, k), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    return r;
}

START_TEST(test_stmt_round_trip_every_type)
{
    static const char uni[] = "gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac "
                              "\xf0\x9d\x84\x9e \xe6\x97\xa5\xe6\x9c\xac";
    const double dbl[] = { -0.0, 1e308, NAN, INFINITY, -INFINITY, 0.1,
                           5e-324, -1.7976931348623157e308, 1.0 / 3 };
    size_t big = 1 << 20, len = 0, ndbl = sizeof dbl / sizeof dbl[0];
    unsigned char *blob = malloc(big);
    cdm_stmt *ins = NULL, *sel = NULL;
    cdm_result *r = NULL;
    const void *p;
    int64_t i;
    double d;

    ck_assert_ptr_nonnull(blob);
    for (size_t k = 0; k < big; k++)
        blob[k] = (unsigned char)(k % 256);
    exec_ok(c, "DROP TABLE IF EXISTS pg_rt");
    exec_ok(c, "CREATE TABLE pg_rt (k int PRIMARY KEY, b bytea, t text, "
               "i bigint, f float8)");
    ck_status(cdm_prepare(c, "INSERT INTO pg_rt VALUES (?, ?, ?, ?, ?)",
                          &ins), CDM_OK);
    ck_assert_uint_eq(cdm_stmt_nparams(ins), 5);
    /* Row k: one column set, the others NULL. */
#define ROW(k, col, bind)                                                    \
    do {                                                                     \
        for (size_t ck_c_ = 1; ck_c_ < 5; ck_c_++)                           \
            ck_status(cdm_bind_null(ins, ck_c_), CDM_OK);                    \
        ck_status(cdm_bind_int64(ins, 0, (k)), CDM_OK);                      \
        ck_status(bind(ins, col), CDM_OK);                                   \
        ck_status(cdm_stmt_exec(ins, &i), CDM_OK);                           \
        ck_assert_int_eq(i, 1);                                              \
    } while (0)
    {
        /* Each bind takes the statement and the column. */
#define B_BLOB_BIG(s_, c_) cdm_bind_blob(s_, c_, blob, big)
#define B_BLOB_EMPTY(s_, c_) cdm_bind_blob(s_, c_, "", 0)
#define B_TEXT_EMPTY(s_, c_) cdm_bind_text(s_, c_, "", 0)
#define B_NULL(s_, c_) cdm_bind_null(s_, c_)
#define B_MIN(s_, c_) cdm_bind_int64(s_, c_, INT64_MIN)
#define B_MAX(s_, c_) cdm_bind_int64(s_, c_, INT64_MAX)
#define B_UNI(s_, c_) cdm_bind_text(s_, c_, uni, CDM_NTS)
        ROW(1, 1, B_BLOB_BIG);
        ROW(2, 1, B_BLOB_EMPTY);
        ROW(3, 2, B_TEXT_EMPTY);
        ROW(4, 2, B_NULL);
        ROW(5, 3, B_MIN);
        ROW(6, 3, B_MAX);
        ROW(7, 2, B_UNI);
        for (size_t k = 0; k < ndbl; k++) {
#define B_DBL(s_, c_) cdm_bind_double(s_, c_, dbl[k])
            ROW(10 + (int64_t)k, 4, B_DBL);
#undef B_DBL
        }
#undef B_BLOB_BIG
#undef B_BLOB_EMPTY
#undef B_TEXT_EMPTY
#undef B_NULL
#undef B_MIN
#undef B_MAX
#undef B_UNI
    }
#undef ROW
    cdm_stmt_free(ins);

    ck_status(cdm_prepare(c, "SELECT b, t, i, f FROM pg_rt WHERE k = ?",
                          &sel), CDM_OK);
    r = row_of(sel, 1);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_BLOB);
    p = cdm_result_blob(r, 0, 0, &len);
    ck_assert_uint_eq(len, big);
    ck_assert_uint_eq(cdm_result_length(r, 0, 0), big);
    ck_assert_msg(memcmp(p, blob, big) == 0, "1 MB bytea changed on the way");
    ck_assert_int_eq(strncmp(cdm_result_value(r, 0, 0), "\\x000102", 8), 0);
    ck_assert_uint_eq(strlen(cdm_result_value(r, 0, 0)), 2 + 2 * big);
    for (size_t col = 1; col < 4; col++)
        ck_assert_int_eq(cdm_result_type(r, 0, col), CDM_TYPE_NULL);
    cdm_result_free(r);

    r = row_of(sel, 2);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_BLOB);
    ck_assert_uint_eq(cdm_result_length(r, 0, 0), 0);
    ck_assert_ptr_nonnull(cdm_result_blob(r, 0, 0, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "\\x");
    cdm_result_free(r);

    r = row_of(sel, 3);
    ck_assert_int_eq(cdm_result_type(r, 0, 1), CDM_TYPE_TEXT);
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "");
    cdm_result_free(r);
    r = row_of(sel, 4);
    ck_assert_int_eq(cdm_result_type(r, 0, 1), CDM_TYPE_NULL);
    ck_assert_ptr_null(cdm_result_value(r, 0, 1));
    cdm_result_free(r);

    r = row_of(sel, 5);
    ck_assert_int_eq(cdm_result_type(r, 0, 2), CDM_TYPE_INT);
    ck_status(cdm_result_int64(r, 0, 2, &i), CDM_OK);
    ck_assert(i == INT64_MIN);
    ck_assert_str_eq(cdm_result_value(r, 0, 2), "-9223372036854775808");
    cdm_result_free(r);
    r = row_of(sel, 6);
    ck_status(cdm_result_int64(r, 0, 2, &i), CDM_OK);
    ck_assert(i == INT64_MAX);
    cdm_result_free(r);

    r = row_of(sel, 7);
    ck_assert_int_eq(cdm_result_type(r, 0, 1), CDM_TYPE_TEXT);
    ck_assert_uint_eq(cdm_result_length(r, 0, 1), sizeof uni - 1);
    ck_assert_str_eq(cdm_result_value(r, 0, 1), uni);
    ck_status(cdm_result_int64(r, 0, 1, &i), CDM_ERR_INVALID);
    cdm_result_free(r);

    for (size_t k = 0; k < ndbl; k++) {
        r = row_of(sel, 10 + (int64_t)k);
        ck_assert_int_eq(cdm_result_type(r, 0, 3), CDM_TYPE_FLOAT);
        ck_status(cdm_result_double(r, 0, 3, &d), CDM_OK);
        if (isnan(dbl[k]))
            ck_assert_msg(isnan(d), "NaN came back as %s",
                          cdm_result_value(r, 0, 3));
        else
            ck_assert_msg(d == dbl[k] && !signbit(d) == !signbit(dbl[k]),
                          "%.17g came back as %.17g (%s)", dbl[k], d,
                          cdm_result_value(r, 0, 3));
        cdm_result_free(r);
    }
    /* As PostgreSQL spells them. */
    ck_scalar(c, "SELECT f FROM pg_rt WHERE k = 10", "-0");
    ck_scalar(c, "SELECT f FROM pg_rt WHERE k = 12", "NaN");
    ck_scalar(c, "SELECT f FROM pg_rt WHERE k = 14", "-Infinity");
    ck_scalar(c, "SELECT f FROM pg_rt WHERE k = 15", "0.1");
    cdm_stmt_free(sel);
    free(blob);
}
END_TEST

/* Every double reads back exactly, from its text as we send it and as
 * PostgreSQL prints it: bit patterns from a fixed generator. */
START_TEST(test_stmt_doubles_exact)
{
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;
    uint64_t x = 0x9e3779b97f4a7c15ULL;

    ck_status(cdm_prepare(c, "SELECT ?::float8", &s), CDM_OK);
    for (int k = 0; k < 2000; k++) {
        double in, out;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(&in, &x, sizeof in);
        if (isnan(in))
            continue;
        ck_status(cdm_bind_double(s, 0, in), CDM_OK);
        ck_status(cdm_stmt_query(s, &r), CDM_OK);
        ck_status(cdm_result_double(r, 0, 0, &out), CDM_OK);
        ck_assert_msg(memcmp(&in, &out, sizeof in) == 0,
                      "%a came back as %a (%s)", in, out,
                      cdm_result_value(r, 0, 0));
        cdm_result_free(r);
    }
    cdm_stmt_free(s);
}
END_TEST

/* In a comma locale a double goes to the server as 0.1, not 0,1 (which
 * float8 refuses), and the server's 0.1 reads back. */
START_TEST(test_stmt_doubles_in_a_comma_locale)
{
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;

    tu_comma_numeric();
    ck_status(cdm_prepare(c, "SELECT ?::float8 * 2, 0.75::float8", &s),
              CDM_OK);
    ck_status(cdm_bind_double(s, 0, 0.05), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_cell_double(r, 0, 0, "0.1", 0.1);
    ck_cell_double(r, 0, 1, NULL, 0.75);
    cdm_result_free(r);
    cdm_stmt_free(s);
    tu_c_numeric();
}
END_TEST

START_TEST(test_stmt_text_with_nul_refused)
{
    static const char text[] = "before\0after";
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;

    ck_status(cdm_prepare(c, "SELECT length(?)", &s), CDM_OK);
    ck_status(cdm_bind_text(s, 0, text, sizeof text - 1), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_errmsg_has("NUL");
    ck_errmsg_has("cdm_bind_blob");
    ck_errmsg_has("'PG'");
    /* Nothing was sent; the statement and the connection work on. */
    ck_status(cdm_bind_text(s, 0, text, 6), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "6");
    cdm_result_free(r);
    cdm_stmt_free(s);
}
END_TEST

/* A BLOB goes in binary, which only a bytea parameter reads as bytes. */
START_TEST(test_stmt_blob_needs_bytea)
{
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;
    const void *p;
    size_t len;

    ck_status(cdm_prepare(c, "SELECT ?::int4", &s), CDM_OK);
    ck_status(cdm_bind_blob(s, 0, "\0\0\0\x2a", 4), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_ERR_INVALID);
    ck_errmsg_has("bytea");
    ck_assert_ptr_null(r);
    /* Other types bind as before on the same statement. */
    ck_status(cdm_bind_int64(s, 0, 42), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "42");
    cdm_result_free(r);
    cdm_stmt_free(s);

    ck_status(cdm_prepare(c, "SELECT ?::bytea || ?::bytea, get_byte(?, 1)",
                          &s), CDM_OK);
    ck_status(cdm_bind_blob(s, 0, "a\0", 2), CDM_OK);
    ck_status(cdm_bind_blob(s, 1, "\xff", 1), CDM_OK);
    ck_status(cdm_bind_blob(s, 2, "\0\x7f\0", 3), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    p = cdm_result_blob(r, 0, 0, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(p, "a\0\xff", 3), 0);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "\\x6100ff");
    /* get_byte(?, 1) reads its parameter as bytea: the server says so. */
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "127");
    cdm_result_free(r);
    cdm_stmt_free(s);
}
END_TEST

/* Values keep their type by column on every path: a plain query, the
 * cache, and PQexecParams without a cache. */
static void check_typed_row(cdm_result *r)
{
    static const int want[] = { CDM_TYPE_INT, CDM_TYPE_INT, CDM_TYPE_INT,
                                CDM_TYPE_INT, CDM_TYPE_FLOAT, CDM_TYPE_FLOAT,
                                CDM_TYPE_BLOB, CDM_TYPE_TEXT, CDM_TYPE_TEXT,
                                CDM_TYPE_TEXT, CDM_TYPE_NULL };
    const void *p;
    int64_t i;
    double d;
    size_t len;

    ck_assert_uint_eq(cdm_result_ncols(r), sizeof want / sizeof want[0]);
    for (size_t col = 0; col < sizeof want / sizeof want[0]; col++)
        ck_assert_msg(cdm_result_type(r, 0, col) == want[col],
                      "column %zu is type %d, want %d", col,
                      cdm_result_type(r, 0, col), want[col]);
    ck_status(cdm_result_int64(r, 0, 0, &i), CDM_OK);
    ck_assert_int_eq(i, -32768);
    ck_status(cdm_result_int64(r, 0, 3, &i), CDM_OK);
    ck_assert_int_eq(i, 4294967295LL);
    ck_status(cdm_result_double(r, 0, 4, &d), CDM_OK);
    ck_assert(d == 1.5);
    ck_status(cdm_result_double(r, 0, 5, &d), CDM_OK);
    ck_assert(d == 0.1);
    p = cdm_result_blob(r, 0, 6, &len);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(memcmp(p, "\0\xff", 2), 0);
    ck_assert_str_eq(cdm_result_value(r, 0, 6), "\\x00ff");
    ck_assert_str_eq(cdm_result_value(r, 0, 8), "t");
    ck_assert_str_eq(cdm_result_value(r, 0, 9), "1.50");
}

#define TYPED_SQL "SELECT '-32768'::int2, 2::int4, 3::int8, 4294967295::oid, " \
                  "1.5::float4, 0.1::float8, '\\x00ff'::bytea, "             \
                  "?::text, true, 1.50::numeric, NULL::int"

START_TEST(test_results_typed_by_column)
{
    cdm_conn *nc;
    cdm_result *r = NULL;
    const void *p;
    size_t len;

    ck_status(cdm_query(c, TYPED_SQL, P("x"), 1, &r), CDM_OK);
    check_typed_row(r);
    cdm_result_free(r);
    add_def("NoCache", &pg, EXTRA("StatementCacheSize=0"));
    ck_status(cdm_connect(m, "NoCache", &nc), CDM_OK);
    ck_status(cdm_query(nc, TYPED_SQL, P("x"), 1, &r), CDM_OK);
    check_typed_row(r);
    cdm_result_free(r);
    ck_assert_int_eq(prepared_count(nc), 0);
    cdm_disconnect(nc);
    ck_status(cdm_query(c, "SELECT '-32768'::int2, 2::int4, 3::int8, "
                           "4294967295::oid, 1.5::float4, 0.1::float8, "
                           "'\\x00ff'::bytea, 'x'::text, true, "
                           "1.50::numeric, NULL::int", NULL, 0, &r), CDM_OK);
    check_typed_row(r);
    cdm_result_free(r);
    /* bytea_output = escape: still the raw bytes, and the \x text. */
    exec_ok(c, "SET bytea_output = 'escape'");
    ck_status(cdm_query(c, "SELECT '\\x00ff5c41'::bytea", NULL, 0, &r),
              CDM_OK);
    p = cdm_result_blob(r, 0, 0, &len);
    ck_assert_uint_eq(len, 4);
    ck_assert_int_eq(memcmp(p, "\0\xff\\A", 4), 0);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "\\x00ff5c41");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_stmt_prepare_refusals)
{
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;
    int64_t n = 7;

    ck_status(cdm_prepare(c, "SELECT 1; SELECT 2", &s), CDM_ERR_INVALID);
    ck_errmsg_has("more than one statement");
    ck_assert_ptr_null(s);
    ck_status(cdm_prepare(c, "SELEC ?", &s), CDM_ERR_QUERY);
    ck_errmsg_has("syntax error");
    ck_assert_ptr_null(s);
    /* No statement at all: nothing to query, nothing changed. */
    ck_status(cdm_prepare(c, "  ", &s), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_status(cdm_stmt_exec(s, &n), CDM_OK);
    ck_assert_int_eq(n, 0);
    cdm_stmt_free(s);
    /* ?? is a literal ? in a prepared statement too. */
    ck_status(cdm_prepare(c, "SELECT ?::jsonb ?? 'k'", &s), CDM_OK);
    ck_assert_uint_eq(cdm_stmt_nparams(s), 1);
    ck_status(cdm_bind_text(s, 0, "{\"k\": 1}", CDM_NTS), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "t");
    cdm_result_free(r);
    cdm_stmt_free(s);
}
END_TEST

/* DEALLOCATE ALL on the connection: the cached statement is prepared
 * again without the caller seeing it, except inside a transaction, where
 * the failure has aborted the transaction and is reported. */
START_TEST(test_stmt_stale_after_deallocate_all)
{
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;

    ck_scalar_p(c, "SELECT ?::int + 1", P("41"), 1, "42");
    ck_assert_int_eq(prepared_count(c), 1);
    exec_ok(c, "DEALLOCATE ALL");
    ck_assert_int_eq(prepared_count(c), 0);
    ck_scalar_p(c, "SELECT ?::int + 1", P("1"), 1, "2");
    ck_assert_int_eq(prepared_count(c), 1);

    /* An open statement across it. */
    ck_status(cdm_prepare(c, "SELECT ?::int * 2", &s), CDM_OK);
    r = row_of(s, 21);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "42");
    cdm_result_free(r);
    exec_ok(c, "DEALLOCATE ALL");
    r = row_of(s, 5);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "10");
    cdm_result_free(r);
    ck_assert_int_eq(prepared_count(c), 1);

    /* Inside a transaction: reported, and the transaction is gone. */
    ck_status(cdm_begin(c), CDM_OK);
    exec_ok(c, "DEALLOCATE ALL");
    ck_status(cdm_bind_int64(s, 0, 1), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_ERR_QUERY);
    ck_assert_ptr_null(r);
    ck_errmsg_has("does not exist");
    ck_errmsg_has("StatementCacheSize=0");
    ck_errmsg_has("transaction is aborted");
    ck_status(cdm_rollback(c), CDM_OK);
    r = row_of(s, 4);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "8");
    cdm_result_free(r);
    cdm_stmt_free(s);
    ck_assert_int_eq(prepared_count(c), 1);
}
END_TEST

/* A column changes type under a cached SELECT *: "cached plan must not
 * change result type" is handled once, by preparing it again. */
START_TEST(test_stmt_stale_after_alter_table)
{
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;

    exec_ok(c, "DROP TABLE IF EXISTS pg_alt");
    exec_ok(c, "CREATE TABLE pg_alt (a int, b int)");
    exec_ok(c, "INSERT INTO pg_alt VALUES (1, 10), (2, 20)");
    ck_status(cdm_prepare(c, "SELECT * FROM pg_alt WHERE a = ?", &s), CDM_OK);
    r = row_of(s, 1);
    ck_assert_int_eq(cdm_result_type(r, 0, 1), CDM_TYPE_INT);
    cdm_result_free(r);
    exec_ok(c, "ALTER TABLE pg_alt ALTER COLUMN b TYPE text");
    r = row_of(s, 2);
    ck_assert_int_eq(cdm_result_type(r, 0, 1), CDM_TYPE_TEXT);
    ck_assert_str_eq(cdm_result_value(r, 0, 1), "20");
    cdm_result_free(r);
    /* The replanned statement was dropped on the server, not left. */
    ck_assert_int_eq(prepared_count(c), 1);

    /* Through cdm_query and the cache alike, and inside a transaction
     * reported instead. */
    ck_scalar_p(c, "SELECT b FROM pg_alt WHERE a = ?", P("1"), 1, "10");
    exec_ok(c, "ALTER TABLE pg_alt ADD COLUMN c int");
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_bind_int64(s, 0, 1), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_ERR_QUERY);
    ck_errmsg_has("cached plan must not change result type");
    ck_errmsg_has("transaction is aborted");
    ck_status(cdm_rollback(c), CDM_OK);
    r = row_of(s, 1);
    ck_assert_uint_eq(cdm_result_ncols(r), 3);
    cdm_result_free(r);
    ck_scalar_p(c, "SELECT b FROM pg_alt WHERE a = ?", P("2"), 1, "20");
    ck_assert_int_eq(prepared_count(c), 2);
    cdm_stmt_free(s);
}
END_TEST

/* An eviction inside a transaction does not DEALLOCATE there (if that
 * failed it would abort the transaction); it happens after it. */
START_TEST(test_stmt_evicted_in_transaction)
{
    char sql[64];

    add_def("Small", &pg, EXTRA("StatementCacheSize=2"));
    cdm_disconnect(c);
    ck_status(cdm_connect(m, "Small", &c), CDM_OK);
    ck_scalar_p(c, "SELECT ?::int + 0", P("1"), 1, "1");
    ck_status(cdm_begin(c), CDM_OK);
    exec_ok(c, "DEALLOCATE ALL");    /* the DEALLOCATE of it would fail */
    for (int k = 1; k <= 3; k++) {
        snprintf(sql, sizeof sql, "SELECT ?::int + %d", k);
        ck_scalar_p(c, sql, P("1"), 1, k == 1 ? "2" : k == 2 ? "3" : "4");
    }
    /* Still open: the evicted statements were not touched in it. */
    ck_status(cdm_commit(c), CDM_OK);
    /* "+ 1" waits to be dropped ("+ 0" is gone already). */
    ck_assert_int_eq(prepared_count(c), 3);
    ck_scalar_p(c, "SELECT ?::int + 3", P("1"), 1, "4");
    ck_assert_int_eq(prepared_count(c), 2);
}
END_TEST

/* POOL_ResetOnRelease (DISCARD ALL) drops them; the next use prepares
 * again. */
START_TEST(test_stmt_reset_on_release_drops_them)
{
    cdm_conn *p;

    add_def("ResetStmt", &pg, EXTRA("Pooled=True", "POOL_MaximumItems=1",
                                    "POOL_ResetOnRelease=True"));
    ck_status(cdm_connect(m, "ResetStmt", &p), CDM_OK);
    ck_scalar_p(p, "SELECT ?::int + 1", P("1"), 1, "2");
    ck_scalar_p(p, "SELECT ?::int + 2", P("1"), 1, "3");
    ck_assert_int_eq(prepared_count(p), 2);
    cdm_disconnect(p);
    ck_status(cdm_connect(m, "ResetStmt", &p), CDM_OK);
    ck_assert_int_eq(prepared_count(p), 0);
    ck_scalar_p(p, "SELECT ?::int + 1", P("2"), 1, "3");
    ck_assert_int_eq(prepared_count(p), 1);
    cdm_disconnect(p);

    /* Without the reset they stay for the next borrower. */
    add_def("KeepStmt", &pg, EXTRA("Pooled=True", "POOL_MaximumItems=1"));
    ck_status(cdm_connect(m, "KeepStmt", &p), CDM_OK);
    ck_scalar_p(p, "SELECT ?::int + 1", P("1"), 1, "2");
    cdm_disconnect(p);
    ck_status(cdm_connect(m, "KeepStmt", &p), CDM_OK);
    ck_assert_int_eq(prepared_count(p), 1);
    cdm_disconnect(p);
}
END_TEST

/* StatementCacheSize=0: nothing is kept on the server, not even by
 * cdm_prepare (each run sends the SQL with its values); typed values as
 * with a cache, an error in the SQL at the first run. */
START_TEST(test_stmt_without_cache_keeps_nothing)
{
    cdm_conn *nc;
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;
    const void *p;
    size_t len;
    int64_t i;

    add_def("NoCache", &pg, EXTRA("StatementCacheSize=0"));
    ck_status(cdm_connect(m, "NoCache", &nc), CDM_OK);
    ck_status(cdm_prepare(nc, "SELECT ?::bytea, ?::int8 + 1, ?, ?", &s),
              CDM_OK);
    ck_assert_uint_eq(cdm_stmt_nparams(s), 4);
    ck_assert_int_eq(prepared_count(nc), 0);
    for (int k = 0; k < 3; k++) {
        ck_status(cdm_bind_blob(s, 0, "\0\xff", 2), CDM_OK);
        ck_status(cdm_bind_int64(s, 1, INT64_MAX - 1), CDM_OK);
        ck_status(cdm_bind_text(s, 2, "t\xc3\xa9", CDM_NTS), CDM_OK);
        ck_status(cdm_bind_double(s, 3, -0.0), CDM_OK);
        ck_status(cdm_stmt_query(s, &r), CDM_OK);
        p = cdm_result_blob(r, 0, 0, &len);
        ck_assert_uint_eq(len, 2);
        ck_assert_int_eq(memcmp(p, "\0\xff", 2), 0);
        ck_status(cdm_result_int64(r, 0, 1, &i), CDM_OK);
        ck_assert(i == INT64_MAX);
        ck_assert_str_eq(cdm_result_value(r, 0, 2), "t\xc3\xa9");
        ck_assert_str_eq(cdm_result_value(r, 0, 3), "-0");
        cdm_result_free(r);
        r = NULL;
    }
    ck_assert_int_eq(prepared_count(nc), 0);
    /* A BLOB where the SQL wants a number: the server refuses it. */
    ck_status(cdm_bind_blob(s, 1, "\0\0\0\1", 4), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_ERR_QUERY);
    ck_assert_ptr_null(r);
    cdm_stmt_free(s);
    ck_status(cdm_prepare(nc, "SELEC ?", &s), CDM_OK);
    ck_status(cdm_bind_int64(s, 0, 1), CDM_OK);
    ck_status(cdm_stmt_exec(s, NULL), CDM_ERR_QUERY);
    ck_errmsg_has("syntax error");
    cdm_stmt_free(s);
    ck_status(cdm_prepare(nc, "SELECT ?; SELECT 2", &s), CDM_ERR_INVALID);
    ck_assert_int_eq(prepared_count(nc), 0);
    cdm_disconnect(nc);
}
END_TEST

/* 16 threads, 10 parameterised statements, a cache of 4 (evicting), while
 * close_def and a set_param that bumps the pool's generation race them:
 * every answer right, and afterwards no pooled session holds more
 * statements than its cache. */
#define SC_THREADS 16
#define SC_MAX 6

struct sc_race {
    atomic_bool stop;
    atomic_long ok, wrong, failed;
    char first_error[256];
    atomic_flag error_taken;
};

static void sc_failed(struct sc_race *st, const char *what)
{
    atomic_fetch_add(&st->failed, 1);
    if (!atomic_flag_test_and_set(&st->error_taken))
        snprintf(st->first_error, sizeof st->first_error, "%s: %s", what,
                 cdm_errmsg());
}

static void *sc_worker(void *arg)
{
    struct sc_race *st = arg;
    unsigned k = (unsigned)(uintptr_t)&k;

    while (!atomic_load(&st->stop)) {
        cdm_conn *b = NULL;
        cdm_stmt *s = NULL;
        cdm_result *r = NULL;
        char sql[64], num[24];
        int64_t v = -1;
        int which = (int)(k++ % 10);
        int64_t x = (int64_t)(k % 1000);

        snprintf(sql, sizeof sql, "SELECT ?::int8 * 100 + %d", which);
        if (cdm_connect(m, "Cached", &b) != CDM_OK) {
            sc_failed(st, "connect");
            continue;
        }
        if (k % 2) {
            if (cdm_prepare(b, sql, &s) == CDM_OK &&
                cdm_bind_int64(s, 0, x) == CDM_OK &&
                cdm_stmt_query(s, &r) == CDM_OK &&
                cdm_result_int64(r, 0, 0, &v) == CDM_OK)
                atomic_fetch_add(v == x * 100 + which ? &st->ok : &st->wrong,
                                 1);
            else
                sc_failed(st, "cdm_prepare");
            cdm_stmt_free(s);
        } else {
            snprintf(num, sizeof num, "%" PRId64, x);
            if (cdm_query(b, sql, P(num), 1, &r) == CDM_OK &&
                cdm_result_int64(r, 0, 0, &v) == CDM_OK)
                atomic_fetch_add(v == x * 100 + which ? &st->ok : &st->wrong,
                                 1);
            else
                sc_failed(st, "cdm_query");
        }
        cdm_result_free(r);
        cdm_disconnect(b);
    }
    return NULL;
}

START_TEST(test_stmt_cache_under_the_pool)
{
    struct sc_race st = { .error_taken = ATOMIC_FLAG_INIT };
    pthread_t t[SC_THREADS];
    int run_ms = tu_env_ms("CDM_RACE_SECONDS", 2000, 50);
    cdm_conn *held[SC_MAX];
    long long end;
    unsigned flip = 0;

    add_def("Cached", &pg, EXTRA("Pooled=True", "POOL_MaximumItems=6",
                                 "StatementCacheSize=4"));
    for (int i = 0; i < SC_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, sc_worker, &st), 0);
    end = tu_now_ms() + run_ms;
    while (tu_now_ms() < end) {
        if (flip++ % 2)
            ck_status(cdm_manager_close_def(m, "Cached"), CDM_OK);
        else
            ck_status(cdm_manager_set_param(m, "Cached", "ApplicationName",
                                            flip % 4 ? "cdm-a" : "cdm-b"),
                      CDM_OK);
        /* Pacing the changes, not synchronisation: a PostgreSQL connect
         * takes ~15 ms (SCRAM), and each change reopens the pool. */
        tu_sleep_ms(200);
    }
    atomic_store(&st.stop, true);
    for (int i = 0; i < SC_THREADS; i++)
        pthread_join(t[i], NULL);
    printf("pg cache race: %ld right, %ld wrong, %ld failed\n",
           atomic_load(&st.ok), atomic_load(&st.wrong),
           atomic_load(&st.failed));
    ck_assert_int_eq(atomic_load(&st.wrong), 0);
    ck_assert_msg(atomic_load(&st.failed) == 0, "%ld failed, first: %s",
                  atomic_load(&st.failed), st.first_error);
    ck_assert_int_gt(atomic_load(&st.ok), 0);
    /* Every connection of the pool at once: at most its cache each. */
    for (int i = 0; i < SC_MAX; i++) {
        ck_status(cdm_connect(m, "Cached", &held[i]), CDM_OK);
        ck_assert_int_le(prepared_count(held[i]), 4);
    }
    for (int i = 0; i < SC_MAX; i++)
        cdm_disconnect(held[i]);
}
END_TEST

/* ---------------------------------------------------------- PgBouncer */

/* Server-side prepared statements do not survive a transaction through
 * PgBouncer in transaction mode: no statement cache (the README says so). */
static void add_bouncer_def(void)
{
    add_def("Bouncer", &bouncer, EXTRA("Pooled=True", "POOL_MaximumItems=8",
                                       "StatementCacheSize=0"));
}

START_TEST(test_bouncer_params)
{
    cdm_conn *b;
    char id[16];

    add_bouncer_def();
    ck_status(cdm_connect(m, "Bouncer", &b), CDM_OK);
    ck_assert_str_eq(PQport(cdm_conn_handle(b)), bouncer.port);
    exec_ok(b, "DROP TABLE IF EXISTS pg_bnc");
    exec_ok(b, "CREATE TABLE pg_bnc (id int, v text)");
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "%d", i);
        ck_status(cdm_exec(b, "INSERT INTO pg_bnc VALUES (?, ? || ?)",
                           P(id, "v", id), 3, NULL), CDM_OK);
    }
    ck_scalar_p(b, "SELECT v FROM pg_bnc WHERE id = ?", P("42"), 1, "v42");
    ck_scalar_p(b, "SELECT count(*) FROM pg_bnc WHERE id < ? AND v <> ?",
                P("10", "v3"), 2, "9");
    ck_scalar_p(b, "SELECT ?::jsonb ?? 'k'", P("{\"k\": null}"), 1, "t");
    ck_scalar_p(b, "SELECT ?::text IS NULL", P(NULL), 1, "t");
    /* Errors come through PgBouncer like direct ones. */
    ck_status(cdm_exec(b, "SELEC 1", NULL, 0, NULL), CDM_ERR_QUERY);
    ck_errmsg_has("syntax error");
    ck_scalar(c, "SELECT count(*) FROM pg_bnc", "50");
    cdm_disconnect(b);
}
END_TEST

START_TEST(test_bouncer_transactions)
{
    cdm_conn *b;

    add_bouncer_def();
    ck_status(cdm_connect(m, "Bouncer", &b), CDM_OK);
    exec_ok(b, "DROP TABLE IF EXISTS pg_bnc_tx");
    exec_ok(b, "CREATE TABLE pg_bnc_tx (id int PRIMARY KEY)");
    ck_status(cdm_begin(b), CDM_OK);
    ck_status(cdm_exec(b, "INSERT INTO pg_bnc_tx VALUES (?)", P("1"), 1, NULL),
              CDM_OK);
    ck_scalar(c, "SELECT count(*) FROM pg_bnc_tx", "0");
    ck_status(cdm_commit(b), CDM_OK);
    ck_scalar(c, "SELECT count(*) FROM pg_bnc_tx", "1");

    ck_status(cdm_begin(b), CDM_OK);
    ck_status(cdm_exec(b, "INSERT INTO pg_bnc_tx VALUES (?)", P("2"), 1, NULL),
              CDM_OK);
    ck_scalar(b, "SELECT count(*) FROM pg_bnc_tx", "2");
    ck_status(cdm_rollback(b), CDM_OK);
    ck_scalar(c, "SELECT count(*) FROM pg_bnc_tx", "1");

    ck_status(cdm_begin(b), CDM_OK);
    ck_status(cdm_exec(b, "INSERT INTO pg_bnc_tx VALUES (?)", P("1"), 1, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("duplicate key");
    ck_status(cdm_commit(b), CDM_ERR_QUERY);
    ck_errmsg_has("rolled back");
    ck_scalar(b, "SELECT count(*) FROM pg_bnc_tx", "1");

    /* Returned with a transaction open: rolled back, server side too. */
    ck_status(cdm_begin(b), CDM_OK);
    ck_status(cdm_exec(b, "INSERT INTO pg_bnc_tx VALUES (3)", NULL, 0, NULL),
              CDM_OK);
    cdm_disconnect(b);
    ck_scalar(c, "SELECT count(*) FROM pg_bnc_tx", "1");
}
END_TEST

START_TEST(test_bouncer_set_local_gone_after_commit)
{
    cdm_conn *b;

    add_bouncer_def();
    ck_status(cdm_connect(m, "Bouncer", &b), CDM_OK);
    /* Session state is not reliable through transaction pooling; what a
     * transaction sets for itself is. */
    ck_status(cdm_begin(b), CDM_OK);
    exec_ok(b, "SET LOCAL statement_timeout = '4321ms'");
    ck_scalar(b, "SHOW statement_timeout", "4321ms");
    ck_status(cdm_commit(b), CDM_OK);
    {
        char v[64];
        ck_assert_str_ne(scalar_buf(b, "SHOW statement_timeout", NULL, 0, v,
                                    sizeof v), "4321ms");
    }
    cdm_disconnect(b);
}
END_TEST

#define BNC_THREADS 8
#define BNC_CYCLES 200

struct bnc_worker {
    int index;
    bool typed;       /* cdm_prepare with an int64 and a BLOB bound */
    int ok;
    int wrong;
    int failures;
    char first_error[256];
};

static void *bnc_worker_main(void *arg)
{
    struct bnc_worker *w = arg;

    for (int i = 0; i < BNC_CYCLES; i++) {
        char in[32], want[32], msg[256];
        cdm_conn *b = NULL;
        cdm_result *r = NULL;
        int rc;

        snprintf(in, sizeof in, "%d", w->index * 1000 + i);
        snprintf(want, sizeof want, "%d", (w->index * 1000 + i) * 2);
        rc = cdm_connect(m, "Bouncer", &b);
        if (rc == CDM_OK && w->typed) {
            cdm_stmt *s = NULL;
            /* The BLOB's length joins the answer: 2 * in + 3. */
            snprintf(want, sizeof want, "%d", (w->index * 1000 + i) * 2 + 3);
            if ((rc = cdm_prepare(b, "SELECT ?::int8 * 2 + length(?)",
                                  &s)) == CDM_OK &&
                (rc = cdm_bind_int64(s, 0, w->index * 1000 + i)) == CDM_OK &&
                (rc = cdm_bind_blob(s, 1, "\0\1\0", 3)) == CDM_OK)
                rc = cdm_stmt_query(s, &r);
            cdm_stmt_free(s);
        } else if (rc == CDM_OK) {
            rc = cdm_query(b, "SELECT ?::int * 2", P(in), 1, &r);
        }
        if (rc == CDM_OK) {
            const char *v = cdm_result_value(r, 0, 0);
            if (v && strcmp(v, want) == 0) {
                w->ok++;
            } else {
                snprintf(msg, sizeof msg, "got '%s', want '%s'",
                         v ? v : "(null)", want);
                w->wrong++;
                rc = -1;
            }
            cdm_result_free(r);
        } else {
            snprintf(msg, sizeof msg, "%s: %s", cdm_strerror(rc), cdm_errmsg());
        }
        if (rc != CDM_OK && w->failures++ == 0)
            snprintf(w->first_error, sizeof w->first_error, "%s", msg);
        cdm_disconnect(b);
    }
    return NULL;
}

START_TEST(test_bouncer_threads)
{
    pthread_t th[BNC_THREADS];
    struct bnc_worker w[BNC_THREADS];
    cdm_pool_stats st;

    add_bouncer_def();
    memset(w, 0, sizeof w);
    for (int i = 0; i < BNC_THREADS; i++) {
        w[i].index = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, bnc_worker_main, &w[i]),
                         0);
    }
    for (int i = 0; i < BNC_THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < BNC_THREADS; i++) {
        ck_assert_msg(w[i].failures == 0, "thread %d: %d failures, first: %s",
                      i, w[i].failures, w[i].first_error);
        ck_assert_int_eq(w[i].ok, BNC_CYCLES);
    }
    ck_status(cdm_manager_pool_stats(m, "Bouncer", &st), CDM_OK);
    ck_assert_int_eq(st.acquired, BNC_THREADS * BNC_CYCLES);
    ck_assert_int_eq(st.in_use, 0);
    ck_assert_int_le(st.total, 8);
    ck_assert_int_eq(st.timeouts, 0);
}
END_TEST

/* Without a cache, cdm_prepare keeps nothing on the server, so typed
 * values (a BLOB among them) work through PgBouncer too. */
START_TEST(test_bouncer_typed_statements)
{
    pthread_t th[BNC_THREADS];
    struct bnc_worker w[BNC_THREADS];

    add_bouncer_def();
    memset(w, 0, sizeof w);
    for (int i = 0; i < BNC_THREADS; i++) {
        w[i].index = i;
        w[i].typed = true;
        ck_assert_int_eq(pthread_create(&th[i], NULL, bnc_worker_main, &w[i]),
                         0);
    }
    for (int i = 0; i < BNC_THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < BNC_THREADS; i++) {
        ck_assert_msg(w[i].failures == 0, "thread %d: %d failures, first: %s",
                      i, w[i].failures, w[i].first_error);
        ck_assert_int_eq(w[i].ok, BNC_CYCLES);
    }
}
END_TEST

/* With a statement cache through PgBouncer in transaction mode the
 * statement is prepared on one server connection and run on another: the
 * run fails (once prepared again, it may fail again), and the message
 * says what to do.  It never runs another client's statement (names are
 * random per connection). */
START_TEST(test_bouncer_statement_cache_fails_clearly)
{
    pthread_t th[BNC_THREADS];
    struct bnc_worker w[BNC_THREADS];
    int failures = 0;

    add_def("Bouncer", &bouncer, EXTRA("Pooled=True", "POOL_MaximumItems=8",
                                       "StatementCacheSize=32"));
    memset(w, 0, sizeof w);
    for (int i = 0; i < BNC_THREADS; i++) {
        w[i].index = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, bnc_worker_main, &w[i]),
                         0);
    }
    for (int i = 0; i < BNC_THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < BNC_THREADS; i++) {
        ck_assert_int_eq(w[i].wrong, 0);
        ck_assert_int_eq(w[i].ok + w[i].failures, BNC_CYCLES);
        if (w[i].failures)
            ck_assert_msg(strstr(w[i].first_error, "StatementCacheSize=0"),
                          "thread %d: %s", i, w[i].first_error);
        failures += w[i].failures;
    }
    printf("PgBouncer with a statement cache: %d of %d failed\n", failures,
           BNC_THREADS * BNC_CYCLES);
}
END_TEST

/* ---------------------------------------------------------------- main */

int main(void)
{
    Suite *s = suite_create("pg");
    TCase *tv = tcase_create("values");
    TCase *tb = tcase_create("big");
    TCase *tq = tcase_create("placeholders");
    TCase *te = tcase_create("errors");
    TCase *tc = tcase_create("connect");
    TCase *ta = tcase_create("advanced");
    TCase *ts = tcase_create("session");
    TCase *tt = tcase_create("transactions");
    TCase *tp = tcase_create("pool");
    TCase *tx = tcase_create("scripts");
    TCase *tm = tcase_create("misc");
    TCase *tg = tcase_create("pgbouncer");
    TCase *tst = tcase_create("statements");
    TCase *all[] = { tv, tb, tq, te, tc, ta, ts, tt, tp, tx, tm, tg, tst };

    tu_need_server("PG", &pg);
    tu_need_server("PGBOUNCER", &bouncer);

    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], 60);
        suite_add_tcase(s, all[i]);
    }
    tcase_set_timeout(tb, 180);
    tcase_set_timeout(tg, 180);

    tcase_add_test(tv, test_types_integers);
    tcase_add_test(tv, test_types_numeric_exact);
    tcase_add_test(tv, test_types_float);
    tcase_add_test(tv, test_types_date_time);
    tcase_add_test(tv, test_types_boolean_is_t_f);
    tcase_add_test(tv, test_types_bytea_hex);
    tcase_add_test(tv, test_types_uuid_json);
    tcase_add_test(tv, test_types_null_and_empty);
    tcase_add_test(tv, test_unicode_default_charset);
    tcase_add_test(tv, test_unicode_charset_utf8);

    tcase_add_test(tb, test_large_text_param);
    tcase_add_test(tb, test_large_text_repeat);

    tcase_add_test(tq, test_qmark_decoys_not_params);
    tcase_add_test(tq, test_qmark_doubled_is_literal);
    tcase_add_test(tq, test_param_count_mismatch);
    tcase_add_test(tq, test_null_param_binds_null);
    tcase_add_test(tq, test_injection_strings_are_data);

    tcase_add_test(te, test_error_syntax);
    tcase_add_test(te, test_error_unique_violation);
    tcase_add_test(te, test_error_not_null_and_foreign_key);
    tcase_add_test(te, test_error_commit_after_failure_reports_rollback);

    tcase_add_test(tc, test_connect_wrong_password);
    tcase_add_test(tc, test_connect_refused_port);
    tcase_add_test(tc, test_connect_unknown_database);

    tcase_add_test(ta, test_advanced_connect_timeout_refused);
    tcase_add_test(ta, test_advanced_unknown_keyword);
    tcase_add_test(ta, test_advanced_password_refused);
    tcase_add_test(ta, test_advanced_valid_keywords_used);
    tcase_add_test(ta, test_advanced_host_list_one_port);
    tcase_add_test(ta, test_advanced_host_list_port_list);

    tcase_add_test(ts, test_application_name_visible);
    tcase_add_test(ts, test_charset_latin1);

    tcase_add_test(tt, test_tx_commit_and_rollback);
    tcase_add_test(tt, test_tx_begun_with_sql_is_seen);
    tcase_add_test(tt, test_tx_pool_return_rolls_back);

    tcase_add_test(tp, test_pool_reset_on_release_true);
    tcase_add_test(tp, test_pool_reset_on_release_false);
    tcase_add_test(tp, test_pool_killed_idle_replaced);
    tcase_add_test(tp, test_pool_killed_borrowed_broken);

    tcase_add_test(tx, test_exec_script_sums_rows);
    tcase_add_test(tx, test_exec_select_changes_no_rows);
    tcase_add_test(tx, test_exec_script_failure_keeps_earlier);
    tcase_add_test(tx, test_exec_params_with_two_statements_refused);
    tcase_add_test(tx, test_query_two_statements_refused);

    tcase_add_test(tm, test_handle_driver_ping);
    tcase_add_test(tm, test_notices_not_printed);

    tcase_add_test(tg, test_bouncer_params);
    tcase_add_test(tg, test_bouncer_transactions);
    tcase_add_test(tg, test_bouncer_set_local_gone_after_commit);
    tcase_add_test(tg, test_bouncer_threads);
    tcase_add_test(tg, test_bouncer_typed_statements);
    tcase_add_test(tg, test_bouncer_statement_cache_fails_clearly);

    tcase_add_test(tst, test_stmt_round_trip_every_type);
    tcase_add_test(tst, test_stmt_doubles_exact);
    tcase_add_test(tst, test_stmt_doubles_in_a_comma_locale);
    tcase_add_test(tst, test_stmt_text_with_nul_refused);
    tcase_add_test(tst, test_stmt_blob_needs_bytea);
    tcase_add_test(tst, test_results_typed_by_column);
    tcase_add_test(tst, test_stmt_prepare_refusals);
    tcase_add_test(tst, test_stmt_stale_after_deallocate_all);
    tcase_add_test(tst, test_stmt_stale_after_alter_table);
    tcase_add_test(tst, test_stmt_evicted_in_transaction);
    tcase_add_test(tst, test_stmt_reset_on_release_drops_them);
    tcase_add_test(tst, test_stmt_without_cache_keeps_nothing);
    tcase_add_test(tst, test_stmt_cache_under_the_pool);

    return tu_run(s);
}
