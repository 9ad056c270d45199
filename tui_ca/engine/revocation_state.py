"""Revocation state that stays true: reasons re-marked, holds released, service certificates on record.

RFC 5280 §5.3.1 lets a CRL entry's reason change; the one change that matters
is to keyCompromise (a key found stolen after its certificate was superseded),
because the key must then be refused at intake. certificateHold is the one
reversible revocation: releasing it drops the entry from the next full CRL
(removeFromCRL exists only in delta CRLs, which we do not issue). Both run as
one transaction through the CA's own helpers, with the CRL published in the
same commit. The server's TLS and OCSP signing certificates are recorded like
any other certificate, so they can be listed, shown and revoked.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tui_ca.engine import records
from tui_ca.engine import repository as repo
from tui_ca.engine.errors import NotFoundError, RuleError
from tui_ca.engine.models import Actor, Certificate, CsrDetails, RequestStatus, RevocationReason

if TYPE_CHECKING:
    from tui_ca.engine.ca import CertificateAuthority

SERVICE_REQUESTERS = {"tls": "tui-ca server (TLS)", "ocsp": "tui-ca server (OCSP signer)"}


def wants_remark(current: Certificate, reason: RevocationReason) -> bool:
    """A revoke of an already revoked certificate that is a reason change to keyCompromise."""
    return (
        current.revoked_at is not None
        and reason is RevocationReason.KEY_COMPROMISE
        and current.revocation_reason is not RevocationReason.KEY_COMPROMISE
    )


def _crl_parts(ca: CertificateAuthority) -> tuple[Any, x509.Certificate]:
    return ca.signing_key(), ca.issuing_cert()


def remark_key_compromise(ca: CertificateAuthority, target: int | str, *, actor: Actor | None = None) -> Certificate:
    """Change a revoked certificate's reason to keyCompromise; its key is refused from then on."""
    actor = actor or ca.actor
    ca.require_ca()
    key, issuing = _crl_parts(ca)
    cert_id = ca.certificate(target).id
    with ca.store.transaction() as txn:
        meta = repo.get_meta(txn)
        doc = repo.get_doc(txn, "certs", cert_id)
        if doc is None:
            raise NotFoundError(f"no certificate with Certificate ID {cert_id}")
        if doc["revoked_at"] is None:
            raise RuleError(f"certificate {cert_id} is not revoked; revoke it with reason keyCompromise")
        if doc["reason"] == RevocationReason.KEY_COMPROMISE.value:
            raise RuleError(f"certificate {cert_id} is already revoked for keyCompromise")
        previous = doc["reason"]
        repo.update_doc(txn, "certs", cert_id, {"reason": RevocationReason.KEY_COMPROMISE.value})
        repo.update_doc(txn, "revoked", cert_id, {"code": RevocationReason.KEY_COMPROMISE.code})
        txn.before_commit("crl-entries", ca._refresh_crl_entries)
        repo.index_put(txn, "compromised", doc["spki"], {"id": cert_id})
        ca._audit(txn, meta, actor, "revoke", f"certificate {cert_id}", f"reason changed: {previous} -> keyCompromise",
                  serial=doc["serial"], reason=RevocationReason.KEY_COMPROMISE.value, previous=previous)  # fmt: skip
        ca._publish_crl(txn, meta, actor, issuing, key)
        ca._finish(txn, meta)
    return ca.certificate(cert_id)


