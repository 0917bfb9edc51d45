"""Struct layouts learned from DWARF, and codecs that decode raw bytes with them.

A `Layout` is what the decoders need to know about a C struct: its size and, for
each member, its offset, size and kind.  Nested struct members are flattened
with dotted names (`tcb_data.kernel_tcb`) beside the member itself
(`tcb_data`).  Layouts come from GDB's types inside GDB (osvgdb.gdb.target) or
from pyelftools outside it (`layouts_from_elf`); nothing here imports either.

`Codec` turns a layout and the member names a decoder wants into one
`struct.Struct`, so a whole record (or a whole array of them, with
`iter_unpack`) decodes in one C-level call.  Members the kernel does not have
(an older or newer kernel) decode as None instead of failing: decoders read
fields by name and tolerate new ones.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from osvgdb.decode import DecodeError

SCALAR_FORMATS = {
    ("int", 1): "b",
    ("int", 2): "h",
    ("int", 4): "i",
    ("int", 8): "q",
    ("uint", 1): "B",
    ("uint", 2): "H",
    ("uint", 4): "I",
    ("uint", 8): "Q",
}


@dataclass(frozen=True)
class Field:
    """One member: `kind` is int, uint (pointers and enums too), bytes (char
    arrays and anything else opaque), or struct; `count` > 1 for an array of
    scalars, whose elements are `size // count` bytes each."""

    name: str
    offset: int
    size: int
    kind: str
    count: int = 1

    @property
    def element_size(self) -> int:
        return self.size // self.count if self.count else self.size

    def format(self) -> str:
        if self.kind in ("int", "uint"):
            code = SCALAR_FORMATS.get((self.kind, self.element_size))
            if code is not None:
                return code if self.count == 1 else f"{self.count}{code}"
        return f"{self.size}s"


@dataclass(frozen=True)
class Layout:
    name: str
    size: int
    fields: dict[str, Field] = field(default_factory=dict)

    def offset(self, name: str) -> int:
        return self.fields[name].offset

    def has(self, name: str) -> bool:
        return name in self.fields

    def codec(self, names: tuple[str, ...] | list[str]) -> Codec:
        return Codec(self, tuple(names))


class Codec:
    """Decodes the named members of one struct from bytes.

    The names must not overlap (a member and one of its own sub-members).
    `unpack(buf, offset)` returns {name: value}; arrays of scalars come back as
    tuples, char arrays as bytes, missing members as None.
    """

    def __init__(self, layout: Layout, names: tuple[str, ...]):
        self.layout = layout
        self.names = names
        present = sorted(
            (layout.fields[name] for name in names if name in layout.fields),
            key=lambda f: f.offset,
        )
        parts = ["<"]
        position = 0
        for member in present:
            if member.offset < position:
                raise ValueError(f"{layout.name}: member {member.name} overlaps another")
            if member.offset > position:
                parts.append(f"{member.offset - position}x")
            parts.append(member.format())
            position = member.offset + member.size
        # `struct` ends at the last wanted member, so a caller may read only that far
        # (arch_cpu has 64 KiB of stacks after its few interesting words); `array`
        # is padded to the layout's size, the stride of an array of these structs.
        self.struct = struct.Struct("".join(parts))
        tail = f"{layout.size - position}x" if layout.size > position else ""
        self.array = struct.Struct("".join(parts) + tail)
        self._present = present
        self._missing = tuple(name for name in names if name not in layout.fields)

    @property
    def size(self) -> int:
        """Bytes from the struct's start to the end of the last wanted member."""
        return self.struct.size

    def _assemble(self, values: tuple) -> dict[str, object]:
        result: dict[str, object] = dict.fromkeys(self._missing)
        index = 0
        for member in self._present:
            if member.kind in ("int", "uint") and member.count > 1:
                result[member.name] = values[index : index + member.count]
                index += member.count
            else:
                result[member.name] = values[index]
                index += 1
        return result

    def unpack(self, buf: bytes, offset: int = 0) -> dict[str, object]:
        if offset < 0 or len(buf) - offset < self.struct.size:
            raise DecodeError(
                f"{self.layout.name}: need {self.struct.size} bytes at offset {offset}, "
                f"have {max(0, len(buf) - offset)}"
            )
        return self._assemble(self.struct.unpack_from(buf, offset))

    def unpack_array(self, buf: bytes, count: int) -> list[dict[str, object]]:
        """`count` consecutive structs from the start of buf, in one pass."""
        need = self.array.size * count
        if count < 0 or len(buf) < need:
            raise DecodeError(f"{self.layout.name}[{count}]: need {need} bytes, have {len(buf)}")
        if need == 0:
            return []
        return [self._assemble(values) for values in self.array.iter_unpack(buf[:need])]


