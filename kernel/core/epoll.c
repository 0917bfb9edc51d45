/*
 * epoll: an fd (epoll_file_ops) holding an interest list of other fds, and epoll_wait,
 * which sleeps until some of them are ready. Go's runtime needs it for its timers: a
 * thread with nothing to run sleeps in epoll_pwait with the time to the next timer as
 * the timeout, and another thread that adds an earlier timer wakes it by writing a
 * byte into a pipe on the interest list (netpollBreak).
 *
 * Readiness is poll's (each file's file_ops poll: pipes, eventfds, the terminal), and so
 * is the waiting: epoll_wait is one more scan for wait_ready, under pipe_lock, which
 * also guards every interest list, so an epoll_ctl that makes a waiter's answer change
 * wakes it. An entry names its fd's file without a reference of its own: the entry
 * goes (epoll_forget_fd) before the fd lets go of the file.
 *
 * Linux's semantics and errnos, with these differences:
 * - an fd's entry goes when that fd is closed (Linux: when the last fd of its open
 *   file description is; here a dup is a description of its own);
 * - EPOLLET reports an fd that is ready when anything poll watches changed since its
 *   last report (Linux: when that fd itself had an event). An edge-triggered reader
 *   that reads until EAGAIN, as the man page says it must, sees every event it would
 *   on Linux, and a few spurious ones;
 * - an epoll fd cannot go inside another (EPERM, as for files that do not poll).
 */
#include "console.h"
#include "lib.h"
#include "mm.h"
#include "pipe.h"
#include "process.h"
#include "signal.h"
#include "syscalls.h"
#include "vfs.h"
#include <asm/stat.h>
#include <asm-generic/errno.h>
#include <asm-generic/poll.h>
#include <linux/eventpoll.h>
#include <linux/time_types.h>

#define NS_PER_SEC 1000000000UL
#define NS_PER_MS 1000000UL

struct epoll_entry {
    int fd;                         /* -1: a free slot */
    struct file *file;              /* what the fd named when it was added */
    u32 events;                     /* as the app gave them, EPOLLET and EPOLLONESHOT too */
    u64 data;                       /* returned with each event */
    u64 reported_at;                /* EPOLLET: pipe_change_count() when last reported */
    bool disarmed;                  /* EPOLLONESHOT: reported; quiet until EPOLL_CTL_MOD */
};

/* An fd appears at most once, so MAX_FDS entries always suffice. */
struct epoll {
    unsigned next;                  /* where the next scan starts: no fd starves another */
    struct epoll_entry entries[MAX_FDS];
};

/* The events an entry has now; 0 if it reports nothing. pipe_lock held. */
static u32 entry_events(const struct epoll_entry *e)
{
    if (e->fd < 0 || e->disarmed)
        return 0;
    u32 ready = file_poll(e->file) & (e->events | EPOLLERR | EPOLLHUP);
    if ((e->events & EPOLLET) && e->reported_at == pipe_change_count())
        return 0;
    return ready;
}

/* poll and select on an epoll fd: readable when epoll_wait would return at once. */
static unsigned epoll_poll(struct file *f)
{
    for (int i = 0; i < MAX_FDS; i++)
        if (entry_events(&f->epoll->entries[i]))
            return POLLIN | POLLRDNORM;
    return 0;
}

static void epoll_stat(struct file *f, struct stat *st)
{
    anon_inode_stat(st);
}

static void epoll_release(struct file *f)
{
    kfree(f->epoll);
}

static const struct file_ops epoll_file_ops = {
    .kind = "epoll", .no_position = true, .poll = epoll_poll, .stat = epoll_stat,
    .release = epoll_release,
};

static long do_epoll_create1(long flags)
{
    if (flags & ~EPOLL_CLOEXEC)
        return -EINVAL;
    struct epoll *ep = kzalloc(sizeof(*ep));
    struct file *f = ep ? file_alloc(&epoll_file_ops, O_RDWR) : NULL;
    if (!f) {
        kfree(ep);
        return -ENOMEM;
    }
    for (int i = 0; i < MAX_FDS; i++)
        ep->entries[i].fd = -1;
    f->epoll = ep;
    long fd = fd_install(f, 0, flags & EPOLL_CLOEXEC);
    if (fd < 0)
        file_put(f);
    return fd;
}

