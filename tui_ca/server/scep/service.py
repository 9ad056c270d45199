"""SCEP operations (RFC 8894 §3.5 and §4) on the engine, independent of any HTTP framework.

The approval queue is SCEP's PENDING state: PKCSReq queues the CSR like any
other intake and answers PENDING; CertPoll (or the same PKCSReq re-sent)
answers PENDING until an admin decides, then SUCCESS with the certificate or
FAILURE badRequest. Every call here may block (store lock, fsync): the HTTP
layer runs :meth:`ScepService.handle` in its executor.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import AttributeOID

from tui_ca.engine.applicant import Applicant, NamePatterns, may_follow_request
from tui_ca.engine.csr_policy import load_csr
from tui_ca.engine.errors import CAError, InputError, NotFoundError, RuleError
from tui_ca.engine.home import SCEP_RA_CERT, SCEP_RA_KEY
from tui_ca.engine.models import Actor, Request, RequestStatus
from tui_ca.engine.refusals import csr_subject
from tui_ca.engine.sharing import Sharing
from tui_ca.server.limits import refusal_throttle
from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.messages import FailInfo, MessageType, PkiStatus, ScepFailure
from tui_ca.server.scep.state import Challenges, ScepStateDamaged, Transaction, TransactionLog, prepare

# SHA-384 is listed although SHA-256 is what clients use: strongSwan 5.9.8's
# pki reads each capability one bit off (its names and flags disagree), and
# sees SHA-256 only when SHA-384 is listed. Every digest listed is one we verify.
CACAPS = b"AES\nPOSTPKIOperation\nRenewal\nSCEPStandard\nSHA-256\nSHA-384\nSHA-512\n"
CA_RA_CERT_TYPE = "application/x-x509-ca-ra-cert"
PKI_MESSAGE_TYPE = "application/x-pki-message"
TEXT_TYPE = "text/plain; charset=utf-8"
# Who the audit names for SCEP intake (SCEP has no user names; the peer address goes beside it).
SCEP_USER = "scep"
# messageTypes that submit a CSR: their refusals are kept for the admins.
_ENROLLING = (MessageType.PKCS_REQ.value, MessageType.RENEWAL_REQ.value)


@dataclass(frozen=True)
class ScepReply:
    """What the HTTP layer sends back."""

    status: int
    """HTTP status."""
    content_type: str
    """Content-Type of the body."""
    body: bytes
    """The body: capabilities, certificates, a CertRep, or one line of text."""
    retry_after: int | None = None
    """Seconds, for a 503/429."""


def _text(status: int, line: str, retry_after: int | None = None) -> ScepReply:
    return ScepReply(status, TEXT_TYPE, (" ".join(line.split())[:300] + "\n").encode(), retry_after)


class RaMissing(RuleError):
    """``server-setup`` has not issued the SCEP RA certificate yet."""


def load_ra(home: Path) -> msg.Signer:
    """The RA certificate and key from ``server-setup``; refuses with one line when absent or unusable."""
    paths = [home / SCEP_RA_CERT, home / SCEP_RA_KEY]
    for path in paths:
        if not path.exists():
            raise RaMissing(f"{path} is missing: run 'tui-ca server-setup' as the CA admin first")
    Sharing.of(home).check(paths[1])  # group access only for a shared home's admin group
    try:
        cert = x509.load_pem_x509_certificate(paths[0].read_bytes())
        key = load_pem_private_key(paths[1].read_bytes(), None)
    except (ValueError, TypeError):
        raise RuleError(f"{paths[0]} or {paths[1]} is damaged: run 'tui-ca server-setup' again") from None
    public = cert.public_key()
    if (
        not isinstance(key, rsa.RSAPrivateKey)
        or not isinstance(public, rsa.RSAPublicKey)
        or key.public_key().public_numbers() != public.public_numbers()
    ):
        raise RuleError(f"{paths[1]} is not the RSA key of {paths[0]}: run 'tui-ca server-setup' again")
    return msg.Signer(cert, key)


class ScepService:
    """SCEP on one CA home. ``ca`` needs the reader methods and ``submit``; it never signs with the CA key."""

    def __init__(
        self,
        ca,
        *,
        ra: msg.Signer | None = None,
        require_challenge: bool | None = None,
        max_queued: int | None = 1000,
        admit: Callable[[str], float] | None = None,
        log: Callable[[str], None] | None = None,
        reserved: NamePatterns | None = None,
    ) -> None:
        self.ca = ca
        # Requester names EST users own: a SCEP request without credentials for them may not take them.
        self.reserved = reserved or NamePatterns()
        self.ra = ra or load_ra(Path(ca.home))
        # None: as the home says (``tui-ca scep-challenge --require``), read per request.
        self.require_challenge = require_challenge
        self.max_queued = max_queued
        # Per-address admission of new requests (the server's RateLimiter.take): seconds to wait, 0 to go.
        self._admit = admit
        self._refusal_records = refusal_throttle()
        sink = log or (lambda line: print(f"tui-ca serve: scep: {line}", file=sys.stderr, flush=True))
        # Lines carry client text (messageType, names in engine refusals): escaped, one line, bounded.
        self._log = lambda line: sink(_escaped(line))
        prepare(Path(ca.home))
        self.transactions = TransactionLog(Path(ca.home))
        self.challenges = Challenges(Path(ca.home))

    # ------------------------------------------------------------ operations

    def handle(self, operation: str, message: bytes | None, *, peer: str | None = None) -> ScepReply:
        """One SCEP request: ``operation`` from the query string, ``message`` the DER pkiMessage (PKIOperation)."""
        if operation == "GetCACaps":
            return ScepReply(200, TEXT_TYPE, CACAPS)
        if operation not in ("GetCACert", "PKIOperation"):
            return _text(400, "unknown SCEP operation; use GetCACaps, GetCACert or PKIOperation")
        if operation == "PKIOperation" and not message:
            return _text(400, "PKIOperation needs a message (a DER pkiMessage)")
        try:
            if operation == "GetCACert":
                certs = [self.ra.cert, self.ca.issuing_cert(), self.ca.root_cert()]
                return ScepReply(200, CA_RA_CERT_TYPE, msg.degenerate(certs))
            return self._pki_operation(message or b"", peer)
        except msg.Malformed as exc:
            self._record(f"not a SCEP pkiMessage: {exc}", peer)
            return _text(400, f"not a SCEP pkiMessage: {exc}")
        except ScepFailure as exc:
            self._log(f"refused {exc.header.message_type if exc.header else '?'} from {peer}: {exc}")
            enrolling = exc.header is None or exc.header.message_type in _ENROLLING
            if enrolling and not exc.recorded:
                self._record(str(exc), peer, exc.subject)
            if exc.header is None:
                return _text(400, str(exc))
            return self._reply(msg.cert_rep(self.ra, exc.header, PkiStatus.FAILURE, fail_info=exc.fail_info))
        except _Busy as exc:
            self._record(str(exc), peer, exc.subject)
            return _text(exc.status, str(exc), exc.retry_after)
        except ScepStateDamaged as exc:
            self._log(str(exc))
            return _text(500, "the SCEP state of this CA is damaged; an admin has been told in the server log")
        except CAError as exc:
            # The store refused (damage, a missing CA): nothing was answered from it.
            self._log(f"{operation}: {exc}")
            return _text(500, "the CA cannot answer now; an admin has been told in the server log")

    def _record(self, reason: str, peer: str | None, subject: str | None = None) -> None:
        """Keep an enrollment refused here, before the engine's intake (which records its own)."""
        record = getattr(self.ca, "record_refusal", None)
        if record is not None and not self._refusal_records.take(peer or "?"):
            record(reason, source="scep", actor=Actor(user=SCEP_USER, address=peer), subject=subject)

    @staticmethod
    def _reply(body: bytes) -> ScepReply:
        return ScepReply(200, PKI_MESSAGE_TYPE, body)

    def _pki_operation(self, der: bytes, peer: str | None) -> ScepReply:
        message = msg.parse_pki_message(der, self.ra.cert, self.ra.key)
        header = message.header
        if not isinstance(message.signer.public_key(), rsa.RSAPublicKey):
            # Answers are encrypted to the signer's key by RSA key transport.
            raise ScepFailure(FailInfo.BAD_ALG, "SCEP needs an RSA key to encrypt the answer to", header)
        kind = message.message_type
        if kind in (MessageType.PKCS_REQ, MessageType.RENEWAL_REQ):
            return self._enroll(message, peer)
        if kind is MessageType.CERT_POLL:
            issuer, _subject = msg.issuer_and_subject(message.content, header)
            # Clients name the issuing CA, the root or even the RA here (strongSwan
            # names the certificate it encrypts to); the transactionID decides.
            ours = (self.ca.issuing_cert().subject, self.ca.root_cert().subject, self.ra.cert.subject)
            if not any(msg.same_name(issuer, name) for name in ours):
                raise ScepFailure(FailInfo.BAD_CERT_ID, "CertPoll names another CA as issuer", header)
            known = self._own_transaction(message)
            if known is None:
                raise ScepFailure(FailInfo.BAD_CERT_ID, "no transaction with this transactionID", header)
            return self._answer(message, known)
        if kind is MessageType.GET_CERT:
            return self._get_cert(message)
        return self._get_crl(message)

    def _own_transaction(self, message: msg.PkiMessage) -> Transaction | None:
        """The recorded transaction of this ID, if any; refused to any key but the one that opened it."""
        header = message.header
        known = self.transactions.get(header.transaction_id)
        if known is None:
            return None
        if known.signer_spki != msg.spki_sha256(message.signer):
            raise ScepFailure(FailInfo.BAD_REQUEST, "this transactionID belongs to another key", header)
        return known

    # ------------------------------------------------------------ enrollment

    def _enroll(self, message: msg.PkiMessage, peer: str | None) -> ScepReply:
        header = message.header
        try:
            csr = load_csr(message.content)
        except InputError as exc:
            raise ScepFailure(FailInfo.BAD_REQUEST, str(exc), header) from None
        known = self._own_transaction(message)
        if known is not None:
            # A client may re-send its request instead of CertPoll (RFC 8894 §3.3.3).
            return self._answer(message, known)
        try:
            with self.transactions.opening():
                return self._open(message, csr, peer)
        except (ScepFailure, _Busy) as exc:
            exc.subject = csr_subject(csr)
            raise

    def _open(self, message: msg.PkiMessage, csr: x509.CertificateSigningRequest, peer: str | None) -> ScepReply:
        """A new transaction: checks, the engine's submit, and the record, under the opening lock."""
        header = message.header
        known = self._own_transaction(message)
        if known is not None:
            return self._answer(message, known)
        renewal = self._renewed(message) if message.message_type is MessageType.RENEWAL_REQ else None
        if renewal is None and msg.spki_sha256(message.signer) != msg.spki_sha256(csr):
            raise ScepFailure(FailInfo.BAD_REQUEST, "a PKCSReq must be signed with the key of its CSR", header)
        if renewal is not None and csr.subject.rfc4514_string() != renewal.subject:
            raise ScepFailure(FailInfo.BAD_REQUEST, "a renewal must keep the subject of the certificate it renews",
                              header)  # fmt: skip
        try:
            previous = self.ca.find_by_csr(message.content)
        except InputError as exc:
            raise ScepFailure(FailInfo.BAD_REQUEST, str(exc), header) from None
        if previous is not None and not may_follow_request(self._applicant(renewal), previous):
            raise ScepFailure(FailInfo.BAD_REQUEST, f"the CSR of request {previous.id} (requester "
                              f"{previous.requester!r}, sent as {previous.via}) was re-sent in another "
                              "transaction", header)  # fmt: skip
        if previous is not None and previous.status != RequestStatus.QUEUED:
            # The same CSR was decided already: tell this transaction how, store nothing.
            return self._answer_request(message, previous)
        request = self._submit(message, csr, renewal, peer) if previous is None else previous
        self.transactions.record(Transaction(header.transaction_id, request.id, msg.spki_sha256(message.signer)))
        return self._answer_request(message, request)

    def _renewed(self, message: msg.PkiMessage):
        """The stored, active certificate that signed a RenewalReq."""
        header = message.header
        signer = message.signer
        try:
            stored = self.ca.certificate(f"0x{signer.serial_number:x}")
        except NotFoundError:
            stored = None
        if stored is None or stored.sha256 != signer.fingerprint(hashes.SHA256()).hex():
            raise ScepFailure(FailInfo.BAD_REQUEST, "a RenewalReq must be signed with a certificate of this CA",
                              header)  # fmt: skip
        if not stored.is_active(self.ca.now()):
            raise ScepFailure(FailInfo.BAD_REQUEST, f"certificate {stored.id} is revoked or expired; enroll anew",
                              header)  # fmt: skip
        return stored

    def _submit(self, message: msg.PkiMessage, csr: x509.CertificateSigningRequest, renewal, peer: str | None):
        header = message.header
        if self._admit is not None:
            # A peer the transport could not name shares one bucket rather than escaping the limit.
            wait = self._admit(peer or "unknown")
            if wait:
                raise _Busy(429, "too many new requests from this address; slow down", max(1, round(wait)))
        if self.max_queued is not None and self.ca.queued_count() >= self.max_queued:
            raise _Busy(503, f"the queue is full ({self.max_queued} requests wait for a decision); try again later", 60)
        note = {"scep_transaction_id": header.transaction_id}
        actor = Actor(user=SCEP_USER, address=peer)
        required = self.require_challenge if self.require_challenge is not None else self.challenges.required()
        try:
            if required and renewal is None:
                # A renewal proves itself with the current certificate instead.
                with self.challenges.redeem(_challenge_password(csr), self._requester_of(csr),
                                            self.ca.now()) as minted_for:  # fmt: skip
                    if minted_for is None:
                        raise ScepFailure(FailInfo.BAD_REQUEST, "the challenge password is missing, wrong, used "
                                          "or expired", header)  # fmt: skip
                    note["challenge"] = "matched"
                    # Only a challenge the admin minted for a requester vouches for that name.
                    applicant = Applicant.challenge(minted_for) if minted_for else self._applicant(None)
                    result = self._queue(message, actor, renewal, note, applicant)
            else:
                result = self._queue(message, actor, renewal, note, self._applicant(renewal))
        except (RuleError, InputError) as exc:
            failure = ScepFailure(FailInfo.BAD_REQUEST, str(exc), header)
            # The engine's intake has kept this refusal (engine/refusals.py).
            failure.recorded = True
            raise failure from None
        if result.created:
            self._log(f"queued request {result.request.id} (transaction {header.transaction_id!r}) from {peer}")
        return result.request

    def _applicant(self, renewal) -> Applicant:
        """A RenewalReq is signed by the certificate it renews; anything else proves no name by itself."""
        return Applicant.certificate(renewal) if renewal is not None else Applicant.anonymous(self.reserved)

    def _queue(self, message: msg.PkiMessage, actor: Actor, renewal, note: dict, applicant: Applicant):
        # The engine picks the requester the applicant may take (the renewed certificate's, the CSR's).
        return self.ca.submit(message.content, source="scep", actor=actor,
                              renewal_of=renewal.id if renewal is not None else None,
                              max_queued=self.max_queued, note=note, applicant=applicant)  # fmt: skip

    def _requester_of(self, csr: x509.CertificateSigningRequest) -> str:
        """Who the engine will name as requester (the CSR's CN, else its first SAN)."""
        names = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if names:
            return str(names[0].value)
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            return str(next(iter(san)).value)
        except (x509.ExtensionNotFound, StopIteration):
            return ""

    # --------------------------------------------------------------- answers

    def _answer(self, message: msg.PkiMessage, known: Transaction) -> ScepReply:
        try:
            request = self.ca.request(known.request_id)
        except NotFoundError:
            raise ScepFailure(FailInfo.BAD_CERT_ID, "the request of this transaction is gone", message.header) from None
        return self._answer_request(message, request)

    def _answer_request(self, message: msg.PkiMessage, request: Request) -> ScepReply:
        header = message.header
        if request.status == RequestStatus.QUEUED:
            return self._reply(msg.cert_rep(self.ra, header, PkiStatus.PENDING))
        if request.status == RequestStatus.APPROVED:
            issued = self.ca.issued_certificate(request.id)
            if issued is None:
                raise ScepFailure(FailInfo.BAD_CERT_ID, f"request {request.id} has no certificate", header)
            cert, pem = issued
            if cert.revoked_at is not None:
                raise ScepFailure(FailInfo.BAD_REQUEST, f"certificate {cert.id} issued for this request has been "
                                  "revoked", header)  # fmt: skip
            return self._success(message, certs=[x509.load_pem_x509_certificate(pem)])
        reason = request.reason or "no reason given"
        raise ScepFailure(FailInfo.BAD_REQUEST, f"request {request.id} was {request.status.value}: {reason}", header)

    def _success(self, message: msg.PkiMessage, *, certs=(), crls=()) -> ScepReply:
        body = msg.cert_rep(self.ra, message.header, PkiStatus.SUCCESS, recipient=message.signer,
                            cipher=message.cipher, certs=list(certs), crls=list(crls))  # fmt: skip
        return self._reply(body)

    def _by_issuer_and_serial(self, message: msg.PkiMessage):
        header = message.header
        issuer, serial = msg.issuer_and_serial(message.content, header)
        if not msg.same_name(issuer, self.ca.issuing_cert().subject):
            raise ScepFailure(FailInfo.BAD_CERT_ID, "the issuer named is not this CA", header)
        try:
            return self.ca.certificate(f"0x{serial:x}") if serial > 0 else None
        except NotFoundError:
            return None

    def _get_cert(self, message: msg.PkiMessage) -> ScepReply:
        cert = self._by_issuer_and_serial(message)
        if cert is None:
            raise ScepFailure(FailInfo.BAD_CERT_ID, "no certificate with this serial", message.header)
        pem = self.ca.certificate_pem(cert.id)
        return self._success(message, certs=[x509.load_pem_x509_certificate(pem)])

    def _get_crl(self, message: msg.PkiMessage) -> ScepReply:
        if self._by_issuer_and_serial(message) is None:
            raise ScepFailure(FailInfo.BAD_CERT_ID, "no certificate with this serial", message.header)
        return self._success(message, crls=[self.ca.published_crl(der=True)])


class _Busy(CAError):
    """Refused for load, not for what was sent: an HTTP status the client may retry after."""

    subject: str | None = None
    """The subject of the CSR refused (for the refusal record)."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _escaped(text: str, limit: int = 400) -> str:
    shown = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}"
                    for ch in text)  # fmt: skip
    return shown if len(shown) <= limit else shown[:limit] + "…"


def _challenge_password(csr: x509.CertificateSigningRequest) -> str | None:
    try:
        value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
