/*
 * fault_driver.c - the fault-injecting test driver (DriverID=Fault), built
 * into the test library only (see fault_driver.h).
 */
#include "../src/cdm_int.h"
#include "fault_driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fault_ctl fault;
static atomic_int next_id;

struct fconn {
    int id;
    int epoch;
    bool dead;
    bool in_tx;
    bool session;
};

void fault_reset(void)
{
    memset(&fault, 0, sizeof fault);
    atomic_store(&next_id, 0);
}

void fault_kill_all(void)
{
    atomic_fetch_add(&fault.kill_epoch, 1);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    while (ms > 0 && nanosleep(&ts, &ts) != 0)
        ;
}

/* Takes one from a failure budget; true if this call must fail. */
static bool take(atomic_int *budget)
{
    int n = atomic_load(budget);

    while (n > 0)
        if (atomic_compare_exchange_weak(budget, &n, n - 1))
            return true;
    return false;
}

static bool is_dead(const struct fconn *f)
{
    return f->dead || f->epoch < atomic_load(&fault.kill_epoch);
}

static int f_connect(const struct cdm_resolved *r, void **out)
{
    struct fconn *f;
    int now, peak;

    atomic_fetch_add(&fault.connect_attempts, 1);
    sleep_ms(atomic_load(&fault.connect_delay_ms));
    for (int i = 0; i < 30000 && atomic_load(&fault.connect_hold); i++)
        sleep_ms(1);
    if (take(&fault.connect_failures))
        return cdm__fail(CDM_ERR_CONNECT, "%s: Fault: connection refused "
                         "(injected)", r->where);
    if (!(f = calloc(1, sizeof *f)))
        return cdm__nomem();
    f->id = atomic_fetch_add(&next_id, 1) + 1;
    f->epoch = atomic_load(&fault.kill_epoch);
    atomic_fetch_add(&fault.connects, 1);
    now = atomic_fetch_add(&fault.open_now, 1) + 1;
    peak = atomic_load(&fault.open_peak);
    while (now > peak && !atomic_compare_exchange_weak(&fault.open_peak, &peak, now))
        ;
    *out = f;
    return CDM_OK;
}

static void f_close(void *dc)
{
    atomic_fetch_add(&fault.closes, 1);
    atomic_fetch_sub(&fault.open_now, 1);
    free(dc);
}

static int f_exec(void *dc, const char *sql, const char *const *params,
                  size_t n, int64_t *affected)
{
    struct fconn *f = dc;

    (void)params;
    (void)n;
    atomic_fetch_add(&fault.execs, 1);
    *affected = 0;
    if (is_dead(f))
        return cdm__fail(CDM_ERR_BROKEN, "Fault: connection is dead");
    if (strcmp(sql, "BEGIN") == 0)
        f->in_tx = true;
    else if (strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0)
        f->in_tx = false;
    else if (strcmp(sql, "SET") == 0)
        f->session = true;
    else if (strncmp(sql, "SLEEP ", 6) == 0)
        sleep_ms(atoi(sql + 6));
    else if (strcmp(sql, "DIE") == 0) {
        f->dead = true;
        return cdm__fail(CDM_ERR_BROKEN, "Fault: connection lost (injected)");
    } else if (strcmp(sql, "FAIL") == 0)
        return cdm__fail(CDM_ERR_QUERY, "Fault: statement failed (injected)");
    return CDM_OK;
}

static int f_query(void *dc, const char *sql, const char *const *params,
                   size_t n, cdm_result **out)
{
    struct fconn *f = dc;
    cdm_result *r;
    char text[32];
    int64_t affected;
    int rc;

    if (strcmp(sql, "SELECT ID") != 0 && strcmp(sql, "SELECT SESSION") != 0)
        return f_exec(dc, sql, params, n, &affected);
    if (is_dead(f))
        return cdm__fail(CDM_ERR_BROKEN, "Fault: connection is dead");
    snprintf(text, sizeof text, "%d", strcmp(sql, "SELECT ID") == 0 ?
             f->id : (int)f->session);
    if ((rc = cdm__result_new(1, &r)) != CDM_OK)
        return rc;
    if ((rc = cdm__result_set_colname(r, 0, "value")) != CDM_OK ||
        (rc = cdm__result_add_row(r)) != CDM_OK ||
        (rc = cdm__result_set(r, 0, text, strlen(text))) != CDM_OK) {
        cdm_result_free(r);
        return rc;
    }
    *out = r;
    return CDM_OK;
}

static int f_begin(void *dc)
{
    atomic_fetch_add(&fault.begins, 1);
    ((struct fconn *)dc)->in_tx = true;
    return CDM_OK;
}

static int f_commit(void *dc)
{
    atomic_fetch_add(&fault.commits, 1);
    ((struct fconn *)dc)->in_tx = false;
    return CDM_OK;
}

static int f_rollback(void *dc)
{
    atomic_fetch_add(&fault.rollbacks, 1);
    if (take(&fault.rollback_failures))
        return cdm__fail(CDM_ERR_BROKEN, "Fault: rollback failed (injected)");
    ((struct fconn *)dc)->in_tx = false;
    return CDM_OK;
}

static int f_in_transaction(void *dc)
{
    return ((struct fconn *)dc)->in_tx;
}

static int f_alive(void *dc)
{
    atomic_fetch_add(&fault.alive_checks, 1);
    return is_dead(dc) ? CDM_ERR_BROKEN : CDM_OK;
}

static int f_ping(void *dc)
{
    atomic_fetch_add(&fault.pings, 1);
    if (is_dead(dc) || take(&fault.ping_failures))
        return cdm__fail(CDM_ERR_BROKEN, "Fault: ping failed");
    return CDM_OK;
}

static int f_reset(void *dc)
{
    atomic_fetch_add(&fault.resets, 1);
    ((struct fconn *)dc)->session = false;
    return CDM_OK;
}

static void *f_handle(void *dc)
{
    return dc;
}

static const struct cdm_param_spec fault_params[] = {
    { NULL, NULL, CDM_P_STRING, 0, 0, NULL, 0, NULL },
};

const struct cdm_driver cdm__driver_fault = {
    .id = "Fault",
    .params = fault_params,
    .configure_flag = "(test build only)",
    .connect = f_connect,
    .close = f_close,
    .exec = f_exec,
    .query = f_query,
    .begin = f_begin,
    .commit = f_commit,
    .rollback = f_rollback,
    .in_transaction = f_in_transaction,
    .alive = f_alive,
    .ping = f_ping,
    .reset = f_reset,
    .handle = f_handle,
};
