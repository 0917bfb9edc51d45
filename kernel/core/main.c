/*
 * kernel_main: from boot.S to the app's first instruction.
 *
 * The command line is OSv's: kernel options, then the executable's path and its
 * arguments, split like a POSIX shell would (quotes and backslashes):
 *   --strace --env=HOME=/ /hello one 'two words'
 * Kernel options:
 *   --strace        print each syscall as it returns, in strace's form
 *   --verbose       kernel statistics when the app exits
 *   --env=NAME=VAL  add to the app's environment (it has no other)
 *   --no-fsgsbase   switch FS with wrmsr even if the CPU has wrfsbase
 *   --fs-protocol=P how entry.S switches FS: counter (the default, the seed's), compare
 *                   (OSv's merged design) or lazy (entry.S's opening comment)
 *   --hz=N          timer interrupts per second per CPU (default 1000; 10 to 10000)
 *   --stdin=MODE    what feeds fd 0 through the terminal: none (default), pipe or tty
 *   --stdout=MODE   what fd 1 is on the host, and so here: tty (default) or pipe
 *   --stderr=MODE   the same for fd 2 (tty.c says what each mode means)
 *   --export=PATH   at the end, PATH's tree goes back to the host (export.c)
 *   --no-capture    the syscall history keeps no argument memory (to measure its cost)
 *   --fscheck       the FS-base watchdog on from boot (core/fscheck.c), as osv-fscheck on
 *                   sets it: for a recorded run, where a debugger's write would not be in
 *                   the recording (osvgdb triage --record)
 *   --test-panic    fault in the kernel on purpose, to exercise the panic path
 *   --inject=NAME   break the kernel on purpose in one of the ways of include/inject.h
 */
#include "arch.h"
#include "console.h"
#include "elf.h"
#include "fscheck.h"
#include "fastpath.h"
#include "initrd.h"
#include "inject.h"
#include "lib.h"
#include "mm.h"
#include "panic.h"
#include "process.h"
#include "pvh.h"
#include "syscall_history.h"
#include "thread.h"
#include "tty.h"
#include "export.h"
#include "tmpfs.h"
#include "vfs.h"
#include <linux/fcntl.h>

#define EXIT_USAGE 64               /* a command line we cannot follow (sysexits' EX_USAGE) */

noreturn void app_start(u64 entry, u64 stack, u64 rdx);

static char cmdline[4096];          /* as QEMU gave it, for "Cmdline:" and the debugger */
static char cmdline_words[4096];    /* the same, split into NUL-terminated words */

/* Split cmdline into words; returns the count, or -1 when it does not fit or a quote is open. */
static int split_words(const char *in, const char **words, int max)
{
    char *out = cmdline_words, *end = cmdline_words + sizeof(cmdline_words) - 1;
    int n = 0;
    while (*in) {
        while (*in == ' ' || *in == '\t' || *in == '\n')
            in++;
        if (!*in)
            break;
        if (n == max)
            return -1;
        words[n++] = out;
        char quote = 0;
        for (; *in && (quote || (*in != ' ' && *in != '\t' && *in != '\n')); in++) {
            if (out == end)
                return -1;
            if (quote == '\'' && *in == '\'')
                quote = 0;
            else if (quote == '"' && *in == '"')
                quote = 0;
            else if (!quote && (*in == '\'' || *in == '"'))
                quote = *in;
            else if (*in == '\\' && quote != '\'' && in[1])
                *out++ = *++in;
            else
                *out++ = *in;
        }
        if (quote)
            return -1;
        *out++ = 0;
    }
    return n;
}

static char cmdline_error[160];     /* why the command line was refused, reported after the banner */
static bool no_fsgsbase;
static bool test_panic;

unsigned injected;

static const struct { const char *name; unsigned bit; } inject_names[] = {
    { "tcgets60", INJECT_TCGETS60 },
    { "no-at-random", INJECT_NO_AT_RANDOM },
    { "rdx-garbage", INJECT_RDX_GARBAGE },
    { "lost-wake", INJECT_LOST_WAKE },
    { "triple-fault", INJECT_TRIPLE_FAULT },
};

static bool parse_inject(const char *name)
{
    for (unsigned i = 0; i < ARRAY_SIZE(inject_names); i++) {
        if (strcmp(name, inject_names[i].name) == 0) {
            injected |= inject_names[i].bit;
            return true;
        }
    }
    return false;
}

static int refuse(const char *fmt, const char *arg)
{
    snprintf(cmdline_error, sizeof(cmdline_error), fmt, arg);
    return EXIT_USAGE;
}

