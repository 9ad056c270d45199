"""OCSP (RFC 6960) answers from the live store, signed by the delegated responder.

The answer is looked up at the moment of the request, so a revocation shows
at once, without waiting for a CRL. The responder key is the delegated OCSP
signing key made by ``server-setup``; the CA key is never needed here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes as CAPrivateKey
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509 import ocsp

from tui_ca.engine.errors import InputError
from tui_ca.engine.models import RevocationReason
from tui_ca.engine.profile import signature_hash

if TYPE_CHECKING:
    from tui_ca.engine.reader import CAReader

# RFC 5019 responders give clients a window to cache; an hour keeps that
# window short, since answers here are live and revocation should spread fast.
DEFAULT_VALIDITY = timedelta(hours=1)
# SHA-1 is what most clients still use in CertID (openssl's default); it only
# names the issuer here, it is not a signature.
_CERT_ID_HASHES = (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512)


def _public_key_bits(public_key: CertificatePublicKeyTypes) -> bytes:
    """The subjectPublicKey BIT STRING contents that CertID's issuerKeyHash covers."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise TypeError(f"unsupported issuer key {type(public_key).__name__}")


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


class OcspResponder:
    """Answers OCSP requests about certificates of one issuing CA."""

    def __init__(self, reader: CAReader, signer_cert: x509.Certificate, signer_key: CAPrivateKey, *,
                 validity: timedelta = DEFAULT_VALIDITY, clock: Callable[[], datetime] | None = None) -> None:  # fmt: skip
        self.reader = reader
        self.signer_cert = signer_cert
        self.signer_key = signer_key
        self.validity = validity
        self._clock = clock or reader.now
        self._hash = signature_hash(signer_key)
        self._issuer_hashes: tuple[object, dict[type[hashes.HashAlgorithm], tuple[bytes, bytes]]] | None = None

    def _issuer_ids(self) -> dict[type[hashes.HashAlgorithm], tuple[bytes, bytes]]:
        """(name hash, key hash) of the issuing CA per CertID hash; recomputed if the CA changes."""
        issuing = self.reader.issuing_cert()
        if self._issuer_hashes is None or self._issuer_hashes[0] is not issuing:
            name, bits = issuing.subject.public_bytes(), _public_key_bits(issuing.public_key())
            ids: dict[type[hashes.HashAlgorithm], tuple[bytes, bytes]]
            ids = {kind: (_digest(kind(), name), _digest(kind(), bits)) for kind in _CERT_ID_HASHES}
            self._issuer_hashes = (issuing, ids)
        return self._issuer_hashes[1]

    def respond(self, der: bytes) -> tuple[bytes, str]:
        """The DER OCSPResponse and a short word for the log (good/revoked/unknown or the error)."""
        try:
            request = ocsp.load_der_ocsp_request(der)
            algorithm = request.hash_algorithm
            nonce = None
            for extension in request.extensions:
                if isinstance(extension.value, x509.OCSPNonce):
                    nonce = extension.value
        except (ValueError, NotImplementedError, UnsupportedAlgorithm):
            return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST), "malformed"
        ids = self._issuer_ids().get(type(algorithm))
        if ids is None or (request.issuer_name_hash, request.issuer_key_hash) != ids:
            # RFC 6960 §2.3: a responder that cannot answer for this issuer says "unauthorized".
            return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED), "unauthorized"
        status, revoked_at, reason = self._status(request.serial_number)
        now = self._clock()
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                request.issuer_name_hash, request.issuer_key_hash, request.serial_number, algorithm,
                status, now, now + self.validity, revoked_at, reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.signer_cert)
            .certificates([self.signer_cert])
        )  # fmt: skip
        if nonce is not None:
            builder = builder.add_extension(nonce, critical=False)
        response = builder.sign(self.signer_key, self._hash)
        return response.public_bytes(serialization.Encoding.DER), status.name.lower()

    def _status(self, serial: int) -> tuple[ocsp.OCSPCertStatus, datetime | None, x509.ReasonFlags | None]:
        try:
            cert = self.reader.certificate(f"0x{serial:x}")
        except InputError:
            return ocsp.OCSPCertStatus.UNKNOWN, None, None
        if cert.revoked_at is None:
            return ocsp.OCSPCertStatus.GOOD, None, None
        reason = cert.revocation_reason
        # As in the CRL (RFC 5280 §5.3.1), "unspecified" is said by leaving the reason out.
        flag = None if reason in (None, RevocationReason.UNSPECIFIED) else reason.flag
        return ocsp.OCSPCertStatus.REVOKED, cert.revoked_at, flag
