/*
 * Sleeps in nanosleep() for SECONDS (default: one hour), one second at a time,
 * so tests can interrupt or time out a run that is busy inside the kernel.
 * Prints "sleep start" first so a test knows the app is running.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long seconds = argc > 1 ? strtol(argv[1], NULL, 10) : 3600;

    printf("sleep start %ld\n", seconds);
    fflush(stdout);
    for (long i = 0; i < seconds; i++) {
        struct timespec one = {1, 0};
        while (nanosleep(&one, &one) != 0) {
            if (errno != EINTR) {
                printf("sleep FAILED: nanosleep (errno %d)\n", errno);
                return 1;
            }
        }
    }
    printf("sleep done\n");
    return 0;
}
