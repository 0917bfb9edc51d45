/*
 * Physical frames, the kernel heap and the app's page tables.
 *
 * Layout of the one address space everybody shares (all code runs in ring 0):
 *   [USER_MIN, KERNEL_WINDOW_START)         app: ET_EXEC images at 0x400000, brk
 *   [KERNEL_WINDOW_START, KERNEL_WINDOW_END) kernel image, identity mapped, 2 MiB pages
 *   [KERNEL_WINDOW_END, USER_MAX)           app: static-pie images, mmap, the stack
 *   PHYS_MEM + phys                          all physical memory (the kernel heap lives here)
 * App pages are 4 KiB, built here; the kernel ones come from boot.S's tables.
 */
#include "mm.h"
#include "arch.h"
#include "lib.h"
#include "panic.h"
#include "pvh.h"

extern char kernel_start[], kernel_end[];
extern u64 boot_pml4[], boot_pdpt[];

#define MAX_RANGES 32
struct range {
    u64 start, end;
};
static struct range free_ranges[MAX_RANGES];
static unsigned nr_free_ranges;
static u64 free_list;           /* physical address of the first freed frame, 0 if none */
static u64 nr_free_frames;

static u64 *kernel_pml4;

/* Remove [start, end) from the free ranges (boot data, the kernel, the initrd). */
static void reserve(u64 start, u64 end)
{
    start = ALIGN_DOWN(start, PAGE_SIZE);
    end = ALIGN_UP(end, PAGE_SIZE);
    for (unsigned i = 0; i < nr_free_ranges; i++) {
        struct range *r = &free_ranges[i];
        if (end <= r->start || start >= r->end)
            continue;
        if (start > r->start && end < r->end && nr_free_ranges < MAX_RANGES) {
            free_ranges[nr_free_ranges++] = (struct range){ end, r->end };
            r->end = start;
        } else if (start <= r->start) {
            r->start = MIN(end, r->end);
        } else {
            r->end = start;
        }
    }
}

static void add_ram(u64 start, u64 end)
{
    /* Only what boot.S's direct map covers (4 GiB) is usable. */
    end = MIN(end, 0x100000000UL);
    start = ALIGN_UP(start, PAGE_SIZE);
    end = ALIGN_DOWN(end, PAGE_SIZE);
    if (start < end && nr_free_ranges < MAX_RANGES)
        free_ranges[nr_free_ranges++] = (struct range){ start, end };
}

/* Contiguous physical pages, taken from the ranges; used for the heap, never freed. */
static u64 contig_alloc(u64 npages)
{
    for (unsigned i = 0; i < nr_free_ranges; i++) {
        struct range *r = &free_ranges[i];
        if (r->end - r->start >= npages * PAGE_SIZE) {
            u64 pa = r->start;
            r->start += npages * PAGE_SIZE;
            return pa;
        }
    }
    return 0;
}

u64 frame_alloc(void)
{
    u64 pa = free_list;
    if (pa) {
        free_list = *(u64 *)phys_to_virt(pa);
        nr_free_frames--;
    } else {
        pa = contig_alloc(1);
        if (!pa)
            return 0;
    }
    memset(phys_to_virt(pa), 0, PAGE_SIZE);
    return pa;
}

void frame_free(u64 pa)
{
    *(u64 *)phys_to_virt(pa) = free_list;
    free_list = pa;
    nr_free_frames++;
}

u64 frames_free_count(void)
{
    u64 n = nr_free_frames;
    for (unsigned i = 0; i < nr_free_ranges; i++)
        n += (free_ranges[i].end - free_ranges[i].start) / PAGE_SIZE;
    return n;
}

/*
 * The kernel heap: power-of-two size classes from 32 bytes to 1 MiB, carved from one
 * contiguous reservation, freed objects kept on a list per class. A 16-byte header
 * remembers the class (and keeps objects 16-byte aligned).
 */
#define HEAP_SIZE (64UL << 20)
#define HEAP_MIN_ORDER 5
#define HEAP_MAX_ORDER 20
static u8 *heap_next, *heap_end;
static void *heap_free[HEAP_MAX_ORDER + 1];

