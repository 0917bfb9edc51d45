/*
 * Filling the per-CPU syscall rings. A CPU enters records only in its own ring, with
 * interrupts off; the same call may complete on another CPU (the thread migrated), so
 * a record is claimed by setting SYSCALL_RECORD_WRITING with a compare-and-swap before
 * any other field changes, and released by the store that clears it. A reader (the
 * debugger, with the machine stopped) tells a half-written record by that flag, and
 * every slot below a ring's head is claimed: the head moves only after the claim.
 */
#include "lib.h"
#include "mm.h"
#include "syscall_history.h"
#include "trap.h"
#include <asm/unistd_64.h>
#include <linux/uio.h>

struct syscall_history syscall_history[MAX_CPUS];
u64 syscall_seq;
bool syscall_capture_on = true;
u32 syscall_trace_batch, syscall_trace_ticks;

/*
 * Which pointer arguments each syscall's record captures (see syscall_history.h). The
 * debugger's decoders (osvgdb/decode/args.py SIGNATURES: s, b:N, B:N, iov:N, IOV:N, and
 * the structs of STRUCT_KINDS: sigset/SIGSET, sigaction/SIGACTION, ...)
 * show the same arguments; tests/test_capture_rules.py checks the two agree.
 */
#define STRING(a)       { CAPTURE_STRING, a, 0 }
#define IN(a, n)        { CAPTURE_IN, a, n }
#define OUT(a, n)       { CAPTURE_OUT, a, n }
#define IN_IOVEC(a, n)  { CAPTURE_IN_IOVEC, a, n }
#define OUT_IOVEC(a, n) { CAPTURE_OUT_IOVEC, a, n }
#define IN_STRUCT(a, size)  { CAPTURE_IN_STRUCT, a, size }
#define OUT_STRUCT(a, size) { CAPTURE_OUT_STRUCT, a, size }
const struct syscall_capture_rule capture_rules[][SYSCALL_CAPTURE_RULES] = {
    [__NR_read] = { OUT(1, 2) },
    [__NR_write] = { IN(1, 2) },
    [__NR_open] = { STRING(0) },
    [__NR_stat] = { STRING(0) },
    [__NR_lstat] = { STRING(0) },
    [__NR_pread64] = { OUT(1, 2) },
    [__NR_pwrite64] = { IN(1, 2) },
    [__NR_readv] = { OUT_IOVEC(1, 2) },
    [__NR_writev] = { IN_IOVEC(1, 2) },
    [__NR_preadv] = { OUT_IOVEC(1, 2) },
    [__NR_pwritev] = { IN_IOVEC(1, 2) },
    [__NR_access] = { STRING(0) },
    [__NR_execve] = { STRING(0) },
    [__NR_mkdir] = { STRING(0) },
    [__NR_unlink] = { STRING(0) },
    [__NR_readlink] = { STRING(0), OUT(1, 2) },
    [__NR_openat] = { STRING(1) },
    [__NR_mkdirat] = { STRING(1) },
    [__NR_newfstatat] = { STRING(1) },
    [__NR_unlinkat] = { STRING(1) },
    [__NR_readlinkat] = { STRING(1), OUT(2, 3) },
    [__NR_faccessat] = { STRING(1) },
    [__NR_faccessat2] = { STRING(1) },
    [__NR_getrandom] = { OUT(0, 1) },
    [__NR_statx] = { STRING(1) },
    [__NR_chdir] = { STRING(0) },
    [__NR_creat] = { STRING(0) },
    [__NR_rmdir] = { STRING(0) },
    [__NR_rename] = { STRING(0), STRING(1) },
    [__NR_renameat] = { STRING(1), STRING(3) },
    [__NR_renameat2] = { STRING(1), STRING(3) },
    [__NR_link] = { STRING(0), STRING(1) },
    [__NR_linkat] = { STRING(1), STRING(3) },
    [__NR_symlink] = { STRING(0), STRING(1) },
    [__NR_symlinkat] = { STRING(0), STRING(2) },
    [__NR_truncate] = { STRING(0) },
    [__NR_chmod] = { STRING(0) },
    [__NR_fchmodat] = { STRING(1) },
    [__NR_chown] = { STRING(0) },
    [__NR_lchown] = { STRING(0) },
    [__NR_fchownat] = { STRING(1) },
    [__NR_utimensat] = { STRING(1) },
    [__NR_statfs] = { STRING(0) },
    /* struct sigaction is 32 bytes, sigset_t 8, stack_t 24, siginfo's head 32 (a timer's) */
    [__NR_rt_sigaction] = { IN_STRUCT(1, 32), OUT_STRUCT(2, 32) },
    [__NR_rt_sigprocmask] = { IN_STRUCT(1, 8), OUT_STRUCT(2, 8) },
    [__NR_rt_sigpending] = { OUT_STRUCT(0, 8) },
    [__NR_rt_sigsuspend] = { IN_STRUCT(0, 8) },
    [__NR_rt_sigtimedwait] = { IN_STRUCT(0, 8), OUT_STRUCT(1, 32) },
    [__NR_sigaltstack] = { IN_STRUCT(0, 24), OUT_STRUCT(1, 24) },
    [__NR_rt_sigqueueinfo] = { IN_STRUCT(2, 32) },
    [__NR_rt_tgsigqueueinfo] = { IN_STRUCT(3, 32) },
    /* struct epoll_event is 12 bytes (packed on x86-64) */
    [__NR_epoll_ctl] = { IN_STRUCT(3, 12) },
    [__NR_epoll_pwait] = { IN_STRUCT(4, 8) },
    [__NR_epoll_pwait2] = { IN_STRUCT(4, 8) },
};
#define NR_CAPTURE_RULES (sizeof(capture_rules) / sizeof(capture_rules[0]))

