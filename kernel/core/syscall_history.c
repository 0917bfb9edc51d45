/*
 * Filling the per-CPU syscall rings. Only the CPU that owns a ring writes it, so
 * writers need no lock; a reader (the debugger, with the machine stopped) tells a
 * half-written record by SYSCALL_RECORD_WRITING, which is set before any other field
 * changes and cleared after the last (x86 keeps stores in order; barrier() keeps the
 * compiler from reordering them).
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

struct syscall_record *syscall_history_enter(const struct syscall_frame *f, int tid)
{
    struct arch_cpu *cpu = this_cpu();
    struct syscall_history *h = &syscall_history[cpu->id];
    struct syscall_record *r = &h->records[h->head % SYSCALL_HISTORY_SIZE];
    h->head++;
    r->flags = SYSCALL_RECORD_WRITING;
    barrier();
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
    barrier();
    r->flags = SYSCALL_RECORD_IN_FLIGHT;
    return r;
}

/* Complete the record, unless the ring wrapped and the slot now holds a newer call. */
void syscall_history_exit(struct syscall_record *r, u64 seq, long ret)
{
    if (r->seq != seq)
        return;
    r->flags = SYSCALL_RECORD_WRITING;
    barrier();
    r->ret = ret;
    r->tsc_exit = rdtsc();
    barrier();
    r->flags = SYSCALL_RECORD_DONE;
}
