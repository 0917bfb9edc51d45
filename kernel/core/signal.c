/*
 * Signal delivery on the FS-base protocol.
 *
 * A handler is app code: it runs with FS = the thread's app_tcb and kernel_tcb_counter
 * at its app value (0), exactly like the code it interrupted. Nothing here switches FS:
 * delivery only rewrites the frame entry.S saved, and the ordinary exit half of the
 * protocol (FS_EXIT) then "returns" into the handler. So whatever the kernel was doing
 * when the signal came, the handler sees the app's TLS, errno and canary.
 *
 * Where signals are delivered: on the way back to app code, and nowhere else.
 * Where they come from: tgkill/tkill/kill, faults in app code, the kernel (SIGPIPE),
 * the app's interval timer (setitimer, alarm: SIGALRM from the timer interrupt) and its
 * POSIX timers (core/timer.c); what each pending one's siginfo says is queued
 * ("Queued siginfo" below).
 *
 *   syscall_entry -> syscall_handler -> signal_syscall_exit(frame, ret)
 *       the call's result is final here (-ERESTARTSYS becomes -EINTR, or the call is
 *       rewound to run again: rip -= 2, rax = the number); then, if an unblocked
 *       signal is pending, the interrupted context (rax = the result, rcx/r11 = rip and
 *       rflags, as the syscall instruction leaves them) goes into an rt_sigframe on the
 *       app's stack and the frame is rewritten to enter the handler.
 *   trap_common -> trap_handler -> signal_trap_exit(frame) (interrupts in app code) or
 *       signal_fault(frame, ...) (a fault in app code, for its own handler): the same
 *       with every register live. We are on the exception stack (IST), where a nested
 *       fault would land on our own frame: the app's pages the rt_sigframe goes to are
 *       populated first (user_populate), so writing them cannot fault.
 *
 * Interrupts are off from the decision to the exit path's iretq or jmp, so no signal
 * slips in between; one sent afterwards finds the thread in app code and its IPI
 * (IPI_SIGNAL_VECTOR) brings it straight back in, to trap_handler's exit.
 *
 * The frame is Linux's rt_sigframe (include/signal.h), so libc's siglongjmp and
 * ucontext, and GDB's sigtramp unwinder (which recognises __restore_rt's
 * `mov $15, %rax; syscall`), read it as on Linux:
 *
 *   app rsp - 128 (red zone), or the top of the sigaltstack
 *     FP_XSTATE_MAGIC2 (4 bytes, with XSAVE)
 *     FXSAVE/XSAVE area, 64-byte aligned      <- uc_mcontext.fpstate
 *     struct rt_sigframe: pretcode, ucontext, siginfo
 *   handler's rsp = &pretcode (rsp + 8 16-byte aligned, as after a call)
 *   rdi = signo, rsi = &siginfo, rdx = &ucontext, rax = 0
 *
 * The handler starts with the FPU in its initial state; its mask is the thread's, plus
 * sa_mask, plus the signal (unless SA_NODEFER). rt_sigreturn (signal_return) reads it all
 * back: every general register, rflags' user bits, the FXSAVE/XSAVE area (checked first:
 * a bad one would fault xrstor in the kernel), the mask; it leaves through the interrupt
 * exit path (sigreturn_exit in entry.S), whose iretq restores rcx and r11 too, which the
 * syscall exit would clobber. FS_EXIT there takes the counter from 1 back to 0 and
 * FS back to app_tcb, as after any syscall.
 *
 * struct thread's in_signal (the signal whose handler runs) and signal_frame are for
 * the debugger (osv-tcb). A handler left by siglongjmp never calls rt_sigreturn: the next
 * entry from app code with rsp above the frame (stacks grow down) retires it.
 *
 * Why one file of ~900 lines: delivery, the frame, the queue of siginfo and the
 * signal system calls (rt_sigaction ... alarm) share the queue, its lock and the
 * dispositions, and the path above reads best in one place; the calls are at the end.
 */
#include "signal.h"
#include "syscalls.h"
#include "arch.h"
#include "console.h"
#include "lib.h"
#include "mm.h"
#include "spinlock.h"
#include "timer.h"
#include "trap.h"
#include <asm-generic/errno.h>
#include <asm/unistd_64.h>

_Static_assert(sizeof(struct linux_siginfo) == 128, "siginfo");
_Static_assert(sizeof(struct linux_sigcontext) == 256, "sigcontext");
_Static_assert(__builtin_offsetof(struct linux_ucontext, uc_mcontext) == 40, "ucontext");
_Static_assert(sizeof(struct linux_ucontext) == 304, "ucontext");
_Static_assert(sizeof(struct rt_sigframe) == 440, "rt_sigframe");

#define FP_XSTATE_MAGIC1 0x46505853u
#define FP_XSTATE_MAGIC2 0x46505845u
#define RED_ZONE 128

#define RFLAGS_TF 0x100
#define RFLAGS_IF 0x200
#define RFLAGS_DF 0x400
#define RFLAGS_RF 0x10000
/* The rflags bits the app may set through rt_sigreturn (Linux's FIX_EFLAGS): CF, PF, AF,
   ZF, SF, TF, DF, OF, AC, RF. IF stays on: app code is preemptible. */
#define RFLAGS_USER (0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x40000 | 0x10000)

