/*
 * Linux system calls, entered from arch/x64/entry.S's syscall_entry with FS already on
 * the kernel TCB. Each returns its result or -errno, as Linux does. Pointers from the
 * app are checked against its page tables before we touch them (-EFAULT otherwise).
 */
#include "arch.h"
#include "console.h"
#include "elf.h"
#include "fastpath.h"
#include "fscheck.h"
#include "initrd.h"
#include "inject.h"
#include "lib.h"
#include "mm.h"
#include "panic.h"
#include "pipe.h"
#include "process.h"
#include "signal.h"
#include "syscall_history.h"
#include "thread.h"
#include "timer.h"
#include "trap.h"
#include "tty.h"
#include <asm/unistd_64.h>
#include <asm-generic/errno.h>
#include <asm/prctl.h>
#include <asm-generic/ioctls.h>
#include <asm-generic/termbits.h>
#include <asm/stat.h>
#include <linux/utsname.h>
#include <linux/sysinfo.h>
#include <linux/prctl.h>
#include <linux/time_types.h>
#include <linux/fcntl.h>
#include <asm-generic/mman.h>
#include <linux/mman.h>
#include <linux/times.h>
#include <linux/resource.h>
#include <linux/uio.h>
#include <linux/time.h>
#include <linux/futex.h>
#include <linux/stat.h>

#define SEEK_SET 0
#define SEEK_CUR 1
#define SEEK_END 2

static u64 boot_epoch_seconds;

u64 wall_clock_offset_ns(void)
{
    return boot_epoch_seconds * 1000000000UL;
}

void syscall_init(void)
{
    rtc_read_epoch(&boot_epoch_seconds);
}

static bool can_read(u64 addr, u64 len) { return user_range_ok(addr, len, false); }
static bool can_write(u64 addr, u64 len) { return user_range_ok(addr, len, true); }

/* A NUL-terminated path from the app, at most max-1 bytes; NULL if unreadable or too long. */
static const char *user_path(u64 addr, size_t max)
{
    for (size_t i = 0; i < max; i++) {
        if (!can_read(addr + i, 1))
            return NULL;
        if (((const char *)addr)[i] == 0)
            return (const char *)addr;
    }
    return NULL;
}

struct file *get_file(long fd)
{
    if (fd < 0 || fd >= MAX_FDS || process.files[fd].kind == FILE_NONE)
        return NULL;
    return &process.files[fd];
}

/* ---- files: the console and the initrd ---- */

/*
 * A read; `continuing` when it carries on a readv that already got bytes, which a pipe
 * then never waits for.
 */
static long read_file(long fd, u64 buf, u64 count, bool continuing)
{
    struct file *f = get_file(fd);
    if (!f)
        return -EBADF;
    if (f->kind == FILE_EPOLL)
        return -EINVAL;             /* Linux's: epoll files have no read */
    if (f->kind == FILE_EVENTFD)
        return eventfd_read(f->eventfd, buf, count, continuing || (f->status_flags & O_NONBLOCK));
    if (!can_write(buf, count))
        return -EFAULT;
    if (f->kind == FILE_CONSOLE)
        return tty_read((u8 *)buf, count, continuing || (f->status_flags & O_NONBLOCK));
    if (f->kind == FILE_DIR)
        return -EISDIR;
    if (f->kind == FILE_NULL)
        return 0;
    if (f->kind == FILE_PIPE) {
        if (file_is_writer(f))
            return -EBADF;
        return pipe_read(f->pipe, buf, count, continuing || (f->status_flags & O_NONBLOCK));
    }
    u64 n = f->offset < f->size ? MIN(count, f->size - f->offset) : 0;
    memcpy((void *)buf, f->data + f->offset, n);
    f->offset += n;
    return n;
}

static long sys_read(long fd, u64 buf, u64 count)
{
    return read_file(fd, buf, count, false);
}

/*
 * pread64 and pwrite64, in Linux's order of checks: the offset, the fd, whether it can
 * seek at all (the console and pipes cannot), whether it is open for the transfer.
 * Every file that can seek is a read-only initrd file or "/": pwrite64 never writes.
 */
static long positioned_check(long fd, long offset, bool write)
{
    if (offset < 0)
        return -EINVAL;
    struct file *f = get_file(fd);
    if (!f)
        return -EBADF;
    if (f->kind != FILE_INITRD && f->kind != FILE_DIR)
        return -ESPIPE;
    if (write)
        return -EBADF;
    return f->kind == FILE_DIR ? -EISDIR : 0;
}

static long sys_pread64(long fd, u64 buf, u64 count, long offset)
{
    long err = positioned_check(fd, offset, false);
    if (err)
        return err;
    struct file *f = get_file(fd);
    if (!can_write(buf, count))
        return -EFAULT;
    u64 n = (u64)offset < f->size ? MIN(count, f->size - offset) : 0;
    memcpy((void *)buf, f->data + offset, n);
    return n;
}

/* preadv: the iovecs in turn from offset on, until the end of the file. */
static long sys_preadv(long fd, u64 iov_addr, long iovcnt, long offset)
{
    long err = positioned_check(fd, offset, false);
    if (err)
        return err;
    if (iovcnt < 0 || iovcnt > 1024)
        return -EINVAL;
    if (!can_read(iov_addr, iovcnt * sizeof(struct iovec)))
        return -EFAULT;
    const struct iovec *iov = (const void *)iov_addr;
    long total = 0;
    for (long i = 0; i < iovcnt; i++) {
        long n = sys_pread64(fd, (u64)iov[i].iov_base, iov[i].iov_len, offset + total);
        if (n < 0)
            return total ? total : n;
        total += n;
        if ((u64)n < iov[i].iov_len)
            break;
    }
    return total;
}

static long write_file(long fd, u64 buf, u64 count, bool continuing)
{
    struct file *f = get_file(fd);
    if (!f)
        return -EBADF;
    if (f->kind == FILE_INITRD || !file_is_writer(f))
        return -EBADF;              /* initrd files are read-only */
    if (f->kind == FILE_EPOLL)
        return -EINVAL;
    if (f->kind == FILE_EVENTFD)
        return eventfd_write(f->eventfd, buf, count, continuing || (f->status_flags & O_NONBLOCK));
    if (!can_read(buf, count))
        return -EFAULT;
    if (f->kind == FILE_PIPE)
        return pipe_write(f->pipe, buf, count, f->status_flags & O_NONBLOCK);
    if (f->kind == FILE_CONSOLE)
        return tty_write(f->stream, (const void *)buf, count);
    return count;
}

static long sys_write(long fd, u64 buf, u64 count)
{
    return write_file(fd, buf, count, false);
}

/*
 * sendfile: from an initrd file (at *offset, which then moves, or else at the file's
 * offset) to the console or a pipe, the bytes never passing through the app. Linux's
 * order of checks; only files that can be mapped may be read from (EINVAL otherwise).
 */
