/*
 * Signal delivery (kernel/core/signal.c), checked against the same binary on Linux:
 * every line it prints must be the host's. A handler runs on the app's FS base, so it
 * reads the interrupted thread's __thread data; faults go to their handlers with the
 * fault's address; the interrupted context (registers, FPU, mask) comes back whole.
 *
 *   signal_in_handler   the handler sees this thread's __thread value (raise, kill)
 *   mask_and_pending    a blocked signal waits (sigpending) and arrives on unblocking
 *   fpu_survives        the handler's FPU use leaves the interrupted code's registers
 *   segv_on_altstack    SIGSEGV on a sigaltstack with si_addr, siglongjmp out (MAPERR, ACCERR)
 *   other_faults        SIGFPE (divide error), SIGILL (ud2), with si_code and si_addr
 *   thread_kill         pthread_kill: the other thread's handler sees that thread's TLS
 *   restart_or_eintr    a read blocked on a pipe, interrupted from another thread:
 *                       EINTR without SA_RESTART, the read goes on with it
 *   sigwait_calls       rt_sigtimedwait (a pending one, a timeout), rt_sigsuspend
 *   queued_signals      real-time signals queue each instance, in order, with sigqueue's
 *                       value (SI_QUEUE); a standard one sent twice while blocked is one
 *   masks_for_waits     ppoll and pselect6 wait under their own mask, EINTR, the old one back
 *   sigpipe             a write without a reader: SIGPIPE to the writer's handler, EPIPE
 *   nesting             a handler interrupted by another signal; the same signal deferred
 *                       until its handler returns, or nested with SA_NODEFER; SA_RESETHAND
 *   timers              setitimer(ITIMER_REAL) once (EINTR of a pipe read) and periodic,
 *                       getitimer, alarm's seconds left
 *   storm               thousands of signals from another thread into a computing one,
 *                       whose handler dirties the FPU: its results stay exact
 *
 * With the argument sigpipe-default it writes to a pipe nobody reads with SIGPIPE's
 * default action: the app ends with status 141 (128 + SIGPIPE); with alarm-default an
 * interval timer's SIGALRM ends a blocking read and the app (142); with stdin-eintr
 * SIGALRM's handler interrupts a read of stdin (a pipe nobody writes to): EINTR.
 *
 * The GDB test breaks in on_usr1 (a handler) and looks at the thread and the backtrace.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/time.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static __thread long tls_value = 1;        /* .tdata: each thread its own */
static volatile sig_atomic_t handled;
static volatile long seen_tls;
static volatile int seen_sig;

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(1);
    }
}

/* The handler the GDB test breaks in. noinline: a breakpoint has a place to go. */
__attribute__((noinline)) void on_usr1(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    int saved_errno = errno;       /* errno is TLS memory: no kernel keeps it for us */
    seen_sig = sig;
    seen_tls = tls_value;
    handled++;
    errno = saved_errno;
    if (si->si_code != SI_TKILL && si->si_code != SI_USER)
        seen_sig = -1;
}

static void signal_in_handler(void)
{
    install(SIGUSR1, on_usr1, 0);
    tls_value = 7;
    handled = 0;
    raise(SIGUSR1);
    printf("handler: sig %d tls %ld handled %d\n", seen_sig, seen_tls, handled);
    kill(getpid(), SIGUSR1);
    printf("kill: handled %d\n", handled);
}

static void mask_and_pending(void)
{
    sigset_t block, pending;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    handled = 0;
    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR1);
    sigpending(&pending);
    printf("blocked: handled %d pending %d\n", handled, sigismember(&pending, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    sigpending(&pending);
    printf("unblocked: handled %d pending %d\n", handled, sigismember(&pending, SIGUSR1));
}

static volatile double handler_double;

static void on_usr2_fpu(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    volatile double x = 3.0;
    for (int i = 0; i < 10; i++)
        x = x * 1.5 + 0.25;
    handler_double = x;
}

static void fpu_survives(void)
{
    install(SIGUSR2, on_usr2_fpu, 0);
    double a = 1.0 / 3.0, b = a;
    for (int i = 0; i < 1000; i++) {
        b = b * 1.0000001 + a;
        if (i == 500)
            raise(SIGUSR2);
    }
    double c = 1.0 / 3.0;
    for (int i = 0; i < 1000; i++)
        c = c * 1.0000001 + a;
    printf("fpu: same %d handler %.4f\n", b == c, handler_double);
}

static sigjmp_buf escape;
static volatile uintptr_t fault_addr;
static volatile int fault_code, fault_on_altstack, fault_altstack_change;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    stack_t ss;
    sigaltstack(NULL, &ss);
    fault_on_altstack = (ss.ss_flags & SS_ONSTACK) != 0;
    stack_t other = { .ss_sp = ss.ss_sp, .ss_size = ss.ss_size, .ss_flags = 0 };
    fault_altstack_change = sigaltstack(&other, NULL) == 0 ? 0 : errno;   /* EPERM on it */
    fault_addr = (uintptr_t)si->si_addr;
    fault_code = si->si_code;
    siglongjmp(escape, sig);
}

