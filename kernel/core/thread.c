/*
 * Threads: each has a TLS block for the kernel's own __thread variables with its
 * thread_control_block right above it (what FS points at in kernel code), and a
 * syscall stack that syscall_entry switches to.
 */
#include "thread.h"
#include "arch.h"
#include "lib.h"
#include "mm.h"
#include "panic.h"

struct thread *all_threads[MAX_THREADS];
unsigned nr_threads;
static int next_tid;

__thread struct thread *current_thread;
/* Initialised TLS (.tdata), so a TLS block that was not copied from the template shows. */
__thread u64 tls_canary = 0x6b65726e656c544cUL;   /* "kernelTL" */
u64 kernel_tls_checks;

/* The kernel's PT_TLS segment, from linker.ld. */
extern char tdata_start[], tdata_end[], tls_end[], tls_align[];

/* A __thread variable's offset from the TCB, as the linker computed it (local exec). */
#define TLS_OFFSET(var) ({ long off_; __asm__("mov $" #var "@tpoff, %0" : "=r"(off_)); off_; })

static void *tls_var(struct thread_control_block *tcb, long offset) { return (char *)tcb + offset; }

struct thread *thread_create(const char *name, bool with_syscall_stack)
{
    if (nr_threads >= MAX_THREADS)
        return NULL;
    struct thread *t = kzalloc(sizeof(*t));
    u64 align = MAX((u64)tls_align, 16);
    u64 tls_size = ALIGN_UP((u64)(tls_end - tdata_start), align);
    u8 *block = kzalloc(tls_size + sizeof(struct thread_control_block) + align);
    if (!t || !block)
        return NULL;
    u8 *tls = (u8 *)ALIGN_UP((u64)block, align);
    memcpy(tls, tdata_start, tdata_end - tdata_start);     /* .tbss stays zero */
    struct thread_control_block *tcb = (void *)(tls + tls_size);
    tcb->self = tcb;
    tcb->tls_base = tls;
    tcb->kernel_tcb_counter = 1;        /* no FS switching until arch_prctl(ARCH_SET_FS) */
    if (with_syscall_stack) {
        t->syscall_stack = kmalloc(SYSCALL_STACK_SIZE);
        if (!t->syscall_stack)
            return NULL;
        t->syscall_stack_size = SYSCALL_STACK_SIZE;
        tcb->syscall_stack_top = (u8 *)t->syscall_stack + SYSCALL_STACK_SIZE;
    }
    t->tid = next_tid++;
    t->state = THREAD_READY;
    t->cpu = -1;
    for (int i = 0; i < THREAD_NAME_LEN - 1 && name[i]; i++)
        t->name[i] = name[i];
    t->tcb = tcb;
    t->tls_block = block;
    *(struct thread **)tls_var(tcb, TLS_OFFSET(current_thread)) = t;
    *(u64 *)tls_var(tcb, TLS_OFFSET(tls_canary)) ^= t->tid;
    all_threads[nr_threads++] = t;
    return t;
}

/*
 * Make t this CPU's thread: %gs:0 is its kernel TCB, and FS is that TCB too unless the
 * thread is in app code with switching on (counter 0), where FS is its app_tcb.
 */
void thread_install_tls(struct thread *t)
{
    struct arch_cpu *cpu = this_cpu();
    cpu->tcb_data.kernel_tcb = (u64)t->tcb;
    cpu->current = t;
    t->cpu = cpu->id;
    t->state = THREAD_RUNNING;
    set_fsbase(t->tcb->kernel_tcb_counter ? (u64)t->tcb : t->tcb->app_tcb);
}

/*
 * Called on every kernel entry from app code: proves the FS base is this thread's
 * kernel TCB, by reading the kernel's own __thread variables through it.
 */
void kernel_tls_check(void)
{
    struct thread_control_block *gs_tcb = (void *)this_cpu()->tcb_data.kernel_tcb;
    struct thread *t = current_thread;
    if (t != this_cpu()->current || t->tcb != gs_tcb || tls_canary != (0x6b65726e656c544cUL ^ t->tid))
        panic("kernel TLS check failed: FS base %p, %%gs:0 %p, current_thread %p, canary %lx",
              (void *)get_fsbase(), gs_tcb, t, tls_canary);
    kernel_tls_checks++;
}
