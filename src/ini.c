/*
 * ini.c - reads a definition file: a strict scan of our own for what
 * iniparser drops silently (names as written, line numbers, repeated
 * sections, NUL bytes, stray text) and iniparser 4.1 for the values.
 *
 * iniparser reports errors through one process-global callback, so every
 * use of it here is serialised by ini_lock and the callback is put back to
 * iniparser's default afterwards.  The file is read once; iniparser is
 * given the same bytes through a memory file, so the two passes cannot see
 * different contents even if the file is replaced meanwhile.
 */
#define _GNU_SOURCE
#include "cdm_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(HAVE_INIPARSER_INIPARSER_H)
#include <iniparser/iniparser.h>
#else
#include <iniparser.h>
#endif

/* Bigger than any sane definition file; keeps a mistaken path (a disk
 * image, /dev/zero) from eating memory. */
#define INI_MAX_SIZE (16u << 20)

/* iniparser 4.1 reads lines into 1024 bytes: 1022 characters, the
 * newline and the terminating NUL. */
#define INI_LINE_MAX 1022

static pthread_mutex_t ini_lock = PTHREAD_MUTEX_INITIALIZER;

/* Held across fork() (manager.c's handlers), so that a child never
 * inherits it locked by a thread it does not have. */
void cdm__ini_fork_lock(void)
{
    pthread_mutex_lock(&ini_lock);
}

void cdm__ini_fork_unlock(void)
{
    pthread_mutex_unlock(&ini_lock);
}
/* Guarded by ini_lock: the first error iniparser reported during a load. */
static char ini_error[512];
static bool ini_error_set;

static int ini_errback(const char *fmt, ...)
{
    va_list ap;

    if (ini_error_set)
        return 0;
    va_start(ap, fmt);
    vsnprintf(ini_error, sizeof ini_error, fmt, ap);
    va_end(ap);
    ini_error_set = true;
    return 0;
}

void cdm__ini_free(struct cdm_ini *ini)
{
    if (!ini)
        return;
    for (size_t i = 0; i < ini->nsections; i++) {
        struct cdm_ini_section *s = &ini->sections[i];
        for (size_t j = 0; j < s->nkeys; j++) {
            free(s->keys[j].key);
            free(s->keys[j].value);
        }
        free(s->keys);
        free(s->name);
    }
    for (size_t i = 0; i < ini->nwarnings; i++)
        free(ini->warnings[i]);
    free(ini->warnings);
    free(ini->sections);
    free(ini->path);
    free(ini->dir);
    free(ini);
}

static int warn(struct cdm_ini *ini, int line, const char *fmt, ...)
    CDM_PRINTF(3, 4);

static int warn(struct cdm_ini *ini, int line, const char *fmt, ...)
{
    struct cdm_buf b = { 0 };
    char **w;
    va_list ap;
    char text[512];

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cdm__buf_addf(&b, "%s:%d: %s", ini->path, line, text);
    if (b.failed ||
        !(w = realloc(ini->warnings, (ini->nwarnings + 1) * sizeof *w))) {
        cdm__buf_free(&b);
        return cdm__nomem();
    }
    ini->warnings = w;
    w[ini->nwarnings++] = cdm__buf_take(&b);
    return CDM_OK;
}

static int syntax(const struct cdm_ini *ini, int line, const char *fmt, ...)
    CDM_PRINTF(3, 4);

static int syntax(const struct cdm_ini *ini, int line, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return cdm__fail(CDM_ERR_PARSE, "%s:%d: %s", ini->path, line, text);
}

static struct cdm_ini_section *find_section(struct cdm_ini *ini,
                                            const char *name, size_t n)
{
    for (size_t i = 0; i < ini->nsections; i++)
        if (strlen(ini->sections[i].name) == n &&
            strncasecmp(ini->sections[i].name, name, n) == 0)
            return &ini->sections[i];
    return NULL;
}

static int add_section(struct cdm_ini *ini, const char *name, size_t n,
                       int line)
{
    struct cdm_ini_section *s, *first = find_section(ini, name, n);

    if (first)
        return syntax(ini, line,
                      "section [%.*s] repeated (first at line %d); "
                      "merge the two or rename one",
                      (int)n, name, first->line);
    s = realloc(ini->sections, (ini->nsections + 1) * sizeof *s);
    if (!s)
        return cdm__nomem();
    ini->sections = s;
    s = &s[ini->nsections];
    memset(s, 0, sizeof *s);
    if (!(s->name = cdm__strndup(name, n)))
        return cdm__nomem();
    s->line = line;
    ini->nsections++;
    return CDM_OK;
}

