/*
 * The little of /proc there is: /proc/self/exe (the executable), /proc/self/mounts (and
 * /proc/mounts: the mount table e2fsck and df read) and /proc/self/fd/N, a symlink per
 * open fd naming what it is open on, as Linux's readlink says it: a path, "pipe:[N]",
 * "anon_inode:[eventpoll]". tmpfs.c makes the directories; namei.c asks here for the
 * names in /proc/self/fd. Following such a link follows its text, so a file's opens
 * (a new open file, its own offset) and a pipe's does not (Linux's reopens the pipe).
 * And /proc/interrupts: Linux's table of per-CPU interrupt counts, as of its open.
 */
#include "procfs.h"
#include "lib.h"
#include "pipe.h"
#include "process.h"
#include "tmpfs.h"
#include "vfs.h"
#include "mm.h"
#include <asm-generic/errno.h>
#include "tty.h"
#include "arch.h"
#include <asm/stat.h>

struct inode *proc_fd_dir;
struct inode *proc_interrupts;
static struct inode fd_links[MAX_FDS];
static char fd_targets[MAX_FDS][PATH_MAX];

/* A path of inode from dir down (depth first; fs_lock held): true, and buf holds it. */
static bool find_path(struct inode *dir, const struct inode *inode, char *buf, u64 len, int depth)
{
    if (depth > 64)
        return false;
    for (struct dentry *d = dir->dir.entries; d; d = d->next) {
        u64 n = strlen(d->name);
        if (len + 1 + n + 1 > PATH_MAX)
            continue;
        buf[len] = '/';
        memcpy(buf + len + 1, d->name, n + 1);
        if (d->inode == inode)
            return true;
        if (S_ISDIR(d->inode->mode) && d->inode->fs != FS_PROC &&
            find_path(d->inode, inode, buf, len + 1 + n, depth + 1))
            return true;
    }
    buf[len] = 0;
    return false;
}

/* What readlink("/proc/self/fd/N") says of f. */
static void describe(struct file *f, char *buf)
{
    struct stat st;
    if (f->inode && f->inode == root_inode)
        strcpy(buf, "/");
    else if (f->inode && (S_ISDIR(f->inode->mode) ? inode_path(f->inode, buf, PATH_MAX) > 0
                                                  : find_path(root_inode, f->inode, buf, 0, 0)))
        ;
    else if (f->inode)
        strcpy(buf, "/ (deleted)");
    else if (f->ops == &pipe_file_ops || (f->ops == &tty_file_ops && f->tty.host_pipe)) {
        f->ops->stat(f, &st);
        snprintf(buf, PATH_MAX, "pipe:[%lu]", st.st_ino);
    } else if (f->ops == &tty_file_ops)
        strcpy(buf, "/dev/console");
    else
        snprintf(buf, PATH_MAX, "anon_inode:[%s]", strcmp(f->ops->kind, "epoll") == 0 ? "eventpoll"
                                                                               : f->ops->kind);
}

struct inode *proc_fd_link(const char *name)
{
    int fd = 0;
    for (const char *c = name; *c; c++) {
        if (*c < '0' || *c > '9' || fd >= MAX_FDS)
            return NULL;
        fd = fd * 10 + (*c - '0');
    }
    if (!name[0] || (name[0] == '0' && name[1]) || fd >= MAX_FDS)
        return NULL;
    /* files_lock (inside fs_lock, the one order) keeps the file while it is looked at. */
    spin_lock(&process.files_lock);
    struct file *f = process.fds[fd].file;
    if (f)
        describe(f, fd_targets[fd]);
    spin_unlock(&process.files_lock);
    if (!f)
        return NULL;
    struct inode *link = &fd_links[fd];
    *link = (struct inode){ .ino = 0x100000 + fd, .mode = S_IFLNK | 0700, .nlink = 1,
                            .opens = 1, .fs = FS_PROC, .target = fd_targets[fd] };
    link->size = strlen(link->target);
    link->atime = link->mtime = link->ctime = fs_now();
    return link;
}