long sys_epoll_create1(const struct syscall_args *call)
{
    return do_epoll_create1(call->arg[0]);
}

/* epoll_create's size is only checked, as on Linux since 2.6.8. */
long sys_epoll_create(const struct syscall_args *call)
{
    return (int)call->arg[0] <= 0 ? -EINVAL : do_epoll_create1(0);
}

/* fd is being closed: it leaves every interest list. files_lock held. */
void epoll_forget_fd(int fd)
{
    spin_lock(&pipe_lock);
    for (int i = 0; i < MAX_FDS; i++) {
        struct file *f = process.fds[i].file;
        if (!f || f->ops != &epoll_file_ops)
            continue;
        struct epoll_entry *entries = f->epoll->entries;
        for (int j = 0; j < MAX_FDS; j++)
            if (entries[j].fd == fd)
                entries[j].fd = -1;
    }
    spin_unlock(&pipe_lock);
}

static struct epoll_entry *find_entry(struct epoll *ep, int fd)
{
    for (int i = 0; i < MAX_FDS; i++)
        if (ep->entries[i].fd == fd)
            return &ep->entries[i];
    return NULL;
}

/* The bits EPOLLEXCLUSIVE may come with (Linux's EPOLLEXCLUSIVE_OK_BITS). */
#define EXCLUSIVE_OK \
    (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)

/* epoll_ctl, in Linux's order of checks (do_epoll_ctl). files_lock held: fd cannot close. */
static long epoll_ctl(int epfd, int op, int fd, u64 event)
{
    bool has_event = op != EPOLL_CTL_DEL;
    struct epoll_event ev = { 0, 0 };
    if (has_event) {
        if (!user_range_ok(event, sizeof(ev), false))
            return -EFAULT;
        memcpy(&ev, (const void *)event, sizeof(ev));
    }
    bool fds_ok = epfd >= 0 && epfd < MAX_FDS && fd >= 0 && fd < MAX_FDS;
    struct file *epf = fds_ok ? process.fds[epfd].file : NULL;
    struct file *target = fds_ok ? process.fds[fd].file : NULL;
    if (!epf || !target)
        return -EBADF;
    bool is_epoll = epf->ops == &epoll_file_ops;
    if (target->ops == &epoll_file_ops && is_epoll && epfd != fd) {
        printk("osv: %s: epoll_ctl: an epoll fd inside another is not offered\n", process.path);
        return -EPERM;
    }
    if (!target->ops->poll)
        return -EPERM;              /* regular files and directories do not poll */
    ev.events &= ~EPOLLWAKEUP;      /* needs CAP_BLOCK_SUSPEND; there is no suspend */
    if (!is_epoll || epfd == fd)
        return -EINVAL;
    if (has_event && (ev.events & EPOLLEXCLUSIVE) &&
        (op == EPOLL_CTL_MOD || (ev.events & ~EXCLUSIVE_OK)))
        return -EINVAL;
    struct epoll *ep = epf->epoll;
    long ret = 0;
    spin_lock(&pipe_lock);
    struct epoll_entry *e = find_entry(ep, fd);
    switch (op) {
    case EPOLL_CTL_ADD:
        if (e) {
            ret = -EEXIST;
            break;
        }
        e = find_entry(ep, -1);     /* there is one: fds are unique and MAX_FDS at most */
        *e = (struct epoll_entry){ .fd = fd, .file = target, .events = ev.events, .data = ev.data,
                                   .reported_at = pipe_change_count() - 1 };
        break;
    case EPOLL_CTL_MOD:
        if (!e || (e->events & EPOLLEXCLUSIVE)) {
            ret = e ? -EINVAL : -ENOENT;
            break;
        }
        *e = (struct epoll_entry){ .fd = fd, .file = target, .events = ev.events, .data = ev.data,
                                   .reported_at = pipe_change_count() - 1 };
        break;
    case EPOLL_CTL_DEL:
        if (e)
            e->fd = -1;
        else
            ret = -ENOENT;
        break;
    default:
        ret = -EINVAL;
    }
    if (ret == 0)
        pipe_wake_pollers();        /* an fd added ready ends a wait now */
    spin_unlock(&pipe_lock);
    return ret;
}

long sys_epoll_ctl(const struct syscall_args *call)
{
    spin_lock(&process.files_lock);
    long ret = epoll_ctl(call->arg[0], call->arg[1], call->arg[2], call->arg[3]);
    spin_unlock(&process.files_lock);
    return ret;
}