static void segv_on_altstack(void)
{
    stack_t ss = { .ss_sp = malloc(64 * 1024), .ss_size = 64 * 1024, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) {
        perror("sigaltstack");
        exit(1);
    }
    stack_t tiny = { .ss_sp = ss.ss_sp, .ss_size = 16, .ss_flags = 0 };
    int r = sigaltstack(&tiny, NULL);
    printf("sigaltstack too small: %d %s\n", r, strerror(errno));
    install(SIGSEGV, on_fault, SA_ONSTACK | SA_NODEFER);
    int sig = sigsetjmp(escape, 1);
    if (sig == 0)
        *(volatile int *)0x1234 = 1;
    printf("segv: sig %d addr %#lx code %d on altstack %d changing it %s\n", sig,
           (unsigned long)fault_addr, fault_code, fault_on_altstack,
           strerror(fault_altstack_change));
    char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sig = sigsetjmp(escape, 1);
    if (sig == 0)
        page[100] = 1;
    printf("segv read-only: sig %d offset %ld code %d\n", sig, (long)(fault_addr - (uintptr_t)page),
           fault_code);
    stack_t now;
    sigaltstack(NULL, &now);
    printf("altstack after: flags %d size %zu\n", now.ss_flags, now.ss_size);
}

extern char ud2_here[];

static void other_faults(void)
{
    install(SIGFPE, on_fault, SA_NODEFER);
    install(SIGILL, on_fault, SA_NODEFER);
    volatile int zero = 0;
    int sig = sigsetjmp(escape, 1);
    if (sig == 0) {
        int quotient;              /* idiv itself: gcc would turn 1 / x into a compare */
        __asm__ __volatile__("cltd; idivl %1" : "=a"(quotient) : "r"(zero), "a"(7) : "edx");
        printf("%d\n", quotient);
    }
    printf("sigfpe: sig %d code %d\n", sig, fault_code);
    sig = sigsetjmp(escape, 1);
    if (sig == 0)
        __asm__ __volatile__(".globl ud2_here\nud2_here: ud2");
    printf("sigill: sig %d code %d at ud2 %d\n", sig, fault_code,
           fault_addr == (uintptr_t)ud2_here);
}

static volatile int worker_ready, worker_done;
static volatile pid_t worker_tid, handler_tid;

static void on_usr2_thread(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    seen_tls = tls_value;
    handler_tid = (pid_t)syscall(SYS_gettid);
    handled++;
}

static void *worker(void *arg)
{
    (void)arg;
    tls_value = 99;
    worker_tid = (pid_t)syscall(SYS_gettid);
    worker_ready = 1;
    while (!handled)
        ;                          /* spinning in app code: the IPI or the timer brings it in */
    worker_done = 1;
    return NULL;
}

static void thread_kill(void)
{
    install(SIGUSR2, on_usr2_thread, 0);
    handled = 0;
    tls_value = 5;
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    while (!worker_ready)
        sleep_ms(1);
    pthread_kill(t, SIGUSR2);
    pthread_join(t, NULL);
    printf("thread handler: tls %ld in that thread %d main tls %ld\n", seen_tls,
           handler_tid == worker_tid, tls_value);
}

static int pipe_fds[2];
static pthread_t reader_thread;

static void on_usr1_count(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    handled++;
}

static void *interrupter(void *arg)
{
    int write_after = *(int *)arg;
    sleep_ms(100);                 /* the main thread is blocked in read by then */
    pthread_kill(reader_thread, SIGUSR1);
    if (write_after) {
        sleep_ms(100);
        if (write(pipe_fds[1], "x", 1) != 1)
            perror("write");
    }
    return NULL;
}

