/*
 * read.c - the subcommands that only read the file: list, show, get,
 * check.  None takes the file's lock.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* The file opened for reading; a missing file is an error here (an edit
 * would create it, a read has nothing to read). */
static int open_for_reading(const struct cli *c, cdm_deffile **f)
{
    struct stat st;
    int rc;

    if (stat(c->file, &st) != 0 && errno == ENOENT)
        return cli_fail("%s: no such file (give one with -f FILE or "
                        "$CDM_CONNECTION_DEFS)", c->file);
    if ((rc = cdm_deffile_open(c->file, f)) != CDM_OK)
        return cli_fail_status(rc);
    return EXIT_DONE;
}

int cmd_list(struct cli *c)
{
    cdm_deffile *f;
    char **names;
    int rc;

    if ((rc = open_for_reading(c, &f)) != EXIT_DONE)
        return rc;
    if ((rc = cdm_deffile_names(f, &names, NULL)) != CDM_OK) {
        cdm_deffile_free(f);
        return cli_fail_status(rc);
    }
    for (size_t i = 0; names[i]; i++)
        printf("%s\n", names[i]);
    cdm_strv_free(names);
    cdm_deffile_free(f);
    return EXIT_DONE;
}

int cmd_show(struct cli *c)
{
    const char *name = c->argv[0];
    char **keys = NULL, *driver = NULL;
    cdm_deffile *f;
    int rc, ret = EXIT_DONE;

    if ((rc = open_for_reading(c, &f)) != EXIT_DONE)
        return rc;
    if ((rc = cdm_deffile_keys(f, name, &keys, NULL)) != CDM_OK) {
        cdm_deffile_free(f);
        return cli_fail_status(rc);
    }
    /* Its own DriverID picks the parameter table; without one (an
     * inheriting definition) every driver's table decides. */
    cdm_deffile_get(f, name, "DriverID", &driver);
    for (size_t i = 0; keys[i] && ret == EXIT_DONE; i++) {
        char *value = NULL, *shown = NULL;
        if ((rc = cdm_deffile_get(f, name, keys[i], &value)) != CDM_OK ||
            (!c->show_secrets &&
             (rc = cdm_param_mask(driver, keys[i], value, &shown)) != CDM_OK))
            ret = cli_fail_status(rc);
        else
            printf("%s=%s\n", keys[i], shown ? shown : value);
        cdm_free(shown);
        cdm_free(value);
    }
    cdm_free(driver);
    cdm_strv_free(keys);
    cdm_deffile_free(f);
    return ret;
}

int cmd_get(struct cli *c)
{
    const char *name = c->argv[0], *key = c->argv[1];
    char *value = NULL, *driver = NULL;
    cdm_manager *m;
    int rc, ret = EXIT_DONE;

    if (!(m = cli_manager(c)))
        return EXIT_FAILED;
    if ((rc = cdm_manager_get_param(m, name, key, &value)) != CDM_OK) {
        ret = cli_fail_status(rc);
    } else {
        /* A secret is printed only when asked for in so many words. */
        if (cdm_manager_get_param(m, name, "DriverID", &driver) != CDM_OK)
            driver = NULL;
        if (!c->show_secrets && cdm_param_is_secret(driver, key))
            ret = cli_fail("definition '%s': %s is secret: add "
                           "--show-secrets to print it", name, key);
        else
            printf("%s\n", value);
    }
    cdm_free(driver);
    cdm_free(value);
    cdm_manager_free(m);
    return ret;
}

static void print_finding(const cdm_finding *f, void *user)
{
    (void)user;
    printf("%s:%d: %s: %s\n", f->path, f->line,
           f->level == CDM_LOG_ERROR ? "error" : "warning", f->message);
}

int cmd_check(struct cli *c)
{
    int errors = 0, warnings = 0, rc;

    rc = cdm_check_file(c->file, print_finding, NULL, &errors, &warnings);
    if (rc != CDM_OK && rc != CDM_ERR_INVALID && rc != CDM_ERR_IO)
        return cli_fail_status(rc);
    return errors || rc != CDM_OK ? EXIT_FAILED : EXIT_DONE;
}
