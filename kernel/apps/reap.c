/*
 * Threads that exit while others allocate. CREATORS threads each create and join
 * THREADS short-lived threads: every exit has the scheduler free the thread's memory
 * (kfree) holding sched_lock, on the CPU that switched away from it, from a timer
 * tick or a reschedule IPI as often as not. CHURNERS threads each make and close PIPES
 * pipes: every one allocates and frees kernel memory (kmalloc, kfree) in a system
 * call, the other CPU's timer ticking meanwhile. When the heap's lock was taken with
 * interrupts on, a tick there waited for sched_lock while the CPU holding it waited for
 * the heap's lock: both CPUs spun for good (manythreads hung so, about one run in 30
 * with a core busy; this, at --hz=10000, in about half the runs: 11 of 25).
 *
 * Prints what it did; the same on the host.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CREATORS 2
#define THREADS 1000
#define CHURNERS 2
#define PIPES 20000

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("reap FAILED: %s (line %d)\n", #cond, __LINE__);                  \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static void *child(void *arg)
{
    return arg;
}

static void *create(void *unused)
{
    (void)unused;
    for (intptr_t i = 0; i < THREADS; i++) {
        pthread_t t;
        void *ret;
        CHECK(pthread_create(&t, NULL, child, (void *)i) == 0);
        CHECK(pthread_join(t, &ret) == 0 && ret == (void *)i);
    }
    return NULL;
}

static void *churn(void *unused)
{
    (void)unused;
    for (int i = 0; i < PIPES; i++) {
        int fds[2];
        CHECK(pipe(fds) == 0);
        CHECK(close(fds[0]) == 0 && close(fds[1]) == 0);
    }
    return NULL;
}

int main(void)
{
    pthread_t threads[CREATORS + CHURNERS];
    for (int i = 0; i < CREATORS + CHURNERS; i++)
        CHECK(pthread_create(&threads[i], NULL, i < CREATORS ? create : churn, NULL) == 0);
    for (int i = 0; i < CREATORS + CHURNERS; i++)
        CHECK(pthread_join(threads[i], NULL) == 0);
    printf("reap: %d threads created and joined by %d threads, %d pipes made and closed by %d\n",
           CREATORS * THREADS, CREATORS, CHURNERS * PIPES, CHURNERS);
    return 0;
}
