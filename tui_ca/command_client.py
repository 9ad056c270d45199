"""The console script's side of a command server: hand the command line over, relay the exit.

The command runs in a worker the server forks from a process that has
already imported the engine and ``cryptography``: starting Python and
importing those is most of a one-shot command's time. The worker gets this
process's stdin, stdout and stderr themselves (passed over the socket), its
working folder, environment and umask, so it reads and writes exactly what
this process would. Nothing here holds a key: the worker opens the home and
unlocks the key as the command would. Ctrl-C and other signals reach this
process and are forwarded to the worker.

Anything unexpected (no server, a server of another installation or of
other groups, a refused hand-over) means ``None``: the caller runs the
command itself, so a command server can only make a command start sooner.
"""

from __future__ import annotations

import _socket
import json
import os
import signal
import struct
import sys
from array import array

from tui_ca.command_socket import RUN_HERE, trusted_socket
from tui_ca.command_words import chosen_command

# Signals a terminal or a supervisor sends to the command; the worker gets them instead.
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_PEERCRED = struct.Struct("3i")


def identity() -> dict:
    """What the server compares with its own before it runs a command as this process would."""
    return {
        # The same interpreter and environment, however it was named (python, python3, a console script).
        "executable": [sys.prefix, os.path.realpath(sys.executable)],
        "package": os.path.dirname(os.path.abspath(__file__)),
        "ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups())],
    }


def run_through_server(argv: list[str], path: str) -> int | None:
    """The command's exit code, run by the server at ``path``; None if the caller must run it itself."""
    if chosen_command(argv) in RUN_HERE or "_ARGCOMPLETE" in os.environ or not trusted_socket(path):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        return _hand_over(sock, argv, path)
    finally:
        sock.close()


def _hand_over(sock: _socket.socket, argv: list[str], path: str) -> int | None:
    try:
        sock.connect(path)
        _, uid, _ = _PEERCRED.unpack(sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _PEERCRED.size))
        if uid != os.getuid():
            return None
        umask = os.umask(0o077)
        os.umask(umask)
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask,
                              **identity()}).encode()  # fmt: skip
        fds = array("i", [0, 1, 2])
        sock.sendmsg([struct.pack("!I", len(request)), request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
    except (OSError, UnicodeError, ValueError):
        # No server behind the socket, a closed stdio descriptor, a working folder that is gone.
        return None
    # Signals are caught from the hand-over on: one that comes before the worker's
    # pid is known waits for it (or, if the server declines, ends this command).
    relay = _Relay()
    previous = {sig: signal.signal(sig, relay.catch) for sig in _FORWARDED}
    try:
        messages = _Messages(sock)
        first = messages.next()
        if first is None or "pid" not in first:
            if relay.pending:
                os.write(2, b"tui-ca: interrupted\n")
                return 128 + relay.pending[0]
            return None  # the server declined ("local"): nothing ran
        relay.start(int(first["pid"]))
        last = messages.next()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if last is None or "exit" not in last:
        os.write(2, b"tui-ca: the command server stopped before the command ended; its outcome is unknown\n")
        return 1
    return int(last["exit"])


class _Relay:
    """Forwards this process's signals to the worker, holding those that come before it is known."""

    def __init__(self) -> None:
        self.worker: int | None = None
        self.pending: list[int] = []

    def catch(self, signum: int, _frame: object) -> None:
        if self.worker is None:
            self.pending.append(signum)
        else:
            _forward(self.worker, signum)

    def start(self, worker: int) -> None:
        self.worker = worker
        for signum in self.pending:
            _forward(worker, signum)


def _forward(worker: int, signum: int) -> None:
    try:
        os.kill(worker, signum)
    except ProcessLookupError:
        pass


class _Messages:
    """The server's answers: one JSON object per line."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self) -> dict | None:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(4096)
            except ConnectionError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None
