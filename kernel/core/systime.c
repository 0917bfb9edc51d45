/*
 * The time system calls (syscalls.h): the clocks (the TSC, the wall clock from the RTC's
 * time at boot, the scheduler's CPU time), sleeping, getrusage, times, sysinfo.
 */
#include "syscalls.h"
#include "arch.h"
#include "fastpath.h"
#include "lib.h"
#include "mm.h"
#include "process.h"
#include "thread.h"
#include "timer.h"
#include <asm-generic/errno.h>
#include <linux/time.h>
#include <linux/time_types.h>
#include <linux/resource.h>
#include <linux/sysinfo.h>
#include <linux/times.h>

static u64 boot_epoch_seconds;

void systime_init(void)
{
    rtc_read_epoch(&boot_epoch_seconds);
}

u64 wall_clock_offset_ns(void)
{
    return boot_epoch_seconds * 1000000000UL;
}

static bool can_write(u64 addr, u64 len) { return user_range_ok(addr, len, true); }
static bool can_read(u64 addr, u64 len) { return user_range_ok(addr, len, false); }

static void put_timespec(u64 tp, u64 ns)
{
    struct __kernel_timespec *ts = (void *)tp;
    ts->tv_sec = ns / 1000000000UL;
    ts->tv_nsec = ns % 1000000000UL;
}

/*
 * clock_gettime of the clocks that are the TSC: realtime (plus the RTC's time at boot),
 * monotonic, boottime; -EINVAL for any other. It uses no __thread: lazy's fast path
 * calls it (and declines the CPU-time clocks, which sys_clock_gettime reads).
 */
long clock_gettime_tsc(long clock, u64 tp)
{
    if (!can_write(tp, sizeof(struct __kernel_timespec)))
        return -EFAULT;
    u64 ns = tsc_ns();
    switch (clock) {
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE:
        ns += boot_epoch_seconds * 1000000000UL;
        break;
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_BOOTTIME:
        break;
    default:
        return -EINVAL;
    }
    put_timespec(tp, ns);
    return 0;
}

/* The CPU-time clocks are the scheduler's CPU time, as getrusage's. */
long sys_clock_gettime(const struct syscall_args *call)
{
    long clock = call->arg[0];
    u64 tp = call->arg[1];
    if (!clock_is_cpu_time(clock))
        return clock_gettime_tsc(clock, tp);
    if (!can_write(tp, sizeof(struct __kernel_timespec)))
        return -EFAULT;
    put_timespec(tp, sched_cpu_ns((int)clock == CLOCK_PROCESS_CPUTIME_ID));
    return 0;
}

long sys_gettimeofday(const struct syscall_args *call)
{
    u64 tv = call->arg[0], tz = call->arg[1];
    if (tv) {
        if (!can_write(tv, sizeof(struct __kernel_old_timeval)))
            return -EFAULT;
        u64 ns = tsc_ns() + boot_epoch_seconds * 1000000000UL;
        struct __kernel_old_timeval *t = (void *)tv;
        t->tv_sec = ns / 1000000000UL;
        t->tv_usec = ns % 1000000000UL / 1000;
    }
    if (tz) {
        if (!can_write(tz, 8))
            return -EFAULT;
        memset((void *)tz, 0, 8);
    }
    return 0;
}

/* Sleeping blocks the thread until the timer tick that passes its deadline. */
static long do_clock_nanosleep(long clock, long flags, u64 req, u64 rem)
{
    if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME)
        return -EINVAL;
    if (!can_read(req, sizeof(struct __kernel_timespec)))
        return -EFAULT;
    const struct __kernel_timespec *ts = (const void *)req;
    if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
        return -EINVAL;
    u64 ns = ts->tv_sec * 1000000000UL + ts->tv_nsec;
    u64 offset = clock == CLOCK_REALTIME ? boot_epoch_seconds * 1000000000UL : 0;
    u64 until = (flags & TIMER_ABSTIME) ? ns - MIN(ns, offset) : tsc_ns() + ns;
    long interrupted = until > tsc_ns() ? sched_sleep_until(until) : 0;
    if (rem && !(flags & TIMER_ABSTIME) && can_write(rem, sizeof(*ts))) {
        u64 left = interrupted ? until - MIN(until, tsc_ns()) : 0;
        struct __kernel_timespec *r = (void *)rem;
        r->tv_sec = left / 1000000000UL;
        r->tv_nsec = left % 1000000000UL;
    }
    return interrupted ? -EINTR : 0;    /* never restarted after a handler (signal(7)) */
}

