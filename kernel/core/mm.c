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
#include "spinlock.h"

extern char kernel_start[], kernel_end[];
extern u64 boot_pml4[], boot_pdpt[], boot_pd[];

#define MAX_RANGES 32
struct range {
    u64 start, end;
};
static struct range free_ranges[MAX_RANGES];
static unsigned nr_free_ranges;
static u64 free_list;           /* physical address of the first freed frame, 0 if none */
static u64 nr_free_frames;
static u64 total_frames;        /* the RAM the kernel manages, kernel image and boot data left out */

static u64 *kernel_pml4;

/*
 * What a debugger's dump needs to tell used pages from free ones (osvgdb's `osv-dump
 * --level`, read through osvgdb/model/memory.py by these symbols and their DWARF): the
 * allocator keeps no per-page state, so a page of RAM is in use unless it lies in
 * free_ranges[] or on the free list. What was taken out before the allocator started is
 * listed here with why, so a dump can say "the initrd" or "the kernel heap" for what it
 * left out instead of guessing from addresses.
 */
enum mm_reserved_kind {
    MM_RESERVED_BOOT,               /* below 1 MiB: real-mode area, start info, command line */
    MM_RESERVED_KERNEL,             /* the kernel image */
    MM_RESERVED_INITRD,             /* the boot modules: the initrd, a copy of host files */
    MM_RESERVED_HEAP,               /* kmalloc's one contiguous reservation */
};
struct mm_reserved {
    u64 start, end;                 /* physical, page aligned */
    enum mm_reserved_kind kind;
};
#define MAX_RESERVED 8
struct mm_reserved mm_reserved[MAX_RESERVED];
unsigned nr_mm_reserved;
/* PHYS_MEM as data: the free list links frames by physical address, which a debugger
   reads through the direct map (macros are not in the symbols it has). */
const u64 mm_direct_map = PHYS_MEM;

/*
 * Lock order: pt_lock, then frame_lock; heap_lock alone. None is held across a TLB
 * shootdown. heap_lock is taken with interrupts off: the scheduler frees an exited
 * thread (kfree) holding sched_lock, also from the timer and the reschedule IPI, so a
 * CPU in kmalloc with interrupts on could take a timer tick that waits for sched_lock
 * while the other CPU, holding it, waits in kfree for heap_lock: both for good (seen:
 * manythreads at -smp 2, about one run in 30 with a core busy).
 */
static struct spinlock frame_lock = SPINLOCK_INIT;
static struct spinlock heap_lock = SPINLOCK_INIT;
static struct spinlock pt_lock = SPINLOCK_INIT;

/* Remove [start, end) from the free ranges (boot data, the kernel, the initrd). */
static void reserve(u64 start, u64 end, enum mm_reserved_kind kind)
{
    start = ALIGN_DOWN(start, PAGE_SIZE);
    end = ALIGN_UP(end, PAGE_SIZE);
    if (nr_mm_reserved < MAX_RESERVED)
        mm_reserved[nr_mm_reserved++] = (struct mm_reserved){ start, end, kind };
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

/* Contiguous physical pages, taken from the first range that has them; never freed. */
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
    spin_lock(&frame_lock);
    u64 pa = free_list;
    if (pa) {
        free_list = *(u64 *)phys_to_virt(pa);
        nr_free_frames--;
    } else {
        pa = contig_alloc(1);
    }
    spin_unlock(&frame_lock);
    if (pa)
        memset(phys_to_virt(pa), 0, PAGE_SIZE);
    return pa;
}

void frame_free(u64 pa)
{
    spin_lock(&frame_lock);
    *(u64 *)phys_to_virt(pa) = free_list;
    free_list = pa;
    nr_free_frames++;
    spin_unlock(&frame_lock);
}

