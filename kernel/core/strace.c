/*
 * The kernel's --strace output, in strace's form. Arguments are decoded modestly
 * (numbers, strings, buffers); the debugger's osv-syscalls does the full decoding.
 */
#include "console.h"
#include "lib.h"
#include "mm.h"
#include "syscall_history.h"
#include "syscall_names.h"
#include <asm/unistd_64.h>
#include <asm-generic/errno.h>

/*
 * Argument kinds, one letter per argument:
 *   d signed  u unsigned  x hex  s string  b buffer of the next argument's length
 *   B buffer the call filled, of the return value's length  f dirfd (AT_FDCWD)
 * and the return value's: d (errno on failure) or x (addresses: brk, mmap).
 */
struct syscall_format {
    const char *args;
    char ret;
};

static const struct syscall_format formats[] = {
    [__NR_read] = { "dBu", 'd' },          [__NR_write] = { "dbu", 'd' },
    [__NR_open] = { "sxx", 'd' },          [__NR_close] = { "d", 'd' },
    [__NR_fstat] = { "dx", 'd' },          [__NR_lseek] = { "ddd", 'd' },
    [__NR_mmap] = { "xuxxdx", 'x' },       [__NR_mprotect] = { "xux", 'd' },
    [__NR_munmap] = { "xu", 'd' },         [__NR_brk] = { "x", 'x' },
    [__NR_rt_sigaction] = { "dxxu", 'd' }, [__NR_rt_sigprocmask] = { "dxxu", 'd' },
    [__NR_ioctl] = { "dxx", 'd' },         [__NR_writev] = { "dxd", 'd' },
    [__NR_sched_yield] = { "", 'd' },      [__NR_madvise] = { "xud", 'd' },
    [__NR_nanosleep] = { "xx", 'd' },      [__NR_getpid] = { "", 'd' },
    [__NR_exit] = { "d", 'd' },            [__NR_uname] = { "x", 'd' },
    [__NR_readlink] = { "sBu", 'd' },      [__NR_gettimeofday] = { "xx", 'd' },
    [__NR_getuid] = { "", 'd' },           [__NR_getgid] = { "", 'd' },
    [__NR_geteuid] = { "", 'd' },          [__NR_getegid] = { "", 'd' },
    [__NR_getppid] = { "", 'd' },          [__NR_arch_prctl] = { "xx", 'd' },
    [__NR_gettid] = { "", 'd' },           [__NR_set_tid_address] = { "x", 'd' },
    [__NR_clock_gettime] = { "dx", 'd' },  [__NR_exit_group] = { "d", 'd' },
    [__NR_openat] = { "fsxx", 'd' },       [__NR_newfstatat] = { "fsxx", 'd' },
    [__NR_readlinkat] = { "fsBu", 'd' },   [__NR_set_robust_list] = { "xu", 'd' },
    [__NR_prlimit64] = { "ddxx", 'd' },    [__NR_getrandom] = { "Bux", 'd' },
    [__NR_rseq] = { "xuxx", 'd' },         [__NR_clock_nanosleep] = { "ddxx", 'd' },
    [__NR_stat] = { "sx", 'd' },           [__NR_lstat] = { "sx", 'd' },         [__NR_pread64] = { "dBud", 'd' },
};

static const struct { int nr; const char *name, *text; } errnos[] = {
    { EPERM, "EPERM", "Operation not permitted" },
    { ENOENT, "ENOENT", "No such file or directory" },
    { EINTR, "EINTR", "Interrupted system call" },
    { EBADF, "EBADF", "Bad file descriptor" },
    { EAGAIN, "EAGAIN", "Resource temporarily unavailable" },
    { ENOMEM, "ENOMEM", "Cannot allocate memory" },
    { EACCES, "EACCES", "Permission denied" },
    { EFAULT, "EFAULT", "Bad address" },
    { EEXIST, "EEXIST", "File exists" },
    { ENOTDIR, "ENOTDIR", "Not a directory" },
    { EISDIR, "EISDIR", "Is a directory" },
    { EINVAL, "EINVAL", "Invalid argument" },
    { EMFILE, "EMFILE", "Too many open files" },
    { ENOTTY, "ENOTTY", "Inappropriate ioctl for device" },
    { ESPIPE, "ESPIPE", "Illegal seek" },
    { EROFS, "EROFS", "Read-only file system" },
    { ERANGE, "ERANGE", "Numerical result out of range" },
    { ENOSYS, "ENOSYS", "Function not implemented" },
    { ENODEV, "ENODEV", "No such device" },
};

