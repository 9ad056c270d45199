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

Only the user who runs the server can reach it: the socket sits in a
folder of mode 700 (tui_ca/command_socket.py) and the server checks each
peer's uid. It declines (and the client runs the command itself) a client
of another installation, of other groups, or a command that needs its own
process (the UI, ``serve``). When its code on disk changes (an upgrade) it
declines and stops, so a command never runs stale code.
"""

from __future__ import annotations

import array
import atexit
import gc
import importlib
import io
import json
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from tui_ca.command_client import identity
from tui_ca.command_socket import RUN_HERE, private_folder_problem
from tui_ca.command_words import chosen_command
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
_MAX_REQUEST = 1 << 20
_RECEIVE_SECONDS = 5.0
_STOP_WAIT_SECONDS = 60.0
_LENGTH = struct.Struct("!I")
_STDIO = 3
_PEERCRED = struct.Struct("3i")


class CommandServer:
    """Listens on ``path`` and runs each handed-over command in a forked worker."""

    def __init__(self, path: str, say: Callable[[str], None] = lambda line: None) -> None:
        self.path = path
        self.say = say
        self.listener: socket.socket | None = None
        self.workers: dict[int, tuple[socket.socket, str]] = {}
        """Each running worker's client connection and command word."""
        self.stopping = False
        self._inode: tuple[int, int] | None = None
        self._code: dict[str, tuple[int, int]] = {}
        self._closing: tuple[Any, ...] = ()
        self.spare: tuple[int, socket.socket] | None = None

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
        self._code = _code_stamp()
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
        selector.register(self.listener, selectors.EVENT_READ)
        selector.register(wake_read, selectors.EVENT_READ)
        previous_wakeup = signal.set_wakeup_fd(wake_write)
        handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGCHLD, signal.SIGTERM,
                                                                          signal.SIGINT)}  # fmt: skip
        self._closing = (selector, wake_read, wake_write)
        try:
            self._spawn_spare()
            while not self.stopping:
                for key, _ in selector.select():
                    if key.fileobj is self.listener and not self.stopping:
                        self._accept()
                    elif key.fd == wake_read:
                        _drain(wake_read)
                self._reap()
            self._close_listener(selector)
            self._drop_spare()
            self._wait_for_workers()
        finally:
            self._drop_spare()
            self._close_listener(selector)
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            selector.close()
            os.close(wake_read)
            os.close(wake_write)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum != signal.SIGCHLD:
            self.stopping = True

    def _close_listener(self, selector: selectors.BaseSelector) -> None:
        if self.listener is None:
            return
        selector.unregister(self.listener)
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

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and pid == self.spare[0]:
                self.say(f"the spare worker ended before its command (status {status}); the next one is forked")
                self._drop_spare()
            self._report(pid, status)

    def _drop_spare(self) -> None:
        """Close the spare's channel: a waiting spare then exits."""
        if self.spare is not None:
            self.spare[1].close()
            self.spare = None

    def _report(self, pid: int, status: int) -> None:
        worker = self.workers.pop(pid, None)
        if worker is None:
            return
        conn, word = worker
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
        _send(conn, {"exit": code})
        conn.close()
        self.say(f"{word!r} (worker {pid}) exited {code}")

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(_RECEIVE_SECONDS)
            _, uid, _ = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
            if uid != os.getuid():
                self.say(f"refused a connection from uid {uid}")
                conn.close()
                return
            request, fds = _receive(conn)
            reason = self._decline(request)
        except (OSError, ValueError) as exc:
            for fd in fds:
                os.close(fd)
            self.say(f"dropped a hand-over: {exc}")
            conn.close()
            return
        if reason is not None:
            for fd in fds:
                os.close(fd)
            _send(conn, {"local": reason})
            conn.close()
            return
        conn.settimeout(None)
        pid = self._hand_to_spare(request, fds, conn.fileno())
        if pid is None:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the worker's coverage is its command's
                client = conn.detach()
                self._close_inherited()
                _become_worker()
                _exit_reporting(client, _finish(_run_request(request, fds)))
        for fd in fds:
            os.close(fd)
        self.workers[pid] = (conn, str(chosen_command(request["argv"])))
        _send(conn, {"pid": pid})
        self._spawn_spare()

    def _spawn_spare(self) -> None:
        """Fork the worker for the next command now, while nobody waits for it (see _run_spare)."""
        if self.stopping or self.spare is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the spare's coverage is its command's
            ours.close()
            self._close_inherited()
            _run_spare(theirs)
        theirs.close()
        self.spare = (pid, ours)

    def _hand_to_spare(self, request: dict, fds: list[int], client: int) -> int | None:
        """The spare's pid once it holds the command; None if there is no live spare."""
        if self.spare is None:
            return None
        pid, channel = self.spare
        self.spare = None
        try:
            body = json.dumps(request).encode()
            channel.sendmsg([_LENGTH.pack(len(body)), body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                                array.array("i", [*fds, client]))])  # fmt: skip
        except OSError:
            return None  # it died (it is reaped with the others); the caller forks a worker instead
        finally:
            channel.close()
        return pid

    def _close_inherited(self) -> None:
        """In a forked worker: the server's sockets, wake-up pipe and the other clients' connections."""
        for thing in [
            self.listener,
            *self._closing,
            *(conn for conn, _ in self.workers.values()),
            *(self.spare[1:] if self.spare else ()),
        ]:
            if isinstance(thing, int):
                os.close(thing)
            elif thing is not None:
                thing.close()

    def _decline(self, request: dict) -> str | None:
        """Why the client must run this command itself (None: a worker runs it)."""
        if {k: request.get(k) for k in ("executable", "package", "ids")} != identity():
            return "the client is another installation or runs with other ids or groups"
        if chosen_command(request["argv"]) in RUN_HERE:
            return "this command runs in its own process"
        if _code_stamp() != self._code:
            self.stopping = True
            self.say("the installed code changed since the server started; stopping")
            return "the command server's code changed on disk"
        return None