static bool parse_hz(const char *s)
{
    unsigned hz = 0;
    for (; *s >= '0' && *s <= '9' && hz <= 10000; s++)
        hz = hz * 10 + (*s - '0');
    if (*s || hz < 10 || hz > 10000)
        return false;
    timer_hz = hz;
    return true;
}

static const char *const fs_protocol_names[] = {
    [FS_PROTOCOL_COUNTER] = "counter", [FS_PROTOCOL_COMPARE] = "compare", [FS_PROTOCOL_LAZY] = "lazy",
};

static bool parse_fs_protocol(const char *s)
{
    for (unsigned p = 0; p < ARRAY_SIZE(fs_protocol_names); p++) {
        if (strcmp(s, fs_protocol_names[p]) == 0) {
            fs_protocol = p;
            return true;
        }
    }
    return false;
}

/*
 * "Cmdline: ..." whole (it may be longer than printk's buffer) and on one line: an
 * argument's newline or other control byte is shown as C writes it (\n, \033).
 */
static void print_cmdline(void)
{
    printk("Cmdline: ");
    for (const char *c = cmdline; *c; c++) {
        if (*c == '\n')
            printk("\\n");
        else if (*c == '\t')
            printk("\\t");
        else if ((unsigned char)*c < 0x20 || *c == 0x7f)
            printk("\\%03o", (unsigned char)*c);
        else
            console_write(c, 1);
    }
    printk("\n");
}

/* --stdin=, --stdout=, --stderr=: what stands behind fd `fd` (tty.h); `none` for fd 0 only. */
static bool parse_tty_mode(int fd, const char *s)
{
    static const char *const names[] = {
        [TTY_MODE_TTY] = "tty", [TTY_MODE_PIPE] = "pipe", [TTY_MODE_NONE] = "none",
    };
    for (unsigned m = 0; m < ARRAY_SIZE(names); m++) {
        if (strcmp(s, names[m]) == 0 && (fd == 0 || m != TTY_MODE_NONE)) {
            tty_modes[fd] = m;
            return true;
        }
    }
    return false;
}

static int parse_cmdline(void)
{
    const char *words[MAX_ARGS + MAX_ENVS + 16];
    int n = split_words(cmdline, words, ARRAY_SIZE(words));
    if (n < 0)
        return refuse("command line too long or has an unclosed quote%s", "");
    int i = 0;
    for (; i < n && words[i][0] == '-' && words[i][1] == '-'; i++) {
        if (strcmp(words[i], "--strace") == 0)
            process.strace = true;
        else if (strcmp(words[i], "--verbose") == 0)
            process.verbose = true;
        else if (strcmp(words[i], "--no-fsgsbase") == 0)
            no_fsgsbase = true;
        else if (strcmp(words[i], "--test-panic") == 0)
            test_panic = true;
        else if (strcmp(words[i], "--no-capture") == 0)
            syscall_capture_on = false;
        else if (strcmp(words[i], "--fscheck") == 0)
            fscheck_enabled = 1;
        else if (strncmp(words[i], "--hz=", 5) == 0) {
            if (!parse_hz(words[i] + 5))
                return refuse("--hz wants a number from 10 to 10000, not %s", words[i] + 5);
        } else if (strncmp(words[i], "--inject=", 9) == 0) {
            if (!parse_inject(words[i] + 9))
                return refuse("--inject: no such fault to inject: %s", words[i] + 9);
        } else if (strncmp(words[i], "--fs-protocol=", 14) == 0) {
            if (!parse_fs_protocol(words[i] + 14))
                return refuse("--fs-protocol wants counter, compare or lazy, not %s", words[i] + 14);
        } else if (strncmp(words[i], "--stdin=", 8) == 0) {
            if (!parse_tty_mode(0, words[i] + 8))
                return refuse("--stdin wants none, pipe or tty, not %s", words[i] + 8);
        } else if (strncmp(words[i], "--stdout=", 9) == 0) {
            if (!parse_tty_mode(1, words[i] + 9))
                return refuse("--stdout wants pipe or tty, not %s", words[i] + 9);
        } else if (strncmp(words[i], "--stderr=", 9) == 0) {
            if (!parse_tty_mode(2, words[i] + 9))
                return refuse("--stderr wants pipe or tty, not %s", words[i] + 9);
        } else if (strncmp(words[i], "--export=", 9) == 0) {
            if (!export_add(words[i] + 9))
                return refuse("--export wants an absolute path (16 at most), not %s", words[i] + 9);
        } else if (strncmp(words[i], "--env=", 6) == 0 && process.envc < MAX_ENVS)
            process.envp[process.envc++] = words[i] + 6;
        else
            return refuse("unknown kernel option %s", words[i]);
    }
    if (i == n)
        return refuse("no executable on the command line%s", "");
    if (n - i > MAX_ARGS)
        return refuse("too many arguments%s", "");
    process.path = words[i];
    for (; i < n; i++)
        process.argv[process.argc++] = words[i];
    return 0;
}

