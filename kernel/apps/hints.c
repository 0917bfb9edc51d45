/*
 * mmap's address hints, as Go uses them for its heap: a free range is given at the hint
 * (rounded down to its page, raised to mmap_min_addr), a taken one elsewhere; a PROT_NONE
 * reservation made usable piecewise with MAP_FIXED, a hole munmapped in the middle and
 * found again by a hint; MAP_FIXED_NOREPLACE refuses a taken range; MADV_DONTNEED reads
 * back zeros. Prints facts, not addresses, so the host's run is the oracle
 * (tests/test_hints.py).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define KiB 1024UL
#define MiB (1024 * KiB)
#define PAGE (4 * KiB)

static char *map(unsigned long hint, unsigned long len, int prot, int flags)
{
    return mmap((void *)hint, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
}

int main(void)
{
    const unsigned long hint = 0x200000000000UL, arena = 0x300000000000UL;
    char *a = map(hint, 64 * KiB, PROT_READ | PROT_WRITE, 0);
    printf("free range: at the hint %d\n", a == (char *)hint);
    char *b = map(hint, 64 * KiB, PROT_READ | PROT_WRITE, 0);
    printf("taken range: elsewhere %d\n", b != MAP_FAILED && b != (char *)hint);
    char *c = map(hint + 60 * KiB, 8 * KiB, PROT_READ, 0);
    printf("range half taken: elsewhere %d\n", c != MAP_FAILED && c != (char *)hint + 60 * KiB);
    char *d = map(hint + 1 * MiB + 123, PAGE, PROT_READ, 0);
    printf("unaligned hint: its page %d\n", d == (char *)hint + 1 * MiB);
    char *e = map(0x1000, PAGE, PROT_READ, 0);
    printf("hint below mmap_min_addr: raised to 0x10000 %d\n", e == (char *)0x10000);
    char *f = map(hint, PAGE, PROT_READ, MAP_FIXED_NOREPLACE);
    printf("MAP_FIXED_NOREPLACE on a taken range: %s\n",
           f == MAP_FAILED && errno == EEXIST ? "EEXIST" : "mapped");

    /* Go's way: reserve, then map pieces of the reservation for real. */
    char *r = map(arena, 64 * MiB, PROT_NONE, MAP_NORESERVE);
    printf("reservation at the hint %d\n", r == (char *)arena);
    char *piece = map(arena, 4 * MiB, PROT_READ | PROT_WRITE, MAP_FIXED);
    printf("piece mapped with MAP_FIXED %d\n", piece == (char *)arena);
    memset(piece, 7, 4 * MiB);
    printf("piece written: %d\n", piece[4 * MiB - 1] == 7);
    madvise(piece, 2 * MiB, MADV_DONTNEED);
    printf("MADV_DONTNEED half: zeros %d, the rest kept %d\n",
           piece[0] == 0 && piece[2 * MiB - 1] == 0, piece[2 * MiB] == 7);
    printf("munmap of a page in the middle: %d\n", munmap(piece + 1 * MiB, PAGE));
    char *hole = map(arena + 1 * MiB, PAGE, PROT_READ | PROT_WRITE, 0);
    printf("hint at the hole: given %d, zeros %d\n", hole == piece + 1 * MiB, hole[0] == 0);
    printf("munmap of the rest: %d %d\n", munmap(r, 64 * MiB), munmap(a, 64 * KiB));
    char *again = map(arena, 64 * MiB, PROT_NONE, 0);
    printf("after munmap the hint is free again %d\n", again == (char *)arena);
    return 0;
}
