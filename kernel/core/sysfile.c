/*
 * The system calls on fds (syscalls.h): transfers, positions, the fd table's calls,
 * pipes, and what is asked of an open file by its fd. Each takes its file from the fd
 * table with a reference (fd_get) and puts it when done, so a close on another thread
 * never pulls a file from under a call that uses it.
 */
#include "syscalls.h"
#include "vfs.h"
#include "tmpfs.h"
#include "pipe.h"
#include "process.h"
#include "lib.h"
#include "mm.h"
#include <asm/stat.h>
#include <asm-generic/errno.h>
#include <asm-generic/ioctls.h>
#include <linux/fcntl.h>
#include <linux/uio.h>
#include <linux/falloc.h>

/* ---- transfers ---- */

long sys_read(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long n = file_read(f, call->arg[1], call->arg[2], false);
    file_put(f);
    return n;
}

long sys_write(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long n = file_write(f, call->arg[1], call->arg[2], false);
    file_put(f);
    return n;
}

long sys_pread64(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return (long)call->arg[3] < 0 ? -EINVAL : -EBADF;
    long n = file_pread(f, call->arg[1], call->arg[2], call->arg[3]);
    file_put(f);
    return n;
}

long sys_pwrite64(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return (long)call->arg[3] < 0 ? -EINVAL : -EBADF;
    long n = file_pwrite(f, call->arg[1], call->arg[2], call->arg[3]);
    file_put(f);
    return n;
}

/*
 * The vector calls: each iovec in turn, as Linux does; a short transfer (the end of a
 * file, a pipe with no more for now) ends it. A later iovec never waits: what the
 * earlier ones moved is returned. offset < 0: at the file's position (readv, writev).
 */
enum transfer { READ, WRITE };

static long vector(long fd, u64 iov_addr, long iovcnt, long offset, enum transfer dir)
{
    if (iovcnt < 0 || iovcnt > 1024)
        return -EINVAL;
    if (!user_range_ok(iov_addr, iovcnt * sizeof(struct iovec), false))
        return -EFAULT;
    struct file *f = fd_get(fd);
    if (!f)
        return -EBADF;
    const struct iovec *iov = (const void *)iov_addr;
    long total = 0;
    for (long i = 0; i < iovcnt; i++) {
        u64 base = (u64)iov[i].iov_base, len = iov[i].iov_len;
        long n;
        if (offset < 0)
            n = dir == READ ? file_read(f, base, len, total > 0) : file_write(f, base, len, total > 0);
        else
            n = dir == READ ? file_pread(f, base, len, offset + total)
                            : file_pwrite(f, base, len, offset + total);
        if (n < 0) {
            total = total ? total : n;
            break;
        }
        total += n;
        if ((u64)n < len)
            break;
    }
    file_put(f);
    return total;
}

long sys_readv(const struct syscall_args *call)
{
    return vector(call->arg[0], call->arg[1], call->arg[2], -1, READ);
}

long sys_writev(const struct syscall_args *call)
{
    return vector(call->arg[0], call->arg[1], call->arg[2], -1, WRITE);
}

/* preadv and pwritev: a negative offset is EINVAL, before the fd is looked at. */
long sys_preadv(const struct syscall_args *call)
{
    long offset = call->arg[3];
    return offset < 0 ? -EINVAL : vector(call->arg[0], call->arg[1], call->arg[2], offset, READ);
}

long sys_pwritev(const struct syscall_args *call)
{
    long offset = call->arg[3];
    return offset < 0 ? -EINVAL : vector(call->arg[0], call->arg[1], call->arg[2], offset, WRITE);
}

long sys_lseek(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long pos = file_lseek(f, call->arg[1], (int)call->arg[2]);
    file_put(f);
    return pos;
}

/*
 * sendfile: from a file that can be read at an offset (a tmpfs file) to any file open
 * for writing, at *offset (which then moves) or else at the input's own offset, up to
 * `count` bytes, through a kernel buffer (the output's write takes one: vfs.h). Linux's
 * order of checks; an eventfd or epoll fd takes no splice (EINVAL).
 */
