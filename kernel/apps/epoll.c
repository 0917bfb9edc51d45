/*
 * epoll_create1, epoll_ctl and epoll_wait/epoll_pwait over pipes, printing each raw
 * result and errno, so the host's run is the oracle (tests/test_epoll.py): the errnos
 * of bad calls, level- and edge-triggered and one-shot reports, EPOLLOUT/EPOLLERR/
 * EPOLLHUP of a pipe whose other end closed, a wait woken by another thread, timeouts,
 * EINTR even under SA_RESTART, a closed fd leaving the set, poll of an epoll fd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

static const char *err(int r)
{
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof(buf), "%d", r);
        return buf;
    }
    switch (errno) {
    case EINVAL: return "-1 EINVAL";
    case EBADF: return "-1 EBADF";
    case EEXIST: return "-1 EEXIST";
    case ENOENT: return "-1 ENOENT";
    case EPERM: return "-1 EPERM";
    case EFAULT: return "-1 EFAULT";
    case EINTR: return "-1 EINTR";
    default: snprintf(buf, sizeof(buf), "-1 errno %d", errno); return buf;
    }
}

static int add(int ep, int fd, unsigned events, unsigned long data)
{
    struct epoll_event ev = { .events = events, .data.u64 = data };
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int mod(int ep, int fd, unsigned events, unsigned long data)
{
    struct epoll_event ev = { .events = events, .data.u64 = data };
    return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* epoll_wait's result and the events it returned, as one line. */
