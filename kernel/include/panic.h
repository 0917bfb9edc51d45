#ifndef PANIC_H
#define PANIC_H
#include "types.h"

struct trap_frame;
/*
 * What the first panic saw, kept for a debugger that reads a dump or a halted guest
 * (osvgdb's model: osvgdb/model/kernel.py Kernel.panic): which CPU, the message, and
 * for a fault in kernel code the entry frame with the faulting registers and CR2.
 */
struct panic_report {
    int cpu;                        /* -1: no panic */
    const struct trap_frame *frame; /* panic_trap's frame, else NULL */
    u64 cr2;
    char message[128];
};
extern struct panic_report panic_report;

noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void panic_trap(const struct trap_frame *f);
noreturn void osv_panic_halt(void);
#endif
