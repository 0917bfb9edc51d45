/*
 * PVH entry. QEMU (-kernel with this ELF's XEN_ELFNOTE_PHYS32_ENTRY note) loads our
 * segments at their physical addresses and jumps here in 32-bit protected mode, paging
 * off, %ebx = physical address of struct hvm_start_info (command line, initrd, memory map).
 *
 * We build boot page tables that map the first 4 GiB twice with 2 MiB pages: identity
 * (so this code keeps running and the kernel's 0x40200000 addresses work) and at
 * PHYS_MEM (0xffff800000000000), the kernel's direct map of physical memory. mm.c
 * later replaces the identity half with the app's address space.
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

.section .note.pvh, "a"
.p2align 2
    .long 4                       /* namesz: "Xen\0" */
    .long 8                       /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .quad pvh_start

.section .text.boot, "ax"
.code32
.globl pvh_start
pvh_start:
    /* First instruction: the TSC here is "time zero" for "Booted up in X ms". */
    rdtsc
    mov %eax, boot_tsc
    mov %edx, boot_tsc + 4
    mov %ebx, pvh_start_info_paddr

    /* boot_pml4[0] and boot_pml4[256] -> boot_pdpt; boot_pdpt[0..3] -> boot_pd[0..3]. */
    mov $boot_pdpt + 3, %eax
    mov %eax, boot_pml4
    mov %eax, boot_pml4 + 256 * 8
    mov $boot_pd + 3, %eax
    mov $boot_pdpt, %edi
    mov $4, %ecx
1:  mov %eax, (%edi)
    add $4096, %eax
    add $8, %edi
    loop 1b

    /* 2048 PD entries of 2 MiB: present | writable | page size. */
    mov $0x83, %eax
    xor %edx, %edx
    mov $boot_pd, %edi
    mov $2048, %ecx
2:  mov %eax, (%edi)
    mov %edx, 4(%edi)
    add $0x200000, %eax
    adc $0, %edx
    add $8, %edi
    loop 2b

    /* PAE, then EFER.LME and NXE, then paging + write protect (ring 0 honours read-only pages). */
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $(1 << 8) | (1 << 11), %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax
    mov %eax, %cr0

    lgdt boot_gdt_desc
    ljmp $0x08, $long_mode_start

.code64
long_mode_start:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov $boot_stack_top, %rsp
    xor %ebp, %ebp
    mov pvh_start_info_paddr(%rip), %edi
    call kernel_main
3:  hlt
    jmp 3b

.section .rodata
.p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff      /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff      /* 0x10: data */
boot_gdt_end:
boot_gdt_desc:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

.data
.globl boot_tsc, pvh_start_info_paddr
.p2align 3
boot_tsc:              .quad 0
pvh_start_info_paddr:  .quad 0

.bss
.p2align 12
.globl boot_pml4, boot_pdpt, boot_pd
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4 * 4096
.p2align 4
boot_stack: .skip 32 * 1024
boot_stack_top:
