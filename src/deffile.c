/*
 * deffile.c - editing a definition file in place: every line that is not
 * edited is written back byte for byte (comments, blank lines, spacing,
 * key order, the case of names, CRLF line ends, byte order marks).
 *
 * The file is held as its physical lines, each with its own line end.
 * Where a definition or key sits is found by scanning those lines when an
 * edit needs it (files are small; nothing positional is cached, so no
 * edit can leave a stale index behind).  Values are held apart, as the
 * loader read them at open and as each edit set them; saving parses the
 * new text with the loader's own reader and writes nothing unless it reads
 * back exactly those names, keys and values.
 *
 * Saving: under an exclusive lock on a lock file beside the file (the
 * rename replaces the file's inode, so the file itself cannot carry the
 * lock), the file on disk is compared with the bytes read at open
 * (CDM_ERR_CONFLICT if anyone changed it), the new text is written to a
 * temporary file in the same directory, flushed, given the old file's
 * mode and owner, renamed over it, and the directory is flushed.  A crash
 * at any point leaves either the old file or the new one, never a mix.
 */
#define _GNU_SOURCE
#include "cdm_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* iniparser 4.1's longest line (see ini.c). */
#define LINE_MAX_LEN 1022
#define BOM "\xEF\xBB\xBF"
#define TMP_TAG ".cdm-tmp."

struct dline {
    char *s;    /* the line's bytes, with its line end (none on a last line) */
    size_t n;
};

struct cdm_deffile {
    char *path;           /* as given, for messages */
    char *target;         /* the file itself (symbolic links followed) */
    char *lockpath;       /* target + ".lock" */
    size_t bomlen;        /* byte order marks before line 1, kept as read */
    struct dline *lines;
    size_t nlines, cap;
    const char *eol;      /* for new lines: the file's own, "\n" or "\r\n" */
    struct cdm_def **defs;/* values, in file order, header section included */
    size_t ndefs;
    char *orig;           /* the bytes read at open (NULL: no file) */
    size_t origlen;
    mode_t mode;          /* of the file, or 0600 for a new one */
    uid_t uid;
    gid_t gid;
    bool existed;
    bool no_final_eol;    /* the file read ended without a line end: kept so */
    int lockfd;           /* >= 0 while this handle holds the lock */
    cdm_log_fn log;
    void *log_user;
};

#ifdef CDM_TEST_DRIVER
/* Called after the temporary file is written and flushed, before the
 * rename: the tests stop or kill the process there. */
void (*cdm__test_deffile_before_rename)(const char *tmp);
#endif

/* ------------------------------------------------------------ the lines */

static bool blank_or_comment(const char *s, size_t n, bool *blank)
{
    cdm__trim(&s, &n);
    *blank = n == 0;
    return n == 0 || s[0] == ';' || s[0] == '#';
}

/* The line without its line end. */
static size_t body_len(const struct dline *l)
{
    size_t n = l->n;

    if (n && l->s[n - 1] == '\n')
        n--;
    return n;
}

/* Whether line i continues on the next (ends with '\', as the reader
 * joins it). */
static bool continues(const struct cdm_deffile *f, size_t i)
{
    const char *s = f->lines[i].s;
    size_t n = body_len(&f->lines[i]);

    cdm__trim(&s, &n);
    return n && s[n - 1] == '\\' && i + 1 < f->nlines;
}

/* The index after the logical line that starts at i. */
static size_t logical_end(const struct cdm_deffile *f, size_t i)
{
    while (continues(f, i))
        i++;
    return i + 1;
}

/* The logical line that starts at i, joined as the reader joins it. */
static int logical(const struct cdm_deffile *f, size_t i, struct cdm_buf *b)
{
    b->len = 0;
    for (;; i++) {
        const char *s = f->lines[i].s;
        size_t n = body_len(&f->lines[i]);
        if (!continues(f, i)) {
            cdm__buf_add(b, s, n);
            break;
        }
        /* As the reader joins: the backslash and the blanks after it go,
         * the line's leading blanks stay. */
        cdm__rtrim(s, &n);
        cdm__buf_add(b, s, n - 1);
    }
    cdm__buf_add(b, "", 0);
    return b->failed ? cdm__nomem() : CDM_OK;
}

enum kind { K_OTHER, K_SECTION, K_KEY };

/* Classifies a logical line; for a section or key, [*name, *name + *len)
 * is its name or key, trimmed, inside `text`. */
static enum kind classify(const char *text, const char **name, size_t *len)
{
    const char *s = text, *eq;
    size_t n = strlen(text);

    cdm__trim(&s, &n);
    if (n == 0 || s[0] == ';' || s[0] == '#')
        return K_OTHER;
    if (s[0] == '[') {
        *name = s + 1;
        *len = n >= 2 ? n - 2 : 0;
        cdm__trim(name, len);
        return K_SECTION;
    }
    if (!(eq = memchr(s, '=', n)))
        return K_OTHER;
    *name = s;
    *len = (size_t)(eq - s);
    cdm__trim(name, len);
    return K_KEY;
}

