/*
 * The filesystem: every file the app sees is an inode here (tmpfs.h). Directories are
 * lists of entries in the order they were made; file data lives in pages from the
 * frame allocator, one array of page pointers per file, holes reading as zeros. A file
 * from the initrd is read in place until its first change, which copies it into pages.
 *
 * The rules are Linux's tmpfs's: a directory's link count is 2 plus its
 * subdirectories; an inode goes when its last name and its last open file have; a
 * change sets mtime and ctime, a change of the inode alone (chmod, link) ctime; a read
 * sets atime as relatime does (when atime is not newer than mtime or ctime).
 *
 * Everything here runs with fs_lock held; the syscalls (syspath.c, sysfile.c) check
 * names and permissions (the app is root) and Linux's errnos before they call in.
 */
#include "tmpfs.h"
#include "lib.h"
#include "mm.h"
#include "timer.h"
#include "vfs.h"
#include "procfs.h"
#include "arch.h"
#include <asm/stat.h>
#include <asm-generic/errno.h>

struct spinlock fs_lock = SPINLOCK_INIT;
struct inode *root_inode;
static u64 next_ino = 2;            /* 2: the root, as on Linux's filesystems */

#define MAX_PAGES (1UL << 17)       /* pages[] fits in the heap's largest block: 512 MiB files */

/* st_dev of each mount, as Linux numbers anonymous filesystems (0, N) */
static const u32 fs_devices[] = { [FS_TMPFS] = 0x1a, [FS_DEV] = 0x05, [FS_PROC] = 0x16 };

u64 fs_now(void)
{
    return tsc_ns() + wall_clock_offset_ns();
}

void inode_touch(struct inode *inode, int which)
{
    u64 now = fs_now();
    if (which & TOUCH_ATIME)
        inode->atime = now;
    if (which & TOUCH_MTIME)
        inode->mtime = now;
    if (which & TOUCH_CTIME)
        inode->ctime = now;
}

static struct inode *inode_alloc(u32 mode, u8 fs)
{
    struct inode *inode = kzalloc(sizeof(*inode));
    if (!inode)
        return NULL;
    inode->ino = next_ino++;
    inode->mode = mode;
    inode->fs = fs;
    inode->nlink = S_ISDIR(mode) ? 2 : 1;
    if (S_ISDIR(mode))
        inode->dir.next_cookie = 2;
    inode_touch(inode, TOUCH_ATIME | TOUCH_MTIME | TOUCH_CTIME);
    return inode;
}

static void free_pages_from(struct inode *inode, u64 first)
{
    for (u64 i = first; i < inode->data.slots; i++) {
        if (inode->data.pages[i])
            frame_free(virt_to_phys(inode->data.pages[i]));
        inode->data.pages[i] = NULL;
    }
}

static void inode_free(struct inode *inode)
{
    if (S_ISREG(inode->mode)) {
        free_pages_from(inode, 0);
        kfree(inode->data.pages);
    } else if (S_ISLNK(inode->mode))
        kfree(inode->target);
    kfree(inode);
}

static void maybe_free(struct inode *inode)
{
    if (inode->nlink == 0 && inode->opens == 0)
        inode_free(inode);
}

void inode_open(struct inode *inode)
{
    inode->opens++;
}

void inode_close(struct inode *inode)
{
    inode->opens--;
    maybe_free(inode);
}

/* ---- directories ---- */

static struct dentry **find(struct inode *dir, const char *name)
{
    struct dentry **d = &dir->dir.entries;
    while (*d && strcmp((*d)->name, name) != 0)
        d = &(*d)->next;
    return d;
}

struct inode *dir_lookup(struct inode *dir, const char *name)
{
    struct dentry *d = *find(dir, name);
    return d ? d->inode : NULL;
}

bool dir_empty(const struct inode *dir)
{
    return dir->dir.entries == NULL;
}

bool dir_contains(const struct inode *dir, const struct inode *inode)
{
    for (;;) {
        if (inode == dir)
            return true;
        if (inode == root_inode)
            return false;
        inode = inode->dir.parent;
    }
}

