"""osvgdb's entry point inside GDB: `gdb -x gdbinit.py build/kernel.elf`.

Also works as `source gdbinit.py` in a running GDB, and is what the auto-loaded
build/kernel.elf-gdb.py sources.  It registers the osv-* commands, the $osv_*
convenience functions, the pretty-printers and the app-symbol loader
(`help osv-tcb`, `apropos osv`).

GDB embeds the system's Python, not the venv's: the extension needs only the
standard library, and this repository goes first on sys.path so its osvgdb is
the one imported.
"""

import os
import sys

_ROOT = os.path.dirname(os.path.abspath(__file__))
if _ROOT not in sys.path[:1]:
    sys.path.insert(0, _ROOT)

import osvgdb.gdb  # noqa: E402  (needs the sys.path entry above)

osvgdb.gdb.setup()