static bool same_name(const char *a, size_t n, const char *b)
{
    return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

/* Finds the header line of section `name` (and the line after its last
 * line: the next header, or the end).  -1 if absent. */
static long find_section(const struct cdm_deffile *f, const char *name,
                         size_t *end)
{
    struct cdm_buf b = { 0 };
    long found = -1;

    for (size_t i = 0; i < f->nlines; i = logical_end(f, i)) {
        const char *nm;
        size_t n;
        if (logical(f, i, &b) != CDM_OK)
            break;
        if (classify(b.s, &nm, &n) != K_SECTION)
            continue;
        if (found >= 0) {
            *end = i;
            break;
        }
        if (same_name(nm, n, name)) {
            found = (long)i;
            *end = f->nlines;
        }
    }
    cdm__buf_free(&b);
    return found;
}

/* Calls `fn` for each logical key line of the section [hdr, end) whose key
 * is `key` (every key when NULL), last first, so that `fn` may remove it.
 * Also gives the line after the section's last key line (hdr + 1 when it
 * has none) in *after_last. */
static int each_key(struct cdm_deffile *f, size_t hdr, size_t end,
                    const char *key, size_t *after_last,
                    int (*fn)(struct cdm_deffile *, size_t, size_t, void *),
                    void *ctx)
{
    struct cdm_buf b = { 0 };
    size_t first = logical_end(f, hdr), *at = NULL, nat = 0, last = first;
    int rc = CDM_OK;

    /* The header may itself be continued over lines. */
    for (size_t i = first; i < end; i = logical_end(f, i)) {
        const char *k;
        size_t n;
        if ((rc = logical(f, i, &b)) != CDM_OK)
            break;
        if (classify(b.s, &k, &n) != K_KEY)
            continue;
        last = logical_end(f, i);
        if (key && !same_name(k, n, key))
            continue;
        if (fn) {
            size_t *v = realloc(at, (nat + 1) * sizeof *v);
            if (!v) {
                rc = cdm__nomem();
                break;
            }
            at = v;
            at[nat++] = i;
        }
    }
    cdm__buf_free(&b);
    if (after_last)
        *after_last = last;
    while (rc == CDM_OK && nat--)
        rc = fn(f, at[nat], logical_end(f, at[nat]), ctx);
    free(at);
    return rc;
}

static int insert_line(struct cdm_deffile *f, size_t at, char *s, size_t n)
{
    if (!s)
        return cdm__nomem();
    if (f->nlines == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct dline *v = realloc(f->lines, cap * sizeof *v);
        if (!v) {
            free(s);
            return cdm__nomem();
        }
        f->lines = v;
        f->cap = cap;
    }
    memmove(f->lines + at + 1, f->lines + at,
            (f->nlines - at) * sizeof *f->lines);
    f->lines[at].s = s;
    f->lines[at].n = n;
    f->nlines++;
    return CDM_OK;
}

/* Inserts a new line (text without its line end) at `at`. */
static int insert_text(struct cdm_deffile *f, size_t at, const char *text)
{
    char *s = cdm__asprintf("%s%s", text, f->eol);

    return insert_line(f, at, s, s ? strlen(s) : 0);
}

static void remove_lines(struct cdm_deffile *f, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        free(f->lines[i].s);
    memmove(f->lines + from, f->lines + to,
            (f->nlines - to) * sizeof *f->lines);
    f->nlines -= to - from;
}

static bool is_blank(const struct cdm_deffile *f, size_t i)
{
    bool blank;

    return i < f->nlines &&
           blank_or_comment(f->lines[i].s, body_len(&f->lines[i]), &blank) &&
           blank;
}

/* Gives the last line its line end, so that a line can follow it. */
static int end_last_line(struct cdm_deffile *f)
{
    struct dline *l;
    char *s;

    if (!f->nlines)
        return CDM_OK;
    l = &f->lines[f->nlines - 1];
    if (l->n && l->s[l->n - 1] == '\n')
        return CDM_OK;
    if (!(s = cdm__asprintf("%.*s%s", (int)l->n, l->s, f->eol)))
        return cdm__nomem();
    free(l->s);
    l->s = s;
    l->n = strlen(s);
    return CDM_OK;
}

/* Appends "[name]" at the end, after a blank line unless the file is empty
 * or already ends with one.  The header's index in *hdr. */
static int append_section(struct cdm_deffile *f, const char *name, size_t *hdr)
{
    char *text;
    int rc;

    if ((rc = end_last_line(f)) != CDM_OK)
        return rc;
    if (f->nlines && !is_blank(f, f->nlines - 1) &&
        (rc = insert_text(f, f->nlines, "")) != CDM_OK)
        return rc;
    if (!(text = cdm__asprintf("[%s]", name)))
        return cdm__nomem();
    *hdr = f->nlines;
    rc = insert_text(f, f->nlines, text);
    free(text);
    return rc;
}

/* ----------------------------------------------------------- the values */

static struct cdm_def *find_def(const struct cdm_deffile *f, const char *name,
                                size_t *index)
{
    for (size_t i = 0; i < f->ndefs; i++)
        if (cdm__streq_nocase(f->defs[i]->name, name)) {
            if (index)
                *index = i;
            return f->defs[i];
        }
    return NULL;
}

static int append_def(struct cdm_deffile *f, struct cdm_def *d)
{
    struct cdm_def **v;

    if (!d)
        return cdm__nomem();
    if (!(v = realloc(f->defs, (f->ndefs + 1) * sizeof *v))) {
        cdm__def_free(d);
        return cdm__nomem();
    }
    f->defs = v;
    f->defs[f->ndefs++] = d;
    return CDM_OK;
}

/* --------------------------------------------------------- value syntax */

/* How `value` must be written to read back unchanged through iniparser
 * 4.1: bare, or inside double or single quotes (4.1 has no escapes). */
static int quote_for(const char *path, const char *name, const char *key,
                     const char *value, char *q)
{
    size_t n = strlen(value);
    bool dq = strchr(value, '"'), sq = strchr(value, '\'');

    *q = 0;
    if (strpbrk(value, "\r\n"))
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: definition '%s': %s: a value cannot hold a "
                         "line break", path, name, key);
    if (n && (strpbrk(value, ";#") || dq || sq || value[0] == ' ' ||
              value[0] == '\t' || value[n - 1] == ' ' ||
              value[n - 1] == '\t' || value[n - 1] == '\\'))
        *q = dq ? '\'' : '"';
    if (dq && sq)
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: definition '%s': %s: a value holding both "
                         "kinds of quote cannot be written (the file format "
                         "has no escapes)", path, name, key);
    return CDM_OK;
}

