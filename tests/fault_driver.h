/*
 * fault_driver.h - a driver for the test build only (DriverID=Fault) that
 * can be made slow, failing or dead, and counts every call, so that pool
 * behaviour is tested deterministically.  One global control block: Check
 * runs each test in its own process.
 */
#ifndef CDM_FAULT_DRIVER_H
#define CDM_FAULT_DRIVER_H

#include <stdatomic.h>

struct fault_ctl {
    /* knobs */
    atomic_int connect_delay_ms;   /* every connect sleeps this long */
    atomic_bool connect_hold;      /* connects wait while set (30 s at most) */
    atomic_int connect_failures;   /* the next N connects fail (CDM_ERR_CONNECT) */
    atomic_int ping_failures;      /* the next N pings fail (CDM_ERR_BROKEN) */
    atomic_int rollback_failures;  /* the next N rollbacks fail */
    atomic_int kill_epoch;         /* connections opened before it are dead */
    /* counters */
    atomic_int connect_attempts, connects, closes, pings, alive_checks;
    atomic_int begins, commits, rollbacks, resets, execs;
    atomic_int open_now, open_peak; /* physical connections now / at most */
};

extern struct fault_ctl fault;

/* Test hooks of the test library (src/sync.c, src/manager.c,
 * src/deffile.c). */
#include <stdint.h>
struct cdm_manager;
/* Moves the pool's clock (idle, lifetime, leak and ping ages) forward. */
void cdm__test_advance_ms(int64_t ms);
/* Runs one full cleanup pass over every pool of `m` now, due or not, and
 * returns when it has ended: CDM_OK, or CDM_ERR_BUSY after timeout_ms. */
int cdm__manager_cleanup_now(struct cdm_manager *m, int timeout_ms);
/* Called by cdm_deffile_save after the temporary file is written and
 * flushed, just before the rename (a test kills the process there). */
extern void (*cdm__test_deffile_before_rename)(const char *tmp);

/* Zeroes every knob and counter. */
void fault_reset(void);
/* Every connection open now is dead from this moment (a server restart). */
void fault_kill_all(void);

/*
 * SQL understood by cdm_exec / cdm_query on a Fault connection:
 *   BEGIN, COMMIT, ROLLBACK     transaction state (seen by the pool)
 *   SET                         marks session state (cleared by reset)
 *   SLEEP <ms>                  takes that long
 *   DIE                         the connection breaks (CDM_ERR_BROKEN)
 *   FAIL                        the statement fails (CDM_ERR_QUERY)
 *   SELECT ID                   one row: the connection's number (from 1)
 *   SELECT SESSION              one row: 1 if SET since the last reset
 * anything else succeeds and does nothing.
 */

#endif
