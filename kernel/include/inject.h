#ifndef INJECT_H
#define INJECT_H
#include "types.h"

/*
 * Faults the kernel injects on purpose, one bit each in `injected`, set by the boot
 * option --inject=NAME and never by default: the crashes and hangs a debugger's triage
 * must recognise. Each one is a test of a global where the kernel was going slowly
 * anyway, never on the entry paths (those faults are kernel build variants instead:
 * kernel/Makefile's VARIANTS).
 */
enum inject {
    INJECT_TCGETS60 = 1 << 0,       /* TCGETS writes libc's 60-byte struct termios, not the kernel's 36 */
    INJECT_NO_AT_RANDOM = 1 << 1,   /* the auxv has no AT_RANDOM */
    INJECT_RDX_GARBAGE = 1 << 2,    /* the app starts with rdx not 0: glibc registers it with atexit */
    INJECT_LOST_WAKE = 1 << 3,      /* futex wakes say they woke their waiters and wake nobody */
    INJECT_TRIPLE_FAULT = 1 << 4,   /* the app's first exit triple-faults the CPU instead */
};
extern unsigned injected;

/* The value rdx-garbage leaves in rdx: canonical, never mapped, so a call to it page-faults. */
#define INJECT_RDX_VALUE 0xdeadbeefUL
#endif
