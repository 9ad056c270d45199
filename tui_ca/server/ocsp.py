"""OCSP (RFC 6960, RFC 5019 profile) answers from the live store, for every certificate asked about.

``cryptography``'s response builder takes one SingleResponse, so requests and
responses are read and written with asn1crypto here and only the signature
comes from ``cryptography``. Answers are cached per store generation
(``CAReader.change_token()``): a commit anywhere (a revocation, a renewed
signer's audit record) drops the cache, so a revocation still shows at once.
Signed answers without a nonce are reused until a quarter of their validity
has passed, which is what lets relying parties and caches share them.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tui_ca.engine.errors import InputError, RuleError
from tui_ca.engine.models import RevocationReason
from tui_ca.engine.profile import signature_hash
from tui_ca.engine.reader import CAReader
from tui_ca.engine.service_certs import OCSP_CERT, OCSP_KEY

# Answers are live; an hour bounds how long a cached "good" outlives a revocation.
VALIDITY = timedelta(hours=1)
# RFC 8954 §2.1: a nonce of 0 or more than 32 octets is a malformed request.
MAX_NONCE = 32
# Work per request stays bounded; real clients ask about one to a handful.
MAX_CERTS_PER_REQUEST = 32
# The signer files are looked at this often, and after every commit (server-setup writes an audit record).
_SIGNER_CHECK_SECONDS = 60.0
_MAX_CACHED = 20_000
_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


@dataclass(frozen=True)
class Answer:
    """A DER OCSPResponse, a word for the log, and its validity when it can be cached (no nonce)."""

    body: bytes
    outcome: str
    this_update: datetime | None = None
    next_update: datetime | None = None
    cacheable: bool = False

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'


def unsuccessful(status: str, outcome: str) -> Answer:
    return Answer(asn1_ocsp.OCSPResponse({"response_status": status}).dump(), outcome)


def _key_bits(public_key: object) -> bytes:
    """The subjectPublicKey BIT STRING contents that CertID's issuerKeyHash covers."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise TypeError(f"unsupported key {type(public_key).__name__}")


class _Signer:
    """The delegated OCSP signer from server-setup, ready to sign."""

    def __init__(self, cert: x509.Certificate, key: object) -> None:
        self.key = key
        self.hash = signature_hash(key)
        self.asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
        self.key_hash = hashlib.sha1(_key_bits(cert.public_key())).digest()
        kind = "ecdsa" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa"
        self.algorithm = f"{self.hash.name}_{kind}"

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(self.hash))
        assert isinstance(self.key, rsa.RSAPrivateKey)
        return self.key.sign(data, padding.PKCS1v15(), self.hash)


