"""``tui-ca check``: every record against every index, the CRL, OCSP and the audit chain.

Like ``git fsck``: nothing is changed, every problem is one line. The indexes
are what the engine's rules stand on (one queued request and one active
certificate per requester, unique serials, a CSR seen once, blocked keys), so
each is rebuilt from the records and compared with what the store holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from cryptography import x509

from tui_ca.engine import audit as audit_log
from tui_ca.engine.models import RevocationReason
from tui_ca.engine.store import CRL_DER_BLOB, StoreView


def _without_csr(doc: dict) -> bool:
    """server-setup's own certificates are on record with no CSR (their keys never left this host)."""
    return doc.get("source") == "server-setup" and not doc["csr_sha"]


def expected_indexes(view: StoreView) -> tuple[dict, dict, dict, dict]:
    """What the requester, CSR, serial and compromised-key indexes must hold, from the records alone."""
    requesters: dict[str, dict] = {}
    csrs: dict[str, int] = {}
    for doc in view.iter_requests():
        entry = requesters.setdefault(doc["requester"].casefold(), {"name": doc["requester"], "queued": None,
                                                                    "active": None})  # fmt: skip
        if doc["status"] == "queued":
            entry["queued"] = doc["id"]
        if not _without_csr(doc):
            csrs[doc["csr_sha"]] = doc["id"]  # a CSR made a new request only after the first was closed
    serials: dict[int, int] = {}
    compromised: dict[str, int] = {}
    for doc in view.iter_certificates():
        serials[int(doc["serial"], 16)] = doc["id"]
        entry = requesters.setdefault(doc["requester"].casefold(), {"name": doc["requester"], "queued": None,
                                                                    "active": None})  # fmt: skip
        if doc.get("revoked_at") is None:
            entry["active"] = doc["id"]
        elif doc.get("reason") == RevocationReason.KEY_COMPROMISE.value:
            compromised[doc["spki"]] = doc["id"]
    return requesters, csrs, serials, compromised


