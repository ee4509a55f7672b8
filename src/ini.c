/*
 * ini.c - reads a definition file: one pass over its lines that keeps
 * names as written, line numbers, and refuses what iniparser would
 * silently misread (repeated sections, NUL bytes, stray text, unclosed
 * quotes), and reads each value exactly as iniparser 4.1 does.
 *
 * The values used to come from iniparser itself, but its dictionary finds
 * and inserts keys by a linear scan, so loading n keys took O(n^2) time
 * (10,000 definitions: over a second; 100,000: minutes), and 4.1 reads
 * only from a path, which for bytes already in memory meant /proc.
 * iniparser's rules for a line are few (see read_value); they are
 * followed here to the letter, and check_ini compares this reader with
 * iniparser 4.1 itself on every fixture and on generated lines, so the
 * two cannot drift apart unnoticed.  Sections are found through a hash
 * index: loading is linear in the file's size.
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
#include <sys/stat.h>
#include <unistd.h>

/* Bigger than any sane definition file; keeps a mistaken path (a disk
 * image, /dev/zero) from eating memory. */
#define INI_MAX_SIZE (16u << 20)

/* iniparser 4.1 reads lines into 1024 bytes: 1022 characters, the
 * newline and the terminating NUL. */
#define INI_LINE_MAX 1022

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
    for (size_t i = 0; i < ini->nwarnings; i++) {
        free(ini->warnings[i].section);
        free(ini->warnings[i].key);
        free(ini->warnings[i].text);
    }
    free(ini->warnings);
    free(ini->index);
    free(ini->sections);
    free(ini->path);
    free(ini->dir);
    free(ini);
}

/* A warning at `line` of the current section, about the key
 * [key, key + klen) when klen is not 0. */
static int warn(struct cdm_ini *ini, int line, const char *key, size_t klen,
                const char *fmt, ...) CDM_PRINTF(5, 6);

static int warn(struct cdm_ini *ini, int line, const char *key, size_t klen,
                const char *fmt, ...)
{
    struct cdm_ini_warning *w;
    struct cdm_buf b = { 0 };
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
    w = &w[ini->nwarnings];
    memset(w, 0, sizeof *w);
    w->line = line;
    w->text = cdm__buf_take(&b);
    ini->nwarnings++;
    if (ini->nsections &&
        !(w->section = cdm__strdup(ini->sections[ini->nsections - 1].name)))
        return cdm__nomem();
    if (klen && !(w->key = cdm__strndup(key, klen)))
        return cdm__nomem();
    return CDM_OK;
}

static int syntax(struct cdm_ini *ini, int line, const char *fmt, ...)
    CDM_PRINTF(3, 4);

static int syntax(struct cdm_ini *ini, int line, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ini->error_line = line;
    return cdm__fail(CDM_ERR_PARSE, "%s:%d: %s", ini->path, line, text);
}

/* ------------------------------------------------------------ the index */

/* Sections and keys by name, case-insensitively: one open-addressing
 * table for the file, so that a lookup costs the same with 10 sections
 * or 100,000.  A section's slot has key == NO_KEY. */
#define NO_KEY UINT32_MAX

struct cdm_ini_slot {
    uint64_t hash;      /* 0: empty */
    uint32_t section;
    uint32_t key;
};

static uint64_t name_hash(uint64_t h, const char *s, size_t n)
{
    /* FNV-1a over the lowercase bytes; never 0 (0 marks an empty slot). */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)tolower((unsigned char)s[i]);
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;
}

static bool slot_is(const struct cdm_ini *ini, const struct cdm_ini_slot *e,
                    uint32_t section, const char *name, size_t n)
{
    const char *have;

    if (e->key == NO_KEY) {
        if (section != NO_KEY)
            return false;
        have = ini->sections[e->section].name;
    } else {
        if (section == NO_KEY || e->section != section)
            return false;
        have = ini->sections[e->section].keys[e->key].key;
    }
    return strlen(have) == n && strncasecmp(have, name, n) == 0;
}

/* The slot of `name` (a key of `section`, or a section when NO_KEY):
 * where it is, or the empty slot where it goes.  *hash gets its hash. */
