/*
 * sqlscan.c - finds `?` placeholders and statement separators in SQL text,
 * skipping string literals, quoted identifiers, comments and (PostgreSQL)
 * dollar-quoted strings, so that a `?` or `;` inside them is left alone.
 * MySQL's executable comments are not skipped: the server runs their text.
 */
#include "cdm_int.h"

#include <stdlib.h>
#include <string.h>

static bool ident_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

/* Length of a PostgreSQL dollar-quote opener at p ("$$" or "$tag$"), or
 * 0 if p does not start one. */
static size_t dollar_tag(const char *sql, const char *p)
{
    const char *q = p + 1;

    if (p > sql && ident_char((unsigned char)p[-1]))
        return 0;   /* inside an identifier such as a$b */
    if (*q == '$')
        return 2;
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '_' ||
          (unsigned char)*q >= 0x80))
        return 0;   /* $1 is a parameter, not a quote */
    while (ident_char((unsigned char)*q) && *q != '$')
        q++;
    return *q == '$' ? (size_t)(q - p + 1) : 0;
}

/* Where a scan stands.  `exec` is set between the opener of a MySQL
 * executable comment and its closing star-slash: the text in between is
 * SQL, so the closer has to be known as such when it comes. */
struct scan {
    const char *sql;            /* the whole text, to look behind p */
    enum cdm_sql_dialect d;
    bool exec;
};

/* Length of a MySQL executable comment's opener at p: slash-star-bang or
 * MariaDB's slash-star-M-bang, then the version (5 or 6 digits) if any;
 * 0 if p does not start one.  The server runs the text inside unless the
 * version is above its own (MariaDB also skips MySQL's 50700 to 99999);
 * Oracle's MySQL ignores the M form.  The scan cannot know the server,
 * so it counts the `?` of every one. */
static size_t exec_opener(const char *p)
{
    size_t n, i;

    if (p[0] != '/' || p[1] != '*')
        return 0;
    if (p[2] == '!')
        n = 3;
    else if (p[2] == 'M' && p[3] == '!')
        n = 4;
    else
        return 0;
    /* A version is 5 digits, or 6; fewer are part of the SQL. */
    for (i = 0; i < 6 && p[n + i] >= '0' && p[n + i] <= '9'; i++)
        continue;
    return i >= 5 ? n + i : n;
}

/* Skips a literal, identifier or comment starting at p; returns the
 * position after it, or p if nothing starts there.  Unterminated ones run
 * to the end: the server reports the error.  The opener and closer of a
 * MySQL executable comment are skipped too, and move s->exec. */
static const char *skip(struct scan *s, const char *p)
{
    const char *sql = s->sql;
    enum cdm_sql_dialect d = s->d;
    char c = *p;

    if (d == CDM_SQL_MYSQL) {
        size_t n;
        if (s->exec && c == '*' && p[1] == '/') {
            s->exec = false;
            return p + 2;
        }
        /* Within one, another opener starts an ordinary comment, as on
         * the server: its closer ends it, the outer one goes on. */
        if (!s->exec && (n = exec_opener(p))) {
            s->exec = true;
            return p + n;
        }
    }
    if (c == '-' && p[1] == '-' &&
        (d == CDM_SQL_PG || blank(p[2]) || p[2] == '\0')) {
        while (*p && *p != '\n')
            p++;
        return p;
    }
    if (c == '#' && d == CDM_SQL_MYSQL) {
        while (*p && *p != '\n')
            p++;
        return p;
    }
    if (c == '/' && p[1] == '*') {
        int depth = 1;
        p += 2;
        while (*p && depth) {
            if (d == CDM_SQL_PG && p[0] == '/' && p[1] == '*') {
                depth++;   /* PostgreSQL comments nest */
                p += 2;
            } else if (p[0] == '*' && p[1] == '/') {
                depth--;
                p += 2;
            } else {
                p++;
            }
        }
        return p;
    }
    if (c == '\'' || c == '"' || (c == '`' && d == CDM_SQL_MYSQL)) {
        /* PostgreSQL: backslash escapes only in E'...'; MySQL: in both
         * string kinds (unless NO_BACKSLASH_ESCAPES, not supported). */
        bool backslash = d == CDM_SQL_MYSQL ? c != '`' :
                         c == '\'' && p > sql && (p[-1] == 'E' || p[-1] == 'e') &&
                         (p - 1 == sql || !ident_char((unsigned char)p[-2]));
        p++;
        while (*p) {
            if (backslash && *p == '\\' && p[1]) {
                p += 2;
            } else if (*p == c) {
                if (p[1] == c) {
                    p += 2;   /* doubled quote */
                } else {
                    return p + 1;
                }
            } else {
                p++;
            }
        }
        return p;
    }
    if (c == '$' && d == CDM_SQL_PG) {
        size_t n = dollar_tag(sql, p);
        const char *end;
        if (!n)
            return p;
        for (end = p + n; *end; end++)
            if (*end == '$' && strncmp(end, p, n) == 0)
                return end + n;
        return end;
    }
    return p;
}

/* True if nothing but blanks, comments and semicolons follows r.  The
 * scan state is a copy: looking ahead moves nothing. */
/* After a ';': skips blanks, semicolons and comments, `s` following
 * along, and returns where that stops: the end of the text, or the start
 * of another statement (an executable comment's opener is skipped, and
 * what it holds counts). */
static const char *past_comments(struct scan *s, const char *r)
{
    for (;;) {
        struct scan t = *s;
        const char *q;
        while (blank(*r) || *r == ';')
            r++;
        q = skip(&t, r);
        /* A literal or identifier is a statement. */
        if (q == r || (*r != '-' && *r != '/' && *r != '#' && *r != '*'))
            break;
        *s = t;
        r = q;
    }
    return r;
}

int cdm__sql_scan(const char *sql, enum cdm_sql_dialect d, bool rewrite,
                  char **out, size_t *nparams, bool *multi)
{
    struct cdm_buf b = { 0 };
    struct scan s = { sql, d, false };
    const char *p = sql, *copied = sql;
    size_t n = 0;

    *multi = false;
    while (*p) {
        const char *q = skip(&s, p);
        if (q != p) {
            p = q;
            continue;
        }
        if (*p == '?') {
            if (p[1] == '?') {
                /* "??" is a literal '?' (PostgreSQL's jsonb operators). */
                if (rewrite) {
                    cdm__buf_add(&b, copied, (size_t)(p - copied + 1));
                    copied = p + 2;
                }
                p += 2;
                continue;
            }
            n++;
            if (rewrite) {
                cdm__buf_add(&b, copied, (size_t)(p - copied));
                cdm__buf_addf(&b, "$%zu", n);
                copied = p + 1;
            }
        } else if (*p == ';') {
            /* A second statement if anything but blanks, comments and
             * semicolons follows.  What was looked over holds no '?' and
             * would only be looked over again from each of its ';':
             * going on after it keeps the scan linear (a run of n
             * semicolons took n^2 / 2 steps; 100 KB of them, 5 s). */
            p = past_comments(&s, p + 1);
            if (*p)
                *multi = true;
            continue;
        }
        p++;
    }
    if (rewrite) {
        cdm__buf_adds(&b, copied);
        if (!(*out = cdm__buf_take(&b)))
            return cdm__nomem();
    }
    *nparams = n;
    return CDM_OK;
}

const char *cdm__sql_statement_end(const char *sql, const char *from,
                                   enum cdm_sql_dialect d)
{
    struct scan s = { sql, d, false };
    const char *p = from;

    while (*p && *p != ';') {
        const char *q = skip(&s, p);
        p = q != p ? q : p + 1;
    }
    return p;
}
