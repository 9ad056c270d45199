"""Revocation state stays true: superseded re-marked keyCompromise, holds released, service certificates revocable."""

from __future__ import annotations

import pytest
from cryptography import x509
from helpers import assert_refused, csr_pem, make_csr, make_key, run_cli

from tui_ca.engine import CertificateAuthority, RevocationReason, RuleError
from tui_ca.engine.home import OCSP_CERT, SCEP_RA_CERT, TLS_CERT
from tui_ca.engine.models import CertStatus
from tui_ca.engine.revocation_state import SERVICE_REQUESTERS, unhold
from tui_ca.engine.service_certs import setup_service_certs


def _crl(ca: CertificateAuthority) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(ca.crl(republish_if_stale=False))


def _reason(crl: x509.CertificateRevocationList, serial: int) -> x509.ReasonFlags | None:
    entry = crl.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def test_a_superseded_certificate_can_be_re_marked_key_compromise_and_its_key_is_then_refused(ca, home):
    key = make_key("ec-p256")
    ca.submit(csr_pem(make_csr(key, cn="laptop.example.net")))
    ca.approve([1])
    ca.submit(csr_pem(make_csr(cn="laptop.example.net")), renewal_of=1)
    ca.approve([2])  # supersedes 1
    old = ca.certificate(1)
    assert old.revocation_reason is RevocationReason.SUPERSEDED
    number = ca.info().crl_number
    result = run_cli(home, "revoke", "1", "--reason", "keyCompromise")
    assert result.returncode == 0, result.stderr
    fresh = CertificateAuthority(home)
    assert fresh.certificate(1).revocation_reason is RevocationReason.KEY_COMPROMISE
    assert fresh.certificate(1).revoked_at == old.revoked_at  # the revocation date stands
    assert fresh.info().crl_number == number + 1
    assert _reason(_crl(fresh), old.serial) == x509.ReasonFlags.key_compromise
    # The key is refused at intake from now on, even in a new CSR from someone else.
    with pytest.raises(RuleError, match="keyCompromise"):
        fresh.submit(csr_pem(make_csr(key, cn="other.example.net")))
    assert_refused(run_cli(home, "revoke", "1", "--reason", "keyCompromise"), 1, "already revoked")
    assert fresh.verify_audit() == []


def test_other_reason_changes_stay_refused(ca):
    ca.submit(csr_pem(make_csr(cn="a.example.net")))
    ca.approve([1])
    ca.revoke(1, RevocationReason.KEY_COMPROMISE)
    with pytest.raises(RuleError, match="already revoked"):
        ca.revoke(1, RevocationReason.SUPERSEDED)


def test_unhold_releases_a_certificate_hold_and_updates_the_crl(ca, home, clock):
    ca.submit(csr_pem(make_csr(cn="held.example.net")))
    ca.approve([1])
    cert = ca.revoke(1, RevocationReason.CERTIFICATE_HOLD)
    assert _reason(_crl(ca), cert.serial) == x509.ReasonFlags.certificate_hold
    # While on hold, the requester cannot get another certificate in between.
    result = run_cli(home, "unhold", "1")
    assert result.returncode == 0, result.stderr
    fresh = CertificateAuthority(home, clock=clock)
    assert fresh.certificate(1).status_at(clock.now) is CertStatus.VALID
    crl = _crl(fresh)
    assert crl.get_revoked_certificate_by_serial_number(cert.serial) is None
    assert fresh.active_certificate("held.example.net").id == 1
    # Valid again, it blocks a second certificate for the same requester, as any active one does.
    with pytest.raises(RuleError, match="holds active certificate 1"):
        fresh.submit(csr_pem(make_csr(cn="held.example.net")))
    assert any(r.action == "unhold" for r in fresh.audit_records())
    assert fresh.verify_audit() == []


def test_unhold_refusals_are_one_line(ca, home):
    ca.submit(csr_pem(make_csr(cn="x.example.net")))
    ca.approve([1])
    assert_refused(run_cli(home, "unhold", "1"), 1, "not revoked")
    ca.revoke(1, RevocationReason.KEY_COMPROMISE)
    assert_refused(run_cli(home, "unhold", "1"), 1, "final")
    assert_refused(run_cli(home, "unhold", "99"), 2, "no certificate")
    assert_refused(run_cli(home, "unhold", "²"), 2)


def test_unhold_is_refused_when_the_requester_got_another_certificate_meanwhile(ca):
    ca.submit(csr_pem(make_csr(cn="y.example.net")))
    ca.approve([1])
    ca.revoke(1, RevocationReason.CERTIFICATE_HOLD)
    ca.submit(csr_pem(make_csr(cn="y.example.net")))
    ca.approve([2])
    with pytest.raises(RuleError, match="now holds certificate 2"):
        unhold(ca, 1)


def test_the_server_certificates_are_recorded_and_revocable(ca, home):
    ca = CertificateAuthority(home)  # the real clock, as the CLI below runs on it
    setup_service_certs(ca)
    certs = {c.requester: c for c in ca.certificates()}
    assert set(certs) == set(SERVICE_REQUESTERS.values())
    tls = x509.load_pem_x509_certificate((home / TLS_CERT).read_bytes())
    ocsp = x509.load_pem_x509_certificate((home / OCSP_CERT).read_bytes())
    assert certs[SERVICE_REQUESTERS["tls"]].serial == tls.serial_number
    assert certs[SERVICE_REQUESTERS["ocsp"]].serial == ocsp.serial_number
    ra = x509.load_pem_x509_certificate((home / SCEP_RA_CERT).read_bytes())
    assert certs[SERVICE_REQUESTERS["scep-ra"]].serial == ra.serial_number
    # Revocable by serial like any certificate, and on the CRL.
    run_cli(home, "revoke", format(tls.serial_number, "x"), "--reason", "keyCompromise", check=True)
    assert _reason(_crl(CertificateAuthority(home)), tls.serial_number) == x509.ReasonFlags.key_compromise
    # A renewal of the OCSP signer supersedes the one before.
    setup_service_certs(ca, ocsp_only=True)
    first = ca.certificate(certs[SERVICE_REQUESTERS["ocsp"]].id)
    assert first.revocation_reason is RevocationReason.SUPERSEDED
    assert ca.verify_audit() == []


def test_server_setup_records_them_and_record_is_a_deprecated_no_op(ca, home):
    ca = CertificateAuthority(home)
    run_cli(home, "server-setup", check=True)
    assert {c.requester for c in ca.certificates()} == set(SERVICE_REQUESTERS.values())
    again = run_cli(home, "server-setup", "--record", check=True)
    assert b"--record is deprecated" in again.stderr and again.stderr.count(b"\n") == 1
    # The renewal superseded the three before it: three valid, three revoked as superseded, all on the CRL.
    certs = ca.certificates()
    assert sorted(c.requester for c in certs if c.revoked_at is None) == sorted(SERVICE_REQUESTERS.values())
    superseded = [c for c in certs if c.revocation_reason is RevocationReason.SUPERSEDED]
    assert len(superseded) == 3
    crl = _crl(CertificateAuthority(home))
    assert {c.serial for c in superseded} <= {entry.serial_number for entry in crl}
