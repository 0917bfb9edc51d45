/*
 * Spins for ever in spin_forever, in app code, without a single syscall after its one
 * line of output: only a timeout ends it. A triage of a stopped guest should find the
 * app's thread running (not blocked) in spin_forever, every time it looks.
 */
#include <stdio.h>

static volatile unsigned long spins;

static void __attribute__((noipa)) spin_forever(void)
{
    for (;;)
        spins++;
}

int main(void)
{
    printf("busy: spinning for ever\n");
    fflush(stdout);
    spin_forever();
}