static int add_key(struct cdm_ini *ini, const char *key, size_t n, int line)
{
    struct cdm_ini_section *s = &ini->sections[ini->nsections - 1];
    struct cdm_ini_key *k;

    for (size_t i = 0; i < s->nkeys; i++) {
        k = &s->keys[i];
        if (strlen(k->key) == n && strncasecmp(k->key, key, n) == 0) {
            int first = k->line, rc;
            /* The last value wins, as in iniparser; the first is gone. */
            k->line = line;
            rc = warn(ini, line,
                      "key %.*s repeated in [%s] (first at line %d); "
                      "the last value wins",
                      (int)n, key, s->name, first);
            return rc;
        }
    }
    k = realloc(s->keys, (s->nkeys + 1) * sizeof *k);
    if (!k)
        return cdm__nomem();
    s->keys = k;
    k = &k[s->nkeys];
    memset(k, 0, sizeof *k);
    if (!(k->key = cdm__strndup(key, n)))
        return cdm__nomem();
    k->line = line;
    s->nkeys++;
    return CDM_OK;
}

/* Checks the value part of `key = value` the way iniparser will read it,
 * refusing what iniparser would silently misread. */
static int scan_value(struct cdm_ini *ini, int line, const char *key,
                      size_t klen, const char *v, size_t n)
{
    if (n && (v[0] == '"' || v[0] == '\'')) {
        const char *close = memchr(v + 1, v[0], n - 1);
        const char *rest;
        size_t rn;

        if (!close)
            return syntax(ini, line, "value of %.*s: missing closing %c",
                          (int)klen, key, v[0]);
        rest = close + 1;
        rn = n - (size_t)(rest - v);
        cdm__trim(&rest, &rn);
        if (rn && rest[0] != ';' && rest[0] != '#')
            return syntax(ini, line,
                          "value of %.*s: text after the closing quote",
                          (int)klen, key);
        return CDM_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] != ';' && v[i] != '#')
            continue;
        /* iniparser ends an unquoted value at the first ';' or '#'.  With
         * a blank before it that is a comment; glued to the value it is
         * probably part of it (a password, PGAdvanced) and gets cut. */
        if (i > 0 && v[i - 1] != ' ' && v[i - 1] != '\t')
            return warn(ini, line,
                        "value of %.*s is cut at '%c' (the rest is read as "
                        "a comment); write the value in double quotes if "
                        "it belongs to it",
                        (int)klen, key, v[i]);
        break;
    }
    return CDM_OK;
}

static int scan_line(struct cdm_ini *ini, int line, const char *s, size_t n)
{
    const char *eq, *key, *val;
    size_t klen, vlen;

    cdm__trim(&s, &n);
    if (n == 0 || s[0] == ';' || s[0] == '#')
        return CDM_OK;
    if (s[0] == '[') {
        const char *name = s + 1;
        size_t nn = n - 2;
        if (s[n - 1] != ']' || n < 2)
            return syntax(ini, line, "section header without closing ']'");
        cdm__trim(&name, &nn);
        if (nn == 0)
            return syntax(ini, line, "empty section name");
        if (memchr(name, '[', nn) || memchr(name, ']', nn))
            return syntax(ini, line, "'[' or ']' inside a section name");
        /* iniparser stores keys as "section:key"; a ':' would collide. */
        if (memchr(name, ':', nn))
            return syntax(ini, line, "':' inside a section name");
        return add_section(ini, name, nn, line);
    }
    /* The line is not quoted back: it may be a password missing its key. */
    if (!(eq = memchr(s, '=', n)))
        return syntax(ini, line,
                      "expected 'Key=Value', '[Name]' or a comment");
    key = s;
    klen = (size_t)(eq - s);
    cdm__trim(&key, &klen);
    if (klen == 0)
        return syntax(ini, line, "missing key name before '='");
    if (memchr(key, ':', klen))
        return syntax(ini, line, "':' inside key name %.*s", (int)klen, key);
    if (ini->nsections == 0)
        return syntax(ini, line,
                      "key %.*s is outside any section; add a [Name] line "
                      "above it", (int)klen, key);
    val = eq + 1;
    vlen = n - (size_t)(val - s);
    cdm__trim(&val, &vlen);
    if (scan_value(ini, line, key, klen, val, vlen) != CDM_OK)
        return CDM_ERR_PARSE;
    return add_key(ini, key, klen, line);
}