const char *syscall_name(u32 nr)
{
    if (nr < ARRAY_SIZE(syscall_names) && syscall_names[nr])
        return syscall_names[nr];
    return NULL;
}

struct line {
    char buf[400];
    size_t len;
};

static void add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct line *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (l->len < sizeof(l->buf))
        l->len += vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
    va_end(ap);
    if (l->len > sizeof(l->buf) - 1)
        l->len = sizeof(l->buf) - 1;
}

#define STRING_LIMIT 32     /* strace's default -s */

/* A quoted, escaped string from app memory; stops at NUL when nul_terminated. */
static void add_string(struct line *l, u64 addr, u64 len, bool nul_terminated)
{
    u64 n = MIN(len, (u64)STRING_LIMIT);
    if (!addr || !user_range_ok(addr, nul_terminated ? 1 : n, false)) {
        add(l, "%#lx", addr);
        return;
    }
    add(l, "\"");
    const u8 *s = (const u8 *)addr;
    u64 i;
    for (i = 0; i < n; i++) {
        if (nul_terminated && (!user_range_ok(addr + i, 1, false) || s[i] == 0))
            break;
        u8 c = s[i];
        if (c == '\n') add(l, "\\n");
        else if (c == '\t') add(l, "\\t");
        else if (c == '\r') add(l, "\\r");
        else if (c == '"' || c == '\\') add(l, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f) add(l, "%c", c);
        else add(l, "\\%o", c);
    }
    bool more = nul_terminated ? (i == STRING_LIMIT && user_range_ok(addr + i, 1, false) && s[i])
                               : len > STRING_LIMIT;
    add(l, more ? "\"..." : "\"");
}

void strace_print(const struct syscall_record *r, bool returned)
{
    struct line l = { .len = 0 };
    const char *name = syscall_name(r->nr);
    const struct syscall_format *f = r->nr < ARRAY_SIZE(formats) ? &formats[r->nr] : NULL;
    const char *kinds = f && f->args ? f->args : "xxxxxx";
    if (name)
        add(&l, "-> %s(", name);
    else
        add(&l, "-> syscall_%u(", r->nr);
    for (int i = 0; kinds[i] && i < 6; i++) {
        u64 a = r->args[i];
        if (i)
            add(&l, ", ");
        switch (kinds[i]) {
        case 'd': add(&l, "%ld", (long)a); break;
        case 'u': add(&l, "%lu", a); break;
        case 'f': if ((int)a == -100) add(&l, "AT_FDCWD"); else add(&l, "%d", (int)a); break;
        case 's': add_string(&l, a, STRING_LIMIT + 1, true); break;
        case 'b': add_string(&l, a, r->args[i + 1], false); break;
        case 'B':
            if (returned && r->ret >= 0)
                add_string(&l, a, r->ret, false);
            else
                add(&l, "%#lx", a);
            break;
        default:
            if (a)
                add(&l, "%#lx", a);
            else
                add(&l, "NULL");
            break;
        }
    }
    if (!returned) {
        add(&l, ") = ?\n");
    } else if (r->ret < 0 && r->ret > -4096) {
        const char *ename = "E?", *text = "Unknown error";
        for (unsigned i = 0; i < ARRAY_SIZE(errnos); i++)
            if (errnos[i].nr == -r->ret)
                ename = errnos[i].name, text = errnos[i].text;
        add(&l, ") = -1 %s (%s)\n", ename, text);
    } else if (f && f->ret == 'x') {
        add(&l, ") = %#lx\n", r->ret);
    } else {
        add(&l, ") = %ld\n", r->ret);
    }
    console_write(l.buf, l.len);
}
