/*
 * testutil.c - helpers shared by the Check suites.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
