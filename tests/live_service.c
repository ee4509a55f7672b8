/*
 * live_service.c - issue 11 end to end, as an operator sees it: a service
 * runs 16 threads of pooled connects on a definition file it watches
 * (cdm_manager_watch, 100 ms) while the real `cdm` command edits that
 * file, and an editor writes a bad value into it.
 *
 *   SQLite: POOL_MaximumItems 4 -> 8; `cdm set ... =lots` (refused by the
 *   command: nothing written); the same value written by an editor
 *   (refused by the service: logged once, the pool serving on); back to
 *   4; Database moved to a second file.
 *   PostgreSQL (when the test servers are up): the password of a role of
 *   its own rotated on the server (ALTER ROLE) and then in the file; a
 *   connection borrowed across the rotation finishes its work.
 *
 * The test is that no connect fails, that each change is adopted (within
 * a bound far above any interval, never a timing target) and that the bad
 * edit is logged exactly once.  How long each adoption took is printed,
 * for the README and the note.
 *
 * Usage: live_service [--interval MS] [--threads N]
 * Needs ./cdm (or $CDM_CLI); the PostgreSQL part needs CDM_TEST_PG_* and
 * CDM_SERVERS_SCRIPT (tests/servers.sh), and is skipped without them
 * unless CDM_REQUIRE_SERVERS=1.
 */
#include "cdm_int.h"   /* cdm__manager_watch_looks, a test hook */

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define ADOPT_LIMIT_MS 20000   /* a bound for "never", not a target */

static cdm_manager *m;
static const char *def_name;
static char dir[256], defs[300];
static int interval_ms = 100, nthreads = 16;
static atomic_bool stop;
static atomic_long ok_count, failed_count;
static atomic_int marker;             /* 1 or 2: the database last seen */
static atomic_llong marker2_ms;       /* when a worker first saw database 2 */
static char first_failure[1024];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int refusals;                  /* "were not reloaded" log lines */
static char refusal_text[1024];
static int failures;                  /* of this program's checks */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            failures++;                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

static void die(const char *what)
{
    fprintf(stderr, "live_service: %s: %s\n", what, cdm_errmsg());
    exit(1);
}

static void on_log(int level, const char *message, void *user)
{
    (void)user;
    pthread_mutex_lock(&log_lock);
    if (strstr(message, "were not reloaded")) {
        refusals++;
        snprintf(refusal_text, sizeof refusal_text, "%s", message);
    }
    pthread_mutex_unlock(&log_lock);
    if (level <= CDM_LOG_WARN)
        printf("  log: %s\n", message);
}

static int refusals_now(void)
{
    int n;

    pthread_mutex_lock(&log_lock);
    n = refusals;
    pthread_mutex_unlock(&log_lock);
    return n;
}

/* ------------------------------------------------------------ workers */

static void *worker(void *arg)
{
    const char *sql = arg;

    while (!atomic_load(&stop)) {
        cdm_conn *c = NULL;
        cdm_result *r = NULL;
        int rc = cdm_connect(m, def_name, &c);
        if (rc == CDM_OK)
            rc = cdm_query(c, sql, NULL, 0, &r);
        if (rc == CDM_OK) {
            const char *v = cdm_result_value(r, 0, 0);
            if (v && strcmp(v, "two") == 0) {
                long long zero = 0;
                atomic_store(&marker, 2);
                atomic_compare_exchange_strong(&marker2_ms, &zero, now_ms());
            }
            atomic_fetch_add(&ok_count, 1);
        } else if (atomic_fetch_add(&failed_count, 1) == 0) {
            snprintf(first_failure, sizeof first_failure, "%s: %s",
                     cdm_strerror(rc), cdm_errmsg());
        }
        cdm_result_free(r);
        cdm_disconnect(c);
    }
    return NULL;
}

/* ------------------------------------------------------- the operator */

