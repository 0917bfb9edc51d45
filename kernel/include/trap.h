#ifndef TRAP_H
#define TRAP_H
#include "types.h"

/*
 * What arch/x64/entry.S saves on an interrupt or exception: our pushes, then the
 * vector and error code, then what the CPU pushed. Lowest address first.
 */
struct trap_frame {
    u64 fs_base;            /* FS base when the CPU was interrupted, before any switch */
    long kernel_tcb_counter;/* counter at entry, before this entry's increment */
    u64 r15, r14, r13, r12, r11, r10, r9, r8;
    u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error_code;
    u64 rip, cs, rflags, rsp, ss;
};

/*
 * What syscall_entry saves on the thread's syscall stack. rcx and r11 hold the app's
 * rip and rflags (the syscall instruction put them there). Lowest address first.
 */
struct syscall_frame {
    u64 fs_base;
    long kernel_tcb_counter;
    u64 r15, r14, r13, r12, rbp, rbx;
    u64 r9, r8, r10, rdx, rsi, rdi;
    u64 rax;                /* syscall number in, return value out */
    u64 rflags;             /* r11 */
    u64 rip;                /* rcx */
    u64 rsp;                /* the app's stack pointer */
};

/*
 * trap_frame.vector of the frame rt_sigreturn leaves through (sigreturn_exit in entry.S):
 * no CPU vector, the interrupted context of a signal handler's return.
 */
#define SIGRETURN_VECTOR 256

void trap_init(void);
void trap_handler(struct trap_frame *f);
long syscall_handler(struct syscall_frame *f);
#endif
