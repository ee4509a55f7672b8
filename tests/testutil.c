/*
 * testutil.c - helpers shared by the Check suites.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <fcntl.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *tu_fixture(const char *rel)
{
    static char path[4096];

    snprintf(path, sizeof path, "%s/%s", FIXTURES, rel);
    return path;
}

char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/cdm-test-XXXXXX";
    char *d = mkdtemp(tmpl);

    ck_assert_ptr_nonnull(d);
    return strdup(d);
}

void tu_rmtree(char *dir)
{
    char cmd[4200];

    if (!dir)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}

static char *locale_dir;

static void remove_locale_dir(void)
{
    char cmd[4200];

    /* At exit, outside any test: nothing to assert. */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", locale_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", locale_dir);
    free(locale_dir);
    locale_dir = NULL;
}

void tu_comma_numeric(void)
{
    static const char *const names[] = { "de_DE.UTF-8", "de_DE.utf8",
                                         "fr_FR.UTF-8", "fr_FR.utf8" };
    char cmd[4300], buf[16];

    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (setlocale(LC_NUMERIC, names[i]))
            goto check;
    if (!locale_dir) {
        locale_dir = tu_tmpdir();
        atexit(remove_locale_dir);
        snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 "
                 "'%s/de_DE.UTF-8' >/dev/null 2>&1", locale_dir);
        ck_assert_msg(system(cmd) == 0, "localedef could not build de_DE."
                      "UTF-8: install the locales package (tests/deps.sh "
                      "test does)");
    }
    setenv("LOCPATH", locale_dir, 1);
    ck_assert_msg(setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL,
                  "de_DE.UTF-8 built in %s does not load", locale_dir);
check:
    snprintf(buf, sizeof buf, "%g", 0.5);
    ck_assert_str_eq(buf, "0,5");
}

void tu_c_numeric(void)
{
    ck_assert_ptr_nonnull(setlocale(LC_NUMERIC, "C"));
}

