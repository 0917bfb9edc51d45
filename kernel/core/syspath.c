/*
 * The system calls on path names (syscalls.h), but those that make or remove names
 * (sysname.c), with Linux's checks in Linux's order:
 * the walk's own errors first (namei.c: ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG), then
 * what the call needs of what it found (EEXIST, EISDIR, ENOTEMPTY, EXDEV, EBUSY,
 * EINVAL). The app is root: no permission is ever refused, but an executable needs an
 * execute bit (access's X_OK), as on Linux. New files take the mode asked for less the
 * umask.
 */
#include "syscalls.h"
#include "vfs.h"
#include "tmpfs.h"
#include "procfs.h"
#include "process.h"
#include "lib.h"
#include "mm.h"
#include <asm/stat.h>
#include <asm-generic/errno.h>
#include <asm-generic/statfs.h>
#include <linux/fcntl.h>
#include <linux/stat.h>
#include <linux/time_types.h>

/* utimensat's tv_nsec values that are no time (linux/stat.h keeps them from user space) */
#define UTIME_NOW ((1L << 30) - 1L)
#define UTIME_OMIT ((1L << 30) - 2L)


/* ---- open ---- */

/* The status flags an open file keeps (F_GETFL); O_LARGEFILE always, as on 64-bit Linux. */
#define KEPT_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | __O_SYNC | O_DIRECT | \
                    O_NOATIME | FASYNC | O_LARGEFILE)

/* What open wants of an inode it found (not one it made): Linux's do_open and may_open. */
static long open_checks(struct inode *inode, u32 flags)
{
    if (S_ISLNK(inode->mode))
        return -ELOOP;              /* O_NOFOLLOW met a symlink */
    if ((flags & O_DIRECTORY) && !S_ISDIR(inode->mode))
        return -ENOTDIR;
    if (S_ISDIR(inode->mode) && ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_CREAT))))
        return -EISDIR;
    return 0;
}

static long do_openat(int dirfd, u64 path_addr, u32 flags, u32 mode)
{
    char path[PATH_MAX];
    long err = user_path(path_addr, path);
    if (err)
        return err;
    if ((flags & O_TMPFILE) == O_TMPFILE)
        return -EOPNOTSUPP;         /* callers fall back to a named file */
    bool creat = flags & O_CREAT, excl = creat && (flags & O_EXCL);
    int lookup = (creat ? LOOKUP_PARENT : 0) | (flags & O_NOFOLLOW || excl ? 0 : LOOKUP_FOLLOW);
    struct lookup l;
    struct file *f = NULL;
    spin_lock(&fs_lock);
    err = path_lookup(dirfd, path, lookup, &l);
    struct inode *inode = l.inode;
    if (!err && l.magic_fd >= 0)
        err = excl ? -EEXIST : proc_fd_reopen(l.magic_fd, (flags & KEPT_FLAGS) | O_LARGEFILE, &f);
    else if (!err && creat && inode && excl)
        err = -EEXIST;
    else if (!err && creat && !inode) {
        if (l.trailing_slash)
            err = -EISDIR;
        else if (l.dir->nlink == 0)
            err = -ENOENT;          /* its directory was removed */
        else
            err = tmpfs_create(l.dir, l.name, S_IFREG | (mode & 07777 & ~process.umask), 0, &inode);
    } else if (!err)
        err = open_checks(inode, flags);
    if (!err && !f && S_ISREG(inode->mode) && (flags & O_TRUNC) && inode->size)
        err = tmpfs_truncate(inode, 0);
    if (!err && !f)
        err = file_open(inode, (flags & KEPT_FLAGS) | O_LARGEFILE, &f);
    spin_unlock(&fs_lock);
    lookup_release(&l);
    if (err)
        return err;
    long fd = fd_install(f, 0, flags & O_CLOEXEC);
    if (fd < 0)
        file_put(f);
    return fd;
}

