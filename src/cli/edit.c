/*
 * edit.c - the subcommands that change the file: add, set, unset,
 * rename, copy, delete.  Each takes the file's lock before reading it
 * (cdm_deffile_open_locked), so that concurrent runs each see the others'
 * changes, and saves all its changes at once or none.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static int open_locked(const struct cli *c, cdm_deffile **f)
{
    int rc = cdm_deffile_open_locked(c->file, f);

    if (rc != CDM_OK)
        return cli_fail_status(rc);
    cdm_deffile_set_log(*f, cli_log, NULL);
    return EXIT_DONE;
}

/* Saves when rc is CDM_OK (else reports rc), then frees. */
static int finish(cdm_deffile *f, int rc)
{
    if (rc == CDM_OK)
        rc = cdm_deffile_save(f);
    if (rc != CDM_OK)
        cli_fail_status(rc);
    cdm_deffile_free(f);
    return rc == CDM_OK ? EXIT_DONE : EXIT_FAILED;
}

/* Checks that every operand from argv[from] is KEY=VALUE. */
static int pairs_ok(const struct cli *c, int from)
{
    for (int i = from; i < c->argc; i++)
        if (!strchr(c->argv[i], '=') || c->argv[i][0] == '=') {
            char why[300];
            snprintf(why, sizeof why, "'%.200s' is not KEY=VALUE", c->argv[i]);
            return cli_usage(c, why);
        }
    return EXIT_DONE;
}

/* Sets argv[from..] on `name`; stops at the first failure. */
static int set_pairs(const struct cli *c, cdm_deffile *f, const char *name,
                     int from)
{
    int rc = CDM_OK;

    for (int i = from; i < c->argc && rc == CDM_OK; i++) {
        const char *eq = strchr(c->argv[i], '=');
        char *key = strndup(c->argv[i], (size_t)(eq - c->argv[i]));
        rc = key ? cdm_deffile_set(f, name, key, eq + 1) : CDM_ERR_NOMEM;
        free(key);
    }
    return rc;
}

static bool has_key(const struct cli *c, int from, const char *key)
{
    size_t n = strlen(key);

    for (int i = from; i < c->argc; i++)
        if (strncasecmp(c->argv[i], key, n) == 0 && c->argv[i][n] == '=')
            return true;
    return false;
}

int cmd_add(struct cli *c)
{
    cdm_deffile *f;
    int rc;

    if ((rc = pairs_ok(c, 1)) != EXIT_DONE)
        return rc;
    if (!has_key(c, 1, "DriverID") && !has_key(c, 1, "ConnectionDef") &&
        !has_key(c, 1, "Parent"))
        return cli_usage(c, "add: give DriverID=PG, MySQL or SQLite (or "
                         "ConnectionDef=PARENT to inherit it)");
    if ((rc = open_locked(c, &f)) != EXIT_DONE)
        return rc;
    rc = cdm_deffile_add(f, c->argv[0]);
    if (rc == CDM_OK)
        rc = set_pairs(c, f, c->argv[0], 1);
    return finish(f, rc);
}

int cmd_set(struct cli *c)
{
    cdm_deffile *f;
    int rc;

    if ((rc = pairs_ok(c, 1)) != EXIT_DONE)
        return rc;
    if ((rc = open_locked(c, &f)) != EXIT_DONE)
        return rc;
    return finish(f, set_pairs(c, f, c->argv[0], 1));
}

int cmd_unset(struct cli *c)
{
    cdm_deffile *f;
    int rc;

    if ((rc = open_locked(c, &f)) != EXIT_DONE)
        return rc;
    rc = CDM_OK;
    for (int i = 1; i < c->argc && rc == CDM_OK; i++)
        rc = cdm_deffile_unset(f, c->argv[0], c->argv[i]);
    return finish(f, rc);
}

int cmd_rename(struct cli *c)
{
    cdm_deffile *f;
    int rc;

    if ((rc = open_locked(c, &f)) != EXIT_DONE)
        return rc;
    return finish(f, cdm_deffile_rename(f, c->argv[0], c->argv[1]));
}

int cmd_copy(struct cli *c)
{
    cdm_deffile *f;
    int rc;

    if ((rc = open_locked(c, &f)) != EXIT_DONE)
        return rc;
    return finish(f, cdm_deffile_copy(f, c->argv[0], c->argv[1]));
}

int cmd_delete(struct cli *c)
{
    cdm_deffile *f;
    int rc;

    if ((rc = open_locked(c, &f)) != EXIT_DONE)
        return rc;
    return finish(f, cdm_deffile_delete(f, c->argv[0]));
}
