/*
 * A secondary thread writes through a NULL pointer (worker -> store_result) while main
 * waits for it in pthread_join. The kernel ends the app with status 139 (SIGSEGV) and
 * "segmentation fault at 0 ..."; a triage should blame store_result, called from worker,
 * in the thread that is not main, with main blocked in a futex wait (pthread_join).
 */
#include <pthread.h>
#include <stdio.h>

static int *result_slot;                   /* never set: the bug */

static void __attribute__((noipa)) store_result(int *slot, int value)
{
    *(volatile int *)slot = value;
}

static void *worker(void *arg __attribute__((unused)))
{
    printf("nullthread: worker storing its result\n");
    fflush(stdout);
    store_result(result_slot, 42);
    return NULL;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    printf("nullthread FAILED: pthread_join returned\n");
    return 1;
}
