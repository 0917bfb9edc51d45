/*
 * Exceptions and interrupts after entry.S has saved the registers and switched FS.
 * A fault in app code goes to the faulting thread's handler for its signal, when it has
 * one (core/signal.c), else ends the program the way Linux's signal would (status
 * 128+sig); a fault in kernel code is a kernel panic. The way back to app code from an
 * interrupt delivers pending signals.
 */
#include "syscall_history.h"
#include "trap.h"
#include "arch.h"
#include "console.h"
#include "fscheck.h"
#include "lib.h"
#include "mm.h"
#include "panic.h"
#include "process.h"
#include "signal.h"
#include "thread.h"
#include "tty.h"

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

/* siginfo's si_code and si_addr for a fault, as Linux's trap handlers fill them. */
static int fault_code(const struct trap_frame *f, u64 cr2, u64 *addr)
{
    *addr = f->rip;
    switch (f->vector) {
    case 14:
        *addr = cr2;
        return user_page_prot(cr2) >= 0 ? SEGV_ACCERR : SEGV_MAPERR;
    case 0: return FPE_INTDIV;
    case 16: case 19: return FPE_FLTINV;
    case 6: return ILL_ILLOPN;
    case 1: return TRAP_BRKPT;
    case 17: *addr = 0; return BUS_ADRALN;
    default: *addr = 0; return SI_KERNEL;     /* #GP and the like: no address */
    }
}

static const char *vector_name(u64 v)
{
    if (v < 32 && exception_names[v])
        return exception_names[v];
    return v < 32 ? "reserved" : "interrupt";
}

/* The kernel's code is all in its image: anything else is the app's. */
static bool in_kernel_code(u64 rip)
{
    return rip >= (u64)kernel_start && rip < (u64)kernel_end;
}

/* Interrupts (vector 32 and up): the timer, the terminal's devices, IPIs. They come from app code too. */
static void interrupt(struct trap_frame *f, bool from_app)
{
    struct arch_cpu *cpu = this_cpu();
    if (from_app) {
        cpu->app_interrupts++;
        kernel_tls_check();
    }
    switch (f->vector) {
    case TIMER_VECTOR:
        cpu->timer_ticks++;
        lapic_eoi();
        syscall_trace_check(true);
        sched_tick();               /* may switch threads: this frame waits on our exception stack */
        return;
    case VIRTIO_VECTOR:
        tty_interrupt();
        lapic_eoi();
        return;
    case IPI_TLB_VECTOR:
        tlb_shootdown_ipi();
        lapic_eoi();
        return;
    case IPI_SIGNAL_VECTOR:         /* a signal for our thread: the exit path delivers it */
        lapic_eoi();
        return;
    case IPI_RESCHEDULE_VECTOR:     /* an idle CPU told that a thread is ready */
        lapic_eoi();
        /*
         * The kick can land late (the sender decides before it sends, and QEMU may
         * deliver a while after): by then this CPU may have left its idle loop for a
         * thread now in kernel code with interrupts on and a spinlock held. A switch
         * there leaves the lock with a thread off the CPU and its count on this CPU's
         * preempt_count; the thread's spin_unlock, wherever it runs next, takes one
         * off that CPU's. Both counts then stay non-zero, so neither CPU is ever
         * preempted by its timer again (a Go program hung so, its collector READY
         * behind goroutines spinning on every CPU), or every CPU spins on the lock
         * for good. So, as the timer: no switch while this CPU holds a spinlock; the
         * ready thread runs at the next switch here or on another CPU.
         */
        if (!cpu->preempt_count)
            schedule();
        return;
    case SPURIOUS_VECTOR:
        return;                     /* spurious interrupts take no EOI */
    default:
        printk("osv: unexpected interrupt %lu\n", f->vector);
        lapic_eoi();
    }
}

extern char compare_fs_read[];      /* entry.S: compare's read of the app's %fs:0 */

