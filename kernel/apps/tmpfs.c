/*
 * A writable tmpfs, as Linux's: every call a program makes on files and directories,
 * and each error Linux gives, printed as raw results (a number, or -1 and the errno's
 * name) and as relations between stat's answers (sizes, link counts, modes, whether a
 * time moved), never as values that differ between runs. Given a directory that does
 * not exist yet on a tmpfs (the host's /dev/shm, the guest's /tmp), it makes it and works
 * inside, so the host's Linux is the oracle for the guest's kernel, for glibc and musl.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#define RENAME_EXCHANGE 2
#endif

static const char *name_of(int e)
{
    switch (e) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case EXDEV: return "EXDEV";
    case EINVAL: return "EINVAL";
    case ELOOP: return "ELOOP";
    case EBADF: return "EBADF";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ESPIPE: return "ESPIPE";
    default: return "other";
    }
}

/* One call's result on one line: the number, or -1 and the errno. */
static long show(const char *what, long r)
{
    if (r < 0)
        printf("%s: -1 %s\n", what, name_of(errno));
    else
        printf("%s: %ld\n", what, r);
    return r;
}

int fd_close_ok(int fd);

/* The raw syscall, so libc's wrappers add nothing (renameat2, getcwd). */
static long sys(long nr, long a, long b, long c, long d, long e)
{
    return syscall(nr, a, b, c, d, e);
}

static struct stat st(const char *path)
{
    struct stat s;
    memset(&s, 0, sizeof(s));
    if (lstat(path, &s) < 0)
        printf("lstat %s: -1 %s\n", path, name_of(errno));
    return s;
}

static const char *type_of(mode_t mode)
{
    return S_ISREG(mode) ? "file" : S_ISDIR(mode) ? "dir" : S_ISLNK(mode) ? "symlink"
         : S_ISCHR(mode) ? "chardev" : "other";
}

static void describe(const char *path)
{
    struct stat s = st(path);
    printf("  %s: %s mode %o size %ld nlink %ld blocks %ld uid %d gid %d\n", path,
           type_of(s.st_mode), s.st_mode & 07777, (long)s.st_size, (long)s.st_nlink,
           (long)s.st_blocks, s.st_uid, s.st_gid);
}

static void contents(const char *path)
{
    char buf[256] = { 0 };
    int fd = open(path, O_RDONLY);
    long n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (fd >= 0)
        close(fd);
    for (long i = 0; i < n; i++)
        if (buf[i] == 0)
            buf[i] = '.';
    printf("  %s holds %ld: \"%s\"\n", path, n, n > 0 ? buf : "");
}

static void put(const char *path, const char *data)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (write(fd, data, strlen(data)) < 0 || close(fd) < 0)
        printf("put %s failed\n", path);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's names (getdents64 through readdir), sorted, with their types. */
static void list(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        printf("  opendir %s: %s\n", path, name_of(errno));
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        names[n] = malloc(strlen(e->d_name) + 16);
        sprintf(names[n++], "%s/%d", e->d_name, e->d_type);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), by_name);
    printf("  %s:", path);
    for (int i = 0; i < n; i++)
        printf(" %s", names[i]);
    printf("\n");
}

