/*
 * An app whose FS base points at nothing: arch_prctl(ARCH_SET_FS, 0x1000), then raw
 * syscalls only (libc would read its TLS through FS). Linux runs it to the end, and so
 * does the counter protocol, which never reads the app's FS; compare's syscall entry
 * reads %fs:0, faults there, and the kernel reports it (tests/test_fs_protocols.py).
 */
#define ARCH_SET_FS 0x1002          /* asm/prctl.h, which musl-gcc does not see */
#include <sys/syscall.h>

static long raw(long nr, long a, long b, long c)
{
    long ret;
    __asm__ __volatile__("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c)
                         : "rcx", "r11", "memory");
    return ret;
}

int main(void)
{
    static const char line[] = "getppid with FS at 0x1000 returned\n";
    raw(SYS_arch_prctl, ARCH_SET_FS, 0x1000, 0);
    raw(SYS_getppid, 0, 0, 0);
    raw(SYS_write, 1, (long)line, sizeof(line) - 1);
    raw(SYS_exit_group, 0, 0, 0);
    return 0;
}
