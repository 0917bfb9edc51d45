/*
 * The system calls that make and remove names (syscalls.h): mknod and mkdir, rmdir and
 * unlink, rename and renameat2, link, symlink. Linux's checks in Linux's order (the
 * walk's errors first, namei.c), then tmpfs.c changes the tree; fs_lock is held from the
 * walk to the change, so no other call can slip in between.
 */
#include "syscalls.h"
#include "vfs.h"
#include "tmpfs.h"
#include "process.h"
#include "lib.h"
#include <asm-generic/errno.h>
#include <linux/fcntl.h>

/*
 * A new name: the walk to its directory, then Linux's checks for a name that must not
 * exist (EEXIST, even for a dangling symlink; ENOENT if the directory was removed). On
 * success fs_lock is held and l says where; the caller makes the inode, unlocks and
 * releases.
 */
static long new_name(int dirfd, const char *path, struct lookup *l)
{
    spin_lock(&fs_lock);
    long err = path_lookup(dirfd, path, LOOKUP_PARENT, l);
    if (!err && (l->inode || dot_or_dotdot(l->name)))
        err = -EEXIST;
    else if (!err && l->dir->nlink == 0)
        err = -ENOENT;
    return err;
}

static long do_mknodat(int dirfd, u64 path_addr, u32 mode, bool dir)
{
    char path[PATH_MAX];
    long err = user_path(path_addr, path);
    if (err)
        return err;
    u32 type = dir ? S_IFDIR : (mode & S_IFMT) ? mode & S_IFMT : S_IFREG;
    if (type != S_IFREG && type != S_IFDIR)
        return -EPERM;              /* no FIFOs, sockets or new devices */
    struct lookup l;
    err = new_name(dirfd, path, &l);
    if (!err && type == S_IFREG && l.trailing_slash)
        err = -ENOENT;
    struct inode *inode;
    if (!err)
        err = tmpfs_create(l.dir, l.name, type | (mode & (dir ? 07777 : 0777) & ~process.umask), 0, &inode);
    spin_unlock(&fs_lock);
    lookup_release(&l);
    return err;
}

long sys_mkdir(const struct syscall_args *call)
{
    return do_mknodat(AT_FDCWD, call->arg[0], call->arg[1], true);
}

long sys_mkdirat(const struct syscall_args *call)
{
    return do_mknodat(call->arg[0], call->arg[1], call->arg[2], true);
}

long sys_mknod(const struct syscall_args *call)
{
    return do_mknodat(AT_FDCWD, call->arg[0], call->arg[1], false);
}

long sys_mknodat(const struct syscall_args *call)
{
    return do_mknodat(call->arg[0], call->arg[1], call->arg[2], false);
}

/* unlink and rmdir: an existing name, of the kind each takes, goes. */
static long remove_name(int dirfd, u64 path_addr, bool dir)
{
    char path[PATH_MAX];
    long err = user_path(path_addr, path);
    if (err)
        return err;
    struct lookup l;
    spin_lock(&fs_lock);
    err = path_lookup(dirfd, path, LOOKUP_PARENT, &l);
    struct inode *inode = l.inode;
    if (err)
        ;
    else if (dir && strcmp(l.name, ".") == 0)
        err = inode == root_inode ? -EBUSY : -EINVAL;
    else if (dir && strcmp(l.name, "..") == 0)
        err = -ENOTEMPTY;
    else if (!dir && dot_or_dotdot(l.name))
        err = -EISDIR;
    else if (!inode)
        err = -ENOENT;
    else if (dir && !S_ISDIR(inode->mode))
        err = -ENOTDIR;
    else if (dir && !dir_empty(inode))
        err = -ENOTEMPTY;
    else if (!dir && S_ISDIR(inode->mode))
        err = -EISDIR;
    else if (!dir && l.trailing_slash)
        err = -ENOTDIR;
    else
        tmpfs_unlink(l.dir, l.name);
    spin_unlock(&fs_lock);
    lookup_release(&l);
    return err;
}

long sys_rmdir(const struct syscall_args *call)
{
    return remove_name(AT_FDCWD, call->arg[0], true);
}

long sys_unlink(const struct syscall_args *call)
{
    return remove_name(AT_FDCWD, call->arg[0], false);
}

long sys_unlinkat(const struct syscall_args *call)
{
    int flags = call->arg[2];
    if (flags & ~AT_REMOVEDIR)
        return -EINVAL;
    return remove_name(call->arg[0], call->arg[1], flags & AT_REMOVEDIR);
}

#define RENAME_NOREPLACE 1
#define RENAME_EXCHANGE 2
#define RENAME_WHITEOUT 4