static long sys_sendfile(long out_fd, long in_fd, u64 offset_addr, u64 count)
{
    struct file *in = get_file(in_fd), *out = get_file(out_fd);
    if (!in || (in->kind == FILE_PIPE && file_is_writer(in)))
        return -EBADF;
    if (offset_addr && in->kind != FILE_INITRD && in->kind != FILE_DIR)
        return -ESPIPE;
    if (!out || !file_is_writer(out))
        return -EBADF;
    if (in->kind != FILE_INITRD || out->kind == FILE_EPOLL || out->kind == FILE_EVENTFD)
        return -EINVAL;             /* and epoll and eventfd fds take no splice */
    u64 pos = in->offset;
    if (offset_addr) {
        if (!can_write(offset_addr, sizeof(long)))
            return -EFAULT;
        if (*(long *)offset_addr < 0)
            return -EINVAL;
        pos = *(long *)offset_addr;
    }
    u64 n = pos < in->size ? MIN(count, in->size - pos) : 0;
    long done = n;
    if (n && out->kind == FILE_PIPE)
        done = pipe_write(out->pipe, (u64)(in->data + pos), n, out->status_flags & O_NONBLOCK);
    else if (n && out->kind == FILE_CONSOLE)
        done = tty_write(out->stream, in->data + pos, n);
    if (done > 0 && offset_addr)
        *(long *)offset_addr = pos + done;
    else if (done > 0)
        in->offset = pos + done;
    return done;
}

/*
 * readv and writev: each iovec in turn through read or write, as Linux does; a short
 * transfer (the end of a file) ends it. musl's stdio reads through readv, its own
 * buffer after the caller's.
 */
static long sys_iov(long fd, u64 iov_addr, long iovcnt, long (*transfer)(long, u64, u64, bool))
{
    if (iovcnt < 0 || iovcnt > 1024)
        return -EINVAL;
    if (!can_read(iov_addr, iovcnt * sizeof(struct iovec)))
        return -EFAULT;
    const struct iovec *iov = (const void *)iov_addr;
    long total = 0;
    for (long i = 0; i < iovcnt; i++) {
        long n = transfer(fd, (u64)iov[i].iov_base, iov[i].iov_len, total > 0);
        if (n < 0)
            return total ? total : n;
        total += n;
        if ((u64)n < iov[i].iov_len)
            break;
    }
    return total;
}

/*
 * path, from dirfd when it is relative, as an initrd file, "/" (the only directory:
 * every directory fd is "/", and so is the working directory) or /dev/null, the one
 * device, which shell scripts cannot do without (`cmd >/dev/null 2>&1`). dirfd is an int, as
 * Linux reads it: a caller that passes AT_FDCWD in %edi (zsh) leaves the register's
 * upper half zero, so 0xffffff9c, not -100, is what arrives in the long.
 */
static long lookup(int dirfd, const char *path, struct file *out)
{
    if (path[0] != '/' && dirfd != AT_FDCWD) {
        struct file *dir = get_file(dirfd);
        if (!dir)
            return -EBADF;
        if (dir->kind != FILE_DIR)
            return -ENOTDIR;
    }
    if (path[0] == 0)
        return -ENOENT;
    if (strcmp(path, "/proc/self/exe") == 0)
        path = process.path;        /* the one /proc file there is: the executable itself */
    *out = (struct file){ .kind = FILE_DIR, .status_flags = O_RDONLY | O_LARGEFILE };
    if (initrd_is_root(path))
        return 0;
    out->kind = FILE_NULL;
    if (strcmp(path, "/dev/null") == 0)
        return 0;
    out->kind = FILE_INITRD;
    return initrd_find(path, &out->data, &out->size) ? 0 : -ENOENT;
}

long lowest_free_fd(long from)
{
    for (long fd = MAX(from, 0); fd < MAX_FDS; fd++)
        if (process.files[fd].kind == FILE_NONE)
            return fd;
    return -EMFILE;
}

static long sys_openat(long dirfd, u64 path_addr, long flags, long mode)
{
    const char *path = user_path(path_addr, 4096);
    if (!path)
        return -EFAULT;
    struct file f;
    long err = lookup(dirfd, path, &f);
    if (err == -ENOENT && (flags & O_CREAT))
        return -EROFS;              /* nothing can be created */
    if (err)
        return err;
    if (f.kind == FILE_NULL)        /* writable, and O_CREAT and O_TRUNC do nothing to it */
        f.status_flags = (flags & O_ACCMODE) | O_LARGEFILE;
    else if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)))
        return f.kind == FILE_DIR ? -EISDIR : -EROFS;
    if ((flags & O_DIRECTORY) && f.kind != FILE_DIR)
        return -ENOTDIR;
    f.status_flags |= flags & O_NONBLOCK;
    f.cloexec = flags & O_CLOEXEC;
    long fd = lowest_free_fd(0);
    if (fd >= 0)
        process.files[fd] = f;
    return fd;
}

/* files_lock held */
static void close_file(struct file *f)
{
    if (f->kind != FILE_NONE)
        epoll_forget_fd(f - process.files);
    if (f->kind == FILE_PIPE)
        pipe_close_end(f->pipe, file_is_writer(f));
    if (f->kind == FILE_EPOLL)
        epoll_close(f->epoll);
    if (f->kind == FILE_EVENTFD)
        eventfd_close(f->eventfd);
    f->kind = FILE_NONE;
}

static long sys_close(long fd)
{
    struct file *f = get_file(fd);
    if (!f)
        return -EBADF;
    close_file(f);
    return 0;
}

/* pipe and pipe2: fds[0] the read end, fds[1] the write end. files_lock held. */
static long sys_pipe2(u64 fds, long flags)
{
    if (flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT))
        return -EINVAL;
    if (!can_write(fds, 2 * sizeof(int)))
        return -EFAULT;
    long rfd = lowest_free_fd(0);
    if (rfd < 0)
        return rfd;
    process.files[rfd].kind = FILE_PIPE;    /* taken, so the write end gets another */
    long wfd = lowest_free_fd(rfd + 1);
    struct pipe *p = wfd < 0 ? NULL : pipe_create();
    if (!p) {
        process.files[rfd].kind = FILE_NONE;
        return wfd < 0 ? wfd : -ENFILE;
    }
    u32 status = flags & (O_NONBLOCK | O_DIRECT);
    bool cloexec = flags & O_CLOEXEC;
    process.files[rfd] = (struct file){ .kind = FILE_PIPE, .pipe = p,
                                        .status_flags = O_RDONLY | status, .cloexec = cloexec };
    process.files[wfd] = (struct file){ .kind = FILE_PIPE, .pipe = p,
                                        .status_flags = O_WRONLY | status, .cloexec = cloexec };
    ((int *)fds)[0] = rfd;
    ((int *)fds)[1] = wfd;
    return 0;
}

