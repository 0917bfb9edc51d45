"""Forwarding the host's stdin into the app's terminal (a virtio-serial port, the
kernel's tty.c), which is its fd 0.

What stands behind it, the kernel learns from its option --stdin=MODE
(kernel/core/tty.c, "Input"):

- `none` (stdin closed or /dev/null): nothing is forwarded; every read of fd 0
  returns 0 at once, as `osvgdb debug` and `triage` always have it.
- `pipe` (a pipe or a file).  A serial port has no end of file, so osvgdb and
  the kernel agree on two bytes, the ones a Linux terminal gives the same
  meaning to: 0x04 (^D) is the end of the input, 0x16 (^V) makes the next byte
  plain data.  Every 0x04 and 0x16 in the host's data goes over quoted with
  0x16, so piped input arrives byte for byte, binary or not; after the data,
  one 0x04.  The guest reads the bytes as from a pipe, then end of file for
  good.  poll and select report that end as POLLIN (a pipe's POLLHUP would
  show on the console's fds 1 and 2 too).
- `tty` (a terminal).  osvgdb turns the terminal's line editing and echo off
  (ICANON, ECHO, IEXTEN; ISIG stays, so ^C still ends the run) for as long as
  the run lasts, and forwards each keystroke as it is.  The guest's console is
  the terminal now: the kernel edits lines and echoes under the app's termios,
  ^D is end of file, and an app that sets raw mode itself (busybox sh's line
  editing) gets every key, as on Linux.
"""

from __future__ import annotations

import os
import stat
import termios
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
    none when it is closed (or None), /dev/null (whose reads end at once anyway) or a
    terminal we are in the background of (reading it or changing its modes would stop
    us with SIGTTIN or SIGTTOU)."""
    if fd is None:
        return "none"
    try:
        st = os.fstat(fd)
    except OSError:
        return "none"
    if os.isatty(fd):
        return "tty" if os.tcgetpgrp(fd) == os.getpgrp() else "none"
    devnull = os.stat(os.devnull)
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == devnull.st_rdev:
        return "none"
    return "pipe"


def keystroke_mode(attributes: list) -> list:
    """A terminal's termios (termios.tcgetattr's list) with line editing and echo off,
    one byte at a time, signals (^C) kept."""
    mode = [list(item) if isinstance(item, list) else item for item in attributes]
    mode[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)
    mode[6][termios.VMIN] = 1
    mode[6][termios.VTIME] = 0
    return mode


class StdinForwarder(threading.Thread):
    """Copies the host fd `fd` into QEMU's stdin (`to_qemu`) in the line's code
    (the kernel's --stdin=`mode`, pipe or tty) until the host's input ends or
    QEMU is gone.  In tty mode the terminal is in keystroke_mode from start()
    until restore()."""

    def __init__(self, fd: int, to_qemu: BinaryIO, *, mode: str):
        super().__init__(name="osvgdb-stdin", daemon=True)
        self.fd = fd
        self.to_qemu = to_qemu
        self.mode = mode
        self._saved: list | None = None

    def start(self) -> None:
        if self.mode == "tty":
            self._saved = termios.tcgetattr(self.fd)
            termios.tcsetattr(self.fd, termios.TCSANOW, keystroke_mode(self._saved))
        super().start()

    def restore(self) -> None:
        """Give the terminal its modes back (tty mode); harmless to repeat."""
        saved, self._saved = self._saved, None
        if saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            except termios.error:
                pass  # the terminal is gone

    def run(self) -> None:
        try:
            while data := os.read(self.fd, READ_SIZE):
                self._send(data if self.mode == "tty" else quote(data))
            if self.mode == "pipe":
                self._send(EOF)
        except (OSError, ValueError):
            pass  # QEMU is gone (EPIPE, or its pipe closed under us) or our stdin broke

    def _send(self, data: bytes) -> None:
        self.to_qemu.write(data)
        self.to_qemu.flush()