static bool can_read(u64 addr, u64 len) { return user_range_ok(addr, len, false); }
static bool can_write(u64 addr, u64 len) { return user_range_ok(addr, len, true); }

/* ---- what a signal does ---- */

enum disposition { SIG_ACT_IGNORE, SIG_ACT_FATAL, SIG_ACT_HANDLER };

/* SIGCHLD, SIGCONT, SIGURG, SIGWINCH are ignored by default; the stops (SIGSTOP, SIGTSTP,
   SIGTTIN, SIGTTOU) too: there is no one to continue us. Everything else ends the app. */
static bool default_ignored(int sig)
{
    switch (sig) {
    case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH:
    case SIGSTOP: case SIGTSTP: case SIGTTIN: case SIGTTOU:
        return true;
    default:
        return false;
    }
}

static enum disposition disposition(int sig)
{
    u64 handler = process.sigactions[sig].handler;
    if (sig == SIGKILL)
        return SIG_ACT_FATAL;
    if (handler == SIG_IGN || (handler == SIG_DFL && default_ignored(sig)))
        return SIG_ACT_IGNORE;
    return handler == SIG_DFL ? SIG_ACT_FATAL : SIG_ACT_HANDLER;
}

/*
 * ---- Queued siginfo ----
 *
 * The pending sets are bits; what a pending signal's siginfo says (who sent it, with
 * which si_code, sigqueue's value, a POSIX timer's id) waits here until the signal is
 * taken. As on Linux, every instance of a real-time signal (32 and up) is queued and
 * delivered on its own, in the order sent, while a standard signal already pending is
 * not queued again: it stays one pending signal, with the first sender's siginfo. A
 * bit stays set while an instance of its signal is queued for that set. When the pool
 * is full a kill still gets through (Linux: kill guarantees delivery) with a plain
 * siginfo; rt_sigqueueinfo gets EAGAIN.
 */
#define SIGQUEUE_MAX 128
#define SIGRTMIN_KERNEL 32

struct queued_signal {
    u64 seq;                        /* the order sent; 0: the slot is free */
    long tid;                       /* for the thread's set, or 0: the app's */
    int sig, code;
    int from;                       /* si_pid, or the POSIX timer's id */
    u64 value;                      /* si_value */
};

/* Taken by the timer interrupt too (POSIX timers): always with interrupts off. */
static struct spinlock sigqueue_lock = SPINLOCK_INIT;
static struct queued_signal sigqueue[SIGQUEUE_MAX];
static u64 sigqueue_seq;

/* The oldest instance of sig queued for tid's set (0: the app's), or NULL. Lock held. */
static struct queued_signal *queued(long tid, int sig)
{
    struct queued_signal *oldest = NULL;
    for (int i = 0; i < SIGQUEUE_MAX; i++) {
        struct queued_signal *q = &sigqueue[i];
        if (q->seq && q->tid == tid && q->sig == sig && (!oldest || q->seq < oldest->seq))
            oldest = q;
    }
    return oldest;
}

/* Queue sig's siginfo for tid's set; false when it is not: a standard signal already
   queued there, or a full pool (then *full). */
static bool enqueue(long tid, int sig, int code, int from, u64 value, bool *full)
{
    u64 flags = spin_lock_irqsave(&sigqueue_lock);
    bool wanted = sig >= SIGRTMIN_KERNEL || !queued(tid, sig);
    struct queued_signal *slot = NULL;
    for (int i = 0; wanted && !slot && i < SIGQUEUE_MAX; i++)
        if (!sigqueue[i].seq)
            slot = &sigqueue[i];
    if (slot)
        *slot = (struct queued_signal){ ++sigqueue_seq, tid, sig, code, from, value };
    spin_unlock_irqrestore(&sigqueue_lock, flags);
    *full = wanted && !slot;
    return slot != NULL;
}

/* The siginfo of a signal taken with q (NULL: none was queued, plain_code says how). */
static void fill_siginfo(struct linux_siginfo *info, int sig, const struct queued_signal *q,
                         int plain_code)
{
    if (!q) {
        *info = (struct linux_siginfo){ .si_signo = sig, .si_code = plain_code,
                                        .kill = { .pid = process_pid() } };
    } else if (q->code == SI_TIMER) {
        *info = (struct linux_siginfo){ .si_signo = sig, .si_code = SI_TIMER };
        info->timer.id = q->from;
        info->timer.overrun = timer_signal_taken(q->from);
        info->timer.value = q->value;
    } else {
        *info = (struct linux_siginfo){ .si_signo = sig, .si_code = q->code,
                                        .kill = { .pid = q->from, .value = q->value } };
    }
}

/*
 * The lowest unblocked pending signal, taken off its set with its siginfo: the thread's
 * own first (tgkill, tkill, rt_tgsigqueueinfo), then the app's (kill, rt_sigqueueinfo),
 * which another thread may take first. The bit goes once no instance of the signal is
 * left queued for the set.
 */
