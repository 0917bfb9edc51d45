/*
 * Entry paths: the syscall instruction (app code and kernel both run in ring 0, as in
 * OSv) and every interrupt and exception. Each switches the FS base by one of three
 * protocols, chosen at boot (--fs-protocol=, the byte fs_protocol; enum fs_protocol
 * in arch.h):
 *
 * counter (the default, the seed's), with the per-thread kernel_tcb_counter:
 *   entry: if counter == 0, FS := kernel TCB (%gs:0); counter++
 *   exit:  counter--; if counter == 0, FS := app_tcb
 *
 * compare (OSv's merged design): no counter (it stays 0); a syscall's entry compares the
 * self word of whatever TCB FS points at (%fs:0) with the kernel TCB's self, a trap's the
 * FS base its frame saved with the kernel TCB (so that a fault of that very read, an app
 * FS pointing at nothing, is taken on the kernel's FS and reported, not taken again):
 *   entry: syscall: if %fs:0 != kernel TCB's self, FS := kernel TCB
 *          trap: if the frame's fs_base != kernel TCB, FS := kernel TCB
 *   exit:  trap exits: if the frame's fs_base != kernel TCB, FS := app_tcb
 *          syscall exits: if app_tcb != 0, FS := app_tcb
 *   Whether the entry switched is remembered in the frame on the stack: its fs_base
 *   word (PUSH_ENTRY_STATE) is the FS the entry found. An interrupt of kernel code
 *   finds the kernel TCB there and so does not switch back to the app on its exit;
 *   each nesting level has its own frame, as in OSv. A syscall always came from app
 *   code, and arch_prctl(ARCH_SET_FS) may just have given the thread its first
 *   app_tcb (its entry found FS on the kernel TCB): its exit loads app_tcb if any.
 *
 * lazy: counter, except that syscall_entry sends the syscalls marked in syscall_fast[]
 *   (getpid, getppid, gettid, clock_gettime; core/fastpath.c) to syscall_fast_path,
 *   and trap_common the timer (trap_fast[]) to trap_fast_path, which neither switch FS
 *   nor touch the counter: their handlers provably use no %fs (kernel/check-fastpath.py
 *   checks every function they can reach, at build time), and decline, leaving the
 *   crossing to the ordinary path, whenever it needs more (a tick that reschedules).
 *
 * Dispatch, the same for every protocol, and all of it: each FS_ENTER and FS_EXIT
 * starts with `cmpb $COMPARE, fs_protocol(%rip); je` and both of its bodies end in a
 * `jmp` to its end (3 instructions), and syscall_entry looks its number up in
 * syscall_fast[], which only lazy fills (`cmp; jae; cmpb; jne`, 4 instructions), and
 * trap_common its vector in trap_fast[] (`mov; cmpb; jne`, 3). A getppid round trip
 * pays 3 + 3 + 4 = 10 instructions for the choice, a trap 3 + 3 + 3 = 9, whichever.
 *
 * Nothing here touches %fs before the entry switch or after the exit switch but
 * compare's read of %fs:0, the self word every TCB starts with (TLS variant II).
 * %gs is always ours: IA32_GS_BASE = &this CPU's tcb_data.
 */
#include "asm-offsets.h"

/* Write %rax to the FS base, by wrfsbase when the CPU has FSGSBASE, else IA32_FS_BASE. */
.macro WRITE_FSBASE_RAX         /* clobbers rcx, rdx */
    testb $1, fsgsbase_avail(%rip)
    jz 2f
    wrfsbase %rax
    jmp 3f
2:  mov %rax, %rdx
    shr $32, %rdx
    mov $MSR_FS_BASE, %ecx
    wrmsr
3:
.endm

/* %rax := the FS base. */
.macro READ_FSBASE_RAX          /* clobbers rcx, rdx */
    testb $1, fsgsbase_avail(%rip)
    jz 2f
    rdfsbase %rax
    jmp 3f
2:  mov $MSR_FS_BASE, %ecx
    rdmsr
    shl $32, %rdx
    or %rdx, %rax
3:
.endm

