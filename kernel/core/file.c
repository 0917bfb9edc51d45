/*
 * Open files: Linux's open file descriptions. Every kind (tmpfs.c's files and
 * directories, devices.c, tty.c, pipe.c, epoll.c, eventfd.c) fills a struct file_ops;
 * here are the calls every kind goes through, with what Linux says when a kind lacks
 * one (vfs.h), and the opening of an inode. A file lives while fds name it (dup shares
 * it, offset and status flags) or a call still uses it (fd_get's reference).
 */
#include "vfs.h"
#include "procfs.h"
#include "tmpfs.h"
#include "tty.h"
#include "lib.h"
#include "mm.h"
#include <asm/stat.h>
#include <asm-generic/errno.h>
#include <asm-generic/poll.h>
#include <linux/fcntl.h>

struct file *file_alloc(const struct file_ops *ops, u32 flags)
{
    struct file *f = kzalloc(sizeof(*f));
    if (f) {
        f->ops = ops;
        f->refs = 1;
        f->flags = flags;
    }
    return f;
}

void file_get(struct file *f)
{
    __atomic_fetch_add(&f->refs, 1, __ATOMIC_RELAXED);
}

void file_put(struct file *f)
{
    if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (f->ops->release)
        f->ops->release(f);
    if (f->inode) {
        spin_lock(&fs_lock);
        inode_close(f->inode);
        spin_unlock(&fs_lock);
    }
    kfree(f);
}

/* The app's buffer may be written (a read's) or read (a write's): EFAULT first, as Linux. */
static bool buffer_ok(const struct file *f, u64 buf, u64 count, bool app_writes)
{
    return f->ops->checks_buffer || user_range_ok(buf, count, app_writes);
}

long file_read(struct file *f, u64 buf, u64 count, bool continuing)
{
    if (!file_readable(f))
        return -EBADF;
    if (!f->ops->read)
        return -EINVAL;             /* an epoll fd */
    if (!buffer_ok(f, buf, count, true))
        return -EFAULT;
    return f->ops->read(f, buf, count, continuing || (f->flags & O_NONBLOCK));
}

long file_write(struct file *f, u64 buf, u64 count, bool continuing)
{
    if (!file_writable(f))
        return -EBADF;
    if (!f->ops->write)
        return -EINVAL;
    if (!buffer_ok(f, buf, count, false))
        return -EFAULT;
    return f->ops->write(f, buf, count, continuing || (f->flags & O_NONBLOCK));
}

/* pread64 and pwrite64, in Linux's order of checks: the offset, seekable, open for it. */
long file_pread(struct file *f, u64 buf, u64 count, long offset)
{
    if (offset < 0)
        return -EINVAL;
    if (!f->ops->pread)
        return -ESPIPE;
    if (!file_readable(f))
        return -EBADF;
    if (!buffer_ok(f, buf, count, true))
        return -EFAULT;
    return f->ops->pread(f, buf, count, offset);
}

long file_pwrite(struct file *f, u64 buf, u64 count, long offset)
{
    if (offset < 0)
        return -EINVAL;
    if (!f->ops->pwrite)
        return -ESPIPE;
    if (!file_writable(f))
        return -EBADF;
    if (!buffer_ok(f, buf, count, false))
        return -EFAULT;
    return f->ops->pwrite(f, buf, count, offset);
}

#define SEEK_SET 0
#define SEEK_CUR 1
#define SEEK_END 2
#define SEEK_DATA 3
#define SEEK_HOLE 4

/*
 * lseek: tmpfs files and directories move their offset (a directory's is getdents's
 * cursor: SEEK_SET and SEEK_CUR only, as tmpfs's); files without a position (pipes,
 * the terminal) are ESPIPE; devices, epoll and eventfd keep theirs at 0 (Linux's
 * noop_llseek). SEEK_DATA and SEEK_HOLE find a file's pages and holes (tmpfs.c).
 */
long file_lseek(struct file *f, long offset, int whence)
{
    if (f->ops->no_position)
        return 0;
    if (!f->inode || S_ISCHR(f->inode->mode))
        return -ESPIPE;
    spin_lock(&fs_lock);
    struct inode *inode = f->inode;
    bool dir = S_ISDIR(inode->mode);
    long base;
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = f->offset; break;
    case SEEK_END: base = dir ? -1 : (long)inode->size; break;
    case SEEK_DATA:
    case SEEK_HOLE:
        if (dir || offset < 0) {
            base = -1;
            break;
        }
        offset = tmpfs_seek_data(inode, offset, whence == SEEK_HOLE);
        if (offset < 0) {
            spin_unlock(&fs_lock);
            return offset;
        }
        base = 0;
        break;
    default: base = -1;
    }
    long ret = -EINVAL;
    if (base >= 0 && base + offset >= 0) {
        f->offset = base + offset;
        ret = f->offset;
    }
    spin_unlock(&fs_lock);
    return ret;
}

unsigned file_poll(struct file *f)
{
    return f->ops->poll ? f->ops->poll(f) : POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM;
}

void file_stat(struct file *f, struct stat *st)
{
    if (f->ops->stat) {
        f->ops->stat(f, st);
        return;
    }
    spin_lock(&fs_lock);
    inode_stat(f->inode, st);
    spin_unlock(&fs_lock);
}

/*
 * A new open file on inode (fs_lock held): the file's kind by the inode's type, a
 * device's by its number. The caller checked the access mode against the type. The app
 * has a controlling terminal, /dev/tty, when fd 0 is a terminal (--stdin=tty).
 */
#define TTY_DEVICE ((5 << 8) | 0)
long file_open(struct inode *inode, u32 flags, struct file **out)
{
    const struct file_ops *ops;
    if (inode == proc_interrupts) {
        ops = &proc_interrupts_ops;
        proc_interrupts_refresh();  /* its counts as of this open */
    } else if (S_ISREG(inode->mode))
        ops = &tmpfs_file_ops;
    else if (S_ISDIR(inode->mode))
        ops = &tmpfs_dir_ops;
    else if (S_ISCHR(inode->mode))
        ops = device_ops(inode->rdev);
    else
        return -ENXIO;              /* there are no FIFOs or sockets to open */
    if (!ops || (inode->rdev == TTY_DEVICE && tty_modes[0] != TTY_MODE_TTY))
        return -ENXIO;              /* /dev/tty without a controlling terminal, as Linux says */
    struct file *f = file_alloc(ops, flags);
    if (!f)
        return -ENOMEM;
    f->inode = inode;
    if (S_ISCHR(inode->mode) && ops == &tty_file_ops)
        f->tty.stream = 1;          /* /dev/tty and /dev/console: the terminal, its output stdout's */
    inode_open(inode);
    *out = f;
    return 0;
}