/* A new entry at the end of dir's list; the caller counts the link. */
static long add_entry(struct inode *dir, const char *name, struct inode *inode)
{
    u64 len = strlen(name);
    struct dentry *d = kmalloc(sizeof(*d) + len + 1);
    if (!d)
        return -ENOSPC;             /* tmpfs's word for out of memory */
    memcpy(d->name, name, len + 1);
    d->inode = inode;
    d->cookie = dir->dir.next_cookie++;
    d->next = NULL;
    *find(dir, name) = d;           /* the end of the list: the name is not there */
    inode_touch(dir, TOUCH_MTIME | TOUCH_CTIME);
    return 0;
}

static struct inode *remove_entry(struct inode *dir, const char *name)
{
    struct dentry **link = find(dir, name), *d = *link;
    struct inode *inode = d->inode;
    *link = d->next;
    kfree(d);
    inode_touch(dir, TOUCH_MTIME | TOUCH_CTIME);
    return inode;
}

long tmpfs_create(struct inode *dir, const char *name, u32 mode, u32 rdev, struct inode **out)
{
    struct inode *inode = inode_alloc(mode, dir->fs);
    if (!inode)
        return -ENOSPC;
    inode->rdev = rdev;
    long err = add_entry(dir, name, inode);
    if (err) {
        inode_free(inode);
        return err;
    }
    if (S_ISDIR(mode)) {
        inode->dir.parent = dir;
        dir->nlink++;               /* the new directory's ".." */
    }
    *out = inode;
    return 0;
}

long tmpfs_symlink(struct inode *dir, const char *name, const char *target, struct inode **out)
{
    u64 len = strlen(target);
    char *copy = kmalloc(len + 1);
    if (!copy)
        return -ENOSPC;
    memcpy(copy, target, len + 1);
    long err = tmpfs_create(dir, name, S_IFLNK | 0777, 0, out);
    if (err) {
        kfree(copy);
        return err;
    }
    (*out)->target = copy;
    (*out)->size = len;
    return 0;
}

long tmpfs_link(struct inode *dir, const char *name, struct inode *inode)
{
    long err = add_entry(dir, name, inode);
    if (err)
        return err;
    inode->nlink++;
    inode_touch(inode, TOUCH_CTIME);
    return 0;
}

/* A name goes away from a directory: its inode loses a link (a directory both). */
static void drop_link(struct inode *dir, struct inode *inode)
{
    if (S_ISDIR(inode->mode)) {
        inode->nlink = 0;
        dir->nlink--;
    } else
        inode->nlink--;
    inode_touch(inode, TOUCH_CTIME);
    maybe_free(inode);
}

void tmpfs_unlink(struct inode *dir, const char *name)
{
    drop_link(dir, remove_entry(dir, name));
}

/* A directory moved from one parent to another takes its ".." along. */
static void reparent(struct inode *inode, struct inode *from, struct inode *to)
{
    if (!S_ISDIR(inode->mode) || from == to)
        return;
    from->nlink--;
    to->nlink++;
    inode->dir.parent = to;
}

/* The caller checked Linux's rules: what new names may be replaced by old's inode. */
long tmpfs_rename(struct inode *from, const char *old, struct inode *to, const char *new)
{
    struct inode *inode = dir_lookup(from, old);
    struct inode *replaced = dir_lookup(to, new);
    if (replaced == inode)
        return 0;                   /* two names of one file: nothing to do, as Linux */
    if (replaced)
        tmpfs_unlink(to, new);
    long err = add_entry(to, new, inode);
    if (err)
        return err;
    remove_entry(from, old);
    reparent(inode, from, to);
    inode_touch(inode, TOUCH_CTIME);
    return 0;
}

