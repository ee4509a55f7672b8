/* check_mysql.c - the MySQL/MariaDB driver against a real MariaDB server: values as text through both protocols, placeholders, row counts, errors, connect options, transactions, pooled reset/kill handling, threads, and typed values through prepared statements and their per-connection cache. */
#define _GNU_SOURCE
#include "testutil.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

/* ------------------------------------------------------------ helpers */

static struct tu_server srv;   /* filled once in main() */
static cdm_manager *m;
static cdm_conn *c;            /* the fixture's plain connection ("My") */

/* Adds definition `name` on the test server.  `over` (NULL-terminated,
 * may be NULL) holds "Key=Value" strings that replace the key of the same
 * name among the server's (Server, Port, Database, User_Name, Password)
 * or are added. */
static void add_def(cdm_manager *mgr, const char *name, const char *const *over)
{
    char base[5][300];
    const char *params[48];
    size_t n = 0;

    snprintf(base[0], sizeof base[0], "Server=%s", srv.host);
    snprintf(base[1], sizeof base[1], "Port=%s", srv.port);
    snprintf(base[2], sizeof base[2], "Database=%s", srv.db);
    snprintf(base[3], sizeof base[3], "User_Name=%s", srv.user);
    snprintf(base[4], sizeof base[4], "Password=%s", srv.password);
    params[n++] = "DriverID=MySQL";
    for (size_t i = 0; i < 5; i++)
        params[n++] = base[i];
    for (size_t i = 0; over && over[i]; i++) {
        size_t klen = strcspn(over[i], "=") + 1, j;
        for (j = 0; j < n; j++)
            if (strncasecmp(params[j], over[i], klen) == 0)
                break;
        ck_assert_uint_lt(j, 47);
        params[j] = over[i];
        if (j == n)
            n++;
    }
    params[n] = NULL;
    ck_status(cdm_manager_add_def(mgr, name, params), CDM_OK);
}

static void setup(void)
{
    ck_status(cdm_manager_new(&m), CDM_OK);
    add_def(m, "My", NULL);
    ck_status(cdm_connect(m, "My", &c), CDM_OK);
}

static void teardown(void)
{
    cdm_disconnect(c);
    c = NULL;
    cdm_manager_free(m);
    m = NULL;
}

/* Runs SQL that must succeed (no parameters). */
static void run(cdm_conn *conn, const char *sql)
{
    int rc = cdm_exec(conn, sql, NULL, 0, NULL);

    ck_assert_msg(rc == CDM_OK, "exec '%.300s': %s: %s", sql,
                  cdm_strerror(rc), cdm_errmsg());
}

/* Runs SQL with parameters that must succeed; returns the affected rows. */
static int64_t run_p(cdm_conn *conn, const char *sql, const char *const *p,
                     size_t n)
{
    int64_t aff = -1;
    int rc = cdm_exec(conn, sql, p, n, &aff);

    ck_assert_msg(rc == CDM_OK, "exec '%.300s': %s: %s", sql,
                  cdm_strerror(rc), cdm_errmsg());
    return aff;
}

/* The first value of a one-row result, copied (NULL for SQL NULL). */
static char *scalar_p(cdm_conn *conn, const char *sql, const char *const *p,
                      size_t n)
{
    cdm_result *r = NULL;
    const char *v;
    char *copy;
    int rc = cdm_query(conn, sql, p, n, &r);

    size_t rows, cols;

    ck_assert_msg(rc == CDM_OK, "query '%.300s': %s: %s", sql,
                  cdm_strerror(rc), cdm_errmsg());
    rows = cdm_result_nrows(r);
    cols = cdm_result_ncols(r);
    v = rows == 1 && cols >= 1 ? cdm_result_value(r, 0, 0) : NULL;
    copy = v ? strdup(v) : NULL;
    cdm_result_free(r);   /* before asserting: no leak when it fails */
    ck_assert_msg(rows == 1 && cols >= 1, "query '%.300s': %zu rows, "
                  "%zu columns", sql, rows, cols);
    ck_assert(!v || copy);
    return copy;
}

static char *scalar(cdm_conn *conn, const char *sql)
{
    return scalar_p(conn, sql, NULL, 0);
}

#define ck_scalar(conn, sql, want)                                           \
    do {                                                                     \
        char *ck_v_ = scalar((conn), (sql));                                 \
        ck_assert_pstr_eq(ck_v_, (want));                                    \
        free(ck_v_);                                                         \
    } while (0)

static long long scalar_ll(cdm_conn *conn, const char *sql)
{
    char *v = scalar(conn, sql);
    long long n;

    ck_assert_ptr_nonnull(v);
    n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

static long long conn_id(cdm_conn *conn)
{
    return scalar_ll(conn, "SELECT CONNECTION_ID()");
}

/* True if `msg` holds the whole number `n` (not part of a longer one). */
static bool msg_has_number(const char *msg, unsigned long n)
{
    for (const char *p = msg; *p;) {
        if (isdigit((unsigned char)*p)) {
            char *end;
            unsigned long v = strtoul(p, &end, 10);
            if (v == n)
                return true;
            p = end;
        } else {
            p++;
        }
    }
    return false;
}

#define ck_errmsg_lacks(needle)                                              \
    ck_assert_msg(strstr(cdm_errmsg(), (needle)) == NULL,                    \
                  "errmsg '%s' shows '%s'", cdm_errmsg(), (needle))

/* A connect error is one line and ends with words, not with the bare
 * number Connector/C puts there (errno or a resolver code). */
static void ck_errmsg_explained(void)
{
    const char *msg = cdm_errmsg();
    regex_t re;
    int found;

    ck_assert_int_eq(regcomp(&re, " \\(-?[0-9]+\\)$", REG_EXTENDED | REG_NOSUB), 0);
    found = regexec(&re, msg, 0, NULL, 0) == 0;
    regfree(&re);
    ck_assert_msg(!found, "errmsg '%s' ends with a bare number", msg);
    ck_assert_msg(*msg && !isdigit((unsigned char)msg[strlen(msg) - 1]),
                  "errmsg '%s' ends with a number", msg);
    ck_assert_msg(strchr(msg, '\n') == NULL, "errmsg '%s' spans lines", msg);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs `fmt` twice: with its one %s replaced by "" (no parameters: the
 * plain query path, text protocol) and by " AND 1 = ?" with "1" bound
 * (the prepared-statement path, binary protocol).  Asserts that both give
 * the same columns and the same text, byte for byte, and returns the
 * plain one; the prepared one goes to *prep when prep is not NULL. */
static cdm_result *query_both(cdm_conn *conn, const char *fmt,
                              cdm_result **prep)
{
    size_t len = strlen(fmt) + 32;
    char *sql = malloc(len);
    cdm_result *a = NULL, *b = NULL;
    int rc;

    ck_assert_ptr_nonnull(sql);
    snprintf(sql, len, fmt, "");
    rc = cdm_query(conn, sql, NULL, 0, &a);
    ck_assert_msg(rc == CDM_OK, "plain '%.300s': %s: %s", sql,
                  cdm_strerror(rc), cdm_errmsg());
    snprintf(sql, len, fmt, " AND 1 = ?");
    rc = cdm_query(conn, sql, (const char *[]){ "1" }, 1, &b);
    ck_assert_msg(rc == CDM_OK, "prepared '%.300s': %s: %s", sql,
                  cdm_strerror(rc), cdm_errmsg());
    ck_assert_uint_eq(cdm_result_ncols(a), cdm_result_ncols(b));
    ck_assert_uint_eq(cdm_result_nrows(a), cdm_result_nrows(b));
    for (size_t j = 0; j < cdm_result_ncols(a); j++)
        ck_assert_str_eq(cdm_result_colname(a, j), cdm_result_colname(b, j));
    for (size_t i = 0; i < cdm_result_nrows(a); i++)
        for (size_t j = 0; j < cdm_result_ncols(a); j++) {
            const char *x = cdm_result_value(a, i, j);
            const char *y = cdm_result_value(b, i, j);
            ck_assert_msg((!x && !y) || (x && y && strcmp(x, y) == 0),
                          "row %zu column %s: text protocol '%.200s', "
                          "binary protocol '%.200s'", i,
                          cdm_result_colname(a, j), x ? x : "(NULL)",
                          y ? y : "(NULL)");
        }
    free(sql);
    if (prep)
        *prep = b;
    else
        cdm_result_free(b);
    return a;
}

/* Asserts the values of one row; a NULL in `want` means SQL NULL. */
static void expect_row(const cdm_result *r, size_t row,
                       const char *const *want, size_t n)
{
    ck_assert_uint_eq(cdm_result_ncols(r), n);
    ck_assert_uint_lt(row, cdm_result_nrows(r));
    for (size_t j = 0; j < n; j++) {
        const char *v = cdm_result_value(r, row, j);
        if (!want[j])
            ck_assert_msg(v == NULL, "row %zu column %s: want NULL, got '%s'",
                          row, cdm_result_colname(r, j), v);
        else
            ck_assert_msg(v && strcmp(v, want[j]) == 0,
                          "row %zu column %s: want '%s', got '%s'", row,
                          cdm_result_colname(r, j), want[j], v ? v : "(NULL)");
    }
}

#define ck_row(r, row, ...)                                                  \
    expect_row((r), (row), (const char *const[]){ __VA_ARGS__ },             \
               sizeof((const char *const[]){ __VA_ARGS__ }) /                \
                   sizeof(const char *))

/* Waits up to 5 s (stretched as tu_limit_ms says) until the server no
 * longer lists connection `id`. */
static void wait_gone(cdm_conn *observer, long long id)
{
    char sql[160];

    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM information_schema."
             "PROCESSLIST WHERE ID = %lld", id);
    ck_eventually(scalar_ll(observer, sql) == 0, 5000);
}

static void kill_conn(cdm_conn *killer, long long id)
{
    char sql[64];

    snprintf(sql, sizeof sql, "KILL CONNECTION %lld", id);
    run(killer, sql);
    wait_gone(killer, id);
}

/* Waits up to 5 s (stretched) until socket `fd` has something to read
 * (here: the server closing it). */
static void wait_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    ck_assert_int_eq(poll(&p, 1, (int)tu_limit_ms(5000)), 1);
}

/* Runs SQL as the server's admin; returns its output (free it).  The SQL
 * should print something: tu_servers reads an empty output uninitialised. */
static char *admin(const char *sql)
{
    char *out = tu_servers("mysql \"%s\"", sql);

    ck_assert_msg(out != NULL, "admin SQL failed: %s", sql);
    return out;
}

/* --------------------------------------------------------------- types */

START_TEST(test_types_integers)
{
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS t_int");
    run(c, "CREATE TABLE t_int (id INT PRIMARY KEY, ti TINYINT, tu TINYINT "
           "UNSIGNED, si SMALLINT, mi MEDIUMINT, i INT, iu INT UNSIGNED, "
           "bi BIGINT, bu BIGINT UNSIGNED, yr YEAR, zf INT(6) ZEROFILL)");
    run(c, "INSERT INTO t_int VALUES "
           "(1, -128, 0, -32768, -8388608, -2147483648, 0, "
           "-9223372036854775808, 0, 1901, 42), "
           "(2, 127, 255, 32767, 8388607, 2147483647, 4294967295, "
           "9223372036854775807, 18446744073709551615, 2155, 1234567), "
           "(3, 0, 0, 0, 0, -1, 0, 0, 0, 2024, 0)");
    r = query_both(c, "SELECT * FROM t_int WHERE 1 = 1%s ORDER BY id", NULL);
    ck_assert_uint_eq(cdm_result_nrows(r), 3);
    ck_row(r, 0, "1", "-128", "0", "-32768", "-8388608", "-2147483648", "0",
           "-9223372036854775808", "0", "1901", "000042");
    ck_row(r, 1, "2", "127", "255", "32767", "8388607", "2147483647",
           "4294967295", "9223372036854775807", "18446744073709551615",
           "2155", "1234567");
    ck_row(r, 2, "3", "0", "0", "0", "0", "-1", "0", "0", "0", "2024",
           "000000");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_types_decimal)
{
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS t_dec");
    run(c, "CREATE TABLE t_dec (id INT PRIMARY KEY, d DECIMAL(20,4), "
           "w DECIMAL(65,30), z DECIMAL(5,0))");
    run(c, "INSERT INTO t_dec VALUES "
           "(1, 123.45, 12345678901234567890123456789012345."
           "123456789012345678901234567890, 12345), "
           "(2, -9999999999999999.9999, -0.000000000000000000000000000001, "
           "-99999), (3, 0, 0, 0)");
    r = query_both(c, "SELECT * FROM t_dec WHERE 1 = 1%s ORDER BY id", NULL);
    ck_row(r, 0, "1", "123.4500",
           "12345678901234567890123456789012345.123456789012345678901234567890",
           "12345");
    ck_row(r, 1, "2", "-9999999999999999.9999",
           "-0.000000000000000000000000000001", "-99999");
    ck_row(r, 2, "3", "0.0000", "0.000000000000000000000000000000", "0");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_types_float_double)
{
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS t_flt");
    run(c, "CREATE TABLE t_flt (id INT PRIMARY KEY, f FLOAT, d DOUBLE, "
           "f3 FLOAT(7,3), d2 DOUBLE(12,2))");
    run(c, "INSERT INTO t_flt VALUES (1, 1.5, 0.1, 1.5, 0.1), (2, -0.25, "
           "3.141592653589793, -0.25, 3.141592653589793), "
           "(3, 0.1, 1e300, 0.1, 1e9), (4, 3.14, -2.5e-300, 3.14, -2.5), "
           "(5, 0, 123456789.125, 0, 123456789.126), "
           "(6, 100000, 1e15, 1234.5678, 0), (7, 1e20, 1e16, -0.0016, 0.006), "
           "(8, 16777217, 0.30000000000000004, 0, 0)");
    r = query_both(c, "SELECT * FROM t_flt WHERE 1 = 1%s ORDER BY id", NULL);
    ck_row(r, 0, "1", "1.5", "0.1", "1.500", "0.10");
    ck_row(r, 1, "2", "-0.25", "3.141592653589793", "-0.250", "3.14");
    ck_row(r, 2, "3", "0.1", "1e300", "0.100", "1000000000.00");
    ck_row(r, 3, "4", "3.14", "-2.5e-300", "3.140", "-2.50");
    ck_row(r, 4, "5", "0", "123456789.125", "0.000", "123456789.13");
    ck_row(r, 5, "6", "100000", "1e15", "1234.568", "0.00");
    ck_row(r, 6, "7", "1e20", "1e16", "-0.002", "0.01");
    ck_row(r, 7, "8", "16777200", "0.30000000000000004", "0.000", "0.00");
    cdm_result_free(r);
    /* Computed values: aggregates, division, functions. */
    r = query_both(c, "SELECT SUM(id), AVG(id), COUNT(*), 1e0 / 3, 10 / 4, "
                      "PI(), ROUND(2.5), CAST(f AS DOUBLE), 0.1 + 0.2 "
                      "FROM t_flt WHERE id = 1%s", NULL);
    ck_row(r, 0, "1", "1.0000", "1", "0.3333333333333333", "2.5000",
           "3.141593", "3", "1.5", "0.3");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_types_date_time)
{
    cdm_result *r;

    run(c, "SET time_zone = '+00:00'");
    run(c, "DROP TABLE IF EXISTS t_dt");
    run(c, "CREATE TABLE t_dt (id INT PRIMARY KEY, d DATE, dt DATETIME, "
           "dt6 DATETIME(6), t TIME, t3 TIME(3), ts TIMESTAMP NULL, "
           "ts6 TIMESTAMP(6) NULL)");
    run(c, "INSERT INTO t_dt VALUES "
           "(1, '2024-02-29', '2024-02-29 13:14:15', "
           "'2024-02-29 13:14:15.123456', '12:34:56', '-12:34:56.5', "
           "'2024-02-29 13:14:15', '2038-01-19 03:14:07.999999'), "
           "(2, '1000-01-01', '9999-12-31 23:59:59', "
           "'1999-12-31 23:59:59.000000', '838:59:59', '00:00:00', "
           "'1970-01-01 00:00:01', '2001-02-03 04:05:06.000001'), "
           "(3, '0000-00-00', '0000-00-00 00:00:00', "
           "'0000-00-00 00:00:00', '-838:59:59', '-00:00:01.001', NULL, NULL)");
    r = query_both(c, "SELECT * FROM t_dt WHERE 1 = 1%s ORDER BY id", NULL);
    ck_row(r, 0, "1", "2024-02-29", "2024-02-29 13:14:15",
           "2024-02-29 13:14:15.123456", "12:34:56", "-12:34:56.500",
           "2024-02-29 13:14:15", "2038-01-19 03:14:07.999999");
    ck_row(r, 1, "2", "1000-01-01", "9999-12-31 23:59:59",
           "1999-12-31 23:59:59.000000", "838:59:59", "00:00:00.000",
           "1970-01-01 00:00:01", "2001-02-03 04:05:06.000001");
    ck_row(r, 2, "3", "0000-00-00", "0000-00-00 00:00:00",
           "0000-00-00 00:00:00.000000", "-838:59:59", "-00:00:01.001",
           NULL, NULL);
    cdm_result_free(r);
}
END_TEST

