/*
 * poll, ppoll, select and pselect6 on pipes, a file and stdout: which events each end
 * reports (POLLIN, POLLOUT, POLLHUP once the writers are gone, POLLERR without readers,
 * POLLNVAL for a closed fd), zero timeouts, timeouts that expire (and the time left
 * written back as 0), a thread's write waking a blocked poll or select, and the errors
 * (EBADF in select, EINVAL). Each line shows the raw result (or -errno) and the bits,
 * so the same binary on the host is the oracle.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long raw(long nr, long a, long b, long c, long d, long e)
{
    long r = syscall(nr, a, b, c, d, e, 0);
    return r < 0 ? -errno : r;
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Writes one byte to the fd in arg after 30 ms, when the main thread is asleep. */
static void *late_writer(void *arg)
{
    nanosleep(&(struct timespec){ 0, 30 * 1000 * 1000 }, NULL);
    write(*(int *)arg, "!", 1);
    return NULL;
}

static void poll_one(const char *what, int fd, short events, int timeout)
{
    struct pollfd p = { fd, events, 0 };
    long r = raw(SYS_poll, (long)&p, 1, timeout, 0, 0);
    printf("poll %s %ld %#x\n", what, r, p.revents);
}

int main(void)
{
    int fds[2];
    pipe(fds);
    int file = open("/proc/self/exe", O_RDONLY);
    poll_one("empty", fds[0], POLLIN, 0);
    poll_one("writable", fds[1], POLLIN | POLLOUT, 0);
    poll_one("file", file, POLLIN | POLLOUT | POLLPRI, 0);
    poll_one("stdout", 1, POLLOUT, 0);
    poll_one("closed", 99, POLLIN, 0);
    write(fds[1], "ab", 2);
    poll_one("data", fds[0], POLLIN | POLLRDNORM | POLLOUT, 0);

    struct pollfd set[4] = { { fds[0], POLLIN, 0 }, { -1, POLLIN, 7 }, { fds[1], POLLOUT, 0 },
                             { 99, POLLIN, 0 } };
    long r = raw(SYS_poll, (long)set, 4, 0, 0, 0);
    printf("poll-many %ld %#x %#x %#x %#x\n", r, set[0].revents, set[1].revents, set[2].revents,
           set[3].revents);
    printf("poll-too-many %ld\n", raw(SYS_poll, (long)set, 100000, 0, 0, 0));

    char buf[8];
    read(fds[0], buf, sizeof(buf));
    long start = now_ms();
    poll_one("timeout", fds[0], POLLIN, 50);
    printf("poll waited %s\n", now_ms() - start >= 50 ? "enough" : "too little");

    pthread_t t;
    pthread_create(&t, NULL, late_writer, &fds[1]);
    poll_one("woken", fds[0], POLLIN, -1);
    pthread_join(t, NULL);
    read(fds[0], buf, sizeof(buf));

    struct timespec ts = { 0, 40 * 1000 * 1000 };
    struct pollfd p = { fds[0], POLLIN, 0 };
    start = now_ms();
    r = raw(SYS_ppoll, (long)&p, 1, (long)&ts, 0, 8);
    printf("ppoll timeout %ld %#x left %ld %ld waited %s\n", r, p.revents, (long)ts.tv_sec,
           ts.tv_nsec, now_ms() - start >= 40 ? "enough" : "too little");
    ts = (struct timespec){ 0, 2000000000 };
    printf("ppoll bad %ld\n", raw(SYS_ppoll, (long)&p, 1, (long)&ts, 0, 8));

    /* select: the read end empty, the file ready both ways, the write end writable */
    fd_set rd, wr, ex;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    FD_ZERO(&ex);
    FD_SET(fds[0], &rd);
    FD_SET(file, &rd);
    FD_SET(fds[1], &wr);
    FD_SET(file, &wr);
    FD_SET(file, &ex);
    struct timeval tv = { 0, 0 };
    r = raw(SYS_select, file + 1, (long)&rd, (long)&wr, (long)&ex, (long)&tv);
    printf("select %ld rd %d%d wr %d%d ex %d\n", r, FD_ISSET(fds[0], &rd), FD_ISSET(file, &rd),
           FD_ISSET(fds[1], &wr), FD_ISSET(file, &wr), FD_ISSET(file, &ex));
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    tv = (struct timeval){ 0, 40000 };
    start = now_ms();
    r = raw(SYS_select, fds[0] + 1, (long)&rd, 0, 0, (long)&tv);
    printf("select timeout %ld rd %d left %ld %ld waited %s\n", r, FD_ISSET(fds[0], &rd),
           (long)tv.tv_sec, (long)tv.tv_usec, now_ms() - start >= 40 ? "enough" : "too little");
    tv = (struct timeval){ 0, 30000 };
    start = now_ms();
    r = raw(SYS_select, 0, 0, 0, 0, (long)&tv);
    printf("select sleep %ld waited %s\n", r, now_ms() - start >= 30 ? "enough" : "too little");
    FD_ZERO(&rd);
    FD_SET(20, &rd);
    printf("select closed %ld\n", raw(SYS_select, 21, (long)&rd, 0, 0, 0));
    printf("select negative %ld\n", raw(SYS_select, -1, 0, 0, 0, 0));

    pthread_create(&t, NULL, late_writer, &fds[1]);
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    r = raw(SYS_pselect6, fds[0] + 1, (long)&rd, 0, 0, 0);
    printf("pselect6 woken %ld rd %d\n", r, FD_ISSET(fds[0], &rd));
    pthread_join(t, NULL);

    /* The writers gone: the read end hangs up, and select calls it readable. */
    read(fds[0], buf, sizeof(buf));
    close(fds[1]);
    poll_one("hangup", fds[0], POLLIN, 0);
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    ts = (struct timespec){ 1, 0 };
    printf("pselect6 hangup %ld rd %d\n", raw(SYS_pselect6, fds[0] + 1, (long)&rd, 0, 0, (long)&ts),
           FD_ISSET(fds[0], &rd));
    close(fds[0]);

    /* No reader: the write end has an error (and stays writable). */
    pipe(fds);
    close(fds[0]);
    poll_one("no-reader", fds[1], POLLOUT, 0);
    return 0;
}