void trap_handler(struct trap_frame *f)
{
    this_cpu()->entries++;
    if (fscheck_enabled)
        fscheck_trap_entry(f);
    bool from_app = !in_kernel_code(f->rip);
    if (f->vector >= 32) {
        interrupt(f, from_app);
        if (from_app)
            signal_trap_exit(f);
        return;
    }
    if (f->vector == 2) {           /* NMI: another CPU stops us */
        if (__atomic_load_n(&kernel_panicking, __ATOMIC_ACQUIRE))
            osv_panic_halt();
        if (__atomic_load_n(&cpus_stopping, __ATOMIC_ACQUIRE))
            cpu_stop_halt();
        panic_trap(f);
    }
    /* Demand paging, for app code and for kernel code copying to or from the app. */
    if (f->vector == 14 && handle_user_fault(read_cr2(), f->error_code & 2, f->error_code & 16)) {
        if (from_app)
            signal_trap_exit(f);
        return;
    }
    if (f->vector == 14 && f->rip == (u64)compare_fs_read)
        printk("osv: --fs-protocol=compare: the app's FS base %#lx points at no TCB it can "
               "read (a syscall's entry reads its self word, %%fs:0); counter never reads it\n",
               f->fs_base);
    if (!from_app || f->vector == 8 || f->vector == 18)
        panic_trap(f);
    kernel_tls_check();
    int sig = exception_signal(f->vector);
    u64 cr2 = read_cr2(), addr;
    int code = fault_code(f, cr2, &addr);
    if (signal_fault(f, sig, code, addr))
        return;                     /* into the handler, by trap_common's exit */
    fatal_report_set(sig, f, NULL);
    if (f->vector == 14 && cr2 < process.stack_low && cr2 >= process.stack_low - STACK_GUARD_GAP)
        exit_reason("%s: stack overflow: segmentation fault at %p, rip %p, below the 8 MiB "
                    "stack (page fault, error %#lx)", process.path, (void *)cr2, (void *)f->rip,
                    f->error_code);
    else if (f->vector == 14)
        exit_reason("%s: segmentation fault at %p, rip %p (page fault, error %#lx)",
                    process.path, (void *)cr2, (void *)f->rip, f->error_code);
    else
        exit_reason("%s: %s at rip %p (vector %lu, error %#lx)", process.path,
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
    console_flush();    /* the whole report has left the UART before the host hears of it */
    debugcon_printf("osv-exit: panic\n");
    osv_panic_halt();
}

struct panic_report panic_report = { .cpu = -1 };

/* The first CPU to panic reports; the others (and any later panic) just halt. */
static void panic_begin(const struct trap_frame *f, const char *message)
{
    __asm__ __volatile__("cli");
    static int panicked;
    if (__atomic_exchange_n(&panicked, 1, __ATOMIC_ACQ_REL))
        osv_panic_halt();
    panic_report.frame = f;
    panic_report.cr2 = read_cr2();
    snprintf(panic_report.message, sizeof(panic_report.message), "%s", message);
    panic_report.cpu = this_cpu()->id;
    stop_other_cpus(true);
}

noreturn void panic(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    panic_begin(NULL, buf);
    struct thread *t = this_cpu()->current;
    printk("osv: kernel panic: %s\n", buf);
    panic_state(get_fsbase(), t ? t->tcb->kernel_tcb_counter : 0);
    panic_end();
}

noreturn void panic_trap(const struct trap_frame *f)
{
    panic_begin(f, vector_name(f->vector));
    printk("osv: kernel panic: %s (vector %lu, error %#lx)\n", vector_name(f->vector), f->vector,
           f->error_code);
    printk("  rip %p rsp %p cr2 %p\n", (void *)f->rip, (void *)f->rsp, (void *)read_cr2());
    panic_state(f->fs_base, f->kernel_tcb_counter);
    panic_end();
}

/* Every CPU ends here after a panic, interrupts off, so a debugger can attach and look. */
noreturn void osv_panic_halt(void)
{
    __atomic_store_n(&this_cpu()->stopped, true, __ATOMIC_RELEASE);
    for (;;)
        __asm__ __volatile__("cli; hlt");
}
