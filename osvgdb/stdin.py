"""Forwarding the host's stdin into the guest's serial line, which is its fd 0.

A serial line has no end of file, so osvgdb and the kernel agree on two bytes,
the ones a Linux terminal gives the same meaning to (kernel/core/console.c,
"Console input"):

- 0x04 (^D, VEOF) is the end of the input;
- 0x16 (^V, VLNEXT) makes the next byte plain data.

Every 0x04 and 0x16 in the host's data goes over quoted with 0x16, so piped
input arrives byte for byte, binary or not.  The kernel is told what stands
behind the line with its option --stdin=MODE:

- `none` (stdin closed or /dev/null): nothing is forwarded; every read of fd 0
  returns 0 at once, as `osvgdb debug` and `triage` always have it.
- `pipe` (a pipe or a file): the bytes, then one 0x04; the guest reads them as
  from a pipe, and end of file for good after that.  poll and select report
  that end as POLLIN (a pipe's POLLHUP would show on the console's fds 1 and 2
  too).
- `tty` (a terminal): osvgdb leaves the terminal as it is, cooked: the host's
  tty edits and echoes each line and turns ^D into an empty read, which is
  forwarded as 0x04.  The guest reads a line at a time (unless the app turns
  ICANON off), each ^D is one end of file, and reading can go on after it, as
  on a Linux terminal.  A read that the host's ^D cut short of a newline (^D
  in mid-line) goes over with a 0x04 after it, so the guest gets that partial
  line at once, as Linux does.
"""

from __future__ import annotations

import os
import select
import stat
import threading
from typing import BinaryIO

EOF = b"\x04"
LNEXT = b"\x16"
READ_SIZE = 65536


def quote(data: bytes) -> bytes:
    """`data` as plain bytes on the line: 0x04 and 0x16 each after a 0x16."""
    return data.replace(LNEXT, LNEXT + LNEXT).replace(EOF, LNEXT + EOF)


def stdin_mode(fd: int | None) -> str:
    """The kernel's --stdin mode for the host fd `fd`: tty, pipe (a pipe or a file), or
    none when it is closed (or None) or /dev/null, whose reads end at once anyway."""
    if fd is None:
        return "none"
    try:
        st = os.fstat(fd)
    except OSError:
        return "none"
    if os.isatty(fd):
        return "tty"
    devnull = os.stat(os.devnull)
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == devnull.st_rdev:
        return "none"
    return "pipe"


def _hung_up(fd: int) -> bool:
    """A terminal that returns empty reads because it is gone, not because of a ^D."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))


class StdinForwarder(threading.Thread):
    """Copies the host fd `fd` into QEMU's stdin (`to_qemu`) in the line's code
    until the host's input ends for good or QEMU is gone."""

    def __init__(self, fd: int, to_qemu: BinaryIO, *, tty: bool):
        super().__init__(name="osvgdb-stdin", daemon=True)
        self.fd = fd
        self.to_qemu = to_qemu
        self.tty = tty

    def run(self) -> None:
        try:
            while self._forward_one_read():
                pass
        except (OSError, ValueError):
            pass  # QEMU is gone (EPIPE, or its pipe closed under us) or our stdin broke

    def _forward_one_read(self) -> bool:
        """One read of the host's stdin sent on; False once there is no more."""
        data = os.read(self.fd, READ_SIZE)
        if not data:
            self._send(EOF)
            return self.tty and not _hung_up(self.fd)
        # A terminal's read ends without a newline only when ^D pushed the line.
        pushed = self.tty and not data.endswith(b"\n")
        self._send(quote(data) + (EOF if pushed else b""))
        return True

    def _send(self, data: bytes) -> None:
        self.to_qemu.write(data)
        self.to_qemu.flush()
