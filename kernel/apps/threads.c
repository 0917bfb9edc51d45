/*
 * Eight threads, each with its own __thread data, taking turns through a mutex and a
 * condition variable and sleeping in between; main joins them all and checks what
 * each left behind. Prints "threads ok N" and exits 0, or names the failed check.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NTHREADS 8
#define ROUNDS 20

static __thread long tls_counter = 1000;   /* .tdata: each thread starts from the template */
static __thread int tls_id;                /* .tbss */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static int turn;                           /* whose turn it is: 0..NTHREADS-1 */
static long total;
static uintptr_t tls_addresses[NTHREADS];

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            printf("threads FAILED: %s (line %d)\n", #cond, __LINE__);               \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    CHECK(tls_counter == 1000 && tls_id == 0);
    tls_id = id;
    tls_addresses[id] = (uintptr_t)&tls_counter;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_mutex_lock(&lock);
        while (turn != id)
            pthread_cond_wait(&turn_changed, &lock);
        total += id;
        tls_counter += id;
        turn = (turn + 1) % NTHREADS;
        pthread_cond_broadcast(&turn_changed);
        pthread_mutex_unlock(&lock);
        struct timespec nap = { 0, 200000 };  /* 0.2 ms */
        nanosleep(&nap, NULL);
        CHECK(tls_id == id);
    }
    CHECK(tls_counter == 1000 + (long)id * ROUNDS);
    return (void *)(intptr_t)(id + 100);
}

int main(void)
{
    pthread_t threads[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        CHECK(pthread_join(threads[i], &ret) == 0);
        CHECK(ret == (void *)(intptr_t)(i + 100));
    }
    CHECK(total == (long)ROUNDS * NTHREADS * (NTHREADS - 1) / 2);
    for (int i = 0; i < NTHREADS; i++)
        for (int j = i + 1; j < NTHREADS; j++)
            CHECK(tls_addresses[i] != tls_addresses[j]);
    CHECK(tls_counter == 1000);
    printf("threads ok %d\n", NTHREADS);
    return 0;
}