static long sys_lseek(long fd, long offset, long whence)
{
    struct file *f = get_file(fd);
    if (!f)
        return -EBADF;
    if (f->kind == FILE_NULL || f->kind == FILE_EPOLL || f->kind == FILE_EVENTFD)
        return 0;                   /* Linux's noop_llseek: the position stays 0 */
    if (f->kind != FILE_INITRD && f->kind != FILE_DIR)
        return -ESPIPE;
    long base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? (long)f->offset
              : whence == SEEK_END ? (long)f->size : -1;
    if (base < 0 || base + offset < 0)
        return -EINVAL;
    f->offset = base + offset;
    return f->offset;
}

/* An initrd file's inode number, the same in stat and getdents64: unique, from where it lies. */
static u64 initrd_ino(const u8 *data)
{
    return 100 + virt_to_phys(data) / 4;
}

/*
 * The console is a character device, /dev/console (5, 1): glibc then asks TCGETS before
 * its first write, as it does on Linux for any character device outside the pty majors.
 * Fd 0 fed by a host pipe or file is a FIFO, as `cmd | app` makes it on the host: a
 * program that tells a pipe from a terminal (stdio's buffering, a shell's prompt)
 * then does here what it does there.
 */
static void fill_stat(struct stat *st, const struct file *f)
{
    memset(st, 0, sizeof(*st));
    st->st_dev = 1;
    st->st_nlink = 1;
    st->st_blksize = 4096;
    if (f->kind == FILE_CONSOLE && f->host_pipe) {
        st->st_mode = 0010600;              /* S_IFIFO | rw------- */
        st->st_dev = 0xe;                   /* Linux's pipefs */
        st->st_ino = 999;
    } else if (f->kind == FILE_CONSOLE) {
        st->st_mode = 0020620;              /* S_IFCHR | rw--w---- */
        st->st_rdev = (5 << 8) | 1;
        st->st_ino = 3;
        st->st_blksize = 1024;
    } else if (f->kind == FILE_NULL) {
        st->st_mode = 0020666;              /* S_IFCHR | rw-rw-rw- */
        st->st_rdev = (1 << 8) | 3;         /* /dev/null's (1, 3) */
        st->st_ino = 4;
    } else if (f->kind == FILE_DIR) {
        st->st_mode = 0040755;              /* S_IFDIR | rwxr-xr-x */
        st->st_nlink = 2;                   /* no subdirectories */
        st->st_ino = 2;                     /* a root's inode number */
    } else if (f->kind == FILE_EPOLL || f->kind == FILE_EVENTFD) {
        st->st_mode = 0600;                 /* an anonymous inode: rw------- and no type */
        st->st_dev = 0xd;                   /* Linux's anon_inodefs */
        st->st_ino = 1;
    } else if (f->kind == FILE_PIPE) {
        st->st_mode = 0010600;              /* S_IFIFO | rw------- */
        st->st_dev = 0xe;                   /* Linux's pipefs */
        st->st_ino = 1000 + ((u64)f->pipe >> 17 & 0xffff);
    } else {
        st->st_mode = 0100755;              /* S_IFREG | rwxr-xr-x */
        st->st_size = f->size;
        st->st_blocks = ALIGN_UP(f->size, 512) / 512;
        st->st_ino = initrd_ino(f->data);
    }
}

static long sys_fstat(long fd, u64 st)
{
    struct file *f = get_file(fd);
    if (!f)
        return -EBADF;
    if (!can_write(st, sizeof(struct stat)))
        return -EFAULT;
    fill_stat((struct stat *)st, f);
    return 0;
}

static long sys_newfstatat(long dirfd, u64 path_addr, u64 st, long flags)
{
    const char *path = user_path(path_addr, 4096);
    if (!path)
        return -EFAULT;
    if (path[0] == 0 && (flags & AT_EMPTY_PATH))
        return sys_fstat(dirfd, st);
    if (!can_write(st, sizeof(struct stat)))
        return -EFAULT;
    struct file f;
    long err = lookup(dirfd, path, &f);
    if (!err)
        fill_stat((struct stat *)st, &f);
    return err;
}

/* statx: what fill_stat says, in statx's form; every basic field is known. */
static long sys_statx(long dirfd, u64 path_addr, long flags, u64 mask, u64 buf)
{
    const char *path = user_path(path_addr, 4096);
    if (!path)
        return -EFAULT;
    if (!can_write(buf, sizeof(struct statx)))
        return -EFAULT;
    struct file f, *file = &f;
    if (path[0] == 0 && (flags & AT_EMPTY_PATH)) {
        file = get_file(dirfd);
        if (!file)
            return -EBADF;
    } else {
        long err = lookup(dirfd, path, &f);
        if (err)
            return err;
    }
    struct stat st;
    fill_stat(&st, file);
    struct statx *sx = (void *)buf;
    memset(sx, 0, sizeof(*sx));
    sx->stx_mask = STATX_BASIC_STATS;
    sx->stx_blksize = st.st_blksize;
    sx->stx_nlink = st.st_nlink;
    sx->stx_mode = st.st_mode;
    sx->stx_ino = st.st_ino;
    sx->stx_size = st.st_size;
    sx->stx_blocks = st.st_blocks;
    sx->stx_rdev_major = st.st_rdev >> 8;
    sx->stx_rdev_minor = st.st_rdev & 0xff;
    sx->stx_dev_major = st.st_dev >> 8;
    sx->stx_dev_minor = st.st_dev & 0xff;
    return 0;
}

/*
 * getdents64 on "/": ".", "..", then the initrd's members. The fd's offset is the
 * cursor: 0 and 1 the two dot entries, then 2 + the archive offset of the next member,
 * which is also each entry's d_off.
 */
struct dirent64 {
    u64 d_ino;
    s64 d_off;
    u16 d_reclen;
    u8 d_type;
    char d_name[];
};
#define DT_DIR 4
#define DT_REG 8

static long sys_getdents64(long fd, u64 buf, u64 count)
{
    struct file *f = get_file(fd);
    if (!f)
        return -EBADF;
    if (f->kind != FILE_DIR)
        return -ENOTDIR;
    if (!can_write(buf, count))
        return -EFAULT;
    u64 used = 0;
    for (;;) {
        struct initrd_entry e;
        u64 next, ino = 2;          /* "/" for the dot entries */
        u8 type = DT_DIR;
        if (f->offset < 2) {
            e.name = f->offset ? ".." : ".";
            next = f->offset + 1;
        } else {
            u64 cursor = f->offset - 2;
            if (!initrd_next(&cursor, &e))
                break;
            next = cursor + 2;
            type = DT_REG;
            ino = initrd_ino(e.data);
        }
        u64 len = strlen(e.name);
        u64 reclen = ALIGN_UP(offsetof(struct dirent64, d_name) + len + 1, 8);
        if (used + reclen > count) {
            if (!used)
                return -EINVAL;     /* not even one entry fits */
            break;
        }
        struct dirent64 *d = (void *)(buf + used);
        d->d_ino = ino;
        d->d_off = next;
        d->d_reclen = reclen;
        d->d_type = type;
        memcpy(d->d_name, e.name, len + 1);
        used += reclen;
        f->offset = next;
    }
    return used;
}

