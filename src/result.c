/*
 * result.c - fully buffered query results, every value as text.
 */
#include "cdm_int.h"

#include <stdlib.h>
#include <string.h>

struct cdm_result {
    size_t nrows, ncols;
    size_t cap_rows;
    char **colnames;  /* ncols */
    char **cells;     /* row-major, cap_rows * ncols; NULL is SQL NULL */
};

int cdm__result_new(size_t ncols, cdm_result **out)
{
    cdm_result *r = calloc(1, sizeof *r);

    if (!r || (ncols && !(r->colnames = calloc(ncols, sizeof *r->colnames)))) {
        free(r);
        return cdm__nomem();
    }
    r->ncols = ncols;
    *out = r;
    return CDM_OK;
}

int cdm__result_set_colname(cdm_result *r, size_t col, const char *name)
{
    char *p = cdm__strdup(name ? name : "");

    if (!p)
        return cdm__nomem();
    free(r->colnames[col]);
    r->colnames[col] = p;
    return CDM_OK;
}

int cdm__result_add_row(cdm_result *r)
{
    if (r->nrows == r->cap_rows) {
        size_t cap = r->cap_rows ? r->cap_rows * 2 : 16;
        char **p;
        if (r->ncols && cap > SIZE_MAX / r->ncols / sizeof *p)
            return cdm__nomem();
        p = realloc(r->cells, cap * (r->ncols ? r->ncols : 1) * sizeof *p);
        if (!p)
            return cdm__nomem();
        r->cells = p;
        r->cap_rows = cap;
    }
    memset(r->cells + r->nrows * r->ncols, 0, r->ncols * sizeof *r->cells);
    r->nrows++;
    return CDM_OK;
}

int cdm__result_set(cdm_result *r, size_t col, const char *v, size_t n)
{
    char *p = NULL;

    if (v && !(p = cdm__strndup(v, n)))
        return cdm__nomem();
    cdm__result_set_owned(r, col, p);
    return CDM_OK;
}

int cdm__result_set_binary(cdm_result *r, size_t col, const void *v, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b = v;
    char *p;

    if (n > (SIZE_MAX - 3) / 2 || !(p = malloc(2 * n + 3)))
        return cdm__nomem();
    p[0] = '\\';
    p[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        p[2 + 2 * i] = hex[b[i] >> 4];
        p[3 + 2 * i] = hex[b[i] & 15];
    }
    p[2 + 2 * n] = '\0';
    cdm__result_set_owned(r, col, p);
    return CDM_OK;
}

void cdm__result_set_owned(cdm_result *r, size_t col, char *v)
{
    char **cell = &r->cells[(r->nrows - 1) * r->ncols + col];

    free(*cell);
    *cell = v;
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

const char *cdm_result_value(const cdm_result *r, size_t row, size_t col)
{
    if (!r || row >= r->nrows || col >= r->ncols)
        return NULL;
    return r->cells[row * r->ncols + col];
}

void cdm_result_free(cdm_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nrows * r->ncols; i++)
        free(r->cells[i]);
    for (size_t i = 0; i < r->ncols; i++)
        free(r->colnames[i]);
    free(r->cells);
    free(r->colnames);
    free(r);
}
