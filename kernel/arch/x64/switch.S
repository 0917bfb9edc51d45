/*
 * switch_context(&prev->kernel_rsp, next->kernel_rsp): save the callee-saved registers
 * on the outgoing thread's stack, remember its rsp, take the incoming thread's rsp and
 * pop its registers. Everything else (FS base, %gs:0, IST, FPU state) sched.c does
 * before calling this.
 */
.text
.globl switch_context
.type switch_context, @function
switch_context:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size switch_context, . - switch_context

/* A new thread's first switch_context returns here (thread_create built its stack). */
.globl thread_trampoline
.type thread_trampoline, @function
thread_trampoline:
    .cfi_startproc simple
    .cfi_def_cfa rsp, 8
    .cfi_undefined rip
    call thread_start               /* sched.c: releases the scheduler lock, runs entry(arg) */
    ud2
    .cfi_endproc
.size thread_trampoline, . - thread_trampoline

/*
 * clone_child_return(frame): a cloned thread's entry. Its syscall stack holds a copy of
 * the parent's syscall frame with rax = 0; leave through syscall_entry's exit path.
 */
.globl clone_child_return
.type clone_child_return, @function
clone_child_return:
    movq %rdi, %rsp
    cli
    jmp syscall_exit
.size clone_child_return, . - clone_child_return
