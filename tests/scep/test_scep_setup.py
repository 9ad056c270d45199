"""server-setup issues the SCEP RA certificate; the service refuses, in one line, to start without a usable one."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tests.helpers import run_cli
from tui_ca.engine.errors import RuleError
from tui_ca.engine.home import SCEP_RA_CERT, SCEP_RA_KEY
from tui_ca.server.scep.service import RaMissing, ScepService, load_ra


def test_server_setup_issues_an_rsa_ra_that_is_not_a_ca(ca, home):
    assert run_cli(home, "server-setup").returncode == 0
    assert stat.S_IMODE((home / SCEP_RA_KEY).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((home / SCEP_RA_CERT).read_bytes())
    key = load_pem_private_key((home / SCEP_RA_KEY).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    cert.verify_directly_issued_by(ca.issuing_cert())
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign and not usage.value.crl_sign
    records = [r for r in ca.audit_records() if r.target == "SCEP RA certificate"]
    assert [r.extra["serial"] for r in records] == [format(cert.serial_number, "x")]
    assert ca.verify_audit() == []


def test_ocsp_only_renewal_keeps_the_ra(ca, home):
    assert run_cli(home, "server-setup").returncode == 0
    before = (home / SCEP_RA_CERT).read_bytes()
    assert run_cli(home, "server-setup", "--ocsp-only").returncode == 0
    assert (home / SCEP_RA_CERT).read_bytes() == before


def test_a_missing_ra_is_one_line_naming_server_setup(ca, home):
    with pytest.raises(RaMissing, match="is missing: run 'tui-ca server-setup'"):
        ScepService(ca)


def test_a_readable_or_mismatched_ra_key_is_refused(ca, home, tmp_path):
    assert run_cli(home, "server-setup").returncode == 0
    os.chmod(home / SCEP_RA_KEY, 0o644)
    with pytest.raises(RuleError, match="other users can read it"):
        load_ra(home)
    os.chmod(home / SCEP_RA_KEY, 0o600)
    (home / SCEP_RA_CERT).write_bytes(ca.ca_cert_pem())
    with pytest.raises(RuleError, match="is not the RSA key of"):
        load_ra(home)
