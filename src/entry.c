/*
 * entry.c - per-thread state of the slot protocol (see entry.h): each
 * thread's hints and its order of returns.
 */
#include "entry.h"

_Thread_local struct cdm_thread_hot cdm__hot;
