"""osvgdb inside GDB: commands, convenience functions, pretty-printers, app symbols.

Only GDB's Python imports this package (it needs the `gdb` module); the
standard library and osvgdb's pure modules are all it uses.  `register()` is
idempotent: gdbinit.py and the auto-loaded build/kernel.elf-gdb.py may both
run it.
"""

from __future__ import annotations

import gdb
import gdb.printing

_registered = False


def _on_new_objfile(event: gdb.NewObjFileEvent) -> None:
    from osvgdb.gdb import appsyms
    from osvgdb.gdb.target import Kernel

    Kernel.forget()
    appsyms.install_breakpoint()


def _on_clear_objfiles(event: object) -> None:
    from osvgdb.gdb import appsyms
    from osvgdb.gdb.target import Kernel

    Kernel.forget()
    appsyms.forget_loaded()


def setup() -> None:
    """What every session needs: 64-bit registers from the start, and registration.

    The kernel enters at a 32-bit PVH entry point and switches to long mode: unless
    GDB expects 64-bit registers from the start, the gdbstub's 'g' packet confuses it.
    """
    gdb.execute("set architecture i386:x86-64", to_string=True)
    register()


def debug_session() -> None:
    """What `osvgdb debug` runs once GDB has tried to connect to its paused QEMU.

    One line instead of GDB's "0x000000000000fff0 in ?? ()" (QEMU's reset vector,
    which no symbol covers). And when GDB exits, the connection is dropped without
    detaching: a detach resumes the guest, which could then exit and change how
    the session ends after it has ended; QEMU is killed next anyway.
    """
    if gdb.selected_inferior().pid == 0:
        return  # target remote failed, and said why
    gdb.write("osvgdb: connected, the guest is stopped before its first instruction\n")
    gdb.events.gdb_exiting.connect(_disconnect)


def replay_session(*, cli: bool = True) -> None:
    """What `osvgdb replay` runs once GDB has tried to connect to the replaying QEMU,
    stopped at the end of the recording: one line for GDB's stop line, the end of the
    recording armed after every stop (osvgdb.gdb.replay), and as for debug_session,
    no detach when GDB exits. `cli`: GDB talks to a person (not MI, as for the TUI)."""
    from osvgdb.gdb import appsyms, replay
    from osvgdb.gdb.target import TargetError

    if gdb.selected_inferior().pid == 0:
        return  # target remote failed, and said why
    # The kernel entered the app long before the end: its symbols now, not at app_start.
    if appsyms.app_path() and appsyms.app_loaded():
        try:
            appsyms.load(appsyms.app_path(), quiet=True)
        except TargetError as error:
            gdb.write(f"osv: app symbols not loaded: {error}\n")
    try:
        gdb.write(replay.start_session(cli=cli))
    except replay.ReplayError as error:
        gdb.write(f"osvgdb: {error}\n", gdb.STDERR)
    gdb.events.stop.connect(replay.on_stop)
    gdb.events.gdb_exiting.connect(_disconnect)
    if cli:
        gdb.write(replay.frame_line())


def _disconnect(_event: object) -> None:
    if gdb.selected_inferior().pid != 0:
        gdb.execute("disconnect", to_string=True)


def register() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    from osvgdb.gdb import (
        appsyms,
        auxv,
        breakpoints,
        bt,
        command,
        dump,
        files,
        fscheck,
        functions,
        mi_commands,
        printers,
        replay,
        syscalls,
        tcb,
        trace,
        unwind,
    )

    command.DebugParameter()
    appsyms.AppPathParameter()
    dump.QmpSocketParameter()
    dump.GuestRamParameter()
    replay.RecordingParameter()
    replay.ForwardCheck()
    cli_commands = []
    for command_class in (
        tcb.OsvTcb,
        syscalls.OsvSyscalls,
        auxv.OsvAuxv,
        files.OsvFiles,
        appsyms.OsvAppSymbols,
        breakpoints.OsvBreak,
        trace.OsvTrace,
        fscheck.OsvFscheck,
        dump.OsvDump,
        bt.OsvBt,
        replay.OsvWhen,
        replay.OsvSeek,
        replay.OsvLastWrite,
        replay.OsvReverseContinue,
    ):
        cli_commands.append(command_class())
    mi_commands.register(cli_commands)
    for function_class in functions.FUNCTIONS:
        function_class()
    gdb.printing.register_pretty_printer(None, printers.lookup, replace=True)
    unwind.register()
    gdb.events.new_objfile.connect(_on_new_objfile)
    gdb.events.clear_objfiles.connect(_on_clear_objfiles)
    appsyms.install_breakpoint()
