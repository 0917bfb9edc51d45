/*
 * poll, ppoll, select and pselect6: which fds are ready, waiting (up to a timeout) until
 * one is. Each file says by its file_ops poll (file_poll): files and directories are
 * always ready, as regular files are on Linux; pipes as pipe_poll says, eventfds and
 * epoll fds by their counts and sets, the terminal for reading when tty_read would
 * return at once (input buffered, or end of file: tty_input_poll) and always for
 * writing. The files are taken from the fd table once, before the wait (a reference
 * each: one closed meanwhile is still polled, as on Linux). A waiter sleeps on pipe_lock
 * until any pipe (or eventfd, or epoll_ctl) changes (pipe_wait_any) and looks again.
 *
 * Terminal input wakes pollers from its interrupt, which cannot take pipe_lock (holders
 * run with interrupts on), so its wakeup can slip in between a waiter's look and its
 * sleep: with console input on, a waiter sleeps at most CONSOLE_RECHECK_NS at a time.
 */
#include "arch.h"
#include "mm.h"
#include "pipe.h"
#include "signal.h"
#include "process.h"
#include "syscalls.h"
#include "vfs.h"
#include "tty.h"
#include <asm-generic/errno.h>
#include <asm-generic/poll.h>
#include <linux/time_types.h>

#define NS_PER_SEC 1000000000UL
#define CONSOLE_RECHECK_NS 10000000UL    /* 10 ms */

/* Linux's select sets: what counts as readable, writable, exceptional. */
#define POLLIN_SET (POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR)
#define POLLOUT_SET (POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR)
#define POLLEX_SET POLLPRI

/* The files of fds[0..n) (NULL where fd < 0 or not open), each with a reference. */
static void take_files(const int *fds, u64 n, struct file **files)
{
    for (u64 i = 0; i < n; i++)
        files[i] = fds[i] < 0 ? NULL : fd_get(fds[i]);
}

static void put_files(struct file **files, u64 n)
{
    for (u64 i = 0; i < n; i++)
        if (files[i])
            file_put(files[i]);
}

/*
 * scan(arg) until it finds something ready (> 0) or fails (< 0), or the deadline passes
 * (0: no deadline; one already past: look once).
 */
long wait_ready(long (*scan)(void *), void *arg, u64 deadline)
{
    spin_lock(&pipe_lock);
    long n;
    while ((n = scan(arg)) == 0 && !(deadline && tsc_ns() >= deadline)) {
        u64 wake = deadline;
        if (tty_input_on()) {
            u64 recheck = tsc_ns() + CONSOLE_RECHECK_NS;
            wake = deadline ? MIN(deadline, recheck) : recheck;
        }
        if (pipe_wait_any(wake) == -ERESTARTSYS) {
            n = -EINTR;                 /* poll and select are never restarted (signal(7)) */
            break;
        }
    }
    spin_unlock(&pipe_lock);
    return n;
}

/* The deadline of a relative timeout; false if it is invalid. NULL: none (deadline 0). */
static bool timeout_deadline(u64 addr, bool timeval, u64 *deadline, long *err)
{
    *deadline = 0;
    if (!addr)
        return true;
    u64 size = timeval ? sizeof(struct __kernel_old_timeval) : sizeof(struct __kernel_timespec);
    if (!user_range_ok(addr, size, false)) {
        *err = -EFAULT;
        return false;
    }
    long sec = ((const long *)addr)[0], frac = ((const long *)addr)[1];
    long frac_max = timeval ? 1000000 : (long)NS_PER_SEC;
    if (sec < 0 || frac < 0 || frac >= frac_max) {
        *err = -EINVAL;
        return false;
    }
    *deadline = tsc_ns() + sec * NS_PER_SEC + frac * (timeval ? 1000 : 1);
    return true;
}

/* Linux writes the time left back into select's and ppoll's timeout. */
static void write_time_left(u64 addr, u64 deadline, bool timeval)
{
    if (!addr || !user_range_ok(addr, 16, true))
        return;
    u64 now = tsc_ns(), left = deadline > now ? deadline - now : 0;
    ((long *)addr)[0] = left / NS_PER_SEC;
    ((long *)addr)[1] = left % NS_PER_SEC / (timeval ? 1000 : 1);
}

/* ---- poll and ppoll ---- */

struct poll_args {
    struct pollfd *fds;
    u64 nfds;
    struct file *files[MAX_FDS];
};

static long scan_pollfds(void *arg)
{
    struct poll_args *p = arg;
    long ready = 0;
    for (u64 i = 0; i < p->nfds; i++) {
        struct pollfd *pfd = &p->fds[i];
        pfd->revents = 0;
        if (pfd->fd < 0)
            continue;               /* ignored, as poll(2) says */
        unsigned events = p->files[i] ? file_poll(p->files[i]) : POLLNVAL;
        pfd->revents = events & (pfd->events | POLLERR | POLLHUP | POLLNVAL);
        ready += pfd->revents != 0;
    }
    return ready;
}