static long send_file(struct file *in, struct file *out, u64 offset_addr, u64 count)
{
    if (!file_readable(in))
        return -EBADF;
    if (offset_addr && !in->ops->pread)
        return -ESPIPE;
    if (!file_writable(out))
        return -EBADF;
    if (!in->inode || !S_ISREG(in->inode->mode) || !out->ops->write || out->ops->checks_buffer)
        return -EINVAL;
    long pos;
    if (offset_addr) {
        if (!user_range_ok(offset_addr, sizeof(long), true))
            return -EFAULT;
        pos = *(long *)offset_addr;
        if (pos < 0)
            return -EINVAL;
    } else
        pos = in->offset;
    u8 bounce[PAGE_SIZE];
    long done = 0;
    while ((u64)done < count) {
        spin_lock(&fs_lock);
        long n = tmpfs_read_kernel(in->inode, bounce, MIN(count - done, sizeof(bounce)), pos + done);
        spin_unlock(&fs_lock);
        if (n <= 0)
            break;
        long w = out->ops->write(out, (u64)bounce, n, done > 0);
        if (w < 0) {
            done = done ? done : w;
            break;
        }
        done += w;
        if (w < n)
            break;
    }
    if (done > 0 && offset_addr)
        *(long *)offset_addr = pos + done;
    else if (done > 0)
        in->offset = pos + done;
    return done;
}

long sys_sendfile(const struct syscall_args *call)
{
    struct file *out = fd_get(call->arg[0]), *in = fd_get(call->arg[1]);
    long ret = !in || !out ? -EBADF : send_file(in, out, call->arg[2], call->arg[3]);
    if (in)
        file_put(in);
    if (out)
        file_put(out);
    return ret;
}

/* ---- the fd table ---- */

long sys_close(const struct syscall_args *call)
{
    return fd_close(call->arg[0]);
}

long sys_dup(const struct syscall_args *call)
{
    return fd_dup(call->arg[0], -1, false);
}

long sys_dup2(const struct syscall_args *call)
{
    int oldfd = call->arg[0], newfd = call->arg[1];
    if (oldfd != newfd)
        return fd_dup(oldfd, newfd, false);
    struct file *f = fd_get(oldfd);     /* dup2(fd, fd): fd, if it is open */
    if (!f)
        return -EBADF;
    file_put(f);
    return newfd;
}

long sys_dup3(const struct syscall_args *call)
{
    int oldfd = call->arg[0], newfd = call->arg[1], flags = call->arg[2];
    if (oldfd == newfd || (flags & ~O_CLOEXEC))
        return -EINVAL;
    return newfd < 0 ? -EBADF : fd_dup(oldfd, newfd, flags & O_CLOEXEC);
}

/* The flags F_SETFL may change, as on Linux; the access mode and the rest stay. */
#define SETFL_MASK (O_APPEND | O_NONBLOCK | FASYNC | O_DIRECT | O_NOATIME)

long sys_fcntl(const struct syscall_args *call)
{
    int fd = call->arg[0], cmd = call->arg[1];
    u64 arg = call->arg[2];
    struct file *f = fd_get(fd);
    if (!f)
        return -EBADF;
    long ret;
    switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        ret = (long)arg < 0 || (long)arg >= MAX_FDS ? -EINVAL
                                                    : fd_dup(fd, -(long)arg - 1, cmd == F_DUPFD_CLOEXEC);
        break;
    case F_GETFD: ret = fd_cloexec(fd, -1); break;
    case F_SETFD: ret = fd_cloexec(fd, arg & FD_CLOEXEC) < 0 ? -EBADF : 0; break;
    case F_GETFL: ret = f->flags; break;
    case F_SETFL:
        f->flags = (f->flags & ~SETFL_MASK) | (arg & SETFL_MASK);
        ret = 0;
        break;
    case F_GETPIPE_SZ: ret = f->ops == &pipe_file_ops ? PIPE_SIZE : -EBADF; break;
    /* Record locks: one process holds them all, as an unshared file's only owner would. */
    case F_GETLK:
        if (!user_range_ok(arg, sizeof(struct flock), true)) {
            ret = -EFAULT;
            break;
        }
        ((struct flock *)arg)->l_type = F_UNLCK;
        ret = 0;
        break;
    case F_SETLK:
    case F_SETLKW:
    case F_OFD_SETLK:
    case F_OFD_SETLKW:
        ret = 0;
        break;
    default: ret = -EINVAL;
    }
    file_put(f);
    return ret;
}

/* flock: the one process is every lock's only holder: it always gets it. */
long sys_flock(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    file_put(f);
    return 0;
}

long sys_ioctl(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = f->ops->ioctl ? f->ops->ioctl(f, call->arg[1], call->arg[2]) : -ENOTTY;
    file_put(f);
    return ret;
}

/* pipe and pipe2: fds[0] the read end, fds[1] the write end. */
static long do_pipe2(u64 fds, long flags)
{
    if (flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT))
        return -EINVAL;
    if (!user_range_ok(fds, 2 * sizeof(int), true))
        return -EFAULT;
    struct file *ends[2];
    long err = pipe_files(flags & (O_NONBLOCK | O_DIRECT), ends);
    if (err)
        return err;
    bool cloexec = flags & O_CLOEXEC;
    long rfd = fd_install(ends[0], 0, cloexec);
    long wfd = rfd < 0 ? rfd : fd_install(ends[1], 0, cloexec);
    if (wfd < 0) {
        if (rfd >= 0)
            fd_close(rfd);          /* which puts ends[0] */
        else
            file_put(ends[0]);
        file_put(ends[1]);
        return wfd;
    }
    ((int *)fds)[0] = rfd;
    ((int *)fds)[1] = wfd;
    return 0;
}

