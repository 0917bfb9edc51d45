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
#define MAX_THREADS 256

/* Everything the debugger needs to tell threads apart is here and in all_threads[]. */
struct thread {
    int tid;
    enum thread_state state;
    int cpu;
    char name[THREAD_NAME_LEN];
    struct thread_control_block *tcb;
    void *tls_block;                 /* start of the TLS block + TCB allocation */
    void *syscall_stack;             /* lowest address; top is tcb->syscall_stack_top */
    u64 syscall_stack_size;
    u64 clear_child_tid;             /* set_tid_address */
};

extern struct thread *all_threads[MAX_THREADS];
extern unsigned nr_threads;

/* This thread, from the kernel's own TLS: only valid while FS holds the kernel TCB. */
extern __thread struct thread *current_thread;

struct thread *thread_create(const char *name, bool with_syscall_stack);
void thread_install_tls(struct thread *t);
void kernel_tls_check(void);
extern u64 kernel_tls_checks;
#endif
