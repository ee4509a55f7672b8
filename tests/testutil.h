/*
 * testutil.h - helpers shared by the Check suites: fixture paths, files
 * written into a scratch directory, a log callback that records messages.
 */
#ifndef CDM_TESTUTIL_H
#define CDM_TESTUTIL_H

#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cdm.h>

/* Absolute path of a fixture, e.g. tu_fixture("good/basic.ini").  Static
 * buffer, overwritten by the next call. */
const char *tu_fixture(const char *rel);

/* A fresh scratch directory (removed with tu_rmtree). */
char *tu_tmpdir(void);
void tu_rmtree(char *dir);   /* removes and frees */

/* Writes `content` to dir/name with `mode`; returns the malloc'd path. */
char *tu_write(const char *dir, const char *name, const char *content,
               mode_t mode);
/* Same with `len` bytes (may hold NUL bytes). */
char *tu_write_bytes(const char *dir, const char *name, const void *content,
                     size_t len, mode_t mode);

/* Switches LC_NUMERIC to a locale whose decimal separator is a comma
 * (German), built with localedef into a scratch directory (LOCPATH) when
 * the system has none; fails the test if it cannot (the `locales`
 * package has the sources; tests/deps.sh test installs it).
 * tu_c_numeric() switches back. */
void tu_comma_numeric(void);
void tu_c_numeric(void);

/* Asserts that cell (row, col) of `r` reads as the text `text`, when not
 * NULL, and as the double `want` (exactly). */
#define ck_cell_double(r, row, col, text, want)                              \
    do {                                                                     \
        double ck_d_;                                                        \
        const char *ck_t_ = (text);                                          \
        if (ck_t_)                                                           \
            ck_assert_str_eq(cdm_result_value((r), (row), (col)), ck_t_);    \
        ck_status(cdm_result_double((r), (row), (col), &ck_d_), CDM_OK);     \
        ck_assert_msg(ck_d_ == (want), "cell %d,%d: %.17g, want %.17g",     \
                      (int)(row), (int)(col), ck_d_, (double)(want));        \
    } while (0)

/* True if s is valid UTF-8 (no overlong forms, surrogates or more than
 * U+10FFFF). */
bool tu_utf8_valid(const char *s);

/* Records log messages; install with cdm_manager_set_log(m, tu_log_fn, &log). */
#define TU_LOG_MAX 64
struct tu_log {
    pthread_mutex_t lock;
    int n;
    int levels[TU_LOG_MAX];
    char lines[TU_LOG_MAX][1024];
};
void tu_log_init(struct tu_log *log);
void tu_log_fn(int level, const char *message, void *user);
/* How many recorded messages contain `needle`. */
int tu_log_count(struct tu_log *log, const char *needle);

/* Milliseconds on the monotonic clock.  Asserts nothing (a forked child
 * may call it). */
int64_t tu_now_ms(void);
/* Sleeps `ms` milliseconds, resuming after a signal.  Asserts nothing. */
void tu_sleep_ms(int ms);

/* A time limit of `ms`, stretched by CK_TIMEOUT_MULTIPLIER as Check
 * stretches its own timeouts (valgrind and the sanitizers set it). */
double tu_limit_ms(double ms);

/* Polls `cond` every 2 ms for at most `limit_ms`, stretched as
 * tu_limit_ms says.  For waiting on state another thread reaches, never as
 * a speed target. */
#define tu_wait_for(cond, limit_ms)                                          \
    do {                                                                     \
        int64_t wf_d_ = tu_now_ms() + (int64_t)tu_limit_ms(limit_ms);        \
        while (!(cond) && tu_now_ms() < wf_d_)                               \
            tu_sleep_ms(2);                                                  \
    } while (0)

/* The same, then asserts it. */
#define ck_eventually(cond, limit_ms)                                        \
    do {                                                                     \
        tu_wait_for(cond, limit_ms);                                         \
        ck_assert_msg((cond), "not true within %.0f ms: %s",                 \
                      tu_limit_ms(limit_ms), #cond);                         \
    } while (0)

/* Asserts that `status` is `want`, printing cdm_errmsg() when not. */
#define ck_status(status, want)                                              \
    do {                                                                     \
        int ck_s_ = (status), ck_w_ = (want);                                \
        ck_assert_msg(ck_s_ == ck_w_, "%s: got %s (%d), want %s (%d): %s",   \
                      #status, cdm_strerror(ck_s_), ck_s_,                   \
                      cdm_strerror(ck_w_), ck_w_, cdm_errmsg());             \
    } while (0)

/* Asserts that cdm_errmsg() contains `needle`. */
#define ck_errmsg_has(needle)                                                \
    ck_assert_msg(strstr(cdm_errmsg(), (needle)) != NULL,                    \
                  "errmsg '%s' lacks '%s'", cdm_errmsg(), (needle))

/* A test database server started by tests/servers.sh, from the CDM_TEST_*
 * variables it writes.  `which` is "PG", "MYSQL" or "PGBOUNCER" (host,
 * user, password and database of PG, port of PgBouncer). */
struct tu_server {
    const char *host, *port, *user, *password, *db;
};
/* Fills `out`, or ends the program: exit 77 (automake's SKIP, with a line
 * saying why) when the server is not there, exit 1 instead when
 * CDM_REQUIRE_SERVERS=1.  Call from main() before running the suite. */
void tu_need_server(const char *which, struct tu_server *out);
/* Adds definition `name` on `srv` with driver `driver_id` and extra
 * "Key=Value" strings (NULL-terminated, may be NULL). */
int tu_server_def(cdm_manager *m, const char *name, const char *driver_id,
                  const struct tu_server *srv, const char *const *extra);
/* Runs tests/servers.sh with the arguments (printf-style, e.g.
 * "restart-pg" or "psql \"SELECT 1\""); returns its output without the
 * trailing newline (free it), or NULL if it failed. */
char *tu_servers(const char *fmt, ...);

/* Starts a server set of this program's own (tests/servers.sh start, when
 * CDM_SERVERS_SCRIPT says where it is), points the CDM_TEST_* variables
 * at it, and stops it when the program exits.  For suites that stop and
 * restart servers, so that suites running beside them are not cut off. */
void tu_private_servers(void);

/* The seconds in environment variable `name` (e.g. "0.5") as ms, at
 * least `least_ms` and at most 600 s; `fallback_ms` when unset, or (saying
 * so) when not a positive number.  For how long a hammering test runs. */
int tu_env_ms(const char *name, int fallback_ms, int least_ms);

/* Runs the suite and returns the process exit status. */
int tu_run(Suite *s);

#endif
