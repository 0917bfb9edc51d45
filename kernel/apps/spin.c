/*
 * Spins in app code for SECONDS (default 1.5), and until at least MIN_INTERRUPTS
 * interrupts have come in while app code ran (default 0), checking on every iteration
 * that its TLS is intact: a __thread variable it keeps in step with a local, and the
 * TCB's self pointer at %fs:0, which must equal the FS base the kernel reports
 * (arch_prctl ARCH_GET_FS). Prints "spin ok ITERATIONS" or the failed check.
 *
 * The interrupts are counted, not expected from the time: on a loaded host QEMU fires
 * the timer late and a missed tick is not made up, so a second of the guest's clock,
 * or a fixed number of iterations, may see 300 ticks or 2000. The count is the APP
 * row of our kernel's /proc/interrupts; Linux has no such row, and there SECONDS alone
 * decide. It is read only once SECONDS are over: the loop itself makes no syscall.
 */
#define ARCH_GET_FS 0x1003  /* asm/prctl.h, which musl does not ship */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static __thread volatile unsigned long tls_steps;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The APP row of /proc/interrupts, summed over the CPUs; -1 if there is none (Linux). */
static long app_interrupts(void)
{
    static char text[8192];
    int fd = open("/proc/interrupts", O_RDONLY);
    if (fd < 0)
        return -1;
    long len = 0, n;
    while (len < (long)sizeof(text) - 1 && (n = read(fd, text + len, sizeof(text) - 1 - len)) > 0)
        len += n;
    close(fd);
    text[len] = 0;
    char *row = strstr(text, "\n APP:");
    if (!row)
        return -1;
    long sum = 0;
    char *p = row + strlen("\n APP:"), *end;
    for (unsigned long count; (count = strtoul(p, &end, 10)), end != p; p = end)
        sum += count;
    return sum;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.5;
    long min_interrupts = argc > 2 ? atol(argv[2]) : 0;
    long interrupts_at_start = min_interrupts ? app_interrupts() : -1;
    unsigned long fs_base = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_FS, &fs_base) != 0) {
        printf("spin FAILED: arch_prctl(ARCH_GET_FS)\n");
        return 1;
    }
    double end = now() + seconds;
    unsigned long steps = 0;
    do {
        /* A stretch with no syscall at all: only interrupts can come in here. */
        for (int i = 0; i < 100000; i++) {
            steps++;
            tls_steps++;
            uintptr_t self;
            __asm__ volatile("mov %%fs:0, %0" : "=r"(self));
            if (tls_steps != steps || self != fs_base) {
                printf("spin FAILED after %lu steps: tls_steps %lu, %%fs:0 %#lx, FS base %#lx\n",
                       steps, tls_steps, (unsigned long)self, fs_base);
                return 1;
            }
        }
    } while (now() < end ||
             (interrupts_at_start >= 0 && app_interrupts() - interrupts_at_start < min_interrupts));
    printf("spin ok %lu\n", steps);
    return 0;
}
