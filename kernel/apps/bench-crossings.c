/*
 * bench-crossings: what one kernel crossing costs, measured by the program itself, for
 * `osvgdb bench` (osvgdb/bench/). One freestanding static executable (-nostdlib: no
 * libc start-up, so nothing ever calls arch_prctl(ARCH_SET_FS) unless we do) that runs
 * both in the guest and on the host Linux, so the guest's figures and the host's
 * anchors come from the same loops.
 *
 *   bench-crossings [--host] [--runs N] [--fs none|set|both] BENCH...
 *
 * BENCH: syscall ctxsw-colocated ctxsw-apart pagefault interrupt wrfsbase rdfsbase.
 * --fs none: measure with a thread that never set its FS base (the kernel's counter
 * stays at its base of 1: no FS switch on any crossing); set: after
 * arch_prctl(ARCH_SET_FS) on a TCB of our own, and threads cloned with CLONE_SETTLS
 * (every crossing from app code switches FS); both (the default): none, then set.
 *
 * The clock is rdtsc. Under QEMU's TCG with `-icount shift=0` the guest's TSC counts
 * guest instructions, so every figure below is an instruction count; elsewhere it
 * counts TSC ticks, which the caller turns into ns with `tsc` and `ns` (the TSC and
 * CLOCK_MONOTONIC over the whole run). Each operation is timed on its own, between two
 * rdtsc, so an interrupt that lands in one sample cannot move the median:
 *
 *   TIMER_START; op; TIMER_END          delta = op + the timer's own instructions
 *   TIMER_START; TIMER_END              the empty timer, measured the same way
 *
 * Each run prints one line (parsed by osvgdb/bench/measure.py, parse_line):
 *
 *   osv-bench bench=B fs=F run=R samples=S per=P median=M min=m max=X empty=E tsc=T ns=N
 *
 * M, m, X: the median, least and greatest sample (rdtsc ticks); E the empty timer's
 * median; P the operations one sample holds (a ctxsw sample is a round trip: two
 * handoffs; a wrfsbase sample 32 of them, an rdfsbase one 16). Per operation: (M - E) / P.
 * interrupt has no op to put in a timer: its samples are the gaps a timer interrupt
 * leaves in a loop of back-to-back rdtsc, and E that loop's normal period.
 * A bench that cannot run prints `osv-bench bench=B fs=F unavailable=WHY`.
 */

typedef unsigned long u64;
typedef unsigned int u32;

#define SYS_write 1
#define SYS_mmap 9
#define SYS_munmap 11
#define SYS_getppid 110
#define SYS_madvise 28
#define SYS_clone 56
#define SYS_exit 60
#define SYS_gettid 186
#define SYS_futex 202
#define SYS_sched_setaffinity 203
#define SYS_sched_getaffinity 204
#define SYS_clock_gettime 228
#define SYS_exit_group 231
#define SYS_arch_prctl 158

#define ARCH_SET_FS 0x1002
#define FUTEX_WAIT 0
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
#define CLONE_VM 0x100UL
#define CLONE_FS_ 0x200UL
#define CLONE_FILES 0x400UL
#define CLONE_SIGHAND 0x800UL
#define CLONE_THREAD 0x10000UL
#define CLONE_SYSVSEM 0x40000UL
#define CLONE_SETTLS 0x80000UL
#define CLONE_CHILD_CLEARTID 0x200000UL
#define CLONE_CHILD_SETTID 0x1000000UL
#define AT_HWCAP2 26
#define HWCAP2_FSGSBASE 2
#define PAGE 4096UL
#define MAX_SAMPLES 4096

/* ---- raw syscalls ---- */

static long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ __volatile__("syscall" : "=a"(ret)
                         : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
}

#define sys1(nr, a) sys6(nr, (long)(a), 0, 0, 0, 0, 0)
#define sys2(nr, a, b) sys6(nr, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(nr, a, b, c) sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(nr, a, b, c, d) sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* The compiler may emit calls to these for struct copies and zeroing. */
void *memset(void *s, int c, unsigned long n)
{
    char *p = s;
    while (n--)
        *p++ = (char)c;
    return s;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
    char *p = d;
    const char *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

static int streq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* ---- output: one line at a time, one write each ---- */

static char line[512];
static unsigned line_len;

static void put(const char *s)
{
    while (*s && line_len < sizeof(line) - 1)
        line[line_len++] = *s++;
}

static void put_u64(u64 v)
{
    char digits[24];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 24);
    while (n && line_len < sizeof(line) - 1)
        line[line_len++] = digits[--n];
}

