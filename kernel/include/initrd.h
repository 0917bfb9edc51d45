#ifndef INITRD_H
#define INITRD_H
#include "types.h"

struct hvm_start_info;
void initrd_init(const struct hvm_start_info *si);
/* Find a file by path ("/hello", "hello" and "./hello" are the same); false if absent. */
bool initrd_find(const char *path, const u8 **data, u64 *size);
/* "/", ".", "..", "" and the like: the root, the initrd's one directory. */
bool initrd_is_root(const char *path);

/* One member of the archive, for listing "/" (getdents64). */
struct initrd_entry {
    const char *name;               /* without a leading "/" or "./" */
    const u8 *data;
    u64 size;
};
bool initrd_next(u64 *cursor, struct initrd_entry *e);
#endif
