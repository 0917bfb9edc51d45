#ifndef PROCESS_H
#define PROCESS_H
#include "types.h"
#include "spinlock.h"
#include <asm-generic/fcntl.h>

#define MAX_ARGS 64
#define MAX_ENVS 64
#define MAX_FDS 64
#define NSIG_MAX 64

/*
 * An open file: the console, a read-only file from the initrd, "/" (the initrd's one
 * directory), one end of a pipe, an epoll instance or an eventfd.
 */
struct file {
    enum { FILE_NONE, FILE_CONSOLE, FILE_INITRD, FILE_DIR, FILE_PIPE, FILE_NULL, FILE_EPOLL,
           FILE_EVENTFD } kind;
    struct pipe *pipe;              /* FILE_PIPE: the end is status_flags' access mode */
    struct epoll *epoll;            /* FILE_EPOLL: its interest list (epoll.c) */
    struct eventfd *eventfd;        /* FILE_EVENTFD: its counter (eventfd.c) */
    const u8 *data;
    u64 size;
    u64 offset;                     /* FILE_DIR: getdents64's cursor */
    u32 status_flags;               /* fcntl F_GETFL: O_RDONLY or O_RDWR, O_LARGEFILE, O_NONBLOCK... */
    bool cloexec;                   /* fcntl F_GETFD's FD_CLOEXEC (nothing execs: kept for F_GETFD) */
    bool host_pipe;                 /* FILE_CONSOLE: a host pipe or file (--stdin=pipe...), which
                                       the app sees as a pipe's end, as it would on the host */
    u8 stream;                      /* FILE_CONSOLE: where writes go, 1 (stdout) or 2 (stderr) */
};

/* Opened for writing: for a pipe, its write end. */
static inline bool file_is_writer(const struct file *f)
{
    return (f->status_flags & O_ACCMODE) != O_RDONLY;
}

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
    struct file files[MAX_FDS];
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
void syscall_init(void);

struct syscall_frame;
long sys_clone(const struct syscall_frame *f, u64 flags, u64 stack, u64 parent_tid, u64 child_tid,
               u64 tls);
long sys_clone3(const struct syscall_frame *f, u64 args_addr, u64 size);
noreturn void thread_exit(int status);
long sys_kill(const struct syscall_frame *f, long pid, long sig);
long sys_tgkill(const struct syscall_frame *f, long tgid, long tid, long sig);
long sys_sigqueueinfo(const struct syscall_frame *f, long tgid, long tid, long sig, u64 uinfo);
/* syscall.c: the fd table, under files_lock */
struct file *get_file(long fd);
long lowest_free_fd(long from);
/* poll.c */
unsigned fd_ready(int fd);          /* poll's bits now; pipe_lock held */
long wait_ready(long (*scan)(void *), void *arg, u64 deadline);
long sys_poll(u64 fds, u64 nfds, long timeout_ms);
long sys_ppoll(u64 fds, u64 nfds, u64 timeout, u64 sigmask, u64 sigsetsize);
long sys_select(long nfds, u64 readfds, u64 writefds, u64 exceptfds, u64 timeout);
long sys_pselect6(long nfds, u64 readfds, u64 writefds, u64 exceptfds, u64 timeout, u64 sig);
/* epoll.c */
struct epoll;
unsigned epoll_poll(const struct epoll *ep);
void epoll_open(struct epoll *ep);  /* another fd on it (dup) */
void epoll_close(struct epoll *ep);
void epoll_forget_fd(int fd);
long sys_epoll_create(long size);
long sys_epoll_create1(long flags);
long sys_epoll_ctl(long epfd, long op, long fd, u64 event);
long sys_epoll_wait(long epfd, u64 events, long maxevents, long timeout_ms);
long sys_epoll_pwait(long epfd, u64 events, long maxevents, long timeout_ms, u64 sigmask,
                     u64 sigsetsize);
long sys_epoll_pwait2(long epfd, u64 events, long maxevents, u64 timeout, u64 sigmask,
                      u64 sigsetsize);
/* eventfd.c */
struct eventfd;
long sys_eventfd2(u64 initval, long flags);
void eventfd_open(struct eventfd *e);
void eventfd_close(struct eventfd *e);
long eventfd_read(struct eventfd *e, u64 buf, u64 count, bool nonblock);
long eventfd_write(struct eventfd *e, u64 buf, u64 count, bool nonblock);
unsigned eventfd_poll(const struct eventfd *e);

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
