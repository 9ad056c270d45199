"""Where a user's command server listens, and the checks both ends make before trusting it.

The socket lives in a folder only its user can enter. Both ends refuse a
folder or socket that another user owns or could write to, so nobody can
plant a socket that would receive a user's command lines and terminal, or
a server that would run another user's commands. This module imports only
``os``, ``stat`` and ``sys``: every ``tui-ca`` command pays for it.
"""

from __future__ import annotations

import os
import stat
import sys

SOCKET_ENV = "TUI_CA_COMMAND_SOCKET"
"""Names the socket (default: ``$XDG_RUNTIME_DIR/tui-ca/commands.sock``, else under /tmp)."""
SWITCH_ENV = "TUI_CA_COMMAND_SERVER"
"""``off``: run every command in its own process even while a command server listens."""
SOCKET_NAME = "commands.sock"

RUN_HERE = frozenset({None, "tui", "demo", "serve", "command-server"})
"""Commands a server never runs: the UI needs the terminal's signals and size as its
own process, ``serve`` is itself a long-lived process."""


def socket_path() -> str:
    """The socket this user's commands look for."""
    named = os.environ.get(SOCKET_ENV)
    if named:
        return named
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "tui-ca", SOCKET_NAME)
    return os.path.join("/tmp", f"tui-ca-{os.getuid()}", SOCKET_NAME)


def private_folder_problem(folder: str) -> str | None:
    """Why ``folder`` may not hold a command socket (None: it is a folder only this user can enter)."""
    try:
        info = os.lstat(folder)
    except OSError as exc:
        return f"cannot read {folder}: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{folder} is not a folder"
    if info.st_uid != os.getuid():
        return f"{folder} belongs to another user"
    if info.st_mode & 0o077:
        return f"{folder} is open to other users (mode {stat.S_IMODE(info.st_mode):o}; it must be 700)"
    return None


def trusted_socket(path: str) -> bool:
    """Whether ``path`` is a socket of this user in a private folder (the client's check, which never speaks)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
        return False
    return private_folder_problem(os.path.dirname(path) or ".") is None


# The hand-over, client to server: a 4-byte big-endian length, then NUL-separated
# fields (argv, environment entries and paths never hold a NUL, so nothing needs
# escaping, and no JSON parser needs importing): VERSION, cwd, umask, then the
# identity (identity_fields), then the argument count, the arguments, and the
# environment as NAME=VALUE entries. Server to client: text lines "pid N",
# "exit N" or "local REASON".
WIRE_VERSION = b"tui-ca-commands-1"
IDENTITY_FIELDS = 5
"""How many fields ``identity_fields`` makes (prefix, interpreter, package, ids, groups)."""


def identity_fields(package: str) -> list[bytes]:
    """What the server compares with its own before it runs a command as this process would.

    The same interpreter and environment however it was named (python,
    python3, a console script), the same package, the same ids and groups.
    ``IDENTITY_FIELDS`` of them.
    """
    ids = (os.getuid(), os.geteuid(), os.getgid(), os.getegid())
    return [os.fsencode(sys.prefix), os.fsencode(os.path.realpath(sys.executable)), os.fsencode(package),
            ",".join(map(str, ids)).encode(), ",".join(map(str, sorted(os.getgroups()))).encode()]  # fmt: skip
