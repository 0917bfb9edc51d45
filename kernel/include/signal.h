#ifndef SIGNAL_H
#define SIGNAL_H
/*
 * Signals, delivered as Linux delivers them (core/signal.c has the whole path). The
 * structures here are Linux's x86-64 ABI, byte for byte: libc's sigaction, siglongjmp
 * and GDB's sigtramp unwinder read them.
 */
#include "types.h"
#include "process.h"
#include "thread.h"

#define SIGILL 4
#define SIGTRAP 5
#define SIGABRT 6
#define SIGBUS 7
#define SIGFPE 8
#define SIGKILL 9
#define SIGSEGV 11
#define SIGPIPE 13
#define SIGALRM 14
#define SIGCHLD 17
#define SIGCONT 18
#define SIGSTOP 19
#define SIGTSTP 20
#define SIGTTIN 21
#define SIGTTOU 22
#define SIGURG 23
#define SIGWINCH 28

#define SIG_DFL 0
#define SIG_IGN 1

/* sa_flags */
#define SA_SIGINFO   0x00000004
#define SA_RESTORER  0x04000000
#define SA_ONSTACK   0x08000000
#define SA_RESTART   0x10000000
#define SA_NODEFER   0x40000000
#define SA_RESETHAND 0x80000000

/* sigaltstack's ss_flags */
#define SS_ONSTACK 1
#define SS_DISABLE 2
#define MINSIGSTKSZ 2048

/* si_code */
#define SI_USER 0
#define SI_KERNEL 0x80
#define SI_TIMER (-2)                /* a POSIX timer's (core/timer.c) */
#define SI_TKILL (-6)
#define SEGV_MAPERR 1
#define SEGV_ACCERR 2
#define BUS_ADRALN 1
#define FPE_INTDIV 1
#define FPE_FLTDIV 3
#define FPE_FLTINV 7
#define ILL_ILLOPN 2
#define TRAP_BRKPT 1

/*
 * A blocking call a signal interrupted (sched_wait, futex_wait) returns this; on the way
 * back to the app it becomes -EINTR, or the call starts again when the handler has
 * SA_RESTART (or no handler runs). Linux's value; the app never sees it.
 */
#define ERESTARTSYS 512

static inline u64 sig_bit(int sig) { return 1UL << (sig - 1); }
#define SIG_UNBLOCKABLE (sig_bit(SIGKILL) | sig_bit(SIGSTOP))

struct linux_siginfo {
    int si_signo, si_errno, si_code;
    int pad0;
    union {
        struct { int pid; unsigned uid; u64 value; } kill;  /* SI_USER, SI_TKILL, SI_QUEUE */
        struct { u64 addr; } fault;                 /* SIGSEGV, SIGBUS, SIGFPE, SIGILL */
        struct { int id, overrun; u64 value; } timer;   /* SI_TIMER: a POSIX timer's */
        u8 bytes[112];
    };
};

struct linux_stack {                /* stack_t */
    u64 ss_sp;
    int ss_flags;
    int pad0;
    u64 ss_size;
};

/* struct sigcontext (asm/sigcontext.h): the general registers in this order. */
struct linux_sigcontext {
    u64 r8, r9, r10, r11, r12, r13, r14, r15;
    u64 rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip;
    u64 eflags;
    u16 cs, gs, fs, ss;
    u64 err, trapno, oldmask, cr2;
    u64 fpstate;                    /* the FXSAVE/XSAVE area, 64-byte aligned; 0: none */
    u64 reserved1[8];
};

#define UC_FP_XSTATE 1
#define UC_SIGCONTEXT_SS 2
#define UC_STRICT_RESTORE_SS 4

struct linux_ucontext {
    u64 uc_flags;
    u64 uc_link;
    struct linux_stack uc_stack;
    struct linux_sigcontext uc_mcontext;
    u64 uc_sigmask;
};

/*
 * What the handler finds at its rsp: the return address (sa_restorer, libc's
 * __restore_rt, which calls rt_sigreturn), then the context it interrupted and the
 * signal's siginfo. The FPU area lies above, where uc_mcontext.fpstate points.
 */
struct rt_sigframe {
    u64 pretcode;
    struct linux_ucontext uc;
    struct linux_siginfo info;
};

/* An unblocked signal waits for t: it should not block, or should wake. */
static inline bool signal_pending(const struct thread *t)
{
    u64 pending = __atomic_load_n(&t->sigpending, __ATOMIC_ACQUIRE) |
                  __atomic_load_n(&process.sigpending, __ATOMIC_ACQUIRE);
    return pending & ~t->sigmask;
}

struct syscall_frame;
struct trap_frame;
long signal_syscall_exit(struct syscall_frame *f, long ret);
void signal_trap_exit(struct trap_frame *f);
bool signal_fault(struct trap_frame *f, int sig, int code, u64 addr);
void signal_syscall_entry(struct thread *t, u64 app_rsp);
long signal_return(const struct syscall_frame *f, struct trap_frame *tf);
noreturn void sigreturn_exit(struct trap_frame *tf);
long signal_send(const struct syscall_frame *f, long tid, int sig);
void signal_raise(int sig);
void signal_mask_for_call(u64 mask);
long signal_mask_for_wait(u64 sigmask, u64 sigsetsize);
void signal_mask_after_call(long ret);

void signal_timer_tick(u64 now);
bool signal_timer_due(u64 now);

long signal_send_info(const struct syscall_frame *f, long tid, int sig, int code, int pid,
                      u64 value, bool must_queue);

/* A POSIX timer's expiry (core/timer.c): false when the signal was not sent. */
bool signal_from_timer(long tid, int sig, int id, u64 value);
void signal_unqueue_timer(int id);
void signal_thread_exit(long tid);

/* sched.c: mark sig pending for thread tid (0: the whole app) and wake whoever takes it. */
int sched_signal(long tid, int sig);
/* sched.c: sig no longer pending for thread tid (0: the app), which has none queued. */
void sched_unpend_signal(long tid, int sig);
#endif
