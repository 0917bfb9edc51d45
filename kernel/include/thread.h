#ifndef THREAD_H
#define THREAD_H
#include "types.h"

/*
 * What %fs points at while kernel code runs (the seed's layout). The kernel's own
 * __thread variables sit just below it (x86-64 TLS variant II), so a wrong FS base in
 * kernel code reads or writes somebody else's memory.
 *
 * app_tcb is the FS base the app asked for with arch_prctl(ARCH_SET_FS). While
 * kernel_tcb_counter is 0 the thread runs app code on app_tcb; every syscall,
 * interrupt and exception entry that finds it 0 switches FS to this TCB, and every
 * exit that brings it back to 0 restores app_tcb. A thread that never called
 * ARCH_SET_FS keeps the counter at 1: no switching, FS always this TCB.
 */
struct thread_control_block {
    void *self;
    void *tls_base;
    void *syscall_stack_top;
    void *syscall_caller_stack_pointer;
    unsigned long app_tcb;
    long kernel_tcb_counter;
};

enum thread_state {
    THREAD_RUNNING,
    THREAD_READY,
    THREAD_BLOCKED,
    THREAD_EXITED,
};

#define THREAD_NAME_LEN 16
#define SYSCALL_STACK_SIZE (64 * 1024)
#define EXCEPTION_STACK_SIZE (16 * 1024)
#define MAX_THREADS 256

/*
 * Everything the debugger needs to tell threads apart is here and in all_threads[].
 * A thread's kernel code runs on its syscall stack (also the stack kernel threads and a
 * new thread start on); interrupts and exceptions land on its exception stack (the
 * TSS's IST_EXCEPTION while it runs), so preempting it there is safe.
 */
struct thread {
    int tid;
    enum thread_state state;
    int cpu;                         /* where it runs or ran last; -1 before it first ran */
    char name[THREAD_NAME_LEN];
    bool is_app;                     /* an app thread, as opposed to the kernel's boot and idle threads */
    bool fs_switching;               /* called arch_prctl(ARCH_SET_FS): its counter's base is 0, not 1 */
    struct thread_control_block *tcb;
    void *tls_block;                 /* start of the TLS block + TCB allocation */
    void *syscall_stack;             /* lowest address; top is tcb->syscall_stack_top */
    u64 syscall_stack_size;
    void *exception_stack;           /* lowest address */
    u64 exception_stack_size;
    u64 kernel_rsp;                  /* saved by switch_context while not running */
    void *fpu_state;                 /* XSAVE (or FXSAVE) area, 64-byte aligned */
    void *fpu_block;                 /* the allocation fpu_state lies in */
    void (*entry)(void *);           /* where a new thread starts, in kernel mode */
    void *entry_arg;
    u64 affinity;                    /* CPUs it may run on, one bit each */
    u64 sigmask;                     /* rt_sigprocmask: bit sig-1 blocks signal sig */
    /* Signals (core/signal.c) */
    u64 sigpending;                  /* sent to this thread (tgkill, tkill), not yet delivered */
    u64 altstack_sp, altstack_size;  /* sigaltstack; altstack_flags SS_DISABLE when there is none */
    int altstack_flags;
    int in_signal;                   /* the signal whose handler it runs (innermost); 0: none */
    u64 signal_frame;                /* while in_signal: the app address of its rt_sigframe */
    u64 sigwait_set;                 /* rt_sigtimedwait: blocked signals it waits for, let
                                        through meanwhile, but taken by it, not by a handler */
    u64 saved_sigmask;               /* rt_sigsuspend: the mask to give back ... */
    bool restore_sigmask;            /* ... on the way out (or to the handler's frame) */
    /* CPU time (getrusage, times): what it ran up to its last switch-in, and when that was */
    u64 cpu_ns;
    u64 run_start;
    /* Why a BLOCKED thread waits, and until when */
    u64 wake_time;                   /* tsc_ns() deadline; 0: none */
    u64 futex_addr;                  /* futex word it sleeps on; 0: not in a futex wait */
    const void *wait_chan;           /* kernel object it sleeps on (a pipe): sched_wait */
    u32 futex_bitset;
    bool timed_out;
    bool signal_woken;               /* woken by sched_signal, not by what it waited for */
    u64 clear_child_tid;             /* set_tid_address / CLONE_CHILD_CLEARTID */
    /* The syscall it is in or made last: its history record, valid while its seq matches */
    struct syscall_record *syscall_record;
    u64 syscall_seq;                 /* 0: no syscall yet */
    int exit_status;
    bool exiting;                    /* in thread_exit: its joiner may be woken already, but it
                                        stays in all_threads[] until its CPU switched away */
};

extern struct thread *all_threads[MAX_THREADS];
extern unsigned nr_threads;

/* This thread, from the kernel's own TLS: only valid while FS holds the kernel TCB. */
extern __thread struct thread *current_thread;

/* A new thread, not yet runnable; it starts in entry(arg) on its syscall stack. */
struct thread *thread_create(const char *name, void (*entry)(void *), void *arg);
void thread_set_start_stack(struct thread *t, u64 stack_top);
void thread_free(struct thread *t);
void kernel_tls_check(void);
extern u64 kernel_tls_checks;

/* sched.c */
void sched_init_cpu(struct thread *idle);
void sched_make_ready(struct thread *t);
void schedule(void);
void sched_tick(void);
bool sched_tick_fast(u64 now);
noreturn void sched_idle_loop(void);
void sched_exit_current(void);
bool sched_thread_alive(long tid);
bool sched_set_affinity(long tid, u64 mask);
u64 sched_cpu_ns(bool whole_app);
long sched_sleep_until(u64 deadline_ns);
struct spinlock;
long sched_wait(const void *chan, struct spinlock *lock, u64 deadline_ns);
void sched_wakeup(const void *chan);
long futex_wait(u64 uaddr, u32 val, u64 deadline_ns, u32 bitset);
long futex_wake(u64 uaddr, int n, u32 bitset);
long futex_requeue(u64 uaddr, int n_wake, int n_requeue, u64 uaddr2, bool cmp, u32 val);
#endif