u64 frames_total_count(void)
{
    return total_frames;
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
    u64 flags = spin_lock_irqsave(&heap_lock);
    u8 *p = heap_free[order];
    if (p) {
        heap_free[order] = *(void **)p;
    } else {
        /* Blocks of a page or more start on a page boundary, minus the header. */
        u64 align = MIN(1UL << order, PAGE_SIZE);
        p = (u8 *)ALIGN_UP((u64)heap_next + 16, align) - 16;
        if (p + (1UL << order) > heap_end)
            p = NULL;
        else
            heap_next = p + (1UL << order);
    }
    spin_unlock_irqrestore(&heap_lock, flags);
    if (!p)
        return NULL;
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
    u64 flags = spin_lock_irqsave(&heap_lock);
    *(void **)block = heap_free[order];
    heap_free[order] = block;
    spin_unlock_irqrestore(&heap_lock, flags);
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
    reserve(0, 0x100000, MM_RESERVED_BOOT);     /* real-mode area, start info, command line */
    reserve((u64)kernel_start, (u64)kernel_end, MM_RESERVED_KERNEL);
    const struct hvm_modlist_entry *mods = phys_to_virt(si->modlist_paddr);
    for (u32 i = 0; i < si->nr_modules; i++)
        reserve(mods[i].paddr, mods[i].paddr + mods[i].size, MM_RESERVED_INITRD);

    total_frames = frames_free_count();

    u64 heap = contig_alloc(HEAP_SIZE / PAGE_SIZE);
    if (!heap)
        panic("not enough memory for the kernel heap");
    if (nr_mm_reserved < MAX_RESERVED)
        mm_reserved[nr_mm_reserved++] = (struct mm_reserved){ heap, heap + HEAP_SIZE, MM_RESERVED_HEAP };
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
    /* The local APIC's registers: uncached (PCD | PWT) in the direct map. */
    boot_pd[0xfee00000UL >> 21] |= (1 << 4) | (1 << 3);
    write_cr3(mm_kernel_cr3());
}

u64 mm_kernel_cr3(void) { return virt_to_phys(kernel_pml4); }

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

/*
 * Changing app mappings: page table entries change under pt_lock, a chunk of pages at a
 * time; then, with no lock held, the other CPUs drop stale TLB entries (an IPI each)
 * and only then are the old frames freed, so no CPU can still reach a reused frame.
 */
#define CHUNK_PAGES 64

struct pte_batch {
    u64 frames[CHUNK_PAGES];
    unsigned n;
    bool flush;                 /* a present entry changed: other CPUs may cache it */
};

static void clear_pte(struct pte_batch *b, u64 *pte, u64 va)
{
    if (*pte & PTE_P)
        b->flush = true;
    if (*pte & PTE_ADDR)
        b->frames[b->n++] = *pte & PTE_ADDR;
    *pte = 0;
    invlpg(va);
}

static void finish_batch(struct pte_batch *b)
{
    if (b->flush)
        tlb_shootdown();
    for (unsigned i = 0; i < b->n; i++)
        frame_free(b->frames[i]);
    b->n = 0;
    b->flush = false;
}

/*
 * What each page of a chunk becomes; fills b. pte is the page's entry, NULL where no
 * page table covers it (and none was to be created). False if the page may not change.
 */
typedef bool (*pte_update)(struct pte_batch *b, u64 *pte, u64 va, int prot);

#define PT_SPAN (512 * PAGE_SIZE)   /* what one page table maps: walk once per table */

