/*
 * eventfd: an fd holding one 64-bit counter (eventfd_file_ops). A write of 8 bytes adds to
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
#include "syscalls.h"
#include "vfs.h"
#include <asm/stat.h>
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
    bool semaphore;
};

static const struct file_ops eventfd_file_ops;

static long do_eventfd2(u64 initval, long flags)
{
    if (flags & ~(EFD_SEMAPHORE | EFD_CLOEXEC | EFD_NONBLOCK))
        return -EINVAL;
    struct eventfd *e = kzalloc(sizeof(*e));
    struct file *f = e ? file_alloc(&eventfd_file_ops, O_RDWR | (flags & EFD_NONBLOCK)) : NULL;
    if (!f) {
        kfree(e);
        return -ENOMEM;
    }
    *e = (struct eventfd){ .count = (u32)initval, .semaphore = flags & EFD_SEMAPHORE };
    f->eventfd = e;
    long fd = fd_install(f, 0, flags & EFD_CLOEXEC);
    if (fd < 0)
        file_put(f);
    return fd;
}

long sys_eventfd2(const struct syscall_args *call)
{
    return do_eventfd2(call->arg[0], call->arg[1]);
}

long sys_eventfd(const struct syscall_args *call)
{
    return do_eventfd2(call->arg[0], 0);
}

/*
 * Linux's order: a buffer under 8 bytes is EINVAL before the wait, a bad one EFAULT
 * after it (checks_buffer: file.c leaves the buffer to us). The file's reference
 * keeps the eventfd while a read or write waits.
 */
static long eventfd_read(struct file *f, u64 buf, u64 count, bool nonblock)
{
    struct eventfd *e = f->eventfd;
    if (count < 8)
        return -EINVAL;
    spin_lock(&pipe_lock);
    while (e->count == 0) {
        long err = nonblock ? -EAGAIN : sched_wait(e, &pipe_lock, 0);
        if (err) {
            spin_unlock(&pipe_lock);
            return err;             /* -ERESTARTSYS: a signal; EINTR or the read again */
        }
    }
    u64 value = e->semaphore ? 1 : e->count;
    e->count -= value;
    sched_wakeup(e);                /* writers waiting for room */
    pipe_wake_pollers();
    spin_unlock(&pipe_lock);
    if (!user_range_ok(buf, 8, true))
        return -EFAULT;             /* as Linux: the count is taken all the same */
    memcpy((void *)buf, &value, 8);
    return 8;
}

static long eventfd_write(struct file *f, u64 buf, u64 count, bool nonblock)
{
    struct eventfd *e = f->eventfd;
    if (count < 8)
        return -EINVAL;
    if (!user_range_ok(buf, 8, false))
        return -EFAULT;
    u64 value;
    memcpy(&value, (const void *)buf, 8);
    if (value == ~0UL)
        return -EINVAL;
    spin_lock(&pipe_lock);
    while (COUNTER_MAX - e->count < value) {
        long err = nonblock ? -EAGAIN : sched_wait(e, &pipe_lock, 0);
        if (err) {
            spin_unlock(&pipe_lock);
            return err;
        }
    }
    e->count += value;
    sched_wakeup(e);                /* readers waiting for a count */
    pipe_wake_pollers();
    spin_unlock(&pipe_lock);
    return 8;
}

/* Readiness as poll's bits. pipe_lock held. */
static unsigned eventfd_poll(struct file *f)
{
    const struct eventfd *e = f->eventfd;
    return (e->count ? POLLIN : 0) | (e->count < COUNTER_MAX ? POLLOUT : 0);     /* Linux's bits */
}

/* An anonymous inode: rw------- and no type, as Linux's anon_inodefs gives it. */
void anon_inode_stat(struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_mode = 0600;
    st->st_dev = 0xd;
    st->st_ino = 1;
    st->st_nlink = 1;
    st->st_blksize = 4096;
}

static void eventfd_stat(struct file *f, struct stat *st)
{
    anon_inode_stat(st);
}

static void eventfd_release(struct file *f)
{
    kfree(f->eventfd);
}

static const struct file_ops eventfd_file_ops = {
    .kind = "eventfd", .no_position = true, .checks_buffer = true,
    .read = eventfd_read, .write = eventfd_write, .poll = eventfd_poll,
    .stat = eventfd_stat, .release = eventfd_release,
};
