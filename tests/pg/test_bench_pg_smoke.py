"""bench/pg_bench.py runs end to end (machinery only: --quick sizes mean nothing, no speed asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.test_bench_smoke import ROOT, _figure_rows

EXPECTED = [
    r"Bulk approval, 5 CSRs, PostgreSQL",
    r"Bulk approval, 5 CSRs, TinyDB",
    r"Bulk approval, 5 CSRs: PostgreSQL vs TinyDB",
    r"Approve one request in-process, PostgreSQL, 20 certificates",
    r"Approve one request in-process, TinyDB, 40 certificates",
    r"Approve one request, 40 certificates: PostgreSQL in-process vs one `openssl ca -batch`",
    r"Seed 20 certificates on PostgreSQL \(submit_many \+ approve\): writer cache",
    r"EST enrollments/s on PostgreSQL, 2 clients: two nodes vs one node",
]


def test_quick_postgresql_rows_have_numbers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "postgresql", "--workdir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _figure_rows(proc.stdout)
    for pattern in EXPECTED:
        matches = [cells for figure, cells in rows.items() if re.search(pattern, figure)]
        assert len(matches) == 1, f"no single row for {pattern!r} in:\n{proc.stdout}"
        assert re.fullmatch(r"\d+\.\d\d", matches[0][3]), matches[0]
