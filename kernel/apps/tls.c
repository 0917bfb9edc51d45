/*
 * Checks that the app's thread-local storage survives the kernel: every
 * syscall, interrupt and exception entry switches FS to the kernel's TCB and
 * back, so a mistake there shows up here as a wrong __thread value, a wrong
 * errno (glibc and musl keep errno in TLS) or a wrong FS base.
 *
 * Prints "tls ok N" (N = iterations) and exits 0, or prints the first failed
 * check and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ARCH_GET_FS 0x1003 /* Linux uapi asm/prctl.h; musl has no asm/ headers */
#define ITERATIONS 2000
#define SPIN_NS 200000000L /* long enough for timer interrupts to hit app code */

static __thread long initialised = 0x1234567890abcdefL; /* .tdata */
static __thread long zeroed[64];                        /* .tbss */
static __thread unsigned counter;                       /* .tbss */

static int failed(const char *what, long iteration)
{
    printf("tls FAILED: %s (iteration %ld, errno %d)\n", what, iteration, errno);
    return 1;
}

#define CHECK(cond, iteration)                  \
    do {                                        \
        if (!(cond))                            \
            return failed(#cond, (iteration));  \
    } while (0)

static uintptr_t fs_base(void)
{
    uintptr_t base = 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_FS, &base) != 0)
        return 0;
    return base;
}

/* The x86-64 TCB's first word is its own address: %fs:0 == FS base. */
static uintptr_t fs_self(void)
{
    uintptr_t self;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(self));
    return self;
}

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

int main(void)
{
    CHECK(initialised == 0x1234567890abcdefL, -1);
    for (int i = 0; i < 64; i++)
        CHECK(zeroed[i] == 0, -1);

    uintptr_t base = fs_base();
    CHECK(base != 0, -1);
    CHECK(fs_self() == base, -1);
    /* Variant II: the TLS block ends where the TCB (FS base) begins. */
    uintptr_t var = (uintptr_t)&initialised;
    CHECK(var < base && base - var < 65536, -1);

    pid_t pid = getpid();
    pid_t tid = (pid_t)syscall(SYS_gettid);
    long last_ns = now_ns();

    for (long i = 0; i < ITERATIONS; i++) {
        int fd = open("/no/such/file", O_RDONLY);
        CHECK(fd == -1 && errno == ENOENT, i);

        errno = 0;
        CHECK(getpid() == pid && errno == 0, i);
        CHECK(syscall(SYS_gettid) == tid, i);

        long t = now_ns();
        CHECK(t >= last_ns && errno == 0, i);
        last_ns = t;

        initialised += i;
        zeroed[i % 64] = i;
        counter++;
        CHECK(fs_base() == base && fs_self() == base, i);

        /* Varied sizes take both of malloc's paths: brk and mmap. */
        size_t size = 16 + (size_t)(i * 7919) % (i % 10 == 0 ? 400000 : 4000);
        unsigned char *p = malloc(size);
        CHECK(p != NULL, i);
        memset(p, (int)(i & 0xff), size);
        CHECK(p[0] == (i & 0xff) && p[size - 1] == (i & 0xff), i);
        free(p);

        CHECK(zeroed[i % 64] == i && counter == (unsigned)i + 1, i);
    }
    CHECK(initialised == 0x1234567890abcdefL + (long)ITERATIONS * (ITERATIONS - 1) / 2,
          ITERATIONS);

    /*
     * Spin on TLS with a syscall (the clock) only every 256 rounds, so that
     * timer interrupts, not syscalls, are what mostly enters the kernel here.
     */
    long spins = 0;
    for (long start = now_ns(); spins % 256 != 0 || now_ns() - start < SPIN_NS; spins++) {
        counter++;
        CHECK(counter == (unsigned)(ITERATIONS + spins + 1), spins);
        for (volatile int k = 0; k < 1000; k++)
            zeroed[k % 64]++;
    }
    CHECK(fs_base() == base && fs_self() == base, ITERATIONS);

    printf("tls ok %d\n", ITERATIONS);
    return 0;
}
