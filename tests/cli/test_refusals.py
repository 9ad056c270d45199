"""Every refusal through the real ``tui-ca`` command: one line on stderr that
starts ``tui-ca: ``, no traceback, exit 1 (a rule) or 2 (bad input or usage),
and not one byte changed under the home.

One home per worker is prepared once (module scope) with a requester holding
an active certificate (ID 1), one with a queued request (ID 2) and a revoked
certificate (ID 3); a refusal never changes it, which each test checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    CA_NAMES,
    assert_refused,
    csr_der,
    csr_pem,
    make_csr,
    refused_inputs,
    run_cli,
    snapshot_home,
)

from tui_ca.engine import CertificateAuthority, RevocationReason
from tui_ca.engine.models import Actor

REFUSED = refused_inputs()


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("cli-refusals") / "home"
    ca = CertificateAuthority(home, actor=Actor("setup"))
    ca.init(CA_NAMES)
    for name in ("holder", "waiter", "gone"):
        ca.submit(csr_pem(make_csr(cn=f"{name}.example")), requester=name)
    ca.approve([1, 3])
    ca.revoke(3, RevocationReason.KEY_COMPROMISE)
    return home


def refused(home: Path, code: int, *args: str, fragments: tuple[str, ...] = (), stdin: bytes | None = None) -> str:
    """Run a command that must be refused and must leave the home untouched."""
    before = snapshot_home(home)
    message = assert_refused(run_cli(home, *args, input=stdin), code, *fragments)
    assert snapshot_home(home) == before
    return message


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_csr_from_a_file(home, tmp_path, case):
    data, code, fragment = REFUSED[case]
    path = tmp_path / "request.csr"
    path.write_bytes(data)
    refused(home, code, "submit", str(path), "--requester", "newcomer", fragments=(fragment,))


@pytest.mark.parametrize("case", ["bad-signature", "over-64KiB", "ca-true"])
def test_refused_csr_from_stdin(home, case):
    data, code, fragment = REFUSED[case]
    refused(home, code, "submit", "-", fragments=(fragment,), stdin=data)


def test_requester_with_active_certificate_is_told_which(home):
    message = refused(home, 1, "submit", "-", "--requester", "holder", stdin=csr_der(make_csr(cn="new-key")))
    serial = CertificateAuthority(home).certificate(1).serial_hex
    assert "holds active certificate 1" in message and serial in message and "revoke it first" in message


def test_requester_with_queued_request_is_refused(home):
    refused(home, 1, "submit", "-", "--requester", "Waiter", fragments=("already has request 2",),
            stdin=csr_pem(make_csr(cn="again")))  # fmt: skip


@pytest.mark.parametrize(
    ("code", "args", "fragment"),
    [
        (2, ["submit", "/nonexistent/request.csr"], "cannot read"),
        (2, ["submit", "-", "--requester", ""], "empty"),
        (2, ["approve", "abc"], "not a Certificate ID"),
        (2, ["approve", "999"], "no request with Certificate ID 999"),
        (1, ["approve", "1"], "approved, not queued"),
        (2, ["approve", "2", "--days", "0"], "--days"),
        (2, ["approve", "2", "--days", "soon"], "invalid int value"),
        (1, ["reject", "1", "--reason", "late"], "approved, not queued"),
        (2, ["reject", "2"], "--reason"),
        (2, ["reject", "2", "--reason", "  "], "needs a reason"),
        (2, ["reject", "77", "--reason", "x"], "no request"),
        (1, ["revoke", "3"], "already revoked"),
        (2, ["revoke", "1", "--reason", "lostIt"], "unknown revocation reason"),
        (2, ["revoke", "removeFromCRL"], "neither a Certificate ID nor a serial"),
        (2, ["revoke", "999"], "no certificate with Certificate ID 999"),
        (2, ["revoke", "abcdef12345"], "no certificate with serial abcdef12345"),
        (2, ["show", "999"], "no request or certificate"),
        (2, ["show", "zz:top"], "neither a Certificate ID nor a serial"),
        (2, ["export", "2"], "no certificate with Certificate ID 2"),
        (2, ["export", "1", "-o", "/nonexistent/dir/out.pem"], "cannot write"),
        (2, ["list", "--status", "pending"], "unknown status"),
        (2, ["list", "everything"], "invalid choice"),
        (2, ["frobnicate"], "unknown command 'frobnicate'"),
        (2, ["aprove", "1"], "unknown command 'aprove'; did you mean 'approve'?"),
        (2, ["help", "sohw"], "unknown command 'sohw'; did you mean 'show'?"),
        (2, ["audit", "--bogus"], "unrecognized arguments"),
        (1, ["init", "--cn", "Again"], "already exists"),
        (2, ["expire-queue", "--days", "0"], "--days"),
    ],
)
def test_refused_command(home, tmp_path, code, args, fragment):
    stdin = csr_pem(make_csr(cn="whoever")) if args[:2] == ["submit", "-"] else None
    refused(home, code, *args, fragments=(fragment,), stdin=stdin)


def test_partial_approval_has_its_own_exit_code(tmp_path):
    home = tmp_path / "home"
    ca = CertificateAuthority(home, actor=Actor("setup"))
    ca.init(CA_NAMES)
    queued = ca.submit(csr_pem(make_csr(cn="partial"))).request.id
    result = run_cli(home, "approve", str(queued), "999")
    assert result.returncode == 3, result.stderr
    assert result.stdout.decode().split()[0] == str(queued)
    assert result.stderr.decode() == "tui-ca: request 999: no request with Certificate ID 999\n"


def test_bulk_approve_reports_each_refusal_on_its_own_line(home):
    before = snapshot_home(home)
    result = run_cli(home, "approve", "1", "999")
    err = result.stderr.decode()
    assert result.returncode == 2 and result.stdout == b"" and "Traceback" not in err
    assert err.splitlines() == [
        "tui-ca: request 1: request 1 is approved, not queued; nothing to approve",
        "tui-ca: request 999: no request with Certificate ID 999",
    ]
    assert snapshot_home(home) == before


# Every command but init needs a CA; a home without one is refused up front
# (a mistyped --home must not look like an empty CA; see test_missing_home.py).
@pytest.mark.parametrize("args", [["submit", "-"], ["approve", "1"], ["revoke", "1"], ["crl"], ["show", "1"]])
def test_commands_without_a_ca(tmp_path, args):
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    stdin = csr_pem(make_csr(cn="x")) if args == ["submit", "-"] else None
    message = assert_refused(run_cli(empty, *args, input=stdin), 1)
    assert message == f"tui-ca: no CA in {empty}: run 'tui-ca init' first\n"
    assert sorted(p.name for p in empty.rglob("*") if p.is_file() and p.name != ".lock") == []


@pytest.mark.parametrize("args", [["init", "--cn", "X"], ["list"], ["audit"], ["submit", "-"]])
def test_home_that_is_a_file_is_bad_input(tmp_path, args):
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_bytes(b"keep me")
    stdin = csr_pem(make_csr(cn="x")) if args == ["submit", "-"] else None
    assert_refused(run_cli(not_a_dir, *args, input=stdin), 2, "not a directory")
    assert not_a_dir.read_bytes() == b"keep me"


def test_external_root_csr_to_an_unwritable_place_stores_nothing(tmp_path):
    home = tmp_path / "home"
    result = run_cli(home, "init", "--external-root", "--cn", "X", "-o", str(tmp_path / "missing-dir/csr.pem"))
    assert_refused(result, 2, "cannot write")
    # Nothing was kept, so the admin can simply run the command again.
    assert not home.exists() or snapshot_home(home) == {}
    again = run_cli(home, "init", "--external-root", "--cn", "X", "-o", str(tmp_path / "csr.pem"))
    assert again.returncode == 0, again.stderr
