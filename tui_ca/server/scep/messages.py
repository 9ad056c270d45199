"""SCEP messages (RFC 8894 §3): parse a pkiMessage, build a CertRep. No HTTP here.

A pkiMessage is a CMS SignedData whose signer info carries SCEP's
authenticated attributes, and whose content (when there is one) is an
EnvelopedData encrypted to our RA certificate. ``cryptography`` decrypts the
AES envelopes and encrypts the AES answers; asn1crypto carries the CMS
structures and attributes it cannot express (custom signed attributes,
signature checks on a SignedData, DES-EDE3-CBC, which old clients still use).

Every refusal is a :class:`ScepFailure` with the failInfo the client should
see; :class:`Malformed` is for input so broken that no CertRep can address it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from asn1crypto import algos, cms, core, crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7

# Signed attributes under id-VeriSign's pki arc (RFC 8894 §3.2.1).
_ATTRIBUTES = {
    "2.16.840.1.113733.1.9.2": "scep_message_type",
    "2.16.840.1.113733.1.9.3": "scep_pki_status",
    "2.16.840.1.113733.1.9.4": "scep_fail_info",
    "2.16.840.1.113733.1.9.5": "scep_sender_nonce",
    "2.16.840.1.113733.1.9.6": "scep_recipient_nonce",
    "2.16.840.1.113733.1.9.7": "scep_transaction_id",
}
_NONCE_BYTES = 16
# A transactionID is a PrintableString the client picks (often a key hash in hex).
MAX_TRANSACTION_ID = 128
_PRINTABLE = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]+")


class _PrintableStrings(core.SetOf):
    _child_spec = core.PrintableString


cms.CMSAttributeType._map.update(_ATTRIBUTES)
cms.CMSAttribute._oid_specs.update(
    {name: (cms.SetOfOctetString if "nonce" in name else _PrintableStrings) for name in _ATTRIBUTES.values()}
)


class MessageType(StrEnum):
    """messageType values (RFC 8894 §3.2.1.2)."""

    CERT_REP = "3"
    RENEWAL_REQ = "17"
    PKCS_REQ = "19"
    CERT_POLL = "20"
    GET_CERT = "21"
    GET_CRL = "22"


class PkiStatus(StrEnum):
    """pkiStatus values (RFC 8894 §3.2.1.3)."""

    SUCCESS = "0"
    FAILURE = "2"
    PENDING = "3"


class FailInfo(StrEnum):
    """failInfo values (RFC 8894 §3.2.1.4)."""

    BAD_ALG = "0"
    BAD_MESSAGE_CHECK = "1"
    BAD_REQUEST = "2"
    BAD_TIME = "3"
    BAD_CERT_ID = "4"


class Malformed(ValueError):
    """Not a pkiMessage at all: answered with an HTTP status, not a CertRep."""


@dataclass(frozen=True)
class Header:
    """What a CertRep needs from the message it answers, known before any check passes."""

    message_type: str
    """The messageType as sent (may be one we do not know)."""
    transaction_id: str
    """The client's transactionID, echoed back."""
    sender_nonce: bytes
    """The client's senderNonce, returned as recipientNonce."""
    digest: str
    """Digest algorithm name the client signed with (sha256, …)."""


class ScepFailure(Exception):
    """A refusal the client receives as a signed CertRep FAILURE."""

    recorded = False
    """The engine's intake refused it and has recorded the refusal already."""
    subject: str | None = None
    """The subject of the CSR refused, once it was read (for the refusal record)."""

    def __init__(self, fail_info: FailInfo, message: str, header: Header | None = None) -> None:
        super().__init__(message)
        self.fail_info = fail_info
        self.header = header


@dataclass(frozen=True)
class PkiMessage:
    """A verified, decrypted request."""

    header: Header
    """Transaction, nonce and digest, for the answer."""
    message_type: MessageType
    """What the client asks for."""
    signer: x509.Certificate
    """The certificate whose key signed the message (self-signed for PKCSReq)."""
    content: bytes = field(repr=False)
    """The decrypted messageData: a CSR, IssuerAndSubject or IssuerAndSerialNumber (DER)."""
    cipher: str
    """Content encryption the client used (aes128_cbc, aes256_cbc, tripledes_3key)."""


# ----------------------------------------------------------------- parsing


