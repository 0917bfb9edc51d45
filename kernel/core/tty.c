/*
 * The app's terminal: what its fds 0, 1 and 2 are connected to. Two ports of a
 * virtio-serial device (virtio.c) that osvgdb joins to its own streams (osvgdb/qemu.py):
 *   port 1 (PORT_TERMINAL): input for fd 0, and the output of fd 1 (and the echo of
 *          typed keys);
 *   port 2 (PORT_STDERR): the output of fd 2.
 * So the app's stdout and stderr reach osvgdb apart, byte for byte, and the kernel's
 * own messages (console.c, the serial port) reach neither. Without the device (a QEMU
 * started some other way) the app writes to the kernel's console and reads nothing,
 * unless fds 1 and 2 have UARTs of their own, COM2 and COM3: what osvgdb gives a run it
 * records (osvgdb/record.py), because QEMU 7.2 cannot replay virtio-serial from a
 * snapshot (loading one arms a timer of the device's that the recording never had, and
 * the replay waits for ever). They are polled, output only, and fd 0 reads nothing.
 *
 * They are QEMU's virtserialports, not its virtconsole (port 0): a virtconsole drops
 * what its chardev cannot take at once, a serial port waits. That takes the device's
 * MULTIPORT protocol (virtio 1.0, 5.3.6.2): the driver says DEVICE_READY on the control
 * queue, the device announces each port (PORT_ADD), and the driver answers PORT_READY
 * and PORT_OPEN, after which the port carries data both ways.
 *
 * Output: a write copies the bytes into the port's transmit buffers and notifies QEMU,
 * which writes them to its chardev at once or, when the host's side is full, keeps
 * the buffer until it can: a writer without a free buffer sleeps until QEMU gives one
 * back (its interrupt), which is a pipe's flow control. process_exit waits until QEMU
 * has taken every buffer (tty_flush), so an app's last output is never lost.
 *
 * What fds 0-2 look like (fstat, TCGETS) follows the host's: the kernel options
 * --stdin=, --stdout= and --stderr= say `tty` for a terminal and `pipe` for a pipe or a
 * file (fd 0: also `none`, nothing behind it). A program that tells a terminal from a
 * pipe (stdio's buffering, ls's columns, a shell's prompt) then does here what it does
 * there.
 *
 * ---- Input ----
 *
 *   none  (the default: osvgdb debug and triage): every read of fd 0 returns 0 at once.
 *   pipe  a host pipe or file. A console has no end of file, so osvgdb and this kernel
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
 *         after which reading goes on; ECHO (ECHOE, ECHOCTL) to fd 1's stream. Without
 *         ICANON (busybox's line editing) reads return the bytes as they come. ^C and ^Z
 *         stay with the host's terminal (osvgdb keeps ISIG there: no signals here yet).
 *
 * Bytes arrive in the receive queue's buffers; the virtio interrupt (to the boot CPU)
 * moves them into input.ring through the line discipline, and readers sleep on `input`
 * until a read can be answered. When the ring is full a buffer's rest waits, and the
 * buffer goes back to QEMU only once it is empty: QEMU then stops reading its chardev,
 * which is flow control all the way back to osvgdb's writes. Readers move bytes in
 * themselves too, so room made by a read is used at once.
 */
#include "tty.h"
#include "arch.h"
#include "console.h"
#include "inject.h"
#include "lib.h"
#include "mm.h"
#include "pipe.h"
#include "signal.h"
#include "spinlock.h"
#include "thread.h"
#include "virtio.h"
#include "export.h"
#include "vfs.h"
#include "tmpfs.h"
#include <asm/stat.h>
#include <asm-generic/errno.h>
#include <asm-generic/ioctls.h>
#include <asm-generic/poll.h>
#include <asm-generic/termbits.h>

/* The ports osvgdb's qemu.py gives the device (virtserialport nr=N). */
#define PORT_TERMINAL 1
#define PORT_STDERR 2
#define PORT_EXPORT 3                   /* --export's archives (export.c) */
/* With MULTIPORT, port N's queues are 2N+2 (receive) and 2N+3 (transmit); 2 and 3 control. */
#define RECEIVEQ(port) (2 * (port) + 2)
#define TRANSMITQ(port) (2 * (port) + 3)
#define CONTROL_RECEIVEQ 2
#define CONTROL_TRANSMITQ 3
#define VIRTIO_CONSOLE_F_MULTIPORT (1 << 1)

