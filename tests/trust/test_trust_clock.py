"""The clock is checked, not trusted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from helpers import CA_NAMES, assert_refused, csr_pem, make_csr, run_cli, snapshot_home

from tui_ca.engine import Actor, CertificateAuthority, RevocationReason
from tui_ca.engine.clock import ClockError


@pytest.mark.parametrize("days", ["0", "-1", "100000"])
def test_init_refuses_a_crl_lifetime_of_no_use(tmp_path, days):
    home = tmp_path / "home"
    assert_refused(run_cli(home, "init", "--cn", "Clock CA", "--crl-days", days), 2, "--crl-days must be between 1")
    assert not (home / "ca").exists()


def test_nothing_is_signed_while_the_clock_is_before_the_last_crl(ca, clock, home):
    clock.now += timedelta(days=1)
    ca.publish_crl()
    ca.submit(csr_pem(make_csr(cn="late.example.net")))
    clock.now -= timedelta(hours=12)  # after the CA's start, before the CRL's thisUpdate
    before = snapshot_home(home)
    with pytest.raises(ClockError, match="before the last CRL's thisUpdate"):
        ca.approve([1])
    with pytest.raises(ClockError, match="before the last CRL's thisUpdate"):
        ca.publish_crl()
    assert snapshot_home(home) == before


def test_nothing_is_signed_before_the_ca_starts_or_after_it_ends(tmp_path, clock):
    ca = CertificateAuthority(tmp_path / "h", clock=clock, actor=Actor("alice"))
    ca.init(CA_NAMES, days=30)
    ca.submit(csr_pem(make_csr(cn="a.example.net")))
    clock.now -= timedelta(days=1)
    with pytest.raises(ClockError, match="before the issuing CA's start"):
        ca.approve([1])
    clock.now += timedelta(days=40)
    with pytest.raises(ClockError, match="issuing CA ended"):
        ca.approve([1])
    with pytest.raises(ClockError, match="issuing CA ended"):
        ca.publish_crl()
    assert ca.request(1).status.value == "queued"


def test_the_cli_refuses_with_one_line_when_the_clock_is_behind(tmp_path):
    home = tmp_path / "home"
    ahead = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    ca = CertificateAuthority(home, clock=lambda: ahead)
    ca.init(CA_NAMES)
    ca.submit(csr_pem(make_csr(cn="b.example.net")))
    assert_refused(run_cli(home, "approve", "1"), 1, "check the system clock")
    assert CertificateAuthority(home).request(1).status.value == "queued"


def test_a_certificate_cut_short_by_the_ca_end_is_reported(tmp_path, clock):
    home = tmp_path / "h"
    ca = CertificateAuthority(home, clock=clock)
    ca.init(CA_NAMES, days=100)
    ca.submit(csr_pem(make_csr(cn="c.example.net")))
    (outcome,) = ca.approve([1], days=365)
    assert outcome.certificate is not None
    assert outcome.warning and "cut short" in outcome.warning
    assert outcome.certificate.not_after == ca.issuing_cert().not_valid_after_utc
    ca.submit(csr_pem(make_csr(cn="d.example.net")))
    (full,) = ca.approve([2], days=30)
    assert full.warning is None


def test_the_cli_reports_a_cut_short_certificate(tmp_path):
    home = tmp_path / "home"
    run_cli(home, "init", "--cn", "Short CA", "--days", "30", check=True)
    path = tmp_path / "e.csr"
    path.write_bytes(csr_pem(make_csr(cn="e.example.net")))
    run_cli(home, "submit", str(path), check=True)
    result = run_cli(home, "approve", "1", "--days", "365")
    assert result.returncode == 0
    assert "cut short" in result.stderr.decode() and result.stderr.decode().count("\n") == 1


def test_a_crl_dated_in_the_future_is_republished_when_served(ca, clock):
    clock.now += timedelta(minutes=3)  # another admin's clock ran a little ahead
    ca.publish_crl()
    clock.now -= timedelta(minutes=3)
    number = ca.info().crl_number
    assert ca.crl_is_stale()
    crl = x509.load_der_x509_crl(ca.crl())
    assert ca.info().crl_number == number + 1
    assert crl.last_update_utc == clock.now
    assert not ca.crl_is_stale()


def test_a_revocation_is_refused_too_when_the_clock_is_wrong(ca, clock):
    ca.submit(csr_pem(make_csr(cn="f.example.net")))
    ca.approve([1])
    clock.now -= timedelta(days=3)
    with pytest.raises(ClockError):
        ca.revoke(1, RevocationReason.KEY_COMPROMISE)
    assert ca.certificate(1).revoked_at is None
