"""Real OS users and a real admin group for the tests, removed afterwards.

The shared home, the approval policy and the roles are about *who* runs a
process, so these tests create Unix users and groups (useradd/groupadd, as
root: CI runs as root) and run the real ``tui-ca`` command as each of them
through ``setpriv --reuid --regid --init-groups`` (no PAM session, and the
file descriptors of a start barrier survive it). Names carry a random tag, so
two test workers never collide, and everything made is removed afterwards.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import tui_ca

# What each test process runs as its user: the real CLI entry point
# (tui_ca.cli.main, as the console script does), after an optional umask and
# an optional start barrier. The CLI is imported before the barrier, so that
# the racing processes meet when the command starts, not at start-up.
RUNNER = """
import os, sys
umask, ready, go = (int(sys.argv[1], 8), int(sys.argv[2]), int(sys.argv[3]))
if umask >= 0:
    os.umask(umask)
from tui_ca.cli import main
if ready >= 0:
    os.write(ready, b"r")
    os.close(ready)
    os.read(go, 1)
    os.close(go)
sys.exit(main(sys.argv[4:]))
"""
_TOOLS = ("useradd", "userdel", "groupadd", "groupdel", "usermod", "setpriv")
# useradd and groupadd refuse ("cannot lock /etc/passwd") while another one
# runs, so the test workers take turns on this lock for every change.
_TURNS = Path(tempfile.gettempdir()) / "tui-ca-os-users.lock"


def _require_root() -> None:
    # .ci/run sets TUI_CA_OS_USERS=required: there a run that could not make users fails instead of skipping.
    give_up = pytest.fail if os.environ.get("TUI_CA_OS_USERS") == "required" else pytest.skip
    if os.geteuid() != 0:
        give_up("these tests create OS users and need root (CI runs them as root)")
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        give_up(f"{', '.join(missing)} missing: install Debian's passwd and util-linux to run the OS-user tests")


@contextmanager
def _turn() -> Iterator[None]:
    fd = os.open(_TURNS, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _admin_tool(*command: str, check: bool = True) -> None:
    with _turn():
        done = subprocess.run(command, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class Accounts:
    """Users and groups made for one test module, and how to run tui-ca as each."""

    users: Mapping[str, str]
    """Name given by the test -> the real login name."""
    groups: Mapping[str, str]
    """Name given by the test -> the real group name."""
    workdir: Path
    """A folder (0711) every one of them can pass through; the homes go inside."""
    python: str
    """An interpreter every test user can run (this one, unless it lives where they cannot reach)."""
    pythonpath: str
    """Where that interpreter finds tui_ca and its libraries."""

    def command(self, who: str, *args: str, home: Path, umask: str | None = None,
                barrier: tuple[int, int] | None = None) -> list[str]:  # fmt: skip
        """The argv that runs ``tui-ca --home HOME ARGS`` as test user ``who``."""
        entry = pwd.getpwnam(self.users[who])
        ready, go = barrier or (-1, -1)
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--",
                self.python, "-c", RUNNER, umask or "-1", str(ready), str(go), "--home", str(home), *args]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": "/nonexistent",
                "PYTHONPATH": self.pythonpath, "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip

    def run(self, who: str, *args: str, home: Path, umask: str | None = None,
            stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run ``tui-ca`` as ``who`` to the end (a fresh environment: $USER and $HOME are not root's)."""
        return subprocess.run(self.command(who, *args, home=home, umask=umask), input=stdin.decode() if stdin else None,
                              capture_output=True, text=True, env=self.env(), cwd=self.workdir, timeout=120)  # fmt: skip

    def race(self, runs: Sequence[tuple[str, Sequence[str]]], *, home: Path) -> list[subprocess.CompletedProcess[str]]:
        """Start one ``tui-ca`` per (user, args), hold each until all are ready, then let them go at once."""
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        children = []
        try:
            for who, args in runs:
                command = self.command(who, *args, home=home, barrier=(ready_w, go_r))
                children.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                                 env=self.env(), cwd=self.workdir,
                                                 pass_fds=(ready_w, go_r)))  # fmt: skip
            os.close(ready_w)
            ready_w = -1
            arrived = 0
            while arrived < len(children):
                chunk = os.read(ready_r, len(children))
                if not chunk:
                    break  # a child died before the barrier: its output says why
                arrived += len(chunk)
            os.write(go_w, b"g" * len(children))
        finally:
            for fd in (ready_r, ready_w, go_r, go_w):
                if fd >= 0:
                    os.close(fd)
        results = []
        for child in children:
            out, err = child.communicate(timeout=120)
            results.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
        return results


def _interpreter(probe_user: str, workdir: Path) -> tuple[str, str]:
    """An interpreter and PYTHONPATH with which ``probe_user`` imports tui_ca and its libraries."""
    source = str(Path(tui_ca.__file__).resolve().parent.parent)
    libraries = sysconfig.get_paths()["purelib"]
    platlib = sysconfig.get_paths()["platlib"]
    pythonpath = os.pathsep.join(dict.fromkeys([source, libraries, platlib]))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, *(p for p in (shutil.which(version), f"/usr/bin/{version}") if p)]
    tried = []
    entry = pwd.getpwnam(probe_user)
    for python in dict.fromkeys(candidates):
        probe = subprocess.run(["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups",
                                "--", python, "-c", "import tui_ca.cli, cryptography.x509, tinydb"],
                               capture_output=True, text=True, cwd=workdir, timeout=120,
                               env={"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath})  # fmt: skip
        if probe.returncode == 0:
            return python, pythonpath
        tried.append(f"{python}: {probe.stderr.strip().splitlines()[-1:] or probe.returncode}")
    raise AssertionError("no Python the test users can run imports tui_ca (is the venv under a folder they cannot "
                         f"reach, such as /root?): {'; '.join(tried)}")  # fmt: skip


@contextmanager
def accounts(users: Sequence[str], groups: Mapping[str, Sequence[str]]) -> Iterator[Accounts]:
    """Create ``users`` and ``groups`` (name -> members) with a random tag; remove them afterwards."""
    _require_root()
    tag = secrets.token_hex(3)
    real_users = {name: f"tca{tag}{name}"[:31] for name in users}
    real_groups = {name: f"tca{tag}g{name}"[:31] for name in groups}
    workdir = Path(tempfile.mkdtemp(prefix="tui-ca-users-", dir="/tmp"))
    workdir.chmod(0o711)
    made_users: list[str] = []
    made_groups: list[str] = []
    try:
        for group in real_groups.values():
            _admin_tool("groupadd", group)
            made_groups.append(group)
        for user in real_users.values():
            _admin_tool("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user)
            made_users.append(user)
        for name, members in groups.items():
            for member in members:
                _admin_tool("usermod", "-aG", real_groups[name], real_users[member])
        python, pythonpath = _interpreter(next(iter(real_users.values())), workdir)
        yield Accounts(users=real_users, groups=real_groups, workdir=workdir, python=python, pythonpath=pythonpath)
    finally:
        for user in made_users:
            _admin_tool("userdel", user, check=False)
        for group in made_groups:
            _admin_tool("groupdel", group, check=False)
        shutil.rmtree(workdir, ignore_errors=True)