def check_records(view: StoreView, issuing: x509.Certificate | None, now: datetime) -> Iterator[str]:
    """Every inconsistency found, one line each."""
    meta = view.meta()
    requests: dict[int, dict] = {}
    queued = 0
    for doc in view.iter_requests():
        requests[doc["id"]] = doc
        queued += doc["status"] == "queued"
        if view.get_csr_pem(doc["id"]) is None and not _without_csr(doc):
            yield f"request {doc['id']}: its CSR is missing"
        if doc["status"] == "approved" and view.get_certificate(doc["id"]) is None:
            yield f"request {doc['id']}: approved but its certificate is missing"
    if requests and meta["next_id"] <= max(requests):
        yield f"counters: next Certificate ID {meta['next_id']} is not above the highest ID {max(requests)}"
    if meta.get("queued", 0) != queued:
        yield f"counters: {meta.get('queued', 0)} requests counted as queued, {queued} are"

    serial_owner: dict[str, int] = {}
    revoked_docs: dict[int, dict] = {}
    for doc in view.iter_certificates():
        cert_id, serial = doc["id"], doc["serial"]
        request = requests.get(cert_id)
        if request is None or request["status"] != "approved":
            yield f"certificate {cert_id}: its request is {'missing' if request is None else request['status']}"
        if serial in serial_owner:
            yield f"certificate {cert_id}: serial {serial} is also certificate {serial_owner[serial]}'s"
        serial_owner.setdefault(serial, cert_id)
        pem = view.get_cert_pem(cert_id)
        if pem is None:
            yield f"certificate {cert_id}: its PEM is missing"
        else:
            try:
                parsed = x509.load_pem_x509_certificate(pem.encode())
            except ValueError:
                yield f"certificate {cert_id}: its PEM does not parse"
            else:
                if format(parsed.serial_number, "x") != serial:
                    yield f"certificate {cert_id}: record says serial {serial}, PEM says {parsed.serial_number:x}"
        if doc.get("revoked_at") is not None:
            revoked_docs[cert_id] = doc

    requesters, csrs, serials, compromised = expected_indexes(view)
    for entry in requesters.values():
        stored = view.find_requester(entry["name"])
        for field in ("queued", "active"):
            have = None if stored is None else stored.get(field)
            if have != entry[field]:
                yield f"requester index: {entry['name']!r} has {field} {have} but the records say {entry[field]}"
    for sha, request_id in csrs.items():
        if view.find_csr(sha) != request_id:
            yield f"CSR index: request {request_id}'s CSR points to {view.find_csr(sha)}"
    for serial, cert_id in serials.items():
        found = view.find_serial(serial)
        if found != cert_id:
            yield f"serial index: serial {serial:x} points to {found}, not certificate {cert_id}"
    for spki, cert_id in compromised.items():
        if view.find_compromised(spki) is None:
            yield f"compromised-key index: certificate {cert_id}'s key (revoked for keyCompromise) is not blocked"

    entries = {doc["id"]: doc for doc in view.iter_revoked()}
    for cert_id, doc in revoked_docs.items():
        entry = entries.get(cert_id)
        if entry is None or entry["serial"] != doc["serial"]:
            yield f"revocation entries: certificate {cert_id} is revoked but has no CRL entry"
    for cert_id in entries.keys() - revoked_docs.keys():
        yield f"revocation entries: certificate {cert_id} has a CRL entry but is not revoked"

    yield from _check_crl(view, issuing, meta, {int(d["serial"], 16): d for d in revoked_docs.values()})
    yield from _check_ocsp(view, serial_owner, revoked_docs)
    audit = list(view.iter_audit())
    for problem in audit_log.verify_chain(audit, meta["audit_seq"], meta["audit_head"]):
        yield f"audit log: {problem}"
    # A store that keeps listing bodies lists from them while they hold for the records they were made
    # from: one that holds but says something else would list what the records do not say.
    # A store that keeps a summary of where queued entries are reads only there: a wrong one hides a request.
    yield from getattr(view, "queue_record_mismatches", tuple)()
    for body in getattr(view, "listing_mismatches", tuple)():
        yield f"listing: {body} does not say what the records it lists say; delete it (listings then read the records)"


def _check_crl(
    view: StoreView, issuing: x509.Certificate | None, meta: dict, revoked: dict[int, dict]
) -> Iterator[str]:
    der = view.get_blob(CRL_DER_BLOB)
    if issuing is None:
        return
    if der is None:
        yield "CRL: none is published"
        return
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError:
        yield "CRL: the published CRL does not parse"
        return
    if not crl.is_signature_valid(issuing.public_key()):  # type: ignore[arg-type]
        yield "CRL: the published CRL is not signed by the issuing CA"
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    if number != meta.get("crl_number"):
        yield f"CRL: the published CRL is number {number}, the store says {meta.get('crl_number')}"
    listed = {entry.serial_number for entry in crl}
    for serial in sorted(set(revoked) - listed):
        yield f"CRL: certificate {revoked[serial]['id']} (serial {serial:x}) is revoked but not on the CRL"
    for serial in sorted(listed - set(revoked)):
        yield f"CRL: serial {serial:x} is on the CRL but no certificate of this CA is revoked with it"


def _check_ocsp(view: StoreView, serial_owner: dict[str, int], revoked_docs: dict[int, dict]) -> Iterator[str]:
    # OCSP answers come from the serial index (server/ocsp.py, Responder -> certificate(serial)):
    # each answer must be the certificate the serial belongs to, revoked exactly
    # when the CRL says so.
    for serial, cert_id in serial_owner.items():
        found = view.find_serial(int(serial, 16))
        doc = None if found is None else view.get_certificate(found)
        if doc is None:
            yield f"OCSP: serial {serial} (certificate {cert_id}) would be answered unknown"
        elif (doc.get("revoked_at") is not None) != (cert_id in revoked_docs):
            yield f"OCSP: serial {serial} would be answered {'revoked' if doc.get('revoked_at') else 'good'}"