/* Bytes of capture_data already used by the record's regions. */
static u32 capture_used(const struct syscall_record *r, int *free_region)
{
    u32 used = 0;
    *free_region = -1;
    for (int i = 0; i < SYSCALL_CAPTURE_REGIONS; i++) {
        if (r->capture_len[i] == 0) {
            *free_region = i;
            break;
        }
        used += r->capture_len[i];
    }
    return used;
}

/* Append a region of up to len bytes at addr; false once the record is full. */
static bool capture_region(struct syscall_record *r, u64 addr, u64 len, bool string)
{
    int region;
    u32 used = capture_used(r, &region);
    if (region < 0 || used >= SYSCALL_CAPTURE_BYTES)
        return false;
    len = MIN(MIN(len, (u64)SYSCALL_CAPTURE_MAX), (u64)(SYSCALL_CAPTURE_BYTES - used));
    if (addr == 0 || len == 0)
        return true;
    u8 *dst = r->capture_data + used;
    u64 n = user_copy_present(dst, addr, len);
    if (string) {
        for (u64 i = 0; i < n; i++) {
            if (dst[i] == 0) {
                n = i + 1;          /* keep the NUL: the string ended inside the capture */
                break;
            }
        }
    }
    if (n == 0)
        return true;
    r->capture_addr[region] = addr;
    r->capture_len[region] = n;
    return true;
}

/* An iovec array and, while room remains, the first `total` bytes of its buffers. */
static void capture_iovec(struct syscall_record *r, u64 addr, u64 count, u64 total)
{
    struct iovec iov[SYSCALL_CAPTURE_MAX / sizeof(struct iovec)];
    count = MIN(count, (u64)(sizeof(iov) / sizeof(iov[0])));
    u64 n = user_copy_present(iov, addr, count * sizeof(struct iovec)) / sizeof(struct iovec);
    if (!capture_region(r, addr, n * sizeof(struct iovec), false))
        return;
    for (u64 i = 0; i < n && total > 0; i++) {
        u64 len = MIN((u64)iov[i].iov_len, total);
        if (!capture_region(r, (u64)iov[i].iov_base, len, false))
            return;
        total -= len;
    }
}

/* Capture the arguments capture_rules[] names for this moment: entry, or return with ret. */
static void capture(struct syscall_record *r, bool at_exit, long ret)
{
    if (!syscall_capture_on || r->nr >= NR_CAPTURE_RULES)
        return;
    for (int i = 0; i < SYSCALL_CAPTURE_RULES; i++) {
        const struct syscall_capture_rule *rule = &capture_rules[r->nr][i];
        u64 addr = r->args[rule->arg], size = r->args[rule->size_arg];
        bool out = rule->kind == CAPTURE_OUT || rule->kind == CAPTURE_OUT_IOVEC ||
                   rule->kind == CAPTURE_OUT_STRUCT;
        if (rule->kind == CAPTURE_NONE || out != at_exit || (out && ret < 0))
            continue;
        switch (rule->kind) {
        case CAPTURE_STRING:
            capture_region(r, addr, SYSCALL_CAPTURE_MAX, true);
            break;
        case CAPTURE_IN:
            capture_region(r, addr, size, false);
            break;
        case CAPTURE_OUT:
            capture_region(r, addr, MIN(size, (u64)ret), false);
            break;
        case CAPTURE_IN_IOVEC:
            capture_iovec(r, addr, size, ~0ull);
            break;
        case CAPTURE_OUT_IOVEC:
            capture_iovec(r, addr, size, ret);
            break;
        case CAPTURE_IN_STRUCT:
        case CAPTURE_OUT_STRUCT:
            capture_region(r, addr, rule->size_arg, false);
            break;
        }
    }
}

