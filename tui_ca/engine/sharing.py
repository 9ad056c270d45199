"""Whether a CA home is shared by an admin group, and the file modes that follow.

A home is private (0700, private files 0600) unless ``init --admin-group
NAME`` shared it. Then the home records the group in ``sharing.json`` (the
home's own configuration: the group is local to the machine, like the keys,
so it is not a store record that other nodes of a database would see), the
home belongs to that group with the setgid bit, and every file this code
creates in it is 0660 and every folder 2770: setgid makes what is created
inside keep the group, and group write lets the next admin's process replace
what the last one wrote (the store renames new files over old ones).

Modes are set with ``fchmod``/``chmod`` after creating, never left to the
umask: an admin whose umask is 077 would otherwise write files that the next
admin cannot read, and one with 022 would write 0644 where 0660 is needed.

The checks refuse any key, secret or the home itself when others can reach
it, and accept group bits only for the recorded group; with no group
recorded, group bits are refused too (a ``chmod g+r`` by hand does not share
a home). The recorded group and the home folder must agree, or nothing
is written.
"""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path
from typing import NamedTuple

from tui_ca.engine.errors import InputError, UnsafeHomeError

SHARING_FILE = "sharing.json"
SHARED_FILE_MODE = 0o660
SHARED_FOLDER_MODE = 0o2770
# Parents that ``init --admin-group`` has to create: the admins pass through, nobody else.
SHARED_PARENT_MODE = 0o710


# A NamedTuple, not a dataclass: every command reads this (home.py), and dataclasses
# costs start-up time that `show` cannot spare (bench/cli_startup.py).
class Sharing(NamedTuple):
    """The modes new files and folders of one home get, and what the checks accept."""

    gid: int | None
    """The admin group's gid; None for a private home."""
    group: str | None = None
    """The admin group's name, as recorded at init."""

    @classmethod
    def private(cls) -> Sharing:
        """A home no group shares."""
        return cls(gid=None)

    @classmethod
    def of(cls, home: Path) -> Sharing:
        """The sharing recorded in ``home`` (none: private), refused if the home folder disagrees with it."""
        path = Path(home) / SHARING_FILE
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return cls.private()
        except OSError as exc:
            raise UnsafeHomeError(f"cannot read {path}: {exc.strerror}") from None
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        group = doc.get("group") if isinstance(doc, dict) else None
        if not isinstance(group, str) or not group:
            raise UnsafeHomeError(f'{path} is damaged (expected {{"group": "NAME"}}); restore it from a backup')
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise UnsafeHomeError(f"the admin group {group!r} named in {path} does not exist on this machine") from None
        info = os.stat(home)
        mode = stat.S_IMODE(info.st_mode)
        if info.st_gid != gid or mode & 0o007 or not mode & stat.S_ISGID:
            raise UnsafeHomeError(f"the home {home} is shared with group {group!r} ({path}) but is mode {mode:04o} "
                                  f"group {_group_name(info.st_gid)!r}; run chgrp {group} {home} && "
                                  f"chmod 2770 {home}")  # fmt: skip
        return cls(gid=gid, group=group)

    @property
    def shared(self) -> bool:
        """Whether an admin group shares the home."""
        return self.gid is not None

    def file_mode(self, requested: int = 0o600) -> int:
        """Mode for a new file: in a shared home every file is 0660, else the mode asked for."""
        return SHARED_FILE_MODE if self.shared else requested

    @property
    def folder_mode(self) -> int:
        """Mode for new folders (setgid keeps the group on what is made inside)."""
        return SHARED_FOLDER_MODE if self.shared else 0o700

    def allows(self, info: os.stat_result) -> bool:
        """Whether a secret file with this status is safe here: no access for others, group access only
        for the admin group of a shared home."""
        mode = stat.S_IMODE(info.st_mode)
        return not mode & 0o007 and (not mode & 0o070 or (self.shared and info.st_gid == self.gid))

    def check(self, path: Path, *, folder: bool = False) -> None:
        """Refuse a file others can reach, or group access that is not the home's admin group's."""
        info = os.stat(path)
        mode = stat.S_IMODE(info.st_mode)
        fix = ("2770" if folder else "660") if self.shared else ("700" if folder else "600")
        if mode & 0o007:
            raise UnsafeHomeError(f"refusing to use {path}: other users can read it or write it (mode {mode:04o}); "
                                  f"run chmod {fix} on it")  # fmt: skip
        if not mode & 0o070:
            return
        if not self.shared:
            raise UnsafeHomeError(f"refusing to use {path}: its group can access it (mode {mode:04o}) and the home "
                                  f"has no admin group (init --admin-group); run chmod {fix} on it")  # fmt: skip
        if info.st_gid != self.gid:
            raise UnsafeHomeError(f"refusing to use {path}: group {_group_name(info.st_gid)!r} can access it "
                                  f"(mode {mode:04o}), not the admin group {self.group!r}; "
                                  f"run chgrp {self.group} on it")  # fmt: skip

    def new_folder(self, path: Path) -> bool:
        """``mkdir path`` with this home's folder mode whatever the umask; False when it existed."""
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            return False
        os.chmod(path, self.folder_mode)
        return True

    def create(self, path: Path, requested: int = 0o600, flags: int = 0) -> int:
        """Open a new file exclusively (never through a link), with this home's mode whatever the umask."""
        mode = self.file_mode(requested)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | flags, mode & 0o600)
        try:
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open(self, path: Path, flags: int, requested: int = 0o600) -> int:
        """``os.open`` that may create (lock and append files); a file this user owns gets this home's mode."""
        mode = self.file_mode(requested)
        fd = os.open(path, flags | os.O_NOFOLLOW, mode & 0o600)
        try:
            info = os.fstat(fd)
            # Another admin's file already has the mode its process gave it (and only its owner may change it).
            if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != mode:
                os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _unreachable_by_group(home: Path, gid: int) -> Path | None:
    """The first existing parent of ``home`` that members of ``gid`` cannot pass through, if any."""
    for parent in Path(os.path.abspath(home)).parents:
        try:
            info = os.stat(parent)
        except FileNotFoundError:
            continue
        mode = info.st_mode
        if not (mode & 0o001 or (info.st_gid == gid and mode & 0o010)):
            return parent
    return None


