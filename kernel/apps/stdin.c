/*
 * Reading the host's stdin, fd 0, until end of file, one way per argument:
 *   read    read() in chunks of changing size
 *   fread   stdio's fread (musl's goes through readv)
 *   poll    poll and select on fd 0: not ready at first, then (after "waiting") ready
 *           once the host sends a line, which is read; then read() until end of file
 * Each mode prints the bytes, lines and an FNV-1a checksum of what it read, so the same
 * binary on the host, fed the same bytes, is the oracle.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

struct tally {
    unsigned long bytes, lines;
    unsigned long hash;
};

static void add(struct tally *t, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        t->hash = (t->hash ^ p[i]) * 0x100000001b3UL;
        t->lines += p[i] == '\n';
    }
    t->bytes += n;
}

static void report(const char *how, const struct tally *t)
{
    printf("%s: %lu bytes, %lu lines, fnv1a %016lx\n", how, t->bytes, t->lines, t->hash);
}

static void read_to_end(struct tally *t)
{
    static const size_t sizes[] = { 1, 7, 100, 4096, 3, 65536 };
    unsigned char buf[65536];
    ssize_t n;
    for (int i = 0; (n = read(0, buf, sizes[i % 6])) > 0; i++)
        add(t, buf, n);
    if (n < 0)
        perror("read");
    /* End of file stays: another read gives 0 again. */
    printf("read after EOF: %zd\n", read(0, buf, sizeof(buf)));
}

static void fread_to_end(struct tally *t)
{
    unsigned char buf[1000];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
        add(t, buf, n);
    printf("feof %d ferror %d\n", feof(stdin) != 0, ferror(stdin) != 0);
}

static void poll_then_read(struct tally *t)
{
    struct pollfd pfd = { .fd = 0, .events = POLLIN };
    printf("poll now: %d\n", poll(&pfd, 1, 0));
    fd_set in;
    FD_ZERO(&in);
    FD_SET(0, &in);
    struct timeval zero = { 0, 0 };
    printf("select now: %d\n", select(1, &in, NULL, NULL, &zero));
    printf("waiting\n");
    fflush(stdout);
    int n = poll(&pfd, 1, -1);
    printf("poll: %d revents %#x\n", n, pfd.revents);
    FD_SET(0, &in);
    n = select(1, &in, NULL, NULL, NULL);
    printf("select: %d isset %d\n", n, FD_ISSET(0, &in) != 0);
    fflush(stdout);
    read_to_end(t);
    n = poll(&pfd, 1, -1);
    printf("poll at EOF: %d revents %#x\n", n, pfd.revents);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        struct tally t = { 0, 0, 0xcbf29ce484222325UL };
        if (strcmp(argv[i], "read") == 0)
            read_to_end(&t);
        else if (strcmp(argv[i], "fread") == 0)
            fread_to_end(&t);
        else if (strcmp(argv[i], "poll") == 0)
            poll_then_read(&t);
        else {
            fprintf(stderr, "usage: %s read|fread|poll...\n", argv[0]);
            return 2;
        }
        report(argv[i], &t);
    }
    return 0;
}
