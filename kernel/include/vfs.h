#ifndef VFS_H
#define VFS_H
/*
 * Files, in xv6's layers:
 *   fd.c      the fd table: small numbers naming open files (process.fds)
 *   file.c    open files (Linux's open file descriptions: offset, status flags, shared
 *             by dup) and what every kind does, through its struct file_ops
 *   namei.c   path names to inodes: components, ".", "..", symlinks, the working directory
 *   tmpfs.c   the one filesystem: inodes, directories, file data in pages; the initrd
 *             unpacked into it at boot (initrd.c), writable, lost at exit unless exported
 * and the kinds of open file, each with its file_ops: tmpfs files and directories
 * (tmpfs.c), devices (devices.c: /dev/null and friends), the terminal (tty.c), pipes
 * (pipe.c), epoll (epoll.c) and eventfd (eventfd.c).
 */
#include "types.h"
#include "spinlock.h"

#define NAME_MAX 255                /* bytes in one path component */
#define PATH_MAX 4096               /* bytes in a path, its NUL included */
#define MAX_SYMLINKS 40             /* links one lookup follows (Linux's MAXSYMLINKS) */

struct file;
struct inode;
struct stat;

/*
 * What a kind of open file does. A NULL entry is what Linux says for files that lack
 * it: read/write fall back to pread/pwrite at the file's offset (seekable files), and
 * without those the call is EINVAL; pread/pwrite NULL means ESPIPE (not seekable);
 * poll NULL means always ready and not for epoll (EPERM), as regular files; ioctl NULL
 * is ENOTTY; getdents NULL is ENOTDIR.
 */
struct file_ops {
    const char *kind;               /* for the debugger (osv-files): "tmpfs", "pipe", ... */
    bool no_position;               /* lseek says 0 (Linux's noop_llseek): devices, epoll,
                                       eventfd; else a file without an inode is ESPIPE */
    bool checks_buffer;             /* read and write check the app's buffer themselves,
                                       where Linux does (eventfd: after its wait); else
                                       file.c does, and they take any kernel buffer too */
    /* `nonblock`: O_NONBLOCK, or a readv/writev's later iovec, which never waits */
    long (*read)(struct file *f, u64 buf, u64 count, bool nonblock);
    long (*write)(struct file *f, u64 buf, u64 count, bool nonblock);
    long (*pread)(struct file *f, u64 buf, u64 count, u64 offset);
    long (*pwrite)(struct file *f, u64 buf, u64 count, u64 offset);
    unsigned (*poll)(struct file *f);   /* poll's bits now; pipe_lock held */
    long (*ioctl)(struct file *f, u64 request, u64 arg);
    void (*stat)(struct file *f, struct stat *st);
    long (*getdents)(struct file *f, u64 buf, u64 count);
    void (*release)(struct file *f);    /* the last reference went */
};

/* An open file: what open, pipe, epoll_create or eventfd made; dup shares it (and its offset). */
struct file {
    const struct file_ops *ops;
    int refs;                       /* fds naming it, and calls using it right now */
    u32 flags;                      /* fcntl F_GETFL: the access mode, O_APPEND, O_NONBLOCK... */
    u64 offset;                     /* tmpfs files: the position; directories: getdents's cursor */
    struct inode *inode;            /* files with a name: tmpfs files, directories, devices */
    union {
        struct pipe *pipe;          /* a pipe's end (flags' access mode says which) */
        struct epoll *epoll;
        struct eventfd *eventfd;
        struct {
            u8 stream;              /* where writes go: 1 (stdout) or 2 (stderr) */
            bool host_pipe;         /* the host's end is a pipe or a file, not a terminal */
        } tty;
    };
};

static inline bool file_readable(const struct file *f) { return (f->flags & 3) != 1; }
static inline bool file_writable(const struct file *f) { return (f->flags & 3) != 0; }

