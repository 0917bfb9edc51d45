/*
 * The rest of the calls real programs asked for: pwrite64 and pwritev (never possible
 * here: files are read-only, the console and pipes cannot seek), preadv, sendfile from
 * the program's own file to a pipe and to stdout, mremap of anonymous memory (grow in
 * place, move with MREMAP_MAYMOVE keeping the contents, shrink, MREMAP_FIXED),
 * getrusage and times after some CPU work. Each line shows the raw result (or -errno)
 * or a check of it, so the same binary on the host is the oracle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static long raw(long nr, long a, long b, long c, long d, long e)
{
    long r = syscall(nr, a, b, c, d, e, 0);
    return r < 0 ? -errno : r;
}

static void positioned(int file, int fds[2])
{
    printf("pwrite64 file %ld", raw(SYS_pwrite64, file, (long)"x", 1, 0, 0));
    printf(" pipe %ld", raw(SYS_pwrite64, fds[1], (long)"x", 1, 0, 0));
    printf(" stdout %ld", raw(SYS_pwrite64, 1, (long)"x", 1, 0, 0));
    printf(" negative %ld", raw(SYS_pwrite64, file, (long)"x", 1, -1, 0));
    printf(" bad %ld\n", raw(SYS_pwrite64, 99, (long)"x", 1, 0, 0));
    char a[2] = { 0 }, b[3] = { 0 };
    struct iovec iov[2] = { { a, 1 }, { b, 2 } };
    printf("pwritev %ld %ld\n", raw(SYS_pwritev, file, (long)iov, 2, 0, 0),
           raw(SYS_pwritev, fds[1], (long)iov, 2, 0, 0));
    long r = raw(SYS_preadv, file, (long)iov, 2, 1, 0);
    printf("preadv %ld %s %s, offset still %ld\n", r, a, b, raw(SYS_lseek, file, 0, SEEK_CUR, 0, 0));
    printf("preadv end %ld", raw(SYS_preadv, file, (long)iov, 2, 1L << 40, 0));
    printf(" pipe %ld\n", raw(SYS_preadv, fds[0], (long)iov, 2, 0, 0));
}

static void sendfiles(int file, int fds[2])
{
    off_t off = 1;
    long r = raw(SYS_sendfile, fds[1], file, (long)&off, 3, 0);
    char buf[8] = { 0 };
    read(fds[0], buf, sizeof(buf));
    printf("sendfile pipe %ld %s offset %ld file offset %ld\n", r, buf, (long)off,
           raw(SYS_lseek, file, 0, SEEK_CUR, 0, 0));
    lseek(file, 1, SEEK_SET);
    r = raw(SYS_sendfile, fds[1], file, 0, 3, 0);
    memset(buf, 0, sizeof(buf));
    read(fds[0], buf, sizeof(buf));
    printf("sendfile at the file offset %ld %s, now %ld\n", r, buf, raw(SYS_lseek, file, 0, SEEK_CUR, 0, 0));
    printf("sendfile stdout: ");
    fflush(stdout);
    off = 1;
    r = raw(SYS_sendfile, 1, file, (long)&off, 3, 0);
    printf(" = %ld\n", r);
    off = 1L << 40;
    printf("sendfile past the end %ld", raw(SYS_sendfile, fds[1], file, (long)&off, 3, 0));
    printf(" from a pipe %ld", raw(SYS_sendfile, 1, fds[0], 0, 3, 0));
    printf(" to a file %ld", raw(SYS_sendfile, file, file, 0, 3, 0));
    printf(" bad %ld\n", raw(SYS_sendfile, 1, 99, 0, 3, 0));
}

static void remaps(void)
{
    long page = 4096;
    char *p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p + 2 * page, 2 * page);         /* room to grow in place */
    strcpy(p, "first page");
    strcpy(p + page, "second page");
    long r = raw(SYS_mremap, (long)p, 2 * page, 3 * page, 0, 0);
    printf("mremap grow in place %s\n", r == (long)p ? "same address" : "moved");
    p[3 * page - 1] = 1;
    /* A mapping right after it: growing further has to move. */
    char *q = mmap(p + 3 * page, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("mremap stuck %ld\n", raw(SYS_mremap, (long)p, 3 * page, 64 * page, 0, 0));
    r = raw(SYS_mremap, (long)p, 3 * page, 64 * page, MREMAP_MAYMOVE, 0);
    char *m = (char *)r;
    printf("mremap maymove %s %s %s %d\n", m != p ? "moved" : "same", m, m + page, m[3 * page - 1]);
    m[64 * page - 1] = 2;
    printf("mremap shrink %s\n", raw(SYS_mremap, r, 64 * page, page, 0, 0) == r ? "same address" : "moved");
    r = raw(SYS_mremap, r, page, page, MREMAP_MAYMOVE | MREMAP_FIXED, (long)p);
    printf("mremap fixed %s %s\n", r == (long)p ? "at new_addr" : "elsewhere", p);
    printf("mremap errors %ld", raw(SYS_mremap, (long)p + 1, page, page, 0, 0));
    printf(" %ld", raw(SYS_mremap, (long)p, page, 0, 0, 0));
    printf(" %ld", raw(SYS_mremap, (long)p, page, page, MREMAP_FIXED, (long)q));
    printf(" %ld\n", raw(SYS_mremap, (long)p + 8 * page, page, 2 * page, MREMAP_MAYMOVE, 0));
}

static long cpu_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void cpu_times(void)
{
    /* 100 ms of CPU, not of the clock on the wall: a loaded host gives less per second. */
    volatile unsigned long spin = 0;
    for (long start = cpu_ms(); cpu_ms() - start < 100;)
        spin++;
    struct rusage ru;
    long r = raw(SYS_getrusage, RUSAGE_SELF, (long)&ru, 0, 0, 0);
    long us = ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1000000 +
              ru.ru_stime.tv_usec;
    printf("getrusage %ld cpu %s maxrss %s\n", r, us >= 50000 && us < 10000000 ? "plausible" : "wrong",
           ru.ru_maxrss > 0 ? "set" : "0");
    r = raw(SYS_getrusage, RUSAGE_THREAD, (long)&ru, 0, 0, 0);
    us = ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    printf("getrusage thread %ld cpu %s\n", r, us >= 50000 ? "plausible" : "wrong");
    r = raw(SYS_getrusage, RUSAGE_CHILDREN, (long)&ru, 0, 0, 0);
    printf("getrusage children %ld %ld %ld\n", r, (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
    printf("getrusage bad %ld\n", raw(SYS_getrusage, 7, (long)&ru, 0, 0, 0));
    struct tms t;
    long before = raw(SYS_times, (long)&t, 0, 0, 0, 0);
    nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
    long after = raw(SYS_times, 0, 0, 0, 0, 0);
    printf("times cpu %s children %ld %ld, clock %s\n", t.tms_utime + t.tms_stime >= 5 ? "plausible" : "wrong",
           (long)t.tms_cutime, (long)t.tms_cstime, after - before >= 4 ? "advances" : "stuck");
}

int main(void)
{
    int file = open("/proc/self/exe", O_RDONLY);
    int fds[2];
    pipe(fds);
    positioned(file, fds);
    sendfiles(file, fds);
    remaps();
    cpu_times();
    return 0;
}
