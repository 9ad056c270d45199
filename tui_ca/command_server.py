"""A command server: ``tui-ca`` commands forked from a process that has imported the engine already.

A one-shot ``tui-ca approve`` spends most of its time starting Python and
importing ``cryptography`` and the engine, not approving. A command server
(``tui-ca command-server``) pays that once; each command the console script
hands it (tui_ca/command_client.py) runs in a worker forked from it, with
the client's stdin, stdout and stderr, working folder, environment and
umask. The worker then does exactly what the command does in its own
process: it opens the home, unlocks the key if it needs it, commits and
exits. The server itself opens no home and holds no key, so it knows
nothing a command of the same user could not read anyway.

The worker is forked before its command comes (tui_ca/command_worker.py):
it accepts the client itself, so nothing but the fork's page copies stands
between a client and its command, and those are made while nobody waits.

Only the user who runs the server can reach it: the socket sits in a
folder of mode 700 (tui_ca/command_socket.py) and the server checks each
peer's uid. It declines (and the client runs the command itself) a client
of another installation, of other groups, or a command that needs its own
process (the UI, ``serve``). When its code on disk changes (an upgrade) it
declines and stops, so a command never runs stale code.
"""

from __future__ import annotations

import array
import gc
import importlib
import os
import selectors
import signal
import socket
import stat
import time
from collections.abc import Callable
from typing import Any

from tui_ca.command_socket import private_folder_problem
from tui_ca.command_worker import Spare, code_stamp, send
from tui_ca.engine.errors import InputError, RuleError

# What the one-shot commands import (python -X importtime over approve, reject,
# revoke, show and list); a command's own lazy imports beyond these cost it
# only their own time.
PRELOADED = (
    "tui_ca.cli", "tui_ca.cli_database", "tui_ca.homes", "tui_ca.engine.ca", "tui_ca.engine.reader",
    "tui_ca.engine.listing_rows", "tui_ca.engine.store.tinydb", "tui_ca.engine.store.listing_files",
    "tui_ca.engine.key_files", "tui_ca.engine.checking", "cryptography.hazmat.backends.openssl.backend", "tui_ca.engine.backup", "cryptography.x509",
    "cryptography.x509.ocsp", "cryptography.hazmat.primitives.serialization",
    "cryptography.hazmat.primitives.serialization.pkcs12", "cryptography.hazmat.primitives.asymmetric.ec",
    "cryptography.hazmat.primitives.asymmetric.rsa", "cryptography.hazmat.primitives.asymmetric.ed25519",
    "cryptography.hazmat.primitives.asymmetric.padding", "cryptography.hazmat.primitives.hashes", "tinydb",
    "orjson", "argparse", "difflib", "getpass", "platformdirs",
)  # fmt: skip
_STOP_WAIT_SECONDS = 60.0
# A spare that ends without taking a client (it should not) is replaced after
# this long at the earliest, so that a broken one cannot make the server spin.
_RESPAWN_SECONDS = 1.0


