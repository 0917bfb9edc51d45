/*
 * Filling the per-CPU syscall rings. A CPU enters records only in its own ring, with
 * interrupts off; the same call may complete on another CPU (the thread migrated), so
 * a record is claimed by setting SYSCALL_RECORD_WRITING with a compare-and-swap before
 * any other field changes, and released by the store that clears it. A reader (the
 * debugger, with the machine stopped) tells a half-written record by that flag.
 */
#include "syscall_history.h"
#include "trap.h"

struct syscall_history syscall_history[MAX_CPUS];
u64 syscall_seq;

void syscall_history_init(void)
{
    for (int i = 0; i < MAX_CPUS; i++) {
        syscall_history[i].size = SYSCALL_HISTORY_SIZE;
        syscall_history[i].record_size = sizeof(struct syscall_record);
    }
}

/* Take a slot for writing, waiting out a completion in progress on another CPU. */
static void claim(struct syscall_record *r)
{
    for (;;) {
        u32 flags = __atomic_load_n(&r->flags, __ATOMIC_RELAXED);
        if (!(flags & SYSCALL_RECORD_WRITING) &&
            __atomic_compare_exchange_n(&r->flags, &flags, SYSCALL_RECORD_WRITING, false,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        cpu_relax();
    }
}

struct syscall_record *syscall_history_enter(const struct syscall_frame *f, int tid)
{
    struct arch_cpu *cpu = this_cpu();
    struct syscall_history *h = &syscall_history[cpu->id];
    struct syscall_record *r = &h->records[h->head % SYSCALL_HISTORY_SIZE];
    h->head++;
    claim(r);
    r->seq = __atomic_add_fetch(&syscall_seq, 1, __ATOMIC_RELAXED);
    r->tsc_entry = rdtsc();
    r->tsc_exit = 0;
    r->nr = f->rax;
    r->args[0] = f->rdi;
    r->args[1] = f->rsi;
    r->args[2] = f->rdx;
    r->args[3] = f->r10;
    r->args[4] = f->r8;
    r->args[5] = f->r9;
    r->ret = 0;
    r->rip = f->rip;
    r->fs_base = f->fs_base;
    r->kernel_tcb_counter = f->kernel_tcb_counter;
    r->cpu = cpu->id;
    r->tid = tid;
    __atomic_store_n(&r->flags, SYSCALL_RECORD_IN_FLIGHT, __ATOMIC_RELEASE);
    return r;
}

/* Complete the record, unless the ring wrapped and the slot now holds a newer call. */
void syscall_history_exit(struct syscall_record *r, u64 seq, long ret)
{
    u32 expected = SYSCALL_RECORD_IN_FLIGHT;
    if (!__atomic_compare_exchange_n(&r->flags, &expected, SYSCALL_RECORD_WRITING, false,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;                     /* being rewritten for a newer call */
    if (r->seq != seq) {
        __atomic_store_n(&r->flags, SYSCALL_RECORD_IN_FLIGHT, __ATOMIC_RELEASE);
        return;                     /* the slot holds a newer call, still in flight */
    }
    r->ret = ret;
    r->tsc_exit = rdtsc();
    __atomic_store_n(&r->flags, SYSCALL_RECORD_DONE, __ATOMIC_RELEASE);
}