/* Splits into lines, joining those iniparser joins (a trailing '\'). */
static int scan(struct cdm_ini *ini, const char *buf, size_t len)
{
    struct cdm_buf logical = { 0 };
    int line = 0, start = 0, rc = CDM_OK;
    size_t pos = 0;

    while (pos < len && rc == CDM_OK) {
        const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        const char *t = s;
        size_t tn = n;

        pos += n + (nl ? 1 : 0);
        line++;
        /* iniparser reads lines as C strings: a NUL hides the rest. */
        if (memchr(s, '\0', n)) {
            rc = syntax(ini, line, "NUL byte in line");
            break;
        }
        /* iniparser's buffer holds 1023 bytes with the newline. */
        if (n > INI_LINE_MAX) {
            rc = syntax(ini, line, "line longer than %d characters "
                        "(iniparser's limit)", INI_LINE_MAX);
            break;
        }
        if (!logical.len)
            start = line;
        cdm__trim(&t, &tn);
        if (tn && t[tn - 1] == '\\') {
            bool first = logical.len == 0;
            /* iniparser joins the next line to this one; at the end of
             * the file it silently drops the line instead. */
            if (pos >= len) {
                rc = syntax(ini, line, "line ends with '\\' (which joins "
                            "the next line) but the file ends here");
                break;
            }
            cdm__buf_add(&logical, t, tn - 1);
            if (first && (t[0] == ';' || t[0] == '#'))
                rc = warn(ini, line,
                          "comment ends with '\\', so line %d is joined "
                          "to it and ignored", line + 1);
            else if (first && t[0] != '[')
                rc = warn(ini, line,
                          "line ends with '\\', so line %d is joined to "
                          "this value", line + 1);
            continue;
        }
        cdm__buf_add(&logical, s, n);
        if (logical.failed) {
            rc = cdm__nomem();
            break;
        }
        rc = scan_line(ini, start, logical.s, logical.len);
        logical.len = 0;
    }
    cdm__buf_free(&logical);
    return rc;
}

/* Turns iniparser's message ("iniparser: syntax error in F (12):...") into
 * ours, with the real path instead of the memory file's. */
static int iniparser_failure(const struct cdm_ini *ini)
{
    const char *p = ini_error, *in, *open;
    int line = 0;

    if (!ini_error_set)
        return cdm__fail(CDM_ERR_PARSE, "%s: iniparser could not read the file",
                         ini->path);
    if (strstr(p, "memory allocation"))
        return cdm__nomem();
    if (strstr(p, "cannot open"))
        return cdm__fail(CDM_ERR_IO, "%s: iniparser cannot open the file",
                         ini->path);
    if (strncmp(p, "iniparser: ", 11) == 0)
        p += 11;
    in = strstr(p, " in ");
    open = in ? strstr(in, " (") : NULL;
    if (open)
        line = atoi(open + 2);
    return cdm__fail(CDM_ERR_PARSE, "%s:%d: %.*s", ini->path, line,
                     in ? (int)(in - p) : (int)strcspn(p, "\n"), p);
}

