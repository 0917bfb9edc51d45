/*
 * osv-fscheck's checks at each crossing (include/fscheck.h has the rules). The return
 * checks run from entry.S after the exit half of the protocol, when FS may already be
 * the app's: nothing here may touch the kernel's __thread variables.
 */
#include "arch.h"
#include "fscheck.h"
#include "thread.h"
#include "trap.h"

u32 fscheck_enabled;            /* written by the debugger (osv-fscheck on|off) */
_Static_assert(FS_PROTOCOL_COMPARE == 1, "fscheck_rules() tests protocol 1 for compare");
extern char kernel_start[], kernel_end[], entry_text_start[], entry_text_end[];

/*
 * Where the debugger's breakpoint is. noinline and the barrier keep the call: it has
 * nothing to do but be called with the broken rules and the state.
 */
__attribute__((noinline)) void fscheck_violation(u32 broken, const struct fscheck_state *s)
{
    __asm__ __volatile__("" : : "r"(broken), "r"(s) : "memory");
}

static void check(struct fscheck_state *s)
{
    struct arch_cpu *cpu = this_cpu();
    const struct thread_control_block *tcb = (const void *)cpu->tcb_data.kernel_tcb;
    cpu->fscheck_checks++;
    s->fs_base = get_fsbase();
    s->kernel_tcb = (u64)tcb;
    s->app_tcb = tcb ? tcb->app_tcb : 0;
    s->counter = tcb ? tcb->kernel_tcb_counter : 0;
    s->protocol = fs_protocol;
    if (!tcb)
        return;                 /* a CPU still starting: it has no thread yet */
    u32 broken = fscheck_rules(s);
    if (broken)
        fscheck_violation(broken, s);
}

void fscheck_syscall_entry(const struct syscall_frame *f)
{
    struct fscheck_state s = { .where = FSCHECK_SYSCALL_ENTRY, .rip = f->rip, .nr = f->rax,
                               .entry_counter = f->kernel_tcb_counter };
    check(&s);
}

void fscheck_trap_entry(const struct trap_frame *f)
{
    struct fscheck_state s = { .where = FSCHECK_TRAP_ENTRY, .rip = f->rip, .vector = f->vector,
                               .entry_counter = f->kernel_tcb_counter };
    check(&s);
}

void fscheck_syscall_return(const struct syscall_frame *f)
{
    struct fscheck_state s = { .where = FSCHECK_SYSCALL_RETURN, .rip = f->rip, .to_app = 1 };
    check(&s);
}

void fscheck_trap_return(const struct trap_frame *f)
{
    /* App code, or an entry stub: syscall_entry's last instructions run with interrupts
       on again (its popfq) and FS the app's already, and an NMI may land anywhere in a
       stub; the protocol counts both as app side. */
    bool in_kernel = f->rip >= (u64)kernel_start && f->rip < (u64)kernel_end;
    bool in_stub = f->rip >= (u64)entry_text_start && f->rip < (u64)entry_text_end;
    /* lazy: the fast path's kernel code runs on the app's FS, as app code does */
    bool in_fast = this_cpu()->fast_path == FAST_PATH_SYSCALL;
    struct fscheck_state s = { .where = FSCHECK_TRAP_RETURN, .rip = f->rip, .vector = f->vector,
                               .to_app = !in_kernel || in_stub || in_fast };
    check(&s);
}
