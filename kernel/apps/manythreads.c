/*
 * Creates and joins 1000 threads one after another, more than the kernel's thread table
 * holds at once (256): exited threads must be reclaimed. Prints "manythreads ok 1000".
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#define COUNT 1000

static void *child(void *arg)
{
    return (void *)((intptr_t)arg * 2);
}

int main(void)
{
    for (intptr_t i = 0; i < COUNT; i++) {
        pthread_t t;
        void *ret;
        if (pthread_create(&t, NULL, child, (void *)i) != 0 || pthread_join(t, &ret) != 0 ||
            ret != (void *)(i * 2)) {
            printf("manythreads FAILED at thread %ld\n", (long)i);
            return 1;
        }
    }
    printf("manythreads ok %d\n", COUNT);
    return 0;
}