static int dequeue(struct thread *t, u64 allowed, struct linux_siginfo *info)
{
    for (;;) {
        u64 mine = __atomic_load_n(&t->sigpending, __ATOMIC_ACQUIRE) & allowed;
        u64 shared = __atomic_load_n(&process.sigpending, __ATOMIC_ACQUIRE) & allowed;
        u64 *set = mine ? &t->sigpending : &process.sigpending;
        u64 bits = mine ? mine : shared;
        if (!bits)
            return 0;
        int sig = __builtin_ctzl(bits) + 1;
        long tid = mine ? t->tid : 0;
        u64 flags = spin_lock_irqsave(&sigqueue_lock);
        struct queued_signal taken = { 0 }, *q = queued(tid, sig);
        if (q) {
            taken = *q;
            q->seq = 0;
        }
        bool got = taken.seq != 0;
        if (!queued(tid, sig))      /* the last instance: the signal is no longer pending */
            got |= (__atomic_fetch_and(set, ~sig_bit(sig), __ATOMIC_ACQ_REL) & sig_bit(sig)) != 0;
        spin_unlock_irqrestore(&sigqueue_lock, flags);
        if (got) {
            fill_siginfo(info, sig, taken.seq ? &taken : NULL, mine ? SI_TKILL : SI_USER);
            return sig;
        }
    }
}

/* A thread's exit: what was queued for it alone can never be taken. */
void signal_thread_exit(long tid)
{
    u64 flags = spin_lock_irqsave(&sigqueue_lock);
    for (int i = 0; i < SIGQUEUE_MAX; i++)
        if (sigqueue[i].seq && sigqueue[i].tid == tid)
            sigqueue[i].seq = 0;
    spin_unlock_irqrestore(&sigqueue_lock, flags);
}

/* A POSIX timer's signal still pending when the timer is deleted goes with it (Linux). */
void signal_unqueue_timer(int id)
{
    u64 flags = spin_lock_irqsave(&sigqueue_lock);
    for (int i = 0; i < SIGQUEUE_MAX; i++) {
        struct queued_signal *q = &sigqueue[i];
        if (!q->seq || q->code != SI_TIMER || q->from != id)
            continue;
        q->seq = 0;
        if (!queued(q->tid, q->sig))
            sched_unpend_signal(q->tid, q->sig);
    }
    spin_unlock_irqrestore(&sigqueue_lock, flags);
}

static noreturn void fatal_signal(int sig, const struct trap_frame *tf, const struct syscall_frame *sf)
{
    fatal_report_set(sig, tf, sf);
    exit_reason("%s: killed by signal %d", process.path, sig);
    process_exit(128 + sig);
}

/* ---- the interrupted registers, from either kind of frame ---- */

static void regs_from_syscall(const struct syscall_frame *f, long rax, struct linux_sigcontext *r)
{
    *r = (struct linux_sigcontext){
        .r8 = f->r8, .r9 = f->r9, .r10 = f->r10, .r11 = f->rflags, .r12 = f->r12, .r13 = f->r13,
        .r14 = f->r14, .r15 = f->r15, .rdi = f->rdi, .rsi = f->rsi, .rbp = f->rbp, .rbx = f->rbx,
        .rdx = f->rdx, .rax = rax, .rcx = f->rip, .rsp = f->rsp, .rip = f->rip, .eflags = f->rflags,
    };
}

/* The handler's entry through syscall_exit, which sets rcx and r11 from rip and rflags. */
static void regs_to_syscall(const struct linux_sigcontext *r, struct syscall_frame *f)
{
    f->rdi = r->rdi, f->rsi = r->rsi, f->rdx = r->rdx, f->rsp = r->rsp, f->rip = r->rip;
    f->rflags = r->eflags;
}

static void regs_from_trap(const struct trap_frame *f, struct linux_sigcontext *r)
{
    *r = (struct linux_sigcontext){
        .r8 = f->r8, .r9 = f->r9, .r10 = f->r10, .r11 = f->r11, .r12 = f->r12, .r13 = f->r13,
        .r14 = f->r14, .r15 = f->r15, .rdi = f->rdi, .rsi = f->rsi, .rbp = f->rbp, .rbx = f->rbx,
        .rdx = f->rdx, .rax = f->rax, .rcx = f->rcx, .rsp = f->rsp, .rip = f->rip,
        .eflags = f->rflags, .err = f->error_code, .trapno = f->vector,
    };
}

static void regs_to_trap(const struct linux_sigcontext *r, struct trap_frame *f)
{
    f->r8 = r->r8, f->r9 = r->r9, f->r10 = r->r10, f->r11 = r->r11, f->r12 = r->r12;
    f->r13 = r->r13, f->r14 = r->r14, f->r15 = r->r15, f->rdi = r->rdi, f->rsi = r->rsi;
    f->rbp = r->rbp, f->rbx = r->rbx, f->rdx = r->rdx, f->rax = r->rax, f->rcx = r->rcx;
    f->rsp = r->rsp, f->rip = r->rip, f->rflags = r->eflags;
}

/* ---- building the frame ---- */

static bool on_altstack(const struct thread *t, u64 sp)
{
    return !(t->altstack_flags & SS_DISABLE) && sp > t->altstack_sp &&
           sp <= t->altstack_sp + t->altstack_size;
}

/*
 * Push an rt_sigframe for sig below regs->rsp (or on the sigaltstack) and point regs at
 * the handler. Interrupts off; the app's FPU registers are live (the kernel never
 * touches them). False if there is no room: the app then dies of SIGSEGV, as on Linux.
 */