def _load_content_info(der: bytes, what: str) -> cms.ContentInfo:
    try:
        info = cms.ContentInfo.load(der, strict=True)
        info.native  # noqa: B018 - asn1crypto parses lazily; force it so damage surfaces here
    except (ValueError, TypeError, KeyError, OverflowError, IndexError) as exc:
        raise Malformed(f"the {what} is not DER-encoded CMS ({_short(exc)})") from None
    return info


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__


def _attribute(attrs: cms.CMSAttributes, name: str):
    found = [a for a in attrs if a["type"].native == name]
    if len(found) > 1:
        raise Malformed(f"the signed attribute {name} appears more than once")
    if not found:
        return None
    values = found[0]["values"]
    if len(values) != 1:
        raise Malformed(f"the signed attribute {name} must have exactly one value")
    return values[0].native


def _required_string(attrs: cms.CMSAttributes, name: str, label: str) -> str:
    value = _attribute(attrs, name)
    if not isinstance(value, str) or not value:
        raise Malformed(f"the pkiMessage has no {label}")
    return value


def read_header(der: bytes) -> tuple[cms.SignedData, cms.SignerInfo, Header]:
    """The SignedData, its one signer and the SCEP header, without any check of signature or content."""
    info = _load_content_info(der, "pkiMessage")
    if info["content_type"].native != "signed_data":
        raise Malformed("the pkiMessage is not a CMS SignedData")
    signed: cms.SignedData = info["content"]
    signers = signed["signer_infos"]
    if len(signers) != 1:
        raise Malformed(f"a pkiMessage has exactly one signer, not {len(signers)}")
    signer = signers[0]
    attrs = signer["signed_attrs"]
    if not isinstance(attrs, cms.CMSAttributes) or not len(attrs):
        raise Malformed("the pkiMessage carries no signed attributes")
    transaction_id = _required_string(attrs, "scep_transaction_id", "transactionID")
    if len(transaction_id) > MAX_TRANSACTION_ID:
        raise Malformed(f"the transactionID is longer than {MAX_TRANSACTION_ID} characters")
    if not _PRINTABLE.fullmatch(transaction_id):
        # It goes into logs and the audit record: only what a PrintableString may hold.
        raise Malformed("the transactionID holds characters a PrintableString cannot")
    nonce = _attribute(attrs, "scep_sender_nonce")
    if not isinstance(nonce, bytes) or len(nonce) != _NONCE_BYTES:
        raise Malformed("the pkiMessage has no 16-byte senderNonce")
    header = Header(
        message_type=_required_string(attrs, "scep_message_type", "messageType"),
        transaction_id=transaction_id,
        sender_nonce=nonce,
        digest=signer["digest_algorithm"]["algorithm"].native,
    )
    return signed, signer, header


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _hash(name: str, header: Header) -> hashes.HashAlgorithm:
    if name not in _HASHES:
        raise ScepFailure(FailInfo.BAD_ALG, f"digest algorithm {name} is not supported", header)
    return _HASHES[name]()


def _signer_certificate(signed: cms.SignedData, signer: cms.SignerInfo, header: Header) -> x509.Certificate:
    try:
        return _find_signer(signed, signer, header)
    except (ValueError, TypeError, KeyError) as exc:
        # asn1crypto and cryptography do not accept the same certificates; either may refuse.
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, f"the signer's certificate is unusable ({_short(exc)})",
                          header) from None  # fmt: skip


def _find_signer(signed: cms.SignedData, signer: cms.SignerInfo, header: Header) -> x509.Certificate:
    sid = signer["sid"]
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert: asn1_x509.Certificate = choice.chosen
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            if cert.serial_number == ias["serial_number"].native and (
                cert.issuer.dump() == ias["issuer"].dump() or cert.issuer == ias["issuer"]
            ):
                return x509.load_der_x509_certificate(cert.dump())
        elif sid.name == "subject_key_identifier" and cert.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(cert.dump())
    raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the signer's certificate is not in the pkiMessage", header)


def _verify_signature(signer: cms.SignerInfo, cert: x509.Certificate, header: Header) -> None:
    attrs = signer["signed_attrs"]
    # The signature covers the attributes DER-encoded as a SET OF (RFC 5652 §5.4).
    signed_bytes = b"\x31" + attrs.dump()[1:]
    algorithm = signer["signature_algorithm"]
    name = algorithm.signature_algo
    digest = _hash(header.digest, header)
    signature = signer["signature"].native
    try:
        key = cert.public_key()
        if name == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_bytes, asym_padding.PKCS1v15(), digest)
        elif name == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            params = algorithm["parameters"]
            pss_hash = _hash(params["hash_algorithm"]["algorithm"].native, header)
            mgf_hash = _hash(params["mask_gen_algorithm"]["parameters"]["algorithm"].native, header)
            key.verify(signature, signed_bytes,
                       asym_padding.PSS(asym_padding.MGF1(mgf_hash), params["salt_length"].native), pss_hash)  # fmt: skip
        elif name == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_bytes, ec.ECDSA(digest))
        else:
            raise ScepFailure(FailInfo.BAD_ALG, f"signature algorithm {name} with this key is not supported", header)
    except InvalidSignature:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the pkiMessage signature does not verify", header) from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ScepFailure(FailInfo.BAD_ALG, f"cannot check the signature: {_short(exc)}", header) from None


