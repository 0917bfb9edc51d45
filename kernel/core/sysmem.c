/*
 * The memory system calls (syscalls.h): the break, mappings (anonymous, and private
 * copies of files), protections, mremap, and the mlock family. The page tables are
 * mm.c's; the bookkeeping here (brk, the mmap cursor) is process.mm_lock's.
 */
#include "syscalls.h"
#include "console.h"
#include "mm.h"
#include "process.h"
#include "tmpfs.h"
#include "vfs.h"
#include "lib.h"
#include <asm-generic/errno.h>
#include <asm-generic/mman.h>
#include <linux/mman.h>

static long do_brk(u64 addr)
{
    u64 old_end = ALIGN_UP(process.brk, PAGE_SIZE), new_end = ALIGN_UP(addr, PAGE_SIZE);
    if (addr < process.brk_start || range_overlaps_kernel(process.brk_start, new_end) ||
        new_end > process.mmap_next)
        return process.brk;         /* Linux's brk fails by returning the current break */
    /* Linux's brk stops at the next mapping; an mmap hint may have put one in its way. */
    if (new_end > old_end && (user_mapped_first(old_end, new_end - old_end) ||
                              map_user(old_end, new_end - old_end, PROT_READ | PROT_WRITE) < 0))
        return process.brk;
    if (new_end < old_end)
        unmap_user(new_end, old_end - new_end);
    process.brk = addr;
    return addr;
}

/*
 * May a mapping go at the app's hint? Where Linux would put it: the range is the app's,
 * below the stack's guard gap, and nothing is mapped there.
 */
static bool hint_free(u64 hint, u64 len)
{
    return hint >= USER_MIN && hint + len > hint &&
           hint + len <= process.stack_low - STACK_GUARD_GAP &&
           !range_overlaps_kernel(hint, hint + len) && !user_mapped_first(hint, len);
}

/*
 * Where a mapping without MAP_FIXED goes: at the hint when the range there is free, as
 * on Linux (Go asks for its heap at 0xc000000000, and tries other hints when it gets
 * another address); else below the cursor mmap_next, which moves down, passing over
 * mappings a hint put in the way. 0 if there is no room. As x86-64 Linux, a hint is
 * rounded down to its page, and one below mmap_min_addr (USER_MIN) is raised to it.
 */
static u64 place_mapping(u64 hint, u64 len)
{
    if (hint)
        hint = MAX(ALIGN_DOWN(hint, PAGE_SIZE), USER_MIN);
    if (hint && hint_free(hint, len))
        return hint;
    u64 top = process.mmap_next;
    for (;;) {
        u64 addr = top - len;
        if (addr < process.brk || addr > top || range_overlaps_kernel(addr, top))
            return 0;
        u64 busy = user_mapped_first(addr, len);
        if (!busy) {
            process.mmap_next = addr;
            return addr;
        }
        top = busy;
    }
}

/*
 * Where a file's mapping can come from: a tmpfs file open for reading. Its pages are a
 * copy (MAP_PRIVATE's semantics, and MAP_SHARED's as long as nobody writes the file
 * while it is mapped); a shared mapping that could write is not offered.
 */
static long mappable(struct file *f, long prot, long flags)
{
    if (!f->inode || !S_ISREG(f->inode->mode))
        return -ENODEV;
    if (!file_readable(f))
        return -EACCES;
    if ((flags & MAP_TYPE) == MAP_SHARED && (prot & PROT_WRITE)) {
        printk("osv: %s: mmap: a shared writable mapping of a file is not offered\n", process.path);
        return -ENODEV;
    }
    return 0;
}

static long do_mmap(u64 addr, u64 len, long prot, long flags, struct file *f, long offset)
{
    if (len == 0 || (offset & (PAGE_SIZE - 1)))
        return -EINVAL;
    if (f) {
        long err = mappable(f, prot, flags);
        if (err)
            return err;
    }
    len = ALIGN_UP(len, PAGE_SIZE);
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
        if (addr & (PAGE_SIZE - 1))
            return -EINVAL;
        if (flags & MAP_FIXED_NOREPLACE)
            for (u64 a = addr; a < addr + len; a += PAGE_SIZE)
                if (user_page_mapped(a))
                    return -EEXIST;
    } else {
        addr = place_mapping(addr, len);
        if (!addr)
            return -ENOMEM;
    }
    if (map_user(addr, len, f ? PROT_READ | PROT_WRITE : prot) < 0)
        return -ENOMEM;
    if (f) {
        spin_lock(&fs_lock);
        tmpfs_read_kernel(f->inode, (void *)addr, len, offset);
        spin_unlock(&fs_lock);
        protect_user(addr, len, prot);
    }
    return addr;
}

static long do_munmap(u64 addr, u64 len)
{
    if ((addr & (PAGE_SIZE - 1)) || len == 0)
        return -EINVAL;
    unmap_user(addr, ALIGN_UP(len, PAGE_SIZE));
    return 0;
}

static long do_mprotect(u64 addr, u64 len, long prot)
{
    if (addr & (PAGE_SIZE - 1))
        return -EINVAL;
    return protect_user(addr, ALIGN_UP(len, PAGE_SIZE), prot) < 0 ? -ENOMEM : 0;
}

long sys_madvise(const struct syscall_args *call)
{
    u64 addr = call->arg[0], len = call->arg[1];
    long advice = call->arg[2];
    if (addr & (PAGE_SIZE - 1))
        return -EINVAL;
    /* MADV_DONTNEED: anonymous private memory reads back as zeros. */
    if (advice == MADV_DONTNEED)
        discard_user(addr, ALIGN_UP(len, PAGE_SIZE));
    return 0;
}

/*
 * May a mapping grow into [addr, addr+len)? Only among mmap's mappings (below
 * mmap_next, brk may still want it), below the stack's guard gap, and only if free.
 */