# --- pyelftools: the same layouts outside GDB -------------------------------------------


def _die_type(die):
    attr = die.attributes.get("DW_AT_type")
    return die.get_DIE_from_attribute("DW_AT_type") if attr is not None else None


def _strip(die):
    """Follow typedefs and qualifiers to the type that has a size."""
    while die is not None and die.tag in (
        "DW_TAG_typedef",
        "DW_TAG_const_type",
        "DW_TAG_volatile_type",
        "DW_TAG_restrict_type",
        "DW_TAG_atomic_type",
    ):
        die = _die_type(die)
    return die


def _die_size(die) -> int:
    die = _strip(die)
    if die is None:
        return 0
    if "DW_AT_byte_size" in die.attributes:
        return die.attributes["DW_AT_byte_size"].value
    if die.tag == "DW_TAG_array_type":
        return _die_size(_die_type(die)) * _array_count(die)
    if die.tag == "DW_TAG_pointer_type":
        return 8
    return 0


def _array_count(die) -> int:
    count = 1
    for child in die.iter_children():
        if child.tag != "DW_TAG_subrange_type":
            continue
        if "DW_AT_count" in child.attributes:
            count *= child.attributes["DW_AT_count"].value
        elif "DW_AT_upper_bound" in child.attributes:
            count *= child.attributes["DW_AT_upper_bound"].value + 1
        else:
            count = 0
    return count


def _scalar_kind(die) -> str | None:
    die = _strip(die)
    if die is None:
        return None
    if die.tag in ("DW_TAG_pointer_type", "DW_TAG_enumeration_type"):
        return "uint" if die.tag == "DW_TAG_pointer_type" else "int"
    if die.tag == "DW_TAG_base_type":
        encoding = die.attributes["DW_AT_encoding"].value
        # DW_ATE_signed 5, DW_ATE_signed_char 6, DW_ATE_boolean 2
        return "int" if encoding in (5, 6) else "uint"
    return None


def _add_members(die, prefix: str, base: int, fields: dict[str, Field]) -> None:
    for child in die.iter_children():
        if child.tag != "DW_TAG_member" or "DW_AT_name" not in child.attributes:
            continue
        name = prefix + child.attributes["DW_AT_name"].value.decode()
        location = child.attributes.get("DW_AT_data_member_location")
        offset = base + (location.value if location is not None else 0)
        member_type = _strip(_die_type(child))
        size = _die_size(member_type)
        kind = _scalar_kind(member_type)
        count = 1
        if kind is None and member_type is not None and member_type.tag == "DW_TAG_array_type":
            element = _strip(_die_type(member_type))
            element_kind = _scalar_kind(element)
            if element_kind is not None and _die_size(element) in (2, 4, 8):
                kind, count = element_kind, _array_count(member_type)
        if kind is None and member_type is not None and member_type.tag == "DW_TAG_structure_type":
            kind = "struct"
            _add_members(member_type, name + ".", offset, fields)
        fields[name] = Field(name, offset, size, kind or "bytes", count)


def _named_dies(path: Path, tag: str, names: list[str]):
    """(name, DIE) for the first definition with this tag of each wanted name in the
    ELF's DWARF (declarations, which have no members, are passed over)."""
    from elftools.elf.elffile import ELFFile

    wanted, seen = set(names), set()
    with open(path, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        for unit in dwarf.iter_CUs():
            for die in unit.iter_DIEs():
                if die.tag != tag or "DW_AT_name" not in die.attributes:
                    continue
                if "DW_AT_declaration" in die.attributes:
                    continue
                name = die.attributes["DW_AT_name"].value.decode()
                if name in wanted and name not in seen:
                    seen.add(name)
                    yield name, die
            if seen == wanted:
                return


def layouts_from_elf(path: Path, names: list[str]) -> dict[str, Layout]:
    """Layouts of `struct NAME` for each name, from the ELF file's DWARF."""
    found: dict[str, Layout] = {}
    for name, die in _named_dies(path, "DW_TAG_structure_type", names):
        fields: dict[str, Field] = {}
        _add_members(die, "", 0, fields)
        found[name] = Layout(name, die.attributes["DW_AT_byte_size"].value, fields)
    return found


def enums_from_elf(path: Path, names: list[str]) -> dict[str, dict[str, int]]:
    """The enumerators of `enum NAME` for each name, {name: value}, from the ELF's DWARF."""
    return {
        name: {
            child.attributes["DW_AT_name"].value.decode(): child.attributes["DW_AT_const_value"].value
            for child in die.iter_children()
            if child.tag == "DW_TAG_enumerator"
        }
        for name, die in _named_dies(path, "DW_TAG_enumeration_type", names)
    }