long sys_pipe(const struct syscall_args *call)
{
    return do_pipe2(call->arg[0], 0);
}

long sys_pipe2(const struct syscall_args *call)
{
    return do_pipe2(call->arg[0], call->arg[1]);
}

/* ---- what is asked of a file by its fd ---- */

long sys_fstat(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = 0;
    if (user_range_ok(call->arg[1], sizeof(struct stat), true))
        file_stat(f, (struct stat *)call->arg[1]);
    else
        ret = -EFAULT;
    file_put(f);
    return ret;
}

long sys_getdents64(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = f->ops->getdents ? f->ops->getdents(f, call->arg[1], call->arg[2]) : -ENOTDIR;
    file_put(f);
    return ret;
}

/*
 * fsync, fdatasync, syncfs: everything is in memory already, so done, for files with
 * a name; pipes, the terminal, epoll and eventfd fds take no sync (EINVAL, as Linux's).
 */
long sys_fsync(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = f->inode ? 0 : -EINVAL;
    file_put(f);
    return ret;
}

long sys_sync(const struct syscall_args *call)
{
    return 0;
}

long sys_ftruncate(const struct syscall_args *call)
{
    long length = call->arg[1];
    if (length < 0)
        return -EINVAL;
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = -EINVAL;             /* not a file, or not open for writing */
    if (f->inode && S_ISREG(f->inode->mode) && file_writable(f)) {
        spin_lock(&fs_lock);
        ret = tmpfs_truncate(f->inode, length);
        spin_unlock(&fs_lock);
    }
    file_put(f);
    return ret;
}

/*
 * fallocate: the plain mode (0) and FALLOC_FL_KEEP_SIZE make room, which memory always
 * has: the size grows for the first; PUNCH_HOLE and ZERO_RANGE zero the range.
 */
long sys_fallocate(const struct syscall_args *call)
{
    int mode = call->arg[1];
    long offset = call->arg[2], len = call->arg[3];
    if (offset < 0 || len <= 0)
        return -EINVAL;
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
        return -EOPNOTSUPP;
    if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
        return -EOPNOTSUPP;
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = 0;
    if (!file_writable(f))
        ret = -EBADF;
    else if (!f->inode || S_ISDIR(f->inode->mode))
        ret = f->inode ? -EISDIR : -ESPIPE;
    else if (!S_ISREG(f->inode->mode))
        ret = -ENODEV;
    else {
        spin_lock(&fs_lock);
        struct inode *inode = f->inode;
        u64 end = offset + len, size = inode->size;
        if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
            /* zeros written over the part of the range within the file */
            static const u8 zeros[PAGE_SIZE];
            for (u64 at = offset; at < MIN(end, size) && ret >= 0; at += PAGE_SIZE)
                ret = tmpfs_write(inode, (u64)zeros, MIN(PAGE_SIZE, MIN(end, size) - at), at);
            ret = ret < 0 ? ret : 0;
        }
        if (ret == 0 && end > size && !(mode & FALLOC_FL_KEEP_SIZE))
            ret = tmpfs_truncate(inode, end);
        spin_unlock(&fs_lock);
    }
    file_put(f);
    return ret;
}

long sys_fchmod(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = 0;
    if (f->inode) {
        spin_lock(&fs_lock);
        ret = inode_chmod(f->inode, call->arg[1]);
        spin_unlock(&fs_lock);
    }
    file_put(f);
    return ret;
}

long sys_fchown(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = 0;
    if (f->inode) {
        spin_lock(&fs_lock);
        ret = inode_chown(f->inode, call->arg[1], call->arg[2]);
        spin_unlock(&fs_lock);
    }
    file_put(f);
    return ret;
}

long sys_fchdir(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = f->inode && S_ISDIR(f->inode->mode) ? change_dir(f->inode) : -ENOTDIR;
    file_put(f);
    return ret;
}

long sys_fstatfs(const struct syscall_args *call)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = inode_statfs(f->inode, call->arg[1]);
    file_put(f);
    return ret;
}

/* fadvise64: advice about what memory already holds changes nothing; pipes have none. */
long sys_fadvise64(const struct syscall_args *call)
{
    int advice = call->arg[3];
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    long ret = !f->inode ? -ESPIPE : advice < 0 || advice > 5 ? -EINVAL : 0;
    file_put(f);
    return ret;
}
