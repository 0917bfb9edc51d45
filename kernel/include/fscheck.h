#ifndef FSCHECK_H
#define FSCHECK_H
/*
 * The FS-base watchdog behind osv-fscheck: the FS-base protocol (entry.S) checked by
 * the kernel itself at every crossing, while the debugger has set fscheck_enabled (off: one
 * predictable branch per crossing). A broken rule calls fscheck_violation(), where
 * the debugger keeps its one breakpoint and explains what it finds in the state.
 *
 * The rules, checked after the entry half ran (syscall_handler, trap_handler) and after
 * the exit half ran (on the way to syscall_return, trap_return):
 *
 *   entry-fs      after the entry switch, FS is this CPU's tcb_data.kernel_tcb
 *   entry-count   after the entry, kernel_tcb_counter is >= 1, and the counter the entry
 *                 found was >= 0
 *   return-fs     returning to app code (also an interrupt that hit syscall_entry's
 *                 last instructions, after its popfq), FS is the thread's app_tcb when
 *                 its counter is 0, else its kernel TCB (counter 1: no app TCB set)
 *   return-count  returning to app code, the counter is 0 (app TCB set) or 1 (never set)
 *   kernel-fs     an interrupt returning to kernel code leaves FS on the kernel TCB and
 *                 the counter >= 1
 *
 * Under --fs-protocol=compare there is no counter: it must stay 0 (entry-count,
 * return-count, kernel-fs), and returning to app code FS is the app_tcb if the thread
 * has one, else its kernel TCB (return-fs). Under lazy the rules are counter's; its
 * fast syscalls and ticks switch nothing, so only their return is checked; an exception that
 * returns into the fast path's kernel code (a page fault in clock_gettime's store)
 * returns to the app's side: to_app (cpu->fast_path). Its fast timer ticks are checked
 * at their return like any other trap's.
 *
 * The debugger's side of the same rules is osvgdb/decode/frames.py (check_entry,
 * check_return, FSCHECK_RULES); tests/test_fscheck_rules.py compiles fscheck_rules()
 * on the host and checks the two agree on every kind of state.
 */
#include "types.h"

enum fscheck_rule {
    FSCHECK_ENTRY_FS = 1 << 0,
    FSCHECK_ENTRY_COUNT = 1 << 1,
    FSCHECK_RETURN_FS = 1 << 2,
    FSCHECK_RETURN_COUNT = 1 << 3,
    FSCHECK_KERNEL_FS = 1 << 4,
};

enum fscheck_where {
    FSCHECK_SYSCALL_ENTRY,
    FSCHECK_TRAP_ENTRY,
    FSCHECK_SYSCALL_RETURN,
    FSCHECK_TRAP_RETURN,
};

/* One CPU at one crossing: what the rules look at, and where, for the explanation. */
struct fscheck_state {
    u32 where;                  /* enum fscheck_where */
    u32 to_app;                 /* returns: back to app code */
    u64 fs_base;                /* the FS base now */
    u64 kernel_tcb;             /* this CPU's tcb_data.kernel_tcb */
    u64 app_tcb;                /* that TCB's app_tcb */
    long counter;               /* its kernel_tcb_counter now */
    long entry_counter;         /* entries: the counter the entry found (the frame's) */
    u64 rip;                    /* where the crossing came from, or returns to */
    u64 vector;                 /* traps: the vector */
    u64 nr;                     /* syscall entries: the number */
    u32 protocol;               /* enum fs_protocol (arch.h) */
};

/* The rules broken in state s (enum fscheck_rule bits). Pure: the host's tests run it. */
static inline u32 fscheck_rules(const struct fscheck_state *s)
{
    u32 broken = 0;
    bool compare = s->protocol == 1;    /* FS_PROTOCOL_COMPARE: the counter stays 0 */
    if (s->where == FSCHECK_SYSCALL_ENTRY || s->where == FSCHECK_TRAP_ENTRY) {
        if (s->fs_base != s->kernel_tcb)
            broken |= FSCHECK_ENTRY_FS;
        if (compare ? s->counter != 0 || s->entry_counter != 0
                    : s->counter < 1 || s->entry_counter < 0)
            broken |= FSCHECK_ENTRY_COUNT;
    } else if (!s->to_app) {
        if (s->fs_base != s->kernel_tcb || (compare ? s->counter != 0 : s->counter < 1))
            broken |= FSCHECK_KERNEL_FS;
    } else if (compare) {
        if (s->fs_base != (s->app_tcb ? s->app_tcb : s->kernel_tcb))
            broken |= FSCHECK_RETURN_FS;
        if (s->counter != 0)
            broken |= FSCHECK_RETURN_COUNT;
    } else if (s->counter == 0) {
        if (s->fs_base != s->app_tcb)
            broken |= FSCHECK_RETURN_FS;
    } else if (s->counter == 1 && !s->app_tcb) {
        if (s->fs_base != s->kernel_tcb)
            broken |= FSCHECK_RETURN_FS;
    } else {
        broken |= FSCHECK_RETURN_COUNT;
    }
    return broken;
}

#ifndef FSCHECK_HOST_TEST
extern u32 fscheck_enabled;
struct syscall_frame;
struct trap_frame;
void fscheck_violation(u32 broken, const struct fscheck_state *s);
void fscheck_syscall_entry(const struct syscall_frame *f);
void fscheck_trap_entry(const struct trap_frame *f);
void fscheck_syscall_return(const struct syscall_frame *f);
void fscheck_trap_return(const struct trap_frame *f);
#endif
#endif
