"""A command server's spare worker: forked ahead, it takes the next client itself and becomes its command.

The server (tui_ca/command_server.py) keeps one spare. The spare waits on the
shared listening socket and on its channel to the server; it accepts a
connection, checks the peer and its request, tells the server it is taken
(passing it the client's socket, so that the server can report a worker
killed by a signal), answers the client with its pid, and runs the command
as the client's own process would. Nothing waits on the server between the
client and its command.
"""

from __future__ import annotations

import array
import atexit
import gc
import io
import os
import select
import signal
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from tui_ca.command_client import PACKAGE
from tui_ca.command_socket import IDENTITY_FIELDS, RUN_HERE, WIRE_VERSION, identity_fields
from tui_ca.command_words import chosen_command

MAX_REQUEST = 1 << 20
RECEIVE_SECONDS = 5.0
_LENGTH = struct.Struct("!I")
_PEERCRED = struct.Struct("3i")
_STDIO = 3


@dataclass(frozen=True)
class Request:
    """A client's hand-over (tui_ca/command_socket.py describes the bytes)."""

    cwd: bytes
    umask: int
    identity: list[bytes]
    argv: list[str]
    env: dict[bytes, bytes]


class Spare:
    """The worker forked for the next command (``run`` never returns)."""

    def __init__(self, listener: socket.socket, channel: socket.socket, code: dict[str, tuple[int, int]],
                 say: Callable[[str], None]) -> None:  # fmt: skip
        self.listener = listener
        self.channel = channel
        self.code = code
        self.say = say

    def run(self) -> None:
        code = 0
        client = -1
        try:
            become_worker()
            # A fork shares the server's pages until a side writes to them, and a
            # command's first touch of each (reference counts) copies it: ~10 ms of
            # faults in a one-shot approve. One collection writes to every tracked
            # object's header, so those copies are made now, before anyone waits.
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            taken = self._next_client()
            if taken is None:
                os._exit(0)
            conn, request, fds = taken
            client = conn.detach()
            code = run_request(request, fds)
        except BaseException:
            traceback.print_exc()
            code = 1
        exit_reporting(client, finish(code))

    def _next_client(self) -> tuple[socket.socket, Request, list[int]] | None:
        """The next client this spare runs a command for; None when the server stops or replaces it."""
        while True:
            readable, _, _ = select.select([self.listener, self.channel], [], [])
            if self.channel in readable:
                return None  # the channel closed (or spoke): the server is stopping
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                continue
            taken = self._take(conn)
            if taken is not None:
                return taken

    def _take(self, conn: socket.socket) -> tuple[socket.socket, Request, list[int]] | None:
        """Check the peer and its request; tell the server and the client that this spare runs it."""
        fds: list[int] = []
        try:
            conn.settimeout(RECEIVE_SECONDS)
            _, uid, _ = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
            if uid != os.getuid():
                self.say(f"refused a connection from uid {uid}")
                conn.close()
                return None
            request, fds = receive(conn)
            reason = self._decline(request)
            if reason is not None:
                _close_all(fds)
                send(conn, f"local {reason}")
                conn.close()
                if reason == CODE_CHANGED:
                    self.channel.sendall(b"stop")
                    os._exit(0)
                return None
            word = str(chosen_command(request.argv))
            self.channel.sendmsg([b"taken " + word.encode("utf-8", "backslashreplace")],
                                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [conn.fileno()]))])  # fmt: skip
            conn.settimeout(None)
            conn.sendall(f"pid {os.getpid()}\n".encode())
        except (OSError, ValueError) as exc:
            _close_all(fds)
            self.say(f"dropped a hand-over: {exc}")
            conn.close()
            return None
        self.listener.close()
        self.channel.close()
        return conn, request, fds

    def _decline(self, request: Request) -> str | None:
        """Why the client must run this command itself (None: this spare runs it)."""
        if request.identity != identity_fields(PACKAGE):
            return "the client is another installation or runs with other ids or groups"
        if chosen_command(request.argv) in RUN_HERE:
            return "this command runs in its own process"
        if code_stamp() != self.code:
            self.say("the installed code changed since the server started; stopping")
            return CODE_CHANGED
        return None


CODE_CHANGED = "the command server's code changed on disk"


def code_stamp() -> dict[str, tuple[int, int]]:
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


def receive(conn: socket.socket) -> tuple[Request, list[int]]:
    """A client's hand-over and the stdin, stdout and stderr sent with it; else ValueError."""
    data, ancillary, flags, _ = conn.recvmsg(65536, socket.CMSG_SPACE(_STDIO * array.array("i").itemsize))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            passed = array.array("i")
            passed.frombytes(payload[: len(payload) - len(payload) % passed.itemsize])
            fds.extend(passed)
    try:
        if len(fds) != _STDIO or flags & socket.MSG_CTRUNC:
            raise ValueError("the hand-over did not carry exactly stdin, stdout and stderr")
        if len(data) < _LENGTH.size:
            raise ValueError("a truncated hand-over")
        (length,) = _LENGTH.unpack_from(data)
        if length > MAX_REQUEST:
            raise ValueError("a hand-over larger than 1 MiB")
        body = bytearray(data[_LENGTH.size :])
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            if not chunk:
                raise ValueError("a truncated hand-over")
            body += chunk
        request = parse_request(bytes(body))
    except (ValueError, OSError):
        _close_all(fds)
        raise
    return request, fds


def parse_request(body: bytes) -> Request:
    """The fields of a hand-over body; ValueError if it is not one of this version."""
    fields = body.split(b"\0")
    head = 3 + IDENTITY_FIELDS
    if len(fields) < head + 1 or fields[0] != WIRE_VERSION:
        raise ValueError("not a hand-over of this version")
    try:
        umask, argc = int(fields[2]), int(fields[head])
    except ValueError:
        raise ValueError("a hand-over with a malformed umask or argument count") from None
    if not 0 <= umask <= 0o777 or not 0 <= argc <= len(fields) - head - 1:
        raise ValueError("a hand-over with an impossible umask or argument count")
    argv = [os.fsdecode(word) for word in fields[head + 1 : head + 1 + argc]]
    env = {}
    for entry in fields[head + 1 + argc :]:
        name, equals, value = entry.partition(b"=")
        if not equals or not name:
            raise ValueError("a hand-over with a malformed environment entry")
        env[name] = value
    return Request(cwd=fields[1], umask=umask, identity=fields[3:head], argv=argv, env=env)


def send(conn: socket.socket, message: str) -> None:
    """One answer line ("pid N", "exit N", "local REASON")."""
    try:
        conn.sendall(message.encode("utf-8", "backslashreplace") + b"\n")
    except OSError:
        pass  # the client went away; its command still ran to its end


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def become_worker() -> None:
    """A forked worker's own process state: no controlling terminal, the signals a command expects."""
    os.setsid()  # the client's terminal is reached only through its descriptors, and its signals through the client
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def exit_reporting(client: int, code: int) -> None:
    """Tell the client the exit code, then exit (the server reports it too, from waitpid; the client reads the first)."""
    if client >= 0:
        try:
            os.write(client, f"exit {code}\n".encode())
        except OSError:
            pass
    os._exit(code)


def run_request(request: Request, fds: list[int]) -> int:
    """Become the client's command (its descriptors, folder, umask, environment) and run it; its exit code."""
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        _reopen_stdio()
        try:
            os.chdir(request.cwd)
        except OSError as exc:
            # The client's folder went away (or out of reach) since it sent it: as Python would, say so in a line.
            print(f"tui-ca: cannot enter the working folder {os.fsdecode(request.cwd)!r}: {exc.strerror}",
                  file=sys.stderr)  # fmt: skip
            return 1
        os.umask(request.umask)
        os.environ.clear()
        os.environb.update(request.env)
        if "random" in sys.modules:
            sys.modules["random"].seed()
        sys.argv = ["tui-ca", *request.argv]
        return _run_command(request.argv)
    except SystemExit as exc:
        return _exit_code(exc.code)
    except BaseException:  # a bug, not a user's error: the traceback the command would have shown on its own
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


def finish(code: int) -> int:
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