void *kmalloc(size_t size)
{
    unsigned order = HEAP_MIN_ORDER;
    while (order <= HEAP_MAX_ORDER && (1UL << order) < size + 16)
        order++;
    if (order > HEAP_MAX_ORDER)
        return NULL;
    u8 *p = heap_free[order];
    if (p) {
        heap_free[order] = *(void **)p;
    } else {
        /* Blocks of a page or more start on a page boundary, minus the header. */
        u64 align = MIN(1UL << order, PAGE_SIZE);
        p = (u8 *)ALIGN_UP((u64)heap_next + 16, align) - 16;
        if (p + (1UL << order) > heap_end)
            return NULL;
        heap_next = p + (1UL << order);
    }
    *(u64 *)p = order;
    return p + 16;
}

void *kzalloc(size_t size)
{
    void *p = kmalloc(size);
    if (p)
        memset(p, 0, size);
    return p;
}

void kfree(void *p)
{
    if (!p)
        return;
    u8 *block = (u8 *)p - 16;
    unsigned order = *(u64 *)block;
    *(void **)block = heap_free[order];
    heap_free[order] = block;
}

void mm_init(const struct hvm_start_info *si)
{
    if (si->version >= 1 && si->memmap_entries) {
        const struct hvm_memmap_table_entry *m = phys_to_virt(si->memmap_paddr);
        for (u32 i = 0; i < si->memmap_entries; i++)
            if (m[i].type == 1)
                add_ram(m[i].addr, m[i].addr + m[i].size);
    } else {
        add_ram(0, 512UL << 20);    /* QEMU without a memory map: assume our smallest -m */
    }
    reserve(0, 0x100000);           /* real-mode area, start info, command line */
    reserve((u64)kernel_start, (u64)kernel_end);
    const struct hvm_modlist_entry *mods = phys_to_virt(si->modlist_paddr);
    for (u32 i = 0; i < si->nr_modules; i++)
        reserve(mods[i].paddr, mods[i].paddr + mods[i].size);

    u64 heap = contig_alloc(HEAP_SIZE / PAGE_SIZE);
    if (!heap)
        panic("not enough memory for the kernel heap");
    heap_next = phys_to_virt(heap);
    heap_end = heap_next + HEAP_SIZE;

    /*
     * Our own top level: the direct map and the kernel window come from boot.S's tables;
     * everything else of the lower half is the app's and starts empty.
     */
    kernel_pml4 = phys_to_virt(frame_alloc());
    u64 *pdpt = phys_to_virt(frame_alloc());
    pdpt[1] = boot_pdpt[1];
    kernel_pml4[0] = virt_to_phys(pdpt) | PTE_P | PTE_W;
    kernel_pml4[256] = boot_pml4[256];
    write_cr3(virt_to_phys(kernel_pml4));
}

bool range_overlaps_kernel(u64 start, u64 end)
{
    return start < KERNEL_WINDOW_END && end > KERNEL_WINDOW_START;
}

/* The level-1 entry for an app address, creating the tables above it if asked. */
static u64 *pte_walk(u64 va, bool create)
{
    u64 *table = kernel_pml4;
    for (int shift = 39; shift > 12; shift -= 9) {
        u64 *e = &table[(va >> shift) & 511];
        if (!(*e & PTE_P)) {
            if (!create)
                return NULL;
            u64 pa = frame_alloc();
            if (!pa)
                return NULL;
            *e = pa | PTE_P | PTE_W;
        }
        table = phys_to_virt(*e & PTE_ADDR);
    }
    return &table[(va >> 12) & 511];
}

static bool user_range_valid(u64 va, u64 len)
{
    return va >= USER_MIN && va + len <= USER_MAX && va + len >= va &&
           !range_overlaps_kernel(va, va + len);
}

/*
 * App memory is demand paged. A page the app mapped is PTE_SW_RESERVED with its PROT_*
 * bits kept in PTE bits 52-54 (ignored by the MMU); it gets a zeroed frame, and becomes
 * present, on the first access the protection allows: a page fault in app code, or in
 * kernel code copying to or from the app. A PROT_NONE page that had a frame keeps it,
 * not present.
 */
