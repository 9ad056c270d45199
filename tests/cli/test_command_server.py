"""``tui-ca command-server``: commands run by a pre-loaded process as they would run on their own.

Each test starts a real server on a socket in its own folder and runs the
real ``tui-ca`` against it; the server's log says which commands its workers
ran, so a test knows the command did not quietly run in its own process.
"""

from __future__ import annotations

import array
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import CA_NAMES, TUI_CA, csr_pem, make_csr

from tui_ca.command_client import run_through_server
from tui_ca.command_worker import parse_request
from tui_ca.engine import CertificateAuthority, RequestStatus

DEADLINE = 60.0


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "TUI_CA_"))}


class Server:
    """A running ``tui-ca command-server`` and the lines of its log."""

    def __init__(self, folder: Path, command: list[str] | None = None, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:  # fmt: skip
        self.socket = folder / "commands.sock"
        self.env = (env or _plain_env()) | {"TUI_CA_COMMAND_SOCKET": str(self.socket)}
        self.process = subprocess.Popen([*(command or TUI_CA), "command-server"], env=self.env, text=True, cwd=cwd,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert self.process.stdout is not None and self.process.stderr is not None
        first = self.process.stdout.readline()
        assert f"command server on {self.socket}" in first, self.process.stderr.read()
        self.log: list[str] = []
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))

    def ran(self, word: str, code: int) -> bool:
        pattern = re.compile(rf"tui-ca command-server: {re.escape(repr(word))} \(worker \d+\) exited {code}")
        return any(pattern.fullmatch(line) for line in self.log)

    def wait_ran(self, word: str, code: int) -> None:
        _wait_for(lambda: self.ran(word, code), f"the server's worker to run {word} (exit {code}); log: {self.log}")

    def run(self, *args: str, input: bytes | None = None, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
        return subprocess.run([*TUI_CA, *args], input=input, capture_output=True, env=self.env | (env or {}),
                              cwd=cwd, timeout=120)  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(DEADLINE)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def server(folder: Path) -> Iterator[Server]:
    running = Server(folder)
    yield running
    running.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    CertificateAuthority(home).init(CA_NAMES, base_url="http://127.0.0.1:8080")
    return home


def _queue(home: Path, *names: str) -> list[int]:
    ca = CertificateAuthority(home)
    return [ca.submit(csr_pem(make_csr(cn=name))).request.id for name in names]


def test_a_command_through_the_server_prints_and_exits_as_on_its_own(server: Server, home: Path) -> None:
    first, second = _queue(home, "alpha.example", "beta.example")
    served = server.run("--home", str(home), "approve", str(first), "99999")
    server.wait_ran("approve", 3)
    assert served.returncode == 3  # partial success: its own exit code
    assert served.stdout.decode().startswith(f"{first} ")
    assert "no request with Certificate ID 99999" in served.stderr.decode()
    own = server.run("--home", str(home), "approve", str(second), "99999", env={"TUI_CA_COMMAND_SERVER": "off"})
    assert own.returncode == 3 and own.stderr == served.stderr
    shown = server.run("--home", str(home), "show", str(first))
    server.wait_ran("show", 0)
    assert shown.returncode == 0
    alone = server.run("--home", str(home), "show", str(first), env={"TUI_CA_COMMAND_SERVER": "off"})
    assert shown.stdout == alone.stdout and shown.stdout


def test_usage_errors_and_refusals_keep_their_exit_codes(server: Server, home: Path) -> None:
    (queued,) = _queue(home, "gamma.example")
    server.run("--home", str(home), "reject", str(queued), "--reason", "not ours")
    server.wait_ran("reject", 0)
    again = server.run("--home", str(home), "approve", str(queued))
    server.wait_ran("approve", 1)
    assert again.returncode == 1
    assert again.stderr.decode().count("\n") == 1 and "rejected" in again.stderr.decode()
    typo = server.run("--home", str(home), "aprove", "1")
    server.wait_ran("aprove", 2)
    assert typo.returncode == 2 and "did you mean 'approve'" in typo.stderr.decode()


def test_the_worker_reads_the_clients_stdin_folder_and_environment(server: Server, home: Path,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    piped = server.run("submit", "-", input=csr_pem(make_csr(cn="piped.example")), env={"TUI_CA_HOME": str(home)})
    server.wait_ran("submit", 0)
    assert piped.returncode == 0, piped.stderr
    work = tmp_path / "work"
    work.mkdir()
    (work / "request.pem").write_bytes(csr_pem(make_csr(cn="relative.example")))
    relative = server.run("submit", "request.pem", cwd=work, env={"TUI_CA_HOME": str(home)})
    assert relative.returncode == 0, relative.stderr
    names = {r.requester for r in CertificateAuthority(home).requests(RequestStatus.QUEUED)}
    assert {"piped.example", "relative.example"} <= names
    listed = server.run("--home", str(home), "list", "--json")
    assert b"relative.example" in listed.stdout


def test_ctrl_c_reaches_the_worker(server: Server, home: Path) -> None:
    # submit - waits for stdin, which this test keeps open: the command is running when the signal comes.
    client = subprocess.Popen([*TUI_CA, "--home", str(home), "submit", "-"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server.env)  # fmt: skip
    try:
        assert client.stdin is not None
        pipe = client.stdin.fileno()
        _wait_for(lambda: _has_worker(server, pipe), "the worker to start")
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=DEADLINE)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode == 130, err
    assert b"interrupted" in err
    server.wait_ran("submit", 130)


def _has_worker(server: Server, stdin: int) -> bool:
    """Whether a child of the server holds ``stdin`` (this client's pipe) as its own stdin."""
    pipe = os.fstat(stdin).st_ino
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    for pid in children:
        try:
            if os.stat(f"/proc/{pid}/fd/0").st_ino == pipe:
                return True
        except OSError:
            continue
    return False


def test_the_ui_and_serve_never_go_to_the_server(folder: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(folder / "commands.sock"))
        listener.listen(4)
        listener.settimeout(0.0)
        for argv in ([], ["tui"], ["--home", "h"], ["serve", "--port", "0"], ["demo"], ["command-server"]):
            assert run_through_server(argv, str(folder / "commands.sock")) is None
            with pytest.raises(BlockingIOError):
                listener.accept()


def test_a_socket_folder_others_can_enter_is_refused_by_both_ends(tmp_path: Path, home: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o755)
    env = _plain_env() | {"TUI_CA_COMMAND_SOCKET": str(folder / "commands.sock")}
    refused = subprocess.run([*TUI_CA, "command-server"], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "open to other users" in refused.stderr
    assert not (folder / "commands.sock").exists()
    # A socket someone made there anyway: the client does not speak to it and runs the command itself.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as planted:
        planted.bind(str(folder / "commands.sock"))
        planted.listen(4)
        planted.settimeout(0.0)
        shown = subprocess.run([*TUI_CA, "--home", str(home), "list"], env=env, capture_output=True, timeout=120)
        assert shown.returncode == 0
        with pytest.raises(BlockingIOError):
            planted.accept()


@pytest.mark.skipif(os.geteuid() != 0, reason="handing the socket to another uid needs root (CI runs as root)")
def test_a_socket_of_another_user_is_not_used(server: Server, home: Path) -> None:
    os.chown(server.socket, 65534, 65534)
    listed = server.run("--home", str(home), "list")
    assert listed.returncode == 0
    os.chown(server.socket, 0, 0)
    (queued,) = _queue(home, "delta.example")
    server.run("--home", str(home), "approve", str(queued))
    server.wait_ran("approve", 0)
    assert not server.ran("list", 0)  # the list ran in its own process


def test_a_second_server_on_the_same_socket_is_refused(server: Server) -> None:
    second = subprocess.run([*TUI_CA, "command-server"], env=server.env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert second.returncode == 1
    assert second.stderr.strip() == f"tui-ca: a command server already listens on {server.socket}"
    assert server.process.poll() is None


def test_a_socket_left_by_a_killed_server_is_taken_over(folder: Path, home: Path) -> None:
    first = Server(folder)
    first.process.kill()
    first.process.wait(DEADLINE)
    assert first.socket.exists()
    # Nobody answers on it: commands run on their own meanwhile.
    assert first.run("--home", str(home), "list").returncode == 0
    second = Server(folder)
    try:
        (queued,) = _queue(home, "epsilon.example")
        assert second.run("--home", str(home), "approve", str(queued)).returncode == 0
        second.wait_ran("approve", 0)
    finally:
        second.stop()
    assert not second.socket.exists()


def test_a_server_whose_code_changed_declines_and_stops(tmp_path: Path, home: Path) -> None:
    # A copy of the package, so that "upgrading" it touches nobody else's files.
    copy = tmp_path / "site"
    shutil.copytree(Path(sys.modules["tui_ca"].__file__).parent, copy / "tui_ca",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env = _plain_env() | {"PYTHONPATH": str(copy)}
    command = [sys.executable, "-m", "tui_ca"]
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    # Run from tmp_path: ``python -m`` puts the working folder first on sys.path.
    running = Server(folder, command=command, env=env, cwd=tmp_path)
    try:
        (first, second) = _queue(home, "zeta.example", "eta.example")
        before = subprocess.run([*command, "--home", str(home), "approve", str(first)], env=running.env,
                                cwd=tmp_path, capture_output=True, timeout=120)  # fmt: skip
        assert before.returncode == 0
        running.wait_ran("approve", 0)
        upgraded = copy / "tui_ca" / "command_words.py"
        upgraded.write_text(upgraded.read_text() + "\n# a newer release\n")
        after = subprocess.run([*command, "--home", str(home), "approve", str(second)], env=running.env,
                               cwd=tmp_path, capture_output=True, timeout=120)  # fmt: skip
        assert after.returncode == 0, after.stderr  # run by the new code, in its own process
        assert running.process.wait(DEADLINE) == 0, running.log
        _wait_for(lambda: any("code changed since the server started" in line for line in running.log),
                  "the server to say why it stopped")  # fmt: skip
        assert not running.socket.exists()
        assert len([line for line in running.log if " exited " in line]) == 1  # the second ran on its own
    finally:
        running.stop()


@pytest.mark.parametrize(
    "body",
    [
        b"not-our-version\0/\x0018",
        b"tui-ca-commands-1\0/\0" + b"0" * 3,  # too few fields
        b"tui-ca-commands-1\0/\0" + b"999\0a\0b\0c\0d\0e\0" + b"1\0list",  # umask beyond 0777
        b"tui-ca-commands-1\0/\0" + b"18\0a\0b\0c\0d\0e\0" + b"5\0list",  # more arguments than fields
        b"tui-ca-commands-1\0/\0" + b"18\0a\0b\0c\0d\0e\0" + b"1\0list\0NO_EQUALS_SIGN",
        b"tui-ca-commands-1\0/\0" + b"x\0a\0b\0c\0d\0e\0" + b"1\0list",
    ],
    ids=["version", "short", "umask", "argc", "env", "not-a-number"],
)
def test_a_malformed_hand_over_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_request(body)


def test_a_hostile_client_gets_nothing_and_the_server_goes_on(server: Server, home: Path) -> None:
    for payload, fds in ((b"\x00\x00\x00\x05hello", [0, 1, 2]), (b"\xff\xff\xff\xff", [0, 1, 2]), (b"x", [])):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hostile:
            hostile.connect(str(server.socket))
            hostile.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else [])
            hostile.settimeout(DEADLINE)
            assert hostile.recv(100) == b""  # closed without an answer, nothing run
    _wait_for(lambda: sum("dropped a hand-over" in line for line in server.log) == 3, "three drops in the log")
    (queued,) = _queue(home, "theta.example")
    assert server.run("--home", str(home), "approve", str(queued)).returncode == 0
    server.wait_ran("approve", 0)
    assert not any(" exited " in line and "'approve'" not in line for line in server.log)


def test_a_working_folder_removed_before_the_worker_enters_it_is_one_line(home: Path, tmp_path: Path) -> None:
    # The worker's side on its own, in a process of its own: the client's folder is gone when it gets there.
    probe = (
        "import os, sys\n"
        "from tui_ca.command_worker import Request, run_request\n"
        "request = Request(cwd=os.fsencode(sys.argv[1]), umask=0o22, identity=[], argv=['--home', sys.argv[2], 'list'],"
        " env={})\n"
        "os._exit(run_request(request, [os.dup(0), os.dup(1), os.dup(2)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "gone"), str(home)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot enter the working folder" in done.stderr, done.stderr
