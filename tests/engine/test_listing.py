"""The lazy overview sorts records into the right lists and builds the same models."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import CertStatus, RequestStatus, RevocationReason

KEY = ec.generate_private_key(ec.SECP256R1())


def csr(cn: str) -> bytes:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(KEY, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )


def populate(ca, clock):
    ids = [r.request.id for r in ca.submit_many([(csr(f"dev-{i}"), None) for i in range(8)])]
    ca.approve(ids[:3])
    ca.approve(ids[3:4], days=10)
    ca.revoke(ids[0], RevocationReason.KEY_COMPROMISE)
    ca.reject(ids[4], "not ours")
    clock.now += timedelta(days=20)  # certificate ids[3] expires
    return ids


def test_overview_lists_match_the_models(ca, clock):
    ids = populate(ca, clock)
    view = ca.overview()
    assert not view.partial
    assert view.queued.ids == [r.id for r in ca.requests(RequestStatus.QUEUED)] == ids[5:]
    assert view.valid.ids == [c.id for c in ca.certificates(CertStatus.VALID)] == ids[1:3]
    assert view.closed_certificates.ids == [ids[0], ids[3]]
    assert view.closed_requests.ids == [ids[4]]
    for lazy, item_id in [(view.queued, ids[5]), (view.closed_requests, ids[4])]:
        assert lazy.get(item_id) == ca.request(item_id)
    for item_id in (ids[0], ids[3]):
        assert view.closed_certificates.get(item_id) == ca.certificate(item_id)
    assert view.valid.search_text(ids[1]).startswith(f"{ids[1]} dev-1 dev-1 ")


def test_first_screen_read_has_the_whole_queue_and_stops_early(ca, clock):
    ids = populate(ca, clock)
    view = ca.overview(first_screen_rows=1)
    assert view.partial
    assert view.queued.ids == ids[5:]
    # "at least one" valid certificate, in ID order; closed lists wait for the full read
    assert view.valid.ids and view.valid.ids == ids[1 : 1 + len(view.valid.ids)]
    assert len(view.closed_certificates) == 0 and len(view.closed_requests) == 0


def test_overview_sees_another_objects_change_and_active_certificate_uses_the_index(ca, clock, home):
    from tui_ca.engine import CertificateAuthority

    first = ca.overview()
    other = CertificateAuthority(home, clock=clock)
    request = other.submit(csr("late")).request
    assert ca.change_token() != first.token
    assert request.id in ca.overview().queued
    assert ca.active_certificate("late") is None
    [outcome] = other.approve([request.id])
    assert ca.active_certificate("LATE") == outcome.certificate
    other.revoke(request.id)
    assert ca.active_certificate("late") is None


def test_compact_listing_holds_what_the_lists_show_and_matches_the_models(ca, clock):
    ids = populate(ca, clock)
    listing = ca.listing()
    assert listing.queued.ids == ids[5:] and listing.valid.ids == ids[1:3]
    assert listing.closed_certificates.ids == [ids[0], ids[3]] and listing.closed_requests.ids == [ids[4]]
    for item_id in ids[1:3] + [ids[0], ids[3]]:
        cert = ca.certificate(item_id)
        entries = listing.valid if item_id in listing.valid else listing.closed_certificates
        entry = entries.get(item_id)
        assert (entry.requester, entry.common_name, entry.serial_prefix) == (cert.requester, cert.common_name,
                                                                                cert.short_serial)  # fmt: skip
        assert entry.not_after == cert.not_after and entry.revoked_at == cert.revoked_at
    rejected = listing.closed_requests.get(ids[4])
    assert rejected.status == "rejected" and rejected.reason == "not ours" and rejected.decided_at is not None
    queued = listing.queued.get(ids[5])
    assert queued.submitted_at == ca.request(ids[5]).submitted_at and queued.approvals == () and queued.needed == 1
    assert listing.closed_certificates.get(ids[0]).reason == RevocationReason.KEY_COMPROMISE.value


def test_first_screen_listing_stops_early_and_leaves_the_closed_lists(ca, clock):
    ids = populate(ca, clock)
    listing = ca.listing(first_screen_rows=1)
    assert listing.partial and listing.queued.ids == ids[5:] and listing.valid.ids == ids[1:2]
    assert len(listing.closed_certificates) == 0 and len(listing.closed_requests) == 0


def test_matching_ids_reads_every_stored_field(ca, clock):
    ids = populate(ca, clock)
    cert = ca.certificate(ids[1])
    assert ca.matching_ids(cert.serial_hex, timedelta(days=30)) == {ids[1]}
    assert ca.matching_ids(cert.sha256.upper(), timedelta(days=30)) == {ids[1]}
    assert ca.matching_ids("status:revoked", timedelta(days=30), requests=False) == {ids[0]}
    assert ca.matching_ids("not ours", timedelta(days=30), certificates=False) == {ids[4]}
    assert ca.matching_ids("dev-6", timedelta(days=30), certificates=False, queued_only=True) == {ids[6]}


def test_text_columns_keep_none_same_and_any_text():
    from tui_ca.engine.columns import TextColumn

    column = TextColumn()
    for text, same in [("plain", None), (None, None), ("x", "x"), ("ünï\u202ecode", "other"), ("", None)]:
        column.append(text, same_as=same)
    assert [column.get(i, "x") for i in range(5)] == ["plain", None, "x", "ünï\u202ecode", ""]
    assert column.get(2, "requester") == "requester"
