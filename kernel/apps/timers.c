/*
 * POSIX timers (kernel/core/timer.c), checked against the same binary on Linux: every
 * line it prints must be the host's, so it prints facts, never times.
 *
 *   periodic        SIGEV_SIGNAL, SIGUSR1 every 5 ms: a SA_SIGINFO handler sees SI_TIMER,
 *                   the timer's id and sigev_value; timer_gettime while armed
 *   thread_id       SIGEV_THREAD_ID to a worker: its handler runs on that thread, with
 *                   that thread's __thread data; rt_sigtimedwait takes one there too
 *   overrun         the signal blocked while a 1 ms timer runs 30 ms: one signal queued,
 *                   si_overrun = timer_getoverrun > 0
 *   absolute        TIMER_ABSTIME on CLOCK_REALTIME: not before its time
 *   sigev_thread    libc's SIGEV_THREAD (its own helper thread, over SIGEV_THREAD_ID)
 *   spinning        signals into a thread that never enters the kernel itself
 *   errors          bad clock, bad signal, bad id, deleted id, bad timespec: EINVAL
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

static __thread int tls_id;
static volatile sig_atomic_t ticks, bad_code, bad_value, wrong_thread;
static volatile int seen_timerid = -1;

static long now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void on_tick(int sig, siginfo_t *info, void *ucontext)
{
    (void)sig;
    (void)ucontext;
    if (info->si_code != SI_TIMER)
        bad_code++;
    if (info->si_value.sival_int != 42)
        bad_value++;
    if (tls_id != 1)
        wrong_thread++;
    seen_timerid = info->si_timerid;
    ticks++;
}

static void handle(int sig, void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(sig, &sa, NULL);
}

static void arm(timer_t t, long value_ns, long interval_ns, int flags)
{
    struct itimerspec its = { { interval_ns / 1000000000L, interval_ns % 1000000000L },
                              { value_ns / 1000000000L, value_ns % 1000000000L } };
    if (timer_settime(t, flags, &its, NULL) != 0)
        printf("timer_settime failed: %s\n", strerror(errno));
}

/* A CLOCK_MONOTONIC timer that notifies so (tid: SIGEV_THREAD_ID's, fn: SIGEV_THREAD's). */
static bool new_timer(timer_t *t, int notify, int signo, int value, pid_t tid,
                      void (*fn)(union sigval))
{
    struct sigevent ev;
    memset(&ev, 0, sizeof(ev));
    ev.sigev_notify = notify;
    ev.sigev_signo = signo;
    ev.sigev_value.sival_int = value;
    if (tid)                        /* the two share a union */
        ev.sigev_notify_thread_id = tid;
    else
        ev.sigev_notify_function = fn;
    if (timer_create(CLOCK_MONOTONIC, &ev, t) == 0)
        return true;
    printf("timer_create failed: %s\n", strerror(errno));
    return false;
}

static void periodic(void)
{
    tls_id = 1;
    handle(SIGUSR1, on_tick);
    timer_t t;
    if (!new_timer(&t, SIGEV_SIGNAL, SIGUSR1, 42, 0, NULL))
        return;
    arm(t, 5000000, 5000000, 0);
    struct itimerspec left;
    timer_gettime(t, &left);
    printf("periodic: armed, interval %ld ns, value in (0, 5 ms]: %d\n", left.it_interval.tv_nsec,
           left.it_value.tv_sec == 0 && left.it_value.tv_nsec > 0 && left.it_value.tv_nsec <= 5000000);
    while (ticks < 5)
        pause();
    arm(t, 0, 0, 0);
    timer_gettime(t, &left);
    printf("periodic: %s after 5 ticks, disarmed value %ld.%09ld\n",
           bad_code || bad_value || wrong_thread ? "WRONG siginfo" : "SI_TIMER, value 42",
           (long)left.it_value.tv_sec, left.it_value.tv_nsec);
    printf("periodic: si_timerid is the timer's: %d\n", seen_timerid >= 0);
    timer_delete(t);
}

static volatile pid_t worker_tid;
static volatile sig_atomic_t worker_ticks, worker_wrong;

static void on_worker_tick(int sig, siginfo_t *info, void *ucontext)
{
    (void)sig;
    (void)ucontext;
    if (syscall(SYS_gettid) != worker_tid || tls_id != 2 || info->si_code != SI_TIMER)
        worker_wrong++;
    worker_ticks++;
}