static bool setup_frame(struct thread *t, struct linux_sigcontext *regs, int sig,
                        const struct linux_siginfo *info)
{
    struct sigaction_entry ka = process.sigactions[sig];
    if (!(ka.flags & SA_RESTORER))
        return false;               /* x86-64 has no vsyscall trampoline to return through */
    u64 sp = regs->rsp;
    bool was_on_alt = on_altstack(t, sp);
    if ((ka.flags & SA_ONSTACK) && !(t->altstack_flags & SS_DISABLE) && !was_on_alt)
        sp = t->altstack_sp + t->altstack_size;
    else
        sp -= RED_ZONE;
    bool xsave = arch_fpu_uses_xsave();
    u64 fpu_size = arch_fpu_state_size();
    u64 fpstate = ALIGN_DOWN(sp - fpu_size - (xsave ? 4 : 0), 64);
    u64 frame_addr = ALIGN_DOWN(fpstate - sizeof(struct rt_sigframe), 16) - 8;
    if (!user_populate(frame_addr, sp - frame_addr))
        return false;

    memset((void *)fpstate, 0, fpu_size);      /* XRSTOR wants the header's reserved bytes 0 */
    arch_fpu_save((void *)fpstate);
    if (xsave) {
        /* struct _fpx_sw_bytes in FXSAVE's software-available bytes: "XSAVE follows" */
        u32 *sw = (u32 *)(fpstate + 464);
        sw[0] = FP_XSTATE_MAGIC1;
        sw[1] = fpu_size + 4;
        *(u64 *)&sw[2] = arch_fpu_xfeatures();
        sw[4] = fpu_size;
        *(u32 *)(fpstate + fpu_size) = FP_XSTATE_MAGIC2;
    }

    u64 old_mask = t->restore_sigmask ? t->saved_sigmask : t->sigmask;
    t->restore_sigmask = false;
    struct rt_sigframe *frame = (void *)frame_addr;
    memset(frame, 0, sizeof(*frame));
    frame->pretcode = ka.restorer;
    frame->uc.uc_flags = (xsave ? UC_FP_XSTATE : 0) | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    frame->uc.uc_stack = (struct linux_stack){
        .ss_sp = t->altstack_sp, .ss_size = t->altstack_size,
        .ss_flags = (t->altstack_flags & SS_DISABLE) ? SS_DISABLE : was_on_alt ? SS_ONSTACK : 0,
    };
    struct linux_sigcontext *mc = &frame->uc.uc_mcontext;
    *mc = *regs;
    mc->cs = GDT_KERNEL_CODE;
    mc->ss = GDT_KERNEL_DATA;
    mc->oldmask = old_mask;
    mc->fpstate = fpstate;
    /* Kernel bookkeeping in the reserved words: the handler this one interrupted. */
    mc->reserved1[0] = t->in_signal;
    mc->reserved1[1] = t->signal_frame;
    frame->uc.uc_sigmask = old_mask;
    frame->info = *info;

    t->sigmask = (old_mask | ka.mask | ((ka.flags & SA_NODEFER) ? 0 : sig_bit(sig))) & ~SIG_UNBLOCKABLE;
    if (ka.flags & SA_RESETHAND)
        process.sigactions[sig].handler = SIG_DFL;
    t->in_signal = sig;
    t->signal_frame = frame_addr;

    regs->rsp = frame_addr;
    regs->rip = ka.handler;
    regs->rdi = sig;
    regs->rsi = (u64)&frame->info;
    regs->rdx = (u64)&frame->uc;
    regs->rax = 0;
    regs->eflags = (regs->eflags & ~(RFLAGS_DF | RFLAGS_TF | RFLAGS_RF)) | RFLAGS_IF;
    arch_fpu_reset();
    return true;
}

static void no_room(int sig, u64 rsp)
{
    exit_reason("%s: no room to deliver signal %d below rsp %p: SIGSEGV", process.path, sig,
           (void *)rsp);
}

/*
 * The next pending signal t takes that runs a handler, with the siginfo a kill or tgkill
 * gives it: ignored ones are dropped, and one whose default action ends the app ends it
 * here, reported with the frame we were to return through. 0: none.
 */
static int next_handled(struct thread *t, struct linux_siginfo *info,
                        const struct trap_frame *tf, const struct syscall_frame *sf)
{
    int sig;
    while ((sig = dequeue(t, ~t->sigmask, info))) {
        enum disposition d = disposition(sig);
        if (d == SIG_ACT_FATAL)
            fatal_signal(sig, tf, sf);
        if (d == SIG_ACT_HANDLER)
            return sig;
    }
    return 0;
}

/* ---- delivery points ---- */

/*
 * The syscall's way back to the app (syscall_handler's last step, interrupts off): the
 * value for the app's rax, which is the handler's 0 when one now runs.
 */
