/*
 * The console is COM1. Output is polled: the app's stdout and stderr and every kernel
 * message go there. A second, one-way channel, QEMU's debugcon at port 0xe9, carries
 * lines meant for the host tools only (the exit status), so they never mix with the
 * app's output.
 *
 * Input (the app's fd 0) comes from the host's stdin, which osvgdb forwards into the
 * serial line; see "Console input" below for how EOF crosses a line that has none.
 */
#include "console.h"
#include "arch.h"
#include "lib.h"
#include "pipe.h"
#include "spinlock.h"
#include "thread.h"
#include <asm-generic/errno.h>
#include <asm-generic/poll.h>

#define COM1 0x3f8
#define UART_DATA 0             /* receive buffer / transmit holding */
#define UART_IER 1              /* interrupt enable: bit 0, received data available */
#define UART_LSR 5              /* line status: bit 0, data ready; bit 5, transmitter empty */
#define DEBUGCON 0xe9
#define COM1_IRQ 4

/*
 * The UART's FIFOs stay off. QEMU gives the UART input whenever it has room, from boot
 * on, and turning the FIFO on clears it: a byte that came in between would be lost.
 * Without the FIFO the UART holds one received byte until we read it.
 */
void console_init(void)
{
    outb(COM1 + 1, 0x00);   /* no interrupts until console input starts */
    outb(COM1 + 3, 0x80);   /* DLAB */
    outb(COM1 + 0, 0x01);   /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* 8N1 */
    outb(COM1 + 2, 0x00);   /* FIFOs off (see above) */
    outb(COM1 + 4, 0x0b);   /* DTR, RTS, OUT2 (which gates the IRQ line on a PC) */
}

