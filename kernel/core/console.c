/*
 * The kernel's own console, COM1, output only and polled: the banner, --strace, every
 * kernel message and a panic's report. The app's stdin, stdout and stderr are not here
 * but on the terminal (tty.c), so the two never mix; an app writes here only when the
 * terminal's devices are missing. A second, one-way channel, QEMU's debugcon at port
 * 0xe9, carries lines meant for the host tools only (the exit status).
 */
#include "console.h"
#include "arch.h"
#include "lib.h"
#include "spinlock.h"

#define COM1 0x3f8
#define UART_LSR 5              /* line status */
#define UART_SCR 7              /* scratch: a register that only keeps what was written */
#define LSR_THRE 0x20           /* the transmit holding register (and FIFO) can take a byte */
#define LSR_TEMT 0x40           /* ... and everything written has left the UART */
#define DEBUGCON 0xe9
/*
 * How long to wait for the UART, in polls (each an I/O exit: a few seconds under TCG).
 * Long on purpose: QEMU's serial clears THRE while its host side cannot take a byte (a
 * socket's buffer holds only a few hundred one-byte sends), and a byte written then
 * pushes the oldest out of the FIFO: a bound of 100000 polls lost console bytes on a
 * loaded host. A missing UART reads 0xff, THRE set, and costs no wait.
 */
#define UART_WAIT 20000000

/* A 16550 at `base`, polled: no interrupts, 115200 8N1, FIFOs on. */
void uart_init(u16 base)
{
    outb(base + 1, 0x00);   /* no interrupts */
    outb(base + 3, 0x80);   /* DLAB */
    outb(base + 0, 0x01);   /* 115200 baud */
    outb(base + 1, 0x00);
    outb(base + 3, 0x03);   /* 8N1 */
    outb(base + 2, 0x07);   /* FIFOs on and cleared */
    outb(base + 4, 0x03);   /* DTR, RTS */
}

/* Whether a UART answers at `base`: a missing one keeps nothing in its scratch register. */
bool uart_present(u16 base)
{
    outb(base + UART_SCR, 0xa5);
    return inb(base + UART_SCR) == 0xa5;
}

void console_init(void)
{
    uart_init(COM1);
}

/* Wait until the line status has `bits`; false if the UART never gets there. */
static bool uart_wait(u16 base, u8 bits)
{
    for (int i = 0; i < UART_WAIT; i++) {
        if ((inb(base + UART_LSR) & bits) == bits)
            return true;
        cpu_relax();
    }
    return false;
}

/* n bytes out of the UART at `base`, each as soon as it can take it; the caller serializes. */
void uart_write(u16 base, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uart_wait(base, LSR_THRE);
        outb(base, s[i]);
    }
}

/* Before QEMU exits: every byte written has reached its host side, none left in the UART. */
void uart_flush(u16 base)
{
    uart_wait(base, LSR_THRE | LSR_TEMT);
}

/*
 * Every byte ever written to the console, for the debugger: in a replay (osvgdb replay)
 * it says how much of the recorded console the guest had printed at the point where it
 * stands, so the console can be shown as of that point and never printed twice.
 */
u64 console_bytes_written;

void console_flush(void)
{
    uart_flush(COM1);
}

/*
 * One writer at a time, so lines from several CPUs do not interleave. A panicking CPU
 * waits only so long: the holder may be a CPU that was just stopped.
 */
static struct spinlock console_lock = SPINLOCK_INIT;

void console_write(const char *s, size_t n)
{
    u64 flags = irq_save();
    bool locked = false;
    for (int i = 0; i < 10000000 && !locked; i++)
        locked = !__atomic_exchange_n(&console_lock.locked, 1, __ATOMIC_ACQUIRE);
    uart_write(COM1, s, n);
    console_bytes_written += n;
    if (locked)
        __atomic_store_n(&console_lock.locked, 0, __ATOMIC_RELEASE);
    irq_restore(flags);
}

int printk(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    console_write(buf, MIN((size_t)n, sizeof(buf) - 1));
    /* Cut short: say so, and end the line, so the next output does not run into it. */
    if (n >= (int)sizeof(buf) && fmt[strlen(fmt) - 1] == '\n')
        console_write(" [...]\n", 7);
    return n;
}

void debugcon_printf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (int i = 0; i < n && i < (int)sizeof(buf) - 1; i++)
        outb(DEBUGCON, buf[i]);
}

/*
 * Why the app ends, when it is not its own exit: the console's `osv: ` line, and, for
 * process_exit to report on debugcon, the first such reason. osvgdb shows it on its
 * stderr, where a shell would say "Segmentation fault".
 */
static char exit_reason_text[256];

void exit_reason(const char *fmt, ...)
{
    char buf[sizeof(exit_reason_text)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    printk("osv: %s\n", buf);
    if (!exit_reason_text[0])
        memcpy(exit_reason_text, buf, sizeof(buf));
}

void debugcon_exit_reason(void)
{
    if (exit_reason_text[0])
        debugcon_printf("osv-reason: %s\n", exit_reason_text);
}
