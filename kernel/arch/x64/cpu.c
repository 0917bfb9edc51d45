/* CPU setup: GDT/TSS/IDT, control registers, the syscall MSRs, GS base, TSC and RTC. */
#include "arch.h"
#include "asm-offsets.h"
#include "console.h"
#include "lib.h"
#include "thread.h"
#include "trap.h"

_Static_assert(offsetof(struct thread_control_block, self) == TCB_SELF, "TCB layout");
_Static_assert(offsetof(struct thread_control_block, tls_base) == TCB_TLS_BASE, "TCB layout");
_Static_assert(offsetof(struct thread_control_block, syscall_stack_top) == TCB_SYSCALL_STACK_TOP, "TCB layout");
_Static_assert(offsetof(struct thread_control_block, syscall_caller_stack_pointer) ==
               TCB_SYSCALL_CALLER_STACK_POINTER, "TCB layout");
_Static_assert(offsetof(struct thread_control_block, app_tcb) == TCB_APP_TCB, "TCB layout");
_Static_assert(offsetof(struct thread_control_block, kernel_tcb_counter) == TCB_KERNEL_TCB_COUNTER,
               "the seed's cmpq $0, 40(%rax)");
_Static_assert(offsetof(struct arch_cpu, tcb_data) == GS_KERNEL_TCB, "GS layout");
_Static_assert(offsetof(struct arch_cpu, tcb_data.tmp) == GS_TMP0, "GS layout");
_Static_assert(offsetof(struct arch_cpu, self) == GS_CPU_SELF, "GS layout");
_Static_assert(offsetof(struct arch_cpu, preempt_count) == GS_PREEMPT_COUNT, "GS layout");
_Static_assert(offsetof(struct arch_cpu, fast_path) == GS_FAST_PATH, "GS layout");
_Static_assert(ASM_FAST_PATH_SYSCALL == FAST_PATH_SYSCALL && ASM_FAST_PATH_TIMER == FAST_PATH_TIMER,
               "asm-offsets.h and arch.h agree");
_Static_assert(offsetof(struct trap_frame, vector) == TRAP_VECTOR_BEFORE_ENTRY_STATE + 16,
               "trap_common reads the vector before PUSH_ENTRY_STATE");
_Static_assert(sizeof(struct syscall_frame) == 18 * 8, "entry.S builds it with 18 pushes");
_Static_assert(offsetof(struct syscall_frame, rax) == FRAME_RAX, "entry.S stores the result there");
_Static_assert(offsetof(struct syscall_frame, fs_base) == FRAME_FS_BASE, "compare's exit reads it");
_Static_assert(offsetof(struct trap_frame, fs_base) == FRAME_FS_BASE, "compare's exit reads it");
_Static_assert(ASM_FS_PROTOCOL_COMPARE == FS_PROTOCOL_COMPARE, "asm-offsets.h and arch.h agree");

struct arch_cpu cpus[MAX_CPUS];
unsigned nr_cpus = 1;
u8 fsgsbase_avail;
u8 fs_protocol = FS_PROTOCOL_COUNTER;
u64 tsc_per_ms;
static bool xsave_avail;
static u64 xsave_mask;              /* XCR0: the state components we enable and switch */
static u64 fpu_state_size = 512;

