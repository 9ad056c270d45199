"""Whether a CA home is shared by an admin group, and the file modes that follow.

A home is private (0700, files 0600) unless ``init --admin-group NAME`` made
it shared: owned by that group with the setgid bit (2770), so every file and
folder created in it belongs to the group. Files are then 0660 (keys and
records alike: each admin's process must be able to rewrite what another's
wrote) and folders 2770. Nothing is ever readable by others: a home, key or
record file with any "other" bit set is refused either way, and group bits
are accepted only on a shared home and only for its own group.

The mode is read from the home folder itself rather than from the
configuration, so the store, the key files and the checks agree without
opening the records first, and ``chmod``/``chgrp`` by hand is all it takes to
share or unshare a home.
"""

from __future__ import annotations

import grp
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from tui_ca.engine.errors import InputError, UnsafeHomeError


@dataclass(frozen=True)
class Sharing:
    """The modes new files and folders of one home get, and what the checks accept."""

    gid: int | None
    """The admin group's gid; None for a private home."""

    @classmethod
    def of(cls, home: Path) -> Sharing:
        """Read it off the home folder (a home that does not exist yet is private)."""
        try:
            info = os.stat(home)
        except FileNotFoundError:
            return cls(gid=None)
        mode = stat.S_IMODE(info.st_mode)
        shared = bool(mode & stat.S_ISGID) and bool(mode & 0o070) and not mode & 0o007
        return cls(gid=info.st_gid if shared else None)

    @property
    def shared(self) -> bool:
        """Whether an admin group shares the home."""
        return self.gid is not None

    @property
    def file_mode(self) -> int:
        """Mode for new private files (keys, records)."""
        return 0o660 if self.shared else 0o600

    @property
    def folder_mode(self) -> int:
        """Mode for new folders (setgid keeps the group on what is made inside)."""
        return 0o2770 if self.shared else 0o700

    def check(self, path: Path) -> None:
        """Refuse a file others can reach, or a group that is not the home's admin group."""
        info = os.stat(path)
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o007:
            raise UnsafeHomeError(f"refusing to use {path}: other users can access it (mode {mode:04o}); "
                                  f"run chmod o-rwx on it")  # fmt: skip
        if mode & 0o070 and (not self.shared or info.st_gid != self.gid):
            raise UnsafeHomeError(f"refusing to use {path}: its group can access it (mode {mode:04o}) but the home "
                                  f"is not shared with that group; run chmod g-rwx on it")  # fmt: skip


def share_home(home: Path, group: str) -> Sharing:
    """Make ``home`` (created if missing) shared by ``group``: 2770, group-owned."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise InputError(f"no Unix group named {group!r}") from None
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(home, -1, gid)
    os.chmod(home, 0o2770)
    return Sharing(gid=gid)
