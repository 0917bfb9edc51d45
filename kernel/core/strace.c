/*
 * The kernel's --strace output, in strace's form. Arguments are decoded modestly
 * (numbers, strings, buffers); the debugger's osv-syscalls does the full decoding.
 */
#include "console.h"
#include "lib.h"
#include "mm.h"
#include "signal.h"
#include "syscall_history.h"
#include "syscall_names.h"
#include <asm/unistd_64.h>
#include <asm-generic/errno.h>
#include <linux/mman.h>

/*
 * Argument kinds, one letter per argument, each printed as strace prints it:
 *   i int (fds, statuses, clock ids: the register's low 32 bits, so fd -1 is -1
 *     however the caller extended it)  d long  u unsigned long
 *   x hex number (flags, offsets: 0 is 0)  p pointer (0 is NULL)
 *   s string  b buffer of the next argument's length  B buffer the call filled,
 *   of the return value's length  f dirfd (AT_FDCWD)  F the two fds the call
 *   filled (pipe's), [3, 4]
 *   P PROT_* bits (0 is PROT_NONE)  M MAP_* flags (the mapping type first)
 * and the return value's: d (errno on failure) or x (addresses: brk, mmap).
 */
struct syscall_format {
    const char *args;
    char ret;
};

static const struct syscall_format formats[] = {
    [__NR_read] = { "iBu", 'd' },          [__NR_write] = { "ibu", 'd' },
    [__NR_open] = { "sxx", 'd' },          [__NR_close] = { "i", 'd' },
    [__NR_fstat] = { "ip", 'd' },          [__NR_lseek] = { "idi", 'd' },
    [__NR_mmap] = { "puPMix", 'x' },       [__NR_mprotect] = { "puP", 'd' },
    [__NR_munmap] = { "pu", 'd' },         [__NR_brk] = { "p", 'x' },
    [__NR_rt_sigaction] = { "ippu", 'd' }, [__NR_rt_sigprocmask] = { "ippu", 'd' },
    [__NR_ioctl] = { "ixp", 'd' },         [__NR_writev] = { "ipi", 'd' },
    [__NR_sched_yield] = { "", 'd' },      [__NR_madvise] = { "pui", 'd' },
    [__NR_nanosleep] = { "pp", 'd' },      [__NR_getpid] = { "", 'd' },
    [__NR_exit] = { "i", 'd' },            [__NR_uname] = { "p", 'd' },
    [__NR_readlink] = { "sBu", 'd' },      [__NR_gettimeofday] = { "pp", 'd' },
    [__NR_getuid] = { "", 'd' },           [__NR_getgid] = { "", 'd' },
    [__NR_geteuid] = { "", 'd' },          [__NR_getegid] = { "", 'd' },
    [__NR_getppid] = { "", 'd' },          [__NR_arch_prctl] = { "xx", 'd' },
    [__NR_gettid] = { "", 'd' },           [__NR_set_tid_address] = { "p", 'd' },
    [__NR_clock_gettime] = { "ip", 'd' },  [__NR_exit_group] = { "i", 'd' },
    [__NR_openat] = { "fsxx", 'd' },       [__NR_newfstatat] = { "fspx", 'd' },
    [__NR_readlinkat] = { "fsBu", 'd' },   [__NR_set_robust_list] = { "pu", 'd' },
    [__NR_prlimit64] = { "iipp", 'd' },    [__NR_getrandom] = { "Bux", 'd' },
    [__NR_rseq] = { "pxix", 'd' },         [__NR_clock_nanosleep] = { "iipp", 'd' },
    [__NR_stat] = { "sp", 'd' },           [__NR_lstat] = { "sp", 'd' },
    [__NR_pread64] = { "iBud", 'd' },
    [__NR_getcwd] = { "su", 'd' },         [__NR_umask] = { "x", 'x' },
    [__NR_dup] = { "i", 'd' },             [__NR_dup2] = { "ii", 'd' },
    [__NR_dup3] = { "iix", 'd' },          [__NR_fcntl] = { "iix", 'd' },
    [__NR_time] = { "p", 'd' },            [__NR_clock_getres] = { "ip", 'd' },
    [__NR_sysinfo] = { "p", 'd' },         [__NR_prctl] = { "ipxxx", 'd' },
    [__NR_getpgrp] = { "", 'd' },          [__NR_socket] = { "iii", 'd' },
    [__NR_getpeername] = { "ipp", 'd' },   [__NR_getsockname] = { "ipp", 'd' },
    [__NR_timer_create] = { "ipp", 'd' },  [__NR_timer_settime] = { "iipp", 'd' },
    [__NR_timer_gettime] = { "ip", 'd' },  [__NR_timer_getoverrun] = { "i", 'd' },
    [__NR_timer_delete] = { "i", 'd' },    [__NR_pause] = { "", 'd' },
    [__NR_rt_sigqueueinfo] = { "iip", 'd' }, [__NR_rt_tgsigqueueinfo] = { "iiip", 'd' },
    [__NR_access] = { "si", 'd' },         [__NR_faccessat] = { "fsi", 'd' },
    [__NR_faccessat2] = { "fsix", 'd' },   [__NR_getgroups] = { "ip", 'd' },
    [__NR_fork] = { "", 'd' },             [__NR_vfork] = { "", 'd' },
    [__NR_pipe] = { "F", 'd' },            [__NR_pipe2] = { "Fx", 'd' },
    [__NR_poll] = { "pui", 'd' },          [__NR_ppoll] = { "puppu", 'd' },
    [__NR_statx] = { "fsxxp", 'd' },       [__NR_getdents64] = { "ipu", 'd' },
    [__NR_chdir] = { "s", 'd' },           [__NR_fchdir] = { "i", 'd' },
    [__NR_pwrite64] = { "ibud", 'd' },     [__NR_sendfile] = { "iipu", 'd' },
    [__NR_preadv] = { "ipid", 'd' },       [__NR_pwritev] = { "ipid", 'd' },
    [__NR_mremap] = { "puuxp", 'x' },      [__NR_getrusage] = { "ip", 'd' },
    [__NR_times] = { "p", 'd' },
    [__NR_select] = { "ipppp", 'd' },      [__NR_pselect6] = { "ippppp", 'd' },
    [__NR_rt_sigreturn] = { "", 'd' },     [__NR_rt_sigpending] = { "pu", 'd' },
    [__NR_sigaltstack] = { "pp", 'd' },    [__NR_rt_sigsuspend] = { "pu", 'd' },
    [__NR_rt_sigtimedwait] = { "pppu", 'd' },
    [__NR_kill] = { "ii", 'd' },           [__NR_tkill] = { "ii", 'd' },
    [__NR_tgkill] = { "iii", 'd' },
    [__NR_setitimer] = { "ipp", 'd' },     [__NR_getitimer] = { "ip", 'd' },
    [__NR_alarm] = { "u", 'd' },
    [__NR_getrlimit] = { "ip", 'd' },      [__NR_setrlimit] = { "ip", 'd' },
    [__NR_sched_getaffinity] = { "iup", 'd' }, [__NR_sched_setaffinity] = { "iup", 'd' },
    [__NR_epoll_create] = { "i", 'd' },    [__NR_epoll_create1] = { "x", 'd' },
    [__NR_epoll_ctl] = { "iiip", 'd' },    [__NR_epoll_wait] = { "ipii", 'd' },
    [__NR_epoll_pwait] = { "ipiipu", 'd' }, [__NR_epoll_pwait2] = { "ipippu", 'd' },
    [__NR_eventfd] = { "u", 'd' },         [__NR_eventfd2] = { "ux", 'd' },
    [__NR_creat] = { "sx", 'd' },          [__NR_mkdir] = { "sx", 'd' },
    [__NR_mkdirat] = { "fsx", 'd' },       [__NR_rmdir] = { "s", 'd' },
    [__NR_unlink] = { "s", 'd' },          [__NR_unlinkat] = { "fsx", 'd' },
    [__NR_rename] = { "ss", 'd' },         [__NR_renameat] = { "fsfs", 'd' },
    [__NR_renameat2] = { "fsfsx", 'd' },   [__NR_link] = { "ss", 'd' },
    [__NR_linkat] = { "fsfsx", 'd' },      [__NR_symlink] = { "ss", 'd' },
    [__NR_symlinkat] = { "sfs", 'd' },     [__NR_truncate] = { "sd", 'd' },
    [__NR_ftruncate] = { "id", 'd' },      [__NR_fsync] = { "i", 'd' },
    [__NR_fdatasync] = { "i", 'd' },       [__NR_sync] = { "", 'd' },
    [__NR_utimensat] = { "fspx", 'd' },    [__NR_chmod] = { "sx", 'd' },
    [__NR_fchmod] = { "ix", 'd' },         [__NR_fchmodat] = { "fsx", 'd' },
    [__NR_chown] = { "sii", 'd' },         [__NR_fchown] = { "iii", 'd' },
    [__NR_lchown] = { "sii", 'd' },        [__NR_fchownat] = { "fsiix", 'd' },
    [__NR_statfs] = { "sp", 'd' },         [__NR_fstatfs] = { "ip", 'd' },
    [__NR_fallocate] = { "iidd", 'd' },    [__NR_flock] = { "ix", 'd' },
    [__NR_mlock] = { "pu", 'd' },          [__NR_munlock] = { "pu", 'd' },
    [__NR_mlockall] = { "x", 'd' },        [__NR_munlockall] = { "", 'd' },
    [__NR_mlock2] = { "pux", 'd' },
};