/* struct virtio_console_control and its events */
struct control_message {
    u32 id;                         /* the port */
    u16 event;
    u16 value;
};
#define DEVICE_READY 0
#define PORT_ADD 1
#define PORT_READY 3
#define PORT_OPEN 6
#define HANDSHAKE_NS 5000000000UL   /* QEMU answers as it is notified; this is a bound only */

/* One port's output: its transmit queue, and which of its buffers are ours to fill. */
struct tty_out {
    bool present;
    struct virtq tx;
    struct spinlock lock;
    u16 free[VIRTQ_SIZE];           /* buffers QEMU gave back */
    unsigned nfree;
};

static struct virtio_dev serial;
static struct virtq control_rx, control_tx;
static struct tty_out tty_stdout = { .lock = SPINLOCK_INIT }, tty_stderr = { .lock = SPINLOCK_INIT };
static struct tty_out tty_export = { .lock = SPINLOCK_INIT };
static struct virtq_memory control_rx_queue, control_tx_queue;
static struct virtq_memory stdout_queue, stderr_queue, stdin_queue, export_queue;

/* fd 0's --stdin=, fd 1's --stdout=, fd 2's --stderr=: by default, a terminal with nothing typed */
enum tty_mode tty_modes[3] = { TTY_MODE_NONE, TTY_MODE_TTY, TTY_MODE_TTY };

/*
 * Bytes handed to QEMU on fd 1's port and fd 2's so far, for the debugger (as
 * console_bytes_written for the console): a replay (osvgdb replay) reads them to know how
 * much of the recorded stdout and stderr stands before the point where it is.
 */
u64 tty_bytes_written[3];

/* Without the virtio device: COM2 and COM3 for fds 1 and 2 if both answer, else none (0). */
#define COM2 0x2f8
#define COM3 0x3e8
static u16 uart_out[3];

static void count_written(struct tty_out *o, u64 n)
{
    if (o == &tty_stdout)
        tty_bytes_written[1] += n;
    else if (o == &tty_stderr)
        tty_bytes_written[2] += n;
}

/* ---- Output ---- */

/* Takes back the buffers QEMU is done with. o->lock held. */
static void reclaim(struct tty_out *o)
{
    u16 id;
    u32 len;
    while (virtq_take_used(&o->tx, &id, &len))
        o->free[o->nfree++] = id;
}

/*
 * Writes all n bytes of data to one console, waiting for buffers as long as it takes;
 * a signal while it waits ends the write early: the bytes sent, or -ERESTARTSYS.
 */
static long out_write(struct tty_out *o, const u8 *data, u64 n)
{
    u64 done = 0;
    u64 flags = irq_save();         /* o->lock is the echo's too, which the interrupt writes */
    spin_lock(&o->lock);
    while (done < n) {
        reclaim(o);
        if (!o->nfree) {
            /* Interrupts on before the last look, so a buffer given back after it wakes us. */
            virtq_interrupts(&o->tx, true);
            reclaim(o);
            long woken = o->nfree ? 0 : sched_wait(o, &o->lock, 0);
            virtq_interrupts(&o->tx, false);
            if (woken == -ERESTARTSYS)
                break;
            continue;
        }
        while (o->nfree && done < n) {
            u16 id = o->free[--o->nfree];
            u64 chunk = MIN(n - done, VIRTQ_BUF);
            memcpy(o->tx.mem->buf[id], data + done, chunk);
            virtq_post(&o->tx, id, chunk, false);
            count_written(o, chunk);
            done += chunk;
        }
        virtq_notify(&o->tx);
    }
    spin_unlock(&o->lock);
    irq_restore(flags);
    return done ? (long)done : -ERESTARTSYS;
}

