#ifndef MM_H
#define MM_H
#include "types.h"

#define PAGE_SIZE 4096UL
/* All physical memory (first 4 GiB) is mapped here; kernel heap objects live in it. */
#define PHYS_MEM 0xffff800000000000UL
#define phys_to_virt(pa) ((void *)((u64)(pa) + PHYS_MEM))
#define virt_to_phys(va) ((u64)(va) - PHYS_MEM)

/* The kernel image's 1 GiB window, identity mapped; app segments may not overlap it. */
#define KERNEL_WINDOW_START 0x40000000UL
#define KERNEL_WINDOW_END   0x80000000UL
/* Lowest and highest app addresses (47-bit lower half, page 0 left unmapped). */
#define USER_MIN            0x10000UL
#define USER_MAX            0x800000000000UL

/* PTE flags */
#define PTE_P   (1UL << 0)
#define PTE_W   (1UL << 1)
#define PTE_PS  (1UL << 7)
#define PTE_G   (1UL << 8)
#define PTE_NX  (1UL << 63)
#define PTE_ADDR 0x000ffffffffff000UL

/* Linux PROT_* bits, as mmap/mprotect receive them. */
#define PROT_READ  1
#define PROT_WRITE 2
#define PROT_EXEC  4

struct hvm_start_info;
void mm_init(const struct hvm_start_info *si);
u64 mm_kernel_cr3(void);
void tlb_shootdown(void);      /* arch/x64/smp.c: other CPUs drop their app TLB entries */
u64 frame_alloc(void);
void frame_free(u64 pa);
u64 frames_free_count(void);
u64 frames_total_count(void);

void *kmalloc(size_t size);
void *kzalloc(size_t size);
void kfree(void *p);

/* App address space */
bool user_range_ok(u64 addr, u64 len, bool write);
int map_user(u64 va, u64 len, int prot);        /* zero-filled on demand; replaces what was there */
void unmap_user(u64 va, u64 len);
void discard_user(u64 va, u64 len);               /* MADV_DONTNEED */
int protect_user(u64 va, u64 len, int prot);
bool user_page_mapped(u64 va);
u64 user_mapped_first(u64 va, u64 len);            /* 0: nothing mapped there */
int user_page_prot(u64 va);                       /* PROT_* bits; -1 if not mapped */
int move_user(u64 old_va, u64 new_va, u64 len);   /* mremap: the pages, populated or not */
u64 user_copy_present(void *dst, u64 addr, u64 len);
bool range_overlaps_kernel(u64 start, u64 end);
/* A page fault on an app address: true if it was a not-yet-populated page, now present. */
bool handle_user_fault(u64 addr, bool write, bool exec);
bool user_populate(u64 addr, u64 len);
extern u64 user_pages_populated;
#endif
