/*
 * The lazy FS-base protocol's fast paths (--fs-protocol=lazy): a few syscalls, and
 * timer ticks that reschedule nothing, whose work needs nothing of the kernel's
 * __thread variables run with FS as the app left it, so their crossing has no FS
 * switch, no counter, no kernel TLS check.
 *
 * Only code that provably uses no %fs may run here. Everything reaches this CPU and
 * its thread through GS (this_cpu(), %gs:24, and cpu->current), never through
 * current_thread. kernel/check-fastpath.py proves it at build time: it disassembles
 * kernel.elf and follows every call and tail call from syscall_fast_path (entry.S)
 * and syscall_fast_handler; the build fails if any function reached has an %fs
 * operand, an indirect call or jump it cannot follow.
 *
 * The calls still go into the syscall history (osv-syscalls, osv-trace see them),
 * with their entry FS base and counter as the slow path records them. --strace
 * prints from ordinary kernel code, so with --strace lazy has no fast calls at all.
 */
#include "arch.h"
#include "fastpath.h"
#include "process.h"
#include "signal.h"
#include "syscall_history.h"
#include "thread.h"
#include "timer.h"
#include "trap.h"

extern char kernel_start[], kernel_end[];
#include <asm/unistd_64.h>
#include <asm-generic/errno.h>

u8 syscall_fast[FAST_SYSCALL_LIMIT];
u8 trap_fast[256];

/* Read by the debugger too (osv-break breaks on the fast path for these). */
const u16 fast_syscalls[] = { __NR_getpid, __NR_getppid, __NR_gettid, __NR_clock_gettime };

/* After the command line is parsed: lazy marks the timer, and without --strace the
   fast syscalls. */
void fast_path_init(void)
{
    if (fs_protocol != FS_PROTOCOL_LAZY)
        return;
    trap_fast[TIMER_VECTOR] = 1;
    if (process.strace)
        return;
    for (unsigned i = 0; i < ARRAY_SIZE(fast_syscalls); i++)
        syscall_fast[fast_syscalls[i]] = 1;
}

/*
 * One fast syscall, frame->rax its number, interrupts off. 1: done, frame->rax the
 * result. 0: declined, nothing changed: a signal may be due on the way out, or the
 * thread runs a signal handler (the slow path keeps that bookkeeping).
 */
int syscall_fast_handler(struct syscall_frame *f)
{
    struct arch_cpu *cpu = this_cpu();
    struct thread *t = cpu->current;
    if (!t->is_app || t->in_signal || t->restore_sigmask || signal_pending(t))
        return 0;
    if (f->rax == __NR_clock_gettime && clock_is_cpu_time(f->rdi))
        return 0;                   /* the scheduler's CPU time: its lock, its __thread */
    cpu->entries++;
    struct syscall_record *r = syscall_history_enter(f, t->tid);
    u64 seq = r->seq;
    t->syscall_record = r;
    t->syscall_seq = seq;
    long ret;
    switch (f->rax) {
    case __NR_getpid: ret = process_pid(); break;
    case __NR_getppid: ret = 0; break;
    case __NR_gettid: ret = t->tid; break;
    case __NR_clock_gettime: ret = clock_gettime_tsc(f->rdi, f->rsi); break;
    default: ret = -ENOSYS; break;  /* syscall_fast_init marks no other */
    }
    f->rax = ret;
    syscall_history_exit(r, seq, ret);
    syscall_trace_check(false);
    return 1;
}

/*
 * A timer tick (the only vector trap_fast[] marks), interrupts off. 1: done, a tick
 * that landed in app code and that the ordinary path would have ended the same way:
 * no thread to switch to or wake, no timer signal, no signal to deliver. 0: declined,
 * nothing changed (kernel code was interrupted, or the tick has more to do).
 */
int trap_fast_handler(struct trap_frame *f)
{
    struct arch_cpu *cpu = this_cpu();
    struct thread *t = cpu->current;
    bool from_app = f->rip < (u64)kernel_start || f->rip >= (u64)kernel_end;
    if (f->vector != TIMER_VECTOR || !from_app || !t->is_app || signal_pending(t))
        return 0;
    u64 now = tsc_ns();
    if (signal_timer_due(now) || timer_due(now) || !sched_tick_fast(now))
        return 0;
    cpu->entries++;
    cpu->app_interrupts++;
    cpu->timer_ticks++;
    cpu->fast_ticks++;
    lapic_eoi();
    syscall_trace_check(true);
    return 1;
}
