"""Certificate profiles: the root, the issuing CA and end-entity certificates.

Each builder returns a signed ``x509.Certificate``; every extension and its
criticality follows RFC 5280 so that pkilint finds nothing to report.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tui_ca.engine.keys import CAKey
from tui_ca.engine.models import NameFields
from tui_ca.engine.names import effective_sans
from tui_ca.engine.signing import sign_builder
from tui_ca.engine.urls import public_urls

# Backdating hides small clock differences between the CA and relying parties.
BACKDATE = timedelta(minutes=5)


def build_name(fields: NameFields, *, with_email: bool = True) -> x509.Name:
    """An x509 name in the conventional C, ST, L, O, OU, CN, emailAddress order."""
    order = [
        (NameOID.COUNTRY_NAME, fields.country),
        (NameOID.STATE_OR_PROVINCE_NAME, fields.state),
        (NameOID.LOCALITY_NAME, fields.locality),
        (NameOID.ORGANIZATION_NAME, fields.organization),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, fields.org_unit),
        (NameOID.COMMON_NAME, fields.common_name),
    ]
    if with_email:
        order.append((NameOID.EMAIL_ADDRESS, fields.email))
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in order if value])


def signature_hash(key: object) -> hashes.SHA256 | hashes.SHA384:
    """SHA-384 for P-384 keys (matching strength), SHA-256 otherwise."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def build_root(
    key: CAKey, subject: x509.Name, serial: int, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    """A self-signed root: CA:TRUE with no path length limit of its own."""
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    emails = subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
    if emails:
        # RFC 5280 §4.1.2.6: an e-mail address in the subject belongs in the SAN too.
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(str(a.value)) for a in emails]), critical=False
        )
    return sign_builder(builder, key, signature_hash(key))


def build_issuing_csr(key: CAKey, subject: x509.Name) -> x509.CertificateSigningRequest:
    """The issuing CA's request, for an external root to sign."""
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
    )
    return sign_builder(builder, key, signature_hash(key))


def build_issuing(
    public_key: CertificatePublicKeyTypes, subject: x509.Name, root_cert: x509.Certificate, root_key: CAKey,
    serial: int, not_before: datetime, not_after: datetime, base_url: str | None = None,
) -> x509.Certificate:  # fmt: skip
    """The issuing CA, signed by the root, allowed to sign end entities only.

    With a base URL it names the root's CRL and certificate, so relying parties
    that check the whole path (Java's PKIX) can check the issuing CA too.
    """
    root_ski = root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(min(not_after, root_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False)
    )
    if base_url:
        urls = public_urls(base_url)
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(urls["root_crl"])], None, None, None)]
            ),
            critical=False,
        ).add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(urls["root_cert"]),
                    )
                ]
            ),
            critical=False,
        )
    return sign_builder(builder, root_key, signature_hash(root_key))


def _leaf_key_usage(public_key: CertificatePublicKeyTypes) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


class LeafIssuer:
    """Signs end-entity certificates; the per-CA parts are computed once.

    Bulk approval signs hundreds of certificates in one pass, so the issuer's
    AKI, the URL extensions and the hash are prepared here rather than per call.
    """

    def __init__(self, issuing_cert: x509.Certificate, issuing_key: CAKey, base_url: str | None) -> None:
        self.cert = issuing_cert
        self.key = issuing_key
        self.hash = signature_hash(issuing_key)
        ski = issuing_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        self.aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        self.eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
        self.url_extensions: list[x509.ExtensionType] = []
        if base_url:
            urls = public_urls(base_url)
            self.url_extensions = [
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(urls["crl"])], None, None, None)]
                ),
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls["ocsp"])
                        ),
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier(urls["ca_cert"]),
                        ),
                    ]
                ),
            ]

    def issue(
        self, csr: x509.CertificateSigningRequest, serial: int, not_before: datetime, not_after: datetime
    ) -> x509.Certificate:
        """Subject and SAN from the CSR; everything else from the profile."""
        public_key = csr.public_key()
        subject = csr.subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(min(not_after, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(public_key), critical=True)
            .add_extension(self.eku, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self.aki, critical=False)
        )
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            san = None
        # RFC 5280 §4.1.2.6: an e-mail address in the subject must also be in the
        # SAN (pkilint reports it as an error otherwise); it is added, not copied.
        names = list(san) if san is not None else []
        # The CN, when a hostname or address, goes into the SAN: relying parties match only there.
        common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = common_names[0].value if common_names and isinstance(common_names[0].value, str) else None
        names = effective_sans(cn, names)
        emails = [x509.RFC822Name(a.value) for a in subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
                  if isinstance(a.value, str) and a.value.isascii()]  # fmt: skip
        names += [e for e in emails if e not in names]
        san = x509.SubjectAlternativeName(names) if names else None
        if san is not None:
            # RFC 5280 §4.2.1.6: with an empty subject the SAN must be critical.
            builder = builder.add_extension(san, critical=len(subject) == 0)
        for extension in self.url_extensions:
            builder = builder.add_extension(extension, critical=False)
        return sign_builder(builder, self.key, self.hash)
