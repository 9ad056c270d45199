"""The certificate authority: every operation that changes a CA home.

Each changing operation is one store transaction: the rules are checked on
state re-read inside the inter-process lock, the change and its audit record
are written together, and a revocation publishes its CRL in the same commit.
Crypto that does not depend on stored state (parsing, policy) runs before the
lock is taken so that the lock is held briefly.
"""

from __future__ import annotations

import re
import stat
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from tinydb.table import Document

from tui_ca.engine import audit as audit_log
from tui_ca.engine import records
from tui_ca.engine import repository as repo
from tui_ca.engine.crl import der_to_pem, encode_entry, sign_crl
from tui_ca.engine.csr_policy import check_and_describe, load_csr
from tui_ca.engine.errors import CAError, InputError, NoCAError, NotFoundError, RuleError, UnsafeHomeError
from tui_ca.engine.keys import dump_key, generate_key, is_encrypted, load_key
from tui_ca.engine.models import (
    Actor,
    ApproveOutcome,
    CAInfo,
    Certificate,
    CrlInfo,
    CsrDetails,
    NameFields,
    Request,
    RequestStatus,
    RevocationReason,
    SubmitResult,
)
from tui_ca.engine.profile import LeafIssuer, build_issuing, build_issuing_csr, build_name, build_root
from tui_ca.engine.reader import (
    CRL_DER,
    CRL_PEM,
    ISSUING_CERT,
    ISSUING_CSR,
    ISSUING_KEY,
    ROOT_CERT,
    ROOT_KEY,
    CAReader,
)
from tui_ca.engine.store import Transaction, id_shard

CRL_ENTRIES_DIR = "crl/entries"
DEFAULT_CA_DAYS = 3650
DEFAULT_LEAF_DAYS = 365
DEFAULT_CRL_DAYS = 7
# Queued requests older than this expire (a requester who never phoned in).
DEFAULT_QUEUE_DAYS = 30
MAX_LEAF_DAYS = 3650
MAX_REASON_CHARS = 500
MAX_REQUESTER_CHARS = 128

Passphrase = bytes | Callable[[], bytes | None] | None


@dataclass(frozen=True)
class Submission:
    """One CSR for ``submit_each``: parsed and checked by the caller, with who sent it."""

    csr: x509.CertificateSigningRequest
    details: CsrDetails
    requester: str | None = None
    actor: Actor | None = None
    renewal_of: int | None = None


def root_common_name(names: NameFields) -> str:
    """The root's CN: named after the organisation when there is one, as roots usually are."""
    return f"{names.organization or names.common_name} Root CA"


