/* example.c - the example at the top of include/cdm.h, built by `make`
 * so that it cannot rot.  Run it from the top directory: ./demo/example */
#include <stdio.h>
#include <cdm.h>

int main(void)
{
    cdm_manager *m;
    cdm_conn *c;
    cdm_result *r;
    const char *row[] = { "ada", "36" };
    int rc;

    if ((rc = cdm_manager_new(&m)) != CDM_OK)
        return 1;
    if ((rc = cdm_manager_load_file(m, "defs/demo.ini")) != CDM_OK ||
        (rc = cdm_connect(m, "Demo_Memory", &c)) != CDM_OK) {
        fprintf(stderr, "%s: %s\n", cdm_strerror(rc), cdm_errmsg());
        cdm_manager_free(m);
        return 1;
    }
    cdm_exec(c, "CREATE TABLE person (name TEXT, age INTEGER)", NULL, 0, NULL);
    cdm_exec(c, "INSERT INTO person VALUES (?, ?)", row, 2, NULL);
    if (cdm_query(c, "SELECT name, age FROM person WHERE age > ?",
                  (const char *[]){ "18" }, 1, &r) == CDM_OK) {
        for (size_t i = 0; i < cdm_result_nrows(r); i++)
            printf("%s is %s\n", cdm_result_value(r, i, 0),
                   cdm_result_value(r, i, 1));
        cdm_result_free(r);
    }
    cdm_disconnect(c);
    cdm_manager_free(m);
    return 0;
}
