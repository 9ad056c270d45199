"""Keep secrets out of core dumps and away from other processes' ptrace.

Called as soon as a process generates or unlocks a CA key or reads a
passphrase: ``PR_SET_DUMPABLE 0`` stops the kernel writing a core (and
systemd-coredump collecting one) and stops processes of the same user from
attaching with ptrace or reading ``/proc/PID/mem``; ``RLIMIT_CORE 0`` covers
systems where prctl is not available. Both last for the life of the process,
which is what an unlocked key in memory needs.
"""

from __future__ import annotations

import resource
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

PR_SET_DUMPABLE = 4
_done = False


def _libc() -> ctypes.CDLL | None:
    # The symbols already loaded into this process (libc among them), rather
    # than ctypes.util.find_library, which imports shutil and may run
    # ldconfig: a one-shot approve pays for whatever this costs.
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl  # noqa: B018 - looked up here so that a libc without it reads as "no prctl"
    except (OSError, AttributeError):
        return None
    return libc


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