/* Runs `cdm -f defs set NAME KEY=VALUE`; its exit status. */
static int cdm_set(const char *kv)
{
    const char *cli = getenv("CDM_CLI") ? getenv("CDM_CLI") : "./cdm";
    char *argv[] = { (char *)cli, "-f", defs, "set", (char *)def_name,
                     (char *)kv, NULL };
    pid_t pid;
    int st;

    if (posix_spawn(&pid, cli, NULL, NULL, argv, environ) != 0) {
        fprintf(stderr, "live_service: cannot run %s\n", cli);
        exit(1);
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Writes the file as an editor does: a new file renamed over it. */
static void editor_write(const char *text)
{
    char tmp[320];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.edit", defs);
    if (!(f = fopen(tmp, "w")) || fputs(text, f) < 0 || fclose(f) != 0 ||
        chmod(tmp, 0600) != 0 || rename(tmp, defs) != 0) {
        perror("live_service: writing the file");
        exit(1);
    }
}

static bool param_is(const char *key, const char *want)
{
    char *v = NULL;
    bool same = cdm_manager_get_param(m, def_name, key, &v) == CDM_OK &&
                strcmp(v, want) == 0;

    cdm_free(v);
    return same;
}

static cdm_pool_stats stats(void)
{
    cdm_pool_stats s;

    memset(&s, 0, sizeof s);
    cdm_manager_pool_stats(m, def_name, &s);
    return s;
}

static bool total_at_most(int64_t n) { return stats().total <= n; }
static bool total_reaches(int64_t n) { return stats().total >= n; }

/* Milliseconds from t0 until cond holds, -1 if it never does. */
#define WAIT_MS(t0, cond)                                                    \
    ({                                                                       \
        long long w_end_ = now_ms() + ADOPT_LIMIT_MS, w_at_ = -1;            \
        for (;;) {                                                           \
            if (cond) {                                                      \
                w_at_ = now_ms() - (t0);                                     \
                break;                                                       \
            }                                                                \
            if (now_ms() > w_end_)                                           \
                break;                                                       \
            pause_ms(1);                                                     \
        }                                                                    \
        w_at_;                                                               \
    })

static void row(const char *step, long long def_ms, long long pool_ms,
                const char *pool_what)
{
    printf("| %-44s | %8lld | %8lld | %s |\n", step, def_ms, pool_ms,
           pool_what);
}

static void start_workers(pthread_t *t, const char *sql)
{
    atomic_store(&stop, false);
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)sql) != 0) {
            perror("live_service: pthread_create");
            exit(1);
        }
}

static void stop_workers(pthread_t *t)
{
    atomic_store(&stop, true);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
}

static void make_db(const char *path, const char *v)
{
    const char *p[] = { "DriverID=SQLite", NULL, NULL };
    char db[320], sql[128];
    cdm_conn *c = NULL;

    snprintf(db, sizeof db, "Database=%s", path);
    p[1] = db;
    if (cdm_manager_add_def(m, "Setup", p) != CDM_OK ||
        cdm_connect(m, "Setup", &c) != CDM_OK ||
        cdm_exec(c, "CREATE TABLE marker (v TEXT)", NULL, 0, NULL) != CDM_OK)
        die("making a database");
    snprintf(sql, sizeof sql, "INSERT INTO marker VALUES ('%s')", v);
    if (cdm_exec(c, sql, NULL, 0, NULL) != CDM_OK)
        die("making a database");
    cdm_disconnect(c);
    cdm_manager_delete_def(m, "Setup");
}

/* ------------------------------------------------------------- SQLite */

