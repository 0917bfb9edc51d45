/*
 * copy_name copies a name longer than its 16-byte stack buffer (strcpy): the canary the
 * compiler put after the buffer (-fstack-protector-strong) is overwritten, and the check
 * at copy_name's return calls __stack_chk_fail: glibc prints "*** stack smashing
 * detected ***: terminated" and aborts: SIGABRT. musl's __stack_chk_fail crashes on
 * purpose without a message.
 *
 * Triage must conclude (glibc, static-pie): app-abort, kind stack-smashing, title
 * "stack-smashing: stack smashing detected in copy_name", guilty frames copy_name |
 * main (__stack_chk_fail and __fortify_fail skipped).
 */
#include <stdio.h>
#include <string.h>

static void __attribute__((noipa)) copy_name(const char *name)
{
    char local[16];
    strcpy(local, name);               /* no length check: the bug */
    printf("smash: hello %s\n", local);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    (void)argv;
    copy_name(argc > 5 ? "short" : "a name much longer than sixteen bytes");
    printf("smash FAILED: the canary held\n");
    return 1;
}
