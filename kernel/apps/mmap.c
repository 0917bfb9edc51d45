/*
 * Memory calls with the arguments strace decodes: an anonymous PROT_NONE mapping
 * (fd -1, offset 0) made usable with mprotect, a private read-only mapping of the
 * program's own file at an offset, and munmap. Tests compare the kernel's --strace
 * lines for them with the host's strace.
 *
 * Exits 0, or the number of the first call that failed.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    (void)argc;
    char *anon = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (anon == MAP_FAILED)
        return 1;
    if (mprotect(anon, 4096, PROT_READ | PROT_WRITE) != 0)
        return 2;
    anon[0] = 1;
    int fd = open(argv[0], O_RDONLY);
    if (fd < 0)
        return 3;
    /* The second page of the ELF file: an offset strace prints in hex. */
    const char *file = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 4096);
    if (file == MAP_FAILED)
        return 4;
    if (munmap((void *)file, 4096) != 0 || munmap(anon, 8192) != 0)
        return 5;
    return close(fd) == 0 ? 0 : 6;
}
