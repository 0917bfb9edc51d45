#ifndef SYSCALL_HISTORY_H
#define SYSCALL_HISTORY_H
/*
 * The always-on syscall history: one ring of fixed-size records per CPU. A record is
 * entered when the syscall starts (flags IN_FLIGHT) and completed when it returns, so
 * the call a thread is stuck in is visible. The debugger finds everything from the
 * symbols syscall_history and syscall_seq, and the layouts from DWARF.
 */
#include "arch.h"
#include "types.h"

#define SYSCALL_HISTORY_ORDER 10
#define SYSCALL_HISTORY_SIZE (1u << SYSCALL_HISTORY_ORDER)     /* records per CPU */

/*
 * What a record keeps of the memory its pointer arguments point at, so a debugger
 * shows the bytes as the call saw them, not as memory holds them when it looks: input
 * arguments (write's buffer, open's path, writev's iovecs and their buffers) copied at
 * entry, output arguments (read's buffer, getrandom's) at return. Up to
 * SYSCALL_CAPTURE_MAX bytes of each, SYSCALL_CAPTURE_BYTES in all, in at most
 * SYSCALL_CAPTURE_REGIONS regions; which arguments, from capture_rules[] in
 * syscall_history.c. Only pages already present are copied (no faults here).
 */
#define SYSCALL_CAPTURE_REGIONS 6
#define SYSCALL_CAPTURE_BYTES 192
#define SYSCALL_CAPTURE_MAX 64

enum syscall_record_flags {
    SYSCALL_RECORD_WRITING = 1,     /* being (re)written: the other fields may be torn */
    SYSCALL_RECORD_IN_FLIGHT = 2,   /* entered, not yet returned: ret and tsc_exit not valid */
    SYSCALL_RECORD_DONE = 4,        /* returned */
};

struct syscall_record {
    u64 seq;                        /* global sequence number, from 1; 0: slot never used */
    u64 tsc_entry;
    u64 tsc_exit;
    u64 args[6];
    long ret;
    u64 rip;                        /* the app's address after the syscall instruction */
    u64 fs_base;                    /* FS base when the syscall instruction executed */
    long kernel_tcb_counter;        /* the counter at entry, before the entry's increment */
    u32 nr;
    u32 cpu;
    u32 tid;
    u32 flags;                      /* enum syscall_record_flags */
    u32 exit_cpu;                   /* where it returned (a thread may move while it sleeps) */
    /* Captured argument memory: region i is capture_len[i] bytes that were at
       capture_addr[i], stored in capture_data after regions 0..i-1; len 0: unused */
    u64 capture_addr[SYSCALL_CAPTURE_REGIONS];
    u16 capture_len[SYSCALL_CAPTURE_REGIONS];
    u8 capture_data[SYSCALL_CAPTURE_BYTES];
};

/* How capture_rules[] says to capture one pointer argument. */
enum syscall_capture_kind {
    CAPTURE_NONE,
    CAPTURE_STRING,                 /* at entry: a NUL-terminated string */
    CAPTURE_IN,                     /* at entry: args[size_arg] bytes */
    CAPTURE_OUT,                    /* at return: the result's bytes, at most args[size_arg] */
    CAPTURE_IN_IOVEC,               /* at entry: args[size_arg] iovecs, then their buffers */
    CAPTURE_OUT_IOVEC,              /* at return: the iovecs, then the result's bytes in them */
    CAPTURE_IN_STRUCT,              /* at entry: size_arg bytes (a struct: sigaction, sigset_t) */
    CAPTURE_OUT_STRUCT,             /* at return, unless it failed: size_arg bytes */
};

struct syscall_capture_rule {
    u8 kind;                        /* enum syscall_capture_kind */
    u8 arg;                         /* which argument points at the memory */
    u8 size_arg;                    /* which argument gives its length or count; for a
                                       struct, its size in bytes */
};
#define SYSCALL_CAPTURE_RULES 2     /* rules per syscall */

extern bool syscall_capture_on;     /* --no-capture clears it (to measure what capture costs) */

struct syscall_history {
    u64 head;                       /* records ever entered on this CPU; next slot: head % size;
                                       moved only once that slot is claimed (WRITING) */
    u32 size;                       /* SYSCALL_HISTORY_SIZE, for readers */
    u32 record_size;                /* sizeof(struct syscall_record), for readers */
    u64 exits;                      /* records of this ring completed (on any CPU) */
    /* For osv-trace's batches: head and exits at the last syscall_trace_flush() */
    u64 flushed_head, flushed_exits;
    u32 ticks_since_flush;
    struct syscall_record records[SYSCALL_HISTORY_SIZE];
};

extern struct syscall_history syscall_history[MAX_CPUS];
extern u64 syscall_seq;

/*
 * osv-trace reads the rings in batches instead of stopping the guest twice per call
 * (osvgdb/gdb/trace.py). The debugger writes syscall_trace_batch (0: off) and
 * syscall_trace_ticks and keeps one breakpoint on syscall_trace_flush(), which a CPU
 * calls when its ring has syscall_trace_batch new entries or exits, when
 * syscall_trace_ticks timer ticks passed with some, and before the app ends (exit,
 * exit_group, a fatal fault). Off, it costs one predictable branch per syscall and tick.
 */
extern u32 syscall_trace_batch, syscall_trace_ticks;
void syscall_trace_flush(void);
void syscall_trace_check(bool tick);

struct syscall_frame;
struct syscall_record *syscall_history_enter(const struct syscall_frame *f, int tid);
void syscall_history_exit(struct syscall_record *r, u64 seq, long ret);
void syscall_history_init(void);

/* --strace: one line per syscall in strace's form, "-> write(1, "hi\n", 3) = 3". */
void strace_print(const struct syscall_record *r, bool returned);
const char *syscall_name(u32 nr);
#endif