START_TEST(test_types_bool_enum_set)
{
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS t_be");
    run(c, "CREATE TABLE t_be (id INT PRIMARY KEY, b BOOLEAN, t1 TINYINT(1), "
           "e ENUM('small','medium','large'), s SET('a','b','c'))");
    run(c, "INSERT INTO t_be VALUES (1, TRUE, 1, 'medium', 'c,a'), "
           "(2, FALSE, 0, 'large', ''), (3, NULL, -1, NULL, 'b')");
    run_p(c, "INSERT INTO t_be VALUES (?, ?, ?, ?, ?)",
          (const char *[]){ "4", "1", "0", "small", "a,b,c" }, 5);
    r = query_both(c, "SELECT * FROM t_be WHERE 1 = 1%s ORDER BY id", NULL);
    ck_assert_uint_eq(cdm_result_nrows(r), 4);
    ck_row(r, 0, "1", "1", "1", "medium", "a,c");
    ck_row(r, 1, "2", "0", "0", "large", "");
    ck_row(r, 2, "3", NULL, "-1", NULL, "b");
    ck_row(r, 3, "4", "1", "0", "small", "a,b,c");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_types_strings_json)
{
    static const char tricky[] = "it's \"quoted\" \\ back\tslash\nnew line";
    static const char json[] = "{\"a\": [1, 2.50, \"x\"], \"b\": null}";
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS t_str");
    run(c, "CREATE TABLE t_str (id INT PRIMARY KEY, v VARCHAR(100), "
           "ch CHAR(10), tx TEXT, mt MEDIUMTEXT, j JSON)");
    run(c, "INSERT INTO t_str VALUES (1, 'hello world', 'ab', 'some text', "
           "'more text', '{\"a\": [1, 2.50, \"x\"], \"b\": null}')");
    run_p(c, "INSERT INTO t_str VALUES (2, ?, ?, ?, ?, ?)",
          (const char *[]){ tricky, "  pad", tricky, "", "[]" }, 5);
    r = query_both(c, "SELECT * FROM t_str WHERE 1 = 1%s ORDER BY id", NULL);
    ck_row(r, 0, "1", "hello world", "ab", "some text", "more text", json);
    /* CHAR drops trailing blanks, keeps leading ones. */
    ck_row(r, 1, "2", tricky, "  pad", tricky, "", "[]");
    cdm_result_free(r);
    /* JSON functions return text too. */
    r = query_both(c, "SELECT JSON_EXTRACT(j, '$.a[1]') AS x, "
                      "JSON_OBJECT('k', 'v') AS o FROM t_str "
                      "WHERE id = 1%s", NULL);
    ck_row(r, 0, "2.50", "{\"k\": \"v\"}");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_types_binary_as_hex)
{
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS t_bin");
    run(c, "CREATE TABLE t_bin (id INT PRIMARY KEY, bl BLOB, vb VARBINARY(16), "
           "bn BINARY(4), bt BIT(8), lb LONGBLOB, g POINT NULL)");
    run(c, "INSERT INTO t_bin VALUES (1, x'00ff00', x'DEADBEEF', x'6162', "
           "b'10100101', x'', ST_GeomFromText('POINT(1 2)')), "
           "(2, x'000000', x'00', x'00000001', b'0', NULL, NULL)");
    run_p(c, "INSERT INTO t_bin VALUES (3, ?, ?, ?, NULL, ?, NULL)",
          (const char *[]){ "abc", "A\xc3\xa9", "xyzw", "\x7f\x80" }, 4);
    r = query_both(c, "SELECT * FROM t_bin WHERE 1 = 1%s ORDER BY id", NULL);
    /* "\x" + lowercase hex, NUL bytes included; BINARY(n) is padded;
     * geometry is the server's internal form (SRID + WKB). */
    ck_row(r, 0, "1", "\\x00ff00", "\\xdeadbeef", "\\x61620000", "\\xa5",
           "\\x", "\\x000000000101000000000000000000f03f0000000000000040");
    ck_row(r, 1, "2", "\\x000000", "\\x00", "\\x00000001", "\\x00", NULL,
           NULL);
    ck_row(r, 2, "3", "\\x616263", "\\x41c3a9", "\\x78797a77", NULL,
           "\\x7f80", NULL);
    cdm_result_free(r);
    /* Binary expressions too; a text cast of the same bytes is text. */
    r = query_both(c, "SELECT UNHEX('00410042') AS u, CAST(bl AS CHAR) AS s "
                      "FROM t_bin WHERE id = 3%s", NULL);
    ck_row(r, 0, "\\x00410042", "abc");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_types_null_and_empty)
{
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS t_null");
    run(c, "CREATE TABLE t_null (id INT PRIMARY KEY, i INT, d DECIMAL(20,4), "
           "f DOUBLE, dt DATETIME(6), v VARCHAR(10), tx TEXT, b BLOB, j JSON)");
    run(c, "INSERT INTO t_null (id) VALUES (1)");
    run(c, "INSERT INTO t_null VALUES (2, 0, 0, 0, '2000-01-01', '', '', '', "
           "'\"\"')");
    r = query_both(c, "SELECT * FROM t_null WHERE 1 = 1%s ORDER BY id", NULL);
    ck_row(r, 0, "1", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    /* Empty is not NULL. */
    ck_row(r, 1, "2", "0", "0.0000", "0", "2000-01-01 00:00:00.000000", "", "",
           "\\x", "\"\"");
    cdm_result_free(r);
    r = query_both(c, "SELECT NULL AS n, '' AS e FROM DUAL WHERE 1 = 1%s", NULL);
    ck_row(r, 0, NULL, "");
    cdm_result_free(r);
}
END_TEST

/* Number of characters in UTF-8 text. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

START_TEST(test_unicode_utf8mb4_exact)
{
    static const char *const texts[] = {
        ("Gr\xc3\xbc\xc3\x9f" "e"),   /* Grüße (split: \x9fe is one escape) */
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",             /* 日本語 */
        "emoji \xf0\x9f\x98\x80\xf0\x9f\x8e\x89 done",      /* 😀🎉 */
        "\xf0\x9d\x84\x9e clef, \xe2\x82\xac euro",         /* 𝄞 € */
        "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb",     /* ZWJ sequence */
    };
    size_t n = sizeof texts / sizeof *texts;
    char sql[256];
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS t_uni");
    run(c, "CREATE TABLE t_uni (id INT PRIMARY KEY, v VARCHAR(50), tx TEXT)");
    for (size_t i = 0; i < n; i++) {
        char id[8];
        snprintf(id, sizeof id, "%zu", i);
        ck_assert_int_eq(run_p(c, "INSERT INTO t_uni VALUES (?, ?, ?)",
                               (const char *[]){ id, texts[i], texts[i] }, 3),
                         1);
    }
    r = query_both(c, "SELECT v, tx, CHAR_LENGTH(v), LENGTH(tx) FROM t_uni "
                      "WHERE 1 = 1%s ORDER BY id", NULL);
    ck_assert_uint_eq(cdm_result_nrows(r), n);
    for (size_t i = 0; i < n; i++) {
        char chars[24], bytes[24];
        snprintf(chars, sizeof chars, "%zu", utf8_chars(texts[i]));
        snprintf(bytes, sizeof bytes, "%zu", strlen(texts[i]));
        ck_row(r, i, texts[i], texts[i], chars, bytes);
    }
    cdm_result_free(r);
    /* A literal in the SQL text and a bound value, read straight back. */
    snprintf(sql, sizeof sql, "SELECT '%s' AS a, ? AS b", texts[2]);
    r = NULL;
    ck_status(cdm_query(c, sql, (const char *[]){ texts[3] }, 1, &r), CDM_OK);
    ck_row(r, 0, texts[2], texts[3]);
    cdm_result_free(r);
    snprintf(sql, sizeof sql, "SELECT '%s' AS `%s`", texts[2], texts[1]);
    r = NULL;
    ck_status(cdm_query(c, sql, NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_colname(r, 0), texts[1]);
    ck_row(r, 0, texts[2]);
    cdm_result_free(r);
}
END_TEST

START_TEST(test_value_10mb_round_trip)
{
    const size_t big = 10u * 1024 * 1024;
    char *v = malloc(big + 1), *len;
    cdm_result *r, *p;
    long long allowed = scalar_ll(c, "SELECT @@max_allowed_packet");

    /* The server must take a 10 MB packet; raise the limit if it is lower
     * (global: seen by connections opened afterwards). */
    if (allowed < 12 * 1024 * 1024) {
        free(admin("SET GLOBAL max_allowed_packet = 67108864; SELECT 1"));
        cdm_disconnect(c);
        ck_status(cdm_connect(m, "My", &c), CDM_OK);
    }
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)('a' + (i * 7 + i / 26) % 26);
    memcpy(v + big - 4, "\xf0\x9f\x98\x80", 4);   /* ends with an emoji */
    v[big] = '\0';
    run(c, "DROP TABLE IF EXISTS t_big");
    run(c, "CREATE TABLE t_big (id INT PRIMARY KEY, v LONGTEXT)");
    ck_assert_int_eq(run_p(c, "INSERT INTO t_big VALUES (1, ?)",
                           (const char *[]){ v }, 1), 1);
    len = scalar(c, "SELECT LENGTH(v) FROM t_big");
    ck_assert_str_eq(len, "10485760");
    free(len);
    r = query_both(c, "SELECT v FROM t_big WHERE id = 1%s", &p);
    ck_assert_uint_eq(strlen(cdm_result_value(r, 0, 0)), big);
    ck_assert_uint_eq(strlen(cdm_result_value(p, 0, 0)), big);
    ck_assert(memcmp(cdm_result_value(r, 0, 0), v, big) == 0);
    ck_assert(memcmp(cdm_result_value(p, 0, 0), v, big) == 0);
    cdm_result_free(r);
    cdm_result_free(p);
    /* And the bound value comes straight back through SELECT ?. */
    r = NULL;
    ck_status(cdm_query(c, "SELECT ? AS echo", (const char *[]){ v }, 1, &r),
              CDM_OK);
    ck_assert_uint_eq(strlen(cdm_result_value(r, 0, 0)), big);
    ck_assert(memcmp(cdm_result_value(r, 0, 0), v, big) == 0);
    cdm_result_free(r);
    free(v);
}
END_TEST

/* A value of `n` bytes made from `seed`; free it. */
static char *pattern(size_t n, unsigned seed)
{
    char *s = malloc(n + 1);

    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('A' + (i + seed) % 50);
    s[n] = '\0';
    return s;
}

START_TEST(test_long_values_whole)
{
    /* Lengths around the prepared path's 128-byte minimum fetch buffer and
     * far beyond it, short rows before and after long ones; in a text and
     * a blob column. */
    static const size_t lens[] = { 1, 127, 128, 129, 0, 255, 256, 1000, 4097,
                                   65535, 65536, 300000, 3, 70000, 129 };
    size_t n = sizeof lens / sizeof *lens;
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS t_long");
    run(c, "CREATE TABLE t_long (id INT PRIMARY KEY, tx LONGTEXT, "
           "bl LONGBLOB, d DECIMAL(65,30))");
    for (size_t i = 0; i < n; i++) {
        char id[8];
        char *v = pattern(lens[i], (unsigned)i);
        snprintf(id, sizeof id, "%zu", i);
        run_p(c, "INSERT INTO t_long VALUES (?, ?, ?, "
                 "-12345678901234567890123456789012345.123456789012345678901234567891)",
              (const char *[]){ id, v, v }, 3);
        free(v);
    }
    r = query_both(c, "SELECT tx, bl, d FROM t_long WHERE 1 = 1%s ORDER BY id",
                   NULL);
    ck_assert_uint_eq(cdm_result_nrows(r), n);
    for (size_t i = 0; i < n; i++) {
        char *v = pattern(lens[i], (unsigned)i);
        const char *hx = cdm_result_value(r, i, 1);
        ck_assert_str_eq(cdm_result_value(r, i, 0), v);
        ck_assert_uint_eq(strlen(hx), 2 + 2 * lens[i]);
        for (size_t k = 0; k < lens[i]; k++) {
            char two[3];
            snprintf(two, sizeof two, "%02x", (unsigned char)v[k]);
            if (memcmp(hx + 2 + 2 * k, two, 2) != 0)
                ck_abort_msg("row %zu: blob byte %zu differs", i, k);
        }
        ck_assert_str_eq(cdm_result_value(r, i, 2),
                         "-12345678901234567890123456789012345."
                         "123456789012345678901234567891");
        free(v);
    }
    cdm_result_free(r);
}
END_TEST

START_TEST(test_column_names_and_shape)
{
    cdm_result *r;

    r = query_both(c, "SELECT 1 AS a, 'x' AS `b c`, 2 AS `a?`, 3, "
                      "NULL AS `\xe6\x97\xa5` FROM DUAL WHERE 1 = 1%s", NULL);
    ck_assert_uint_eq(cdm_result_ncols(r), 5);
    ck_assert_str_eq(cdm_result_colname(r, 0), "a");
    ck_assert_str_eq(cdm_result_colname(r, 1), "b c");
    ck_assert_str_eq(cdm_result_colname(r, 2), "a?");
    ck_assert_str_eq(cdm_result_colname(r, 3), "3");
    ck_assert_str_eq(cdm_result_colname(r, 4), "\xe6\x97\xa5");
    ck_row(r, 0, "1", "x", "2", "3", NULL);
    cdm_result_free(r);
    /* A statement without a result set gives no columns, both paths. */
    r = NULL;
    ck_status(cdm_query(c, "DO 1", NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_ncols(r), 0);
    ck_assert_uint_eq(cdm_result_nrows(r), 0);
    cdm_result_free(r);
    r = NULL;
    ck_status(cdm_query(c, "DO ?", (const char *[]){ "1" }, 1, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_ncols(r), 0);
    ck_assert_uint_eq(cdm_result_nrows(r), 0);
    cdm_result_free(r);
    /* No rows: the columns are still there. */
    r = query_both(c, "SELECT 1 AS a, 2 AS b FROM DUAL WHERE 1 = 0%s", NULL);
    ck_assert_uint_eq(cdm_result_nrows(r), 0);
    ck_assert_uint_eq(cdm_result_ncols(r), 2);
    ck_assert_str_eq(cdm_result_colname(r, 1), "b");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_many_rows_both_paths)
{
    cdm_result *r;
    size_t n;

    r = query_both(c, "SELECT seq, CONCAT('row ', seq) AS label FROM "
                      "seq_1_to_20000 WHERE 1 = 1%s ORDER BY seq", NULL);
    n = cdm_result_nrows(r);
    ck_assert_uint_eq(n, 20000);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "%zu", i + 1);
        if (strcmp(cdm_result_value(r, i, 0), want) != 0)
            ck_abort_msg("row %zu: '%s'", i, cdm_result_value(r, i, 0));
    }
    ck_row(r, n - 1, "20000", "row 20000");
    cdm_result_free(r);
}
END_TEST

