#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@"'
"""osvgdb API example: stop at the app's third brk call, with a decorated function.

Inside GDB (osvgdb loaded):   source scripts/example_third_brk.py   then continue.
Run by itself it boots build/apps/hello-glibc under `osvgdb debug --batch`, sources
itself, continues to the stop and shows the call and the backtrace.
"""

import sys

try:
    import gdb  # noqa: F401  (only to know whether we run inside GDB)
except ImportError:
    gdb = None

if gdb is not None:
    from osvgdb.gdb.api import SyscallEvent, on_syscall

    brk_calls = 0

    @on_syscall("brk")
    def third_brk(event: SyscallEvent) -> bool:
        """Runs at every brk entry; True stops the guest."""
        global brk_calls
        brk_calls += 1
        if brk_calls < 3:
            return False
        print(f"example: brk call {brk_calls} on {event.who()}: {event.text}")
        return True

elif __name__ == "__main__":
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from osvgdb.debug import run_script_standalone

    sys.exit(run_script_standalone(str(Path(__file__).resolve()), "bt"))