static bool range_free(u64 addr, u64 len)
{
    if (addr < process.mmap_next || addr + len > process.stack_low - STACK_GUARD_GAP ||
        addr + len < addr)
        return false;
    for (u64 a = addr; a < addr + len; a += PAGE_SIZE)
        if (user_page_mapped(a))
            return false;
    return true;
}

/*
 * mremap: shrinking gives the tail back; growing maps more pages after the old ones
 * when they are free, else (MREMAP_MAYMOVE) moves the pages, frames and all, to where
 * mmap would put a mapping of the new size; MREMAP_FIXED moves them to new_addr.
 * The new pages get the protection of the old range's last one.
 */
static long do_mremap(u64 old, u64 old_size, u64 new_size, long flags, u64 new_addr)
{
    if ((old & (PAGE_SIZE - 1)) || (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED)) ||
        ((flags & MREMAP_FIXED) && !(flags & MREMAP_MAYMOVE)))
        return -EINVAL;             /* MREMAP_DONTUNMAP too: not offered */
    old_size = ALIGN_UP(old_size, PAGE_SIZE);
    new_size = ALIGN_UP(new_size, PAGE_SIZE);
    if (!new_size || !old_size)
        return -EINVAL;             /* old_size 0 duplicates shared mappings: there are none */
    for (u64 a = old; a < old + old_size; a += PAGE_SIZE)
        if (!user_page_mapped(a))
            return -EFAULT;
    int prot = user_page_prot(old + old_size - PAGE_SIZE);
    u64 to = old;
    if (flags & MREMAP_FIXED) {
        to = new_addr;
        if ((to & (PAGE_SIZE - 1)) || (to < old + old_size && old < to + new_size))
            return -EINVAL;
        if (to < USER_MIN || to + new_size > USER_MAX || range_overlaps_kernel(to, to + new_size))
            return -EINVAL;
        unmap_user(to, new_size);
    } else if (new_size > old_size && !range_free(old + old_size, new_size - old_size)) {
        if (!(flags & MREMAP_MAYMOVE))
            return -ENOMEM;
        to = process.mmap_next - new_size;
        if (to < process.brk || to > process.mmap_next)
            return -ENOMEM;
        process.mmap_next = to;
    }
    if (new_size < old_size) {
        unmap_user(old + new_size, old_size - new_size);
        old_size = new_size;
    }
    if (to != old && move_user(old, to, old_size) < 0)
        return -ENOMEM;
    if (new_size > old_size && map_user(to + old_size, new_size - old_size, prot) < 0)
        return -ENOMEM;
    return to;
}


/*
 * The calls that take process.mm_lock for the mapping bookkeeping. A mapping that
 * copies a file holds the file (fd_get) across it, so the file cannot go meanwhile.
 */
long sys_brk(const struct syscall_args *call)
{
    spin_lock(&process.mm_lock);
    long ret = do_brk(call->arg[0]);
    spin_unlock(&process.mm_lock);
    return ret;
}

long sys_mmap(const struct syscall_args *call)
{
    long flags = call->arg[3];
    struct file *f = NULL;
    if (!(flags & MAP_ANONYMOUS)) {
        f = fd_get(call->arg[4]);
        if (!f)
            return -EBADF;
    }
    spin_lock(&process.mm_lock);
    long ret = do_mmap(call->arg[0], call->arg[1], call->arg[2], flags, f, call->arg[5]);
    spin_unlock(&process.mm_lock);
    if (f)
        file_put(f);
    return ret;
}

long sys_munmap(const struct syscall_args *call)
{
    spin_lock(&process.mm_lock);
    long ret = do_munmap(call->arg[0], call->arg[1]);
    spin_unlock(&process.mm_lock);
    return ret;
}

long sys_mprotect(const struct syscall_args *call)
{
    spin_lock(&process.mm_lock);
    long ret = do_mprotect(call->arg[0], call->arg[1], call->arg[2]);
    spin_unlock(&process.mm_lock);
    return ret;
}

long sys_mremap(const struct syscall_args *call)
{
    spin_lock(&process.mm_lock);
    long ret = do_mremap(call->arg[0], call->arg[1], call->arg[2], call->arg[3], call->arg[4]);
    spin_unlock(&process.mm_lock);
    return ret;
}

/*
 * mlock, mlock2, munlock, mlockall, munlockall: every page stays in memory anyway (no
 * swap), so they succeed, as OSv's do, once their arguments are Linux's: page-aligned
 * lengths are rounded, flags known, the range the app's.
 */

static long lock_range(u64 addr, u64 len)
{
    u64 start = ALIGN_DOWN(addr, PAGE_SIZE), end = ALIGN_UP(addr + len, PAGE_SIZE);
    if (end < start)
        return -EINVAL;
    for (u64 a = start; a < end; a += PAGE_SIZE)
        if (!user_page_mapped(a))
            return -ENOMEM;         /* Linux's word for a range with unmapped pages */
    return 0;
}

long sys_mlock(const struct syscall_args *call)
{
    return lock_range(call->arg[0], call->arg[1]);
}

long sys_mlock2(const struct syscall_args *call)
{
    if (call->arg[2] & ~MLOCK_ONFAULT)
        return -EINVAL;
    return lock_range(call->arg[0], call->arg[1]);
}

long sys_munlock(const struct syscall_args *call)
{
    return lock_range(call->arg[0], call->arg[1]);
}

long sys_mlockall(const struct syscall_args *call)
{
    int flags = call->arg[0];
    if (!flags || (flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)) || flags == MCL_ONFAULT)
        return -EINVAL;
    return 0;
}

long sys_munlockall(const struct syscall_args *call)
{
    return 0;
}