static void serial_putc(char c)
{
    /* Bounded wait: a missing UART must not hang the kernel. */
    for (int i = 0; i < 100000 && !(inb(COM1 + UART_LSR) & 0x20); i++)
        cpu_relax();
    outb(COM1, c);
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
    for (size_t i = 0; i < n; i++)
        serial_putc(s[i]);
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
 * ---- Console input ----
 *
 * A serial line has no end of file, so osvgdb (osvgdb/stdin.py) and this kernel agree on
 * two bytes, the ones a Linux terminal gives the same meaning to:
 *   0x04 (^D, VEOF)   ends the input: in canonical mode it ends the current line without
 *                     being part of it, and a read that finds it at a line's start returns 0;
 *   0x16 (^V, VLNEXT) makes the next byte plain data (osvgdb sends 0x04 and 0x16 from the
 *                     host's data this way), so piped input is binary-safe.
 * The kernel option --stdin=MODE says what stands behind the line:
 *   none  nothing (the default: osvgdb debug and triage): every read returns 0 at once;
 *   pipe  a host pipe or file: reads return the bytes as they come, as from a pipe, and
 *         after the EOF marker every read returns 0;
 *   tty   a host terminal (osvgdb leaves it cooked: the host's tty edits and echoes lines):
 *         reads follow the app's ICANON (canonical: a line at a time), and each ^D is one
 *         end of file, after which reading goes on, as on a Linux terminal.
 *
 * Bytes reach us by the UART's receive interrupt (ISA IRQ 4 through the I/O APIC, to the
 * boot CPU), which moves them from the UART into input.ring; readers sleep on `input`
 * until a read can be answered. When the ring is full the UART's byte is left alone:
 * QEMU then stops taking bytes from the host, which is flow control all the way back to
 * osvgdb's writes. Readers drain the UART themselves too, so a byte left there (whose
 * edge-triggered interrupt will not come again) is taken as soon as there is room.
 */
#define INPUT_RING 4096
#define INPUT_EOF 0x100         /* a ring entry: the end-of-file marker */
#define CHAR_EOF 0x04
#define CHAR_LNEXT 0x16

static struct {
    struct spinlock lock;       /* taken by the interrupt too: always with interrupts off */
    enum console_input_mode mode;
    bool canonical;             /* the app's ICANON (tty mode only) */
    bool quote_next;            /* the last byte was ^V */
    bool ended;                 /* pipe mode: the EOF marker was read */
    u64 head, tail;             /* entries ever received and read */
    u16 ring[INPUT_RING];
} input = { .lock = SPINLOCK_INIT, .canonical = true };

/* One byte from the line into the ring, which has room, decoding ^V and ^D. input.lock held. */
static void receive(u8 c)
{
    u16 entry = c;
    if (input.quote_next)
        input.quote_next = false;
    else if (c == CHAR_LNEXT) {
        input.quote_next = true;
        return;
    } else if (c == CHAR_EOF)
        entry = INPUT_EOF;
    input.ring[input.head++ % INPUT_RING] = entry;
}

/* Moves what the UART holds into the ring while there is room. input.lock held. */
static void drain_uart(void)
{
    while (input.head - input.tail < INPUT_RING && (inb(COM1 + UART_LSR) & 1))
        receive(inb(COM1 + UART_DATA));
}

void console_input_start(enum console_input_mode mode)
{
    input.mode = mode;
    if (mode == CONSOLE_INPUT_NONE)
        return;
    ioapic_route(COM1_IRQ, CONSOLE_VECTOR, lapic_id());
    outb(COM1 + UART_IER, 0x01);
}

void console_input_interrupt(void)
{
    raw_spin_lock(&input.lock);
    drain_uart();
    raw_spin_unlock(&input.lock);
    sched_wakeup(&input);
    pipe_wake_pollers();
}

void console_set_canonical(bool canonical)
{
    u64 flags = spin_lock_irqsave(&input.lock);
    input.canonical = canonical;
    spin_unlock_irqrestore(&input.lock, flags);
    sched_wakeup(&input);           /* a line no longer needs finishing */
}

/* Whether a read would return now (bytes, or 0 for end of file). input.lock held. */
static bool input_readable(void)
{
    if (input.mode == CONSOLE_INPUT_NONE || input.ended)
        return true;
    if (input.mode == CONSOLE_INPUT_PIPE || !input.canonical)
        return input.head != input.tail;
    for (u64 i = input.tail; i != input.head; i++) {
        u16 entry = input.ring[i % INPUT_RING];
        if (entry == '\n' || entry == INPUT_EOF)
            return true;                /* a whole line, or one ended by ^D */
    }
    return input.head - input.tail == INPUT_RING;   /* a line longer than the ring: give it */
}

/*
 * The console's input readiness as poll's bits: POLLIN when a read would return at once,
 * with bytes or with end of file. The end of a host pipe is POLLIN too, as on a terminal
 * after ^D, not a pipe's POLLHUP: fds 0, 1 and 2 are one console, and a POLLHUP (which
 * poll reports whatever was asked) would tell a poll of stdout that it hung up.
 */
unsigned console_input_poll(void)
{
    u64 flags = spin_lock_irqsave(&input.lock);
    drain_uart();
    bool ready = input_readable();
    spin_unlock_irqrestore(&input.lock, flags);
    return ready ? POLLIN | POLLRDNORM : 0;
}

bool console_input_on(void)
{
    return input.mode != CONSOLE_INPUT_NONE;
}

/*
 * A read of fd 0: waits until input_readable(), then copies data up to count bytes, in
 * canonical mode up to and with the line's '\n'. An EOF marker ends the copy and is
 * consumed: the read returns what came before it, 0 if nothing did; in pipe mode it
 * stays in force for every later read. A raw (non-canonical) terminal gets ^D itself.
 */
long console_read(u8 *buf, u64 count, bool nonblock)
{
    if (count == 0 || input.mode == CONSOLE_INPUT_NONE)
        return 0;
    u64 flags = irq_save();
    spin_lock(&input.lock);
    drain_uart();
    while (!input_readable()) {
        if (nonblock) {
            spin_unlock(&input.lock);
            irq_restore(flags);
            return -EAGAIN;
        }
        sched_wait(&input, &input.lock, 0);
        drain_uart();
    }
    bool line = input.mode == CONSOLE_INPUT_TTY && input.canonical;
    u64 n = 0;
    while (n < count && input.tail != input.head) {
        u16 entry = input.ring[input.tail % INPUT_RING];
        input.tail++;
        if (entry == INPUT_EOF && !line && input.mode == CONSOLE_INPUT_TTY)
            entry = CHAR_EOF;       /* a raw terminal reads ^D as a byte, as on Linux */
        if (entry == INPUT_EOF) {
            input.ended = input.mode == CONSOLE_INPUT_PIPE;
            break;                  /* ends the line; alone, it is a read of 0 */
        }
        buf[n++] = entry;
        if (line && entry == '\n')
            break;
    }
    drain_uart();                   /* room again: take what the UART kept */
    spin_unlock(&input.lock);
    irq_restore(flags);
    return n;
}
