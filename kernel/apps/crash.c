/*
 * Executes an invalid instruction (ud2): an exception in app code. Linux
 * kills such a process with SIGILL; the kernel ends the app the same way
 * (status 128 + 4) with one console line, and must itself survive it.
 */
#include <stdio.h>

int main(void)
{
    printf("crash: executing ud2\n");
    fflush(stdout);
    __builtin_trap();
}
