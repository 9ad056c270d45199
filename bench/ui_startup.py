"""UI start-up at scale: time to a ready main screen vs an empty Textual app.

For each size a CA home is built with one bulk intake (``submit_many``) and
one bulk ``approve``; then, in the same process and run, an empty Textual
``App`` and the tui-ca app are each started headless with ``run_test`` and
timed from launch until ready (the empty app: mounted; tui-ca: the main
screen showing the header, the whole queue and the first certificates), each
run in a fresh interpreter with the imports done before the clock starts. The
ratio is what the issue bounds (≤ 3×). ``all_read_s`` is when every record
has been read and the lists can scroll to the end. Each child also reports its
peak RSS (``VmHWM``), and the RSS ratio is tui-ca's over the empty app's
(bound: ≤ 3× at 100,000 certificates).

    python bench/ui_startup.py              # sizes 0 and 100,000
    python bench/ui_startup.py 0 1000       # other sizes
    python bench/ui_startup.py --home DIR   # an existing home
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
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


async def _time_tui_ca(home: Path) -> tuple[float, float]:
    """Seconds to the first screen (header, queue, first certificates) and to every record read."""
    from tui_ca.tui.app import CAApp

    started = time.perf_counter()
    app = CAApp(home)
    async with app.run_test(size=(120, 36)):
        # Both events are set after the refresh that drew the rows.
        await app.ready_event.wait()
        ready = time.perf_counter() - started
        await app.loaded_event.wait()
        return ready, time.perf_counter() - started


def _fresh(kind: str, home: Path | None = None) -> tuple[float, float, float]:
    """One timing in a fresh interpreter, as an admin starting tui-ca gets (no warm heap, no leftovers).

    Also the child's peak RSS in MiB (``VmHWM``, after every record was read). Not ``ru_maxrss``:
    Linux carries that over from the parent at fork, and the parent may have read the home.
    """
    args = [sys.executable, __file__, "--one", kind] + ([str(home)] if home else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2])


def _time_home(home: Path, size: int, build_s: float) -> dict:
    empty = [_fresh("empty") for _ in range(RUNS)]
    ours = [_fresh("tui-ca", home) for _ in range(RUNS)]
    empty_s = statistics.median(r for r, _, _ in empty)
    empty_mib = statistics.median(m for _, _, m in empty)
    ready_s = statistics.median(r for r, _, _ in ours)
    loaded_s = statistics.median(f for _, f, _ in ours)
    ours_mib = statistics.median(m for _, _, m in ours)
    return {
        "certificates": size, "build_s": round(build_s, 1), "empty_app_s": round(empty_s, 3),
        "tui_ca_s": round(ready_s, 3), "ratio": round(ready_s / empty_s, 2), "all_read_s": round(loaded_s, 3),
        "empty_mib": round(empty_mib, 1), "tui_ca_mib": round(ours_mib, 1), "rss_ratio": round(ours_mib / empty_mib, 2),
    }  # fmt: skip


def measure(sizes=(0, 100_000)) -> list[dict]:
    """Build a home per size and time start-to-ready against an empty Textual app."""
    results = []
    with tempfile.TemporaryDirectory(prefix="tui-ca-bench-") as tmp:
        for size in sizes:
            t0 = time.perf_counter()
            home = build_home(Path(tmp) / f"home-{size}", size)
            results.append(_time_home(home, size, time.perf_counter() - t0))
    return results


def _peak_mib() -> float:
    """This process's peak resident set (``VmHWM``, kB), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        # Imports happen before the clock starts, for both apps alike.
        import textual.app  # noqa: F401

        import tui_ca.tui.app  # noqa: F401
        import tui_ca.tui.screens.first_run  # noqa: F401
        import tui_ca.tui.screens.main  # noqa: F401

        if argv[1] == "empty":
            seconds = asyncio.run(_time_empty_app())
            timings: tuple[float, float] = (seconds, seconds)
        else:
            timings = asyncio.run(_time_tui_ca(Path(argv[2])))
        print(*timings, _peak_mib())
        return 0
    if argv[:1] == ["--home"]:
        # Time an existing home (building 100,000 certificates takes a while).
        from tui_ca.engine.reader import CAReader

        home = Path(argv[1])
        rows = [_time_home(home, len(CAReader(home).certificates()), 0.0)]
    else:
        rows = measure(tuple(int(a) for a in argv) or (0, 100_000))
    print(f"{'certificates':>12}  {'build s':>8}  {'empty app s':>11}  {'tui-ca ready s':>14}  {'ratio':>5}  "
          f"{'all read s':>10}  {'empty MiB':>9}  {'tui-ca MiB':>10}  {'RSS ratio':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['certificates']:>12}  {r['build_s']:>8}  {r['empty_app_s']:>11}  {r['tui_ca_s']:>14}  "
              f"{r['ratio']:>5}  {r['all_read_s']:>10}  {r['empty_mib']:>9}  {r['tui_ca_mib']:>10}  "
              f"{r['rss_ratio']:>9}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
