#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@"'
"""osvgdb API example: count the app's demand-paging faults per thread, with a class.

Inside GDB (osvgdb loaded):   source scripts/example_page_faults.py   then continue.
Each page fault from app code is counted silently (the guest never stops for it);
at the app's exit_group the hook prints the counts and stops.  Run by itself it does
this for build/apps/hello-glibc under `osvgdb debug --batch`.
"""

import sys
from collections import Counter

try:
    import gdb  # noqa: F401  (only to know whether we run inside GDB)
except ImportError:
    gdb = None

if gdb is not None:
    from osvgdb.gdb.api import SyscallEvent, SyscallHook, TrapEvent, TrapHook

    class PageFaults(TrapHook):
        def __init__(self) -> None:
            super().__init__("page-fault")
            self.by_thread: Counter[int | None] = Counter()
            self.addresses: list[int] = []

        def on_trap(self, event: TrapEvent) -> bool:
            if event.came_from == "app":
                self.by_thread[event.tid] += 1
                self.addresses.append(event.cr2 or 0)
            return False

    class AtExit(SyscallHook):
        def __init__(self, faults: PageFaults) -> None:
            super().__init__("exit_group")
            self.faults = faults

        def on_entry(self, event: SyscallEvent) -> bool:
            total = sum(self.faults.by_thread.values())
            print(f"example: {total} page faults from app code before {event.text}")
            for tid, count in sorted(self.faults.by_thread.items()):
                print(f"example:   tid {tid}: {count}")
            if self.faults.addresses:
                low, high = min(self.faults.addresses), max(self.faults.addresses)
                print(f"example:   addresses {low:#x}..{high:#x}")
            return True

    page_faults = PageFaults()
    at_exit = AtExit(page_faults)

elif __name__ == "__main__":
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from osvgdb.debug import run_script_standalone

    sys.exit(run_script_standalone(str(Path(__file__).resolve())))
