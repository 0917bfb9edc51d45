#ifndef ARCH_H
#define ARCH_H
/* x86-64 per-CPU state and the privileged instructions the rest of the kernel uses. */
#include "types.h"

#define MAX_CPUS 64

#define MSR_EFER          0xc0000080
#define MSR_STAR          0xc0000081
#define MSR_LSTAR         0xc0000082
#define MSR_SFMASK        0xc0000084
#define MSR_FS_BASE       0xc0000100
#define MSR_GS_BASE       0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102

#define GDT_KERNEL_CODE 0x08
#define GDT_KERNEL_DATA 0x10
#define GDT_TSS         0x18
#define NR_GDT          5      /* null, code, data, TSS (two slots) */

/*
 * IST slots (1-based in the IDT gate). Separate stacks so one class cannot overwrite
 * another. IST_EXCEPTION takes every ordinary exception and interrupt (app code may be
 * using its red zone) and points at the running thread's own exception stack, set on
 * each context switch: a thread preempted inside an interrupt keeps its frame there.
 * ist_stack[0] serves it only until the CPU runs its first thread.
 */
#define IST_EXCEPTION   1
#define IST_DOUBLE_FAULT 2
#define IST_NMI         3
#define IST_MACHINE_CHECK 4
#define NR_IST          4
#define IST_STACK_SIZE  (16 * 1024)

/*
 * The seed's per-CPU scratch: IA32_GS_BASE points at kernel_tcb, so entry code reaches
 * this CPU's current kernel TCB as %gs:0 without touching %fs, and has two scratch slots.
 */
struct tcb_data {
    u64 kernel_tcb;
    u64 tmp[2];
};

struct tss {
    u32 reserved0;
    u64 rsp[3];
    u64 reserved1;
    u64 ist[7];
    u64 reserved2;
    u16 reserved3;
    u16 iomap_base;
} __attribute__((packed));

struct thread;

struct arch_cpu {
    struct tcb_data tcb_data;     /* first, so %gs:0 is tcb_data.kernel_tcb */
    struct arch_cpu *self;        /* %gs:24, so C finds its CPU in one load */
    u32 preempt_count;            /* %gs:32: spinlocks held; no preemption while non-zero */
    u8 fast_path;                 /* %gs:36: lazy's fast path runs on the app's FS (core/
                                     fastpath.c): enum fast_path; set and cleared by entry.S */
    u32 id;
    u32 apic_id;
    bool online;
    bool stopped;                 /* halted for good: the app exited, or a panic */
    struct thread *current;       /* thread running on this CPU, for the debugger and panics */
    struct thread *idle_thread;
    struct thread *exited_thread;   /* switched away from for good: sched.c frees it */
    u32 slice;                    /* timer ticks the current thread has run since it was picked */
    u64 entries;                  /* syscalls, interrupts and exceptions entered: a debugger
                                     tells two breakpoint hits apart by it */
    u64 timer_ticks;              /* LAPIC timer interrupts taken */
    u64 app_interrupts;           /* of those and other interrupts, how many landed in app code */
    u64 fast_ticks;               /* of those, timer ticks lazy's fast path took (no FS switch) */
    u64 fscheck_checks;           /* crossings osv-fscheck's watchdog checked (core/fscheck.c) */
    u64 gdt[NR_GDT];
    struct tss tss __attribute__((aligned(16)));
    u8 ist_stack[NR_IST][IST_STACK_SIZE] __attribute__((aligned(16)));
};

extern struct arch_cpu cpus[MAX_CPUS];
extern unsigned nr_cpus;

/*
 * The FS-base protocol the entry paths follow (--fs-protocol=..., entry.S's opening
 * comment has all three). A byte, so entry.S tests it with one cmpb; the debugger
 * reads it and names it from this enum's DWARF.
 */
