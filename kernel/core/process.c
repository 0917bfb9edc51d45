/*
 * The app as a whole: its threads (clone, clone3, exit), the signals it sends
 * (kill, tgkill, tkill), and its end (exit_group, or its last thread's exit).
 */
#include "process.h"
#include "syscalls.h"
#include "signal.h"
#include "arch.h"
#include "console.h"
#include "lib.h"
#include "mm.h"
#include "spinlock.h"
#include "syscall_history.h"
#include "thread.h"
#include "trap.h"
#include "tty.h"
#include "export.h"
#include <asm-generic/errno.h>
#include <linux/sched.h>

struct process process = { .umask = 022 };
static struct thread *main_thread;

void process_set_main_thread(struct thread *t) { main_thread = t; }

/* Linux's pid is the main thread's tid. */
int process_pid(void) { return main_thread ? main_thread->tid : 0; }

struct fatal_report fatal_report = { .cpu = -1, .tid = -1, .vector = -1, .syscall_nr = -1 };

/*
 * Record a fatal event from the exception's frame tf or the signalling syscall's frame
 * sf. Only the first one: a second thread faulting meanwhile on another CPU loses.
 */
void fatal_report_set(int sig, const struct trap_frame *tf, const struct syscall_frame *sf)
{
    static int reported;
    if (__atomic_exchange_n(&reported, 1, __ATOMIC_ACQ_REL))
        return;
    struct fatal_report *r = &fatal_report;
    r->sig = sig;
    r->cpu = this_cpu()->id;
    r->tid = current_thread->tid;
    if (tf) {
        r->vector = tf->vector;
        r->error_code = tf->error_code;
        r->cr2 = tf->vector == 14 ? read_cr2() : 0;
        r->rip = tf->rip;
        r->rsp = tf->rsp;
        r->trap_frame = tf;
    } else {
        r->syscall_nr = sf->rax;        /* the number: rax gets the result only on return */
        r->rip = sf->rip;
        r->rsp = sf->rsp;
        r->syscall_frame = sf;
    }
    __atomic_store_n(&r->cause, tf ? FATAL_EXCEPTION : FATAL_SIGNAL_SENT, __ATOMIC_RELEASE);
}

/*
 * The end: stop every other CPU (an NMI each, so even one spinning with interrupts off
 * stops), then report. Only the first caller gets here; a second exit_group racing on
 * another CPU just halts.
 */
noreturn void process_exit(int status)
{
    __asm__ __volatile__("cli");
    static int exiting;
    if (__atomic_exchange_n(&exiting, 1, __ATOMIC_ACQ_REL))
        cpu_stop_halt();
    unsigned stopped = stop_other_cpus(false);
    if (syscall_trace_batch)
        syscall_trace_flush();          /* osv-trace: the last calls, also after a fatal fault */
    if (process.verbose) {
        u64 ticks = 0, app_interrupts = 0, fast_ticks = 0;
        for (unsigned i = 0; i < nr_cpus; i++) {
            ticks += cpus[i].timer_ticks;
            app_interrupts += cpus[i].app_interrupts;
            fast_ticks += cpus[i].fast_ticks;
        }
        printk("osv: exit status %d after %lu syscalls; kernel TLS checked %lu times, FS base "
               "written by %s; %lu app pages populated on demand\n", status, syscall_seq,
               kernel_tls_checks, fsgsbase_avail ? "wrfsbase" : "wrmsr", user_pages_populated);
        /* A thread in thread_exit stays in the table until its CPU has switched away
           from it: the last one joined may still be on its way out when main ends the
           app (the wake that ends pthread_join comes first). */
        unsigned exiting = 0;
        for (unsigned i = 0; i < nr_threads; i++)
            exiting += all_threads[i]->exiting;
        printk("osv: %lu timer interrupts, %lu interrupts in app code (%lu on lazy's fast path); "
               "%u CPUs, %u others stopped; %u threads, %u exiting and not yet reclaimed\n",
               ticks, app_interrupts, fast_ticks, nr_cpus, stopped, nr_threads - exiting, exiting);
    }
    tty_flush();                        /* the app's last output leaves before QEMU does */
    export_all();                       /* --export's trees, once the app is done with them */
    debugcon_exit_reason();
    arch_exit_qemu(status);
}

