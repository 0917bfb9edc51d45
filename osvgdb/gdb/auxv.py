"""osv-auxv: the app's initial stack: argc, argv, envp and the auxiliary vector."""

from __future__ import annotations

import argparse

import gdb

from osvgdb.decode import DecodeError
from osvgdb.decode import auxv as auxv_decode
from osvgdb.decode.args import read_bytes, read_cstring
from osvgdb.gdb import appsyms
from osvgdb.gdb.command import OsvCommand, print_json
from osvgdb.gdb.target import Kernel, TargetError, read, reader

STRING_LIMIT = 4096
FIRST_READ = 4096  # bytes from argc: all of a usual initial stack in one read


def _string(address: int) -> str | None:
    found = read_cstring(reader, address, STRING_LIMIT) if address else None
    return found[0].decode("utf-8", "backslashreplace") if found else None


def _phdr_check(entries: dict[int, int], load_base: int) -> str:
    """AT_PHDR against the program headers: in guest memory, and in the app's file."""
    phdr, phnum = entries.get(auxv_decode.AT_PHDR), entries.get(auxv_decode.AT_PHNUM, 0)
    phent = entries.get(auxv_decode.AT_PHENT, auxv_decode.PHDR.size)
    if not phdr:
        return "no AT_PHDR"
    data = read_bytes(reader, phdr, phnum * phent)
    try:
        headers = auxv_decode.parse_phdrs(data or b"", phnum, phent)
    except DecodeError as error:
        return f"unreadable program headers: {error}"
    own = [h for h in headers if h.type == auxv_decode.PT_PHDR]
    if own and own[0].vaddr + load_base != phdr:
        return f"PT_PHDR says {own[0].vaddr + load_base:#x}"
    if not any(h.type == auxv_decode.PT_LOAD for h in headers):
        return "no PT_LOAD among the headers there"
    path = appsyms.app_path()
    if not path:
        return "ok (program headers found there)"
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
        vaddr, file_phnum, _, _ = auxv_decode.elf_phdr_vaddr(head)
    except (OSError, DecodeError) as error:
        return f"ok in memory; {path}: {error}"
    if vaddr + load_base != phdr or file_phnum != phnum:
        return f"{path} puts them at {vaddr + load_base:#x} ({file_phnum} entries)"
    return f"ok (matches {path})"


def _value_text(
    kind: int, value: int, entries: dict[int, int], load_base: int
) -> tuple[str, object]:
    """The shown text and the decoded JSON value of one auxv entry."""
    if kind in auxv_decode.STRING_TYPES:
        string = _string(value)
        return (f"{value:#x} {string!r}" if string is not None else f"{value:#x}"), string
    if kind == auxv_decode.AT_RANDOM:
        data = read_bytes(reader, value, 16)
        hex_bytes = data.hex() if data and len(data) == 16 else None
        return f"{value:#x} ({hex_bytes or 'unreadable'})", hex_bytes
    if kind == auxv_decode.AT_PHDR:
        check = _phdr_check(entries, load_base)
        return f"{value:#x} ({check})", check
    if kind in auxv_decode.HEX_TYPES:
        return f"{value:#x}", None
    return str(value), None


class OsvAuxv(OsvCommand):
    NAME = "osv-auxv"
    SUMMARY = "Show the app's initial stack: argc, argv, envp and every auxv entry, decoded."
    DETAILS = (
        "Reads the stack the loader built (process.initial_stack, psABI figure 3.9) in one\n"
        "read and decodes it: strings for argv, envp, AT_EXECFN and AT_PLATFORM, AT_RANDOM's\n"
        "16 bytes, and AT_PHDR checked against the program headers it points at (and the\n"
        "app's file when osv-app-path is set)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def data(self, args: argparse.Namespace) -> dict:
        """What --json prints (and -osv-auxv answers)."""
        kernel = Kernel.get()
        process = kernel.process(("initial_stack", "stack_high", "load_base", "path"))
        start = process["initial_stack"]
        if not start:
            raise TargetError("the app is not loaded yet (process.initial_stack is 0)")
        end = process["stack_high"] or start + FIRST_READ
        size = min(max(end - start, 8), 1 << 20)
        data = reader(start, size) or read(start, min(size, FIRST_READ))
        stack = auxv_decode.decode_initial_stack(data)
        load_base = process["load_base"] or 0
        argv = [_string(p) for p in stack.argv]
        envp = [_string(p) for p in stack.envp]
        entries = dict(stack.auxv)
        auxv = []
        for kind, value in stack.auxv:
            text, decoded = _value_text(kind, value, entries, load_base)
            auxv.append(
                {
                    "type": kind,
                    "name": auxv_decode.at_name(kind),
                    "value": value,
                    "text": text,
                    "decoded": decoded,
                }
            )
        return {
            "initial_stack": start,
            "argc": stack.argc,
            "argv": argv,
            "envp": envp,
            "auxv": auxv,
        }

    def run(self, args: argparse.Namespace) -> None:
        data = self.data(args)
        if args.json:
            print_json(data)
            return
        lines = [f"initial stack {data['initial_stack']:#x}", f"argc {data['argc']}"]
        lines += [f"argv[{i}] {s!r}" for i, s in enumerate(data["argv"])]
        lines += [f"envp[{i}] {s!r}" for i, s in enumerate(data["envp"])]
        lines += [f"{entry['name']:<16} {entry['text']}" for entry in data["auxv"]]
        gdb.write("\n".join(lines) + "\n")
