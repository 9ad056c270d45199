"""Intake: CSRs checked against the policy, then queued as requests with their Certificate IDs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tui_ca.engine import records
from tui_ca.engine.applicant import ADMIN, Applicant, RequesterNotAllowed, may_follow
from tui_ca.engine.authority import AuthorityBase
from tui_ca.engine.channels import Channel, stored_channel
from tui_ca.engine.csr_policy import check_and_describe, load_csr
from tui_ca.engine.errors import CAError, RuleError
from tui_ca.engine.models import Actor, CsrDetails, Refusal, RequestStatus, SubmitResult
from tui_ca.engine.operation import Operation
from tui_ca.engine.refusals import record_refusals, refusal_of, refusals_recorded, worth_recording


@dataclass(frozen=True)
class Submission:
    """One CSR for ``submit_each``: parsed and checked by the caller, with who sent it."""

    csr: x509.CertificateSigningRequest
    """The parsed CSR."""
    details: CsrDetails
    """What ``check_and_describe`` found in it."""
    requester: str | None = None
    """The requester named by the client, else the CSR's."""
    actor: Actor | None = None
    """Who sent it (the client's address, its EST user)."""
    renewal_of: int | None = None
    """The certificate a re-enrollment renews."""
    note: dict | None = None
    """How it arrived (SCEP transaction ID and the like)."""
    applicant: Applicant = ADMIN
    """Who authenticated (the server always says; the admin may name any requester)."""


