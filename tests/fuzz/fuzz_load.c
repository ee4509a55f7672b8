/*
 * fuzz_load.c - libFuzzer target for definition files: any bytes read by
 * the loader's reader, made into definitions and resolved the ways a
 * connect and cdm check resolve them, checked by cdm_check_file, loaded by
 * a manager, and opened by the editor, whose save without an edit must
 * write back the very bytes it read.
 *
 * The reader and the definition layer run in memory.  cdm_check_file, the
 * manager and the editor take a path: each process writes its inputs into
 * one file of its own, rewritten in place for each input, in a directory
 * it makes under $TMPDIR, else /dev/shm (where the editor's fsync costs
 * nothing), else /tmp, and removes on a normal exit (not after a crash:
 * tests/fuzz/run.sh gives each run a $TMPDIR it removes).  The file has
 * mode 0644, so that the warning about a password others can read is
 * reached too.
 *
 * Besides "no crash, no leak, no undefined behaviour", every layer must
 * agree with the reader on whether the bytes load, and no message may
 * hold the value of a secret key.
 */
#define _GNU_SOURCE
#include "cdm_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Stops the run, with what broke, for libFuzzer to keep the input. */
#define require(cond)                                                     \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_load: %s:%d: %s\n", __FILE__, __LINE__, \
                    #cond);                                               \
            abort();                                                      \
        }                                                                 \
    } while (0)

/* ------------------------------------------------------- the one file */

static char dir[256], path[300], lockpath[310];
static int fd = -1;

static void remove_file(void)
{
    unlink(path);
    unlink(lockpath);   /* the editor's, left by design */
    rmdir(dir);
}

static void make_dir(void)
{
    const char *base = getenv("TMPDIR");

    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

    snprintf(dir, sizeof dir, "%s/cdm-fuzz-XXXXXX", base);
    require(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/defs.ini", dir);
    snprintf(lockpath, sizeof lockpath, "%s.lock", path);
    atexit(remove_file);
}

/* The input as the file's content.  A save replaces the file (a new
 * inode): then the descriptor is opened again. */
static void put_file(const uint8_t *data, size_t size)
{
    size_t done = 0;

    if (fd < 0) {
        require((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) >= 0);
        require(fchmod(fd, 0644) == 0);
    }
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        require(n > 0);
        done += (size_t)n;
    }
    require(ftruncate(fd, (off_t)size) == 0);
}

static void file_replaced(void)
{
    close(fd);
    fd = -1;
}

/* ------------------------------------------------------------ secrets */

/* Values of secret keys that no message may hold.  Only values that
 * could not get into a message another way are taken: found once in the
 * input (not also a name, another key or value), at least 4 bytes, one of
 * them non-ASCII (no text of the library has one). */
#define SECRETS_MAX 16
static char *secrets[SECRETS_MAX];
static size_t nsecrets;

static bool telling(const char *v, const uint8_t *data, size_t size)
{
    size_t n = strlen(v);
    const char *at;
    bool high = false;

    for (const char *p = v; *p; p++)
        high |= (unsigned char)*p >= 0x80;
    if (n < 4 || !high)
        return false;
    at = memmem(data, size, v, n);
    return !at || !memmem(at + 1, size - (size_t)(at + 1 - (const char *)data),
                          v, n);
}

static void note_secrets(const struct cdm_ini *ini, const uint8_t *data,
                         size_t size)
{
    for (size_t i = 0; i < ini->nsections; i++)
        for (size_t j = 0; j < ini->sections[i].nkeys; j++) {
            const struct cdm_ini_key *k = &ini->sections[i].keys[j];
            if (nsecrets < SECRETS_MAX && telling(k->value, data, size) &&
                cdm_param_is_secret(NULL, k->key))
                require((secrets[nsecrets++] = strdup(k->value)) != NULL);
        }
}

static void forget_secrets(void)
{
    while (nsecrets)
        free(secrets[--nsecrets]);
}

static void check_text(const char *text)
{
    for (size_t i = 0; i < nsecrets; i++)
        if (strstr(text, secrets[i])) {
            fprintf(stderr, "fuzz_load: a secret value is in the message: "
                    "%s\n", text);
            abort();
        }
}