/* The line "key=value" (quoted as needed), keeping `prefix` (the old
 * line's text up to its value) and `suffix` (its comment) when given. */
static int key_line(const struct cdm_deffile *f, const char *name,
                    const char *key, const char *value, const char *prefix,
                    size_t plen, const char *suffix, size_t slen, char **out)
{
    char q;
    int rc = quote_for(f->path, name, key, value, &q);
    struct cdm_buf b = { 0 };

    if (rc != CDM_OK)
        return rc;
    if (prefix)
        cdm__buf_add(&b, prefix, plen);
    else
        cdm__buf_addf(&b, "%s=", key);
    if (q)
        cdm__buf_addf(&b, "%c%s%c", q, value, q);
    else
        cdm__buf_adds(&b, value);
    cdm__buf_add(&b, suffix, slen);
    if (b.failed)
        return cdm__nomem();
    if (b.len > LINE_MAX_LEN) {
        cdm__buf_free(&b);
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: definition '%s': %s: the line would be longer "
                         "than %d characters", f->path, name, key,
                         LINE_MAX_LEN);
    }
    *out = cdm__buf_take(&b);
    return CDM_OK;
}

/* In the single line `s` of a key: where its value starts (after '=' and
 * blanks) and where its trailing comment starts (the blanks before it
 * included; the line end when there is none). */
static void split_value(const char *s, size_t n, size_t *vstart, size_t *cstart)
{
    const char *eq = memchr(s, '=', n);
    size_t v0 = eq ? (size_t)(eq - s) + 1 : n, i = v0, c;

    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    c = n;
    if (i < n && (s[i] == '"' || s[i] == '\'')) {
        const char *close = memchr(s + i + 1, s[i], n - i - 1);
        c = close ? (size_t)(close - s) + 1 : n;
    } else {
        const char *p = s + i;
        while (p < s + n && *p != ';' && *p != '#')
            p++;
        c = (size_t)(p - s);
        while (c > v0 && (s[c - 1] == ' ' || s[c - 1] == '\t'))
            c--;
    }
    /* Blanks and a '\r' alone after the value are not a comment. */
    {
        const char *t = s + c;
        size_t tn = n - c;
        cdm__trim(&t, &tn);
        if (!tn)
            c = n;
    }
    /* An empty value before a comment: the blanks between belong to the
     * comment, bar one after the '='. */
    if (c < i) {
        i = v0 < i && (s[v0] == ' ' || s[v0] == '\t') ? v0 + 1 : v0;
        c = i;
    }
    *vstart = i;
    *cstart = c;
}

/* ------------------------------------------------------------- checking */

static int check_name(const cdm_deffile *f, const char *name)
{
    if (!cdm__name_valid(name))
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: '%.64s' is not a valid definition name (1-255 "
                         "characters, no '[', ']', ':', line break or "
                         "control character, no blank at either end)",
                         f->path, name ? name : "(null)");
    if (cdm__is_header(name))
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: [%s] is a FireDAC header section, not a "
                         "definition", f->path, name);
    return CDM_OK;
}

static int check_key(const cdm_deffile *f, const char *name, const char *key)
{
    if (!cdm__key_valid(key))
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: definition '%s': '%.64s' is not a valid key "
                         "(1-64 characters, no '=', ':', blank, line break "
                         "or control character)",
                         f->path, name, key ? key : "(null)");
    return CDM_OK;
}

/* The definition `name`, which must exist. */
static int need_def(const cdm_deffile *f, const char *name, struct cdm_def **out)
{
    int rc;

    /* A name the file has is found as it is, whatever the rules for a new
     * one (cdm_deffile_names lists it). */
    if (name && (*out = find_def(f, name, NULL)) && !cdm__is_header(name))
        return CDM_OK;
    if ((rc = check_name(f, name)) != CDM_OK)
        return rc;
    if (!(*out = find_def(f, name, NULL)))
        return cdm__fail(CDM_ERR_NOT_FOUND, "%s: no definition named '%.64s'",
                         f->path, name);
    return CDM_OK;
}

/* ------------------------------------------------------------- opening */

static int split_lines(cdm_deffile *f, const char *buf, size_t len)
{
    size_t pos = 0;
    int rc = CDM_OK;

    while (len - pos >= 3 && memcmp(buf + pos, BOM, 3) == 0)
        pos += 3;
    f->bomlen = pos;
    f->no_final_eol = len > pos && buf[len - 1] != '\n';
    while (pos < len && rc == CDM_OK) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) + 1 : len - pos;
        if (f->nlines == 0 && nl && n >= 2 && buf[pos + n - 2] == '\r')
            f->eol = "\r\n";
        rc = insert_line(f, f->nlines, cdm__strndup(buf + pos, n), n);
        pos += n;
    }
    return rc;
}

