#ifndef PROCESS_H
#define PROCESS_H
#include "types.h"
#include "spinlock.h"

#define MAX_ARGS 64
#define MAX_ENVS 64
#define MAX_FDS 64
#define NSIG_MAX 64

/* An open file: the console or a read-only file from the initrd. */
struct file {
    enum { FILE_NONE, FILE_CONSOLE, FILE_INITRD } kind;
    const u8 *data;
    u64 size;
    u64 offset;
};

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
    /* Loaded image */
    u64 load_base;                  /* 0 for ET_EXEC; where a static-pie was put */
    u64 entry;                      /* AT_ENTRY */
    u64 phdr;                       /* AT_PHDR */
    u32 phnum;
    u64 image_end;
    /* Initial stack (psABI figure 3.9): the app starts with rsp = initial_stack */
    u64 initial_stack;              /* address of argc */
    u64 auxv;                       /* address of the first auxv entry */
    u64 stack_low, stack_high;
    /* Heap and mappings */
    u64 brk_start, brk;
    u64 mmap_next;                  /* mmap without an address hint allocates downwards from here */
    struct file files[MAX_FDS];
    struct spinlock files_lock;
    struct spinlock mm_lock;        /* brk and mmap bookkeeping */
    struct sigaction_entry { u64 handler, flags, restorer, mask; } sigactions[NSIG_MAX + 1];
};

extern struct process process;
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
long sys_kill(long pid, long sig);
long sys_tgkill(long tgid, long tid, long sig);
#endif
