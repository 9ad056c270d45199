"""Real OS users and a real admin group for the tests, removed afterwards.

The approval policy and roles are about *who* runs a process, so the tests
create Unix users and groups (useradd/groupadd, as root: CI runs as root) and
run the real ``tui-ca`` as each of them with runuser.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Accounts:
    """Users and groups made for one test."""

    users: tuple[str, ...]
    groups: dict[str, str]
    """Role-ish name given by the test -> the real group name."""
    workdir: Path
    """A folder every one of them can reach (pytest's own tmp is 0700 root)."""


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("creating OS users for the role tests needs root (CI runs as root)")
    for tool in ("useradd", "groupadd", "runuser"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: install the passwd and util-linux packages")


@contextmanager
def accounts(users: Sequence[str], groups: dict[str, Sequence[str]]) -> Iterator[Accounts]:
    """Create ``users`` and ``groups`` (name -> members), with a random suffix; remove them after."""
    _require_root()
    tag = secrets.token_hex(3)
    real_users = tuple(f"tca{tag}{name}"[:31] for name in users)
    by_name = dict(zip(users, real_users, strict=True))
    real_groups = {name: f"tca{tag}{name}"[:31] for name in groups}
    workdir = Path(tempfile.mkdtemp(prefix="tui-ca-roles-", dir="/tmp"))
    workdir.chmod(0o711)
    try:
        for group in real_groups.values():
            subprocess.run(["groupadd", group], check=True, capture_output=True)
        for user in real_users:
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                           check=True, capture_output=True)  # fmt: skip
        for name, members in groups.items():
            for member in members:
                subprocess.run(["usermod", "-aG", real_groups[name], by_name[member]], check=True, capture_output=True)
        yield Accounts(users=real_users, groups=real_groups, workdir=workdir)
    finally:
        for user in real_users:
            subprocess.run(["userdel", user], capture_output=True)
        for group in real_groups.values():
            subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def tui_ca_as(user: str, *args: str, home: Path, stdin: bytes | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``tui-ca --home HOME ARGS`` as ``user`` (a fresh login environment; $USER is theirs)."""
    command = ["runuser", "-u", user, "--", sys.executable, "-m", "tui_ca", "--home", str(home), *args]
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": "/nonexistent"}
    return subprocess.run(command, input=stdin.decode() if stdin else None, capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=120)  # fmt: skip
