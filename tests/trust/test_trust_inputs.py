"""Every input error is one line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from helpers import assert_refused, csr_pem, make_csr, run_cli

from tui_ca.engine import CertificateAuthority
from tui_ca.engine.home import TLS_CERT


@pytest.fixture
def cli_home(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "init", "--cn", "Input CA", check=True)
    path = tmp_path / "a.csr"
    path.write_bytes(csr_pem(make_csr(cn="a.example.net")))
    run_cli(home, "submit", str(path), check=True)
    return home


@pytest.mark.parametrize("text", ["²", "⑦", "٣", "1²"])
@pytest.mark.parametrize("command", [["show"], ["approve"], ["reject", "--reason", "x"], ["revoke"], ["export"],
                                     ["unhold"]])  # fmt: skip
def test_unicode_digits_are_not_ids(cli_home, command, text):
    assert_refused(run_cli(cli_home, command[0], text, *command[1:]), 2)
    assert CertificateAuthority(cli_home).request(1).status.value == "queued"


@pytest.mark.parametrize(
    "args",
    [
        ["approve", "1", "--days", "0"],
        ["approve", "1", "--days", "3651"],
        ["approve", "1", "--days", "100000000000000"],
        ["expire-queue", "--days", "0"],
        ["expire-queue", "--days", "99999999999"],
        ["server-setup", "--days", "0"],
        ["server-setup", "--days", "100000000000000"],
        ["server-setup", "--ocsp-days", "100000000000000"],
    ],
)
def test_days_past_any_limit_are_one_line(cli_home, args):
    assert_refused(run_cli(cli_home, *args), 2, "--")
    assert CertificateAuthority(cli_home).request(1).status.value == "queued"
    assert not (cli_home / TLS_CERT).exists()


@pytest.mark.parametrize(
    "args",
    [["--days", "0"], ["--days", "36501"], ["--days", "99999999999999"], ["--queue-days", "0"],
     ["--queue-days", "99999999999"]],
)  # fmt: skip
def test_init_days_past_any_limit_are_one_line(tmp_path, args):
    home = tmp_path / "home"
    assert_refused(run_cli(home, "init", "--cn", "Days CA", *args), 2)
    assert not (home / "ca").exists()


@pytest.mark.parametrize(("flag", "length"), [("--cn", 65), ("--org", 65), ("--ou", 65), ("--locality", 129)])
def test_init_refuses_name_fields_past_their_bounds(tmp_path, flag, length):
    home = tmp_path / "home"
    args = ["--cn", "ok"] if flag != "--cn" else []
    assert_refused(run_cli(home, "init", *args, flag, "x" * length), 2, f"{flag} is {length} characters")
    assert not (home / "ca").exists()


@pytest.mark.parametrize("length", [57, 60, 64])
def test_any_legal_org_gives_a_legal_root(tmp_path, length):
    home = tmp_path / "home"
    org = ("Example Networks of " + "n" * 64)[:length]
    result = run_cli(home, "init", "--cn", "Issuing", "--org", org)
    assert result.returncode == 0, result.stderr
    root = CertificateAuthority(home).root_cert()
    cn = root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert len(cn) <= 64 and cn.endswith(" Root CA")
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == org


def test_export_refuses_an_existing_file_or_symlink_unless_forced(cli_home, tmp_path):
    CertificateAuthority(cli_home).approve([1])
    existing = tmp_path / "cert.pem"
    existing.write_text("keep me\n")
    assert_refused(run_cli(cli_home, "export", "1", "-o", str(existing)), 2, "--force")
    assert existing.read_text() == "keep me\n"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "link.pem"
    link.symlink_to(victim)
    assert_refused(run_cli(cli_home, "export", "1", "-o", str(link)), 2, "symlink")
    # Forced: the file, or the link itself, is replaced; the link's target never written.
    assert run_cli(cli_home, "export", "1", "-o", str(existing), "--force").returncode == 0
    assert run_cli(cli_home, "export", "1", "-o", str(link), "--force").returncode == 0
    assert victim.read_text() == "precious\n" and not link.is_symlink()
    for path in (existing, link):
        x509.load_pem_x509_certificate(path.read_bytes())
    fresh = tmp_path / "fresh.pem"
    assert run_cli(cli_home, "export", "1", "-o", str(fresh)).returncode == 0
    assert fresh.read_bytes() == link.read_bytes()


def test_crl_output_still_overwrites_for_cron_and_writes_devices_in_place(cli_home, tmp_path):
    target = tmp_path / "ca.crl"
    target.write_bytes(b"old")
    assert run_cli(cli_home, "crl", "--der", "-o", str(target)).returncode == 0
    x509.load_der_x509_crl(target.read_bytes())
    assert run_cli(cli_home, "crl", "--publish", "-o", "/dev/null").returncode == 0
    assert Path("/dev/null").is_char_device()