static void files_and_data(void)
{
    printf("-- create, write, append, truncate\n");
    int fd = show("open O_CREAT|O_EXCL new", open("f", O_RDWR | O_CREAT | O_EXCL, 0666));
    show("open O_CREAT|O_EXCL again", open("f", O_RDWR | O_CREAT | O_EXCL, 0666));
    show("write", write(fd, "hello", 5));
    describe("f");
    int app = open("f", O_WRONLY | O_APPEND);
    show("lseek the append fd to 0", lseek(app, 0, SEEK_SET));
    show("write O_APPEND", write(app, " world", 6));
    show("pwrite O_APPEND at 0 (appends, as Linux)", pwrite(app, "!", 1, 0));
    close(app);
    contents("f");
    char buf[64] = { 0 };
    show("pread at 6", pread(fd, buf, 5, 6));
    printf("  read \"%s\"\n", buf);
    show("lseek SEEK_END", lseek(fd, 0, SEEK_END));
    show("lseek SEEK_SET 10000", lseek(fd, 10000, SEEK_SET));
    show("write after a hole", write(fd, "end", 3));
    describe("f");
    memset(buf, 'x', sizeof(buf));
    show("pread in the hole", pread(fd, buf, 8, 100));
    printf("  the hole reads %s\n", memcmp(buf, "\0\0\0\0\0\0\0\0", 8) == 0 ? "zeros" : "garbage");
    show("lseek SEEK_DATA 5", lseek(fd, 5, SEEK_DATA));
    show("lseek SEEK_HOLE 5", lseek(fd, 5, SEEK_HOLE));
    show("lseek SEEK_DATA past the end", lseek(fd, 20000, SEEK_DATA));
    show("lseek SEEK_CUR -1000000", lseek(fd, -1000000, SEEK_CUR));
    show("ftruncate to 4", ftruncate(fd, 4));
    contents("f");
    show("ftruncate to 8", ftruncate(fd, 8));
    contents("f");
    describe("f");
    show("truncate to 2", truncate("f", 2));
    contents("f");
    show("truncate to -1", truncate("f", -1));
    show("ftruncate to -1", ftruncate(fd, -1));
    int ro = open("f", O_RDONLY);
    show("ftruncate a read-only fd", ftruncate(ro, 0));
    show("write a read-only fd", write(ro, "x", 1));
    close(ro);
    show("fsync", fsync(fd));
    show("fdatasync", fdatasync(fd));
    close(fd);
    int pipefd[2];
    if (pipe(pipefd) == 0) {
        show("fsync a pipe", fsync(pipefd[0]));
        show("lseek a pipe", lseek(pipefd[0], 0, SEEK_SET));
        close(pipefd[0]);
        close(pipefd[1]);
    }
    show("open O_TRUNC", fd = open("f", O_WRONLY | O_TRUNC));
    close(fd);
    describe("f");
    int big = open("big", O_RDWR | O_CREAT, 0600);
    static char page[5000];
    memset(page, 'b', sizeof(page));
    show("write 5000", write(big, page, sizeof(page)));
    struct iovec iov[2] = { { page, 100 }, { page, 200 } };
    show("writev 300", writev(big, iov, 2));
    describe("big");
    show("creat over it", fd = creat("big", 0600));
    close(fd);
    describe("big");
    close(big);
}

static void directories(void)
{
    printf("-- mkdir, rmdir, opening directories\n");
    show("mkdir d", mkdir("d", 0755));
    show("mkdir d again", mkdir("d", 0755));
    show("mkdir missing/x", mkdir("missing/x", 0755));
    show("mkdir f/x", mkdir("f/x", 0755));
    show("mkdir d/sub", mkdir("d/sub", 0700));
    show("mkdir d/sub2/", mkdir("d/sub2/", 0700));
    describe("d");
    describe("d/sub");
    show("open d O_WRONLY", open("d", O_WRONLY));
    show("open d O_RDWR", open("d", O_RDWR));
    show("open d O_CREAT", open("d", O_RDONLY | O_CREAT, 0644));
    show("open d O_RDONLY|O_TRUNC", open("d", O_RDONLY | O_TRUNC));
    show("open f O_DIRECTORY", open("f", O_RDONLY | O_DIRECTORY));
    show("open f/", open("f/", O_RDONLY));
    show("open missing", open("missing", O_RDONLY));
    show("open missing/x O_CREAT", open("missing/x", O_RDWR | O_CREAT, 0644));
    show("open new/ O_CREAT", open("new/", O_RDWR | O_CREAT, 0644));
    int dfd = open("d", O_RDONLY | O_DIRECTORY);
    char buf[8];
    show("read a directory", read(dfd, buf, sizeof(buf)));
    show("openat(dfd, x, O_CREAT)", openat(dfd, "x", O_RDWR | O_CREAT, 0640));
    show("mkdirat(dfd, y)", mkdirat(dfd, "y", 0755));
    show("unlinkat(dfd, y, AT_REMOVEDIR)", unlinkat(dfd, "y", AT_REMOVEDIR));
    show("unlinkat(dfd, x, 0)", unlinkat(dfd, "x", 0));
    show("unlinkat bad flag", unlinkat(dfd, "x", 1));
    show("openat(a file fd, x)", openat(open("f", O_RDONLY), "x", O_RDONLY));
    list("d");
    close(dfd);
    show("rmdir d (not empty)", rmdir("d"));
    show("rmdir f", rmdir("f"));
    show("rmdir missing", rmdir("missing"));
    show("rmdir d/sub/.", rmdir("d/sub/."));
    show("rmdir d/sub/..", rmdir("d/sub/.."));
    show("unlink d", unlink("d"));
    show("unlink missing", unlink("missing"));
    show("unlink f/", unlink("f/"));
    show("rmdir d/sub2/", rmdir("d/sub2/"));
    show("rmdir d/sub", rmdir("d/sub"));
    describe("d");
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = 0;
    show("open a 256-byte name", open(longname, O_RDWR | O_CREAT, 0644));
    longname[255] = 0;
    show("open a 255-byte name", fd_close_ok(open(longname, O_RDWR | O_CREAT, 0644)));
    show("unlink it", unlink(longname));
}

