/*
 * cdm.c - the cdm command: maintains a connection definition file and
 * tries its definitions.  Options, the subcommand table, help and exit
 * status; the subcommands are in read.c, edit.c and db.c.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define DEFAULT_FILE "./connection-defs.ini"

static const struct command commands[] = {
    { "list", "", "names of the definitions, one a line, in file order",
      NULL, 0, 0, cmd_list },
    { "show", "NAME", "the Key=Value lines NAME sets itself, as written",
      "Secret values (Password, and anything the driver tables call\n"
      "secret) are shown as ***** unless --show-secrets is given.\n",
      1, 1, cmd_show },
    { "get", "NAME KEY", "the value of KEY as a connection sees it",
      "Inherited through ConnectionDef/Parent, with $(VAR) expanded.\n"
      "Exit status 1 when KEY is set nowhere in the chain.  The value of a\n"
      "secret key is printed only with --show-secrets.\n",
      2, 2, cmd_get },
    { "add", "NAME KEY=VALUE...", "a new definition at the end of the file",
      "DriverID=... is required, unless the definition inherits it\n"
      "(ConnectionDef=PARENT or Parent=PARENT).  A missing file is created\n"
      "with mode 0600.\n",
      2, -1, cmd_add },
    { "set", "NAME KEY=VALUE...", "sets parameters of NAME",
      "Every pair is checked before anything is written: one bad value and\n"
      "the file is not changed.  An existing key keeps its place and its\n"
      "comment; a new one goes after the definition's last key.\n",
      2, -1, cmd_set },
    { "unset", "NAME KEY...", "removes parameters of NAME",
      "All or nothing: a KEY that NAME does not set fails the whole command.\n",
      2, -1, cmd_unset },
    { "rename", "OLD NEW", "renames a definition in place",
      "Definitions that inherit from OLD (ConnectionDef=OLD) are not changed.\n",
      2, 2, cmd_rename },
    { "copy", "SRC DST", "copies a definition's lines to a new one at the end",
      NULL, 2, 2, cmd_copy },
    { "delete", "NAME", "removes a definition with the comments above it",
      NULL, 1, 1, cmd_delete },
    { "check", "", "checks the file like a compiler",
      "Prints every finding as FILE:LINE: error|warning: message (LINE 0:\n"
      "the file as a whole).  Exit status 1 when there is an error.\n",
      0, 0, cmd_check },
    { "test", "[NAME...]", "opens each definition and runs a trivial query",
      "Prints 'ok NAME (DRIVER, N ms)' or 'fail NAME: message' per\n"
      "definition; every definition of the file when no NAME is given.\n"
      "A plain connection is opened even for Pooled=True, and nothing is\n"
      "created: a missing SQLite file is a failure.  Exit status 1 when\n"
      "any test failed.\n",
      0, -1, cmd_test },
    { "exec", "NAME SQL [PARAM...]", "runs SQL with PARAMs bound to its ? marks",
      "Prints a header line of column names, then the rows, tab-separated.\n"
      "SQL NULL is printed as \\N; a backslash, tab, newline and carriage\n"
      "return inside a value as \\\\, \\t, \\n and \\r (PostgreSQL's COPY text\n"
      "format).  A PARAM of exactly \\N binds NULL.  A statement that\n"
      "returns no columns prints nothing.\n",
      2, -1, cmd_exec },
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

static const char options_help[] =
    "Options:\n"
    "  -f, --file FILE   the definition file (default: $CDM_CONNECTION_DEFS,\n"
    "                    else " DEFAULT_FILE ")\n"
    "  --show-secrets    show secret values instead of *****\n"
    "  -h, --help        this help; `cdm COMMAND --help` for one command\n"
    "  --version         the version\n";

static void usage_line(FILE *out, const struct command *cmd)
{
    fprintf(out, "usage: cdm [-f FILE] %s%s%s\n", cmd->name,
            cmd->args[0] ? " " : "", cmd->args);
}

static void help_all(FILE *out)
{
    fputs("usage: cdm [-f FILE] [--show-secrets] COMMAND [ARG...]\n\n"
          "Maintains a file of named database connection definitions and\n"
          "tries them.\n\nCommands:\n", out);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].args);
        fprintf(out, "  %-26s %s\n", head, commands[i].help);
    }
    fprintf(out, "\n%s\nExit status: 0 done, 1 failed, 2 usage error.\n"
            "See cdm(1) and cdm-defs(5).\n", options_help);
}

static void help_one(const struct command *cmd)
{
    usage_line(stdout, cmd);
    printf("\n%c%s.\n", toupper((unsigned char)cmd->help[0]), cmd->help + 1);
    if (cmd->more)
        printf("\n%s", cmd->more);
    printf("\n%s", options_help);
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("cdm: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILED;
}

void cli_put_line(FILE *out, const char *msg)
{
    while (*msg) {
        size_t n = strcspn(msg, "\r\n");
        fwrite(msg, 1, n, out);
        msg += n;
        if (!*msg)
            break;
        msg += strspn(msg, "\r\n\t ");
        if (*msg)
            fputc(' ', out);
    }
}

int cli_fail_status(int status)
{
    const char *msg = cdm_errmsg();

    fflush(stdout);
    fputs("cdm: ", stderr);
    cli_put_line(stderr, msg && *msg ? msg : cdm_strerror(status));
    fputc('\n', stderr);
    return EXIT_FAILED;
}

int cli_usage(const struct cli *c, const char *why)
{
    fflush(stdout);
    if (why)
        fprintf(stderr, "cdm: %s\n", why);
    if (c && c->cmd)
        usage_line(stderr, c->cmd);
    else
        fputs("usage: cdm [-f FILE] [--show-secrets] COMMAND [ARG...]\n",
              stderr);
    fputs("Try 'cdm --help' for more information.\n", stderr);
    return EXIT_USAGE;
}

void cli_log(int level, const char *message, void *user)
{
    (void)user;
    fflush(stdout);
    fprintf(stderr, "cdm: %s: %s\n",
            level == CDM_LOG_ERROR ? "error" : level == CDM_LOG_WARN ?
            "warning" : "note", message);
}

cdm_manager *cli_manager(const struct cli *c)
{
    cdm_manager *m;
    int rc;

    if ((rc = cdm_manager_new(&m)) != CDM_OK) {
        cli_fail_status(rc);
        return NULL;
    }
    if ((rc = cdm_manager_load_file(m, c->file)) != CDM_OK) {
        cli_fail_status(rc);
        cdm_manager_free(m);
        return NULL;
    }
    return m;
}

#ifdef CDM_TEST_DRIVER
/* The never-installed test build (tests/cdm-test) only: with
 * CDM_TEST_STOP_BEFORE_RENAME set, a save stops itself (SIGSTOP) after
 * writing and flushing its temporary file, just before the rename, so a
 * test can kill it there. */