/* renameat2's RENAME_EXCHANGE: the two names swap inodes. */
long tmpfs_exchange(struct inode *a_dir, const char *a, struct inode *b_dir, const char *b)
{
    struct dentry *da = *find(a_dir, a), *db = *find(b_dir, b);
    struct inode *ia = da->inode, *ib = db->inode;
    da->inode = ib;
    db->inode = ia;
    reparent(ia, a_dir, b_dir);
    reparent(ib, b_dir, a_dir);
    inode_touch(a_dir, TOUCH_MTIME | TOUCH_CTIME);
    inode_touch(b_dir, TOUCH_MTIME | TOUCH_CTIME);
    inode_touch(ia, TOUCH_CTIME);
    inode_touch(ib, TOUCH_CTIME);
    return 0;
}

/* ---- file data ---- */

/* Room in pages[] for page index `last`; -EFBIG past MAX_PAGES, -ENOSPC without memory. */
static long grow_slots(struct inode *inode, u64 last)
{
    if (last < inode->data.slots)
        return 0;
    if (last >= MAX_PAGES)
        return -EFBIG;
    u64 slots = MAX(inode->data.slots * 2, 16);
    while (slots <= last)
        slots *= 2;
    slots = MIN(slots, MAX_PAGES);
    u8 **pages = kzalloc(slots * sizeof(*pages));
    if (!pages)
        return -ENOSPC;
    if (inode->data.pages)
        memcpy(pages, inode->data.pages, inode->data.slots * sizeof(*pages));
    kfree(inode->data.pages);
    inode->data.pages = pages;
    inode->data.slots = slots;
    return 0;
}

/* Page `index` of the file, made (zeroed) if it is a hole; NULL without memory. */
static u8 *page_for_write(struct inode *inode, u64 index)
{
    if (!inode->data.pages[index]) {
        u64 pa = frame_alloc();
        if (!pa)
            return NULL;
        inode->data.pages[index] = phys_to_virt(pa);
    }
    return inode->data.pages[index];
}

/* The initrd's bytes into pages of the file's own: its first change. */
static long make_private(struct inode *inode)
{
    const u8 *initial = inode->data.initial;
    if (!initial)
        return 0;
    if (inode->size) {
        long err = grow_slots(inode, (inode->size - 1) / PAGE_SIZE);
        if (err)
            return err;
    }
    for (u64 off = 0; off < inode->size; off += PAGE_SIZE) {
        u8 *page = page_for_write(inode, off / PAGE_SIZE);
        if (!page)
            return -ENOSPC;
        memcpy(page, initial + off, MIN(PAGE_SIZE, inode->size - off));
    }
    inode->data.initial = NULL;
    return 0;
}

/* Bytes [offset, offset + count) of the file (the caller keeps to its size) into dst. */
static void copy_out(struct inode *inode, u8 *dst, u64 count, u64 offset)
{
    if (inode->data.initial) {
        memcpy(dst, inode->data.initial + offset, count);
        return;
    }
    while (count) {
        u64 index = offset / PAGE_SIZE, in_page = offset % PAGE_SIZE;
        u64 n = MIN(count, PAGE_SIZE - in_page);
        u8 *page = index < inode->data.slots ? inode->data.pages[index] : NULL;
        if (page)
            memcpy(dst, page + in_page, n);
        else
            memset(dst, 0, n);
        dst += n, offset += n, count -= n;
    }
}

static void read_touch(struct inode *inode)
{
    if (inode->atime <= inode->mtime || inode->atime <= inode->ctime)
        inode_touch(inode, TOUCH_ATIME);
}

long tmpfs_read_kernel(struct inode *inode, void *buf, u64 count, u64 offset)
{
    if (offset >= inode->size)
        return 0;
    count = MIN(count, inode->size - offset);
    copy_out(inode, buf, count, offset);
    return count;
}

/* The caller checked that buf is the app's to write. */
long tmpfs_read(struct inode *inode, u64 buf, u64 count, u64 offset)
{
    long n = tmpfs_read_kernel(inode, (void *)buf, count, offset);
    read_touch(inode);
    return n;
}

