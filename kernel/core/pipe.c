/*
 * Pipes: a ring buffer of PIPE_SIZE bytes between the fds of its two ends. Readers
 * block while it is empty and writers while it is full (sched_wait on the pipe);
 * every change wakes the pipe's sleepers and anyone in poll or select (pipe_events).
 *
 * Linux's rules, kept here: a read returns what is there (at most count), 0 once it is
 * empty and no writer is left; a write to a pipe without readers fails with EPIPE
 * and sends the writer SIGPIPE (which ends the app unless handled or ignored, as on
 * Linux); a write of up to PIPE_BUF
 * bytes is never interleaved with another; O_NONBLOCK turns each wait into EAGAIN.
 */
#include "lib.h"
#include "mm.h"
#include "pipe.h"
#include "signal.h"
#include "thread.h"
#include "vfs.h"
#include <asm/stat.h>
#include <asm-generic/ioctls.h>
#include <linux/fcntl.h>
#include <asm-generic/errno.h>
#include <asm-generic/poll.h>

struct pipe {
    u64 head, tail;                 /* bytes ever written and read: head - tail are buffered */
    int readers, writers;           /* fds open on each end */
    int busy;                       /* reads and writes in progress: the pipe outlives them */
    u8 buf[PIPE_SIZE];
};

struct spinlock pipe_lock = SPINLOCK_INIT;
static const char pipe_events;      /* the wait channel of poll and select */
static u64 pipe_changes;            /* how often pollers were woken: epoll's edges (EPOLLET) */

struct pipe *pipe_create(void)
{
    struct pipe *p = kzalloc(sizeof(*p));
    if (p)
        p->readers = p->writers = 1;
    return p;
}

static void wake_all(struct pipe *p)
{
    sched_wakeup(p);
    pipe_wake_pollers();
}

/* pipe_lock held; true if the caller must free p once it let go of the lock. */
static bool unused(const struct pipe *p)
{
    return p->readers == 0 && p->writers == 0 && p->busy == 0;
}

bool pipe_reopen(struct pipe *p, bool writer)
{
    spin_lock(&pipe_lock);
    bool alive = p->readers || p->writers;
    if (alive && writer)
        p->writers++;
    else if (alive)
        p->readers++;
    spin_unlock(&pipe_lock);
    return alive;
}

void pipe_close_end(struct pipe *p, bool writer)
{
    spin_lock(&pipe_lock);
    if (writer)
        p->writers--;
    else
        p->readers--;
    wake_all(p);                    /* a reader sees EOF, a writer EPIPE */
    bool free = unused(p);
    spin_unlock(&pipe_lock);
    if (free)
        kfree(p);
}

/* Ends a read or write begun with p->busy++. pipe_lock held; released. */
static long finish(struct pipe *p, long ret)
{
    p->busy--;
    bool free = unused(p);
    spin_unlock(&pipe_lock);
    if (free)
        kfree(p);
    return ret;
}

/* Copies between the ring at position pos and app memory, in at most two pieces. */
static void ring_copy(struct pipe *p, u64 pos, u8 *app, u64 n, bool to_ring)
{
    while (n) {
        u64 at = pos % PIPE_SIZE, piece = MIN(n, PIPE_SIZE - at);
        if (to_ring)
            memcpy(p->buf + at, app, piece);
        else
            memcpy(app, p->buf + at, piece);
        pos += piece, app += piece, n -= piece;
    }
}

long pipe_read(struct pipe *p, u64 buf, u64 count, bool nonblock)
{
    if (count == 0)
        return 0;
    spin_lock(&pipe_lock);
    p->busy++;
    while (p->head == p->tail) {
        if (p->writers == 0)
            return finish(p, 0);
        if (nonblock)
            return finish(p, -EAGAIN);
        if (sched_wait(p, &pipe_lock, 0) == -ERESTARTSYS)
            return finish(p, -ERESTARTSYS);     /* a signal: EINTR, or read again (SA_RESTART) */
    }
    u64 n = MIN(count, p->head - p->tail);
    ring_copy(p, p->tail, (u8 *)buf, n, false);
    p->tail += n;
    wake_all(p);
    return finish(p, n);
}

