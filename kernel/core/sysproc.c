/*
 * The process's surroundings (syscalls.h): its threads' TLS (the seed's arch_prctl) and
 * tids, who it runs as, its limits, randomness, its name, futexes, CPUs; and what this
 * kernel has not got: sockets (no network) and new processes (fork).
 */
#include "syscalls.h"
#include "arch.h"
#include "console.h"
#include "fastpath.h"
#include "lib.h"
#include "mm.h"
#include "process.h"
#include "signal.h"
#include "thread.h"
#include "timer.h"
#include "trap.h"
#include "vfs.h"
#include <asm/prctl.h>
#include <asm/unistd_64.h>
#include <asm-generic/errno.h>
#include <linux/futex.h>
#include <linux/prctl.h>
#include <linux/resource.h>
#include <linux/time.h>
#include <linux/time_types.h>
#include <linux/utsname.h>

static bool can_write(u64 addr, u64 len) { return user_range_ok(addr, len, true); }
static bool can_read(u64 addr, u64 len) { return user_range_ok(addr, len, false); }

/* ---- the thread's TLS: the seed's arch_prctl ---- */

/*
 * ARCH_SET_FS turns FS switching on for this thread: the first call drops the counter's
 * base of 1, so the exit path (counter back to 0) loads app_tcb into FS.
 */
long sys_arch_prctl(const struct syscall_args *call)
{
    long code = call->arg[0];
    u64 addr = call->arg[1];
    struct thread *t = current_thread;
    switch (code) {
    case ARCH_SET_FS:
        if (addr >= USER_MAX)
            return -EPERM;
        if (!t->fs_switching) {
            t->fs_switching = true;
            if (fs_protocol != FS_PROTOCOL_COMPARE)    /* compare has no counter */
                t->tcb->kernel_tcb_counter--;
        }
        t->tcb->app_tcb = addr;
        return 0;
    case ARCH_GET_FS:
        if (!can_write(addr, 8))
            return -EFAULT;
        *(u64 *)addr = t->tcb->app_tcb;
        return 0;
    default:
        return -EINVAL;             /* GS belongs to the kernel: ARCH_SET_GS/GET_GS too */
    }
}

long sys_set_tid_address(const struct syscall_args *call)
{
    current_thread->clear_child_tid = call->arg[0];
    return current_thread->tid;
}

/* The robust futex list is the app's to keep: only its head's size is checked. */
long sys_set_robust_list(const struct syscall_args *call)
{
    return call->arg[1] == 24 ? 0 : -EINVAL;
}

long sys_rseq(const struct syscall_args *call)
{
    return -ENOSYS;                 /* glibc then does without */
}

/* ---- identity, limits, randomness ---- */

long sys_uname(const struct syscall_args *call)
{
    u64 buf = call->arg[0];
    if (!can_write(buf, sizeof(struct new_utsname)))
        return -EFAULT;
    struct new_utsname *u = (void *)buf;
    memset(u, 0, sizeof(*u));
    strcpy(u->sysname, "Linux");
    strcpy(u->nodename, "osv");
    strcpy(u->release, "6.1.0-osvgdb");
    strcpy(u->version, "#1 SMP osvgdb");
    strcpy(u->machine, "x86_64");
    strcpy(u->domainname, "(none)");
    return 0;
}

static long do_prlimit64(long pid, long resource, u64 new_limit, u64 old_limit)
{
    if (pid != 0 && pid != process_pid())
        return -ESRCH;
    if (resource < 0 || resource >= RLIM_NLIMITS)
        return -EINVAL;
    if (new_limit && !can_read(new_limit, sizeof(struct rlimit64)))
        return -EFAULT;
    if (old_limit) {
        if (!can_write(old_limit, sizeof(struct rlimit64)))
            return -EFAULT;
        struct rlimit64 *r = (void *)old_limit;
        r->rlim_cur = r->rlim_max = RLIM64_INFINITY;
        if (resource == RLIMIT_STACK)
            r->rlim_cur = 8 << 20;
        if (resource == RLIMIT_NOFILE)
            r->rlim_cur = r->rlim_max = MAX_FDS;
    }
    return 0;
}

long sys_prlimit64(const struct syscall_args *call)
{
    return do_prlimit64(call->arg[0], call->arg[1], call->arg[2], call->arg[3]);
}

/* struct rlimit is struct rlimit64 on x86-64 */
long sys_getrlimit(const struct syscall_args *call)
{
    return do_prlimit64(0, call->arg[0], 0, call->arg[1]);
}

long sys_setrlimit(const struct syscall_args *call)
{
    return do_prlimit64(0, call->arg[0], call->arg[1], 0);
}

long sys_getrandom(const struct syscall_args *call)
{
    u64 buf = call->arg[0], len = call->arg[1];
    if (!can_write(buf, len))
        return -EFAULT;
    random_bytes((u8 *)buf, len);
    return len;
}


/* ---- threads, futexes and CPUs ---- */

static u64 timespec_ns(const struct __kernel_timespec *ts)
{
    return ts->tv_sec * 1000000000UL + ts->tv_nsec;
}

#define FUTEX_OP_MASK 0x7f          /* without FUTEX_PRIVATE_FLAG (128), FUTEX_CLOCK_REALTIME (256) */

