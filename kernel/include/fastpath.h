#ifndef FASTPATH_H
#define FASTPATH_H
/*
 * The lazy FS-base protocol's fast paths (--fs-protocol=lazy; core/fastpath.c).
 * entry.S sends syscall number nr to syscall_fast_path when syscall_fast[nr] is 1,
 * and vector v to trap_fast_path when trap_fast[v] is 1, with FS still the app's;
 * only fast_path_init() under lazy sets any.
 */
#include "asm-offsets.h"
#include "types.h"

extern u8 syscall_fast[FAST_SYSCALL_LIMIT];
extern u8 trap_fast[256];

struct syscall_frame;
struct trap_frame;
void fast_path_init(void);
int syscall_fast_handler(struct syscall_frame *f);
int trap_fast_handler(struct trap_frame *f);

/* core/syscall.c: clock_gettime(2) of the TSC's clocks, which uses no __thread (the
   fast path calls it); the CPU-time clocks (2 and 3) are the slow path's. */
long clock_gettime_tsc(long clock, u64 tp);
static inline bool clock_is_cpu_time(long clock)
{
    return (int)clock == 2 || (int)clock == 3;  /* CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID */
}
#endif