static void renames(void)
{
    printf("-- rename, renameat2\n");
    put("r1", "one");
    put("r2", "two");
    show("rename r1 r3", rename("r1", "r3"));
    show("rename r1 (gone) r4", rename("r1", "r4"));
    show("rename r3 over r2", rename("r3", "r2"));
    contents("r2");
    show("rename r2 r2", rename("r2", "r2"));
    mkdir("e", 0755);
    mkdir("full", 0755);
    put("full/x", "x");
    show("rename a file over a directory", rename("r2", "e"));
    show("rename a directory over a file", rename("e", "r2"));
    show("rename a directory over a non-empty one", rename("e", "full"));
    mkdir("empty", 0755);
    show("rename a directory over an empty one", rename("e", "empty"));
    show("rename a directory into itself", rename("empty", "empty/inner"));
    show("rename f/ (a file with a slash)", rename("r2", "r2x/"));
    show("rename . away", rename(".", "dot"));
    show("renameat2 NOREPLACE over r2", sys(SYS_renameat2, AT_FDCWD, (long)"full/x", AT_FDCWD, (long)"r2", RENAME_NOREPLACE));
    show("renameat2 NOREPLACE|EXCHANGE", sys(SYS_renameat2, AT_FDCWD, (long)"full/x", AT_FDCWD, (long)"r2", RENAME_NOREPLACE | RENAME_EXCHANGE));
    show("renameat2 EXCHANGE r2 full/x", sys(SYS_renameat2, AT_FDCWD, (long)"r2", AT_FDCWD, (long)"full/x", RENAME_EXCHANGE));
    contents("r2");
    contents("full/x");
    show("renameat2 EXCHANGE with a missing name", sys(SYS_renameat2, AT_FDCWD, (long)"r2", AT_FDCWD, (long)"nothing", RENAME_EXCHANGE));
    show("renameat2 EXCHANGE a file and a directory", sys(SYS_renameat2, AT_FDCWD, (long)"r2", AT_FDCWD, (long)"empty", RENAME_EXCHANGE));
    describe("r2");
    describe("empty");
    show("renameat2 bad flag", sys(SYS_renameat2, AT_FDCWD, (long)"r2", AT_FDCWD, (long)"x", 64));
    show("rename into /dev", rename("full/x", "/dev/osvgdb-tmpfs-test"));
    show("link into /dev", link("full/x", "/dev/osvgdb-tmpfs-test"));
    list(".");
}