static int take_values(cdm_deffile *f, const struct cdm_ini *ini)
{
    for (size_t i = 0; i < ini->nsections; i++) {
        const struct cdm_ini_section *s = &ini->sections[i];
        struct cdm_def *d = cdm__def_new(s->name, NULL, s->line);
        int rc = append_def(f, d);
        if (rc != CDM_OK)
            return rc;
        for (size_t j = 0; j < s->nkeys; j++)
            if ((rc = cdm__def_set(d, s->keys[j].key, s->keys[j].value,
                                   0)) != CDM_OK)
                return rc;
    }
    return CDM_OK;
}

/* Reads the file (if it exists) into `f`. */
static int load(cdm_deffile *f)
{
    struct cdm_ini *ini = NULL;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int rc;

    if (stat(f->target, &st) != 0 && errno == ENOENT) {
        f->existed = false;
        f->mode = 0600;
        f->uid = (uid_t)-1;
        f->gid = (gid_t)-1;
        return CDM_OK;
    }
    if ((rc = cdm__file_read(f->target, &buf, &len, &st)) != CDM_OK)
        return rc;
    /* Messages name the path the caller gave. */
    rc = cdm__ini_parse(f->path, buf, len, &ini);
    if (rc == CDM_OK)
        rc = split_lines(f, buf, len);
    if (rc == CDM_OK)
        rc = take_values(f, ini);
    cdm__ini_free(ini);
    if (rc != CDM_OK) {
        free(buf);
        return rc;
    }
    f->existed = true;
    f->orig = buf;
    f->origlen = len;
    f->mode = st.st_mode & 07777;
    f->uid = st.st_uid;
    f->gid = st.st_gid;
    return CDM_OK;
}

static int lock(cdm_deffile *f)
{
    int fd;

    if (f->lockfd >= 0)
        return CDM_OK;
    fd = open(f->lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return cdm__fail(CDM_ERR_IO, "%s: cannot create the lock file %s: %s",
                         f->path, f->lockpath, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return cdm__fail(CDM_ERR_IO, "%s: cannot lock %s: %s", f->path,
                             f->lockpath, strerror(e));
        }
    }
    f->lockfd = fd;
    return CDM_OK;
}

static void unlock(cdm_deffile *f)
{
    if (f->lockfd >= 0) {
        close(f->lockfd); /* releases the flock */
        f->lockfd = -1;
    }
}

static int open_file(const char *path, bool locked, cdm_deffile **out)
{
    cdm_deffile *f;
    char *real;
    int rc;

    if (!path || !out)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_open: %s is NULL",
                         path ? "out" : "path");
    *out = NULL;
    if (!(f = calloc(1, sizeof *f)))
        return cdm__nomem();
    f->lockfd = -1;
    f->eol = "\n";
    /* The rename must replace the file a symbolic link points to, not the
     * link. */
    real = realpath(path, NULL);
    f->path = cdm__strdup(path);
    f->target = real ? real : cdm__strdup(path);
    f->lockpath = f->target ? cdm__asprintf("%s.lock", f->target) : NULL;
    if (!f->path || !f->target || !f->lockpath)
        rc = cdm__nomem();
    else if (!locked || (rc = lock(f)) == CDM_OK)
        rc = load(f);
    if (rc != CDM_OK) {
        cdm_deffile_free(f);
        return rc;
    }
    *out = f;
    return CDM_OK;
}

int cdm_deffile_open(const char *path, cdm_deffile **out)
{
    return open_file(path, false, out);
}

int cdm_deffile_open_locked(const char *path, cdm_deffile **out)
{
    return open_file(path, true, out);
}

void cdm_deffile_free(cdm_deffile *f)
{
    if (!f)
        return;
    unlock(f);
    for (size_t i = 0; i < f->nlines; i++)
        free(f->lines[i].s);
    free(f->lines);
    for (size_t i = 0; i < f->ndefs; i++)
        cdm__def_free(f->defs[i]);
    free(f->defs);
    free(f->orig);
    free(f->path);
    free(f->target);
    free(f->lockpath);
    free(f);
}

void cdm_deffile_set_log(cdm_deffile *f, cdm_log_fn fn, void *user)
{
    if (f) {
        f->log = fn;
        f->log_user = user;
    }
}

const char *cdm_deffile_path(const cdm_deffile *f)
{
    return f ? f->path : NULL;
}

/* -------------------------------------------------------------- reading */

int cdm_deffile_names(cdm_deffile *f, char ***names, size_t *count)
{
    char **v;
    size_t n = 0;

    if (!f || !names)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_names: %s is NULL",
                         f ? "names" : "file");
    if (!(v = calloc(f->ndefs + 1, sizeof *v)))
        return cdm__nomem();
    for (size_t i = 0; i < f->ndefs; i++) {
        if (cdm__is_header(f->defs[i]->name))
            continue;
        if (!(v[n++] = cdm__strdup(f->defs[i]->name))) {
            cdm_strv_free(v);
            return cdm__nomem();
        }
    }
    *names = v;
    if (count)
        *count = n;
    return CDM_OK;
}

