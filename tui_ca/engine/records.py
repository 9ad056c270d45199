"""Conversions between stored documents (plain JSON) and the model dataclasses.

Keys are short because they repeat in every document of every shard.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from tui_ca.engine.channels import stored_channel

if TYPE_CHECKING:
    # The models (dataclasses, which import inspect) are built only by the
    # functions that return them: show and list work on the plain documents.
    from tui_ca.engine.models import Actor, Certificate, CsrDetails, NameFields, Refusal, Request

_FIELD_KEYS = ("country", "state", "locality", "organization", "org_unit", "common_name", "email")


def actor_doc(actor: Actor | None) -> dict | None:
    return None if actor is None else {"u": actor.user, "a": actor.address}


def actor_model(doc: dict | None) -> Actor | None:
    return None if doc is None else _required_actor(doc)


def time_doc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def time_model(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _required_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _required_actor(doc: dict) -> Actor:
    from tui_ca.engine.models import Actor

    return Actor(user=doc["u"], address=doc.get("a"))


def fields_doc(fields: NameFields) -> dict:
    return {key: value for key in _FIELD_KEYS if (value := getattr(fields, key)) is not None}


def request_doc(request_id: int, requester: str, details: CsrDetails, at: datetime,
                by: Actor, source: str, renewal_of: int | None) -> dict:  # fmt: skip
    return {
        "id": request_id, "requester": requester, "status": "queued",
        "subject": details.subject, "fields": fields_doc(details.subject_fields), "sans": list(details.sans),
        "key_type": details.key_type, "key_size": details.key_size, "spki": details.spki_sha256,
        "csr_sha": details.csr_sha256, "at": time_doc(at), "by": actor_doc(by), "source": source,
        "decided_at": None, "decided_by": None, "reason": None, "renewal_of": renewal_of,
    }  # fmt: skip


def request_model(doc: dict) -> Request:
    from tui_ca.engine.models import Actor, CsrDetails, NameFields, Request, RequestStatus

    fields = NameFields(**doc.get("fields", {}))
    details = CsrDetails(
        subject=doc["subject"], subject_fields=fields, common_name=fields.common_name, sans=tuple(doc["sans"]),
        key_type=doc["key_type"], key_size=doc["key_size"], signature_valid=True, spki_sha256=doc["spki"],
        csr_sha256=doc["csr_sha"],
    )  # fmt: skip
    return Request(
        id=doc["id"], requester=doc["requester"], status=RequestStatus(doc["status"]), details=details,
        submitted_at=_required_time(doc["at"]), submitted_by=_required_actor(doc["by"]),
        source=doc["source"], decided_at=time_model(doc.get("decided_at")),
        decided_by=actor_model(doc.get("decided_by")), reason=doc.get("reason"), renewal_of=doc.get("renewal_of"),
        approvals=tuple(Actor(user=given["u"], address=given.get("a")) for given in doc.get("approvals") or ()),
        note=dict(doc.get("note") or {}), via=stored_channel(doc).value,
    )  # fmt: skip


def certificate_doc(request: dict, serial: int, sha256: str, not_before: datetime, not_after: datetime,
                    at: datetime, by: Actor) -> dict:  # fmt: skip
    return {
        "id": request["id"], "requester": request["requester"], "serial": format(serial, "x"),
        "subject": request["subject"], "cn": request.get("fields", {}).get("common_name"), "sans": request["sans"],
        "key_type": request["key_type"], "spki": request["spki"], "sha256": sha256, "nb": time_doc(not_before),
        "na": time_doc(not_after), "at": time_doc(at), "by": actor_doc(by), "revoked_at": None,
        "revoked_by": None, "reason": None,
    }  # fmt: skip


def certificate_model(doc: dict) -> Certificate:
    from tui_ca.engine.models import Certificate, RevocationReason

    reason = doc.get("reason")
    return Certificate(
        id=doc["id"], requester=doc["requester"], serial=int(doc["serial"], 16), subject=doc["subject"],
        common_name=doc.get("cn"), sans=tuple(doc["sans"]), key_type=doc["key_type"], spki_sha256=doc["spki"],
        sha256=doc["sha256"], not_before=_required_time(doc["nb"]), not_after=_required_time(doc["na"]),
        issued_at=_required_time(doc["at"]), issued_by=_required_actor(doc["by"]),
        revoked_at=time_model(doc.get("revoked_at")), revoked_by=actor_model(doc.get("revoked_by")),
        revocation_reason=RevocationReason(reason) if reason else None,
    )  # fmt: skip


# Plain dicts for machine-readable listings, straight from stored documents:
# the same fields and values as the models' dataclasses turned into JSON,
# without building a model (dataclasses.asdict deep-copies every field).


def _actor_json(doc: dict | None) -> dict | None:
    return None if doc is None else {"user": doc["u"], "address": doc.get("a")}


def request_json(doc: dict) -> dict:
    fields = doc.get("fields", {})
    return {
        "id": doc["id"], "requester": doc["requester"], "status": doc["status"],
        "details": {
            "subject": doc["subject"], "subject_fields": {key: fields.get(key) for key in _FIELD_KEYS},
            "common_name": fields.get("common_name"), "sans": list(doc["sans"]), "key_type": doc["key_type"],
            "key_size": doc["key_size"], "signature_valid": True, "spki_sha256": doc["spki"],
            "csr_sha256": doc["csr_sha"],
        },
        "submitted_at": doc["at"], "submitted_by": _actor_json(doc["by"]), "source": doc["source"],
        "decided_at": doc.get("decided_at"), "decided_by": _actor_json(doc.get("decided_by")),
        "reason": doc.get("reason"), "renewal_of": doc.get("renewal_of"),
        "approvals": [_actor_json(given) for given in doc.get("approvals") or ()],
        "note": dict(doc.get("note") or {}), "via": stored_channel(doc).value,
    }  # fmt: skip


def certificate_status(doc: dict, now_text: str) -> str:
    """valid / revoked / expired from the stored fields (stored times are UTC ISO text of one format)."""
    if doc.get("revoked_at") is not None:
        return "revoked"
    return "expired" if doc["na"] <= now_text else "valid"


def certificate_json(doc: dict, now_text: str) -> dict:
    return {
        "id": doc["id"], "requester": doc["requester"], "serial": doc["serial"], "subject": doc["subject"],
        "common_name": doc.get("cn"), "sans": list(doc["sans"]), "key_type": doc["key_type"],
        "spki_sha256": doc["spki"], "sha256": doc["sha256"], "not_before": doc["nb"], "not_after": doc["na"],
        "issued_at": doc["at"], "issued_by": _actor_json(doc["by"]), "revoked_at": doc.get("revoked_at"),
        "revoked_by": _actor_json(doc.get("revoked_by")), "revocation_reason": doc.get("reason"),
        "status": certificate_status(doc, now_text),
    }  # fmt: skip


# Caps on what a refusal record keeps of client-supplied text: a flood of
# hostile submissions stays a bounded number of small records.
REFUSAL_TEXT_CAPS = {"reason": 300, "user": 64, "address": 64, "requester": 128, "subject": 200, "source": 16}


def _capped(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def refusal_doc(refusal: Refusal) -> dict:
    caps = REFUSAL_TEXT_CAPS
    return {
        "at": time_doc(refusal.at), "src": _capped(refusal.source, caps["source"]),
        "why": _capped(refusal.reason, caps["reason"]), "u": _capped(refusal.user, caps["user"]),
        "a": _capped(refusal.address, caps["address"]), "req": _capped(refusal.requester, caps["requester"]),
        "subj": _capped(refusal.subject, caps["subject"]),
    }  # fmt: skip


def refusal_model(doc: dict) -> Refusal:
    from tui_ca.engine.models import Refusal

    return Refusal(
        at=_required_time(doc["at"]), source=str(doc.get("src") or "?"), reason=str(doc.get("why") or ""),
        user=doc.get("u"), address=doc.get("a"), requester=doc.get("req"), subject=doc.get("subj"),
        seq=int(doc.get("seq") or 0),
    )  # fmt: skip
