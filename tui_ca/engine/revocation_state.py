"""Revocation state that stays true: reasons re-marked, holds released, service certificates on record.

RFC 5280 §5.3.1 lets a CRL entry's reason change; the one change that matters
is to keyCompromise (a key found stolen after its certificate was superseded),
because the key must then be refused at intake. certificateHold is the one
reversible revocation: releasing it drops the entry from the next full CRL
(removeFromCRL exists only in delta CRLs, which we do not issue). Both run as
one transaction through the CA's own helpers, with the CRL published in the
same commit. The server's TLS, SCEP RA and OCSP signing certificates are recorded like
any other certificate, so they can be listed, shown and revoked.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tui_ca.engine import records
from tui_ca.engine.errors import NotFoundError, RuleError
from tui_ca.engine.models import Actor, Certificate, CsrDetails, RequestStatus, RevocationReason

if TYPE_CHECKING:
    from tui_ca.engine.operation import Operation

SERVICE_REQUESTERS = {"tls": "tui-ca server (TLS)", "ocsp": "tui-ca server (OCSP signer)",
                      "scep-ra": "tui-ca server (SCEP RA)"}  # fmt: skip


def wants_remark(current: Certificate, reason: RevocationReason) -> bool:
    """A revoke of an already revoked certificate that is a reason change to keyCompromise."""
    return (
        current.revoked_at is not None
        and reason is RevocationReason.KEY_COMPROMISE
        and current.revocation_reason is not RevocationReason.KEY_COMPROMISE
    )


def _crl_parts(ca: Any) -> tuple[Any, x509.Certificate]:
    return ca.signing_key(), ca.issuing_cert()


def remark_key_compromise(ca: Any, target: int | str, *, actor: Actor | None = None) -> Certificate:
    """Change a revoked certificate's reason to keyCompromise; its key is refused from then on."""
    ca.require_ca()
    key, issuing = _crl_parts(ca)
    cert_id = ca.certificate(target).id
    with ca._operation(actor) as op:
        txn = op.txn
        doc = txn.get_certificate(cert_id)
        if doc is None:
            raise NotFoundError(f"no certificate with Certificate ID {cert_id}")
        if doc["revoked_at"] is None:
            raise RuleError(f"certificate {cert_id} is not revoked; revoke it with reason keyCompromise")
        if doc["reason"] == RevocationReason.KEY_COMPROMISE.value:
            raise RuleError(f"certificate {cert_id} is already revoked for keyCompromise")
        previous = doc["reason"]
        txn.put_certificate({**doc, "reason": RevocationReason.KEY_COMPROMISE.value})
        txn.put_revoked({"id": cert_id, "serial": doc["serial"], "at": doc["revoked_at"],
                         "code": RevocationReason.KEY_COMPROMISE.code})  # fmt: skip
        txn.put_compromised(doc["spki"], cert_id)
        op.revocation_changed()
        op.audit("revoke", f"certificate {cert_id}", f"reason changed: {previous} -> keyCompromise",
                 serial=doc["serial"], reason=RevocationReason.KEY_COMPROMISE.value, previous=previous)  # fmt: skip
        ca._publish_crl(op, issuing, key)
    return ca.certificate(cert_id)


