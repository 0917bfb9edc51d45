/*
 * A directory holding only this program: in the guest "/", the initrd's one directory;
 * on the host a fresh directory with a copy of it. Given that directory, prints what
 * stat, statx, open(O_DIRECTORY), getdents64 (the names sorted, with their types),
 * lseek back to the start, openat and newfstatat relative to the directory fd, chdir and
 * fchdir answer, and their errors, so the host's Linux is the oracle.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static long raw(long nr, long a, long b, long c, long d, long e)
{
    long r = syscall(nr, a, b, c, d, e, 0);
    return r < 0 ? -errno : r;
}

struct linux_dirent64 {
    unsigned long d_ino;
    long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* The head of the kernel's struct statx: musl's headers have none. */
struct statx_head {
    unsigned stx_mask, stx_blksize;
    unsigned long stx_attributes;
    unsigned stx_nlink, stx_uid, stx_gid;
    unsigned short stx_mode;
    char rest[256 - 30];
};
#define BASIC_STATS 0x7ff           /* STATX_BASIC_STATS */

static const char *self_name;
static unsigned long self_ino;     /* its d_ino, which stat must agree with */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of dfd from where its offset is, as "name type" lines, sorted. */
static void list(int dfd)
{
    static char buf[4096];
    char *lines[64];
    int n = 0;
    long got;
    while ((got = raw(SYS_getdents64, dfd, (long)buf, sizeof(buf), 0, 0)) > 0) {
        for (long at = 0; at < got && n < 64;) {
            struct linux_dirent64 *d = (void *)(buf + at);
            lines[n] = malloc(strlen(d->d_name) + 8);
            sprintf(lines[n++], "%s %d", d->d_name, d->d_type);
            if (strcmp(d->d_name, self_name) == 0)
                self_ino = d->d_ino;
            at += d->d_reclen;
        }
    }
    qsort(lines, n, sizeof(lines[0]), by_name);
    for (int i = 0; i < n; i++)
        printf("  %s\n", lines[i]);
    printf("  end %ld\n", got);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *dir = argv[1], *self = strrchr(argv[0], '/') + 1;
    self_name = self;
    char path[4096];
    struct stat st = { 0 };
    long r = raw(SYS_stat, (long)dir, (long)&st, 0, 0, 0);
    printf("stat %ld dir %d nlink %ld\n", r, S_ISDIR(st.st_mode), (long)st.st_nlink);
    struct statx_head sx = { 0 };
    r = raw(SYS_statx, AT_FDCWD, (long)dir, 0, BASIC_STATS, (long)&sx);
    printf("statx %ld dir %d basic %d\n", r, S_ISDIR(sx.stx_mode),
           (sx.stx_mask & BASIC_STATS) == BASIC_STATS);

    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fstat(dfd, &st);
    printf("open %d dir %d\n", dfd >= 0, S_ISDIR(st.st_mode));
    char byte;
    printf("read %ld\n", raw(SYS_read, dfd, (long)&byte, 1, 0, 0));
    printf("getdents64-small %ld\n", raw(SYS_getdents64, dfd, (long)path, 8, 0, 0));
    printf("list\n");
    list(dfd);
    printf("rewind %ld\n", raw(SYS_lseek, dfd, 0, SEEK_SET, 0, 0));
    list(dfd);

    r = raw(SYS_openat, dfd, (long)self, O_RDONLY, 0, 0);
    printf("openat-relative %d\n", r >= 0);
    int file = r;
    printf("getdents64-file %ld", raw(SYS_getdents64, file, (long)path, sizeof(path), 0, 0));
    printf(" bad %ld\n", raw(SYS_getdents64, 99, (long)path, sizeof(path), 0, 0));
    printf("openat-from-file %ld\n", raw(SYS_openat, file, (long)"x", O_RDONLY, 0, 0));
    r = raw(SYS_newfstatat, dfd, (long)self, (long)&st, 0, 0);
    printf("same inode %d\n", st.st_ino == self_ino);
    printf("newfstatat-relative %ld reg %d mode %o\n", r, S_ISREG(st.st_mode), st.st_mode & 0777);
    snprintf(path, sizeof(path), "%s/%s", dir, self);
    printf("open-file-as-dir %ld\n", raw(SYS_open, (long)path, O_RDONLY | O_DIRECTORY, 0, 0, 0));

    printf("chdir %ld", raw(SYS_chdir, (long)dir, 0, 0, 0, 0));
    printf(" file %ld", raw(SYS_chdir, (long)path, 0, 0, 0, 0));
    snprintf(path, sizeof(path), "%s/nonexistent", dir);
    printf(" missing %ld\n", raw(SYS_chdir, (long)path, 0, 0, 0, 0));
    printf("fchdir %ld", raw(SYS_fchdir, dfd, 0, 0, 0, 0));
    printf(" file %ld", raw(SYS_fchdir, file, 0, 0, 0, 0));
    printf(" bad %ld\n", raw(SYS_fchdir, 99, 0, 0, 0, 0));
    r = raw(SYS_stat, (long)self, (long)&st, 0, 0, 0);
    printf("stat-from-cwd %ld reg %d\n", r, S_ISREG(st.st_mode));
    r = raw(SYS_stat, (long)".", (long)&st, 0, 0, 0);
    printf("stat-dot %ld dir %d\n", r, S_ISDIR(st.st_mode));
    return 0;
}