/* The working directory is "/" for good: changing to it is all chdir can do. */
static long sys_chdir(u64 path_addr)
{
    const char *path = user_path(path_addr, 4096);
    if (!path)
        return -EFAULT;
    struct file f;
    long err = lookup(AT_FDCWD, path, &f);
    return err ? err : f.kind == FILE_DIR ? 0 : -ENOTDIR;
}

static long sys_fchdir(long fd)
{
    struct file *f = get_file(fd);
    return !f ? -EBADF : f->kind == FILE_DIR ? 0 : -ENOTDIR;
}

/*
 * access, faccessat, faccessat2: whether path exists and may be read, written or run,
 * by uid 0 on a read-only filesystem: anything may be read and run (the initrd's files
 * are 0755), only /dev/null written (EROFS otherwise, as Linux says for a read-only mount).
 */
#define ACCESS_W_OK 2
static long sys_faccessat(long dirfd, u64 path_addr, long mode, long flags)
{
    if ((int)mode & ~7)
        return -EINVAL;
    if ((int)flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))
        return -EINVAL;
    const char *path = user_path(path_addr, 4096);
    if (!path)
        return -EFAULT;
    struct file f;
    if (path[0] == 0 && ((int)flags & AT_EMPTY_PATH)) {
        struct file *open = get_file(dirfd);
        if (!open)
            return -EBADF;
        f = *open;
    } else {
        long err = lookup(dirfd, path, &f);
        if (err)
            return err;
    }
    bool writable = f.kind == FILE_NULL || f.kind == FILE_PIPE || f.kind == FILE_CONSOLE;
    return ((int)mode & ACCESS_W_OK) && !writable ? -EROFS : 0;
}

static long sys_readlinkat(long dirfd, u64 path_addr, u64 buf, long size)
{
    const char *path = user_path(path_addr, 4096);
    if (!path)
        return -EFAULT;
    if (size <= 0)
        return -EINVAL;
    if (strcmp(path, "/proc/self/exe") != 0) {
        struct file f;
        long err = lookup(dirfd, path, &f);
        return err ? err : -EINVAL;     /* there, but no symbolic link */
    }
    long n = MIN((long)strlen(process.path), size);     /* readlink does not NUL-terminate */
    if (!can_write(buf, n))
        return -EFAULT;
    memcpy((void *)buf, process.path, n);
    return n;
}

static long sys_ioctl(long fd, u64 request, u64 arg)
{
    struct file *f = get_file(fd);
    if (!f)
        return -EBADF;
    if (f->kind == FILE_PIPE && request == FIONREAD) {
        if (!can_write(arg, sizeof(int)))
            return -EFAULT;
        *(int *)arg = pipe_buffered(f->pipe);
        return 0;
    }
    if (f->kind != FILE_CONSOLE || f->host_pipe)
        return -ENOTTY;
    return tty_ioctl(request, arg);
}

/* ---- memory ---- */

static long sys_brk(u64 addr)
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