static void put_field(const char *name, u64 v)
{
    put(" ");
    put(name);
    put("=");
    put_u64(v);
}

static void end_line(void)
{
    line[line_len++] = '\n';
    sys3(SYS_write, 1, line, line_len);
    line_len = 0;
}

static void start_line(const char *bench, const char *fs)
{
    put("osv-bench bench=");
    put(bench);
    put(" fs=");
    put(fs);
}

static void unavailable(const char *bench, const char *fs, const char *why)
{
    start_line(bench, fs);
    put(" unavailable=");
    put(why);
    end_line();
}

static __attribute__((noreturn)) void die(const char *why)
{
    put("osv-bench error=");
    put(why);
    end_line();
    sys1(SYS_exit_group, 1);
    __builtin_unreachable();
}

/* ---- clocks ---- */

/*
 * The timer around one operation. lfence keeps rdtsc from running ahead of the
 * instructions before it (it matters on hardware, not under icount); the result is in
 * rax, the start in r12 (callee-saved, so it survives a call or a syscall).
 */
#define TIMER_START "lfence\n\trdtsc\n\tshl $32, %%rdx\n\tor %%rdx, %%rax\n\tmov %%rax, %%r12\n\t"
#define TIMER_END "lfence\n\trdtsc\n\tshl $32, %%rdx\n\tor %%rdx, %%rax\n\tsub %%r12, %%rax\n\t"

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ __volatile__("lfence; rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return (u64)hi << 32 | lo;
}

static u64 monotonic_ns(void)
{
    long ts[2];
    sys2(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, ts);
    return (u64)ts[0] * 1000000000UL + (u64)ts[1];
}

static u64 time_empty(void)
{
    u64 d;
    __asm__ __volatile__(TIMER_START TIMER_END : "=a"(d) : : "rdx", "r12", "memory");
    return d;
}

/* ---- samples ---- */

static u64 samples[MAX_SAMPLES];
static u64 empties[MAX_SAMPLES];

/* Shell sort (Ciura's gaps): few instructions, which matters under icount. */
static void sort(u64 *a, unsigned n)
{
    static const unsigned gaps[] = { 701, 301, 132, 57, 23, 10, 4, 1 };
    for (unsigned g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
        unsigned gap = gaps[g];
        for (unsigned i = gap; i < n; i++) {
            u64 v = a[i];
            unsigned j = i;
            for (; j >= gap && a[j - gap] > v; j -= gap)
                a[j] = a[j - gap];
            a[j] = v;
        }
    }
}

static u64 median(u64 *a, unsigned n)
{
    sort(a, n);
    return a[n / 2];
}

/* The empty timer's median over n samples (the caller's `empty`). */
static u64 empty_median(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        empties[i] = time_empty();
    return median(empties, n);
}

struct run {
    const char *bench, *fs;
    unsigned number, per;
    u64 tsc0, ns0;
};

static void run_begin(struct run *r)
{
    r->ns0 = monotonic_ns();
    r->tsc0 = rdtsc();
}

static void run_report(struct run *r, unsigned n, u64 empty)
{
    u64 tsc = rdtsc() - r->tsc0, ns = monotonic_ns() - r->ns0;
    start_line(r->bench, r->fs);
    put_field("run", r->number);
    put_field("samples", n);
    put_field("per", r->per);
    put_field("median", median(samples, n));
    put_field("min", samples[0]);
    put_field("max", samples[n - 1]);
    put_field("empty", empty);
    put_field("tsc", tsc);
    put_field("ns", ns);
    end_line();
}

/* ---- threads: raw clone, a stack and a TCB each ---- */

struct tcb {
    struct tcb *self;               /* as glibc's and musl's: %fs:0 is the TCB's address */
    u64 pad[7];
};

