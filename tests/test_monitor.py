"""osvgdb.monitor over qemu.qmp, against a real QEMU: values, errors, events,
and the `info registers -a` parser the other tests compare GDB with."""

from __future__ import annotations

import io

import pytest
from guest import app

from osvgdb.monitor import Monitor, MonitorError, segment_bases
from osvgdb.run import Guest, RunOptions

INFO_REGISTERS_SMP2 = """\
CPU#0
RAX=0000000000000000 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000
ES =0000 0000000000000000 ffffffff 00c00000
FS =0000 00000000004c7380 00000000 00000000
GS =0000 0000000040221040 00000000 00000000
CPU#1
RAX=0000000000000001 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000
FS =0000 ffff800000140010 00000000 00000000
GS =0000 0000000040221100 00000000 00000000
"""


def test_segment_bases_per_cpu() -> None:
    assert segment_bases(INFO_REGISTERS_SMP2) == {
        0: {"FS": 0x4C7380, "GS": 0x40221040},
        1: {"FS": 0xFFFF800000140010, "GS": 0x40221100},
    }


def test_segment_bases_of_a_single_cpu_without_header() -> None:
    text = INFO_REGISTERS_SMP2.split("CPU#1")[0].removeprefix("CPU#0\n")
    assert segment_bases(text) == {0: {"FS": 0x4C7380, "GS": 0x40221040}}


@pytest.fixture
def stopped_guest(kernel: None) -> Guest:
    """A guest stopped at its first instruction (under a gdbstub nobody uses),
    its QMP socket free."""
    options = RunOptions(exe=app("hello", "glibc"), accel="tcg")
    with Guest(options, console=io.BytesIO(), gdbstub=True) as guest:
        yield guest


def test_values_errors_and_events(stopped_guest: Guest) -> None:
    with Monitor(stopped_guest.qmp_socket) as monitor:
        assert monitor.status() == "prelaunch"
        assert "CPU#0" in monitor.hmp("info registers -a")
        # The value, not the reply: qemu.qmp's cmd() before 0.0.4 gave {"return": ...}.
        assert monitor.execute("query-status")["running"] is False
        with pytest.raises(MonitorError, match="^QMP no-such-command: ") as refused:
            monitor.execute("no-such-command")
        assert refused.value.error_class == "CommandNotFound"

        monitor.execute("cont")
        monitor.execute("stop")
        event, before = monitor.wait_event("STOP", timeout=10.0)
        assert event is not None and event["event"] == "STOP"
        assert [e["event"] for e in before] == ["RESUME"]
        assert monitor.poll_events() == []
        assert monitor.wait_event("RESET", timeout=0.2) == (None, [])


def test_a_dead_qemu_is_one_monitor_error(stopped_guest: Guest) -> None:
    with Monitor(stopped_guest.qmp_socket) as monitor:
        assert stopped_guest.vm is not None
        stopped_guest.vm.kill()
        with pytest.raises(MonitorError, match="^QMP query-status: QEMU is gone$"):
            monitor.status()
    with pytest.raises(MonitorError, match="^QMP: cannot connect to "):
        Monitor(stopped_guest.qmp_socket)