/* Runs iniparser over `buf` and fills in every scanned key's value. */
static int read_values(struct cdm_ini *ini, const char *buf, size_t len,
                       bool had_bom)
{
    char path[64];
    const char *src = ini->path;
    dictionary *d;
    int mfd, rc = CDM_OK;

    mfd = memfd_create("cdm-ini", MFD_CLOEXEC);
    if (mfd >= 0) {
        size_t done = 0;
        while (done < len) {
            ssize_t w = write(mfd, buf + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
        if (done == len && access(path, R_OK) == 0)
            src = path;
    }
    if (src == ini->path && had_bom) {
        if (mfd >= 0)
            close(mfd);
        return cdm__fail(CDM_ERR_PARSE,
                         "%s:1: UTF-8 byte order mark: save the file without it",
                         ini->path);
    }

    pthread_mutex_lock(&ini_lock);
    ini_error_set = false;
    iniparser_set_error_callback(ini_errback);
    d = iniparser_load(src);
    iniparser_set_error_callback(NULL);
    if (!d)
        rc = iniparser_failure(ini);
    pthread_mutex_unlock(&ini_lock);
    if (mfd >= 0)
        close(mfd);
    if (rc != CDM_OK)
        return rc;

    for (size_t i = 0; i < ini->nsections && rc == CDM_OK; i++) {
        struct cdm_ini_section *s = &ini->sections[i];
        for (size_t j = 0; j < s->nkeys && rc == CDM_OK; j++) {
            struct cdm_buf k = { 0 };
            const char *v;
            char *lk;
            cdm__buf_addf(&k, "%s:%s", s->name, s->keys[j].key);
            if (!(lk = cdm__buf_take(&k))) {
                rc = cdm__nomem();
                break;
            }
            for (char *c = lk; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            v = iniparser_getstring(d, lk, NULL);
            free(lk);
            if (!v)
                rc = cdm__fail(CDM_ERR_PARSE,
                               "%s:%d: key %s could not be read back from "
                               "iniparser",
                               ini->path, s->keys[j].line, s->keys[j].key);
            else if (!(s->keys[j].value = cdm__strdup(v)))
                rc = cdm__nomem();
        }
    }
    iniparser_freedict(d);
    return rc;
}

static int read_all(const char *path, int fd, char **out, size_t *len)
{
    struct cdm_buf b = { 0 };
    char chunk[8192];

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            cdm__buf_free(&b);
            return cdm__fail(CDM_ERR_IO, "%s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > INI_MAX_SIZE) {
            cdm__buf_free(&b);
            return cdm__fail(CDM_ERR_IO, "%s: larger than %u bytes", path,
                             INI_MAX_SIZE);
        }
        cdm__buf_add(&b, chunk, (size_t)n);
    }
    /* An empty file still gets a buffer (""): the caller does pointer
     * arithmetic on it, which is undefined on NULL. */
    *len = b.len;
    if (!(*out = cdm__buf_take(&b)))
        return cdm__nomem();
    return CDM_OK;
}

static char *absolute_dir(const char *path)
{
    char *real = realpath(path, NULL), *slash, *dir;

    if (!real)
        return NULL;
    slash = strrchr(real, '/');
    dir = slash == real ? cdm__strdup("/") : cdm__strndup(real, (size_t)(slash - real));
    free(real);
    return dir;
}

int cdm__ini_parse(const char *path, const char *buf, size_t len,
                   struct cdm_ini **out)
{
    struct cdm_ini *ini;
    size_t skip;
    int rc;

    if (!(ini = calloc(1, sizeof *ini)) || !(ini->path = cdm__strdup(path))) {
        free(ini);
        return cdm__nomem();
    }
    /* UTF-8 byte order marks (Windows editors) are not part of line 1;
     * some tools add one to a file that has one already. */
    for (skip = 0; len - skip >= 3 && memcmp(buf + skip, "\xEF\xBB\xBF", 3) == 0;)
        skip += 3;
    rc = skip > 3 ? warn(ini, 1, "%zu UTF-8 byte order marks (one at most "
                         "is usual)", skip / 3) : CDM_OK;
    if (rc == CDM_OK)
        rc = scan(ini, buf + skip, len - skip);
    if (rc == CDM_OK)
        rc = read_values(ini, buf + skip, len - skip, skip != 0);
    if (rc != CDM_OK) {
        cdm__ini_free(ini);
        return rc;
    }
    *out = ini;
    return CDM_OK;
}

int cdm__file_read(const char *path, char **buf, size_t *len, struct stat *st)
{
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cdm__fail(CDM_ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(fd, st) != 0) {
        rc = cdm__fail(CDM_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return cdm__fail(CDM_ERR_IO, "%s: not a regular file", path);
    }
    if (st->st_mode & S_IWOTH) {
        close(fd);
        return cdm__fail(CDM_ERR_INSECURE,
                         "%s: refusing a world-writable definition file "
                         "(mode %04o); run: chmod o-w %s",
                         path, (unsigned)(st->st_mode & 07777), path);
    }
    rc = read_all(path, fd, buf, len);
    close(fd);
    return rc;
}

int cdm__ini_read(const char *path, struct cdm_ini **out)
{
    struct cdm_ini *ini = NULL;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int rc;

    rc = cdm__file_read(path, &buf, &len, &st);
    if (rc == CDM_OK)
        rc = cdm__ini_parse(path, buf, len, &ini);
    free(buf);
    if (rc != CDM_OK)
        return rc;
    ini->mode = (unsigned)(st.st_mode & 07777);
    if (!(ini->dir = absolute_dir(path))) {
        rc = cdm__fail(CDM_ERR_IO, "%s: %s", path, strerror(errno));
        cdm__ini_free(ini);
        return rc;
    }
    *out = ini;
    return CDM_OK;
}