/* ---- threads ---- */

#define CLONE_THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD)
#define CLONE_SUPPORTED (CLONE_THREAD_FLAGS | CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | \
                         CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | CLONE_DETACHED)

void clone_child_return(void *frame);

/*
 * A new thread of the app: it returns from the same syscall as its parent, with rax 0,
 * on the stack it was given, with the parent's other registers and FPU state. Its
 * kernel_tcb_counter says "inside a syscall" (1 with FS switching, 2 without) so the
 * syscall exit path brings FS to its app_tcb.
 */
static long clone_thread(const struct syscall_frame *f, u64 flags, u64 stack, u64 parent_tid,
                         u64 child_tid, u64 tls)
{
    if ((flags & CLONE_THREAD_FLAGS) != CLONE_THREAD_FLAGS) {
        printk("osv: clone without CLONE_VM|CLONE_THREAD (a new process) is not supported\n");
        return -ENOSYS;
    }
    if (flags & ~(u64)(CLONE_SUPPORTED | 0xff))        /* the low byte is the exit signal */
        return -EINVAL;
    if ((flags & CLONE_PARENT_SETTID) && !user_range_ok(parent_tid, 4, true))
        return -EFAULT;
    if ((flags & (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID)) && !user_range_ok(child_tid, 4, true))
        return -EFAULT;
    struct thread *parent = current_thread;
    struct thread *t = thread_create("thread", clone_child_return, NULL);
    if (!t)
        return -EAGAIN;
    t->is_app = true;
    t->affinity = parent->affinity;
    t->sigmask = parent->sigmask;
    t->fs_switching = parent->fs_switching || (flags & CLONE_SETTLS);
    t->tcb->app_tcb = (flags & CLONE_SETTLS) ? tls : parent->tcb->app_tcb;
    if (fs_protocol != FS_PROTOCOL_COMPARE)    /* compare has no counter: it stays 0 */
        t->tcb->kernel_tcb_counter = (t->fs_switching ? 0 : 1) + 1;
    struct syscall_frame *child = (struct syscall_frame *)t->tcb->syscall_stack_top - 1;
    *child = *f;
    child->rax = 0;
    if (stack)
        child->rsp = stack;
    t->entry_arg = child;
    thread_set_start_stack(t, (u64)child);     /* below the frame, not over it */
    arch_fpu_save(t->fpu_state);        /* the parent's registers: the kernel never changed them */
    if (flags & CLONE_CHILD_CLEARTID)
        t->clear_child_tid = child_tid;
    if (flags & CLONE_PARENT_SETTID)
        *(u32 *)parent_tid = t->tid;
    if (flags & CLONE_CHILD_SETTID)
        *(u32 *)child_tid = t->tid;
    sched_make_ready(t);
    return t->tid;
}

/* clone(flags, stack, parent_tid, child_tid, tls): x86-64's argument order. */
long sys_clone(const struct syscall_args *call)
{
    const u64 *a = call->arg;
    return clone_thread(call->frame, a[0], a[1], a[2], a[3], a[4]);
}

/* clone3's struct clone_args, version 0 (64 bytes); later fields must be zero. */
long sys_clone3(const struct syscall_args *call)
{
    const struct syscall_frame *f = call->frame;
    u64 args_addr = call->arg[0], size = call->arg[1];
    if (size < 64 || size > 4096)
        return -EINVAL;
    if (!user_range_ok(args_addr, size, false))
        return -EFAULT;
    const u64 *a = (const u64 *)args_addr;
    for (u64 i = 8; i < size / 8; i++)
        if (a[i])
            return -EINVAL;     /* set_tid, cgroup: not for us */
    u64 flags = a[0], child_tid = a[2], parent_tid = a[3], exit_signal = a[4];
    u64 stack = a[5], stack_size = a[6], tls = a[7];
    /* pidfd (a[1]) matters only with CLONE_PIDFD, which clone_thread refuses. */
    if (exit_signal)
        return -EINVAL;         /* a signal to a parent: only for processes */
    return clone_thread(f, flags, stack ? stack + stack_size : 0, parent_tid, child_tid, tls);
}

