"""OCSP (RFC 6960, RFC 5019 profile) answers from the live store, for every certificate asked about.

``cryptography``'s response builder takes one SingleResponse, so requests and
responses are read and written with asn1crypto here and only the signature
comes from ``cryptography``. Statuses and signed answers are cached per
revocation generation (``CAReader.revocation_generation()``, moved by every
revoke, reason change and released hold in any process): each request looks
at the store's change token (one stat), and only when something was committed
reads the counter, so a revocation still shows at once while a stream of
enrollments keeps the cache. "unknown" is kept only until the next commit
(the serial may have been issued since). Signed answers without a nonce are
reused until a quarter of their validity has passed, which is what lets
relying parties and caches share them (cfssl pre-signs for the same reason).
Both caches are bounded.

Whether a serial was issued is answered from a compact set of every issued
serial (serial_set.py, 2 MB at 100,000 certificates), made off the event
loop from the listing (``CAReader.iter_serials``) at the first request; a
serial not in it (issued since, or asked before the set is ready) is looked
up in the store's serial index, which stays the truth. When the change token
(one stat) shows no commit since the caches were checked and every serial
asked about is in memory, the answer is given on the event loop itself
(``Responder.answer_now``): kept, or parsed and signed there in a fraction
of a millisecond, where the hop to the executor cost more than that.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import algos as asn1_algos
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509 import ocsp as x509_ocsp

from tui_ca.engine.crl import der_integer, der_tlv
from tui_ca.engine.errors import CAError, RuleError
from tui_ca.engine.home import OCSP_CERT, OCSP_KEY
from tui_ca.engine.profile import signature_hash
from tui_ca.engine.reader import CAReader
from tui_ca.server.serial_set import SerialSet

# Answers are live; an hour bounds how long a cached "good" outlives a revocation.
VALIDITY = timedelta(hours=1)
# RFC 8954 §2.1: a nonce of 0 or more than 32 octets is a malformed request.
MAX_NONCE = 32
# Work per request stays bounded; real clients ask about one to a handful.
MAX_CERTS_PER_REQUEST = 32
# The signer files are looked at this often, and after every commit (server-setup writes an audit record).
_SIGNER_CHECK_SECONDS = 60.0
# Bounds of the caches (oldest dropped first): a status is ~150 bytes, a signed answer ~1 KB.
_MAX_STATUSES = 65_536
_MAX_SIGNED = 4_096
# Serials found in the store but not in the set (issued since it was made); this many make it anew.
_MAX_EXTRA = 4_096
_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


# (word, revoked_at, reason code) of one certificate.
Status = tuple[str, datetime | None, int | None]
_GOOD_STATUS: Status = ("good", None, None)
_UNKNOWN_STATUS: Status = ("unknown", None, None)


@dataclass(frozen=True)
class Answer:
    """A DER OCSPResponse, a word for the log, and its validity when it can be cached (no nonce)."""

    body: bytes
    outcome: str
    this_update: datetime | None = None
    next_update: datetime | None = None
    cacheable: bool = False

    @functools.cached_property
    def etag(self) -> str:
        # Worked out once per kept answer, not once per GET of it.
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
        self.algorithm_der = asn1_algos.SignedDigestAlgorithm({"algorithm": f"{self.hash.name}_{kind}"}).dump()
        self.responder_id = asn1_ocsp.ResponderId(name="by_key", value=self.key_hash).dump()
        self.certs_der = der_tlv(0xA0, der_tlv(0x30, self.asn1_cert.dump()))
        # An ECDSA signature takes ~60 us, short enough for the event loop; an
        # RSA one takes milliseconds (4096 bits: ~10 ms) and would stall every
        # connection, so RSA answers are signed in the executor.
        self.quick = isinstance(key, ec.EllipticCurvePrivateKey)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(self.hash))
        assert isinstance(self.key, rsa.RSAPrivateKey)
        return self.key.sign(data, padding.PKCS1v15(), self.hash)


class Responder:
    """Answers OCSP requests about certificates of one issuing CA; thread-safe (``respond`` runs in the executor)."""

    def __init__(self, reader: CAReader, *, validity: timedelta = VALIDITY) -> None:
        self.reader = reader
        self.validity = validity
        self._reuse = validity / 4
        self._lock = threading.Lock()
        self._signer: _Signer | None = None
        self._signer_stamp: object = None
        self._signer_checked = 0.0
        self._token: object = None
        self._revocations: int | None = None
        self._issuer: tuple[object, dict[str, tuple[bytes, bytes]]] | None = None
        self._ids: dict[str, tuple[bytes, bytes]] = {}
        self._local_token = reader.change_token_is_local()
        # Every serial issued when the set was made; the set is None until then.
        self._serials: SerialSet | None = None
        self._serials_making = False
        self._serials_failed: object = None
        self._serials_made = threading.Event()
        # Serials issued since (a set in insertion order), the revoked ones with (when, reason
        # code), and serials not found, which the next commit may issue.
        self._known: dict[int, None] = {}
        self._revoked: dict[int, tuple[datetime, int]] = {}
        self._unknown: set[int] = set()
        self._signed: dict[bytes, Answer] = {}
        self._signed_unknown: dict[bytes, Answer] = {}
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
        key = load_pem_private_key(_server_file(home / OCSP_KEY, private=True, home=home), None)
        if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
            return  # caught between the two renames; the next check sees both
        self._signer, self._signer_stamp = _Signer(cert, key), stamp
        self._signed.clear()
        self._signed_unknown.clear()

    def _fresh(self) -> _Signer:
        """Drop what a commit may have outdated; look at the signer files then or once a minute."""
        token = self.reader.change_token()
        changed = token != self._token
        if changed:
            self._unknown.clear()
            self._signed_unknown.clear()
            if self.reader.revocation_generation() != self._revocations:
                self._revocations, self._revoked = self.reader.revocations()
                self._signed.clear()
            ids = self._issuer_ids()
            if ids != self._ids:
                self._ids = ids
                self._signed.clear()
            # Only once all of the above was read: a failed read is tried again by the next request.
            self._token = token
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

    def answer_now(self, der: bytes) -> Answer | None:
        """The answer when it can be given without waiting, from memory only: for the event loop.

        A kept signed answer for exactly this request, or one signed now when
        every serial asked about is in memory (the issued set, the revoked,
        the unknown since the last commit). None when ``respond`` must answer
        (in the executor): a commit to look at, the signer due for its look, a
        serial to look up in the store, a store whose change token is a round
        trip, or the lock held by a thread that reads the store.
        """
        if not self._local_token:
            return None
        return self._answer(der, wait=False)

    def respond(self, der: bytes) -> Answer:
        """The answer, reading the store where needed (blocks: run it in the executor)."""
        answer = self._answer(der, wait=True)
        assert answer is not None
        return answer

    def wait_serials(self, timeout: float) -> bool:
        """Whether the set of issued serials is made (waiting up to ``timeout`` seconds)."""
        return self._serials_made.wait(timeout)

    def _locked(self, wait: bool) -> bool:
        """Take the lock; without ``wait`` only if it is free and nothing must be read from the store first."""
        if wait:
            self._lock.acquire()
            try:
                self._fresh()
            except BaseException:
                self._lock.release()
                raise
            return True
        if not self._lock.acquire(blocking=False):
            return False
        if time.monotonic() - self._signer_checked > _SIGNER_CHECK_SECONDS or self.reader.change_token() != self._token:
            self._lock.release()
            return False
        return True

    def _answer(self, der: bytes, *, wait: bool) -> Answer | None:
        if not self._locked(wait):
            return None
        try:
            # The same question (no nonce) gets the same signed answer while nothing changed.
            cached = self._signed.get(der) or self._signed_unknown.get(der)
            if cached is not None and cached.this_update is not None:
                if self.reader.now() < cached.this_update + self._reuse:
                    return cached
        finally:
            self._lock.release()
        parsed = _parse(der)
        if isinstance(parsed, Answer):
            return parsed
        cert_ids, asked, nonce = parsed
        if not self._locked(wait):
            return None
        try:
            signer, token, ids = self._signer, self._token, self._ids
            assert signer is not None
            if not wait and not signer.quick:
                return None
            if self._serials is None:
                self._make_serials()
            for algorithm, name_hash, key_hash, _ in asked:
                if ids.get(algorithm) != (name_hash, key_hash):
                    # RFC 6960 §2.3: a responder that cannot answer for this issuer says "unauthorized".
                    return unsuccessful("unauthorized", "unauthorized")
            statuses = []
            for *_, serial in asked:
                status = self._lookup(serial, read=wait)
                if status is None:
                    return None
                statuses.append(status)
        finally:
            self._lock.release()
        answer = self._build(signer, cert_ids, statuses, nonce, self.reader.now())
        if nonce is None:
            with self._lock:
                if self._token == token:  # not answered from a state that a commit has just replaced
                    kept = self._signed_unknown if "unknown" in answer.outcome else self._signed
                    _bounded_put(kept, der, answer, _MAX_SIGNED)
        return answer

    def _make_serials(self) -> None:
        """Start making the set of issued serials in a thread of its own (called under the lock)."""
        if self._serials_making or self._serials_failed == self._token:
            return
        self._serials_making = True
        threading.Thread(target=self._made_serials, name="tui-ca-ocsp-serials", daemon=True).start()

    def _made_serials(self) -> None:
        token = self.reader.change_token()
        try:
            made: SerialSet | None = SerialSet(self.reader.iter_serials())
        except (OSError, ValueError, CAError):
            made = None  # a damaged listing: serials are looked up in the index, and the next commit tries again
        with self._lock:
            self._serials_making = False
            if made is None:
                self._serials_failed = token
                return
            self._serials = made
            self._known = {serial: None for serial in self._known if serial not in made}
        self._serials_made.set()

    def _lookup(self, serial: int, *, read: bool) -> Status | None:
        """The status of one serial; None if it would take a read of the store and ``read`` is false."""
        revoked = self._revoked.get(serial)
        if revoked is not None:
            # As in the CRL (RFC 5280 §5.3.1), "unspecified" is said by leaving the reason out.
            at, code = revoked
            return ("revoked", at, code or None)
        # Serials are never removed, so an issued one stays known across commits.
        if (self._serials is not None and serial in self._serials) or serial in self._known:
            return _GOOD_STATUS
        if serial in self._unknown:
            return _UNKNOWN_STATUS
        if not read:
            return None
        if self.reader.serial_issued(serial):
            _bounded_put(self._known, serial, None, _MAX_STATUSES)
            if len(self._known) >= _MAX_EXTRA:
                self._make_serials()
            return _GOOD_STATUS
        if len(self._unknown) >= _MAX_STATUSES:
            self._unknown.clear()
        self._unknown.add(serial)
        return _UNKNOWN_STATUS

    def _build(
        self, signer: _Signer, cert_ids: list[bytes], statuses: list, nonce: core.Asn1Value | None, now: datetime
    ) -> Answer:
        until = now + self.validity
        this_update, next_update = _generalized(now), der_tlv(0xA0, _generalized(until))
        singles = b""
        for cert_id, (word, revoked_at, code) in zip(cert_ids, statuses, strict=True):
            if word == "revoked":
                reason = der_tlv(0xA0, der_tlv(0x0A, bytes([code]))) if code is not None else b""
                status = der_tlv(0xA1, _generalized(revoked_at) + reason)
            else:
                status = _GOOD if word == "good" else _UNKNOWN
            singles += der_tlv(0x30, cert_id + status + this_update + next_update)
        extensions = der_tlv(0xA1, der_tlv(0x30, nonce.dump())) if nonce is not None else b""
        tbs = der_tlv(0x30, signer.responder_id + _generalized(now) + der_tlv(0x30, singles) + extensions)
        signature = der_tlv(0x03, b"\x00" + signer.sign(tbs))
        basic = der_tlv(0x30, tbs + signer.algorithm_der + signature + signer.certs_der)
        body = der_tlv(0x30, _SUCCESSFUL + der_tlv(0xA0, der_tlv(0x30, _BASIC_OID + der_tlv(0x04, basic))))
        outcome = ",".join(word for word, _, _ in statuses)
        return Answer(body, outcome, now, until, cacheable=nonce is None)


Parsed = tuple[list[bytes], list[tuple[str, bytes, bytes, int]], core.Asn1Value | None]


def _parse(der: bytes) -> Answer | Parsed:
    """(the DER of each CertID, (hash algorithm, issuer name hash, issuer key hash, serial) of each, the nonce
    extension), or the unsuccessful answer that a malformed request gets."""
    return _parse_plain(der) or _parse_any(der)


def _parse_plain(der: bytes) -> Parsed | None:
    """The common request (one certificate, no extension) read by ``cryptography``, in a tenth of the time
    asn1crypto takes; None for any other request, which ``_parse_any`` reads (and refuses if malformed)."""
    try:
        request = x509_ocsp.load_der_ocsp_request(der)
        if len(request.extensions):
            return None
        algorithm, serial = request.hash_algorithm.name, request.serial_number
        name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
    except (ValueError, UnsupportedAlgorithm, NotImplementedError):  # the last: more than one certificate
        return None
    if serial < 0 or algorithm not in _ALGORITHM_IDS:
        return None
    rest = der_tlv(0x04, name_hash) + der_tlv(0x04, key_hash) + der_integer(serial)
    # The answer repeats the request's CertID byte for byte; its parameters may be NULL or absent.
    for algorithm_id in _ALGORITHM_IDS[algorithm]:
        cert_id = der_tlv(0x30, algorithm_id + rest)
        if cert_id in der:
            return [cert_id], [(algorithm, name_hash, key_hash, serial)], None
    return None


def _parse_any(der: bytes) -> Answer | Parsed:
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
    return [cert_id.dump() for cert_id in cert_ids], asked, nonce


def _bounded_put(cache: dict, key: object, value: object, limit: int) -> None:
    """Insert, dropping the oldest entries past ``limit`` (dicts keep insertion order)."""
    while len(cache) >= limit:
        del cache[next(iter(cache))]
    cache[key] = value


def _generalized(moment: datetime) -> bytes:
    """GeneralizedTime, whole seconds, as RFC 6960 (and RFC 5280 §4.1.2.5.2) want it."""
    return der_tlv(0x18, moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode())


# The fixed parts of an answer. Responses are assembled from DER pieces: asn1crypto
# composing them took most of a request's time; asn1crypto still parses requests and
# encodes the constant pieces below once.
_GOOD, _UNKNOWN = b"\x80\x00", b"\x82\x00"
_SUCCESSFUL = asn1_ocsp.OCSPResponseStatus("successful").dump()
# AlgorithmIdentifier of each hash a CertID may use: with NULL parameters, then without.
_ALGORITHM_IDS = {
    name: (der_tlv(0x30, oid + b"\x05\x00"), der_tlv(0x30, oid))
    for name, oid in ((name, asn1_algos.DigestAlgorithmId(name).dump()) for name in _HASHES)
}
_BASIC_OID = asn1_ocsp.ResponseType("basic_ocsp_response").dump()


def _server_file(path: os.PathLike, *, private: bool = False, home: Path | None = None) -> bytes:
    if not os.path.exists(path):
        raise RuleError(f"{path} is missing: run 'tui-ca server-setup' as the CA admin first")
    if private:
        from tui_ca.engine.sharing import Sharing

        # Group access only for the admin group of a shared home.
        (Sharing.of(home) if home is not None else Sharing.private()).check(Path(path))
    with open(path, "rb") as handle:
        return handle.read()
