#ifndef TTY_H
#define TTY_H
#include "types.h"

/* What stands behind fds 0, 1 and 2 on the host (the kernel's --stdin=, --stdout=, --stderr=). */
enum tty_mode {
    TTY_MODE_TTY,                   /* a terminal: fstat says /dev/console, TCGETS works */
    TTY_MODE_PIPE,                  /* a pipe or a file: fstat says FIFO, TCGETS is ENOTTY */
    TTY_MODE_NONE,                  /* fd 0 only: nothing; every read returns 0 at once */
};
extern enum tty_mode tty_modes[3];
extern u64 tty_bytes_written[3];    /* bytes written to fd 1's and fd 2's ports so far (the debugger's) */

void tty_init(void);                /* after lapic_init: the consoles' interrupt goes to this CPU */
void tty_interrupt(void);
long tty_write(int stream, const void *buf, u64 n);  /* stream 1: stdout, 2: stderr */
void tty_flush(void);               /* at the end: every byte written has left */
void tty_export_write(const void *data, u64 n);  /* export.c's archives, at the end */
long tty_read(u8 *buf, u64 count, bool nonblock);
unsigned tty_input_poll(void);      /* POLLIN when a read would return at once */
bool tty_input_on(void);
long tty_ioctl(u64 request, u64 arg);
struct file_ops;
extern const struct file_ops tty_file_ops;  /* fds 0-2, /dev/tty, /dev/console */
#endif
