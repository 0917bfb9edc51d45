#ifndef ASM_OFFSETS_H
#define ASM_OFFSETS_H
/*
 * Offsets the assembler entry paths use. Each is checked against the C structs by a
 * _Static_assert in arch/x64/cpu.c, so the two cannot drift apart.
 */

/* struct thread_control_block (what %fs points at, and what %gs:0 holds the address of) */
#define TCB_SELF                          0
#define TCB_TLS_BASE                      8
#define TCB_SYSCALL_STACK_TOP             16
#define TCB_SYSCALL_CALLER_STACK_POINTER  24
#define TCB_APP_TCB                       32
#define TCB_KERNEL_TCB_COUNTER            40

/* struct tcb_data, which IA32_GS_BASE points at on every CPU */
#define GS_KERNEL_TCB   0   /* %gs:0  this CPU's current thread's kernel TCB */
#define GS_TMP0         8   /* %gs:8  scratch for entry paths before a stack is usable */
#define GS_CPU_SELF     24  /* %gs:24 struct arch_cpu *self */
#define GS_PREEMPT_COUNT 32 /* %gs:32 u32 preempt_count */
#define GS_FAST_PATH    36  /* %gs:36 u8 fast_path (lazy's fast path runs: enum fast_path) */
#define ASM_FAST_PATH_SYSCALL 1
#define ASM_FAST_PATH_TIMER 2

/* enum fs_protocol (arch.h): the byte fs_protocol entry.S tests */
#define ASM_FS_PROTOCOL_COMPARE 1

/* struct syscall_frame (trap.h) / struct trap_frame: the FS base the entry found */
#define FRAME_FS_BASE   0
#define FRAME_RAX       (14 * 8)    /* syscall_frame: the number in, the result out */

/* struct trap_frame: the vector, after the 15 register pushes and before the entry state */
#define TRAP_VECTOR_BEFORE_ENTRY_STATE (15 * 8)

/* syscall_fast[] (core/fastpath.c): syscall numbers below this may take lazy's fast path */
#define FAST_SYSCALL_LIMIT 512

#define MSR_FS_BASE     0xc0000100
#endif
