/*
 * Where an application processor starts: the SIPI makes it run the copy of this code
 * at TRAMPOLINE_PA, in real mode, CS = TRAMPOLINE_PA >> 4, IP = 0. It goes through
 * protected mode to long mode on boot.S's page tables (which map this page one to
 * one), then jumps to ap_entry(cpu) on the stack smp.c left in the data at the end.
 */
#define TRAMPOLINE_PA 0x8000
#define ABS(label) (TRAMPOLINE_PA + (label) - smp_trampoline)

.section .rodata
.globl smp_trampoline, smp_trampoline_end, smp_trampoline_stack, smp_trampoline_arg
.code16
smp_trampoline:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl tramp_gdt_desc - smp_trampoline
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $ABS(1f)

.code32
1:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax                 /* PAE */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* EFER: long mode, no-execute */
    rdmsr
    orl $(1 << 8) | (1 << 11), %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010000, %eax           /* paging, write protect */
    movl %eax, %cr0
    ljmp $0x18, $ABS(2f)

.code64
2:  movq ABS(smp_trampoline_stack), %rsp
    movq ABS(smp_trampoline_arg), %rdi
    xorl %ebp, %ebp
    movabsq $ap_entry, %rax
    jmp *%rax

.p2align 3
tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
    .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
tramp_gdt_desc:
    .word tramp_gdt_desc - tramp_gdt - 1
    .long ABS(tramp_gdt)
.p2align 3
smp_trampoline_stack: .quad 0
smp_trampoline_arg:   .quad 0
smp_trampoline_end:
