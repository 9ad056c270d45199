"""A mistyped --home is refused, not shown as an empty CA, and nothing is created."""

from __future__ import annotations

import subprocess
import sys

import pytest

READ_COMMANDS = [["list"], ["list", "certs", "--json"], ["audit"], ["audit", "--verify"], ["show", "1"],
                 ["ca-cert"], ["crl"], ["export", "1"]]  # fmt: skip


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c))
def test_commands_on_a_home_without_a_ca_refuse_in_one_line(tmp_path, command):
    home = tmp_path / "typo"
    result = subprocess.run([sys.executable, "-m", "tui_ca", "--home", str(home), *command],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"tui-ca: no CA in {home}: run 'tui-ca init' first"]
    assert not home.exists()
