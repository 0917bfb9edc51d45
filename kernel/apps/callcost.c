/*
 * What one syscall costs, measured by the program itself: N raw `syscall`
 * instructions (no libc work inside the timed loop) of three kinds, timed with
 * CLOCK_MONOTONIC around the loop:
 *
 *   getppid             no pointer argument: the history's record and nothing else
 *   write(-1, buf, 64)  an input buffer the history captures at entry (EBADF at once)
 *   pread64(fd, buf, 64, 0) an output buffer captured at return
 *
 * Prints "callcost KIND NS_PER_CALL" for each; scripts/benchmark_history runs it with
 * and without the kernel's --no-capture.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>

static long raw3(long nr, long a, long b, long c)
{
    long ret;
    __asm__ __volatile__("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c)
                         : "rcx", "r11", "memory");
    return ret;
}

static long raw4(long nr, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ __volatile__("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                         : "rcx", "r11", "memory");
    return ret;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000;
    static char buf[64];
    int fd = open(argv[0], O_RDONLY);
    if (fd < 0 || n <= 0)
        return 1;
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        raw3(SYS_getppid, 0, 0, 0);
    double t1 = now_ns();
    for (long i = 0; i < n; i++)
        raw3(SYS_write, -1, (long)buf, sizeof(buf));
    double t2 = now_ns();
    for (long i = 0; i < n; i++)
        raw4(SYS_pread64, fd, (long)buf, sizeof(buf), 0);
    double t3 = now_ns();
    printf("callcost getppid %.1f\n", (t1 - t0) / n);
    printf("callcost write %.1f\n", (t2 - t1) / n);
    printf("callcost pread64 %.1f\n", (t3 - t2) / n);
    return 0;
}