def _check_digest(signed: cms.SignedData, signer: cms.SignerInfo, header: Header) -> bytes:
    """The signed content (the DER pkcsPKIEnvelope), once its messageDigest matched."""
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "data":
        raise ScepFailure(FailInfo.BAD_REQUEST, "the signed content of a request must be id-data", header)
    content = encap["content"]
    data = b"" if content.native is None else content.native
    if not isinstance(data, bytes) or not data:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the request carries no pkcsPKIEnvelope", header)
    content_type = _attribute(signer["signed_attrs"], "content_type")
    if content_type != "data":
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the contentType attribute must be id-data", header)
    expected = _attribute(signer["signed_attrs"], "message_digest")
    digest = hashes.Hash(_hash(header.digest, header))
    digest.update(data)
    if not isinstance(expected, bytes) or not hmac.compare_digest(digest.finalize(), expected):
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the messageDigest does not match the content", header)
    return data


_CIPHERS = {"aes128_cbc", "aes256_cbc", "tripledes_3key"}


def _decrypt(envelope_der: bytes, ra_cert: x509.Certificate, ra_key: rsa.RSAPrivateKey, header: Header):
    try:
        info = _load_content_info(envelope_der, "pkcsPKIEnvelope")
    except Malformed as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, str(exc), header) from None
    if info["content_type"].native != "enveloped_data":
        raise ScepFailure(FailInfo.BAD_REQUEST, "the pkcsPKIEnvelope is not a CMS EnvelopedData", header)
    enveloped: cms.EnvelopedData = info["content"]
    cipher = enveloped["encrypted_content_info"]["content_encryption_algorithm"]["algorithm"].native
    if cipher not in _CIPHERS:
        raise ScepFailure(FailInfo.BAD_ALG, f"content encryption {cipher} is not supported (AES-CBC, 3DES)", header)
    ours = _our_recipient(enveloped, ra_cert)
    if ours is None:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, "the pkcsPKIEnvelope is not encrypted to this RA", header)
    try:
        if cipher == "tripledes_3key":
            return _decrypt_3des(enveloped, ours, ra_key), cipher
        return pkcs7.pkcs7_decrypt_der(envelope_der, ra_cert, ra_key, []), cipher
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, f"cannot decrypt the pkcsPKIEnvelope ({_short(exc)})",
                          header) from None  # fmt: skip


def _our_recipient(enveloped: cms.EnvelopedData, ra_cert: x509.Certificate) -> cms.KeyTransRecipientInfo | None:
    ra = asn1_x509.Certificate.load(ra_cert.public_bytes(serialization.Encoding.DER))
    for recipient in enveloped["recipient_infos"]:
        if recipient.name != "ktri":
            continue
        rid = recipient.chosen["rid"]
        if rid.name == "issuer_and_serial_number":
            issuer = rid.chosen["issuer"]
            if rid.chosen["serial_number"].native == ra.serial_number and (
                issuer.dump() == ra.issuer.dump() or issuer == ra.issuer  # bytes first: normalising is slow
            ):
                return recipient.chosen
        elif rid.chosen.native == ra.key_identifier:
            return recipient.chosen
    return None