def _receive(conn: socket.socket, count: int = 3) -> tuple[dict, list[int]]:
    """The client's request and its stdin, stdout and stderr (and the client's socket for a spare); else ValueError."""
    data, ancillary, flags, _ = conn.recvmsg(65536, socket.CMSG_SPACE(count * array.array("i").itemsize))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            passed = array.array("i")
            passed.frombytes(payload[: len(payload) - len(payload) % passed.itemsize])
            fds.extend(passed)
    try:
        if len(fds) != count or flags & socket.MSG_CTRUNC:
            raise ValueError("the hand-over did not carry exactly stdin, stdout and stderr")
        if len(data) < _LENGTH.size:
            raise ValueError("a truncated hand-over")
        (length,) = _LENGTH.unpack_from(data)
        if length > _MAX_REQUEST:
            raise ValueError("a hand-over larger than 1 MiB")
        body = bytearray(data[_LENGTH.size :])
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            if not chunk:
                raise ValueError("a truncated hand-over")
            body += chunk
        request = json.loads(bytes(body))
        _check_request(request)
    except (ValueError, OSError):
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _check_request(request: Any) -> None:
    if not isinstance(request, dict):
        raise ValueError("the hand-over is not an object")
    argv, env = request.get("argv"), request.get("env")
    if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
        raise ValueError("argv is not a list of strings")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise ValueError("env is not a map of strings")
    if not isinstance(request.get("cwd"), str) or not isinstance(request.get("umask"), int):
        raise ValueError("cwd or umask missing")


def _send(conn: socket.socket, message: dict) -> None:
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the client went away; its command still ran to its end


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _code_stamp() -> dict[str, tuple[int, int]]:
    """The size and mtime of every tui_ca module this process has loaded."""
    stamp = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and (name == "tui_ca" or name.startswith("tui_ca.")):
            try:
                info = os.stat(path)
            except OSError:
                stamp[path] = (-1, -1)
                continue
            stamp[path] = (info.st_size, info.st_mtime_ns)
    return stamp


def _become_worker() -> None:
    """A forked worker's own process state: no controlling terminal, the signals a command expects."""
    os.setsid()  # the client's terminal is reached only through its descriptors, and its signals through the client
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _run_spare(channel: socket.socket) -> None:
    """The worker forked ahead of its command: it waits for one on ``channel``, runs it and exits."""
    code, client = 0, -1
    try:
        _become_worker()
        # A fork shares the server's pages until a side writes to them, and a
        # command's first touch of each (reference counts) copies it, ~10 ms of
        # faults in a one-shot approve. One collection writes to every tracked
        # object's header, so those copies are made now, before anyone waits.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        try:
            request, fds = _receive(channel, _STDIO + 1)
        except (OSError, ValueError):
            os._exit(0)  # the server stopped, or replaced this spare
        channel.close()
        client = fds.pop()
        code = _run_request(request, fds)
    except BaseException:
        traceback.print_exc()
        code = 1
    _exit_reporting(client, _finish(code))


def _exit_reporting(client: int, code: int) -> None:
    """Tell the client the exit code, then exit: one wake-up sooner than the server's report after reaping.

    The server still reports what waitpid says; the client reads only the first report.
    """
    if client >= 0:
        try:
            os.write(client, json.dumps({"exit": code}).encode() + b"\n")
        except OSError:
            pass
    os._exit(code)


def _run_request(request: dict, fds: list[int]) -> int:
    """Become the client's command (its descriptors, folder, umask, environment) and run it; its exit code."""
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        _reopen_stdio()
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        if "random" in sys.modules:
            sys.modules["random"].seed()
        sys.argv = ["tui-ca", *request["argv"]]
        return _run_command(request["argv"])
    except SystemExit as exc:
        return _exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
        return 1


def _run_command(argv: list[str]) -> int:
    from tui_ca import cli

    if chosen_command(argv) in cli.ONE_SHOT:
        gc.set_threshold(cli.ONE_SHOT_GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse: usage errors, --help, --version
        return _exit_code(exc.code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _finish(code: int) -> int:
    """What the interpreter's own exit does that a command relies on: threads joined, exit hooks run, output flushed."""
    try:
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as Python exits when it cannot flush stdout
    return code


def _reopen_stdio() -> None:
    """Text streams over the client's descriptors, buffered as Python buffers them for a terminal or a pipe."""
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        old = getattr(sys, name)
        encoding = getattr(old, "encoding", None) or "utf-8"
        errors = getattr(old, "errors", None) or ("backslashreplace" if fd == 2 else "strict")
        binary = open(fd, mode + "b", closefd=False)  # noqa: SIM115 - lives as long as the worker
        stream = io.TextIOWrapper(binary, encoding=encoding, errors=errors,
                                  line_buffering=fd == 2 or (fd == 1 and os.isatty(1)))  # fmt: skip
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