/* --test-panic: a real kernel page fault (a write to address 0), to exercise the panic path. */
static void panic_on_purpose(void)
{
    *(volatile u64 *)0 = 0;
}

static void print_boot_time(void)
{
    u64 ticks = rdtsc() - boot_tsc;
    u64 hundredths = ticks * 100 / tsc_per_ms;
    printk("Booted up in %lu.%02lu ms\n", hundredths / 100, hundredths % 100);
}

/*
 * The executable, process.path, in the filesystem: its bytes in one piece (the
 * initrd's, where it came from), or 127 (not there) or 126 (not a file), with the
 * reason said. /proc/self/exe names it from now on.
 */
static int find_executable(const u8 **image, u64 *size)
{
    struct lookup l;
    spin_lock(&fs_lock);
    long err = path_lookup(AT_FDCWD, process.path, LOOKUP_FOLLOW, &l);
    const u8 *bytes = err ? NULL : tmpfs_contiguous(l.inode);
    if (bytes) {
        *image = bytes;
        *size = l.inode->size;
    }
    spin_unlock(&fs_lock);
    lookup_release(&l);
    if (err) {
        exit_reason("%s: not found", process.path);
        return EXIT_NOT_FOUND;
    }
    if (!bytes) {
        exit_reason("%s: not a file the initrd brought", process.path);
        return EXIT_CANNOT_EXECUTE;
    }
    spin_lock(&fs_lock);
    tmpfs_proc_self_exe(process.path);
    spin_unlock(&fs_lock);
    return 0;
}

/* The app's main thread starts here, in kernel mode on its syscall stack. */
static void start_app_main(void *unused)
{
    __atomic_store_n(&process.app_started, true, __ATOMIC_RELEASE);
    app_start(process.entry, process.initial_stack,
              (injected & INJECT_RDX_GARBAGE) ? INJECT_RDX_VALUE : 0);
}

noreturn void kernel_main(u32 start_info_paddr)
{
    console_init();
    const struct hvm_start_info *si = phys_to_virt(start_info_paddr);
    if (si->magic != HVM_START_MAGIC) {
        printk("osv: not started by a PVH loader (start info magic %#x)\n", si->magic);
        arch_exit_qemu(EXIT_USAGE);
    }
    /* The command line first: --fs-protocol decides the counter every TCB starts with. */
    if (si->cmdline_paddr) {
        const char *c = phys_to_virt(si->cmdline_paddr);
        size_t n = strnlen(c, sizeof(cmdline) - 1);
        memcpy(cmdline, c, n);
        cmdline[n] = 0;
    }
    int status = parse_cmdline();
    arch_init_boot_cpu();
    mm_init(si);
    /* From here the kernel's __thread variables work: FS is the boot thread's TCB. */
    struct thread *boot = thread_create("boot", NULL, NULL);
    if (!boot)
        panic("cannot create the boot thread");
    sched_init_cpu(boot);
    arch_init_tsc();
    systime_init();
    syscall_history_init();
    fast_path_init();
    if (no_fsgsbase)
        arch_disable_fsgsbase();
    printk("OSv-style osvgdb kernel, x86-64, FS base by %s, FS protocol %s\n",
           fsgsbase_avail ? "wrfsbase" : "wrmsr", fs_protocol_names[fs_protocol]);
    if (status) {
        exit_reason("%s", cmdline_error);
        process_exit(status);
    }
    if (test_panic)
        panic_on_purpose();
    tmpfs_init();
    initrd_unpack(si);
    lapic_init();
    smp_init(si->rsdp_paddr);       /* last use of the start info: the trampoline may overwrite it */
    tty_init();

    const u8 *image;
    u64 size;
    status = find_executable(&image, &size);
    if (status)
        process_exit(status);
    struct thread *app = thread_create("main", start_app_main, NULL);
    if (!app)
        panic("cannot create the app's thread");
    app->is_app = true;
    process_set_main_thread(app);
    fd_init_terminal();
    status = elf_load(image, size);
    if (status)
        process_exit(status);

    print_boot_time();
    print_cmdline();
    sched_make_ready(app);
    /* The boot thread is now CPU 0's idle thread. */
    sched_idle_loop();
}