def _decrypt_3des(enveloped: cms.EnvelopedData, recipient: cms.KeyTransRecipientInfo, ra_key) -> bytes:
    """cryptography decrypts AES envelopes only; SCEP clients of the DES era still send DES-EDE3-CBC."""
    if recipient["key_encryption_algorithm"]["algorithm"].native != "rsaes_pkcs1v15":
        raise ValueError("the content key is not RSA-encrypted (PKCS #1 v1.5)")
    key = ra_key.decrypt(recipient["encrypted_key"].native, asym_padding.PKCS1v15())
    content = enveloped["encrypted_content_info"]
    iv = content["content_encryption_algorithm"]["parameters"].native
    data = content["encrypted_content"].native
    if len(key) != 24 or not isinstance(iv, bytes) or len(iv) != 8 or not data or len(data) % 8:
        raise ValueError("the 3DES key, IV or ciphertext has the wrong length")
    decryptor = Cipher(TripleDES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(64).unpadder()
    return unpadder.update(decryptor.update(data) + decryptor.finalize()) + unpadder.finalize()


def parse_pki_message(der: bytes, ra_cert: x509.Certificate, ra_key: rsa.RSAPrivateKey) -> PkiMessage:
    """Parse, verify and decrypt a client's pkiMessage.

    Raises :class:`Malformed` when no CertRep can be addressed, else
    :class:`ScepFailure` carrying the header to answer with.
    """
    signed, signer, header = read_header(der)
    try:
        message_type = MessageType(header.message_type)
    except ValueError:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"messageType {header.message_type!r} is not a request",
                          header) from None  # fmt: skip
    if message_type is MessageType.CERT_REP:
        raise ScepFailure(FailInfo.BAD_REQUEST, "a CertRep is an answer, not a request", header)
    cert = _signer_certificate(signed, signer, header)
    _verify_signature(signer, cert, header)
    envelope = _check_digest(signed, signer, header)
    content, cipher = _decrypt(envelope, ra_cert, ra_key, header)
    return PkiMessage(header=header, message_type=message_type, signer=cert, content=content, cipher=cipher)


def issuer_and_subject(content: bytes, header: Header) -> tuple[asn1_x509.Name, asn1_x509.Name]:
    """CertPoll's messageData (RFC 8894 §3.3.3): the CA's name and the requested subject."""
    try:
        seq = _IssuerAndSubject.load(content, strict=True)
        seq.native  # noqa: B018 - parse now, not at first use
        return seq["issuer"], seq["subject"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"the CertPoll content is not IssuerAndSubject ({_short(exc)})",
                          header) from None  # fmt: skip


def issuer_and_serial(content: bytes, header: Header) -> tuple[asn1_x509.Name, int]:
    """GetCert's and GetCRL's messageData: IssuerAndSerialNumber."""
    try:
        seq = cms.IssuerAndSerialNumber.load(content, strict=True)
        seq.native  # noqa: B018
        return seq["issuer"], seq["serial_number"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"the content is not IssuerAndSerialNumber ({_short(exc)})",
                          header) from None  # fmt: skip


class _IssuerAndSubject(core.Sequence):
    _fields = [("issuer", asn1_x509.Name), ("subject", asn1_x509.Name)]


def same_name(name: asn1_x509.Name, other: x509.Name) -> bool:
    """RFC 5280 §7.1 name comparison (asn1crypto normalises case and spaces)."""
    der = other.public_bytes()
    # Clients copy the name from our certificate, so the bytes match; normalising costs ~5 ms.
    return name.dump() == der or name == asn1_x509.Name.load(der)


def issuer_and_subject_der(issuer: x509.Name, subject: x509.Name) -> bytes:
    """CertPoll content, for clients (and tests)."""
    return _IssuerAndSubject(
        {"issuer": asn1_x509.Name.load(issuer.public_bytes()), "subject": asn1_x509.Name.load(subject.public_bytes())}
    ).dump()


def issuer_and_serial_der(issuer: x509.Name, serial: int) -> bytes:
    """GetCert / GetCRL content, for clients (and tests)."""
    return cms.IssuerAndSerialNumber(
        {"issuer": asn1_x509.Name.load(issuer.public_bytes()), "serial_number": serial}
    ).dump()


# ---------------------------------------------------------------- building


def new_nonce() -> bytes:
    return os.urandom(_NONCE_BYTES)