static struct cdm_ini_slot *index_find(const struct cdm_ini *ini,
                                       uint32_t section, const char *name,
                                       size_t n, uint64_t *hash)
{
    uint64_t h = name_hash(section == NO_KEY ? 0xcbf29ce484222325ULL
                                             : 0x84222325cbf29ce4ULL ^ section,
                           name, n);
    size_t mask = ini->index_cap - 1, i = (size_t)h & mask;

    *hash = h;
    for (;; i = (i + 1) & mask) {
        struct cdm_ini_slot *e = &ini->index[i];
        if (!e->hash || (e->hash == h && slot_is(ini, e, section, name, n)))
            return e;
    }
}

/* Room for one more entry, keeping the table at most half full. */
static int index_grow(struct cdm_ini *ini)
{
    struct cdm_ini_slot *old = ini->index;
    size_t cap = ini->index_cap ? ini->index_cap * 2 : 64;

    if ((ini->index_used + 1) * 2 <= ini->index_cap)
        return CDM_OK;
    if (!(ini->index = calloc(cap, sizeof *ini->index))) {
        ini->index = old;
        return cdm__nomem();
    }
    for (size_t i = 0; i < ini->index_cap; i++) {
        if (old[i].hash) {
            size_t j = (size_t)old[i].hash & (cap - 1);
            while (ini->index[j].hash)
                j = (j + 1) & (cap - 1);
            ini->index[j] = old[i];
        }
    }
    ini->index_cap = cap;
    free(old);
    return CDM_OK;
}

/* Room for one more of `n` elements in *v (capacity *cap), doubling:
 * loading stays linear however many sections and keys a file has. */
static bool grow(void **v, size_t *cap, size_t n, size_t size)
{
    void *p;
    size_t c;

    if (n < *cap)
        return true;
    c = *cap ? *cap * 2 : 8;
    if (!(p = realloc(*v, c * size)))
        return false;
    *v = p;
    *cap = c;
    return true;
}

static int add_section(struct cdm_ini *ini, const char *name, size_t n,
                       int line)
{
    struct cdm_ini_section *s;
    struct cdm_ini_slot *e;
    uint64_t h;
    int rc;

    if ((rc = index_grow(ini)) != CDM_OK)
        return rc;
    e = index_find(ini, NO_KEY, name, n, &h);
    if (e->hash)
        return syntax(ini, line,
                      "section [%.*s] repeated (first at line %d); "
                      "merge the two or rename one",
                      (int)n, name, ini->sections[e->section].line);
    if (ini->nsections >= NO_KEY)
        return syntax(ini, line, "too many sections");
    if (!grow((void **)&ini->sections, &ini->sections_cap, ini->nsections,
              sizeof *s))
        return cdm__nomem();
    s = ini->sections;
    s = &s[ini->nsections];
    memset(s, 0, sizeof *s);
    if (!(s->name = cdm__strndup(name, n)))
        return cdm__nomem();
    s->line = line;
    *e = (struct cdm_ini_slot){ h, (uint32_t)ini->nsections, NO_KEY };
    ini->index_used++;
    ini->nsections++;
    return CDM_OK;
}

/* A section's keys are looked for by a scan of the section while it has
 * at most this many (a definition has about ten: a scan stays in one
 * cache line or two, where the file-wide index would miss on every key of
 * a large file), and through the index beyond. */
#define KEY_SCAN 16

/* Puts key `ki` of section `si` in the index. */
static int index_key(struct cdm_ini *ini, uint32_t si, uint32_t ki)
{
    const char *key = ini->sections[si].keys[ki].key;
    struct cdm_ini_slot *e;
    uint64_t h;
    int rc;

    if ((rc = index_grow(ini)) != CDM_OK)
        return rc;
    e = index_find(ini, si, key, strlen(key), &h);
    *e = (struct cdm_ini_slot){ h, si, ki };
    ini->index_used++;
    return CDM_OK;
}

