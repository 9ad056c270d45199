"""Two real `tui-ca serve` nodes on two homes sharing one PostgreSQL database, and their clients.

The admin home (``init --database``, ``server-setup``: it holds the CA key)
also runs node 1; node 2's home is made by ``tui-ca join`` and gets the
service certificates issued on the admin home, as the README tells an admin.
Clients are real: curl and openssl, and Python's ``ssl`` for many requests
at once.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import TUI_CA, run_cli
from tests.pg_support import PgCluster, _free_port

DEADLINE = 120.0
T = TypeVar("T")
_QUEUED = re.compile(rb"^request (\d+) waits")


def wait_until(condition: Callable[[], T], what: str, deadline: float = DEADLINE) -> T:
    """``condition()``'s first true value, polled until a generous deadline."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < end, f"not reached within {deadline:.0f} s: {what}"
        time.sleep(0.05)


def new_csr(cn: str) -> bytes:
    """A DER CSR for ``cn`` on a fresh P-256 key (each device has its own key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def queued_id(body: bytes) -> int | None:
    """The Certificate ID in a 202 answer's line."""
    found = _QUEUED.match(body)
    return int(found.group(1)) if found else None


@dataclass
class Node:
    """One `tui-ca serve` process on one home; started again on the same ports after a kill."""

    name: str
    home: Path
    https_port: int
    http_port: int
    process: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> None:
        args = [*TUI_CA, "--home", str(self.home), "serve", "--port", str(self.https_port), "--http-port",
                str(self.http_port), "--retry-after", "1", "--rate", "0", "--max-per-address", "256",
                "--max-queued", "100000"]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("TUI_CA_")}
        # The access log goes to a file: a pipe nobody reads would fill and stop the server.
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
        self.starts += 1
        first = self.process.stdout.readline() if self.process.stdout else b""
        assert b"EST on https://" in first, f"{self.name} did not start: {first!r} {self.log_tail()}"
        # The second line comes once the HTTP listener is up too.
        assert self.process.stdout is not None and self.process.stdout.readline()

    @property
    def log(self) -> Path:
        return self.home.parent / f"{self.home.name}-serve.log"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(DEADLINE)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.communicate()
        self.process = None

    # ------------------------------------------------------------ clients

    def est(self, der: bytes, chain: Path, timeout: float = DEADLINE) -> tuple[int, bytes, dict[str, str]]:
        """One simpleenroll over Python's ssl (verifying the server against the CA chain)."""
        context = ssl.create_default_context(cafile=str(chain))
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=context, timeout=timeout)
        try:
            conn.request("POST", "/.well-known/est/simpleenroll", body=base64.b64encode(der),
                         headers={"Content-Type": "application/pkcs10"})  # fmt: skip
            reply = conn.getresponse()
            return reply.status, reply.read(), {k.lower(): v for k, v in reply.getheaders()}
        finally:
            conn.close()

    def curl_enroll(self, der: bytes, chain: Path) -> tuple[int, bytes]:
        """One simpleenroll with curl; (status, body)."""
        result = subprocess.run(
            ["curl", "-sS", "--cacert", str(chain), "-H", "Content-Type: application/pkcs10", "--data-binary", "@-",
             "-w", "\n%{http_code}", f"https://127.0.0.1:{self.https_port}/.well-known/est/simpleenroll"],
            input=base64.b64encode(der), capture_output=True, timeout=DEADLINE, check=True,
        )  # fmt: skip
        body, _, status = result.stdout.rpartition(b"\n")
        return int(status), body

    def crl(self) -> bytes:
        return subprocess.run(["curl", "-sSf", f"http://127.0.0.1:{self.http_port}/ca.crl"], capture_output=True,
                              timeout=DEADLINE, check=True).stdout  # fmt: skip

    def ocsp(self, work: Path, cert_pem: Path) -> str:
        """openssl ocsp's verdict line for ``cert_pem`` (the answer's signature checked against the chain)."""
        result = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(work / "issuing.pem"), "-cert", str(cert_pem), "-CAfile",
             str(work / "chain.pem"), "-url", f"http://127.0.0.1:{self.http_port}/ocsp"],
            capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
        assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stdout + result.stderr
        return result.stdout.splitlines()[0].split(":", 1)[1].strip()


@dataclass
class TwoNodes:
    cluster: PgCluster
    url: str
    work: Path
    admin: Path
    joined: Path
    nodes: list[Node] = field(default_factory=list)

    @property
    def db(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def chain(self) -> Path:
        return self.work / "chain.pem"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run_cli(self.admin, *args, check=check)

    def running(self) -> list[Node]:
        """Both nodes, started again if an earlier test killed one."""
        for node in self.nodes:
            if not node.alive:
                node.stop()
                node.start()
        return self.nodes

    def export(self, cert_id: int) -> Path:
        path = self.work / f"cert-{cert_id}.pem"
        path.write_bytes(self.cli("export", str(cert_id)).stdout)
        return path

    def stored_requests(self) -> dict[int, str]:
        """Every request in the database: ID -> requester (read with psql, not through tui-ca)."""
        rows = self.cluster.psql("SELECT id || '|' || (doc->>'requester') FROM requests ORDER BY id", self.db)
        return {int(i): name for i, name in (line.split("|", 1) for line in rows.splitlines() if line)}

    def stored_status(self, request_id: int) -> str:
        return self.cluster.psql(f"SELECT status FROM requests WHERE id = {request_id}", self.db)

    def check_store(self) -> None:
        """`tui-ca check` finds every record whole and every index right."""
        result = self.cli("check", check=False)
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()

    def close(self) -> None:
        for node in self.nodes:
            node.stop()


def make_two_nodes(cluster: PgCluster, work: Path) -> TwoNodes:
    url = cluster.new_ca_database()
    setup = TwoNodes(cluster, url, work, work / "admin", work / "node2")
    http1, http2 = _free_port(), _free_port()
    run_cli(setup.admin, "--database", url, "init", "--cn", "Two Nodes CA", "--org", "Example",
            "--base-url", f"http://127.0.0.1:{http1}", check=True)  # fmt: skip
    run_cli(setup.admin, "server-setup", check=True)
    run_cli(setup.joined, "join", url, check=True)
    # Service certificates are issued where the CA key is, then copied to the node.
    shutil.copytree(setup.admin / "server", setup.joined / "server")
    assert not list((setup.joined / "ca").glob("*.key")), "a joined node must hold no CA key"
    (work / "chain.pem").write_bytes(setup.cli("ca-cert", "--chain").stdout)
    (work / "issuing.pem").write_bytes(setup.cli("ca-cert").stdout)
    setup.nodes = [Node("node 1", setup.admin, _free_port(), http1), Node("node 2", setup.joined, _free_port(), http2)]
    try:
        for node in setup.nodes:
            node.start()
    except BaseException:
        setup.close()
        raise
    return setup
