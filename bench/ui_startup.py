"""UI start-up at scale: time to a ready main screen vs an empty Textual app.

For each size a CA home is built with one bulk intake (``submit_many``) and
one bulk ``approve``; then, in the same process and run, an empty Textual
``App`` and the tui-ca app are each started headless with ``run_test`` and
timed from launch until ready (the empty app: mounted; tui-ca: the main
screen showing the header, the whole queue and the first certificates), each
run in a fresh interpreter with its own imports done before the clock starts
(the empty app imports Textual only, so its RSS is that of a bare Textual
app). The ratio is what the issue bounds (≤ 3×). ``all_read_s`` is when every
record has been read and the lists can scroll to the end. Each child also
reports its peak RSS (``VmHWM``, taken once every record was read), and the
RSS ratio is tui-ca's over the empty app's (bound: ≤ 3× at 100,000
certificates). On a busy machine wall time is inflated, so each side's CPU
seconds are printed too: ``cpu_s`` is the child's whole life (user + sys from
``getrusage(RUSAGE_CHILDREN)``, imports included), ``ready_cpu_s`` the process CPU from launch to
ready.

    python bench/ui_startup.py              # sizes 0 and 100,000
    python bench/ui_startup.py 0 1000       # other sizes
    python bench/ui_startup.py --home DIR   # an existing home (copied first: the UI may write, e.g. a CRL)
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
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
# As bench/cli_startup.py: an installed tui-ca has its bytecode compiled, and Textual's
# always is (site-packages); with PYTHONDONTWRITEBYTECODE set in the shell, a checkout
# recompiled every module the UI imports after the clock starts (~40 ms at start-up).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


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


async def _time_empty_app() -> tuple[float, float]:
    from textual.app import App

    started, cpu = time.perf_counter(), time.process_time()
    async with App().run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        return time.perf_counter() - started, time.process_time() - cpu


async def _time_tui_ca(home: Path) -> tuple[float, float, float]:
    """Seconds to the first screen (header, queue, first certificates), to every record read, and CPU to ready."""
    from tui_ca.tui.app import CAApp

    started, cpu = time.perf_counter(), time.process_time()
    app = CAApp(home)
    async with app.run_test(size=(120, 36)):
        # Both events are set after the refresh that drew the rows.
        await app.ready_event.wait()
        ready, ready_cpu = time.perf_counter() - started, time.process_time() - cpu
        await app.loaded_event.wait()
        return ready, time.perf_counter() - started, ready_cpu


def _fresh(kind: str, home: Path | None = None) -> tuple[float, float, float, float, float]:
    """One timing in a fresh interpreter, as an admin starting tui-ca gets (no warm heap, no leftovers).

    Ready seconds, all-read seconds, the child's peak RSS in MiB (``VmHWM``,
    after every record was read; not ``ru_maxrss``: Linux carries that over
    from the parent at fork, and the parent may have read the home), its CPU
    to ready, and its whole CPU (user + sys of the reaped child).
    """
    args = [sys.executable, __file__, "--one", kind] + ([str(home)] if home else [])
    before = _children_cpu()
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=_ENV).stdout
    # Children run one at a time, so the growth of the reaped children's usage is this one's.
    cpu = _children_cpu() - before
    ready, loaded, mib, ready_cpu = (float(x) for x in out.split())
    return ready, loaded, mib, ready_cpu, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time_home(home: Path, size: int, build_s: float) -> dict:
    empty = [_fresh("empty") for _ in range(RUNS)]
    ours = [_fresh("tui-ca", home) for _ in range(RUNS)]

    def med(runs: list[tuple[float, ...]], n: int) -> float:
        return statistics.median(r[n] for r in runs)

    empty_s, ready_s = med(empty, 0), med(ours, 0)
    empty_mib, ours_mib = med(empty, 2), med(ours, 2)
    return {
        "certificates": size, "build_s": round(build_s, 1), "empty_app_s": round(empty_s, 3),
        "tui_ca_s": round(ready_s, 3), "ratio": round(ready_s / empty_s, 2), "all_read_s": round(med(ours, 1), 3),
        "empty_mib": round(empty_mib, 1), "tui_ca_mib": round(ours_mib, 1), "rss_ratio": round(ours_mib / empty_mib, 2),
        "empty_ready_cpu_s": round(med(empty, 3), 3), "tui_ca_ready_cpu_s": round(med(ours, 3), 3),
        "empty_cpu_s": round(med(empty, 4), 2), "tui_ca_cpu_s": round(med(ours, 4), 2),
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
        # Imports happen before the clock starts; the empty app imports only Textual.
        import textual.app  # noqa: F401

        if argv[1] == "empty":
            seconds, cpu = asyncio.run(_time_empty_app())
            timings: tuple[float, float, float] = (seconds, seconds, cpu)
        else:
            import tui_ca.tui.app  # noqa: F401
            import tui_ca.tui.screens.first_run  # noqa: F401
            import tui_ca.tui.screens.main  # noqa: F401

            timings = asyncio.run(_time_tui_ca(Path(argv[2])))
        print(timings[0], timings[1], _peak_mib(), timings[2])
        return 0
    if argv[:1] == ["--home"]:
        # Time an existing home (building 100,000 certificates takes a while), on a copy:
        # the UI may write (a CRL past half its life), and the original stays as it was.
        from tui_ca.engine.reader import CAReader

        with tempfile.TemporaryDirectory(prefix="tui-ca-bench-") as tmp:
            home = Path(tmp) / "home"
            shutil.copytree(argv[1], home, symlinks=True)
            listing = CAReader(home).listing()
            size = len(listing.valid) + len(listing.closed_certificates)
            rows = [_time_home(home, size, 0.0)]
    else:
        rows = measure(tuple(int(a) for a in argv) or (0, 100_000))
    print(f"{'certificates':>12}  {'build s':>8}  {'empty app s':>11}  {'tui-ca ready s':>14}  {'ratio':>5}  "
          f"{'all read s':>10}  {'empty MiB':>9}  {'tui-ca MiB':>10}  {'RSS ratio':>9}  "
          f"{'empty CPU s (ready/all)':>23}  {'tui-ca CPU s (ready/all)':>24}")  # fmt: skip
    for r in rows:
        print(f"{r['certificates']:>12}  {r['build_s']:>8}  {r['empty_app_s']:>11}  {r['tui_ca_s']:>14}  "
              f"{r['ratio']:>5}  {r['all_read_s']:>10}  {r['empty_mib']:>9}  {r['tui_ca_mib']:>10}  "
              f"{r['rss_ratio']:>9}  {r['empty_ready_cpu_s']:>11} / {r['empty_cpu_s']:<9}  "
              f"{r['tui_ca_ready_cpu_s']:>12} / {r['tui_ca_cpu_s']:<9}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