long sys_futex(const struct syscall_args *call)
{
    u64 uaddr = call->arg[0], timeout = call->arg[3], uaddr2 = call->arg[4];
    long op = call->arg[1];
    u32 val = call->arg[2], val3 = call->arg[5];
    if ((uaddr & 3) || !can_read(uaddr, 4))
        return -EFAULT;
    int cmd = op & FUTEX_OP_MASK;
    u64 deadline = 0;
    if ((cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET) && timeout) {
        if (!can_read(timeout, sizeof(struct __kernel_timespec)))
            return -EFAULT;
        const struct __kernel_timespec *ts = (const void *)timeout;
        if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
            return -EINVAL;
        u64 ns = timespec_ns(ts);
        /* FUTEX_WAIT's timeout is relative; FUTEX_WAIT_BITSET's is absolute, on its clock. */
        if (cmd == FUTEX_WAIT)
            deadline = tsc_ns() + ns;
        else if (op & FUTEX_CLOCK_REALTIME)
            deadline = ns > wall_clock_offset_ns() ? ns - wall_clock_offset_ns() : 1;
        else
            deadline = MAX(ns, 1);
        if (deadline <= tsc_ns())
            return -ETIMEDOUT;
    }
    switch (cmd) {
    case FUTEX_WAIT:
        return futex_wait(uaddr, val, deadline, ~0u);
    case FUTEX_WAIT_BITSET:
        return futex_wait(uaddr, val, deadline, val3);
    case FUTEX_WAKE:
        return futex_wake(uaddr, val, ~0u);
    case FUTEX_WAKE_BITSET:
        return futex_wake(uaddr, val, val3);
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
        if ((uaddr2 & 3) || !can_read(uaddr2, 4))
            return -EFAULT;
        return futex_requeue(uaddr, val, (int)timeout, uaddr2, cmd == FUTEX_CMP_REQUEUE, val3);
    default:
        printk("osv: futex operation %ld is not supported\n", op);
        return -ENOSYS;
    }
}

long sys_sched_yield(const struct syscall_args *call)
{
    schedule();
    return 0;
}

long sys_sched_getaffinity(const struct syscall_args *call)
{
    u64 len = call->arg[1], mask = call->arg[2];
    if (len < 8 || (len & 7))
        return -EINVAL;
    if (!can_write(mask, len))
        return -EFAULT;
    memset((void *)mask, 0, len);
    *(u64 *)mask = nr_cpus == 64 ? ~0UL : (1UL << nr_cpus) - 1;
    return 8;                       /* bytes of the kernel's cpumask */
}

long sys_sched_setaffinity(const struct syscall_args *call)
{
    long pid = call->arg[0];
    u64 len = call->arg[1], mask = call->arg[2];
    if (len < 8)
        return -EINVAL;
    if (!can_read(mask, 8))
        return -EFAULT;
    u64 m = *(u64 *)mask & (nr_cpus == 64 ? ~0UL : (1UL << nr_cpus) - 1);
    if (!m)
        return -EINVAL;
    return sched_set_affinity(pid, m) ? 0 : -ESRCH;
}

long sys_getcpu(const struct syscall_args *call)
{
    u64 cpu = call->arg[0], node = call->arg[1];
    if ((cpu && !can_write(cpu, 4)) || (node && !can_write(node, 4)))
        return -EFAULT;
    if (cpu)
        *(u32 *)cpu = this_cpu()->id;
    if (node)
        *(u32 *)node = 0;
    return 0;
}



/* PR_SET_NAME names the calling thread, as on Linux: osv-tcb shows the new name. */
long sys_prctl(const struct syscall_args *call)
{
    long option = call->arg[0];
    u64 arg2 = call->arg[1];
    struct thread *t = current_thread;
    switch (option) {
    case PR_SET_NAME: {
        /* Up to 15 bytes, as Linux takes: a longer name is cut, not refused. */
        size_t n = 0;
        for (; n < THREAD_NAME_LEN - 1; n++) {
            if (!can_read(arg2 + n, 1))
                return -EFAULT;
            if (((const char *)arg2)[n] == 0)
                break;
        }
        const char *name = (const char *)arg2;
        memcpy(t->name, name, n);
        t->name[n] = 0;
        return 0;
    }
    case PR_GET_NAME:
        if (!can_write(arg2, THREAD_NAME_LEN))
            return -EFAULT;
        memcpy((void *)arg2, t->name, THREAD_NAME_LEN);
        return 0;
    default:
        return -EINVAL;
    }
}

/* ---- ids ---- */

long sys_getpid(const struct syscall_args *call)
{
    return process_pid();
}

long sys_getppid(const struct syscall_args *call)
{
    return 0;
}

long sys_gettid(const struct syscall_args *call)
{
    return current_thread->tid;
}

/* getuid, geteuid, getgid, getegid: root. */
long sys_getuid(const struct syscall_args *call)
{
    return 0;
}

long sys_getgroups(const struct syscall_args *call)
{
    return (int)call->arg[0] < 0 ? -EINVAL : 0;     /* no supplementary groups */
}

/* ---- what there is not ---- */

/* No network: socket() says the address family is not there; no fd is a socket. */
long sys_socket(const struct syscall_args *call)
{
    return -EAFNOSUPPORT;
}

long sys_not_a_socket(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    file_put(f);
    return -ENOTSOCK;
}

long sys_fork(const struct syscall_args *call)
{
    printk("osv: %s: %s: this kernel runs one process and does not fork\n", process.path,
           call->frame->rax == __NR_fork ? "fork" : "vfork");
    return -ENOSYS;
}