static void read_interrupted(int flags, const char *what)
{
    install(SIGUSR1, on_usr1_count, flags);
    handled = 0;
    int write_after = (flags & SA_RESTART) != 0;
    pthread_t t;
    pthread_create(&t, NULL, interrupter, &write_after);
    char c = 0;
    errno = 0;
    ssize_t n = read(pipe_fds[0], &c, 1);
    int err = errno;
    pthread_join(t, NULL);
    printf("%s: read %zd %s handled %d byte %c\n", what, n, n < 0 ? strerror(err) : "ok", handled,
           n == 1 ? c : '-');
}

static void restart_or_eintr(void)
{
    reader_thread = pthread_self();
    if (pipe(pipe_fds) != 0) {
        perror("pipe");
        exit(1);
    }
    read_interrupted(0, "no SA_RESTART");
    read_interrupted(SA_RESTART, "SA_RESTART");
}

static volatile int rt_values[8];
static volatile sig_atomic_t rt_count;

static void on_rt(int sig, siginfo_t *info, void *ucontext)
{
    (void)sig;
    (void)ucontext;
    if (rt_count < 8)
        rt_values[rt_count] = info->si_code == SI_QUEUE ? info->si_value.sival_int : -1;
    rt_count++;
}

/* Real-time signals queue every instance, in order, with sigqueue's value; a standard
   one sent twice while blocked is one pending signal. */
static void queued_signals(void)
{
    int rt = SIGRTMIN + 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    sigaction(rt, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, rt);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (int i = 1; i <= 3; i++)
        sigqueue(getpid(), rt, (union sigval){ .sival_int = i });
    kill(getpid(), SIGUSR2);
    sigqueue(getpid(), SIGUSR2, (union sigval){ .sival_int = 7 });
    sigset_t waiting;
    sigpending(&waiting);
    printf("queued: pending rt %d usr2 %d, handler runs before unblocking %d\n",
           sigismember(&waiting, rt), sigismember(&waiting, SIGUSR2), (int)rt_count);
    sigset_t only_rt;
    sigemptyset(&only_rt);
    sigaddset(&only_rt, rt);
    sigprocmask(SIG_UNBLOCK, &only_rt, NULL);
    printf("queued: %d rt handler runs, values %d %d %d\n", (int)rt_count, rt_values[0],
           rt_values[1], rt_values[2]);
    sigset_t only_usr2;
    sigemptyset(&only_usr2);
    sigaddset(&only_usr2, SIGUSR2);
    struct timespec none = { 0, 0 };
    siginfo_t info;
    int first = sigtimedwait(&only_usr2, &info, &none);
    int code = info.si_code;
    int second = sigtimedwait(&only_usr2, &info, &none);
    printf("queued: SIGUSR2 twice is once: %s (%s), then %s\n", first == SIGUSR2 ? "SIGUSR2" : "none",
           code == SI_USER ? "SI_USER, the first sender's" : "another code",
           second < 0 && errno == EAGAIN ? "EAGAIN" : "again");
    sigqueue(getpid(), SIGUSR2, (union sigval){ .sival_int = 7 });
    sigtimedwait(&only_usr2, &info, &none);
    printf("queued: sigqueue's SIGUSR2: %s value %d\n", info.si_code == SI_QUEUE ? "SI_QUEUE" : "not SI_QUEUE",
           info.si_value.sival_int);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static void sigwait_calls(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR2);
    siginfo_t si;
    int sig = sigtimedwait(&set, &si, NULL);
    printf("sigtimedwait: %d code %d\n", sig, si.si_code);
    struct timespec ts = { 0, 20 * 1000000L };
    sig = sigtimedwait(&set, &si, &ts);
    printf("sigtimedwait timeout: %d %s\n", sig, strerror(errno));
    sigprocmask(SIG_UNBLOCK, &set, NULL);

    install(SIGUSR1, on_usr1_count, 0);
    sigset_t block, empty;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, NULL);
    handled = 0;
    pthread_t t;
    int write_after = 0;
    reader_thread = pthread_self();
    pthread_create(&t, NULL, interrupter, &write_after);
    int r = sigsuspend(&empty);
    pthread_join(t, NULL);
    sigset_t now;
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("sigsuspend: %d %s handled %d mask back %d\n", r, strerror(errno), handled,
           sigismember(&now, SIGUSR1));
}

