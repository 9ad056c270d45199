"""Operations figures: ``expiring`` and a ``/metrics`` scrape on a large home.

    python bench/ops_bench.py [N]       # default 100,000 certificates

* ``tui-ca expiring`` (a whole process, as cron runs it) against ``awk`` over
  an ``openssl ca`` index.txt of the same certificates doing the same count.
* A ``/metrics`` collection between commits (cached per change token) against
  one on a CA with no certificates: it should not grow with the store. The
  first collection after a commit (a pass over every certificate and the
  audit chain) is shown beside it in the note.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import generate_latest  # noqa: E402

from bench.common import SeededHome, median, new_ca, row, tui_ca_command  # noqa: E402
from tui_ca.server.metrics import Metrics  # noqa: E402


def _index_txt(path: Path, seeded: SeededHome) -> None:
    lines = []
    for cert in seeded.ca.iter_certificates():
        lines.append(f"V\t{cert.not_after:%y%m%d%H%M%S}Z\t\t{cert.serial_hex.upper()}\tunknown\t/CN={cert.requester}\n")
    path.write_text("".join(lines))


def _time(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return median(times)


def _scrape(metrics: Metrics, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        generate_latest(metrics.registry)
        times.append(time.perf_counter() - start)
    return median(times)


def measure(sizes: tuple[int, ...] = (0, 100_000), runs: int = 5) -> list[dict]:
    size = max(sizes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tui-ca-ops-bench-") as tmp:
        seeded = SeededHome(Path(tmp) / "home")
        seeded.grow_to(size)
        index = Path(tmp) / "index.txt"
        _index_txt(index, seeded)
        command = [*tui_ca_command(), "--home", str(seeded.home)]
        startup = _time([*command, "ca-cert"], runs)
        # Every seeded certificate ends in about 365 days: a 400-day window lists
        # them all (the worst case), a 30-day one lists none (a scan only).
        for days in (400, 30):
            horizon = (datetime.now(UTC) + timedelta(days=days)).strftime("%y%m%d%H%M%SZ")
            awk = ["awk", "-F", "\t", f'$1 == "V" && $2 < "{horizon}" {{ n++ }} END {{ print n + 0 }}', str(index)]
            ours = _time([*command, "expiring", "--days", str(days)], runs)
            base = _time(awk, runs)
            rows.append(row("ops", f"`expiring --days {days}` at {size:,} certificates vs awk over index.txt", ours,
                            base, ours / base, "≤ 25×", ours / base <= 25,
                            note=f"tui-ca ca-cert (start-up alone): {startup:.2f} s"))  # fmt: skip
        metrics = Metrics(seeded.ca)
        start = time.perf_counter()
        generate_latest(metrics.registry)
        cold = time.perf_counter() - start
        warm = _scrape(metrics, runs * 40)
        empty = Metrics(new_ca(Path(tmp) / "empty"))
        generate_latest(empty.registry)
        baseline = _scrape(empty, runs * 40)
        rows.append(row("ops", f"/metrics collection between commits at {size:,} vs an empty CA", warm, baseline,
                        warm / baseline, "≤ 2×", warm / baseline <= 2, unit="ms",
                        note=f"first collection after a commit: {cold * 1000:.0f} ms"))  # fmt: skip
    return rows


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    for r in measure((0, n)):
        print(r)
