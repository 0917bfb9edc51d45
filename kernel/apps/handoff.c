/*
 * Wake-ups that reach a CPU after it stopped idling. When a thread becomes ready the
 * kernel kicks an idle CPU with a reschedule IPI (core/sched.c, kick_idle_cpu), and the
 * kick can land late: the sender decided before it sent, and QEMU may deliver a while
 * after. By then that CPU may run a thread inside a system call, interrupts on and a
 * spinlock held. A kernel that switches threads there (the old IPI handler did) leaves
 * the lock with a thread off the CPU and its count (preempt_count is per CPU) on this
 * CPU: here every CPU then spins on pipe_lock for good; in the Go program that hung in
 * CI the counts stayed wrong, neither CPU was preempted by its timer again, and its
 * collector waited for ever behind goroutines spinning on both CPUs. The kernel now
 * leaves such a thread alone, and panics on any switch with a spinlock held.
 *
 * How this makes late kicks land in a spinlock, far more often than the Go program:
 * two players hand a ball to and fro through a futex word, so each hand-off wakes a
 * thread while the other CPU is likely idle: a kick. FILLERS threads sleep 1 us at a
 * time, which ends on the next timer tick: an idle CPU then leaves its idle loop by
 * itself, making a kick sent just before late. Every turn of a player and every
 * waking of a filler sends CHUNK bytes through the thread's own pipe and reads them
 * back: the kernel copies them holding pipe_lock, with interrupts on, which is where
 * a late kick lands; the fillers the same tick woke are threads it could switch to.
 *
 * Then what a lost timer preemption fails: one thread more than there are CPUs, each
 * spinning in app code until all have started, which only the timer lets happen.
 *
 * The output does not depend on timing or on the number of CPUs, so the host's is the
 * oracle. With an argument N: N hand-offs instead of TURNS.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FUTEX_WAIT_PRIVATE 128    /* <linux/futex.h>, which musl-gcc does not see */
#define FUTEX_WAKE_PRIVATE 129

#define TURNS 3000
#define FILLERS 4
#define CHUNK 32768

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("handoff FAILED: %s (line %d)\n", #cond, __LINE__);               \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

struct party {
    int pipe[2];
    int parity;                     /* a player's: it holds the ball when ball % 2 is this */
    long bytes;                     /* what came back right */
    unsigned char out[CHUNK], in[CHUNK];
};

static volatile int ball;           /* hand-offs so far */
static int turns = TURNS;
static volatile int played;         /* the players are done: the fillers stop */

/* CHUNK bytes through the party's pipe and back: two copies under pipe_lock. */
static void round_trip(struct party *p)
{
    CHECK(write(p->pipe[1], p->out, CHUNK) == CHUNK);
    long got = 0, n;
    while (got < CHUNK && (n = read(p->pipe[0], p->in + got, CHUNK - got)) > 0)
        got += n;
    CHECK(got == CHUNK && memcmp(p->in, p->out, CHUNK) == 0);
    p->bytes += got;
}

static void *play(void *arg)
{
    struct party *p = arg;
    for (;;) {
        int seen = ball;
        if (seen >= turns)
            return NULL;
        if (seen % 2 != p->parity) {
            syscall(SYS_futex, &ball, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
            continue;
        }
        round_trip(p);
        __atomic_store_n(&ball, seen + 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &ball, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    }
}

static void *fill(void *arg)
{
    struct party *p = arg;
    struct timespec tick = { 0, 1000 };
    while (!__atomic_load_n(&played, __ATOMIC_ACQUIRE)) {
        round_trip(p);
        nanosleep(&tick, NULL);
    }
    return NULL;
}

static void handoff(void)
{
    static struct party players[2], fillers[FILLERS];
    pthread_t threads[2 + FILLERS];
    for (int i = 0; i < 2 + FILLERS; i++) {
        struct party *p = i < 2 ? &players[i] : &fillers[i - 2];
        p->parity = i;
        memset(p->out, 'a' + i, CHUNK);
        CHECK(pipe(p->pipe) == 0);
        CHECK(pthread_create(&threads[i], NULL, i < 2 ? play : fill, p) == 0);
    }
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    __atomic_store_n(&played, 1, __ATOMIC_RELEASE);
    for (int i = 2; i < 2 + FILLERS; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(players[0].bytes + players[1].bytes == (long)turns * CHUNK);
    for (int i = 0; i < FILLERS; i++)
        CHECK(fillers[i].bytes % CHUNK == 0);
    printf("handoff: %d hand-offs, every byte back\n", turns);
}

static int started, spinners;

static void *spin(void *unused)
{
    (void)unused;
    __atomic_add_fetch(&started, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&started, __ATOMIC_ACQUIRE) < spinners)
        ;
    return NULL;
}

/* One spinner more than the CPUs: the last one starts only when the timer preempts one. */
static void preempted(void)
{
    cpu_set_t cpus;
    CHECK(sched_getaffinity(0, sizeof(cpus), &cpus) == 0);
    spinners = CPU_COUNT(&cpus) + 1;
    pthread_t threads[CPU_SETSIZE + 1];
    for (int i = 0; i < spinners; i++)
        CHECK(pthread_create(&threads[i], NULL, spin, NULL) == 0);
    for (int i = 0; i < spinners; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    printf("preempted: one spinner more than the CPUs, every one started\n");
}

int main(int argc, char **argv)
{
    if (argc > 1)
        turns = atoi(argv[1]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    handoff();
    preempted();
    return 0;
}