static long do_poll(u64 fds, u64 nfds, u64 deadline)
{
    if (nfds > MAX_FDS)
        return -EINVAL;             /* more than RLIMIT_NOFILE, as Linux says */
    if (!user_range_ok(fds, nfds * sizeof(struct pollfd), true))
        return -EFAULT;
    struct poll_args p = { (struct pollfd *)fds, nfds, { NULL } };
    int numbers[MAX_FDS];
    for (u64 i = 0; i < nfds; i++)
        numbers[i] = p.fds[i].fd;
    take_files(numbers, nfds, p.files);
    long n = wait_ready(scan_pollfds, &p, deadline);
    put_files(p.files, nfds);
    return n;
}

long sys_poll(const struct syscall_args *call)
{
    int ms = (int)call->arg[2];
    return do_poll(call->arg[0], call->arg[1], ms < 0 ? 0 : tsc_ns() + (u64)ms * 1000000);
}

/* ppoll's signal mask holds while it waits (signal_mask_for_call). */
long sys_ppoll(const struct syscall_args *call)
{
    u64 fds = call->arg[0], nfds = call->arg[1], timeout = call->arg[2];
    u64 sigmask = call->arg[3], sigsetsize = call->arg[4];
    u64 deadline;
    long err;
    if (!timeout_deadline(timeout, false, &deadline, &err))
        return err;
    err = signal_mask_for_wait(sigmask, sigsetsize);
    if (err)
        return err;
    long n = do_poll(fds, nfds, deadline);
    if (sigmask)
        signal_mask_after_call(n);
    if (n >= 0)
        write_time_left(timeout, deadline, false);
    return n;
}

/* ---- select and pselect6: one u64 of each fd_set, as the table has MAX_FDS (64) fds ---- */

struct select_args {
    int nfds;
    u64 in[3];                      /* the read, write and except sets asked for */
    u64 out[3];                     /* those of them ready */
    struct file *files[MAX_FDS];    /* each fd asked about */
};

static long scan_fdsets(void *arg)
{
    static const unsigned wanted[3] = { POLLIN_SET, POLLOUT_SET, POLLEX_SET };
    struct select_args *s = arg;
    long ready = 0;
    for (int fd = 0; fd < s->nfds; fd++) {
        u64 bit = 1UL << fd;
        if (!((s->in[0] | s->in[1] | s->in[2]) & bit))
            continue;
        unsigned events = file_poll(s->files[fd]);
        for (int set = 0; set < 3; set++) {
            if ((s->in[set] & bit) && (events & wanted[set])) {
                s->out[set] |= bit;
                ready++;
            }
        }
    }
    return ready;
}

static long do_select(long nfds, u64 sets[3], u64 timeout, bool timeval)
{
    if ((int)nfds < 0)
        return -EINVAL;
    struct select_args s = { .nfds = MIN((int)nfds, MAX_FDS) };
    u64 mask = s.nfds == 64 ? ~0UL : (1UL << s.nfds) - 1;
    for (int set = 0; set < 3; set++) {
        if (!sets[set] || !s.nfds)
            continue;
        if (!user_range_ok(sets[set], 8, true))
            return -EFAULT;
        s.in[set] = *(u64 *)sets[set] & mask;
    }
    u64 deadline;
    long err;
    if (!timeout_deadline(timeout, timeval, &deadline, &err))
        return err;
    int numbers[MAX_FDS];
    u64 asked = s.in[0] | s.in[1] | s.in[2];
    for (int fd = 0; fd < s.nfds; fd++)
        numbers[fd] = asked >> fd & 1 ? fd : -1;
    take_files(numbers, s.nfds, s.files);
    long n = 0;
    for (int fd = 0; fd < s.nfds; fd++)
        if (numbers[fd] >= 0 && !s.files[fd])
            n = -EBADF;             /* an fd that is not open, before any wait */
    if (n == 0)
        n = wait_ready(scan_fdsets, &s, deadline);
    put_files(s.files, s.nfds);
    if (n < 0)
        return n;
    for (int set = 0; set < 3; set++)
        if (sets[set] && s.nfds)
            *(u64 *)sets[set] = s.out[set];
    write_time_left(timeout, deadline, timeval);
    return n;
}

long sys_select(const struct syscall_args *call)
{
    const u64 *a = call->arg;
    return do_select(a[0], (u64[3]){ a[1], a[2], a[3] }, a[4], true);
}

/* The sixth argument, { const sigset_t *ss; size_t ss_len; }, gives the mask for the wait. */
long sys_pselect6(const struct syscall_args *call)
{
    long nfds = call->arg[0];
    u64 readfds = call->arg[1], writefds = call->arg[2], exceptfds = call->arg[3];
    u64 timeout = call->arg[4], sig = call->arg[5];
    u64 mask = 0;
    bool masked = false;
    if (sig) {
        if (!user_range_ok(sig, 16, false))
            return -EFAULT;
        const u64 *arg = (const u64 *)sig;
        if (arg[0]) {
            if (arg[1] != 8)
                return -EINVAL;
            if (!user_range_ok(arg[0], 8, false))
                return -EFAULT;
            mask = *(const u64 *)arg[0];
            masked = true;
        }
    }
    if (masked)
        signal_mask_for_call(mask);
    long n = do_select(nfds, (u64[3]){ readfds, writefds, exceptfds }, timeout, false);
    if (masked)
        signal_mask_after_call(n);
    return n;
}