static long sys_mmap(u64 addr, u64 len, long prot, long flags, long fd, long offset)
{
    if (len == 0 || (offset & (PAGE_SIZE - 1)))
        return -EINVAL;
    struct file *f = NULL;
    if (!(flags & MAP_ANONYMOUS)) {
        f = get_file(fd);
        if (!f)
            return -EBADF;
        if (f->kind != FILE_INITRD)
            return -ENODEV;
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
    /* Private file mappings are copies: the initrd is read-only and never changes. */
    if (map_user(addr, len, f ? PROT_READ | PROT_WRITE : prot) < 0)
        return -ENOMEM;
    if (f) {
        if ((u64)offset < f->size)
            memcpy((void *)addr, f->data + offset, MIN(len, f->size - offset));
        protect_user(addr, len, prot);
    }
    return addr;
}

static long sys_munmap(u64 addr, u64 len)
{
    if ((addr & (PAGE_SIZE - 1)) || len == 0)
        return -EINVAL;
    unmap_user(addr, ALIGN_UP(len, PAGE_SIZE));
    return 0;
}

static long sys_mprotect(u64 addr, u64 len, long prot)
{
    if (addr & (PAGE_SIZE - 1))
        return -EINVAL;
    return protect_user(addr, ALIGN_UP(len, PAGE_SIZE), prot) < 0 ? -ENOMEM : 0;
}

static long sys_madvise(u64 addr, u64 len, long advice)
{
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
static long sys_mremap(u64 old, u64 old_size, u64 new_size, long flags, u64 new_addr)
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

/* ---- the thread's TLS: the seed's arch_prctl ---- */

/*
 * ARCH_SET_FS turns FS switching on for this thread: the first call drops the counter's
 * base of 1, so the exit path (counter back to 0) loads app_tcb into FS.
 */
static long sys_arch_prctl(long code, u64 addr)
{
    struct thread *t = current_thread;
    switch (code) {
    case ARCH_SET_FS:
        if (addr >= USER_MAX)
            return -EPERM;
        if (!t->fs_switching) {
            t->fs_switching = true;
            if (fs_protocol != FS_PROTOCOL_COMPARE)    /* compare has no counter */
                t->tcb->kernel_tcb_counter--;
        }
        t->tcb->app_tcb = addr;
        return 0;
    case ARCH_GET_FS:
        if (!can_write(addr, 8))
            return -EFAULT;
        *(u64 *)addr = t->tcb->app_tcb;
        return 0;
    default:
        return -EINVAL;             /* GS belongs to the kernel: ARCH_SET_GS/GET_GS too */
    }
}

static long sys_set_tid_address(u64 tidptr)
{
    current_thread->clear_child_tid = tidptr;
    return current_thread->tid;
}

/* ---- identity, limits, randomness ---- */

static long sys_uname(u64 buf)
{
    if (!can_write(buf, sizeof(struct new_utsname)))
        return -EFAULT;
    struct new_utsname *u = (void *)buf;
    memset(u, 0, sizeof(*u));
    strcpy(u->sysname, "Linux");
    strcpy(u->nodename, "osv");
    strcpy(u->release, "6.1.0-osvgdb");
    strcpy(u->version, "#1 SMP osvgdb");
    strcpy(u->machine, "x86_64");
    strcpy(u->domainname, "(none)");
    return 0;
}

static long sys_prlimit64(long pid, long resource, u64 new_limit, u64 old_limit)
{
    if (pid != 0 && pid != process_pid())
        return -ESRCH;
    if (resource < 0 || resource >= RLIM_NLIMITS)
        return -EINVAL;
    if (new_limit && !can_read(new_limit, sizeof(struct rlimit64)))
        return -EFAULT;
    if (old_limit) {
        if (!can_write(old_limit, sizeof(struct rlimit64)))
            return -EFAULT;
        struct rlimit64 *r = (void *)old_limit;
        r->rlim_cur = r->rlim_max = RLIM64_INFINITY;
        if (resource == RLIMIT_STACK)
            r->rlim_cur = 8 << 20;
        if (resource == RLIMIT_NOFILE)
            r->rlim_cur = r->rlim_max = MAX_FDS;
    }
    return 0;
}

static long sys_getrandom(u64 buf, u64 len, long flags)
{
    if (!can_write(buf, len))
        return -EFAULT;
    for (u64 i = 0; i < len; i += 8) {
        u64 v;
        if (!rdrand64(&v))
            v = rdtsc() * 0x9e3779b97f4a7c15UL;
        memcpy((u8 *)buf + i, &v, MIN(8, len - i));
    }
    return len;
}

/* ---- time ---- */

static void put_timespec(u64 tp, u64 ns)
{
    struct __kernel_timespec *ts = (void *)tp;
    ts->tv_sec = ns / 1000000000UL;
    ts->tv_nsec = ns % 1000000000UL;
}

/*
 * clock_gettime of the clocks that are the TSC: realtime (plus the RTC's time at boot),
 * monotonic, boottime; -EINVAL for any other. It uses no __thread: lazy's fast path
 * calls it (and declines the CPU-time clocks, which sys_clock_gettime reads).
 */
long clock_gettime_tsc(long clock, u64 tp)
{
    if (!can_write(tp, sizeof(struct __kernel_timespec)))
        return -EFAULT;
    u64 ns = tsc_ns();
    switch (clock) {
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE:
        ns += boot_epoch_seconds * 1000000000UL;
        break;
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_BOOTTIME:
        break;
    default:
        return -EINVAL;
    }
    put_timespec(tp, ns);
    return 0;
}

/* The CPU-time clocks are the scheduler's CPU time, as getrusage's. */
static long sys_clock_gettime(long clock, u64 tp)
{
    if (!clock_is_cpu_time(clock))
        return clock_gettime_tsc(clock, tp);
    if (!can_write(tp, sizeof(struct __kernel_timespec)))
        return -EFAULT;
    put_timespec(tp, sched_cpu_ns((int)clock == CLOCK_PROCESS_CPUTIME_ID));
    return 0;
}

static long sys_gettimeofday(u64 tv, u64 tz)
{
    if (tv) {
        if (!can_write(tv, sizeof(struct __kernel_old_timeval)))
            return -EFAULT;
        u64 ns = tsc_ns() + boot_epoch_seconds * 1000000000UL;
        struct __kernel_old_timeval *t = (void *)tv;
        t->tv_sec = ns / 1000000000UL;
        t->tv_usec = ns % 1000000000UL / 1000;
    }
    if (tz) {
        if (!can_write(tz, 8))
            return -EFAULT;
        memset((void *)tz, 0, 8);
    }
    return 0;
}

/* Sleeping blocks the thread until the timer tick that passes its deadline. */
static long sys_clock_nanosleep(long clock, long flags, u64 req, u64 rem)
{
    if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC && clock != CLOCK_BOOTTIME)
        return -EINVAL;
    if (!can_read(req, sizeof(struct __kernel_timespec)))
        return -EFAULT;
    const struct __kernel_timespec *ts = (const void *)req;
    if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
        return -EINVAL;
    u64 ns = ts->tv_sec * 1000000000UL + ts->tv_nsec;
    u64 offset = clock == CLOCK_REALTIME ? boot_epoch_seconds * 1000000000UL : 0;
    u64 until = (flags & TIMER_ABSTIME) ? ns - MIN(ns, offset) : tsc_ns() + ns;
    long interrupted = until > tsc_ns() ? sched_sleep_until(until) : 0;
    if (rem && !(flags & TIMER_ABSTIME) && can_write(rem, sizeof(*ts))) {
        u64 left = interrupted ? until - MIN(until, tsc_ns()) : 0;
        struct __kernel_timespec *r = (void *)rem;
        r->tv_sec = left / 1000000000UL;
        r->tv_nsec = left % 1000000000UL;
    }
    return interrupted ? -EINTR : 0;    /* never restarted after a handler (signal(7)) */
}

/*
 * CPU time: the scheduler's, kernel and app code together (one ring), shown as user
 * time. No child ever runs: RUSAGE_CHILDREN and the children's times are 0.
 */
#define RUSAGE_SELF 0
#define RUSAGE_CHILDREN (-1)
#define RUSAGE_THREAD 1
#define USER_HZ 100                 /* times()'s clock ticks, as Linux's USER_HZ */

static long sys_getrusage(long who, u64 usage)
{
    if ((int)who != RUSAGE_SELF && (int)who != RUSAGE_CHILDREN && (int)who != RUSAGE_THREAD)
        return -EINVAL;
    if (!can_write(usage, sizeof(struct rusage)))
        return -EFAULT;
    struct rusage *ru = (void *)usage;
    memset(ru, 0, sizeof(*ru));
    if ((int)who == RUSAGE_CHILDREN)
        return 0;
    u64 ns = sched_cpu_ns((int)who == RUSAGE_SELF);
    ru->ru_utime.tv_sec = ns / 1000000000UL;
    ru->ru_utime.tv_usec = ns % 1000000000UL / 1000;
    ru->ru_maxrss = user_pages_populated * (PAGE_SIZE / 1024);     /* KiB ever populated */
    return 0;
}

static long sys_times(u64 buf)
{
    if (buf) {
        if (!can_write(buf, sizeof(struct tms)))
            return -EFAULT;
        struct tms *t = (void *)buf;
        memset(t, 0, sizeof(*t));
        t->tms_utime = sched_cpu_ns(true) / (1000000000UL / USER_HZ);
    }
    return tsc_ns() / (1000000000UL / USER_HZ);      /* ticks since boot */
}

/* ---- threads, futexes and CPUs ---- */

static u64 timespec_ns(const struct __kernel_timespec *ts)
{
    return ts->tv_sec * 1000000000UL + ts->tv_nsec;
}

#define FUTEX_OP_MASK 0x7f          /* without FUTEX_PRIVATE_FLAG (128), FUTEX_CLOCK_REALTIME (256) */

static long sys_futex(u64 uaddr, long op, u32 val, u64 timeout, u64 uaddr2, u32 val3)
{
    if ((uaddr & 3) || !can_read(uaddr, 4))
        return -EFAULT;
    int cmd = op & FUTEX_OP_MASK;
    u64 deadline = 0;
    if ((cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET) && timeout) {
        if (!can_read(timeout, sizeof(struct __kernel_timespec)))
            return -EFAULT;
        const struct __kernel_timespec *ts = (const void *)timeout;
        if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
            return -EINVAL;
        u64 ns = timespec_ns(ts);
        /* FUTEX_WAIT's timeout is relative; FUTEX_WAIT_BITSET's is absolute, on its clock. */
        if (cmd == FUTEX_WAIT)
            deadline = tsc_ns() + ns;
        else if (op & FUTEX_CLOCK_REALTIME)
            deadline = ns > boot_epoch_seconds * 1000000000UL ? ns - boot_epoch_seconds * 1000000000UL : 1;
        else
            deadline = MAX(ns, 1);
        if (deadline <= tsc_ns())
            return -ETIMEDOUT;
    }
    switch (cmd) {
    case FUTEX_WAIT:
        return futex_wait(uaddr, val, deadline, ~0u);
    case FUTEX_WAIT_BITSET:
        return futex_wait(uaddr, val, deadline, val3);
    case FUTEX_WAKE:
        return futex_wake(uaddr, val, ~0u);
    case FUTEX_WAKE_BITSET:
        return futex_wake(uaddr, val, val3);
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
        if ((uaddr2 & 3) || !can_read(uaddr2, 4))
            return -EFAULT;
        return futex_requeue(uaddr, val, (int)timeout, uaddr2, cmd == FUTEX_CMP_REQUEUE, val3);
    default:
        printk("osv: futex operation %ld is not supported\n", op);
        return -ENOSYS;
    }
}

static long sys_sched_getaffinity(long pid, u64 len, u64 mask)
{
    if (len < 8 || (len & 7))
        return -EINVAL;
    if (!can_write(mask, len))
        return -EFAULT;
    memset((void *)mask, 0, len);
    *(u64 *)mask = nr_cpus == 64 ? ~0UL : (1UL << nr_cpus) - 1;
    return 8;                       /* bytes of the kernel's cpumask */
}

static long sys_sched_setaffinity(long pid, u64 len, u64 mask)
{
    if (len < 8)
        return -EINVAL;
    if (!can_read(mask, 8))
        return -EFAULT;
    u64 m = *(u64 *)mask & (nr_cpus == 64 ? ~0UL : (1UL << nr_cpus) - 1);
    if (!m)
        return -EINVAL;
    return sched_set_affinity(pid, m) ? 0 : -ESRCH;
}

static long sys_getcpu(u64 cpu, u64 node, u64 unused)
{
    if ((cpu && !can_write(cpu, 4)) || (node && !can_write(node, 4)))
        return -EFAULT;
    if (cpu)
        *(u32 *)cpu = this_cpu()->id;
    if (node)
        *(u32 *)node = 0;
    return 0;
}

/* ---- file descriptors: dup and fcntl (the table is process.files, under files_lock) ---- */

static long dup_to(long oldfd, long newfd, bool cloexec)
{
    struct file *f = get_file(oldfd);
    if (!f)
        return -EBADF;
    if (newfd < 0 || newfd >= MAX_FDS)
        return -EBADF;
    if (f->kind == FILE_PIPE)
        pipe_open_end(f->pipe, file_is_writer(f));   /* first: newfd may hold this end's last fd */
    if (f->kind == FILE_EPOLL)
        epoll_open(f->epoll);
    if (f->kind == FILE_EVENTFD)
        eventfd_open(f->eventfd);
    close_file(&process.files[newfd]);          /* dup2 closes newfd first */
    process.files[newfd] = *f;
    process.files[newfd].cloexec = cloexec;
    return newfd;
}

static long sys_dup(long fd)
{
    if (!get_file(fd))
        return -EBADF;
    long newfd = lowest_free_fd(0);
    return newfd < 0 ? newfd : dup_to(fd, newfd, false);
}

static long sys_dup3(long oldfd, long newfd, long flags, bool dup2)
{
    if (dup2 && oldfd == newfd)     /* dup2(fd, fd): fd, if it is open */
        return get_file(oldfd) ? newfd : -EBADF;
    if (!dup2 && (oldfd == newfd || (flags & ~O_CLOEXEC)))
        return -EINVAL;
    return dup_to(oldfd, newfd, flags & O_CLOEXEC);
}

/* The flags F_SETFL may change, as on Linux; the access mode stays. */
#define SETFL_MASK (O_APPEND | O_NONBLOCK | FASYNC | O_DIRECT | O_NOATIME)

static long sys_fcntl(long fd, long cmd, u64 arg)
{
    struct file *f = get_file(fd);
    if (!f)
        return -EBADF;
    switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        if ((long)arg < 0 || (long)arg >= MAX_FDS)
            return -EINVAL;
        long newfd = lowest_free_fd(arg);
        return newfd < 0 ? newfd : dup_to(fd, newfd, cmd == F_DUPFD_CLOEXEC);
    }
    case F_GETFD: return f->cloexec ? FD_CLOEXEC : 0;
    case F_SETFD: f->cloexec = arg & FD_CLOEXEC; return 0;
    case F_GETFL: return f->status_flags;
    case F_SETFL: f->status_flags = (f->status_flags & ~SETFL_MASK) | (arg & SETFL_MASK); return 0;
    case F_GETPIPE_SZ: return f->kind == FILE_PIPE ? PIPE_SIZE : -EBADF;
    default: return -EINVAL;
    }
}

