"""``tui-ca list refused``: what intake refused, read back by an admin (issue 13), as a real process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_refused, csr_pem, make_csr, run_cli

SSH = {"SSH_CLIENT": "198.51.100.23 52144 22"}


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    assert run_cli(home, "init", "--cn", "CLI Issuing CA", "--org", "Example").returncode == 0
    return home


def test_refused_submissions_are_listed_newest_first_in_both_forms(home):
    assert_refused(run_cli(home, "submit", "-", input=b"not a CSR at all", env=SSH), 2, "not a certificate")
    small = csr_pem(make_csr("rsa-1024", cn="small.example"))
    assert_refused(run_cli(home, "submit", "-", "--requester", "desk\x1b[2J", input=small, env=SSH), 1, "1024")
    listing = run_cli(home, "list", "refused")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.decode().splitlines()
    assert lines[0].split() == ["WHEN", "VIA", "FROM", "REQUESTER", "REASON"]
    assert len(lines) == 3
    assert "RSA key of 1024 bits" in lines[1] and "not a certificate signing request" in lines[2]
    # The requester's text is shown with its control characters made visible.
    assert "desk\\x1b[2J" in lines[1] and "\x1b" not in listing.stdout.decode()
    assert "@198.51.100.23" in lines[1]
    records = json.loads(run_cli(home, "list", "refused", "--json").stdout)
    assert [r["source"] for r in records] == ["cli", "cli"]
    assert records[0]["requester"] == "desk\x1b[2J" and records[0]["subject"] == "CN=small.example"
    assert records[0]["address"] == "198.51.100.23" and records[0]["seq"] == 2
    assert records[1]["subject"] is None and records[1]["requester"] is None
    jsonl = run_cli(home, "list", "refused", "--jsonl").stdout.decode().splitlines()
    assert [json.loads(line)["seq"] for line in jsonl] == [2, 1]


def test_no_refusals_is_a_header_or_an_empty_array(home):
    assert run_cli(home, "list", "refused").stdout.decode().split() == ["WHEN", "VIA", "FROM", "REQUESTER", "REASON"]
    assert json.loads(run_cli(home, "list", "refused", "--json").stdout) == []


def test_status_does_not_apply_to_refusals(home):
    assert_refused(run_cli(home, "list", "refused", "--status", "queued"), 2, "--status goes with")
