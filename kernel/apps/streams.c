/*
 * Writes to stdout and stderr in turn, the way programs mix them: raw write(2)s of
 * text, every byte value 0-255, a line split across calls, a 200 KiB block (more than
 * the terminal's buffers hold at once), and stdio on both streams with its own
 * buffering. Each stream on its own is what the host gives: compare them byte for byte.
 * With an argument N, the big block is N KiB instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t done = write(fd, p, n);
        if (done <= 0) {
            perror("write");
            exit(1);
        }
        p += done;
        n -= done;
    }
}

int main(int argc, char **argv)
{
    size_t big = (argc > 1 ? strtoul(argv[1], NULL, 10) : 200) * 1024;
    put(1, "out 1\n", 6);
    put(2, "err 1\n", 6);
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = i;
    put(1, all, sizeof(all));
    put(2, all + 128, 128);
    put(1, "half a ", 7);
    put(2, "err 2\n", 6);
    put(1, "line\n", 5);
    char *block = malloc(big);
    for (size_t i = 0; i < big; i++)
        block[i] = "0123456789abcdef\n"[i % 17];
    put(1, block, big);
    put(2, block, big / 2);
    printf("stdio out %d\n", 3);
    fprintf(stderr, "stdio err %d\n", 3);
    printf("stdio out %d, unflushed until exit\n", 4);
    fwrite(all, 1, sizeof(all), stderr);
    return 0;
}
