/*
 * The device nodes in /dev (tmpfs.c makes them), as Linux's memory devices: /dev/null
 * (reads end at once, writes vanish), /dev/zero (zeros), /dev/full (zeros, and writes
 * fail with ENOSPC), /dev/random and /dev/urandom (getrandom's bytes); /dev/tty and
 * /dev/console are the terminal (tty.c).
 */
#include "vfs.h"
#include "tty.h"
#include "lib.h"
#include "mm.h"
#include "arch.h"
#include <asm-generic/errno.h>

#define DEV(major, minor) (((major) << 8) | (minor))

static long null_read(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return 0;
}

static long null_write(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return count;
}

static long zero_read(struct file *f, u64 buf, u64 count, bool nonblock)
{
    memset((void *)buf, 0, count);
    return count;
}

static long full_write(struct file *f, u64 buf, u64 count, bool nonblock)
{
    return count ? -ENOSPC : 0;
}

/* Random bytes: RDRAND's, or a xorshift stirred by the TSC where the CPU has none. */
void random_bytes(u8 *buf, u64 len)
{
    static u64 state;
    for (u64 i = 0; i < len; i += 8) {
        u64 v;
        if (!rdrand64(&v)) {
            state ^= rdtsc() + 0x9e3779b97f4a7c15UL;
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            v = state;
        }
        memcpy(buf + i, &v, MIN(8, len - i));
    }
}

static long random_read(struct file *f, u64 buf, u64 count, bool nonblock)
{
    random_bytes((u8 *)buf, count);
    return count;
}

static const struct file_ops null_ops = {
    .kind = "null", .no_position = true, .read = null_read, .write = null_write,
};
static const struct file_ops zero_ops = {
    .kind = "zero", .no_position = true, .read = zero_read, .write = null_write,
};
static const struct file_ops full_ops = {
    .kind = "full", .no_position = true, .read = zero_read, .write = full_write,
};
static const struct file_ops random_ops = {
    .kind = "random", .no_position = true, .read = random_read, .write = null_write,
};

const struct file_ops *device_ops(u32 rdev)
{
    switch (rdev) {
    case DEV(1, 3): return &null_ops;
    case DEV(1, 5): return &zero_ops;
    case DEV(1, 7): return &full_ops;
    case DEV(1, 8):
    case DEV(1, 9): return &random_ops;
    case DEV(5, 0):
    case DEV(5, 1): return &tty_file_ops;
    default: return NULL;
    }
}
