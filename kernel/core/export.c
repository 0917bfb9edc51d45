/*
 * --export=PATH: when the app ends (process_exit: its own exit, or a fatal signal; not
 * a panic), PATH and everything below it go to the host as one cpio "newc" archive on
 * the terminal device's export port (tty.c), where osvgdb puts it back on the host
 * (osvgdb/initrd.py's extract). One archive per --export, in their order: PATH itself
 * as the member ".", then its tree, parents before children, each directory's entries
 * in their order; a PATH that is not there is an empty archive.
 *
 * It runs with the other CPUs stopped: fs_lock is taken if it can be, and the tree read
 * anyway if a stopped CPU held it (a change it was making may then be half there).
 */
#include "export.h"
#include "console.h"
#include "lib.h"
#include "mm.h"
#include "tmpfs.h"
#include "tty.h"
#include "vfs.h"
#include <linux/fcntl.h>

#define MAX_EXPORTS 16

static const char *exports[MAX_EXPORTS];
static unsigned nr_exports;

bool export_add(const char *path)
{
    if (nr_exports == MAX_EXPORTS || path[0] != '/')
        return false;
    exports[nr_exports++] = path;
    return true;
}

unsigned export_count(void)
{
    return nr_exports;
}

static void out(const void *data, u64 n)
{
    tty_export_write(data, n);
}

static void pad4(u64 length)
{
    static const u8 zeros[3];
    out(zeros, -length % 4);
}

/* One member: the header, the name, the data; each padded to 4 bytes. */
static void member(const char *name, u32 mode, u32 uid, u32 gid, u64 mtime, u64 size,
                   struct inode *data)
{
    char header[111];
    u64 namesize = strlen(name) + 1;
    snprintf(header, sizeof(header),
             "070701%08x%08x%08x%08x%08x%08lx%08lx%08x%08x%08x%08x%08lx%08x",
             0, mode, uid, gid, 1, mtime, size, 0, 0, 0, 0, namesize, 0);
    out(header, 110);
    out(name, namesize);
    pad4(110 + namesize);
    if (data && S_ISLNK(data->mode))
        out(data->target, size);
    else if (data) {
        u8 chunk[PAGE_SIZE];
        for (u64 at = 0; at < size; at += sizeof(chunk)) {
            u64 n = tmpfs_read_kernel(data, chunk, MIN(sizeof(chunk), size - at), at);
            out(chunk, n);
        }
    }
    pad4(size);
}

static void inode_member(const char *name, struct inode *inode)
{
    bool has_data = S_ISREG(inode->mode) || S_ISLNK(inode->mode);
    member(name, inode->mode, inode->uid, inode->gid, inode->mtime / 1000000000UL,
           has_data ? inode->size : 0, has_data ? inode : NULL);
}

/* The entry after child's in its parent's list (the walk back up the tree). */
static struct dentry *entry_after(struct inode *parent, struct inode *child)
{
    for (struct dentry *d = parent->dir.entries; d; d = d->next)
        if (d->inode == child)
            return d->next;
    return NULL;
}

/* The tree below top, depth first, names relative to the export ("a", "a/b"). */
static void walk(struct inode *top)
{
    char name[PATH_MAX];
    u64 len = 0;                    /* name[0..len) names dir below top ("" for top) */
    name[0] = 0;
    struct inode *dir = top;
    struct dentry *d = top->dir.entries;
    for (;;) {
        if (!d) {                   /* dir is done: on with its parent's next entry */
            if (dir == top)
                return;
            d = entry_after(dir->dir.parent, dir);
            while (len && name[len - 1] != '/')
                len--;
            if (len)
                len--;
            name[len] = 0;
            dir = dir->dir.parent;
            continue;
        }
        u64 n = strlen(d->name), at = len ? len + 1 : 0;
        if (at + n + 1 > sizeof(name)) {
            d = d->next;            /* too deep to name: left out */
            continue;
        }
        if (len)
            name[len] = '/';
        memcpy(name + at, d->name, n + 1);
        inode_member(name, d->inode);
        if (S_ISDIR(d->inode->mode)) {
            len = at + n;
            dir = d->inode;
            d = dir->dir.entries;
            continue;
        }
        name[len] = 0;
        d = d->next;
    }
}

static void trailer(void)
{
    member("TRAILER!!!", 0, 0, 0, 0, 0, NULL);
}

void export_all(void)
{
    if (!nr_exports)
        return;
    bool locked = false;
    for (int i = 0; i < 10000000 && !locked; i++)
        locked = !__atomic_exchange_n(&fs_lock.locked, 1, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < nr_exports; i++) {
        struct lookup l;
        if (path_lookup(AT_FDCWD, exports[i], 0, &l) == 0) {
            inode_member(".", l.inode);
            if (S_ISDIR(l.inode->mode))
                walk(l.inode);
        } else
            printk("osv: --export %s: not there at the end\n", exports[i]);
        trailer();
        l.start = NULL;             /* an absolute path took no fd */
    }
    if (locked)
        __atomic_store_n(&fs_lock.locked, 0, __ATOMIC_RELEASE);
    tty_flush();
}
