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

/* core/syscall.c: clock_gettime(2), which uses no __thread (the fast path calls it) */
long sys_clock_gettime(long clock, u64 tp);
#endif