class Intake(AuthorityBase):
    def _normalise_requester(self, requester: str | None, details: CsrDetails, applicant: Applicant = ADMIN) -> str:
        # A name taken from the CSR is checked like one given with --requester (names.py),
        # and only a name the applicant's credentials cover is taken (applicant.py).
        return applicant.choose(requester, details)

    def submit(
        self, data: bytes, *, requester: str | None = None, source: str = "cli", actor: Actor | None = None,
        renewal_of: int | None = None, max_queued: int | None = None, note: dict | None = None,
        applicant: Applicant = ADMIN,
    ) -> SubmitResult:  # fmt: skip
        """Queue a CSR (PEM or DER); the identical CSR while queued returns the same request.

        ``note``: how the request arrived (a SCEP transaction ID, "challenge
        matched"), kept on the request and in the submit's audit record.
        ``applicant``: who authenticated, which decides the requester names it may take.
        """
        return self.submit_many([(data, requester)], source=source, actor=actor, renewal_of=renewal_of,
                                max_queued=max_queued, note=note, applicant=applicant)[0]  # fmt: skip

    @refusals_recorded
    def submit_many(
        self, items: Sequence[tuple[bytes, str | None]], *, source: str = "cli", actor: Actor | None = None,
        renewal_of: int | None = None, max_queued: int | None = None, note: dict | None = None,
        applicant: Applicant = ADMIN,
    ) -> list[SubmitResult]:  # fmt: skip
        """Queue several CSRs in one transaction (imports, benchmarks). All or nothing."""
        self._require_ca()
        allow_wildcards = bool(self.config().get("allow_wildcards"))
        applicant.check_renewal(renewal_of)
        prepared = []
        for data, requester in items:
            csr = load_csr(data)
            details = check_and_describe(csr, allow_wildcard=allow_wildcards)
            prepared.append((csr, details, self._normalise_requester(requester, details, applicant)))
        with self._operation(actor) as op:
            _look_ahead(op, [(details, name) for _, details, name in prepared])
            return [self._submit_one(op, csr, details, name, source, renewal_of, max_queued, note, applicant)
                    for csr, details, name in prepared]  # fmt: skip

    def record_refusal(self, reason: str, *, source: str, actor: Actor | None = None, requester: str | None = None,
                       subject: str | None = None) -> None:  # fmt: skip
        """Keep a submission that a face refused before it reached the engine (rate limit, bad body); never raises."""
        who = actor or self.actor
        record_refusals(self, [Refusal(at=self.now(), source=source, reason=reason, user=who.user,
                                       address=who.address, requester=requester, subject=subject)])  # fmt: skip

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
                entry.applicant.check_renewal(entry.renewal_of)
                named.append(self._normalise_requester(entry.requester, entry.details, entry.applicant))
                outcomes.append(None)
            except CAError as exc:
                named.append("")
                outcomes.append(exc)
        with self._operation() as op:
            _look_ahead(op, [(e.details, named[i]) for i, e in enumerate(entries) if outcomes[i] is None])
            for index, entry in enumerate(entries):
                if outcomes[index] is not None:
                    continue
                # Every refusal in _submit_one comes before its first write, and
                # each entry's audit record names its own client.
                op.actor = entry.actor or self.actor
                try:
                    outcomes[index] = self._submit_one(op, entry.csr, entry.details, named[index], source,
                                                       entry.renewal_of, max_queued, entry.note,
                                                       entry.applicant)  # fmt: skip
                except CAError as exc:
                    outcomes[index] = exc
        # After the commit, in a transaction of their own: the accepted entries are stored by now.
        record_refusals(self, [
            refusal_of(self, outcome, source, entry.actor, requester=entry.requester, subject=entry.details.subject)
            for entry, outcome in zip(entries, outcomes, strict=True)
            if isinstance(outcome, CAError) and worth_recording(outcome)
        ])  # fmt: skip
        return [o for o in outcomes if o is not None]

    def _submit_one(self, op: Operation, csr: x509.CertificateSigningRequest, details: CsrDetails, requester: str,
                    source: str, renewal_of: int | None, max_queued: int | None,
                    note: dict | None = None, applicant: Applicant = ADMIN) -> SubmitResult:  # fmt: skip
        txn, meta, now = op.txn, op.meta, self.now()
        own = applicant.owns(requester)
        known = txn.find_csr(details.csr_sha256)
        if known is not None:
            previous = txn.get_request(known)
            if previous is not None and previous["status"] in (RequestStatus.QUEUED, RequestStatus.REJECTED):
                if not may_follow(applicant, previous):
                    raise RequesterNotAllowed(
                        f"this CSR is request {previous['id']} of requester {previous['requester']!r}, sent through "
                        f"another channel ({stored_channel(previous).value})",
                        public="this CSR belongs to a request of another requester",
                    )
            if previous is not None and previous["status"] == RequestStatus.QUEUED:
                return SubmitResult(records.request_model(previous), created=False)
            if previous is not None and previous["status"] == RequestStatus.REJECTED:
                raise RuleError(f"this CSR was rejected as request {previous['id']}: {previous['reason']}")
        compromised = txn.find_compromised(details.spki_sha256)
        if compromised is not None:
            raise RuleError(
                f"this public key was revoked for keyCompromise (certificate {compromised}); "
                "the requester must generate a new key",
                public=None if applicant.channel is Channel.ADMIN else
                "this public key was revoked for keyCompromise; the requester must generate a new key",
            )  # fmt: skip
        entry = txn.find_requester(requester) or {}
        if not applicant.authenticated:
            self._refuse_owned_name(txn, requester, entry, applicant, now)
        if entry.get("queued") is not None:
            raise RuleError(
                f"requester {requester!r} already has request {entry['queued']} in the queue; "
                "approve or reject it first",
                public=None if own else f"requester {requester!r} already has a request waiting for a decision",
            )
        if entry.get("active") is not None and entry["active"] != renewal_of:
            active = txn.get_certificate(entry["active"])
            if active is not None and records.certificate_model(active).is_active(now):
                raise RuleError(
                    f"requester {requester!r} holds active certificate {active['id']} "
                    f"(serial {active['serial']}); revoke it first, then the requester can make another request",
                    public=None if own else f"requester {requester!r} holds an active certificate; it must be "
                    "revoked before another request",
                )  # fmt: skip
        if max_queued is not None and meta.get("queued", 0) >= max_queued:
            raise RuleError(f"the queue is full ({max_queued} requests wait for a decision); try again later")
        request_id = meta["next_id"]
        meta["next_id"] = request_id + 1
        meta["queued"] = meta.get("queued", 0) + 1
        doc = records.request_doc(request_id, requester, details, now, op.actor, source, renewal_of)
        doc["via"] = applicant.channel.value
        if note:
            doc["note"] = dict(note)
        txn.put_request(doc)
        txn.put_csr_pem(request_id, csr.public_bytes(serialization.Encoding.PEM).decode())
        txn.put_requester(requester, {**entry, "name": requester, "queued": request_id})
        txn.put_csr(details.csr_sha256, request_id)
        op.audit("submit", f"request {request_id}", "queued", requester=requester, source=source,
                 spki_sha256=details.spki_sha256, **(note or {}))  # fmt: skip
        return SubmitResult(records.request_model(doc), created=True)

    @staticmethod
    def _refuse_owned_name(txn: Any, requester: str, entry: dict, applicant: Applicant, now: datetime) -> None:
        """An anonymous client may not take a name an EST user owns, or one held through an authenticated channel."""
        generic = f"the requester name {requester!r} belongs to an authenticated client; enroll with its credentials"
        if applicant.reserved.matches(requester):
            raise RequesterNotAllowed(f"requester {requester!r} belongs to an EST user; an anonymous client may "
                                      "not use it", public=generic)  # fmt: skip
        held = []
        if entry.get("queued") is not None:
            held.append(("request", txn.get_request(entry["queued"])))
        if entry.get("active") is not None:
            cert = txn.get_certificate(entry["active"])
            if cert is not None and records.certificate_model(cert).is_active(now):
                held.append(("certificate", txn.get_request(entry["active"])))
        for kind, doc in held:
            if doc is not None and stored_channel(doc) is not Channel.ANONYMOUS:
                raise RequesterNotAllowed(f"requester {requester!r} holds {kind} {doc['id']}, sent through an "
                                          f"authenticated channel ({stored_channel(doc).value}); an anonymous client "
                                          "may not use the name", public=generic)  # fmt: skip


def _look_ahead(op: Operation, items: list[tuple[CsrDetails, str]]) -> None:
    """Tell a store that can use it which index entries the submissions will look up (one round trip, not three each)."""
    prefetch = getattr(op.txn, "prefetch_intake", None)
    if prefetch is not None and len(items) > 1:
        prefetch([d.csr_sha256 for d, _ in items], [d.spki_sha256 for d, _ in items], [name for _, name in items])
