/*
 * Reads its own executable and then changes the buffer before its next syscall, so a
 * debugger that decodes syscall buffers from memory as it is now (not as the call saw
 * it) shows the wrong bytes. Two ways:
 *
 *   readback        read(fd, buf, 16), then buf := "ZZZ...", then getppid()
 *   readback stdio  fread() the whole file through stdio in 100-byte pieces: glibc and
 *                   musl reuse one buffer for every read(fd, buf, 4096)
 *
 * Prints what the first read returned (hex) so a test can compare, and exits 0.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void show(const char *what, const unsigned char *buf, size_t n)
{
    printf("%s:", what);
    for (size_t i = 0; i < n; i++)
        printf(" %02x", buf[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "stdio") == 0) {
        FILE *f = fopen(argv[0], "r");
        if (!f)
            return 1;
        unsigned char piece[100], first[16];
        size_t total = 0, n;
        while ((n = fread(piece, 1, sizeof(piece), f)) > 0) {
            if (total == 0)
                memcpy(first, piece, sizeof(first));
            total += n;
        }
        fclose(f);
        show("first", first, sizeof(first));
        printf("total %zu\n", total);
        return 0;
    }
    int fd = open(argv[0], O_RDONLY);
    if (fd < 0)
        return 1;
    unsigned char buf[16], seen[16];
    if (read(fd, buf, sizeof(buf)) != sizeof(buf))
        return 1;
    memcpy(seen, buf, sizeof(buf));
    memset(buf, 'Z', sizeof(buf));
    __asm__ __volatile__("" : : "r"(buf) : "memory");
    getppid();
    show("first", seen, sizeof(seen));
    close(fd);
    return 0;
}
