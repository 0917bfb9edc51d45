/*
 * The initrd is a cpio "newc" archive (osvgdb/initrd.py writes it) that QEMU hands us
 * as the first PVH module. Files are read in place, read-only. The archive is flat: its
 * members are the files of "/", the one directory.
 */
#include "initrd.h"
#include "lib.h"
#include "mm.h"
#include "pvh.h"

static const u8 *initrd;
static u64 initrd_size;

void initrd_init(const struct hvm_start_info *si)
{
    if (si->nr_modules == 0)
        return;
    const struct hvm_modlist_entry *m = phys_to_virt(si->modlist_paddr);
    initrd = phys_to_virt(m->paddr);
    initrd_size = m->size;
}

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
 * at the trailer or at a malformed header.
 */
bool initrd_next(u64 *cursor, struct initrd_entry *e)
{
    u64 off = *cursor;
    /* Header: magic "070701" then 13 eight-digit hex fields; namesize is field 11, filesize 6. */
    if (!initrd || off + 110 > initrd_size || memcmp(initrd + off, "070701", 6) != 0)
        return false;
    const u8 *h = initrd + off;
    u64 filesize = hex_field(h + 6 + 6 * 8);
    u64 namesize = hex_field(h + 6 + 11 * 8);
    const char *name = (const char *)h + 110;
    u64 data_off = ALIGN_UP(off + 110 + namesize, 4);
    if (data_off + filesize > initrd_size || namesize == 0 || name[namesize - 1] != 0)
        return false;
    if (strcmp(name, "TRAILER!!!") == 0)
        return false;
    e->name = skip_prefix(name);
    e->data = initrd + data_off;
    e->size = filesize;
    *cursor = ALIGN_UP(data_off + filesize, 4);
    return true;
}

bool initrd_is_root(const char *path)
{
    path = skip_prefix(path);
    return path[0] == 0 || strcmp(path, ".") == 0 || strcmp(path, "..") == 0;
}

bool initrd_find(const char *path, const u8 **data, u64 *size)
{
    const char *want = skip_prefix(path);
    struct initrd_entry e;
    for (u64 cursor = 0; initrd_next(&cursor, &e);) {
        if (strcmp(e.name, want) == 0) {
            *data = e.data;
            *size = e.size;
            return true;
        }
    }
    return false;
}