/* The entry half of the protocol. On a kernel stack, rsp at the frame; clobbers rax, rcx,
   rdx. kind is syscall or trap: compare's entry decides differently for the two. */
.macro FS_ENTER kind
    cmpb $ASM_FS_PROTOCOL_COMPARE, fs_protocol(%rip)
    je 6f
    /* counter and lazy */
    movq %gs:GS_KERNEL_TCB, %rax
    cmpq $0, TCB_KERNEL_TCB_COUNTER(%rax)
    jne 1f
    WRITE_FSBASE_RAX                 /* rax still holds the kernel TCB */
1:  movq %gs:GS_KERNEL_TCB, %rax
    incq TCB_KERNEL_TCB_COUNTER(%rax)
    jmp 7f
    /*
     * compare: switch if FS is some other TCB. A syscall reads the self word FS points at,
     * as OSv does (%fs:0: compare_fs_read, which faults if the app's FS points at nothing
     * readable); an interrupt or exception looks at the FS base PUSH_ENTRY_STATE saved in
     * its frame, reading nothing through FS, so that such a fault comes in on the kernel's
     * FS and is reported (trap.c) instead of faulting again in its own entry, for ever.
     */
6:  movq %gs:GS_KERNEL_TCB, %rax
    .ifc \kind,syscall
.globl compare_fs_read
compare_fs_read:
    movq %fs:TCB_SELF, %rcx
    cmpq TCB_SELF(%rax), %rcx
    .else
    cmpq %rax, FRAME_FS_BASE(%rsp)
    .endif
    je 5f
    WRITE_FSBASE_RAX
5:  jmp 7f                           /* every path takes one jmp: the same dispatch cost */
7:
.endm

/*
 * The exit half. Interrupts off, rsp at the frame; clobbers rax, rcx, rdx. kind is
 * syscall or trap: compare's exit decides differently for the two (see the top).
 */
.macro FS_EXIT kind
    cmpb $ASM_FS_PROTOCOL_COMPARE, fs_protocol(%rip)
    je 6f
    /* counter and lazy */
    movq %gs:GS_KERNEL_TCB, %rax
    decq TCB_KERNEL_TCB_COUNTER(%rax)
    jnz 1f
    movq TCB_APP_TCB(%rax), %rax
    WRITE_FSBASE_RAX
1:  jmp 7f
6:  movq %gs:GS_KERNEL_TCB, %rax
    .ifc \kind,syscall
    cmpq $0, TCB_APP_TCB(%rax)       /* compare, a syscall: back to app_tcb if it has one */
    .else
    cmpq %rax, FRAME_FS_BASE(%rsp)   /* compare, a trap: back if the entry switched */
    .endif
    je 5f
    movq TCB_APP_TCB(%rax), %rax
    WRITE_FSBASE_RAX
5:  jmp 7f
7:
.endm

/*
 * Unwind information for the entry frames, so GDB's backtrace goes from a handler
 * through the crossing into the app. With the frame built, the app's registers are at
 * fixed offsets from rsp: DW_CFA_expression says "register REG is saved at rsp + OFF",
 * DW_CFA_def_cfa_expression "the caller's rsp (the CFA) is the word at rsp + OFF".
 * The frames are marked as signal frames (.cfi_signal_frame): the app's stack lies
 * below the kernel's, which GDB accepts only across a signal frame. Offsets are
 * SLEB128: one byte below 64, two bytes up to 8191.
 */
.macro CFI_REG_AT reg, off
    .if \off < 64
    .cfi_escape 0x10, \reg, 0x02, 0x77, \off
    .else
    .cfi_escape 0x10, \reg, 0x03, 0x77, (\off & 0x7f) | 0x80, \off >> 7
    .endif
.endm

.macro CFI_CFA_AT off
    .if \off < 64
    .cfi_escape 0x0f, 0x03, 0x77, \off, 0x06
    .else
    .cfi_escape 0x0f, 0x04, 0x77, (\off & 0x7f) | 0x80, \off >> 7, 0x06
    .endif
.endm

