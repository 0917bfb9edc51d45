/*
 * The scheduler: one table of threads (all_threads), scanned round-robin for a READY
 * app thread this CPU may run, else the CPU's idle thread. Like xv6, sched_lock is
 * held across the switch and released by the thread switched to, so no other CPU can
 * pick a thread whose registers are not yet saved.
 *
 * A context switch writes, for the incoming thread, everything the FS-base protocol
 * reads on this CPU: %gs:0 (tcb_data.kernel_tcb), the FS base (its kernel TCB: a thread
 * is always switched inside the kernel, counter >= 1), and the TSS's IST_EXCEPTION
 * (its own exception stack).
 */
#include "arch.h"
#include "inject.h"
#include "lib.h"
#include "panic.h"
#include "signal.h"
#include "spinlock.h"
#include "thread.h"
#include "timer.h"
#include <asm-generic/errno.h>

#define QUANTUM_TICKS 4         /* timer ticks an app thread runs before others get a turn */

struct spinlock sched_lock = SPINLOCK_INIT;
static unsigned rr_cursor;      /* where the next scan of all_threads starts */
static u64 exited_cpu_ns;       /* CPU time of the app threads that are gone */

void switch_context(u64 *save_rsp, u64 new_rsp);

static void install(struct arch_cpu *cpu, struct thread *next)
{
    next->state = THREAD_RUNNING;
    next->cpu = cpu->id;
    cpu->current = next;
    cpu->tcb_data.kernel_tcb = (u64)next->tcb;
    cpu->tss.ist[IST_EXCEPTION - 1] = (u64)next->exception_stack + next->exception_stack_size;
    bool in_kernel = next->tcb->kernel_tcb_counter || fs_protocol == FS_PROTOCOL_COMPARE;
    set_fsbase(in_kernel ? (u64)next->tcb : next->tcb->app_tcb);
}

/* This CPU starts running its idle thread (for the boot CPU: the boot thread). */
void sched_init_cpu(struct thread *idle)
{
    struct arch_cpu *cpu = this_cpu();
    cpu->idle_thread = idle;
    install(cpu, idle);
}

static struct thread *pick_next(struct arch_cpu *cpu)
{
    for (unsigned i = 0; i < nr_threads; i++) {
        unsigned index = (rr_cursor + i) % nr_threads;
        struct thread *t = all_threads[index];
        if (t->is_app && t->state == THREAD_READY && (t->affinity & (1UL << cpu->id))) {
            rr_cursor = index + 1;
            return t;
        }
    }
    return cpu->idle_thread;
}

/*
 * An app thread that exited leaves all_threads[] and gives its memory back, right after
 * the switch away from it, when no CPU can be on its stacks any more. sched_lock held.
 */
static void reap_exited_thread(void)
{
    struct arch_cpu *cpu = this_cpu();
    struct thread *t = cpu->exited_thread;
    if (!t)
        return;
    cpu->exited_thread = NULL;
    for (unsigned i = 0; i < nr_threads; i++) {
        if (all_threads[i] != t)
            continue;
        memmove(&all_threads[i], &all_threads[i + 1], (nr_threads - i - 1) * sizeof(t));
        all_threads[--nr_threads] = NULL;
        if (rr_cursor > i)
            rr_cursor--;
        exited_cpu_ns += t->cpu_ns;
        break;
    }
    thread_free(t);
}

