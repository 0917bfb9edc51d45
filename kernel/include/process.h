#ifndef PROCESS_H
#define PROCESS_H
#include "types.h"
#include "spinlock.h"
#include "vfs.h"

#define MAX_ARGS 64
#define MAX_ENVS 64
#define NSIG_MAX 64

/*
 * The one app this kernel runs. Everything the debugger wants about it is here,
 * reachable from the symbol `process`.
 */
struct process {
    const char *path;               /* as on the command line, e.g. "/hello" */
    int argc, envc;
    const char *argv[MAX_ARGS];
    const char *envp[MAX_ENVS];
    bool strace;                    /* --strace: print each syscall as it returns */
    bool verbose;                   /* --verbose: kernel statistics at exit */
    /*
     * Set just before the kernel first jumps to the app's entry: a debugger at
     * process_exit, or a guest that reset, tells a boot that failed (false) from an app
     * that ran and died (true).
     */
    bool app_started;
    /* Loaded image */
    u64 load_base;                  /* 0 for ET_EXEC; where a static-pie was put */
    u64 entry;                      /* AT_ENTRY */
    u64 phdr;                       /* AT_PHDR */
    u32 phnum;
    u64 image_end;
    /* Initial stack (psABI figure 3.9): the app starts with rsp = initial_stack */
    u64 initial_stack;              /* address of argc */
    u64 auxv;                       /* address of the first auxv entry */
    u64 stack_low, stack_high;      /* 8 MiB, as Linux's default RLIMIT_STACK */
    /* Heap and mappings */
    u64 brk_start, brk;
    u64 mmap_next;                  /* mmap without an address hint allocates downwards from here */
    struct fd_entry fds[MAX_FDS];   /* the fd table (fd.c) */
    u32 umask;                      /* new files' modes lose these bits (umask) */
    struct spinlock files_lock;
    struct spinlock mm_lock;        /* brk and mmap bookkeeping */
    /* Linux's struct sigaction as rt_sigaction takes it; signal.c delivers by it */
    struct sigaction_entry { u64 handler, flags, restorer, mask; } sigactions[NSIG_MAX + 1];
    u64 sigpending;                 /* sent to the whole app (kill), for any thread that takes it */
};

/*
 * Below the stack, at least STACK_GUARD_GAP bytes that mmap never hands out (Linux's
 * stack_guard_gap, 256 pages; elf.c's MMAP_TOP leaves more): a stack that outgrows its
 * 8 MiB faults there, and the app ends with SIGSEGV, reported as a stack overflow.
 */
#define STACK_GUARD_GAP (1UL << 20)

extern struct process process;
/* Out of line and by this name: a debugger's breakpoint here sees every end of the app. */
noreturn void process_exit(int status);
int process_pid(void);
struct thread;
void process_set_main_thread(struct thread *t);
void systime_init(void);            /* systime.c: the wall clock from the RTC */

noreturn void thread_exit(int status);
/* poll.c */
long wait_ready(long (*scan)(void *), void *arg, u64 deadline);
/* epoll.c */
void epoll_forget_fd(int fd);       /* fd is closing: it leaves every epoll set; files_lock held */

/* What ended the app, in fatal_report.cause. */
enum fatal_cause {
    FATAL_NONE,                     /* nothing fatal (yet): the app is running or exited by itself */
    FATAL_EXCEPTION,                /* an exception in app code: a fault Linux would signal */
    FATAL_SIGNAL_SENT,              /* the app sent itself a fatal signal: tgkill, tkill or kill (abort) */
};

struct trap_frame;
/*
 * The app's death by a signal, for a debugger stopped at process_exit (or reading a
 * dump): filled just before process_exit(128 + sig), by the first fatal event only, with
 * cause written last so a reader that sees it set sees the rest.
 */
struct fatal_report {
    enum fatal_cause cause;
    int sig;                        /* the Linux signal: the app's status is 128 + sig */
    int cpu;                        /* the CPU it happened on */
    int tid;                        /* the app thread that faulted or sent the signal */
    long vector;                    /* FATAL_EXCEPTION: the exception vector (14: page fault); else -1 */
    u64 error_code;                 /* FATAL_EXCEPTION: the CPU's error code (0 if the vector has none) */
    u64 cr2;                        /* page fault: the address accessed (CR2); else 0 */
    u64 rip;                        /* the app's rip: the faulting instruction, or just after its syscall */
    u64 rsp;                        /* the app's rsp at that point */
    long syscall_nr;                /* FATAL_SIGNAL_SENT: the call that sent it (__NR_tgkill...); else -1 */
    const struct trap_frame *trap_frame;        /* FATAL_EXCEPTION: the app's registers, as entry.S saved them */
    const struct syscall_frame *syscall_frame;  /* FATAL_SIGNAL_SENT: the app's registers at its syscall */
};
extern struct fatal_report fatal_report;
void fatal_report_set(int sig, const struct trap_frame *tf, const struct syscall_frame *sf);
#endif
