/* CPU discovery: the local APICs the ACPI MADT lists as enabled. */
#include "arch.h"
#include "lib.h"
#include "mm.h"

struct acpi_header {
    char signature[4];
    u32 length;
    u8 revision, checksum;
    char oem_id[6], oem_table_id[8];
    u32 oem_revision, creator_id, creator_revision;
} __attribute__((packed));

static u64 find_rsdp(u64 hint)
{
    if (hint)
        return hint;
    for (u64 pa = 0xe0000; pa < 0x100000; pa += 16)     /* where the ACPI spec says to look */
        if (memcmp(phys_to_virt(pa), "RSD PTR ", 8) == 0)
            return pa;
    return 0;
}

static const struct acpi_header *find_table(u64 rsdp_pa, const char *signature)
{
    const u8 *rsdp = phys_to_virt(rsdp_pa);
    bool xsdt = rsdp[15] >= 2;
    u64 root_pa = xsdt ? *(const u64 *)(rsdp + 24) : *(const u32 *)(rsdp + 16);
    const struct acpi_header *root = phys_to_virt(root_pa);
    u32 entry_size = xsdt ? 8 : 4;
    u32 n = (root->length - sizeof(*root)) / entry_size;
    const u8 *entries = (const u8 *)(root + 1);
    for (u32 i = 0; i < n; i++) {
        u64 pa = xsdt ? *(const u64 *)(entries + i * 8) : *(const u32 *)(entries + i * 4);
        const struct acpi_header *h = phys_to_virt(pa);
        if (memcmp(h->signature, signature, 4) == 0)
            return h;
    }
    return NULL;
}

/* Fill apic_ids with the enabled CPUs' APIC ids; returns how many (0 without ACPI). */
unsigned acpi_cpu_apic_ids(u64 rsdp_hint, u32 *apic_ids, unsigned max)
{
    u64 rsdp = find_rsdp(rsdp_hint);
    if (!rsdp)
        return 0;
    const struct acpi_header *madt = find_table(rsdp, "APIC");
    if (!madt)
        return 0;
    unsigned n = 0;
    const u8 *p = (const u8 *)madt + 44, *end = (const u8 *)madt + madt->length;
    for (; p + 2 <= end && p[1] >= 2 && n < max; p += p[1]) {
        if (p[0] == 0 && (*(const u32 *)(p + 4) & 1))          /* processor local APIC */
            apic_ids[n++] = p[3];
        else if (p[0] == 9 && (*(const u32 *)(p + 8) & 1))     /* processor local x2APIC */
            apic_ids[n++] = *(const u32 *)(p + 4);
    }
    return n;
}