/* Called with sched_lock held and interrupts off; returns, maybe on another CPU, the same way. */
static void schedule_locked(void)
{
    struct arch_cpu *cpu = this_cpu();
    struct thread *prev = cpu->current;
    /*
     * preempt_count is the CPU's, not the thread's: a switch with a spinlock held (a
     * path that reschedules without asking, as the reschedule IPI once did) leaves
     * the lock with a thread off the CPU and the count on this CPU for good, and then
     * the timer never preempts here again. Linux's "scheduling while atomic": say so
     * at once rather than hang later somewhere else. (sched_lock is a raw lock: not
     * counted.)
     */
    if (cpu->preempt_count)
        panic("schedule on cpu %u with %u spinlocks held (tid %d)", cpu->id,
              cpu->preempt_count, prev->tid);
    if (prev->state == THREAD_RUNNING)
        prev->state = THREAD_READY;
    struct thread *next = pick_next(cpu);
    if (next == prev || (next == cpu->idle_thread && prev->state == THREAD_READY && prev->is_app)) {
        prev->state = THREAD_RUNNING;   /* nothing better to run */
        return;
    }
    cpu->slice = 0;
    /* Not in install(): the boot CPU installs its first thread before the TSC is calibrated. */
    u64 now = tsc_ns();
    prev->cpu_ns += now - prev->run_start;
    next->run_start = now;
    /* The kernel never touches FPU/SSE state: only app threads have any to keep. */
    if (prev->is_app)
        arch_fpu_save(prev->fpu_state);
    if (next->is_app)
        arch_fpu_restore(next->fpu_state);
    install(cpu, next);
    if (prev->state == THREAD_EXITED)
        cpu->exited_thread = prev;  /* freed once we are off its stack */
    switch_context(&prev->kernel_rsp, next->kernel_rsp);
    reap_exited_thread();
}

void schedule(void)
{
    u64 flags = irq_save();
    raw_spin_lock(&sched_lock);
    schedule_locked();
    raw_spin_unlock(&sched_lock);
    irq_restore(flags);
}

/* A new thread's first instructions, from thread_trampoline: finish the switch, run. */
void thread_start(void)
{
    reap_exited_thread();
    raw_spin_unlock(&sched_lock);
    struct thread *t = this_cpu()->current;
    t->entry(t->entry_arg);
    panic("thread %d returned from its entry function", t->tid);
}

/*
 * A thread became READY: wake an idle CPU (other than this one, which will look at the
 * table itself) so it need not wait for its next timer tick.
 */
static void kick_idle_cpu(void)
{
    struct arch_cpu *self = this_cpu();
    for (unsigned i = 0; i < nr_cpus; i++) {
        struct arch_cpu *cpu = &cpus[i];
        if (cpu != self && cpu->online && !cpu->stopped && cpu->current == cpu->idle_thread) {
            lapic_send_ipi(cpu->apic_id, IPI_RESCHEDULE_VECTOR);
            return;
        }
    }
}

void sched_make_ready(struct thread *t)
{
    u64 flags = spin_lock_irqsave(&sched_lock);
    t->state = THREAD_READY;
    spin_unlock_irqrestore(&sched_lock, flags);
    kick_idle_cpu();
}

/* The timer: wake sleepers whose time has come, and take turns. Interrupts are off. */
void sched_tick(void)
{
    struct arch_cpu *cpu = this_cpu();
    u64 now = tsc_ns();
    raw_spin_lock(&sched_lock);
    for (unsigned i = 0; i < nr_threads; i++) {
        struct thread *t = all_threads[i];
        if (t->state == THREAD_BLOCKED && t->wake_time && now >= t->wake_time) {
            t->wake_time = 0;
            t->timed_out = true;
            t->futex_addr = 0;
            t->wait_chan = NULL;
            t->state = THREAD_READY;
        }
    }
    raw_spin_unlock(&sched_lock);
    signal_timer_tick(now);         /* setitimer's SIGALRM */
    timer_tick(now);                /* the POSIX timers' */
    if (cpu->preempt_count)
        return;                     /* a spinlock holder is not preempted */
    if (cpu->current == cpu->idle_thread || ++cpu->slice >= QUANTUM_TICKS)
        schedule();
}

/*
 * lazy's fast timer tick (core/fastpath.c): all of sched_tick() when it would neither
 * wake a sleeper nor switch threads (its quantum is not up, or no other thread could
 * run here, so schedule() would keep it), i.e. counting the slice: true. Else false,
 * having done nothing: the ordinary tick follows. No __thread here (check-fastpath.py);
 * interrupts are off, so sched_lock is taken as sched_tick() takes it.
 */