long signal_syscall_exit(struct syscall_frame *f, long ret)
{
    struct thread *t = current_thread;
    struct linux_siginfo info;
    int sig = t->is_app ? next_handled(t, &info, NULL, f) : 0;
    if (sig) {
        if (ret == -ERESTARTSYS) {
            if (process.sigactions[sig].flags & SA_RESTART) {
                f->rip -= 2;            /* back onto the syscall instruction */
                ret = f->rax;           /* the number: entry.S stores the result only after us */
            } else {
                ret = -EINTR;
            }
        }
        struct linux_sigcontext regs;
        regs_from_syscall(f, ret, &regs);
        if (!setup_frame(t, &regs, sig, &info)) {
            no_room(sig, f->rsp);
            fatal_signal(SIGSEGV, NULL, f);
        }
        regs_to_syscall(&regs, f);
        return regs.rax;
    }
    if (ret == -ERESTARTSYS) {          /* interrupted, but no handler ran: just go on */
        f->rip -= 2;
        ret = f->rax;
    }
    if (t->restore_sigmask) {           /* rt_sigsuspend without a handler run */
        t->sigmask = t->saved_sigmask;
        t->restore_sigmask = false;
    }
    return ret;
}

/* An interrupt's way back to app code (trap_handler's last step, interrupts off). */
void signal_trap_exit(struct trap_frame *f)
{
    struct thread *t = current_thread;
    struct linux_siginfo info;
    int sig = t->is_app ? next_handled(t, &info, f, NULL) : 0;
    if (!sig)
        return;
    struct linux_sigcontext regs;
    regs_from_trap(f, &regs);
    if (!setup_frame(t, &regs, sig, &info)) {
        no_room(sig, f->rsp);
        fatal_signal(SIGSEGV, f, NULL);
    }
    regs_to_trap(&regs, f);
}

/*
 * A fault in app code, for the faulting thread's handler (Linux's force_sig_fault):
 * false when there is none, or the signal is blocked, and the app ends as before.
 */
bool signal_fault(struct trap_frame *f, int sig, int code, u64 addr)
{
    struct thread *t = current_thread;
    if (!t->is_app || disposition(sig) != SIG_ACT_HANDLER || (t->sigmask & sig_bit(sig)))
        return false;
    struct linux_siginfo info = { .si_signo = sig, .si_code = code, .fault = { .addr = addr } };
    struct linux_sigcontext regs;
    regs_from_trap(f, &regs);
    if (f->vector == 14)
        regs.cr2 = addr;
    if (!setup_frame(t, &regs, sig, &info))
        return false;
    regs_to_trap(&regs, f);
    return true;
}

/* Every syscall from app code: retire handlers the app left by siglongjmp. */
void signal_syscall_entry(struct thread *t, u64 app_rsp)
{
    while (t->in_signal && app_rsp > t->signal_frame) {
        const struct linux_sigcontext *mc =
            &((const struct rt_sigframe *)t->signal_frame)->uc.uc_mcontext;
        bool readable = can_read((u64)mc->reserved1, 16);
        t->in_signal = readable && mc->reserved1[0] <= NSIG_MAX ? (int)mc->reserved1[0] : 0;
        t->signal_frame = readable ? mc->reserved1[1] : 0;
    }
}

/* An FXSAVE/XSAVE area that FXRSTOR/XRSTOR take without faulting in the kernel. */
static bool fpstate_ok(u64 fp)
{
    u64 size = arch_fpu_state_size();
    if (fp & 63 || !can_read(fp, size))
        return false;
    if (*(const u32 *)(fp + 24) & ~0xffffu)
        return false;                   /* MXCSR's reserved bits */
    if (!arch_fpu_uses_xsave())
        return true;
    const u64 *header = (const u64 *)(fp + 512);
    if (header[0] & ~arch_fpu_xfeatures() || header[1])
        return false;                   /* XSTATE_BV beyond XCR0, or a compacted area */
    for (int i = 2; i < 8; i++)
        if (header[i])
            return false;
    return true;
}

/*
 * rt_sigreturn: the context in the rt_sigframe at the app's rsp (__restore_rt's ret
 * popped pretcode, so rsp is at the ucontext) into *tf, for sigreturn_exit. Returns rax.
 */
long signal_return(const struct syscall_frame *f, struct trap_frame *tf)
{
    struct thread *t = current_thread;
    u64 uc_addr = f->rsp;
    if (!can_read(uc_addr, sizeof(struct linux_ucontext))) {
        exit_reason("%s: rt_sigreturn with no signal frame at %p: SIGSEGV", process.path,
                    (void *)uc_addr);
        fatal_signal(SIGSEGV, NULL, f);
    }
    const struct linux_ucontext *uc = (const void *)uc_addr;
    const struct linux_sigcontext *mc = &uc->uc_mcontext;
    if (mc->fpstate && !fpstate_ok(mc->fpstate)) {
        exit_reason("%s: rt_sigreturn with a bad FPU area at %p: SIGSEGV", process.path,
                    (void *)mc->fpstate);
        fatal_signal(SIGSEGV, NULL, f);
    }
    if (mc->fpstate)
        arch_fpu_restore((void *)mc->fpstate);
    else
        arch_fpu_reset();
    t->sigmask = uc->uc_sigmask & ~SIG_UNBLOCKABLE;
    t->in_signal = mc->reserved1[0] <= NSIG_MAX ? (int)mc->reserved1[0] : 0;
    t->signal_frame = mc->reserved1[1];
    *tf = (struct trap_frame){
        .fs_base = f->fs_base, .kernel_tcb_counter = f->kernel_tcb_counter,
        .vector = SIGRETURN_VECTOR, .cs = GDT_KERNEL_CODE, .ss = GDT_KERNEL_DATA,
    };
    regs_to_trap(mc, tf);
    tf->rflags = (f->rflags & ~RFLAGS_USER) | (mc->eflags & RFLAGS_USER) | RFLAGS_IF;
    return mc->rax;
}

/* ---- sending ---- */

/*
 * kill (tid 0) or tgkill/tkill: pending for the target, which takes it on its next way
 * back to app code (woken if it sleeps, interrupted if it runs elsewhere). A fatal one
 * the target does not block ends the app here and now, reported as the sender's.
 */
long signal_send(const struct syscall_frame *f, long tid, int sig)
{
    return signal_send_info(f, tid, sig, tid ? SI_TKILL : SI_USER, process_pid(), 0, false);
}

/*
 * sig with its siginfo (code, si_pid, si_value) to thread tid, or to the app (0); a
 * fatal one that a thread will take ends the app here. `must_queue`: rt_sigqueueinfo,
 * which fails with EAGAIN rather than lose its siginfo.
 */
long signal_send_info(const struct syscall_frame *f, long tid, int sig, int code, int pid,
                      u64 value, bool must_queue)
{
    if (sig == 0)
        return 0;
    enum disposition d = disposition(sig);
    if (d == SIG_ACT_IGNORE)
        return 0;
    if (tid && !sched_thread_alive(tid))
        return -ESRCH;
    bool full;
    if (!enqueue(tid, sig, code, pid, value, &full) && full && must_queue)
        return -EAGAIN;
    int taken = sched_signal(tid, sig);
    if (taken < 0)
        return taken;
    if (d == SIG_ACT_FATAL && taken)
        fatal_signal(sig, NULL, f);
    return 0;
}

/*
 * A signal the kernel sends the calling thread (SIGPIPE): it takes it on this syscall's
 * way out, to its handler, or to the end of the app by the default action.
 */
void signal_raise(int sig)
{
    if (disposition(sig) != SIG_ACT_IGNORE)
        sched_signal(current_thread->tid, sig);
}

/*
 * ppoll's and pselect6's mask, for the wait only (rt_sigsuspend does the same): a
 * signal that interrupts it runs its handler under this mask's predecessor, which is
 * what the handler's frame saves; else the old mask comes back when the call returns.
 */
/*
 * ppoll's and epoll_pwait's sigmask argument (NULL: none): checked, then in force while
 * the call waits, as signal_mask_for_call. 0, or the call's error.
 */
long signal_mask_for_wait(u64 sigmask, u64 sigsetsize)
{
    if (!sigmask)
        return 0;
    if (sigsetsize != 8)
        return -EINVAL;
    if (!user_range_ok(sigmask, 8, false))
        return -EFAULT;
    signal_mask_for_call(*(const u64 *)sigmask);
    return 0;
}

void signal_mask_for_call(u64 mask)
{
    struct thread *t = current_thread;
    t->saved_sigmask = t->sigmask;
    t->restore_sigmask = true;
    t->sigmask = mask & ~SIG_UNBLOCKABLE;
}

void signal_mask_after_call(long ret)
{
    struct thread *t = current_thread;
    if (ret != -EINTR && t->restore_sigmask) {
        t->sigmask = t->saved_sigmask;
        t->restore_sigmask = false;
    }
}

/* ---- the calls ---- */

long sys_rt_sigaction(const struct syscall_args *call)
{
    long sig = call->arg[0];
    u64 act = call->arg[1], oldact = call->arg[2], sigsetsize = call->arg[3];
    if (sig < 1 || sig > NSIG_MAX || sigsetsize != 8)
        return -EINVAL;
    struct sigaction_entry *sa = &process.sigactions[sig];
    if (act && (sig == SIGKILL || sig == SIGSTOP))
        return -EINVAL;
    if ((act && !can_read(act, sizeof(*sa))) || (oldact && !can_write(oldact, sizeof(*sa))))
        return -EFAULT;
    struct sigaction_entry new;
    if (act)
        memcpy(&new, (void *)act, sizeof(new));
    if (oldact)
        memcpy((void *)oldact, sa, sizeof(*sa));
    if (act) {
        new.mask &= ~SIG_UNBLOCKABLE;
        *sa = new;
        if (disposition(sig) == SIG_ACT_IGNORE)     /* POSIX: pending ones go too */
            __atomic_fetch_and(&process.sigpending, ~sig_bit(sig), __ATOMIC_ACQ_REL);
    }
    return 0;
}

long sys_rt_sigprocmask(const struct syscall_args *call)
{
    long how = call->arg[0];
    u64 set = call->arg[1], oldset = call->arg[2], sigsetsize = call->arg[3];
    if (sigsetsize != 8)
        return -EINVAL;
    if ((set && !can_read(set, 8)) || (oldset && !can_write(oldset, 8)))
        return -EFAULT;
    struct thread *t = current_thread;
    u64 old = t->sigmask, mask = t->sigmask;
    if (set) {
        u64 s = *(u64 *)set;
        if (how == 0)               /* SIG_BLOCK */
            mask |= s;
        else if (how == 1)          /* SIG_UNBLOCK */
            mask &= ~s;
        else if (how == 2)          /* SIG_SETMASK */
            mask = s;
        else
            return -EINVAL;
    }
    t->sigmask = mask & ~SIG_UNBLOCKABLE;   /* newly unblocked ones arrive at this call's exit */
    if (oldset)
        *(u64 *)oldset = old;
    return 0;
}