static void wait_and_show(const char *what, int ep, int timeout)
{
    struct epoll_event evs[8];
    int n = epoll_wait(ep, evs, 8, timeout);
    printf("%s: %s", what, err(n));
    for (int i = 0; i < n; i++)
        printf(" {events=%#x data=%lu}", evs[i].events, (unsigned long)evs[i].data.u64);
    printf("\n");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int wake_fd;

static void *writer(void *arg)
{
    (void)arg;
    usleep(30000);
    if (write(wake_fd, "w", 1) != 1)
        perror("write");
    return NULL;
}

static pthread_t waiter;

static void *interrupter(void *arg)
{
    (void)arg;
    usleep(30000);
    pthread_kill(waiter, SIGUSR1);
    return NULL;
}

static volatile sig_atomic_t handled;
static void on_usr1(int sig) { handled = sig; }

int main(int argc, char **argv)
{
    (void)argc;
    setvbuf(stdout, NULL, _IONBF, 0);
    int size0 = epoll_create(0);      /* glibc passes 0 on (EINVAL); musl asks epoll_create1 */
    printf("epoll_create(0): %s\n", size0 < 0 ? err(size0) : "an fd");
    if (size0 >= 0)
        close(size0);
    printf("epoll_create1(bad flag): %s\n", err(epoll_create1(1)));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("epoll_create1(EPOLL_CLOEXEC) is an fd: %d, FD_CLOEXEC: %d\n", ep >= 0,
           fcntl(ep, F_GETFD) == FD_CLOEXEC);
    char byte;
    printf("read of the epoll fd: %s\n", err(read(ep, &byte, 1)));

    int p[2];
    if (pipe2(p, O_NONBLOCK) != 0)
        return 1;
    int file = open(argv[0], O_RDONLY);
    struct epoll_event ev = { .events = EPOLLIN };
    struct epoll_event *volatile bad = (struct epoll_event *)8;     /* unmapped: EFAULT */
    printf("add: %s\n", err(add(ep, p[0], EPOLLIN, 42)));
    printf("add again: %s\n", err(add(ep, p[0], EPOLLIN, 42)));
    printf("mod of an fd not in the set: %s\n", err(mod(ep, p[1], EPOLLOUT, 1)));
    printf("del of an fd not in the set: %s\n", err(epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL)));
    printf("add of the epoll fd to itself: %s\n", err(add(ep, ep, EPOLLIN, 0)));
    printf("ctl on a pipe as epfd: %s\n", err(add(p[0], p[1], EPOLLOUT, 0)));
    printf("ctl on a closed epfd: %s\n", err(add(99, p[1], EPOLLOUT, 0)));
    printf("add of a closed fd: %s\n", err(add(ep, 99, EPOLLIN, 0)));
    printf("add of a regular file: %s\n", err(add(ep, file, EPOLLIN, 0)));
    printf("bad op: %s\n", err(epoll_ctl(ep, 7, p[0], &ev)));
    printf("mod with EPOLLEXCLUSIVE: %s\n", err(mod(ep, p[0], EPOLLIN | EPOLLEXCLUSIVE, 42)));
    printf("add with a bad event pointer: %s\n",
           err(epoll_ctl(ep, EPOLL_CTL_ADD, p[1], bad)));

    struct epoll_event evs[4];
    printf("wait with maxevents 0: %s\n", err(epoll_wait(ep, evs, 0, 0)));
    printf("wait on a closed fd: %s\n", err(epoll_wait(99, evs, 4, 0)));
    printf("wait on a pipe: %s\n", err(epoll_wait(p[0], evs, 4, 0)));
    /* Linux checks only that the array lies in the app's half; nothing to copy: 0 */
    printf("wait into a bad pointer, nothing ready: %s\n", err(epoll_wait(ep, bad, 4, 0)));

    wait_and_show("empty pipe", ep, 0);
    if (write(p[1], "ab", 2) != 2)
        return 1;
    printf("wait into a bad pointer, one ready: %s\n", err(epoll_wait(ep, bad, 4, 0)));
    wait_and_show("level-triggered", ep, 0);
    wait_and_show("level-triggered again", ep, 0);
    printf("mod to EPOLLET: %s\n", err(mod(ep, p[0], EPOLLIN | EPOLLET, 43)));
    wait_and_show("edge", ep, 0);
    wait_and_show("no new edge", ep, 0);
    if (write(p[1], "c", 1) != 1)
        return 1;
    wait_and_show("edge after a write", ep, 0);
    printf("mod to EPOLLONESHOT: %s\n", err(mod(ep, p[0], EPOLLIN | EPOLLONESHOT, 44)));
    wait_and_show("one shot", ep, 0);
    wait_and_show("one shot spent", ep, 0);
    printf("mod rearms: %s\n", err(mod(ep, p[0], EPOLLIN, 45)));
    wait_and_show("rearmed", ep, 0);
    char buf[8];
    printf("drain: %s\n", err(read(p[0], buf, sizeof(buf))));
    wait_and_show("drained", ep, 0);

    /* The write end: EPOLLOUT, then EPOLLERR once the read end is gone. */
    printf("add write end: %s\n", err(add(ep, p[1], EPOLLOUT, 46)));
    printf("del read end: %s\n", err(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL)));
    wait_and_show("writable", ep, 0);
    close(p[0]);
    wait_and_show("no reader", ep, 0);
    close(p[1]);
    wait_and_show("write end closed: gone from the set", ep, 0);

    /* The read end of a pipe whose writer closed: EPOLLIN and EPOLLHUP. */
    if (pipe(p) != 0)
        return 1;
    printf("add read end: %s\n", err(add(ep, p[0], EPOLLIN, 47)));
    if (write(p[1], "x", 1) != 1)
        return 1;
    close(p[1]);
    wait_and_show("data and hangup", ep, 0);
    close(p[0]);

    /* Woken by another thread's write; a timeout that expires. */
    if (pipe(p) != 0)
        return 1;
    wake_fd = p[1];
    printf("add for the wake-up: %s\n", err(add(ep, p[0], EPOLLIN, 48)));
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    double start = now();
    wait_and_show("woken by a thread", ep, -1);
    pthread_join(t, NULL);
    printf("woke after the write (>= 25 ms): %d\n", now() - start >= 0.025);
    printf("drain: %s\n", err(read(p[0], buf, sizeof(buf))));
    start = now();
    wait_and_show("timeout of 50 ms", ep, 50);
    printf("waited >= 50 ms: %d\n", now() - start >= 0.050);

    /* poll on the epoll fd: readable when a wait would return at once. */
    struct pollfd pfd = { .fd = ep, .events = POLLIN };
    int r = poll(&pfd, 1, 0);
    printf("poll of the epoll fd, nothing ready: %s revents %#x\n", err(r), pfd.revents);
    if (write(p[1], "y", 1) != 1)
        return 1;
    r = poll(&pfd, 1, 0);
    printf("poll of the epoll fd, one ready: %s revents %#x\n", err(r), pfd.revents);
    printf("drain: %s\n", err(read(p[0], buf, sizeof(buf))));

    /* A signal ends the wait with EINTR, SA_RESTART or not; epoll_pwait's mask holds it off. */
    struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
    sigaction(SIGUSR1, &sa, NULL);
    waiter = pthread_self();
    pthread_create(&t, NULL, interrupter, NULL);
    printf("wait interrupted under SA_RESTART: %s\n", err(epoll_wait(ep, evs, 4, -1)));
    pthread_join(t, NULL);
    printf("handler ran: %d\n", handled == SIGUSR1);
    handled = 0;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    pthread_create(&t, NULL, interrupter, NULL);
    printf("epoll_pwait with SIGUSR1 masked, 100 ms: %s\n",
           err(epoll_pwait(ep, evs, 4, 100, &block)));
    pthread_join(t, NULL);
    printf("handler ran once the mask was back: %d\n", handled == SIGUSR1);
    close(ep);
    return 0;
}