def share_home(home: Path, group: str) -> Sharing:
    """Make ``home`` (created if missing, else empty) shared by ``group``: 2770, group-owned, recorded."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise InputError(f"no Unix group named {group!r}") from None
    home = Path(os.path.abspath(home))
    if home.exists():
        current = Sharing.of(home) if (home / SHARING_FILE).exists() else Sharing.private()
        if current.gid != gid and any(home.iterdir()):
            raise InputError(f"{home} is not empty; init --admin-group shares a new home (give another --home)")
    blocked = _unreachable_by_group(home, gid)
    if blocked is not None:
        raise InputError(f"members of group {group!r} cannot reach {home}: {blocked} is closed to them "
                         f"(mode {stat.S_IMODE(os.stat(blocked).st_mode):04o}); choose a home they can reach")  # fmt: skip
    missing = []
    parent = home.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:
                continue
            os.chown(folder, -1, gid)
            os.chmod(folder, SHARED_PARENT_MODE)
        try:
            home.mkdir(mode=0o700)
        except FileExistsError:
            pass
        os.chown(home, -1, gid)
        os.chmod(home, SHARED_FOLDER_MODE)
    except PermissionError as exc:
        raise InputError(f"cannot give {exc.filename or home} to group {group!r}: {exc.strerror} "
                         "(only a member of the group, or root, can)") from None  # fmt: skip
    sharing = Sharing(gid=gid, group=group)
    staging = home / f".{SHARING_FILE}.tmp"
    staging.unlink(missing_ok=True)
    # 0640: every admin reads it, only the one who shared the home changes it.
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o640)
        os.write(fd, (json.dumps({"group": group}) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(staging, home / SHARING_FILE)
    return sharing


def unshare_home(home: Path) -> None:
    """Undo ``share_home`` on a home an init did not finish in (best effort)."""
    try:
        (Path(home) / SHARING_FILE).unlink(missing_ok=True)
        os.chmod(home, 0o700)
    except OSError:
        pass
