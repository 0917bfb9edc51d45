/*
 * The ELF loader: static executables only. ET_EXEC goes at its link addresses, ET_DYN
 * (static-pie, which relocates itself) at PIE_BASE. Then the initial process stack of
 * the x86-64 psABI (figure 3.9): argc, argv, envp, auxv, and the strings they point at.
 * Anything we cannot run is rejected with one line naming the file and the reason.
 */
#include "elf.h"
#include "vfs.h"
#include "arch.h"
#include "console.h"
#include "inject.h"
#include "lib.h"
#include "mm.h"
#include "process.h"

#define PIE_BASE 0x555555554000UL       /* where Linux puts PIE executables */
#define STACK_TOP 0x7ffffffff000UL
#define STACK_SIZE (8UL << 20)            /* RLIMIT_STACK; populated on demand */
#define MMAP_TOP 0x7ffff7fff000UL       /* mmap allocates downwards from 120 MiB below the stack */
_Static_assert(MMAP_TOP <= STACK_TOP - STACK_SIZE - STACK_GUARD_GAP, "the stack's guard gap");

/* auxv types (Linux include/uapi/linux/auxvec.h) */
enum {
    AT_NULL = 0, AT_PHDR = 3, AT_PHENT = 4, AT_PHNUM = 5, AT_PAGESZ = 6, AT_BASE = 7,
    AT_FLAGS = 8, AT_ENTRY = 9, AT_UID = 11, AT_EUID = 12, AT_GID = 13, AT_EGID = 14,
    AT_PLATFORM = 15, AT_HWCAP = 16, AT_CLKTCK = 17, AT_SECURE = 23, AT_RANDOM = 25,
    AT_HWCAP2 = 26, AT_EXECFN = 31, AT_MINSIGSTKSZ = 51,
};

static int reject(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int reject(const char *fmt, ...)
{
    char buf[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    exit_reason("%s: %s", process.path, buf);
    return EXIT_CANNOT_EXECUTE;
}

static int segment_prot(u32 flags)
{
    return ((flags & PF_R) ? PROT_READ : 0) | ((flags & PF_W) ? PROT_WRITE : 0) |
           ((flags & PF_X) ? PROT_EXEC : 0);
}

/* Every check happens before anything is mapped, so a rejected file leaves no trace. */
static int check(const u8 *data, u64 size, const Elf64_Ehdr **ehp)
{
    if (size < 4 || memcmp(data, "\177ELF", 4) != 0)
        return reject("not an ELF file");
    if (size < sizeof(Elf64_Ehdr))
        return reject("truncated ELF header (%lu bytes)", size);
    const Elf64_Ehdr *eh = (const void *)data;
    if (eh->e_ident[4] != 2)
        return reject("not a 64-bit ELF (class %u)", eh->e_ident[4]);
    if (eh->e_ident[5] != 1)
        return reject("not a little-endian ELF");
    if (eh->e_machine != EM_X86_64)
        return reject("not an x86-64 ELF (e_machine %u)", eh->e_machine);
    if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)
        return reject("not an executable (e_type %u)", eh->e_type);
    if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0)
        return reject("bad program header table (phentsize %u, phnum %u)", eh->e_phentsize,
                      eh->e_phnum);
    if (eh->e_phoff > size || (u64)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff)
        return reject("truncated program headers (file has %lu bytes)", size);

    const Elf64_Phdr *ph = (const void *)(data + eh->e_phoff);
    u64 bias = eh->e_type == ET_DYN ? PIE_BASE : 0;
    int loads = 0;
    u64 pages = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_INTERP)
            return reject("dynamically linked (has PT_INTERP); only static executables run here");
        if (ph[i].p_type != PT_LOAD)
            continue;
        loads++;
        if (ph[i].p_offset > size || ph[i].p_filesz > size - ph[i].p_offset)
            return reject("truncated: segment %d needs bytes up to %#lx, file has %#lx", i,
                          ph[i].p_offset + ph[i].p_filesz, size);
        if (ph[i].p_filesz > ph[i].p_memsz)
            return reject("segment %d has filesz > memsz", i);
        u64 start = bias + ph[i].p_vaddr, end = start + ph[i].p_memsz;
        if (end < start || start < USER_MIN || end > MMAP_TOP)
            return reject("segment %d [%#lx, %#lx) is outside the app's address space", i, start, end);
        if (range_overlaps_kernel(start, end))
            return reject("segment %d [%#lx, %#lx) overlaps the kernel [%#lx, %#lx)", i, start, end,
                          KERNEL_WINDOW_START, KERNEL_WINDOW_END);
        pages += (ALIGN_UP(end, PAGE_SIZE) - ALIGN_DOWN(start, PAGE_SIZE)) / PAGE_SIZE;
    }
    if (!loads)
        return reject("no loadable segments");
    /* Refuse up front what cannot fit, rather than zeroing memory until it runs out. */
    if (pages > frames_free_count())
        return reject("needs %lu MiB of memory, %lu MiB free", (pages * PAGE_SIZE) >> 20,
                      (frames_free_count() * PAGE_SIZE) >> 20);
    *ehp = eh;
    return 0;
}

/* The protection a page gets: the union over every segment that covers part of it. */
static int page_prot(const Elf64_Phdr *ph, int phnum, u64 bias, u64 page)
{
    int prot = 0;
    for (int i = 0; i < phnum; i++) {
        u64 start = ALIGN_DOWN(bias + ph[i].p_vaddr, PAGE_SIZE);
        u64 end = bias + ph[i].p_vaddr + ph[i].p_memsz;
        if (ph[i].p_type == PT_LOAD && page >= start && page < end)
            prot |= segment_prot(ph[i].p_flags);
    }
    return prot;
}