static void sqlite_run(void)
{
    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    char one[300], two[300], text[1024], kv[400];
    long long t0, d, p;
    uint64_t looks;

    snprintf(one, sizeof one, "%s/one.db", dir);
    snprintf(two, sizeof two, "%s/two.db", dir);
    make_db(one, "one");
    make_db(two, "two");
    snprintf(text, sizeof text, "[Live]\nDriverID=SQLite\nDatabase=%s\n"
             "Pooled=True\nPOOL_MaximumItems=4\nPOOL_AcquireTimeout=30000\n",
             one);
    editor_write(text);
    def_name = "Live";
    if (cdm_manager_load_file(m, defs) != CDM_OK ||
        cdm_manager_watch(m, interval_ms) != CDM_OK)
        die("loading");
    start_workers(t, "SELECT v FROM marker");
    if (WAIT_MS(now_ms(), total_reaches(4)) < 0)
        CHECK(0, "the pool never reached 4 connections");

    printf("\nSQLite, %d threads, watch every %d ms\n\n", nthreads,
           interval_ms);
    printf("| %-44s | %8s | %8s | %s |\n", "step (after the save returns)",
           "defs ms", "pool ms", "pool shows it by");
    printf("|---|--:|--:|---|\n");

    t0 = now_ms();
    CHECK(cdm_set("POOL_MaximumItems=8") == 0, "cdm set 8 failed");
    d = WAIT_MS(t0, param_is("POOL_MaximumItems", "8"));
    p = WAIT_MS(t0, total_reaches(8));
    CHECK(d >= 0 && p >= 0, "POOL_MaximumItems=8 not adopted");
    row("`cdm set Live POOL_MaximumItems=8`", d, p, "8 connections open");

    /* The command refuses the bad value itself: nothing is written. */
    CHECK(cdm_set("POOL_MaximumItems=lots") == 1,
          "cdm set lots was not refused by the command");
    CHECK(param_is("POOL_MaximumItems", "8"), "lots reached the service");

    /* An editor writes it anyway: the service refuses it, once. */
    snprintf(text, sizeof text, "[Live]\nDriverID=SQLite\nDatabase=%s\n"
             "Pooled=True\nPOOL_MaximumItems=lots\nPOOL_AcquireTimeout=30000\n",
             one);
    t0 = now_ms();
    editor_write(text);
    d = WAIT_MS(t0, refusals_now() >= 1);
    CHECK(d >= 0, "the bad edit was never logged");
    looks = cdm__manager_watch_looks(m);
    CHECK(WAIT_MS(now_ms(), cdm__manager_watch_looks(m) >= looks + 3) >= 0,
          "the watch stopped looking");
    CHECK(refusals_now() == 1, "the bad edit was logged %d times",
          refusals_now());
    CHECK(strstr(refusal_text, "defs.ini:5:") != NULL,
          "the refusal does not name the line: %s", refusal_text);
    CHECK(param_is("POOL_MaximumItems", "8"), "the bad edit was applied");
    row("editor writes `POOL_MaximumItems=lots`", d, -1,
        "refused, logged once; pool unchanged");

    t0 = now_ms();
    CHECK(cdm_set("POOL_MaximumItems=4") == 0, "cdm set 4 failed");
    d = WAIT_MS(t0, param_is("POOL_MaximumItems", "4"));
    p = WAIT_MS(t0, total_at_most(4));
    CHECK(d >= 0 && p >= 0, "POOL_MaximumItems=4 not adopted");
    row("`cdm set Live POOL_MaximumItems=4`", d, p, "at most 4 open");

    snprintf(kv, sizeof kv, "Database=%s", two);
    t0 = now_ms();
    CHECK(cdm_set(kv) == 0, "cdm set Database failed");
    d = WAIT_MS(t0, param_is("Database", two));
    p = WAIT_MS(t0, atomic_load(&marker) == 2);
    CHECK(d >= 0 && p >= 0, "the second database was never used");
    row("`cdm set Live Database=two.db`", d, p, "a query read two.db");

    stop_workers(t);
    printf("\nconnects: %ld ok, %ld failed%s%s\n", atomic_load(&ok_count),
           atomic_load(&failed_count), first_failure[0] ? "; first: " : "",
           first_failure);
    CHECK(atomic_load(&failed_count) == 0, "connects failed");
    free(t);
}

/* --------------------------------------------------------- PostgreSQL */

