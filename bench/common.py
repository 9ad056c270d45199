"""Pieces every engine figure uses: rows, medians, cheap CSRs, the CLI, a seeded home.

A *row* is one line of the figures table (see bench/README.md for the keys).
Every ratio is computed from two timings taken in the same run, because the
machine is shared and absolute seconds drift from one minute to the next.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import Actor, CertificateAuthority, NameFields

BENCH_NAMES = NameFields(country="GB", organization="Bench Networks", common_name="Bench Issuing CA")
BENCH_ACTOR = Actor("bench", None)
# Requests per submit_many / approve transaction while seeding: large enough
# that per-commit costs (fsync, journal) vanish, small enough to bound memory.
SEED_BATCH = 5_000


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def row(name: str, figure: str, ours: float, baseline: float, ratio: float, goal: str,
        met: bool | None, unit: str = "s", note: str = "") -> dict:  # fmt: skip
    """One table line; ``ours``/``baseline`` in seconds, shown in ``unit``."""
    return {"name": name, "figure": figure, "ours_s": ours, "baseline_s": baseline, "ratio": ratio,
            "goal": goal, "met": met, "unit": unit, "note": note}  # fmt: skip


def setup_row(what: str, seconds: float, note: str = "") -> dict:
    """A timing that is not a goal (seeding); printed in the second table."""
    return {"setup": True, "figure": what, "ours_s": seconds, "note": note}


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def median(values: list[float]) -> float:
    return statistics.median(values)


class CsrFactory:
    """DER CSRs with distinct CNs under one EC key: signing is cheap, keygen is not."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def csr(self, cn: str) -> bytes:
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        )
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def tui_ca_command() -> list[str]:
    """The console script installed with this interpreter, as an admin would run it.

    Looked up next to ``sys.executable`` before $PATH: on a pyenv machine the
    ``tui-ca`` on $PATH is a bash shim that re-resolves the version on every
    call (~0.3 s, more than the approval itself), which no installed copy pays.
    """
    beside = Path(sys.executable).parent / "tui-ca"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("tui-ca")
    return [found] if found else [sys.executable, "-m", "tui_ca"]


def run_cli(home: Path, *args: str) -> tuple[float, str]:
    """Wall time of one ``tui-ca`` process (start-up included) and its stdout."""
    cmd = [*tui_ca_command(), "--home", str(home), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... exited {proc.returncode}: {proc.stderr.strip()}")
    return elapsed, proc.stdout


def new_ca(home: Path) -> CertificateAuthority:
    """An initialised, unencrypted EC P-256 CA (openssl can read its PKCS#8 key)."""
    ca = CertificateAuthority(home, actor=BENCH_ACTOR)
    ca.init(BENCH_NAMES, key_type="ec-p256")
    return ca


class SeededHome:
    """A CA home grown to a given number of issued certificates, shared by figures.

    Seeding uses the engine's public bulk calls (``submit_many``, then one
    ``approve`` per batch), so its time is itself a figure of the bulk path.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.ca = new_ca(home)
        self.csrs = CsrFactory()
        self.cert_ids: list[int] = []
        self.seed_seconds = 0.0
        self._serial = 0

    def fresh_name(self, prefix: str = "seed") -> str:
        self._serial += 1
        return f"{prefix}-{self._serial:07d}.bench.test"

    def queue(self, count: int, prefix: str = "seed") -> list[int]:
        """Queue ``count`` new requests in one transaction; their Certificate IDs."""
        items = [(self.csrs.csr(self.fresh_name(prefix)), None) for _ in range(count)]
        return [result.request.id for result in self.ca.submit_many(items, source="bench")]

    def grow_to(self, certificates: int) -> None:
        """Issue certificates until at least ``certificates`` exist."""
        start = time.perf_counter()
        while len(self.cert_ids) < certificates:
            ids = self.queue(min(SEED_BATCH, certificates - len(self.cert_ids)))
            outcomes = self.ca.approve(ids)
            failed = [o for o in outcomes if o.certificate is None]
            if failed:
                raise RuntimeError(f"seeding approval refused: {failed[0].error}")
            self.cert_ids.extend(ids)
        self.seed_seconds += time.perf_counter() - start