static void *worker(void *arg)
{
    (void)arg;
    tls_id = 2;
    worker_tid = syscall(SYS_gettid);
    while (worker_ticks < 3)
        pause();
    /* Now by rt_sigtimedwait: the timer's signal blocked here, waited for. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    siginfo_t info;
    int sig = sigwaitinfo(&set, &info);
    printf("thread_id: sigwaitinfo took %s with %s\n", sig == SIGUSR2 ? "SIGUSR2" : "something else",
           info.si_code == SI_TIMER ? "SI_TIMER" : "another code");
    return NULL;
}

static void thread_id(void)
{
    tls_id = 1;
    handle(SIGUSR2, on_worker_tick);
    /* The main thread blocks SIGUSR2: only a thread-directed signal reaches the worker. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t th;
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    pthread_create(&th, NULL, worker, NULL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    while (!worker_tid)
        sched_yield();
    timer_t t;
    if (!new_timer(&t, SIGEV_THREAD_ID, SIGUSR2, 0, worker_tid, NULL))
        return;
    arm(t, 3000000, 3000000, 0);
    pthread_join(th, NULL);
    timer_delete(t);
    printf("thread_id: %d handler runs, all on the worker with its TLS: %s\n", (int)worker_ticks,
           worker_wrong ? "no" : "yes");
}

static void overrun(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    timer_t t;
    if (!new_timer(&t, SIGEV_SIGNAL, SIGRTMIN + 1, 0, 0, NULL))
        return;
    arm(t, 1000000, 1000000, 0);
    struct timespec wait = { 0, 30000000 };
    nanosleep(&wait, NULL);
    /* Taken while the timer still runs: Linux 6.13 on drops a signal its timer was
       re-armed or disarmed after, older kernels deliver it. */
    siginfo_t info;
    struct timespec none = { 0, 0 };
    int sig = sigtimedwait(&set, &info, &none);
    int overrun = timer_getoverrun(t);
    timer_delete(t);
    printf("overrun: the signal queued once (%s); overrun > 0: %d, si_overrun the same: %d\n",
           sig == SIGRTMIN + 1 ? "yes" : "no", overrun > 0, info.si_overrun == overrun);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static void absolute(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    timer_t t;
    timer_create(CLOCK_REALTIME, NULL, &t);    /* no sigevent: SIGALRM, si_value the id */
    long start = now_ns(CLOCK_REALTIME);
    arm(t, start + 20000000, 0, TIMER_ABSTIME);
    siginfo_t info;
    int sig = sigwaitinfo(&set, &info);
    long elapsed = now_ns(CLOCK_REALTIME) - start;
    printf("absolute: %s, SI_TIMER: %d, not before its time: %d\n",
           sig == SIGALRM ? "SIGALRM" : "another signal", info.si_code == SI_TIMER,
           elapsed >= 20000000 - 1000000);
    timer_delete(t);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static volatile sig_atomic_t thread_calls;

static void on_expiry(union sigval value)
{
    if (value.sival_int == 7)
        thread_calls++;
}

static void sigev_thread(void)
{
    timer_t t;
    if (!new_timer(&t, SIGEV_THREAD, 0, 7, 0, on_expiry))
        return;
    arm(t, 2000000, 4000000, 0);
    while (thread_calls < 3)
        sched_yield();
    timer_delete(t);
    printf("sigev_thread: the function ran at least 3 times with its value\n");
}

static volatile sig_atomic_t spin_hits;

static void on_spin_tick(int sig)
{
    (void)sig;
    spin_hits++;
}

/* The timer's signals reach a thread that only computes: every tick lands in app code
   (under --fs-protocol=lazy, on the fast path, which must leave a due timer to the slow one). */
static void spinning(void)
{
    signal(SIGUSR1, on_spin_tick);
    timer_t t;
    if (!new_timer(&t, SIGEV_SIGNAL, SIGUSR1, 0, 0, NULL))
        return;
    arm(t, 2000000, 2000000, 0);
    while (spin_hits < 20)
        ;
    timer_delete(t);
    printf("spinning: 20 timer signals into a thread that only computes\n");
}

static const char *err(int ret)
{
    return ret == 0 ? "0" : errno == EINVAL ? "EINVAL" : strerror(errno);
}

static void errors(void)
{
    timer_t t;
    struct sigevent ev;
    memset(&ev, 0, sizeof(ev));
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = 99;
    printf("errors: bad clock %s,", err(syscall(SYS_timer_create, 12345, NULL, &t)));
    printf(" bad signal %s,", err(syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &t)));
    struct itimerspec its = { { 0, 0 }, { 0, 2000000000L } };
    timer_create(CLOCK_MONOTONIC, NULL, &t);
    printf(" bad timespec %s,", err(timer_settime(t, 0, &its, NULL)));
    timer_delete(t);
    printf(" deleted id %s,", err(timer_delete(t)));
    printf(" bad id %s\n", err(syscall(SYS_timer_getoverrun, 999)));
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    periodic();
    thread_id();
    overrun();
    absolute();
    sigev_thread();
    spinning();
    errors();
    return 0;
}
