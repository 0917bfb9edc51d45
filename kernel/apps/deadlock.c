/*
 * An AB-BA deadlock: transfer_a_to_b takes lock_a then lock_b, transfer_b_to_a takes
 * lock_b then lock_a, and a barrier makes sure each holds its first lock before it asks
 * for the second. It never ends (only a timeout does): both threads block for good in
 * futex waits inside pthread_mutex_lock, main in pthread_join. A triage should name the
 * two functions and the two mutexes each holds and wants.
 */
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;

static void *transfer_a_to_b(void *arg __attribute__((unused)))
{
    pthread_mutex_lock(&lock_a);
    pthread_barrier_wait(&both_hold_one);
    pthread_mutex_lock(&lock_b);            /* held by transfer_b_to_a: blocks for good */
    pthread_mutex_unlock(&lock_b);
    pthread_mutex_unlock(&lock_a);
    return NULL;
}

static void *transfer_b_to_a(void *arg __attribute__((unused)))
{
    pthread_mutex_lock(&lock_b);
    pthread_barrier_wait(&both_hold_one);
    pthread_mutex_lock(&lock_a);            /* held by transfer_a_to_b: blocks for good */
    pthread_mutex_unlock(&lock_a);
    pthread_mutex_unlock(&lock_b);
    return NULL;
}

int main(void)
{
    pthread_t ab, ba;
    pthread_barrier_init(&both_hold_one, NULL, 2);
    printf("deadlock: two threads taking two locks in opposite orders\n");
    fflush(stdout);
    pthread_create(&ab, NULL, transfer_a_to_b, NULL);
    pthread_create(&ba, NULL, transfer_b_to_a, NULL);
    pthread_join(ab, NULL);
    pthread_join(ba, NULL);
    printf("deadlock FAILED: both threads finished\n");
    return 1;
}
