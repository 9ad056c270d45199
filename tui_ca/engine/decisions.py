"""Decisions on requests and certificates: approve, reject, expire, revoke."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tui_ca.engine import clock, records, revocation_state
from tui_ca.engine.approval_policy import ApprovalPolicy
from tui_ca.engine.authority import DEFAULT_LEAF_DAYS, DEFAULT_QUEUE_DAYS, MAX_LEAF_DAYS, MAX_REASON_CHARS
from tui_ca.engine.errors import InputError, NotFoundError, RuleError, TokenError
from tui_ca.engine.governance import Governance, approvals_needed_for_doc
from tui_ca.engine.models import Actor, ApproveOutcome, Certificate, Request, RequestStatus, RevocationReason
from tui_ca.engine.operation import Operation
from tui_ca.engine.profile import LeafIssuer
from tui_ca.engine.publishing import Publishing


class Decisions(Governance, Publishing):
    def approve(
        self, ids: Iterable[int], *, days: int | None = None, actor: Actor | None = None
    ) -> list[ApproveOutcome]:
        """Approve queued requests, in one pass and one commit.

        Under a K-of-N policy an approval that does not reach K is recorded on
        the request (outcome ``pending``); the one that reaches it issues the
        certificate in the same transaction.
        """
        self._require_ca()
        ids = list(ids)
        if days is not None and not 1 <= days <= MAX_LEAF_DAYS:
            raise InputError(f"--days must be between 1 and {MAX_LEAF_DAYS}, not {days}")
        self._require_role("approve", "requests " + " ".join(map(str, ids)), actor)
        policy = self.approval_policy()
        key = self.signing_key()
        issuing = self.issuing_cert()
        outcomes: list[ApproveOutcome] = []
        renewed: list[int] = []
        with self._operation(actor) as op:
            clock.check_can_issue(self, op.meta)
            config = op.txn.config()
            issuer = LeafIssuer(issuing, key, config.get("base_url"))
            lifetime = timedelta(days=days or config.get("leaf_days", DEFAULT_LEAF_DAYS))
            for request_id in ids:
                try:
                    cert, superseded, approvers, needed = self._approve_one(op, issuer, request_id, lifetime, policy)
                except TokenError:
                    raise  # not this request's refusal: the token is gone, and the whole pass is undone
                except (RuleError, InputError) as exc:
                    outcomes.append(ApproveOutcome(request_id, error=str(exc), refusal=type(exc)))
                    continue
                warning = None if cert is None else clock.cut_short_warning(
                    cert.not_after, self.now() + lifetime, issuing.not_valid_after_utc)  # fmt: skip
                outcomes.append(ApproveOutcome(request_id, certificate=cert, approvals=approvers, needed=needed,
                                               warning=warning))  # fmt: skip
                if superseded is not None:
                    renewed.append(superseded)
            for old_id in renewed:
                self._revoke_doc(op, old_id, RevocationReason.SUPERSEDED)
            if renewed:
                self._publish_crl(op, issuing, key)
        return outcomes

    def _approve_one(self, op: Operation, issuer: LeafIssuer, request_id: int, lifetime: timedelta,
                     policy: ApprovalPolicy) -> tuple[Certificate | None, int | None, tuple[str, ...], int]:  # fmt: skip
        txn = op.txn
        doc = txn.get_request(request_id)
        if doc is None:
            raise NotFoundError(f"no request with Certificate ID {request_id}")
        if doc["status"] != RequestStatus.QUEUED:
            raise RuleError(f"request {request_id} is {doc['status']}, not queued; nothing to approve")
        now = self.now()
        entry = txn.find_requester(doc["requester"]) or {}
        superseded = None
        if entry.get("active") is not None:
            active = txn.get_certificate(entry["active"])
            if active is not None and records.certificate_model(active).is_active(now):
                if doc.get("renewal_of") != active["id"]:
                    raise RuleError(f"requester {doc['requester']!r} holds active certificate {active['id']}; "
                                    "revoke it first")  # fmt: skip
                superseded = active["id"]
        needed = approvals_needed_for_doc(policy, doc)
        approvals = list(doc.get("approvals") or [])
        if any(given["u"] == op.actor.user for given in approvals):
            raise RuleError(f"{op.actor.user} has already approved request {request_id}; it needs "
                            f"{needed - len(approvals)} more approval(s) from other admins")  # fmt: skip
        approvals.append({"u": op.actor.user, "a": op.actor.address, "at": records.time_doc(now)})
        approvers = tuple(given["u"] for given in approvals)
        if len(approvals) < needed:
            txn.put_request({**doc, "approvals": approvals})
            op.audit("approve", f"request {request_id}", f"approval {len(approvals)} of {needed}",
                     requester=doc["requester"], approvers=list(approvers))  # fmt: skip
            return None, None, approvers, needed
        while True:
            serial = self._new_serial()
            if txn.find_serial(serial) is None:
                break
        csr_pem = txn.get_csr_pem(request_id)
        if csr_pem is None:
            raise RuleError(f"the CSR of request {request_id} is missing from the store; run 'tui-ca check'")
        cert = issuer.issue(x509.load_pem_x509_csr(csr_pem.encode()), serial, now - timedelta(minutes=5),
                            now + lifetime)  # fmt: skip
        pem = cert.public_bytes(serialization.Encoding.PEM)
        sha256 = cert.fingerprint(hashes.SHA256()).hex()
        cert_doc = records.certificate_doc(doc, serial, sha256, cert.not_valid_before_utc, cert.not_valid_after_utc,
                                           now, op.actor)  # fmt: skip
        txn.put_certificate(cert_doc)
        txn.put_cert_pem(request_id, pem.decode())
        txn.put_request({**doc, "status": RequestStatus.APPROVED.value, "decided_at": records.time_doc(now),
                         "decided_by": records.actor_doc(op.actor), "approvals": approvals})  # fmt: skip
        txn.put_serial(serial, request_id)
        txn.put_requester(doc["requester"], {**entry, "name": doc["requester"], "queued": None, "active": request_id})
        op.meta["queued"] = max(0, op.meta.get("queued", 1) - 1)
        op.audit("approve", f"request {request_id}", "issued", serial=format(serial, "x"),
                 requester=doc["requester"], not_after=cert_doc["na"], approvers=list(approvers))  # fmt: skip
        return records.certificate_model(cert_doc), superseded, approvers, needed

    def reject(self, request_id: int, reason: str, *, actor: Actor | None = None) -> Request:
        """Refuse a queued request; its ID stays burnt."""
        reason = (reason or "").strip()
        if not reason:
            raise InputError("a rejection needs a reason (--reason TEXT)")
        if len(reason) > MAX_REASON_CHARS:
            raise InputError(f"the reason is longer than {MAX_REASON_CHARS} characters")
        self._require_ca()
        self._require_role("reject", f"request {request_id}", actor)
        with self._operation(actor) as op:
            doc = op.txn.get_request(request_id)
            if doc is None:
                raise NotFoundError(f"no request with Certificate ID {request_id}")
            if doc["status"] != RequestStatus.QUEUED:
                raise RuleError(f"request {request_id} is {doc['status']}, not queued; nothing to reject")
            closed = self._close_request(op, doc, RequestStatus.REJECTED, reason)
            op.audit("reject", f"request {request_id}", "rejected", reason=reason, requester=doc["requester"])
        # Built from the committed record, not re-read: nothing after the commit can fail.
        return records.request_model(closed)

    def _close_request(self, op: Operation, doc: dict, status: RequestStatus, reason: str) -> dict:
        now = self.now()
        closed = {**doc, "status": status.value, "reason": reason, "decided_at": records.time_doc(now),
                  "decided_by": records.actor_doc(op.actor)}  # fmt: skip
        op.txn.put_request(closed)
        entry = op.txn.find_requester(doc["requester"])
        if entry is not None and entry.get("queued") == doc["id"]:
            op.txn.put_requester(doc["requester"], {**entry, "queued": None})
        op.meta["queued"] = max(0, op.meta.get("queued", 1) - 1)
        return closed

    def expire_queue(self, max_age: timedelta | None = None, *, actor: Actor | None = None) -> list[int]:
        """Expire queued requests older than ``max_age`` (default: the CA's queue age), each audited."""
        if max_age is None:
            max_age = timedelta(days=self.config().get("queue_days", DEFAULT_QUEUE_DAYS))
        cutoff = self.now() - max_age
        # Only the queue is read (the store finds queued requests by status), and
        # no model is built: a start-up on 100,000 decided requests stays quick.
        stale = [doc["id"] for doc in self.store.view().iter_requests(status=RequestStatus.QUEUED.value)
                 if datetime.fromisoformat(doc["at"]) < cutoff]  # fmt: skip
        if not stale:
            return []
        expired = []
        with self._operation(actor) as op:
            for request_id in stale:
                doc = op.txn.get_request(request_id)
                if doc is None or doc["status"] != RequestStatus.QUEUED:
                    continue
                reason = f"expired after waiting more than {max_age.days} days"
                self._close_request(op, doc, RequestStatus.EXPIRED, reason)
                op.audit("expire", f"request {request_id}", "expired", reason=reason)
                expired.append(request_id)
        return expired

    def revoke(self, target: int | str, reason: RevocationReason = RevocationReason.UNSPECIFIED, *,
               actor: Actor | None = None) -> Certificate:  # fmt: skip
        """Revoke by Certificate ID or serial (hex) and publish a new CRL in the same commit."""
        self._require_ca()
        current = self.certificate(target)
        cert_id = current.id
        self._require_role("revoke", f"certificate {cert_id}", actor)
        if revocation_state.wants_remark(current, reason):
            return revocation_state.remark_key_compromise(self, cert_id, actor=actor)
        key = self.signing_key()
        issuing = self.issuing_cert()
        with self._operation(actor) as op:
            revoked = self._revoke_doc(op, cert_id, reason)
            self._publish_crl(op, issuing, key)
        return records.certificate_model(revoked)

    def unhold(self, target: int | str, *, actor: Actor | None = None) -> Certificate:
        """Release a certificateHold; the certificate leaves the CRL published in the same commit."""
        return revocation_state.unhold(self, target, actor=actor)

    def _revoke_doc(self, op: Operation, cert_id: int, reason: RevocationReason) -> dict:
        txn = op.txn
        doc = txn.get_certificate(cert_id)
        if doc is None:
            raise NotFoundError(f"no certificate with Certificate ID {cert_id}")
        if doc["revoked_at"] is not None:
            raise RuleError(f"certificate {cert_id} was already revoked on {doc['revoked_at']}")
        now = self.now()
        revoked = {**doc, "revoked_at": records.time_doc(now), "revoked_by": records.actor_doc(op.actor),
                   "reason": reason.value}  # fmt: skip
        txn.put_certificate(revoked)
        txn.put_revoked({"id": cert_id, "serial": doc["serial"], "at": records.time_doc(now), "code": reason.code})
        op.revocation_changed()
        if reason is RevocationReason.KEY_COMPROMISE:
            txn.put_compromised(doc["spki"], cert_id)
        entry = txn.find_requester(doc["requester"])
        if entry is not None and entry.get("active") == cert_id:
            txn.put_requester(doc["requester"], {**entry, "active": None})
        op.audit("revoke", f"certificate {cert_id}", f"revoked ({reason.value})", serial=doc["serial"],
                 reason=reason.value, requester=doc["requester"])  # fmt: skip
        return revoked
