/*
 * Threads: each has a TLS block for the kernel's own __thread variables with its
 * thread_control_block right above it (what FS points at in kernel code), a syscall
 * stack that syscall_entry switches to, an exception stack for interrupts, and an
 * XSAVE area for the app's FPU/SSE/AVX registers across context switches.
 */
#include "thread.h"
#include "arch.h"
#include "lib.h"
#include "mm.h"
#include "panic.h"
#include "spinlock.h"

struct thread *all_threads[MAX_THREADS];
unsigned nr_threads;
static int next_tid;
extern struct spinlock sched_lock;

__thread struct thread *current_thread;
/* Initialised TLS (.tdata), so a TLS block that was not copied from the template shows. */
__thread u64 tls_canary = 0x6b65726e656c544cUL;   /* "kernelTL" */
u64 kernel_tls_checks;

/* The kernel's PT_TLS segment, from linker.ld. */
extern char tdata_start[], tdata_end[], tls_end[], tls_align[];

/* A __thread variable's offset from the TCB, as the linker computed it (local exec). */
#define TLS_OFFSET(var) ({ long off_; __asm__("mov $" #var "@tpoff, %0" : "=r"(off_)); off_; })

static void *tls_var(struct thread_control_block *tcb, long offset) { return (char *)tcb + offset; }

/* arch/x64/switch.S: the first return of a new thread's switch_context lands here. */
extern char thread_trampoline[];

static struct thread_control_block *create_tls(struct thread *t)
{
    u64 align = MAX((u64)tls_align, 16);
    u64 tls_size = ALIGN_UP((u64)(tls_end - tdata_start), align);
    u8 *block = kzalloc(tls_size + sizeof(struct thread_control_block) + align);
    if (!block)
        return NULL;
    u8 *tls = (u8 *)ALIGN_UP((u64)block, align);
    memcpy(tls, tdata_start, tdata_end - tdata_start);     /* .tbss stays zero */
    struct thread_control_block *tcb = (void *)(tls + tls_size);
    tcb->self = tcb;
    tcb->tls_base = tls;
    /* no FS switching until arch_prctl(ARCH_SET_FS); compare has no counter (0) */
    tcb->kernel_tcb_counter = fs_protocol == FS_PROTOCOL_COMPARE ? 0 : 1;
    t->tls_block = block;
    *(struct thread **)tls_var(tcb, TLS_OFFSET(current_thread)) = t;
    *(u64 *)tls_var(tcb, TLS_OFFSET(tls_canary)) ^= t->tid;
    return tcb;
}

struct thread *thread_create(const char *name, void (*entry)(void *), void *arg)
{
    struct thread *t = kzalloc(sizeof(*t));
    if (!t)
        return NULL;
    t->syscall_stack = kmalloc(SYSCALL_STACK_SIZE);
    t->exception_stack = kmalloc(EXCEPTION_STACK_SIZE);
    t->fpu_block = kzalloc(arch_fpu_state_size() + 64);
    if (!t->syscall_stack || !t->exception_stack || !t->fpu_block) {
        thread_free(t);
        return NULL;
    }
    t->syscall_stack_size = SYSCALL_STACK_SIZE;
    t->exception_stack_size = EXCEPTION_STACK_SIZE;
    t->fpu_state = (void *)ALIGN_UP((u64)t->fpu_block, 64);
    arch_fpu_init_state(t->fpu_state);
    t->state = THREAD_BLOCKED;          /* not runnable until sched_make_ready() */
    t->cpu = -1;
    t->affinity = ~0UL;
    t->altstack_flags = 2;              /* SS_DISABLE: a new thread has no sigaltstack */
    t->entry = entry;
    t->entry_arg = arg;
    for (int i = 0; i < THREAD_NAME_LEN - 1 && name[i]; i++)
        t->name[i] = name[i];

    u64 flags = spin_lock_irqsave(&sched_lock);
    if (nr_threads == MAX_THREADS) {
        spin_unlock_irqrestore(&sched_lock, flags);
        thread_free(t);
        return NULL;
    }
    t->tid = next_tid++;
    all_threads[nr_threads++] = t;
    spin_unlock_irqrestore(&sched_lock, flags);

    t->tcb = create_tls(t);
    if (!t->tcb)
        panic("out of memory for a thread's TLS");
    t->tcb->syscall_stack_top = (u8 *)t->syscall_stack + SYSCALL_STACK_SIZE;
    thread_set_start_stack(t, (u64)t->tcb->syscall_stack_top);
    return t;
}

/* Give back what thread_create took; the thread is in no table and runs nowhere. */
void thread_free(struct thread *t)
{
    kfree(t->syscall_stack);
    kfree(t->exception_stack);
    kfree(t->fpu_block);
    kfree(t->tls_block);
    kfree(t);
}

/* Where the thread's first switch_context finds its (zero) registers and thread_trampoline. */
void thread_set_start_stack(struct thread *t, u64 stack_top)
{
    u64 *sp = (u64 *)stack_top;
    *--sp = (u64)thread_trampoline;
    for (int i = 0; i < 6; i++)
        *--sp = 0;
    t->kernel_rsp = (u64)sp;
}

/*
 * Called on kernel entries from app code: proves the FS base is this thread's kernel
 * TCB, by reading the kernel's own __thread variables through it.
 */
void kernel_tls_check(void)
{
    struct arch_cpu *cpu = this_cpu();
    struct thread_control_block *gs_tcb = (void *)cpu->tcb_data.kernel_tcb;
    struct thread *t = current_thread;
    if (t != cpu->current || t->tcb != gs_tcb || tls_canary != (0x6b65726e656c544cUL ^ t->tid))
        panic("kernel TLS check failed: FS base %p, %%gs:0 %p, current_thread %p, canary %lx",
              (void *)get_fsbase(), gs_tcb, t, tls_canary);
    __atomic_add_fetch(&kernel_tls_checks, 1, __ATOMIC_RELAXED);
}
