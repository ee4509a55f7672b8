/*
 * sync.c - the one place for clocks and waiting: monotonic time in ms and
 * ns, and condition variables on the monotonic clock.
 */
#include "cdm_int.h"

#include <time.h>

#ifdef CDM_TEST_DRIVER
_Atomic int64_t cdm__test_skew_ms;

void cdm__test_advance_ms(int64_t ms)
{
    atomic_fetch_add(&cdm__test_skew_ms, ms);
}
#endif

int64_t cdm__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void cdm__cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

int cdm__cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock,
                         int64_t deadline_ns)
{
    struct timespec ts;

    if (deadline_ns == INT64_MAX)
        return pthread_cond_wait(cond, lock);
    if (deadline_ns < 0)
        deadline_ns = 0;
    ts.tv_sec = deadline_ns / 1000000000;
    ts.tv_nsec = deadline_ns % 1000000000;
    return pthread_cond_timedwait(cond, lock, &ts);
}
