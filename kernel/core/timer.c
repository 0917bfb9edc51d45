/*
 * The app's POSIX timers: timer_create, timer_settime, timer_gettime, timer_getoverrun,
 * timer_delete, as Linux's kernel/time/posix-timers.c gives them to libc.
 *
 * A timer counts on CLOCK_REALTIME, CLOCK_MONOTONIC or CLOCK_BOOTTIME (all the TSC
 * here; realtime is the same count plus the RTC's time at boot, so an absolute
 * realtime expiry is converted once, when it is set). The CPU-time clocks are not
 * offered (EINVAL): app and kernel share one ring, and nothing here would make a
 * thread's CPU time a truthful clock to sleep on.
 *
 * What an expiry does is the sigevent's:
 *   SIGEV_SIGNAL     its signal to the app (kill's way: any thread that does not block it)
 *   SIGEV_THREAD_ID  its signal to one thread (how glibc and musl build SIGEV_THREAD:
 *                    a helper thread of theirs waits for it)
 *   SIGEV_NONE       nothing; timer_gettime still tells the time left
 * with siginfo SI_TIMER, si_timerid, si_overrun and the sigevent's value.
 *
 * As on Linux, a timer has at most one signal queued: an expiry while the last one is
 * still pending is an overrun, counted; the delivery reports the count in si_overrun
 * and timer_getoverrun gives it afterwards. The signal's siginfo is queued with it
 * (core/signal.c, "Queued siginfo"), whose dequeue tells us (timer_signal_taken).
 *
 * Expiries are found on the timer interrupt (timer_tick, from sched_tick), so a timer
 * fires on the tick after its time, as sleeps end.
 */
#include "timer.h"
#include "syscalls.h"
#include "arch.h"
#include "lib.h"
#include "mm.h"
#include "signal.h"
#include "spinlock.h"
#include <asm-generic/errno.h>
#include <linux/time.h>

#define MAX_TIMERS 32
#define NS_PER_SEC 1000000000UL
#define SIGEV_SIGNAL 0              /* asm-generic/siginfo.h's, which brings Linux's siginfo too */
#define SIGEV_NONE 1
#define SIGEV_THREAD_ID 4

/* struct sigevent, x86-64: 64 bytes; sigev_notify_thread_id is the union's first int. */
struct linux_sigevent {
    u64 value;
    int signo, notify;
    int tid;
    int pad[11];
};
_Static_assert(sizeof(struct linux_sigevent) == 64, "sigevent");

struct linux_timespec { long tv_sec, tv_nsec; };
struct linux_itimerspec { struct linux_timespec it_interval, it_value; };

struct posix_timer {
    bool used;
    int clock;
    int notify, signo;
    long tid;                       /* SIGEV_THREAD_ID: the thread; else 0, the app */
    u64 value;                      /* the sigevent's, for si_value */
    u64 deadline, interval;         /* tsc_ns(); deadline 0: disarmed */
    bool queued;                    /* its signal is pending and not yet taken */
    int overrun;                    /* expiries while queued, since the last delivery */
    int last_overrun;               /* timer_getoverrun: of the last delivery */
};

/* Taken by the timer interrupt too: always with interrupts off. */
static struct spinlock timers_lock = SPINLOCK_INIT;
static struct posix_timer timers[MAX_TIMERS];
static u64 next_deadline;           /* the earliest armed deadline, so most ticks look no further */

static bool can_read(u64 addr, u64 len) { return user_range_ok(addr, len, false); }
static bool can_write(u64 addr, u64 len) { return user_range_ok(addr, len, true); }

/* Recompute next_deadline; timers_lock held. */
static void update_next_deadline(void)
{
    u64 next = 0;
    for (int i = 0; i < MAX_TIMERS; i++)
        if (timers[i].used && timers[i].deadline && (!next || timers[i].deadline < next))
            next = timers[i].deadline;
    __atomic_store_n(&next_deadline, next, __ATOMIC_RELEASE);
}

/* The timer the app calls id, or NULL (Linux: EINVAL). timers_lock held. */
static struct posix_timer *timer_of(long id)
{
    if ((int)id < 0 || (int)id >= MAX_TIMERS || !timers[(int)id].used)
        return NULL;
    return &timers[(int)id];
}

