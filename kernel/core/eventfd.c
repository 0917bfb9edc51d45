/*
 * eventfd: an fd holding one 64-bit counter (FILE_EVENTFD). A write of 8 bytes adds to
 * it, a read of 8 bytes takes it whole and leaves 0 (EFD_SEMAPHORE: takes 1); a read
 * waits while it is 0, a write while the sum would pass 0xfffffffffffffffe, or with
 * O_NONBLOCK fails with EAGAIN. Go 1.21 and later wake their netpoller through one, as
 * Go 1.19 does through a pipe; libraries use it the same way.
 *
 * Like pipes it lives under pipe_lock and wakes pollers (poll, select, epoll) on every
 * change, so readiness is one more case of fd_ready: readable when the counter is not
 * 0, writable while 1 more fits.
 */
#include "lib.h"
#include "mm.h"
#include "pipe.h"
#include "process.h"
#include "signal.h"
#include "thread.h"
#include <asm-generic/errno.h>
#include <asm-generic/poll.h>
#include <linux/fcntl.h>

#define EFD_SEMAPHORE 1
#define EFD_CLOEXEC O_CLOEXEC
#define EFD_NONBLOCK O_NONBLOCK
#define COUNTER_MAX 0xfffffffffffffffeUL

struct eventfd {
    u64 count;
    int refs;                       /* fds naming it (dup) */
    int busy;                       /* reads and writes in progress: it outlives them */
    bool semaphore;
};

long sys_eventfd2(u64 initval, long flags)
{
    if (flags & ~(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK))
        return -EINVAL;
    long fd = lowest_free_fd(0);
    if (fd < 0)
        return fd;
    struct eventfd *e = kzalloc(sizeof(*e));
    if (!e)
        return -ENOMEM;
    *e = (struct eventfd){ .count = (u32)initval, .refs = 1, .semaphore = flags & EFD_SEMAPHORE };
    process.files[fd] = (struct file){ .kind = FILE_EVENTFD, .eventfd = e,
                                       .status_flags = O_RDWR | (flags & EFD_NONBLOCK),
                                       .cloexec = flags & EFD_CLOEXEC };
    return fd;
}

void eventfd_open(struct eventfd *e)
{
    spin_lock(&pipe_lock);
    e->refs++;
    spin_unlock(&pipe_lock);
}

void eventfd_close(struct eventfd *e)
{
    spin_lock(&pipe_lock);
    bool free = --e->refs == 0 && e->busy == 0;
    spin_unlock(&pipe_lock);
    if (free)
        kfree(e);
}

/* Ends a read or write begun with e->busy++. pipe_lock held; released. */
static long finish(struct eventfd *e, long ret)
{
    bool free = --e->busy == 0 && e->refs == 0;
    spin_unlock(&pipe_lock);
    if (free)
        kfree(e);
    return ret;
}

/* Linux's order: a buffer under 8 bytes is EINVAL before the wait, a bad one EFAULT after it. */
long eventfd_read(struct eventfd *e, u64 buf, u64 count, bool nonblock)
{
    if (count < 8)
        return -EINVAL;
    spin_lock(&pipe_lock);
    e->busy++;
    while (e->count == 0) {
        if (nonblock)
            return finish(e, -EAGAIN);
        if (sched_wait(e, &pipe_lock, 0) == -ERESTARTSYS)
            return finish(e, -ERESTARTSYS);
    }
    u64 value = e->semaphore ? 1 : e->count;
    e->count -= value;
    sched_wakeup(e);                /* writers waiting for room */
    pipe_wake_pollers();
    if (!user_range_ok(buf, 8, true))
        return finish(e, -EFAULT);  /* as Linux: the count is taken all the same */
    memcpy((void *)buf, &value, 8);
    return finish(e, 8);
}

long eventfd_write(struct eventfd *e, u64 buf, u64 count, bool nonblock)
{
    if (count < 8)
        return -EINVAL;
    if (!user_range_ok(buf, 8, false))
        return -EFAULT;
    u64 value;
    memcpy(&value, (const void *)buf, 8);
    if (value == ~0UL)
        return -EINVAL;
    spin_lock(&pipe_lock);
    e->busy++;
    while (COUNTER_MAX - e->count < value) {
        if (nonblock)
            return finish(e, -EAGAIN);
        if (sched_wait(e, &pipe_lock, 0) == -ERESTARTSYS)
            return finish(e, -ERESTARTSYS);
    }
    e->count += value;
    sched_wakeup(e);                /* readers waiting for a count */
    pipe_wake_pollers();
    return finish(e, 8);
}

/* Readiness as poll's bits. pipe_lock held. */
unsigned eventfd_poll(const struct eventfd *e)
{
    return (e->count ? POLLIN : 0) | (e->count < COUNTER_MAX ? POLLOUT : 0);     /* Linux's bits */
}
