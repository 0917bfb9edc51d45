/*
 * The file-descriptor and process calls a real program makes on its way (busybox's pwd
 * and printf, shells): getcwd, umask, dup/dup2/dup3, fcntl, prctl's thread name,
 * clock_getres, sysinfo, time, getpeername on a file, access/faccessat, getgroups. (dup copies the descriptor with its own
 * offset: Linux's shared open file description is not modelled yet.) Each line shows the raw result
 * (or -errno), so the same binary run on the host, from "/" with umask 022, is the
 * oracle. With the argument "guest" it adds what only a unikernel without processes or
 * a network answers: socket is EAFNOSUPPORT, fork ENOSYS.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The raw syscall: -errno on failure, as the kernel returns it. */
static long raw(long nr, long a, long b, long c)
{
    long r = syscall(nr, a, b, c);
    return r < 0 ? -errno : r;
}

int main(int argc, char **argv)
{
    char buf[64] = { 0 };
    printf("getcwd %ld %s\n", raw(SYS_getcwd, (long)buf, sizeof(buf), 0), buf);
    printf("getcwd-small %ld\n", raw(SYS_getcwd, (long)buf, 1, 0));
    long r = raw(SYS_umask, 077, 0, 0);
    printf("umask %ld %ld\n", r, raw(SYS_umask, 022, 0, 0));

    int fd = open("/proc/self/exe", O_RDONLY);
    printf("open %d\n", fd);
    printf("dup %ld\n", raw(SYS_dup, fd, 0, 0));
    printf("dup2 %ld", raw(SYS_dup2, fd, 10, 0));
    printf(" %ld\n", raw(SYS_dup2, fd, fd, 0));
    printf("dup3 %ld", raw(SYS_dup3, fd, fd, 0));
    printf(" %ld\n", raw(SYS_dup3, fd, 11, O_CLOEXEC));
    printf("dup3-flags %ld\n", raw(SYS_dup3, fd, 12, 1));
    printf("getfd %ld", raw(SYS_fcntl, 10, F_GETFD, 0));
    printf(" %ld\n", raw(SYS_fcntl, 11, F_GETFD, 0));
    printf("setfd %ld", raw(SYS_fcntl, 10, F_SETFD, FD_CLOEXEC));
    printf(" %ld\n", raw(SYS_fcntl, 10, F_GETFD, 0));
    printf("dupfd %ld", raw(SYS_fcntl, fd, F_DUPFD, 20));
    printf(" %ld\n", raw(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 20));
    printf("getfl %#lx\n", raw(SYS_fcntl, fd, F_GETFL, 0));
    printf("setfl %ld", raw(SYS_fcntl, fd, F_SETFL, O_NONBLOCK | O_RDWR));
    printf(" %#lx\n", raw(SYS_fcntl, fd, F_GETFL, 0));
    printf("fcntl-bad %ld", raw(SYS_fcntl, 99, F_GETFD, 0));
    printf(" %ld\n", raw(SYS_fcntl, fd, 12345, 0));
    printf("dup-bad %ld", raw(SYS_dup, 99, 0, 0));
    printf(" %ld\n", raw(SYS_dup2, 99, 5, 0));
    printf("getpeername %ld", raw(SYS_getpeername, fd, 0, 0));
    printf(" %ld\n", raw(SYS_getpeername, 99, 0, 0));
    /* /dev/null is there to write; what is missing is ENOENT, a bad mode EINVAL. */
    printf("access %ld", raw(SYS_access, (long)"/dev/null", W_OK | R_OK, 0));
    printf(" %ld", raw(SYS_access, (long)"/nonexistent", F_OK, 0));
    printf(" %ld", raw(SYS_access, (long)"/dev/null", 8, 0));
    printf(" %ld", raw(SYS_faccessat, AT_FDCWD, (long)"/dev/null", W_OK));
    printf(" %ld\n", raw(SYS_faccessat, 99, (long)"relative", F_OK));
    printf("getgroups-bad %ld\n", raw(SYS_getgroups, -1, 0, 0));

    printf("prctl %ld", raw(SYS_prctl, PR_SET_NAME, (long)"renamed-thread-long", 0));
    fflush(stdout);
    memset(buf, 0, sizeof(buf));
    printf(" %ld %s\n", raw(SYS_prctl, PR_GET_NAME, (long)buf, 0), buf);
    printf("prctl-bad %ld\n", raw(SYS_prctl, 12345, 0, 0));

    struct timespec res;
    r = raw(SYS_clock_getres, CLOCK_MONOTONIC, (long)&res, 0);
    printf("clock_getres %ld %ld %ld\n", r, (long)res.tv_sec, res.tv_nsec);
    printf("clock_getres-bad %ld\n", raw(SYS_clock_getres, 1000, (long)&res, 0));
    struct sysinfo si;
    r = raw(SYS_sysinfo, (long)&si, 0, 0);
    printf("sysinfo %ld %s\n", r, si.totalram > si.freeram && si.freeram > 0 && si.procs > 0 ? "ok" : "bad");
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long t = raw(SYS_time, 0, 0, 0);
    printf("time %s\n", t - tv.tv_sec <= 1 && t >= tv.tv_sec ? "ok" : "bad");

    if (argc > 1 && strcmp(argv[1], "guest") == 0) {
        printf("getpgrp-is-pid %s\n", raw(SYS_getpgrp, 0, 0, 0) == getpid() ? "yes" : "no");
        printf("socket %ld\n", raw(SYS_socket, AF_INET, SOCK_STREAM, 0));
        printf("fork %ld\n", raw(SYS_fork, 0, 0, 0));
    }
    return 0;
}
