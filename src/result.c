/*
 * result.c - fully buffered query results.  Each value keeps its type
 * (NULL, INT, FLOAT, TEXT, BLOB) and its bytes as the database gave them:
 * text for the text types and numbers, raw bytes for a BLOB, whose text
 * form ("\x" and hex) is made only when asked for.
 */
#include "cdm_int.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Column names and values shorter than SMALL are copied into blocks the
 * result owns, the first inside the result's own allocation, instead of
 * one allocation each: a one-row answer is two allocations in all. */
#define SMALL 64
#define FIRST_BLOCK 256
#define BLOCK 4096
/* Rows of cells made room for at first, unless the driver says. */
#define FIRST_ROWS 8

struct cell {
    char *p;          /* the bytes (NUL after them); NULL: SQL NULL */
    char *hex;        /* a BLOB's text form, made on first request */
    size_t len;
    unsigned char type;   /* CDM_TYPE_* */
    bool has_num;     /* num holds the value (typed drivers) */
    bool heap;        /* p is an allocation of its own (else in a block) */
    union {
        int64_t i;
        double d;
    } num;
};

/* Blocks' data, and every copy in them, start at this alignment. */
#define ALIGN _Alignof(max_align_t)

struct block {
    union {
        struct block *next;
        max_align_t align;
    } h;
    char data[];
};

struct cdm_result {
    size_t nrows, ncols;
    size_t cap_rows;
    char **colnames;  /* ncols, right after this struct */
    struct cell *cells;   /* row-major, cap_rows * ncols */
    struct block *blocks; /* further blocks, newest first */
    char *room;       /* free space in the current block */
    size_t room_left;
};

int cdm__result_new(size_t ncols, cdm_result **out)
{
    size_t head = sizeof(cdm_result) + ncols * sizeof(char *);
    cdm_result *r;

    if (ncols > (SIZE_MAX - sizeof(cdm_result) - FIRST_BLOCK) / sizeof(char *) ||
        !(r = malloc(head + FIRST_BLOCK)))
        return cdm__nomem();
    memset(r, 0, head);
    r->ncols = ncols;
    r->colnames = (char **)(r + 1);
    r->room = (char *)r + head;
    r->room_left = FIRST_BLOCK;
    *out = r;
    return CDM_OK;
}

/* A copy of [v, v + n) and a NUL in the result's blocks, aligned as
 * malloc would align it (a caller may read a BLOB as a struct). */