/* The caller checked that buf is the app's to read. Short only when memory runs out. */
long tmpfs_write(struct inode *inode, u64 buf, u64 count, u64 offset)
{
    if (count == 0)
        return 0;
    if (offset + count < offset || (offset + count - 1) / PAGE_SIZE >= MAX_PAGES)
        return -EFBIG;
    long err = make_private(inode);
    if (!err)
        err = grow_slots(inode, (offset + count - 1) / PAGE_SIZE);
    if (err)
        return err;
    const u8 *src = (const u8 *)buf;
    u64 done = 0;
    while (done < count) {
        u64 pos = offset + done, in_page = pos % PAGE_SIZE;
        u64 n = MIN(count - done, PAGE_SIZE - in_page);
        u8 *page = page_for_write(inode, pos / PAGE_SIZE);
        if (!page)
            break;
        memcpy(page + in_page, src + done, n);
        done += n;
    }
    if (done == 0)
        return -ENOSPC;
    inode->size = MAX(inode->size, offset + done);
    inode_touch(inode, TOUCH_MTIME | TOUCH_CTIME);
    return done;
}

long tmpfs_truncate(struct inode *inode, u64 size)
{
    if (size && (size - 1) / PAGE_SIZE >= MAX_PAGES)
        return -EFBIG;
    long err = make_private(inode);
    if (err)
        return err;
    if (size < inode->size) {
        free_pages_from(inode, ALIGN_UP(size, PAGE_SIZE) / PAGE_SIZE);
        u64 index = size / PAGE_SIZE;
        if (size % PAGE_SIZE && index < inode->data.slots && inode->data.pages[index])
            memset(inode->data.pages[index] + size % PAGE_SIZE, 0, PAGE_SIZE - size % PAGE_SIZE);
    }
    inode->size = size;
    inode_touch(inode, TOUCH_MTIME | TOUCH_CTIME);
    return 0;
}

/* Whether byte offset lies in data (a page the file has) or in a hole. */
static bool in_data(const struct inode *inode, u64 offset)
{
    u64 index = offset / PAGE_SIZE;
    return inode->data.initial || (index < inode->data.slots && inode->data.pages[index]);
}

/*
 * lseek's SEEK_DATA and SEEK_HOLE, a page at a time as Linux's tmpfs: the first offset
 * from `offset` on in data (or in a hole; the end of the file counts as one).
 */
long tmpfs_seek_data(struct inode *inode, u64 offset, bool hole)
{
    if (offset >= inode->size)
        return -ENXIO;
    while (offset < inode->size && in_data(inode, offset) == hole)
        offset = ALIGN_DOWN(offset, PAGE_SIZE) + PAGE_SIZE;
    if (offset >= inode->size)
        return hole ? (long)inode->size : -ENXIO;
    return offset;
}

const u8 *tmpfs_contiguous(struct inode *inode)
{
    return S_ISREG(inode->mode) ? inode->data.initial : NULL;
}

/* 512-byte blocks the file holds, as st_blocks counts them. */
static u64 blocks(const struct inode *inode)
{
    if (!S_ISREG(inode->mode))
        return 0;
    if (inode->data.initial)
        return ALIGN_UP(inode->size, PAGE_SIZE) / 512;
    u64 pages = 0;
    for (u64 i = 0; i < inode->data.slots; i++)
        pages += inode->data.pages[i] != NULL;
    return pages * (PAGE_SIZE / 512);
}

/* A directory's size as tmpfs counts it: 20 bytes an entry, "." and ".." included. */
static u64 dir_size(const struct inode *dir)
{
    u64 entries = 2;
    for (const struct dentry *d = dir->dir.entries; d; d = d->next)
        entries++;
    return 20 * entries;
}

