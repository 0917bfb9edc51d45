#ifndef CONSOLE_H
#define CONSOLE_H
#include "types.h"

void console_init(void);
void console_write(const char *s, size_t n);
int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The debugcon side channel (port 0xe9): machine-readable lines for the host runner. */
void debugcon_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
