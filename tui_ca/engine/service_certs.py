"""Certificates for the network server, issued by the admin with the CA key.

The server process must never hold the issuing CA's key (DESIGN §6), so the
two keys it does need are made here, in an admin step: a TLS certificate for
the names the server answers to, and a delegated OCSP signing certificate
(RFC 6960 §4.2.2.2) whose short life stands in for revocation checking of the
responder itself (id-pkix-ocsp-nocheck, §4.2.2.2.1).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tui_ca.engine.clock import check_can_issue
from tui_ca.engine.errors import InputError
from tui_ca.engine.home import OCSP_CERT, OCSP_KEY, SCEP_RA_CERT, SCEP_RA_KEY, TLS_CERT, TLS_KEY, write_file
from tui_ca.engine.keys import CAKey, dump_key
from tui_ca.engine.names import dns_name_problem
from tui_ca.engine.profile import BACKDATE, signature_hash
from tui_ca.engine.revocation_state import record_service_cert
from tui_ca.engine.signing import sign_builder

# An address, not "localhost": a single-label DNS SAN is not a name any public
# or private DNS can vouch for (pkilint flags it); --name localhost still adds it.
LOOPBACK_NAMES = ("127.0.0.1",)
DEFAULT_TLS_DAYS = 365
# Short, because an OCSP signer with ocsp-nocheck cannot itself be revoked:
# its expiry is the only way it stops being trusted. Renewed from cron.
DEFAULT_OCSP_DAYS = 7


@dataclass(frozen=True)
class ServiceCerts:
    """What ``server-setup`` wrote."""

    tls_names: tuple[str, ...]
    """DNS names and IP addresses in the TLS certificate."""
    tls_not_after: datetime | None
    """End of the TLS certificate (None when only the OCSP one was renewed)."""
    ocsp_not_after: datetime
    """End of the OCSP signing certificate."""


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    text = name.strip().lower().rstrip(".")
    problem = dns_name_problem(text)
    if problem is not None:
        raise InputError(f"--name {name!r} is neither an IP address nor a DNS name: it {problem}")
    return x509.DNSName(text)


def _base_builder(
    issuing: x509.Certificate, subject: x509.Name, public_key: CertificatePublicKeyTypes,
    not_before: datetime, not_after: datetime,
) -> x509.CertificateBuilder:  # fmt: skip
    ski = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuing.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_after, issuing.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )


def build_tls_cert(
    issuing: x509.Certificate, issuing_key: CAKey, public_key: CertificatePublicKeyTypes,
    names: list[x509.GeneralName], now: datetime, days: int,
) -> x509.Certificate:  # fmt: skip
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tui-ca EST server")])
    builder = (
        _base_builder(issuing, subject, public_key, now - BACKDATE, now + timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
    )
    return sign_builder(builder, issuing_key, signature_hash(issuing_key))


def build_ocsp_cert(
    issuing: x509.Certificate, issuing_key: CAKey, public_key: CertificatePublicKeyTypes, now: datetime, days: int
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tui-ca OCSP responder")])
    builder = (
        _base_builder(issuing, subject, public_key, now - BACKDATE, now + timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
    )
    return sign_builder(builder, issuing_key, signature_hash(issuing_key))


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def setup_service_certs(ca: Any, names: list[str] | None = None, *, tls_days: int = DEFAULT_TLS_DAYS,
                        ocsp_days: int = DEFAULT_OCSP_DAYS, ocsp_only: bool = False) -> ServiceCerts:  # fmt: skip
    """Issue (or renew) the server's TLS, SCEP RA and OCSP signing certificates, with their audit record.

    ``ca`` is a :class:`~tui_ca.engine.ca.CertificateAuthority`; this is the one
    place outside it that signs with the CA key, and it commits like its
    operations do: files, records and audit in one transaction. Each
    certificate is stored like an issued one (revocation_state.py): it takes a
    Certificate ID, appears in the lists, and can be revoked, so the CRL and
    OCSP can say so; a renewal supersedes the one before.
    """
    for label, days in (("--days", tls_days), ("--ocsp-days", ocsp_days)):
        if not 1 <= days <= 3650:
            raise InputError(f"{label} must be between 1 and 3650, not {days}")
    ca._require_ca()
    general = [] if ocsp_only else [_general_name(n) for n in (names or LOOPBACK_NAMES)]
    key, issuing = ca.signing_key(), ca.issuing_cert()
    now = ca.now()
    ocsp_key = ec.generate_private_key(ec.SECP256R1())
    ocsp_cert = build_ocsp_cert(issuing, key, ocsp_key.public_key(), now, ocsp_days)
    tls_cert = ra_cert = None
    # Every signature first (a token that fails midway leaves no file changed),
    # then the files, each key before the certificate that names it.
    if not ocsp_only:
        tls_key = ec.generate_private_key(ec.SECP256R1())
        tls_cert = build_tls_cert(issuing, key, tls_key.public_key(), general, now, tls_days)
        ra_key, ra_cert = build_scep_ra_cert(issuing, key, now, tls_days)
    with ca._operation() as op:
        check_can_issue(ca, op.meta)
        if tls_cert is not None and ra_cert is not None:
            write_file(ca.home, TLS_KEY, dump_key(tls_key, None), 0o600)
            write_file(ca.home, TLS_CERT, _pem(tls_cert) + ca.ca_cert_pem())
            write_file(ca.home, SCEP_RA_KEY, dump_key(ra_key, None), 0o600)
            write_file(ca.home, SCEP_RA_CERT, _pem(ra_cert))
            op.audit("server-setup", "SCEP RA certificate", "issued", serial=format(ra_cert.serial_number, "x"),
                     not_after=ra_cert.not_valid_after_utc.isoformat())  # fmt: skip
        write_file(ca.home, OCSP_KEY, dump_key(ocsp_key, None), 0o600)
        write_file(ca.home, OCSP_CERT, _pem(ocsp_cert))
        # On record like any certificate: listed, shown, revocable; a renewal supersedes the one before.
        issued = (("tls", tls_cert), ("scep-ra", ra_cert if tls_cert is not None else None), ("ocsp", ocsp_cert))
        superseded = [record_service_cert(ca, op, kind, cert, now)[1] for kind, cert in issued if cert is not None]
        if any(old is not None for old in superseded):
            ca._publish_crl(op, issuing, key)
        shown = [str(g.value) for g in general]
        op.audit("server-setup", "server certificates",
                 "OCSP signer renewed" if ocsp_only else "TLS and OCSP signer issued",
                 tls_names=shown, ocsp_serial=format(ocsp_cert.serial_number, "x"),
                 tls_serial=format(tls_cert.serial_number, "x") if tls_cert else None)  # fmt: skip
    return ServiceCerts(tuple(shown), tls_cert.not_valid_after_utc if tls_cert else None,
                        ocsp_cert.not_valid_after_utc)  # fmt: skip


# ------------------------------------------------------------- SCEP RA


def build_scep_ra_cert(issuing: x509.Certificate, issuing_key: Any, now: datetime,
                       days: int) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:  # fmt: skip
    """The SCEP registration authority: SCEP clients encrypt to it and it signs the answers (RFC 8894 §2.1.1).

    RSA, because clients send their messages by RSA key transport; not a CA,
    so a stolen server key can answer SCEP but never issue.
    """
    ra_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tui-ca SCEP RA")])
    ski = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    usage = dict.fromkeys(("content_commitment", "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                           "encipher_only", "decipher_only"), False)  # fmt: skip
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuing.subject)
        .public_key(ra_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + timedelta(days=days), issuing.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, **usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ra_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    return ra_key, sign_builder(builder, issuing_key, signature_hash(issuing_key))
