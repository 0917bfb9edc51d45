/*
 * What a directory tree holds, one line per entry, sorted by path: its type, mode,
 * size, owner, mtime (whole seconds), a symlink's target and a file's checksum (FNV-1a
 * of its bytes, read with read(2)). Given the same tree, the host and the guest must
 * print the same lines: osvgdb run --add's test. With "write DIR", it makes a tree of
 * its own there first (files of several sizes, a hole, directories, a symlink, modes),
 * for --export's.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static char *lines[4096];
static int nlines;

static unsigned long checksum(const char *path)
{
    unsigned long h = 1469598103934665603UL;
    int fd = open(path, O_RDONLY);
    unsigned char buf[8192];
    long n;
    while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
        for (long i = 0; i < n; i++)
            h = (h ^ buf[i]) * 1099511628211UL;
    if (fd >= 0)
        close(fd);
    return h;
}

static void visit(const char *root, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
    struct stat st;
    if (lstat(path, &st) < 0) {
        printf("lstat %s failed\n", path);
        return;
    }
    char line[8192];
    int n = snprintf(line, sizeof(line), "%s %c %o %ld %d:%d %ld", *rel ? rel : ".",
                     S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : S_ISREG(st.st_mode) ? 'f' : '?',
                     st.st_mode & 07777, S_ISDIR(st.st_mode) ? 0L : (long)st.st_size, st.st_uid,
                     st.st_gid, (long)st.st_mtime);
    if (S_ISLNK(st.st_mode)) {
        char target[4096] = { 0 };
        readlink(path, target, sizeof(target) - 1);
        snprintf(line + n, sizeof(line) - n, " -> %s", target);
    } else if (S_ISREG(st.st_mode))
        snprintf(line + n, sizeof(line) - n, " %016lx", checksum(path));
    if (nlines < 4096)
        lines[nlines++] = strdup(line);
    if (!S_ISDIR(st.st_mode))
        return;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[4096];
        snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        visit(root, child);
    }
    if (d)
        closedir(d);
}

static int by_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put(const char *path, const char *data, long times, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    for (long i = 0; i < times; i++)
        if (write(fd, data, strlen(data)) < 0)
            exit(1);
    close(fd);
}

/* A tree of its own under dir: the --export test's, the same on the host and the guest. */
static void write_tree(const char *dir)
{
    char path[4096];
    mkdir(dir, 0755);
    if (chdir(dir) < 0)
        exit(1);
    mkdir("docs", 0750);
    mkdir("docs/deep", 0755);
    mkdir("docs/deep/er", 0700);
    mkdir("empty", 0755);
    put("small", "a few bytes\n", 1, 0644);
    put("docs/big", "0123456789abcdef", 20000, 0600);
    put("docs/deep/er/tool", "#!/bin/sh\necho tool\n", 1, 0755);
    int fd = open("sparse", O_WRONLY | O_CREAT, 0644);
    if (pwrite(fd, "end", 3, 100000) != 3)
        exit(1);
    close(fd);
    put("log", "first\n", 1, 0644);
    fd = open("log", O_WRONLY | O_APPEND);
    for (int i = 0; i < 100; i++)
        dprintf(fd, "line %d\n", i);
    close(fd);
    symlink("docs/deep/er/tool", "tool-link");
    rename("small", "docs/small-moved");
    put("gone", "x", 1, 0644);
    unlink("gone");
    struct timeval fixed[2] = { { 1500000000, 0 }, { 1500000000, 0 } };
    snprintf(path, sizeof(path), "docs/small-moved");
    utimes(path, fixed);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "write") == 0) {
        write_tree(argv[2]);
        return 0;
    }
    if (argc != 2)
        return 2;
    visit(argv[1], "");
    qsort(lines, nlines, sizeof(lines[0]), by_path);
    for (int i = 0; i < nlines; i++)
        printf("%s\n", lines[i]);
    return 0;
}