static struct tcb main_tcb = { &main_tcb, { 0 } };
static struct tcb partner_tcb = { &partner_tcb, { 0 } };
static int fs_set;                  /* arch_prctl(ARCH_SET_FS) was called: clone with SETTLS */
static int on_host;

static char partner_stack[65536] __attribute__((aligned(16)));

/*
 * spawn(flags, stack_top, ctid, tls, fn, arg): clone a thread that calls fn(arg) on
 * stack_top and then exits; the parent gets the child's tid. The child must not
 * return through the parent's frames, hence the assembler.
 */
long spawn(u64 flags, void *stack_top, int *ctid, u64 tls, void (*fn)(void *), void *arg);
__asm__(".text\n"
        ".globl spawn\n"
        "spawn:\n"
        "    sub $16, %rsi\n"
        "    mov %r8, (%rsi)\n"             /* fn and arg on the child's stack */
        "    mov %r9, 8(%rsi)\n"
        "    mov %rdx, %r10\n"              /* child_tid */
        "    mov %rcx, %r8\n"               /* tls */
        "    xor %edx, %edx\n"              /* parent_tid */
        "    mov $56, %eax\n"
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jnz 1f\n"
        "    pop %rax\n"
        "    pop %rdi\n"
        "    xor %ebp, %ebp\n"
        "    call *%rax\n"
        "    mov $60, %eax\n"
        "    xor %edi, %edi\n"
        "    syscall\n"
        "    hlt\n"
        "1:  ret\n");

static int partner_tid_word;

static void start_partner(void (*fn)(void *), void *arg)
{
    u64 flags = CLONE_VM | CLONE_FS_ | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | (fs_set ? CLONE_SETTLS : 0);
    long tid = spawn(flags, partner_stack + sizeof(partner_stack), &partner_tid_word,
                     (u64)&partner_tcb, fn, arg);
    if (tid < 0)
        die("clone");
}

/*
 * Until the partner has exited: CLONE_CHILD_CLEARTID zeroes the word and wakes it with
 * a shared FUTEX_WAKE, which Linux keys apart from private waiters, so this wait is
 * shared (as glibc's pthread_join) or it may sleep for ever.
 */
static void join_partner(void)
{
    int v;
    while ((v = __atomic_load_n(&partner_tid_word, __ATOMIC_ACQUIRE)) != 0)
        sys4(SYS_futex, &partner_tid_word, FUTEX_WAIT, v, 0);
}

/* The CPUs we may run on, as sched_getaffinity said at start-up (before any pinning). */
static int usable_cpus[64];
static int nr_usable_cpus;

static void find_cpus(void)
{
    u64 mask[16] = { 0 };
    long bytes = sys3(SYS_sched_getaffinity, 0, sizeof(mask), mask);
    for (long i = 0; i < bytes * 8 && nr_usable_cpus < 64; i++)
        if ((mask[i / 64] >> (i % 64)) & 1)
            usable_cpus[nr_usable_cpus++] = (int)i;
}

static void pin_self(int cpu)
{
    u64 mask[16] = { 0 };
    mask[cpu / 64] = 1UL << (cpu % 64);
    if (sys3(SYS_sched_setaffinity, sys1(SYS_gettid, 0), sizeof(mask), mask) != 0)
        die("sched_setaffinity");
}

/* ---- the benchmarks ---- */

static unsigned runs = 5;

/* syscall: getppid's round trip, from the syscall instruction to the kernel's jmp back. */
static u64 time_getppid(void)
{
    u64 d;
    __asm__ __volatile__(TIMER_START "mov $110, %%eax\n\tsyscall\n\t" TIMER_END
                         : "=a"(d) : : "rcx", "rdx", "r11", "r12", "memory");
    return d;
}

/* The empty timer with the syscall's setup, so that only the syscall differs. */
static u64 time_getppid_empty(void)
{
    u64 d;
    __asm__ __volatile__(TIMER_START "mov $110, %%eax\n\t" TIMER_END
                         : "=a"(d) : : "rcx", "rdx", "r11", "r12", "memory");
    return d;
}

