"""Syscall arguments and results in strace's form.

`SIGNATURES` says, per syscall name, how to show each argument and the
result.  Argument kinds:

    d    int (32-bit signed, as C passes it)      ld   long (64-bit signed)
    u    unsigned decimal                         x    hex (pointers; NULL for 0)
    o    octal (modes)                            dirfd  AT_FDCWD or an fd
    s    NUL-terminated string in guest memory
    b:N  buffer the call reads, of argument N's length (write's data)
    B:N  buffer the call fills: shown once it returned, of the result's length
    iov:N  an iovec array of argument N entries the call reads (writev)
    IOV:N  an iovec array the call fills: shown once it returned (readv)
    FDS  the two fds the call fills (pipe's): [3, 4] once it returned
    pollfd:N  an array of argument N struct pollfds: [{fd=3, events=POLLIN}]
    epevent  a struct epoll_event the call reads (epoll_ctl's):
         {events=EPOLLIN, data={u32=5727376, u64=5727376}}
    EPEVENTS:N  the array of up to argument N struct epoll_events the call fills
         (epoll_wait's): the result's count of them once it returned, [] for none
    fdset:N  an fd_set of argument N fds (select's): [0 3], NULL for 0
    off  a file offset (mmap's last argument): hex, 0 as 0
    sigset  a sigset_t the call reads: [USR1 USR2], ~[...] for most of them
    SIGSET  a sigset_t the call fills (the old mask, rt_sigpending's)
    sigaction/SIGACTION  a struct sigaction read / filled: {sa_handler=..., sa_mask=[...],
         sa_flags=SA_RESTORER|SA_SIGINFO, sa_restorer=0x...}
    stack/STACK  a stack_t read / filled (sigaltstack): {ss_sp=..., ss_flags=..., ss_size=...}
    SIGINFO  a siginfo_t the call fills (rt_sigtimedwait): {si_signo=SIGUSR1, si_code=...}
    fcntlarg  fcntl's third argument, as its command (the second) reads it
    a flag set's name (open, prot, map, clone, futex, ...): symbolic

Results are `d` (errno name and text when -4095..-1), `x` (addresses: brk,
mmap) or `o` (umask's old mask).  Syscalls without a signature show their six raw arguments in hex.

Memory comes from two places.  A kernel history record carries `Capture`s:
the bytes its pointer arguments pointed at when the call entered (inputs) or
returned (outputs), a bounded prefix of each (kernel/include/syscall_history.h).
Whatever a capture does not cover is read from guest memory as it is now,
through `read(address, length) -> bytes | None`, and the argument is marked
`/* memory now */` unless the caller says memory now is the call's
(`live_is_call_time`: a stop at the call's own entry).  Anything unreadable is
shown as its address, so a bad pointer never breaks a line.
"""

from __future__ import annotations

import errno
import os
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from osvgdb.decode import signed64

Reader = Callable[[int, int], "bytes | None"]

U64 = (1 << 64) - 1
PAGE_SIZE = 4096
MAX_ERRNO = 4095