/* rename's checks once both names are found, in Linux's order (do_renameat2, vfs_rename). */
static long rename_checks(const struct lookup *from, const struct lookup *to, unsigned flags)
{
    struct inode *old = from->inode, *new = to->inode;
    if (from->dir->fs != to->dir->fs)
        return -EXDEV;
    if (dot_or_dotdot(from->name) || from->inode == root_inode)
        return -EBUSY;
    if (dot_or_dotdot(to->name) || to->inode == root_inode)
        return flags & RENAME_NOREPLACE ? -EEXIST : -EBUSY;
    if (!old)
        return -ENOENT;
    if ((flags & RENAME_EXCHANGE) && !new)
        return -ENOENT;
    if ((flags & RENAME_NOREPLACE) && new)
        return -EEXIST;
    if (!S_ISDIR(old->mode) && (from->trailing_slash ||
                                (!(flags & RENAME_EXCHANGE) && to->trailing_slash)))
        return -ENOTDIR;
    if (S_ISDIR(old->mode) && dir_contains(old, to->dir))
        return -EINVAL;             /* a directory into itself */
    if (new && S_ISDIR(new->mode) && dir_contains(new, from->dir))
        return (flags & RENAME_EXCHANGE) ? -EINVAL : -ENOTEMPTY;
    if (old == new)
        return 0;
    if ((flags & RENAME_EXCHANGE) && (S_ISDIR(old->mode) != S_ISDIR(new->mode)))
        return 0;                   /* exchanging a file and a directory is allowed */
    if (new && !(flags & RENAME_EXCHANGE)) {
        if (S_ISDIR(old->mode) && !S_ISDIR(new->mode))
            return -ENOTDIR;
        if (!S_ISDIR(old->mode) && S_ISDIR(new->mode))
            return -EISDIR;
        if (S_ISDIR(new->mode) && !dir_empty(new))
            return -ENOTEMPTY;
    }
    return 0;
}

static long do_renameat2(int olddirfd, u64 oldpath, int newdirfd, u64 newpath, unsigned flags)
{
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT))
        return -EINVAL;
    if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
        return -EINVAL;
    if (flags & RENAME_WHITEOUT)
        return -EINVAL;             /* no overlay filesystems here */
    char old[PATH_MAX], new[PATH_MAX];
    long err = user_path(oldpath, old);
    if (!err)
        err = user_path(newpath, new);
    if (err)
        return err;
    struct lookup from, to = { .start = NULL };
    spin_lock(&fs_lock);
    err = path_lookup(olddirfd, old, LOOKUP_PARENT, &from);
    if (!err)
        err = path_lookup(newdirfd, new, LOOKUP_PARENT, &to);
    if (!err)
        err = rename_checks(&from, &to, flags);
    if (!err && flags & RENAME_EXCHANGE)
        err = from.inode == to.inode ? 0 : tmpfs_exchange(from.dir, from.name, to.dir, to.name);
    else if (!err)
        err = tmpfs_rename(from.dir, from.name, to.dir, to.name);
    spin_unlock(&fs_lock);
    lookup_release(&from);
    lookup_release(&to);
    return err;
}

long sys_rename(const struct syscall_args *call)
{
    return do_renameat2(AT_FDCWD, call->arg[0], AT_FDCWD, call->arg[1], 0);
}

long sys_renameat(const struct syscall_args *call)
{
    return do_renameat2(call->arg[0], call->arg[1], call->arg[2], call->arg[3], 0);
}

long sys_renameat2(const struct syscall_args *call)
{
    return do_renameat2(call->arg[0], call->arg[1], call->arg[2], call->arg[3], call->arg[4]);
}

static long do_linkat(int olddirfd, u64 oldpath, int newdirfd, u64 newpath, int flags)
{
    if (flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    char old[PATH_MAX], new[PATH_MAX];
    long err = user_path(oldpath, old);
    if (!err)
        err = user_path(newpath, new);
    if (err)
        return err;
    struct lookup from, to = { .start = NULL };
    spin_lock(&fs_lock);
    err = path_lookup(olddirfd, old, (flags & AT_SYMLINK_FOLLOW ? LOOKUP_FOLLOW : 0) |
                                     (flags & AT_EMPTY_PATH ? LOOKUP_EMPTY : 0), &from);
    if (!err)
        err = path_lookup(newdirfd, new, LOOKUP_PARENT, &to);
    if (!err && (to.inode || dot_or_dotdot(to.name)))
        err = -EEXIST;
    else if (!err && from.inode->fs != to.dir->fs)
        err = -EXDEV;
    else if (!err && S_ISDIR(from.inode->mode))
        err = -EPERM;
    else if (!err && (from.inode->nlink == 0 || to.dir->nlink == 0))
        err = -ENOENT;
    else if (!err)
        err = tmpfs_link(to.dir, to.name, from.inode);
    spin_unlock(&fs_lock);
    lookup_release(&from);
    lookup_release(&to);
    return err;
}

long sys_link(const struct syscall_args *call)
{
    return do_linkat(AT_FDCWD, call->arg[0], AT_FDCWD, call->arg[1], 0);
}

long sys_linkat(const struct syscall_args *call)
{
    return do_linkat(call->arg[0], call->arg[1], call->arg[2], call->arg[3], call->arg[4]);
}

static long do_symlinkat(u64 target_addr, int dirfd, u64 path_addr)
{
    char target[PATH_MAX], path[PATH_MAX];
    long err = user_path(target_addr, target);
    if (!err)
        err = user_path(path_addr, path);
    if (err)
        return err;
    if (target[0] == 0)
        return -ENOENT;
    struct lookup l;
    err = new_name(dirfd, path, &l);
    struct inode *inode;
    if (!err)
        err = tmpfs_symlink(l.dir, l.name, target, &inode);
    spin_unlock(&fs_lock);
    lookup_release(&l);
    return err;
}

long sys_symlink(const struct syscall_args *call)
{
    return do_symlinkat(call->arg[0], AT_FDCWD, call->arg[1]);
}

long sys_symlinkat(const struct syscall_args *call)
{
    return do_symlinkat(call->arg[0], call->arg[1], call->arg[2]);
}

