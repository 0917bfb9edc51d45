#ifndef CONSOLE_H
#define CONSOLE_H
#include "types.h"

void console_init(void);
void console_write(const char *s, size_t n);
void console_flush(void);
extern u64 console_bytes_written;   /* bytes written to the console so far (the debugger's) */
int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The debugcon side channel (port 0xe9): machine-readable lines for the host runner. */
void debugcon_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Why the app ends, when not by its own exit: on the console, and on debugcon at the end. */
void exit_reason(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void debugcon_exit_reason(void);
#endif