static void bench_syscall(const char *fs)
{
    enum { N = 2000 };
    for (unsigned i = 0; i < N; i++)    /* warm-up */
        time_getppid();
    for (unsigned r = 1; r <= runs; r++) {
        struct run run = { "syscall", fs, r, 1, 0, 0 };
        run_begin(&run);
        for (unsigned i = 0; i < N; i++) {
            samples[i] = time_getppid();
            empties[i] = time_getppid_empty();
        }
        run_report(&run, N, median(empties, N));
    }
}

/*
 * ctxsw: two threads hand a token back and forth through one futex word, as OSv's
 * tests/misc-ctxsw.cc does: `turn` says whose turn it is; each side flips it, wakes
 * the other and waits until it is its turn again. A sample is a round trip (two
 * handoffs) timed by the main thread.
 */
static volatile int turn;               /* 0: main's turn, 1: the partner's */
static unsigned handoffs_left;

static void futex_wait(volatile int *word, int value)
{
    sys4(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, 0);
}

static void futex_wake(volatile int *word)
{
    sys3(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1);
}

static void partner(void *cpu)
{
    if ((long)cpu >= 0)
        pin_self((int)(long)cpu);
    while (handoffs_left--) {
        while (turn == 0)
            futex_wait(&turn, 0);
        turn = 0;
        futex_wake(&turn);
    }
}

static void round_trip(void)
{
    turn = 1;
    futex_wake(&turn);
    while (turn == 1)
        futex_wait(&turn, 1);
}

static void nothing(void)
{
}

/*
 * One timer around a call, for the round trip and for its empty timer alike (a call of
 * a function that returns at once): the same code around both, so that they differ
 * only in the function called.
 */
static __attribute__((noinline)) u64 time_call(void (*fn)(void))
{
    u64 t0 = rdtsc();
    fn();
    return rdtsc() - t0;
}

static void bench_ctxsw(const char *name, const char *fs, int apart)
{
    enum { N = 400, WARM = 100 };
    if (apart && nr_usable_cpus < 2) {
        unavailable(name, fs, "one-cpu");
        return;
    }
    int here = usable_cpus[0], there = apart ? usable_cpus[1] : here;
    pin_self(here);
    turn = 0;
    handoffs_left = WARM + runs * N;
    __atomic_store_n(&partner_tid_word, 1, __ATOMIC_RELEASE);
    start_partner(partner, (void *)(long)there);
    for (unsigned i = 0; i < WARM; i++)
        round_trip();
    for (unsigned r = 1; r <= runs; r++) {
        struct run run = { name, fs, r, 2, 0, 0 };
        run_begin(&run);
        for (unsigned i = 0; i < N; i++) {
            samples[i] = time_call(round_trip);
            empties[i] = time_call(nothing);
        }
        run_report(&run, N, median(empties, N));
    }
    join_partner();
}

/*
 * pagefault: the first touch (a one-byte store) of each page of a fresh anonymous
 * mapping: the fault, the kernel's zeroed frame, the return, the store again. The
 * empty timer is the same store to a page that is there already.
 */
static u64 time_store(volatile char *p)
{
    u64 d;
    __asm__ __volatile__(TIMER_START "movb $1, (%[p])\n\t" TIMER_END
                         : "=&a"(d) : [p] "r"(p) : "rdx", "r12", "memory");
    return d;
}

static char *map_fresh(u64 pages)
{
    long p = sys6(SYS_mmap, 0, (long)(pages * PAGE), 3 /* RW */, 0x22 /* PRIVATE|ANON */, -1, 0);
    if (p < 0 && p > -4096)
        die("mmap");
    sys3(SYS_madvise, p, pages * PAGE, 15 /* MADV_NOHUGEPAGE: one fault per 4 KiB page */);
    return (char *)p;
}

/*
 * Run 0 is the warm-up, as the others but not reported: the first mapping of fresh
 * addresses also builds page tables and takes frames from memory never used, the later
 * ones reuse what munmap gave back. `present` is the empty timer's page set.
 */