def degenerate(certs: Sequence[x509.Certificate] = (), crls: Sequence[bytes] = ()) -> bytes:
    """A certs-only (or CRL-only) SignedData with no signers (RFC 8894 §3.4)."""
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [],
            "encap_content_info": {"content_type": "data"},
            "certificates": [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in certs]
            or None,
            "crls": [cms.RevocationInfoChoice({"crl": crl.CertificateList.load(der)}) for der in crls] or None,
            "signer_infos": [],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def envelope(data: bytes, recipient: x509.Certificate, cipher: str = "aes128_cbc") -> bytes:
    """An EnvelopedData of ``data`` for ``recipient`` (RSA key transport), in the cipher the client used."""
    if cipher == "tripledes_3key":
        return _envelope_3des(data, recipient)
    algorithm = algorithms.AES256 if cipher == "aes256_cbc" else algorithms.AES128
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(data)
        .add_recipient(recipient)
        .set_content_encryption_algorithm(algorithm)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def _envelope_3des(data: bytes, recipient: x509.Certificate) -> bytes:
    public = recipient.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("the recipient's key is not RSA")
    key, iv = os.urandom(24), os.urandom(8)
    padder = padding.PKCS7(64).padder()
    encryptor = Cipher(TripleDES(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(data) + padder.finalize()) + encryptor.finalize()
    cert = asn1_x509.Certificate.load(recipient.public_bytes(serialization.Encoding.DER))
    ktri = cms.KeyTransRecipientInfo(
        {
            "version": "v0",
            "rid": cms.RecipientIdentifier(
                {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}
            ),
            "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
            "encrypted_key": public.encrypt(key, asym_padding.PKCS1v15()),
        }
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [cms.RecipientInfo({"ktri": ktri})],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": "tripledes_3key", "parameters": core.OctetString(iv)},
                "encrypted_content": ciphertext,
            },
        }
    )
    return cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


def sign_pki_message(
    content: bytes | None,
    attributes: dict[str, object],
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    digest: str = "sha256",
    extra_certs: Sequence[x509.Certificate] = (),
) -> bytes:
    """A SignedData over ``content`` (a DER pkcsPKIEnvelope, or none) with SCEP's signed attributes."""
    algorithm = _HASHES[digest]()
    hasher = hashes.Hash(algorithm)
    hasher.update(content or b"")
    attrs = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hasher.finalize()]}),
    ]
    for name, value in attributes.items():
        if value is not None:
            attrs.append(cms.CMSAttribute({"type": name, "values": [value]}))
    signed_attrs = cms.CMSAttributes(attrs)
    to_sign = signed_attrs.dump()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_sign, asym_padding.PKCS1v15(), algorithm)
        signature_algorithm = {"algorithm": "rsassa_pkcs1v15"}
    else:
        signature = key.sign(to_sign, ec.ECDSA(algorithm))
        signature_algorithm = {"algorithm": f"{digest}_ecdsa"}
    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {"issuer_and_serial_number": {"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number}}
            ),
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": signed_attrs,
            "signature_algorithm": signature_algorithm,
            "signature": signature,
        }
    )
    # With no pkcsPKIEnvelope (PENDING, FAILURE) the content is present but
    # empty: OpenSSL's PKCS7_verify, which certmonger and sscep use, refuses a
    # SignedData without content ("no content").
    encap: dict[str, object] = {"content_type": "data", "content": content or b""}
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": digest})],
            "encap_content_info": encap,
            "certificates": [asn1_cert]
            + [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in extra_certs],
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


@dataclass(frozen=True)
class Signer:
    """The RA's certificate and key: what answers are signed with and requests encrypted to."""

    cert: x509.Certificate
    """The RA certificate (issued by ``server-setup``)."""
    key: rsa.RSAPrivateKey = field(repr=False)
    """Its RSA key."""


def _answer_digest(header: Header | None) -> str:
    # Answer in the client's digest when it is one we sign with; SHA-256 otherwise.
    return header.digest if header is not None and header.digest in _HASHES else "sha256"


def cert_rep(
    ra: Signer,
    header: Header,
    status: PkiStatus,
    *,
    fail_info: FailInfo | None = None,
    recipient: x509.Certificate | None = None,
    cipher: str = "aes128_cbc",
    certs: Sequence[x509.Certificate] = (),
    crls: Sequence[bytes] = (),
) -> bytes:
    """A CertRep: SUCCESS carries certificates or a CRL encrypted to ``recipient``; PENDING and FAILURE carry none."""
    content = None
    if status is PkiStatus.SUCCESS:
        if recipient is None:
            raise ValueError("a SUCCESS answer needs the requester's certificate to encrypt to")
        content = envelope(degenerate(certs, crls), recipient, cipher)
    attributes: dict[str, object] = {
        "scep_message_type": MessageType.CERT_REP.value,
        "scep_pki_status": status.value,
        "scep_fail_info": fail_info.value if status is PkiStatus.FAILURE and fail_info else None,
        "scep_transaction_id": header.transaction_id,
        "scep_sender_nonce": new_nonce(),
        "scep_recipient_nonce": header.sender_nonce,
    }
    return sign_pki_message(content, attributes, ra.cert, ra.key, _answer_digest(header))


def spki_sha256(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, hex (the engine's key fingerprint)."""
    der = cert_or_csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()
