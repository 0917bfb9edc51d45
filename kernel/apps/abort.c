/*
 * A secondary thread calls abort() while main waits for it: the whole app must end
 * with status 134 (128 + SIGABRT), as on Linux.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *aborter(void *arg __attribute__((unused)))
{
    printf("abort: calling abort() from a secondary thread\n");
    fflush(stdout);
    abort();
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, aborter, NULL);
    pthread_join(t, NULL);
    printf("abort FAILED: pthread_join returned\n");
    return 1;
}
