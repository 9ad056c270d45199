"""The benchmark runs end to end and prints every figure with a number.

Only the machinery is checked (``--quick`` sizes are far too small to mean
anything); speed is never asserted here, it is what ``bench/run.py`` reports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None and not Path("/usr/bin/openssl").exists(),
                                reason="the baselines need the openssl binary")  # fmt: skip

# Figure-name patterns bench/run.py --quick must print, one table row each.
EXPECTED_ROWS = [
    r"Bulk approval, 5 CSRs",
    r"Approve one request in-process, 20 certificates",
    r"Approve one request in-process, 40 certificates",
    r"Approve one request in-process, 80 certificates",
    r"One-shot `tui-ca approve ID` process, 20 certificates",
    r"One-shot `tui-ca approve ID` process, 80 certificates",
    r"CRL with 10 revoked, publish_crl\(\) cold",
    r"CRL with 10 revoked, publish_crl\(\) warm",
    r"CRL with 30 revoked, publish_crl\(\) cold",
    r"CRL with 30 revoked, publish_crl\(\) warm",
    r"`tui-ca show ID` vs `openssl x509 -noout -text`",
    r"one-shot `tui-ca approve ID` at 20 certificates, with a `tui-ca command-server` running, vs one "
    r"`openssl ca -batch`",
    r"the same approve in a process of its own \(no command server\)",
    r"CA key encrypted .* vs `openssl ca -batch -passin`",
    r"`tui-ca --help` vs `tui-ca show ID`",
]


def _figure_rows(table: str) -> dict[str, list[str]]:
    """Figure text -> its cells, for the first (figures) table."""
    rows = {}
    for line in table.splitlines():
        if not line.startswith("| ") or line.startswith("| Figure") or line.startswith("| ---"):
            if line.startswith("| Setup"):
                break
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0]] = cells
    return rows


def test_quick_run_prints_every_figure_with_a_numeric_ratio(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick",
         "--only", "bulk-approve", "--only", "approve-latency", "--only", "crl", "--only", "cli-startup", "--workdir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _figure_rows(proc.stdout)
    for pattern in EXPECTED_ROWS:
        matches = [cells for figure, cells in rows.items() if re.search(pattern, figure)]
        assert len(matches) == 1, f"no single row for {pattern!r} in:\n{proc.stdout}"
        ratio = matches[0][3]
        assert re.fullmatch(r"\d+\.\d\d", ratio), f"ratio {ratio!r} of {pattern!r} is not a number"
    assert "| Setup (not a goal) |" in proc.stdout
    assert list(tmp_path.iterdir()) == [], "the run left its temporary homes behind"


def test_extra_rows_from_other_modules_fit_the_table() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from bench.run import normalise_extra, render
    finally:
        sys.path.remove(str(ROOT))
    row = normalise_extra({"certificates": 100, "empty_app_s": 0.2, "tui_ca_s": 0.5, "ratio": 2.5},
                          "UI start-up", "≤ 4", "ui-startup")  # fmt: skip
    table = render([row])
    assert "UI start-up (certificates=100)" in table and "| 2.50 | ≤ 4 | yes |" in table
