#ifndef PVH_H
#define PVH_H
/* The PVH boot ABI's start info (Xen's arch-x86/hvm/start_info.h), as QEMU fills it in. */
#include "types.h"

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
    u32 magic;
    u32 version;
    u32 flags;
    u32 nr_modules;
    u64 modlist_paddr;
    u64 cmdline_paddr;
    u64 rsdp_paddr;
    u64 memmap_paddr;       /* version >= 1 */
    u32 memmap_entries;
    u32 reserved;
};

struct hvm_modlist_entry {
    u64 paddr;
    u64 size;
    u64 cmdline_paddr;
    u64 reserved;
};

struct hvm_memmap_table_entry {
    u64 addr;
    u64 size;
    u32 type;               /* 1: RAM */
    u32 reserved;
};

extern u64 pvh_start_info_paddr;
#endif
