#ifndef VIRTIO_H
#define VIRTIO_H
/*
 * virtio over microvm's virtio-mmio transports, the legacy (version 1) interface QEMU
 * 7.2 offers there (force-legacy), split virtqueues (virtio.c). Only what the app's
 * terminal needs (tty.c): every descriptor owns one buffer of VIRTQ_BUF bytes for
 * good, so a queue is a set of numbered buffers handed to the device and given back.
 */
#include "types.h"

#define VIRTIO_ID_CONSOLE 3             /* virtio-serial: a console with ports */
#define VIRTQ_SIZE 16                   /* descriptors (and buffers) per queue */
#define VIRTQ_BUF 4096

struct vring_desc {
    u64 addr;                           /* guest-physical */
    u32 len;
    u16 flags;                          /* VRING_DESC_F_WRITE: the device fills it */
    u16 next;
};

struct vring_avail {
    u16 flags;                          /* VRING_AVAIL_F_NO_INTERRUPT */
    u16 idx;
    u16 ring[VIRTQ_SIZE];
    u16 used_event;
};

struct vring_used_elem {
    u32 id;
    u32 len;                            /* bytes the device wrote into the buffer */
};

struct vring_used {
    u16 flags;
    u16 idx;
    struct vring_used_elem ring[VIRTQ_SIZE];
    u16 avail_event;
};

/*
 * A queue's memory as the legacy interface lays it out: descriptors and the available
 * ring in one page, the used ring at the next page boundary (QueueAlign 4096), then
 * the buffers. Kernel .bss: physical address == virtual address.
 */
struct virtq_memory {
    struct vring_desc desc[VIRTQ_SIZE];
    struct vring_avail avail;
    u8 pad[4096 - VIRTQ_SIZE * sizeof(struct vring_desc) - sizeof(struct vring_avail)];
    struct vring_used used;
    u8 pad2[4096 - sizeof(struct vring_used)];
    u8 buf[VIRTQ_SIZE][VIRTQ_BUF];
} __attribute__((aligned(4096)));

struct virtio_dev {
    volatile u8 *regs;                  /* the transport's registers, in the direct map */
    unsigned slot;                      /* transport number: IRQ VIRTIO_GSI_BASE + slot */
};

struct virtq {
    struct virtio_dev *dev;
    struct virtq_memory *mem;
    u16 index;                          /* the queue's number on its device */
    u16 last_used;                      /* used entries taken back so far */
};

/* The nth device of this type (0: the first), counting from the transport QEMU fills first. */
bool virtio_find(u32 device_id, unsigned nth, struct virtio_dev *d);
/* Reset, acknowledge, and take `features` (bits 0-31); false if the device lacks one. */
bool virtio_start(struct virtio_dev *d, u32 features);
u32 virtio_config_read32(const struct virtio_dev *d, u32 offset);
void virtq_init(struct virtq *q, struct virtio_dev *d, u16 index, struct virtq_memory *mem);
void virtio_ready(struct virtio_dev *d);        /* DRIVER_OK: the device may use the queues */
void virtio_route_irq(struct virtio_dev *d, u32 vector);

/* Hand buffer id to the device: len bytes for it to read, or room for it to write. */
void virtq_post(struct virtq *q, u16 id, u32 len, bool device_writes);
void virtq_notify(struct virtq *q);
/* A buffer the device gave back, and how many bytes it wrote there; false if none. */
bool virtq_take_used(struct virtq *q, u16 *id, u32 *len);
/* Whether the device interrupts when it gives buffers back (VRING_AVAIL_F_NO_INTERRUPT). */
void virtq_interrupts(struct virtq *q, bool on);
/* Reads and acknowledges the device's interrupt status; its line then goes low. */
u32 virtio_ack_interrupt(struct virtio_dev *d);
#endif