long sys_rt_sigpending(const struct syscall_args *call)
{
    u64 set = call->arg[0], sigsetsize = call->arg[1];
    if (sigsetsize > 8)
        return -EINVAL;
    if (!can_write(set, sigsetsize))
        return -EFAULT;
    struct thread *t = current_thread;
    u64 pending = (t->sigpending | process.sigpending) & t->sigmask;
    memcpy((void *)set, &pending, sigsetsize);
    return 0;
}

long sys_sigaltstack(const struct syscall_args *call)
{
    u64 ss = call->arg[0], old_ss = call->arg[1], app_rsp = call->frame->rsp;
    struct thread *t = current_thread;
    bool on = on_altstack(t, app_rsp);
    if ((ss && !can_read(ss, sizeof(struct linux_stack))) ||
        (old_ss && !can_write(old_ss, sizeof(struct linux_stack))))
        return -EFAULT;
    struct linux_stack old = {
        .ss_sp = t->altstack_sp, .ss_size = t->altstack_size,
        .ss_flags = (t->altstack_flags & SS_DISABLE) ? SS_DISABLE : on ? SS_ONSTACK : 0,
    };
    if (ss) {
        struct linux_stack new = *(const struct linux_stack *)ss;
        int flags = new.ss_flags & ~(1 << 31);      /* SS_AUTODISARM: taken, not honoured */
        if (on)
            return -EPERM;
        if (flags != 0 && flags != SS_ONSTACK && flags != SS_DISABLE)
            return -EINVAL;
        if (flags == SS_DISABLE) {
            t->altstack_sp = t->altstack_size = 0;
            t->altstack_flags = SS_DISABLE;
        } else {
            if (new.ss_size < MINSIGSTKSZ)
                return -ENOMEM;
            t->altstack_sp = new.ss_sp;
            t->altstack_size = new.ss_size;
            t->altstack_flags = 0;
        }
    }
    if (old_ss)
        memcpy((void *)old_ss, &old, sizeof(old));
    return 0;
}

/* Sleep until a signal t does not block is pending, or the deadline (0: none) passes. */
static long wait_for_signal(struct thread *t, u64 deadline_ns)
{
    struct spinlock lock = SPINLOCK_INIT;
    spin_lock(&lock);
    long ret = 0;
    while (!signal_pending(t) && ret != -ETIMEDOUT)
        ret = sched_wait(t, &lock, deadline_ns);
    spin_unlock(&lock);
    return ret == -ETIMEDOUT ? ret : 0;
}

long sys_rt_sigsuspend(const struct syscall_args *call)
{
    u64 mask = call->arg[0], sigsetsize = call->arg[1];
    if (sigsetsize != 8)
        return -EINVAL;
    if (!can_read(mask, 8))
        return -EFAULT;
    signal_mask_for_call(*(const u64 *)mask);    /* the handler's frame gets the old one */
    wait_for_signal(current_thread, 0);
    return -EINTR;
}

/* pause: until a signal's handler has run (the way back to the app runs it): EINTR. */
long sys_pause(const struct syscall_args *call)
{
    wait_for_signal(current_thread, 0);
    return -EINTR;
}

long sys_rt_sigtimedwait(const struct syscall_args *call)
{
    u64 set = call->arg[0], info = call->arg[1], timeout = call->arg[2], sigsetsize = call->arg[3];
    if (sigsetsize != 8)
        return -EINVAL;
    if (!can_read(set, 8) || (info && !can_write(info, sizeof(struct linux_siginfo))) ||
        (timeout && !can_read(timeout, 16)))
        return -EFAULT;
    struct thread *t = current_thread;
    u64 wanted = *(const u64 *)set & ~SIG_UNBLOCKABLE;
    u64 deadline = 0;
    if (timeout) {
        const long *ts = (const long *)timeout;
        if (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000L)
            return -EINVAL;
        deadline = MAX(tsc_ns() + ts[0] * 1000000000UL + ts[1], 1);
    }
    bool poll_only = timeout && !((const long *)timeout)[0] && !((const long *)timeout)[1];
    struct linux_siginfo si;
    int sig = dequeue(t, wanted, &si);
    if (!sig && !poll_only) {
        /* As Linux: the signals waited for count as unblocked while we wait. */
        u64 blocked = t->sigmask;
        /* sigwait_set first, and cleared last: a sender that sees the signal let
           through sees that it is ours to take (sched_signal). */
        __atomic_store_n(&t->sigwait_set, wanted & blocked, __ATOMIC_RELEASE);
        __atomic_store_n(&t->sigmask, blocked & ~wanted, __ATOMIC_RELEASE);
        long w = wait_for_signal(t, timeout ? deadline : 0);
        __atomic_store_n(&t->sigmask, blocked, __ATOMIC_RELEASE);
        __atomic_store_n(&t->sigwait_set, 0, __ATOMIC_RELEASE);
        sig = dequeue(t, wanted, &si);
        if (!sig)
            return w == -ETIMEDOUT ? -EAGAIN : -EINTR;
    }
    if (!sig)
        return -EAGAIN;
    if (info)
        memcpy((void *)info, &si, sizeof(si));
    return sig;
}