struct idt_entry {
    u16 offset_lo;
    u16 selector;
    u8 ist;
    u8 type;
    u16 offset_mid;
    u32 offset_hi;
    u32 reserved;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
extern char trap_stubs[];
extern char syscall_entry[];

struct descriptor_pointer {
    u16 limit;
    u64 base;
} __attribute__((packed));

#define CR0_MP (1UL << 1)
#define CR0_EM (1UL << 2)
#define CR0_NE (1UL << 5)
#define CR0_WP (1UL << 16)
#define CR4_PGE (1UL << 7)
#define CR4_OSFXSR (1UL << 9)
#define CR4_OSXMMEXCPT (1UL << 10)
#define CR4_FSGSBASE (1UL << 16)
#define CR4_OSXSAVE (1UL << 18)

static u64 read_cr(int n)
{
    u64 v = 0;
    if (n == 0)
        __asm__ __volatile__("mov %%cr0, %0" : "=r"(v));
    else
        __asm__ __volatile__("mov %%cr4, %0" : "=r"(v));
    return v;
}

static void write_cr(int n, u64 v)
{
    if (n == 0)
        __asm__ __volatile__("mov %0, %%cr0" : : "r"(v));
    else
        __asm__ __volatile__("mov %0, %%cr4" : : "r"(v));
}

/*
 * SSE must be on (glibc uses it unconditionally) and, when the CPU has XSAVE, the
 * OS-enabled bits glibc checks before using AVX: CR4.OSXSAVE and XCR0.
 */
static void init_fpu(void)
{
    u32 a, b, c, d;
    write_cr(0, (read_cr(0) | CR0_MP | CR0_NE | CR0_WP) & ~CR0_EM);
    u64 cr4 = read_cr(4) | CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_PGE;
    cpuid(1, 0, &a, &b, &c, &d);
    xsave_avail = c & (1u << 26);
    if (xsave_avail)
        cr4 |= CR4_OSXSAVE;
    cpuid(7, 0, &a, &b, &c, &d);
    fsgsbase_avail = b & 1;
    if (fsgsbase_avail)
        cr4 |= CR4_FSGSBASE;
    write_cr(4, cr4);
    __asm__ __volatile__("fninit");
    if (xsave_avail) {
        cpuid(0xd, 0, &a, &b, &c, &d);
        u64 xcr0 = a & 0x7;                 /* x87, SSE, AVX */
        if ((a & 0xe0) == 0xe0)
            xcr0 |= 0xe0;                   /* AVX-512: all three or none */
        __asm__ __volatile__("xsetbv" : : "c"(0), "a"((u32)xcr0), "d"((u32)(xcr0 >> 32)));
        xsave_mask = xcr0;
        cpuid(0xd, 0, &a, &b, &c, &d);
        fpu_state_size = b;                 /* for what XCR0 now enables */
    }
}

/*
 * The app's FPU/SSE/AVX registers belong to its thread: every context switch saves the
 * outgoing thread's and loads the incoming one's. The kernel itself never touches them
 * (-mgeneral-regs-only), so syscalls and interrupts need not.
 */
u64 arch_fpu_state_size(void) { return fpu_state_size; }

void arch_fpu_init_state(void *area)
{
    memset(area, 0, fpu_state_size);
    *(u16 *)area = 0x37f;                   /* x87 control word: all exceptions masked */
    *(u32 *)((u8 *)area + 24) = 0x1f80;     /* MXCSR: all exceptions masked */
}

void arch_fpu_save(void *area)
{
    if (xsave_avail)
        __asm__ __volatile__("xsave64 (%0)" : : "r"(area), "a"((u32)xsave_mask),
                             "d"((u32)(xsave_mask >> 32)) : "memory");
    else
        __asm__ __volatile__("fxsave64 (%0)" : : "r"(area) : "memory");
}

void arch_fpu_restore(void *area)
{
    if (xsave_avail)
        __asm__ __volatile__("xrstor64 (%0)" : : "r"(area), "a"((u32)xsave_mask),
                             "d"((u32)(xsave_mask >> 32)) : "memory");
    else
        __asm__ __volatile__("fxrstor64 (%0)" : : "r"(area) : "memory");
}

bool arch_fpu_uses_xsave(void) { return xsave_avail; }
u64 arch_fpu_xfeatures(void) { return xsave_mask; }

/* The registers a signal handler starts with (Linux: fpu__clear_user_states). */
void arch_fpu_reset(void)
{
    static u8 init_area[4096] __attribute__((aligned(64)));
    static bool ready;
    if (!ready) {
        arch_fpu_init_state(init_area);
        ready = true;
    }
    arch_fpu_restore(init_area);
}

void arch_cpu_features(u32 *hwcap, u32 *hwcap2, u32 *minsigstksz)
{
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    *hwcap = d;                             /* Linux: AT_HWCAP is CPUID.1:EDX */
    *hwcap2 = fsgsbase_avail ? 2 : 0;       /* HWCAP2_FSGSBASE: the app may use rd/wrfsbase */
    u32 xsave_size = 512 + 64;
    if (c & (1u << 26)) {
        cpuid(0xd, 0, &a, &b, &c, &d);
        xsave_size = b;                     /* for the features enabled in XCR0 */
    }
    /* Linux: the largest signal frame, i.e. the xsave area plus the rt_sigframe around it. */
    *minsigstksz = ALIGN_UP(xsave_size + 64 + 440 + 8, 16);
}

static void set_gate(int vec, int ist)
{
    u64 addr = (u64)trap_stubs + 16 * vec;
    idt[vec] = (struct idt_entry){
        .offset_lo = addr & 0xffff,
        .selector = GDT_KERNEL_CODE,
        .ist = ist,
        .type = 0x8e,                       /* present, DPL 0, interrupt gate: IF cleared */
        .offset_mid = (addr >> 16) & 0xffff,
        .offset_hi = addr >> 32,
    };
}

void trap_init(void)
{
    for (int v = 0; v < 256; v++)
        set_gate(v, IST_EXCEPTION);
    set_gate(2, IST_NMI);
    set_gate(8, IST_DOUBLE_FAULT);
    set_gate(18, IST_MACHINE_CHECK);
}

static void load_gdt_tss(struct arch_cpu *cpu)
{
    cpu->gdt[0] = 0;
    cpu->gdt[1] = 0x00af9a000000ffffUL;     /* 0x08: 64-bit code */
    cpu->gdt[2] = 0x00cf92000000ffffUL;     /* 0x10: data */
    u64 base = (u64)&cpu->tss;
    u64 limit = sizeof(cpu->tss) - 1;
    cpu->gdt[3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89UL << 40) |
                  (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    cpu->gdt[4] = base >> 32;
    for (int i = 0; i < NR_IST; i++)
        cpu->tss.ist[i] = (u64)cpu->ist_stack[i] + IST_STACK_SIZE;
    /* IST_EXCEPTION moves to each thread's own exception stack when it runs (sched.c). */
    cpu->tss.iomap_base = sizeof(cpu->tss);

    struct descriptor_pointer gdtp = { sizeof(cpu->gdt) - 1, (u64)cpu->gdt };
    struct descriptor_pointer idtp = { sizeof(idt) - 1, (u64)idt };
    __asm__ __volatile__(
        "lgdt %0\n\t"
        "pushq %2\n\t"
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"
        "1:\n\t"
        "mov %3, %%eax\n\t"
        "mov %%eax, %%ds\n\t"
        "mov %%eax, %%es\n\t"
        "mov %%eax, %%ss\n\t"
        "ltr %w4\n\t"
        "lidt %1"
        : : "m"(gdtp), "m"(idtp), "i"(GDT_KERNEL_CODE), "i"(GDT_KERNEL_DATA), "r"(GDT_TSS)
        : "rax", "memory");
}

/* Everything each CPU sets up for itself: FPU, GDT/TSS/IDT, GS base, syscall MSRs. */
void init_cpu_tables(struct arch_cpu *cpu)
{
    cpu->self = cpu;
    init_fpu();
    load_gdt_tss(cpu);
    /* The seed's step 2: GS base at this CPU's tcb_data, so %gs:0 is the kernel TCB. */
    wrmsr(MSR_GS_BASE, (u64)&cpu->tcb_data.kernel_tcb);
    /* syscall in ring 0: CS/SS from STAR (ours), entry at LSTAR, mask IF/TF/DF/AC/NT. */
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | 1);
    wrmsr(MSR_STAR, (u64)GDT_KERNEL_CODE << 32);
    wrmsr(MSR_LSTAR, (u64)syscall_entry);
    wrmsr(MSR_SFMASK, 0x47700);
}

void arch_init_boot_cpu(void)
{
    trap_init();
    init_cpu_tables(&cpus[0]);
    /* Device interrupts come through the local APIC only: mask both 8259s. */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

/* The wrmsr path even on a CPU with FSGSBASE; apps then see no HWCAP2_FSGSBASE either. */
void arch_disable_fsgsbase(void)
{
    fsgsbase_avail = 0;
    write_cr(4, read_cr(4) & ~CR4_FSGSBASE);
}

void set_fsbase(u64 base)
{
    if (fsgsbase_avail)
        __asm__ __volatile__("wrfsbase %0" : : "r"(base) : "memory");
    else
        wrmsr(MSR_FS_BASE, base);
}

u64 get_fsbase(void)
{
    u64 base;
    if (fsgsbase_avail)
        __asm__ __volatile__("rdfsbase %0" : "=r"(base));
    else
        base = rdmsr(MSR_FS_BASE);
    return base;
}

/*
 * TSC frequency: CPUID leaf 0x15/0x16 when it is there, else measured against the
 * i8254 PIT (1.193182 MHz) by reading its channel 0 counter back, which needs no port
 * 0x61 gate (microvm has none).
 */
#define PIT_HZ 1193182
static u16 pit_read(void)
{
    outb(0x43, 0x00);               /* latch channel 0 */
    u8 lo = inb(0x40);
    u8 hi = inb(0x40);
    return lo | (hi << 8);
}

void arch_init_tsc(void)
{
    u32 a, b, c, d;
    cpuid(0, 0, &a, &b, &c, &d);
    if (a >= 0x15) {
        u32 den, num, hz, unused;
        cpuid(0x15, 0, &den, &num, &hz, &unused);
        if (den && num && hz) {
            tsc_per_ms = (u64)hz * num / den / 1000;
            return;
        }
    }
    outb(0x43, 0x34);               /* channel 0, lo/hi, mode 2, binary */
    outb(0x40, 0xff);
    outb(0x40, 0xff);
    u16 start = pit_read();
    if (start == 0xffff && pit_read() == 0xffff) {
        tsc_per_ms = 1000000;       /* no PIT: assume 1 GHz rather than divide by zero */
        return;
    }
    /* 10 ms of PIT ticks, tracking the 16-bit wrap. */
    u64 t0 = rdtsc();
    u32 elapsed = 0;
    u16 last = start;
    while (elapsed < PIT_HZ / 100) {
        u16 now = pit_read();
        elapsed += (u16)(last - now);
        last = now;
        if (rdtsc() - t0 > 50000000000UL)
            break;
    }
    u64 ticks = rdtsc() - t0;
    tsc_per_ms = ticks * PIT_HZ / ((u64)elapsed * 1000);
    if (!tsc_per_ms)
        tsc_per_ms = 1000000;
}

/* Nanoseconds since the first instruction (boot_tsc). */
u64 tsc_ns(void)
{
    u64 ticks = rdtsc() - boot_tsc;
    return ticks / tsc_per_ms * 1000000 + (ticks % tsc_per_ms) * 1000000 / tsc_per_ms;
}

void delay_us(u64 us)
{
    u64 until = rdtsc() + us * tsc_per_ms / 1000;
    while (rdtsc() < until)
        cpu_relax();
}

/* Wall clock from the CMOS RTC, once at boot; 0 when there is none. */
static u8 cmos(u8 reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

static u32 bcd(u8 v, bool binary) { return binary ? v : (v & 0xf) + (v >> 4) * 10; }

void rtc_read_epoch(u64 *seconds)
{
    *seconds = 0;
    for (int i = 0; i < 1000 && (cmos(0x0a) & 0x80); i++)
        cpu_relax();
    u8 status_b = cmos(0x0b);
    if (status_b == 0xff)
        return;
    bool binary = status_b & 4;
    u32 sec = bcd(cmos(0x00), binary), min = bcd(cmos(0x02), binary);
    u32 hour = bcd(cmos(0x04) & 0x7f, binary), day = bcd(cmos(0x07), binary);
    u32 mon = bcd(cmos(0x08), binary), year = bcd(cmos(0x09), binary) + 2000;
    if (mon < 1 || mon > 12 || day < 1 || day > 31)
        return;
    /* Days from civil (Howard Hinnant's algorithm). */
    int y = year - (mon <= 2);
    int era = y / 400;
    unsigned yoe = y - era * 400;
    unsigned doy = (153 * (mon + (mon > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64 days = (u64)era * 146097 + doe - 719468;
    *seconds = days * 86400 + hour * 3600 + min * 60 + sec;
}

bool rdrand64(u64 *v)
{
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    if (!(c & (1u << 30)))
        return false;
    for (int i = 0; i < 10; i++) {
        u8 ok;
        __asm__ __volatile__("rdrand %0; setc %1" : "=r"(*v), "=qm"(ok));
        if (ok)
            return true;
    }
    return false;
}

/*
 * Leave QEMU: the status goes to the host runner on debugcon (exact), and to QEMU's
 * isa-debug-exit, which exits with (value << 1) | 1 (the host sees its low 8 bits).
 * First the console's last bytes leave the UART: QEMU exits at once, and what its
 * serial port still held (the end of a --verbose report) was lost.
 */
noreturn void arch_exit_qemu(int status)
{
    console_flush();
    debugcon_printf("osv-exit: status=%d\n", status);
    outl(0xf4, status & 0xff);
    for (;;)
        __asm__ __volatile__("cli; hlt");
}

/*
 * --inject=triple-fault: an IDT with limit 0 makes the breakpoint a #GP, that a #DF and
 * that a triple fault; the machine resets (QEMU with -no-reboot exits, reason guest-reset).
 */
noreturn void arch_triple_fault(void)
{
    struct descriptor_pointer empty = { 0, 0 };
    __asm__ __volatile__("cli; lidt %0; int3" : : "m"(empty) : "memory");
    for (;;)
        __asm__ __volatile__("hlt");
}
