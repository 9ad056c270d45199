"""UI start-up at scale: time to a ready main screen vs an empty Textual app.

For each size a CA home is built with one bulk intake (``submit_many``) and
one bulk ``approve``; then, in the same process and run, an empty Textual
``App`` and the tui-ca app are each started headless with ``run_test`` and
timed from launch until ready (the empty app: mounted; tui-ca: the main
screen's lists filled). The ratio is what the issue bounds (≤ 4×).

    python bench/ui_startup.py              # sizes 0 and 100,000
    python bench/ui_startup.py 0 1000       # other sizes
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import CertificateAuthority, NameFields

NAMES = NameFields(country="GB", organization="Bench Networks", common_name="Bench Issuing CA", email="pki@example.net")
# Requests per intake transaction: bounds memory while keeping the build fast.
BATCH = 5_000
RUNS = 3


def build_home(home: Path, size: int) -> Path:
    """A CA with ``size`` issued certificates (one key, many CSRs)."""
    ca = CertificateAuthority(home)
    ca.init(NAMES)
    key = ec.generate_private_key(ec.SECP256R1())
    for start in range(1, size + 1, BATCH):
        items = []
        for n in range(start, min(size, start + BATCH - 1) + 1):
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"device-{n:06d}.example.net")]))
                .sign(key, hashes.SHA256())
            )
            items.append((csr.public_bytes(serialization.Encoding.PEM), None))
        ca.submit_many(items)
    if size:
        ca.approve(range(1, size + 1))
    return home


async def _time_empty_app() -> float:
    from textual.app import App

    started = time.perf_counter()
    async with App().run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        return time.perf_counter() - started


async def _time_tui_ca(home: Path) -> float:
    from tui_ca.tui.app import CAApp

    started = time.perf_counter()
    app = CAApp(home)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.ready_event.wait()
        await pilot.pause()
        return time.perf_counter() - started


def measure(sizes=(0, 100_000)) -> list[dict]:
    """Build a home per size and time start-to-ready against an empty Textual app."""
    results = []
    with tempfile.TemporaryDirectory(prefix="tui-ca-bench-") as tmp:
        for size in sizes:
            t0 = time.perf_counter()
            home = build_home(Path(tmp) / f"home-{size}", size)
            build_s = time.perf_counter() - t0
            empty = [asyncio.run(_time_empty_app()) for _ in range(RUNS)]
            ours = [asyncio.run(_time_tui_ca(home)) for _ in range(RUNS)]
            empty_s, ours_s = statistics.median(empty), statistics.median(ours)
            results.append({
                "certificates": size, "build_s": round(build_s, 1), "empty_app_s": round(empty_s, 3),
                "tui_ca_s": round(ours_s, 3), "ratio": round(ours_s / empty_s, 2),
            })  # fmt: skip
    return results


def main(argv: list[str]) -> int:
    sizes = tuple(int(a) for a in argv) or (0, 100_000)
    rows = measure(sizes)
    print(f"{'certificates':>12}  {'build s':>8}  {'empty app s':>11}  {'tui-ca s':>8}  {'ratio':>5}")
    for r in rows:
        print(f"{r['certificates']:>12}  {r['build_s']:>8}  {r['empty_app_s']:>11}  {r['tui_ca_s']:>8}  {r['ratio']:>5}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