/* The key `key` of section `si`, or NULL. */
static struct cdm_ini_key *find_key(struct cdm_ini *ini, uint32_t si,
                                    const char *key, size_t n)
{
    struct cdm_ini_section *s = &ini->sections[si];
    struct cdm_ini_slot *e;
    uint64_t h;

    if (s->nkeys > KEY_SCAN) {
        e = index_find(ini, si, key, n, &h);
        return e->hash ? &s->keys[e->key] : NULL;
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        const char *have = s->keys[i].key;
        if (strncasecmp(have, key, n) == 0 && have[n] == '\0')
            return &s->keys[i];
    }
    return NULL;
}

/* Adds a key of the last section, taking `value`; a repeated key keeps
 * the last value, as iniparser does. */
static int add_key(struct cdm_ini *ini, const char *key, size_t n, int line,
                   char *value)
{
    uint32_t si = (uint32_t)(ini->nsections - 1);
    struct cdm_ini_section *s = &ini->sections[si];
    struct cdm_ini_key *k;
    int rc;

    if (!value)
        return cdm__nomem();
    if ((k = find_key(ini, si, key, n))) {
        int first = k->line;
        free(k->value);
        k->value = value;
        k->line = line;
        return warn(ini, line, key, n,
                    "key %.*s repeated in [%s] (first at line %d); "
                    "the last value wins",
                    (int)n, key, s->name, first);
    }
    if (!grow((void **)&s->keys, &s->keys_cap, s->nkeys, sizeof *k)) {
        free(value);
        return cdm__nomem();
    }
    k = s->keys;
    k = &k[s->nkeys];
    memset(k, 0, sizeof *k);
    k->value = value;
    if (!(k->key = cdm__strndup(key, n)))
        return cdm__nomem();
    k->line = line;
    s->nkeys++;
    /* Past the scan's limit: the keys so far go in the index, then each
     * new one. */
    if (s->nkeys == KEY_SCAN + 1) {
        for (uint32_t i = 0; i < s->nkeys; i++)
            if ((rc = index_key(ini, si, i)) != CDM_OK)
                return rc;
    } else if (s->nkeys > KEY_SCAN + 1) {
        return index_key(ini, si, (uint32_t)(s->nkeys - 1));
    }
    return CDM_OK;
}

/* ------------------------------------------------------------ the lines */

/* Blanks as iniparser 4.1 strips them (isspace in the C locale). */
static bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

static void strip(const char **s, size_t *n)
{
    while (*n && space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && space((*s)[*n - 1]))
        (*n)--;
}

/* The value of "key = value" as iniparser 4.1 reads it.  `v` is the text
 * after the '=', stripped.  iniparser tries, in order (sscanf):
 *   key = "value"   a double-quoted value: what is between the quotes,
 *   key = 'value'   a single-quoted one; kept as is, blanks included, and
 *                   with no escapes (a quote ends it); at least one
 *                   character between the quotes, else the next rule;
 *   key = value     up to the first ';' or '#', blanks stripped at both
 *                   ends, and "" or '' alone read as empty;
 *   key =           (or ; or # right after the '='): empty. */
static char *read_value(const char *v, size_t n)
{
    size_t end = 0;

    if (n >= 2 && (v[0] == '"' || v[0] == '\'')) {
        const char *close = memchr(v + 1, v[0], n - 1);
        size_t len = close ? (size_t)(close - v) - 1 : n - 1;
        if (len > 0)
            return cdm__strndup(v + 1, len);
    }
    while (end < n && v[end] != ';' && v[end] != '#')
        end++;
    n = end;
    strip(&v, &n);
    if (n == 2 && (memcmp(v, "\"\"", 2) == 0 || memcmp(v, "''", 2) == 0))
        n = 0;
    return cdm__strndup(v, n);
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
            return warn(ini, line, key, klen,
                        "value of %.*s is cut at '%c' (the rest is read as "
                        "a comment); write the value in double quotes if "
                        "it belongs to it",
                        (int)klen, key, v[i]);
        break;
    }
    return CDM_OK;
}

/* A name with a control character or invalid UTF-8 in it: refused, and
 * not quoted back (it could be a terminal escape); the offending byte is
 * shown as a number. */