enum fs_protocol {
    FS_PROTOCOL_COUNTER = 0,        /* the seed's kernel_tcb_counter (the default) */
    FS_PROTOCOL_COMPARE = 1,        /* OSv's merged design: compare %fs:0 with the kernel TCB */
    FS_PROTOCOL_LAZY = 2,           /* counter, but a few syscalls leave FS alone */
};
extern u8 fs_protocol;

/* arch_cpu.fast_path: which of lazy's fast paths this CPU is in (the debugger reads it). */
enum fast_path {
    FAST_PATH_NONE = 0,
    FAST_PATH_SYSCALL = 1,          /* syscall_fast_handler */
    FAST_PATH_TIMER = 2,            /* trap_fast_handler: a timer tick that reschedules nothing */
};

/* 1 when CPUID reports FSGSBASE and CR4.FSGSBASE is on: entry paths use wrfsbase, else wrmsr. */
extern u8 fsgsbase_avail;
extern unsigned timer_hz;           /* LAPIC timer interrupts per second per CPU (--hz=N) */
extern u64 tsc_per_ms;
extern u64 boot_tsc;

void arch_init_boot_cpu(void);
void arch_cpu_features(u32 *hwcap, u32 *hwcap2, u32 *minsigstksz);
void arch_disable_fsgsbase(void);
u64 arch_fpu_state_size(void);
void arch_fpu_init_state(void *area);
void arch_fpu_save(void *area);
void arch_fpu_restore(void *area);
bool arch_fpu_uses_xsave(void);
u64 arch_fpu_xfeatures(void);
void arch_fpu_reset(void);
void set_fsbase(u64 base);
u64 get_fsbase(void);
void arch_init_tsc(void);
void rtc_read_epoch(u64 *seconds);
bool rdrand64(u64 *v);
noreturn void arch_exit_qemu(int status);
noreturn void arch_triple_fault(void);

void lapic_init(void);
void lapic_eoi(void);
void lapic_send_ipi(u32 apic_id, u32 vector);
void lapic_send_nmi_all_but_self(void);
u32 lapic_id(void);
void ioapic_route(unsigned pin, u32 vector, u32 apic_id, bool level);
void smp_init(u64 rsdp_paddr);
unsigned stop_other_cpus(bool panic);
noreturn void cpu_stop_halt(void);
void tlb_shootdown_ipi(void);
extern bool cpus_stopping, kernel_panicking;
void init_cpu_tables(struct arch_cpu *cpu);
u64 tsc_ns(void);
void delay_us(u64 us);

/* The kernel's interrupt vectors (the debugger reads their names from this enum's DWARF). */
enum interrupt_vector {
    TIMER_VECTOR = 32,
    VIRTIO_VECTOR = 33,             /* the virtio devices: the app's terminal (tty.c) */
    IPI_RESCHEDULE_VECTOR = 0xf1,
    IPI_TLB_VECTOR = 0xf2,
    IPI_SIGNAL_VECTOR = 0xf3,       /* a signal for the thread running there: enter the kernel */
    SPURIOUS_VECTOR = 0xff,
};

static inline struct arch_cpu *this_cpu(void)
{
    struct arch_cpu *cpu;
    __asm__ __volatile__("mov %%gs:" "24" ", %0" : "=r"(cpu));
    return cpu;
}

static inline u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    __asm__ __volatile__("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((u64)hi << 32) | lo;
}

static inline void wrmsr(u32 msr, u64 v)
{
    __asm__ __volatile__("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ __volatile__("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

static inline void outb(u16 port, u8 v) { __asm__ __volatile__("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ __volatile__("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline u64 read_cr2(void)
{
    u64 v;
    __asm__ __volatile__("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline void write_cr3(u64 v) { __asm__ __volatile__("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline void invlpg(u64 va) { __asm__ __volatile__("invlpg (%0)" : : "r"(va) : "memory"); }
static inline void cpu_relax(void) { __asm__ __volatile__("pause"); }
#endif
