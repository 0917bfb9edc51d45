/*
 * main joins a thread that is still asleep: main sleeps in pthread_join (a futex wait on
 * the thread's tid word) until the thread's exit clears that word and wakes it
 * (CLONE_CHILD_CLEARTID). The thread naps NAP_MS first, far longer than main needs to
 * reach its join, so the wake-up that ends the program always comes from the kernel's
 * exit path, not from a FUTEX_WAKE of the app's. threads shows that case only now and
 * then (when its workers run in lock-step); here it is certain: --inject=lost-wake
 * hangs main in its join every run.
 *
 * Prints "joinlate ok" and exits 0; the same on the host.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define NAP_MS 300

static void *napper(void *arg)
{
    struct timespec nap = { 0, NAP_MS * 1000000L };
    nanosleep(&nap, NULL);
    return arg;
}

int main(void)
{
    pthread_t thread;
    void *ret = NULL;
    if (pthread_create(&thread, NULL, napper, (void *)(intptr_t)42) != 0 || pthread_join(thread, &ret) != 0
        || ret != (void *)(intptr_t)42) {
        printf("joinlate FAILED\n");
        return 1;
    }
    printf("joinlate ok\n");
    return 0;
}