int cdm_deffile_keys(cdm_deffile *f, const char *name, char ***keys,
                     size_t *count)
{
    struct cdm_def *d;
    char **v;
    int rc;

    if (!f || !keys)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_keys: %s is NULL",
                         f ? "keys" : "file");
    if ((rc = need_def(f, name, &d)) != CDM_OK)
        return rc;
    if (!(v = calloc(d->nkv + 1, sizeof *v)))
        return cdm__nomem();
    for (size_t i = 0; i < d->nkv; i++)
        if (!(v[i] = cdm__strdup(d->kv[i].key))) {
            cdm_strv_free(v);
            return cdm__nomem();
        }
    *keys = v;
    if (count)
        *count = d->nkv;
    return CDM_OK;
}

int cdm_deffile_get(cdm_deffile *f, const char *name, const char *key,
                    char **value)
{
    struct cdm_def *d;
    struct cdm_kv *kv;
    int rc;

    if (!f || !value)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_get: %s is NULL",
                         f ? "value" : "file");
    *value = NULL;
    if ((rc = need_def(f, name, &d)) != CDM_OK)
        return rc;
    if ((!key || !cdm__def_find(d, key)) &&
        (rc = check_key(f, name, key)) != CDM_OK)
        return rc;
    if (!(kv = cdm__def_find(d, key)))
        return cdm__fail(CDM_ERR_NOT_FOUND, "%s: definition '%s' sets no %s",
                         f->path, d->name, key);
    if (!(*value = cdm__strdup(kv->value)))
        return cdm__nomem();
    return CDM_OK;
}

/* -------------------------------------------------------------- editing */

/* Undoes a definition appended at the end (out of memory half-way): its
 * value record and the lines from `from` on. */
static void drop_appended(cdm_deffile *f, size_t from)
{
    cdm__def_free(f->defs[--f->ndefs]);
    if (from < f->nlines)
        remove_lines(f, from, f->nlines);
}

int cdm_deffile_add(cdm_deffile *f, const char *name)
{
    size_t hdr;
    int rc;

    if (!f)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_add: file is NULL");
    if ((rc = check_name(f, name)) != CDM_OK)
        return rc;
    if (find_def(f, name, NULL))
        return cdm__fail(CDM_ERR_EXISTS, "%s: a definition named '%s' exists",
                         f->path, name);
    if ((rc = append_def(f, cdm__def_new(name, NULL, 0))) != CDM_OK)
        return rc;
    if ((rc = append_section(f, name, &hdr)) != CDM_OK)
        drop_appended(f, f->nlines);
    return rc;
}

/* Where a definition's block starts: its header, or the comment lines
 * right above it (no blank line between), which describe it. */
static size_t block_start(const cdm_deffile *f, size_t hdr)
{
    bool blank;

    while (hdr > 0 &&
           blank_or_comment(f->lines[hdr - 1].s, body_len(&f->lines[hdr - 1]),
                            &blank) && !blank &&
           (hdr < 2 || !continues(f, hdr - 2)))
        hdr--;
    return hdr;
}

int cdm_deffile_delete(cdm_deffile *f, const char *name)
{
    struct cdm_def *d;
    size_t i = 0, end, last, start;
    long hdr;
    int rc;

    if (!f)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_delete: file is NULL");
    if ((rc = need_def(f, name, &d)) != CDM_OK)
        return rc;
    if ((hdr = find_section(f, name, &end)) < 0)
        return cdm__fail(CDM_ERR_INVALID, "%s: [%s] not found in the text",
                         f->path, name);
    if ((rc = each_key(f, (size_t)hdr, end, NULL, &last, NULL, NULL)) != CDM_OK)
        return rc;
    /* The comment lines after the last key, before the next definition,
     * are that one's; the blank line that separated this block goes too. */
    start = block_start(f, (size_t)hdr);
    remove_lines(f, start, last);
    if ((start == 0 || is_blank(f, start - 1)) && is_blank(f, start))
        remove_lines(f, start, start + 1);
    else if (start == f->nlines && start > 0 && is_blank(f, start - 1))
        remove_lines(f, start - 1, start);
    find_def(f, d->name, &i);
    cdm__def_free(f->defs[i]);
    memmove(f->defs + i, f->defs + i + 1, (f->ndefs - i - 1) * sizeof *f->defs);
    f->ndefs--;
    return CDM_OK;
}

int cdm_deffile_rename(cdm_deffile *f, const char *from, const char *to)
{
    struct cdm_def *d, *other;
    struct dline *l;
    const char *open_b, *close_b;
    char *name, *s;
    size_t end;
    long hdr;
    int rc;

    if (!f)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_rename: file is NULL");
    if ((rc = need_def(f, from, &d)) != CDM_OK)
        return rc;
    if ((rc = check_name(f, to)) != CDM_OK)
        return rc;
    if ((other = find_def(f, to, NULL)) && other != d)
        return cdm__fail(CDM_ERR_EXISTS, "%s: a definition named '%s' exists",
                         f->path, to);
    if ((hdr = find_section(f, from, &end)) < 0 || continues(f, (size_t)hdr))
        return cdm__fail(CDM_ERR_INVALID,
                         "%s: the header line of [%s] cannot be edited",
                         f->path, from);
    /* Only the name between the brackets changes; blanks around it and
     * anything after the ']' stay. */
    l = &f->lines[hdr];
    open_b = memchr(l->s, '[', l->n);
    close_b = open_b ? memchr(open_b, ']', l->n - (size_t)(open_b - l->s)) : NULL;
    if (!close_b)
        return cdm__fail(CDM_ERR_INVALID, "%s: [%s] has no ']'", f->path, from);
    {
        const char *nm = open_b + 1;
        size_t n = (size_t)(close_b - nm);
        cdm__trim(&nm, &n);
        s = cdm__asprintf("%.*s%s%.*s", (int)(nm - l->s), l->s, to,
                          (int)(l->n - (size_t)(nm + n - l->s)), nm + n);
    }
    if (!s || !(name = cdm__strdup(to))) {
        free(s);
        return cdm__nomem();
    }
    free(l->s);
    l->s = s;
    l->n = strlen(s);
    free(d->name);
    d->name = name;
    return CDM_OK;
}