static void check_log(int level, const char *message, void *user)
{
    (void)level;
    (void)user;
    check_text(message);
}

/* --------------------------------------------- definitions in memory */

static void check_issue(void *ctx, const struct cdm_issue *is)
{
    (void)ctx;
    require(is->text != NULL);
    check_text(is->text);
}

static void same_resolved(const struct cdm_resolved *a,
                          const struct cdm_resolved *b)
{
    require(a->drv == b->drv && a->nkv == b->nkv);
    require(strcmp(a->name, b->name) == 0 && strcmp(a->where, b->where) == 0);
    for (size_t i = 0; i < a->nkv; i++)
        require(strcmp(a->kv[i].key, b->kv[i].key) == 0 &&
                strcmp(a->kv[i].value, b->kv[i].value) == 0);
}

/* Each definition checked and resolved as cdm check does (every problem
 * reported) and as a connect does (the first fails): "the first status a
 * connect would fail with" is what the report returns. */
static void resolve_all(const struct cdm_loaded *ld)
{
    struct cdm_names b = { 0 };

    if (!ld->ndefs)
        return;
    require(cdm__names_build(&b, ld->defs, ld->ndefs) == CDM_OK);
    for (size_t i = 0; i < ld->ndefs; i++) {
        const struct cdm_def *d = ld->defs[i];
        struct cdm_resolved *reported = NULL, *strict = NULL;
        int rc_report, rc_strict;

        rc_report = cdm__resolve_report(d->name, cdm__names_lookup, &b, check_issue,
                                        NULL, &reported);
        rc_strict = cdm__resolve_chain(d->name, cdm__names_lookup, &b, &strict);
        if (rc_strict == CDM_OK)
            rc_strict = cdm__resolve_finish(strict);
        check_text(cdm_errmsg());
        require(rc_report == rc_strict);
        if (rc_report == CDM_OK) {
            same_resolved(reported, strict);
            if (cdm__rget_bool(reported, "Pooled") &&
                cdm__pool_check_cfg(reported) != CDM_OK)
                check_text(cdm_errmsg());
        }
        cdm__resolved_free(reported);
        cdm__resolved_free(strict);
    }
    cdm__names_clear(&b);
}

/* ------------------------------------------------------ cdm check */

struct findings {
    int last_line, max_line, n;
    int first_line;
    bool first_error;
};

static void on_finding(const cdm_finding *f, void *user)
{
    struct findings *fs = user;

    require(f->message != NULL);
    check_text(f->message);
    /* In line order, each a line of the file (0: the file itself). */
    require(f->line >= fs->last_line && f->line <= fs->max_line);
    fs->last_line = f->line;
    if (fs->n++ == 0) {
        fs->first_line = f->line;
        fs->first_error = f->level == CDM_LOG_ERROR;
    }
}

static void check_file(const uint8_t *data, size_t size, int parse_rc,
                       int parse_line)
{
    struct findings fs = { .max_line = 1 };
    int errors = -1, warnings = -1, rc;

    for (size_t i = 0; i < size; i++)
        fs.max_line += data[i] == '\n';
    rc = cdm_check_file(path, on_finding, &fs, &errors, &warnings);
    if (rc == CDM_ERR_NOMEM)
        return;
    require(errors + warnings == fs.n);
    if (parse_rc == CDM_ERR_PARSE) {
        /* The reader stops at the first error: the only finding. */
        require(rc == CDM_ERR_INVALID && errors == 1 && warnings == 0);
        require(fs.first_error && fs.first_line == parse_line);
    } else {
        require(rc == (errors ? CDM_ERR_INVALID : CDM_OK));
    }
}

/* ---------------------------------------------------------- a manager */