/* ---- waiting ---- */

struct epoll_wait_args {
    struct epoll *ep;
    struct epoll_event *out;
    int max;
};

/* wait_ready's scan: the ready entries into the app's array, at most max. */
static long scan_epoll(void *arg)
{
    struct epoll_wait_args *w = arg;
    struct epoll *ep = w->ep;
    int n = 0;
    unsigned start = ep->next;
    for (int k = 0; k < MAX_FDS && n < w->max; k++) {
        unsigned i = (start + k) % MAX_FDS;
        struct epoll_entry *e = &ep->entries[i];
        u32 events = entry_events(e);
        if (!events)
            continue;
        if (!user_range_ok((u64)&w->out[n], sizeof(struct epoll_event), true))
            return n ? n : -EFAULT;     /* as Linux: the entry stays ready for the next wait */
        struct epoll_event ev = { events, e->data };
        memcpy(&w->out[n++], &ev, sizeof(ev));
        e->reported_at = pipe_change_count();
        if (e->events & EPOLLONESHOT)
            e->disarmed = true;
        ep->next = i + 1;
    }
    return n;
}

/* The largest maxevents Linux takes (EP_MAX_EVENTS). */
#define MAX_EVENTS (0x7fffffff / (int)sizeof(struct epoll_event))

/* epoll_wait's checks in Linux's order, then the wait until deadline (0: none). */
static long do_epoll_wait(long epfd, u64 events, long maxevents, u64 deadline)
{
    int max = (int)maxevents;
    if (max <= 0 || max > MAX_EVENTS)
        return -EINVAL;
    /* Linux's access_ok: in the app's half; each event is checked as it is written */
    u64 size = (u64)max * sizeof(struct epoll_event);
    if (events + size < events || events + size > USER_MAX)
        return -EFAULT;
    struct file *f = fd_get(epfd);     /* held while it waits */
    if (!f)
        return -EBADF;
    if (f->ops != &epoll_file_ops) {
        file_put(f);
        return -EINVAL;
    }
    struct epoll_wait_args w = { f->epoll, (struct epoll_event *)events, max };
    long n = wait_ready(scan_epoll, &w, deadline);     /* a signal: EINTR, never restarted */
    file_put(f);
    return n;
}

/* A timeout in milliseconds as a deadline: negative waits for good, 0 only looks. */
static u64 ms_deadline(long timeout_ms)
{
    int ms = (int)timeout_ms;
    return ms < 0 ? 0 : tsc_ns() + (u64)ms * NS_PER_MS;
}

long sys_epoll_wait(const struct syscall_args *call)
{
    return do_epoll_wait(call->arg[0], call->arg[1], call->arg[2], ms_deadline(call->arg[3]));
}

/* The signal mask holds while it waits, as ppoll's (signal_mask_for_call). */
static long masked_wait(long epfd, u64 events, long maxevents, u64 deadline, u64 sigmask,
                        u64 sigsetsize)
{
    long err = signal_mask_for_wait(sigmask, sigsetsize);
    if (err)
        return err;
    long n = do_epoll_wait(epfd, events, maxevents, deadline);
    if (sigmask)
        signal_mask_after_call(n);
    return n;
}

long sys_epoll_pwait(const struct syscall_args *call)
{
    const u64 *a = call->arg;
    return masked_wait(a[0], a[1], a[2], ms_deadline(a[3]), a[4], a[5]);
}

/* epoll_pwait2: the timeout is a struct timespec, NULL for none. */
long sys_epoll_pwait2(const struct syscall_args *call)
{
    const u64 *a = call->arg;
    long epfd = a[0], maxevents = a[2];
    u64 events = a[1], timeout = a[3], sigmask = a[4], sigsetsize = a[5];
    u64 deadline = 0;
    if (timeout) {
        if (!user_range_ok(timeout, sizeof(struct __kernel_timespec), false))
            return -EFAULT;
        const struct __kernel_timespec *ts = (const void *)timeout;
        if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= (long)NS_PER_SEC)
            return -EINVAL;
        deadline = MAX(tsc_ns() + ts->tv_sec * NS_PER_SEC + ts->tv_nsec, 1);
    }
    return masked_wait(epfd, events, maxevents, deadline, sigmask, sigsetsize);
}