def unhold(ca: Any, target: int | str, *, actor: Actor | None = None) -> Certificate:
    """Release a certificateHold: the certificate is valid again and leaves the CRL published in the same commit."""
    ca.require_ca()
    key, issuing = _crl_parts(ca)
    cert_id = ca.certificate(target).id
    ca._require_role("unhold", f"certificate {cert_id}", actor)
    now = ca.now()
    with ca._operation(actor) as op:
        txn = op.txn
        doc = txn.get_certificate(cert_id)
        if doc is None:
            raise NotFoundError(f"no certificate with Certificate ID {cert_id}")
        if doc["revoked_at"] is None:
            raise RuleError(f"certificate {cert_id} is not revoked; there is no hold to release")
        if doc["reason"] != RevocationReason.CERTIFICATE_HOLD.value:
            raise RuleError(f"certificate {cert_id} was revoked for {doc['reason']}, which is final; only "
                            "certificateHold can be released")  # fmt: skip
        entry = txn.find_requester(doc["requester"]) or {}
        other = entry.get("active")
        if other is not None and other != cert_id:
            active = txn.get_certificate(other)
            if active is not None and records.certificate_model(active).is_active(now):
                raise RuleError(f"requester {doc['requester']!r} now holds certificate {other}; "
                                "revoke it before releasing this hold")  # fmt: skip
        if entry.get("queued") is not None:
            raise RuleError(f"requester {doc['requester']!r} has request {entry['queued']} in the queue; "
                            "reject it before releasing this hold")  # fmt: skip
        txn.put_certificate({**doc, "revoked_at": None, "revoked_by": None, "reason": None})
        txn.remove_revoked(cert_id)
        op.revocation_changed()
        txn.put_requester(doc["requester"], {**entry, "name": doc["requester"], "active": cert_id})
        op.audit("unhold", f"certificate {cert_id}", "hold released", serial=doc["serial"],
                 requester=doc["requester"])  # fmt: skip
        ca._publish_crl(op, issuing, key)
    return ca.certificate(cert_id)


def record_service_cert(ca: Any, op: Operation, kind: str, cert: x509.Certificate,
                        now: datetime) -> tuple[int, int | None]:  # fmt: skip
    """Store a server certificate like an issued one (ID, serial index, PEM); the one it replaces is superseded.

    Returns the new Certificate ID and the superseded one, if any; the caller
    publishes the CRL in the same operation when something was superseded.
    """
    from tui_ca.engine.csr_policy import describe_key, format_general_name, name_fields, spki_sha256

    txn, meta, actor = op.txn, op.meta, op.actor
    requester = SERVICE_REQUESTERS[kind]
    try:
        sans = tuple(format_general_name(n) for n in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value)  # fmt: skip
    except x509.ExtensionNotFound:
        sans = ()
    fields = name_fields(cert.subject)
    key_type, key_size = describe_key(cert.public_key())
    details = CsrDetails(subject=cert.subject.rfc4514_string(), subject_fields=fields, common_name=fields.common_name,
                         sans=sans, key_type=key_type, key_size=key_size, signature_valid=True,
                         spki_sha256=spki_sha256(cert.public_key()), csr_sha256="")  # fmt: skip
    cert_id = meta["next_id"]
    meta["next_id"] = cert_id + 1
    request = records.request_doc(cert_id, requester, details, now, actor, "server-setup", None)
    request.update({"status": RequestStatus.APPROVED.value, "decided_at": records.time_doc(now),
                    "decided_by": records.actor_doc(actor)})  # fmt: skip
    txn.put_request(request)
    cert_doc = records.certificate_doc(request, cert.serial_number, cert.fingerprint(hashes.SHA256()).hex(),
                                       cert.not_valid_before_utc, cert.not_valid_after_utc, now, actor)  # fmt: skip
    # Marked, so that counts of client certificates (expiring, metrics) leave the server's own out:
    # those are reported from their files, and the weekly OCSP signer would always look "expiring".
    cert_doc["service"] = kind
    txn.put_certificate(cert_doc)
    txn.put_cert_pem(cert_id, cert.public_bytes(serialization.Encoding.PEM).decode())
    txn.put_serial(cert.serial_number, cert_id)
    entry = txn.find_requester(requester) or {}
    previous = entry.get("active")
    txn.put_requester(requester, {**entry, "name": requester, "queued": None, "active": cert_id})
    superseded = None
    if previous is not None:
        old = txn.get_certificate(previous)
        if old is not None and old["revoked_at"] is None and records.certificate_model(old).is_active(now):
            ca._revoke_doc(op, previous, RevocationReason.SUPERSEDED)
            superseded = previous
    return cert_id, superseded
