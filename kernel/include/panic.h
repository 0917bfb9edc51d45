#ifndef PANIC_H
#define PANIC_H
#include "types.h"

struct trap_frame;
noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void panic_trap(const struct trap_frame *f);
noreturn void osv_panic_halt(void);
#endif