/* DWARF register numbers (x86-64 psABI) */
#define DW_RAX 0
#define DW_RDX 1
#define DW_RCX 2
#define DW_RBX 3
#define DW_RSI 4
#define DW_RDI 5
#define DW_RBP 6
#define DW_R8 8
#define DW_R9 9
#define DW_R10 10
#define DW_R11 11
#define DW_R12 12
#define DW_R13 13
#define DW_R14 14
#define DW_R15 15
#define DW_RIP 16
#define DW_RFLAGS 49

/*
 * osv-fscheck's return check (core/fscheck.c), once the exit half has run and before
 * anything is popped: rsp is the frame. Off, a load and a predictable branch.
 */
.macro FSCHECK_RETURN function
    testl $1, fscheck_enabled(%rip)
    jz 1f
    movq %rsp, %rdi
    call \function
1:
.endm

/*
 * Push the two words that tell the debugger and the syscall history how we came in:
 * the counter before our increment and the FS base before any switch.
 */
.macro PUSH_ENTRY_STATE         /* clobbers rax, rcx, rdx */
    movq %gs:GS_KERNEL_TCB, %rax
    pushq TCB_KERNEL_TCB_COUNTER(%rax)
    READ_FSBASE_RAX
    pushq %rax
.endm

/* struct syscall_frame is complete: where the app's registers are (trap.h). */
.macro SYSCALL_FRAME_CFI
    CFI_CFA_AT 17*8
    CFI_REG_AT DW_RIP, 16*8
    CFI_REG_AT DW_RCX, 16*8
    CFI_REG_AT DW_RFLAGS, 15*8
    CFI_REG_AT DW_R11, 15*8
    CFI_REG_AT DW_RAX, 14*8
    CFI_REG_AT DW_RDI, 13*8
    CFI_REG_AT DW_RSI, 12*8
    CFI_REG_AT DW_RDX, 11*8
    CFI_REG_AT DW_R10, 10*8
    CFI_REG_AT DW_R8, 9*8
    CFI_REG_AT DW_R9, 8*8
    CFI_REG_AT DW_RBX, 7*8
    CFI_REG_AT DW_RBP, 6*8
    CFI_REG_AT DW_R12, 5*8
    CFI_REG_AT DW_R13, 4*8
    CFI_REG_AT DW_R14, 3*8
    CFI_REG_AT DW_R15, 2*8
.endm

/* struct trap_frame is complete: where the interrupted registers are (trap.h). */
.macro TRAP_FRAME_CFI
    CFI_CFA_AT 22*8
    CFI_REG_AT DW_RIP, 19*8
    CFI_REG_AT DW_RFLAGS, 21*8
    CFI_REG_AT DW_RAX, 16*8
    CFI_REG_AT DW_RBX, 15*8
    CFI_REG_AT DW_RCX, 14*8
    CFI_REG_AT DW_RDX, 13*8
    CFI_REG_AT DW_RSI, 12*8
    CFI_REG_AT DW_RDI, 11*8
    CFI_REG_AT DW_RBP, 10*8
    CFI_REG_AT DW_R8, 9*8
    CFI_REG_AT DW_R9, 8*8
    CFI_REG_AT DW_R10, 7*8
    CFI_REG_AT DW_R11, 6*8
    CFI_REG_AT DW_R12, 5*8
    CFI_REG_AT DW_R13, 4*8
    CFI_REG_AT DW_R14, 3*8
    CFI_REG_AT DW_R15, 2*8
.endm

.text
.globl entry_text_start             /* the entry stubs lie between these two labels */
entry_text_start:

/*
 * syscall_entry: reached through IA32_LSTAR. The CPU left rip in rcx, rflags in r11,
 * cleared IF (IA32_FMASK) and did not touch rsp: we are on the app's stack, whose red
 * zone we must not write, so nothing is pushed before the switch to the thread's
 * syscall stack. %gs:0 gives the TCB without %fs; %gs:8 holds rax meanwhile.
 */
