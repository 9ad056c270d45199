"""The main screen's reads: first screen without the full scan, then everything."""

from __future__ import annotations

from helpers import csr_pem, make_csr
from tui_support import clock, demo_home  # noqa: F401 (fixtures)

from tui_ca.engine import CertificateAuthority
from tui_ca.tui.data import covers_everything, read_first_screen, read_snapshot


def test_first_screen_has_the_whole_queue_and_the_full_read_adds_history(demo_home, clock):
    ca = CertificateAuthority(demo_home, clock=clock)
    first = read_first_screen(ca)
    assert first.partial and first.queued.keys == [6, 7, 8] and first.closed.keys == []
    assert first.certificates.keys == [1, 2, 4]
    # Three certificates are fewer than a screenful: the app paints once, after the full read.
    assert covers_everything(first) and not covers_everything(read_first_screen(ca, rows=2), rows=2)
    full = read_snapshot(ca)
    assert not full.partial and full.closed.keys == [3, 5]
    assert full.certificates.fetch(1).cells[5] == "expiring"
    assert full.closed.fetch(3).kind == "certificate" and full.closed.fetch(5).kind == "request"
    assert full.closed.fetch(3).cells[3] == "revoked" and full.closed.fetch(5).cells[3] == "rejected"


def test_find_matches_stored_fields_within_each_list(demo_home, clock):
    ca = CertificateAuthority(demo_home, clock=clock)
    full = read_snapshot(ca)
    cert = ca.certificate(1)
    # The full serial and the SPKI fingerprint are stored, not held by the list.
    assert full.certificates.find(cert.serial_hex) == {1} and full.certificates.find(cert.spki_sha256) == {1}
    assert full.certificates.find(cert.requester.casefold()) == {1}
    assert full.certificates.find("status:expiring") == {1}
    assert full.closed.find("rejected") == {5} and full.closed.find("status:revoked") == {3}
    # Each list answers for its own rows only.
    assert full.queued.find("status:revoked") == set() and 8 in full.queued.find("example.net")


def test_the_listing_holds_no_model_or_document(demo_home, clock):
    listing = CertificateAuthority(demo_home, clock=clock).listing()
    entry = listing.valid.get(1)
    assert entry.id == 1 and len(entry.serial_prefix) == 8 and entry.not_after is not None
    assert listing.queued.ids == [6, 7, 8] and listing.closed_requests.ids == [5]
    assert 3 in listing.closed_certificates and 2 not in listing.closed_certificates


def test_reads_see_other_writers(demo_home, clock):
    ca = CertificateAuthority(demo_home, clock=clock)
    before = read_snapshot(ca)
    CertificateAuthority(demo_home, clock=clock).submit(csr_pem(make_csr("ec-p256", cn="late.example.net")))
    after = read_snapshot(ca)
    assert after.token != before.token and after.queued.keys == [6, 7, 8, 9]