long tty_write(int stream, const void *buf, u64 n)
{
    struct tty_out *o = stream == 2 && tty_stderr.present ? &tty_stderr : &tty_stdout;
    if (n == 0)
        return 0;
    if (!o->present && uart_out[stream]) {
        u64 flags = irq_save();
        spin_lock(&o->lock);
        uart_write(uart_out[stream], buf, n);
        tty_bytes_written[stream] += n;
        spin_unlock(&o->lock);
        irq_restore(flags);
        return n;
    }
    if (!o->present) {
        console_write(buf, n);
        return n;
    }
    return out_write(o, buf, n);
}

/*
 * The export port's bytes, at the end: interrupts off and the other CPUs stopped, so it
 * spins for buffers instead of sleeping.
 */
void tty_export_write(const void *data, u64 n)
{
    struct tty_out *o = &tty_export;
    const u8 *p = data;
    while (o->present && n) {
        reclaim(o);
        if (!o->nfree) {
            cpu_relax();
            continue;
        }
        u16 id = o->free[--o->nfree];
        u64 chunk = MIN(n, VIRTQ_BUF);
        memcpy(o->tx.mem->buf[id], p, chunk);
        virtq_post(&o->tx, id, chunk, false);
        virtq_notify(&o->tx);
        p += chunk;
        n -= chunk;
    }
}

/* Waits until QEMU has taken every buffer of every port. Interrupts off, at the end. */
void tty_flush(void)
{
    for (int fd = 1; fd <= 2; fd++)
        if (uart_out[fd])
            uart_flush(uart_out[fd]);
    struct tty_out *outs[] = { &tty_stdout, &tty_stderr, &tty_export };
    for (unsigned i = 0; i < ARRAY_SIZE(outs); i++) {
        struct tty_out *o = outs[i];
        while (o->present) {
            reclaim(o);
            if (o->nfree == VIRTQ_SIZE)
                break;
            cpu_relax();
        }
    }
}

/* ---- termios ---- */

/* glibc's TCGETS wants the kernel's termios, NCCS 19, 36 bytes: the seed's stack-corruption bug. */
_Static_assert(sizeof(struct termios) == 36, "the kernel's struct termios, not libc's");
static struct termios tty_termios = {
    .c_iflag = ICRNL | IXON,
    .c_oflag = OPOST | ONLCR,
    .c_cflag = B38400 | CS8 | CREAD | HUPCL,
    .c_lflag = ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
    .c_cc = { [VINTR] = 3, [VQUIT] = 28, [VERASE] = 127, [VKILL] = 21, [VEOF] = 4, [VMIN] = 1,
              [VSTART] = 17, [VSTOP] = 19, [VSUSP] = 26, [VREPRINT] = 18, [VWERASE] = 23,
              [VLNEXT] = 22 },
};

/* ---- Input ---- */

#define INPUT_RING 65536
#define INPUT_EOF 0x100         /* a ring entry: end of file (pipe) or VEOF (tty) */
#define CHAR_EOF 0x04
#define CHAR_LNEXT 0x16

static struct {
    struct spinlock lock;       /* taken by the interrupt too: always with interrupts off */
    bool present;               /* the receive queue is set up */
    struct virtq rx;
    u16 pending_id;             /* a received buffer not yet wholly in the ring... */
    u32 pending_len, pending_pos;
    bool pending;               /* ...if any */
    struct termios termios;     /* the app's (tty mode only) */
    bool quote_next;            /* the last byte was ^V */
    bool ended;                 /* pipe mode: the end was read */
    u64 head, tail;             /* entries ever received and read */
    u64 line_start;             /* tty, canonical: where the line still being edited begins */
    u16 ring[INPUT_RING];
} input = { .lock = SPINLOCK_INIT };

static bool canonical(void)
{
    return tty_modes[0] == TTY_MODE_TTY && (input.termios.c_lflag & ICANON);
}

static void put(u16 entry)
{
    input.ring[input.head++ % INPUT_RING] = entry;
}

/* A pipe's byte: ^V quotes, ^D ends. input.lock held. */
static void receive_pipe(u8 c)
{
    if (input.quote_next) {
        input.quote_next = false;
        put(c);
    } else if (c == CHAR_LNEXT)
        input.quote_next = true;
    else
        put(c == CHAR_EOF ? INPUT_EOF : c);
}

/* ECHOCTL's ^X for a control byte (not tab or newline). */
static bool echoed_as_caret(u8 c)
{
    bool control = (c < 32 || c == 127) && c != '\t' && c != '\n';
    return control && (input.termios.c_lflag & ECHOCTL);
}