bool sched_tick_fast(u64 now)
{
    struct arch_cpu *cpu = this_cpu();
    if (cpu->preempt_count || cpu->current == cpu->idle_thread)
        return false;
    bool quantum_up = cpu->slice + 1 >= QUANTUM_TICKS, quiet = true;
    raw_spin_lock(&sched_lock);
    for (unsigned i = 0; i < nr_threads && quiet; i++) {
        const struct thread *t = all_threads[i];
        if (t->state == THREAD_BLOCKED && t->wake_time && now >= t->wake_time)
            quiet = false;              /* a sleeper to wake */
        if (quantum_up && t->state == THREAD_READY && t->is_app && (t->affinity & (1UL << cpu->id)))
            quiet = false;              /* schedule() would switch to it */
    }
    raw_spin_unlock(&sched_lock);
    if (quiet)
        cpu->slice++;
    return quiet;
}

noreturn void sched_idle_loop(void)
{
    for (;;) {
        schedule();
        /* sti's one-instruction shadow: no interrupt can slip in before hlt. */
        __asm__ __volatile__("sti; hlt; cli" : : : "memory");
    }
}

/* Block until tsc_ns() reaches deadline_ns; -ERESTARTSYS if a signal came first. */
long sched_sleep_until(u64 deadline_ns)
{
    u64 flags = spin_lock_irqsave(&sched_lock);
    struct thread *t = this_cpu()->current;
    if (!signal_pending(t)) {
        t->wake_time = MAX(deadline_ns, 1);
        t->timed_out = false;
        t->state = THREAD_BLOCKED;
        schedule_locked();
        t->wake_time = 0;
    }
    long ret = t->timed_out || !signal_pending(t) ? 0 : -ERESTARTSYS;
    spin_unlock_irqrestore(&sched_lock, flags);
    return ret;
}

/*
 * With sched_lock held: block t, the current thread, whose caller has said what it waits
 * on (wait_chan, futex_addr), until a wake, the deadline (0: none) or a signal. 0 when
 * woken, -ETIMEDOUT when the deadline passed, -ERESTARTSYS when a signal it does not
 * block was pending already (it never sleeps) or woke it (sched_signal).
 */
static long block_locked(struct thread *t, u64 deadline_ns)
{
    if (signal_pending(t))
        return -ERESTARTSYS;
    t->wake_time = deadline_ns;
    t->timed_out = false;
    t->signal_woken = false;
    t->state = THREAD_BLOCKED;
    schedule_locked();
    t->wake_time = 0;
    return t->timed_out ? -ETIMEDOUT : t->signal_woken ? -ERESTARTSYS : 0;
}

/*
 * xv6's sleep and wakeup, for kernel objects (pipes): block on chan until
 * sched_wakeup(chan) or the deadline (0: none). The caller holds lock, which guards the
 * condition it waits for; lock is let go only once sched_lock is held, so a waker (who
 * takes lock to change the condition, then wakes) cannot slip in between the caller's
 * check and its sleep. lock is held again on return; -ETIMEDOUT if the deadline passed,
 * -ERESTARTSYS if a signal the thread does not block is pending before it sleeps, or
 * wakes it (sched_signal): the caller gives up and returns that, and the way back to
 * the app sorts it out.
 */
long sched_wait(const void *chan, struct spinlock *lock, u64 deadline_ns)
{
    u64 flags = irq_save();
    raw_spin_lock(&sched_lock);
    spin_unlock(lock);
    struct thread *t = this_cpu()->current;
    t->wait_chan = chan;
    /* Woken for what it waited for, it looks again first, as Linux's pipe_read does. */
    long ret = block_locked(t, deadline_ns);
    t->wait_chan = NULL;
    raw_spin_unlock(&sched_lock);
    irq_restore(flags);
    spin_lock(lock);
    return ret;
}

void sched_wakeup(const void *chan)
{
    bool woken = false;
    u64 flags = spin_lock_irqsave(&sched_lock);
    for (unsigned i = 0; i < nr_threads; i++) {
        struct thread *t = all_threads[i];
        if (t->state == THREAD_BLOCKED && t->wait_chan == chan) {
            t->wait_chan = NULL;
            t->wake_time = 0;
            t->state = THREAD_READY;
            woken = true;
        }
    }
    spin_unlock_irqrestore(&sched_lock, flags);
    if (woken)
        kick_idle_cpu();
}

/*
 * End the calling app thread, unless it is the app's last one: then return, and the
 * caller ends the app. Counting and marking under one lock, two last threads exiting
 * at once cannot both leave.
 */