char *tu_write_bytes(const char *dir, const char *name, const void *content,
                     size_t len, mode_t mode)
{
    char *path;
    int fd;

    ck_assert_int_ne(asprintf(&path, "%s/%s", dir, name), -1);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

char *tu_write(const char *dir, const char *name, const char *content,
               mode_t mode)
{
    return tu_write_bytes(dir, name, content, strlen(content), mode);
}

bool tu_utf8_valid(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;

    while (*u) {
        unsigned c = *u, need, cp;
        if (c < 0x80) {
            u++;
            continue;
        }
        need = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
        if (!need || c > 0xf4)
            return false;
        cp = c & (0x3fu >> need);
        for (unsigned i = 1; i <= need; i++) {
            if ((u[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (u[i] & 0x3f);
        }
        if (cp < (need == 1 ? 0x80u : need == 2 ? 0x800u : 0x10000u) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        u += need + 1;
    }
    return true;
}

int64_t tu_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

double tu_limit_ms(double ms)
{
    const char *v = getenv("CK_TIMEOUT_MULTIPLIER");
    double f = v ? atof(v) : 1.0;

    return ms * (f > 1.0 ? f : 1.0);
}

void tu_log_init(struct tu_log *log)
{
    memset(log, 0, sizeof *log);
    pthread_mutex_init(&log->lock, NULL);
}

void tu_log_fn(int level, const char *message, void *user)
{
    struct tu_log *log = user;

    pthread_mutex_lock(&log->lock);
    if (log->n < TU_LOG_MAX) {
        log->levels[log->n] = level;
        snprintf(log->lines[log->n], sizeof log->lines[0], "%s", message);
        log->n++;
    }
    pthread_mutex_unlock(&log->lock);
}

int tu_log_count(struct tu_log *log, const char *needle)
{
    int n = 0;

    pthread_mutex_lock(&log->lock);
    for (int i = 0; i < log->n; i++)
        if (strstr(log->lines[i], needle))
            n++;
    pthread_mutex_unlock(&log->lock);
    return n;
}

static const char *env_or_null(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

void tu_need_server(const char *which, struct tu_server *out)
{
    const char *prefix = strcmp(which, "MYSQL") == 0 ? "CDM_TEST_MYSQL" : "CDM_TEST_PG";
    const char *required = getenv("CDM_REQUIRE_SERVERS");
    char var[64];

    snprintf(var, sizeof var, "%s_HOST", prefix);
    out->host = env_or_null(var);
    snprintf(var, sizeof var, "%s_PORT", strcmp(which, "PGBOUNCER") == 0 ?
             "CDM_TEST_PGBOUNCER" : prefix);
    out->port = env_or_null(var);
    snprintf(var, sizeof var, "%s_USER", prefix);
    out->user = env_or_null(var);
    snprintf(var, sizeof var, "%s_PASSWORD", prefix);
    out->password = env_or_null(var);
    snprintf(var, sizeof var, "%s_DB", prefix);
    out->db = env_or_null(var);
    if (out->host && out->port && out->user && out->password && out->db)
        return;
    if (required && strcmp(required, "1") == 0) {
        printf("FAIL: the %s test server is required (CDM_REQUIRE_SERVERS=1) "
               "but %s is not set; start it with tests/servers.sh\n", which, var);
        exit(1);
    }
    printf("SKIP: no %s test server (run tests/run.sh, or tests/servers.sh "
           "start and source its env file)\n", which);
    exit(77);
}

int tu_server_def(cdm_manager *m, const char *name, const char *driver_id,
                  const struct tu_server *srv, const char *const *extra)
{
    char driver[64], host[128], port[64], db[128], user[128], pw[256];
    const char *params[40] = { driver, host, port, db, user, pw };
    size_t n = 6;

    snprintf(driver, sizeof driver, "DriverID=%s", driver_id);
    snprintf(host, sizeof host, "Server=%s", srv->host);
    snprintf(port, sizeof port, "Port=%s", srv->port);
    snprintf(db, sizeof db, "Database=%s", srv->db);
    snprintf(user, sizeof user, "User_Name=%s", srv->user);
    snprintf(pw, sizeof pw, "Password=%s", srv->password);
    for (size_t i = 0; extra && extra[i] && n < 39; i++)
        params[n++] = extra[i];
    params[n] = NULL;
    return cdm_manager_add_def(m, name, params);
}

char *tu_servers(const char *fmt, ...)
{
    const char *script = getenv("CDM_SERVERS_SCRIPT");
    char args[2048], cmd[4096], buf[4096];
    size_t len = 0;
    va_list ap;
    FILE *f;

    if (!script)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "sh '%s' %s", script, args);
    if (!(f = popen(cmd, "r")))
        return NULL;
    buf[0] = '\0';
    while (len < sizeof buf - 1 && fgets(buf + len, (int)(sizeof buf - len), f))
        len = strlen(buf);
    if (pclose(f) != 0)
        return NULL;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    return strdup(buf);
}

static pid_t private_owner;
static char private_state[1024];

static void private_stop(void)
{
    /* Check forks every test: only the process that started them stops
     * them. */
    if (getpid() == private_owner && private_state[0])
        free(tu_servers("stop '%s'", private_state));
}

void tu_private_servers(void)
{
    char *state, path[1100], line[1024];
    FILE *f;

    if (!getenv("CDM_SERVERS_SCRIPT") || !(state = tu_servers("start")))
        return;   /* tu_need_server then skips or fails */
    snprintf(private_state, sizeof private_state, "%s", state);
    free(state);
    private_owner = getpid();
    atexit(private_stop);
    snprintf(path, sizeof path, "%s/env", private_state);
    if (!(f = fopen(path, "r")))
        return;
    while (fgets(line, sizeof line, f)) {
        char *eq, *name = line;
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(name, "export ", 7) == 0)
            name += 7;
        if (!(eq = strchr(name, '=')))
            continue;
        *eq = '\0';
        setenv(name, eq + 1, 1);
    }
    fclose(f);
}

int tu_env_ms(const char *name, int fallback_ms, int least_ms)
{
    const char *v = getenv(name);
    char *end;
    double s;

    if (!v || !*v)
        return fallback_ms;
    s = strtod(v, &end);
    if (*end || !(s > 0)) {
        printf("%s='%s' is not a positive number; using %g\n", name, v,
               fallback_ms / 1000.0);
        return fallback_ms;
    }
    return s > 600 ? 600000 : s < least_ms / 1000.0 ? least_ms : (int)(s * 1000);
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
