"""CRL assembly that stays linear in the number of revoked certificates.

cryptography's ``CertificateRevocationListBuilder`` re-copies its entry list on
every ``add_revoked_certificate`` call, which is quadratic (about 19 s for
100,000 entries). Here cryptography builds and signs an *empty* CRL with the
right issuer, times and extensions; its TBSCertList is then re-assembled with
the pre-encoded entries spliced in after ``nextUpdate`` and signed again.
Entry encodings are cached per store shard by the caller, so publishing a CRL
mostly costs one join and one signature.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only sign_crl needs it; the store imports encode_entry, and a process that
    # signs nothing must not load x509 (bench/cli_startup.py).
    from cryptography import x509

if TYPE_CHECKING:
    from tui_ca.engine.keys import CAKey

_REASON_EXTENSION_PREFIX = bytes.fromhex("300c300a0603551d1504030a01")


def der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + der_length(len(body)) + body


def der_integer(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)
    return der_tlv(0x02, body)


def der_time(moment: datetime) -> bytes:
    """UTCTime through 2049, GeneralizedTime after (RFC 5280 §5.1.2.4)."""
    if 1950 <= moment.year < 2050:
        return der_tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    return der_tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


def encode_entry(serial: int, revoked_at: datetime, reason_code: int) -> bytes:
    """One revokedCertificates entry; reason 0 (unspecified) carries no reasonCode."""
    body = der_integer(serial) + der_time(revoked_at)
    if reason_code:
        body += _REASON_EXTENSION_PREFIX + bytes([reason_code])
    return der_tlv(0x30, body)


def der_to_pem(der: bytes, label: str) -> bytes:
    """PEM armour (64-column base64), without parsing a 4 MB CRL to re-emit it."""
    import base64

    text = base64.b64encode(der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def der_split(der: bytes) -> list[bytes]:
    """Top-level TLVs of a DER SEQUENCE body."""
    parts, offset = [], 0
    while offset < len(der):
        start = offset
        offset += 1
        first = der[offset]
        offset += 1
        if first & 0x80:
            count = first & 0x7F
            length = int.from_bytes(der[offset : offset + count], "big")
            offset += count
        else:
            length = first
        offset += length
        parts.append(der[start:offset])
    return parts


def der_body(tlv: bytes) -> bytes:
    """The contents of one DER TLV, without its tag and length."""
    return _split_header(tlv)[1]


def _split_header(tlv: bytes) -> tuple[bytes, bytes]:
    first = tlv[1]
    header = 2 + (first & 0x7F if first & 0x80 else 0)
    return tlv[:header], tlv[header:]


def sign_crl(
    issuer_cert: x509.Certificate, issuer_key: CAKey, number: int, this_update: datetime,
    next_update: datetime, entries: list[bytes],
) -> bytes:  # fmt: skip
    """A DER CRL (v2, AKI, CRL number) listing ``entries`` (from encode_entry, or joins of them)."""
    from cryptography import x509

    # Here, not at the top: signing.py uses this module's DER helpers, and profile.py signs through signing.py.
    from tui_ca.engine.profile import signature_hash
    from tui_ca.engine.signing import draft_key, sign_with_key

    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    algorithm = signature_hash(issuer_key)
    empty = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
        # Only this CRL's TBS and signature algorithm are kept, so a key in a
        # token is spared the signature (its stand-in names the same algorithm).
        .sign(draft_key(issuer_key), algorithm)
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    outer = der_split(der_body(empty.public_bytes(Encoding.DER)))
    signature_algorithm = outer[1]
    tbs_parts = der_split(der_body(empty.tbs_certlist_bytes))
    # version, signature, issuer, thisUpdate, nextUpdate, [revoked], [0] extensions
    if entries:
        tbs_parts.insert(5, der_tlv(0x30, b"".join(entries)))
    tbs = der_tlv(0x30, b"".join(tbs_parts))
    signature = sign_with_key(tbs, issuer_key, algorithm)
    return der_tlv(0x30, tbs + signature_algorithm + der_tlv(0x03, b"\x00" + signature))