int cdm_deffile_copy(cdm_deffile *f, const char *from, const char *to)
{
    struct cdm_def *src, *d;
    size_t end, last, hdr, before = f ? f->nlines : 0;
    long h;
    int rc;

    if (!f)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_copy: file is NULL");
    if ((rc = need_def(f, from, &src)) != CDM_OK)
        return rc;
    if ((rc = check_name(f, to)) != CDM_OK)
        return rc;
    if (find_def(f, to, NULL))
        return cdm__fail(CDM_ERR_EXISTS, "%s: a definition named '%s' exists",
                         f->path, to);
    if ((h = find_section(f, from, &end)) < 0)
        return cdm__fail(CDM_ERR_INVALID, "%s: [%s] not found in the text",
                         f->path, from);
    if ((rc = each_key(f, (size_t)h, end, NULL, &last, NULL, NULL)) != CDM_OK)
        return rc;
    if (!(d = cdm__def_new(to, NULL, 0)))
        return cdm__nomem();
    for (size_t i = 0; i < src->nkv && rc == CDM_OK; i++)
        rc = cdm__def_set(d, src->kv[i].key, src->kv[i].value, 0);
    if (rc != CDM_OK) {
        cdm__def_free(d);
        return rc;
    }
    if ((rc = append_def(f, d)) != CDM_OK)
        return rc;
    /* The header, then the source's lines as they are (its keys and the
     * comments among them).  Appending only adds lines after them. */
    rc = append_section(f, to, &hdr);
    for (size_t i = logical_end(f, (size_t)h); i < last && rc == CDM_OK; i++) {
        const struct dline *l = &f->lines[i];
        rc = insert_line(f, f->nlines, cdm__strndup(l->s, l->n), l->n);
    }
    if (rc == CDM_OK)
        rc = end_last_line(f);
    if (rc != CDM_OK)
        drop_appended(f, before);
    return rc;
}

struct set_ctx {
    const char *name, *key, *value;
    bool done;
};

/* Replaces the logical key line [i, next) with the new value, keeping the
 * line's own text before the value and its trailing comment. */
static int replace_value(struct cdm_deffile *f, size_t i, size_t next,
                         void *arg)
{
    struct set_ctx *c = arg;
    const struct dline *l = &f->lines[i];
    size_t n = body_len(l), vstart, cstart;
    char *s;
    int rc;

    if (c->done) /* an earlier duplicate, shadowed by the last: left alone */
        return CDM_OK;
    c->done = true;
    if (next == i + 1) {
        split_value(l->s, n, &vstart, &cstart);
        rc = key_line(f, c->name, c->key, c->value, l->s, vstart,
                      l->s + cstart, n - cstart, &s);
    } else {
        /* A line continued with a backslash, in its value or before its
         * '=': rewritten as one line with the key as the reader reads it. */
        struct cdm_buf b = { 0 };
        const char *k = NULL;
        size_t kn = 0;
        char *key = NULL;
        if ((rc = logical(f, i, &b)) == CDM_OK &&
            classify(b.s, &k, &kn) == K_KEY && !(key = cdm__strndup(k, kn)))
            rc = cdm__nomem();
        cdm__buf_free(&b);
        if (rc == CDM_OK)
            rc = key_line(f, c->name, key ? key : c->key, c->value, NULL, 0,
                          "", 0, &s);
        free(key);
    }
    if (rc != CDM_OK)
        return rc;
    {
        char *full = cdm__asprintf("%s%s", s, f->eol);
        /* The last line of a file without a final line end keeps none. */
        bool had_eol = f->lines[next - 1].n &&
                       f->lines[next - 1].s[f->lines[next - 1].n - 1] == '\n';
        free(s);
        if (!full)
            return cdm__nomem();
        if (!had_eol)
            full[strlen(full) - strlen(f->eol)] = '\0';
        /* Keeps the line's own line end, CRLF or not. */
        if (had_eol && next == i + 1 && l->n >= 2 && l->s[l->n - 2] == '\r' &&
            strcmp(f->eol, "\r\n") != 0) {
            char *crlf = cdm__asprintf("%.*s\r\n", (int)(strlen(full) - 1), full);
            free(full);
            if (!(full = crlf))
                return cdm__nomem();
        }
        remove_lines(f, i, next);
        return insert_line(f, i, full, strlen(full));
    }
}

