/*
 * Prints what the loader put on the initial process stack (psABI figure 3.9),
 * one "key value" pair per line, so a test can compare it with the kernel
 * command line and with the ELF file itself:
 *
 *   argc N / argv[i] S / envp[i] S     as main() received them
 *   AT_xxx 0xV                         getauxval(AT_xxx): what libc itself sees
 *   AT_PLATFORM_STR S, AT_EXECFN_STR S the strings those two point at
 *   AT_RANDOM_BYTES HEX                the 16 bytes AT_RANDOM points at
 *   uid/euid/gid/egid N                the syscalls, to compare with AT_UID...
 *   auxv N 0xV                         every raw entry after envp, up to and
 *                                      including AT_NULL (getauxval cannot
 *                                      tell a missing key from a zero value)
 *
 * Strings are printed with bytes outside printable ASCII, and the backslash,
 * as \xNN, so every value stays on its line.
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <unistd.h>

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51 /* Linux uapi; older libc headers lack it */
#endif

static const struct {
    const char *name;
    unsigned long type;
} keys[] = {
    {"AT_PHDR", AT_PHDR},       {"AT_PHENT", AT_PHENT},
    {"AT_PHNUM", AT_PHNUM},     {"AT_PAGESZ", AT_PAGESZ},
    {"AT_BASE", AT_BASE},       {"AT_FLAGS", AT_FLAGS},
    {"AT_ENTRY", AT_ENTRY},     {"AT_UID", AT_UID},
    {"AT_EUID", AT_EUID},       {"AT_GID", AT_GID},
    {"AT_EGID", AT_EGID},       {"AT_SECURE", AT_SECURE},
    {"AT_RANDOM", AT_RANDOM},   {"AT_HWCAP", AT_HWCAP},
    {"AT_HWCAP2", AT_HWCAP2},   {"AT_CLKTCK", AT_CLKTCK},
    {"AT_PLATFORM", AT_PLATFORM}, {"AT_EXECFN", AT_EXECFN},
    {"AT_MINSIGSTKSZ", AT_MINSIGSTKSZ},
};

static void print_escaped(const char *key, const char *s)
{
    fputs(key, stdout);
    putchar(' ');
    if (!s) {
        puts("(null)");
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '\\')
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
    putchar('\n');
}

int main(int argc, char **argv, char **envp)
{
    char key[32];

    printf("argc %d\n", argc);
    for (int i = 0; i < argc; i++) {
        snprintf(key, sizeof(key), "argv[%d]", i);
        print_escaped(key, argv[i]);
    }
    char **env = envp;
    for (int i = 0; env[i]; i++) {
        snprintf(key, sizeof(key), "envp[%d]", i);
        print_escaped(key, env[i]);
    }

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        printf("%s 0x%lx\n", keys[i].name, getauxval(keys[i].type));
    print_escaped("AT_PLATFORM_STR", (const char *)getauxval(AT_PLATFORM));
    print_escaped("AT_EXECFN_STR", (const char *)getauxval(AT_EXECFN));
    const unsigned char *random = (const unsigned char *)getauxval(AT_RANDOM);
    printf("AT_RANDOM_BYTES ");
    for (int i = 0; random && i < 16; i++)
        printf("%02x", random[i]);
    putchar('\n');

    printf("uid %u\neuid %u\ngid %u\negid %u\n",
           (unsigned)getuid(), (unsigned)geteuid(),
           (unsigned)getgid(), (unsigned)getegid());

    /* The auxv starts right after envp's NULL terminator. */
    while (*env)
        env++;
    for (Elf64_auxv_t *a = (Elf64_auxv_t *)(env + 1);; a++) {
        printf("auxv %lu 0x%lx\n", (unsigned long)a->a_type,
               (unsigned long)a->a_un.a_val);
        if (a->a_type == AT_NULL)
            break;
    }
    return 0;
}