/*
 * The echo goes out with fd 1's output. It is written under input.lock with interrupts
 * off (by the interrupt, too), so it must not wait for QEMU: a key that finds no free
 * buffer is not echoed. Lock order: input.lock, then tty_stdout.lock.
 */
static void echo_bytes(const char *s, u64 n)
{
    struct tty_out *o = &tty_stdout;
    if (!o->present) {
        console_write(s, n);
        return;
    }
    raw_spin_lock(&o->lock);
    reclaim(o);
    if (o->nfree) {
        u16 id = o->free[--o->nfree];
        memcpy(o->tx.mem->buf[id], s, n);
        virtq_post(&o->tx, id, n, false);
        count_written(o, n);
        virtq_notify(&o->tx);
    }
    raw_spin_unlock(&o->lock);
}

static void echo(u8 c)
{
    if (!(input.termios.c_lflag & ECHO))
        return;
    if (echoed_as_caret(c)) {
        char caret[2] = { '^', c == 127 ? '?' : c + 64 };
        echo_bytes(caret, 2);
    } else
        echo_bytes((const char *)&c, 1);
}

/* Takes back the line's last byte, and its echo, if the line has one. input.lock held. */
static bool erase_one(void)
{
    if (input.head == input.line_start)
        return false;
    u8 c = input.ring[--input.head % INPUT_RING];
    if ((input.termios.c_lflag & (ECHO | ECHOE)) == (ECHO | ECHOE))
        for (int i = echoed_as_caret(c) ? 2 : 1; i > 0; i--)
            echo_bytes("\b \b", 3);
    return true;
}

static bool last_is_space(void)
{
    u8 c = input.ring[(input.head - 1) % INPUT_RING];
    return c == ' ' || c == '\t';
}

/* Whether c is the control character cc[index] (0 there: disabled, as _POSIX_VDISABLE). */
static bool is_cc(u8 c, int index)
{
    return c && c == input.termios.c_cc[index];
}

/* A keystroke from the host's terminal, under the app's termios. input.lock held. */
static void receive_tty(u8 c)
{
    const struct termios *t = &input.termios;
    bool icanon = t->c_lflag & ICANON, iexten = t->c_lflag & IEXTEN;
    if (input.quote_next) {
        input.quote_next = false;
        put(c);
        echo(c);
        return;
    }
    if (c == '\r' && (t->c_iflag & ICRNL))
        c = '\n';
    if (!icanon) {
        put(c);
        echo(c);
        input.line_start = input.head;
        return;
    }
    if (is_cc(c, VERASE) || c == '\b') {
        erase_one();
    } else if (is_cc(c, VKILL)) {
        while (erase_one())
            ;
    } else if (is_cc(c, VWERASE) && iexten) {
        while (input.head != input.line_start && last_is_space())
            erase_one();
        while (input.head != input.line_start && !last_is_space())
            erase_one();
    } else if (is_cc(c, VLNEXT) && iexten) {
        input.quote_next = true;
    } else if (is_cc(c, VEOF)) {
        put(INPUT_EOF);
        input.line_start = input.head;
    } else {
        put(c);
        echo(c);
        if (c == '\n')
            input.line_start = input.head;
    }
}

/*
 * Moves received bytes into the ring while there is room, and gives each buffer it
 * emptied back to QEMU. input.lock held.
 */
static void drain_received(void)
{
    bool given_back = false;
    while (input.present && input.head - input.tail < INPUT_RING) {
        if (!input.pending) {
            if (!virtq_take_used(&input.rx, &input.pending_id, &input.pending_len))
                break;
            input.pending = true;
            input.pending_pos = 0;
        }
        const u8 *data = input.rx.mem->buf[input.pending_id];
        while (input.pending_pos < input.pending_len && input.head - input.tail < INPUT_RING) {
            u8 c = data[input.pending_pos++];
            if (tty_modes[0] == TTY_MODE_TTY)
                receive_tty(c);
            else
                receive_pipe(c);
        }
        if (input.pending_pos == input.pending_len) {
            virtq_post(&input.rx, input.pending_id, VIRTQ_BUF, true);
            input.pending = false;
            given_back = true;
        }
    }
    if (given_back)
        virtq_notify(&input.rx);
}