int cdm_deffile_set(cdm_deffile *f, const char *name, const char *key,
                    const char *value)
{
    struct set_ctx c = { name, key, value, false };
    struct cdm_def *d;
    struct cdm_kv *had;
    char *before = NULL, *hint = NULL, *line, where[512];
    size_t end, last;
    long hdr;
    int rc;

    if (!f)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_set: file is NULL");
    if (!value)
        return cdm_deffile_unset(f, name, key);
    if ((rc = need_def(f, name, &d)) != CDM_OK)
        return rc;
    /* A key the definition has is set as it is; a new one must be one a
     * file can hold. */
    if ((!key || !cdm__def_find(d, key)) &&
        (rc = check_key(f, name, key)) != CDM_OK)
        return rc;
    c.name = d->name;
    /* Refuses what the loader would refuse, before touching anything. */
    snprintf(where, sizeof where, "%s: definition '%s'", f->path, d->name);
    if ((rc = cdm__def_check_value(d, where, key, value, &hint)) != CDM_OK ||
        (rc = key_line(f, d->name, key, value, NULL, 0, "", 0, &line)) != CDM_OK) {
        free(hint);
        return rc;
    }
    free(line);
    if ((had = cdm__def_find(d, key)) && !(before = cdm__strdup(had->value))) {
        free(hint);
        return cdm__nomem();
    }
    rc = cdm__def_set(d, key, value, 0);
    if (rc == CDM_OK && (rc = cdm__def_check_pair(d)) != CDM_OK) {
        char *msg = cdm__strdup(cdm_errmsg());
        cdm__def_set(d, key, before, 0);
        rc = cdm__fail(rc, "%s: %s", f->path, msg ? msg : "bad value");
        free(msg);
    }
    free(before);
    if (rc != CDM_OK) {
        free(hint);
        return rc;
    }
    if ((hdr = find_section(f, d->name, &end)) < 0)
        rc = cdm__fail(CDM_ERR_INVALID, "%s: [%s] not found in the text",
                       f->path, d->name);
    else if (had)
        rc = each_key(f, (size_t)hdr, end, key, NULL, replace_value, &c);
    else if ((rc = each_key(f, (size_t)hdr, end, NULL, &last, NULL, NULL)) == CDM_OK &&
             (rc = key_line(f, d->name, key, value, NULL, 0, "", 0, &line)) == CDM_OK) {
        /* After the section's last key; a header on the file's last line
         * without a line end gets one first. */
        if (last == f->nlines)
            rc = end_last_line(f);
        if (rc == CDM_OK)
            rc = insert_text(f, last, line);
        free(line);
    }
    if (rc == CDM_OK && hint && f->log)
        f->log(CDM_LOG_WARN, hint, f->log_user);
    free(hint);
    return rc;
}

static int remove_key(struct cdm_deffile *f, size_t i, size_t next, void *arg)
{
    (void)arg;
    remove_lines(f, i, next);
    return CDM_OK;
}

int cdm_deffile_unset(cdm_deffile *f, const char *name, const char *key)
{
    struct cdm_def *d;
    size_t end;
    long hdr;
    int rc;

    if (!f)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_unset: file is NULL");
    if ((rc = need_def(f, name, &d)) != CDM_OK)
        return rc;
    if ((!key || !cdm__def_find(d, key)) &&
        (rc = check_key(f, name, key)) != CDM_OK)
        return rc;
    if (!cdm__def_find(d, key))
        return cdm__fail(CDM_ERR_NOT_FOUND, "%s: definition '%s' sets no %s",
                         f->path, d->name, key);
    if ((hdr = find_section(f, d->name, &end)) < 0)
        return cdm__fail(CDM_ERR_INVALID, "%s: [%s] not found in the text",
                         f->path, d->name);
    /* Every occurrence: an earlier duplicate would otherwise come back. */
    if ((rc = each_key(f, (size_t)hdr, end, key, NULL, remove_key, NULL)) != CDM_OK)
        return rc;
    return cdm__def_set(d, key, NULL, 0);
}

/* --------------------------------------------------------------- saving */

static char *text_of(const cdm_deffile *f, size_t *len)
{
    struct cdm_buf b = { 0 };

    /* The byte order marks as read (only a file read has any). */
    cdm__buf_add(&b, f->orig, f->bomlen);
    for (size_t i = 0; i < f->nlines; i++)
        cdm__buf_add(&b, f->lines[i].s, f->lines[i].n);
    /* A file that ended without a line end still does (lines added after
     * its last one gave that one a line end, for them to start on). */
    if (f->no_final_eol && b.len > f->bomlen && b.s[b.len - 1] == '\n')
        b.len -= b.len - 1 > f->bomlen && b.s[b.len - 2] == '\r' ? 2 : 1;
    cdm__buf_add(&b, "", 0);
    *len = b.len;
    return cdm__buf_take(&b);
}

/* Parses the new text with the loader's reader: it must read back exactly
 * the names, keys and values the edits made. */