struct flag {
    u64 bit;
    const char *name;
};

static const struct flag prot_flags[] = {
    { PROT_READ, "PROT_READ" },   { PROT_WRITE, "PROT_WRITE" },
    { PROT_EXEC, "PROT_EXEC" },   { PROT_SEM, "PROT_SEM" },
    { PROT_GROWSDOWN, "PROT_GROWSDOWN" }, { PROT_GROWSUP, "PROT_GROWSUP" },
};

/* After the mapping type (MAP_TYPE's bits), in strace's order. */
static const struct flag map_flags[] = {
    { MAP_FIXED, "MAP_FIXED" },         { MAP_ANONYMOUS, "MAP_ANONYMOUS" },
    { MAP_32BIT, "MAP_32BIT" },         { MAP_GROWSDOWN, "MAP_GROWSDOWN" },
    { MAP_DENYWRITE, "MAP_DENYWRITE" }, { MAP_EXECUTABLE, "MAP_EXECUTABLE" },
    { MAP_LOCKED, "MAP_LOCKED" },       { MAP_NORESERVE, "MAP_NORESERVE" },
    { MAP_POPULATE, "MAP_POPULATE" },   { MAP_NONBLOCK, "MAP_NONBLOCK" },
    { MAP_STACK, "MAP_STACK" },         { MAP_HUGETLB, "MAP_HUGETLB" },
    { MAP_SYNC, "MAP_SYNC" },           { MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE" },
    { MAP_UNINITIALIZED, "MAP_UNINITIALIZED" },
};

static const char *const map_types[] = {
    [MAP_SHARED] = "MAP_SHARED", [MAP_PRIVATE] = "MAP_PRIVATE",
    [MAP_SHARED_VALIDATE] = "MAP_SHARED_VALIDATE",
};

static const struct { int nr; const char *name, *text; } errnos[] = {
    { EPERM, "EPERM", "Operation not permitted" },
    { ENOENT, "ENOENT", "No such file or directory" },
    { EINTR, "EINTR", "Interrupted system call" },
    { ERESTARTSYS, "ERESTARTSYS", "To be restarted if SA_RESTART is set" },
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
    { EPIPE, "EPIPE", "Broken pipe" },
    { ENFILE, "ENFILE", "Too many open files in system" },
    { ENOTEMPTY, "ENOTEMPTY", "Directory not empty" },
    { EXDEV, "EXDEV", "Invalid cross-device link" },
    { ELOOP, "ELOOP", "Too many levels of symbolic links" },
    { ENAMETOOLONG, "ENAMETOOLONG", "File name too long" },
    { EBUSY, "EBUSY", "Device or resource busy" },
    { ENOSPC, "ENOSPC", "No space left on device" },
    { EFBIG, "EFBIG", "File too large" },
    { ENXIO, "ENXIO", "No such device or address" },
    { EOPNOTSUPP, "EOPNOTSUPP", "Operation not supported" },
    { ENOTSOCK, "ENOTSOCK", "Socket operation on non-socket" },
    { EAFNOSUPPORT, "EAFNOSUPPORT", "Address family not supported by protocol" },
    { ENODATA, "ENODATA", "No data available" },
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

/* Hex as strace prints it: 0x1000, and 0 for zero (the kernel's %#lx prints 0x0). */
static void add_hex(struct line *l, u64 value)
{
    if (value)
        add(l, "%#lx", value);
    else
        add(l, "0");
}

/* NAME|NAME|0xREST as strace joins them; `none` when no bit is set. */
static void add_flags(struct line *l, u64 value, const struct flag *flags, size_t n,
                      const char *none)
{
    if (!value) {
        add(l, "%s", none);
        return;
    }
    const char *sep = "";
    for (size_t i = 0; i < n; i++) {
        if (value & flags[i].bit) {
            add(l, "%s%s", sep, flags[i].name);
            value &= ~flags[i].bit;
            sep = "|";
        }
    }
    if (value)
        add(l, "%s%#lx", sep, value);
}

static void add_map_flags(struct line *l, u64 value)
{
    u64 type = value & MAP_TYPE;
    if (type < ARRAY_SIZE(map_types) && map_types[type])
        add(l, "%s", map_types[type]);
    else
        add_hex(l, type);
    if (value & ~(u64)MAP_TYPE) {
        add(l, "|");
        add_flags(l, value & ~(u64)MAP_TYPE, map_flags, ARRAY_SIZE(map_flags), "");
    }
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
        case 'i': add(&l, "%d", (int)a); break;
        case 'd': add(&l, "%ld", (long)a); break;
        case 'u': add(&l, "%lu", a); break;
        case 'x': add_hex(&l, a); break;
        case 'P': add_flags(&l, a, prot_flags, ARRAY_SIZE(prot_flags), "PROT_NONE"); break;
        case 'M': add_map_flags(&l, a); break;
        case 'f': if ((int)a == -100) add(&l, "AT_FDCWD"); else add(&l, "%d", (int)a); break;
        case 's': add_string(&l, a, STRING_LIMIT + 1, true); break;
        case 'b': add_string(&l, a, r->args[i + 1], false); break;
        case 'B':
            if (returned && r->ret >= 0)
                add_string(&l, a, r->ret, false);
            else
                add(&l, "%#lx", a);
            break;
        case 'F':
            if (returned && r->ret == 0 && user_range_ok(a, 8, false))
                add(&l, "[%d, %d]", ((const int *)a)[0], ((const int *)a)[1]);
            else
                add(&l, "%#lx", a);
            break;
        case 'p':
            if (a)
                add(&l, "%#lx", a);
            else
                add(&l, "NULL");
            break;
        default: add_hex(&l, a); break;
        }
    }
    if (!returned) {
        add(&l, ") = ?\n");
    } else if (r->ret < 0 && r->ret > -4096) {
        const char *ename = "E?", *text = "Unknown error";
        for (unsigned i = 0; i < ARRAY_SIZE(errnos); i++)
            if (errnos[i].nr == -r->ret)
                ename = errnos[i].name, text = errnos[i].text;
        /* strace's "?": a call a signal interrupted has no result of its own yet */
        add(&l, ") = %s %s (%s)\n", -r->ret == ERESTARTSYS ? "?" : "-1", ename, text);
    } else if (f && f->ret == 'x') {
        add(&l, ") = %#lx\n", r->ret);
    } else {
        add(&l, ") = %ld\n", r->ret);
    }
    console_write(l.buf, l.len);
}
