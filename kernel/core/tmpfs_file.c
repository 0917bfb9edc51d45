/*
 * Open tmpfs files and directories: their file_ops. A file reads and writes at its
 * offset (O_APPEND: at the end, each write, under fs_lock so appends never overlap),
 * and pread/pwrite elsewhere; a directory is read with getdents64, its offset the
 * cursor: 0 and 1 for "." and "..", then the cookie of the next entry to give, so
 * entries made or removed meanwhile never make it repeat or skip another.
 */
#include "vfs.h"
#include "tmpfs.h"
#include "lib.h"
#include "mm.h"
#include <asm/stat.h>
#include <asm-generic/errno.h>
#include <linux/fcntl.h>

static long file_read_at(struct file *f, u64 buf, u64 count, u64 offset, bool advance)
{
    spin_lock(&fs_lock);
    long n = tmpfs_read(f->inode, buf, count, advance ? f->offset : offset);
    if (advance && n > 0)
        f->offset += n;
    spin_unlock(&fs_lock);
    return n;
}

/* Linux's pwrite on an O_APPEND file appends too (pwrite(2), BUGS): so here. */
static long file_write_at(struct file *f, u64 buf, u64 count, u64 offset, bool advance)
{
    spin_lock(&fs_lock);
    if (f->flags & O_APPEND)
        offset = f->inode->size;
    else if (advance)
        offset = f->offset;
    long n = tmpfs_write(f->inode, buf, count, offset);
    if (advance && n > 0)
        f->offset = offset + n;
    spin_unlock(&fs_lock);
    return n;
}

static long tf_read(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return file_read_at(f, buf, count, 0, true);
}

static long tf_pread(struct file *f, u64 buf, u64 count, u64 offset)
{
    return file_read_at(f, buf, count, offset, false);
}

static long tf_write(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return file_write_at(f, buf, count, 0, true);
}

static long tf_pwrite(struct file *f, u64 buf, u64 count, u64 offset)
{
    return file_write_at(f, buf, count, offset, false);
}

const struct file_ops tmpfs_file_ops = {
    .kind = "tmpfs",
    .read = tf_read, .pread = tf_pread, .write = tf_write, .pwrite = tf_pwrite,
};

/* ---- directories ---- */

static long td_read(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return -EISDIR;
}

static long td_pread(struct file *f, u64 buf, u64 count, u64 offset)
{
    return -EISDIR;
}

struct dirent64 {
    u64 d_ino;
    s64 d_off;
    u16 d_reclen;
    u8 d_type;
    char d_name[];
};
#define DT_CHR 2
#define DT_DIR 4
#define DT_REG 8
#define DT_LNK 10

static u8 dirent_type(u32 mode)
{
    switch (mode & S_IFMT) {
    case S_IFDIR: return DT_DIR;
    case S_IFREG: return DT_REG;
    case S_IFLNK: return DT_LNK;
    case S_IFCHR: return DT_CHR;
    default: return 0;
    }
}

/* One record at buf + *used; false when it does not fit in count. */
static bool emit(u64 buf, u64 count, u64 *used, const char *name, u64 ino, u64 next, u8 type)
{
    u64 len = strlen(name);
    u64 reclen = ALIGN_UP(offsetof(struct dirent64, d_name) + len + 1, 8);
    if (*used + reclen > count)
        return false;
    struct dirent64 *d = (void *)(buf + *used);
    d->d_ino = ino;
    d->d_off = next;
    d->d_reclen = reclen;
    d->d_type = type;
    memcpy(d->d_name, name, len + 1);
    *used += reclen;
    return true;
}

static long td_getdents(struct file *f, u64 buf, u64 count)
{
    if (!user_range_ok(buf, count, true))
        return -EFAULT;
    spin_lock(&fs_lock);
    struct inode *dir = f->inode;
    u64 used = 0;
    bool full = false;
    if (f->offset == 0 && !(full = !emit(buf, count, &used, ".", dir->ino, 1, DT_DIR)))
        f->offset = 1;
    if (!full && f->offset == 1 &&
        !(full = !emit(buf, count, &used, "..", dir->dir.parent->ino, 2, DT_DIR)))
        f->offset = 2;
    for (struct dentry *d = dir->dir.entries; d && !full; d = d->next) {
        if (d->cookie < f->offset)
            continue;
        full = !emit(buf, count, &used, d->name, d->inode->ino, d->cookie + 1,
                     dirent_type(d->inode->mode));
        if (!full)
            f->offset = d->cookie + 1;
    }
    if (dir->atime <= dir->mtime)
        inode_touch(dir, TOUCH_ATIME);
    spin_unlock(&fs_lock);
    return full && used == 0 ? -EINVAL : (long)used;    /* EINVAL: not even one fits */
}

const struct file_ops tmpfs_dir_ops = {
    .kind = "tmpfs-dir",
    .read = td_read, .pread = td_pread, .getdents = td_getdents,
};
