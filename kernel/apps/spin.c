/*
 * Spins in app code for SECONDS (default 1.5), and at least MIN_STEPS iterations (default
 * 0), while the timer preempts it, checking on every iteration that its TLS is intact: a
 * __thread variable it keeps in step with a local, and the TCB's self pointer at %fs:0,
 * which must equal the FS base the kernel reports (arch_prctl ARCH_GET_FS). Prints
 * "spin ok ITERATIONS" or the failed check. MIN_STEPS fixes the work done whatever the
 * host's load: a vCPU the host runs less gets fewer timer interrupts in SECONDS of its
 * clock (ticks it missed are not made up), but as many per iteration.
 */
#define ARCH_GET_FS 0x1003  /* asm/prctl.h, which musl does not ship */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.5;
    unsigned long min_steps = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
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
    } while (now() < end || steps < min_steps);
    printf("spin ok %lu\n", steps);
    return 0;
}