static void masks_for_waits(void)
{
    install(SIGUSR1, on_usr1_count, SA_RESTART);     /* poll and select never restart */
    sigset_t block, empty, now;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, NULL);
    reader_thread = pthread_self();
    int write_after = 0;
    for (int call = 0; call < 2; call++) {
        handled = 0;
        pthread_t t;
        pthread_create(&t, NULL, interrupter, &write_after);
        struct pollfd fd = { .fd = pipe_fds[0], .events = POLLIN };
        struct timespec timeout = { 5, 0 };
        int r;
        if (call == 0) {
            r = ppoll(&fd, 1, &timeout, &empty);
        } else {
            fd_set readable;
            FD_ZERO(&readable);
            FD_SET(pipe_fds[0], &readable);
            r = pselect(pipe_fds[0] + 1, &readable, NULL, NULL, &timeout, &empty);
        }
        int err = errno;
        pthread_join(t, NULL);
        sigprocmask(SIG_SETMASK, NULL, &now);
        printf("%s: %d %s handled %d mask back %d\n", call == 0 ? "ppoll" : "pselect", r,
               strerror(err), handled, sigismember(&now, SIGUSR1));
    }
    sigprocmask(SIG_UNBLOCK, &block, NULL);
}

static volatile int pipe_signal;

static void on_sigpipe(int sig, siginfo_t *si, void *uc)
{
    (void)si, (void)uc;
    pipe_signal = sig;
}

static void sigpipe(void)
{
    install(SIGPIPE, on_sigpipe, 0);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    close(fds[0]);
    ssize_t n = write(fds[1], "x", 1);
    printf("sigpipe: write %zd %s handler saw %d\n", n, strerror(errno), pipe_signal);
    close(fds[1]);
}

static char order[64];
static volatile int order_len;

static void note(char c)
{
    if (order_len < (int)sizeof(order) - 1)
        order[order_len++] = c;
}

static void on_usr2_inner(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    note('2');
}

static volatile int outer_raised;

static void on_usr1_outer(int sig, siginfo_t *si, void *uc)
{
    (void)si, (void)uc;
    note('(');
    if (!outer_raised) {
        outer_raised = 1;
        raise(SIGUSR2);            /* another signal: its handler runs at once, nested */
        raise(sig);                /* the same one: deferred, unless SA_NODEFER */
    }
    note(')');
}

static void nesting(void)
{
    install(SIGUSR2, on_usr2_inner, 0);
    for (int nodefer = 0; nodefer < 2; nodefer++) {
        install(SIGUSR1, on_usr1_outer, nodefer ? SA_NODEFER : 0);
        order_len = 0;
        outer_raised = 0;
        raise(SIGUSR1);
        order[order_len] = 0;
        printf("nesting%s: %s\n", nodefer ? " SA_NODEFER" : "", order);
    }
    install(SIGUSR1, on_usr1_count, SA_RESETHAND);
    handled = 0;
    raise(SIGUSR1);
    struct sigaction now;
    sigaction(SIGUSR1, NULL, &now);
    printf("SA_RESETHAND: handled %d then SIG_DFL %d\n", handled, now.sa_handler == SIG_DFL);
}

static void timers(void)
{
    install(SIGALRM, on_usr1_count, 0);
    handled = 0;
    struct itimerval once = { .it_value = { 0, 50000 } }, now;
    setitimer(ITIMER_REAL, &once, NULL);
    char c;
    ssize_t n = read(pipe_fds[0], &c, 1);       /* nobody writes: the alarm ends it */
    int err = errno;
    getitimer(ITIMER_REAL, &now);
    printf("itimer once: read %zd %s handled %d left %ld.%06ld\n", n, strerror(err), handled,
           (long)now.it_value.tv_sec, (long)now.it_value.tv_usec);

    handled = 0;
    struct itimerval periodic = { .it_interval = { 0, 10000 }, .it_value = { 0, 10000 } };
    setitimer(ITIMER_REAL, &periodic, NULL);
    while (handled < 3)
        sleep_ms(5);
    struct itimerval off = { 0 }, old;
    setitimer(ITIMER_REAL, &off, &old);
    printf("itimer periodic: 3 or more %d interval %ld.%06ld\n", handled >= 3,
           (long)old.it_interval.tv_sec, (long)old.it_interval.tv_usec);

    struct itimerval later = { .it_interval = { 1, 0 }, .it_value = { 2, 0 } };
    setitimer(ITIMER_REAL, &later, NULL);
    getitimer(ITIMER_REAL, &now);
    printf("getitimer: interval %ld value %ld s\n", (long)now.it_interval.tv_sec,
           (long)now.it_value.tv_sec);
    setitimer(ITIMER_REAL, &off, NULL);
    unsigned first = alarm(5);
    unsigned second = alarm(0);
    printf("alarm: %u then %u left\n", first, second);
}

