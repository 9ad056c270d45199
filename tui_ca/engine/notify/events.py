"""Notification events: plain JSON documents, built from what an operation did.

An event carries our facts (IDs, serials, dates, actions) and the requester's
text as data. Its ``title`` is made of our words only, so it can be used as a
mail subject or a chat line without quoting anything a client sent.
"""

from __future__ import annotations

from datetime import datetime

from tui_ca.engine.models import Actor, Certificate, Request

EVENT_VERSION = 1


def make_event(kind: str, at: datetime, actor: Actor | None, title: str, **fields: object) -> dict:
    """A new event (``event_id`` unique, so a receiver can drop a retried duplicate)."""
    import secrets  # here: every operation imports this module, few make an event

    return {
        "version": EVENT_VERSION, "event_id": secrets.token_hex(16), "kind": kind, "at": at.isoformat(),
        "title": title, "actor": None if actor is None else {"user": actor.user, "address": actor.address},
        **fields,
    }  # fmt: skip


def queued_event(request: Request, at: datetime, actor: Actor | None) -> dict:
    d = request.details
    return make_event("queued", at, actor, f"request {request.id} waits for approval", id=request.id,
                      requester=request.requester, subject=d.subject, sans=list(d.sans), key_type=d.key_type,
                      spki_sha256=d.spki_sha256, source=request.source)  # fmt: skip


def refused_event(reason: str, source: str, at: datetime, actor: Actor | None) -> dict:
    return make_event("refused", at, actor, f"a request via {source} was refused", reason=reason, source=source)


def approved_event(cert: Certificate, at: datetime, actor: Actor | None) -> dict:
    return make_event("approved", at, actor, f"request {cert.id} approved", id=cert.id, requester=cert.requester,
                      serial=cert.serial_hex, not_after=cert.not_after.isoformat())  # fmt: skip


def rejected_event(request: Request, at: datetime, actor: Actor | None) -> dict:
    return make_event("rejected", at, actor, f"request {request.id} rejected", id=request.id,
                      requester=request.requester, reason=request.reason)  # fmt: skip


def revoked_event(cert: Certificate, at: datetime, actor: Actor | None) -> dict:
    reason = cert.revocation_reason.value if cert.revocation_reason else None
    return make_event("revoked", at, actor, f"certificate {cert.id} revoked", id=cert.id, requester=cert.requester,
                      serial=cert.serial_hex, reason=reason)  # fmt: skip


def expiry_event(report: dict, at: datetime) -> dict:
    """The daily notice; ``report`` is :func:`tui_ca.engine.expiry.report_json`."""
    return make_event("expiry", at, None, f"{len(report['items'])} item(s) end within {report['days']} days",
                      report=report)  # fmt: skip


def trial_event(at: datetime, actor: Actor | None) -> dict:
    return make_event("test", at, actor, "test notification")
