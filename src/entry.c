/*
 * entry.c - per-thread state of the slot protocol (see entry.h): each
 * thread's hints and its order of returns.
 */
#include "entry.h"

_Thread_local struct cdm_hint cdm__hints[HINTS];
_Thread_local unsigned cdm__hint_next;

/* Orders this thread's returns within one tick of the coarse clock. */
static _Thread_local uint32_t return_seq;

int64_t cdm__idle_key(int64_t now_ms)
{
    return now_ms << 20 | (int64_t)(return_seq++ & 0xfffff);
}
