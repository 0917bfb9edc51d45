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
#include "signal.h"
#include "spinlock.h"
#include "thread.h"
#include <asm-generic/errno.h>
#include <asm-generic/poll.h>
#include <asm-generic/termbits.h>

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

/*
 * Every byte ever written to the console, for the debugger: in a replay (osvgdb replay)
 * it says how much of the recorded console the guest had printed at the point where it
 * stands, so the console can be shown as of that point and never printed twice.
 */
u64 console_bytes_written;

static void serial_putc(char c)
{
    /* Bounded wait: a missing UART must not hang the kernel. */
    for (int i = 0; i < 100000 && !(inb(COM1 + UART_LSR) & 0x20); i++)
        cpu_relax();
    outb(COM1, c);
    console_bytes_written++;
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
 * ---- Console input ----
 *
 * The kernel option --stdin=MODE says what osvgdb (osvgdb/stdin.py) puts behind the line:
 *   none  nothing (the default: osvgdb debug and triage): every read returns 0 at once.
 *   pipe  a host pipe or file. A serial line has no end of file, so osvgdb and this kernel
 *         agree on two bytes, the ones a Linux terminal gives the same meaning to: 0x04
 *         (^D) is the end of the input, and 0x16 (^V) makes the next byte plain data
 *         (osvgdb quotes every 0x04 and 0x16 of the host's data so), which keeps piped
 *         input binary-safe. Reads return the bytes as they come, as from a pipe, and 0
 *         for good after the end. The app's termios do not apply.
 *   tty   a host terminal that osvgdb put in non-canonical mode without echo: the bytes
 *         are keystrokes and this is their line discipline, Linux's n_tty in small, under
 *         the app's termios (TCSETS): ICRNL; with ICANON, lines edited with VERASE (and
 *         ^H), VKILL, VWERASE and VLNEXT, and VEOF (^D), which ends a line without being
 *         part of it, so that alone at a line's start it is a read of 0, one end of file
 *         after which reading goes on; ECHO (ECHOE, ECHOCTL) to the console. Without
 *         ICANON (busybox's line editing) reads return the bytes as they come. ^C and ^Z
 *         stay with the host's terminal (osvgdb keeps ISIG there: no signals here yet).
 *
 * Bytes reach us by the UART's receive interrupt (ISA IRQ 4 through the I/O APIC, to the
 * boot CPU), which moves them from the UART into console_input.ring; readers sleep on
 * console_input until a read can be answered. When the ring is full the UART's byte is left alone:
 * QEMU then stops taking bytes from the host, which is flow control all the way back to
 * osvgdb's writes. Readers drain the UART themselves too, so a byte left there (whose
 * edge-triggered interrupt will not come again) is taken as soon as there is room.
 */
#define INPUT_RING 4096
#define INPUT_EOF 0x100         /* a ring entry: end of file (pipe) or VEOF (tty) */
#define CHAR_EOF 0x04
#define CHAR_LNEXT 0x16

static struct {
    struct spinlock lock;       /* taken by the interrupt too: always with interrupts off */
    enum console_input_mode mode;
    struct termios termios;     /* the app's (tty mode only) */
    bool quote_next;            /* the last byte was ^V */
    bool ended;                 /* pipe mode: the end was read */
    u64 head, tail;             /* entries ever received and read */
    u64 line_start;             /* tty, canonical: where the line still being edited begins */
    u16 ring[INPUT_RING];
} console_input = { .lock = SPINLOCK_INIT };

static bool canonical(void)
{
    return console_input.mode == CONSOLE_INPUT_TTY && (console_input.termios.c_lflag & ICANON);
}

static void put(u16 entry)
{
    console_input.ring[console_input.head++ % INPUT_RING] = entry;
}

/* A pipe's byte: ^V quotes, ^D ends. console_input.lock held. */
static void receive_pipe(u8 c)
{
    if (console_input.quote_next) {
        console_input.quote_next = false;
        put(c);
    } else if (c == CHAR_LNEXT)
        console_input.quote_next = true;
    else
        put(c == CHAR_EOF ? INPUT_EOF : c);
}

/* ECHOCTL's ^X for a control byte (not tab or newline). */
static bool echoed_as_caret(u8 c)
{
    bool control = (c < 32 || c == 127) && c != '\t' && c != '\n';
    return control && (console_input.termios.c_lflag & ECHOCTL);
}

static void echo(u8 c)
{
    if (!(console_input.termios.c_lflag & ECHO))
        return;
    if (echoed_as_caret(c)) {
        char caret[2] = { '^', c == 127 ? '?' : c + 64 };
        console_write(caret, 2);
    } else
        console_write((const char *)&c, 1);
}

/* Takes back the line's last byte, and its echo, if the line has one. console_input.lock held. */
static bool erase_one(void)
{
    if (console_input.head == console_input.line_start)
        return false;
    u8 c = console_input.ring[--console_input.head % INPUT_RING];
    if ((console_input.termios.c_lflag & (ECHO | ECHOE)) == (ECHO | ECHOE))
        for (int i = echoed_as_caret(c) ? 2 : 1; i > 0; i--)
            console_write("\b \b", 3);
    return true;
}

static bool last_is_space(void)
{
    u8 c = console_input.ring[(console_input.head - 1) % INPUT_RING];
    return c == ' ' || c == '\t';
}

/* Whether c is the control character cc[index] (0 there: disabled, as _POSIX_VDISABLE). */
static bool is_cc(u8 c, int index)
{
    return c && c == console_input.termios.c_cc[index];
}