/* One control message to the device, sent and taken back before it returns. */
static void control_send(u32 port, u16 event, u16 value)
{
    struct control_message m = { port, event, value };
    memcpy(control_tx.mem->buf[0], &m, sizeof(m));
    virtq_post(&control_tx, 0, sizeof(m), false);
    virtq_notify(&control_tx);
    u16 id;
    u32 len;
    for (u64 deadline = tsc_ns() + HANDSHAKE_NS; !virtq_take_used(&control_tx, &id, &len);)
        if (tsc_ns() > deadline)
            return;
}

/*
 * The MULTIPORT handshake, at boot: DEVICE_READY, then PORT_READY and PORT_OPEN for
 * each of our ports as the device adds it. True once those wanted are open: the
 * terminal's two, and the export port when there are --exports.
 */
static bool open_ports(bool export)
{
    bool opened[4] = { false, false, false, !export };
    control_send(0, DEVICE_READY, 1);
    u64 deadline = tsc_ns() + HANDSHAKE_NS;
    while (!(opened[PORT_TERMINAL] && opened[PORT_STDERR] && opened[PORT_EXPORT]) &&
           tsc_ns() < deadline) {
        u16 id;
        u32 len;
        if (!virtq_take_used(&control_rx, &id, &len)) {
            cpu_relax();
            continue;
        }
        struct control_message m;
        memcpy(&m, control_rx.mem->buf[id], sizeof(m));
        virtq_post(&control_rx, id, VIRTQ_BUF, true);
        virtq_notify(&control_rx);
        if (len < sizeof(m) || m.event != PORT_ADD || m.id < PORT_TERMINAL || m.id > PORT_EXPORT ||
            (m.id == PORT_EXPORT && !export))
            continue;               /* names, the host's side opening: nothing we need */
        control_send(m.id, PORT_READY, 1);
        control_send(m.id, PORT_OPEN, 1);
        opened[m.id] = true;
    }
    return opened[PORT_TERMINAL] && opened[PORT_STDERR] && opened[PORT_EXPORT];
}

static void out_init(struct tty_out *o, u32 port, struct virtq_memory *mem)
{
    virtq_init(&o->tx, &serial, TRANSMITQ(port), mem);
    virtq_interrupts(&o->tx, false);
    for (u16 id = 0; id < VIRTQ_SIZE; id++)
        o->free[o->nfree++] = id;
}

/*
 * Finds the device, opens its ports and gives fd 0's receive queue its buffers, unless
 * nothing feeds fd 0. Interrupts off, before the app runs.
 */
void tty_init(void)
{
    input.termios = tty_termios;        /* the line discipline starts from these */
    if (!virtio_find(VIRTIO_ID_CONSOLE, 0, &serial) || !virtio_start(&serial, VIRTIO_CONSOLE_F_MULTIPORT)) {
        tty_modes[0] = TTY_MODE_NONE;   /* nothing can come in */
        if (uart_present(COM2) && uart_present(COM3)) {
            uart_init(COM2);
            uart_init(COM3);
            uart_out[1] = COM2;
            uart_out[2] = COM3;
        }
        return;
    }
    virtq_init(&control_rx, &serial, CONTROL_RECEIVEQ, &control_rx_queue);
    virtq_init(&control_tx, &serial, CONTROL_TRANSMITQ, &control_tx_queue);
    for (u16 id = 0; id < VIRTQ_SIZE; id++)
        virtq_post(&control_rx, id, VIRTQ_BUF, true);
    out_init(&tty_stdout, PORT_TERMINAL, &stdout_queue);
    out_init(&tty_stderr, PORT_STDERR, &stderr_queue);
    bool export = export_count() > 0;
    if (export)
        out_init(&tty_export, PORT_EXPORT, &export_queue);
    virtq_init(&input.rx, &serial, RECEIVEQ(PORT_TERMINAL), &stdin_queue);
    virtio_route_irq(&serial, VIRTIO_VECTOR);
    virtio_ready(&serial);
    virtq_notify(&control_rx);
    if (!open_ports(export)) {
        printk("osv: the terminal's virtio-serial ports did not open: the app writes here\n");
        tty_modes[0] = TTY_MODE_NONE;
        return;
    }
    tty_stdout.present = tty_stderr.present = true;
    tty_export.present = export;
    if (tty_modes[0] != TTY_MODE_NONE) {
        for (u16 id = 0; id < VIRTQ_SIZE; id++)
            virtq_post(&input.rx, id, VIRTQ_BUF, true);
        input.present = true;
        virtq_notify(&input.rx);
    }
}