static void load_manager(int parse_rc, const struct cdm_loaded *ld)
{
    cdm_manager *m;
    char **names;
    size_t n;
    int rc;

    if (cdm_manager_new(&m) != CDM_OK)
        return;
    cdm_manager_set_log(m, check_log, NULL);
    rc = cdm_manager_load_file(m, path);
    check_text(cdm_errmsg());
    if (rc == CDM_ERR_NOMEM || parse_rc == CDM_ERR_NOMEM) {
        cdm_manager_free(m);
        return;
    }
    require(rc == parse_rc);
    if (rc == CDM_OK) {
        require(cdm_manager_def_names(m, &names, &n) == CDM_OK);
        require(n == ld->ndefs);
        for (size_t i = 0; i < n; i++) {
            const struct cdm_def *d = ld->defs[i];
            require(strcmp(names[i], d->name) == 0);
            /* What a connection would see: inherited, expanded. */
            for (size_t j = 0; j < d->nkv; j++) {
                char *v = NULL;
                if (cdm_manager_get_param(m, d->name, d->kv[j].key, &v) != CDM_OK)
                    check_text(cdm_errmsg());
                cdm_free(v);
            }
        }
        cdm_strv_free(names);
    }
    cdm_manager_free(m);
}

/* --------------------------------------------------------- the editor */

/* The handle shows the definitions the loader read, in the same order. */
static void same_as_loaded(cdm_deffile *f, const struct cdm_loaded *ld)
{
    char **names, **keys, *v;
    size_t n, nk;
    int rc;

    require(cdm_deffile_names(f, &names, &n) == CDM_OK);
    require(n == ld->ndefs);
    for (size_t i = 0; i < n; i++) {
        const struct cdm_def *d = ld->defs[i];
        require(strcmp(names[i], d->name) == 0);
        /* Every name and key it lists, it finds, whatever the rules for
         * writing new ones (a key with a blank was refused once). */
        rc = cdm_deffile_keys(f, d->name, &keys, &nk);
        require(rc == CDM_OK && nk == d->nkv);
        for (size_t j = 0; j < nk; j++) {
            require(strcmp(keys[j], d->kv[j].key) == 0);
            rc = cdm_deffile_get(f, d->name, keys[j], &v);
            require(rc == CDM_OK && strcmp(v, d->kv[j].value) == 0);
            cdm_free(v);
        }
        cdm_strv_free(keys);
    }
    cdm_strv_free(names);
}

/* Two handles show the same names, keys and values. */
static void same_view(cdm_deffile *f, cdm_deffile *g)
{
    char **fn, **gn;
    size_t nf, ng;

    require(cdm_deffile_names(f, &fn, &nf) == CDM_OK);
    require(cdm_deffile_names(g, &gn, &ng) == CDM_OK);
    require(nf == ng);
    for (size_t i = 0; i < nf; i++) {
        char **fk, **gk;
        size_t nfk, ngk;
        int rc;
        require(strcmp(fn[i], gn[i]) == 0);
        rc = cdm_deffile_keys(f, fn[i], &fk, &nfk);
        require(rc == CDM_OK);
        require(cdm_deffile_keys(g, gn[i], &gk, &ngk) == CDM_OK);
        require(nfk == ngk);
        for (size_t j = 0; j < nfk; j++) {
            char *fv, *gv;
            require(strcmp(fk[j], gk[j]) == 0);
            rc = cdm_deffile_get(f, fn[i], fk[j], &fv);
            require(rc == CDM_OK);
            require(cdm_deffile_get(g, gn[i], gk[j], &gv) == CDM_OK);
            require(strcmp(fv, gv) == 0);
            cdm_free(fv);
            cdm_free(gv);
        }
        cdm_strv_free(fk);
        cdm_strv_free(gk);
    }
    cdm_strv_free(fn);
    cdm_strv_free(gn);
}

static void same_bytes(const uint8_t *data, size_t size)
{
    char *buf = NULL;
    size_t len = 0;
    struct stat st;

    require(cdm__file_read(path, &buf, &len, &st) == CDM_OK);
    if (len != size || memcmp(buf, data, size) != 0) {
        fprintf(stderr, "fuzz_load: the editor's save without an edit "
                "changed the file (%zu bytes read, %zu written)\n", size, len);
        abort();
    }
    free(buf);
}

