#ifndef CONSOLE_H
#define CONSOLE_H
#include "types.h"

void console_init(void);
void console_write(const char *s, size_t n);
void console_flush(void);
/* 16550 UARTs, polled: COM1 is the console; tty.c may have two more for fds 1 and 2. */
void uart_init(u16 base);
bool uart_present(u16 base);
void uart_write(u16 base, const char *s, size_t n);
void uart_flush(u16 base);
extern u64 console_bytes_written;   /* bytes written to the console so far (the debugger's) */
int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The debugcon side channel (port 0xe9): machine-readable lines for the host runner. */
void debugcon_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Why the app ends, when not by its own exit: on the console, and on debugcon at the end. */
void exit_reason(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void debugcon_exit_reason(void);
#endif