static int unprintable(struct cdm_ini *ini, int line, const char *what,
                       const char *s, size_t at)
{
    unsigned char c = (unsigned char)s[at];

    return syntax(ini, line, "%s has %s (byte %zu of the name is 0x%02x); "
                  "names must be printable UTF-8", what,
                  c < 0x20 || c == 0x7f ? "a control character"
                                        : "invalid UTF-8", at + 1, c);
}

static int scan_line(struct cdm_ini *ini, int line, const char *s, size_t n)
{
    const char *eq, *key, *val;
    size_t klen, vlen, bad;

    strip(&s, &n);
    if (n == 0 || s[0] == ';' || s[0] == '#')
        return CDM_OK;
    if (s[0] == '[') {
        const char *name = s + 1;
        size_t nn = n - 2;
        if (s[n - 1] != ']' || n < 2)
            return syntax(ini, line, "section header without closing ']'");
        strip(&name, &nn);
        if (nn == 0)
            return syntax(ini, line, "empty section name");
        if ((bad = cdm__text_bad(name, nn)) < nn)
            return unprintable(ini, line, "section name", name, bad);
        if (nn > CDM_NAME_MAX)
            return syntax(ini, line, "section name longer than %d "
                          "characters", CDM_NAME_MAX);
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
    strip(&key, &klen);
    if (klen == 0)
        return syntax(ini, line, "missing key name before '='");
    if ((bad = cdm__text_bad(key, klen)) < klen)
        return unprintable(ini, line, "key name", key, bad);
    if (memchr(key, ':', klen))
        return syntax(ini, line, "':' inside key name %.*s", (int)klen, key);
    if (ini->nsections == 0)
        return syntax(ini, line,
                      "key %.*s is outside any section; add a [Name] line "
                      "above it", (int)klen, key);
    val = eq + 1;
    vlen = n - (size_t)(val - s);
    strip(&val, &vlen);
    if (scan_value(ini, line, key, klen, val, vlen) != CDM_OK)
        return CDM_ERR_PARSE;
    return add_key(ini, key, klen, line, read_value(val, vlen));
}

/* Splits into lines, joining those iniparser joins: a line that ends with
 * '\\' (blanks after it aside) loses it and its trailing blanks, and the
 * next line is appended as it is. */
static int scan(struct cdm_ini *ini, const char *buf, size_t len)
{
    struct cdm_buf logical = { 0 };
    int line = 0, start = 0, rc = CDM_OK;
    size_t pos = 0;

    while (pos < len && rc == CDM_OK) {
        const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        size_t tn = n;

        pos += n + (nl ? 1 : 0);
        line++;
        /* iniparser reads lines as C strings: a NUL hides the rest. */
        if (memchr(s, '\0', n)) {
            rc = syntax(ini, line, "NUL byte in line");
            break;
        }
        /* iniparser's buffer holds 1023 bytes with the newline, joined
         * lines included. */
        if (logical.len + n > INI_LINE_MAX) {
            rc = syntax(ini, line, logical.len
                        ? "lines joined by '\\' longer than %d characters "
                          "(iniparser's limit)"
                        : "line longer than %d characters (iniparser's limit)",
                        INI_LINE_MAX);
            break;
        }
        if (!logical.len)
            start = line;
        while (tn && space(s[tn - 1]))
            tn--;
        if (tn && s[tn - 1] == '\\') {
            const char *t = s;
            size_t first_n = tn;
            bool first = logical.len == 0;
            /* iniparser joins the next line to this one; at the end of
             * the file it silently drops the line instead. */
            if (pos >= len) {
                rc = syntax(ini, line, "line ends with '\\' (which joins "
                            "the next line) but the file ends here");
                break;
            }
            cdm__buf_add(&logical, s, tn - 1);
            strip(&t, &first_n);
            if (first && (t[0] == ';' || t[0] == '#'))
                rc = warn(ini, line, NULL, 0,
                          "comment ends with '\\', so line %d is joined "
                          "to it and ignored", line + 1);
            else if (first && t[0] != '[')
                rc = warn(ini, line, NULL, 0,
                          "line ends with '\\', so line %d is joined to "
                          "this value", line + 1);
            if (logical.failed)
                rc = cdm__nomem();
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
            return cdm__fail(CDM_ERR_IO, "%s: grew past %u MiB while "
                             "read; a definition file may have at most that",
                             path, INI_MAX_SIZE >> 20);
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
    int line;

    return cdm__ini_parse_at(path, buf, len, out, &line);
}

int cdm__ini_parse_at(const char *path, const char *buf, size_t len,
                      struct cdm_ini **out, int *line)
{
    struct cdm_ini *ini;
    size_t skip = 0;
    int rc = CDM_OK;

    *line = 0;
    if (!(ini = calloc(1, sizeof *ini)) || !(ini->path = cdm__strdup(path))) {
        free(ini);
        return cdm__nomem();
    }
    /* UTF-8 byte order marks (Windows editors) are not part of line 1;
     * some files have two, from two editors. */
    while (len - skip >= 3 && memcmp(buf + skip, "\xEF\xBB\xBF", 3) == 0)
        skip += 3;
    if (skip > 3)
        rc = warn(ini, 1, NULL, 0, "%zu UTF-8 byte order marks at the start "
                  "of the file (one is usual, none is best)", skip / 3);
    if (rc == CDM_OK)
        rc = scan(ini, buf + skip, len - skip);
    if (rc != CDM_OK) {
        if (rc == CDM_ERR_PARSE)
            *line = ini->error_line;
        cdm__ini_free(ini);
        return rc;
    }
    *out = ini;
    return CDM_OK;
}

int cdm__file_insecure(const char *path, const struct stat *st)
{
    if (!(st->st_mode & S_IWOTH))
        return CDM_OK;
    return cdm__fail(CDM_ERR_INSECURE,
                     "%s: refusing a world-writable definition file "
                     "(mode %04o); run: chmod o-w %s",
                     path, (unsigned)(st->st_mode & 07777), path);
}

static int file_read(const char *path, char **buf, size_t *len,
                     struct stat *st, bool any)
{
    int fd, rc;

    /* O_NONBLOCK: opening a FIFO would wait for a writer; it is refused
     * below like anything else that is not a regular file.  Reads of a
     * regular file ignore the flag. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return cdm__fail(CDM_ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(fd, st) != 0) {
        rc = cdm__fail(CDM_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return cdm__fail(CDM_ERR_IO, "%s: not a regular file (%s)", path,
                         S_ISDIR(st->st_mode)    ? "a directory"
                         : S_ISFIFO(st->st_mode) ? "a FIFO"
                         : S_ISCHR(st->st_mode)  ? "a character device"
                         : S_ISBLK(st->st_mode)  ? "a block device"
                         : S_ISSOCK(st->st_mode) ? "a socket"
                                                 : "not a file");
    }
    if (st->st_size > (off_t)INI_MAX_SIZE) {
        close(fd);
        return cdm__fail(CDM_ERR_IO, "%s: %lld bytes; a definition file may "
                         "have at most %u MiB", path,
                         (long long)st->st_size, INI_MAX_SIZE >> 20);
    }
    if (!any && (rc = cdm__file_insecure(path, st)) != CDM_OK) {
        close(fd);
        return rc;
    }
    rc = read_all(path, fd, buf, len);
    close(fd);
    return rc;
}

void cdm__filesig(const struct stat *st, struct cdm_filesig *out)
{
    out->dev = st->st_dev;
    out->ino = st->st_ino;
    out->size = st->st_size;
    out->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 +
                    st->st_mtim.tv_nsec;
}

bool cdm__filesig_eq(const struct cdm_filesig *a, const struct cdm_filesig *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns;
}

int cdm__file_read(const char *path, char **buf, size_t *len, struct stat *st)
{
    return file_read(path, buf, len, st, false);
}

int cdm__file_read_any(const char *path, char **buf, size_t *len,
                       struct stat *st)
{
    return file_read(path, buf, len, st, true);
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
    cdm__filesig(&st, &ini->sig);
    if (!(ini->dir = absolute_dir(path))) {
        rc = cdm__fail(CDM_ERR_IO, "%s: %s", path, strerror(errno));
        cdm__ini_free(ini);
        return rc;
    }
    *out = ini;
    return CDM_OK;
}