static void links(void)
{
    printf("-- symlink, readlink, link\n");
    put("target", "pointed at");
    show("symlink target l", symlink("target", "l"));
    show("symlink again", symlink("target", "l"));
    show("symlink empty", symlink("", "l2"));
    char buf[64] = { 0 };
    show("readlink l", readlink("l", buf, sizeof(buf)));
    printf("  \"%s\"\n", buf);
    show("readlink with 3 bytes", readlink("l", buf, 3));
    show("readlink a file", readlink("target", buf, sizeof(buf)));
    show("readlink missing", readlink("missing", buf, sizeof(buf)));
    contents("l");
    describe("l");
    struct stat s;
    show("stat through l", stat("l", &s));
    printf("  stat says %s, lstat %s\n", type_of(s.st_mode), type_of(st("l").st_mode));
    show("open l O_NOFOLLOW", open("l", O_RDONLY | O_NOFOLLOW));
    show("symlink dangling", symlink("made-through-link", "dangling"));
    show("open dangling", open("dangling", O_RDONLY));
    show("open dangling O_CREAT", fd_close_ok(open("dangling", O_WRONLY | O_CREAT, 0644)));
    show("open dangling O_CREAT|O_EXCL", open("dangling", O_WRONLY | O_CREAT | O_EXCL, 0644));
    describe("made-through-link");
    show("symlink loop a", symlink("loop-b", "loop-a"));
    show("symlink loop b", symlink("loop-a", "loop-b"));
    show("open a loop", open("loop-a", O_RDONLY));
    symlink("nowhere", "dangling3");
    show("mkdir over a dangling symlink", mkdir("dangling3", 0755));
    mkdir("real", 0755);
    put("real/inside", "inside");
    show("symlink to a directory", symlink("real", "dirlink"));
    contents("dirlink/inside");
    show("chdir through it", chdir("dirlink"));
    char cwd[4096];
    printf("  getcwd ends in /real: %s\n",
           sys(SYS_getcwd, (long)cwd, sizeof(cwd), 0, 0, 0) > 0 &&
           strcmp(strrchr(cwd, '/'), "/real") == 0 ? "yes" : "no");
    show("chdir ..", chdir(".."));
    show("unlink dirlink/ (trailing slash)", unlink("dirlink/"));
    show("rmdir dirlink (a symlink)", rmdir("dirlink"));
    show("link target hard", link("target", "hard"));
    describe("target");
    show("link over existing", link("target", "l"));
    show("link a directory", link("real", "real2"));
    show("link missing", link("missing", "x"));
    show("unlink target", unlink("target"));
    describe("hard");
    contents("hard");
    int fd = open("hard", O_RDONLY);
    show("unlink hard while open", unlink("hard"));
    memset(buf, 0, sizeof(buf));
    show("read it after", read(fd, buf, sizeof(buf)));
    printf("  \"%s\"\n", buf);
    struct stat fs;
    fstat(fd, &fs);
    printf("  fstat nlink %ld size %ld\n", (long)fs.st_nlink, (long)fs.st_size);
    close(fd);
    show("open l (its target gone)", open("l", O_RDONLY));
}