/* --------------------------------------------------------- placeholders */

START_TEST(test_qmark_in_literals_and_comments)
{
    static const char sql0[] =
        "SELECT '?' AS s1, \"?\" AS s2, 1 AS `c?` -- what?\n"
        ", 2 AS d # really?\n"
        ", /* ? and ? */ 3 AS e";
    static const char sql1[] =
        "SELECT '?' AS s1, \"?\" AS s2, 1 AS `c?` -- what?\n"
        ", 2 AS d # really?\n"
        ", /* ? and ? */ ? AS e";
    cdm_result *r = NULL;

    ck_status(cdm_query(c, sql0, NULL, 0, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_colname(r, 2), "c?");
    ck_row(r, 0, "?", "?", "1", "2", "3");
    cdm_result_free(r);
    r = NULL;
    ck_status(cdm_query(c, sql1, (const char *[]){ "bound" }, 1, &r), CDM_OK);
    ck_assert_str_eq(cdm_result_colname(r, 2), "c?");
    ck_row(r, 0, "?", "?", "1", "2", "bound");
    cdm_result_free(r);
    /* Only the real one counts: one parameter too many is refused. */
    r = NULL;
    ck_status(cdm_query(c, sql0, (const char *[]){ "x" }, 1, &r),
              CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_assert_msg(msg_has_number(cdm_errmsg(), 0) && msg_has_number(cdm_errmsg(), 1),
                  "errmsg '%s' lacks the counts 0 and 1", cdm_errmsg());
}
END_TEST

START_TEST(test_qmark_escapes_and_minus_minus)
{
    cdm_result *r = NULL;

    /* Backslash-escaped and doubled quotes do not end a literal. */
    ck_status(cdm_query(c, "SELECT 'it\\'s ?', 'a''?', \"say \\\"?\\\"\", "
                           "'back\\\\', `x``?`.* FROM (SELECT ? AS `x``?`) "
                           "AS `x``?`",
                        (const char *[]){ "p" }, 1, &r), CDM_OK);
    ck_row(r, 0, "it's ?", "a'?", "say \"?\"", "back\\", "p");
    cdm_result_free(r);
    /* "--" not followed by a blank is two minus signs, not a comment. */
    r = NULL;
    ck_status(cdm_query(c, "SELECT 5--?", (const char *[]){ "2" }, 1, &r),
              CDM_OK);
    ck_row(r, 0, "7");
    cdm_result_free(r);
    ck_scalar(c, "SELECT 5 -- ?\n", "5");
    ck_scalar(c, "SELECT 6 #?", "6");
}
END_TEST

/* The server runs the text of an executable comment, so a `?` there is a
 * placeholder; in an ordinary comment it is not. */
START_TEST(test_qmark_in_executable_comments)
{
    static const char *const forms[] = {
        "SELECT 1 /*! + ? */",
        "SELECT 1 /*!50100 + ? */",
        "SELECT 1 /*M! + ? */",          /* MariaDB's own forms */
        "SELECT 1 /*M!100100 + ? */",
    };
    cdm_result *r = NULL;
    int64_t n = -1;
    char *v;

    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        v = scalar_p(c, forms[i], (const char *[]){ "41" }, 1);
        ck_assert_msg(v && strcmp(v, "42") == 0, "'%s' with 41: '%s'",
                      forms[i], v ? v : "(NULL)");
        free(v);
    }
    ck_scalar(c, "SELECT 1 /* ? */", "1");
    ck_scalar(c, "SELECT 1 /*! + 41 */", "42");
    /* Counted before anything reaches the server. */
    ck_status(cdm_query(c, "SELECT 1 /*! + ? */", NULL, 0, &r),
              CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_assert_msg(msg_has_number(cdm_errmsg(), 1) && msg_has_number(cdm_errmsg(), 0),
                  "errmsg '%s' lacks the counts 1 and 0", cdm_errmsg());
    /* Inside, quotes hold a star-slash and a `?`; an ordinary comment and
     * a line comment end where they would outside. */
    v = scalar_p(c, "SELECT 0 /*! + LENGTH('*/?') + LENGTH(\"it\\'s */ ?\") "
                    "+ ? */", (const char *[]){ "100" }, 1);
    ck_assert_pstr_eq(v, "112");
    free(v);
    v = scalar_p(c, "SELECT 1 /*! + /* ? */ ? */ + ?",
                 (const char *[]){ "10", "100" }, 2);
    ck_assert_pstr_eq(v, "111");
    free(v);
    v = scalar_p(c, "SELECT 1 /*! + ? # ? */\n */",
                 (const char *[]){ "2" }, 1);
    ck_assert_pstr_eq(v, "3");
    free(v);
    /* Statements inside count as statements, an empty one does not. */
    ck_scalar(c, "SELECT 1; /*! */", "1");
    ck_status(cdm_query(c, "SELECT 1; /*!40101 SELECT 2 */", NULL, 0, &r),
              CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_errmsg_has("statement");
    ck_status(cdm_exec(c, "/*!40101 SET @cdm_v = 5 */;\n"
                          "/*!40101 SET @cdm_v = @cdm_v + 1 */;\n", NULL, 0, &n),
              CDM_OK);
    ck_scalar(c, "SELECT @cdm_v", "6");
}
END_TEST

/* The server skips the text of a versioned comment above its version
 * (no server is 9.99.99 yet; MariaDB 99.99.99 neither): its `?` are none. */
START_TEST(test_qmark_in_skipped_versioned_comment)
{
    cdm_result *r = NULL;
    int64_t n = -1;

    ck_scalar(c, "SELECT 1 /*!99999 + ? */", "1");
    ck_scalar(c, "SELECT 1 /*M!999999 + ? */ /*!50100 + 1 */", "2");
    ck_status(cdm_query(c, "SELECT 1 /*!99999 + ? */",
                        (const char *[]){ "41" }, 1, &r), CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_assert_msg(msg_has_number(cdm_errmsg(), 0) && msg_has_number(cdm_errmsg(), 1),
                  "errmsg '%s' lacks the counts 0 and 1", cdm_errmsg());
    ck_errmsg_has("definition 'My'");
    /* One the server runs is counted by the server all the same. */
    ck_status(cdm_query(c, "SELECT 1 /*!50100 + ? */", NULL, 0, &r),
              CDM_ERR_INVALID);
    ck_assert_msg(msg_has_number(cdm_errmsg(), 1) && msg_has_number(cdm_errmsg(), 0),
                  "errmsg '%s' lacks the counts 1 and 0", cdm_errmsg());
    ck_status(cdm_exec(c, "SET @cdm_w = 1 /*!99999 + ? */",
                       (const char *[]){ "1" }, 1, &n), CDM_ERR_INVALID);
    /* A script takes the plain path. */
    ck_status(cdm_exec(c, "SET @cdm_w = 1 /*!99999 + ? */;\n"
                          "SET @cdm_w = @cdm_w + 1;", NULL, 0, &n), CDM_OK);
    ck_scalar(c, "SELECT @cdm_w", "2");
    n = -1;
    ck_status(cdm_exec(c, "SET @cdm_w = 5 /*!99999 + ? */", NULL, 0, &n),
              CDM_OK);
    ck_assert_int_eq(n, 0);
    ck_scalar(c, "SELECT @cdm_w", "5");
}
END_TEST

START_TEST(test_param_count_mismatch)
{
    cdm_result *r = NULL;
    int64_t aff = 99;

    run(c, "DROP TABLE IF EXISTS t_pc");
    run(c, "CREATE TABLE t_pc (a VARCHAR(10), b VARCHAR(10))");
    ck_status(cdm_query(c, "SELECT ?, ?", (const char *[]){ "a" }, 1, &r),
              CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_errmsg_has("definition 'My'");
    ck_assert_msg(msg_has_number(cdm_errmsg(), 2) && msg_has_number(cdm_errmsg(), 1),
                  "errmsg '%s' lacks the counts 2 and 1", cdm_errmsg());
    ck_status(cdm_query(c, "SELECT ?, ?", (const char *[]){ "a", "b", "c" }, 3,
                        &r), CDM_ERR_INVALID);
    ck_assert_msg(msg_has_number(cdm_errmsg(), 2) && msg_has_number(cdm_errmsg(), 3),
                  "errmsg '%s' lacks the counts 2 and 3", cdm_errmsg());
    /* None given although the SQL has one. */
    ck_status(cdm_query(c, "SELECT ? AS x", NULL, 0, &r), CDM_ERR_INVALID);
    ck_assert_msg(msg_has_number(cdm_errmsg(), 1) && msg_has_number(cdm_errmsg(), 0),
                  "errmsg '%s' lacks the counts 1 and 0", cdm_errmsg());
    ck_errmsg_has("definition 'My'");
    ck_status(cdm_exec(c, "INSERT INTO t_pc VALUES (?, ?)", NULL, 0, &aff),
              CDM_ERR_INVALID);
    ck_assert_msg(msg_has_number(cdm_errmsg(), 2) && msg_has_number(cdm_errmsg(), 0),
                  "errmsg '%s' lacks the counts 2 and 0", cdm_errmsg());
    ck_status(cdm_exec(c, "INSERT INTO t_pc VALUES (?, ?)",
                       (const char *[]){ "x" }, 1, &aff), CDM_ERR_INVALID);
    ck_status(cdm_exec(c, "INSERT INTO t_pc VALUES ('a', 'b')",
                       (const char *[]){ "x" }, 1, &aff), CDM_ERR_INVALID);
    ck_assert_msg(msg_has_number(cdm_errmsg(), 0) && msg_has_number(cdm_errmsg(), 1),
                  "errmsg '%s' lacks the counts 0 and 1", cdm_errmsg());
    ck_assert_int_eq(aff, 99);
    ck_scalar(c, "SELECT COUNT(*) FROM t_pc", "0");
}
END_TEST

START_TEST(test_null_param_binds_null)
{
    cdm_result *r = NULL;

    run(c, "DROP TABLE IF EXISTS t_np");
    run(c, "CREATE TABLE t_np (id INT, v VARCHAR(10), n INT)");
    ck_assert_int_eq(run_p(c, "INSERT INTO t_np VALUES (?, ?, ?)",
                           (const char *[]){ "1", NULL, NULL }, 3), 1);
    ck_assert_int_eq(run_p(c, "INSERT INTO t_np VALUES (?, ?, ?)",
                           (const char *[]){ "2", "", "0" }, 3), 1);
    ck_scalar(c, "SELECT COUNT(*) FROM t_np WHERE v IS NULL AND n IS NULL", "1");
    ck_scalar(c, "SELECT id FROM t_np WHERE v = '' AND n = 0", "2");
    ck_status(cdm_query(c, "SELECT ? AS x, ? IS NULL AS y, ? IS NULL AS z, "
                           "LENGTH(?) AS l",
                        (const char *[]){ NULL, NULL, "", "" }, 4, &r), CDM_OK);
    ck_row(r, 0, NULL, "1", "0", "0");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_injection_strings_are_data)
{
    static const char *const evil[] = {
        "'); DROP TABLE x; -- ",
        "\\' OR 1=1 -- ",
        "\"; DROP TABLE x; #",
        "`x`; DROP TABLE x",
        "?",
    };
    size_t n = sizeof evil / sizeof *evil;
    cdm_result *r;

    run(c, "DROP TABLE IF EXISTS x");
    run(c, "CREATE TABLE x (id INT)");
    run(c, "DROP TABLE IF EXISTS t_inj");
    run(c, "CREATE TABLE t_inj (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)");
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(run_p(c, "INSERT INTO t_inj (v) VALUES (?)",
                               (const char *[]){ evil[i] }, 1), 1);
    r = query_both(c, "SELECT v FROM t_inj WHERE 1 = 1%s ORDER BY id", NULL);
    ck_assert_uint_eq(cdm_result_nrows(r), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(cdm_result_value(r, i, 0), evil[i]);
    cdm_result_free(r);
    for (size_t i = 0; i < n; i++) {
        char *k = scalar_p(c, "SELECT COUNT(*) FROM t_inj WHERE v = ?",
                           (const char *[]){ evil[i] }, 1);
        ck_assert_str_eq(k, "1");
        free(k);
    }
    ck_scalar(c, "SELECT COUNT(*) FROM information_schema.TABLES WHERE "
                 "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'x'", "1");
    ck_scalar(c, "SELECT COUNT(*) FROM x", "0");
}
END_TEST

/* ------------------------------------------------------ rows and scripts */

START_TEST(test_affected_insert_three)
{
    int64_t n = -1;

    run(c, "DROP TABLE IF EXISTS t_aff");
    run(c, "CREATE TABLE t_aff (id INT PRIMARY KEY, v VARCHAR(10))");
    ck_status(cdm_exec(c, "INSERT INTO t_aff VALUES (1,'a'), (2,'b'), (3,'c')",
                       NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 3);
    n = -1;
    ck_status(cdm_exec(c, "INSERT INTO t_aff VALUES (?,'d'), (?,'e'), (?,'f')",
                       (const char *[]){ "4", "5", "6" }, 3, &n), CDM_OK);
    ck_assert_int_eq(n, 3);
    n = -1;
    ck_status(cdm_exec(c, "DELETE FROM t_aff WHERE id > ?",
                       (const char *[]){ "4" }, 1, &n), CDM_OK);
    ck_assert_int_eq(n, 2);
    /* Statements that change nothing say 0. */
    n = -1;
    ck_status(cdm_exec(c, "SELECT * FROM t_aff", NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 0);
    n = -1;
    ck_status(cdm_exec(c, "SELECT * FROM t_aff WHERE id > ?",
                       (const char *[]){ "0" }, 1, &n), CDM_OK);
    ck_assert_int_eq(n, 0);
    ck_scalar(c, "SELECT COUNT(*) FROM t_aff", "4");
}
END_TEST

START_TEST(test_affected_update_counts_matched)
{
    int64_t n = -1;

    run(c, "DROP TABLE IF EXISTS t_upd");
    run(c, "CREATE TABLE t_upd (id INT PRIMARY KEY, v VARCHAR(10))");
    run(c, "INSERT INTO t_upd VALUES (1,'a'), (2,'b'), (3,'c')");
    /* Matches 2, changes 1 (row 1 already holds 'a'). */
    ck_status(cdm_exec(c, "UPDATE t_upd SET v = 'a' WHERE id IN (1, 2)",
                       NULL, 0, &n), CDM_OK);
    ck_assert_int_eq(n, 2);
    /* Prepared: matches 2, changes none. */
    n = -1;
    ck_status(cdm_exec(c, "UPDATE t_upd SET v = ? WHERE id IN (1, 2)",
                       (const char *[]){ "a" }, 1, &n), CDM_OK);
    ck_assert_int_eq(n, 2);
    n = -1;
    ck_status(cdm_exec(c, "UPDATE t_upd SET v = ? WHERE id = 99",
                       (const char *[]){ "z" }, 1, &n), CDM_OK);
    ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_exec_script_sums_statements)
{
    int64_t n = -1;

    ck_status(cdm_exec(c,
                       "DROP TABLE IF EXISTS t_scr;\n"
                       "CREATE TABLE t_scr (id INT PRIMARY KEY, v INT);\n"
                       "INSERT INTO t_scr VALUES (1, 0), (2, 0);\n"
                       "SELECT * FROM t_scr;  -- a result set in between\n"
                       "INSERT INTO t_scr VALUES (3, 0);\n"
                       "# a comment line\n"
                       "UPDATE t_scr SET v = 1 WHERE id > 1;\n"
                       "DELETE FROM t_scr WHERE id = 1;\n",
                       NULL, 0, &n), CDM_OK);
    /* 2 + 1 + 2 + 1 */
    ck_assert_int_eq(n, 6);
    /* Every result was read: the connection is in step. */
    ck_scalar(c, "SELECT SUM(v) FROM t_scr", "2");
}
END_TEST

START_TEST(test_exec_script_stops_at_error)
{
    int64_t n = -1;

    run(c, "DROP TABLE IF EXISTS t_stop");
    run(c, "CREATE TABLE t_stop (id INT PRIMARY KEY)");
    ck_status(cdm_exec(c, "INSERT INTO t_stop VALUES (1); "
                          "INSERT INTO t_no_such_table VALUES (2); "
                          "INSERT INTO t_stop VALUES (3)", NULL, 0, &n),
              CDM_ERR_QUERY);
    ck_errmsg_has("t_no_such_table");
    ck_errmsg_has("doesn't exist");
    ck_errmsg_has("definition 'My'");
    ck_assert_int_eq(n, -1);
    ck_scalar(c, "SELECT GROUP_CONCAT(id) FROM t_stop", "1");
    ck_status(cdm_ping(c), CDM_OK);
}
END_TEST

START_TEST(test_exec_params_two_statements_refused)
{
    int64_t n = 42;

    run(c, "DROP TABLE IF EXISTS t_two");
    run(c, "CREATE TABLE t_two (v VARCHAR(10))");
    ck_status(cdm_exec(c, "INSERT INTO t_two VALUES (?); DROP TABLE t_two",
                       (const char *[]){ "a" }, 1, &n), CDM_ERR_INVALID);
    ck_errmsg_has("statement");
    ck_errmsg_has("definition 'My'");
    ck_assert_int_eq(n, 42);
    /* Neither ran. */
    ck_scalar(c, "SELECT COUNT(*) FROM t_two", "0");
}
END_TEST

START_TEST(test_query_two_statements_refused)
{
    cdm_result *r = NULL;

    run(c, "DROP TABLE IF EXISTS t_q2");
    run(c, "CREATE TABLE t_q2 (v INT)");
    ck_status(cdm_query(c, "SELECT 1; INSERT INTO t_q2 VALUES (5)", NULL, 0, &r),
              CDM_ERR_INVALID);
    ck_assert_ptr_null(r);
    ck_errmsg_has("statement");
    ck_errmsg_has("definition 'My'");
    ck_status(cdm_query(c, "SELECT 1; DROP TABLE t_q2", NULL, 0, &r),
              CDM_ERR_INVALID);
    ck_scalar(c, "SELECT COUNT(*) FROM t_q2", "0");
    /* ';' inside literals, identifiers and comments does not split. */
    ck_scalar(c, "SELECT 'a;b' AS `c;d` /* ; */ # ;", "a;b");
    ck_scalar(c, "SELECT 1;", "1");
    ck_scalar(c, "SELECT 2 ;  ; \n", "2");
}
END_TEST

START_TEST(test_query_trailing_comment_after_semicolon)
{
    cdm_result *r = NULL;

    /* A comment after the last ';' is no second statement; the server
     * answers it with an empty result, which must not replace the rows. */
    ck_scalar(c, "SELECT 'a;b' ;  -- done\n", "a;b");
    ck_scalar(c, "SELECT 2; # done", "2");
    ck_scalar(c, "SELECT 3; /* done */", "3");
    ck_status(cdm_query(c, "SELECT 4 AS x UNION SELECT 5; -- two rows\n",
                        NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 2);
    ck_assert_str_eq(cdm_result_colname(r, 0), "x");
    cdm_result_free(r);
}
END_TEST

START_TEST(test_call_procedure_result)
{
    cdm_result *r = NULL;
    int64_t n = -1;

    run(c, "DROP PROCEDURE IF EXISTS p_rows");
    run(c, "CREATE PROCEDURE p_rows(IN k INT) "
           "SELECT k AS a, k * 2 AS b UNION ALL SELECT k + 1, (k + 1) * 2");
    /* Plain path: the rows, not the status that follows them. */
    ck_status(cdm_query(c, "CALL p_rows(10)", NULL, 0, &r), CDM_OK);
    if (cdm_result_nrows(r) != 2) {
        size_t rows = cdm_result_nrows(r), cols = cdm_result_ncols(r);
        cdm_result_free(r);
        ck_abort_msg("CALL p_rows(10): %zu rows, %zu columns; want 2 and 2",
                     rows, cols);
    }
    ck_row(r, 0, "10", "20");
    ck_row(r, 1, "11", "22");
    cdm_result_free(r);
    ck_scalar(c, "SELECT 'in step'", "in step");
    /* Prepared path, and the connection stays in step afterwards. */
    r = NULL;
    ck_status(cdm_query(c, "CALL p_rows(?)", (const char *[]){ "20" }, 1, &r),
              CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 2);
    ck_row(r, 1, "21", "42");
    cdm_result_free(r);
    ck_scalar(c, "SELECT 'still in step'", "still in step");
    ck_status(cdm_exec(c, "CALL p_rows(?)", (const char *[]){ "1" }, 1, &n),
              CDM_OK);
    ck_status(cdm_exec(c, "CALL p_rows(1)", NULL, 0, &n), CDM_OK);
    ck_scalar(c, "SELECT 'in step at the end'", "in step at the end");
    /* The cached statement again, and again: the status after the rows
     * left it with no result columns, which the next run must redo. */
    for (int i = 0; i < 3; i++) {
        r = NULL;
        ck_status(cdm_query(c, "CALL p_rows(?)", (const char *[]){ "30" }, 1,
                            &r), CDM_OK);
        ck_assert_uint_eq(cdm_result_nrows(r), 2);
        ck_row(r, 1, "31", "62");
        cdm_result_free(r);
    }
    ck_scalar(c, "SELECT 'in step after three'", "in step after three");
    run(c, "DROP PROCEDURE p_rows");
}
END_TEST

/* A server error after the first rows have arrived (rows are read as
 * they come) is the server's message, and the connection stays usable. */
START_TEST(test_error_after_some_rows)
{
    cdm_result *r = NULL;

    run(c, "DROP TABLE IF EXISTS t_mid, t_mid2");
    run(c, "CREATE TABLE t_mid (id INT)");
    run(c, "INSERT INTO t_mid VALUES (1), (2), (3)");
    run(c, "CREATE TABLE t_mid2 (k INT, v INT)");
    run(c, "INSERT INTO t_mid2 VALUES (1, 10), (2, 20), (2, 21)");
    for (int i = 0; i < 2; i++) {
        ck_status(cdm_query(c, "SELECT id, (SELECT v FROM t_mid2 WHERE k = "
                            "t_mid.id) FROM t_mid WHERE id > ? ORDER BY id",
                            (const char *[]){ "0" }, 1, &r), CDM_ERR_QUERY);
        ck_assert_ptr_null(r);
        ck_errmsg_has("Subquery returns more than 1 row");
        ck_scalar(c, "SELECT 'in step'", "in step");
    }
    run(c, "DROP TABLE t_mid, t_mid2");
}
END_TEST

/* -------------------------------------------------------------- errors */

START_TEST(test_error_syntax_both_paths)
{
    cdm_result *r = NULL;
    int64_t n = 5;

    ck_status(cdm_query(c, "SELEC 1", NULL, 0, &r), CDM_ERR_QUERY);
    ck_assert_ptr_null(r);
    ck_errmsg_has("You have an error in your SQL syntax");
    ck_errmsg_has("SELEC");
    ck_errmsg_has("definition 'My'");
    ck_status(cdm_query(c, "SELEC ?", (const char *[]){ "1" }, 1, &r),
              CDM_ERR_QUERY);
    ck_assert_ptr_null(r);
    ck_errmsg_has("You have an error in your SQL syntax");
    ck_errmsg_has("definition 'My'");
    ck_status(cdm_exec(c, "UPDAT x SET y = 1", NULL, 0, &n), CDM_ERR_QUERY);
    ck_errmsg_has("You have an error in your SQL syntax");
    ck_status(cdm_exec(c, "UPDAT x SET y = ?", (const char *[]){ "1" }, 1, &n),
              CDM_ERR_QUERY);
    ck_errmsg_has("You have an error in your SQL syntax");
    ck_assert_int_eq(n, 5);
    ck_status(cdm_query(c, "SELECT no_such_col FROM DUAL WHERE 1 = ?",
                        (const char *[]){ "1" }, 1, &r), CDM_ERR_QUERY);
    ck_errmsg_has("Unknown column 'no_such_col'");
    /* The connection goes on working. */
    ck_scalar(c, "SELECT 1", "1");
    ck_status(cdm_ping(c), CDM_OK);
}
END_TEST

START_TEST(test_error_duplicate_key_both_paths)
{
    run(c, "DROP TABLE IF EXISTS t_dup");
    run(c, "CREATE TABLE t_dup (id INT PRIMARY KEY, u VARCHAR(10) UNIQUE)");
    run(c, "INSERT INTO t_dup VALUES (1, 'one')");
    ck_status(cdm_exec(c, "INSERT INTO t_dup VALUES (1, 'uno')", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("Duplicate entry '1'");
    ck_errmsg_has("definition 'My'");
    ck_status(cdm_exec(c, "INSERT INTO t_dup VALUES (?, ?)",
                       (const char *[]){ "2", "one" }, 2, NULL), CDM_ERR_QUERY);
    ck_errmsg_has("Duplicate entry 'one'");
    ck_errmsg_has("definition 'My'");
    ck_scalar(c, "SELECT COUNT(*) FROM t_dup", "1");
}
END_TEST

/* ------------------------------------------------------------- connect */

START_TEST(test_connect_wrong_password)
{
    static const char pw[] = "Wr0ngPw-zq81x";
    cdm_conn *x = NULL;

    add_def(m, "BadPw", (const char *[]){ "Password=Wr0ngPw-zq81x", NULL });
    ck_status(cdm_connect(m, "BadPw", &x), CDM_ERR_CONNECT);
    ck_assert_ptr_null(x);
    ck_errmsg_has("Access denied");
    ck_errmsg_has("BadPw");
    ck_errmsg_lacks(pw);
    ck_errmsg_lacks(srv.password);
}
END_TEST

START_TEST(test_connect_refused_port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char port[32];
    cdm_conn *x = NULL;
    double t0;

    /* A port that was free a moment ago: nobody listens there. */
    ck_assert_int_ge(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    snprintf(port, sizeof port, "Port=%u", ntohs(a.sin_port));
    add_def(m, "Refused", (const char *[]){ "Server=127.0.0.1", port,
                                            "LoginTimeout=5", NULL });
    t0 = now_s();
    ck_status(cdm_connect(m, "Refused", &x), CDM_ERR_CONNECT);
    ck_assert_double_lt(now_s() - t0, 3.0);
    ck_assert_ptr_null(x);
    ck_errmsg_has("Refused");
    ck_errmsg_has("127.0.0.1");
    ck_errmsg_lacks(srv.password);
    /* Connector/C says "(115)" here, EINPROGRESS: the kernel's answer is
     * found again. */
    ck_errmsg_has("Connection refused");
    ck_errmsg_explained();
}
END_TEST

START_TEST(test_connect_handshake_timeout_explained)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char port[32];
    cdm_conn *x = NULL;

    /* The kernel accepts the connection; nobody ever sends the greeting.
     * Connector/C ends its message with "system error: 110". */
    ck_assert_int_ge(fd, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    snprintf(port, sizeof port, "Port=%u", ntohs(a.sin_port));
    add_def(m, "Silent", (const char *[]){ "Server=127.0.0.1", port,
                                           "LoginTimeout=1", NULL });
    ck_status(cdm_connect(m, "Silent", &x), CDM_ERR_CONNECT);
    close(fd);
    ck_assert_ptr_null(x);
    ck_errmsg_has("Silent");
    ck_errmsg_has("timed out");
    ck_errmsg_explained();
}
END_TEST

START_TEST(test_connect_unknown_host_explained)
{
    static const char host[] = "cdm-no-such-host.invalid";
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    cdm_conn *x = NULL;
    int gai;

    add_def(m, "NoHost", (const char *[]){ "Server=cdm-no-such-host.invalid",
                                           "LoginTimeout=2", NULL });
    ck_status(cdm_connect(m, "NoHost", &x), CDM_ERR_CONNECT);
    ck_assert_ptr_null(x);
    ck_errmsg_has("NoHost");
    ck_errmsg_has(host);
    ck_errmsg_explained();
    /* The resolver's own words for what it says about the name now. */
    gai = getaddrinfo(host, "3306", &hints, &res);
    if (res)
        freeaddrinfo(res);
    ck_assert_int_ne(gai, 0);
    ck_errmsg_has(gai_strerror(gai));
}
END_TEST

START_TEST(test_connect_unknown_database)
{
    cdm_conn *x = NULL;

    /* A database the user has no rights on: the server does not say
     * whether it exists. */
    add_def(m, "NoRights", (const char *[]){ "Database=cdm_no_rights_db",
                                             NULL });
    ck_status(cdm_connect(m, "NoRights", &x), CDM_ERR_CONNECT);
    ck_assert_ptr_null(x);
    ck_errmsg_has("Access denied");
    ck_errmsg_has("cdm_no_rights_db");
    ck_errmsg_has("NoRights");
    /* One it may use but that does not exist: "Unknown database". */
    free(admin("GRANT ALL ON cdm_no_such_db.* TO 'cdm_test'@'%'; "
               "GRANT ALL ON cdm_no_such_db.* TO 'cdm_test'@'localhost'; "
               "GRANT ALL ON cdm_no_such_db.* TO 'cdm_test'@'127.0.0.1'; "
               "DROP DATABASE IF EXISTS cdm_no_such_db; SELECT 1"));
    add_def(m, "NoDb", (const char *[]){ "Database=cdm_no_such_db", NULL });
    ck_status(cdm_connect(m, "NoDb", &x), CDM_ERR_CONNECT);
    ck_assert_ptr_null(x);
    ck_errmsg_has("Unknown database 'cdm_no_such_db'");
    ck_errmsg_has("NoDb");
    ck_errmsg_lacks(srv.password);
}
END_TEST

START_TEST(test_charset_default_utf8mb4)
{
    cdm_result *r = NULL;

    ck_assert_str_eq(cdm_conn_driver(c), "MySQL");
    ck_assert_str_eq(cdm_conn_def_name(c), "My");

    ck_status(cdm_query(c, "SELECT @@character_set_client, "
                           "@@character_set_connection, @@character_set_results",
                        NULL, 0, &r), CDM_OK);
    ck_row(r, 0, "utf8mb4", "utf8mb4", "utf8mb4");
    cdm_result_free(r);
    /* A 4-byte character survives (utf8 / utf8mb3 would refuse it). */
    ck_scalar(c, "SELECT HEX('\xf0\x9f\x98\x80')", "F09F9880");
}
END_TEST

START_TEST(test_charset_latin1)
{
    cdm_conn *l = NULL;
    cdm_result *r = NULL;

    add_def(m, "Latin", (const char *[]){ "CharacterSet=latin1", NULL });
    ck_status(cdm_connect(m, "Latin", &l), CDM_OK);
    ck_status(cdm_query(l, "SELECT @@character_set_client, "
                           "@@character_set_connection, @@character_set_results",
                        NULL, 0, &r), CDM_OK);
    ck_row(r, 0, "latin1", "latin1", "latin1");
    cdm_result_free(r);
    run(c, "DROP TABLE IF EXISTS t_lat");
    run(c, "CREATE TABLE t_lat (id INT PRIMARY KEY, v VARCHAR(10)) "
           "CHARACTER SET utf8mb4");
    /* Written as UTF-8, read as latin1 bytes, and the other way. */
    run_p(c, "INSERT INTO t_lat VALUES (1, ?)",
          (const char *[]){ "\xc3\xa9t\xc3\xa9" }, 1);
    run_p(l, "INSERT INTO t_lat VALUES (2, ?)",
          (const char *[]){ "caf\xe9" }, 1);
    r = query_both(l, "SELECT v FROM t_lat WHERE 1 = 1%s ORDER BY id", NULL);
    ck_row(r, 0, "\xe9t\xe9");
    ck_row(r, 1, "caf\xe9");
    cdm_result_free(r);
    ck_scalar(c, "SELECT v FROM t_lat WHERE id = 2", "caf\xc3\xa9");
    cdm_disconnect(l);
}
END_TEST

START_TEST(test_read_timeout_breaks_and_is_not_reused)
{
    cdm_conn *s = NULL;
    cdm_result *r = NULL;
    cdm_pool_stats st;
    long long id1, id2;
    double t0, took;
    int rc;

    add_def(m, "Slow", (const char *[]){ "ReadTimeout=1", "Pooled=True",
                                         "POOL_MaximumItems=1", NULL });
    ck_status(cdm_connect(m, "Slow", &s), CDM_OK);
    id1 = conn_id(s);
    /* Shorter than the timeout: fine. */
    ck_scalar(s, "SELECT SLEEP(0.3)", "0");
    t0 = now_s();
    rc = cdm_query(s, "SELECT SLEEP(3)", NULL, 0, &r);
    took = now_s() - t0;
    ck_assert_msg(rc == CDM_ERR_BROKEN || rc == CDM_ERR_QUERY,
                  "SLEEP(3) with ReadTimeout=1: %s: %s", cdm_strerror(rc),
                  cdm_errmsg());
    ck_assert_ptr_null(r);
    ck_errmsg_has("definition 'Slow'");
    ck_assert_msg(took < 2.5, "the timeout took %.2f s", took);
    ck_assert_msg(took > 0.8, "failed after only %.2f s", took);
    cdm_disconnect(s);
    /* The pool must not hand that connection out again: its reply to the
     * SLEEP would arrive as the answer to the next statement. */
    s = NULL;
    ck_status(cdm_connect(m, "Slow", &s), CDM_OK);
    id2 = conn_id(s);
    ck_assert_int_ne(id1, id2);
    ck_scalar(s, "SELECT 'next'", "next");
    cdm_disconnect(s);
    ck_status(cdm_manager_pool_stats(m, "Slow", &st), CDM_OK);
    ck_assert_int_eq(st.created, 2);
    ck_assert_int_eq(st.destroyed, 1);
}
END_TEST

START_TEST(test_compress)
{
    cdm_conn *z = NULL;
    cdm_result *r, *p;
    char *v = pattern(1000000, 7);

    add_def(m, "Zip", (const char *[]){ "Compress=True", NULL });
    ck_status(cdm_connect(m, "Zip", &z), CDM_OK);
    r = NULL;
    ck_status(cdm_query(z, "SHOW SESSION STATUS LIKE 'Compression'", NULL, 0,
                        &r), CDM_OK);
    ck_row(r, 0, "Compression", "ON");
    cdm_result_free(r);
    r = NULL;
    ck_status(cdm_query(c, "SHOW SESSION STATUS LIKE 'Compression'", NULL, 0,
                        &r), CDM_OK);
    ck_row(r, 0, "Compression", "OFF");
    cdm_result_free(r);
    run(z, "DROP TABLE IF EXISTS t_zip");
    run(z, "CREATE TABLE t_zip (id INT PRIMARY KEY, v MEDIUMTEXT)");
    ck_assert_int_eq(run_p(z, "INSERT INTO t_zip VALUES (1, ?)",
                           (const char *[]){ v }, 1), 1);
    r = query_both(z, "SELECT v, LENGTH(v) FROM t_zip WHERE id = 1%s", &p);
    ck_row(r, 0, v, "1000000");
    cdm_result_free(r);
    cdm_result_free(p);
    cdm_disconnect(z);
    free(v);
}
END_TEST

START_TEST(test_use_ssl_never_falls_back)
{
    char *have = admin("SELECT @@have_ssl");
    cdm_conn *x = NULL;
    bool tls;
    int rc;

    add_def(m, "Tls", (const char *[]){ "UseSSL=True", NULL });
    rc = cdm_connect(m, "Tls", &x);
    tls = strcmp(have, "YES") == 0;
    free(have);
    if (tls) {
        cdm_result *r = NULL;
        ck_status(rc, CDM_OK);
        ck_status(cdm_query(x, "SHOW SESSION STATUS LIKE 'Ssl_cipher'", NULL,
                            0, &r), CDM_OK);
        ck_assert_str_ne(cdm_result_value(r, 0, 1), "");
        cdm_result_free(r);
        cdm_disconnect(x);
    } else {
        /* The server cannot do TLS: refuse rather than go on in clear. */
        if (rc == CDM_OK) {
            const char *cipher = mysql_get_ssl_cipher(cdm_conn_handle(x));
            bool clear = cipher == NULL;
            cdm_disconnect(x);
            ck_abort_msg("UseSSL=True connected to a server without TLS "
                         "(%s)", clear ? "in clear text" : "with a cipher?");
        }
        ck_status(rc, CDM_ERR_CONNECT);
        ck_assert_ptr_null(x);
        ck_errmsg_has("Tls");
        ck_errmsg_has("SSL");
    }
}
END_TEST

/* -------------------------------------------------------- transactions */

START_TEST(test_tx_begin_commit_rollback)
{
    cdm_conn *o = NULL;

    run(c, "DROP TABLE IF EXISTS t_tx");
    run(c, "CREATE TABLE t_tx (id INT PRIMARY KEY) ENGINE=InnoDB");
    ck_status(cdm_connect(m, "My", &o), CDM_OK);

    ck_status(cdm_commit(c), CDM_ERR_STATE);
    ck_errmsg_has("definition 'My'");
    ck_status(cdm_rollback(c), CDM_ERR_STATE);

    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_begin(c), CDM_ERR_STATE);
    ck_errmsg_has("definition 'My'");
    run_p(c, "INSERT INTO t_tx VALUES (?)", (const char *[]){ "1" }, 1);
    ck_scalar(c, "SELECT COUNT(*) FROM t_tx", "1");
    ck_scalar(o, "SELECT COUNT(*) FROM t_tx", "0");
    ck_status(cdm_rollback(c), CDM_OK);
    ck_scalar(c, "SELECT COUNT(*) FROM t_tx", "0");

    ck_status(cdm_begin(c), CDM_OK);
    run(c, "INSERT INTO t_tx VALUES (2)");
    /* An error inside the transaction leaves it open. */
    ck_status(cdm_exec(c, "INSERT INTO t_tx VALUES (2)", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_status(cdm_begin(c), CDM_ERR_STATE);
    ck_status(cdm_commit(c), CDM_OK);
    ck_scalar(o, "SELECT GROUP_CONCAT(id) FROM t_tx", "2");
    ck_status(cdm_commit(c), CDM_ERR_STATE);
    cdm_disconnect(o);
}
END_TEST

START_TEST(test_tx_state_from_server_flags)
{
    cdm_conn *o = NULL;

    run(c, "DROP TABLE IF EXISTS t_txf");
    run(c, "CREATE TABLE t_txf (id INT PRIMARY KEY) ENGINE=InnoDB");
    ck_status(cdm_connect(m, "My", &o), CDM_OK);

    /* Opened with SQL: cdm sees it. */
    run(c, "START TRANSACTION");
    ck_status(cdm_begin(c), CDM_ERR_STATE);
    /* Still seen after a prepared statement. */
    run_p(c, "INSERT INTO t_txf VALUES (?)", (const char *[]){ "1" }, 1);
    ck_status(cdm_begin(c), CDM_ERR_STATE);
    ck_scalar(o, "SELECT COUNT(*) FROM t_txf", "0");
    ck_status(cdm_commit(c), CDM_OK);
    ck_scalar(o, "SELECT COUNT(*) FROM t_txf", "1");

    /* Closed with SQL: cdm sees that too. */
    run(c, "BEGIN");
    run(c, "INSERT INTO t_txf VALUES (2)");
    run(c, "COMMIT");
    ck_status(cdm_commit(c), CDM_ERR_STATE);
    ck_status(cdm_rollback(c), CDM_ERR_STATE);
    ck_scalar(o, "SELECT COUNT(*) FROM t_txf", "2");

    /* Opened inside a script. */
    run(c, "START TRANSACTION; INSERT INTO t_txf VALUES (3)");
    ck_status(cdm_rollback(c), CDM_OK);
    ck_scalar(o, "SELECT COUNT(*) FROM t_txf", "2");
    ck_status(cdm_begin(c), CDM_OK);
    run(c, "ROLLBACK");
    ck_status(cdm_begin(c), CDM_OK);
    ck_status(cdm_commit(c), CDM_OK);

    /* Flags carried by prepared statements: with autocommit off a
     * prepared INSERT opens a transaction ... */
    /* (Parameters are strings: autocommit takes 'OFF', not '0'.) */
    run_p(c, "SET autocommit = ?", (const char *[]){ "OFF" }, 1);
    run_p(c, "INSERT INTO t_txf VALUES (?)", (const char *[]){ "4" }, 1);
    ck_status(cdm_begin(c), CDM_ERR_STATE);
    ck_status(cdm_commit(c), CDM_OK);
    ck_scalar(o, "SELECT COUNT(*) FROM t_txf", "3");
    /* ... and switching autocommit back on commits it. */
    run_p(c, "INSERT INTO t_txf VALUES (?)", (const char *[]){ "5" }, 1);
    run_p(c, "SET autocommit = ?", (const char *[]){ "ON" }, 1);
    ck_status(cdm_commit(c), CDM_ERR_STATE);
    ck_scalar(o, "SELECT COUNT(*) FROM t_txf", "4");
    cdm_disconnect(o);
}
END_TEST

START_TEST(test_pool_return_rolls_back)
{
    cdm_conn *p = NULL;
    long long id;

    run(c, "DROP TABLE IF EXISTS t_ret");
    run(c, "CREATE TABLE t_ret (id INT PRIMARY KEY) ENGINE=InnoDB");
    add_def(m, "PoolTx", (const char *[]){ "Pooled=True", "POOL_MaximumItems=1",
                                           NULL });
    ck_status(cdm_connect(m, "PoolTx", &p), CDM_OK);
    id = conn_id(p);
    ck_status(cdm_begin(p), CDM_OK);
    run(p, "INSERT INTO t_ret VALUES (1)");
    cdm_disconnect(p);
    /* Nothing committed, and no lock left behind: the same key goes in at
     * once (an open transaction would make this wait, then time out). */
    run(c, "SET SESSION innodb_lock_wait_timeout = 1");
    ck_scalar(c, "SELECT COUNT(*) FROM t_ret", "0");
    run(c, "INSERT INTO t_ret VALUES (1)");
    /* The same connection comes back without a transaction. */
    p = NULL;
    ck_status(cdm_connect(m, "PoolTx", &p), CDM_OK);
    ck_assert_int_eq(conn_id(p), id);
    ck_scalar(p, "SELECT @@in_transaction", "0");
    ck_status(cdm_commit(p), CDM_ERR_STATE);
    ck_status(cdm_begin(p), CDM_OK);
    ck_status(cdm_rollback(p), CDM_OK);
    cdm_disconnect(p);
}
END_TEST

/* ---------------------------------------------------------------- pool */

/* Borrows `def`, sets a user variable and a temporary table, returns it,
 * borrows it again (asserting it is the same connection) and returns the
 * connection still borrowed. */
static cdm_conn *leave_state_and_reborrow(const char *def)
{
    cdm_conn *p = NULL;
    long long id;

    ck_status(cdm_connect(m, def, &p), CDM_OK);
    id = conn_id(p);
    run(p, "SET @x = 5");
    run(p, "CREATE TEMPORARY TABLE tt_state (a INT)");
    run(p, "INSERT INTO tt_state VALUES (1)");
    cdm_disconnect(p);
    p = NULL;
    ck_status(cdm_connect(m, def, &p), CDM_OK);
    ck_assert_int_eq(conn_id(p), id);
    return p;
}

START_TEST(test_reset_on_release_true)
{
    cdm_conn *p;

    add_def(m, "Reset", (const char *[]){ "Pooled=True", "POOL_MaximumItems=1",
                                          "POOL_ResetOnRelease=True", NULL });
    p = leave_state_and_reborrow("Reset");
    ck_scalar(p, "SELECT @x", NULL);
    ck_status(cdm_exec(p, "SELECT * FROM tt_state", NULL, 0, NULL),
              CDM_ERR_QUERY);
    ck_errmsg_has("doesn't exist");
    ck_errmsg_has("definition 'Reset'");
    cdm_disconnect(p);
}
END_TEST

START_TEST(test_reset_on_release_false)
{
    cdm_conn *p;

    add_def(m, "Keep", (const char *[]){ "Pooled=True", "POOL_MaximumItems=1",
                                         "POOL_ResetOnRelease=False", NULL });
    p = leave_state_and_reborrow("Keep");
    ck_scalar(p, "SELECT @x", "5");
    ck_scalar(p, "SELECT COUNT(*) FROM tt_state", "1");
    run(p, "DROP TEMPORARY TABLE tt_state");
    cdm_disconnect(p);
}
END_TEST

START_TEST(test_reset_keeps_character_set)
{
    cdm_conn *p = NULL;
    cdm_result *r = NULL;
    long long id;

    /* A reset must not leave the session in another character set than
     * the one the client library encodes and decodes with. */
    add_def(m, "ResetLatin", (const char *[]){ "Pooled=True",
                                               "POOL_MaximumItems=1",
                                               "POOL_ResetOnRelease=True",
                                               "CharacterSet=latin1", NULL });
    ck_status(cdm_connect(m, "ResetLatin", &p), CDM_OK);
    id = conn_id(p);
    cdm_disconnect(p);
    p = NULL;
    ck_status(cdm_connect(m, "ResetLatin", &p), CDM_OK);
    ck_assert_int_eq(conn_id(p), id);
    ck_status(cdm_query(p, "SELECT @@character_set_client, "
                           "@@character_set_connection, "
                           "@@character_set_results, HEX(?)",
                        (const char *[]){ "\xe9" }, 1, &r), CDM_OK);
    ck_row(r, 0, "latin1", "latin1", "latin1", "E9");
    cdm_result_free(r);
    cdm_disconnect(p);
}
END_TEST

START_TEST(test_kill_gives_broken_no_reconnect)
{
    cdm_conn *p = NULL;
    cdm_result *r = NULL;
    cdm_pool_stats st;
    long long id;
    MYSQL *h;

    add_def(m, "Victim", (const char *[]){ "Pooled=True", "POOL_MaximumItems=1",
                                           NULL });
    ck_status(cdm_connect(m, "Victim", &p), CDM_OK);
    id = conn_id(p);
    h = cdm_conn_handle(p);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq((long long)mysql_thread_id(h), id);
    kill_conn(c, id);

    ck_status(cdm_query(p, "SELECT CONNECTION_ID()", NULL, 0, &r),
              CDM_ERR_BROKEN);
    ck_assert_ptr_null(r);
    ck_errmsg_has("definition 'Victim'");
    /* No silent reconnect: it stays broken, under the same id. */
    ck_status(cdm_query(p, "SELECT CONNECTION_ID()", NULL, 0, &r),
              CDM_ERR_BROKEN);
    ck_status(cdm_query(p, "SELECT CONNECTION_ID() FROM DUAL WHERE 1 = ?",
                        (const char *[]){ "1" }, 1, &r), CDM_ERR_BROKEN);
    ck_status(cdm_exec(p, "DO 1", NULL, 0, NULL), CDM_ERR_BROKEN);
    ck_status(cdm_ping(p), CDM_ERR_BROKEN);
    ck_assert_ptr_eq(cdm_conn_handle(p), h);
    ck_assert_int_eq((long long)mysql_thread_id(h), id);
    cdm_disconnect(p);

    /* Not put back: the next borrow opens a new one. */
    p = NULL;
    ck_status(cdm_connect(m, "Victim", &p), CDM_OK);
    ck_assert_int_ne(conn_id(p), id);
    cdm_disconnect(p);
    ck_status(cdm_manager_pool_stats(m, "Victim", &st), CDM_OK);
    ck_assert_int_eq(st.created, 2);
    ck_assert_int_eq(st.destroyed, 1);
}
END_TEST

START_TEST(test_kill_plain_connection_broken)
{
    cdm_conn *p = NULL;
    long long id;

    ck_status(cdm_connect(m, "My", &p), CDM_OK);
    id = conn_id(p);
    run(p, "SET @mark = 1");
    kill_conn(c, id);
    ck_status(cdm_exec(p, "SET @mark = 2", NULL, 0, NULL),
              CDM_ERR_BROKEN);
    ck_errmsg_has("definition 'My'");
    ck_status(cdm_exec(p, "SELECT ?", (const char *[]){ "1" }, 1, NULL),
              CDM_ERR_BROKEN);
    ck_status(cdm_begin(p), CDM_ERR_BROKEN);
    ck_assert_int_eq((long long)mysql_thread_id(cdm_conn_handle(p)), id);
    cdm_disconnect(p);
}
END_TEST

START_TEST(test_killed_idle_pooled_is_replaced)
{
    cdm_conn *p = NULL;
    cdm_pool_stats st;
    long long id, id2;
    int fd;

    add_def(m, "Idle", (const char *[]){ "Pooled=True", "POOL_MaximumItems=2",
                                         NULL });
    ck_status(cdm_connect(m, "Idle", &p), CDM_OK);
    id = conn_id(p);
    fd = (int)mysql_get_socket(cdm_conn_handle(p));
    cdm_disconnect(p);   /* now idle in the pool */
    kill_conn(c, id);
    wait_readable(fd);
    /* A connection returned less than 5 ms ago is lent without a socket
     * check (README, "Pools"); the cleanup thread's watcher takes this
     * one out as soon as it sees the hang-up.  Wait for that (the
     * recovery suite covers a borrow that comes first). */
    tu_wait_for(cdm_manager_pool_stats(m, "Idle", &st) == CDM_OK &&
                st.destroyed == 1, 5000);
    ck_assert_int_eq(st.destroyed, 1);
    /* Replaced without an error. */
    p = NULL;
    ck_status(cdm_connect(m, "Idle", &p), CDM_OK);
    id2 = conn_id(p);
    ck_assert_int_ne(id2, id);
    ck_scalar(p, "SELECT 'alive'", "alive");
    cdm_disconnect(p);
    ck_status(cdm_manager_pool_stats(m, "Idle", &st), CDM_OK);
    ck_assert_int_eq(st.created, 2);
    ck_assert_int_eq(st.destroyed, 1);
    ck_assert_int_eq(st.total, 1);
}
END_TEST

/* ------------------------------------------------------------- threads */

#define N_THREADS 8
#define N_ROUNDS 200
#define POOL_MAX 4

struct worker {
    cdm_manager *mgr;
    int errors;
    char first[512];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < N_ROUNDS; i++) {
        cdm_conn *p = NULL;
        cdm_result *r = NULL;
        char n[16];
        int rc;

        snprintf(n, sizeof n, "%d", i);
        if ((rc = cdm_connect(w->mgr, "Many", &p)) == CDM_OK) {
            rc = cdm_query(p, "SELECT ? + 1, CONNECTION_ID()",
                           (const char *[]){ n }, 1, &r);
            if (rc == CDM_OK && (cdm_result_nrows(r) != 1 ||
                                 atoi(cdm_result_value(r, 0, 0)) != i + 1))
                rc = CDM_ERR_QUERY;
            cdm_result_free(r);
            cdm_disconnect(p);
        }
        if (rc != CDM_OK && w->errors++ == 0)
            snprintf(w->first, sizeof w->first, "%s: %s", cdm_strerror(rc),
                     cdm_errmsg());
    }
    return NULL;
}

struct observer {
    cdm_conn *conn;       /* NULL: ask through the admin client */
    const char *sql;
    atomic_bool stop;
    long long max_seen;
    int samples;
    int failed;
    char first[512];
};

/* Samples the number of the test user's connections until told to stop,
 * through the admin client (slow, independent) or through the observer's
 * own connection (fast). */
static void *observer_main(void *arg)
{
    struct observer *o = arg;

    while (!atomic_load(&o->stop)) {
        cdm_result *r = NULL;
        char *out = NULL;
        long long n = -1;

        if (!o->conn) {
            if ((out = tu_servers("mysql \"%s\"", o->sql)))
                n = atoll(out);
            free(out);
        } else if (cdm_query(o->conn, o->sql, NULL, 0, &r) == CDM_OK) {
            n = atoll(cdm_result_value(r, 0, 0));
            cdm_result_free(r);
            usleep(1000);
        } else if (o->failed == 0) {
            snprintf(o->first, sizeof o->first, "%s", cdm_errmsg());
        }
        if (n < 0) {
            o->failed++;
            continue;
        }
        if (n > o->max_seen)
            o->max_seen = n;
        o->samples++;
    }
    return NULL;
}

START_TEST(test_threads_pool_limit)
{
    pthread_t th[N_THREADS], ob[2];
    struct worker w[N_THREADS];
    struct observer o[2];
    cdm_conn *obs = NULL;
    cdm_pool_stats st;
    char sql[200], *after;

    add_def(m, "Many", (const char *[]){ "Pooled=True", "POOL_MaximumItems=4",
                                         "POOL_AcquireTimeout=20000", NULL });
    /* Connections opened from now on: the observer's own one and the
     * pool's (ids only grow). */
    ck_status(cdm_connect(m, "My", &obs), CDM_OK);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM information_schema."
             "PROCESSLIST WHERE USER = '%s' AND ID >= %lld", srv.user,
             conn_id(obs));
    for (int i = 0; i < 2; i++) {
        memset(&o[i], 0, sizeof o[i]);
        o[i].conn = i ? obs : NULL;
        o[i].sql = sql;
        atomic_init(&o[i].stop, false);
        ck_assert_int_eq(pthread_create(&ob[i], NULL, observer_main, &o[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].mgr = m;
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        atomic_store(&o[i].stop, true);
        pthread_join(ob[i], NULL);
    }
    /* The pool keeps what it opened; one more look at it. */
    after = tu_servers("mysql \"%s\"", sql);
    for (int i = 0; i < N_THREADS; i++)
        ck_assert_msg(w[i].errors == 0, "thread %d: %d errors, first: %s", i,
                      w[i].errors, w[i].first);
    ck_assert_ptr_nonnull(after);
    ck_assert_msg(atoll(after) >= 2 && atoll(after) <= POOL_MAX + 1,
                  "%s connections of %s after the run", after, srv.user);
    free(after);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(o[i].failed == 0, "observer %d failed %d times: %s", i,
                      o[i].failed, o[i].first);
        ck_assert_int_ge(o[i].samples, 1);
        ck_assert_msg(o[i].max_seen <= POOL_MAX + 1, "observer %d saw %lld "
                      "connections of %s", i, o[i].max_seen, srv.user);
    }
    ck_assert_int_ge(o[1].max_seen, 2);
    cdm_disconnect(obs);
    ck_status(cdm_manager_pool_stats(m, "Many", &st), CDM_OK);
    ck_assert_int_eq(st.acquired, N_THREADS * N_ROUNDS);
    ck_assert_int_le(st.created, POOL_MAX);
    ck_assert_int_le(st.total, POOL_MAX);
    ck_assert_int_eq(st.in_use, 0);
}
END_TEST

/* ---------------------------------------------------------- statements */

/* This session's Com_stmt_<what> counter.  Session status counts only
 * this connection's commands, so that the other suites using the same
 * server during `make check` do not disturb it (the global
 * Prepared_stmt_count would); mysql_reset_connection sets it to 0. */
static long long com_stmt(cdm_conn *conn, const char *what)
{
    char sql[96];
    cdm_result *r = NULL;
    long long n;

    snprintf(sql, sizeof sql, "SHOW SESSION STATUS LIKE 'Com\\_stmt\\_%s'",
             what);
    ck_status(cdm_query(conn, sql, NULL, 0, &r), CDM_OK);
    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    n = atoll(cdm_result_value(r, 0, 1));
    cdm_result_free(r);
    return n;
}

/* Statements the server holds for this session: prepared less closed.
 * A prepare the server repeats by itself (a table changed under the
 * statement) counts as a prepare and a reprepare; a failed one would
 * count too (no prepare of these tests fails). */
static long long server_stmts(cdm_conn *conn)
{
    return com_stmt(conn, "prepare") - com_stmt(conn, "reprepare") -
           com_stmt(conn, "close");
}

/* Statements Connector/C holds on the connection's handle. */
static long long client_stmts(cdm_conn *conn)
{
    MYSQL *h = cdm_conn_handle(conn);
    long long n = 0;

    for (LIST *l = h->stmts; l; l = l->next)
        n++;
    return n;
}

/* Makes the server forget every statement of the connection behind the
 * client's back: COM_STMT_CLOSE written straight onto its socket (the
 * command has no reply, so the client stays in step). */
static void forget_on_server(cdm_conn *conn)
{
    MYSQL *h = cdm_conn_handle(conn);

    for (LIST *l = h->stmts; l; l = l->next) {
        unsigned long id = ((MYSQL_STMT *)l->data)->stmt_id;
        unsigned char pkt[9] = { 5, 0, 0, 0, 0x19 /* COM_STMT_CLOSE */,
                                 (unsigned char)id, (unsigned char)(id >> 8),
                                 (unsigned char)(id >> 16),
                                 (unsigned char)(id >> 24) };
        ck_assert_int_eq(write((int)mysql_get_socket(h), pkt, sizeof pkt),
                         (ssize_t)sizeof pkt);
    }
}

#define ck_scalar_p(conn, sql, arg, want)                                    \
    do {                                                                     \
        char *ck_v_ = scalar_p((conn), (sql), (const char *[]){ (arg) }, 1); \
        ck_assert_pstr_eq(ck_v_, (want));                                    \
        free(ck_v_);                                                         \
    } while (0)

/* Unicode (ü, ß, €, an emoji) with a NUL byte inside. */
static const char nul_text[] = "gr\xc3\xbc\xc3\x9f" "e\0after NUL \xe2\x82\xac "
                               "\xf0\x9f\x98\x80";
#define NUL_TEXT_LEN (sizeof nul_text - 1)
#define BIG_BLOB (1024u * 1024u)

/* The values test_stmt_round_trip_every_type stored, read back through
 * the typed accessors: bl LONGBLOB, tx TEXT, vb VARBINARY, bi BIGINT,
 * d DOUBLE, for rows k = 1, 2, 3.  `path` names the protocol. */
static void check_round_trip(const cdm_result *r, int k,
                             const unsigned char *blob, const char *path)
{
    const void *p;
    size_t len;
    int64_t i;
    double d;

    ck_assert_uint_eq(cdm_result_nrows(r), 1);
    ck_assert_uint_eq(cdm_result_ncols(r), 5);
    if (k == 3) {
        for (size_t c = 0; c < 5; c++) {
            ck_assert_msg(cdm_result_type(r, 0, c) == CDM_TYPE_NULL,
                          "%s: column %zu is not NULL", path, c);
            ck_assert_ptr_null(cdm_result_value(r, 0, c));
        }
        return;
    }
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_BLOB);
    ck_assert_int_eq(cdm_result_type(r, 0, 1), CDM_TYPE_TEXT);
    ck_assert_int_eq(cdm_result_type(r, 0, 2), CDM_TYPE_BLOB);
    ck_assert_int_eq(cdm_result_type(r, 0, 3), CDM_TYPE_INT);
    ck_assert_int_eq(cdm_result_type(r, 0, 4), CDM_TYPE_FLOAT);
    p = cdm_result_blob(r, 0, 0, &len);
    ck_assert_ptr_nonnull(p);
    ck_status(cdm_result_int64(r, 0, 3, &i), CDM_OK);
    ck_status(cdm_result_double(r, 0, 4, &d), CDM_OK);
    if (k == 1) {
        ck_assert_msg(len == BIG_BLOB && memcmp(p, blob, BIG_BLOB) == 0,
                      "%s: the 1 MB BLOB came back as %zu other bytes", path,
                      len);
        ck_assert_uint_eq(cdm_result_length(r, 0, 1), NUL_TEXT_LEN);
        ck_assert(memcmp(cdm_result_blob(r, 0, 1, NULL), nul_text,
                         NUL_TEXT_LEN) == 0);
        ck_assert_uint_eq(cdm_result_length(r, 0, 2), NUL_TEXT_LEN);
        ck_assert(memcmp(cdm_result_blob(r, 0, 2, NULL), nul_text,
                         NUL_TEXT_LEN) == 0);
        ck_assert_msg(i == INT64_MIN, "%s: %" PRId64, path, i);
        /* -0.0 comes back as 0.0: MariaDB drops the sign of a zero (a
         * SELECT ? echoes 0 too), so only the value can be compared. */
        ck_assert_msg(d == 0.0, "%s: %g is not -0.0", path, d);
        ck_assert_str_eq(cdm_result_value(r, 0, 3), "-9223372036854775808");
    } else {
        /* Empty, not NULL. */
        ck_assert_uint_eq(len, 0);
        ck_assert_uint_eq(cdm_result_length(r, 0, 1), 0);
        ck_assert_str_eq(cdm_result_value(r, 0, 1), "");
        ck_assert_uint_eq(cdm_result_length(r, 0, 2), 0);
        ck_assert_str_eq(cdm_result_value(r, 0, 2), "\\x");
        ck_assert_msg(i == INT64_MAX, "%s: %" PRId64, path, i);
        ck_assert_msg(d == 1e308, "%s: %.17g is not 1e308", path, d);
        ck_assert_str_eq(cdm_result_value(r, 0, 3), "9223372036854775807");
    }
}

START_TEST(test_stmt_round_trip_every_type)
{
    unsigned char *blob = malloc(BIG_BLOB);
    cdm_stmt *ins = NULL, *sel = NULL;
    cdm_result *r = NULL, *t = NULL;

    ck_assert_ptr_nonnull(blob);
    for (size_t k = 0; k < BIG_BLOB; k++)
        blob[k] = (unsigned char)(k % 256);
    run(c, "DROP TABLE IF EXISTS t_rt");
    run(c, "CREATE TABLE t_rt (k INT PRIMARY KEY, bl LONGBLOB, tx TEXT "
           "CHARACTER SET utf8mb4, vb VARBINARY(64), bi BIGINT, d DOUBLE)");
    ck_status(cdm_prepare(c, "INSERT INTO t_rt VALUES (?, ?, ?, ?, ?, ?)",
                          &ins), CDM_OK);
    ck_assert_uint_eq(cdm_stmt_nparams(ins), 6);
    /* 1: every byte value, text with a NUL, the ends of int64, -0.0. */
    ck_status(cdm_bind_int64(ins, 0, 1), CDM_OK);
    ck_status(cdm_bind_blob(ins, 1, blob, BIG_BLOB), CDM_OK);
    ck_status(cdm_bind_text(ins, 2, nul_text, NUL_TEXT_LEN), CDM_OK);
    ck_status(cdm_bind_text(ins, 3, nul_text, NUL_TEXT_LEN), CDM_OK);
    ck_status(cdm_bind_int64(ins, 4, INT64_MIN), CDM_OK);
    ck_status(cdm_bind_double(ins, 5, -0.0), CDM_OK);
    ck_status(cdm_stmt_exec(ins, NULL), CDM_OK);
    /* 2: empty values, not NULL. */
    ck_status(cdm_bind_int64(ins, 0, 2), CDM_OK);
    ck_status(cdm_bind_blob(ins, 1, NULL, 0), CDM_OK);
    ck_status(cdm_bind_text(ins, 2, "", CDM_NTS), CDM_OK);
    ck_status(cdm_bind_blob(ins, 3, "", 0), CDM_OK);
    ck_status(cdm_bind_int64(ins, 4, INT64_MAX), CDM_OK);
    ck_status(cdm_bind_double(ins, 5, 1e308), CDM_OK);
    ck_status(cdm_stmt_exec(ins, NULL), CDM_OK);
    /* 3: NULL everywhere. */
    ck_status(cdm_bind_int64(ins, 0, 3), CDM_OK);
    for (size_t i = 1; i < 6; i++)
        ck_status(cdm_bind_null(ins, i), CDM_OK);
    ck_status(cdm_stmt_exec(ins, NULL), CDM_OK);
    /* MariaDB cannot store NaN (nor an infinity) in a DOUBLE column: it
     * refuses it as out of range, where PostgreSQL and SQLite store it. */
    ck_status(cdm_bind_int64(ins, 0, 4), CDM_OK);
    ck_status(cdm_bind_double(ins, 5, NAN), CDM_OK);
    ck_status(cdm_stmt_exec(ins, NULL), CDM_ERR_QUERY);
    ck_errmsg_has("Out of range");
    cdm_stmt_free(ins);

    ck_status(cdm_prepare(c, "SELECT bl, tx, vb, bi, d FROM t_rt WHERE k = ?",
                          &sel), CDM_OK);
    for (int k = 1; k <= 3; k++) {
        char sql[80];
        /* Binary protocol (a prepared statement) and text protocol. */
        ck_status(cdm_bind_int64(sel, 0, k), CDM_OK);
        ck_status(cdm_stmt_query(sel, &r), CDM_OK);
        check_round_trip(r, k, blob, "prepared");
        snprintf(sql, sizeof sql, "SELECT bl, tx, vb, bi, d FROM t_rt "
                 "WHERE k = %d", k);
        ck_status(cdm_query(c, sql, NULL, 0, &t), CDM_OK);
        check_round_trip(t, k, blob, "plain");
        for (size_t col = 0; col < 5; col++)
            ck_assert_pstr_eq(cdm_result_value(r, 0, col),
                              cdm_result_value(t, 0, col));
        cdm_result_free(r);
        cdm_result_free(t);
        r = t = NULL;
    }
    cdm_stmt_free(sel);
    free(blob);
}
END_TEST

/* Each value bound with its type comes back with it from SELECT ?. */
START_TEST(test_stmt_echo_types)
{
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;
    int64_t i;
    double d;

    ck_status(cdm_prepare(c, "SELECT ? AS v", &s), CDM_OK);
    ck_status(cdm_bind_int64(s, 0, -42), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_INT);
    ck_status(cdm_result_int64(r, 0, 0, &i), CDM_OK);
    ck_assert_int_eq(i, -42);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "-42");
    cdm_result_free(r);
    ck_status(cdm_bind_double(s, 0, 0.1), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_FLOAT);
    ck_status(cdm_result_double(r, 0, 0, &d), CDM_OK);
    ck_assert(d == 0.1);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "0.1");
    cdm_result_free(r);
    ck_status(cdm_bind_text(s, 0, "a\0b", 3), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_TEXT);
    ck_assert_uint_eq(cdm_result_length(r, 0, 0), 3);
    ck_assert(memcmp(cdm_result_blob(r, 0, 0, NULL), "a\0b", 3) == 0);
    cdm_result_free(r);
    ck_status(cdm_bind_blob(s, 0, "\x00\xff", 2), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_BLOB);
    ck_assert_str_eq(cdm_result_value(r, 0, 0), "\\x00ff");
    cdm_result_free(r);
    ck_status(cdm_bind_null(s, 0), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_NULL);
    cdm_result_free(r);
    cdm_stmt_free(s);
}
END_TEST

/* In a comma locale FLOAT and DOUBLE values keep their decimal point, as
 * text and as numbers. */
START_TEST(test_stmt_floats_in_a_comma_locale)
{
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;

    tu_comma_numeric();
    ck_status(cdm_prepare(c, "SELECT CAST(? AS FLOAT), ? * 2", &s), CDM_OK);
    ck_status(cdm_bind_double(s, 0, 0.1), CDM_OK);
    ck_status(cdm_bind_double(s, 1, 1.25), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_assert_int_eq(cdm_result_type(r, 0, 0), CDM_TYPE_FLOAT);
    ck_cell_double(r, 0, 0, "0.1", 0.1);
    ck_cell_double(r, 0, 1, "2.5", 2.5);
    cdm_result_free(r);
    cdm_stmt_free(s);
    tu_c_numeric();
}
END_TEST

/* A cached statement keeps its column buffers from run to run and grows
 * them after a longer value: each length comes back whole, longer and
 * shorter than the last, past the first buffer and past the largest. */
START_TEST(test_stmt_value_lengths)
{
    static const int64_t lens[] = { 300, 10, 5000, 0, 255, 256, 257,
                                    1024 * 1024 + 10, 300, 70000 };
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;

    ck_status(cdm_prepare(c, "SELECT REPEAT('x', ?) AS v, ? AS n", &s),
              CDM_OK);
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        const char *v;
        int64_t n;
        ck_status(cdm_bind_int64(s, 0, lens[i]), CDM_OK);
        ck_status(cdm_bind_int64(s, 1, (int64_t)i), CDM_OK);
        ck_status(cdm_stmt_query(s, &r), CDM_OK);
        ck_assert_uint_eq(cdm_result_length(r, 0, 0), (size_t)lens[i]);
        v = cdm_result_value(r, 0, 0);
        ck_assert_uint_eq(strlen(v), (size_t)lens[i]);
        ck_assert(strspn(v, "x") == (size_t)lens[i]);
        ck_status(cdm_result_int64(r, 0, 1, &n), CDM_OK);
        ck_assert_int_eq(n, (int64_t)i);
        cdm_result_free(r);
    }
    cdm_stmt_free(s);
}
END_TEST

/* Types by column on both protocols; an unsigned BIGINT above INT64_MAX
 * stays an INT with its exact text, and cdm_result_int64 refuses it. */
START_TEST(test_stmt_types_by_column)
{
    static const int want[] = { CDM_TYPE_INT, CDM_TYPE_INT, CDM_TYPE_INT,
                                CDM_TYPE_INT, CDM_TYPE_INT, CDM_TYPE_FLOAT,
                                CDM_TYPE_FLOAT, CDM_TYPE_TEXT, CDM_TYPE_TEXT,
                                CDM_TYPE_TEXT, CDM_TYPE_BLOB, CDM_TYPE_BLOB,
                                CDM_TYPE_TEXT, CDM_TYPE_TEXT };
    cdm_result *r, *p;
    int64_t i;
    double d;

    run(c, "DROP TABLE IF EXISTS t_ty");
    run(c, "CREATE TABLE t_ty (id INT, bu BIGINT UNSIGNED, z INT(6) ZEROFILL, "
           "y YEAR, b BOOLEAN, f FLOAT, d DOUBLE, dc DECIMAL(10,2), "
           "dt DATETIME, v VARCHAR(10), vb VARBINARY(4), bt BIT(8), "
           "e ENUM('a','b'), j JSON)");
    run(c, "INSERT INTO t_ty VALUES (1, 18446744073709551615, 42, 2024, TRUE, "
           "1.5, -0.25, 3.14, '2024-01-02 03:04:05', 'x', x'00ff', b'101', "
           "'b', '[1]'), (2, 9223372036854775807, 0, 0, FALSE, 0, 0, 0, NULL, "
           "'', '', b'0', 'a', '{}')");
    r = query_both(c, "SELECT * FROM t_ty WHERE 1 = 1%s ORDER BY id", &p);
    for (int w = 0; w < 2; w++) {
        const cdm_result *x = w ? p : r;
        for (size_t col = 0; col < sizeof want / sizeof *want; col++)
            ck_assert_msg(cdm_result_type(x, 0, col) == want[col],
                          "%s: column %s is type %d, not %d",
                          w ? "prepared" : "plain", cdm_result_colname(x, col),
                          cdm_result_type(x, 0, col), want[col]);
        ck_assert_str_eq(cdm_result_value(x, 0, 1), "18446744073709551615");
        ck_status(cdm_result_int64(x, 0, 1, &i), CDM_ERR_INVALID);
        ck_status(cdm_result_double(x, 0, 1, &d), CDM_OK);
        ck_assert(d == 18446744073709551615.0);
        ck_status(cdm_result_int64(x, 1, 1, &i), CDM_OK);
        ck_assert(i == INT64_MAX);
        ck_status(cdm_result_int64(x, 0, 2, &i), CDM_OK);
        ck_assert_int_eq(i, 42);
        ck_status(cdm_result_int64(x, 0, 3, &i), CDM_OK);
        ck_assert_int_eq(i, 2024);
        ck_status(cdm_result_int64(x, 1, 3, &i), CDM_OK);
        ck_assert_int_eq(i, 0);
        ck_status(cdm_result_double(x, 0, 5, &d), CDM_OK);
        ck_assert(d == 1.5);
        ck_status(cdm_result_double(x, 0, 6, &d), CDM_OK);
        ck_assert(d == -0.25);
        ck_assert_uint_eq(cdm_result_length(x, 0, 11), 1);
        ck_assert_int_eq(*(const unsigned char *)cdm_result_blob(x, 0, 11,
                                                                 NULL), 5);
        ck_assert_int_eq(cdm_result_type(x, 0, 7), CDM_TYPE_TEXT);
        ck_assert_int_eq(cdm_result_type(x, 1, 8), CDM_TYPE_NULL);
    }
    ck_row(r, 0, "1", "18446744073709551615", "000042", "2024", "1", "1.5",
           "-0.25", "3.14", "2024-01-02 03:04:05", "x", "\\x00ff", "\\x05",
           "b", "[1]");
    ck_row(r, 1, "2", "9223372036854775807", "000000", "0000", "0", "0", "0",
           "0.00", NULL, "", "\\x", "\\x00", "a", "{}");
    cdm_result_free(r);
    cdm_result_free(p);
    /* A FLOAT's number: the shortest decimal that is the same float
     * through a prepared statement (0.1 stays 0.1); the text protocol
     * has only the server's 6 digits, and the text is those on both. */
    run(c, "UPDATE t_ty SET f = 16777217 WHERE id = 1");
    run(c, "UPDATE t_ty SET f = 0.1 WHERE id = 2");
    r = query_both(c, "SELECT f FROM t_ty WHERE 1 = 1%s ORDER BY id", &p);
    ck_row(r, 0, "16777200");
    ck_row(r, 1, "0.1");
    ck_status(cdm_result_double(p, 0, 0, &d), CDM_OK);
    ck_assert(d == 16777216.0);
    ck_status(cdm_result_double(r, 0, 0, &d), CDM_OK);
    ck_assert(d == 16777200.0);
    for (int w = 0; w < 2; w++) {
        ck_status(cdm_result_double(w ? p : r, 1, 0, &d), CDM_OK);
        ck_assert(d == 0.1);
    }
    cdm_result_free(r);
    cdm_result_free(p);
}
END_TEST

/* A pooled connection prepares a statement once: later calls, also of
 * later borrowers, are one COM_STMT_EXECUTE each. */
START_TEST(test_stmt_cached_one_round_trip)
{
    cdm_conn *a = NULL;
    long long id, prep, exec;

    add_def(m, "MyPool", (const char *[]){ "Pooled=True",
                                           "POOL_MaximumItems=1", NULL });
    add_def(m, "MyNoCache", (const char *[]){ "StatementCacheSize=0", NULL });
    ck_status(cdm_connect(m, "MyPool", &a), CDM_OK);
    id = conn_id(a);
    prep = com_stmt(a, "prepare");
    exec = com_stmt(a, "execute");
    ck_scalar_p(a, "SELECT ?+1", "41", "42");
    ck_assert_int_eq(com_stmt(a, "prepare"), prep + 1);
    ck_scalar_p(a, "SELECT ?+1", "1", "2");
    ck_scalar_p(a, "SELECT ?+1", "2", "3");
    ck_assert_int_eq(com_stmt(a, "prepare"), prep + 1);
    ck_assert_int_eq(com_stmt(a, "execute"), exec + 3);
    ck_assert_int_eq(com_stmt(a, "close"), 0);
    cdm_disconnect(a);
    /* The next borrower of the same connection executes it at once. */
    ck_status(cdm_connect(m, "MyPool", &a), CDM_OK);
    ck_assert_int_eq(conn_id(a), id);
    ck_scalar_p(a, "SELECT ?+1", "9", "10");
    ck_assert_int_eq(com_stmt(a, "prepare"), prep + 1);
    ck_assert_int_eq(server_stmts(a), 1);
    ck_assert_int_eq(client_stmts(a), 1);
    cdm_disconnect(a);
    /* Without the cache: prepared and closed each time. */
    ck_status(cdm_connect(m, "MyNoCache", &a), CDM_OK);
    prep = com_stmt(a, "prepare");
    ck_scalar_p(a, "SELECT ?+1", "1", "2");
    ck_scalar_p(a, "SELECT ?+1", "1", "2");
    ck_assert_int_eq(com_stmt(a, "prepare"), prep + 2);
    ck_assert_int_eq(server_stmts(a), 0);
    ck_assert_int_eq(client_stmts(a), 0);
    cdm_disconnect(a);
}
END_TEST

/* A cached statement the server no longer knows is prepared again,
 * without an error: forgotten on the server (1243), and cut loose by a
 * mysql_reset_connection behind the cache's back. */
START_TEST(test_stmt_stale_prepared_again)
{
    cdm_conn *a = NULL;
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;
    int64_t v = 0;

    add_def(m, "MyPool", (const char *[]){ "Pooled=True",
                                           "POOL_MaximumItems=1", NULL });
    ck_status(cdm_connect(m, "MyPool", &a), CDM_OK);
    ck_scalar_p(a, "SELECT ?+1", "1", "2");
    ck_assert_int_eq(com_stmt(a, "prepare"), 1);
    forget_on_server(a);
    ck_assert_int_eq(server_stmts(a), 0);
    ck_scalar_p(a, "SELECT ?+1", "2", "3");
    ck_assert_int_eq(com_stmt(a, "prepare"), 2);
    ck_assert_int_eq(server_stmts(a), 1);
    ck_assert_int_eq(client_stmts(a), 1);
    /* An open statement, between two of its runs. */
    ck_status(cdm_prepare(a, "SELECT ? * 2", &s), CDM_OK);
    ck_status(cdm_bind_int64(s, 0, 21), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    cdm_result_free(r);
    forget_on_server(a);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_status(cdm_result_int64(r, 0, 0, &v), CDM_OK);
    ck_assert_int_eq(v, 42);
    cdm_result_free(r);
    ck_assert_int_eq(server_stmts(a), 1);   /* only this one: re-prepared */
    /* A reset behind the cache's back: Connector/C cuts every statement
     * loose (their next execute fails with "lost connection", but the
     * connection is fine) and the server drops them. */
    ck_assert_int_eq(mysql_reset_connection(cdm_conn_handle(a)), 0);
    ck_assert_int_eq(client_stmts(a), 0);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_status(cdm_result_int64(r, 0, 0, &v), CDM_OK);
    ck_assert_int_eq(v, 42);
    cdm_result_free(r);
    cdm_stmt_free(s);
    ck_scalar_p(a, "SELECT ?+1", "3", "4");
    /* Counters start again at the reset. */
    ck_assert_int_eq(com_stmt(a, "prepare"), 2);
    ck_assert_int_eq(server_stmts(a), 2);
    ck_assert_int_eq(client_stmts(a), 2);
    ck_status(cdm_ping(a), CDM_OK);
    cdm_disconnect(a);
}
END_TEST

/* A lost connection is not a forgotten statement: a cached statement
 * on a killed connection gives CDM_ERR_BROKEN, not a silent new prepare. */
START_TEST(test_stmt_lost_connection_is_broken)
{
    cdm_conn *a = NULL;
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;
    long long id;

    add_def(m, "MyPool", (const char *[]){ "Pooled=True",
                                           "POOL_MaximumItems=1", NULL });
    ck_status(cdm_connect(m, "MyPool", &a), CDM_OK);
    id = conn_id(a);
    ck_scalar_p(a, "SELECT ?+1", "1", "2");
    ck_status(cdm_prepare(a, "SELECT ? * 2", &s), CDM_OK);
    ck_status(cdm_bind_int64(s, 0, 1), CDM_OK);
    kill_conn(c, id);
    ck_status(cdm_query(a, "SELECT ?+1", (const char *[]){ "1" }, 1, &r),
              CDM_ERR_BROKEN);
    ck_assert_ptr_null(r);
    ck_status(cdm_stmt_query(s, &r), CDM_ERR_BROKEN);
    ck_assert_ptr_null(r);
    cdm_stmt_free(s);
    cdm_disconnect(a);
    ck_status(cdm_connect(m, "MyPool", &a), CDM_OK);
    ck_assert_int_ne(conn_id(a), id);
    ck_scalar_p(a, "SELECT ?+1", "1", "2");
    cdm_disconnect(a);
}
END_TEST

/* A table changed under a cached statement: the server sends other
 * columns, and the statement is prepared again with them. */
START_TEST(test_stmt_schema_change)
{
    cdm_stmt *s = NULL;
    cdm_result *r = NULL;
    long long before;

    run(c, "DROP TABLE IF EXISTS t_sc");
    run(c, "CREATE TABLE t_sc (id INT PRIMARY KEY, a INT)");
    run(c, "INSERT INTO t_sc VALUES (1, 10)");
    ck_status(cdm_prepare(c, "SELECT * FROM t_sc WHERE id = ?", &s), CDM_OK);
    ck_status(cdm_bind_int64(s, 0, 1), CDM_OK);
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_row(r, 0, "1", "10");
    cdm_result_free(r);
    run(c, "ALTER TABLE t_sc ADD COLUMN b VARCHAR(5) DEFAULT 'new'");
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_row(r, 0, "1", "10", "new");
    cdm_result_free(r);
    run(c, "ALTER TABLE t_sc MODIFY a VARCHAR(10)");
    ck_status(cdm_stmt_query(s, &r), CDM_OK);
    ck_row(r, 0, "1", "10", "new");
    ck_assert_int_eq(cdm_result_type(r, 0, 1), CDM_TYPE_TEXT);
    cdm_result_free(r);
    cdm_stmt_free(s);
    /* The same through cdm_query, and nothing left over on the server. */
    ck_scalar_p(c, "SELECT b FROM t_sc WHERE id = ?", "1", "new");
    run(c, "ALTER TABLE t_sc DROP COLUMN b");
    before = server_stmts(c);
    ck_status(cdm_query(c, "SELECT * FROM t_sc WHERE id = ?",
                        (const char *[]){ "1" }, 1, &r), CDM_OK);
    ck_row(r, 0, "1", "10");
    cdm_result_free(r);
    ck_assert_int_eq(server_stmts(c), before);
    ck_assert_int_eq(server_stmts(c), client_stmts(c));
}
END_TEST

/* POOL_ResetOnRelease drops the statements with the session; the next
 * borrower prepares again without an error. */
START_TEST(test_stmt_reset_on_release)
{
    cdm_conn *a = NULL;
    long long id;

    add_def(m, "MyReset", (const char *[]){ "Pooled=True",
            "POOL_MaximumItems=1", "POOL_ResetOnRelease=True", NULL });
    ck_status(cdm_connect(m, "MyReset", &a), CDM_OK);
    id = conn_id(a);
    ck_scalar_p(a, "SELECT ?+1", "1", "2");
    ck_assert_int_eq(server_stmts(a), 1);
    cdm_disconnect(a);
    ck_status(cdm_connect(m, "MyReset", &a), CDM_OK);
    ck_assert_int_eq(conn_id(a), id);
    ck_assert_int_eq(client_stmts(a), 0);
    ck_assert_int_eq(com_stmt(a, "prepare"), 0);   /* reset: a new session */
    ck_scalar_p(a, "SELECT ?+1", "2", "3");
    ck_assert_int_eq(com_stmt(a, "prepare"), 1);
    ck_assert_int_eq(server_stmts(a), 1);
    cdm_disconnect(a);
}
END_TEST

/* A child process that returns a connection it inherited lets its
 * statements go without a word on the parent's socket. */
START_TEST(test_stmt_forked_child_says_nothing)
{
    cdm_conn *a = NULL;
    int status;
    pid_t pid;

    add_def(m, "MyPool", (const char *[]){ "Pooled=True",
                                           "POOL_MaximumItems=2", NULL });
    ck_status(cdm_connect(m, "MyPool", &a), CDM_OK);
    ck_scalar_p(a, "SELECT ?+1", "1", "2");
    ck_scalar_p(a, "SELECT ?+2", "1", "3");
    ck_assert_int_eq(server_stmts(a), 2);
    fflush(NULL);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Returned in the child: forgotten (pool.c), cache and all. */
        cdm_disconnect(a);
        /* exec, not exit: no atexit handler, no leak check of the copy. */
        execl("/bin/sh", "sh", "-c", "exit 0", (char *)NULL);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(com_stmt(a, "close"), 0);
    ck_assert_int_eq(server_stmts(a), 2);
    ck_scalar_p(a, "SELECT ?+1", "5", "6");
    ck_assert_int_eq(com_stmt(a, "prepare"), 2);
    cdm_disconnect(a);
}
END_TEST

/* 16 threads, 10 parameterised statements, a cache of 4, while close_def
 * and set_param replace the pool's connections: every answer right, and
 * no statement left on the server beyond what each connection caches. */
struct stmt_race {
    atomic_bool stop;
    atomic_long ok, wrong, failed;
    char first[256];
    atomic_flag noted;
};

static void *stmt_race_main(void *arg)
{
    struct stmt_race *st = arg;
    unsigned k = (unsigned)(uintptr_t)&k >> 4;

    while (!atomic_load(&st->stop)) {
        cdm_conn *a = NULL;
        cdm_stmt *s = NULL;
        cdm_result *r = NULL;
        char sql[64], arg_[8];
        int64_t v = -1;
        int which = (int)(k++ % 10), rc;

        snprintf(sql, sizeof sql, "SELECT ? * 100 + %d", which);
        if ((rc = cdm_connect(m, "MyRace", &a)) == CDM_OK) {
            if (k % 2) {
                if ((rc = cdm_prepare(a, sql, &s)) == CDM_OK &&
                    (rc = cdm_bind_int64(s, 0, which)) == CDM_OK &&
                    (rc = cdm_stmt_query(s, &r)) == CDM_OK)
                    rc = cdm_result_int64(r, 0, 0, &v);
                cdm_stmt_free(s);
            } else {
                snprintf(arg_, sizeof arg_, "%d", which);
                if ((rc = cdm_query(a, sql, (const char *const[]){ arg_ }, 1,
                                    &r)) == CDM_OK)
                    rc = cdm_result_int64(r, 0, 0, &v);
            }
            cdm_result_free(r);
            cdm_disconnect(a);
        }
        if (rc != CDM_OK) {
            if (!atomic_flag_test_and_set(&st->noted))
                snprintf(st->first, sizeof st->first, "%s: %s",
                         cdm_strerror(rc), cdm_errmsg());
            atomic_fetch_add(&st->failed, 1);
        } else {
            atomic_fetch_add(v == which * 101 ? &st->ok : &st->wrong, 1);
        }
    }
    return NULL;
}

START_TEST(test_stmt_cache_under_the_pool)
{
    struct stmt_race st = { .noted = ATOMIC_FLAG_INIT };
    pthread_t t[16];
    int run_ms = tu_env_ms("CDM_RACE_SECONDS", 2000, 50);
    int64_t end;
    cdm_conn *held[4];
    unsigned flip = 0;

    add_def(m, "MyRace", (const char *[]){ "Pooled=True", "POOL_MaximumItems=4",
            "POOL_AcquireTimeout=20000", "StatementCacheSize=4", NULL });
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, stmt_race_main, &st), 0);
    end = tu_now_ms() + run_ms;
    while (tu_now_ms() < end) {
        if (flip++ % 2)
            ck_status(cdm_manager_close_def(m, "MyRace"), CDM_OK);
        else
            ck_status(cdm_manager_set_param(m, "MyRace", "ReadTimeout",
                                            flip % 4 ? "30" : "31"), CDM_OK);
        tu_sleep_ms(20);   /* pacing the changes, not synchronisation */
    }
    atomic_store(&st.stop, true);
    for (int i = 0; i < 16; i++)
        pthread_join(t[i], NULL);
    printf("mysql statement cache race: %ld right, %ld wrong, %ld failed\n",
           atomic_load(&st.ok), atomic_load(&st.wrong),
           atomic_load(&st.failed));
    ck_assert_msg(atomic_load(&st.failed) == 0, "%ld failed, first: %s",
                  atomic_load(&st.failed), st.first);
    ck_assert_int_eq(atomic_load(&st.wrong), 0);
    ck_assert_int_gt(atomic_load(&st.ok), 0);
    /* Every connection of the pool (4 at once: all it has): the server
     * holds exactly the statements its cache does, at most 4. */
    for (int i = 0; i < 4; i++)
        ck_status(cdm_connect(m, "MyRace", &held[i]), CDM_OK);
    for (int i = 0; i < 4; i++) {
        long long on_server = server_stmts(held[i]);
        ck_assert_int_eq(on_server, client_stmts(held[i]));
        ck_assert_int_le(on_server, 4);
    }
    for (int i = 0; i < 4; i++)
        cdm_disconnect(held[i]);
}
END_TEST

/* ---------------------------------------------------------------- main */

int main(void)
{
    Suite *s = suite_create("mysql");
    TCase *ty = tcase_create("types");
    TCase *tp = tcase_create("placeholders");
    TCase *te = tcase_create("exec");
    TCase *tr = tcase_create("errors");
    TCase *tc = tcase_create("connect");
    TCase *tt = tcase_create("transactions");
    TCase *tl = tcase_create("pool");
    TCase *ts = tcase_create("statements");
    TCase *all[] = { ty, tp, te, tr, tc, tt, tl, ts };

    tu_need_server("MYSQL", &srv);
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], 120);
        suite_add_tcase(s, all[i]);
    }

    tcase_add_test(ty, test_types_integers);
    tcase_add_test(ty, test_types_decimal);
    tcase_add_test(ty, test_types_float_double);
    tcase_add_test(ty, test_types_date_time);
    tcase_add_test(ty, test_types_bool_enum_set);
    tcase_add_test(ty, test_types_strings_json);
    tcase_add_test(ty, test_types_binary_as_hex);
    tcase_add_test(ty, test_types_null_and_empty);
    tcase_add_test(ty, test_unicode_utf8mb4_exact);
    tcase_add_test(ty, test_value_10mb_round_trip);
    tcase_add_test(ty, test_long_values_whole);
    tcase_add_test(ty, test_column_names_and_shape);
    tcase_add_test(ty, test_many_rows_both_paths);

    tcase_add_test(tp, test_qmark_in_literals_and_comments);
    tcase_add_test(tp, test_qmark_escapes_and_minus_minus);
    tcase_add_test(tp, test_qmark_in_executable_comments);
    tcase_add_test(tp, test_qmark_in_skipped_versioned_comment);
    tcase_add_test(tp, test_param_count_mismatch);
    tcase_add_test(tp, test_null_param_binds_null);
    tcase_add_test(tp, test_injection_strings_are_data);

    tcase_add_test(te, test_affected_insert_three);
    tcase_add_test(te, test_affected_update_counts_matched);
    tcase_add_test(te, test_exec_script_sums_statements);
    tcase_add_test(te, test_exec_script_stops_at_error);
    tcase_add_test(te, test_exec_params_two_statements_refused);
    tcase_add_test(te, test_query_two_statements_refused);
    tcase_add_test(te, test_query_trailing_comment_after_semicolon);
    tcase_add_test(te, test_call_procedure_result);

    tcase_add_test(tr, test_error_syntax_both_paths);
    tcase_add_test(tr, test_error_duplicate_key_both_paths);
    tcase_add_test(tr, test_error_after_some_rows);

    tcase_add_test(tc, test_connect_wrong_password);
    tcase_add_test(tc, test_connect_refused_port);
    tcase_add_test(tc, test_connect_unknown_host_explained);
    tcase_add_test(tc, test_connect_handshake_timeout_explained);
    tcase_add_test(tc, test_connect_unknown_database);
    tcase_add_test(tc, test_charset_default_utf8mb4);
    tcase_add_test(tc, test_charset_latin1);
    tcase_add_test(tc, test_read_timeout_breaks_and_is_not_reused);
    tcase_add_test(tc, test_compress);
    tcase_add_test(tc, test_use_ssl_never_falls_back);

    tcase_add_test(tt, test_tx_begin_commit_rollback);
    tcase_add_test(tt, test_tx_state_from_server_flags);
    tcase_add_test(tt, test_pool_return_rolls_back);

    tcase_add_test(tl, test_reset_on_release_true);
    tcase_add_test(tl, test_reset_on_release_false);
    tcase_add_test(tl, test_reset_keeps_character_set);
    tcase_add_test(tl, test_kill_gives_broken_no_reconnect);
    tcase_add_test(tl, test_kill_plain_connection_broken);
    tcase_add_test(tl, test_killed_idle_pooled_is_replaced);
    tcase_add_test(tl, test_threads_pool_limit);

    tcase_add_test(ts, test_stmt_round_trip_every_type);
    tcase_add_test(ts, test_stmt_echo_types);
    tcase_add_test(ts, test_stmt_value_lengths);
    tcase_add_test(ts, test_stmt_floats_in_a_comma_locale);
    tcase_add_test(ts, test_stmt_types_by_column);
    tcase_add_test(ts, test_stmt_cached_one_round_trip);
    tcase_add_test(ts, test_stmt_stale_prepared_again);
    tcase_add_test(ts, test_stmt_lost_connection_is_broken);
    tcase_add_test(ts, test_stmt_schema_change);
    tcase_add_test(ts, test_stmt_reset_on_release);
    tcase_add_test(ts, test_stmt_forked_child_says_nothing);
    tcase_add_test(ts, test_stmt_cache_under_the_pool);
    return tu_run(s);
}
