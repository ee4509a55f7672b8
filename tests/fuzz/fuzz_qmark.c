/*
 * fuzz_qmark.c - libFuzzer target for the `?` scanner (src/sqlscan.c):
 * any bytes as SQL, counted, rewritten to $n and split into statements,
 * with the relations between those answers checked.
 *
 * The first byte picks the dialect: even is PostgreSQL (what pg.c does:
 * rewrite, then split a script), odd is MySQL/SQLite (count only); 'p'
 * and 'm' are the readable choices in the seed files.  The rest, up to
 * its first NUL (the scanner reads C strings), is the SQL.
 */
#include "cdm_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stops the run, with what broke, for libFuzzer to keep the input. */
#define require(cond)                                                      \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "fuzz_qmark: %s:%d: %s\n", __FILE__, __LINE__, \
                    #cond);                                                \
            abort();                                                       \
        }                                                                  \
    } while (0)

static size_t digits(size_t n)
{
    size_t d = 1;

    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == c;
    return n;
}

/* The statements cdm__sql_statement_end cuts `sql` into, as pg.c walks a
 * script; every end lies ahead of its start and inside the text. */
static size_t statements(const char *sql, enum cdm_sql_dialect d)
{
    const char *p = sql, *stop = sql + strlen(sql);
    size_t n = 0;

    while (*p) {
        const char *end = cdm__sql_statement_end(sql, p, d);
        require(end >= p && end <= stop);
        require(*end == ';' || *end == '\0');
        n++;
        p = *end ? end + 1 : end;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum cdm_sql_dialect d;
    char *sql, *out = NULL;
    size_t len, n, n2, grown = 0;
    bool multi, multi2;
    const char *at;

    if (size == 0)
        return 0;
    d = data[0] % 2 ? CDM_SQL_MYSQL : CDM_SQL_PG;
    if (!(sql = malloc(size)))
        return 0;
    memcpy(sql, data + 1, size - 1);
    sql[size - 1] = '\0';
    len = strlen(sql);

    /* Counting alone and counting while rewriting agree. */
    require(cdm__sql_scan(sql, d, false, NULL, &n, &multi) == CDM_OK);
    require(cdm__sql_scan(sql, d, true, &out, &n2, &multi2) == CDM_OK);
    require(n2 == n && multi2 == multi);

    /* Rewriting turns each placeholder '?' into "$i" and each "??" into
     * '?', and copies every other byte: so the output grows by at most
     * the digits of 1..n, and each byte it is short of that bound is one
     * "??" made '?', which also took one '?' away. */
    for (size_t i = 1; i <= n; i++)
        grown += digits(i);
    {
        size_t olen = strlen(out), pairs;
        require(olen <= len + grown);
        pairs = len + grown - olen;
        require(count_char(out, '?') + n + pairs == count_char(sql, '?'));
    }
    /* ... and the numbers come in order, $1 first. */
    at = out;
    for (size_t i = 1; i <= n; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "$%zu", i);
        require((at = strstr(at, tag)) != NULL);
        at += strlen(tag);
    }

    /* A second statement is one the statement cutter sees too. */
    if (multi)
        require(statements(sql, d) >= 2);

    /* pg.c splits the rewritten text when there are no parameters: it
     * must cut where the SQL as written would be cut. */
    if (d == CDM_SQL_PG && n == 0) {
        size_t m;
        require(cdm__sql_scan(out, d, false, NULL, &m, &multi2) == CDM_OK);
        require(multi2 == multi);
        require(statements(out, d) == statements(sql, d));
    }
    free(out);
    free(sql);
    return 0;
}
