/*
 * Unbounded recursion in descend, each frame with a 1 KiB buffer, until the stack
 * reaches its 8 MiB limit: the kernel ends the app with status 139 (SIGSEGV) and
 * "stack overflow: segmentation fault at ..." (the access fell in the unmapped guard gap
 * below the stack). A triage should see thousands of descend frames and blame descend.
 */
#include <stdio.h>
#include <string.h>

static long __attribute__((noipa)) descend(long depth)
{
    volatile char frame[1024];
    if (depth < 0)                          /* never: only here so the recursion has an end on paper */
        return 0;
    memset((char *)frame, (int)depth, sizeof(frame));
    /* Not a tail call: the frame is still needed after the call returns. */
    return descend(depth + 1) + frame[depth % sizeof(frame)];
}

int main(void)
{
    printf("recurse: descending without end\n");
    fflush(stdout);
    long total = descend(0);
    printf("recurse FAILED: came back with %ld\n", total);
    return 1;
}
