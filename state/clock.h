/*
 * clock: the one monotonic clock of hollowfs, for timeouts, deadlines and
 * rate limits (never for what is shown to people or stored on disk).
 */
#ifndef HOLLOWFS_STATE_CLOCK_H
#define HOLLOWFS_STATE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t clock_now_ms(void);

/* CLOCK_MONOTONIC ms from now, for pthread_cond_timedwait on a condition
 * variable created with pthread_condattr_setclock(CLOCK_MONOTONIC). */
struct timespec clock_deadline_in_ms(int ms);

#endif
