#ifndef SPINLOCK_H
#define SPINLOCK_H
/*
 * Spinlocks. spin_lock() keeps the holder from being preempted (the per-CPU
 * preempt_count) but leaves interrupts as they are, so a CPU waiting for a TLB
 * shootdown still takes IPIs. spin_lock_irqsave() also disables interrupts: for data
 * that interrupt handlers touch (the scheduler's, the console's).
 */
#include "arch.h"

struct spinlock {
    volatile u32 locked;
    int cpu;                /* holder, for the debugger and for panics; -1 when free */
};

#define SPINLOCK_INIT { 0, -1 }

static inline u64 irq_save(void)
{
    u64 flags;
    __asm__ __volatile__("pushfq; popq %0; cli" : "=r"(flags) : : "memory");
    return flags;
}

static inline void irq_restore(u64 flags)
{
    if (flags & 0x200)
        __asm__ __volatile__("sti" : : : "memory");
}

static inline void raw_spin_lock(struct spinlock *l)
{
    while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
        while (l->locked)
            cpu_relax();
    l->cpu = this_cpu()->id;
}

static inline void raw_spin_unlock(struct spinlock *l)
{
    l->cpu = -1;
    __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

/* One instruction each, so an interrupt cannot split the read from the write. */
static inline void preempt_disable(void) { __asm__ __volatile__("incl %%gs:32" : : : "memory"); }
static inline void preempt_enable(void) { __asm__ __volatile__("decl %%gs:32" : : : "memory"); }

static inline void spin_lock(struct spinlock *l)
{
    preempt_disable();
    raw_spin_lock(l);
}

static inline void spin_unlock(struct spinlock *l)
{
    raw_spin_unlock(l);
    preempt_enable();
}

static inline u64 spin_lock_irqsave(struct spinlock *l)
{
    u64 flags = irq_save();
    raw_spin_lock(l);
    return flags;
}

static inline void spin_unlock_irqrestore(struct spinlock *l, u64 flags)
{
    raw_spin_unlock(l);
    irq_restore(flags);
}
#endif