long sys_open(const struct syscall_args *call)
{
    return do_openat(AT_FDCWD, call->arg[0], call->arg[1], call->arg[2]);
}

long sys_openat(const struct syscall_args *call)
{
    return do_openat(call->arg[0], call->arg[1], call->arg[2], call->arg[3]);
}

long sys_creat(const struct syscall_args *call)
{
    return do_openat(AT_FDCWD, call->arg[0], O_CREAT | O_WRONLY | O_TRUNC, call->arg[1]);
}

/* ---- stat ---- */

/*
 * What stat and statx report of path (from dirfd), or of dirfd itself for "" with
 * AT_EMPTY_PATH (any fd: a pipe's too).
 */
static long stat_path(int dirfd, u64 path_addr, int flags, struct stat *st)
{
    char path[PATH_MAX];
    long err = user_path(path_addr, path);
    if (err)
        return err;
    if (path[0] == 0 && (flags & AT_EMPTY_PATH) && dirfd != AT_FDCWD) {
        struct file *f = fd_get(dirfd);
        if (!f)
            return -EBADF;
        file_stat(f, st);
        file_put(f);
        return 0;
    }
    int lookup = (flags & AT_SYMLINK_NOFOLLOW ? 0 : LOOKUP_FOLLOW) |
                 (flags & AT_EMPTY_PATH ? LOOKUP_EMPTY : 0);
    struct lookup l;
    spin_lock(&fs_lock);
    err = path_lookup(dirfd, path, lookup, &l);
    if (!err && l.magic_fd < 0)
        inode_stat(l.inode, st);
    spin_unlock(&fs_lock);
    lookup_release(&l);
    if (!err && l.magic_fd >= 0) {  /* /dev/stdin and the like: what the fd is open on */
        struct file *f = fd_get(l.magic_fd);
        if (!f)
            return -ENOENT;
        file_stat(f, st);
        file_put(f);
    }
    return err;
}

static long do_fstatat(int dirfd, u64 path, u64 buf, int flags)
{
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT))
        return -EINVAL;
    struct stat st;
    long err = stat_path(dirfd, path, flags, &st);
    if (err)
        return err;
    if (!user_range_ok(buf, sizeof(st), true))
        return -EFAULT;
    memcpy((void *)buf, &st, sizeof(st));
    return 0;
}

long sys_stat(const struct syscall_args *call)
{
    return do_fstatat(AT_FDCWD, call->arg[0], call->arg[1], 0);
}

long sys_lstat(const struct syscall_args *call)
{
    return do_fstatat(AT_FDCWD, call->arg[0], call->arg[1], AT_SYMLINK_NOFOLLOW);
}

long sys_newfstatat(const struct syscall_args *call)
{
    return do_fstatat(call->arg[0], call->arg[1], call->arg[2], call->arg[3]);
}

/* statx: stat's fields in statx's form; every basic field is known, no birth time. */
long sys_statx(const struct syscall_args *call)
{
    int dirfd = call->arg[0], flags = call->arg[2];
    u64 buf = call->arg[4];
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE))
        return -EINVAL;
    struct stat st;
    long err = stat_path(dirfd, call->arg[1], flags, &st);
    if (err)
        return err;
    if (!user_range_ok(buf, sizeof(struct statx), true))
        return -EFAULT;
    struct statx *sx = (void *)buf;
    memset(sx, 0, sizeof(*sx));
    sx->stx_mask = STATX_BASIC_STATS;
    sx->stx_blksize = st.st_blksize;
    sx->stx_nlink = st.st_nlink;
    sx->stx_uid = st.st_uid;
    sx->stx_gid = st.st_gid;
    sx->stx_mode = st.st_mode;
    sx->stx_ino = st.st_ino;
    sx->stx_size = st.st_size;
    sx->stx_blocks = st.st_blocks;
    sx->stx_atime = (struct statx_timestamp){ st.st_atime, st.st_atime_nsec, 0 };
    sx->stx_mtime = (struct statx_timestamp){ st.st_mtime, st.st_mtime_nsec, 0 };
    sx->stx_ctime = (struct statx_timestamp){ st.st_ctime, st.st_ctime_nsec, 0 };
    sx->stx_rdev_major = st.st_rdev >> 8;
    sx->stx_rdev_minor = st.st_rdev & 0xff;
    sx->stx_dev_major = st.st_dev >> 8;
    sx->stx_dev_minor = st.st_dev & 0xff;
    return 0;
}

