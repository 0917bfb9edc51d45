/*
 * drop_token frees a pointer into the middle of a heap buffer (past the prefix it
 * skipped), which malloc never returned: glibc says "free(): invalid pointer" and
 * aborts: SIGABRT.
 *
 * Triage must conclude (glibc, static-pie): app-abort, kind heap-invalid-pointer, title
 * "heap: invalid pointer in drop_token", guilty frames drop_token | main.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *__attribute__((noipa)) skip_prefix(char *token)
{
    return token + strlen("Bearer ");
}

static int tokens_dropped;

static void __attribute__((noipa)) drop_token(char *token)
{
    free(token);                       /* not what malloc returned: the bug */
    tokens_dropped++;
}

int main(void)
{
    char *token = malloc(32);
    strcpy(token, "Bearer abc123");
    char *secret = skip_prefix(token);
    printf("invalidfree: token %s\n", secret);
    fflush(stdout);
    drop_token(secret);
    printf("invalidfree FAILED: free returned\n");
    return 1;
}
