/*
 * fill_header copies a 40-byte string into a 16-byte field with memcpy; built with
 * -D_FORTIFY_SOURCE=2 the compiler knows the field's size and calls __memcpy_chk, which
 * finds the copy too long: glibc prints "*** buffer overflow detected ***: terminated"
 * and aborts: SIGABRT.
 *
 * Triage must conclude (glibc, static-pie): app-abort, kind fortify, title "fortify:
 * buffer overflow detected in fill_header", guilty frames fill_header | main
 * (__memcpy_chk, __chk_fail and __fortify_fail skipped).
 */
#include <stdio.h>
#include <string.h>

struct header {
    char host[16];
    int port;
};

static struct header current = {"", 80};

static void __attribute__((noipa)) fill_header(const char *host, size_t len)
{
    memcpy(current.host, host, len);   /* len is the source's, not the field's: the bug */
    current.port = 443;
}

int main(void)
{
    const char *host = "a-host-name-longer-than-the-field.example";
    printf("fortify: filling the header\n");
    fflush(stdout);
    fill_header(host, strlen(host) + 1);
    printf("fortify FAILED: %s\n", current.host);
    return 1;
}
