"""Keep secrets out of core dumps and away from other processes' ptrace.

Called as soon as a process generates or unlocks a CA key or reads a
passphrase: ``PR_SET_DUMPABLE 0`` stops the kernel writing a core (and
systemd-coredump collecting one) and stops processes of the same user from
attaching with ptrace or reading ``/proc/PID/mem``; ``RLIMIT_CORE 0`` covers
systems where prctl is not available. Both last for the life of the process,
which is what an unlocked key in memory needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
_done = False


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def make_undumpable() -> None:
    """Make this process undumpable (idempotent, cheap after the first call)."""
    global _done
    if _done:
        return
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass  # already lower than asked
    if sys.platform.startswith("linux"):
        libc = _libc()
        if libc is not None:
            libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    _done = True


def is_dumpable() -> bool:
    """Whether the kernel would write a core for this process (for tests and ``check``)."""
    libc = _libc() if sys.platform.startswith("linux") else None
    if libc is not None and libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0:
        return False
    return resource.getrlimit(resource.RLIMIT_CORE)[0] != 0
