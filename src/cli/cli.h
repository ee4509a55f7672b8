/*
 * cli.h - what the cdm command's files share: the parsed command line,
 * the output helpers and one function per subcommand.  The command is a
 * thin layer over the library: it parses arguments and prints; every rule
 * (quoting, masking, locking, checking) is the library's.
 */
#ifndef CDM_CLI_H
#define CDM_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <cdm.h>

/* Exit status: done, failed (not found, refused, check errors), usage. */
enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

struct cli {
    const char *file;     /* -f, else $CDM_CONNECTION_DEFS, else the default */
    bool show_secrets;    /* --show-secrets */
    const struct command *cmd;
    int argc;             /* the subcommand's operands */
    char **argv;
};

struct command {
    const char *name;
    const char *args;     /* operands, for the usage line */
    const char *help;     /* one line */
    const char *more;     /* details for `cdm NAME --help`, or NULL */
    int min, max;         /* operands allowed; max -1: any number */
    int (*run)(struct cli *c);
};

/* Prints a library message on one line: a line break and the blanks
 * after it (libpq's "\n\tIs the server running...") become one blank. */
void cli_put_line(FILE *out, const char *msg);
/* "cdm: " + message on stderr; always returns EXIT_FAILED. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The library's message for `status` (cdm_errmsg(), else its code's
 * text) on stderr; returns EXIT_FAILED. */
int cli_fail_status(int status);
/* The subcommand's usage line on stderr; returns EXIT_USAGE. */
int cli_usage(const struct cli *c, const char *why);
/* Library warnings (cdm_log_fn) as "cdm: warning: ..." on stderr. */
void cli_log(int level, const char *message, void *user);
/* A manager with the file loaded (warnings discarded: `cdm check` is for
 * those); NULL after printing why. */
cdm_manager *cli_manager(const struct cli *c);

int cmd_list(struct cli *c);
int cmd_show(struct cli *c);
int cmd_get(struct cli *c);
int cmd_check(struct cli *c);
int cmd_add(struct cli *c);
int cmd_set(struct cli *c);
int cmd_unset(struct cli *c);
int cmd_rename(struct cli *c);
int cmd_copy(struct cli *c);
int cmd_delete(struct cli *c);
int cmd_test(struct cli *c);
int cmd_exec(struct cli *c);

#endif
