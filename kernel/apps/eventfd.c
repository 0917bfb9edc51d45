/*
 * eventfd and eventfd2, printing each raw result and errno so the host's run is the
 * oracle (tests/test_epoll.py): the counter's sums, EFD_SEMAPHORE, EFD_NONBLOCK's EAGAIN,
 * short buffers, the largest count and EAGAIN past it, poll and epoll readiness, a
 * blocking read and an epoll_wait woken by another thread, fstat's anonymous inode.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *err(long r)
{
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof(buf), "%ld", r);
        return buf;
    }
    switch (errno) {
    case EINVAL: return "-1 EINVAL";
    case EAGAIN: return "-1 EAGAIN";
    case EFAULT: return "-1 EFAULT";
    case ESPIPE: return "-1 ESPIPE";
    default: snprintf(buf, sizeof(buf), "-1 errno %d", errno); return buf;
    }
}

static uint64_t value;

static const char *get(int fd)
{
    static char buf[64];
    value = 0;
    long r = read(fd, &value, 8);
    if (r < 0)
        return err(r);
    snprintf(buf, sizeof(buf), "%ld, %#llx", r, (unsigned long long)value);
    return buf;
}

static long put(int fd, uint64_t v)
{
    return write(fd, &v, 8);
}

static int wake_fd;

static void *writer(void *arg)
{
    (void)arg;
    usleep(30000);
    put(wake_fd, 9);
    return NULL;
}

static void *volatile bad = (void *)8;     /* unmapped: EFAULT */

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("eventfd2 with a bad flag: %s\n", err(syscall(SYS_eventfd2, 0, 8)));
    int fd = syscall(SYS_eventfd, 5);      /* the old call, without flags */
    printf("eventfd(5): fd %d\n", fd >= 0);
    printf("read of 4 bytes: %s\n", err(read(fd, &value, 4)));
    printf("read: %s\n", get(fd));
    printf("write of 4 bytes: %s\n", err(write(fd, &value, 4)));
    printf("write of ~0: %s\n", err(put(fd, ~0ULL)));
    printf("write into a bad pointer: %s\n", err(write(fd, bad, 8)));
    printf("writes of 3 and 4: %s %s\n", err(put(fd, 3)), err(put(fd, 4)));
    printf("read: %s\n", get(fd));
    printf("lseek: %s\n", err(lseek(fd, 0, SEEK_SET)));
    struct stat st;
    fstat(fd, &st);
    printf("fstat: type %#o mode %#o\n", st.st_mode & S_IFMT, st.st_mode & 07777);
    close(fd);

    int nb = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    printf("F_GETFL access and O_NONBLOCK: %#x, FD_CLOEXEC: %d\n",
           fcntl(nb, F_GETFL) & (O_ACCMODE | O_NONBLOCK), fcntl(nb, F_GETFD) == FD_CLOEXEC);
    printf("read of 0: %s\n", get(nb));
    struct pollfd p = { .fd = nb, .events = POLLIN | POLLOUT };
    int r = poll(&p, 1, 0);
    printf("poll at 0: %s revents %#x\n", err(r), p.revents);
    printf("write of the largest count: %s\n", err(put(nb, 0xfffffffffffffffeULL)));
    printf("write of 1 more: %s\n", err(put(nb, 1)));
    r = poll(&p, 1, 0);
    printf("poll when full: %s revents %#x\n", err(r), p.revents);
    printf("read: %s\n", get(nb));
    put(nb, 2);
    printf("read into a bad pointer: %s\n", err(read(nb, bad, 8)));
    printf("the count went all the same: %s\n", get(nb));
    close(nb);

    int sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
    printf("semaphore reads: %s;", get(sem));
    printf(" %s;", get(sem));
    printf(" %s;", get(sem));
    printf(" %s\n", get(sem));
    close(sem);

    /* Blocking: a read and an epoll_wait, each woken by another thread's write. */
    wake_fd = eventfd(0, 0);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    printf("blocking read woken by a thread: %s\n", get(wake_fd));
    pthread_join(t, NULL);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 }, out[2];
    printf("epoll_ctl add: %s\n", err(epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &ev)));
    printf("epoll_wait, nothing yet: %s\n", err(epoll_wait(ep, out, 2, 0)));
    pthread_create(&t, NULL, writer, NULL);
    int n = epoll_wait(ep, out, 2, -1);
    printf("epoll_wait woken by a thread: %s events %#x data %llu\n", err(n), out[0].events,
           (unsigned long long)out[0].data.u64);
    pthread_join(t, NULL);
    printf("read: %s\n", get(wake_fd));
    return 0;
}