static int map_segments(const u8 *data, const Elf64_Ehdr *eh, u64 bias)
{
    const Elf64_Phdr *ph = (const void *)(data + eh->e_phoff);
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        u64 start = bias + ph[i].p_vaddr;
        /* Writable while we copy; pages shared with an earlier segment keep their contents. */
        for (u64 a = ALIGN_DOWN(start, PAGE_SIZE); a < start + ph[i].p_memsz; a += PAGE_SIZE)
            if (!user_page_mapped(a) && map_user(a, PAGE_SIZE, PROT_READ | PROT_WRITE) < 0)
                return reject("out of memory loading segment %d", i);
        memcpy((void *)start, data + ph[i].p_offset, ph[i].p_filesz);
        u64 end = start + ph[i].p_memsz;
        if (end > process.image_end)
            process.image_end = end;
    }
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        u64 start = bias + ph[i].p_vaddr;
        for (u64 a = ALIGN_DOWN(start, PAGE_SIZE); a < start + ph[i].p_memsz; a += PAGE_SIZE)
            protect_user(a, PAGE_SIZE, page_prot(ph, eh->e_phnum, bias, a));
    }
    return 0;
}

/* Where the program headers are in memory: PT_PHDR, else inside the segment holding e_phoff. */
static u64 find_phdr(const u8 *data, const Elf64_Ehdr *eh, u64 bias)
{
    const Elf64_Phdr *ph = (const void *)(data + eh->e_phoff);
    for (int i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_PHDR)
            return bias + ph[i].p_vaddr;
    for (int i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && eh->e_phoff >= ph[i].p_offset &&
            eh->e_phoff < ph[i].p_offset + ph[i].p_filesz)
            return bias + ph[i].p_vaddr + (eh->e_phoff - ph[i].p_offset);
    return 0;
}

static u64 push_string(u64 *sp, const char *s)
{
    size_t n = strlen(s) + 1;
    *sp -= n;
    memcpy((void *)*sp, s, n);
    return *sp;
}

/* psABI figure 3.9, from the top of the stack down. */
static int build_stack(void)
{
    if (map_user(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE) < 0)
        return reject("out of memory for the stack");
    process.stack_low = STACK_TOP - STACK_SIZE;
    process.stack_high = STACK_TOP;

    u64 sp = STACK_TOP - 8;             /* the end marker: a null word at the very top */
    u64 execfn = push_string(&sp, process.path);
    u64 envp[MAX_ENVS], argv[MAX_ARGS];
    for (int i = process.envc - 1; i >= 0; i--)
        envp[i] = push_string(&sp, process.envp[i]);
    for (int i = process.argc - 1; i >= 0; i--)
        argv[i] = push_string(&sp, process.argv[i]);
    u64 platform = push_string(&sp, "x86_64");
    sp = ALIGN_DOWN(sp - 16, 16);
    u64 random = sp;
    random_bytes((u8 *)random, 16);

    u32 hwcap, hwcap2, minsigstksz;
    arch_cpu_features(&hwcap, &hwcap2, &minsigstksz);
    u64 auxv[][2] = {
        { AT_PHDR, process.phdr },      { AT_PHENT, sizeof(Elf64_Phdr) },
        { AT_PHNUM, process.phnum },    { AT_PAGESZ, PAGE_SIZE },
        { AT_BASE, 0 },                 { AT_FLAGS, 0 },
        { AT_ENTRY, process.entry },    { AT_UID, 0 },
        { AT_EUID, 0 },                 { AT_GID, 0 },
        { AT_EGID, 0 },                 { AT_SECURE, 0 },
        { AT_RANDOM, random },          { AT_HWCAP, hwcap },
        { AT_HWCAP2, hwcap2 },          { AT_CLKTCK, 100 },
        { AT_PLATFORM, platform },      { AT_EXECFN, execfn },
        { AT_MINSIGSTKSZ, minsigstksz },{ AT_NULL, 0 },
    };
    /* --inject=no-at-random: the entry is left out, as a loader that forgot it would. */
    unsigned nauxv = 0;
    for (unsigned i = 0; i < ARRAY_SIZE(auxv); i++) {
        if (auxv[i][0] != AT_RANDOM || !(injected & INJECT_NO_AT_RANDOM)) {
            auxv[nauxv][0] = auxv[i][0];
            auxv[nauxv++][1] = auxv[i][1];
        }
    }
    u64 words = 1 + (process.argc + 1) + (process.envc + 1) + 2 * nauxv;
    sp -= words * 8;
    sp = ALIGN_DOWN(sp, 16);            /* rsp is 16-byte aligned at argc */
    u64 *w = (u64 *)sp;
    process.initial_stack = sp;
    *w++ = process.argc;
    for (int i = 0; i < process.argc; i++)
        *w++ = argv[i];
    *w++ = 0;
    for (int i = 0; i < process.envc; i++)
        *w++ = envp[i];
    *w++ = 0;
    process.auxv = (u64)w;
    memcpy(w, auxv, nauxv * sizeof(auxv[0]));
    return 0;
}

int elf_load(const u8 *data, u64 size)
{
    const Elf64_Ehdr *eh = NULL;
    int status = check(data, size, &eh);
    if (status)
        return status;
    u64 bias = eh->e_type == ET_DYN ? PIE_BASE : 0;
    status = map_segments(data, eh, bias);
    if (status)
        return status;
    process.load_base = bias;
    process.entry = bias + eh->e_entry;
    process.phdr = find_phdr(data, eh, bias);
    process.phnum = eh->e_phnum;
    /* glibc's static startup grows brk for its TLS right after the image: keep it contiguous. */
    process.brk_start = process.brk = ALIGN_UP(process.image_end, PAGE_SIZE);
    process.mmap_next = MMAP_TOP;
    return build_stack();
}
