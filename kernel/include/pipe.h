#ifndef PIPE_H
#define PIPE_H
#include "types.h"
#include "spinlock.h"

/*
 * In-kernel pipes (pipe.c). One lock, pipe_lock, guards every pipe's state, so poll and
 * select can look at many pipes at once and sleep until any of them changes.
 */
#define PIPE_SIZE 65536             /* Linux's default capacity (F_GETPIPE_SZ) */
#define PIPE_BUF 4096               /* writes up to this size are atomic */

struct pipe;
extern struct spinlock pipe_lock;

struct pipe *pipe_create(void);     /* one reader and one writer; NULL if out of memory */
void pipe_close_end(struct pipe *p, bool writer);
bool pipe_reopen(struct pipe *p, bool writer);  /* another end, by /proc/self/fd; false: gone */
long pipe_read(struct pipe *p, u64 buf, u64 count, bool nonblock);
long pipe_write(struct pipe *p, u64 buf, u64 count, bool nonblock);
u64 pipe_buffered(struct pipe *p);  /* bytes a read would get now: FIONREAD */
/* Readiness as poll's POLLIN/POLLOUT/POLLHUP/POLLERR bits. pipe_lock held. */
unsigned pipe_poll(const struct pipe *p, bool writer);
/* Block until some pipe changes or the deadline (0: none) passes. pipe_lock held. */
long pipe_wait_any(u64 deadline_ns);
/* Wake everyone in pipe_wait_any: something else they watch (the console) changed. */
void pipe_wake_pollers(void);
/* Counts every wake-up of pollers: a change since a look means something may be new. */
u64 pipe_change_count(void);
/* A new pipe's two ends as open files: read end, write end (status: O_NONBLOCK, O_DIRECT). */
struct file;
struct file_ops;
extern const struct file_ops pipe_file_ops;
long pipe_files(u32 status, struct file *ends[2]);
#endif
