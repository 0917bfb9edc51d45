/*
 * An assert() fails in check_balance, called from main: the C library prints the
 * assertion (file, line, function and expression) and calls abort(), which sends the
 * app SIGABRT (tgkill): status 134. A triage should read the assertion message off the
 * console and blame check_balance, with the signal sent by the app itself.
 */
#include <assert.h>
#include <stdio.h>

static void __attribute__((noipa)) check_balance(long balance)
{
    assert(balance >= 0);
    printf("assert: balance %ld\n", balance);
}

int main(int argc, char **argv __attribute__((unused)))
{
    printf("assert: checking a negative balance\n");
    fflush(stdout);
    check_balance(-argc);
    printf("assert FAILED: the assertion held\n");
    return 1;
}