static int verify(const cdm_deffile *f, const char *text, size_t len)
{
    struct cdm_ini *ini;
    int rc = cdm__ini_parse(f->path, text, len, &ini);

    if (rc != CDM_OK) {
        char *msg = cdm__strdup(cdm_errmsg());
        rc = cdm__fail(rc, "the edited file would not load, nothing was "
                       "written: %s", msg ? msg : "");
        free(msg);
        return rc;
    }
    if (ini->nsections != f->ndefs)
        rc = CDM_ERR_INVALID;
    for (size_t i = 0; rc == CDM_OK && i < ini->nsections; i++) {
        const struct cdm_ini_section *s = &ini->sections[i];
        const struct cdm_def *d = f->defs[i];
        if (strcmp(s->name, d->name) != 0 || s->nkeys != d->nkv)
            rc = CDM_ERR_INVALID;
        for (size_t j = 0; rc == CDM_OK && j < s->nkeys; j++) {
            const struct cdm_kv *kv = cdm__def_find(d, s->keys[j].key);
            if (!kv || strcmp(kv->value, s->keys[j].value) != 0)
                rc = CDM_ERR_INVALID;
        }
        if (rc != CDM_OK)
            rc = cdm__fail(rc, "%s: definition '%s' would not read back as "
                           "edited; nothing was written", f->path, d->name);
    }
    if (rc == CDM_ERR_INVALID && ini->nsections != f->ndefs)
        rc = cdm__fail(rc, "%s: the edited file would not read back as "
                       "edited; nothing was written", f->path);
    cdm__ini_free(ini);
    return rc;
}

/* CDM_ERR_CONFLICT unless the file on disk is still what was read. */
static int unchanged(const cdm_deffile *f)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int rc;

    if (stat(f->target, &st) != 0 && errno == ENOENT) {
        if (!f->existed)
            return CDM_OK;
        return cdm__fail(CDM_ERR_CONFLICT,
                         "%s: the file was removed since it was read; "
                         "nothing was written", f->path);
    }
    if (!f->existed)
        return cdm__fail(CDM_ERR_CONFLICT,
                         "%s: the file was created by someone else since it "
                         "was opened; nothing was written", f->path);
    if ((rc = cdm__file_read(f->target, &buf, &len, &st)) != CDM_OK)
        return rc;
    rc = len == f->origlen && memcmp(buf, f->orig, len) == 0
             ? CDM_OK
             : cdm__fail(CDM_ERR_CONFLICT,
                         "%s: the file changed on disk since it was read; "
                         "nothing was written (open it again and redo the "
                         "edit)", f->path);
    free(buf);
    return rc;
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Removes temporary files a crashed save left beside the file (under
 * the lock no other save is writing one). */
static void remove_leftovers(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t bl = strlen(base), tl = strlen(TMP_TAG);

    if (!d)
        return;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (nm[0] == '.' && strncmp(nm + 1, base, bl) == 0 &&
            strncmp(nm + 1 + bl, TMP_TAG, tl) == 0 &&
            strlen(nm + 1 + bl + tl) == 6)
            unlinkat(dirfd(d), nm, 0);
    }
    closedir(d);
}

static int replace_file(cdm_deffile *f, const char *text, size_t len)
{
    const char *slash = strrchr(f->target, '/');
    const char *base = slash ? slash + 1 : f->target;
    char *dir, *tmp = NULL;
    int fd = -1, dfd, rc = CDM_OK, e;

    /* The directory: "/" for "/x", "." for a bare name. */
    dir = !slash ? cdm__strdup(".")
                 : cdm__strndup(f->target, slash == f->target ? 1
                                : (size_t)(slash - f->target));
    if (!dir)
        return cdm__nomem();
    remove_leftovers(dir, base);
    if (!(tmp = cdm__asprintf("%s/.%s" TMP_TAG "XXXXXX", dir, base))) {
        free(dir);
        return cdm__nomem();
    }
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
        rc = cdm__fail(CDM_ERR_IO, "%s: cannot create a temporary file in "
                       "%s: %s", f->path, dir, strerror(errno));
        goto out;
    }
    /* The old file's owner (when allowed) and mode; 0600 for a new one. */
    if (f->existed && fchown(fd, f->uid, f->gid) != 0 && errno != EPERM)
        goto io;
    if (fchmod(fd, f->mode) != 0 || write_all(fd, text, len) != 0 ||
        fsync(fd) != 0)
        goto io;
    if (close(fd) != 0) {
        fd = -1;
        goto io;
    }
    fd = -1;
#ifdef CDM_TEST_DRIVER
    if (cdm__test_deffile_before_rename)
        cdm__test_deffile_before_rename(tmp);
#endif
    if (rename(tmp, f->target) != 0)
        goto io;
    free(tmp);
    tmp = NULL;
    /* The rename itself must reach the disk. */
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(dfd);
        close(dfd);
    }
    goto out;
io:
    e = errno;
    rc = cdm__fail(CDM_ERR_IO, "%s: %s; the file was not changed", f->path,
                   strerror(e));
out:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(dir);
    return rc;
}

int cdm_deffile_save(cdm_deffile *f)
{
    bool held;
    char *text;
    size_t len;
    int rc;

    if (!f)
        return cdm__fail(CDM_ERR_INVALID, "cdm_deffile_save: file is NULL");
    if (!(text = text_of(f, &len)))
        return cdm__nomem();
    if ((rc = verify(f, text, len)) != CDM_OK) {
        free(text);
        return rc;
    }
    held = f->lockfd >= 0;
    if ((rc = lock(f)) == CDM_OK && (rc = unchanged(f)) == CDM_OK &&
        (rc = replace_file(f, text, len)) == CDM_OK) {
        /* What is on disk now is what a later save compares with. */
        free(f->orig);
        f->orig = text;
        f->origlen = len;
        text = NULL;
        if (!f->existed) {
            f->existed = true;
            f->uid = getuid();
            f->gid = getgid();
        }
    }
    if (!held)
        unlock(f);
    free(text);
    return rc;
}
