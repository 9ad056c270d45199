"""The hand-assembled CRL must read back exactly as built, signed by the CA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import CRLEntryExtensionOID, NameOID

from tui_ca.engine.crl import der_integer, der_length, encode_entry, sign_crl
from tui_ca.engine.profile import build_root

NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def make_issuer(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CRL Test CA")])
    return build_root(key, name, 0x1234, NOW - timedelta(days=1), NOW + timedelta(days=365))


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 24])
def test_der_length_matches_the_standard_forms(length):
    encoded = der_length(length)
    if length < 128:
        assert encoded == bytes([length])
    else:
        count = encoded[0] & 0x7F
        assert encoded[0] & 0x80 and int.from_bytes(encoded[1:], "big") == length and count == len(encoded) - 1


@pytest.mark.parametrize("value", [1, 127, 128, 255, 256, (1 << 63), (1 << 159) - 1])
def test_der_integer_is_minimal_and_positive(value):
    encoded = der_integer(value)
    body = encoded[2:] if encoded[1] < 0x80 else encoded[2 + (encoded[1] & 0x7F) :]
    assert int.from_bytes(body, "big", signed=True) == value
    # minimal: no redundant leading zero byte
    assert not (len(body) > 1 and body[0] == 0 and body[1] < 0x80)


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(65537, 2048)])
def test_spliced_crl_reads_back_with_every_entry_and_a_valid_signature(key):
    issuer = make_issuer(key)
    revoked = [((1 << 100) + i, NOW - timedelta(hours=i), code) for i, code in enumerate([0, 1, 3, 4, 5, 9] * 50)]
    der = sign_crl(issuer, key, 42, NOW, NOW + timedelta(days=7), [encode_entry(*r) for r in revoked])
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(key.public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 42
    assert crl.issuer == issuer.subject
    assert crl.next_update_utc == NOW + timedelta(days=7)
    assert len(crl) == len(revoked)
    for (serial, at, code), entry in zip(revoked, crl, strict=True):
        assert entry.serial_number == serial
        assert entry.revocation_date_utc == at
        reasons = [e for e in entry.extensions if e.oid == CRLEntryExtensionOID.CRL_REASON]
        # RFC 5280 §5.3.1: unspecified (0) is expressed by leaving the extension out.
        assert (reasons == []) if code == 0 else (len(reasons) == 1)


def test_empty_crl_has_no_revoked_list_and_verifies():
    key = ec.generate_private_key(ec.SECP384R1())
    issuer = make_issuer(key)
    crl = x509.load_der_x509_crl(sign_crl(issuer, key, 1, NOW, NOW + timedelta(days=1), []))
    assert len(crl) == 0 and crl.is_signature_valid(key.public_key())


def test_dates_after_2049_use_generalized_time():
    entry = encode_entry(5, datetime(2051, 1, 1, tzinfo=UTC), 0)
    assert b"\x18\x0f20510101000000Z" in entry
