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


def test_filter_text_comes_without_building_rows(demo_home, clock):
    ca = CertificateAuthority(demo_home, clock=clock)
    full = read_snapshot(ca)
    cert = ca.certificate(1)
    assert cert.serial_hex in full.certificates.search(1) and cert.requester.casefold() in full.certificates.search(1)
    assert full.closed.search(5).startswith("5 ") and full.queued.search(8).startswith("8 ")


def test_reads_see_other_writers(demo_home, clock):
    ca = CertificateAuthority(demo_home, clock=clock)
    before = read_snapshot(ca)
    CertificateAuthority(demo_home, clock=clock).submit(csr_pem(make_csr("ec-p256", cn="late.example.net")))
    after = read_snapshot(ca)
    assert after.token != before.token and after.queued.keys == [6, 7, 8, 9]
