/*
 * Pipes as Linux has them: pipe and pipe2 (O_CLOEXEC, O_NONBLOCK), the fd flags of each
 * end, EOF once the last writer is closed (also through a dup), EPIPE without a reader
 * (SIGPIPE ignored, so the write's EPIPE shows), EAGAIN and the 64 KiB
 * capacity, readv of a pipe, the errors of the wrong end, and a producer thread
 * streaming a megabyte to a consumer through blocking reads and writes. Each line shows
 * the raw result (or -errno), so the same binary on the host is the oracle. With the
 * argument "hang" it reads a pipe nobody writes, for ever (triage's pipe wait).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The raw syscall: -errno on failure, as the kernel returns it. */
static long raw(long nr, long a, long b, long c)
{
    long r = syscall(nr, a, b, c);
    return r < 0 ? -errno : r;
}

#define STREAM_BYTES (1 << 20)

/* The byte at position i of the stream: a pattern a lost or repeated chunk breaks. */
static unsigned char stream_byte(long i)
{
    return (unsigned char)(i * 7 + i / 4093);
}

static void *producer(void *arg)
{
    int fd = *(int *)arg;
    static unsigned char chunk[10000];
    /* Let the consumer block on the empty pipe first. */
    nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
    long sent = 0, size = 1;
    while (sent < STREAM_BYTES) {
        long n = size < STREAM_BYTES - sent ? size : STREAM_BYTES - sent;
        for (long i = 0; i < n; i++)
            chunk[i] = stream_byte(sent + i);
        if (write(fd, chunk, n) != n)
            return (void *)1;
        sent += n;
        size = size * 3 % 9973 + 1;     /* sizes on both sides of PIPE_BUF */
    }
    close(fd);
    return NULL;
}

static void threads(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pthread_t t;
    pthread_create(&t, NULL, producer, &fds[1]);
    static unsigned char buf[7000];
    long got = 0, bad = 0, n;
    while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
        for (long i = 0; i < n; i++)
            bad += buf[i] != stream_byte(got + i);
        got += n;
    }
    void *ret;
    pthread_join(t, &ret);
    printf("stream %ld bytes, %ld wrong, last read %ld, producer %s\n", got, bad, n,
           ret ? "failed" : "ok");
    close(fds[0]);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int fds[2];
    if (argc > 1 && strcmp(argv[1], "hang") == 0) {
        char c;
        pipe(fds);
        return read(fds[0], &c, 1);
    }
    long r = raw(SYS_pipe, (long)fds, 0, 0);
    printf("pipe %ld %d %d\n", r, fds[0], fds[1]);
    printf("getfl %#lx %#lx\n", raw(SYS_fcntl, fds[0], F_GETFL, 0), raw(SYS_fcntl, fds[1], F_GETFL, 0));
    printf("getfd %ld %ld\n", raw(SYS_fcntl, fds[0], F_GETFD, 0), raw(SYS_fcntl, fds[1], F_GETFD, 0));
    struct stat st;
    fstat(fds[0], &st);
    printf("fifo %d size %ld\n", S_ISFIFO(st.st_mode), (long)st.st_size);
    printf("lseek %ld", raw(SYS_lseek, fds[0], 0, SEEK_CUR));
    printf(" pread %ld\n", raw(SYS_pread64, fds[0], (long)&st, 1));
    char buf[100] = { 0 };
    printf("write %ld\n", raw(SYS_write, fds[1], (long)"hello, pipe", 11));
    int unread = -1;
    r = raw(SYS_ioctl, fds[0], FIONREAD, (long)&unread);
    printf("fionread %ld %d", r, unread);
    printf(" pipe-size %ld", raw(SYS_fcntl, fds[1], F_GETPIPE_SZ, 0));
    int file = open("/proc/self/exe", O_RDONLY);
    printf(" not-a-pipe %ld\n", raw(SYS_fcntl, file, F_GETPIPE_SZ, 0));
    close(file);
    printf("read %ld %s\n", raw(SYS_read, fds[0], (long)buf, 5), buf);
    printf("read-zero %ld\n", raw(SYS_read, fds[0], (long)buf, 0));
    memset(buf, 0, sizeof(buf));
    printf("read-rest %ld %s\n", raw(SYS_read, fds[0], (long)buf, sizeof(buf)), buf);
    printf("wrong-end %ld", raw(SYS_write, fds[0], (long)"x", 1));
    printf(" %ld\n", raw(SYS_read, fds[1], (long)buf, 1));

    /* readv: the first iovec filled exactly, the pipe empty after it: no wait for the second. */
    char a[4] = { 0 }, b[4] = { 0 };
    write(fds[1], "abcd", 4);
    struct iovec iov[2] = { { a, 4 }, { b, 4 } };
    printf("readv %ld %.4s\n", raw(SYS_readv, fds[0], (long)iov, 2), a);

    /* The write end lives on in its dup: no EOF until both are closed. */
    int wdup = dup(fds[1]);
    close(fds[1]);
    printf("dup-write %ld\n", raw(SYS_write, wdup, (long)"dup", 3));
    memset(buf, 0, sizeof(buf));
    printf("dup-read %ld %s\n", raw(SYS_read, fds[0], (long)buf, sizeof(buf)), buf);
    close(wdup);
    printf("eof %ld\n", raw(SYS_read, fds[0], (long)buf, sizeof(buf)));
    close(fds[0]);

    printf("pipe2 %ld", raw(SYS_pipe2, (long)fds, O_CLOEXEC | O_NONBLOCK, 0));
    printf(" getfl %#lx %#lx", raw(SYS_fcntl, fds[0], F_GETFL, 0), raw(SYS_fcntl, fds[1], F_GETFL, 0));
    printf(" getfd %ld %ld\n", raw(SYS_fcntl, fds[0], F_GETFD, 0), raw(SYS_fcntl, fds[1], F_GETFD, 0));
    printf("empty %ld\n", raw(SYS_read, fds[0], (long)buf, sizeof(buf)));
    static char page[4096];
    long total = 0;
    while ((r = raw(SYS_write, fds[1], (long)page, sizeof(page))) > 0)
        total += r;
    printf("capacity %ld then %ld;", total, r);
    printf(" small %ld\n", raw(SYS_write, fds[1], (long)"x", 1));
    printf("drain %ld", raw(SYS_read, fds[0], (long)page, sizeof(page)));
    printf(" write %ld\n", raw(SYS_write, fds[1], (long)page, 100));
    close(fds[0]);
    printf("epipe %ld\n", raw(SYS_write, fds[1], (long)"x", 1));
    close(fds[1]);
    printf("pipe2-bad %ld", raw(SYS_pipe2, (long)fds, O_APPEND, 0));
    printf(" %ld\n", raw(SYS_pipe2, 8, 0, 0));

    threads();
    return 0;
}