void sched_exit_current(void)
{
    u64 flags = spin_lock_irqsave(&sched_lock);
    struct thread *self = this_cpu()->current;
    unsigned others = 0;
    for (unsigned i = 0; i < nr_threads; i++) {
        struct thread *t = all_threads[i];
        others += t != self && t->is_app && t->state != THREAD_EXITED;
    }
    if (!others) {
        spin_unlock_irqrestore(&sched_lock, flags);
        return;
    }
    self->state = THREAD_EXITED;
    schedule_locked();
    panic("an exited thread was scheduled");
}

/* A live app thread by tid (0: the caller). sched_lock held: the table may not shift. */
static struct thread *find_app_thread(long tid)
{
    if (tid == 0)
        return this_cpu()->current;
    for (unsigned i = 0; i < nr_threads; i++) {
        struct thread *t = all_threads[i];
        if (t->tid == tid && t->is_app && t->state != THREAD_EXITED)
            return t;
    }
    return NULL;
}

bool sched_thread_alive(long tid)
{
    u64 flags = spin_lock_irqsave(&sched_lock);
    bool alive = find_app_thread(tid) != NULL;
    spin_unlock_irqrestore(&sched_lock, flags);
    return alive;
}

/*
 * CPU time in ns, kernel and app code alike (both run in ring 0): of the calling thread,
 * or of all the app's threads, gone ones too.
 */
u64 sched_cpu_ns(bool whole_app)
{
    u64 flags = spin_lock_irqsave(&sched_lock);
    u64 now = tsc_ns(), total = whole_app ? exited_cpu_ns : 0;
    struct thread *self = this_cpu()->current;
    for (unsigned i = 0; i < nr_threads; i++) {
        struct thread *t = all_threads[i];
        if (whole_app ? !t->is_app : t != self)
            continue;
        total += t->cpu_ns + (t->state == THREAD_RUNNING ? now - t->run_start : 0);
    }
    spin_unlock_irqrestore(&sched_lock, flags);
    return total;
}

void sched_unpend_signal(long tid, int sig)
{
    u64 flags = spin_lock_irqsave(&sched_lock);
    struct thread *t = tid ? find_app_thread(tid) : NULL;
    if (t || !tid)
        __atomic_fetch_and(t ? &t->sigpending : &process.sigpending, ~sig_bit(sig), __ATOMIC_ACQ_REL);
    spin_unlock_irqrestore(&sched_lock, flags);
}

/*
 * A signal for thread tid, or for the app (tid 0: kill), marked pending with the
 * scheduler's lock held, so that a thread about to sleep sees it (sched_wait checks
 * under the same lock) or is asleep and woken here. One running app code on another
 * CPU gets an IPI: its interrupt's exit delivers. -ESRCH if there is no such thread;
 * else 1 when a thread that does not block the signal will take it (not by
 * rt_sigtimedwait), 0 when it waits.
 */
int sched_signal(long tid, int sig)
{
    u64 bit = sig_bit(sig);
    u64 flags = spin_lock_irqsave(&sched_lock);
    struct thread *t = NULL;
    if (tid) {
        t = find_app_thread(tid);
        if (!t) {
            spin_unlock_irqrestore(&sched_lock, flags);
            return -ESRCH;
        }
        __atomic_fetch_or(&t->sigpending, bit, __ATOMIC_ACQ_REL);
    } else {
        __atomic_fetch_or(&process.sigpending, bit, __ATOMIC_ACQ_REL);
        struct thread *self = this_cpu()->current;
        if (self->is_app && !(self->sigmask & bit))
            t = self;               /* Linux too prefers the sender */
        for (unsigned i = 0; !t && i < nr_threads; i++) {
            struct thread *u = all_threads[i];
            if (u->is_app && u->state != THREAD_EXITED && !(u->sigmask & bit))
                t = u;
        }
    }
    bool takes = t && !(t->sigmask & bit);
    /* A blocked signal a sigtimedwait takes is no handler's, and not fatal (Linux's
       real_blocked): the app lives on. Read now: the thread clears it once it runs. */
    bool by_handler = takes && !(__atomic_load_n(&t->sigwait_set, __ATOMIC_ACQUIRE) & bit);
    bool woken = false;
    /* Asleep in a wait (not a new thread not yet started): it wakes and gives up. */
    if (takes && t->state == THREAD_BLOCKED && (t->wait_chan || t->futex_addr || t->wake_time)) {
        t->wait_chan = NULL;
        t->futex_addr = 0;
        t->wake_time = 0;
        t->signal_woken = true;
        t->state = THREAD_READY;
        woken = true;
    } else if (takes && t->state == THREAD_RUNNING && t->cpu != (int)this_cpu()->id) {
        lapic_send_ipi(cpus[t->cpu].apic_id, IPI_SIGNAL_VECTOR);
    }
    spin_unlock_irqrestore(&sched_lock, flags);
    if (woken)
        kick_idle_cpu();
    return by_handler;
}