static int update_range(u64 va, u64 len, int prot, pte_update update, bool create)
{
    if (!user_range_valid(va, len))
        return -1;
    u64 a = ALIGN_DOWN(va, PAGE_SIZE), end = va + len;
    int ret = 0;
    while (a < end && ret == 0) {
        struct pte_batch b = { .n = 0, .flush = false };
        spin_lock(&pt_lock);
        u64 *pte = NULL;
        for (unsigned i = 0; i < CHUNK_PAGES && a < end; i++, a += PAGE_SIZE) {
            pte = (pte && a % PT_SPAN) ? pte + 1 : pte_walk(a, create);
            if (!update(&b, pte, a, prot)) {
                ret = -1;
                break;
            }
        }
        spin_unlock(&pt_lock);
        finish_batch(&b);
    }
    return ret;
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
    bool handled = false;
    spin_lock(&pt_lock);
    u64 *pte = pte_walk(va, false);
    if (pte && (*pte & PTE_SW_RESERVED) && prot_allows(pte_prot(*pte), write, exec)) {
        if (*pte & PTE_P) {
            handled = true;         /* another CPU populated it first */
        } else {
            u64 pa = *pte & PTE_ADDR;
            if (!pa) {
                pa = frame_alloc();
                user_pages_populated += pa != 0;
            }
            if (pa) {
                *pte = make_pte(pa, pte_prot(*pte));
                invlpg(va);
                handled = true;
            }
        }
    }
    spin_unlock(&pt_lock);
    return handled;
}

static bool map_page(struct pte_batch *b, u64 *pte, u64 va, int prot)
{
    if (!pte)
        return false;
    clear_pte(b, pte, va);
    *pte = make_pte(0, prot);
    return true;
}

static bool unmap_page(struct pte_batch *b, u64 *pte, u64 va, int prot)
{
    if (pte && *pte)
        clear_pte(b, pte, va);
    return true;
}

static bool protect_page(struct pte_batch *b, u64 *pte, u64 va, int prot)
{
    if (!pte || !(*pte & PTE_SW_RESERVED))
        return false;
    if (*pte & PTE_P)
        b->flush = true;
    *pte = make_pte(*pte & PTE_ADDR, prot);
    invlpg(va);
    return true;
}

/* MADV_DONTNEED: give the frame back; the page reads as zeros when next touched. */
static bool discard_page(struct pte_batch *b, u64 *pte, u64 va, int unused)
{
    if (pte && (*pte & PTE_SW_RESERVED) && (*pte & PTE_ADDR)) {    /* only populated pages */
        int prot = pte_prot(*pte);
        clear_pte(b, pte, va);
        *pte = make_pte(0, prot);
    }
    return true;
}

int map_user(u64 va, u64 len, int prot) { return update_range(va, len, prot, map_page, true); }
void discard_user(u64 va, u64 len) { update_range(va, len, 0, discard_page, false); }
void unmap_user(u64 va, u64 len) { update_range(va, len, 0, unmap_page, false); }
int protect_user(u64 va, u64 len, int prot) { return update_range(va, len, prot, protect_page, false); }

int user_page_prot(u64 va)
{
    if (!user_range_valid(va, 1))
        return -1;
    spin_lock(&pt_lock);
    u64 *pte = pte_walk(va, false);
    int prot = pte && (*pte & PTE_SW_RESERVED) ? pte_prot(*pte) : -1;
    spin_unlock(&pt_lock);
    return prot;
}

/*
 * mremap's move: each page's entry (frame, protection, or none yet) goes from old_va to
 * new_va, whose range the caller made free. Frames stay where they are, so nothing is
 * copied and an untouched page stays unpopulated. -1 if a page table for the new
 * range cannot be had (out of memory): pages moved so far stay moved.
 */
int move_user(u64 old_va, u64 new_va, u64 len)
{
    if (!user_range_valid(old_va, len) || !user_range_valid(new_va, len))
        return -1;
    bool flush = false;
    int ret = 0;
    spin_lock(&pt_lock);
    for (u64 off = 0; off < len; off += PAGE_SIZE) {
        u64 *src = pte_walk(old_va + off, false);
        if (!src || !*src)
            continue;
        u64 *dst = pte_walk(new_va + off, true);
        if (!dst) {
            ret = -1;
            break;
        }
        *dst = *src;
        flush |= (*src & PTE_P) != 0;
        *src = 0;
        invlpg(old_va + off);
    }
    spin_unlock(&pt_lock);
    if (flush)
        tlb_shootdown();            /* other CPUs may still cache the old addresses */
    return ret;
}

/*
 * The lowest page the app mapped in [va, va+len), 0 if none: what mmap asks before it
 * puts a mapping somewhere. Absent page tables are skipped whole, so a free range of
 * gigabytes (Go's arena hints) costs a few reads. The range must be valid.
 */