int proc_fd_number(const struct inode *inode)
{
    return inode >= fd_links && inode < fd_links + MAX_FDS ? inode - fd_links : -1;
}

/*
 * open("/proc/self/fd/N"), and so /dev/stdin, /dev/stdout, /dev/stderr: a new open file
 * on what fd N is open on, with the flags asked for (Linux's reopen): a file or
 * directory afresh (its own offset), the terminal for the same stream, a pipe's end.
 * fs_lock held; files_lock (inside it) keeps fd N's file while it is looked at.
 */
long proc_fd_reopen(int fd, unsigned flags, struct file **out)
{
    spin_lock(&process.files_lock);
    struct file *f = process.fds[fd].file;
    long err = 0;
    if (!f)
        err = -ENOENT;
    else if (f->inode && f->ops != &tty_file_ops)
        err = file_open(f->inode, flags, out);
    else if (f->ops == &tty_file_ops || f->ops == &pipe_file_ops) {
        *out = file_alloc(f->ops, flags);
        if (!*out)
            err = -ENOMEM;
        else if (f->ops == &tty_file_ops)
            (*out)->tty = f->tty;
        else if (!pipe_reopen(f->pipe, file_writable(*out)))
            err = -ENXIO;           /* its other end is closed */
        else
            (*out)->pipe = f->pipe;
        if (err && *out)
            kfree(*out);
    } else
        err = -ENXIO;               /* epoll, eventfd: Linux will not reopen them either */
    spin_unlock(&process.files_lock);
    return err;
}

/*
 * /proc/interrupts, written afresh at each open (file_open calls here, fs_lock held) and
 * read as a file until the next open: Linux writes it afresh at each read, but a
 * reader that reads it whole after its open sees the same. Linux's columns (a CPU
 * each) and rows: LOC, the local APIC timer; then this kernel's own, as Linux adds
 * rows of its own per architecture: APP, the interrupts (timer or not) that came in
 * while app code ran, which the kernel checked its TLS on (kernel/apps/spin.c spins
 * until it has seen enough of them); FST, of those, the ticks lazy's fast path took.
 */
void proc_interrupts_refresh(void)
{
    static char text[64 + MAX_CPUS * 3 * 12 + 3 * 64];
    u64 len = 0;
#define ADD(...) len += snprintf(text + len, sizeof(text) - len, __VA_ARGS__)
    ADD("%11s", "");
    for (unsigned i = 0; i < nr_cpus; i++)
        ADD("CPU%-8u", i);
    ADD("\n");
    static const char *const rows[][2] = {
        { "LOC", "Local timer interrupts" },
        { "APP", "Interrupts in app code" },
        { "FST", "Timer ticks on lazy's fast path" },
    };
    for (unsigned r = 0; r < ARRAY_SIZE(rows); r++) {
        ADD("%4s:", rows[r][0]);
        for (unsigned i = 0; i < nr_cpus; i++) {
            /* Another CPU counts on as this reads: each number is as of some instant. */
            u64 n = r == 0 ? cpus[i].timer_ticks : r == 1 ? cpus[i].app_interrupts : cpus[i].fast_ticks;
            ADD(" %10lu", n);
        }
        ADD("   %s\n", rows[r][1]);
    }
#undef ADD
    proc_interrupts->data.initial = (const u8 *)text;
    proc_interrupts->size = MIN(len, sizeof(text) - 1);
}

/* Read as any tmpfs file (the text refresh put in data.initial). */
static long interrupts_read(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return tmpfs_file_ops.read(f, buf, count, nonblock);
}

/* Linux's procfs answers a write to a file it has no write for with EIO (root may open it). */
static long interrupts_write(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return -EIO;
}

const struct file_ops proc_interrupts_ops = {
    .kind = "procfs", .read = interrupts_read, .write = interrupts_write,
};