void inode_stat(const struct inode *inode, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_dev = fs_devices[inode->fs];
    st->st_ino = inode->ino;
    st->st_mode = inode->mode;
    st->st_nlink = inode->nlink;
    st->st_uid = inode->uid;
    st->st_gid = inode->gid;
    st->st_rdev = inode->rdev;
    st->st_size = S_ISDIR(inode->mode) ? dir_size(inode) : inode->size;
    st->st_blksize = PAGE_SIZE;
    st->st_blocks = blocks(inode);
    st->st_atime = inode->atime / 1000000000UL;
    st->st_atime_nsec = inode->atime % 1000000000UL;
    st->st_mtime = inode->mtime / 1000000000UL;
    st->st_mtime_nsec = inode->mtime % 1000000000UL;
    st->st_ctime = inode->ctime / 1000000000UL;
    st->st_ctime_nsec = inode->ctime % 1000000000UL;
}

/* ---- the tree at boot ---- */

static struct inode *make_dir(struct inode *parent, const char *name, u32 mode, u8 fs)
{
    struct inode *dir;
    if (tmpfs_create(parent, name, S_IFDIR | mode, 0, &dir))
        return NULL;
    dir->fs = fs;
    return dir;
}

struct inode *dev_console;

static struct inode *make_device(struct inode *dev, const char *name, u32 mode, u32 major,
                                 u32 minor)
{
    struct inode *node = NULL;
    tmpfs_create(dev, name, S_IFCHR | mode, (major << 8) | minor, &node);
    return node;
}

/*
 * "/", /tmp (sticky, writable by all), /dev with the devices devices.c opens (and
 * stdin, stdout, stderr and fd, Linux's symlinks into /proc/self/fd), and /proc/self,
 * which gets exe once the executable is known, mounts (the table e2fsck and df read:
 * "/", /dev and /proc; /proc/mounts names it too) and fd (procfs.c), and
 * /proc/interrupts (procfs.c writes it at each open). The initrd goes in after.
 */
void tmpfs_init(void)
{
    root_inode = inode_alloc(S_IFDIR | 0755, FS_TMPFS);
    root_inode->dir.parent = root_inode;
    root_inode->opens = 2;          /* the root never goes; and it is the working directory */
    cwd = root_inode;
    make_dir(root_inode, "tmp", 01777, FS_TMPFS);
    struct inode *dev = make_dir(root_inode, "dev", 0755, FS_DEV);
    make_device(dev, "null", 0666, 1, 3);
    make_device(dev, "zero", 0666, 1, 5);
    make_device(dev, "full", 0666, 1, 7);
    make_device(dev, "random", 0666, 1, 8);
    make_device(dev, "urandom", 0666, 1, 9);
    make_device(dev, "tty", 0666, 5, 0);
    dev_console = make_device(dev, "console", 0600, 5, 1);
    static const char *const std_links[][2] = {
        { "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
        { "stderr", "/proc/self/fd/2" }, { "fd", "/proc/self/fd" },
    };
    struct inode *link;
    for (unsigned i = 0; i < ARRAY_SIZE(std_links); i++)
        tmpfs_symlink(dev, std_links[i][0], std_links[i][1], &link);
    struct inode *proc = make_dir(root_inode, "proc", 0555, FS_PROC);
    struct inode *self = make_dir(proc, "self", 0555, FS_PROC);
    proc_fd_dir = make_dir(self, "fd", 0500, FS_PROC);
    struct inode *mounts;
    static const char table[] = "tmpfs / tmpfs rw 0 0\n"
                                "devtmpfs /dev devtmpfs rw 0 0\n"
                                "proc /proc proc rw 0 0\n";
    if (tmpfs_create(self, "mounts", S_IFREG | 0444, 0, &mounts) == 0) {
        mounts->data.initial = (const u8 *)table;
        mounts->size = sizeof(table) - 1;
    }
    tmpfs_symlink(proc, "mounts", "self/mounts", &link);
    tmpfs_create(proc, "interrupts", S_IFREG | 0444, 0, &proc_interrupts);
}

void tmpfs_proc_self_exe(const char *path)
{
    struct inode *self = dir_lookup(dir_lookup(root_inode, "proc"), "self"), *exe;
    tmpfs_symlink(self, "exe", path, &exe);
}
