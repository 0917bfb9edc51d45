/*
 * Exercises the syscalls a static executable uses beyond start-up, each
 * checked against another view of the same fact: the initrd file system
 * (readlink /proc/self/exe, open, fstat, read, lseek, close) by reading the
 * program's own executable two ways, uname, getrandom, clocks and nanosleep.
 *
 * Prints "syscalls ok" and exits 0, or prints the first failed check and
 * exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                    \
    do {                                                               \
        if (!(cond)) {                                                 \
            printf("syscalls FAILED: %s (errno %d)\n", #cond, errno); \
            return 1;                                                  \
        }                                                              \
    } while (0)

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static long now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static int check_own_executable(const char *argv0)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    CHECK(n > 0);
    exe[n] = '\0';
    CHECK(strcmp(base_name(exe), base_name(argv0)) == 0);

    int fd = open(exe, O_RDONLY);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    CHECK(S_ISREG(st.st_mode) && st.st_size > 64);

    /* Read it whole in odd-sized chunks, then spot-check with lseek. */
    unsigned char *whole = malloc((size_t)st.st_size);
    CHECK(whole != NULL);
    off_t total = 0;
    for (;;) {
        ssize_t got = read(fd, whole + total, (size_t)(st.st_size - total) < 3000 ? (size_t)(st.st_size - total) : 3000);
        CHECK(got >= 0);
        if (got == 0)
            break;
        total += got;
    }
    CHECK(total == st.st_size);
    CHECK(memcmp(whole, "\177ELF", 4) == 0);

    unsigned char piece[16];
    off_t middle = st.st_size / 2;
    CHECK(lseek(fd, middle, SEEK_SET) == middle);
    CHECK(read(fd, piece, sizeof(piece)) == (ssize_t)sizeof(piece));
    CHECK(memcmp(piece, whole + middle, sizeof(piece)) == 0);
    CHECK(lseek(fd, -4, SEEK_END) == st.st_size - 4);
    CHECK(read(fd, piece, sizeof(piece)) == 4);
    CHECK(memcmp(piece, whole + st.st_size - 4, 4) == 0);
    CHECK(read(fd, piece, sizeof(piece)) == 0);
    free(whole);

    struct stat by_path;
    CHECK(stat(exe, &by_path) == 0 && by_path.st_size == st.st_size);
    CHECK(close(fd) == 0);
    CHECK(read(fd, piece, 1) == -1 && errno == EBADF);
    CHECK(open("/no/such/file", O_RDONLY) == -1 && errno == ENOENT);
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    if (check_own_executable(argv[0]))
        return 1;

    struct utsname u;
    CHECK(uname(&u) == 0);
    CHECK(strcmp(u.machine, "x86_64") == 0);
    printf("uname %s %s %s\n", u.sysname, u.release, u.machine);

    unsigned char r1[16], r2[16];
    CHECK(getrandom(r1, sizeof(r1), GRND_NONBLOCK) == (ssize_t)sizeof(r1));
    CHECK(getrandom(r2, sizeof(r2), GRND_NONBLOCK) == (ssize_t)sizeof(r2));
    CHECK(memcmp(r1, r2, sizeof(r1)) != 0);

    long before = now_ns(CLOCK_MONOTONIC);
    struct timespec nap = {0, 20000000};
    CHECK(nanosleep(&nap, NULL) == 0);
    CHECK(now_ns(CLOCK_MONOTONIC) - before >= 20000000);

    struct timeval tv;
    CHECK(gettimeofday(&tv, NULL) == 0);
    long realtime = now_ns(CLOCK_REALTIME);
    long from_tv = tv.tv_sec * 1000000000L + tv.tv_usec * 1000L;
    CHECK(realtime >= from_tv && realtime - from_tv < 1000000000L);

    CHECK(sched_yield() == 0);
    CHECK(getpid() > 0);

    printf("syscalls ok\n");
    return 0;
}