/* The device's interrupt: input arrived, or output buffers came back. */
void tty_interrupt(void)
{
    if (!tty_stdout.present || !(virtio_ack_interrupt(&serial) & 1))
        return;
    sched_wakeup(&tty_stdout);
    sched_wakeup(&tty_stderr);
    raw_spin_lock(&input.lock);
    drain_received();
    raw_spin_unlock(&input.lock);
    sched_wakeup(&input);
    pipe_wake_pollers();
}

/* Whether a read would return now (bytes, or 0 for end of file). input.lock held. */
static bool input_readable(void)
{
    if (tty_modes[0] == TTY_MODE_NONE || input.ended)
        return true;
    if (!canonical())
        return input.head != input.tail;
    /* A whole line (ended by '\n' or VEOF), or a line as long as the ring: give it. */
    return input.line_start != input.tail || input.head - input.tail == INPUT_RING;
}

/*
 * fd 0's input readiness as poll's bits: POLLIN when a read would return at once,
 * with bytes or with end of file. The end of a host pipe is POLLIN too, as on a terminal
 * after ^D, not a pipe's POLLHUP: fds 0, 1 and 2 share one terminal, and a POLLHUP
 * (which poll reports whatever was asked) would tell a poll of stdout that it hung up.
 */
unsigned tty_input_poll(void)
{
    u64 flags = spin_lock_irqsave(&input.lock);
    drain_received();
    bool ready = input_readable();
    spin_unlock_irqrestore(&input.lock, flags);
    return ready ? POLLIN | POLLRDNORM : 0;
}

bool tty_input_on(void)
{
    return tty_modes[0] != TTY_MODE_NONE;
}

/*
 * A read of fd 0: waits until input_readable(), then copies data up to count bytes, in
 * canonical mode up to and with the line's '\n'. An end-of-file entry ends the copy and
 * is consumed: the read returns what came before it, 0 if nothing did; in pipe mode the
 * end stays in force for every later read.
 */
long tty_read(u8 *buf, u64 count, bool nonblock)
{
    if (count == 0 || tty_modes[0] == TTY_MODE_NONE)
        return 0;
    u64 flags = irq_save();
    spin_lock(&input.lock);
    drain_received();
    while (!input_readable()) {
        if (nonblock) {
            spin_unlock(&input.lock);
            irq_restore(flags);
            return -EAGAIN;
        }
        if (sched_wait(&input, &input.lock, 0) == -ERESTARTSYS) {
            spin_unlock(&input.lock);
            irq_restore(flags);
            return -ERESTARTSYS;    /* a signal: EINTR, or the read again (SA_RESTART) */
        }
        drain_received();
    }
    bool line = canonical();
    u64 n = 0;
    while (n < count && input.tail != input.head) {
        u16 entry = input.ring[input.tail++ % INPUT_RING];
        if (entry == INPUT_EOF) {
            input.ended = tty_modes[0] == TTY_MODE_PIPE;
            break;                  /* ends the line; alone, it is a read of 0 */
        }
        buf[n++] = entry;
        if (line && entry == '\n')
            break;
    }
    /* A line as long as the ring was given unfinished: the rest of it is a new one. */
    if (input.line_start < input.tail)
        input.line_start = input.tail;
    drain_received();               /* room again: take what waited */
    spin_unlock(&input.lock);
    irq_restore(flags);
    return n;
}

static void set_termios(const struct termios *t)
{
    u64 flags = spin_lock_irqsave(&input.lock);
    input.termios = *t;
    if (!(t->c_lflag & ICANON))
        input.line_start = input.head;  /* what was typed is there to read */
    spin_unlock_irqrestore(&input.lock, flags);
    sched_wakeup(&input);
    pipe_wake_pollers();
}