/* ---- the app's real-time interval timer: setitimer(ITIMER_REAL), getitimer, alarm ---- */

#define ITIMER_REAL 0
#define NS_PER_SEC 1000000000UL
#define US_PER_S 1000000UL
#define NS_PER_US 1000UL

/*
 * One timer for the app, as Linux has one ITIMER_REAL per process: SIGALRM to the app
 * when tsc_ns() passes the deadline (0: disarmed), again every interval (0: once). The
 * timer interrupt checks it (signal_timer_tick), so it fires on a tick, as sleeps end.
 */
static struct spinlock itimer_lock = SPINLOCK_INIT;
static u64 itimer_deadline, itimer_interval;

/* Whether signal_timer_tick(now) would fire setitimer's SIGALRM (lazy's fast tick asks). */
bool signal_timer_due(u64 now)
{
    u64 deadline = __atomic_load_n(&itimer_deadline, __ATOMIC_RELAXED);
    return deadline && now >= deadline;
}

/* From sched_tick, interrupts off: SIGALRM if the deadline passed (on one CPU only). */
void signal_timer_tick(u64 now)
{
    u64 deadline = __atomic_load_n(&itimer_deadline, __ATOMIC_RELAXED);
    if (!deadline || now < deadline)
        return;
    u64 flags = spin_lock_irqsave(&itimer_lock);
    bool fire = itimer_deadline && now >= itimer_deadline;
    if (fire)
        itimer_deadline = itimer_interval ? MAX(itimer_deadline + itimer_interval, now + 1) : 0;
    spin_unlock_irqrestore(&itimer_lock, flags);
    if (fire && disposition(SIGALRM) != SIG_ACT_IGNORE)
        sched_signal(0, SIGALRM);       /* its default action ends the app where it is taken */
}

struct linux_timeval { long tv_sec, tv_usec; };
struct linux_itimerval { struct linux_timeval it_interval, it_value; };

static struct linux_timeval timeval_of(u64 ns)
{
    u64 us = (ns + NS_PER_US - 1) / NS_PER_US;     /* a timer not yet due is never 0 */
    return (struct linux_timeval){ us / US_PER_S, us % US_PER_S };
}

/* The timer now, and (new: not NULL) the timer from now on; itimer_lock held. */
static void itimer_swap(struct linux_itimerval *old, const struct linux_itimerval *new)
{
    u64 now = tsc_ns();
    u64 left = itimer_deadline > now ? itimer_deadline - now : itimer_deadline ? 1 : 0;
    old->it_interval = timeval_of(itimer_interval);
    old->it_value = timeval_of(left);
    if (!new)
        return;
    u64 value = new->it_value.tv_sec * NS_PER_SEC + new->it_value.tv_usec * NS_PER_US;
    itimer_interval = new->it_interval.tv_sec * NS_PER_SEC + new->it_interval.tv_usec * NS_PER_US;
    itimer_deadline = value ? now + value : 0;
}

static bool timeval_ok(const struct linux_timeval *tv)
{
    return tv->tv_sec >= 0 && tv->tv_usec >= 0 && tv->tv_usec < (long)US_PER_S;
}

static long setitimer(long which, u64 new_value, u64 old_value)
{
    if ((int)which != ITIMER_REAL)
        return -EINVAL;             /* ITIMER_VIRTUAL, ITIMER_PROF: app and kernel are one ring */
    if ((new_value && !can_read(new_value, sizeof(struct linux_itimerval))) ||
        (old_value && !can_write(old_value, sizeof(struct linux_itimerval))))
        return -EFAULT;
    struct linux_itimerval new, old;
    if (new_value) {
        new = *(const struct linux_itimerval *)new_value;
        if (!timeval_ok(&new.it_value) || !timeval_ok(&new.it_interval))
            return -EINVAL;
    }
    u64 flags = spin_lock_irqsave(&itimer_lock);
    itimer_swap(&old, new_value ? &new : NULL);
    spin_unlock_irqrestore(&itimer_lock, flags);
    if (old_value)
        memcpy((void *)old_value, &old, sizeof(old));
    return 0;
}

long sys_setitimer(const struct syscall_args *call)
{
    return setitimer(call->arg[0], call->arg[1], call->arg[2]);
}

bool signal_from_timer(long tid, int sig, int id, u64 value)
{
    bool full;
    if (disposition(sig) == SIG_ACT_IGNORE || (tid && !sched_thread_alive(tid)) ||
        !enqueue(tid, sig, SI_TIMER, id, value, &full))
        return false;
    return sched_signal(tid, sig) >= 0;
}

long sys_getitimer(const struct syscall_args *call)
{
    return setitimer(call->arg[0], 0, call->arg[1]);
}

/* alarm: setitimer with whole seconds, once; the seconds that were left, rounded. */
long sys_alarm(const struct syscall_args *call)
{
    u64 seconds = call->arg[0];
    struct linux_itimerval new = { .it_value = { (unsigned)seconds, 0 } }, old;
    u64 flags = spin_lock_irqsave(&itimer_lock);
    itimer_swap(&old, &new);
    spin_unlock_irqrestore(&itimer_lock, flags);
    long left = old.it_value.tv_sec + (old.it_value.tv_usec >= 500000);
    return left == 0 && old.it_value.tv_usec ? 1 : left;
}