static void bench_pagefault(const char *fs)
{
    enum { N = 256 };
    char *present = map_fresh(N);
    for (unsigned i = 0; i < N; i++)
        present[i * PAGE] = 1;
    for (unsigned r = 0; r <= runs; r++) {
        char *fresh = map_fresh(N);
        struct run run = { "pagefault", fs, r, 1, 0, 0 };
        run_begin(&run);
        for (unsigned i = 0; i < N; i++) {
            samples[i] = time_store(fresh + i * PAGE);
            empties[i] = time_store(present + i * PAGE);
        }
        if (r)
            run_report(&run, N, median(empties, N));
        sys2(SYS_munmap, fresh, N * PAGE);
    }
    sys2(SYS_munmap, present, N * PAGE);
}

/*
 * interrupt: a loop of back-to-back rdtsc, nothing else, until two reads are more than
 * `threshold` apart: that gap is the loop's period plus what came between, a timer
 * interrupt that landed in app code (its delivery, entry, handler, exit, iretq). Returns
 * the gap, or the last period when `limit` iterations passed without one. The period is
 * measured by two iterations with no threshold (the first one's delta is shorter: it
 * starts at the read before the loop).
 */
static u64 rdtsc_gap(u64 threshold, u64 limit)
{
    u64 gap;
    __asm__ __volatile__("rdtsc\n\t"
                         "shl $32, %%rdx\n\t"
                         "or %%rdx, %%rax\n\t"
                         "mov %%rax, %%r8\n"
                         "1:\n\t"
                         "rdtsc\n\t"
                         "shl $32, %%rdx\n\t"
                         "or %%rdx, %%rax\n\t"
                         "mov %%rax, %%rcx\n\t"
                         "sub %%r8, %%rcx\n\t"
                         "mov %%rax, %%r8\n\t"
                         "cmp %[threshold], %%rcx\n\t"
                         "ja 2f\n\t"
                         "dec %[limit]\n\t"
                         "jnz 1b\n"
                         "2:\n\t"
                         : "=c"(gap), [limit] "+r"(limit)
                         : [threshold] "r"(threshold)
                         : "rax", "rdx", "r8", "memory", "cc");
    return gap;
}

/*
 * A gap is more than 8 loop periods (at least 64 ticks): under icount the period is 10
 * instructions and a timer interrupt some 300 more; on hardware (KVM) the period is a
 * few tens of cycles and a stall of a cache miss must not count as an interrupt.
 */
static void bench_interrupt(const char *fs)
{
    enum { N = 16 };
    const u64 limit = 1UL << 32;        /* iterations before giving up: no timer at all */
    if (on_host) {
        unavailable("interrupt", fs, "guest-only");
        return;
    }
    for (unsigned i = 0; i < N; i++)
        empties[i] = rdtsc_gap(~0UL, 2);
    u64 threshold = 8 * median(empties, N);
    if (threshold < 64)
        threshold = 64;
    for (unsigned i = 0; i < 4; i++)    /* warm-up */
        if (rdtsc_gap(threshold, limit) <= threshold)
            die("no-timer-interrupt");
    for (unsigned r = 1; r <= runs; r++) {
        struct run run = { "interrupt", fs, r, 1, 0, 0 };
        run_begin(&run);
        for (unsigned i = 0; i < N; i++) {
            samples[i] = rdtsc_gap(threshold, limit);
            empties[i] = rdtsc_gap(~0UL, 2);
        }
        run_report(&run, N, median(empties, N));
    }
}

/*
 * wrfsbase, rdfsbase: 256 of them back to back per sample, in host user mode (Linux
 * allows them when AT_HWCAP2 has HWCAP2_FSGSBASE). wrfsbase alternates between two
 * TCBs, as a switch does; FS is put back as it was (nothing here uses it). 256, not
 * 16: an instruction of a cycle or two times 16 is below the step of a virtual
 * machine's TSC (26 ticks seen on these hosts), and the sample's median then equalled
 * the empty timer's: a cost of 0.
 */
static u64 hwcap2;

#define REP16(s) s s s s s s s s s s s s s s s s
#define REP256(s) REP16(REP16(s))

static u64 time_wrfsbase(u64 a, u64 b)
{
    u64 d;
    __asm__ __volatile__(TIMER_START REP256("wrfsbase %[a]\n\twrfsbase %[b]\n\t") TIMER_END
                         : "=&a"(d) : [a] "r"(a), [b] "r"(b) : "rdx", "r12", "memory");
    return d;
}

