/*
 * virtio-mmio, legacy interface (virtio 1.0 spec, 4.2.4), and split virtqueues.
 *
 * microvm's transports: with one I/O APIC (osvgdb starts QEMU with ioapic2=off) and
 * ACPI, eight of them, transport i at VIRTIO_MMIO_BASE + 512 i raising GSI 16 + i
 * (QEMU's microvm_devices_init). QEMU plugs the first -device into the last transport,
 * so the search runs from the top: "the first console" is the first on QEMU's command
 * line.
 *
 * QEMU handles a queue notification in the vCPU's own thread (virtio-mmio has no
 * ioeventfd there): by the time virtq_notify returns, the device has taken what it
 * could, and anything it could not (a host pipe that is full) it keeps, returning the
 * buffer only once written. The device's interrupt line is level-triggered and stays
 * up until the interrupt status is acknowledged.
 */
#include "virtio.h"
#include "arch.h"
#include "lib.h"
#include "mm.h"

#define VIRTIO_MMIO_BASE 0xfeb00000UL
#define VIRTIO_TRANSPORTS 8
#define VIRTIO_GSI_BASE 16
#define VIRTIO_MAGIC 0x74726976         /* "virt" */

/* Register offsets (legacy layout) */
#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_HOST_FEATURES 0x010
#define REG_HOST_FEATURES_SEL 0x014
#define REG_GUEST_FEATURES 0x020
#define REG_GUEST_FEATURES_SEL 0x024
#define REG_GUEST_PAGE_SIZE 0x028
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_ALIGN 0x03c
#define REG_QUEUE_PFN 0x040
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_CONFIG 0x100

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER 2
#define STATUS_DRIVER_OK 4

#define VRING_DESC_F_WRITE 2
#define VRING_AVAIL_F_NO_INTERRUPT 1

_Static_assert(offsetof(struct virtq_memory, used) == 4096, "the used ring on its own page");
_Static_assert(offsetof(struct virtq_memory, buf) == 8192, "buffers after the rings");

static u32 reg_read(const struct virtio_dev *d, u32 off)
{
    return *(volatile u32 *)(d->regs + off);
}

static void reg_write(const struct virtio_dev *d, u32 off, u32 v)
{
    *(volatile u32 *)(d->regs + off) = v;
}

bool virtio_find(u32 device_id, unsigned nth, struct virtio_dev *d)
{
    for (int slot = VIRTIO_TRANSPORTS - 1; slot >= 0; slot--) {
        d->regs = phys_to_virt(VIRTIO_MMIO_BASE + slot * 512);
        d->slot = slot;
        if (reg_read(d, REG_MAGIC) != VIRTIO_MAGIC || reg_read(d, REG_VERSION) != 1)
            continue;
        if (reg_read(d, REG_DEVICE_ID) == device_id && nth-- == 0)
            return true;
    }
    return false;
}

bool virtio_start(struct virtio_dev *d, u32 features)
{
    reg_write(d, REG_STATUS, 0);
    reg_write(d, REG_STATUS, STATUS_ACKNOWLEDGE);
    reg_write(d, REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    reg_write(d, REG_HOST_FEATURES_SEL, 0);
    if ((reg_read(d, REG_HOST_FEATURES) & features) != features)
        return false;
    reg_write(d, REG_GUEST_FEATURES_SEL, 0);
    reg_write(d, REG_GUEST_FEATURES, features);
    reg_write(d, REG_GUEST_PAGE_SIZE, 4096);
    return true;
}

void virtq_init(struct virtq *q, struct virtio_dev *d, u16 index, struct virtq_memory *mem)
{
    *q = (struct virtq){ .dev = d, .mem = mem, .index = index };
    memset(mem, 0, offsetof(struct virtq_memory, buf));
    for (int i = 0; i < VIRTQ_SIZE; i++)
        mem->desc[i].addr = (u64)mem->buf[i];     /* .bss: identity mapped */
    reg_write(d, REG_QUEUE_SEL, index);
    reg_write(d, REG_QUEUE_NUM, VIRTQ_SIZE);
    reg_write(d, REG_QUEUE_ALIGN, 4096);
    reg_write(d, REG_QUEUE_PFN, (u64)mem >> 12);
}

void virtio_ready(struct virtio_dev *d)
{
    reg_write(d, REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
}

void virtio_route_irq(struct virtio_dev *d, u32 vector)
{
    ioapic_route(VIRTIO_GSI_BASE + d->slot, vector, lapic_id(), true);
}

void virtq_post(struct virtq *q, u16 id, u32 len, bool device_writes)
{
    struct virtq_memory *m = q->mem;
    m->desc[id].len = len;
    m->desc[id].flags = device_writes ? VRING_DESC_F_WRITE : 0;
    u16 idx = m->avail.idx;
    m->avail.ring[idx % VIRTQ_SIZE] = id;
    /* The entry before the index that publishes it (x86 keeps stores in order). */
    __atomic_store_n(&m->avail.idx, (u16)(idx + 1), __ATOMIC_RELEASE);
}

void virtq_notify(struct virtq *q)
{
    barrier();
    reg_write(q->dev, REG_QUEUE_NOTIFY, q->index);
}

bool virtq_take_used(struct virtq *q, u16 *id, u32 *len)
{
    struct virtq_memory *m = q->mem;
    if (__atomic_load_n(&m->used.idx, __ATOMIC_ACQUIRE) == q->last_used)
        return false;
    struct vring_used_elem *e = &m->used.ring[q->last_used % VIRTQ_SIZE];
    *id = e->id;
    *len = e->len;
    q->last_used++;
    return true;
}

void virtq_interrupts(struct virtq *q, bool on)
{
    __atomic_store_n(&q->mem->avail.flags, on ? 0 : VRING_AVAIL_F_NO_INTERRUPT, __ATOMIC_SEQ_CST);
}

u32 virtio_config_read32(const struct virtio_dev *d, u32 offset)
{
    return reg_read(d, REG_CONFIG + offset);
}

u32 virtio_ack_interrupt(struct virtio_dev *d)
{
    u32 status = reg_read(d, REG_INTERRUPT_STATUS);
    if (status)
        reg_write(d, REG_INTERRUPT_ACK, status);
    return status;
}
