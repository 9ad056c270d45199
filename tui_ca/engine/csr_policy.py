"""CSR intake policy: parse PEM or DER, refuse what a CA must not sign.

Every refusal is an engine exception whose message is one line for the user.
Nothing here touches the store, so a refused CSR leaves no trace.
"""

from __future__ import annotations

import hashlib
import re
import warnings

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID, ObjectIdentifier

from tui_ca.engine.errors import InputError, RuleError
from tui_ca.engine.models import CsrDetails, NameFields
from tui_ca.engine.names import check_general_names, effective_sans

MAX_CSR_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
# Larger RSA keys buy nothing and make every signature check slow enough to be
# a denial-of-service lever for network intake.
MAX_RSA_BITS = 8192
ALLOWED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (NEW )?CERTIFICATE REQUEST-----(.+?)-----END (NEW )?CERTIFICATE REQUEST-----",
    re.DOTALL,
)


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a CSR given as PEM (either header) or DER; refuse anything else."""
    if len(data) > MAX_CSR_BYTES:
        raise InputError(f"input is {len(data)} bytes; a CSR may be at most 64 KiB")
    if not data.strip():
        raise InputError("input is empty; expected a CSR (PEM or DER)")
    try:
        if b"-----BEGIN" in data:
            match = _PEM_BLOCK.search(data)
            if match is None:
                raise ValueError("no CERTIFICATE REQUEST block")
            body = match.group(2)
            pem = b"-----BEGIN CERTIFICATE REQUEST-----" + body + b"-----END CERTIFICATE REQUEST-----\n"
            return x509.load_pem_x509_csr(pem)
        return x509.load_der_x509_csr(data)
    except (ValueError, x509.InvalidVersion):  # InvalidVersion is not a ValueError
        raise InputError("input is not a certificate signing request (PEM or DER)") from None


def describe_key(public_key: CertificatePublicKeyTypes) -> tuple[str, int]:
    """A key as admins name it, e.g. ('EC P-256', 256), ('RSA 2048', 2048)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}", public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        name = ALLOWED_CURVES.get(public_key.curve.name, public_key.curve.name)
        return f"EC {name}", public_key.curve.key_size
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"DSA {public_key.key_size}", public_key.key_size
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(public_key).__name__, 0


def check_key(public_key: CertificatePublicKeyTypes) -> None:
    """Refuse keys outside the policy (DESIGN §1)."""
    label, bits = describe_key(public_key)
    if isinstance(public_key, rsa.RSAPublicKey):
        if bits < MIN_RSA_BITS:
            raise RuleError(f"RSA key of {bits} bits refused: at least {MIN_RSA_BITS} bits are required")
        if bits > MAX_RSA_BITS:
            raise RuleError(f"RSA key of {bits} bits refused: at most {MAX_RSA_BITS} bits are accepted")
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ALLOWED_CURVES:
            raise RuleError(f"elliptic curve {public_key.curve.name} refused: use P-256, P-384 or P-521")
        return
    if isinstance(public_key, dsa.DSAPublicKey):
        raise RuleError("DSA keys are refused: use RSA (2048 bits or more) or EC P-256/P-384/P-521")
    raise RuleError(f"{label} keys are refused: use RSA (2048 bits or more) or EC P-256/P-384/P-521")


def spki_sha256(public_key: CertificatePublicKeyTypes) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, the fingerprint read aloud."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def name_fields(name: x509.Name) -> NameFields:
    """The displayed fields of a name (first value of each attribute)."""

    def first(oid: ObjectIdentifier) -> str | None:
        values = name.get_attributes_for_oid(oid)
        if not values:
            return None
        value = values[0].value
        return value if isinstance(value, str) else value.hex()

    return NameFields(
        country=first(NameOID.COUNTRY_NAME),
        state=first(NameOID.STATE_OR_PROVINCE_NAME),
        locality=first(NameOID.LOCALITY_NAME),
        organization=first(NameOID.ORGANIZATION_NAME),
        org_unit=first(NameOID.ORGANIZATIONAL_UNIT_NAME),
        common_name=first(NameOID.COMMON_NAME),
        email=first(NameOID.EMAIL_ADDRESS),
    )


