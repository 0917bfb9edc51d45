/*
 * The local APIC, in xAPIC mode through its MMIO page (reached in the direct map):
 * the per-CPU timer that drives preemption, end-of-interrupt, and IPIs (INIT/SIPI to
 * start CPUs, NMIs to stop them, TLB shootdowns). And the I/O APIC, for the one device
 * interrupt the kernel takes: the virtio devices' (the app's terminal, tty.c).
 */
#include "arch.h"
#include "mm.h"
#include "spinlock.h"

#define LAPIC_PHYS      0xfee00000UL
#define LAPIC_ID        0x020
#define LAPIC_EOI       0x0b0
#define LAPIC_SVR       0x0f0
#define LAPIC_ICR_LOW   0x300
#define LAPIC_ICR_HIGH  0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0

unsigned timer_hz = 1000;
static u64 lapic_ticks_per_ms;     /* timer ticks (divide by 16) per millisecond, measured once */

static volatile u32 *lapic_reg(u32 off) { return (volatile u32 *)((u8 *)phys_to_virt(LAPIC_PHYS) + off); }
static u32 lapic_read(u32 off) { return *lapic_reg(off); }
static void lapic_write(u32 off, u32 v) { *lapic_reg(off) = v; }

u32 lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }

void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

/*
 * The ICR is two registers: the destination in HIGH, and writing LOW sends. Interrupts
 * are off between the two, as Linux has them: an interrupt handler that sends an IPI
 * of its own (a tick waking a thread kicks an idle CPU) would leave its destination
 * in HIGH, and this IPI would go to that CPU instead.
 */
static void lapic_icr(u32 apic_id, u32 low)
{
    u64 flags = irq_save();
    lapic_write(LAPIC_ICR_HIGH, apic_id << 24);
    lapic_write(LAPIC_ICR_LOW, low);
    for (int i = 0; i < 1000000 && (lapic_read(LAPIC_ICR_LOW) & (1 << 12)); i++)
        cpu_relax();                /* delivery status: wait until sent */
    irq_restore(flags);
}

void lapic_send_ipi(u32 apic_id, u32 vector) { lapic_icr(apic_id, vector); }

/* To every CPU but this one (destination shorthand 11b), delivery mode NMI. */
void lapic_send_nmi_all_but_self(void) { lapic_icr(0, (3 << 18) | (4 << 8)); }

void lapic_send_init(u32 apic_id) { lapic_icr(apic_id, (5 << 8) | (1 << 14)); }
void lapic_send_sipi(u32 apic_id, u32 page) { lapic_icr(apic_id, (6 << 8) | page); }

/*
 * Enable this CPU's APIC and start its periodic timer at timer_hz. The boot CPU
 * first measures the timer's rate against the TSC (calibrated already).
 */
void lapic_init(void)
{
    wrmsr(0x1b, rdmsr(0x1b) | (1 << 11));           /* IA32_APIC_BASE: global enable */
    lapic_write(LAPIC_SVR, 0x100 | SPURIOUS_VECTOR);
    lapic_write(LAPIC_TIMER_DIV, 0x3);              /* divide by 16 */
    if (!lapic_ticks_per_ms) {
        lapic_write(LAPIC_LVT_TIMER, 1 << 16);      /* masked, one shot */
        lapic_write(LAPIC_TIMER_INIT, 0xffffffff);
        delay_us(10000);
        lapic_ticks_per_ms = (0xffffffffu - lapic_read(LAPIC_TIMER_CUR)) / 10;
        if (!lapic_ticks_per_ms)
            lapic_ticks_per_ms = 1;
    }
    lapic_write(LAPIC_LVT_TIMER, TIMER_VECTOR | (1 << 17));    /* periodic */
    lapic_write(LAPIC_TIMER_INIT, MAX(lapic_ticks_per_ms * 1000 / timer_hz, 1));
}

/*
 * The I/O APIC at its usual address (microvm's MADT lists it there), reached through
 * its index/data register pair. GSI N arrives on pin N.
 */
#define IOAPIC_PHYS     0xfec00000UL
#define IOAPIC_REGSEL   0x00
#define IOAPIC_WIN      0x10
#define IOAPIC_REDTBL(pin) (0x10 + 2 * (pin))

static void ioapic_write(u32 reg, u32 v)
{
    volatile u32 *base = phys_to_virt(IOAPIC_PHYS);
    base[IOAPIC_REGSEL / 4] = reg;
    base[IOAPIC_WIN / 4] = v;
}

/*
 * Deliver pin's interrupts as vector to the CPU apic_id: fixed, active high, edge- or
 * level-triggered. A level-triggered line (a virtio device's) interrupts again after
 * the EOI for as long as the device holds it up.
 */
#define IOAPIC_LEVEL (1 << 15)
void ioapic_route(unsigned pin, u32 vector, u32 apic_id, bool level)
{
    ioapic_write(IOAPIC_REDTBL(pin) + 1, apic_id << 24);
    ioapic_write(IOAPIC_REDTBL(pin), vector | (level ? IOAPIC_LEVEL : 0));
}