long sys_timer_create(const struct syscall_args *call)
{
    long clock = call->arg[0];
    u64 sevp = call->arg[1], timerid = call->arg[2];
    int clk = (int)clock;
    if (clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC && clk != CLOCK_BOOTTIME)
        return -EINVAL;
    struct linux_sigevent ev = { .signo = SIGALRM, .notify = SIGEV_SIGNAL };
    if (sevp) {
        if (!can_read(sevp, sizeof(ev)))
            return -EFAULT;
        memcpy(&ev, (const void *)sevp, sizeof(ev));
    }
    if (!can_write(timerid, sizeof(int)))
        return -EFAULT;
    if (ev.notify != SIGEV_NONE) {
        if (ev.signo < 1 || ev.signo > NSIG_MAX)
            return -EINVAL;
        if (ev.notify == SIGEV_THREAD_ID ? !sched_thread_alive(ev.tid) : ev.notify != SIGEV_SIGNAL)
            return -EINVAL;
    }
    u64 flags = spin_lock_irqsave(&timers_lock);
    int id = 0;
    while (id < MAX_TIMERS && timers[id].used)
        id++;
    if (id == MAX_TIMERS) {
        spin_unlock_irqrestore(&timers_lock, flags);
        return -EAGAIN;
    }
    timers[id] = (struct posix_timer){
        .used = true, .clock = clk, .notify = ev.notify, .signo = ev.signo,
        .tid = ev.notify == SIGEV_THREAD_ID ? ev.tid : 0,
        .value = sevp ? ev.value : (u64)id,     /* no sigevent: si_value is the id */
    };
    spin_unlock_irqrestore(&timers_lock, flags);
    *(int *)timerid = id;
    return 0;
}

static struct linux_timespec timespec_of(u64 ns)
{
    return (struct linux_timespec){ ns / NS_PER_SEC, ns % NS_PER_SEC };
}

/* What is left of t, as timer_gettime gives it; timers_lock held. */
static struct linux_itimerspec time_left(const struct posix_timer *t, u64 now)
{
    u64 left = !t->deadline ? 0 : t->deadline > now ? t->deadline - now : 1;
    return (struct linux_itimerspec){ timespec_of(t->interval), timespec_of(left) };
}

static bool timespec_ok(const struct linux_timespec *ts)
{
    return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < (long)NS_PER_SEC;
}

long sys_timer_settime(const struct syscall_args *call)
{
    long id = call->arg[0], flags = call->arg[1];
    u64 new_value = call->arg[2], old_value = call->arg[3];
    if (!can_read(new_value, sizeof(struct linux_itimerspec)) ||
        (old_value && !can_write(old_value, sizeof(struct linux_itimerspec))))
        return -EFAULT;
    struct linux_itimerspec new = *(const struct linux_itimerspec *)new_value;
    if (!timespec_ok(&new.it_value) || !timespec_ok(&new.it_interval))
        return -EINVAL;
    u64 value = new.it_value.tv_sec * NS_PER_SEC + new.it_value.tv_nsec;
    u64 interval = new.it_interval.tv_sec * NS_PER_SEC + new.it_interval.tv_nsec;
    u64 irq = spin_lock_irqsave(&timers_lock);
    struct posix_timer *t = timer_of(id);
    if (!t) {
        spin_unlock_irqrestore(&timers_lock, irq);
        return -EINVAL;
    }
    u64 now = tsc_ns();
    struct linux_itimerspec old = time_left(t, now);
    if (!value) {
        t->deadline = 0;            /* disarmed; a signal already queued stays so */
    } else if (flags & TIMER_ABSTIME) {
        u64 offset = t->clock == CLOCK_REALTIME ? wall_clock_offset_ns() : 0;
        t->deadline = MAX(value - MIN(value, offset), 1);   /* a time past: at the next tick */
    } else {
        t->deadline = now + value;
    }
    t->interval = value ? interval : 0;
    t->overrun = 0;
    update_next_deadline();
    spin_unlock_irqrestore(&timers_lock, irq);
    if (old_value)
        memcpy((void *)old_value, &old, sizeof(old));
    return 0;
}