static char *copy_in(cdm_result *r, const void *v, size_t n)
{
    size_t need = n + 1, pad = -(uintptr_t)r->room & (ALIGN - 1);
    char *p;

    if (n > SIZE_MAX - ALIGN)
        return NULL;
    need = (need + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (pad > r->room_left || need > r->room_left - pad) {
        size_t size = need > BLOCK ? need : BLOCK;
        struct block *b;
        if (size > SIZE_MAX - sizeof *b || !(b = malloc(sizeof *b + size)))
            return NULL;
        b->h.next = r->blocks;
        r->blocks = b;
        r->room = b->data;
        r->room_left = size;
        pad = 0;
    }
    p = r->room + pad;
    r->room_left -= pad;
    r->room = p + need;
    r->room_left -= need;
    if (n)
        memcpy(p, v, n);
    p[n] = '\0';
    return p;
}

int cdm__result_set_colname(cdm_result *r, size_t col, const char *name)
{
    char *p = copy_in(r, name ? name : "", name ? strlen(name) : 0);

    if (!p)
        return cdm__nomem();
    r->colnames[col] = p;
    return CDM_OK;
}

int cdm__result_reserve(cdm_result *r, size_t nrows)
{
    struct cell *p;

    if (nrows <= r->cap_rows)
        return CDM_OK;
    if (r->ncols && nrows > SIZE_MAX / r->ncols / sizeof *p)
        return cdm__nomem();
    p = realloc(r->cells, nrows * (r->ncols ? r->ncols : 1) * sizeof *p);
    if (!p)
        return cdm__nomem();
    r->cells = p;
    r->cap_rows = nrows;
    return CDM_OK;
}

int cdm__result_add_row(cdm_result *r)
{
    int rc;

    if (r->nrows == r->cap_rows &&
        (rc = cdm__result_reserve(r, r->cap_rows ? r->cap_rows * 2
                                                 : FIRST_ROWS)) != CDM_OK)
        return rc;
    memset(r->cells + r->nrows * r->ncols, 0, r->ncols * sizeof *r->cells);
    r->nrows++;
    return CDM_OK;
}

static struct cell *last(cdm_result *r, size_t col)
{
    struct cell *c = &r->cells[(r->nrows - 1) * r->ncols + col];

    if (c->heap)
        free(c->p);
    free(c->hex);
    memset(c, 0, sizeof *c);
    return c;
}

int cdm__result_set_typed(cdm_result *r, size_t col, int type, const void *v,
                          size_t n)
{
    struct cell *c = last(r, col);

    if (!v)
        return CDM_OK;
    if (n < SMALL) {
        if (!(c->p = copy_in(r, v, n)))
            return cdm__nomem();
    } else {
        if (n == SIZE_MAX || !(c->p = malloc(n + 1)))
            return cdm__nomem();
        memcpy(c->p, v, n);
        c->p[n] = '\0';
        c->heap = true;
    }
    c->len = n;
    c->type = (unsigned char)type;
    return CDM_OK;
}

int cdm__result_set(cdm_result *r, size_t col, const char *v, size_t n)
{
    return cdm__result_set_typed(r, col, CDM_TYPE_TEXT, v, n);
}

int cdm__result_set_binary(cdm_result *r, size_t col, const void *v, size_t n)
{
    /* An empty BLOB is not NULL. */
    return cdm__result_set_typed(r, col, CDM_TYPE_BLOB, v ? v : "", n);
}

int cdm__result_set_int(cdm_result *r, size_t col, int64_t v, const char *text,
                        size_t n)
{
    char buf[24];
    int rc;

    if (!text) {
        n = (size_t)snprintf(buf, sizeof buf, "%lld", (long long)v);
        text = buf;
    }
    if ((rc = cdm__result_set_typed(r, col, CDM_TYPE_INT, text, n)) == CDM_OK) {
        struct cell *c = &r->cells[(r->nrows - 1) * r->ncols + col];
        c->has_num = true;
        c->num.i = v;
    }
    return rc;
}

int cdm__result_set_double(cdm_result *r, size_t col, double v,
                           const char *text, size_t n)
{
    char buf[32];
    int rc;

    if (!text) {
        n = (size_t)cdm__fmt_double(buf, sizeof buf, 17, v);
        text = buf;
    }
    if ((rc = cdm__result_set_typed(r, col, CDM_TYPE_FLOAT, text, n)) ==
        CDM_OK) {
        struct cell *c = &r->cells[(r->nrows - 1) * r->ncols + col];
        c->has_num = true;
        c->num.d = v;
    }
    return rc;
}

void cdm__result_set_binary_owned(cdm_result *r, size_t col, char *v,
                                  size_t n)
{
    struct cell *c = last(r, col);

    c->p = v;
    c->heap = true;
    c->len = n;
    c->type = CDM_TYPE_BLOB;
}

void cdm__result_set_owned(cdm_result *r, size_t col, char *v)
{
    struct cell *c = last(r, col);

    if (v) {
        c->p = v;
        c->heap = true;
        c->len = strlen(v);
        c->type = CDM_TYPE_TEXT;
    }
}

size_t cdm_result_nrows(const cdm_result *r)
{
    return r ? r->nrows : 0;
}

size_t cdm_result_ncols(const cdm_result *r)
{
    return r ? r->ncols : 0;
}

const char *cdm_result_colname(const cdm_result *r, size_t col)
{
    return r && col < r->ncols ? r->colnames[col] : NULL;
}

static struct cell *cell_at(const cdm_result *r, size_t row, size_t col)
{
    if (!r || row >= r->nrows || col >= r->ncols)
        return NULL;
    return &r->cells[row * r->ncols + col];
}

const char *cdm_result_value(const cdm_result *r, size_t row, size_t col)
{
    static const char hex[] = "0123456789abcdef";
    struct cell *c = cell_at(r, row, col);
    const unsigned char *b;
    char *p;

    if (!c || !c->p)
        return NULL;
    if (c->type != CDM_TYPE_BLOB)
        return c->p;
    if (c->hex)
        return c->hex;
    /* The text form of a BLOB, made once: the result belongs to one
     * thread at a time, like its connection. */
    if (c->len > (SIZE_MAX - 3) / 2 || !(p = malloc(2 * c->len + 3)))
        return NULL;
    b = (const unsigned char *)c->p;
    p[0] = '\\';
    p[1] = 'x';
    for (size_t i = 0; i < c->len; i++) {
        p[2 + 2 * i] = hex[b[i] >> 4];
        p[3 + 2 * i] = hex[b[i] & 15];
    }
    p[2 + 2 * c->len] = '\0';
    c->hex = p;
    return p;
}

int cdm_result_type(const cdm_result *r, size_t row, size_t col)
{
    const struct cell *c = cell_at(r, row, col);

    return c && c->p ? c->type : CDM_TYPE_NULL;
}

size_t cdm_result_length(const cdm_result *r, size_t row, size_t col)
{
    const struct cell *c = cell_at(r, row, col);

    return c && c->p ? c->len : 0;
}

const void *cdm_result_blob(const cdm_result *r, size_t row, size_t col,
                            size_t *len)
{
    const struct cell *c = cell_at(r, row, col);

    if (len)
        *len = c && c->p ? c->len : 0;
    return c ? c->p : NULL;
}

static int no_value(const cdm_result *r, size_t row, size_t col,
                    const char *what)
{
    if (!cell_at(r, row, col))
        return cdm__fail(CDM_ERR_INVALID, "%s: row %zu, column %zu is out of "
                         "range (%zu rows, %zu columns)", what, row, col,
                         cdm_result_nrows(r), cdm_result_ncols(r));
    return cdm__fail(CDM_ERR_INVALID, "%s: row %zu, column %zu is NULL",
                     what, row, col);
}

int cdm_result_int64(const cdm_result *r, size_t row, size_t col,
                     int64_t *out)
{
    const struct cell *c = cell_at(r, row, col);
    long long v;
    char *end;

    if (!out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_result_int64: out is NULL");
    if (!c || !c->p)
        return no_value(r, row, col, "cdm_result_int64");
    if (c->has_num && c->type == CDM_TYPE_INT) {
        *out = c->num.i;
        return CDM_OK;
    }
    if (c->has_num && c->type == CDM_TYPE_FLOAT) {
        double d = c->num.d;
        /* A whole number in range only; 2^63 itself is out. */
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
            (double)(int64_t)d == d) {
            *out = (int64_t)d;
            return CDM_OK;
        }
    } else if (c->type != CDM_TYPE_BLOB && c->len > 0 &&
               strlen(c->p) == c->len) {
        errno = 0;
        v = strtoll(c->p, &end, 10);
        if (errno == 0 && *end == '\0' && end != c->p) {
            *out = v;
            return CDM_OK;
        }
    }
    return cdm__fail(CDM_ERR_INVALID, "cdm_result_int64: row %zu, column "
                     "%zu is not a whole number in range", row, col);
}

int cdm_result_double(const cdm_result *r, size_t row, size_t col,
                      double *out)
{
    const struct cell *c = cell_at(r, row, col);
    double v;
    char *end;

    if (!out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_result_double: out is NULL");
    if (!c || !c->p)
        return no_value(r, row, col, "cdm_result_double");
    if (c->has_num) {
        *out = c->type == CDM_TYPE_INT ? (double)c->num.i : c->num.d;
        return CDM_OK;
    }
    /* strtod also reads PostgreSQL's Infinity and NaN. */
    if (c->type != CDM_TYPE_BLOB && c->len > 0 && strlen(c->p) == c->len) {
        v = cdm__strtod(c->p, &end);
        if (*end == '\0' && end != c->p) {
            *out = v;
            return CDM_OK;
        }
    }
    return cdm__fail(CDM_ERR_INVALID, "cdm_result_double: row %zu, column "
                     "%zu is not a number", row, col);
}

void cdm_result_free(cdm_result *r)
{
    struct block *b, *next;

    if (!r)
        return;
    for (size_t i = 0; i < r->nrows * r->ncols; i++) {
        if (r->cells[i].heap)
            free(r->cells[i].p);
        free(r->cells[i].hex);
    }
    for (b = r->blocks; b; b = next) {
        next = b->h.next;
        free(b);
    }
    free(r->cells);
    free(r);
}
