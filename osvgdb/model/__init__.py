"""The kernel model every front end shares: the GDB commands, the MI commands, the
TUI, crash triage and `osvgdb inspect` of a dump.

`osvgdb.model.kernel.Kernel` walks the kernel's data (CPUs and their FS-base
state, threads and TCBs, the syscall history rings, the process) through a small
`osvgdb.model.target.Target`: symbol addresses, struct layouts and enums from
DWARF, `read(address, length)` and the vCPUs' registers.  GDB implements it
(osvgdb/gdb/target.py, live or on a core); a QEMU dump implements it without
GDB (osvgdb/model/elf_target.py).  Nothing here imports `gdb`.

One module per output builds its report (plain dicts and records) and renders
it as text: tcb.py (osv-tcb), syscalls.py (osv-syscalls, the strace line),
auxv.py (osv-auxv); `--json`, MI and the TUI use the same reports.
"""
