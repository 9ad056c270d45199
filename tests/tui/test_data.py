"""The main screen's reads: first screen without the full scan, then everything."""

from __future__ import annotations

from helpers import csr_pem, make_csr
from tui_ca.engine import CertificateAuthority
from tui_ca.tui.data import ShardCache, read_first_screen, read_snapshot
from tui_support import clock, demo_home  # noqa: F401 (fixtures)


def test_first_screen_has_the_whole_queue_and_the_full_read_adds_history(demo_home, clock):
    ca = CertificateAuthority(demo_home, clock=clock)
    cache = ShardCache()
    first = read_first_screen(ca, cache)  # the app skips it for a CA this small; the read still works
    assert first.partial and first.queued.keys == [6, 7, 8] and first.closed.keys == []
    assert first.certificates.keys == [1, 2, 4]
    full = read_snapshot(ca, cache)
    assert not full.partial and full.closed.keys == [3, 5]
    assert full.certificates.fetch(1).cells[5] == "expiring"
    assert full.closed.fetch(3).kind == "certificate" and full.closed.fetch(5).kind == "request"


def test_the_cache_sees_other_writers(demo_home, clock):
    ca = CertificateAuthority(demo_home, clock=clock)
    cache = ShardCache()
    before = read_snapshot(ca, cache)
    CertificateAuthority(demo_home, clock=clock).submit(csr_pem(make_csr("ec-p256", cn="late.example.net")))
    after = read_snapshot(ca, cache)
    assert after.token != before.token and after.queued.keys == [6, 7, 8, 9]
