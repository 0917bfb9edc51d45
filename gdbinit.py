"""osvgdb's entry point inside GDB: `gdb -x gdbinit.py build/kernel.elf`.

The osv-* commands arrive with the GDB extension (issue 4); for now this sets up
what every session against the kernel needs.
"""

import gdb

# The kernel enters at a 32-bit PVH entry point and switches to long mode: unless GDB
# expects 64-bit registers from the start, the gdbstub's 'g' packet confuses it.
gdb.execute("set architecture i386:x86-64")