/* ---- the process's surroundings: cwd, umask, the machine, names ---- */

/* The working directory is "/" for good: the initrd's one directory (see sys_chdir). */
static long sys_getcwd(u64 buf, u64 size)
{
    if (size < 2)
        return -ERANGE;
    if (!can_write(buf, 2))
        return -EFAULT;
    memcpy((void *)buf, "/", 2);
    return 2;                       /* the kernel's getcwd counts the NUL */
}

static long sys_umask(long mask)
{
    static long umask = 022;
    long old = umask;
    umask = mask & 0777;
    return old;
}

static long sys_time(u64 tloc)
{
    long now = (tsc_ns() / 1000000000UL) + boot_epoch_seconds;
    if (tloc) {
        if (!can_write(tloc, 8))
            return -EFAULT;
        *(long *)tloc = now;
    }
    return now;
}

static long sys_clock_getres(long clock, u64 res)
{
    if (clock < 0 || clock > CLOCK_BOOTTIME)
        return -EINVAL;
    if (res) {
        if (!can_write(res, sizeof(struct __kernel_timespec)))
            return -EFAULT;
        *(struct __kernel_timespec *)res = (struct __kernel_timespec){ 0, 1 };  /* the TSC: 1 ns */
    }
    return 0;
}

static long sys_sysinfo(u64 info)
{
    if (!can_write(info, sizeof(struct sysinfo)))
        return -EFAULT;
    struct sysinfo *si = (void *)info;
    memset(si, 0, sizeof(*si));
    si->uptime = tsc_ns() / 1000000000UL;
    si->totalram = frames_total_count() * PAGE_SIZE;
    si->freeram = frames_free_count() * PAGE_SIZE;
    si->procs = nr_threads;
    si->mem_unit = 1;
    return 0;
}

