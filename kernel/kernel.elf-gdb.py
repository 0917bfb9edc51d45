"""GDB auto-loads this for build/kernel.elf (the Makefile puts it there) once allowed by
`add-auto-load-safe-path` (see README); it loads the extension as gdbinit.py does."""

import os
import sys

import gdb

_root = os.path.dirname(os.path.dirname(os.path.abspath(gdb.current_objfile().filename)))
if _root not in sys.path[:1]:
    sys.path.insert(0, _root)
import osvgdb.gdb  # noqa: E402  (needs the sys.path entry above)

osvgdb.gdb.setup()
