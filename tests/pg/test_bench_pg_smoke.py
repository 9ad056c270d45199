"""bench/pg_bench.py runs end to end (machinery only: --quick sizes mean nothing, no speed asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.common import new_ca
from tests.helpers import csr_pem, make_csr
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


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_latency_from_a_seed_home_copies_it_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    """--seed-from: the 3 size starts from a copy of the home, 10 grows from it; the home itself is not written."""
    seed = tmp_path / "seed-home"
    ca = new_ca(seed)
    ids = [ca.submit(csr_pem(make_csr(cn=f"seed-{n}.test"))).request.id for n in range(3)]
    ca.approve(ids)
    before = _tree(seed)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pg_bench.py"), "--only", "latency", "--sizes", "3,10", "--runs", "2",
         "--openssl-runs", "1", "--seed-from", f"3={seed}", "--workdir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _figure_rows(proc.stdout)
    for pattern in (r"in-process, PostgreSQL, 3 certificates", r"in-process, TinyDB, 10 certificates"):
        matches = [cells for figure, cells in rows.items() if re.search(pattern, figure)]
        assert len(matches) == 1, f"no single row for {pattern!r} in:\n{proc.stdout}"
        assert re.fullmatch(r"\d+\.\d\d", matches[0][3]), matches[0]
    assert "`tui-ca copy-store` of 3 requests, 3 certificates" in proc.stdout
    assert _tree(seed) == before