/* Edits taken from the file itself, so that the fuzzer steers them: the
 * file's last key and value set in its first definition, that definition
 * copied, the second deleted, the last renamed.  Whatever the editor
 * accepts must save (its save reads the new text back and refuses what
 * does not read back as edited), and open again as the handle shows it. */
static void edit(cdm_deffile *f, const struct cdm_loaded *ld)
{
    const struct cdm_def *first = ld->defs[0], *last = ld->defs[ld->ndefs - 1];
    const struct cdm_def *with_keys = NULL;
    cdm_deffile *g;
    int rc;

    for (size_t i = ld->ndefs; i-- > 0 && !with_keys;)
        if (ld->defs[i]->nkv)
            with_keys = ld->defs[i];
    if (with_keys) {
        const struct cdm_kv *kv = &with_keys->kv[with_keys->nkv - 1];
        /* A key line continued before its '=' included (it was rewritten
         * with its first line's key once: tests/fixtures/fuzz/README). */
        cdm_deffile_set(f, first->name, kv->key, kv->value);
        if (first->nkv > 1)
            cdm_deffile_unset(f, first->name, first->kv[0].key);
    }
    /* A header continued over lines included (its second line was copied
     * as a line of the definition once: tests/fixtures/fuzz/README). */
    cdm_deffile_copy(f, first->name, "Fuzz_Copy");
    if (ld->ndefs > 1)
        cdm_deffile_delete(f, ld->defs[1]->name);
    cdm_deffile_rename(f, last->name, "Fuzz_Renamed");
    check_text(cdm_errmsg());

    rc = cdm_deffile_save(f);
    if (rc != CDM_OK) {
        fprintf(stderr, "fuzz_load: an accepted edit did not save: %s\n",
                cdm_errmsg());
        abort();
    }
    file_replaced();
    require(cdm_deffile_open(path, &g) == CDM_OK);
    same_view(f, g);
    cdm_deffile_free(g);
}

static void editor(const uint8_t *data, size_t size, int parse_rc,
                   const struct cdm_loaded *ld)
{
    cdm_deffile *f = NULL;
    int rc = cdm_deffile_open(path, &f);

    check_text(cdm_errmsg());
    if (rc == CDM_ERR_NOMEM || parse_rc == CDM_ERR_NOMEM) {
        cdm_deffile_free(f);
        return;
    }
    require(rc == parse_rc);
    if (rc != CDM_OK)
        return;
    cdm_deffile_set_log(f, check_log, NULL);
    same_as_loaded(f, ld);
    /* Opened and saved without an edit: the same bytes, BOMs, CRLFs,
     * blanks, comments, a last line without its line end and all. */
    require(cdm_deffile_save(f) == CDM_OK);
    file_replaced();
    same_bytes(data, size);
    /* \v and \f included: the editor takes the reader's blanks (it did
     * not once: tests/fixtures/fuzz/README). */
    if (ld->ndefs)
        edit(f, ld);
    cdm_deffile_free(f);
}

/* --------------------------------------------------------------- entry */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cdm_loaded ld = { 0 };
    struct cdm_ini *ini = NULL;
    int rc, line = 0;

    if (!dir[0])
        make_dir();
    put_file(data, size);

    rc = cdm__ini_parse_at(path, (const char *)data, size, &ini, &line);
    check_text(cdm_errmsg());
    if (rc == CDM_OK) {
        /* The reader refuses NUL bytes (iniparser would stop at one). */
        require(!memchr(data, '\0', size));
        note_secrets(ini, data, size);
        ini->mode = 0644;
        rc = cdm__load_parsed(ini, &ld, check_issue, NULL);
    } else {
        require(rc == CDM_ERR_PARSE || rc == CDM_ERR_NOMEM);
        require(rc == CDM_ERR_NOMEM || line > 0);
    }
    if (rc == CDM_OK)
        resolve_all(&ld);

    check_file(data, size, rc, line);
    load_manager(rc, &ld);
    editor(data, size, rc, &ld);

    cdm__loaded_free(&ld);
    forget_secrets();
    return 0;
}