.globl syscall_entry
.type syscall_entry, @function
syscall_entry:
    /* Until the frame is built, and again once it is taken down, backtraces end here. */
    .cfi_startproc simple
    .cfi_signal_frame
    .cfi_def_cfa rsp, 8
    .cfi_undefined rip
    movq %rax, %gs:GS_TMP0
    movq %gs:GS_KERNEL_TCB, %rax
    movq %rsp, TCB_SYSCALL_CALLER_STACK_POINTER(%rax)
    movq TCB_SYSCALL_STACK_TOP(%rax), %rsp
    /* On the syscall stack now; build struct syscall_frame (trap.h) from the top down. */
    pushq TCB_SYSCALL_CALLER_STACK_POINTER(%rax)
    movq %gs:GS_TMP0, %rax
    pushq %rcx                      /* app rip */
    pushq %r11                      /* app rflags */
    pushq %rax                      /* syscall number */
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %r10
    pushq %r8
    pushq %r9
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    /* lazy's fast syscalls leave here (syscall_fast[] is all 0 under counter and compare) */
    cmpq $FAST_SYSCALL_LIMIT, %rax
    jae 1f
    cmpb $0, syscall_fast(%rax)
    jne syscall_fast_path
1:  PUSH_ENTRY_STATE
    SYSCALL_FRAME_CFI
.Lsyscall_slow:                     /* syscall_fast_path comes back here when it declines */
    FS_ENTER syscall
    /* Kernel FS from here: C code may use __thread. */
    cld
    movq %rsp, %rdi
    /*
     * On its way out syscall_handler may have rewritten the frame to enter a signal
     * handler (core/signal.c): rip, rsp, rdi, rsi, rdx, rflags, and the rax it returns;
     * or rewound rip onto the syscall to restart it. rt_sigreturn never comes back
     * here: it leaves through sigreturn_exit.
     */
    call syscall_handler
    movq %rax, 14*8(%rsp)           /* frame->rax */
    cli
    .cfi_endproc
    /*
     * The exit path has unwind information of its own, not a signal frame's: GDB names
     * a stop inside a signal frame "<signal handler called>", and a debugger stops here.
     */
.globl syscall_exit                 /* a cloned thread starts here, with rsp at its frame */
syscall_exit:
    .cfi_startproc simple
    .cfi_def_cfa rsp, 8
    .cfi_undefined rip
#ifdef INJECT_SYSCALL_FS
    /*
     * make -C kernel syscall-fs (a fault to inject, never the default): the syscall
     * exit counts down but forgets to load app_tcb, so the app resumes with FS on its
     * kernel TCB: its TLS, errno and stack-protector canary are the kernel's memory.
     */
    movq %gs:GS_KERNEL_TCB, %rax
    decq TCB_KERNEL_TCB_COUNTER(%rax)
#else
    FS_EXIT syscall
#endif
    /* App FS from here (if the thread switches): no more C that touches __thread. */
    FSCHECK_RETURN fscheck_syscall_return
.Lsyscall_restore:                  /* syscall_fast_path's way out too */
    addq $16, %rsp                  /* fs_base, counter */
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    popq %r9
    popq %r8
    popq %r10
    popq %rdx
    popq %rsi
    popq %rdi
    popq %rax
    movq (%rsp), %r11               /* Linux returns rflags in r11 and rip in rcx */
    popfq
    popq %rcx
    popq %rsp                       /* back on the app's stack */
.globl syscall_return               /* the last instruction: a debugger checks FS here */
syscall_return:
    jmp *%rcx
    .cfi_endproc
.size syscall_entry, . - syscall_entry

/*
 * Interrupts and exceptions. Every vector arrives on an IST stack (arch.h): app code
 * runs in ring 0, so without one the CPU would push over the app's red zone. Each stub
 * pushes a zero where the CPU pushes no error code, then its vector.
 */
.globl trap_common
.type trap_common, @function
trap_common:
    .cfi_startproc simple
    .cfi_signal_frame
    .cfi_def_cfa rsp, 8
    .cfi_undefined rip
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    /* lazy's fast timer ticks leave here (trap_fast[] is all 0 under counter and compare) */
    movq TRAP_VECTOR_BEFORE_ENTRY_STATE(%rsp), %rax
    cmpb $0, trap_fast(%rax)
    jne trap_fast_path
    PUSH_ENTRY_STATE
    TRAP_FRAME_CFI
