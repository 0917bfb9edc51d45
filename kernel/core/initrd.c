/*
 * The initrd is a cpio "newc" archive (osvgdb/initrd.py writes it) that QEMU hands us
 * as the first PVH module: the filesystem's first contents, unpacked into tmpfs at
 * boot. Directories, regular files and symlinks come with their modes, owners and
 * mtimes; a file's data is read in place until its first change (tmpfs.c), so the
 * archive stays where QEMU put it (mm.c never hands its pages out). A member whose
 * directories are not in the archive gets them, 0755; other kinds of member (devices,
 * FIFOs) are left out.
 */
#include "initrd.h"
#include "console.h"
#include "lib.h"
#include "mm.h"
#include "pvh.h"
#include "tmpfs.h"
#include "vfs.h"

static const u8 *initrd;
static u64 initrd_size;

/* One member of the archive. */
struct member {
    const char *name;               /* without a leading "/" or "./" */
    const u8 *data;
    u64 size;
    u32 mode, uid, gid;
    u64 mtime;                      /* seconds */
};

static u64 hex_field(const u8 *p)
{
    u64 v = 0;
    for (int i = 0; i < 8; i++) {
        u8 c = p[i];
        v = v * 16 + (c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
    }
    return v;
}

static const char *skip_prefix(const char *path)
{
    while (*path == '/' || (path[0] == '.' && path[1] == '/'))
        path += (*path == '/') ? 1 : 2;
    return path;
}

/*
 * The member at archive offset *cursor (0: the first), and *cursor moved past it; false
 * at the trailer or at a malformed header. Header: magic "070701" then 13 eight-digit
 * hex fields: ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
 * rdevmajor, rdevminor, namesize, check.
 */
static bool next_member(u64 *cursor, struct member *m)
{
    u64 off = *cursor;
    if (!initrd || off + 110 > initrd_size || memcmp(initrd + off, "070701", 6) != 0)
        return false;
    const u8 *h = initrd + off + 6;
    u64 namesize = hex_field(h + 11 * 8), filesize = hex_field(h + 6 * 8);
    const char *name = (const char *)initrd + off + 110;
    u64 data_off = ALIGN_UP(off + 110 + namesize, 4);
    if (data_off + filesize > initrd_size || namesize == 0 || name[namesize - 1] != 0)
        return false;
    if (strcmp(name, "TRAILER!!!") == 0)
        return false;
    *m = (struct member){ skip_prefix(name), initrd + data_off, filesize, hex_field(h + 8),
                          hex_field(h + 2 * 8), hex_field(h + 3 * 8), hex_field(h + 5 * 8) };
    *cursor = ALIGN_UP(data_off + filesize, 4);
    return true;
}

/*
 * The directory a member's last name goes in, made as needed, and that last name in
 * `last`; NULL if a component is not a directory or a name is too long.
 */
static struct inode *parent_of(const char *name, char last[NAME_MAX + 1])
{
    struct inode *dir = root_inode;
    for (;;) {
        const char *slash = name;
        while (*slash && *slash != '/')
            slash++;
        if (slash - name > NAME_MAX)
            return NULL;
        memcpy(last, name, slash - name);
        last[slash - name] = 0;
        while (*slash == '/')
            slash++;
        if (*slash == 0)
            return dir;
        struct inode *next = dir_lookup(dir, last);
        if (!next && tmpfs_create(dir, last, S_IFDIR | 0755, 0, &next))
            return NULL;
        if (!S_ISDIR(next->mode))
            return NULL;
        dir = next;
        name = slash;
    }
}

/* The inode a member named (after the first pass made it), or NULL. */
static struct inode *find(const char *name)
{
    if (name[0] == 0 || strcmp(name, ".") == 0)
        return root_inode;
    char last[NAME_MAX + 1];
    struct inode *dir = parent_of(name, last);
    return dir ? dir_lookup(dir, last) : NULL;
}

/* The member into the tree: made, or (a directory, a file) updated in place. */
static struct inode *unpack(const struct member *m)
{
    if (m->name[0] == 0 || strcmp(m->name, ".") == 0)
        return root_inode;
    char last[NAME_MAX + 1];
    struct inode *dir = parent_of(m->name, last);
    if (!dir)
        return NULL;
    struct inode *inode = dir_lookup(dir, last);
    u32 type = m->mode & S_IFMT;
    if (inode && (inode->mode & S_IFMT) != type)
        return NULL;                /* a name given twice with two types: the first stays */
    if (type == S_IFLNK && !inode) {
        char target[PATH_MAX];
        if (m->size >= PATH_MAX)
            return NULL;
        memcpy(target, m->data, m->size);
        target[m->size] = 0;
        if (tmpfs_symlink(dir, last, target, &inode))
            return NULL;
    } else if ((type == S_IFDIR || type == S_IFREG) && !inode) {
        if (tmpfs_create(dir, last, type, 0, &inode))
            return NULL;
    } else if (type != S_IFDIR && type != S_IFREG)
        return NULL;
    if (type == S_IFREG) {
        tmpfs_truncate(inode, 0);
        inode->data.initial = m->data;
        inode->size = m->size;
    }
    if (type != S_IFLNK)
        inode->mode = type | (m->mode & 07777);
    inode->uid = m->uid;
    inode->gid = m->gid;
    return inode;
}

/*
 * Two passes: the tree, then every member's times, so a directory keeps its own mtime
 * and not the time its entries were made.
 */
void initrd_unpack(const struct hvm_start_info *si)
{
    if (si->nr_modules == 0)
        return;
    const struct hvm_modlist_entry *mod = phys_to_virt(si->modlist_paddr);
    initrd = phys_to_virt(mod->paddr);
    initrd_size = mod->size;
    spin_lock(&fs_lock);
    struct member m;
    for (u64 cursor = 0; next_member(&cursor, &m);)
        if (!unpack(&m))
            printk("osv: initrd: %s: left out (a name taken, or not a file, directory or symlink)\n",
                   m.name);
    for (u64 cursor = 0; next_member(&cursor, &m);) {
        struct inode *inode = find(m.name);
        if (inode)
            inode->mtime = inode->atime = inode->ctime = m.mtime * 1000000000UL;
    }
    spin_unlock(&fs_lock);
}