class CommandServer:
    """Listens on ``path``; a spare worker forked ahead takes each command."""

    def __init__(self, path: str, say: Callable[[str], None] = lambda line: None) -> None:
        self.path = path
        self.say = say
        self.listener: socket.socket | None = None
        self.workers: dict[int, tuple[socket.socket, str]] = {}
        """Each running worker's client connection and command word."""
        self.spare: tuple[int, socket.socket] | None = None
        """The waiting spare's pid and the server's end of its channel."""
        self.stopping = False
        self._inode: tuple[int, int] | None = None
        self._code: dict[str, tuple[int, int]] = {}
        self._parent_only: list[Any] = []
        self._spawned_at = 0.0

    def listen(self) -> None:
        """Import what commands use, then bind the socket; refusals are one line (InputError, RuleError)."""
        for name in PRELOADED:
            try:
                importlib.import_module(name)
            except ImportError:  # an optional part that this installation lacks: its commands import it themselves
                continue
        from tui_ca import cli

        # Every command's parser once, and argparse's and gettext's look-ups
        # and regular expressions with it, instead of once in every worker.
        cli.prepare_parser()
        self._code = code_stamp()
        folder = os.path.dirname(self.path) or "."
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the command socket's folder {folder}: {exc.strerror}") from None
        problem = private_folder_problem(folder)
        if problem is not None:
            raise InputError(f"the command socket's folder: {problem}")
        self._clear_stale_socket()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o177)
        try:
            listener.bind(self.path)
        except OSError as exc:
            listener.close()
            raise InputError(f"cannot listen on {self.path}: {exc.strerror}") from None
        finally:
            os.umask(umask)
        listener.listen(128)
        info = os.stat(self.path)
        self._inode = (info.st_dev, info.st_ino)
        self.listener = listener
        # The workers start as copies of this process: freezing what is here keeps
        # their collections from walking (and their pages from copying) every module.
        gc.collect()
        gc.freeze()

    def _clear_stale_socket(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
            raise InputError(f"{self.path} exists and is not this user's command socket; remove it or choose "
                             "another with $TUI_CA_COMMAND_SOCKET")  # fmt: skip
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)  # left by a server that died: nobody answers on it
            return
        finally:
            probe.close()
        raise RuleError(f"a command server already listens on {self.path}")

    def serve(self) -> None:
        """Run commands until SIGTERM or SIGINT, then wait for the running ones and remove the socket."""
        assert self.listener is not None, "listen() first"
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        selector = selectors.DefaultSelector()
        selector.register(wake_read, selectors.EVENT_READ)
        previous_wakeup = signal.set_wakeup_fd(wake_write)
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGCHLD, signal.SIGTERM,
                                                                          signal.SIGINT)}  # fmt: skip
        self._parent_only = [selector, wake_read, wake_write]
        try:
            while not self.stopping:
                if self.spare is None and time.monotonic() >= self._spawned_at + _RESPAWN_SECONDS:
                    self._spawn_spare(selector)
                wait = None if self.spare is not None else _RESPAWN_SECONDS
                for key, _ in selector.select(wait):
                    if key.fd == wake_read:
                        _drain(wake_read)
                    elif self.spare is not None and key.fileobj is self.spare[1]:
                        self._hear_spare(selector)
                self._reap(selector)
            self._close_listener()
            self._drop_spare(selector)
            self._wait_for_workers()
        finally:
            self._drop_spare(selector)
            self._close_listener()
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            selector.close()
            os.close(wake_read)
            os.close(wake_write)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum != signal.SIGCHLD:
            self.stopping = True

    def _spawn_spare(self, selector: selectors.BaseSelector) -> None:
        """Fork the worker for the next command now, while nobody waits for it."""
        assert self.listener is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._spawned_at = time.monotonic()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the spare's coverage is its command's
            ours.close()
            for thing in [*self._parent_only, *(conn for conn, _ in self.workers.values())]:
                if isinstance(thing, int):
                    os.close(thing)
                else:
                    thing.close()
            Spare(self.listener, theirs, self._code, self.say).run()
        theirs.close()
        self.spare = (pid, ours)
        selector.register(ours, selectors.EVENT_READ)

    def _hear_spare(self, selector: selectors.BaseSelector) -> None:
        """The spare took a client (and passed its socket), asked to stop, or ended."""
        assert self.spare is not None
        pid, channel = self.spare
        try:
            data, ancillary, _, _ = channel.recvmsg(4096, socket.CMSG_SPACE(array.array("i").itemsize))
        except OSError:
            data, ancillary = b"", []
        passed = array.array("i")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                passed.frombytes(payload[: len(payload) - len(payload) % passed.itemsize])
        word, _, value = data.partition(b" ")
        if passed and word == b"taken":
            self.workers[pid] = (socket.socket(fileno=passed[0]), value.decode("utf-8", "replace"))
            self._spawned_at = 0.0  # its successor is due at once
        else:
            for fd in passed:
                os.close(fd)
            if word == b"stop":
                self.stopping = True
        self._drop_spare(selector)

    def _drop_spare(self, selector: selectors.BaseSelector) -> None:
        """Forget the spare and close its channel: one still waiting then exits."""
        if self.spare is not None:
            selector.unregister(self.spare[1])
            self.spare[1].close()
            self.spare = None

    def _close_listener(self) -> None:
        if self.listener is None:
            return
        self.listener.close()
        self.listener = None
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._inode:
                os.unlink(self.path)  # only our own socket: a successor may have bound the name since
        except FileNotFoundError:
            pass

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + _STOP_WAIT_SECONDS
        while self.workers and time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - waitpid is retried by Python
                continue
            self._report(pid, status)

    def _reap(self, selector: selectors.BaseSelector) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare[0]:
                self.say(f"the spare worker ended before taking a command (status {status})")
                self._drop_spare(selector)
            self._report(pid, status)

    def _report(self, pid: int, status: int) -> None:
        worker = self.workers.pop(pid, None)
        if worker is None:
            return
        conn, word = worker
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
        send(conn, f"exit {code}")  # read only if the worker died before its own report
        conn.close()
        self.say(f"{word!r} (worker {pid}) exited {code}")


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