.Ltrap_slow:                        /* trap_fast_path comes back here when it declines */
    FS_ENTER trap
    cld
    movq %rsp, %rdi
    /* Returning to app code, trap_handler may have rewritten the frame to enter a
       signal handler (core/signal.c): the exit below returns into the handler. */
    call trap_handler
#ifdef BROKEN_FS_SWITCH
    /*
     * The deliberately broken kernel (make -C kernel broken-fs, for osv-fscheck's tests):
     * the exit half counts down but forgets to load app_tcb, so app code interrupted
     * at counter 0 resumes with FS on its kernel TCB.
     */
    movq %gs:GS_KERNEL_TCB, %rax
    decq TCB_KERNEL_TCB_COUNTER(%rax)
#elif defined(INJECT_COUNTER_LEAK)
    /*
     * make -C kernel counter-leak (a fault to inject): the page-fault exit skips the
     * exit half, as a demand-paging fast path that returns early would. The counter
     * stays one up for good, so from the app's first demand-paged page on no exit ever
     * brings it back to 0 or FS back to app_tcb.
     */
    cmpq $14, 17*8(%rsp)            /* frame->vector */
    je 4f
    FS_EXIT trap
4:
#else
    FS_EXIT trap
#endif
    FSCHECK_RETURN fscheck_trap_return
    .cfi_endproc
    /*
     * As for syscall_exit: the rest has unwind information of its own. (GDB looks up a
     * signal frame's unwind information at its exact pc, the instruction after the call,
     * so that one stays inside the signal frame's.)
     */
trap_exit:
    .cfi_startproc simple
    .cfi_def_cfa rsp, 8
    .cfi_undefined rip
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp                  /* vector, error code */
.globl trap_return                  /* the last instruction: a debugger checks FS here */
trap_return:
    iretq
    .cfi_endproc
.size trap_common, . - trap_common

/*
 * sigreturn_exit(frame): rt_sigreturn's way back into the context a signal handler
 * interrupted (core/signal.c has the whole delivery path). On entry:
 *   rdi  a struct trap_frame (trap.h) that syscall_handler built from the handler's
 *        rt_sigframe, in its own stack frame on this thread's syscall stack, below
 *        rt_sigreturn's syscall_frame; vector SIGRETURN_VECTOR
 *   IF   off; FS the kernel TCB, counter one up (rt_sigreturn's syscall entry)
 * Taking rsp up to the frame abandons the C frames below it. From there it is
 * trap_common's exit: the exit half of the protocol (counter back to its app value, FS
 * to app_tcb), osv-fscheck's return check, then trap_exit's pops and iretq, which
 * restore every register, rcx and r11 too (syscall_exit would set them from rip and
 * rflags), with rflags and rsp.
 */
.globl sigreturn_exit
.type sigreturn_exit, @function
sigreturn_exit:
    .cfi_startproc simple
    .cfi_def_cfa rsp, 8
    .cfi_undefined rip
    movq %rdi, %rsp
    FS_EXIT trap
    /* App FS from here, as after trap_common's exit half. */
    FSCHECK_RETURN fscheck_trap_return
    jmp trap_exit
    .cfi_endproc
.size sigreturn_exit, . - sigreturn_exit

/*
 * syscall_fast_path: lazy's fast syscalls (those syscall_fast[] marks; core/fastpath.c),
 * from syscall_entry with struct syscall_frame built but for its first two words:
 *   rax  the syscall number; rsp the frame + 16, on the thread's syscall stack
 *   FS   as the app left it (its app_tcb, or the kernel TCB for a thread that never
 *        set one), and it stays so: no FS_ENTER, no FS_EXIT, the counter untouched
 *   IF   off throughout (IA32_FMASK): nothing reschedules this CPU until syscall_return
 * Everything from here to syscall_return uses no %fs: check-fastpath.py disassembles
 * kernel.elf at build time and fails it if syscall_fast_handler, or any function it or
 * this stub can call, has an %fs operand or an indirect call. The handler declines
 * (returns 0, having changed nothing) when the call needs the slow path after all;
 * then we go on exactly as syscall_entry would have.
 */
