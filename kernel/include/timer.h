#ifndef TIMER_H
#define TIMER_H
/* The app's POSIX timers (core/timer.c). */
#include "types.h"

void timer_tick(u64 now);           /* from sched_tick: expiries */
bool timer_due(u64 now);            /* an expiry waits: lazy's fast tick must not take it */
int timer_signal_taken(int id);     /* from signal.c's dequeue: the overrun delivered */

/* syscall.c: CLOCK_REALTIME less CLOCK_MONOTONIC, in ns (the RTC's time at boot). */
u64 wall_clock_offset_ns(void);
#endif
