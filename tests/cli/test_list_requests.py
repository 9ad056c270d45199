"""``tui-ca list`` (requests) writes what it wrote when it built a dict per record, byte for byte.

The listing now reads the listing bodies the store keeps; these tests run the
real command and compare its output, in every form and for every status, with
the output made from the per-record dicts (``iter_request_dicts``), as the
command made it before: after decisions, with odd stored text, after a
requests shard is changed by hand, and refuse a damaged one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_refused, csr_pem, make_csr, run_cli

from tui_ca.cli import _safe
from tui_ca.engine import CertificateAuthority, RequestStatus

ENCODE = json.JSONEncoder().encode


def cli(home: Path, *args: str) -> bytes:
    result = run_cli(home, *args)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def per_record(home: Path, form: str, status: RequestStatus | None) -> bytes:
    """The output of ``list`` made from one dict per record, as the command wrote it before the bodies."""
    dicts = list(CertificateAuthority(home).iter_request_dicts(status))
    if form == "--jsonl":
        return "".join(ENCODE(d) + "\n" for d in dicts).encode()
    if form == "--json":
        return (("[\n" + ",\n".join(map(ENCODE, dicts)) + "\n]\n") if dicts else "[]\n").encode()
    lines = [f"{'ID':>6}  {'STATUS':9}  {'REQUESTER':24}  {'KEY':9}  SUBMITTED\n"]
    for r in dicts:
        at = r["submitted_at"]
        lines.append(f"{r['id']:>6}  {r['status']:9}  {_safe(r['requester'])[:24]:24}  "
                     f"{r['details']['key_type']:9}  {at[:10]} {at[11:16]}\n")  # fmt: skip
    return "".join(lines).encode()


def assert_listing_is_the_records(home: Path) -> None:
    for status in (None, *RequestStatus):
        for form in ("--json", "--jsonl", None):
            args = ["list", *([form] if form else []), *(["--status", status.value] if status else [])]
            assert cli(home, *args) == per_record(home, form or "", status), args
    assert cli(home, "list", "requests", "--json") == cli(home, "list", "--json")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    cli(home, "init", "--cn", "List Issuing CA", "--base-url", "http://pki.example.net")
    ca = CertificateAuthority(home)
    submitted = ca.submit_many([(csr_pem(make_csr(cn=f"device-{i}")), None) for i in range(6)])
    ids = [s.request.id for s in submitted]
    ca.approve(ids[:2])
    ca.reject(ids[2], "unknown device")
    # Intake refuses names like these; a record written by an older version may still hold one.
    with ca.store.transaction() as txn:
        txn.put_request(
            {**txn.get_request(ids[3]), "requester": 'a "desk"\t\x1b[31mred\u2028\u00e9 and a very long tail'}
        )
        txn.put_request({**txn.get_request(ids[4]), "requester": "\u0394evice-4"})
    return home


def test_every_form_and_status_is_what_the_records_say(home):
    assert_listing_is_the_records(home)
    table = cli(home, "list").decode().splitlines()
    assert len(table) == 7 and "\\x1b[31mred" in table[4] and "\x1b" not in "".join(table)


@pytest.mark.journal_commits  # watches the files a journal commit writes
def test_a_requests_shard_changed_by_hand_is_listed_from_its_records(home):
    cli(home, "list")  # bodies in place and read
    shard = home / "db" / "requests" / "00000.json"
    data = json.loads(shard.read_text())
    first = min(data["requests"], key=int)
    data["requests"][first]["requester"] = "edited-by-hand"
    shard.write_text(json.dumps(data))
    assert b"edited-by-hand" in cli(home, "list", "--json")
    assert_listing_is_the_records(home)


@pytest.mark.journal_commits  # watches the files a journal commit writes
@pytest.mark.parametrize("form", [["--json"], ["--jsonl"], [], ["--status", "approved"]])
def test_a_damaged_requests_shard_is_refused_by_name(home, form):
    shard = home / "db" / "requests" / "00000.json"
    shard.write_bytes(b"null")
    result = run_cli(home, "list", *form)
    assert_refused(result, 1, str(shard))
    assert b"device" not in result.stdout  # nothing listed from the kept body