static void times_and_modes(void)
{
    printf("-- utimensat, chmod, chown, times\n");
    put("t", "time");
    struct timespec set[2] = { { 1000000000, 500 }, { 1234567890, 123456789 } };
    show("utimensat", utimensat(AT_FDCWD, "t", set, 0));
    struct stat s = st("t");
    printf("  atime %ld.%09ld mtime %ld.%09ld\n", (long)s.st_atim.tv_sec, s.st_atim.tv_nsec,
           (long)s.st_mtim.tv_sec, s.st_mtim.tv_nsec);
    struct timespec omit[2] = { { 5, UTIME_OMIT }, { 7, 7 } };
    show("utimensat UTIME_OMIT", utimensat(AT_FDCWD, "t", omit, 0));
    s = st("t");
    printf("  atime %ld.%09ld mtime %ld.%09ld\n", (long)s.st_atim.tv_sec, s.st_atim.tv_nsec,
           (long)s.st_mtim.tv_sec, s.st_mtim.tv_nsec);
    struct timespec now[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };
    show("utimensat UTIME_NOW", utimensat(AT_FDCWD, "t", now, 0));
    s = st("t");
    printf("  mtime is recent: %s\n", s.st_mtim.tv_sec > 1600000000 ? "yes" : "no");
    struct timespec bad[2] = { { 0, 1000000000 }, { 0, 0 } };
    show("utimensat a bad nsec", utimensat(AT_FDCWD, "t", bad, 0));
    show("utimensat missing", utimensat(AT_FDCWD, "missing", NULL, 0));
    show("utimensat bad flag", utimensat(AT_FDCWD, "t", NULL, 0x8000));
    int fd = open("t", O_WRONLY);
    show("futimens", futimens(fd, set));
    printf("  mtime %ld\n", (long)st("t").st_mtim.tv_sec);
    show("write", write(fd, "x", 1));
    printf("  a write moves mtime: %s\n", st("t").st_mtim.tv_sec > 1234567890 ? "yes" : "no");
    close(fd);
    symlink("t", "tl");
    show("utimensat AT_SYMLINK_NOFOLLOW", utimensat(AT_FDCWD, "tl", set, AT_SYMLINK_NOFOLLOW));
    printf("  the link's mtime %ld, the file's is recent: %s\n", (long)st("tl").st_mtim.tv_sec,
           st("t").st_mtim.tv_sec > 1600000000 ? "yes" : "no");
    mkdir("td", 0755);
    utimensat(AT_FDCWD, "td", set, 0);
    put("td/new", "");
    printf("  a new name moves its directory's mtime: %s\n",
           st("td").st_mtim.tv_sec > 1234567890 ? "yes" : "no");
    utimensat(AT_FDCWD, "td", set, 0);
    unlink("td/new");
    printf("  so does an unlink: %s\n", st("td").st_mtim.tv_sec > 1234567890 ? "yes" : "no");
    show("chmod 0640", chmod("t", 0640));
    show("chmod 04755", chmod("t", 04755));
    describe("t");
    show("chown 1000:2000", chown("t", 1000, 2000));
    describe("t");
    show("chown -1:3000", chown("t", -1, 3000));
    describe("t");
    show("fchmod 0600", fchmod(fd = open("t", O_RDONLY), 0600));
    show("fchown 0:0", fchown(fd, 0, 0));
    close(fd);
    describe("t");
    show("access R_OK|W_OK", access("t", R_OK | W_OK));
    show("access X_OK of a 0600 file", access("t", X_OK));
    chmod("t", 0700);
    show("access X_OK of a 0700 file", access("t", X_OK));
    show("access X_OK of a directory", access("td", X_OK));
    show("access missing", access("missing", F_OK));
    show("chmod missing", chmod("missing", 0644));
    struct statfs sf;
    show("statfs", statfs(".", &sf));
    printf("  f_type %#lx namelen %ld\n", (long)sf.f_type, (long)sf.f_namelen);
}

static void working_directory(void)
{
    printf("-- the working directory\n");
    mkdir("w", 0755);
    show("chdir w", chdir("w"));
    char buf[256];
    show("chdir a file", chdir("../t"));
    show("chdir missing", chdir("missing"));
    show("rmdir the working directory", rmdir("../w"));
    show("getcwd after (raw)", sys(SYS_getcwd, (long)buf, sizeof(buf), 0, 0, 0));
    show("create in it", open("x", O_RDWR | O_CREAT, 0644));
    show("chdir ..", chdir(".."));
}

/* Closes what an open returned and passes the result on, so it shows as a count. */
int fd_close_ok(int fd)
{
    if (fd >= 0)
        close(fd);
    return fd < 0 ? fd : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    umask(022);
    show("mkdir the test directory", mkdir(argv[1], 0755));
    show("chdir into it", chdir(argv[1]));
    files_and_data();
    directories();
    renames();
    links();
    times_and_modes();
    working_directory();
    return 0;
}