/* Runs SQL as the test servers' administrator. */
static int admin_sql(const char *sql)
{
    const char *script = getenv("CDM_SERVERS_SCRIPT");
    char *argv[] = { "sh", (char *)script, "psql", (char *)sql, NULL };
    pid_t pid;
    int st;

    if (!script || posix_spawnp(&pid, "sh", NULL, NULL, argv, environ) != 0)
        return -1;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void pg_run(void)
{
    const char *host = getenv("CDM_TEST_PG_HOST"), *port = getenv("CDM_TEST_PG_PORT");
    const char *db = getenv("CDM_TEST_PG_DB");
    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    char role[64], sql[256], text[1024], pw_old[40], pw_new[40], kv[64];
    cdm_conn *held = NULL;
    cdm_result *r = NULL;
    int64_t created;
    long long t0, d, p;

    if (!host || !port || !db || !getenv("CDM_SERVERS_SCRIPT")) {
        const char *req = getenv("CDM_REQUIRE_SERVERS");
        printf("\nPostgreSQL: skipped (no test servers)\n");
        CHECK(!(req && strcmp(req, "1") == 0),
              "CDM_REQUIRE_SERVERS=1 but no PostgreSQL");
        return;
    }
    snprintf(role, sizeof role, "cdm_rotate_%d", (int)getpid());
    snprintf(pw_old, sizeof pw_old, "Old-%d-%lld", (int)getpid(), now_ms());
    snprintf(pw_new, sizeof pw_new, "New-%d-%lld", (int)getpid(), now_ms());
    snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN PASSWORD '%s'", role, pw_old);
    if (admin_sql(sql) != 0) {
        CHECK(0, "cannot create role %s", role);
        return;
    }
    snprintf(text, sizeof text, "[Rot]\nDriverID=PG\nServer=%s\nPort=%s\n"
             "Database=%s\nUser_Name=%s\nPassword=%s\nPooled=True\n"
             "POOL_MaximumItems=4\nPOOL_AcquireTimeout=30000\n",
             host, port, db, role, pw_old);
    /* A service of its own, on a file of its own. */
    cdm_manager_free(m);
    if (cdm_manager_new(&m) != CDM_OK)
        die("cdm_manager_new");
    cdm_manager_set_log(m, on_log, NULL);
    snprintf(defs, sizeof defs, "%s/pg.ini", dir);
    editor_write(text);
    def_name = "Rot";
    atomic_store(&ok_count, 0);
    if (cdm_manager_load_file(m, defs) != CDM_OK ||
        cdm_manager_watch(m, interval_ms) != CDM_OK)
        die("loading the PostgreSQL file");
    /* One connection borrowed across the rotation: it must finish. */
    if (cdm_connect(m, "Rot", &held) != CDM_OK)
        die("connecting as the new role");
    start_workers(t, "SELECT 1");
    if (WAIT_MS(now_ms(), total_reaches(4)) < 0)
        CHECK(0, "the pool never reached 4 connections");
    created = stats().created;

    printf("\nPostgreSQL, password rotated (%d threads)\n\n", nthreads);
    printf("| %-44s | %8s | %8s | %s |\n", "step (after the save returns)",
           "defs ms", "pool ms", "pool shows it by");
    printf("|---|--:|--:|---|\n");
    snprintf(sql, sizeof sql, "ALTER ROLE %s PASSWORD '%s'", role, pw_new);
    CHECK(admin_sql(sql) == 0, "ALTER ROLE failed");
    snprintf(kv, sizeof kv, "Password=%s", pw_new);
    t0 = now_ms();
    CHECK(cdm_set(kv) == 0, "cdm set Password failed");
    d = WAIT_MS(t0, param_is("Password", pw_new));
    p = WAIT_MS(t0, stats().created > created);
    CHECK(d >= 0 && p >= 0, "the new password was never used");
    row("ALTER ROLE, then `cdm set Rot Password=...`", d, p,
        "a connection opened with it");
    /* The borrowed connection finishes its work on its session. */
    CHECK(cdm_query(held, "SELECT current_user", NULL, 0, &r) == CDM_OK &&
          strcmp(cdm_result_value(r, 0, 0), role) == 0,
          "the borrowed connection broke: %s", cdm_errmsg());
    cdm_result_free(r);
    cdm_disconnect(held);
    stop_workers(t);
    printf("\nconnects: %ld ok, %ld failed%s%s\n", atomic_load(&ok_count),
           atomic_load(&failed_count), first_failure[0] ? "; first: " : "",
           first_failure);
    CHECK(atomic_load(&failed_count) == 0, "connects failed");
    cdm_manager_close_def(m, "Rot");
    snprintf(sql, sizeof sql, "DROP ROLE %s", role);
    /* Sessions of the role may still be closing: try for a while. */
    for (int i = 0; i < 50 && admin_sql(sql) != 0; i++)
        pause_ms(100);
    free(t);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--interval") == 0)
            interval_ms = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            nthreads = atoi(argv[i + 1]);
    }
    if (interval_ms < 10 || nthreads < 1) {
        fprintf(stderr, "usage: live_service [--interval MS] [--threads N]\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/cdm-live-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("live_service: mkdtemp");
        return 1;
    }
    snprintf(defs, sizeof defs, "%s/defs.ini", dir);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (cdm_manager_new(&m) != CDM_OK)
        die("cdm_manager_new");
    cdm_manager_set_log(m, on_log, NULL);
    sqlite_run();
    pg_run();
    cdm_manager_free(m);
    {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "live_service: could not remove %s\n", dir);
    }
    printf("\n%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