/* sched_setaffinity: false if there is no such thread. */
bool sched_set_affinity(long tid, u64 mask)
{
    u64 flags = spin_lock_irqsave(&sched_lock);
    struct thread *t = find_app_thread(tid);
    if (t)
        t->affinity = mask;
    bool moved_off = t == this_cpu()->current && !(mask & (1UL << this_cpu()->id));
    spin_unlock_irqrestore(&sched_lock, flags);
    if (moved_off)
        schedule();                 /* leave a CPU it may no longer use */
    return t != NULL;
}

/*
 * Futexes: a waiter is a BLOCKED thread whose futex_addr is the word; wakers scan the
 * thread table. The word is read under sched_lock, so a wake between the check and the
 * sleep cannot be missed. It was touched before, so reading it cannot block.
 * --inject=lost-wake makes every futex_wake a lie: the waiters are counted, never woken.
 */
long futex_wait(u64 uaddr, u32 val, u64 deadline_ns, u32 bitset)
{
    if (!bitset)
        return -EINVAL;
    (void)*(volatile u32 *)uaddr;       /* populate the page before taking the lock */
    u64 flags = spin_lock_irqsave(&sched_lock);
    if (*(volatile u32 *)uaddr != val) {
        spin_unlock_irqrestore(&sched_lock, flags);
        return -EAGAIN;
    }
    struct thread *t = this_cpu()->current;
    t->futex_addr = uaddr;
    t->futex_bitset = bitset;
    long ret = block_locked(t, deadline_ns);
    t->futex_addr = 0;
    spin_unlock_irqrestore(&sched_lock, flags);
    return ret;
}

static bool waits_on(const struct thread *t, u64 uaddr)
{
    return t->state == THREAD_BLOCKED && t->futex_addr == uaddr;
}

long futex_wake(u64 uaddr, int n, u32 bitset)
{
    int woken = 0;
    u64 flags = spin_lock_irqsave(&sched_lock);
    for (unsigned i = 0; i < nr_threads && woken < n; i++) {
        struct thread *t = all_threads[i];
        if (waits_on(t, uaddr) && (t->futex_bitset & bitset)) {
            woken++;
            if (injected & INJECT_LOST_WAKE)
                continue;           /* counted as woken, left asleep */
            t->futex_addr = 0;
            t->wake_time = 0;
            t->state = THREAD_READY;
        }
    }
    spin_unlock_irqrestore(&sched_lock, flags);
    if (woken)
        kick_idle_cpu();
    return woken;
}

long futex_requeue(u64 uaddr, int n_wake, int n_requeue, u64 uaddr2, bool cmp, u32 val)
{
    (void)*(volatile u32 *)uaddr;
    int woken = 0, moved = 0;
    u64 flags = spin_lock_irqsave(&sched_lock);
    if (cmp && *(volatile u32 *)uaddr != val) {
        spin_unlock_irqrestore(&sched_lock, flags);
        return -EAGAIN;
    }
    for (unsigned i = 0; i < nr_threads; i++) {
        struct thread *t = all_threads[i];
        if (!waits_on(t, uaddr))
            continue;
        if (woken < n_wake) {
            t->futex_addr = 0;
            t->wake_time = 0;
            t->state = THREAD_READY;
            woken++;
        } else if (moved < n_requeue) {
            t->futex_addr = uaddr2;
            moved++;
        }
    }
    spin_unlock_irqrestore(&sched_lock, flags);
    if (woken)
        kick_idle_cpu();
    return cmp ? woken + moved : woken;
}
