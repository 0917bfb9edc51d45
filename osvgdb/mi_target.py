"""The model's target over GDB's machine interface, for tools outside GDB (triage, the TUI).

Symbols, layouts and enums come from the kernel ELF (pyelftools, as for a dump:
osvgdb.model.elf_target.ElfKernel); memory and registers from a GDB that holds
the guest stopped, whether it is attached to QEMU's gdbstub or reads a core.
Memory is read a page at a time and kept until `forget()`: the model reads many
small fields of the same structures, and one MI round trip (~0.3 ms plus the hex)
costs more than 4 KiB of it.  Call `forget()` whenever the guest has run.
"""

from __future__ import annotations

from osvgdb.mi import CommandError, GdbExited, Mi, MiTimeout
from osvgdb.model.elf_target import ElfKernel, ElfSymbolsTarget
from osvgdb.model.target import TargetError, Vcpu

PAGE = 4096
MI_TIMEOUT = 10.0
# What the model and the unwinder read of a vCPU; QEMU's x86-64 gdbstub names them so.
REGISTERS = (
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rip", "eflags", "cs", "ss", "fs_base", "gs_base", "k_gs_base",
    "cr0", "cr2", "cr3", "cr4", "efer",
)  # fmt: skip


class MiTarget(ElfSymbolsTarget):
    def __init__(self, elf: ElfKernel, mi: Mi):
        super().__init__(elf)
        self.mi = mi
        self._pages: dict[int, bytes | None] = {}
        self._register_numbers: dict[str, int] | None = None
        self._vcpus: list[Vcpu] | None = None

    def forget(self) -> None:
        """Drop what was read: the guest ran since."""
        self._pages.clear()
        self._vcpus = None

    def _execute(self, command: str):
        try:
            return self.mi.execute(command, MI_TIMEOUT)
        except CommandError as error:
            raise TargetError(error.message) from None
        except (MiTimeout, GdbExited) as error:
            raise TargetError(f"GDB: {error}") from None

    # Memory and registers: GDB's

    def _page(self, page: int) -> bytes | None:
        if page not in self._pages:
            try:
                record = self._execute(f"-data-read-memory-bytes {page:#x} {PAGE}")
            except TargetError:
                self._pages[page] = None
            else:
                # GDB answers with the readable pieces; a page is mapped whole or not at all.
                pieces = record.payload.get("memory", [])
                whole = [p for p in pieces if int(p["begin"], 16) == page and int(p["end"], 16) == page + PAGE]
                self._pages[page] = bytes.fromhex(whole[0]["contents"]) if whole else None
        return self._pages[page]

    def read(self, address: int, length: int) -> bytes:
        out = bytearray()
        position, end = address, address + length
        while position < end:
            page = position & ~(PAGE - 1)
            data = self._page(page)
            if data is None:
                raise TargetError(f"cannot read {length} bytes at {address:#x}")
            take = min(end, page + PAGE) - position
            out += data[position - page : position - page + take]
            position += take
        return bytes(out)

    def _numbers(self) -> dict[str, int]:
        if self._register_numbers is None:
            names = self._execute("-data-list-register-names").payload["register-names"]
            self._register_numbers = {n: i for i, n in enumerate(names) if n in REGISTERS}
        return self._register_numbers

    def vcpus(self) -> list[Vcpu]:
        if self._vcpus is None:
            numbers = self._numbers()
            by_number = {i: n for n, i in numbers.items()}
            listing = " ".join(str(i) for i in sorted(by_number))
            result = []
            for num in range(1, self.vcpu_count() + 1):
                values = self._execute(f"-data-list-register-values --thread {num} --frame 0 x {listing}")
                registers = {}
                for item in values.payload["register-values"]:
                    try:
                        registers[by_number[int(item["number"])]] = int(item["value"], 16)
                    except (KeyError, ValueError):
                        continue  # <unavailable>
                result.append(Vcpu(num, registers))
            self._vcpus = result
        return self._vcpus

    def vcpu_count(self) -> int:
        if self._vcpus is not None:
            return len(self._vcpus)
        return len(self._execute("-thread-info").payload.get("threads", []))
