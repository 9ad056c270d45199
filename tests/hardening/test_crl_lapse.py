"""The CRL never lapses unnoticed: cron can publish it, a stale one is
re-published on read, and when it cannot be (locked key) the command says so."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from hardening_support import (
    FIXED_NOW,
    PASSPHRASE,
    Clock,
    cli,
    csr_bytes,
    init_home,
    one_line_error,
    snapshot,
    write_passphrase_file,
)

from tui_ca.engine.reader import utc_now

CRL_DER = "crl/ca.crl"  # where the TinyDB backend publishes it


def _crl_number(data: bytes) -> int:
    crl = x509.load_der_x509_crl(data) if data[:1] == b"\x30" else x509.load_pem_x509_crl(data)
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_cron_publishes_with_a_passphrase_file_and_no_terminal(tmp_path):
    home = tmp_path / "home"
    ca = init_home(home, passphrase=PASSPHRASE)
    ca.submit(csr_bytes("to-revoke"))
    secret = write_passphrase_file(tmp_path)
    before = ca.info().crl_number
    out = tmp_path / "published.crl"
    # What a crontab line gets: no terminal, the passphrase file from the environment.
    result = cli(home, "crl", "--publish", "--der", "-o", str(out), env={"TUI_CA_PASSPHRASE_FILE": str(secret)})
    assert result.returncode == 0, result.stderr.decode()
    assert f"CRL {before + 1} published".encode() in result.stderr
    assert _crl_number(out.read_bytes()) == before + 1 == _crl_number((home / CRL_DER).read_bytes())
    assert ca.info().crl_number == before + 1
    assert ca.audit_records()[-1].action == "crl"


def test_engine_republishes_a_stale_crl_on_read(tmp_path):
    clock = Clock(FIXED_NOW)
    ca = init_home(tmp_path / "home", clock=clock, crl_days=7)
    first = ca.info()
    assert not ca.crl_is_stale()
    clock.now = FIXED_NOW + timedelta(days=6, hours=23)
    assert _crl_number(ca.crl()) == first.crl_number  # still fresh: served as is
    clock.now = first.crl_next_update + timedelta(seconds=1)
    assert ca.crl_is_stale()
    crl = x509.load_der_x509_crl(ca.crl())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == first.crl_number + 1
    assert crl.last_update_utc == clock.now
    assert crl.next_update_utc == clock.now + timedelta(days=7)
    assert not ca.crl_is_stale()
    assert ca.audit_records()[-1].action == "crl"
    assert ca.verify_audit() == []


def test_cli_republishes_a_stale_crl(tmp_path):
    home = tmp_path / "home"
    # A CA whose last CRL was published 30 days ago by the real clock.
    init_home(home, passphrase=PASSPHRASE, clock=Clock(utc_now() - timedelta(days=30)))
    secret = write_passphrase_file(tmp_path)
    old = _crl_number((home / CRL_DER).read_bytes())
    result = cli(home, "--passphrase-file", str(secret), "crl")
    assert result.returncode == 0, result.stderr.decode()
    crl = x509.load_pem_x509_crl(result.stdout)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == old + 1
    assert crl.next_update_utc > utc_now() + timedelta(days=6)


def test_a_stale_crl_that_cannot_be_signed_is_an_error_not_silence(tmp_path):
    home = tmp_path / "home"
    init_home(home, passphrase=PASSPHRASE, clock=Clock(utc_now() - timedelta(days=30)))
    before = snapshot(home)
    one_line_error(cli(home, "crl"), 1, "encrypted")
    assert snapshot(home) == before