/* ---- file.c ---- */
struct file *file_alloc(const struct file_ops *ops, u32 flags);    /* refs 1; NULL: no memory */
void file_get(struct file *f);
void file_put(struct file *f);
long file_read(struct file *f, u64 buf, u64 count, bool continuing);
long file_write(struct file *f, u64 buf, u64 count, bool continuing);
long file_pread(struct file *f, u64 buf, u64 count, long offset);
long file_pwrite(struct file *f, u64 buf, u64 count, long offset);
long file_lseek(struct file *f, long offset, int whence);
unsigned file_poll(struct file *f);
void file_stat(struct file *f, struct stat *st);
long file_open(struct inode *inode, u32 flags, struct file **out);  /* an inode's open file */

/* ---- devices.c ---- */
const struct file_ops *device_ops(u32 rdev);   /* a device node's kind; NULL: no such device */
void random_bytes(u8 *buf, u64 len);           /* /dev/urandom's, getrandom's */
void anon_inode_stat(struct stat *st);          /* eventfd.c: epoll's and eventfd's fstat */

/* ---- syspath.c: what fchmod, fchown, fchdir and fstatfs share with their path calls ---- */
long inode_chmod(struct inode *inode, u32 mode);        /* fs_lock held */
long inode_chown(struct inode *inode, u32 uid, u32 gid); /* fs_lock held */
long change_dir(struct inode *dir);
long inode_statfs(struct inode *inode, u64 buf);        /* inode NULL: a pipe's, the terminal's */

/* ---- fd.c: the fd table, process.fds, under process.files_lock ---- */
#define MAX_FDS 64
struct fd_entry {
    struct file *file;              /* NULL: the fd is free */
    bool cloexec;                   /* FD_CLOEXEC (nothing execs: kept for F_GETFD) */
};
struct file *fd_get(int fd);        /* the file with a reference the caller puts; NULL: EBADF */
long fd_install(struct file *f, int from, bool cloexec);  /* the lowest free fd >= from */
long fd_close(int fd);
long fd_dup(int oldfd, int newfd, bool cloexec);           /* newfd < 0: the lowest free */
long fd_cloexec(int fd, int set);                          /* set < 0: only read it */
void fd_init_terminal(void);        /* fds 0, 1 and 2: the terminal (tty.c) */

/* ---- namei.c ---- */
#define LOOKUP_FOLLOW 1             /* follow a symlink in the last component */
#define LOOKUP_PARENT 2             /* stop at the last component's directory */
#define LOOKUP_EMPTY 4              /* "" names dirfd itself (AT_EMPTY_PATH) */
struct lookup {
    struct inode *dir;              /* the directory the last name is in */
    struct inode *inode;            /* what the path names; NULL if the last name is not there */
    char name[NAME_MAX + 1];        /* the last component ("." for "/") */
    bool trailing_slash;            /* "name/": it must be a directory */
    int magic_fd;                   /* >= 0: the path ends at /proc/self/fd/N, followed:
                                       fd N's file itself (procfs.c), not a path */
    struct file *start;             /* dirfd's file, held until lookup_release */
};
/*
 * Walks path from dirfd (AT_FDCWD: the working directory), fs_lock held (so the inodes
 * found stay valid while the caller works on them). Errors as Linux's path walk:
 * ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG, EBADF for a bad dirfd; without LOOKUP_PARENT a
 * missing last name is ENOENT too. Whatever it returns, the caller lets go of fs_lock
 * and then calls lookup_release (dirfd's file may be put only then).
 */
long path_lookup(int dirfd, const char *path, int flags, struct lookup *out);
void lookup_release(struct lookup *l);
long user_path(u64 addr, char *buf);   /* the app's path into buf[PATH_MAX]: 0, -EFAULT, -ENAMETOOLONG */

/* "." and "..", which name a directory through itself or its parent. */
static inline bool dot_or_dotdot(const char *name)
{
    return name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0));
}
long inode_path(struct inode *dir, char *buf, u64 size);   /* getcwd's "/a/b"; fs_lock held */
extern struct inode *cwd;           /* the working directory (one per process: CLONE_FS) */
#endif