#include <signal.h>
#include "../../tests/fault_driver.h"

static void stop_before_rename(const char *tmp)
{
    (void)tmp;
    raise(SIGSTOP);
}
#endif

/* Takes the option at argv[*i] if it is one.  1: taken (and *i moved
 * past its value); 0: not an option; -1: a usage error (printed); 2:
 * help or version printed. */
static int take_option(struct cli *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];

    if (strcmp(a, "-f") == 0 || strcmp(a, "--file") == 0) {
        if (*i + 1 >= argc) {
            cli_usage(c, "option -f needs a FILE");
            return -1;
        }
        c->file = argv[++*i];
        return 1;
    }
    if (strncmp(a, "--file=", 7) == 0 || (strncmp(a, "-f", 2) == 0 && a[2])) {
        c->file = a[1] == '-' ? a + 7 : a + 2;
        return 1;
    }
    if (strcmp(a, "--show-secrets") == 0) {
        c->show_secrets = true;
        return 1;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
        if (c->cmd)
            help_one(c->cmd);
        else
            help_all(stdout);
        return 2;
    }
    if (strcmp(a, "--version") == 0) {
        printf("cdm %s\n", PACKAGE_VERSION);
        return 2;
    }
    if (a[0] == '-' && a[1]) {
        char why[300];
        snprintf(why, sizeof why, "unknown option '%.200s'", a);
        cli_usage(c, why);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cli c = { 0 };
    const char *env = getenv("CDM_CONNECTION_DEFS");
    char **ops;
    int i = 1, n = 0, r;
    bool ended = false;

#ifdef CDM_TEST_DRIVER
    if (getenv("CDM_TEST_STOP_BEFORE_RENAME"))
        cdm__test_deffile_before_rename = stop_before_rename;
#endif
    c.file = env && *env ? env : DEFAULT_FILE;
    /* Options before the command. */
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if ((r = take_option(&c, argc, argv, &i)) < 0)
            return EXIT_USAGE;
        if (r == 2)
            return EXIT_DONE;
        if (r == 0)
            break;
    }
    if (i >= argc)
        return cli_usage(&c, "no command given");
    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 >= argc) {
            help_all(stdout);
            return EXIT_DONE;
        }
        i++;
        for (size_t k = 0; k < NCOMMANDS; k++)
            if (strcmp(argv[i], commands[k].name) == 0) {
                help_one(&commands[k]);
                return EXIT_DONE;
            }
    }
    for (size_t k = 0; k < NCOMMANDS && !c.cmd; k++)
        if (strcmp(argv[i], commands[k].name) == 0)
            c.cmd = &commands[k];
    if (!c.cmd) {
        char why[300];
        snprintf(why, sizeof why, "unknown command '%.200s'", argv[i]);
        return cli_usage(&c, why);
    }
    /* The operands; options may come among them until "--" (for exec
     * only before NAME: its SQL and parameters are taken as they are). */
    if (!(ops = calloc((size_t)argc, sizeof *ops)))
        return cli_fail("out of memory");
    for (i++; i < argc; i++) {
        if (!ended && (c.cmd->run != cmd_exec || n == 0)) {
            if (strcmp(argv[i], "--") == 0) {
                ended = true;
                continue;
            }
            if ((r = take_option(&c, argc, argv, &i)) < 0 || r == 2) {
                free(ops);
                return r < 0 ? EXIT_USAGE : EXIT_DONE;
            }
            if (r == 1)
                continue;
        }
        ops[n++] = argv[i];
    }
    c.argc = n;
    c.argv = ops;
    if (n < c.cmd->min || (c.cmd->max >= 0 && n > c.cmd->max))
        r = cli_usage(&c, n < c.cmd->min ? "missing operand" : "too many operands");
    else
        r = c.cmd->run(&c);
    free(ops);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fputs("cdm: cannot write the output\n", stderr);
        return EXIT_FAILED;
    }
    return r;
}
