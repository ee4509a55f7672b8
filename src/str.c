/*
 * str.c - small string helpers: copies, case-insensitive comparison and
 * hashing, edit distance for "did you mean", a growable buffer, and
 * numbers as text in the C locale.
 */
#include "cdm_int.h"

#include <ctype.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

char *cdm__strdup(const char *s)
{
    return s ? cdm__strndup(s, strlen(s)) : NULL;
}

char *cdm__strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *cdm__asprintf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !(p = malloc((size_t)n + 1)))
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

bool cdm__streq_nocase(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

size_t cdm__distance(const char *a, const char *b, size_t limit)
{
    /* Levenshtein over two rows, without regard to case; keys are short
     * (bounded by 64 here).  Only whether it is within `limit` matters,
     * so lengths further apart than that, or a row all past it, end the
     * count early: most candidates cost a strlen. */
    size_t la = strlen(a), lb = strlen(b), row[65], prev, i, j;
    unsigned char lo[64];

    if (la > 64 || lb > 64 || (la > lb ? la - lb : lb - la) > limit)
        return limit + 1;
    for (j = 0; j < lb; j++)
        lo[j] = (unsigned char)tolower((unsigned char)b[j]);
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t least;
        int ca = tolower((unsigned char)a[i - 1]);
        prev = row[0];
        row[0] = least = i;
        for (j = 1; j <= lb; j++) {
            size_t best = prev + (ca != lo[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            prev = row[j];
            row[j] = best;
            if (best < least)
                least = best;
        }
        if (least > limit)
            return limit + 1;
    }
    return row[lb] > limit ? limit + 1 : row[lb];
}

uint64_t cdm__nocase_hash(const char *s)
{
    /* FNV-1a over the lowercase bytes. */
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s; s++) {
        h ^= (unsigned char)tolower((unsigned char)*s);
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The blanks iniparser strips (isspace in the C locale). */
static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
           c == '\f';
}

void cdm__trim(const char **s, size_t *n)
{
    while (*n && blank(**s)) {
        (*s)++;
        (*n)--;
    }
    cdm__rtrim(*s, n);
}

void cdm__rtrim(const char *s, size_t *n)
{
    while (*n && blank(s[*n - 1]))
        (*n)--;
}

void cdm__buf_add(struct cdm_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (!(p = realloc(b->s, cap))) {
            b->failed = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    if (n)  /* s may be NULL when there is nothing to add */
        memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void cdm__buf_adds(struct cdm_buf *b, const char *s)
{
    cdm__buf_add(b, s, strlen(s));
}

void cdm__buf_addf(struct cdm_buf *b, const char *fmt, ...)
{
    char small[256], *p = small;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n >= sizeof small) {
        if (!(p = malloc((size_t)n + 1))) {
            b->failed = true;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    cdm__buf_add(b, p, (size_t)n);
    if (p != small)
        free(p);
}

void cdm__buf_free(struct cdm_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

char *cdm__buf_take(struct cdm_buf *b)
{
    char *s = b->failed ? NULL : b->s;

    if (b->failed)
        free(b->s);
    else if (!s)
        s = cdm__strdup("");
    memset(b, 0, sizeof *b);
    return s;
}

void cdm_free(void *p)
{
    free(p);
}

void cdm_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* ------------------------------------------------------- printable text */

size_t cdm__utf8_len(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len;
    uint32_t c;

    if (n == 0)
        return 0;
    if (u[0] < 0x80)
        return 1;
    if (u[0] >= 0xc2 && u[0] <= 0xdf)
        len = 2, c = u[0] & 0x1f;
    else if (u[0] >= 0xe0 && u[0] <= 0xef)
        len = 3, c = u[0] & 0x0f;
    else if (u[0] >= 0xf0 && u[0] <= 0xf4)
        len = 4, c = u[0] & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (u[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and beyond U+10FFFF. */
    if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
        (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
        return 0;
    return len;
}

size_t cdm__text_bad(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len;
        if (c < 0x20 || c == 0x7f)
            return i;
        if (!(len = cdm__utf8_len(s + i, n - i)))
            return i;
        i += len;
    }
    return n;
}

void cdm__oneline(char *dst, size_t cap, const char *src)
{
    size_t o = 0, n = strlen(src), i = 0;

    while (i < n) {
        unsigned char c = (unsigned char)src[i];
        char esc[5];
        const char *piece = esc;
        size_t len = 1, plen;

        if (c == '\n' || c == '\r') {
            /* The break and the blanks on both sides: "; " between two
             * pieces of text, nothing at the end. */
            while (o > 0 && dst[o - 1] == ' ')
                o--;
            while (i < n && strchr("\r\n\t ", src[i]))
                i++;
            if (i == n || o == 0)
                continue;
            /* After a ':' or ';' a blank is enough. */
            if (dst[o - 1] == ':' || dst[o - 1] == ';')
                piece = " ", plen = 1, len = 0;
            else
                piece = "; ", plen = 2, len = 0;
        } else if (c == '\t') {
            piece = " ", plen = 1;
        } else if (c < 0x20 || c == 0x7f ||
                   !(len = cdm__utf8_len(src + i, n - i))) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            plen = 4, len = 1;
        } else {
            piece = src + i, plen = len;
        }
        if (o + plen >= cap)
            break;
        memcpy(dst + o, piece, plen);
        o += plen;
        i += len;
    }
    dst[o] = '\0';
}

/* ------------------------------------------- numbers in the C locale */

/* SQL and the servers' text write numbers with a decimal point; the
 * program's LC_NUMERIC may say comma.  These switch this thread to the C
 * locale for the one call (uselocale), so that nothing the program or its
 * other threads set changes. */
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;
static locale_t c_numeric;

static void make_c_numeric(void)
{
    c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* The thread's locale before, for leave_c; 0 if it could not switch. */
static locale_t enter_c(void)
{
    pthread_once(&c_numeric_once, make_c_numeric);
    return c_numeric ? uselocale(c_numeric) : (locale_t)0;
}

static void leave_c(locale_t before)
{
    if (before)
        uselocale(before);
}

int cdm__fmt_double(char *buf, size_t size, int prec, double d)
{
    locale_t before = enter_c();
    int n = snprintf(buf, size, "%.*g", prec, d);

    leave_c(before);
    return n;
}

double cdm__strtod(const char *s, char **end)
{
    locale_t before = enter_c();
    double d = strtod(s, end);

    leave_c(before);
    return d;
}

float cdm__strtof(const char *s, char **end)
{
    locale_t before = enter_c();
    float f = strtof(s, end);

    leave_c(before);
    return f;
}