#define STORM_SIGNALS 3000
static volatile int storm_running;
static volatile long storm_handled;

static void on_usr2_storm(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    volatile double x = 1e300;     /* every register class the kernel must give back */
    x = x * x;
    __asm__ __volatile__("pxor %%xmm0, %%xmm0; pxor %%xmm1, %%xmm1; fldz; fstp %%st(0)" : : :
                         "xmm0", "xmm1");
    storm_handled++;
}

/* Integer and floating-point work whose result is known beforehand. */
static void storm_work(unsigned long *isum, double *fsum)
{
    unsigned long a = 1, b = 2, c = 3;
    double x = 0.5, y = 0.25;
    for (int i = 0; i < 2000000; i++) {
        a = a * 6364136223846793005UL + b;
        b ^= a >> 7;
        c += a ^ b;
        x = x * 0.999999 + y;
        y = y * 1.000001 - x * 1e-7;
    }
    *isum = a ^ b ^ c;
    *fsum = x + y;
}

static void *storm_worker(void *arg)
{
    int *ok = arg;
    unsigned long want_i, got_i;
    double want_f, got_f;
    storm_work(&want_i, &want_f);
    storm_running = 1;
    *ok = 1;
    while (storm_running) {
        storm_work(&got_i, &got_f);
        *ok &= got_i == want_i && got_f == want_f;
    }
    return NULL;
}

static void storm(void)
{
    install(SIGUSR2, on_usr2_storm, SA_RESTART);
    int ok = 0;
    pthread_t t;
    pthread_create(&t, NULL, storm_worker, &ok);
    while (!storm_running)
        sleep_ms(1);
    for (int i = 0; i < STORM_SIGNALS; i++) {
        pthread_kill(t, SIGUSR2);
        if (i % 100 == 0)
            sleep_ms(1);
    }
    sleep_ms(20);
    storm_running = 0;
    pthread_join(t, NULL);
    printf("storm: results exact %d handled some %d\n", ok, storm_handled > 0);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "sigpipe-default") == 0) {
        int fds[2];                /* SIGPIPE's default action ends the app: status 141 */
        if (pipe(fds) != 0)
            return 1;
        close(fds[0]);
        printf("writing to a pipe without a reader\n");
        ssize_t n = write(fds[1], "x", 1);
        printf("still here after write %zd\n", n);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "stdin-eintr") == 0) {
        install(SIGALRM, on_usr1_count, 0);   /* a read of a terminal or pipe stdin */
        struct itimerval once = { .it_value = { 0, 100000 } };
        setitimer(ITIMER_REAL, &once, NULL);
        char c;
        ssize_t n = read(0, &c, 1);
        printf("stdin read: %zd %s handled %d\n", n, n < 0 ? strerror(errno) : "ok", handled);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "alarm-default") == 0) {
        int fds[2];                /* SIGALRM's default action ends the app: status 142 */
        if (pipe(fds) != 0)
            return 1;
        struct itimerval once = { .it_value = { 0, 20000 } };
        setitimer(ITIMER_REAL, &once, NULL);
        printf("reading a pipe nobody writes\n");
        char c;
        ssize_t n = read(fds[0], &c, 1);
        printf("still here after read %zd\n", n);
        return 0;
    }
    signal_in_handler();
    mask_and_pending();
    fpu_survives();
    segv_on_altstack();
    other_faults();
    thread_kill();
    restart_or_eintr();
    sigwait_calls();
    queued_signals();
    masks_for_waits();
    sigpipe();
    nesting();
    timers();
    storm();
    printf("signals done\n");
    return 0;
}
