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
