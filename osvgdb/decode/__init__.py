"""Pure decoders: bytes and a struct layout in, plain records out.

Nothing here touches GDB or a live target: memory arrives as bytes (or through
a `read(address, length) -> bytes | None` callable for the few decoders that
follow pointers), so the same code serves GDB commands, a TUI, triage of a
core file, and unit tests that feed it bytes they built.

Every decoder raises only `DecodeError` on bad input, whatever the bytes.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """The bytes cannot be decoded as the layout says (too short, inconsistent)."""


def signed64(value: int) -> int:
    """A 64-bit word as C's long: two's complement."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value
