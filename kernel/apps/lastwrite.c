/*
 * The bug osv-last-write exists for: a global pointer cleared by one function and read
 * through, much later, by another. main prints the configuration, forget_config sets
 * `config` to NULL, then the program works for a while (syscalls, and computation long
 * enough for timer ticks to interrupt it) before read_retries dereferences the pointer:
 * 139, "segmentation fault at 0x8" (config->retries). At the crash, in a replay of the run
 * (osvgdb run --record), `osv-last-write config` must stop in forget_config, main below.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

struct config {
    const char *name;
    long retries;
};

static struct config defaults = { "defaults", 3 };
struct config *config = &defaults;

static void __attribute__((noipa)) forget_config(void)
{
    config = NULL;
}

/* Syscalls, then enough arithmetic for the timer (1000 Hz) to tick a few times. */
static unsigned long __attribute__((noipa)) other_work(void)
{
    unsigned long sum = 0;
    for (int i = 0; i < 4; i++)
        sum += (unsigned long)getpid() + (unsigned long)time(NULL) % 2;
    for (volatile unsigned long i = 0; i < 3000000; i++)
        sum += i ^ (sum >> 3);
    return sum;
}

static long __attribute__((noipa)) read_retries(void)
{
    return config->retries;
}

int main(void)
{
    printf("lastwrite: %s, %ld retries\n", config->name, config->retries);
    forget_config();
    unsigned long work = other_work();
    printf("lastwrite: worked (%lu); reading the retries again\n", work % 1000);
    fflush(stdout);
    return (int)read_retries();
}