long sys_timer_gettime(const struct syscall_args *call)
{
    long id = call->arg[0];
    u64 curr_value = call->arg[1];
    if (!can_write(curr_value, sizeof(struct linux_itimerspec)))
        return -EFAULT;
    u64 irq = spin_lock_irqsave(&timers_lock);
    struct posix_timer *t = timer_of(id);
    struct linux_itimerspec left = t ? time_left(t, tsc_ns()) : (struct linux_itimerspec){ 0 };
    spin_unlock_irqrestore(&timers_lock, irq);
    if (!t)
        return -EINVAL;
    memcpy((void *)curr_value, &left, sizeof(left));
    return 0;
}

long sys_timer_getoverrun(const struct syscall_args *call)
{
    long id = call->arg[0];
    u64 irq = spin_lock_irqsave(&timers_lock);
    struct posix_timer *t = timer_of(id);
    long overrun = t ? t->last_overrun : -EINVAL;
    spin_unlock_irqrestore(&timers_lock, irq);
    return overrun;
}

long sys_timer_delete(const struct syscall_args *call)
{
    long id = call->arg[0];
    u64 irq = spin_lock_irqsave(&timers_lock);
    struct posix_timer *t = timer_of(id);
    if (t)
        t->used = false;
    update_next_deadline();
    spin_unlock_irqrestore(&timers_lock, irq);
    if (!t)
        return -EINVAL;
    signal_unqueue_timer(id);       /* a signal it queued goes with it */
    return 0;
}

/* Whether timer_tick(now) has an expiry to deliver (lazy's fast tick asks: it then declines). */
bool timer_due(u64 now)
{
    u64 next = __atomic_load_n(&next_deadline, __ATOMIC_ACQUIRE);
    return next && now >= next;
}

/*
 * From sched_tick, interrupts off: every timer whose deadline passed expires, once per
 * interval that has gone by (the ones a late tick skipped count as overruns). Signals
 * are sent after the lock is let go: sched_signal takes the scheduler's lock.
 */
void timer_tick(u64 now)
{
    if (!timer_due(now))
        return;
    struct expiry { int id, signo; long tid; u64 value; } send[MAX_TIMERS];
    int nsend = 0;
    u64 irq = spin_lock_irqsave(&timers_lock);
    for (int i = 0; i < MAX_TIMERS; i++) {
        struct posix_timer *t = &timers[i];
        if (!t->used || !t->deadline || now < t->deadline)
            continue;
        int expiries = 1;
        if (t->interval) {
            u64 late = (now - t->deadline) / t->interval;
            expiries += late;
            t->deadline += (late + 1) * t->interval;
        } else {
            t->deadline = 0;
        }
        if (t->notify == SIGEV_NONE)
            continue;
        if (t->queued) {
            t->overrun += expiries;
        } else {
            t->queued = true;
            t->overrun = expiries - 1;
            send[nsend++] = (struct expiry){ i, t->signo, t->tid, t->value };
        }
    }
    update_next_deadline();
    spin_unlock_irqrestore(&timers_lock, irq);
    for (int i = 0; i < nsend; i++) {
        if (signal_from_timer(send[i].tid, send[i].signo, send[i].id, send[i].value))
            continue;
        /* Ignored, or its thread is gone: nothing is queued, the next expiry tries again. */
        irq = spin_lock_irqsave(&timers_lock);
        timers[send[i].id].queued = false;
        spin_unlock_irqrestore(&timers_lock, irq);
    }
}

/*
 * The timer's queued signal was taken (core/signal.c's dequeue): its overrun count is
 * the delivered one, which timer_getoverrun reports from now on, and the next expiry
 * queues a signal again.
 */
int timer_signal_taken(int id)
{
    u64 irq = spin_lock_irqsave(&timers_lock);
    struct posix_timer *t = timer_of(id);
    int overrun = 0;
    if (t && t->queued) {
        t->queued = false;
        overrun = t->last_overrun = t->overrun;
        t->overrun = 0;
    }
    spin_unlock_irqrestore(&timers_lock, irq);
    return overrun;
}
