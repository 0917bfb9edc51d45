#ifndef TMPFS_H
#define TMPFS_H
/*
 * The one filesystem (tmpfs.c): a tree of inodes in memory, as Linux's tmpfs. The
 * initrd is unpacked into it at boot (initrd.c), and everything is writable; writes
 * live as long as the kernel. /dev and /proc are directories of the same tree that
 * stand for other mounts: rename and link never cross into or out of them (EXDEV).
 *
 * fs_lock guards the whole tree, every inode and its data: lookups, changes, and the
 * copies between the app and file data. One lock, as the kernel has few CPUs and the
 * app one process; copies may fault in the app's pages (demand paging), which takes
 * other locks only.
 */
#include "types.h"
#include "spinlock.h"

struct stat;

/* Which mount an inode is on: rename and link stay within one (EXDEV). */
enum fs_id { FS_TMPFS, FS_DEV, FS_PROC };

struct dentry {
    struct dentry *next;            /* the directory's entries, oldest first */
    struct inode *inode;
    u64 cookie;                     /* its place for getdents (d_off): never reused */
    char name[];
};

struct inode {
    u64 ino;
    u32 mode;                       /* S_IFMT type and permission bits */
    u32 uid, gid;
    u32 nlink;
    u32 opens;                      /* open files on it, and the working directory: an
                                       inode outlives its last name while any is left */
    u8 fs;                          /* enum fs_id */
    u32 rdev;                       /* device nodes: (major << 8) | minor */
    u64 size;
    u64 atime, mtime, ctime;        /* ns since the epoch */
    union {
        struct {                    /* S_IFREG */
            u8 **pages;             /* page i: bytes [i*4096, (i+1)*4096); NULL: a hole */
            u64 slots;              /* length of pages[] */
            const u8 *initial;      /* the initrd's bytes, read in place until a change */
        } data;
        struct {                    /* S_IFDIR */
            struct dentry *entries;
            struct inode *parent;   /* ".." (the root's is itself) */
            u64 next_cookie;        /* 0 and 1 are "." and ".." */
        } dir;
        char *target;               /* S_IFLNK */
    };
};

extern struct spinlock fs_lock;
extern struct inode *root_inode;
extern struct inode *dev_console;   /* what a terminal fd's fstat says it is (tty.c) */

#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFCHR 0020000
#define S_IFREG 0100000
#define S_IFLNK 0120000
#define S_IFIFO 0010000
#define S_ISDIR(m) (((m) & S_IFMT) == S_IFDIR)
#define S_ISREG(m) (((m) & S_IFMT) == S_IFREG)
#define S_ISLNK(m) (((m) & S_IFMT) == S_IFLNK)
#define S_ISCHR(m) (((m) & S_IFMT) == S_IFCHR)

/* Which of an inode's times a change sets to now. */
#define TOUCH_ATIME 1
#define TOUCH_MTIME 2
#define TOUCH_CTIME 4

/* All with fs_lock held. */
void tmpfs_init(void);
u64 fs_now(void);                   /* the wall clock, ns */
struct inode *dir_lookup(struct inode *dir, const char *name);
/* A new inode named name in dir (which has no such name): a file, directory or node. */
long tmpfs_create(struct inode *dir, const char *name, u32 mode, u32 rdev, struct inode **out);
long tmpfs_symlink(struct inode *dir, const char *name, const char *target, struct inode **out);
long tmpfs_link(struct inode *dir, const char *name, struct inode *inode);
void tmpfs_unlink(struct inode *dir, const char *name);     /* the name goes; maybe the inode */
long tmpfs_rename(struct inode *from, const char *old, struct inode *to, const char *new);
long tmpfs_exchange(struct inode *a_dir, const char *a, struct inode *b_dir, const char *b);
bool dir_empty(const struct inode *dir);
bool dir_contains(const struct inode *dir, const struct inode *inode);  /* is it dir or below */
long tmpfs_truncate(struct inode *inode, u64 size);
long tmpfs_read(struct inode *inode, u64 buf, u64 count, u64 offset);   /* to the app */
/* tmpfs_file.c: the open files of tmpfs's regular files and directories */
struct file_ops;
extern const struct file_ops tmpfs_file_ops, tmpfs_dir_ops;
long tmpfs_write(struct inode *inode, u64 buf, u64 count, u64 offset);  /* from the app */
long tmpfs_read_kernel(struct inode *inode, void *buf, u64 count, u64 offset);
const u8 *tmpfs_contiguous(struct inode *inode);   /* the bytes in one piece, or NULL */
long tmpfs_seek_data(struct inode *inode, u64 offset, bool hole);   /* SEEK_DATA, SEEK_HOLE */
void inode_touch(struct inode *inode, int which);
void inode_stat(const struct inode *inode, struct stat *st);
void inode_open(struct inode *inode);
void inode_close(struct inode *inode);     /* frees it if that was its last open and name */
void tmpfs_proc_self_exe(const char *path);  /* /proc/self/exe: a symlink to the executable */
#endif