class Responder:
    """Answers OCSP requests about certificates of one issuing CA; thread-safe (runs in the executor)."""

    def __init__(self, reader: CAReader, *, validity: timedelta = VALIDITY) -> None:
        self.reader = reader
        self.validity = validity
        self._lock = threading.Lock()
        self._signer: _Signer | None = None
        self._signer_stamp: object = None
        self._signer_checked = 0.0
        self._token: object = None
        self._issuer: tuple[object, dict[str, tuple[bytes, bytes]]] | None = None
        self._status: dict[int, tuple[str, datetime | None, int | None]] = {}
        self._signed: dict[bytes, Answer] = {}
        self._load_signer(force=True)

    # -------------------------------------------------------------- freshness

    def _load_signer(self, *, force: bool = False) -> None:
        home = self.reader.home
        try:
            stamp = tuple((s.st_ino, s.st_mtime_ns) for s in (os.stat(home / OCSP_CERT), os.stat(home / OCSP_KEY)))
        except FileNotFoundError:
            stamp = None
        self._signer_checked = time.monotonic()
        if stamp is not None and stamp == self._signer_stamp and not force:
            return
        cert = x509.load_pem_x509_certificate(_server_file(home / OCSP_CERT))
        key = load_pem_private_key(_server_file(home / OCSP_KEY, private=True), None)
        if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
            return  # caught between the two renames; the next check sees both
        self._signer, self._signer_stamp = _Signer(cert, key), stamp
        self._signed.clear()

    def _fresh(self) -> _Signer:
        """Drop cached answers after any commit; look at the signer files then or once a minute."""
        token = self.reader.change_token()
        changed = token != self._token
        if changed:
            self._token = token
            self._status.clear()
            self._signed.clear()
        if changed or time.monotonic() - self._signer_checked > _SIGNER_CHECK_SECONDS:
            try:
                self._load_signer()
            except (OSError, ValueError, RuleError):
                pass  # keep answering with the signer already loaded
        assert self._signer is not None
        return self._signer

    def _issuer_ids(self) -> dict[str, tuple[bytes, bytes]]:
        issuing = self.reader.issuing_cert()
        if self._issuer is None or self._issuer[0] is not issuing:
            name, bits = issuing.subject.public_bytes(), _key_bits(issuing.public_key())
            self._issuer = (issuing, {k: (h(name).digest(), h(bits).digest()) for k, h in _HASHES.items()})
        return self._issuer[1]

    # -------------------------------------------------------------- answering

    def respond(self, der: bytes) -> Answer:
        try:
            request = asn1_ocsp.OCSPRequest.load(der, strict=True)
            tbs = request["tbs_request"]
            cert_ids = [item["req_cert"] for item in tbs["request_list"]]
            asked = [(c["hash_algorithm"]["algorithm"].native, c["issuer_name_hash"].native,
                      c["issuer_key_hash"].native, c["serial_number"].native) for c in cert_ids]  # fmt: skip
            nonce = None
            for extension in tbs["request_extensions"] or []:
                if extension["extn_id"].native == "nonce":
                    nonce = extension
                    size = len(extension["extn_value"].parsed.native)
                    if not 1 <= size <= MAX_NONCE:
                        return unsuccessful("malformed_request", f"nonce of {size} octets")
                elif extension["critical"].native:
                    return unsuccessful("malformed_request", "unknown critical extension")
        except (ValueError, TypeError, KeyError, IndexError, OverflowError):
            return unsuccessful("malformed_request", "malformed")
        if not asked or len(asked) > MAX_CERTS_PER_REQUEST:
            return unsuccessful("malformed_request", f"{len(asked)} certificates asked")
        with self._lock:
            signer = self._fresh()
            ids = self._issuer_ids()
            for algorithm, name_hash, key_hash, _ in asked:
                if ids.get(algorithm) != (name_hash, key_hash):
                    # RFC 6960 §2.3: a responder that cannot answer for this issuer says "unauthorized".
                    return unsuccessful("unauthorized", "unauthorized")
            key = b"".join(c.dump() for c in cert_ids) if nonce is None else None
            cached = self._signed.get(key) if key is not None else None
            now = self.reader.now()
            if cached is not None and cached.this_update is not None and now < cached.this_update + self.validity / 4:
                return cached
            statuses = [self._lookup(serial) for *_, serial in asked]
        answer = self._build(signer, cert_ids, statuses, nonce, now)
        if key is not None:
            with self._lock:
                if len(self._signed) >= _MAX_CACHED:
                    self._signed.clear()
                self._signed[key] = answer
        return answer

    def _lookup(self, serial: int) -> tuple[str, datetime | None, int | None]:
        known = self._status.get(serial)
        if known is not None:
            return known
        try:
            cert = self.reader.certificate(f"0x{serial:x}")
        except InputError:
            status: tuple[str, datetime | None, int | None] = ("unknown", None, None)
        else:
            if cert.revoked_at is None:
                status = ("good", None, None)
            else:
                reason = cert.revocation_reason
                # As in the CRL (RFC 5280 §5.3.1), "unspecified" is said by leaving the reason out.
                code = None if reason in (None, RevocationReason.UNSPECIFIED) else reason.code
                status = ("revoked", cert.revoked_at, code)
        if len(self._status) >= _MAX_CACHED:
            self._status.clear()
        self._status[serial] = status
        return status

    def _build(self, signer: _Signer, cert_ids: list, statuses: list, nonce: core.Asn1Value | None,
               now: datetime) -> Answer:
        until = now + self.validity
        singles = []
        for cert_id, (word, revoked_at, code) in zip(cert_ids, statuses, strict=True):
            if word == "revoked":
                info = {"revocation_time": revoked_at}
                if code is not None:
                    info["revocation_reason"] = code
                status = asn1_ocsp.CertStatus(name="revoked", value=info)
            else:
                status = asn1_ocsp.CertStatus(name=word, value=core.Null())
            singles.append({"cert_id": cert_id, "cert_status": status, "this_update": now, "next_update": until})
        data = {"responder_id": asn1_ocsp.ResponderId(name="by_key", value=signer.key_hash), "produced_at": now,
                "responses": singles}  # fmt: skip
        if nonce is not None:
            data["response_extensions"] = [asn1_ocsp.ResponseDataExtension.load(nonce.dump())]
        tbs = asn1_ocsp.ResponseData(data)
        basic = asn1_ocsp.BasicOCSPResponse({
            "tbs_response_data": tbs, "signature_algorithm": {"algorithm": signer.algorithm},
            "signature": signer.sign(tbs.dump()), "certs": [signer.asn1_cert],
        })  # fmt: skip
        body = asn1_ocsp.OCSPResponse({"response_status": "successful",
                                       "response_bytes": {"response_type": "basic_ocsp_response", "response": basic}}).dump()  # fmt: skip
        outcome = ",".join(word for word, _, _ in statuses)
        return Answer(body, outcome, now, until, cacheable=nonce is None)


def _server_file(path: os.PathLike, *, private: bool = False) -> bytes:
    if not os.path.exists(path):
        raise RuleError(f"{path} is missing: run 'tui-ca server-setup' as the CA admin first")
    if private and os.stat(path).st_mode & 0o077:
        raise RuleError(f"refusing to use {path}: other users can read it; run chmod 600 on it")
    with open(path, "rb") as handle:
        return handle.read()