#define PTE_SW_RESERVED (1UL << 9)
#define PTE_SW_PROT_SHIFT 52
#define PTE_SW_PROT (7UL << PTE_SW_PROT_SHIFT)

static int pte_prot(u64 pte) { return (pte & PTE_SW_PROT) >> PTE_SW_PROT_SHIFT; }

/* The entry for a page with this protection and frame (pa 0: not populated yet). */
static u64 make_pte(u64 pa, int prot)
{
    u64 pte = pa | PTE_SW_RESERVED | ((u64)(prot & 7) << PTE_SW_PROT_SHIFT);
    if (pa && (prot & (PROT_READ | PROT_WRITE | PROT_EXEC)))
        pte |= PTE_P | ((prot & PROT_WRITE) ? PTE_W : 0) | ((prot & PROT_EXEC) ? 0 : PTE_NX);
    return pte;
}

static void clear_pte(u64 *pte, u64 va)
{
    if (*pte & PTE_ADDR)
        frame_free(*pte & PTE_ADDR);
    *pte = 0;
    invlpg(va);
}

u64 user_pages_populated;

/* May an access of this kind touch the page? x86 pages are always readable if accessible. */
static bool prot_allows(int prot, bool write, bool exec)
{
    if (!(prot & (PROT_READ | PROT_WRITE | PROT_EXEC)))
        return false;
    return (!write || (prot & PROT_WRITE)) && (!exec || (prot & PROT_EXEC));
}

bool handle_user_fault(u64 addr, bool write, bool exec)
{
    if (!user_range_valid(addr, 1))
        return false;
    u64 va = ALIGN_DOWN(addr, PAGE_SIZE);
    u64 *pte = pte_walk(va, false);
    if (!pte || !(*pte & PTE_SW_RESERVED) || (*pte & PTE_P))
        return false;               /* unmapped, or a real protection violation */
    int prot = pte_prot(*pte);
    if (!prot_allows(prot, write, exec))
        return false;
    u64 pa = *pte & PTE_ADDR;
    if (!pa) {
        pa = frame_alloc();
        if (!pa)
            return false;
        user_pages_populated++;
    }
    *pte = make_pte(pa, prot);
    invlpg(va);
    return true;
}

int map_user(u64 va, u64 len, int prot)
{
    if (!user_range_valid(va, len))
        return -1;
    for (u64 a = ALIGN_DOWN(va, PAGE_SIZE); a < va + len; a += PAGE_SIZE) {
        u64 *pte = pte_walk(a, true);
        if (!pte)
            return -1;
        clear_pte(pte, a);
        *pte = make_pte(0, prot);
    }
    return 0;
}

void unmap_user(u64 va, u64 len)
{
    if (!user_range_valid(va, len))
        return;
    for (u64 a = ALIGN_DOWN(va, PAGE_SIZE); a < va + len; a += PAGE_SIZE) {
        u64 *pte = pte_walk(a, false);
        if (pte && *pte)
            clear_pte(pte, a);
    }
}

int protect_user(u64 va, u64 len, int prot)
{
    if (!user_range_valid(va, len))
        return -1;
    for (u64 a = ALIGN_DOWN(va, PAGE_SIZE); a < va + len; a += PAGE_SIZE) {
        u64 *pte = pte_walk(a, false);
        if (!pte || !(*pte & PTE_SW_RESERVED))
            return -1;
        *pte = make_pte(*pte & PTE_ADDR, prot);
        invlpg(a);
    }
    return 0;
}

bool user_page_mapped(u64 va)
{
    if (!user_range_valid(va, 1))
        return false;
    u64 *pte = pte_walk(va, false);
    return pte && (*pte & PTE_SW_RESERVED);
}

/* Would an access to [addr, addr+len) succeed, populating pages as it goes? */
bool user_range_ok(u64 addr, u64 len, bool write)
{
    if (len == 0)
        return true;
    if (!user_range_valid(addr, len))
        return false;
    for (u64 a = ALIGN_DOWN(addr, PAGE_SIZE); a < addr + len; a += PAGE_SIZE) {
        u64 *pte = pte_walk(a, false);
        if (!pte || !(*pte & PTE_SW_RESERVED) || !prot_allows(pte_prot(*pte), write, false))
            return false;
    }
    return true;
}