static u64 time_rdfsbase(void)
{
    u64 d;
    __asm__ __volatile__(TIMER_START REP256("rdfsbase %%rcx\n\t") TIMER_END
                         : "=a"(d) : : "rcx", "rdx", "r12", "memory");
    return d;
}

static void bench_fsbase(const char *name, const char *fs)
{
    enum { N = 2000 };
    if (!on_host) {
        unavailable(name, fs, "host-only");
        return;
    }
    if (!(hwcap2 & HWCAP2_FSGSBASE)) {
        unavailable(name, fs, "no-hwcap2-fsgsbase");
        return;
    }
    int write = streq(name, "wrfsbase");
    u64 old;
    __asm__ __volatile__("rdfsbase %0" : "=r"(old));
    for (unsigned r = 0; r <= runs; r++) {     /* run 0: warm-up, not reported */
        struct run run = { name, fs, r, write ? 512 : 256, 0, 0 };
        run_begin(&run);
        for (unsigned i = 0; i < N; i++)
            samples[i] = write ? time_wrfsbase((u64)&main_tcb, (u64)&partner_tcb) : time_rdfsbase();
        __asm__ __volatile__("wrfsbase %0" : : "r"(old) : "memory");
        if (r)
            run_report(&run, N, empty_median(N));
    }
}

/* ---- main ---- */

static const char *const benches[] = {
    "syscall", "ctxsw-colocated", "ctxsw-apart", "pagefault", "interrupt", "wrfsbase", "rdfsbase",
};

static void run_bench(const char *name, const char *fs)
{
    if (streq(name, "syscall"))
        bench_syscall(fs);
    else if (streq(name, "ctxsw-colocated"))
        bench_ctxsw(name, fs, 0);
    else if (streq(name, "ctxsw-apart"))
        bench_ctxsw(name, fs, 1);
    else if (streq(name, "pagefault"))
        bench_pagefault(fs);
    else if (streq(name, "interrupt"))
        bench_interrupt(fs);
    else
        bench_fsbase(name, fs);
}

static unsigned parse_unsigned(const char *s)
{
    unsigned v = 0;
    if (!*s)
        die("bad-number");
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000)
            die("bad-number");
        v = v * 10 + (unsigned)(*s - '0');
    }
    return v;
}

static void set_fs(void)
{
    if (sys2(SYS_arch_prctl, ARCH_SET_FS, &main_tcb) != 0)
        die("arch_prctl");
    fs_set = 1;
}

void main_c(long *sp)
{
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    while (*envp)
        envp++;
    for (u64 *aux = (u64 *)(envp + 1); aux[0]; aux += 2)
        if (aux[0] == AT_HWCAP2)
            hwcap2 = aux[1];

    find_cpus();
    const char *fs = "both";
    const char *chosen[16];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (streq(argv[i], "--host"))
            on_host = 1;
        else if (streq(argv[i], "--runs") && i + 1 < argc)
            runs = parse_unsigned(argv[++i]);
        else if (streq(argv[i], "--fs") && i + 1 < argc)
            fs = argv[++i];
        else {
            int known = 0;
            for (unsigned b = 0; b < sizeof(benches) / sizeof(benches[0]); b++)
                known |= streq(argv[i], benches[b]);
            if (!known || n == 16)
                die("unknown-bench");
            chosen[n++] = argv[i];
        }
    }
    if (!runs || runs > 100)
        die("bad-runs");
    if (!streq(fs, "none") && !streq(fs, "set") && !streq(fs, "both"))
        die("bad-fs");
    if (!streq(fs, "set"))
        for (int i = 0; i < n; i++)
            run_bench(chosen[i], "none");
    if (!streq(fs, "none")) {
        set_fs();
        for (int i = 0; i < n; i++)
            run_bench(chosen[i], "set");
    }
    put("osv-bench done");
    end_line();
    sys1(SYS_exit_group, 0);
}

/* The ELF entry: rsp at argc (psABI 3.4.1); main_c gets that and a 16-byte aligned stack. */
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "    xor %ebp, %ebp\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call main_c\n"
        "    hlt\n");
