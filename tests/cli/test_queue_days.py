"""init --queue-days sets how long requests may wait; expire-queue uses it by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def cli(home, *args, env=None):
    return subprocess.run([sys.executable, "-m", "tui_ca", "--home", str(home), *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})  # fmt: skip


@pytest.mark.parametrize("days", ["0", "4000"])
def test_out_of_range_queue_days_is_refused_and_nothing_is_created(tmp_path, days):
    home = tmp_path / "home"
    result = cli(home, "init", "--cn", "Q CA", "--queue-days", days)
    assert result.returncode == 2
    assert result.stderr == f"tui-ca: --queue-days must be between 1 and 3650, not {days}\n"
    assert not (home / "ca").exists()


def test_expire_queue_defaults_to_the_configured_age(tmp_path):
    home = tmp_path / "home"
    assert cli(home, "init", "--cn", "Q CA", "--queue-days", "3").returncode == 0
    assert cli(home, "expire-queue").stdout == "0 queued request(s) expired\n"
    records = json.loads(cli(home, "audit", "--json").stdout)
    assert [r["action"] for r in records] == ["init", "crl", "crl"]  # the issuing CA's CRL, then the root's
