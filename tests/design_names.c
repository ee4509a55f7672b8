/* design_names.c - written only against the names in DESIGN.md, compiled
 * against the installed library by tests/run.sh: if a contract name is
 * renamed or removed, this stops compiling. */
#include <stdio.h>
#include <string.h>
#include <cdm.h>

static void on_log(int level, const char *message, void *user)
{
    (void)level; (void)message; (void)user;
}

int main(void)
{
    const char *params[] = { "DriverID=SQLite", "Database=:memory:", NULL };
    cdm_manager *m;
    cdm_conn *c;
    cdm_result *r;
    cdm_pool_stats st;
    char **names, *value;
    size_t n;
    int64_t affected;
    int rc;

    if (cdm_manager_new(&m) != CDM_OK)
        return 1;
    cdm_manager_set_log(m, on_log, NULL);
    if (cdm_manager_add_def(m, "Mem", params) != CDM_OK ||
        cdm_manager_set_param(m, "Mem", "BusyTimeout", "500") != CDM_OK ||
        !cdm_manager_has_def(m, "mem") ||
        cdm_manager_def_names(m, &names, &n) != CDM_OK || n != 1)
        goto fail;
    cdm_strv_free(names);
    if (cdm_manager_get_param(m, "Mem", "BusyTimeout", &value) != CDM_OK)
        goto fail;
    cdm_free(value);
    if ((rc = cdm_connect(m, "Mem", &c)) != CDM_OK)
        goto fail;
    if (cdm_begin(c) || cdm_exec(c, "CREATE TABLE t (a)", NULL, 0, NULL) ||
        cdm_exec(c, "INSERT INTO t VALUES (?)", (const char *[]){ "x" }, 1,
                 &affected) || affected != 1 || cdm_commit(c) ||
        cdm_begin(c) || cdm_rollback(c) || cdm_ping(c) ||
        strcmp(cdm_conn_driver(c), "SQLite") ||
        strcmp(cdm_conn_def_name(c), "Mem") || !cdm_conn_handle(c) ||
        cdm_query(c, "SELECT a FROM t", NULL, 0, &r))
        goto fail;
    if (cdm_result_nrows(r) != 1 || cdm_result_ncols(r) != 1 ||
        strcmp(cdm_result_colname(r, 0), "a") ||
        strcmp(cdm_result_value(r, 0, 0), "x"))
        goto fail;
    cdm_result_free(r);
    cdm_disconnect(c);
    /* Mem is not pooled: it has no pool figures. */
    if (cdm_manager_pool_stats(m, "Mem", &st) != CDM_ERR_STATE ||
        cdm_manager_close_def(m, "Mem") ||
        cdm_manager_reload(m) || cdm_manager_delete_def(m, "Mem") ||
        cdm_manager_close(m, 1000))
        goto fail;
    cdm_manager_free(m);
    (void)cdm_manager_default;
    (void)cdm_manager_load_file;
    puts("installed library works with the DESIGN.md names");
    return 0;
fail:
    fprintf(stderr, "design_names: %s\n", cdm_errmsg());
    return 1;
}