def format_general_name(general_name: x509.GeneralName) -> str:
    """``DNS:host``, ``IP:1.2.3.4``, ``email:a@b``, ``URI:…``, ``other:…``."""
    if isinstance(general_name, x509.DNSName):
        return f"DNS:{general_name.value}"
    if isinstance(general_name, x509.IPAddress):
        return f"IP:{general_name.value}"
    if isinstance(general_name, x509.RFC822Name):
        return f"email:{general_name.value}"
    if isinstance(general_name, x509.UniformResourceIdentifier):
        return f"URI:{general_name.value}"
    if isinstance(general_name, x509.DirectoryName):
        return f"dirName:{general_name.value.rfc4514_string()}"
    if isinstance(general_name, x509.RegisteredID):
        return f"RID:{general_name.value.dotted_string}"
    return f"other:{type(general_name).__name__}"


# X.520 upper bounds (RFC 5280 Appendix A). Values past them are copied into
# the subject, and the certificate then fails to decode in strict parsers.
_NAME_BOUNDS = {
    NameOID.COMMON_NAME: 64, NameOID.ORGANIZATION_NAME: 64, NameOID.ORGANIZATIONAL_UNIT_NAME: 64,
    NameOID.LOCALITY_NAME: 128, NameOID.STATE_OR_PROVINCE_NAME: 128, NameOID.EMAIL_ADDRESS: 255,
    NameOID.SERIAL_NUMBER: 64, NameOID.TITLE: 64,
}  # fmt: skip


def check_name_bounds(name: x509.Name) -> None:
    """Refuse subject values outside X.520's size limits."""
    for attribute in name:
        value, label = attribute.value, attribute.rfc4514_attribute_name
        if not isinstance(value, str):
            continue
        if attribute.oid == NameOID.COUNTRY_NAME and len(value) != 2:
            raise InputError(f"the CSR's country (C) must be two letters, not {len(value)} characters")
        bound = _NAME_BOUNDS.get(attribute.oid)
        if bound is not None and not 1 <= len(value) <= bound:
            raise InputError(f"the CSR's {label} is {len(value)} characters long; 1 to {bound} are allowed")


def check_and_describe(csr: x509.CertificateSigningRequest, *, allow_wildcard: bool = False) -> CsrDetails:
    """Apply the intake policy and return what the admin will be shown.

    ``sans`` are those the certificate will carry: the CSR's, plus its CN when
    that is a hostname or an IP address missing from them (see names.py).
    """
    try:
        signature_valid = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Found by fuzzing: a flipped bit in the key's curve or algorithm OID
        # leaves a CSR that parses but names nothing cryptography can verify.
        raise InputError("the CSR's key or signature algorithm is not supported") from None
    if not signature_valid:
        raise InputError("the CSR's signature does not verify: it is corrupt or was altered")
    try:
        public_key = csr.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InputError("the CSR's public key cannot be read") from None
    check_key(public_key)
    try:
        extensions = csr.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise InputError(f"the CSR's requested extensions are malformed ({exc.__class__.__name__})") from None
    san_names: list[x509.GeneralName] = []
    for extension in extensions:
        value = extension.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise RuleError("the CSR asks for a CA certificate (CA:TRUE); only end-entity certificates are issued")
        if isinstance(value, x509.KeyUsage) and (value.key_cert_sign or value.crl_sign):
            raise RuleError("the CSR asks for keyCertSign or cRLSign; only end-entity certificates are issued")
        if isinstance(value, x509.SubjectAlternativeName):
            check_general_names(value, allow_wildcard=allow_wildcard)
            san_names = list(value)
    try:
        # cryptography warns (on stderr) about out-of-bounds values as it reads
        # the name; check_name_bounds turns them into a one-line refusal instead.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            name = csr.subject
        subject = name.rfc4514_string()
        fields = name_fields(name)
        check_name_bounds(name)
    except ValueError:
        raise InputError("the CSR's subject cannot be read") from None
    sans = tuple(format_general_name(name) for name in effective_sans(fields.common_name, san_names))
    if not fields.common_name and not sans:
        raise RuleError("the CSR names no subject: it has neither a common name (CN) nor a subject alternative name")
    key_type, key_size = describe_key(public_key)
    return CsrDetails(
        subject=subject,
        subject_fields=fields,
        common_name=fields.common_name,
        sans=sans,
        key_type=key_type,
        key_size=key_size,
        signature_valid=True,
        spki_sha256=spki_sha256(public_key),
        csr_sha256=hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )
