"""Live work: a new request rings the bell and shows a toast, the title counts the queue, expiring soon."""

from __future__ import annotations

from helpers import csr_pem, make_csr
from textual.widgets import Label
from tui_support import clock, demo_home, make_app, pilot_test, settle, until  # noqa: F401

from tui_ca.engine import CertificateAuthority
from tui_ca.tui.widgets.ca_header import CAHeader
from tui_ca.tui.widgets.record_list import RecordList


def _counting_bell(app) -> list[int]:
    rings: list[int] = []
    app.bell = lambda: rings.append(1)
    return rings


def _toasts(app) -> list[str]:
    # What the toast rack shows on screen.
    return [str(toast.render()) for toast in app.screen.query("Toast")]


@pilot_test
async def test_a_new_request_rings_the_bell_shows_a_toast_and_counts_in_the_title(demo_home, clock):
    app = make_app(demo_home, clock)
    rings = _counting_bell(app)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        assert app.title == "tui-ca: 3 queued" and rings == []
        CertificateAuthority(demo_home, clock=clock).submit(
            csr_pem(make_csr("ec-p256", cn="desk-9")), requester="desk-9"
        )
        await until(pilot, lambda: any("New request 9 from desk-9" in t for t in _toasts(app)), timeout=5)
        assert rings == [1]
        assert app.title == "tui-ca: 4 queued"
        CertificateAuthority(demo_home, clock=clock).reject(6, "duplicate")
        await until(pilot, lambda: app.title == "tui-ca: 3 queued", timeout=5)
        assert rings == [1]  # leaving the queue is no arrival


@pilot_test
async def test_the_bell_can_be_switched_off(demo_home, clock, monkeypatch):
    monkeypatch.setenv("TUI_CA_BELL", "off")
    app = make_app(demo_home, clock)
    rings = _counting_bell(app)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(pilot)
        CertificateAuthority(demo_home, clock=clock).submit(
            csr_pem(make_csr("ec-p256", cn="desk-9")), requester="desk-9"
        )
        await until(pilot, lambda: any("New request 9" in t for t in _toasts(app)), timeout=5)
        assert rings == []


@pilot_test
async def test_expiring_soon_is_counted_in_the_header_and_x_filters_it(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        header = app.screen.query_one(CAHeader)
        await until(
            pilot, lambda: "1 certificate ends within 30 days" in app.export_screenshot().replace("&#160;", " ")
        )
        assert header.expiring == 1
        certs = app.screen.query_one("#certs", RecordList)
        await pilot.press("x")
        await until(pilot, lambda: not certs.busy)  # the filter is worked out off the UI thread
        assert certs.keys() == [1] and certs.has_focus
        assert "only those ending within 30 days" in str(app.screen.query_one("#certs-title", Label).render())
        await pilot.press("x")
        assert certs.keys() == [1, 2, 4]
