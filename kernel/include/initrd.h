#ifndef INITRD_H
#define INITRD_H
#include "types.h"

struct hvm_start_info;
/* The initrd's members into the filesystem (tmpfs_init first): its first contents. */
void initrd_unpack(const struct hvm_start_info *si);
#endif