.globl syscall_fast_path
.type syscall_fast_path, @function
syscall_fast_path:
    .cfi_startproc simple
    .cfi_signal_frame
    .cfi_def_cfa rsp, 8
    .cfi_undefined rip
    PUSH_ENTRY_STATE
    SYSCALL_FRAME_CFI
    cld
    /* From here to the return the CPU runs kernel code on the app's FS, and says so:
       osv-fscheck and the debugger's verdicts take it as the app's side. */
    movb $ASM_FAST_PATH_SYSCALL, %gs:GS_FAST_PATH
    movq %rsp, %rdi
    call syscall_fast_handler       /* 1: done, frame->rax is the result; 0: declined */
    movb $0, %gs:GS_FAST_PATH
    testl %eax, %eax
    jz .Lsyscall_slow
    movq FRAME_RAX(%rsp), %rax
.globl syscall_fast_exit            /* as at syscall_exit: rsp the frame, rax the result */
syscall_fast_exit:
    FSCHECK_RETURN fscheck_syscall_return
    jmp .Lsyscall_restore
    .cfi_endproc
.size syscall_fast_path, . - syscall_fast_path

/*
 * trap_fast_path: lazy's fast timer ticks (trap_fast[]; core/fastpath.c), from
 * trap_common with struct trap_frame built but for its first two words, on the IST
 * stack the CPU chose, interrupts off. As for syscall_fast_path: FS and the counter
 * stay as they were, nothing from here to trap_return uses %fs (check-fastpath.py),
 * and a tick the handler declines (one that lands in kernel code, reschedules, wakes a
 * sleeper or fires a timer signal) goes on as trap_common would have.
 */
.globl trap_fast_path
.type trap_fast_path, @function
trap_fast_path:
    .cfi_startproc simple
    .cfi_signal_frame
    .cfi_def_cfa rsp, 8
    .cfi_undefined rip
    PUSH_ENTRY_STATE
    TRAP_FRAME_CFI
    cld
    movb $ASM_FAST_PATH_TIMER, %gs:GS_FAST_PATH
    movq %rsp, %rdi
    call trap_fast_handler          /* 1: done; 0: declined, nothing changed */
    movb $0, %gs:GS_FAST_PATH
    testl %eax, %eax
    jz .Ltrap_slow
    FSCHECK_RETURN fscheck_trap_return
    jmp trap_exit
    .cfi_endproc
.size trap_fast_path, . - trap_fast_path

/* 256 stubs, 16 bytes apart, so trap_init() finds vector N's at trap_stubs + 16 * N. */
#define HAS_ERROR_CODE(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)
.p2align 4
.globl trap_stubs
trap_stubs:
.set vec, 0
.rept 256
    .p2align 4
    .if !HAS_ERROR_CODE(vec)
    pushq $0
    .endif
    pushq $vec
    jmp trap_common
    .set vec, vec + 1
.endr
.globl entry_text_end
entry_text_end:

/*
 * app_start(entry, stack, rdx): enter the app as Linux's execve leaves it (psABI 3.4.1):
 * rsp at argc, rdx the function for atexit (0: none; only --inject=rdx-garbage passes
 * anything else), flags clear but for interrupts (the timer preempts app code). r11
 * carries the entry.
 */
.text
.globl app_start
.type app_start, @function
app_start:
    pushq $0x202
    popfq
    movq %rdi, %r11
    movq %rsi, %rsp
    xorl %eax, %eax
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %ebp, %ebp
    xorl %r8d, %r8d
    xorl %r9d, %r9d
    xorl %r10d, %r10d
    xorl %r12d, %r12d
    xorl %r13d, %r13d
    xorl %r14d, %r14d
    xorl %r15d, %r15d
    jmp *%r11
.size app_start, . - app_start