u64 user_mapped_first(u64 va, u64 len)
{
    u64 found = 0, end = va + len;
    spin_lock(&pt_lock);
    for (u64 a = ALIGN_DOWN(va, PAGE_SIZE); a < end && !found;) {
        u64 *table = kernel_pml4;
        int shift;
        for (shift = 39; shift > 12; shift -= 9) {
            u64 e = table[(a >> shift) & 511];
            if (!(e & PTE_P))
                break;
            table = phys_to_virt(e & PTE_ADDR);
        }
        if (shift > 12) {               /* nothing mapped in this entry's whole span */
            a = ALIGN_DOWN(a, 1UL << shift) + (1UL << shift);
            continue;
        }
        if (table[(a >> 12) & 511] & PTE_SW_RESERVED)
            found = a;
        a += PAGE_SIZE;
    }
    spin_unlock(&pt_lock);
    return found;
}

bool user_page_mapped(u64 va)
{
    if (!user_range_valid(va, 1))
        return false;
    spin_lock(&pt_lock);
    u64 *pte = pte_walk(va, false);
    bool mapped = pte && (*pte & PTE_SW_RESERVED);
    spin_unlock(&pt_lock);
    return mapped;
}

/*
 * A copy of a few dozen bytes by words: `rep movsb` (memcpy) is the fastest on hardware
 * but TCG runs it a byte per step, ~10 times slower than eight word moves.
 */
static void copy_small(u8 *dst, const u8 *src, u64 n)
{
    for (; n >= 8; n -= 8, dst += 8, src += 8)
        __builtin_memcpy(dst, src, 8);
    while (n--)
        *dst++ = *src++;
}

/*
 * Copy up to len bytes of app memory at addr into dst, stopping at the first page that
 * is not present: the syscall history's captures (syscall_history.c) run with
 * interrupts off and must not fault pages in. Under pt_lock, so no other CPU unmaps the
 * page meanwhile. Returns the bytes copied.
 */
u64 user_copy_present(void *dst, u64 addr, u64 len)
{
    if (len == 0 || !user_range_valid(addr, 1))
        return 0;
    u64 done = 0;
    spin_lock(&pt_lock);
    while (done < len) {
        u64 a = addr + done;
        u64 *pte = pte_walk(a, false);
        if (!pte || !(*pte & PTE_P) || !user_range_valid(a, 1))
            break;
        u64 chunk = MIN(len - done, ALIGN_DOWN(a, PAGE_SIZE) + PAGE_SIZE - a);
        copy_small((u8 *)dst + done, (const u8 *)a, chunk);
        done += chunk;
    }
    spin_unlock(&pt_lock);
    return done;
}

/* Would an access to [addr, addr+len) succeed, populating pages as it goes? */
bool user_range_ok(u64 addr, u64 len, bool write)
{
    if (len == 0)
        return true;
    if (!user_range_valid(addr, len))
        return false;
    bool ok = true;
    spin_lock(&pt_lock);
    for (u64 a = ALIGN_DOWN(addr, PAGE_SIZE); ok && a < addr + len; a += PAGE_SIZE) {
        u64 *pte = pte_walk(a, false);
        ok = pte && (*pte & PTE_SW_RESERVED) && prot_allows(pte_prot(*pte), write, false);
    }
    spin_unlock(&pt_lock);
    return ok;
}

/*
 * Make [addr, addr+len) present and writable now, so that writing it cannot fault: signal
 * delivery from an exception writes the app's stack while on the exception stack, where
 * a nested page fault would land on top of the frame being handled.
 */
bool user_populate(u64 addr, u64 len)
{
    if (!user_range_ok(addr, len, true))
        return false;
    for (u64 a = ALIGN_DOWN(addr, PAGE_SIZE); a < addr + len; a += PAGE_SIZE)
        if (!handle_user_fault(a, true, false))
            return false;
    return true;
}
