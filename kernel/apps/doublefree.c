/*
 * release_buf frees a buffer its caller frees again: glibc's free finds the chunk in its
 * tcache and stops the program ("free(): double free detected in tcache 2", then
 * abort(): SIGABRT). musl's malloc (mallocng) says nothing: it crashes on purpose in
 * free (its a_crash, an illegal instruction).
 *
 * Triage must conclude (glibc, static-pie): app-abort, kind heap-double-free, title
 * "heap: double free in release_buf", guilty frames release_buf | send_message
 * (raise, abort, __libc_message, malloc_printerr, _int_free and free skipped).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct message {
    char *buf;
    size_t len;
};

static void __attribute__((noipa)) release_buf(struct message *m)
{
    free(m->buf);                      /* m->buf is left dangling: the bug */
    m->len = 0;
}

static void __attribute__((noipa)) send_message(const char *text)
{
    struct message m = {malloc(64), strlen(text)};
    memcpy(m.buf, text, m.len + 1);
    printf("doublefree: sending %s\n", m.buf);
    fflush(stdout);
    release_buf(&m);
    release_buf(&m);                   /* and freed again */
}

int main(void)
{
    send_message("hello");
    printf("doublefree FAILED: the second free returned\n");
    return 1;
}
