/*
 * The fd table, process.fds: which open file each small number names, and FD_CLOEXEC.
 * process.files_lock guards it; files_lock is never held while fs_lock is taken (a
 * file's last put may need fs_lock), so every put here comes after the unlock.
 */
#include "vfs.h"
#include "process.h"
#include "tty.h"
#include <asm-generic/errno.h>
#include <linux/fcntl.h>

struct file *fd_get(int fd)
{
    if (fd < 0 || fd >= MAX_FDS)
        return NULL;
    spin_lock(&process.files_lock);
    struct file *f = process.fds[fd].file;
    if (f)
        file_get(f);
    spin_unlock(&process.files_lock);
    return f;
}

/* The lowest free fd at or above from; files_lock held. */
static long lowest_free(int from)
{
    for (int fd = MAX(from, 0); fd < MAX_FDS; fd++)
        if (!process.fds[fd].file)
            return fd;
    return -EMFILE;
}

/* The caller's reference goes to the table; on failure the caller still has it. */
long fd_install(struct file *f, int from, bool cloexec)
{
    spin_lock(&process.files_lock);
    long fd = lowest_free(from);
    if (fd >= 0)
        process.fds[fd] = (struct fd_entry){ f, cloexec };
    spin_unlock(&process.files_lock);
    return fd;
}

/* An fd goes: out of every epoll set first (epoll.c). files_lock held. */
static struct file *take(int fd)
{
    struct file *f = process.fds[fd].file;
    if (f)
        epoll_forget_fd(fd);
    process.fds[fd] = (struct fd_entry){ NULL, false };
    return f;
}

long fd_close(int fd)
{
    if (fd < 0 || fd >= MAX_FDS)
        return -EBADF;
    spin_lock(&process.files_lock);
    struct file *f = take(fd);
    spin_unlock(&process.files_lock);
    if (!f)
        return -EBADF;
    file_put(f);
    return 0;
}

/*
 * dup, dup2, dup3 and F_DUPFD: newfd names oldfd's file too, closed first if it was
 * open; newfd < 0 takes the lowest free fd at or above -newfd - 1.
 */
long fd_dup(int oldfd, int newfd, bool cloexec)
{
    if (oldfd < 0 || oldfd >= MAX_FDS || newfd >= MAX_FDS)
        return -EBADF;
    spin_lock(&process.files_lock);
    struct file *f = process.fds[oldfd].file, *replaced = NULL;
    long fd = !f ? -EBADF : newfd < 0 ? lowest_free(-newfd - 1) : newfd;
    if (fd >= 0) {
        file_get(f);
        replaced = take(fd);
        process.fds[fd] = (struct fd_entry){ f, cloexec };
    }
    spin_unlock(&process.files_lock);
    if (replaced)
        file_put(replaced);
    return fd;
}

long fd_cloexec(int fd, int set)
{
    if (fd < 0 || fd >= MAX_FDS)
        return -EBADF;
    spin_lock(&process.files_lock);
    long ret = -EBADF;
    if (process.fds[fd].file) {
        if (set >= 0)
            process.fds[fd].cloexec = set;
        ret = process.fds[fd].cloexec ? FD_CLOEXEC : 0;
    }
    spin_unlock(&process.files_lock);
    return ret;
}

/*
 * fds 0, 1 and 2, as a Linux shell leaves its terminal: read-write; or, for
 * `cmd | app > out`, a pipe's read end (O_RDONLY) and write ends (O_WRONLY). fd 2's
 * output is stderr's.
 */
void fd_init_terminal(void)
{
    for (int fd = 0; fd < 3; fd++) {
        bool pipe = tty_modes[fd] == TTY_MODE_PIPE;
        struct file *f = file_alloc(&tty_file_ops, pipe ? (fd ? O_WRONLY : O_RDONLY)
                                                        : O_RDWR | O_LARGEFILE);
        f->tty.stream = fd == 2 ? 2 : 1;
        f->tty.host_pipe = pipe;
        process.fds[fd] = (struct fd_entry){ f, false };
    }
}