_O_ACCMODE = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}
_O_FLAGS = [
    (0o20200000, "O_TMPFILE"),
    (0o4010000, "O_SYNC"),
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
]
_PROT = [
    (1, "PROT_READ"),
    (2, "PROT_WRITE"),
    (4, "PROT_EXEC"),
    (0x01000000, "PROT_GROWSDOWN"),
    (0x02000000, "PROT_GROWSUP"),
]
_MAP_TYPE = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
_MAP = [
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x40, "MAP_32BIT"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"),
    (0x20000, "MAP_STACK"),
    (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"),
    (0x100000, "MAP_FIXED_NOREPLACE"),
]
_CLONE = [
    (0x100, "CLONE_VM"),
    (0x200, "CLONE_FS"),
    (0x400, "CLONE_FILES"),
    (0x800, "CLONE_SIGHAND"),
    (0x1000, "CLONE_PIDFD"),
    (0x2000, "CLONE_PTRACE"),
    (0x4000, "CLONE_VFORK"),
    (0x8000, "CLONE_PARENT"),
    (0x10000, "CLONE_THREAD"),
    (0x20000, "CLONE_NEWNS"),
    (0x40000, "CLONE_SYSVSEM"),
    (0x80000, "CLONE_SETTLS"),
    (0x100000, "CLONE_PARENT_SETTID"),
    (0x200000, "CLONE_CHILD_CLEARTID"),
    (0x400000, "CLONE_DETACHED"),
    (0x800000, "CLONE_UNTRACED"),
    (0x1000000, "CLONE_CHILD_SETTID"),
    (0x2000000, "CLONE_NEWCGROUP"),
    (0x4000000, "CLONE_NEWUTS"),
    (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"),
    (0x40000000, "CLONE_NEWNET"),
    (0x80000000, "CLONE_IO"),
]
_FUTEX_OPS = {
    0: "FUTEX_WAIT",
    1: "FUTEX_WAKE",
    2: "FUTEX_FD",
    3: "FUTEX_REQUEUE",
    4: "FUTEX_CMP_REQUEUE",
    5: "FUTEX_WAKE_OP",
    6: "FUTEX_LOCK_PI",
    7: "FUTEX_UNLOCK_PI",
    8: "FUTEX_TRYLOCK_PI",
    9: "FUTEX_WAIT_BITSET",
    10: "FUTEX_WAKE_BITSET",
    11: "FUTEX_WAIT_REQUEUE_PI",
    12: "FUTEX_CMP_REQUEUE_PI",
    13: "FUTEX_LOCK_PI2",
}
_ARCH_PRCTL = {
    0x1001: "ARCH_SET_GS",
    0x1002: "ARCH_SET_FS",
    0x1003: "ARCH_GET_FS",
    0x1004: "ARCH_GET_GS",
    0x1011: "ARCH_GET_CPUID",
    0x1012: "ARCH_SET_CPUID",
}
_AT_FLAGS = [
    (0x100, "AT_SYMLINK_NOFOLLOW"),
    (0x200, "AT_REMOVEDIR"),
    (0x400, "AT_SYMLINK_FOLLOW"),
    (0x800, "AT_NO_AUTOMOUNT"),
    (0x1000, "AT_EMPTY_PATH"),
]
_SIGNALS = {
    1: "SIGHUP",
    2: "SIGINT",
    3: "SIGQUIT",
    4: "SIGILL",
    5: "SIGTRAP",
    6: "SIGABRT",
    7: "SIGBUS",
    8: "SIGFPE",
    9: "SIGKILL",
    10: "SIGUSR1",
    11: "SIGSEGV",
    12: "SIGUSR2",
    13: "SIGPIPE",
    14: "SIGALRM",
    15: "SIGTERM",
    16: "SIGSTKFLT",
    17: "SIGCHLD",
    18: "SIGCONT",
    19: "SIGSTOP",
    20: "SIGTSTP",
    21: "SIGTTIN",
    22: "SIGTTOU",
    23: "SIGURG",
    24: "SIGXCPU",
    25: "SIGXFSZ",
    26: "SIGVTALRM",
    27: "SIGPROF",
    28: "SIGWINCH",
    29: "SIGIO",
    30: "SIGPWR",
    31: "SIGSYS",
}
_SIGHOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
_SA_FLAGS = [
    (0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"),
    (0x40000000, "SA_NODEFER"), (0x80000000, "SA_RESETHAND"), (0x4, "SA_SIGINFO"),
    (0x1, "SA_NOCLDSTOP"), (0x2, "SA_NOCLDWAIT"),
]  # fmt: skip
_SS_FLAGS = [(1, "SS_ONSTACK"), (2, "SS_DISABLE"), (1 << 31, "SS_AUTODISARM")]
_SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -6: "SI_TKILL"}
# si_code of a fault, by signal (asm-generic/siginfo.h)
_FAULT_CODES = {
    4: {1: "ILL_ILLOPC", 2: "ILL_ILLOPN", 3: "ILL_ILLADR", 4: "ILL_ILLTRP"},
    7: {1: "BUS_ADRALN", 2: "BUS_ADRERR", 3: "BUS_OBJERR"},
    8: {1: "FPE_INTDIV", 2: "FPE_INTOVF", 3: "FPE_FLTDIV", 4: "FPE_FLTOVF", 5: "FPE_FLTUND",
        6: "FPE_FLTRES", 7: "FPE_FLTINV", 8: "FPE_FLTSUB"},
    11: {1: "SEGV_MAPERR", 2: "SEGV_ACCERR"},
}  # fmt: skip


def signal_name(sig: int, *, prefix: bool = True) -> str:
    """SIGUSR1 (or USR1 as in a sigset), RTMIN and RT_n for the real-time ones."""
    if sig in _SIGNALS:
        return _SIGNALS[sig] if prefix else _SIGNALS[sig][3:]
    if sig == 32:
        return "SIGRTMIN" if prefix else "RTMIN"
    if 32 < sig <= 64:
        return f"SIGRT_{sig - 32}" if prefix else f"RT_{sig - 32}"
    return str(sig)


def signal_set(mask: int) -> str:
    """A sigset_t as strace shows it: [INT USR1], or ~[...] when most signals are in it."""
    members = [sig for sig in range(1, 65) if mask >> (sig - 1) & 1]
    if len(members) > 32:
        others = [sig for sig in range(1, 65) if not mask >> (sig - 1) & 1]
        return "~[" + " ".join(signal_name(s, prefix=False) for s in others) + "]"
    return "[" + " ".join(signal_name(s, prefix=False) for s in members) + "]"


EPOLL_EVENT_SIZE = 12  # packed on x86-64: u32 events, u64 data


def epoll_event_text(data: bytes) -> str:
    """struct epoll_event as strace shows it: {events=EPOLLIN, data={u32=..., u64=...}}."""
    events, value = struct.unpack("<IQ", data[:EPOLL_EVENT_SIZE])
    return f"{{events={_bits(events, _EPOLL)}, data={{u32={value & 0xFFFFFFFF}, u64={value}}}}}"


def sigaction_text(data: bytes) -> str:
    """The kernel's struct sigaction (handler, flags, restorer, mask: 32 bytes)."""
    handler, flags, restorer, mask = struct.unpack("<QQQQ", data[:32])
    shown = {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, hex(handler))
    sa_flags = _bits(flags & 0xFFFFFFFF, _SA_FLAGS)
    text = f"{{sa_handler={shown}, sa_mask={signal_set(mask)}, sa_flags={sa_flags}"
    if flags & 0x04000000:
        text += f", sa_restorer={hex(restorer)}"
    return text + "}"


def stack_text(data: bytes) -> str:
    """stack_t: {ss_sp=0x..., ss_flags=SS_ONSTACK, ss_size=65536}."""
    sp, flags, size = struct.unpack("<Qi4xQ", data[:24])
    shown_sp = "NULL" if sp == 0 else hex(sp)
    ss_flags = _bits(flags & 0xFFFFFFFF, _SS_FLAGS)
    return f"{{ss_sp={shown_sp}, ss_flags={ss_flags}, ss_size={size}}}"


def siginfo_text(data: bytes) -> str:
    """The fields of a siginfo_t strace shows for a kill, sigqueue, a fault or a timer."""
    signo, _, code = struct.unpack("<iii", data[:12])
    code_name = _FAULT_CODES.get(signo, {}).get(code) if code > 0 and code != 0x80 else None
    code_name = code_name or _SI_CODES.get(code, str(code))
    text = f"{{si_signo={signal_name(signo)}, si_code={code_name}"
    if code == -2 and len(data) >= 32:  # SI_TIMER: a POSIX timer's
        timerid, overrun, value = struct.unpack("<iiQ", data[16:32])
        pointer = "NULL" if value == 0 else hex(value)
        text += f", si_timerid={timerid}, si_overrun={overrun}, si_int={_s32(value)}, si_ptr={pointer}"
    elif code == -1 and len(data) >= 32:  # SI_QUEUE: sigqueue's, with its value
        pid, uid, value = struct.unpack("<iIQ", data[16:32])
        pointer = "NULL" if value == 0 else hex(value)
        text += f", si_pid={pid}, si_uid={uid}, si_int={_s32(value)}, si_ptr={pointer}"
    elif code <= 0:
        pid, uid = struct.unpack("<iI", data[16:24])
        text += f", si_pid={pid}, si_uid={uid}"
    elif signo in _FAULT_CODES:
        (address,) = struct.unpack("<Q", data[16:24])
        text += f", si_addr={'NULL' if address == 0 else hex(address)}"
    return text + "}"


# kind: (bytes it reads, formatter); the upper-case kind is the same struct filled by the call
STRUCT_KINDS: dict[str, tuple[int, Callable[[bytes], str]]] = {
    "sigset": (8, lambda data: signal_set(int.from_bytes(data[:8], "little"))),
    "sigaction": (32, sigaction_text),
    "stack": (24, stack_text),
    "siginfo": (32, siginfo_text),
    "epevent": (EPOLL_EVENT_SIZE, epoll_event_text),
}
_RLIMIT = {
    0: "RLIMIT_CPU",
    1: "RLIMIT_FSIZE",
    2: "RLIMIT_DATA",
    3: "RLIMIT_STACK",
    4: "RLIMIT_CORE",
    5: "RLIMIT_RSS",
    6: "RLIMIT_NPROC",
    7: "RLIMIT_NOFILE",
    8: "RLIMIT_MEMLOCK",
    9: "RLIMIT_AS",
    10: "RLIMIT_LOCKS",
    11: "RLIMIT_SIGPENDING",
    12: "RLIMIT_MSGQUEUE",
    13: "RLIMIT_NICE",
    14: "RLIMIT_RTPRIO",
    15: "RLIMIT_RTTIME",
}
_GRND = [(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]
_CLOCKS = {
    0: "CLOCK_REALTIME",
    1: "CLOCK_MONOTONIC",
    2: "CLOCK_PROCESS_CPUTIME_ID",
    3: "CLOCK_THREAD_CPUTIME_ID",
    4: "CLOCK_MONOTONIC_RAW",
    5: "CLOCK_REALTIME_COARSE",
    6: "CLOCK_MONOTONIC_COARSE",
    7: "CLOCK_BOOTTIME",
}
_IOCTLS = {
    0x5401: "TCGETS",
    0x5402: "TCSETS",
    0x5403: "TCSETSW",
    0x5404: "TCSETSF",
    0x540F: "TIOCGPGRP",
    0x5413: "TIOCGWINSZ",
    0x5414: "TIOCSWINSZ",
    0x541B: "FIONREAD",
    0x5421: "FIONBIO",
}
_PRCTL = {
    1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
    15: "PR_SET_NAME", 16: "PR_GET_NAME", 22: "PR_SET_SECCOMP", 23: "PR_CAPBSET_READ",
    36: "PR_SET_CHILD_SUBREAPER", 38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS",
    0x53564D41: "PR_SET_VMA",
}  # fmt: skip
_FCNTL = {
    0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK",
    6: "F_SETLK", 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 1024: "F_SETLEASE",
    1025: "F_GETLEASE", 1026: "F_NOTIFY", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ",
    1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS", 1034: "F_GET_SEALS",
}  # fmt: skip
_MREMAP = [(1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP")]
_RUSAGE = {0: "RUSAGE_SELF", -1: "RUSAGE_CHILDREN", 1: "RUSAGE_THREAD"}
_ADDRESS_FAMILIES = {
    0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET",
}  # fmt: skip
_SOCKET_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 5: "SOCK_SEQPACKET"}
_SOCKET_TYPE_FLAGS = [(0x800, "SOCK_NONBLOCK"), (0x80000, "SOCK_CLOEXEC")]


def socket_type(value: int) -> str:
    """socket()'s type: the kind, then SOCK_NONBLOCK/SOCK_CLOEXEC, as strace shows it."""
    value &= 0xFFFFFFFF
    names = [_SOCKET_TYPES.get(value & 0xF, str(value & 0xF))]
    flags = _bits(value & ~0xF, _SOCKET_TYPE_FLAGS)
    return "|".join(names + ([flags] if value & ~0xF else []))


def fcntl_argument(command: int, value: int) -> str:
    """fcntl's third argument as its command reads it: an fd, FD_CLOEXEC or file flags."""
    if command in (0, 1030, 1031):  # F_DUPFD, F_DUPFD_CLOEXEC (the lowest fd), F_SETPIPE_SZ
        return str(_s32(value))
    if command == 2:  # F_SETFD
        return _bits(value & 0xFFFFFFFF, [(1, "FD_CLOEXEC")])
    if command == 4:  # F_SETFL
        return open_flags(value)
    return hex(value) if value else "0"


_WHENCE = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
_MADVISE = {
    0: "MADV_NORMAL",
    1: "MADV_RANDOM",
    2: "MADV_SEQUENTIAL",
    3: "MADV_WILLNEED",
    4: "MADV_DONTNEED",
    8: "MADV_FREE",
    9: "MADV_REMOVE",
    10: "MADV_DONTFORK",
    11: "MADV_DOFORK",
    12: "MADV_MERGEABLE",
    13: "MADV_UNMERGEABLE",
    14: "MADV_HUGEPAGE",
    15: "MADV_NOHUGEPAGE",
}
AT_FDCWD = -100


def _bits(value: int, table: list[tuple[int, str]], *, zero: str = "0") -> str:
    names = []
    for bit, name in table:
        if bit and value & bit == bit:
            names.append(name)
            value &= ~bit
    if value:
        names.append(hex(value))
    return "|".join(names) if names else zero


def _enum(value: int, table: dict[int, str]) -> str:
    """An int argument by name; one without a name in hex, as strace shows it."""
    value &= 0xFFFFFFFF
    return table.get(value, hex(value))


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def open_flags(value: int) -> str:
    value &= 0xFFFFFFFF
    rest = _bits(value & ~3, _O_FLAGS, zero="")
    mode = _O_ACCMODE[value & 3]
    return f"{mode}|{rest}" if rest else mode


def map_flags(value: int) -> str:
    value &= 0xFFFFFFFF
    kind = _MAP_TYPE.get(value & 0xF)
    rest = _bits(value & ~0xF, _MAP, zero="")
    if kind is None:
        return _bits(value, _MAP)
    return f"{kind}|{rest}" if rest else kind


def clone_flags(value: int) -> str:
    value &= U64
    signal = value & 0xFF
    text = _bits(value & ~0xFF, _CLONE, zero="")
    if signal:
        signal_name = _SIGNALS.get(signal, str(signal))
        text = f"{text}|{signal_name}" if text else signal_name
    return text or "0"


def futex_op(value: int) -> str:
    value &= 0xFFFFFFFF
    names = [_FUTEX_OPS.get(value & 0x7F, str(value & 0x7F))]
    if value & 128:
        names[0] += "_PRIVATE"
    if value & 256:
        names.append("FUTEX_CLOCK_REALTIME")
    if value & ~0x1FF:
        names.append(hex(value & ~0x1FF))
    return "|".join(names)


_POLL = [
    (0x1, "POLLIN"), (0x2, "POLLPRI"), (0x4, "POLLOUT"), (0x8, "POLLERR"), (0x10, "POLLHUP"),
    (0x20, "POLLNVAL"), (0x40, "POLLRDNORM"), (0x80, "POLLRDBAND"), (0x100, "POLLWRNORM"),
    (0x200, "POLLWRBAND"), (0x400, "POLLMSG"), (0x2000, "POLLRDHUP"),
]  # fmt: skip
_EPOLL = [(bit, "E" + name) for bit, name in _POLL] + [
    (1 << 28, "EPOLLEXCLUSIVE"), (1 << 29, "EPOLLWAKEUP"), (1 << 30, "EPOLLONESHOT"),
    (1 << 31, "EPOLLET"),
]  # fmt: skip


def _argument_at(args: tuple[int, ...], kind: str) -> int:
    """The argument a `kind:N` names (0 if the call has fewer)."""
    index = int(kind.split(":", 1)[1])
    return args[index] if index < len(args) else 0


_FLAG_KINDS: dict[str, Callable[[int], str]] = {
    "open": open_flags,
    "fdflags": lambda v: _bits(v & 0xFFFFFFFF, _O_FLAGS),
    "prot": lambda v: _bits(v & 0xFFFFFFFF, _PROT, zero="PROT_NONE"),
    "map": map_flags,
    "clone": clone_flags,
    "futex": futex_op,
    "arch_prctl": lambda v: _ARCH_PRCTL.get(v & 0xFFFFFFFF, hex(v)),
    "atflags": lambda v: _bits(v & 0xFFFFFFFF, _AT_FLAGS),
    "signal": lambda v: signal_name(_s32(v)),
    "sighow": lambda v: _enum(v, _SIGHOW),
    "rlimit": lambda v: _enum(v, _RLIMIT),
    "grnd": lambda v: _bits(v & 0xFFFFFFFF, _GRND),
    "clock": lambda v: _enum(v, _CLOCKS),
    "ioctl": lambda v: _IOCTLS.get(v & 0xFFFFFFFF, hex(v & 0xFFFFFFFF)),
    "whence": lambda v: _enum(v, _WHENCE),
    "madv": lambda v: _enum(v, _MADVISE),
    "itimer": lambda v: _enum(v, {0: "ITIMER_REAL", 1: "ITIMER_VIRTUAL", 2: "ITIMER_PROF"}),
    "timer": lambda v: "TIMER_ABSTIME" if v & 0xFFFFFFFF == 1 else str(_s32(v)),
    "prctl": lambda v: _enum(v, _PRCTL),
    "fcntl": lambda v: _enum(v, _FCNTL),
    "mremap": lambda v: _bits(v & 0xFFFFFFFF, _MREMAP),
    "rusage": lambda v: _RUSAGE.get(_s32(v), hex(v & 0xFFFFFFFF)),
    "af": lambda v: _enum(v, _ADDRESS_FAMILIES),
    "socktype": socket_type,
    "access": lambda v: _bits(v & 0xFFFFFFFF, [(4, "R_OK"), (2, "W_OK"), (1, "X_OK")], zero="F_OK"),
    "epoll_flags": lambda v: _bits(v & 0xFFFFFFFF, [(0o2000000, "EPOLL_CLOEXEC")]),
    "efd": lambda v: _bits(v & 0xFFFFFFFF, [(1, "EFD_SEMAPHORE"), (0o2000000, "EFD_CLOEXEC"),
                                            (0o4000, "EFD_NONBLOCK")]),
    "epoll_op": lambda v: _enum(v, {1: "EPOLL_CTL_ADD", 2: "EPOLL_CTL_DEL", 3: "EPOLL_CTL_MOD"}),
    "rename": lambda v: _bits(v & 0xFFFFFFFF, [(1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"),
                                               (4, "RENAME_WHITEOUT")]),
    "mcl": lambda v: _bits(v & 0xFFFFFFFF, [(1, "MCL_CURRENT"), (2, "MCL_FUTURE"),
                                            (4, "MCL_ONFAULT")]),
    "falloc": lambda v: _bits(v & 0xFFFFFFFF, [(1, "FALLOC_FL_KEEP_SIZE"), (2, "FALLOC_FL_PUNCH_HOLE"),
                                               (0x10, "FALLOC_FL_ZERO_RANGE")]),
}

# name: (argument kinds, result kind)
SIGNATURES: dict[str, tuple[tuple[str, ...], str]] = {
    "read": (("d", "B:2", "u"), "d"),
    "write": (("d", "b:2", "u"), "d"),
    "open": (("s", "open", "o"), "d"),
    "close": (("d",), "d"),
    "stat": (("s", "x"), "d"),
    "fstat": (("d", "x"), "d"),
    "lstat": (("s", "x"), "d"),
    "poll": (("pollfd:1", "u", "d"), "d"),
    "select": (("d", "fdset:0", "fdset:0", "fdset:0", "x"), "d"),
    "pselect6": (("d", "fdset:0", "fdset:0", "fdset:0", "x", "x"), "d"),
    "ppoll": (("pollfd:1", "u", "x", "x", "u"), "d"),
    "lseek": (("d", "ld", "whence"), "d"),
    "mmap": (("x", "u", "prot", "map", "d", "off"), "x"),
    "mprotect": (("x", "u", "prot"), "d"),
    "munmap": (("x", "u"), "d"),
    "brk": (("x",), "x"),
    "rt_sigaction": (("signal", "sigaction", "SIGACTION", "u"), "d"),
    "rt_sigprocmask": (("sighow", "sigset", "SIGSET", "u"), "d"),
    "rt_sigreturn": ((), "d"),
    "rt_sigpending": (("SIGSET", "u"), "d"),
    "rt_sigsuspend": (("sigset", "u"), "d"),
    "rt_sigtimedwait": (("sigset", "SIGINFO", "x", "u"), "d"),
    "ioctl": (("d", "ioctl", "x"), "d"),
    "pread64": (("d", "B:2", "u", "ld"), "d"),
    "pwrite64": (("d", "b:2", "u", "ld"), "d"),
    "readv": (("d", "IOV:2", "d"), "d"),
    "writev": (("d", "iov:2", "d"), "d"),
    "preadv": (("d", "IOV:2", "d", "ld"), "d"),
    "pwritev": (("d", "iov:2", "d", "ld"), "d"),
    "sendfile": (("d", "d", "x", "u"), "d"),
    "getrusage": (("rusage", "x"), "d"),
    "times": (("x",), "d"),
    "access": (("s", "access"), "d"),
    "pipe": (("FDS",), "d"),
    "pipe2": (("FDS", "fdflags"), "d"),
    "sched_yield": ((), "d"),
    "mremap": (("x", "u", "u", "mremap", "x"), "x"),
    "madvise": (("x", "u", "madv"), "d"),
    "dup": (("d",), "d"),
    "dup2": (("d", "d"), "d"),
    "dup3": (("d", "d", "fdflags"), "d"),
    "nanosleep": (("x", "x"), "d"),
    "getpid": ((), "d"),
    "socket": (("af", "socktype", "d"), "d"),
    "getsockname": (("d", "x", "x"), "d"),
    "getpeername": (("d", "x", "x"), "d"),
    "clone": (("clone", "x", "x", "x", "x"), "d"),
    "fork": ((), "d"),
    "vfork": ((), "d"),
    "execve": (("s", "x", "x"), "d"),
    "exit": (("d",), "d"),
    "wait4": (("d", "x", "x", "x"), "d"),
    "kill": (("d", "signal"), "d"),
    "uname": (("x",), "d"),
    "fcntl": (("d", "fcntl", "fcntlarg"), "d"),
    "getcwd": (("x", "u"), "d"),
    "chdir": (("s",), "d"),
    "fchdir": (("d",), "d"),
    "mkdir": (("s", "o"), "d"),
    "unlink": (("s",), "d"),
    "readlink": (("s", "B:2", "u"), "d"),
    "gettimeofday": (("x", "x"), "d"),
    "umask": (("o",), "o"),
    "sysinfo": (("x",), "d"),
    "getitimer": (("itimer", "x"), "d"),
    "setitimer": (("itimer", "x", "x"), "d"),
    "alarm": (("u",), "d"),
    "getuid": ((), "d"),
    "getgid": ((), "d"),
    "geteuid": ((), "d"),
    "getegid": ((), "d"),
    "getppid": ((), "d"),
    "getpgrp": ((), "d"),
    "gettid": ((), "d"),
    "sigaltstack": (("stack", "STACK"), "d"),
    "prctl": (("prctl", "x", "x", "x", "x"), "d"),
    "arch_prctl": (("arch_prctl", "x"), "d"),
    "tkill": (("d", "signal"), "d"),
    "futex": (("x", "futex", "d", "x", "x", "d"), "d"),
    "sched_setaffinity": (("d", "u", "x"), "d"),
    "sched_getaffinity": (("d", "u", "x"), "d"),
    "time": (("x",), "d"),
    "getdents64": (("d", "x", "u"), "d"),
    "set_tid_address": (("x",), "d"),
    "clock_gettime": (("clock", "x"), "d"),
    "clock_getres": (("clock", "x"), "d"),
    "clock_nanosleep": (("clock", "timer", "x", "x"), "d"),
    "getcpu": (("x", "x", "x"), "d"),
    "timer_create": (("clock", "x", "x"), "d"),
    "timer_settime": (("d", "timer", "x", "x"), "d"),
    "timer_gettime": (("d", "x"), "d"),
    "timer_getoverrun": (("d",), "d"),
    "timer_delete": (("d",), "d"),
    "pause": ((), "d"),
    "exit_group": (("d",), "d"),
    "tgkill": (("d", "d", "signal"), "d"),
    "rt_sigqueueinfo": (("d", "signal", "siginfo"), "d"),
    "rt_tgsigqueueinfo": (("d", "d", "signal", "siginfo"), "d"),
    "openat": (("dirfd", "s", "open", "o"), "d"),
    "mkdirat": (("dirfd", "s", "o"), "d"),
    "newfstatat": (("dirfd", "s", "x", "atflags"), "d"),
    "unlinkat": (("dirfd", "s", "x"), "d"),
    "readlinkat": (("dirfd", "s", "B:3", "u"), "d"),
    "faccessat": (("dirfd", "s", "access"), "d"),
    "faccessat2": (("dirfd", "s", "access", "atflags"), "d"),
    "getgroups": (("d", "x"), "d"),
    "set_robust_list": (("x", "u"), "d"),
    "get_robust_list": (("d", "x", "x"), "d"),
    "prlimit64": (("d", "rlimit", "x", "x"), "d"),
    "getrandom": (("B:1", "u", "grnd"), "d"),
    "membarrier": (("d", "d", "d"), "d"),
    "statx": (("dirfd", "s", "atflags", "x", "x"), "d"),
    "rseq": (("x", "x", "d", "x"), "d"),  # strace shows the length in hex
    "clone3": (("x", "u"), "d"),
    "getrlimit": (("rlimit", "x"), "d"),
    "setrlimit": (("rlimit", "x"), "d"),
    "eventfd": (("u",), "d"),
    "eventfd2": (("u", "efd"), "d"),
    "epoll_create": (("d",), "d"),
    "epoll_create1": (("epoll_flags",), "d"),
    "epoll_ctl": (("d", "epoll_op", "d", "epevent"), "d"),
    "epoll_wait": (("d", "EPEVENTS:2", "d", "d"), "d"),
    "epoll_pwait": (("d", "EPEVENTS:2", "d", "d", "sigset", "u"), "d"),
    "epoll_pwait2": (("d", "EPEVENTS:2", "d", "x", "sigset", "u"), "d"),
    # the writable filesystem's calls
    "creat": (("s", "o"), "d"),
    "rmdir": (("s",), "d"),
    "rename": (("s", "s"), "d"),
    "renameat": (("dirfd", "s", "dirfd", "s"), "d"),
    "renameat2": (("dirfd", "s", "dirfd", "s", "rename"), "d"),
    "link": (("s", "s"), "d"),
    "linkat": (("dirfd", "s", "dirfd", "s", "atflags"), "d"),
    "symlink": (("s", "s"), "d"),
    "symlinkat": (("s", "dirfd", "s"), "d"),
    "truncate": (("s", "ld"), "d"),
    "ftruncate": (("d", "ld"), "d"),
    "fsync": (("d",), "d"),
    "fdatasync": (("d",), "d"),
    "syncfs": (("d",), "d"),
    "sync": ((), "d"),
    "chmod": (("s", "o"), "d"),
    "fchmod": (("d", "o"), "d"),
    "fchmodat": (("dirfd", "s", "o"), "d"),
    "chown": (("s", "d", "d"), "d"),
    "lchown": (("s", "d", "d"), "d"),
    "fchown": (("d", "d", "d"), "d"),
    "fchownat": (("dirfd", "s", "d", "d", "atflags"), "d"),
    "utimensat": (("dirfd", "s", "x", "atflags"), "d"),
    "statfs": (("s", "x"), "d"),
    "fstatfs": (("d", "x"), "d"),
    "fallocate": (("d", "falloc", "ld", "ld"), "d"),
    "flock": (("d", "d"), "d"),
    "mlock": (("x", "u"), "d"),
    "munlock": (("x", "u"), "d"),
    "mlock2": (("x", "u", "x"), "d"),
    "mlockall": (("mcl",), "d"),
    "munlockall": ((), "d"),
}

_ESCAPES = {
    0x09: "\\t",
    0x0A: "\\n",
    0x0B: "\\v",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}


def _short_escape(byte: int) -> str:
    if byte in _ESCAPES:
        return _ESCAPES[byte]
    return chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:o}"


_SHORT = [_short_escape(b) for b in range(256)]
_LONG = [f"\\{b:03o}" for b in range(256)]
# An octal escape right before a digit would swallow it: those take three digits.
_OCTAL_BEFORE_DIGIT = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f-\xff](?=[0-7])")


def quote(data: bytes, *, truncated: bool = False, hex_bytes: bool = False) -> str:
    """strace's quoting: printable ASCII as is, C escapes, octal for the rest
    (three digits only before a digit: `"\\0012"`, `"\\0"`); every byte as \\xNN
    with `hex_bytes` (strace's choice for random bytes); `...` after the closing
    quote when the data went on."""
    if hex_bytes:
        body = "".join(f"\\x{b:02x}" for b in data)
    else:
        parts = [_SHORT[b] for b in data]
        for match in _OCTAL_BEFORE_DIGIT.finditer(data):
            parts[match.start()] = _LONG[data[match.start()]]
        body = "".join(parts)
    return '"' + body + '"' + ("..." if truncated else "")


def read_bytes(read: Reader, address: int, length: int) -> bytes | None:
    """Read `length` bytes, or as many as are readable page by page from the
    start; None when not even the first byte is."""
    if length <= 0:
        return b""
    data = _safe_read(read, address, length)
    if data is not None:
        return data
    parts = []
    position, end = address, address + length
    while position < end:
        chunk = min(end, (position // PAGE_SIZE + 1) * PAGE_SIZE) - position
        data = _safe_read(read, position, chunk)
        if data is None:
            break
        parts.append(data)
        position += chunk
    return b"".join(parts) if parts else None


def _safe_read(read: Reader, address: int, length: int) -> bytes | None:
    if address <= 0 or address + length > U64 + 1:
        return None
    try:
        data = read(address, length)
    except Exception:
        return None
    return bytes(data) if data is not None and len(data) == length else None


def read_cstring(read: Reader, address: int, limit: int) -> tuple[bytes, bool] | None:
    """Up to `limit` bytes of a NUL-terminated string: (bytes, truncated),
    or None when unreadable."""
    data = read_bytes(read, address, limit + 1)
    if data is None:
        return None
    end = data.find(b"\0")
    if end >= 0:
        return data[:end], False
    return data[:limit], True


@dataclass(frozen=True)
class Capture:
    """`data` was at `address` when the call entered or returned (a history record's)."""

    address: int
    data: bytes

    @property
    def end(self) -> int:
        return self.address + len(self.data)


MEMORY_NOW = "/* memory now */"


class CallMemory:
    """One call's memory: its captures first, then guest memory as it is now."""

    def __init__(self, captures: Sequence[Capture], read: Reader):
        self.captures = [c for c in captures if c.data]
        self.read = read

    def _captured(self, address: int, length: int) -> bytes:
        """The bytes from `address` on that captures cover without a gap."""
        out = b""
        position, end = address, address + length
        while position < end:
            capture = next((c for c in self.captures if c.address <= position < c.end), None)
            if capture is None:
                break
            piece = capture.data[position - capture.address : end - capture.address]
            out += piece
            position += len(piece)
        return out

    def fetch(self, address: int, length: int) -> tuple[bytes | None, int | None]:
        """(up to `length` bytes, the index of the first byte read from memory now or
        None when the captures held them all); (None, None) when nothing is readable."""
        if length <= 0:
            return b"", None
        captured = self._captured(address, length)
        if len(captured) == length:
            return captured, None
        rest = read_bytes(self.read, address + len(captured), length - len(captured))
        if rest is None:
            return (captured, None) if captured else (None, None)
        return captured + rest, len(captured)


# The kernel's own codes for a call a signal interrupted, as strace shows them: the
# app never sees them (it gets EINTR, or the call runs again).
# The kernel's restart codes, which a signal turns into EINTR or a restart; strace's texts.
_RESTART_CODES = {
    512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
    513: ("ERESTARTNOINTR", "To be restarted"),
    514: ("ERESTARTNOHAND", "To be restarted if no handler"),
    516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal"),
}


def errno_text(ret: int) -> str | None:
    """`-1 ENOENT (No such file or directory)` for a failing result, else None."""
    if not -MAX_ERRNO <= ret <= -1:
        return None
    if -ret in _RESTART_CODES:
        name, text = _RESTART_CODES[-ret]
        return f"? {name} ({text})"
    name = errno.errorcode.get(-ret, f"E{-ret}")
    return f"-1 {name} ({os.strerror(-ret)})"


class CallFormatter:
    """Formats one syscall's arguments and result.

    `read` is the guest memory reader; `limit` caps strings and buffers (as
    strace -s); `raw` shows every argument in hex, nothing dereferenced.
    """

    def __init__(self, read: Reader, *, limit: int = 32, raw: bool = False):
        self.read = read
        self.limit = limit
        self.raw = raw
        self._memory = CallMemory((), read)
        self._mark = False
        self._used_now = False
        self.memory_now: list[int] = []  # of the last arguments(): marked memory now

    def arguments(
        self,
        name: str,
        args: tuple[int, ...],
        ret: int | None,
        *,
        captures: Sequence[Capture] = (),
        live_is_call_time: bool = False,
    ) -> tuple[list[str], dict[int, str]]:
        """(shown arguments, {index: the decoded bytes as text}) for one call.

        Pointer arguments come from `captures` where they cover them; bytes they
        do not cover are read now and marked `/* memory now */`, unless
        `live_is_call_time`.  `memory_now` lists the marked arguments afterwards.
        """
        self.memory_now = []
        signature = None if self.raw else SIGNATURES.get(name)
        if signature is None:
            return [hex(a & U64) for a in args], {}
        self._memory = CallMemory(captures, self.read)
        self._mark = not live_is_call_time
        shown, strings = [], {}
        for index, kind in enumerate(signature[0]):
            if index >= len(args):
                break
            self._used_now = False
            text, data = self._argument(name, kind, args[index], args, ret)
            if self._used_now and self._mark:
                text += " " + MEMORY_NOW
                self.memory_now.append(index)
            shown.append(text)
            if data is not None:
                strings[index] = data.decode("utf-8", "backslashreplace")
        return shown, strings

    def result(self, name: str, ret: int) -> str:
        failure = errno_text(ret)
        if failure:
            return failure
        signature = SIGNATURES.get(name)
        if signature is not None and signature[1] == "x" and not self.raw:
            return hex(ret & U64)
        if signature is not None and signature[1] == "o" and not self.raw:
            return f"0{ret:o}" if ret else "0"    # umask's old mask, as strace
        return str(ret)

    def _argument(
        self, name: str, kind: str, value: int, args: tuple[int, ...], ret: int | None
    ) -> tuple[str, bytes | None]:
        value &= U64
        if kind == "d":
            return str(_s32(value)), None
        if kind == "ld":
            return str(signed64(value)), None
        if kind == "u":
            return str(value), None
        if kind == "x":
            return "NULL" if value == 0 else hex(value), None
        if kind == "off":
            return hex(value) if value else "0", None
        if kind == "o":
            return f"0{value & 0xFFFFFFFF:o}" if value else "0", None
        if kind == "dirfd":
            fd = _s32(value)
            return ("AT_FDCWD" if fd == AT_FDCWD else str(fd)), None
        if kind == "s":
            string = self._cstring(value) if value else None
            if string is None:
                return ("NULL" if value == 0 else hex(value)), None
            return quote(string[0], truncated=string[1]), string[0]
        if kind.startswith(("b:", "B:")):
            length_index = int(kind[2:])
            length = args[length_index] & U64 if length_index < len(args) else 0
            if kind[0] == "B":
                if ret is None or ret < 0:
                    return hex(value), None
                length = min(length, ret)
            return self._buffer(value, length, hex_bytes=name == "getrandom")
        if kind == "FDS":
            data = None if ret is None or ret < 0 else self._fetch(value, 8)
            if data is None or len(data) < 8:
                return hex(value), None
            return "[{}, {}]".format(*struct.unpack("<ii", data)), None
        if kind.startswith("pollfd:"):
            return self._pollfds(value, _s32(_argument_at(args, kind))), None
        if kind.startswith("EPEVENTS:"):
            if ret is None or ret < 0:
                return hex(value), None     # filled by the call: not yet, or not at all
            return self._epoll_events(value, min(ret, _s32(_argument_at(args, kind)))), None
        if kind.startswith("fdset:"):
            return self._fdset(value, _s32(_argument_at(args, kind))), None
        if kind.startswith(("iov:", "IOV:")):
            count_index = int(kind[4:])
            count = _s32(args[count_index]) if count_index < len(args) else 0
            if kind[0] == "I":  # filled by the call: its result says how much
                if ret is None or ret < 0:
                    return hex(value), None
                return self._iovec(value, count, ret)
            return self._iovec(value, count)
        struct_kind = STRUCT_KINDS.get(kind.lower())
        if struct_kind is not None:
            if value == 0:
                return "NULL", None
            if kind.isupper() and (ret is None or ret < 0):
                return hex(value), None     # filled by the call: not yet, or not at all
            size, formatter = struct_kind
            data = self._fetch(value, size)
            if data is None or len(data) < size:
                return hex(value), None
            return formatter(data), None
        if kind == "fcntlarg":
            return fcntl_argument(_s32(args[1]) if len(args) > 1 else -1, value), None
        decoder = _FLAG_KINDS.get(kind)
        if decoder is not None:
            return decoder(value), None
        return hex(value), None

    def _fetch(self, address: int, length: int) -> bytes | None:
        """`length` bytes of the call's memory, noting when any came from memory now."""
        data, live_from = self._memory.fetch(address, length)
        if live_from is not None and data is not None and live_from < len(data):
            self._used_now = True
        return data

    def _cstring(self, address: int) -> tuple[bytes, bool] | None:
        """As read_cstring, from the call's memory: only the bytes up to the NUL
        (or the limit) count towards the memory-now mark."""
        data, live_from = self._memory.fetch(address, self.limit + 1)
        if data is None:
            return None
        end = data.find(b"\0")
        decisive = end + 1 if end >= 0 else len(data)
        if live_from is not None and live_from < decisive:
            self._used_now = True
        if end >= 0:
            return data[:end], False
        return data[: self.limit], True

    def _buffer(
        self, address: int, length: int, *, hex_bytes: bool = False
    ) -> tuple[str, bytes | None]:
        if length == 0:
            return '""', b""
        data = self._fetch(address, min(length, self.limit))
        if data is None:
            return hex(address), None
        return quote(data, truncated=length > len(data), hex_bytes=hex_bytes), data

    def _pollfds(self, address: int, count: int) -> str:
        """`[{fd=3, events=POLLIN}, ...]`, as strace shows poll's array at entry."""
        if count <= 0 or count > 1024:
            return "[]" if count == 0 else hex(address)
        shown_count = min(count, 8)
        table = self._fetch(address, 8 * shown_count)
        if table is None or len(table) < 8 * shown_count:
            return hex(address)
        parts = [
            f"{{fd={fd}, events={_bits(events & 0xFFFF, _POLL)}}}"
            for fd, events, _ in struct.iter_unpack("<ihh", table)
        ]
        return "[" + ", ".join(parts) + (", ..." if count > shown_count else "") + "]"

    def _epoll_events(self, address: int, count: int) -> str:
        """`[{events=EPOLLIN, data={u32=..., u64=...}}, ...]`: the events epoll_wait
        returned, as strace shows them."""
        if count <= 0:
            return "[]"
        shown_count = min(count, 8)
        table = self._fetch(address, EPOLL_EVENT_SIZE * shown_count)
        if table is None or len(table) < EPOLL_EVENT_SIZE * shown_count:
            return hex(address)
        parts = [
            epoll_event_text(table[i : i + EPOLL_EVENT_SIZE])
            for i in range(0, len(table), EPOLL_EVENT_SIZE)
        ]
        return "[" + ", ".join(parts) + (", ..." if count > shown_count else "") + "]"

    def _fdset(self, address: int, nfds: int) -> str:
        """`[0 3]`: the fds below nfds whose bits are set, as strace shows an fd_set."""
        if address == 0:
            return "NULL"
        nfds = min(nfds, 1024)  # FD_SETSIZE
        if nfds <= 0:
            return "[]"
        data = self._fetch(address, (nfds + 63) // 64 * 8)
        if data is None:
            return hex(address)
        fds = [fd for fd in range(min(nfds, 8 * len(data))) if data[fd // 8] >> (fd % 8) & 1]
        return "[" + " ".join(map(str, fds)) + "]"

    def _iovec(self, address: int, count: int, filled: int | None = None) -> tuple[str, bytes | None]:
        """`[{iov_base="...", iov_len=N}, ...]`; `filled`: only that many bytes in all
        hold data (a readv's result), as strace shows it."""
        if count <= 0 or count > 1024:
            return hex(address), None
        shown_count = min(count, 8)
        table = self._fetch(address, 16 * shown_count)
        if table is None or len(table) < 16 * shown_count:
            return hex(address), None
        parts, joined = [], b""
        for base, length in struct.iter_unpack("<QQ", table):
            used = length if filled is None else min(length, filled)
            text, data = self._buffer(base, used)
            if filled is not None:
                filled -= used
            parts.append(f"{{iov_base={text}, iov_len={length}}}")
            joined += data or b""
        more = ", ..." if count > shown_count else ""
        return "[" + ", ".join(parts) + more + "]", joined
