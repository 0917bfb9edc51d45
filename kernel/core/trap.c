/*
 * Exceptions and interrupts after entry.S has saved the registers and switched FS.
 * A fault in app code ends the program the way Linux's signal would (status 128+sig);
 * a fault in kernel code is a kernel panic.
 */
#include "trap.h"
#include "arch.h"
#include "console.h"
#include "lib.h"
#include "mm.h"
#include "panic.h"
#include "process.h"
#include "thread.h"

extern char kernel_start[], kernel_end[];

static const char *const exception_names[32] = {
    "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
    "invalid opcode", "device not available", "double fault", "coprocessor overrun",
    "invalid TSS", "segment not present", "stack fault", "general protection",
    "page fault", "reserved", "x87 error", "alignment check", "machine check",
    "SIMD error", "virtualization", "control protection",
};

/* The signal Linux would send for each exception in app code. */
static int exception_signal(u64 vector)
{
    switch (vector) {
    case 0: case 16: case 19: return 8;     /* SIGFPE */
    case 1: case 3: return 5;               /* SIGTRAP */
    case 6: return 4;                       /* SIGILL */
    case 17: return 7;                      /* SIGBUS */
    default: return 11;                     /* SIGSEGV */
    }
}

static const char *vector_name(u64 v)
{
    if (v < 32 && exception_names[v])
        return exception_names[v];
    return v < 32 ? "reserved" : "interrupt";
}

static bool in_kernel_code(u64 rip)
{
    return rip >= (u64)kernel_start && rip < (u64)kernel_end;
}

void trap_handler(struct trap_frame *f)
{
    if (f->vector >= 32) {
        /* Nothing is programmed to interrupt us yet; note and carry on. */
        printk("osv: unexpected interrupt %lu\n", f->vector);
        return;
    }
    /* Demand paging, for app code and for kernel code copying to or from the app. */
    if (f->vector == 14 && handle_user_fault(read_cr2(), f->error_code & 2, f->error_code & 16))
        return;
    if (in_kernel_code(f->rip) || f->vector == 8 || f->vector == 18 || f->vector == 2)
        panic_trap(f);
    kernel_tls_check();
    int sig = exception_signal(f->vector);
    if (f->vector == 14)
        printk("osv: %s: segmentation fault at %p, rip %p (page fault, error %#lx)\n",
               process.path, (void *)read_cr2(), (void *)f->rip, f->error_code);
    else
        printk("osv: %s: %s at rip %p (vector %lu, error %#lx)\n", process.path,
               vector_name(f->vector), (void *)f->rip, f->vector, f->error_code);
    process_exit(128 + sig);
}

static void panic_state(u64 fs_base, long counter)
{
    struct arch_cpu *cpu = this_cpu();
    struct thread *t = cpu->current;
    printk("  fs_base %p gs_base %p kernel_tcb %p\n", (void *)fs_base,
           (void *)rdmsr(MSR_GS_BASE), (void *)cpu->tcb_data.kernel_tcb);
    printk("  cpu %u tid %d kernel_tcb_counter %ld\n", cpu->id, t ? t->tid : -1, counter);
}

static noreturn void panic_end(void)
{
    debugcon_printf("osv-exit: panic\n");
    osv_panic_halt();
}

noreturn void panic(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    __asm__ __volatile__("cli");
    struct thread *t = this_cpu()->current;
    printk("osv: kernel panic: %s\n", buf);
    panic_state(get_fsbase(), t ? t->tcb->kernel_tcb_counter : 0);
    panic_end();
}

noreturn void panic_trap(const struct trap_frame *f)
{
    printk("osv: kernel panic: %s (vector %lu, error %#lx)\n", vector_name(f->vector), f->vector,
           f->error_code);
    printk("  rip %p rsp %p cr2 %p\n", (void *)f->rip, (void *)f->rsp, (void *)read_cr2());
    panic_state(f->fs_base, f->kernel_tcb_counter);
    panic_end();
}

/* Every CPU ends here after a panic, interrupts off, so a debugger can attach and look. */
noreturn void osv_panic_halt(void)
{
    for (;;)
        __asm__ __volatile__("cli; hlt");
}
