"""Signing X.509 structures with any CA key, in memory or in a token.

cryptography's builders sign only with its own in-process keys. For a key in
a PKCS#11 token the structure is built and signed with a stand-in key of the
same algorithm (so the TBS part names the right signature algorithm), and
the TBS bytes are then signed again by the real key and re-assembled:
``SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }`` is the same
shape for certificates, CSRs and CRLs. A CSR also carries the signer's public
key, which is swapped for the real one before the real signature.
"""

from __future__ import annotations

import functools
from typing import overload

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tui_ca.engine.crl import der_body, der_split, der_tlv
from tui_ca.engine.keys import CAKey

Signable = x509.CertificateBuilder | x509.CertificateSigningRequestBuilder | x509.CertificateRevocationListBuilder
Signed = x509.Certificate | x509.CertificateSigningRequest | x509.CertificateRevocationList


def is_in_memory(key: object) -> bool:
    """Whether cryptography can sign with ``key`` itself (not a token key)."""
    return type(key).__module__.startswith("cryptography.")


@functools.cache
def _stand_in(kind: str) -> CAKey:
    # One per process and algorithm: only its algorithm matters, and RSA key
    # generation costs tens of milliseconds.
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def draft_key(key: CAKey) -> CAKey:
    """A key cryptography's builders sign with: ``key`` itself, or a stand-in of its algorithm for a token key."""
    return key if is_in_memory(key) else _stand_in("rsa" if isinstance(key, rsa.RSAPrivateKey) else "ec")


def sign_with_key(data: bytes, key: CAKey, algorithm: hashes.HashAlgorithm) -> bytes:
    """A signature over ``data`` as X.509 structures carry it (ECDSA DER, or PKCS#1 v1.5)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    return key.sign(data, ec.ECDSA(algorithm))


@overload
def sign_builder(builder: x509.CertificateBuilder, key: CAKey, algorithm: hashes.HashAlgorithm) -> x509.Certificate: ...
@overload
def sign_builder(
    builder: x509.CertificateSigningRequestBuilder, key: CAKey, algorithm: hashes.HashAlgorithm
) -> x509.CertificateSigningRequest: ...
@overload
def sign_builder(
    builder: x509.CertificateRevocationListBuilder, key: CAKey, algorithm: hashes.HashAlgorithm
) -> x509.CertificateRevocationList: ...


def sign_builder(builder: Signable, key: CAKey, algorithm: hashes.HashAlgorithm) -> Signed:
    """``builder.sign(key, algorithm)``, also for keys that live in a token."""
    if is_in_memory(key):
        return builder.sign(key, algorithm)  # type: ignore[arg-type]
    draft: Signed = builder.sign(draft_key(key), algorithm)  # type: ignore[arg-type]
    tbs = _tbs_bytes(draft)
    if isinstance(draft, x509.CertificateSigningRequest):
        # A CSR carries the signer's own public key: put the real one in place
        # of the stand-in's (CertificationRequestInfo: version, subject, SPKI, attributes).
        parts = der_split(der_body(tbs))
        parts[2] = key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
        tbs = der_tlv(0x30, b"".join(parts))
    signature_algorithm = der_split(der_body(draft.public_bytes(serialization.Encoding.DER)))[1]
    der = der_tlv(0x30, tbs + signature_algorithm + der_tlv(0x03, b"\x00" + sign_with_key(tbs, key, algorithm)))
    if isinstance(draft, x509.Certificate):
        return x509.load_der_x509_certificate(der)
    if isinstance(draft, x509.CertificateSigningRequest):
        return x509.load_der_x509_csr(der)
    return x509.load_der_x509_crl(der)


def _tbs_bytes(signed: x509.Certificate | x509.CertificateSigningRequest | x509.CertificateRevocationList) -> bytes:
    if isinstance(signed, x509.Certificate):
        return signed.tbs_certificate_bytes
    if isinstance(signed, x509.CertificateSigningRequest):
        return signed.tbs_certrequest_bytes
    return signed.tbs_certlist_bytes
