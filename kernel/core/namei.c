/*
 * Path names to inodes, as Linux walks them: from "/" or from dirfd (the working
 * directory for AT_FDCWD), one component at a time, each directory searched in turn;
 * "." and ".." as found (a symlink followed earlier is not walked back: ".." is the
 * real parent); a symlink in the middle always followed, in the last place only when
 * asked (LOOKUP_FOLLOW) or when a slash comes after it (not for LOOKUP_PARENT: unlink
 * and the like judge "link/" themselves); at most MAX_SYMLINKS of them. A trailing
 * slash asks for a directory.
 *
 * Also here: the working directory (chdir's and getcwd's), and copying a path in from
 * the app.
 */
#include "vfs.h"
#include "tmpfs.h"
#include "procfs.h"
#include "lib.h"
#include "mm.h"
#include <asm-generic/errno.h>
#include <linux/fcntl.h>

struct inode *cwd;

long user_path(u64 addr, char *buf)
{
    for (u64 i = 0; i < PATH_MAX; i++) {
        if ((i == 0 || (addr + i) % PAGE_SIZE == 0) && !user_range_ok(addr + i, 1, false))
            return -EFAULT;
        buf[i] = ((const char *)addr)[i];
        if (buf[i] == 0)
            return 0;
    }
    return -ENAMETOOLONG;
}

/* Where a walk starts: "/" for an absolute path, else dirfd's directory (or cwd). */
static long start_dir(int dirfd, const char *path, struct lookup *out, struct inode **dir)
{
    if (path[0] == '/' || dirfd == AT_FDCWD) {
        *dir = path[0] == '/' ? root_inode : cwd;
        return 0;
    }
    out->start = fd_get(dirfd);     /* files_lock inside fs_lock: the one order */
    if (!out->start)
        return -EBADF;
    *dir = out->start->inode;
    if (!*dir)
        return -ENOTDIR;            /* a pipe, a terminal... */
    return 0;
}

/* The walk's next stretch: the symlink's target, then what was left after it. */
static long splice_link(char *buf, const char *rest, const char *target, bool slash)
{
    char joined[PATH_MAX];
    u64 tlen = strlen(target), rlen = strlen(rest);
    if (tlen + 1 + rlen + 1 > PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(joined, target, tlen);
    u64 n = tlen;
    if (rlen || slash)
        joined[n++] = '/';
    memcpy(joined + n, rest, rlen + 1);
    memcpy(buf, joined, n + rlen + 1);
    return 0;
}

long path_lookup(int dirfd, const char *path, int flags, struct lookup *out)
{
    *out = (struct lookup){ .magic_fd = -1, .start = NULL };
    struct inode *dir;
    long err = start_dir(dirfd, path, out, &dir);
    if (err)
        return err;
    if (path[0] == 0) {
        if (!(flags & LOOKUP_EMPTY))
            return -ENOENT;
        out->inode = dir;           /* AT_EMPTY_PATH: dirfd's own file */
        return 0;
    }
    char buf[PATH_MAX];
    u64 len = strnlen(path, PATH_MAX);
    if (len == PATH_MAX)
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    const char *p = buf;
    int links = 0;
    for (;;) {
        if (*p == '/') {
            dir = root_inode;
            while (*p == '/')
                p++;
        }
        if (*p == 0) {              /* "/", or a symlink to it: the directory itself */
            out->dir = dir->dir.parent;
            out->inode = dir;
            strcpy(out->name, ".");
            return 0;
        }
        const char *name = p;
        while (*p && *p != '/')
            p++;
        if (p - name > NAME_MAX)
            return -ENAMETOOLONG;
        char component[NAME_MAX + 1];
        memcpy(component, name, p - name);
        component[p - name] = 0;
        bool slash = *p == '/';
        while (*p == '/')
            p++;
        bool last = *p == 0;
        if (!S_ISDIR(dir->mode))
            return -ENOTDIR;
        struct inode *next = strcmp(component, ".") == 0 ? dir
                           : strcmp(component, "..") == 0 ? dir->dir.parent
                           : dir == proc_fd_dir ? proc_fd_link(component)
                           : dir_lookup(dir, component);
        /* A parent lookup leaves a last symlink to its caller, trailing slash or not. */
        bool follow = next && S_ISLNK(next->mode) &&
                      (!last || (flags & LOOKUP_FOLLOW) || (slash && !(flags & LOOKUP_PARENT)));
        if (last && !follow && ((flags & LOOKUP_PARENT) || next)) {
            out->dir = dir;
            out->inode = next;
            strcpy(out->name, component);
            out->trailing_slash = slash;
            if (next && slash && !S_ISDIR(next->mode))
                return -ENOTDIR;
            return 0;
        }
        if (!next)
            return -ENOENT;
        int fd = proc_fd_number(next);
        if (follow && last && fd >= 0) {
            out->dir = dir;         /* /proc/self/fd/N, followed: fd N's file (procfs.c) */
            out->inode = next;
            out->magic_fd = fd;
            strcpy(out->name, component);
            return 0;
        }
        if (follow) {
            if (++links > MAX_SYMLINKS)
                return -ELOOP;
            err = splice_link(buf, p, next->target, slash && last);
            if (err)
                return err;
            p = buf;                /* from dir, or from "/" for an absolute target */
            continue;
        }
        dir = next;
    }
}

void lookup_release(struct lookup *l)
{
    if (l->start)
        file_put(l->start);
    l->start = NULL;
}

/* The name of child in dir (fs_lock held); NULL if it has none there (it was removed). */
static const char *name_in(const struct inode *dir, const struct inode *child)
{
    for (const struct dentry *d = dir->dir.entries; d; d = d->next)
        if (d->inode == child)
            return d->name;
    return NULL;
}

/*
 * getcwd's answer: the names from the root down to dir, built from the end of buf
 * backwards. -ENOENT for a directory that was removed, as Linux's getcwd says.
 */
long inode_path(struct inode *dir, char *buf, u64 size)
{
    char path[PATH_MAX];
    u64 start = PATH_MAX - 1;
    path[start] = 0;
    if (dir->nlink == 0)
        return -ENOENT;
    for (struct inode *d = dir; d != root_inode; d = d->dir.parent) {
        const char *name = name_in(d->dir.parent, d);
        if (!name)
            return -ENOENT;
        u64 len = strlen(name);
        if (len + 1 > start)
            return -ENAMETOOLONG;
        start -= len;
        memcpy(path + start, name, len);
        path[--start] = '/';
    }
    if (start == PATH_MAX - 1)
        path[--start] = '/';
    u64 n = PATH_MAX - start;       /* with the NUL */
    if (n > size)
        return -ERANGE;
    memcpy(buf, path + start, n);
    return n;
}
