"""Pieces of bench/pg_bench.py: CPU seconds of processes we do not wait for, and two serve nodes.

Wall time on a shared machine is inflated by other work, so every PostgreSQL
figure also gives the CPU seconds spent: this process (``process_time``),
finished children (``RUSAGE_CHILDREN``), and live processes read from
``/proc`` (the ``serve`` nodes, the PostgreSQL server and its backends).
"""

from __future__ import annotations

import base64
import http.client
import os
import resource
import shutil
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import CsrFactory, median, row, tui_ca_command
from tests.pg_support import PgCluster, _free_port

_TICK = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int, *, reaped: bool = True) -> float:
    """utime + stime of a live process (and of its children it has reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if reaped else 0)
    return ticks / _TICK


def pg_cpu(cluster: PgCluster) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, its ended backends and the live ones."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    total = process_cpu(postmaster)
    for task in Path(f"/proc/{postmaster}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += process_cpu(int(child))
    return total


class Cpu:
    """CPU seconds spent between ``start`` and ``stop`` by this process, its children, given pids and PostgreSQL."""

    def __init__(self, cluster: PgCluster | None = None, pids: tuple[int, ...] = ()) -> None:
        self.cluster, self.pids = cluster, pids

    def _sample(self) -> tuple[float, float, float]:
        ours = time.process_time() + children_cpu() + sum(process_cpu(pid) for pid in self.pids)
        return ours, (pg_cpu(self.cluster) if self.cluster is not None else 0.0), time.perf_counter()

    def __enter__(self) -> Cpu:
        self._start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        self.ours, self.server, self.wall = (end[i] - self._start[i] for i in range(3))


# ------------------------------------------------------------- two nodes


class ServeNode:
    """One ``tui-ca serve`` of the bench (anonymous enrollment, no rate limit)."""

    def __init__(self, home: Path, log: Path) -> None:
        self.https_port, self.http_port = _free_port(), _free_port()
        args = [*tui_ca_command(), "--home", str(home), "serve", "--port", str(self.https_port), "--http-port",
                str(self.http_port), "--rate", "0", "--max-queued", "1000000", "--max-per-address", "1024"]  # fmt: skip
        with log.open("ab") as sink:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=sink)
        assert self.process.stdout is not None
        for _ in range(2):
            if not self.process.stdout.readline():
                raise RuntimeError(f"tui-ca serve did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=60)


def two_node_homes(cluster: PgCluster, workdir: Path) -> tuple[Path, Path]:
    """An admin home on a new database (with service certificates) and a joined node home."""
    url = cluster.new_ca_database()
    admin, node = workdir / "nodes-admin", workdir / "nodes-joined"
    cli = tui_ca_command()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUI_CA_")}
    for args in (["--home", str(admin), "--database", url, "init", "--cn", "Bench Nodes CA", "--org", "Bench"],
                 ["--home", str(admin), "server-setup"], ["--home", str(node), "join", url]):  # fmt: skip
        subprocess.run([*cli, *args], check=True, capture_output=True, env=env)
    shutil.copytree(admin / "server", node / "server")
    return admin, node


def _enroll(port: int, context: ssl.SSLContext, der: bytes) -> bool:
    """One enrollment on its own connection (a device's TLS handshake included): 202 queued."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=120)
    try:
        conn.request("POST", "/.well-known/est/simpleenroll", body=base64.b64encode(der),
                     headers={"Content-Type": "application/pkcs10"})  # fmt: skip
        reply = conn.getresponse()
        reply.read()
        return reply.status == 202
    finally:
        conn.close()


def est_rows(cluster: PgCluster, workdir: Path, enrollments: int, clients: int, repeats: int) -> list[dict]:
    """EST enrollments/s through one node against the same clients spread over two nodes, same run."""
    admin, node_home = two_node_homes(cluster, workdir)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # what is measured is the server, not certificate checks in the client
    csrs = CsrFactory()
    nodes = [ServeNode(admin, workdir / "node1.log"), ServeNode(node_home, workdir / "node2.log")]
    serial = 0
    figures: dict[int, list[tuple[float, Cpu]]] = {1: [], 2: []}
    try:
        for rep in range(repeats):
            for count in (1, 2) if rep % 2 == 0 else (2, 1):
                ders = [csrs.csr(f"est-{serial + n}.bench.test") for n in range(enrollments)]
                serial += enrollments
                ports = [node.https_port for node in nodes[:count]]
                with ThreadPoolExecutor(clients) as pool, Cpu(cluster, tuple(n.process.pid for n in nodes)) as cpu:
                    done = list(pool.map(_enroll, [ports[i % count] for i in range(enrollments)],
                                         [context] * enrollments, ders))  # fmt: skip
                if not all(done):
                    raise RuntimeError(f"{done.count(False)} enrollments were not queued")
                figures[count].append((enrollments / cpu.wall, cpu))
    finally:
        for node in nodes:
            node.stop()
    one = median([rate for rate, _ in figures[1]])
    two = median([rate for rate, _ in figures[2]])

    def cpu_note(count: int) -> str:
        ours = median([c.ours for _, c in figures[count]]) / enrollments * 1000
        server = median([c.server for _, c in figures[count]]) / enrollments * 1000
        return f"{ours:.1f} ms CPU of clients+nodes and {server:.1f} ms of PostgreSQL per enrollment"

    note = (f"{clients} clients, {enrollments} enrollments, median of {repeats}; two nodes {cpu_note(2)}, "
            f"one node {cpu_note(1)}; {os.cpu_count()} cores for clients, nodes and PostgreSQL")  # fmt: skip
    return [row("pg", f"EST enrollments/s on PostgreSQL, {clients} clients: two nodes vs one node",
                1 / two, 1 / one, two / one, "(two ÷ one, per second)", None, unit="ms", note=note)]  # fmt: skip