class CertificateAuthority(CAReader):
    """One CA home, with its keys. Thread-safe for the UI's workers; safe across processes."""

    def __init__(
        self,
        home: Path | str,
        *,
        clock: Callable[[], datetime] | None = None,
        actor: Actor | None = None,
        passphrase: Passphrase = None,
        serials: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(home, clock=clock)
        # Injectable so that tests and snapshots get reproducible serials; in
        # production this is cryptography's random_serial_number() (159 bits
        # from the OS CSPRNG).
        self._new_serial = serials or x509.random_serial_number
        self.actor = actor or Actor.from_environment()
        self._passphrase = passphrase
        self._keys: dict[str, object] = {}

    def _resolve_passphrase(self) -> bytes | None:
        return self._passphrase() if callable(self._passphrase) else self._passphrase

    def _check_private(self, path: Path) -> None:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise UnsafeHomeError(
                f"refusing to use {path}: other users can access it (mode {mode:04o}); run chmod 600 on it"
            )

    def signing_key(self, relpath: str = ISSUING_KEY):
        """The unlocked CA key, kept in memory only (asked for once)."""
        if relpath not in self._keys:
            path = self.home / relpath
            if not path.exists():
                raise NoCAError(f"the CA key {relpath} is not in {self.home}")
            self._check_private(path)
            data = path.read_bytes()
            self._keys[relpath] = load_key(data, self._resolve_passphrase() if is_encrypted(data) else None)
        return self._keys[relpath]

    def unlock(self) -> None:
        """Load the issuing key now (the UI asks for the passphrase up front)."""
        self._require_ca()
        self.signing_key()

    def _audit(self, txn: Transaction, meta: dict, actor: Actor, action: str, target: str, outcome: str,
               **extra) -> None:  # fmt: skip
        """Append a chained record; ``meta`` is saved by the caller's _finish."""
        seq = meta["audit_seq"] + 1
        doc = audit_log.make_record(
            seq, self.now(), actor.user, actor.address, action, target, outcome, extra, meta["audit_head"]
        )
        txn.table("audit", id_shard(seq)).insert(Document(doc, doc_id=seq))
        meta["audit_seq"], meta["audit_head"] = seq, doc["hash"]

    def _finish(self, txn: Transaction, meta: dict) -> None:
        meta["generation"] = meta.get("generation", 0) + 1
        repo.put_meta(txn, meta)

    def init(
        self,
        names: NameFields,
        *,
        days: int = DEFAULT_CA_DAYS,
        key_type: str = "ec-p256",
        base_url: str | None = None,
        external_root: bool = False,
        crl_days: int = DEFAULT_CRL_DAYS,
        queue_days: int = DEFAULT_QUEUE_DAYS,
        actor: Actor | None = None,
    ) -> CAInfo | bytes:
        """Create root + issuing CA, or (external root) return the issuing CSR PEM."""
        actor = actor or self.actor
        if self.exists() or self.awaiting_import():
            raise RuleError(f"a CA already exists in {self.home}; refusing to overwrite it")
        if not names.common_name:
            raise InputError("the CA needs a common name (--cn)")
        if names.country is not None and not re.fullmatch(r"[A-Z]{2}", names.country):
            raise InputError(f"country must be a two-letter code such as GB, not {names.country!r}")
        if not 1 <= days <= 36500:
            raise InputError(f"--days must be between 1 and 36500, not {days}")
        if base_url is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", base_url):
            raise InputError(f"--base-url must be an http:// or https:// URL, not {base_url!r}")
        passphrase = self._resolve_passphrase()
        now = self.now()
        issuing_key = generate_key(key_type)
        issuing_subject = build_name(names, with_email=False)
        if not 1 <= queue_days <= 3650:
            raise InputError(f"--queue-days must be between 1 and 3650, not {queue_days}")
        config = {"base_url": base_url.rstrip("/") if base_url else None, "crl_days": crl_days, "queue_days": queue_days,
                  "key_type": key_type, "external_root": external_root}  # fmt: skip
        with self.store.transaction() as txn:
            if self.exists() or self.awaiting_import():
                raise RuleError(f"a CA already exists in {self.home}; refusing to overwrite it")
            meta = repo.get_meta(txn)
            txn.write_blob(ISSUING_KEY, dump_key(issuing_key, passphrase), 0o600)
            if external_root:
                csr = build_issuing_csr(issuing_key, issuing_subject)
                pem = csr.public_bytes(serialization.Encoding.PEM)
                txn.write_blob(ISSUING_CSR, pem)
                repo.put_config(txn, config)
                self._audit(txn, meta, actor, "init", "issuing CA", "CSR written for an external root",
                            subject=issuing_subject.rfc4514_string())  # fmt: skip
                self._finish(txn, meta)
                return pem
            root_key = generate_key(key_type)
            root_names = NameFields(**{**names.__dict__, "common_name": root_common_name(names)})
            root = build_root(root_key, build_name(root_names), self._new_serial(),
                              now - timedelta(minutes=5), now + timedelta(days=days))  # fmt: skip
            issuing = build_issuing(issuing_key.public_key(), issuing_subject, root, root_key,
                                    self._new_serial(), now - timedelta(minutes=5),
                                    now + timedelta(days=days))  # fmt: skip
            txn.write_blob(ROOT_KEY, dump_key(root_key, passphrase), 0o600)
            txn.write_blob(ROOT_CERT, root.public_bytes(serialization.Encoding.PEM))
            txn.write_blob(ISSUING_CERT, issuing.public_bytes(serialization.Encoding.PEM))
            repo.put_config(txn, config)
            self._audit(txn, meta, actor, "init", "root and issuing CA", "created",
                        subject=issuing_subject.rfc4514_string(), key_type=key_type,
                        encrypted=passphrase is not None)  # fmt: skip
            self._keys[ISSUING_KEY] = issuing_key
            self._publish_crl(txn, meta, actor, issuing, issuing_key)
            self._finish(txn, meta)
        return self.info()

    def import_ca_cert(self, root_pem: bytes, issuing_pem: bytes, *, actor: Actor | None = None) -> CAInfo:
        """Finish an external-root setup with the certificates the other root signed."""
        actor = actor or self.actor
        if not self.awaiting_import():
            raise RuleError("no issuing-CA request is waiting for import (run 'init --external-root' first)")
        try:
            root = x509.load_pem_x509_certificate(root_pem)
            issuing = x509.load_pem_x509_certificate(issuing_pem)
        except ValueError:
            raise InputError("ROOT and ISSUING must be PEM certificates") from None
        key = self.signing_key()
        if issuing.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
                key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):  # fmt: skip
            raise RuleError("the issuing certificate does not match the key whose CSR was written")
        try:
            issuing.verify_directly_issued_by(root)
        except (ValueError, TypeError, Exception) as exc:  # InvalidSignature is not a ValueError
            raise RuleError(
                f"the issuing certificate was not signed by the given root ({exc.__class__.__name__})"
            ) from None
        try:
            constraints = issuing.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise RuleError("the issuing certificate is not a CA certificate (BasicConstraints CA:TRUE missing)")
        try:
            issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            # CRLs and issued certificates name the CA by this key identifier (AKI).
            raise RuleError("the issuing certificate lacks a subject key identifier") from None
        with self.store.transaction() as txn:
            meta = repo.get_meta(txn)
            txn.write_blob(ROOT_CERT, root.public_bytes(serialization.Encoding.PEM))
            txn.write_blob(ISSUING_CERT, issuing.public_bytes(serialization.Encoding.PEM))
            self._audit(txn, meta, actor, "import-ca", "issuing CA", "imported",
                        root=root.subject.rfc4514_string())  # fmt: skip
            self._publish_crl(txn, meta, actor, issuing, key)
            self._finish(txn, meta)
        (self.home / ISSUING_CSR).unlink()
        return self.info()

    def _normalise_requester(self, requester: str | None, details) -> str:
        if requester is not None:
            requester = requester.strip()
            if not requester:
                raise InputError("the requester name is empty")
            if len(requester) > MAX_REQUESTER_CHARS:
                raise InputError(f"the requester name is longer than {MAX_REQUESTER_CHARS} characters")
            if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in requester):
                raise InputError("the requester name contains control characters")
            return requester
        if details.common_name:
            return details.common_name
        return details.sans[0].split(":", 1)[1]

    def submit(
        self, data: bytes, *, requester: str | None = None, source: str = "cli", actor: Actor | None = None,
        renewal_of: int | None = None, max_queued: int | None = None,
    ) -> SubmitResult:  # fmt: skip
        """Queue a CSR (PEM or DER); the identical CSR while queued returns the same request."""
        return self.submit_many([(data, requester)], source=source, actor=actor, renewal_of=renewal_of,
                                max_queued=max_queued)[0]  # fmt: skip

    def submit_many(
        self, items: Sequence[tuple[bytes, str | None]], *, source: str = "cli", actor: Actor | None = None,
        renewal_of: int | None = None, max_queued: int | None = None,
    ) -> list[SubmitResult]:  # fmt: skip
        """Queue several CSRs in one transaction (imports, benchmarks). All or nothing."""
        actor = actor or self.actor
        self._require_ca()
        prepared = []
        for data, requester in items:
            csr = load_csr(data)
            details = check_and_describe(csr)
            prepared.append((csr, details, self._normalise_requester(requester, details)))
        results: list[SubmitResult] = []
        with self.store.transaction() as txn:
            meta = repo.get_meta(txn)
            for csr, details, name in prepared:
                results.append(self._submit_one(txn, meta, actor, csr, details, name, source, renewal_of, max_queued))
            if any(r.created for r in results):
                self._finish(txn, meta)
        return results

    def submit_each(self, entries: Sequence[Submission], *, source: str = "cli",
                    max_queued: int | None = None) -> list[SubmitResult | CAError]:  # fmt: skip
        """Queue CSRs of different clients in one commit (group commit for EST), each on its own.

        Unlike ``submit_many`` an entry the rules refuse does not undo the
        others: its place in the answer holds the error. Entries arrive parsed
        and checked (``check_and_describe``), so nothing is parsed twice.
        """
        self._require_ca()
        outcomes: list[SubmitResult | CAError | None] = []
        named = []
        for entry in entries:
            try:
                named.append(self._normalise_requester(entry.requester, entry.details))
                outcomes.append(None)
            except CAError as exc:
                named.append("")
                outcomes.append(exc)
        with self.store.transaction() as txn:
            meta = repo.get_meta(txn)
            for index, entry in enumerate(entries):
                if outcomes[index] is not None:
                    continue
                try:
                    # Every refusal in _submit_one comes before its first write.
                    outcomes[index] = self._submit_one(txn, meta, entry.actor or self.actor, entry.csr, entry.details,
                                                       named[index], source, entry.renewal_of, max_queued)  # fmt: skip
                except CAError as exc:
                    outcomes[index] = exc
            if any(isinstance(o, SubmitResult) and o.created for o in outcomes):
                self._finish(txn, meta)
        return [o for o in outcomes if o is not None]

    def _submit_one(self, txn, meta, actor, csr, details, requester, source, renewal_of, max_queued) -> SubmitResult:
        now = self.now()
        known = repo.index_get(txn, "csrs", details.csr_sha256)
        if known is not None:
            previous = repo.get_doc(txn, "requests", known["id"])
            if previous["status"] == RequestStatus.QUEUED:
                return SubmitResult(records.request_model(previous), created=False)
            if previous["status"] == RequestStatus.REJECTED:
                raise RuleError(f"this CSR was rejected as request {previous['id']}: {previous['reason']}")
        compromised = repo.index_get(txn, "compromised", details.spki_sha256)
        if compromised is not None:
            raise RuleError(
                f"this public key was revoked for keyCompromise (certificate {compromised['id']}); "
                "the requester must generate a new key"
            )
        entry = repo.index_get(txn, "requesters", requester.casefold()) or {}
        if entry.get("queued") is not None:
            raise RuleError(
                f"requester {requester!r} already has request {entry['queued']} in the queue; "
                "approve or reject it first"
            )
        if entry.get("active") is not None and entry["active"] != renewal_of:
            active = repo.get_doc(txn, "certs", entry["active"])
            if active is not None and records.certificate_model(active).is_active(now):
                raise RuleError(
                    f"requester {requester!r} holds active certificate {active['id']} "
                    f"(serial {active['serial']}); revoke it first, then the requester can make another request"
                )
        if max_queued is not None and meta.get("queued", 0) >= max_queued:
            raise RuleError(f"the queue is full ({max_queued} requests wait for a decision); try again later")
        request_id = meta["next_id"]
        meta["next_id"] = request_id + 1
        meta["queued"] = meta.get("queued", 0) + 1
        doc = records.request_doc(request_id, requester, details, now, actor, source, renewal_of)
        repo.insert_doc(txn, "requests", request_id, doc)
        repo.insert_doc(txn, "csr_pems", request_id, {"pem": csr.public_bytes(serialization.Encoding.PEM).decode()})
        repo.index_put(txn, "requesters", requester.casefold(), {**entry, "name": requester, "queued": request_id})
        repo.index_put(txn, "csrs", details.csr_sha256, {"id": request_id})
        self._audit(txn, meta, actor, "submit", f"request {request_id}", "queued", requester=requester,
                    source=source, spki_sha256=details.spki_sha256)  # fmt: skip
        return SubmitResult(records.request_model(doc), created=True)

    def approve(
        self, ids: Iterable[int], *, days: int | None = None, actor: Actor | None = None
    ) -> list[ApproveOutcome]:
        """Issue certificates for queued requests, in one pass and one commit."""
        actor = actor or self.actor
        self._require_ca()
        ids = list(ids)
        if days is not None and not 1 <= days <= MAX_LEAF_DAYS:
            raise InputError(f"--days must be between 1 and {MAX_LEAF_DAYS}, not {days}")
        key = self.signing_key()
        issuing = self.issuing_cert()
        outcomes: list[ApproveOutcome] = []
        renewed: list[int] = []
        with self.store.transaction() as txn:
            meta = repo.get_meta(txn)
            config = repo.get_config(txn)
            issuer = LeafIssuer(issuing, key, config.get("base_url"))
            lifetime = timedelta(days=days or config.get("leaf_days", DEFAULT_LEAF_DAYS))
            for request_id in ids:
                try:
                    cert, superseded = self._approve_one(txn, meta, actor, issuer, request_id, lifetime)
                except (RuleError, InputError) as exc:
                    outcomes.append(ApproveOutcome(request_id, error=str(exc), exit_code=exc.exit_code))
                    continue
                outcomes.append(ApproveOutcome(request_id, certificate=cert))
                if superseded is not None:
                    renewed.append(superseded)
            for old_id in renewed:
                self._revoke_doc(txn, meta, actor, old_id, RevocationReason.SUPERSEDED)
            if renewed:
                self._publish_crl(txn, meta, actor, issuing, key)
            if any(o.certificate for o in outcomes):
                self._finish(txn, meta)
        return outcomes

    def _approve_one(self, txn, meta, actor, issuer: LeafIssuer, request_id: int, lifetime: timedelta):
        doc = repo.get_doc(txn, "requests", request_id)
        if doc is None:
            raise NotFoundError(f"no request with Certificate ID {request_id}")
        if doc["status"] != RequestStatus.QUEUED:
            raise RuleError(f"request {request_id} is {doc['status']}, not queued; nothing to approve")
        now = self.now()
        entry = repo.index_get(txn, "requesters", doc["requester"].casefold()) or {}
        superseded = None
        if entry.get("active") is not None:
            active = repo.get_doc(txn, "certs", entry["active"])
            if active is not None and records.certificate_model(active).is_active(now):
                if doc.get("renewal_of") != active["id"]:
                    raise RuleError(f"requester {doc['requester']!r} holds active certificate {active['id']}; "
                                    "revoke it first")  # fmt: skip
                superseded = active["id"]
        while True:
            serial = self._new_serial()
            if repo.index_get(txn, "serials", format(serial, "x")) is None:
                break
        csr = x509.load_pem_x509_csr(repo.get_doc(txn, "csr_pems", request_id)["pem"].encode())
        cert = issuer.issue(csr, serial, now - timedelta(minutes=5), now + lifetime)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        sha256 = cert.fingerprint(hashes.SHA256()).hex()
        cert_doc = records.certificate_doc(doc, serial, sha256, cert.not_valid_before_utc, cert.not_valid_after_utc,
                                           now, actor)  # fmt: skip
        repo.insert_doc(txn, "certs", request_id, cert_doc)
        repo.insert_doc(txn, "cert_pems", request_id, {"pem": pem.decode()})
        txn.table("requests", id_shard(request_id)).update(
            {"status": RequestStatus.APPROVED.value, "decided_at": records.time_doc(now),
             "decided_by": records.actor_doc(actor)}, doc_ids=[request_id],
        )  # fmt: skip
        repo.index_put(txn, "serials", format(serial, "x"), {"id": request_id})
        repo.index_put(txn, "requesters", doc["requester"].casefold(),
                        {**entry, "name": doc["requester"], "queued": None, "active": request_id})  # fmt: skip
        meta["queued"] = max(0, meta.get("queued", 1) - 1)
        self._audit(txn, meta, actor, "approve", f"request {request_id}", "issued",
                    serial=format(serial, "x"), requester=doc["requester"], not_after=cert_doc["na"])  # fmt: skip
        return records.certificate_model(cert_doc), superseded

    def reject(self, request_id: int, reason: str, *, actor: Actor | None = None) -> Request:
        """Refuse a queued request; its ID stays burnt."""
        actor = actor or self.actor
        reason = (reason or "").strip()
        if not reason:
            raise InputError("a rejection needs a reason (--reason TEXT)")
        if len(reason) > MAX_REASON_CHARS:
            raise InputError(f"the reason is longer than {MAX_REASON_CHARS} characters")
        self._require_ca()
        with self.store.transaction() as txn:
            meta = repo.get_meta(txn)
            doc = repo.get_doc(txn, "requests", request_id)
            if doc is None:
                raise NotFoundError(f"no request with Certificate ID {request_id}")
            if doc["status"] != RequestStatus.QUEUED:
                raise RuleError(f"request {request_id} is {doc['status']}, not queued; nothing to reject")
            self._close_request(txn, meta, doc, RequestStatus.REJECTED, reason, actor)
            self._audit(txn, meta, actor, "reject", f"request {request_id}", "rejected", reason=reason,
                        requester=doc["requester"])  # fmt: skip
            self._finish(txn, meta)
        return self.request(request_id)

    def _close_request(self, txn, meta, doc, status: RequestStatus, reason: str, actor: Actor) -> None:
        now = self.now()
        txn.table("requests", id_shard(doc["id"])).update(
            {"status": status.value, "reason": reason, "decided_at": records.time_doc(now),
             "decided_by": records.actor_doc(actor)}, doc_ids=[doc["id"]],
        )  # fmt: skip
        entry = repo.index_get(txn, "requesters", doc["requester"].casefold())
        if entry is not None and entry.get("queued") == doc["id"]:
            repo.index_put(txn, "requesters", doc["requester"].casefold(), {**entry, "queued": None})
        meta["queued"] = max(0, meta.get("queued", 1) - 1)

    def expire_queue(self, max_age: timedelta | None = None, *, actor: Actor | None = None) -> list[int]:
        """Expire queued requests older than ``max_age`` (default: the CA's queue age), each audited."""
        actor = actor or self.actor
        if max_age is None:
            max_age = timedelta(days=self.config().get("queue_days", DEFAULT_QUEUE_DAYS))
        cutoff = self.now() - max_age
        stale = [r.id for r in self.requests(RequestStatus.QUEUED) if r.submitted_at < cutoff]
        if not stale:
            return []
        expired = []
        with self.store.transaction() as txn:
            meta = repo.get_meta(txn)
            for request_id in stale:
                doc = repo.get_doc(txn, "requests", request_id)
                if doc is None or doc["status"] != RequestStatus.QUEUED:
                    continue
                reason = f"expired after waiting more than {max_age.days} days"
                self._close_request(txn, meta, doc, RequestStatus.EXPIRED, reason, actor)
                self._audit(txn, meta, actor, "expire", f"request {request_id}", "expired", reason=reason)
                expired.append(request_id)
            if expired:
                self._finish(txn, meta)
        return expired

    def revoke(self, target: int | str, reason: RevocationReason = RevocationReason.UNSPECIFIED, *,
               actor: Actor | None = None) -> Certificate:  # fmt: skip
        """Revoke by Certificate ID or serial (hex) and publish a new CRL in the same commit."""
        actor = actor or self.actor
        self._require_ca()
        key = self.signing_key()
        issuing = self.issuing_cert()
        cert_id = self.certificate(target).id
        with self.store.transaction() as txn:
            meta = repo.get_meta(txn)
            self._revoke_doc(txn, meta, actor, cert_id, reason)
            self._publish_crl(txn, meta, actor, issuing, key)
            self._finish(txn, meta)
        return self.certificate(cert_id)

    def _revoke_doc(self, txn, meta, actor, cert_id: int, reason: RevocationReason) -> None:
        doc = repo.get_doc(txn, "certs", cert_id)
        if doc is None:
            raise NotFoundError(f"no certificate with Certificate ID {cert_id}")
        if doc["revoked_at"] is not None:
            raise RuleError(f"certificate {cert_id} was already revoked on {doc['revoked_at']}")
        now = self.now()
        txn.table("certs", id_shard(cert_id)).update(
            {"revoked_at": records.time_doc(now), "revoked_by": records.actor_doc(actor), "reason": reason.value},
            doc_ids=[cert_id],
        )
        txn.before_commit("crl-entries", self._refresh_crl_entries)
        txn.table("revoked", id_shard(cert_id)).insert(
            Document({"serial": doc["serial"], "at": records.time_doc(now), "code": reason.code}, doc_id=cert_id)
        )
        if reason is RevocationReason.KEY_COMPROMISE:
            repo.index_put(txn, "compromised", doc["spki"], {"id": cert_id})
        entry = repo.index_get(txn, "requesters", doc["requester"].casefold())
        if entry is not None and entry.get("active") == cert_id:
            repo.index_put(txn, "requesters", doc["requester"].casefold(), {**entry, "active": None})
        self._audit(txn, meta, actor, "revoke", f"certificate {cert_id}", f"revoked ({reason.value})",
                    serial=doc["serial"], reason=reason.value, requester=doc["requester"])  # fmt: skip

    # Each revoked shard's CRL entries are kept encoded beside it
    # (crl/entries/<shard>.der: a 4-byte count, then the DER entries), written
    # by every transaction that changes the shard, so a fresh process publishes
    # 100,000 entries by reading a few hundred small files instead of parsing
    # and re-encoding every record (bench/: cold publish was 1.2-2x openssl).

    def _encode_revoked_shard(self, txn: Transaction, shard: str) -> bytes:
        docs = (txn.shard_data(self.store.shard_path("revoked", shard)) or {}).get("revoked", {}).values()
        body = b"".join(
            encode_entry(int(doc["serial"], 16), datetime.fromisoformat(doc["at"]), doc["code"]) for doc in docs
        )
        return len(docs).to_bytes(4, "big") + body

    def _refresh_crl_entries(self, txn: Transaction) -> None:
        for shard in txn.shards("revoked"):
            if txn.is_dirty(self.store.shard_path("revoked", shard)):
                txn.write_blob(f"{CRL_ENTRIES_DIR}/{shard}.der", self._encode_revoked_shard(txn, shard))

    def _revoked_entries(self, txn: Transaction) -> tuple[list[bytes], int]:
        """The CRL's revokedCertificates content, as one DER chunk per shard, and the count."""
        chunks: list[bytes] = []
        total = 0
        for shard in txn.shards("revoked"):
            relpath = f"{CRL_ENTRIES_DIR}/{shard}.der"
            if txn.is_dirty(self.store.shard_path("revoked", shard)) or not (self.home / relpath).exists():
                blob = self._encode_revoked_shard(txn, shard)
                # A home written before these files existed heals on its next publish.
                txn.write_blob(relpath, blob)
            else:
                blob = self._parsed_blob(relpath, bytes)
            total += int.from_bytes(blob[:4], "big")
            chunks.append(blob[4:])
        return chunks, total

    def _publish_crl(self, txn: Transaction, meta: dict, actor: Actor, issuing, key) -> CrlInfo:
        config = repo.get_config(txn)
        now = self.now()
        number = meta.get("crl_number", 0) + 1
        next_update = now + timedelta(days=config.get("crl_days", DEFAULT_CRL_DAYS))
        chunks, count = self._revoked_entries(txn)
        der = sign_crl(issuing, key, number, now, next_update, chunks)
        txn.write_blob(CRL_DER, der)
        txn.write_blob(CRL_PEM, der_to_pem(der, "X509 CRL"))
        meta["crl_number"] = number
        meta["crl_this_update"] = records.time_doc(now)
        meta["crl_next_update"] = records.time_doc(next_update)
        self._audit(txn, meta, actor, "crl", f"CRL {number}", "published", entries=count,
                    next_update=meta["crl_next_update"])  # fmt: skip
        return CrlInfo(number=number, this_update=now, next_update=next_update, entries=count)

    def publish_crl(self, *, actor: Actor | None = None) -> CrlInfo:
        """Sign and publish a fresh CRL now (cron, stale CRL, admin request)."""
        actor = actor or self.actor
        self._require_ca()
        key, issuing = self.signing_key(), self.issuing_cert()
        with self.store.transaction() as txn:
            meta = repo.get_meta(txn)
            info = self._publish_crl(txn, meta, actor, issuing, key)
            self._finish(txn, meta)
        return info

    def crl(self, *, der: bool = True, republish_if_stale: bool = True) -> bytes:
        """The current CRL; re-published first if it is missing or stale."""
        self._require_ca()
        if republish_if_stale and self.crl_is_stale():
            self.publish_crl()
        return self.store.read_blob(CRL_DER if der else CRL_PEM)
