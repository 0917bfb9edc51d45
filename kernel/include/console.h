#ifndef CONSOLE_H
#define CONSOLE_H
#include "types.h"

void console_init(void);
void console_write(const char *s, size_t n);
extern u64 console_bytes_written;   /* bytes written to the console so far (the debugger's) */
int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The debugcon side channel (port 0xe9): machine-readable lines for the host runner. */
void debugcon_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Console input, fd 0: what stands behind the serial line (the kernel's --stdin=MODE). */
enum console_input_mode { CONSOLE_INPUT_NONE, CONSOLE_INPUT_PIPE, CONSOLE_INPUT_TTY };
void console_input_start(enum console_input_mode mode);
void console_input_interrupt(void);
struct termios;
void console_set_termios(const struct termios *t);   /* the app's TCSETS (and the defaults) */
bool console_input_on(void);
unsigned console_input_poll(void);   /* POLLIN when a read would return at once */
long console_read(u8 *buf, u64 count, bool nonblock);
#endif
