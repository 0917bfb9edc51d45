/*
 * Application processors: found in the ACPI MADT, started with INIT-SIPI-SIPI through
 * trampoline.S, each then sets up its own arch_cpu (GDT/TSS/IDT, GS base, syscall
 * MSRs, LAPIC timer) and idles until the scheduler gives it a thread. Also what CPUs
 * ask of each other: TLB shootdowns, and stopping for good.
 */
#include "arch.h"
#include "console.h"
#include "lib.h"
#include "mm.h"
#include "spinlock.h"
#include "thread.h"

#define TRAMPOLINE_PA 0x8000        /* below 1 MiB, page aligned: reserved by mm_init */

extern char smp_trampoline[], smp_trampoline_end[], smp_trampoline_stack[], smp_trampoline_arg[];
unsigned acpi_cpu_apic_ids(u64 rsdp_hint, u32 *apic_ids, unsigned max);
void lapic_send_init(u32 apic_id);
void lapic_send_sipi(u32 apic_id, u32 page);

bool cpus_stopping;                 /* the app exited: every other CPU halts in cpu_stop_halt */
bool kernel_panicking;              /* a panic: every other CPU halts in osv_panic_halt */

static void *trampoline_field(char *symbol)
{
    return (u8 *)phys_to_virt(TRAMPOLINE_PA) + (symbol - smp_trampoline);
}

noreturn void ap_entry(struct arch_cpu *cpu)
{
    write_cr3(mm_kernel_cr3());
    init_cpu_tables(cpu);
    sched_init_cpu(cpu->idle_thread);   /* FS: the idle thread's TCB, so __thread works */
    lapic_init();
    __atomic_store_n(&cpu->online, true, __ATOMIC_RELEASE);
    sched_idle_loop();
}

static bool wait_online(struct arch_cpu *cpu, u64 us)
{
    u64 until = tsc_ns() + us * 1000;
    while (!__atomic_load_n(&cpu->online, __ATOMIC_ACQUIRE) && tsc_ns() < until)
        cpu_relax();
    return cpu->online;
}

void smp_init(u64 rsdp_paddr)
{
    u32 apic_ids[MAX_CPUS];
    unsigned n = acpi_cpu_apic_ids(rsdp_paddr, apic_ids, MAX_CPUS);
    u32 self = lapic_id();
    cpus[0].apic_id = self;
    cpus[0].online = true;
    memcpy(phys_to_virt(TRAMPOLINE_PA), smp_trampoline, smp_trampoline_end - smp_trampoline);
    for (unsigned i = 0; i < n; i++) {
        if (apic_ids[i] == self)
            continue;
        struct arch_cpu *cpu = &cpus[nr_cpus];
        cpu->id = nr_cpus;
        cpu->apic_id = apic_ids[i];
        cpu->idle_thread = thread_create("idle", NULL, NULL);
        if (!cpu->idle_thread)
            break;
        /* One AP at a time: they share the trampoline's stack and argument slots. */
        *(u64 *)trampoline_field(smp_trampoline_stack) = (u64)cpu->idle_thread->tcb->syscall_stack_top;
        *(u64 *)trampoline_field(smp_trampoline_arg) = (u64)cpu;
        lapic_send_init(cpu->apic_id);
        delay_us(10000);
        lapic_send_sipi(cpu->apic_id, TRAMPOLINE_PA >> 12);
        /*
         * As long as it takes. Under TCG an AP is a host thread that a loaded host may
         * not run for a while: this gave up after half a second once (in a 25 s boot),
         * and the AP started anyway, later, on what the trampoline's slots held by then,
         * the next AP's stack and arch_cpu: two CPUs on one stack, one preempt_count,
         * one `current` (a Go program then died at rip 0x86). Under QEMU an AP always comes;
         * a SIPI again after 1 ms (Intel's second) and then each second, for one that
         * missed it (one on its way ignores it), and a line every 10 s says why boot waits.
         */
        for (unsigned ms = 1; !wait_online(cpu, 1000); ms++) {
            if (ms == 1 || ms % 1000 == 0)
                lapic_send_sipi(cpu->apic_id, TRAMPOLINE_PA >> 12);
            if (ms % 10000 == 0)
                printk("osv: waiting for the CPU with APIC id %u to start (%u s so far)\n",
                       cpu->apic_id, ms / 1000);
        }
        nr_cpus++;
    }
}

/* TLB shootdown: each other running CPU reloads CR3 and says so. */
static struct spinlock tlb_lock = SPINLOCK_INIT;
static u32 tlb_acks;

void tlb_shootdown_ipi(void)
{
    write_cr3(mm_kernel_cr3());
    __atomic_add_fetch(&tlb_acks, 1, __ATOMIC_RELEASE);
}

void tlb_shootdown(void)
{
    if (nr_cpus == 1)
        return;
    spin_lock(&tlb_lock);
    __atomic_store_n(&tlb_acks, 0, __ATOMIC_RELAXED);
    u32 expected = 0;
    struct arch_cpu *self = this_cpu();
    for (unsigned i = 0; i < nr_cpus; i++) {
        if (&cpus[i] == self || !cpus[i].online || cpus[i].stopped)
            continue;
        lapic_send_ipi(cpus[i].apic_id, IPI_TLB_VECTOR);
        expected++;
    }
    while (__atomic_load_n(&tlb_acks, __ATOMIC_ACQUIRE) < expected)
        cpu_relax();
    spin_unlock(&tlb_lock);
}

/* An NMI gets through even to a CPU spinning with interrupts off. */
unsigned stop_other_cpus(bool panic)
{
    if (nr_cpus == 1)
        return 0;
    __atomic_store_n(panic ? &kernel_panicking : &cpus_stopping, true, __ATOMIC_RELEASE);
    lapic_send_nmi_all_but_self();
    unsigned stopped = 0;
    u64 until = tsc_ns() + 100000000UL;
    do {
        stopped = 0;
        for (unsigned i = 0; i < nr_cpus; i++)
            stopped += &cpus[i] != this_cpu() && __atomic_load_n(&cpus[i].stopped, __ATOMIC_ACQUIRE);
    } while (stopped < nr_cpus - 1 && tsc_ns() < until);
    return stopped;
}

noreturn void cpu_stop_halt(void)
{
    __atomic_store_n(&this_cpu()->stopped, true, __ATOMIC_RELEASE);
    for (;;)
        __asm__ __volatile__("cli; hlt");
}
