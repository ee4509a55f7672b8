/*
 * db.c - the subcommands that talk to databases: test (open, trivial
 * query, close) and exec (one statement, its rows as tab-separated text).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_test(struct cli *c)
{
    char **names = NULL;
    cdm_manager *m;
    int ret = EXIT_DONE, rc;

    if (!(m = cli_manager(c)))
        return EXIT_FAILED;
    if (c->argc == 0 && (rc = cdm_manager_def_names(m, &names, NULL)) != CDM_OK) {
        cdm_manager_free(m);
        return cli_fail_status(rc);
    }
    for (int i = 0; names ? names[i] != NULL : i < c->argc; i++) {
        const char *name = names ? names[i] : c->argv[i];
        const char *driver = NULL;
        int64_t ms = 0;
        /* The library tests without side effects: no pool, no new file. */
        rc = cdm_manager_test_def(m, name, &driver, &ms);
        if (rc == CDM_OK) {
            printf("ok %s (%s, %" PRId64 " ms)\n", name, driver, ms);
        } else {
            const char *msg = cdm_errmsg();
            printf("fail %s: ", name);
            cli_put_line(stdout, msg && *msg ? msg : cdm_strerror(rc));
            putchar('\n');
            ret = EXIT_FAILED;
        }
        fflush(stdout);
    }
    cdm_strv_free(names);
    cdm_manager_free(m);
    return ret;
}

/* A value in PostgreSQL's COPY text format: \N for NULL (printed by the
 * caller), and the characters that would break a line or a column
 * escaped, so that each row is one line of tab-separated fields. */
static void put_field(const char *v)
{
    for (; *v; v++)
        switch (*v) {
        case '\\': fputs("\\\\", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        default: putchar(*v);
        }
}

int cmd_exec(struct cli *c)
{
    const char *name = c->argv[0], *sql = c->argv[1];
    size_t nparams = (size_t)c->argc - 2;
    const char **params = (const char **)c->argv + 2;
    cdm_result *r = NULL;
    cdm_manager *m;
    cdm_conn *conn = NULL;
    int rc;

    /* "\N" binds NULL, the same spelling the output uses. */
    for (size_t i = 0; i < nparams; i++)
        if (strcmp(params[i], "\\N") == 0)
            params[i] = NULL;
    if (!(m = cli_manager(c)))
        return EXIT_FAILED;
    rc = cdm_connect(m, name, &conn);
    if (rc == CDM_OK)
        rc = cdm_query(conn, sql, params, nparams, &r);
    if (rc != CDM_OK) {
        cli_fail_status(rc);
    } else if (cdm_result_ncols(r) > 0) {
        size_t ncols = cdm_result_ncols(r), nrows = cdm_result_nrows(r);
        for (size_t j = 0; j < ncols; j++) {
            if (j)
                putchar('\t');
            put_field(cdm_result_colname(r, j));
        }
        putchar('\n');
        for (size_t i = 0; i < nrows; i++) {
            for (size_t j = 0; j < ncols; j++) {
                const char *v = cdm_result_value(r, i, j);
                if (j)
                    putchar('\t');
                if (v)
                    put_field(v);
                else
                    fputs("\\N", stdout);
            }
            putchar('\n');
        }
    }
    cdm_result_free(r);
    cdm_disconnect(conn);
    cdm_manager_free(m);
    return rc == CDM_OK ? EXIT_DONE : EXIT_FAILED;
}