/* PR_SET_NAME names the calling thread, as on Linux: osv-tcb shows the new name. */
static long sys_prctl(long option, u64 arg2)
{
    struct thread *t = current_thread;
    switch (option) {
    case PR_SET_NAME: {
        /* Up to 15 bytes, as Linux takes: a longer name is cut, not refused. */
        const char *name = user_path(arg2, THREAD_NAME_LEN);
        if (!name) {
            if (!can_read(arg2, THREAD_NAME_LEN - 1))
                return -EFAULT;
            name = (const char *)arg2;
        }
        size_t n = 0;
        while (n < THREAD_NAME_LEN - 1 && name[n])
            n++;
        memcpy(t->name, name, n);
        t->name[n] = 0;
        return 0;
    }
    case PR_GET_NAME:
        if (!can_write(arg2, THREAD_NAME_LEN))
            return -EFAULT;
        memcpy((void *)arg2, t->name, THREAD_NAME_LEN);
        return 0;
    default:
        return -EINVAL;
    }
}

/* No network: socket() says the address family is not there; the console is no socket. */
static long sys_not_a_socket(long fd)
{
    return get_file(fd) ? -ENOTSOCK : -EBADF;
}

/* ---- dispatch ---- */

/*
 * The address-space calls serialize on process.mm_lock (brk and the mmap cursor), the
 * fd table on process.files_lock; both spinlocks, held only briefly.
 */
#define LOCKED(lock, call) ({ spin_lock(lock); long ret_ = (call); spin_unlock(lock); ret_; })

static long dispatch(const struct syscall_frame *f, u64 nr, const u64 *a)
{
    switch (nr) {
    case __NR_read: return sys_read(a[0], a[1], a[2]);
    case __NR_write: return sys_write(a[0], a[1], a[2]);
    case __NR_pread64: return sys_pread64(a[0], a[1], a[2], a[3]);
    case __NR_preadv: return sys_preadv(a[0], a[1], a[2], a[3]);
    case __NR_pwrite64: case __NR_pwritev: return positioned_check(a[0], a[3], true);
    case __NR_sendfile: return sys_sendfile(a[0], a[1], a[2], a[3]);
    case __NR_writev: return sys_iov(a[0], a[1], a[2], write_file);
    case __NR_readv: return sys_iov(a[0], a[1], a[2], read_file);
    case __NR_pipe: return LOCKED(&process.files_lock, sys_pipe2(a[0], 0));
    case __NR_pipe2: return LOCKED(&process.files_lock, sys_pipe2(a[0], a[1]));
    case __NR_poll: return sys_poll(a[0], a[1], a[2]);
    case __NR_ppoll: return sys_ppoll(a[0], a[1], a[2], a[3], a[4]);
    case __NR_select: return sys_select(a[0], a[1], a[2], a[3], a[4]);
    case __NR_pselect6: return sys_pselect6(a[0], a[1], a[2], a[3], a[4], a[5]);
    case __NR_epoll_create: return LOCKED(&process.files_lock, sys_epoll_create(a[0]));
    case __NR_epoll_create1: return LOCKED(&process.files_lock, sys_epoll_create1(a[0]));
    case __NR_epoll_ctl: return LOCKED(&process.files_lock, sys_epoll_ctl(a[0], a[1], a[2], a[3]));
    case __NR_epoll_wait: return sys_epoll_wait(a[0], a[1], a[2], a[3]);
    case __NR_epoll_pwait: return sys_epoll_pwait(a[0], a[1], a[2], a[3], a[4], a[5]);
    case __NR_epoll_pwait2: return sys_epoll_pwait2(a[0], a[1], a[2], a[3], a[4], a[5]);
    case __NR_eventfd: return LOCKED(&process.files_lock, sys_eventfd2(a[0], 0));
    case __NR_eventfd2: return LOCKED(&process.files_lock, sys_eventfd2(a[0], a[1]));
    case __NR_open: return LOCKED(&process.files_lock, sys_openat(AT_FDCWD, a[0], a[1], a[2]));
    case __NR_openat: return LOCKED(&process.files_lock, sys_openat(a[0], a[1], a[2], a[3]));
    case __NR_close: return LOCKED(&process.files_lock, sys_close(a[0]));
    case __NR_lseek: return sys_lseek(a[0], a[1], a[2]);
    case __NR_fstat: return sys_fstat(a[0], a[1]);
    case __NR_newfstatat: return sys_newfstatat(a[0], a[1], a[2], a[3]);
    case __NR_stat: case __NR_lstat: return sys_newfstatat(AT_FDCWD, a[0], a[1], 0);
    case __NR_statx: return sys_statx(a[0], a[1], a[2], a[3], a[4]);
    case __NR_getdents64: return sys_getdents64(a[0], a[1], a[2]);
    case __NR_chdir: return sys_chdir(a[0]);
    case __NR_fchdir: return sys_fchdir(a[0]);
    case __NR_readlink: return sys_readlinkat(AT_FDCWD, a[0], a[1], a[2]);
    case __NR_access: return sys_faccessat(AT_FDCWD, a[0], a[1], 0);
    case __NR_faccessat: return sys_faccessat(a[0], a[1], a[2], 0);
    case __NR_faccessat2: return sys_faccessat(a[0], a[1], a[2], a[3]);
    case __NR_readlinkat: return sys_readlinkat(a[0], a[1], a[2], a[3]);
    case __NR_ioctl: return sys_ioctl(a[0], a[1], a[2]);
    case __NR_brk: return LOCKED(&process.mm_lock, sys_brk(a[0]));
    case __NR_mmap: return LOCKED(&process.mm_lock, sys_mmap(a[0], a[1], a[2], a[3], a[4], a[5]));
    case __NR_munmap: return LOCKED(&process.mm_lock, sys_munmap(a[0], a[1]));
    case __NR_mprotect: return LOCKED(&process.mm_lock, sys_mprotect(a[0], a[1], a[2]));
    case __NR_madvise: return sys_madvise(a[0], a[1], a[2]);
    case __NR_mremap: return LOCKED(&process.mm_lock, sys_mremap(a[0], a[1], a[2], a[3], a[4]));
    case __NR_getrusage: return sys_getrusage(a[0], a[1]);
    case __NR_times: return sys_times(a[0]);
    case __NR_arch_prctl: return sys_arch_prctl(a[0], a[1]);
    case __NR_set_tid_address: return sys_set_tid_address(a[0]);
    case __NR_set_robust_list: return a[1] == 24 ? 0 : -EINVAL;
    case __NR_rseq: return -ENOSYS;                 /* glibc then does without */
    case __NR_rt_sigaction: return sys_rt_sigaction(a[0], a[1], a[2], a[3]);
    case __NR_rt_sigprocmask: return sys_rt_sigprocmask(a[0], a[1], a[2], a[3]);
    case __NR_rt_sigpending: return sys_rt_sigpending(a[0], a[1]);
    case __NR_sigaltstack: return sys_sigaltstack(a[0], a[1], f->rsp);
    case __NR_rt_sigsuspend: return sys_rt_sigsuspend(a[0], a[1]);
    case __NR_rt_sigtimedwait: return sys_rt_sigtimedwait(a[0], a[1], a[2], a[3]);
    case __NR_setitimer: return sys_setitimer(a[0], a[1], a[2]);
    case __NR_pause: return sys_pause();
    case __NR_timer_create: return sys_timer_create(a[0], a[1], a[2]);
    case __NR_timer_settime: return sys_timer_settime(a[0], a[1], a[2], a[3]);
    case __NR_timer_gettime: return sys_timer_gettime(a[0], a[1]);
    case __NR_timer_getoverrun: return sys_timer_getoverrun(a[0]);
    case __NR_timer_delete: return sys_timer_delete(a[0]);
    case __NR_getitimer: return sys_getitimer(a[0], a[1]);
    case __NR_alarm: return sys_alarm(a[0]);
    case __NR_getpid: return process_pid();
    case __NR_getppid: return 0;
    case __NR_getpgrp: return process_pid();
    case __NR_dup: return LOCKED(&process.files_lock, sys_dup(a[0]));
    case __NR_dup2: return LOCKED(&process.files_lock, sys_dup3(a[0], a[1], 0, true));
    case __NR_dup3: return LOCKED(&process.files_lock, sys_dup3(a[0], a[1], a[2], false));
    case __NR_fcntl: return LOCKED(&process.files_lock, sys_fcntl(a[0], a[1], a[2]));
    case __NR_getcwd: return sys_getcwd(a[0], a[1]);
    case __NR_umask: return sys_umask(a[0]);
    case __NR_time: return sys_time(a[0]);
    case __NR_clock_getres: return sys_clock_getres(a[0], a[1]);
    case __NR_sysinfo: return sys_sysinfo(a[0]);
    case __NR_prctl: return sys_prctl(a[0], a[1]);
    case __NR_socket: return -EAFNOSUPPORT;
    case __NR_getpeername: case __NR_getsockname: return sys_not_a_socket(a[0]);
    case __NR_fork: case __NR_vfork:
        printk("osv: %s: %s: this kernel runs one process and does not fork\n", process.path,
               nr == __NR_fork ? "fork" : "vfork");
        return -ENOSYS;
    case __NR_gettid: return current_thread->tid;
    case __NR_getuid: case __NR_geteuid: case __NR_getgid: case __NR_getegid: return 0;
    case __NR_getgroups: return (int)a[0] < 0 ? -EINVAL : 0;    /* root, no supplementary groups */
    case __NR_uname: return sys_uname(a[0]);
    case __NR_prlimit64: return sys_prlimit64(a[0], a[1], a[2], a[3]);
    /* struct rlimit is struct rlimit64 on x86-64 */
    case __NR_getrlimit: return sys_prlimit64(0, a[0], 0, a[1]);
    case __NR_setrlimit: return sys_prlimit64(0, a[0], a[1], 0);
    case __NR_getrandom: return sys_getrandom(a[0], a[1], a[2]);
    case __NR_clock_gettime: return sys_clock_gettime(a[0], a[1]);
    case __NR_gettimeofday: return sys_gettimeofday(a[0], a[1]);
    case __NR_nanosleep: return sys_clock_nanosleep(CLOCK_MONOTONIC, 0, a[0], a[1]);
    case __NR_clock_nanosleep: return sys_clock_nanosleep(a[0], a[1], a[2], a[3]);
    case __NR_sched_yield: schedule(); return 0;
    case __NR_futex: return sys_futex(a[0], a[1], a[2], a[3], a[4], a[5]);
    case __NR_clone: return sys_clone(f, a[0], a[1], a[2], a[3], a[4]);
    case __NR_clone3: return sys_clone3(f, a[0], a[1]);
    case __NR_sched_getaffinity: return sys_sched_getaffinity(a[0], a[1], a[2]);
    case __NR_sched_setaffinity: return sys_sched_setaffinity(a[0], a[1], a[2]);
    case __NR_getcpu: return sys_getcpu(a[0], a[1], a[2]);
    case __NR_kill: return sys_kill(f, a[0], a[1]);
    case __NR_tkill: return sys_tgkill(f, -1, a[0], a[1]);
    case __NR_tgkill: return sys_tgkill(f, a[0], a[1], a[2]);
    case __NR_rt_sigqueueinfo: return sys_sigqueueinfo(f, a[0], 0, a[1], a[2]);
    case __NR_rt_tgsigqueueinfo: return sys_sigqueueinfo(f, a[0], a[1], a[2], a[3]);
    case __NR_exit: thread_exit(a[0] & 0xff);
    case __NR_exit_group: process_exit(a[0] & 0xff);
    default: {
        const char *name = syscall_name(nr);
        if (name)
            printk("osv: unimplemented syscall %s (%lu)\n", name, nr);
        else
            printk("osv: unknown syscall %lu\n", nr);
        return -ENOSYS;
    }
    }
}