long pipe_write(struct pipe *p, u64 buf, u64 count, bool nonblock)
{
    if (count == 0)
        return 0;
    spin_lock(&pipe_lock);
    p->busy++;
    u64 done = 0;
    while (done < count) {
        if (p->readers == 0) {
            if (!done)
                signal_raise(SIGPIPE);          /* delivered on this write's way out */
            return finish(p, done ? (long)done : -EPIPE);
        }
        u64 space = PIPE_SIZE - (p->head - p->tail);
        /* An atomic write waits for room for all of it; a longer one takes what there is. */
        bool must_wait = count <= PIPE_BUF ? space < count : space == 0;
        if (must_wait) {
            if (nonblock)
                return finish(p, done ? (long)done : -EAGAIN);
            if (sched_wait(p, &pipe_lock, 0) == -ERESTARTSYS)
                return finish(p, done ? (long)done : -ERESTARTSYS);
            continue;
        }
        u64 n = MIN(count - done, space);
        ring_copy(p, p->head, (u8 *)buf + done, n, true);
        p->head += n;
        done += n;
        wake_all(p);
    }
    return finish(p, done);
}

u64 pipe_buffered(struct pipe *p)
{
    spin_lock(&pipe_lock);
    u64 n = p->head - p->tail;
    spin_unlock(&pipe_lock);
    return n;
}

unsigned pipe_poll(const struct pipe *p, bool writer)
{
    u64 used = p->head - p->tail;
    if (writer)
        return (p->readers == 0 ? POLLERR : 0) |
               (PIPE_SIZE - used >= PIPE_BUF ? POLLOUT | POLLWRNORM : 0);
    return (used ? POLLIN | POLLRDNORM : 0) | (p->writers == 0 ? POLLHUP : 0);
}

long pipe_wait_any(u64 deadline_ns)
{
    return sched_wait(&pipe_events, &pipe_lock, deadline_ns);
}

void pipe_wake_pollers(void)
{
    __atomic_fetch_add(&pipe_changes, 1, __ATOMIC_RELEASE);
    sched_wakeup(&pipe_events);
}

u64 pipe_change_count(void)
{
    return __atomic_load_n(&pipe_changes, __ATOMIC_ACQUIRE);
}

/* ---- the ends as open files: pipe_file_ops ---- */

static long end_read(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return pipe_read(f->pipe, buf, count, nonblock);
}

static long end_write(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return pipe_write(f->pipe, buf, count, nonblock);
}

static unsigned end_poll(struct file *f)
{
    return pipe_poll(f->pipe, file_writable(f));
}

static long end_ioctl(struct file *f, u64 request, u64 arg)
{
    if (request != FIONREAD)
        return -ENOTTY;
    if (!user_range_ok(arg, sizeof(int), true))
        return -EFAULT;
    *(int *)arg = pipe_buffered(f->pipe);
    return 0;
}

/* A FIFO of pipefs, as Linux's: each pipe an inode number of its own. */
static void end_stat(struct file *f, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_mode = 0010600;          /* S_IFIFO | rw------- */
    st->st_dev = 0xe;               /* Linux's pipefs */
    st->st_ino = 1000 + ((u64)f->pipe >> 17 & 0xffff);
    st->st_nlink = 1;
    st->st_blksize = 4096;
}

static void end_release(struct file *f)
{
    pipe_close_end(f->pipe, file_writable(f));
}

const struct file_ops pipe_file_ops = {
    .kind = "pipe", .read = end_read, .write = end_write, .poll = end_poll,
    .ioctl = end_ioctl, .stat = end_stat, .release = end_release,
};

long pipe_files(u32 status, struct file *ends[2])
{
    struct pipe *p = pipe_create();
    if (!p)
        return -ENFILE;
    ends[0] = file_alloc(&pipe_file_ops, O_RDONLY | status);
    ends[1] = file_alloc(&pipe_file_ops, O_WRONLY | status);
    if (!ends[0] || !ends[1]) {
        kfree(ends[0]);
        kfree(ends[1]);
        kfree(p);
        return -ENFILE;
    }
    ends[0]->pipe = ends[1]->pipe = p;
    return 0;
}