/*
 * access, faccessat, faccessat2: whether path may be read, written or run, by uid 0:
 * anything may be read and written, a file run only with an execute bit (a directory
 * searched always).
 */
#define ACCESS_X_OK 1
static long do_faccessat(int dirfd, u64 path_addr, int mode, int flags)
{
    if (mode & ~7)
        return -EINVAL;
    if (flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    struct stat st;
    long err = stat_path(dirfd, path_addr, flags, &st);
    if (err)
        return err;
    if ((mode & ACCESS_X_OK) && !S_ISDIR(st.st_mode) && !(st.st_mode & 0111))
        return -EACCES;
    return 0;
}

long sys_access(const struct syscall_args *call)
{
    return do_faccessat(AT_FDCWD, call->arg[0], call->arg[1], 0);
}

long sys_faccessat(const struct syscall_args *call)
{
    return do_faccessat(call->arg[0], call->arg[1], call->arg[2], 0);
}

long sys_faccessat2(const struct syscall_args *call)
{
    return do_faccessat(call->arg[0], call->arg[1], call->arg[2], call->arg[3]);
}

static long do_readlinkat(int dirfd, u64 path_addr, u64 buf, long size)
{
    char path[PATH_MAX];
    long err = user_path(path_addr, path);
    if (err)
        return err;
    if (size <= 0)
        return -EINVAL;
    char target[PATH_MAX];
    struct lookup l;
    spin_lock(&fs_lock);
    err = path_lookup(dirfd, path, LOOKUP_EMPTY, &l);
    if (!err && !S_ISLNK(l.inode->mode))
        err = -EINVAL;              /* there, but no symbolic link */
    if (!err)
        strcpy(target, l.inode->target);
    spin_unlock(&fs_lock);
    lookup_release(&l);
    if (err)
        return err;
    long n = MIN((long)strlen(target), size);     /* readlink does not NUL-terminate */
    if (!user_range_ok(buf, n, true))
        return -EFAULT;
    memcpy((void *)buf, target, n);
    return n;
}

long sys_readlink(const struct syscall_args *call)
{
    return do_readlinkat(AT_FDCWD, call->arg[0], call->arg[1], call->arg[2]);
}

long sys_readlinkat(const struct syscall_args *call)
{
    return do_readlinkat(call->arg[0], call->arg[1], call->arg[2], call->arg[3]);
}

/* ---- changing what a name has ---- */

/*
 * The inode path names (from dirfd; "" with LOOKUP_EMPTY names dirfd's own), for a
 * change under fs_lock: change(inode, arg) returns the call's result.
 */
static long on_inode(int dirfd, u64 path_addr, int lookup, long (*change)(struct inode *, const void *),
                     const void *arg)
{
    char path[PATH_MAX];
    long err = user_path(path_addr, path);
    if (err)
        return err;
    struct lookup l;
    spin_lock(&fs_lock);
    err = path_lookup(dirfd, path, lookup, &l);
    if (!err)
        err = change(l.inode, arg);
    spin_unlock(&fs_lock);
    lookup_release(&l);
    return err;
}

static long truncate_inode(struct inode *inode, const void *arg)
{
    if (S_ISDIR(inode->mode))
        return -EISDIR;
    if (!S_ISREG(inode->mode))
        return -EINVAL;
    return tmpfs_truncate(inode, *(const long *)arg);
}

long sys_truncate(const struct syscall_args *call)
{
    long length = call->arg[1];
    if (length < 0)
        return -EINVAL;
    return on_inode(AT_FDCWD, call->arg[0], LOOKUP_FOLLOW, truncate_inode, &length);
}

/* utimensat's two times: UTIME_NOW, UTIME_OMIT or a time, checked as Linux does. */
struct new_times {
    bool set[2];
    u64 ns[2];                      /* atime, mtime */
};

static long set_times(struct inode *inode, const void *arg)
{
    const struct new_times *t = arg;
    if (t->set[0])
        inode->atime = t->ns[0];
    if (t->set[1])
        inode->mtime = t->ns[1];
    inode_touch(inode, TOUCH_CTIME);
    return 0;
}

/* Times from timespecs (NULL: both now), UTIME_NOW and UTIME_OMIT honoured. */
static long read_times(u64 addr, struct new_times *t)
{
    u64 now = fs_now();
    *t = (struct new_times){ { true, true }, { now, now } };
    if (!addr)
        return 0;
    if (!user_range_ok(addr, 2 * sizeof(struct __kernel_timespec), false))
        return -EFAULT;
    const struct __kernel_timespec *ts = (const void *)addr;
    for (int i = 0; i < 2; i++) {
        if (ts[i].tv_nsec == UTIME_OMIT)
            t->set[i] = false;
        else if (ts[i].tv_nsec == UTIME_NOW)
            ;
        else if (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000L)
            return -EINVAL;
        else
            t->ns[i] = ts[i].tv_sec * 1000000000UL + ts[i].tv_nsec;
    }
    return 0;
}

/* utimensat, and futimens (glibc's: path NULL, times of dirfd itself). */
static long do_utimensat(int dirfd, u64 path, const struct new_times *t, int flags)
{
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    if (!t->set[0] && !t->set[1])
        return 0;                   /* nothing to change: Linux does not even look */
    int lookup = (flags & AT_SYMLINK_NOFOLLOW ? 0 : LOOKUP_FOLLOW) |
                 (flags & AT_EMPTY_PATH ? LOOKUP_EMPTY : 0);
    if (path)
        return on_inode(dirfd, path, lookup, set_times, t);
    if (dirfd == AT_FDCWD)
        return -EFAULT;
    struct file *f = fd_get(dirfd);
    if (!f)
        return -EBADF;
    long err = 0;
    if (f->inode) {
        spin_lock(&fs_lock);
        set_times(f->inode, t);
        spin_unlock(&fs_lock);
    }
    file_put(f);
    return err;
}

long sys_utimensat(const struct syscall_args *call)
{
    struct new_times t;
    long err = read_times(call->arg[2], &t);
    return err ? err : do_utimensat(call->arg[0], call->arg[1], &t, call->arg[3]);
}

/* utimes and futimesat: struct timeval times, microseconds; NULL for now. */
static long timeval_times(int dirfd, u64 path, u64 tv)
{
    struct new_times t;
    read_times(0, &t);
    if (tv) {
        if (!user_range_ok(tv, 4 * sizeof(long), false))
            return -EFAULT;
        const long *v = (const long *)tv;
        for (int i = 0; i < 2; i++) {
            if (v[2 * i + 1] < 0 || v[2 * i + 1] >= 1000000)
                return -EINVAL;
            t.ns[i] = v[2 * i] * 1000000000UL + v[2 * i + 1] * 1000;
        }
    }
    return do_utimensat(dirfd, path, &t, 0);
}

long sys_utimes(const struct syscall_args *call)
{
    return timeval_times(AT_FDCWD, call->arg[0], call->arg[1]);
}

long sys_futimesat(const struct syscall_args *call)
{
    return timeval_times(call->arg[0], call->arg[1], call->arg[2]);
}

/* utime: struct utimbuf, whole seconds. */
long sys_utime(const struct syscall_args *call)
{
    struct new_times t;
    read_times(0, &t);
    u64 buf = call->arg[1];
    if (buf) {
        if (!user_range_ok(buf, 2 * sizeof(long), false))
            return -EFAULT;
        t.ns[0] = ((const long *)buf)[0] * 1000000000UL;
        t.ns[1] = ((const long *)buf)[1] * 1000000000UL;
    }
    return do_utimensat(AT_FDCWD, call->arg[0], &t, 0);
}

long inode_chmod(struct inode *inode, u32 mode)
{
    inode->mode = (inode->mode & S_IFMT) | (mode & 07777);
    inode_touch(inode, TOUCH_CTIME);
    return 0;
}

static long chmod_inode(struct inode *inode, const void *arg)
{
    return S_ISLNK(inode->mode) ? -EOPNOTSUPP : inode_chmod(inode, *(const u32 *)arg);
}

long sys_chmod(const struct syscall_args *call)
{
    u32 mode = call->arg[1];
    return on_inode(AT_FDCWD, call->arg[0], LOOKUP_FOLLOW, chmod_inode, &mode);
}

long sys_fchmodat(const struct syscall_args *call)
{
    u32 mode = call->arg[2];
    return on_inode(call->arg[0], call->arg[1], LOOKUP_FOLLOW, chmod_inode, &mode);
}

/*
 * chown: -1 leaves an id as it is. As Linux (since 2.2.13, root included), a file that
 * is not a directory loses set-user-ID, and set-group-ID where group execute is set.
 */
long inode_chown(struct inode *inode, u32 uid, u32 gid)
{
    if (uid != (u32)-1)
        inode->uid = uid;
    if (gid != (u32)-1)
        inode->gid = gid;
    if (!S_ISDIR(inode->mode) && !S_ISLNK(inode->mode)) {
        inode->mode &= ~S_ISUID;
        if (inode->mode & S_IXGRP)
            inode->mode &= ~S_ISGID;
    }
    inode_touch(inode, TOUCH_CTIME);
    return 0;
}

static long chown_inode(struct inode *inode, const void *arg)
{
    const u32 *ids = arg;
    return inode_chown(inode, ids[0], ids[1]);
}

static long do_fchownat(int dirfd, u64 path, u32 uid, u32 gid, int flags)
{
    if (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    u32 ids[2] = { uid, gid };
    return on_inode(dirfd, path, (flags & AT_SYMLINK_NOFOLLOW ? 0 : LOOKUP_FOLLOW) |
                                 (flags & AT_EMPTY_PATH ? LOOKUP_EMPTY : 0), chown_inode, ids);
}

long sys_chown(const struct syscall_args *call)
{
    return do_fchownat(AT_FDCWD, call->arg[0], call->arg[1], call->arg[2], 0);
}

long sys_lchown(const struct syscall_args *call)
{
    return do_fchownat(AT_FDCWD, call->arg[0], call->arg[1], call->arg[2], AT_SYMLINK_NOFOLLOW);
}

long sys_fchownat(const struct syscall_args *call)
{
    return do_fchownat(call->arg[0], call->arg[1], call->arg[2], call->arg[3], call->arg[4]);
}

/* ---- the working directory, the umask, the filesystem ---- */

/* The working directory becomes dir (an open of its own keeps it). fs_lock held. */
static void set_cwd(struct inode *dir)
{
    inode_open(dir);
    struct inode *old = cwd;
    cwd = dir;
    inode_close(old);
}

long change_dir(struct inode *dir)
{
    spin_lock(&fs_lock);
    set_cwd(dir);
    spin_unlock(&fs_lock);
    return 0;
}

long sys_chdir(const struct syscall_args *call)
{
    char path[PATH_MAX];
    long err = user_path(call->arg[0], path);
    if (err)
        return err;
    struct lookup l;
    spin_lock(&fs_lock);
    err = path_lookup(AT_FDCWD, path, LOOKUP_FOLLOW, &l);
    if (!err && !S_ISDIR(l.inode->mode))
        err = -ENOTDIR;
    if (!err)
        set_cwd(l.inode);
    spin_unlock(&fs_lock);
    lookup_release(&l);
    return err;
}

long sys_getcwd(const struct syscall_args *call)
{
    u64 buf = call->arg[0], size = call->arg[1];
    char path[PATH_MAX];
    spin_lock(&fs_lock);
    long n = inode_path(cwd, path, MIN(size, (u64)PATH_MAX));
    spin_unlock(&fs_lock);
    if (n < 0)
        return n;
    if (!user_range_ok(buf, n, true))
        return -EFAULT;
    memcpy((void *)buf, path, n);
    return n;                       /* the kernel's getcwd counts the NUL */
}

long sys_umask(const struct syscall_args *call)
{
    u32 old = process.umask;
    process.umask = call->arg[0] & 0777;
    return old;
}

#define TMPFS_MAGIC 0x01021994
#define PROC_SUPER_MAGIC 0x9fa0

/* statfs of an inode's filesystem: tmpfs (/dev too, as devtmpfs is), or /proc's. */
long inode_statfs(struct inode *inode, u64 buf)
{
    if (!user_range_ok(buf, sizeof(struct statfs), true))
        return -EFAULT;
    struct statfs *sf = (void *)buf;
    memset(sf, 0, sizeof(*sf));
    bool proc = inode && inode->fs == FS_PROC;
    sf->f_type = proc ? PROC_SUPER_MAGIC : TMPFS_MAGIC;
    sf->f_bsize = sf->f_frsize = PAGE_SIZE;
    if (!proc) {
        sf->f_blocks = frames_total_count();
        sf->f_bfree = sf->f_bavail = frames_free_count();
        sf->f_files = frames_total_count();
        sf->f_ffree = frames_free_count();
    }
    sf->f_namelen = NAME_MAX;
    return 0;
}

static long statfs_inode(struct inode *inode, const void *arg)
{
    return inode_statfs(inode, *(const u64 *)arg);
}

long sys_statfs(const struct syscall_args *call)
{
    u64 buf = call->arg[1];
    return on_inode(AT_FDCWD, call->arg[0], LOOKUP_FOLLOW, statfs_inode, &buf);
}

/*
 * Extended attributes: tmpfs here keeps none (Linux's keeps security.* and trusted.*,
 * which need a security module or CAP_SYS_ADMIN's tools): a list is empty, a get is
 * ENODATA, a set EOPNOTSUPP, once the path (or fd) is found.
 */
static long no_xattr(struct inode *inode, const void *result)
{
    return *(const long *)result;
}

static long xattr_path(const struct syscall_args *call, long result, bool follow)
{
    return on_inode(AT_FDCWD, call->arg[0], follow ? LOOKUP_FOLLOW : 0, no_xattr, &result);
}

static long xattr_fd(const struct syscall_args *call, long result)
{
    struct file *f = fd_get(call->arg[0]);
    if (!f)
        return -EBADF;
    file_put(f);
    return result;
}

long sys_listxattr(const struct syscall_args *call) { return xattr_path(call, 0, true); }
long sys_llistxattr(const struct syscall_args *call) { return xattr_path(call, 0, false); }
long sys_flistxattr(const struct syscall_args *call) { return xattr_fd(call, 0); }
long sys_getxattr(const struct syscall_args *call) { return xattr_path(call, -ENODATA, true); }
long sys_lgetxattr(const struct syscall_args *call) { return xattr_path(call, -ENODATA, false); }
long sys_fgetxattr(const struct syscall_args *call) { return xattr_fd(call, -ENODATA); }
long sys_setxattr(const struct syscall_args *call) { return xattr_path(call, -EOPNOTSUPP, true); }
long sys_lsetxattr(const struct syscall_args *call) { return xattr_path(call, -EOPNOTSUPP, false); }
long sys_fsetxattr(const struct syscall_args *call) { return xattr_fd(call, -EOPNOTSUPP); }