long sys_nanosleep(const struct syscall_args *call)
{
    return do_clock_nanosleep(CLOCK_MONOTONIC, 0, call->arg[0], call->arg[1]);
}

long sys_clock_nanosleep(const struct syscall_args *call)
{
    return do_clock_nanosleep(call->arg[0], call->arg[1], call->arg[2], call->arg[3]);
}

/*
 * CPU time: the scheduler's, kernel and app code together (one ring), shown as user
 * time. No child ever runs: RUSAGE_CHILDREN and the children's times are 0.
 */
#define RUSAGE_SELF 0
#define RUSAGE_CHILDREN (-1)
#define RUSAGE_THREAD 1
#define USER_HZ 100                 /* times()'s clock ticks, as Linux's USER_HZ */

long sys_getrusage(const struct syscall_args *call)
{
    long who = call->arg[0];
    u64 usage = call->arg[1];
    if ((int)who != RUSAGE_SELF && (int)who != RUSAGE_CHILDREN && (int)who != RUSAGE_THREAD)
        return -EINVAL;
    if (!can_write(usage, sizeof(struct rusage)))
        return -EFAULT;
    struct rusage *ru = (void *)usage;
    memset(ru, 0, sizeof(*ru));
    if ((int)who == RUSAGE_CHILDREN)
        return 0;
    u64 ns = sched_cpu_ns((int)who == RUSAGE_SELF);
    ru->ru_utime.tv_sec = ns / 1000000000UL;
    ru->ru_utime.tv_usec = ns % 1000000000UL / 1000;
    ru->ru_maxrss = user_pages_populated * (PAGE_SIZE / 1024);     /* KiB ever populated */
    return 0;
}

long sys_times(const struct syscall_args *call)
{
    u64 buf = call->arg[0];
    if (buf) {
        if (!can_write(buf, sizeof(struct tms)))
            return -EFAULT;
        struct tms *t = (void *)buf;
        memset(t, 0, sizeof(*t));
        t->tms_utime = sched_cpu_ns(true) / (1000000000UL / USER_HZ);
    }
    return tsc_ns() / (1000000000UL / USER_HZ);      /* ticks since boot */
}


long sys_time(const struct syscall_args *call)
{
    u64 tloc = call->arg[0];
    long now = (tsc_ns() / 1000000000UL) + boot_epoch_seconds;
    if (tloc) {
        if (!can_write(tloc, 8))
            return -EFAULT;
        *(long *)tloc = now;
    }
    return now;
}

long sys_clock_getres(const struct syscall_args *call)
{
    long clock = call->arg[0];
    u64 res = call->arg[1];
    if (clock < 0 || clock > CLOCK_BOOTTIME)
        return -EINVAL;
    if (res) {
        if (!can_write(res, sizeof(struct __kernel_timespec)))
            return -EFAULT;
        *(struct __kernel_timespec *)res = (struct __kernel_timespec){ 0, 1 };  /* the TSC: 1 ns */
    }
    return 0;
}

long sys_sysinfo(const struct syscall_args *call)
{
    u64 info = call->arg[0];
    if (!can_write(info, sizeof(struct sysinfo)))
        return -EFAULT;
    struct sysinfo *si = (void *)info;
    memset(si, 0, sizeof(*si));
    si->uptime = tsc_ns() / 1000000000UL;
    si->totalram = frames_total_count() * PAGE_SIZE;
    si->freeram = frames_free_count() * PAGE_SIZE;
    si->procs = nr_threads;
    si->mem_unit = 1;
    return 0;
}

/* PR_SET_NAME names the calling thread, as on Linux: osv-tcb shows the new name. */
