/*
 * append_record writes past the end of its heap buffer, over the size of the top chunk
 * after it; the next malloc finds the top chunk's size corrupted ("malloc(): corrupted
 * top size", then abort(): SIGABRT).
 *
 * Triage must conclude (glibc, static-pie): app-abort, kind heap-corrupted-top-size,
 * title "heap: corrupted top size in new_record", guilty frames new_record | main
 * (malloc's own frames skipped: _int_malloc, malloc_printerr, malloc).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void __attribute__((noipa)) append_record(char *buf, size_t size)
{
    memset(buf, 'x', size + 16);       /* 16 bytes past the end: the bug */
}

static size_t records;

static char *__attribute__((noipa)) new_record(size_t size)
{
    char *record = malloc(size);
    records++;
    return record;
}

int main(void)
{
    printf("topsize: writing the first record\n"); /* stdout's buffer is allocated now */
    fflush(stdout);
    char *first = new_record(24);
    append_record(first, 24);
    char *second = new_record(4000);
    printf("topsize FAILED: %p\n", (void *)second);
    return 1;
}
