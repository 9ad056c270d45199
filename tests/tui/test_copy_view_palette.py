"""y copies through OSC 52, p shows the certificate or CSR as text, Ctrl+P offers every action."""

from __future__ import annotations

from helpers import csr_pem, make_csr
from textual.command import CommandPalette
from textual.widgets import Static
from tui_support import clock, demo_home, make_app, pilot_test, settle, until  # noqa: F401

from tui_ca.engine import CertificateAuthority
from tui_ca.tui.dump import csr_text
from tui_ca.tui.screens.dialogs import ApproveDialog
from tui_ca.tui.screens.item_text import CopyDialog, TextScreen
from tui_ca.tui.screens.main import MainScreen


@pilot_test
async def test_y_copies_the_spki_serial_or_pem_of_the_selected_item(demo_home, clock):
    ca = CertificateAuthority(demo_home)
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, CopyDialog))
        await settle(pilot)
        await pilot.press("1")
        await until(pilot, lambda: app.clipboard == ca.request(6).details.spki_sha256)
        await pilot.press("tab", "y")
        await until(pilot, lambda: isinstance(app.screen, CopyDialog))
        await settle(pilot)
        await pilot.press("2")
        await until(pilot, lambda: app.clipboard == ca.certificate(1).serial_hex)
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, CopyDialog))
        await settle(pilot)
        await pilot.press("j", "j", "enter")
        await until(pilot, lambda: app.clipboard == ca.certificate_pem(1).decode())


@pilot_test
async def test_p_shows_the_certificate_and_the_csr_as_text(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("down", "p")
        await until(pilot, lambda: isinstance(app.screen, TextScreen))
        await settle(pilot)
        dump = str(app.screen.query_one("#text-dump", Static).render())
        assert "Certificate Request:" in dump and "IP Address:10.20.0.15" in dump
        assert "Signature verifies: yes" in dump and "-----BEGIN CERTIFICATE REQUEST-----" in dump
        await pilot.press("escape", "tab", "p")
        await until(pilot, lambda: isinstance(app.screen, TextScreen))
        await settle(pilot)
        dump = str(app.screen.query_one("#text-dump", Static).render())
        serial = CertificateAuthority(demo_home).certificate(1).serial_hex
        assert "Serial Number:" in dump and ":".join(serial[i : i + 2] for i in range(0, 8, 2)) in dump
        assert "basicConstraints: critical" in dump and "CA:FALSE" in dump
        assert dump.rstrip().endswith("-----END CERTIFICATE-----")
        await pilot.press("y")
        await until(pilot, lambda: app.clipboard.startswith("-----BEGIN CERTIFICATE-----"))
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


def test_the_text_view_shows_a_hostile_subject_literally():
    dump = csr_text(csr_pem(make_csr("ec-p256", cn="evil\x1b[2J\u202e.example")))
    assert "\x1b" not in dump and "\u202e" not in dump
    assert "\\x1b[2J" in dump and "\\u202e" in dump


@pilot_test
async def test_the_command_palette_offers_the_actions_and_runs_them(demo_home, clock):
    app = make_app(demo_home, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await settle(pilot)
        await pilot.press(*"approve")
        await pilot.pause(0.5)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, ApproveDialog), timeout=10)
        await settle(pilot)
        assert "Approve request 6?" in str(app.screen.query_one(".dialog-title").render())
