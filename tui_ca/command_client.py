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

# Only builtin modules and our own: json, struct and socket would cost this
# process more than the rest of its hand-over (their imports compile regular
# expressions and build enums).
import _socket
import os
import signal
import sys

from tui_ca.command_socket import RUN_HERE, WIRE_VERSION, identity_fields, trusted_socket
from tui_ca.command_words import chosen_command

# Signals a terminal or a supervisor sends to the command; the worker gets them instead.
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_INT = 4  # sizeof(int): SCM_RIGHTS and SO_PEERCRED carry C ints
PACKAGE = os.path.dirname(os.path.abspath(__file__))


def request_bytes(argv: list[str]) -> bytes:
    """The hand-over of ``argv`` with this process's folder, umask, identity and environment."""
    umask = os.umask(0o077)
    os.umask(umask)
    fields = [WIRE_VERSION, os.fsencode(os.getcwd()), str(umask).encode(), *identity_fields(PACKAGE),
              str(len(argv)).encode(), *map(os.fsencode, argv),
              *(name + b"=" + value for name, value in os.environb.items())]  # fmt: skip
    body = b"\0".join(fields)
    return len(body).to_bytes(4, "big") + body


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
        cred = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 3 * _INT)
        if int.from_bytes(cred[_INT : 2 * _INT], sys.byteorder) != os.getuid():
            return None
        fds = b"".join(fd.to_bytes(_INT, sys.byteorder) for fd in (0, 1, 2))
        sock.sendmsg([request_bytes(argv)], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
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
        if first is None or first[0] != "pid":
            if relay.pending:
                os.write(2, b"tui-ca: interrupted\n")
                return 128 + relay.pending[0]
            return None  # the server declined ("local"): nothing ran
        relay.start(int(first[1]))
        last = messages.next()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if last is None or last[0] != "exit":
        os.write(2, b"tui-ca: the command server stopped before the command ended; its outcome is unknown\n")
        return 1
    return int(last[1])


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
    """The server's answers: one "WORD VALUE" line each."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self) -> tuple[str, str] | None:
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(4096)
            except ConnectionError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        word, _, value = line.decode("utf-8", "replace").partition(" ")
        if word in ("pid", "exit") and not value.isdigit():
            return None
        return word, value