/* The call's result in its history record, on --strace and for osv-trace. */
static void syscall_done(struct syscall_record *r, const struct syscall_record *call)
{
    syscall_history_exit(r, call->seq, call->ret);
    if (process.strace)
        strace_print(call, true);
    syscall_trace_check(false);
}

long syscall_handler(struct syscall_frame *f)
{
    this_cpu()->entries++;
    if (fscheck_enabled)
        fscheck_syscall_entry(f);
    kernel_tls_check();
    signal_syscall_entry(current_thread, f->rsp);
    struct syscall_record *r = syscall_history_enter(f, current_thread->tid);
    /* A copy: the ring slot may be reused by other calls while this one runs. */
    struct syscall_record call = *r;
    current_thread->syscall_record = r;
    current_thread->syscall_seq = call.seq;
    if (f->rax == __NR_exit || f->rax == __NR_exit_group) {
        if (process.strace)
            strace_print(&call, false); /* they never return: strace prints "= ?" */
        if (syscall_trace_batch)
            syscall_trace_flush();      /* osv-trace shows the calls before the end */
        if (injected & INJECT_TRIPLE_FAULT)
            arch_triple_fault();        /* the app ran; its end resets the machine instead */
    }
    if (f->rax == __NR_rt_sigreturn) {
        /*
         * The handler's context goes back whole, rcx and r11 too, which syscall_exit
         * would set from rip and rflags: leave through the interrupt exit with a
         * trap_frame built here, interrupts off throughout. sigreturn_exit takes rsp up
         * to it; what lies below (this function's callees) is dead by then.
         */
        struct trap_frame tf;
        call.ret = signal_return(f, &tf);
        syscall_done(r, &call);
        signal_trap_exit(&tf);          /* one the handler's mask held back comes now */
        sigreturn_exit(&tf);
    }
    /* Interrupts on while the call runs: the timer may preempt it, as the issue asks. */
    __asm__ __volatile__("sti" : : : "memory");
    call.ret = dispatch(f, f->rax, call.args);
    __asm__ __volatile__("cli" : : : "memory");
    syscall_done(r, &call);
    return signal_syscall_exit(f, call.ret);    /* may enter a signal handler instead */
}
