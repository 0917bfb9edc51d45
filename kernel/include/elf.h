#ifndef ELF_H
#define ELF_H
#include "types.h"

/* The ELF64 structures (System V gABI); only what the loader reads. */
typedef struct {
    u8 e_ident[16];
    u16 e_type, e_machine;
    u32 e_version;
    u64 e_entry, e_phoff, e_shoff;
    u32 e_flags;
    u16 e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx;
} Elf64_Ehdr;

typedef struct {
    u32 p_type, p_flags;
    u64 p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
} Elf64_Phdr;

#define ET_EXEC 2
#define ET_DYN 3
#define EM_X86_64 62
#define PT_LOAD 1
#define PT_INTERP 3
#define PT_PHDR 6
#define PF_X 1
#define PF_W 2
#define PF_R 4

/* Exit statuses of a rejected executable, as a shell would report them. */
#define EXIT_NOT_FOUND 127
#define EXIT_CANNOT_EXECUTE 126

/* Load the executable and build its initial stack in `process`; 0 or an exit status. */
int elf_load(const u8 *data, u64 size);
#endif
