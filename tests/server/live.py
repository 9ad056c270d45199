"""Helpers for end-to-end tests: a CA home made with the real CLI and a real ``tui-ca serve`` process."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

NEEDED = ("tui-ca", "openssl", "curl")


def require(*tools: str) -> None:
    """A missing client fails the test (CI installs them); it never skips."""
    missing = [t for t in tools if shutil.which(t) is None]
    assert not missing, f"missing {missing}: install them (see .ci/run)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: list[str], *, input: bytes | None = None, check: bool = True, timeout: float = 60):
    result = subprocess.run(args, input=input, capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {result.returncode}: {result.stderr.decode()}")
    return result


@dataclass
class Home:
    """A CA home created with the CLI, with server certificates, and its published files."""

    path: Path
    http_port: int
    work: Path

    def cli(self, *args: str, check: bool = True, input: bytes | None = None):
        return run(["tui-ca", "--home", str(self.path), *args], check=check, input=input)

    def request_id(self, n: int = 1) -> str:
        """The Certificate ID of the n-th request a client sent (server-setup's certificates take IDs first)."""
        import json

        listed = json.loads(self.cli("list", "requests", "--json").stdout)
        return str([r["id"] for r in listed if r["source"] != "server-setup"][n - 1])

    @property
    def chain(self) -> Path:
        """Issuing CA then root, PEM (what clients trust)."""
        path = self.work / "chain.pem"
        if not path.exists():
            path.write_bytes(self.cli("ca-cert", "--chain").stdout)
        return path

    @property
    def issuing(self) -> Path:
        path = self.work / "issuing.pem"
        if not path.exists():
            path.write_bytes(self.cli("ca-cert").stdout)
        return path


def make_home(tmp_path: Path) -> Home:
    require(*NEEDED)
    http_port = free_port()
    home = Home(tmp_path / "home", http_port, tmp_path)
    home.cli("init", "--cn", "E2E Issuing CA", "--org", "Example", "--base-url", f"http://127.0.0.1:{http_port}")
    home.cli("server-setup")
    return home


@dataclass
class Serving:
    process: subprocess.Popen
    https_port: int
    http_port: int

    @property
    def est(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/.well-known/est"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@contextmanager
def serve(home: Home, *extra: str, prefix: tuple[str, ...] = ()):
    """``tui-ca serve`` on an ephemeral HTTPS port and the home's HTTP port; stopped with SIGTERM."""
    args = [*prefix, "tui-ca", "--home", str(home.path), "serve", "--port", "0", "--http-port", str(home.http_port),
            "--retry-after", "1", *extra]  # fmt: skip
    # Its own process group, so that a wrapper (strace) and the server stop together.
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        lines = [process.stdout.readline().decode() for _ in range(2)]
        found = re.search(r"https://127\.0\.0\.1:(\d+)/", lines[0])
        assert found, (
            f"serve did not start: {lines} {process.stderr.read().decode() if process.poll() is not None else ''}"
        )
        yield Serving(process, int(found.group(1)), home.http_port)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            _, err = process.communicate()
    assert process.returncode == 0, err.decode()


def openssl_csr(work: Path, cn: str) -> tuple[Path, Path]:
    """A P-256 key and a DER CSR made by openssl."""
    key, csr = work / f"{cn}.key", work / f"{cn}.csr.der"
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-subj", f"/CN={cn}", "-outform", "DER", "-out", str(csr)])  # fmt: skip
    return key, csr


def curl_enroll(serving: Serving, home: Home, csr_der: Path, out: Path, op: str = "simpleenroll",
                extra: tuple[str, ...] = ()) -> tuple[int, dict[str, str]]:  # fmt: skip
    """POST the base64 CSR with curl; returns the HTTP status and the response headers."""
    body = home.work / (csr_der.name + ".b64")
    body.write_bytes(base64.b64encode(csr_der.read_bytes()))
    headers = home.work / "headers.txt"
    result = run(["curl", "-sS", "--cacert", str(home.chain), "-H", "Content-Type: application/pkcs10",
                  "--data-binary", f"@{body}", "-D", str(headers), "-o", str(out), "-w", "%{http_code}",
                  *extra, f"{serving.est}/{op}"])  # fmt: skip
    parsed = {}
    for line in headers.read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        if value:
            parsed[name.strip().lower()] = value.strip()
    return int(result.stdout), parsed


def pkcs7_to_pem(home: Home, body: Path, out: Path) -> str:
    """The usual recipe: base64 -d | openssl pkcs7 -print_certs."""
    der = home.work / (body.name + ".p7")
    der.write_bytes(run(["base64", "-d", str(body)]).stdout)
    printed = run(["openssl", "pkcs7", "-inform", "DER", "-in", str(der), "-print_certs", "-out", str(out)])
    del printed
    return out.read_text()


def wait_for(predicate, timeout: float = 30, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def http_get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET, a refusal included."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()