/* A keystroke from the host's terminal, under the app's termios. console_input.lock held. */
static void receive_tty(u8 c)
{
    const struct termios *t = &console_input.termios;
    bool icanon = t->c_lflag & ICANON, iexten = t->c_lflag & IEXTEN;
    if (console_input.quote_next) {
        console_input.quote_next = false;
        put(c);
        echo(c);
        return;
    }
    if (c == '\r' && (t->c_iflag & ICRNL))
        c = '\n';
    if (!icanon) {
        put(c);
        echo(c);
        console_input.line_start = console_input.head;
        return;
    }
    if (is_cc(c, VERASE) || c == '\b') {
        erase_one();
    } else if (is_cc(c, VKILL)) {
        while (erase_one())
            ;
    } else if (is_cc(c, VWERASE) && iexten) {
        while (console_input.head != console_input.line_start && last_is_space())
            erase_one();
        while (console_input.head != console_input.line_start && !last_is_space())
            erase_one();
    } else if (is_cc(c, VLNEXT) && iexten) {
        console_input.quote_next = true;
    } else if (is_cc(c, VEOF)) {
        put(INPUT_EOF);
        console_input.line_start = console_input.head;
    } else {
        put(c);
        echo(c);
        if (c == '\n')
            console_input.line_start = console_input.head;
    }
}

/* Moves what the UART holds into the ring while there is room. console_input.lock held. */
static void drain_uart(void)
{
    while (console_input.head - console_input.tail < INPUT_RING && (inb(COM1 + UART_LSR) & 1)) {
        u8 c = inb(COM1 + UART_DATA);
        if (console_input.mode == CONSOLE_INPUT_TTY)
            receive_tty(c);
        else
            receive_pipe(c);
    }
}

void console_input_start(enum console_input_mode mode)
{
    console_input.mode = mode;
    if (mode == CONSOLE_INPUT_NONE)
        return;
    ioapic_route(COM1_IRQ, CONSOLE_VECTOR, lapic_id());
    outb(COM1 + UART_IER, 0x01);
}

void console_input_interrupt(void)
{
    raw_spin_lock(&console_input.lock);
    drain_uart();
    raw_spin_unlock(&console_input.lock);
    sched_wakeup(&console_input);
    pipe_wake_pollers();
}

void console_set_termios(const struct termios *t)
{
    u64 flags = spin_lock_irqsave(&console_input.lock);
    console_input.termios = *t;
    if (!(t->c_lflag & ICANON))
        console_input.line_start = console_input.head;  /* what was typed is there to read */
    spin_unlock_irqrestore(&console_input.lock, flags);
    sched_wakeup(&console_input);
    pipe_wake_pollers();
}

/* Whether a read would return now (bytes, or 0 for end of file). console_input.lock held. */
static bool input_readable(void)
{
    if (console_input.mode == CONSOLE_INPUT_NONE || console_input.ended)
        return true;
    if (!canonical())
        return console_input.head != console_input.tail;
    /* A whole line (ended by '\n' or VEOF), or a line as long as the ring: give it. */
    return console_input.line_start != console_input.tail ||
           console_input.head - console_input.tail == INPUT_RING;
}

/*
 * The console's input readiness as poll's bits: POLLIN when a read would return at once,
 * with bytes or with end of file. The end of a host pipe is POLLIN too, as on a terminal
 * after ^D, not a pipe's POLLHUP: fds 0, 1 and 2 are one console, and a POLLHUP (which
 * poll reports whatever was asked) would tell a poll of stdout that it hung up.
 */
unsigned console_input_poll(void)
{
    u64 flags = spin_lock_irqsave(&console_input.lock);
    drain_uart();
    bool ready = input_readable();
    spin_unlock_irqrestore(&console_input.lock, flags);
    return ready ? POLLIN | POLLRDNORM : 0;
}

bool console_input_on(void)
{
    return console_input.mode != CONSOLE_INPUT_NONE;
}

/*
 * A read of fd 0: waits until input_readable(), then copies data up to count bytes, in
 * canonical mode up to and with the line's '\n'. An end-of-file entry ends the copy and
 * is consumed: the read returns what came before it, 0 if nothing did; in pipe mode the
 * end stays in force for every later read.
 */
long console_read(u8 *buf, u64 count, bool nonblock)
{
    if (count == 0 || console_input.mode == CONSOLE_INPUT_NONE)
        return 0;
    u64 flags = irq_save();
    spin_lock(&console_input.lock);
    drain_uart();
    while (!input_readable()) {
        if (nonblock) {
            spin_unlock(&console_input.lock);
            irq_restore(flags);
            return -EAGAIN;
        }
        if (sched_wait(&console_input, &console_input.lock, 0) == -ERESTARTSYS) {
            spin_unlock(&console_input.lock);
            irq_restore(flags);
            return -ERESTARTSYS;    /* a signal: EINTR, or the read again (SA_RESTART) */
        }
        drain_uart();
    }
    bool line = canonical();
    u64 n = 0;
    while (n < count && console_input.tail != console_input.head) {
        u16 entry = console_input.ring[console_input.tail++ % INPUT_RING];
        if (entry == INPUT_EOF) {
            console_input.ended = console_input.mode == CONSOLE_INPUT_PIPE;
            break;                  /* ends the line; alone, it is a read of 0 */
        }
        buf[n++] = entry;
        if (line && entry == '\n')
            break;
    }
    /* A line as long as the ring was given unfinished: the rest of it is a new one. */
    if (console_input.line_start < console_input.tail)
        console_input.line_start = console_input.tail;
    drain_uart();                   /* room again: take what the UART kept */
    spin_unlock(&console_input.lock);
    irq_restore(flags);
    return n;
}