long sys_exit(const struct syscall_args *call)
{
    thread_exit(call->arg[0] & 0xff);
}

long sys_exit_group(const struct syscall_args *call)
{
    process_exit(call->arg[0] & 0xff);
}

/*
 * exit: one thread ends. Its tid word is cleared and futex-woken (CLONE_CHILD_CLEARTID:
 * what pthread_join waits for). The last app thread's exit ends the app.
 */
noreturn void thread_exit(int status)
{
    struct thread *t = current_thread;
    t->exit_status = status;
    t->exiting = true;
    if (t->clear_child_tid && user_range_ok(t->clear_child_tid, 4, true)) {
        *(volatile u32 *)t->clear_child_tid = 0;
        futex_wake(t->clear_child_tid, 1, ~0u);
    }
    signal_thread_exit(t->tid);     /* its pending signals' siginfo goes */
    sched_exit_current();
    process_exit(status);
}

/* ---- signals (core/signal.c delivers them) ---- */

long sys_kill(const struct syscall_args *call)
{
    const struct syscall_frame *f = call->frame;
    long pid = call->arg[0], sig = call->arg[1];
    if ((int)pid != process_pid() && (int)pid != 0 && (int)pid != -1)    /* pid_t: an int */
        return -ESRCH;
    if (sig < 0 || sig > NSIG_MAX)
        return -EINVAL;
    return signal_send(f, 0, sig);
}

static long tgkill(const struct syscall_frame *f, long tgid, long tid, long sig)
{
    if (tid <= 0 || sig < 0 || sig > NSIG_MAX)
        return -EINVAL;
    if ((int)tgid != -1 && (int)tgid != process_pid())
        return -ESRCH;
    if (sig == 0)
        return sched_thread_alive(tid) ? 0 : -ESRCH;
    return signal_send(f, tid, sig);
}

/*
 * rt_sigqueueinfo and rt_tgsigqueueinfo (sigqueue, pthread_sigqueue): a signal with the
 * caller's siginfo, si_code and si_value as given (a process may sign its own signals
 * so; si_pid is the app's). tid 0: to the app.
 */
long sys_tgkill(const struct syscall_args *call)
{
    return tgkill(call->frame, call->arg[0], call->arg[1], call->arg[2]);
}

long sys_tkill(const struct syscall_args *call)
{
    return tgkill(call->frame, -1, call->arg[0], call->arg[1]);
}

static long sigqueueinfo(const struct syscall_frame *f, long tgid, long tid, long sig, u64 uinfo)
{
    if ((int)tgid != process_pid())
        return -ESRCH;
    if (sig < 0 || sig > NSIG_MAX || tid < 0)
        return -EINVAL;
    if (!user_range_ok(uinfo, sizeof(struct linux_siginfo), false))
        return -EFAULT;
    const struct linux_siginfo *info = (const void *)uinfo;
    if (sig == 0)
        return !tid || sched_thread_alive(tid) ? 0 : -ESRCH;
    return signal_send_info(f, tid, sig, info->si_code, process_pid(), info->kill.value, true);
}

long sys_rt_sigqueueinfo(const struct syscall_args *call)
{
    return sigqueueinfo(call->frame, call->arg[0], 0, call->arg[1], call->arg[2]);
}

long sys_rt_tgsigqueueinfo(const struct syscall_args *call)
{
    return sigqueueinfo(call->frame, call->arg[0], call->arg[1], call->arg[2], call->arg[3]);
}