void syscall_history_init(void)
{
    for (int i = 0; i < MAX_CPUS; i++) {
        syscall_history[i].size = SYSCALL_HISTORY_SIZE;
        syscall_history[i].record_size = sizeof(struct syscall_record);
    }
}

/* Take a slot for writing, waiting out a completion in progress on another CPU. */
static void claim(struct syscall_record *r)
{
    for (;;) {
        u32 flags = __atomic_load_n(&r->flags, __ATOMIC_RELAXED);
        if (!(flags & SYSCALL_RECORD_WRITING) &&
            __atomic_compare_exchange_n(&r->flags, &flags, SYSCALL_RECORD_WRITING, false,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        cpu_relax();
    }
}

struct syscall_record *syscall_history_enter(const struct syscall_frame *f, int tid)
{
    struct arch_cpu *cpu = this_cpu();
    struct syscall_history *h = &syscall_history[cpu->id];
    struct syscall_record *r = &h->records[h->head % SYSCALL_HISTORY_SIZE];
    /*
     * Claim the slot before publishing it: a reader that sees the new head must find
     * the record torn (WRITING) or written, never the slot's previous contents. With
     * head bumped first, a debugger stopping this CPU in between read a never-used
     * slot as empty, or an overwritten one as a new call, and osv-trace lost or
     * repeated that call (issue 19).
     */
    claim(r);
    __atomic_store_n(&h->head, h->head + 1, __ATOMIC_RELEASE);
    r->seq = __atomic_add_fetch(&syscall_seq, 1, __ATOMIC_RELAXED);
    r->tsc_entry = rdtsc();
    r->tsc_exit = 0;
    r->nr = f->rax;
    r->exit_cpu = cpu->id;
    r->args[0] = f->rdi;
    r->args[1] = f->rsi;
    r->args[2] = f->rdx;
    r->args[3] = f->r10;
    r->args[4] = f->r8;
    r->args[5] = f->r9;
    r->ret = 0;
    r->rip = f->rip;
    r->fs_base = f->fs_base;
    r->kernel_tcb_counter = f->kernel_tcb_counter;
    r->cpu = cpu->id;
    r->tid = tid;
    memset(r->capture_len, 0, sizeof(r->capture_len));
    capture(r, false, 0);
    __atomic_store_n(&r->flags, SYSCALL_RECORD_IN_FLIGHT, __ATOMIC_RELEASE);
    return r;
}

/* Complete the record, unless the ring wrapped and the slot now holds a newer call. */
void syscall_history_exit(struct syscall_record *r, u64 seq, long ret)
{
    u32 expected = SYSCALL_RECORD_IN_FLIGHT;
    if (!__atomic_compare_exchange_n(&r->flags, &expected, SYSCALL_RECORD_WRITING, false,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;                     /* being rewritten for a newer call */
    if (r->seq != seq) {
        __atomic_store_n(&r->flags, SYSCALL_RECORD_IN_FLIGHT, __ATOMIC_RELEASE);
        return;                     /* the slot holds a newer call, still in flight */
    }
    r->ret = ret;
    r->exit_cpu = this_cpu()->id;
    capture(r, true, ret);
    r->tsc_exit = rdtsc();
    __atomic_store_n(&r->flags, SYSCALL_RECORD_DONE, __ATOMIC_RELEASE);
    __atomic_add_fetch(&syscall_history[r->cpu].exits, 1, __ATOMIC_RELAXED);
}

/*
 * The debugger's breakpoint: it reads every ring's new records here. noinline and the
 * barrier keep the call and the stores; the marks only decide when the next flush comes.
 */
__attribute__((noinline)) void syscall_trace_flush(void)
{
    for (unsigned i = 0; i < nr_cpus; i++) {
        struct syscall_history *h = &syscall_history[i];
        h->flushed_head = h->head;
        h->flushed_exits = __atomic_load_n(&h->exits, __ATOMIC_RELAXED);
        h->ticks_since_flush = 0;
    }
    __asm__ __volatile__("" : : : "memory");
}

/* After each syscall (tick false) and each timer tick: is a batch due on this CPU? */
void syscall_trace_check(bool tick)
{
    if (!syscall_trace_batch)
        return;
    struct syscall_history *h = &syscall_history[this_cpu()->id];
    u64 news = (h->head - h->flushed_head) +
               (__atomic_load_n(&h->exits, __ATOMIC_RELAXED) - h->flushed_exits);
    if (news == 0)
        return;
    if (news >= syscall_trace_batch || (tick && ++h->ticks_since_flush >= syscall_trace_ticks))
        syscall_trace_flush();
}