def unhold(ca: CertificateAuthority, target: int | str, *, actor: Actor | None = None) -> Certificate:
    """Release a certificateHold: the certificate is valid again and leaves the CRL published in the same commit."""
    actor = actor or ca.actor
    ca.require_ca()
    key, issuing = _crl_parts(ca)
    cert_id = ca.certificate(target).id
    now = ca.now()
    with ca.store.transaction() as txn:
        meta = repo.get_meta(txn)
        doc = repo.get_doc(txn, "certs", cert_id)
        if doc is None:
            raise NotFoundError(f"no certificate with Certificate ID {cert_id}")
        if doc["revoked_at"] is None:
            raise RuleError(f"certificate {cert_id} is not revoked; there is no hold to release")
        if doc["reason"] != RevocationReason.CERTIFICATE_HOLD.value:
            raise RuleError(f"certificate {cert_id} was revoked for {doc['reason']}, which is final; only "
                            "certificateHold can be released")  # fmt: skip
        key_name = doc["requester"].casefold()
        entry = repo.index_get(txn, "requesters", key_name) or {}
        other = entry.get("active")
        if other is not None and other != cert_id:
            active = repo.get_doc(txn, "certs", other)
            if active is not None and records.certificate_model(active).is_active(now):
                raise RuleError(f"requester {doc['requester']!r} now holds certificate {other}; "
                                "revoke it before releasing this hold")  # fmt: skip
        if entry.get("queued") is not None:
            raise RuleError(f"requester {doc['requester']!r} has request {entry['queued']} in the queue; "
                            "reject it before releasing this hold")  # fmt: skip
        repo.update_doc(txn, "certs", cert_id, {"revoked_at": None, "revoked_by": None, "reason": None})
        txn.table("revoked", _shard(cert_id)).remove(doc_ids=[cert_id])
        txn.before_commit("crl-entries", ca._refresh_crl_entries)
        repo.index_put(txn, "requesters", key_name, {**entry, "name": doc["requester"], "active": cert_id})
        ca._audit(txn, meta, actor, "unhold", f"certificate {cert_id}", "hold released",
                  serial=doc["serial"], requester=doc["requester"])  # fmt: skip
        ca._publish_crl(txn, meta, actor, issuing, key)
        ca._finish(txn, meta)
    return ca.certificate(cert_id)


def _shard(cert_id: int) -> str:
    from tui_ca.engine.store import id_shard

    return id_shard(cert_id)


def record_service_cert(ca: CertificateAuthority, txn: Any, meta: dict[str, Any], actor: Actor, kind: str,
                        cert: x509.Certificate, now: datetime) -> tuple[int, int | None]:  # fmt: skip
    """Store a server certificate like an issued one (ID, serial index, PEM); the one it replaces is superseded.

    Returns the new Certificate ID and the superseded one, if any; the caller
    publishes the CRL in the same transaction when something was superseded.
    """
    from tui_ca.engine.csr_policy import describe_key, format_general_name, name_fields, spki_sha256

    requester = SERVICE_REQUESTERS[kind]
    try:
        sans = tuple(format_general_name(n) for n in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value)  # fmt: skip
    except x509.ExtensionNotFound:
        sans = ()
    fields = name_fields(cert.subject)
    details = CsrDetails(subject=cert.subject.rfc4514_string(), subject_fields=fields, common_name=fields.common_name,
                         sans=sans, key_type=describe_key(cert.public_key())[0], key_size=describe_key(cert.public_key())[1],
                         signature_valid=True, spki_sha256=spki_sha256(cert.public_key()), csr_sha256="")  # fmt: skip
    cert_id = meta["next_id"]
    meta["next_id"] = cert_id + 1
    request = records.request_doc(cert_id, requester, details, now, actor, "server-setup", None)
    request.update({"status": RequestStatus.APPROVED.value, "decided_at": records.time_doc(now),
                    "decided_by": records.actor_doc(actor)})  # fmt: skip
    repo.insert_doc(txn, "requests", cert_id, request)
    serial = format(cert.serial_number, "x")
    cert_doc = records.certificate_doc(request, cert.serial_number, cert.fingerprint(hashes.SHA256()).hex(),
                                       cert.not_valid_before_utc, cert.not_valid_after_utc, now, actor)  # fmt: skip
    repo.insert_doc(txn, "certs", cert_id, cert_doc)
    repo.insert_doc(txn, "cert_pems", cert_id, {"pem": cert.public_bytes(serialization.Encoding.PEM).decode()})
    repo.index_put(txn, "serials", serial, {"id": cert_id})
    entry = repo.index_get(txn, "requesters", requester.casefold()) or {}
    previous = entry.get("active")
    repo.index_put(txn, "requesters", requester.casefold(), {**entry, "name": requester, "queued": None,
                                                              "active": cert_id})  # fmt: skip
    superseded = None
    if previous is not None:
        old = repo.get_doc(txn, "certs", previous)
        if old is not None and old["revoked_at"] is None and records.certificate_model(old).is_active(now):
            ca._revoke_doc(txn, meta, actor, previous, RevocationReason.SUPERSEDED)
            superseded = previous
    return cert_id, superseded