/*
 * --inject=tcgets60, the seed's bug: TCGETS answers with glibc's own struct termios
 * (NCCS 32 and the two speeds, 60 bytes), 24 bytes past the kernel's that the caller
 * made room for.
 */
static long tcgets_libc_size(u64 arg)
{
    struct {
        u32 c_iflag, c_oflag, c_cflag, c_lflag;
        u8 c_line;
        u8 c_cc[32];
        u32 c_ispeed, c_ospeed;
    } t = { tty_termios.c_iflag, tty_termios.c_oflag, tty_termios.c_cflag,
            tty_termios.c_lflag, tty_termios.c_line, { 0 }, B38400, B38400 };
    _Static_assert(sizeof(t) == 60, "glibc's struct termios");
    memcpy(t.c_cc, tty_termios.c_cc, sizeof(tty_termios.c_cc));
    if (!user_range_ok(arg, sizeof(t), true))
        return -EFAULT;
    memcpy((void *)arg, &t, sizeof(t));
    return 0;
}

/* The terminal's ioctls; the caller checked that the fd is a terminal, not a pipe. */
long tty_ioctl(u64 request, u64 arg)
{
    switch (request) {
    case TCGETS:
        if (injected & INJECT_TCGETS60)
            return tcgets_libc_size(arg);
        if (!user_range_ok(arg, sizeof(struct termios), true))
            return -EFAULT;
        memcpy((void *)arg, &tty_termios, sizeof(struct termios));
        return 0;
    case TCSETS:
    case TCSETSW:
    case TCSETSF:
        if (!user_range_ok(arg, sizeof(struct termios), false))
            return -EFAULT;
        memcpy(&tty_termios, (void *)arg, sizeof(struct termios));
        set_termios(&tty_termios);
        return 0;
    case TIOCGWINSZ: {
        struct { u16 rows, cols, xpixel, ypixel; } ws = { 24, 80, 0, 0 };
        if (!user_range_ok(arg, sizeof(ws), true))
            return -EFAULT;
        memcpy((void *)arg, &ws, sizeof(ws));
        return 0;
    }
    default:
        return -ENOTTY;
    }
}

/* ---- fds 0, 1 and 2 (and /dev/tty, /dev/console) as open files: tty_file_ops ---- */

static long file_read_input(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return tty_read((u8 *)buf, count, nonblock);
}

static long file_write_output(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return tty_write(f->tty.stream, (const void *)buf, count);
}

static unsigned file_poll_terminal(struct file *f)
{
    return tty_input_poll() | POLLOUT | POLLWRNORM;
}

static long file_ioctl_terminal(struct file *f, u64 request, u64 arg)
{
    return f->tty.host_pipe ? -ENOTTY : tty_ioctl(request, arg);
}

/*
 * A terminal is the character device /dev/console (5, 1), that very node (so ttyname
 * finds it: zsh, ls -l /proc/self/fd): glibc then asks TCGETS before its first write, as
 * it does on Linux for any character device outside the pty majors. A host pipe or file
 * is a FIFO, as `cmd | app > out` makes fds 0 and 1 on the host: fd 0's pipe, or the
 * output's (stdout's or stderr's) of its own.
 */
static void file_stat_terminal(struct file *f, struct stat *st)
{
    if (!f->tty.host_pipe) {
        spin_lock(&fs_lock);
        inode_stat(dev_console, st);
        spin_unlock(&fs_lock);
        st->st_mode = 0020620;              /* S_IFCHR | rw--w----, as a terminal's */
        st->st_blksize = 1024;
        return;
    }
    memset(st, 0, sizeof(*st));
    st->st_nlink = 1;
    st->st_mode = 0010600;                  /* S_IFIFO | rw------- */
    st->st_dev = 0xe;                       /* Linux's pipefs */
    st->st_ino = file_readable(f) ? 999 : 999 - f->tty.stream;
    st->st_blksize = 4096;
}

const struct file_ops tty_file_ops = {
    .kind = "tty", .read = file_read_input, .write = file_write_output,
    .poll = file_poll_terminal, .ioctl = file_ioctl_terminal, .stat = file_stat_terminal,
};
