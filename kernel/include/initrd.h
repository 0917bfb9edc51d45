#ifndef INITRD_H
#define INITRD_H
#include "types.h"

struct hvm_start_info;
void initrd_init(const struct hvm_start_info *si);
/* Find a file by path ("/hello", "hello" and "./hello" are the same); false if absent. */
bool initrd_find(const char *path, const u8 **data, u64 *size);
#endif
