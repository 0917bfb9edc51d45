/*
 * Demand paging from several threads: each writes and reads back its own slice of one
 * large untouched mapping, and hands the kernel an untouched buffer to fill (read()
 * from a file, so the kernel faults the pages in). With the argument "segv" it then
 * reads an address nobody mapped: the kernel must end it with status 139.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NTHREADS 4
#define SLICE (8 << 20)

static unsigned char *region;

static void *toucher(void *arg)
{
    long id = (long)arg;
    unsigned char *slice = region + id * SLICE;
    for (long off = 0; off < SLICE; off += 4096)
        slice[off] = (unsigned char)(id + off / 4096);
    for (long off = 0; off < SLICE; off += 4096)
        if (slice[off] != (unsigned char)(id + off / 4096))
            return (void *)1;
    /* A syscall writing into untouched memory: the page fault happens in the kernel. */
    char *buf = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fd = open("/proc/self/exe", O_RDONLY);
    if (buf == MAP_FAILED || fd < 0 || read(fd, buf, 65536) < 16384 || memcmp(buf, "\177ELF", 4))
        return (void *)2;
    close(fd);
    munmap(buf, 65536);
    return NULL;
}

int main(int argc, char **argv)
{
    region = mmap(NULL, (size_t)NTHREADS * SLICE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) {
        printf("lazy FAILED: mmap\n");
        return 1;
    }
    pthread_t threads[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        pthread_create(&threads[i], NULL, toucher, (void *)i);
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        pthread_join(threads[i], &ret);
        if (ret) {
            printf("lazy FAILED: thread %d check %ld\n", i, (long)ret);
            return 1;
        }
    }
    printf("lazy ok %d\n", NTHREADS);
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "segv") == 0) {
        volatile int *nowhere = (int *)0x7e0000000000;
        return *nowhere;
    }
    return 0;
}
